"""Differential tests against the real programs, where they are installed.

- bpftrace (Debian's 0.17 package): random BEGIN scripts fill count, sum, hist, lhist,
  stats, avg, min and string-valued maps and print some of them with top/div; the output of
  ``bpftrace`` and of ``bpftrace -f json`` must equal what tinytrace.output.bpftrace makes
  of the same data.  bpftrace leaves the order of equal values unspecified, so the data is
  drawn without ties.
- BCC's python module (Debian's python3-bpfcc, for /usr/bin/python3): its
  ``_print_log2_hist`` and ``_print_linear_hist`` must print what tinytrace.output.hist
  prints for random histograms.

Each skips when its program is absent (they are development oracles, not dependencies).
"""
import json
import os
import random
import shutil
import subprocess
import sys

import pytest

from tinytrace.output import bpftrace as B
from tinytrace.output import hist as H

pytestmark = pytest.mark.slow


def _log2_index(v):
    return 0 if v < 0 else 1 if v == 0 else v.bit_length() + 1


def _distinct(rnd, lo, hi, used):
    while True:
        v = rnd.randint(lo, hi)
        if v not in used:
            used.add(v)
            return v


def _script(seed):
    """(script, expected text, expected json) for one random BEGIN program."""
    rnd = random.Random(seed)
    stmts, maps, prints = [], [], []
    # count map, int keys, distinct counts
    used = set()
    c = {k: _distinct(rnd, 1, 4, used) for k in rnd.sample([1, 2, 300, -7, 65536], 3)}
    for k, n in c.items():
        stmts += ["@c[%d] = count();" % k] * n
    maps.append(("@c", list(c.items()), "count", {}))
    # sum map, string keys, distinct (possibly negative) sums
    used = set()
    s = {k: _distinct(rnd, -60, 60, used) for k in rnd.sample(["a", "ab", "bash", "zz"], 3)}
    stmts += ['@s["%s"] = sum(%d);' % kv for kv in s.items()]
    maps.append(("@s", list(s.items()), "sum", {}))
    # hist, plain and keyed with distinct totals
    h, hk = {}, {}
    for key, n in zip(["x", "y"], rnd.sample([1, 2, 3, 4], 2)):
        hk[key] = {}
        for _ in range(n):
            v = rnd.choice([rnd.randint(-3, 3), rnd.randint(0, 5000), rnd.randint(0, 2 ** 31 - 1)])
            i = _log2_index(v)
            h[i] = h.get(i, 0) + 1
            hk[key][i] = hk[key].get(i, 0) + 1
            stmts += ["@h = hist(%d);" % v, '@hk["%s"] = hist(%d);' % (key, v)]
    maps += [("@h", [(None, h)], "hist", {}), ("@hk", list(hk.items()), "hist", {})]
    # lhist
    lmin, lmax, step = rnd.choice([(0, 100, 10), (0, 4096, 1024), (10, 50, 5),
                                   (0, 3 * 1048576, 1048576)])
    nb = (lmax - lmin) // step
    lh = {}
    for _ in range(rnd.randint(1, 5)):
        v = rnd.randint(max(0, lmin - 2 * step), lmax + 2 * step)
        i = 0 if v < lmin else nb + 1 if v >= lmax else (v - lmin) // step + 1
        lh[i] = lh.get(i, 0) + 1
        stmts.append("@l = lhist(%d, %d, %d, %d);" % (v, lmin, lmax, step))
    maps.append(("@l", [(None, lh)], "lhist", {"lhist": (lmin, lmax, step)}))
    # stats and avg (distinct averages)
    st = (0, 0)
    av = {}
    used = set()
    for k in (1, 2, 3):
        v = _distinct(rnd, -100, 1000, used)
        av[k] = (1, v)
        st = (st[0] + 1, st[1] + v)
        stmts += ["@st = stats(%d);" % v, "@av[%d] = avg(%d);" % (k, v)]
    maps += [("@st", [(None, st)], "stats", {}), ("@av", list(av.items()), "avg", {})]
    # min, string values with tuple keys
    used = set()
    mn = {k: _distinct(rnd, 0, 999, used) for k in ("p", "q")}
    stmts += ['@mn["%s"] = min(%d);' % kv for kv in mn.items()]
    maps.append(("@mn", list(mn.items()), "min", {}))
    sv = {(rnd.choice([1, 2, 10]), rnd.choice("ab")): rnd.choice(["foo", "x y"]) for _ in range(3)}
    stmts += ['@sv[%d, "%s"] = "%s";' % (k[0], k[1], v) for k, v in sv.items()]
    maps.append(("@sv", list(sv.items()), "value", {}))
    top, div = rnd.choice([0, 1, 2]), rnd.choice([0, 1, 3])
    for name in ("@c", "@h", "@av"):
        stmts.append("print(%s, %d, %d);" % (name, top, div))
        prints.append(name)
    script = "BEGIN { " + " ".join(stmts) + " exit(); }"
    by_name = {m[0]: m for m in maps}
    text, js = B.attached_probes_text(1), B.attached_probes_json(1)
    for name in prints:
        _, entries, kind, extra = by_name[name]
        text += B.map_text(name, entries, kind, top=top, div=div, **extra)
        js += B.map_json(name, entries, kind, top=top, div=div, **extra)
    text += B.EXIT_PREAMBLE
    js += B.EXIT_PREAMBLE
    for name in sorted(by_name):          # bpftrace prints its maps by name at exit
        _, entries, kind, extra = by_name[name]
        text += B.map_text(name, entries, kind, **extra)
        js += B.map_json(name, entries, kind, **extra)
    return script, text, js


