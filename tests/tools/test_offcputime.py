"""offcputime under a workload that blocks twice in known ways.

``off_cpu`` sleeps ``sleep_s`` in clock_nanosleep, then reads a pipe that a helper writes
``pipe_s`` later; it records which kernel functions those paths have in this kernel
(``kstack_expect``: do_nanosleep..., anon_pipe_read/pipe_read, vfs_read...).  Each block
is one off-CPU spell of at least its planned length (the timer cannot fire early, the
helper writes only after its own sleep), and at most what the child measured around it.
"""
import json

import pytest

from tests.tools.util import ToolRun, bpf_maps, run_tool
from tests.workloads import off_cpu

pytestmark = pytest.mark.bpf

SLEEP_S, PIPE_S = 0.3, 0.2
READY = "Tracing off-CPU time (us)"


def _run(args):
    with off_cpu(sleep_s=SLEEP_S, pipe_s=PIPE_S) as w:
        run = ToolRun(["offcputime"] + args + ["-p", str(w.pid)], ready=READY)
        try:
            run.started()
            run.maps = bpf_maps(run.proc.pid)
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    return rec, run


def _stacks(text):
    """[(frames, comm, tid, usecs)] of BCC's multi-line layout."""
    out, frames = [], []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("    -  "):
            comm, _, tid = line.strip()[1:].strip().rpartition(" (")
            out.append((frames, comm.strip(), int(tid.rstrip(")")), int(lines[i + 1])))
            frames = []
            i += 2
            continue
        if line.startswith("    ") and line.strip():
            frames.append(line.strip())
        i += 1
    return out


def _block(rec, kind):
    return [b for b in rec.blocks if b.kind == kind][0]


def _time_in(stacks, expect):
    """Total time of the stacks holding every expected function."""
    return sum(s[3] for s in stacks if expect and all(f in s[0] for f in expect))


def test_kernel_stacks_carry_the_blocking_time():
    rec, run = _run(["-K"])
    assert "of PID %d by kernel stack... Hit Ctrl-C to end." % rec.pid in run.stdout
    stacks = _stacks(run.stdout)
    assert stacks and {s[2] for s in stacks} == {rec.tid}, run.stdout
    assert {s[1] for s in stacks} == {rec.comm}, run.stdout
    for kind in ("sleep", "pipe_read"):
        b = _block(rec, kind)
        assert b.kstack_expect, b
        spent = _time_in(stacks, b.kstack_expect)
        # at least the planned time (less the few us between the syscall and the switch),
        # at most what the child measured around the call
        assert b.planned_s * 1e6 - 2000 <= spent <= b.seconds * 1e6 + 2000, (kind, spent, b)
    # innermost first: __schedule before the blocking function
    sleep_stack = [s for s in stacks if "do_nanosleep" in s[0]]
    if sleep_stack:
        frames = sleep_stack[0][0]
        assert frames.index("__schedule") < frames.index("do_nanosleep"), frames


def test_min_and_max_block_time_filters():
    rec, run = _run(["-K", "-m", "100000"])
    stacks = _stacks(run.stdout)
    assert stacks and all(s[3] >= 100000 for s in stacks), run.stdout
    # exactly the two long blocks (both well over 100 ms)
    assert sum(s[3] for s in stacks) >= (SLEEP_S + PIPE_S) * 1e6 - 4000, run.stdout
    assert len(stacks) <= 2, run.stdout
    rec, run = _run(["-K", "-M", "50000"])
    stacks = _stacks(run.stdout)
    assert all(s[3] <= 50000 for s in stacks), run.stdout
    assert _time_in(stacks, _block(rec, "sleep").kstack_expect) == 0, run.stdout


