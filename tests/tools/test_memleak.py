"""memleak under the ``malloc_leaks`` workload (libc allocations with odd sizes, some freed;
with a C compiler also three mallocs through a known native call chain) and, in kernel
mode, under ``kernel_allocs`` (eventfd2 calls whose kernel objects stay allocated).

User mode is checked allocation by allocation: every block the workload kept must be
outstanding with its address and size (malloc, calloc, strdup through malloc,
posix_memalign through its memptr), the freed ones must not count, and the native chain
must be the stack of its mallocs.  Several runs of the tool watch one workload at once.
"""
import json
import sys

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import kernel_allocs, malloc_leaks

pytestmark = pytest.mark.bpf

READY = "Attaching to"
ENTRY = "bytes in"


def _watch(workload, variants, env=None):
    """Start one memleak per argument list in ``variants`` (each gets -p PID) next to
    ``workload``; Ctrl-C them after the work (the last report is printed then)."""
    with workload as w:
        runs = [ToolRun(["memleak", "-p", str(w.pid)] + args, ready=READY, env=env)
                for args in variants]
        try:
            for run in runs:
                run.started()
            rec = w.go()
        finally:
            rcs = [run.stop() for run in runs]
    for run, rc in zip(runs, rcs):
        assert rc == 0, run.stderr
    return runs, rec


def _entries(text):
    """[(bytes, allocations, [frame lines])] of the last report in ``text``."""
    reports = text.split("stacks with outstanding allocations:")
    assert len(reports) >= 2, text
    out = []
    for block in reports[-1].split("\n\t")[1:]:
        if ENTRY not in block:
            continue
        lines = block.split("\n\t\t")
        words = lines[0].split()
        out.append((int(words[0]), int(words[3]), [l.strip() for l in lines[1:]]))
    return out


def test_user_allocations_addresses_sizes_and_stacks():
    runs, rec = _watch(malloc_leaks(), [
        ["-o", "0", "-a", "--json", "-T", "100000"],
        ["-o", "0", "-z", "3001", "-Z", "3001"],
        ["-o", "0", "--combined-only", "-z", "20480", "-Z", "20480", "--sort", "count"],
    ])
    js, text, combined = runs
    by_func = dict((a.func if not a.get("via") else a.via, a) for a in rec.allocations)

    # JSON with -a: exactly the kept blocks of the workload's sizes, at their addresses
    reports = [json.loads(l) for l in js.stdout.splitlines() if l.startswith("{")]
    assert len(reports) == 1, js.stdout
    shown = dict((int(a["addr"], 16), a["size"]) for a in reports[0]["allocs"])
    for a in rec.allocations:
        for addr in a.addresses:
            assert shown.get(addr) == a.size, (a.func, hex(addr), a.size)
    sizes = set(a.size for a in rec.allocations)
    outstanding = [s for s in shown.values() if s in sizes]
    assert len(outstanding) == sum(a.leaked for a in rec.allocations), reports[0]
    assert sum(outstanding) == rec.leaked_bytes

    # the native chain: its mallocs' stack starts at tt_leak_c, then b, then a
    if rec.get("native"):
        nat = rec.native
        stacks = [s for s in reports[0]["stacks"] if s["bytes"] == nat.leaked_bytes and
                  s["allocations"] == nat.count]
        assert stacks, reports[0]["stacks"]
        names = [f.split("+")[0] for f in stacks[0]["stack"]]
        assert names[:3] == nat.callers, stacks[0]
        assert "libttwork" in stacks[0]["stack"][0]

    # text, -z/-Z 3001: BCC's layout, the 8 kept mallocs of 3001 bytes in one entry
    lines = text.stdout.splitlines()
    assert lines[0] == "Attaching to pid %d, Ctrl+C to quit." % rec.pid
    assert lines[1].startswith("[") and lines[1].endswith(
        "] Top 10 stacks with outstanding allocations:")
    m = by_func["malloc"]
    entries = _entries(text.stdout)
    assert [(b, n) for b, n, _ in entries] == [(m.leaked_bytes, m.leaked)], text.stdout
    for frame in entries[0][2]:
        addr, _, sym = frame.partition("\t")
        assert addr.startswith("0x") and len(addr) == 18 and sym, frame

    # --combined-only, 20480: posix_memalign's kept blocks, summed in the kernel
    pm = by_func["posix_memalign"]
    entries = _entries(combined.stdout)
    assert [(b, n) for b, n, _ in entries] == [(pm.leaked_bytes, pm.leaked)], combined.stdout


