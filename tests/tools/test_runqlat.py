"""runqlat under a workload whose wakeups we count, on both of its implementations.

The workload sleeps 1 ms N times: every sleep ends in a wakeup and a switch back in, which is
one run-queue latency sample for that PID.  With ``-p`` the histogram must hold about N samples
(a few more for start-up and preemption), never fewer.

runqlat has a task-storage version (tp_btf programs, where the kernel allows it) and the
tracepoint script as the fallback; ``TINYTRACE_TARGET=task_storage=0`` forces the fallback,
and every test that does not depend on the difference runs on both (the ``path`` fixture).
Which version ran is checked from the types of the programs the tool holds.

The kernel skips a run of a classic tracepoint program while another BPF program runs on
the same CPU (an interrupt during it); the tool reports those runs on stderr
(``toolkit.report_skipped``) and each can cost one sample, so the lower bounds below allow
for them.  (tp_btf programs are only skipped when they nest with themselves.)
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tinytrace.toolkit import skipped_in
from tests.tools.util import ToolRun, parse_log2_hist, run_tool

pytestmark = pytest.mark.bpf

N_SLEEPS = 400

SLEEPER = """
import os, sys, time
sys.stdin.buffer.read(1)          # wait until the tracer is attached
for _ in range(%d):
    time.sleep(0.001)
""" % N_SLEEPS

# A process of two threads: the main thread sleeps N times, a second thread M times.  It
# prints the second thread's ID when both are done, and the thread ends only when the process
# is told to exit (so /proc still names both when the tracer prints).
N_MAIN, N_THREAD = 300, 500
THREADED = """
import sys, threading, time
def sleeps(n):
    for _ in range(n):
        time.sleep(0.001)
done, finish = threading.Event(), threading.Event()
def worker():
    sleeps(%d)
    done.set()
    finish.wait()
sys.stdin.buffer.read(1)
t = threading.Thread(target=worker)
t.start()
sleeps(%d)
done.wait()
print(t.native_id, flush=True)
sys.stdin.buffer.read(1)
finish.set()
t.join()
""" % (N_THREAD, N_MAIN)

PROG_TYPES = {"task-storage": {26}, "script": {5}}     # tracing (tp_btf), tracepoint

# The sleeper in a PID namespace of its own: unshare(CLONE_NEWPID) applies to the children,
# so it forks, and the child prints its namespace (pid:[INUM]) before it starts sleeping.
PIDNS_SLEEPER = """
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x20000000) != 0:                  # CLONE_NEWPID
    sys.exit("unshare(CLONE_NEWPID): " + os.strerror(ctypes.get_errno()))
child = os.fork()
if child:
    _, status = os.waitpid(child, 0)
    sys.exit(0 if status == 0 else 1)
print(os.readlink("/proc/self/ns/pid"), flush=True)
sys.stdin.buffer.read(1)
for _ in range(%d):
    time.sleep(0.001)
""" % N_SLEEPS


@pytest.fixture(params=["task-storage", "script"])
def path(request):
    """The environment that selects one of runqlat's versions."""
    if request.param == "task-storage":
        from tinytrace.tools import runqlat
        if not runqlat.use_task_storage():
            pytest.skip("runqlat uses the script on this kernel (task storage: Linux %d.%d+ "
                        "with BTF)" % runqlat.TASK_STORAGE_FROM)
        return request.param, {}
    return request.param, {"TINYTRACE_TARGET": "task_storage=0"}


def _prog_types(pid):
    """The BPF program types process ``pid`` holds (from /proc/PID/fdinfo)."""
    types = set()
    d = "/proc/%d/fdinfo" % pid
    for fd in os.listdir(d):
        try:
            with open(os.path.join(d, fd)) as f:
                for line in f:
                    if line.startswith("prog_type:"):
                        types.add(int(line.split()[1]))
        except OSError:
            pass
    return types


def _start_sleeper(code=SLEEPER):
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)


def _go(proc):
    proc.stdin.write(b"x")
    proc.stdin.flush()
    proc.stdin.close()
    assert proc.wait(60) == 0


def _run_threaded(args, env):
    """Run runqlat ARGS while the two-thread workload sleeps; returns (run, pid, tid)."""
    proc = _start_sleeper(THREADED)
    run = ToolRun(["runqlat"] + [str(a).replace("PID", str(proc.pid)) for a in args],
                  ready="Tracing run queue latency", env=env)
    try:
        run.started()
        proc.stdin.write(b"x")
        proc.stdin.flush()
        tid = int(proc.stdout.readline())
    finally:
        rc = run.stop()
        proc.stdin.close()
        proc.wait(60)
    assert rc == 0, run.stderr
    return run, proc.pid, tid