def test_state_filter():
    # both blocks are interruptible sleeps (S, 1): kept by --state 1, dropped by --state 2
    rec, run = _run(["-K", "--state", "1"])
    stacks = _stacks(run.stdout)
    for kind in ("sleep", "pipe_read"):
        b = _block(rec, kind)
        assert _time_in(stacks, b.kstack_expect) >= b.planned_s * 1e6 - 2000, run.stdout
    rec, run = _run(["-K", "--state", "2"])
    stacks = _stacks(run.stdout)
    assert _time_in(stacks, _block(rec, "sleep").kstack_expect) == 0, run.stdout
    assert _time_in(stacks, _block(rec, "pipe_read").kstack_expect) == 0, run.stdout


def test_folded_user_and_kernel_with_delimiter():
    rec, run = _run(["-f", "-d"])
    assert READY in run.stderr
    lines = [l for l in run.stdout.splitlines() if l.strip()]
    assert lines, run.stderr
    found = False
    for line in lines:
        stack, _, us = line.rpartition(" ")
        frames = stack.split(";")
        assert frames[0] == rec.comm, line
        if "do_nanosleep" in frames:
            found = True
            # folded: outermost first, so do_nanosleep comes before __schedule
            assert frames.index("do_nanosleep") < frames.index("__schedule"), line
            if "-" in frames:
                assert frames.index("-") < frames.index("do_nanosleep"), line
            assert int(us) >= SLEEP_S * 1e6 - 2000, line
    assert found, run.stdout


def test_json_and_thread_kind_filters():
    rec, run = _run(["--json", "-K"])
    objs = [json.loads(l) for l in run.stdout.splitlines()]
    assert objs and all(o["tid"] == rec.tid and o["pid"] == rec.pid for o in objs), objs
    assert all(set(o) == {"tid", "pid", "comm", "kernel_stack", "usecs"} for o in objs), objs
    assert sum(o["usecs"] for o in objs) >= (SLEEP_S + PIPE_S) * 1e6 - 4000
    # a user process is not a kernel thread: -k shows nothing of it, -u shows it
    rc, out, err = run_tool(["offcputime", "-k", "-K", "1"], timeout=60)
    assert rc == 0, err
    comms = {l.split()[1] for l in out.splitlines() if l.startswith("    -  ")}
    assert "python3" not in comms and comms, out


def test_stack_storage_size_bounds_the_stacks_kept():
    # the default: the stack map holds 4096 stacks, and both blocking paths are named
    rec, run = _run(["-K"])
    assert [m["max_entries"] for m in run.maps if m["kind"] == "stack_trace"] == [4096]
    # room for one stack: the map is made that size, and of the workload's two blocking
    # paths at most one keeps its frames; the other's time is still counted, under an
    # empty stack (BCC prints "[Missed Kernel Stack]" there)
    rec, run = _run(["-K", "--stack-storage-size", "1"])
    stack_maps = [m for m in run.maps if m["kind"] == "stack_trace"]
    assert [m["max_entries"] for m in stack_maps] == [1], run.maps
    stacks = _stacks(run.stdout)
    assert len({tuple(s[0]) for s in stacks if s[0]}) <= 1, run.stdout
    named = [k for k in ("sleep", "pipe_read")
             if _time_in(stacks, _block(rec, k).kstack_expect) > 0]
    assert len(named) <= 1, run.stdout
    assert any(not s[0] for s in stacks), run.stdout
    assert sum(s[3] for s in stacks) >= (SLEEP_S + PIPE_S) * 1e6 - 4000, run.stdout


def test_bad_options_are_one_line_exit_2():
    for args in (["-p", "x"], ["-U", "-K"], ["-p", "1", "-t", "2"], ["-m", "10", "-M", "5"],
                 ["-f", "--json"], ["--stack-storage-size", "0"],
                 ["--stack-storage-size", "-1"], ["--stack-storage-size", "junk"],
                 ["--stack-storage-size", str(1 << 40)]):
        rc, out, err = run_tool(["offcputime"] + args)
        assert rc == 2, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)


def test_help_has_examples():
    rc, out, err = run_tool(["offcputime", "-h"])
    assert rc == 0
    assert "examples:" in out and "offcputime -m 1000" in out and "--state" in out
    assert "--stack-storage-size 16384" in out