def test_trace_every_call_of_one_size():
    runs, rec = _watch(malloc_leaks(native=False), [["-t", "-z", "3001", "-Z", "3001"]])
    m = [a for a in rec.allocations if a.func == "malloc"][0]
    allocs, frees = [], []
    for line in runs[0].stdout.splitlines():
        words = line.split()
        if "alloc exited, size = 3001," in line:
            assert words[0] == rec.comm and int(words[1]) == rec.pid
            allocs.append(int(words[-1], 16))
        elif "free entered" in line and line.endswith("size = 3001"):
            frees.append(int(words[-4].rstrip(","), 16))
    assert len(allocs) == m.count and len(frees) == m.freed, runs[0].stdout
    assert set(m.addresses) <= set(allocs) and not set(frees) & set(m.addresses)


def test_command_is_traced_from_its_start():
    code = ("import ctypes; l = ctypes.CDLL(None); l.malloc.restype = ctypes.c_void_p; "
            "l.malloc.argtypes = [ctypes.c_size_t]; keep = [l.malloc(3001) for _ in range(7)]; "
            "print('tt-memleak-' + 'child-done', flush=True)")   # not in the command line
    run = ToolRun(["memleak", "-o", "0", "-z", "3001", "-Z", "3001", "-c",
                   "%s -c \"%s\"" % (sys.executable, code)], ready="tt-memleak-child-done")
    try:
        run.started()
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    assert run.stdout.startswith("Executing '"), run.stdout
    assert [(b, n) for b, n, _ in _entries(run.stdout)] == [(7 * 3001, 7)], run.stdout


def test_kernel_allocations_of_a_syscall_stay_outstanding():
    with kernel_allocs() as w:
        run = ToolRun(["memleak", "--json", "-o", "0", "-Z", "2048", "-T", "100000"],
                      ready=READY)
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    reports = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    assert len(reports) == 1, run.stdout
    want = rec.kstack_expect
    mine = []
    for s in reports[0]["stacks"]:
        names = [f.split("+")[0] for f in s["stack"] or []]
        if want[0] in names and any(n in names for n in want[1:]):
            mine.append(s)
    # one object per call allocated in do_eventfd (eventfd_ctx), still held
    assert sum(s["allocations"] for s in mine) >= rec.count, reports[0]["stacks"][-5:]
    for s in mine:
        assert s["bytes"] % s["allocations"] == 0 and s["stack"][-1].endswith("[kernel]")


@pytest.mark.parametrize("args, word", [(["-z", "10", "-Z", "5"], "-z"),
                                        (["-p", "x"], "-p"), (["--sort", "age"], "--sort"),
                                        (["--percpu", "-p", "1"], "--percpu"),
                                        (["-s", "0"], "-s")])
def test_bad_options_are_one_line_exit_2(args, word):
    rc, out, err = run_tool(["memleak"] + args)
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and word in err


def test_help_has_examples():
    rc, out, err = run_tool(["memleak", "-h"])
    assert rc == 0
    assert "examples:" in out and "memleak -p $(pidof allocs) -t" in out
    assert "kmem" in out and "uprobes" in out


def test_trace_through_the_perf_buffer():
    # kernels without ring buffers (before 5.8): -t events go through a perf buffer
    runs, rec = _watch(malloc_leaks(native=False), [["-t", "-z", "7021", "-Z", "7021"]],
                       env={"TINYTRACE_TARGET": "ringbuf=0"})
    c = [a for a in rec.allocations if a.func == "calloc"][0]
    text = runs[0].stdout
    assert text.count("alloc exited, size = 7021,") == c.count, text
    assert sum(1 for l in text.splitlines()
               if "free entered" in l and l.endswith("size = 7021")) == c.freed, text


def test_allocations_with_a_lost_stack_still_count():
    # get_stackid can fail (a collision in the stack map): the block is still outstanding
    import io
    import time
    from tinytrace.tools import memleak

    class Tracer(object):
        table_size = 100

        def outstanding(self):
            old = time.monotonic_ns() - 10 ** 9
            return [(0x1000, 64, old, 5), (0x2000, 32, old, -17), (0x3000, 32, old, -17),
                    (0x4000, 99, time.monotonic_ns() + 10 ** 9, 5)]     # too young for -o

        def stat(self, index):
            return 3 if index == memleak.STAT_FULL else 0

    class Syms(object):
        def frames(self, sid):
            return [(0xffff, "leaky+0x10 [libx.so]")] if sid == 5 else None

    opts = memleak.parse_args(["-a"])
    out = io.StringIO()
    memleak.report(opts, Tracer(), Syms(), out)
    text = out.getvalue()
    assert "\t64 bytes in 1 allocations from stack\n\t\t0x000000000000ffff\tleaky+0x10 [libx.so]" \
        in text, text
    assert "\t64 bytes in 2 allocations from stack\n\t\tstack information lost" in text, text
    assert "addr = 2000 size = 32" in text and "4000" not in text
    opts = memleak.parse_args(["--json"])
    out = io.StringIO()
    memleak.report(opts, Tracer(), Syms(), out)
    rec = json.loads(out.getvalue())
    assert rec["untracked"] == 3 and {(s["bytes"], s["allocations"]) for s in rec["stacks"]} \
        == {(64, 1), (64, 2)}