@pytest.mark.parametrize("seed", range(4))
def test_against_bpftrace(seed, bpf):
    exe = shutil.which("bpftrace")
    if exe is None:
        pytest.skip("bpftrace is not installed")
    script, text, js = _script(seed)
    for args, expected in (([], text), (["-f", "json"], js)):
        run = subprocess.run([exe] + args + ["-e", script], capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout == expected
    for line in js.splitlines():
        if line:
            json.loads(line)


_BCC_DRIVER = r"""
import contextlib, io, json, sys
import bcc.table as T
out = []
for vals, vt, strip, lin in json.load(sys.stdin):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        if lin:
            T._print_linear_hist(vals, vt, strip)
        else:
            T._print_log2_hist(vals, vt, strip)
    out.append(buf.getvalue())
json.dump(out, sys.stdout)
"""


def test_against_bcc_table_module():
    py = "/usr/bin/python3"
    if not os.path.exists(py) or subprocess.run([py, "-c", "import bcc.table"],
                                                capture_output=True).returncode != 0:
        pytest.skip("BCC's python module (python3-bpfcc) is not installed")
    rnd = random.Random(7)
    cases = []
    for _ in range(400):
        lin = rnd.random() < 0.3
        vals = [0] * (rnd.randint(1, 40) if lin else 65)
        for _ in range(rnd.randint(0, 6)):
            i = rnd.randint(0 if lin else 1, len(vals) - 1)
            vals[i] = rnd.choice([1, 2, 7, 100, 12345, 10 ** 9, 2 ** 63, rnd.randint(0, 10 ** 6)])
        cases.append((vals, rnd.choice(["usecs", "msecs", "kbytes", "a-rather-long-label-xyz"]),
                      rnd.choice([None, True, False]), lin))
    run = subprocess.run([py, "-c", _BCC_DRIVER], input=json.dumps(cases), capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    theirs = json.loads(run.stdout)
    for (vals, vt, strip, lin), expected in zip(cases, theirs):
        if lin:
            ours = H.linear_hist_text(vals, vt, bool(strip))
        else:
            ours = H.log2_hist_text(vals, vt, bool(strip))
        assert ours == expected, (vals, vt, strip)
