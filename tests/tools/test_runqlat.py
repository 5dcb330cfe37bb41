"""runqlat under a workload whose wakeups we count.

The workload sleeps 1 ms N times: every sleep ends in a wakeup and a switch back in, which is
one run-queue latency sample for that PID.  With ``-p`` the histogram must hold about N samples
(a few more for start-up and preemption), never fewer.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.tools.util import ToolRun, parse_log2_hist, run_tool

pytestmark = pytest.mark.bpf

N_SLEEPS = 400

SLEEPER = """
import os, sys, time
sys.stdin.buffer.read(1)          # wait until the tracer is attached
for _ in range(%d):
    time.sleep(0.001)
""" % N_SLEEPS


def _start_sleeper():
    return subprocess.Popen([sys.executable, "-c", SLEEPER], stdin=subprocess.PIPE)


def _go(proc):
    proc.stdin.write(b"x")
    proc.stdin.flush()
    proc.stdin.close()
    assert proc.wait(60) == 0


def test_pid_filter_counts_every_wakeup():
    sleeper = _start_sleeper()
    run = ToolRun(["runqlat", "-p", str(sleeper.pid)], ready="Tracing run queue latency")
    try:
        run.started()
        _go(sleeper)
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    assert "usecs" in run.stdout and "distribution" in run.stdout
    rows = parse_log2_hist(run.stdout)
    total = sum(c for _, _, c in rows)
    # A wakeup that lands before the sleeper has left the CPU needs no switch back in, so a
    # few sleeps may give no sample; most must.
    assert N_SLEEPS * 0.9 <= total <= N_SLEEPS * 1.5 + 20, run.stdout
    # buckets are contiguous powers of two
    for lo, hi, _ in rows[1:]:
        assert hi == 2 * lo - 1 or (lo, hi) == (0, 1), rows


def test_intervals_timestamps_and_milliseconds():
    rc, out, err = run_tool(["runqlat", "-T", "-m", "1", "3"], timeout=60)
    assert rc == 0, err
    # three interval reports, each with a HH:MM:SS line and a msecs histogram
    assert out.count("msecs") == 3, out
    stamps = [l for l in out.splitlines() if len(l.strip()) == 8 and l.strip().count(":") == 2]
    assert len(stamps) == 3, out


def test_per_pid_sections_name_the_workload():
    sleeper = _start_sleeper()
    run = ToolRun(["runqlat", "-P", "-p", str(sleeper.pid)], ready="Tracing run queue latency")
    try:
        run.started()
        _go(sleeper)
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    assert ("pid = %d" % sleeper.pid) in run.stdout, run.stdout


def test_json_reports_the_same_histogram():
    sleeper = _start_sleeper()
    run = ToolRun(["runqlat", "--json", "-p", str(sleeper.pid)], ready="Tracing run queue latency")
    try:
        run.started()
        _go(sleeper)
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    objs = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    assert len(objs) == 1, run.stdout
    hist = objs[0]["hists"][0]
    assert hist["unit"] == "usecs"
    total = sum(b["count"] for b in hist["buckets"])
    assert N_SLEEPS * 0.9 <= total <= N_SLEEPS * 1.5 + 20, objs


def test_bad_option_is_one_line_exit_2():
    rc, out, err = run_tool(["runqlat", "-p", "notapid"])
    assert rc == 2
    assert "Traceback" not in err and "-p" in err


def test_help_has_examples():
    rc, out, err = run_tool(["runqlat", "-h"])
    assert rc == 0
    assert "examples:" in out and "runqlat 1 10" in out


def _setpriv_drops_bounding_set():
    """util-linux's setpriv can empty the bounding set; busybox's (in the guests) cannot."""
    if shutil.which("setpriv") is None:
        return False
    p = subprocess.run(["setpriv", "--help"], capture_output=True, text=True)
    return "--bounding-set" in p.stdout + p.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not _setpriv_drops_bounding_set(),
                    reason="needs root and util-linux's setpriv to drop capabilities")
def test_without_capabilities_is_one_line_exit_2():
    # uid 0 with an empty capability bounding set: what a locked-down container gets.
    from tests.tools.util import REPO
    env = dict(os.environ, PYTHONPATH=REPO)
    p = subprocess.run(["setpriv", "--bounding-set=-all", sys.executable, "-m", "tinytrace",
                        "runqlat", "1", "1"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "CAP_BPF" in lines[0], p.stderr