def _sections(text):
    """{id: total count} of a -P/-L report ("pid = N comm" / "tid = N comm" headers)."""
    out = {}
    current = None
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        if lines and (lines[0].startswith("pid = ") or lines[0].startswith("tid = ")):
            current = int(lines[0].split()[2])
            out[current] = out.get(current, 0) + sum(
                c for _, _, c in parse_log2_hist("\n".join(lines[1:])))
    return out


def _pidns_sections(text):
    """{namespace inode: total count} of a --pidnss report ("pidns = N" headers)."""
    out = {}
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        if lines and lines[0].startswith("pidns = "):
            ns = int(lines[0].split()[2])
            out[ns] = out.get(ns, 0) + sum(c for _, _, c in parse_log2_hist(
                "\n".join(lines[1:])))
    return out


def _run_in_pidns(args, env):
    """Run runqlat ARGS while a sleeper in a new PID namespace sleeps N_SLEEPS times;
    returns (run, the namespace's inode number)."""
    from tinytrace import toolkit
    if not toolkit.has_btf():
        pytest.skip("--pidnss reads the task's PID namespace through kernel BTF")
    proc = _start_sleeper(PIDNS_SLEEPER)
    line = proc.stdout.readline().decode()
    assert line.startswith("pid:["), line
    inum = int(line.strip()[5:-1])
    run = ToolRun(["runqlat"] + args, ready="Tracing run queue latency", env=env)
    try:
        run.started()
        _go(proc)
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    return run, inum


def test_pidns_sections_hold_the_namespaces_wakeups(path):
    run, inum = _run_in_pidns(["--pidnss"], path[1])
    sections = _pidns_sections(run.stdout)
    assert inum in sections, (inum, run.stdout)
    # the sleeper is the only task of its namespace that sleeps; its wakeups are there
    skipped = skipped_in(run.stderr)
    total = sections[inum]
    assert N_SLEEPS * 0.9 <= total + skipped and total <= N_SLEEPS * 1.5 + 20, run.stdout
    mine = os.readlink("/proc/self/ns/pid")
    assert int(mine[5:-1]) != inum and int(mine[5:-1]) in sections, run.stdout


def test_pidns_json_keys(path):
    run, inum = _run_in_pidns(["--pidnss", "--json"], path[1])
    objs = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    assert len(objs) == 1, run.stdout
    keyed = dict((h["key"]["pidns"], sum(b["count"] for b in h["buckets"]))
                 for h in objs[0]["hists"])
    assert keyed.get(inum, 0) + skipped_in(run.stderr) >= N_SLEEPS * 0.9, (inum, keyed)


def test_pidns_without_btf_and_with_pids_are_refused():
    rc, out, err = run_tool(["runqlat", "--pidnss"], env={"TINYTRACE_TARGET": "btf=0"})
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc != 0 and out == "" and len(lines) == 1 and "BTF" in lines[0], err
    for args in (["--pidnss", "-P"], ["--pidnss", "-L"], ["--pidnss=1"]):
        rc, out, err = run_tool(["runqlat"] + args)
        lines = [l for l in err.splitlines() if l.strip()]
        assert rc == 2 and len(lines) == 1 and "Traceback" not in err, (args, err)


def test_pid_filter_counts_every_wakeup(path):
    kind, env = path
    sleeper = _start_sleeper()
    run = ToolRun(["runqlat", "-p", str(sleeper.pid)], ready="Tracing run queue latency",
                  env=env)
    try:
        run.started()
        assert _prog_types(run.proc.pid) == PROG_TYPES[kind]
        _go(sleeper)
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    assert "usecs" in run.stdout and "distribution" in run.stdout
    rows = parse_log2_hist(run.stdout)
    total = sum(c for _, _, c in rows)
    # A wakeup that lands before the sleeper has left the CPU needs no switch back in, so a
    # few sleeps may give no sample; most must.
    skipped = skipped_in(run.stderr)
    assert N_SLEEPS * 0.9 <= total + skipped and total <= N_SLEEPS * 1.5 + 20, run.stdout
    # buckets are contiguous powers of two
    for lo, hi, _ in rows[1:]:
        assert hi == 2 * lo - 1 or (lo, hi) == (0, 1), rows


def test_intervals_timestamps_and_milliseconds(path):
    rc, out, err = run_tool(["runqlat", "-T", "-m", "1", "3"], timeout=60, env=path[1])
    assert rc == 0, err
    # three interval reports, each with a HH:MM:SS line and a msecs histogram
    assert out.count("msecs") == 3, out
    stamps = [l for l in out.splitlines() if len(l.strip()) == 8 and l.strip().count(":") == 2]
    assert len(stamps) == 3, out


def test_per_pid_sections_name_the_workload(path):
    sleeper = _start_sleeper()
    run = ToolRun(["runqlat", "-P", "-p", str(sleeper.pid)], ready="Tracing run queue latency",
                  env=path[1])
    try:
        run.started()
        _go(sleeper)
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    assert ("pid = %d" % sleeper.pid) in run.stdout, run.stdout


