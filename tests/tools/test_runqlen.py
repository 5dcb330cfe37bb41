"""runqlen under run-queue contention: hogs pinned to one CPU queue up behind each other.

``runq_contention`` pins ``n`` busy loops to CPU 0 for a while.  Sampled on CPU 0 while
one of them runs, the queue holds the other n - 1 (the hogs share the test's scheduling
group), so CPU 0's histogram reaches n - 1 and CPU 0 is occupied; the other CPU, which
runs no hog, never shows a queue that long from them.  The workload records the hogs'
run-queue wait, which Little's law turns into the mean queue length while they ran.
"""
import json
import os

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import runq_contention

pytestmark = pytest.mark.bpf

N = 5


def _run(args, seconds=1.0):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    with runq_contention(cpu=0, n=N, seconds=seconds) as w:
        run = ToolRun(["runqlen"] + args, ready="Sampling run queue length")
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    return rec, run


def _sections(text):
    """{cpu: {len: count}} from BCC's per-CPU linear histograms."""
    out = {}
    cur = None
    for line in text.splitlines():
        if line.startswith("cpu = "):
            cur = out.setdefault(int(line.split("=")[1]), {})
            continue
        parts = line.split()
        if cur is not None and len(parts) >= 3 and parts[1] == ":" and parts[0].isdigit():
            cur[int(parts[0])] = int(parts[2])
    return out


def test_per_cpu_histograms_show_the_queue():
    rec, run = _run(["-C"])
    secs = _sections(run.stdout)
    assert 0 in secs, run.stdout
    cpu0 = secs[0]
    # mean waiting hogs while they ran (Little's law), from their own schedstat
    waiting = sum(h.wait_ns for h in rec.hogs) / (rec.seconds * 1e9)
    assert waiting > N - 2.5, rec.hogs                # the workload did contend
    long_q = sum(n for length, n in cpu0.items() if length >= N - 2)
    assert long_q >= 10, run.stdout
    assert max(l for l, n in cpu0.items() if n) >= N - 1, run.stdout
    other = secs.get(1, {})
    assert sum(n for length, n in other.items() if length >= N - 1) < long_q, run.stdout


def test_occupancy_per_cpu_and_json():
    rec, run = _run(["-O", "-C"])
    rows = [l for l in run.stdout.splitlines() if l.startswith("runqocc, CPU")]
    assert rows, run.stdout
    occ = {int(l.split()[2]): float(l.split()[3].rstrip("%")) for l in rows}
    assert occ[0] > 0, run.stdout

    rec, run = _run(["--json"])
    objs = [json.loads(l) for l in run.stdout.splitlines()]
    assert len(objs) == 1, run.stdout
    hist = objs[0]["hists"][0]
    assert hist["unit"] == "runqlen" and hist["scale"] == "linear"
    assert any(b["low"] >= N - 2 and b["count"] for b in hist["buckets"]), objs


def test_intervals_with_timestamps():
    rc, out, err = run_tool(["runqlen", "-T", "1", "2"], timeout=60)
    assert rc == 0, err
    assert out.count("runqlen       : count     distribution") == 2, out
    stamps = [l for l in out.splitlines() if len(l.strip()) == 8 and l.strip().count(":") == 2]
    assert len(stamps) == 2, out


def test_bad_option_is_one_line_exit_2():
    rc, out, err = run_tool(["runqlen", "-x"])
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    rc, out, err = run_tool(["runqlen", "0"])
    assert rc == 2 and "Traceback" not in err


def test_help_has_examples():
    rc, out, err = run_tool(["runqlen", "-h"])
    assert rc == 0
    assert "examples:" in out and "runqlen -C" in out and "--runqocc" in out
