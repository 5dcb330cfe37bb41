"""Start-up costs of the readers, each measured in a fresh interpreter (median of N runs).

    python3 -m tests.parsers.bench_parsers [runs]

Not a test (nothing here asserts a time): it prints the figures quoted in reports.  Byte
code goes to a private pycache prefix so the import figures are those of an installed copy.
"""
import json
import os
import subprocess
import sys
import tempfile

SNIPPETS = {
    "import elf+btf+ksyms+usyms+ldcache+usdt": """
t0 = T()
from tinytrace.kernel import elf, btf, ksyms, usyms, ldcache, usdt
out['ms'] = (T() - t0) * 1e3
""",
    "btf: load vmlinux + first member (index cached)": """
from tinytrace.kernel import btf
t0 = T()
b = btf.vmlinux()
m = b.member('task_struct', 'pid')
out['ms'] = (T() - t0) * 1e3
t1 = T(); b.member('sock', '__sk_common.skc_dport'); out['next member ms'] = (T() - t1) * 1e3
t1 = T(); b.enum_value('TCP_ESTABLISHED'); out['enum ms'] = (T() - t1) * 1e3
t1 = T(); b.tracepoint('sched_switch'); out['tp_btf proto ms'] = (T() - t1) * 1e3
""",
    "btf: load vmlinux + first member (no cache)": """
from tinytrace.kernel import btf
t0 = T()
b = btf.load(btf.VMLINUX, cache=False)
b.member('task_struct', 'pid')
out['ms'] = (T() - t0) * 1e3
""",
    "ksyms: read kallsyms + first resolve": """
from tinytrace.kernel import ksyms
k = ksyms.kallsyms()
t0 = T()
a = k.lookup('schedule')
k.resolve(a + 5)
out['ms'] = (T() - t0) * 1e3
import random
xs = [a + random.randrange(1 << 20) for _ in range(2000)]
t1 = T()
for x in xs:
    k.resolve(x)
out['per resolve us'] = (T() - t1) / len(xs) * 1e6
""",
    "elf: libc open + find malloc + uprobe offset": """
from tinytrace.kernel import elf, ldcache
path = ldcache.find_library('c')
t0 = T()
f = elf.open(path)
f.symbol_offset('malloc')
out['ms'] = (T() - t0) * 1e3
t1 = T(); f.symbolize(f.find_symbol('free').value + 3); out['first symbolize ms'] = (T() - t1) * 1e3
""",
    "usyms: first user address resolved (own process)": """
import ctypes, os
from tinytrace.kernel import usyms
a = ctypes.cast(ctypes.CDLL(None).malloc, ctypes.c_void_p).value
t0 = T()
u = usyms.UserSymbols(os.getpid())
u.symbolize(a + 1)
out['ms'] = (T() - t0) * 1e3
""",
    "ldcache: parse ld.so.cache + find libc": """
from tinytrace.kernel import ldcache
t0 = T()
ldcache.find_library('ssl')
out['ms'] = (T() - t0) * 1e3
""",
    "usdt: probes of python3.11": """
from tinytrace.kernel import usdt
t0 = T()
ps = usdt.probes('/usr/bin/python3.11')
[p.args for p in ps]
out['ms'] = (T() - t0) * 1e3
""",
    "usdt: probes of libjvm.so (all args decoded)": """
import glob
from tinytrace.kernel import usdt
p = (glob.glob('/usr/lib/jvm/*/lib/server/libjvm.so') or [None])[0]
if p:
    t0 = T()
    ps = usdt.probes(p)
    [x.args for x in ps]
    out['ms'] = (T() - t0) * 1e3
    out['probes'] = len(ps)
""",
}

PRELUDE = "import json, sys, time\nT = time.perf_counter\nout = {}\n"
EPILOGUE = "\nprint(json.dumps(out))\n"


def run(code, env):
    r = subprocess.run([sys.executable, "-c", PRELUDE + code + EPILOGUE], env=env,
                       stdout=subprocess.PIPE, universal_newlines=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="tt-pyc-")
    env["PYTHONPATH"] = root
    cache = tempfile.mkdtemp(prefix="tt-cache-")
    env["TINYTRACE_CACHE_DIR"] = cache
    print("python %s, %d runs each (median)" % (sys.version.split()[0], runs))
    for name, code in SNIPPETS.items():
        run(code, env)                                  # warm byte code and caches
        results = [run(code, env) for _ in range(runs)]
        keys = sorted(set(k for r in results for k in r))
        cols = []
        for k in keys:
            vals = sorted(r[k] for r in results if k in r)
            cols.append("%s %.2f" % (k, vals[len(vals) // 2]))
        print("%-52s %s" % (name, "; ".join(cols) or "(skipped)"))


if __name__ == "__main__":
    main()