def test_json_reports_the_same_histogram(path):
    sleeper = _start_sleeper()
    run = ToolRun(["runqlat", "--json", "-p", str(sleeper.pid)], ready="Tracing run queue latency",
                  env=path[1])
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
    skipped = skipped_in(run.stderr)
    assert N_SLEEPS * 0.9 <= total + skipped and total <= N_SLEEPS * 1.5 + 20, objs


def test_per_process_and_per_thread_sections(path):
    # -P: one section for the process, holding both threads' sleeps (keyed by process in
    # the kernel, or folded from thread IDs through /proc by the fallback)
    run, pid, tid = _run_threaded(["-P"], path[1])
    secs = _sections(run.stdout)
    skipped = skipped_in(run.stderr)
    assert secs.get(pid, 0) + skipped >= 0.9 * (N_MAIN + N_THREAD), (pid, tid, run.stdout)
    assert tid not in secs or tid == pid
    # -L: a section per thread
    run, pid, tid = _run_threaded(["-L"], path[1])
    secs = _sections(run.stdout)
    skipped = skipped_in(run.stderr)
    assert secs.get(pid, 0) + skipped >= 0.9 * N_MAIN and \
        secs.get(tid, 0) + skipped >= 0.9 * N_THREAD, \
        (pid, tid, run.stdout)
    # the main thread does not hold the other thread's samples (GIL hand-overs add some)
    assert secs[pid] < N_MAIN + N_THREAD * 0.8, (pid, tid, run.stdout)


def test_pid_filter_with_threads(path):
    """With task pointers, -p PID follows every thread of the process (as BCC's does); the
    tracepoint version can only match the thread whose ID is PID."""
    kind, env = path
    run, pid, tid = _run_threaded(["-p", "PID"], env)
    total = sum(c for _, _, c in parse_log2_hist(run.stdout))
    if kind == "task-storage":
        assert 0.9 * (N_MAIN + N_THREAD) <= total + skipped_in(run.stderr) and \
            total <= 3 * (N_MAIN + N_THREAD) + 50, run.stdout
    else:
        assert 0.9 * N_MAIN <= total + skipped_in(run.stderr) and \
            total < N_MAIN + N_THREAD * 0.8, run.stdout


def test_bad_option_is_one_line_exit_2():
    rc, out, err = run_tool(["runqlat", "-p", "notapid"])
    assert rc == 2
    assert "Traceback" not in err and "-p" in err


def test_help_has_examples():
    rc, out, err = run_tool(["runqlat", "-h"])
    assert rc == 0
    assert "examples:" in out and "runqlat 1 10" in out
    assert "runqlat --pidnss" in out and "PID namespace" in out


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


def test_task_storage_only_where_its_allocation_is_safe(monkeypatch):
    """Before Linux 6.4 creating a task's storage inside the scheduler's tracepoints may
    deadlock the CPU (kmalloc waking kswapd under the runqueue lock): runqlat takes the
    script there, whatever the feature probe says."""
    from tinytrace.kernel import bpf, features
    from tinytrace.tools import runqlat

    class Facts(object):
        task_storage = True
    monkeypatch.setattr(features, "probe", lambda: Facts())
    monkeypatch.delenv("TINYTRACE_TARGET", raising=False)
    for version, expect in (((6, 1, 0), False), ((6, 3, 13), False), ((6, 4, 0), True),
                            ((6, 18, 0), True)):
        monkeypatch.setattr(bpf, "kernel_version", lambda v=version: v)
        assert runqlat.use_task_storage() is expect, version
    assert runqlat.Runqlat(runqlat.parse_args([])).kind == "task-storage"
    monkeypatch.setattr(bpf, "kernel_version", lambda: (6, 1, 0))
    assert runqlat.Runqlat(runqlat.parse_args([])).kind == "script"


def test_refused_task_storage_falls_back_to_the_script(monkeypatch):
    """If this kernel refuses the task-storage programs after all, runqlat says why and runs
    the tracepoint script instead (in-process: the refusal is simulated)."""
    from tinytrace.kernel.btf import BtfError
    from tinytrace.tools import runqlat

    def refuse():
        raise BtfError("no tp_btf view of sched_switch in this kernel's BTF")
    monkeypatch.setattr(runqlat, "kernel_facts", refuse)
    opts = runqlat.parse_args([])
    rq = runqlat.Runqlat(opts, task_storage=True)
    assert rq.kind == "task-storage"
    from tinytrace.toolkit import skipped_runs
    with rq.start():
        assert rq.kind == "script" and "no tp_btf view" in rq.fallback_reason
        sleeper = _start_sleeper()
        _go(sleeper)
        hists = rq.take()
        skipped = skipped_runs()
    assert set(hists) == {None} and sum(hists[None].values()) + skipped >= N_SLEEPS * 0.9
