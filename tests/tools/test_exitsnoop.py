"""exitsnoop under the ``exits`` workload: a launcher forks children that exit(0), exit(3),
die of SIGTERM, are SIGKILLed, and one whose second thread exits before it.  Lines are
found by the launcher's PID in the PPID column (or the children's PIDs), and each is
checked against the wait status, PID, comm and age the launcher recorded."""
import json
import subprocess
import sys

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import exits

pytestmark = pytest.mark.bpf

HEADER = "EXIT_CODE"


def _trace(args, ready=HEADER):
    with exits() as w:
        run = ToolRun(["exitsnoop"] + args, ready=ready)
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    return run, rec


def _rows(out, ppid):
    """{tid: columns} of the lines whose PPID is the launcher."""
    rows = {}
    for line in out.splitlines():
        cols = line.split(None, 5)
        if len(cols) == 6 and cols[2] == str(ppid):
            rows[int(cols[3])] = cols
    return rows


def _expected_text(child):
    if child.signal is not None:
        return "signal %d (%s)" % (child.signal, {9: "KILL", 15: "TERM"}[child.signal])
    return "0" if child.code == 0 else "code %d" % child.code


def test_every_child_with_pid_parent_age_and_status():
    run, rec = _trace([])
    header = [l for l in run.stdout.splitlines() if HEADER in l][0]
    assert header.split() == ["PCOMM", "PID", "PPID", "TID", "AGE(s)", "EXIT_CODE"]
    rows = _rows(run.stdout, rec.ppid)
    # one line per child process; the exiting thread of tt-thrmain is no process exit
    assert sorted(rows) == sorted(c.pid for c in rec.children), run.stdout
    for child in rec.children:
        comm, pid, ppid, tid, age, status = rows[child.pid]
        assert comm == child.comm and int(pid) == child.pid == int(tid)
        assert status == _expected_text(child), (child, rows[child.pid])
        # the kernel's age runs from fork to exit, inside the launcher's fork-to-reap span
        assert child.age_planned - 0.01 <= float(age) <= child.age + 0.01, (child, age)


def test_per_thread_shows_the_thread_and_its_process():
    run, rec = _trace(["--per-thread"])
    rows = _rows(run.stdout, rec.ppid)
    thr = [c for c in rec.children if c.kind == "thread"][0]
    assert thr.thread.tid in rows and thr.pid in rows, run.stdout
    comm, pid, ppid, tid, age, status = rows[thr.thread.tid]
    assert comm == "tt-thread" and int(pid) == thr.pid and status == "0"
    # every child's main thread is there too
    assert {c.pid for c in rec.children} <= set(rows)


def test_failed_only_json_with_signal_names():
    run, rec = _trace(["-x", "--json"], ready="Tracing")
    events = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    mine = {e["pid"]: e for e in events if e["ppid"] == rec.ppid}
    failed = [c for c in rec.children if c.status != 0]
    assert sorted(mine) == sorted(c.pid for c in failed), run.stdout
    for child in failed:
        e = mine[child.pid]
        assert e["comm"] == child.comm and e["tid"] == child.pid
        assert e["status"] == child.status
        if child.signal is not None:
            assert e["signal"] == child.signal and not e["core_dumped"]
            assert e["signal_name"] == {9: "SIGKILL", 15: "SIGTERM"}[child.signal]
        else:
            assert e["exit_code"] == child.code == 3
        assert child.age_planned <= e["age"] <= child.age


def test_pid_filter_ends_when_the_process_exits():
    target = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read(1); "
                               "sys.exit(5)"], stdin=subprocess.PIPE)
    run = ToolRun(["exitsnoop", "-t", "--label=gone", "-p", str(target.pid)], ready=HEADER)
    try:
        run.started()
        target.stdin.write(b"x")
        target.stdin.close()
        assert target.wait(30) == 5
        rc = run.wait(30)                    # no Ctrl-C: the tool ends by itself
    finally:
        run.stop()
    assert rc == 0, run.stderr
    lines = [l for l in run.stdout.splitlines() if l.strip()]
    assert lines[0].split()[:3] == [lines[0].split()[0], "LABEL", "PCOMM"]
    assert lines[0].startswith("TIME-")
    assert len(lines) == 2, run.stdout
    cols = lines[1].split()
    assert cols[0].count(":") == 2 and "." in cols[0] and cols[1] == "gone"
    assert int(cols[3]) == target.pid and " ".join(cols[-2:]) == "code 5"


@pytest.mark.parametrize("args, word", [(["-p", "0"], "-p"), (["-p", "me"], "-p"),
                                        (["--bogus"], "--bogus")])
def test_bad_options_are_one_line_exit_2(args, word):
    rc, out, err = run_tool(["exitsnoop"] + args)
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and word in err


def test_help_has_examples():
    rc, out, err = run_tool(["exitsnoop", "-h"])
    assert rc == 0
    assert "examples:" in out and "exitsnoop -x" in out and "--per-thread" in out


def test_without_btf_is_one_clear_line():
    rc, out, err = run_tool(["exitsnoop"], env={"TINYTRACE_TARGET": "btf=0"})
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc == 1 and len(lines) == 1 and "BTF" in lines[0] and "Traceback" not in err, err


def test_without_group_dead_the_leader_exit_counts():
    # kernels before group_dead was in the tracepoint (6.1): BCC's rule, pid == tid
    from tinytrace.script import Script
    from tinytrace.tools import exitsnoop
    opts = exitsnoop.parse_args([])
    got = []
    script = Script(exitsnoop.script_text(opts, group_dead=False), tool="exitsnoop")
    script.on_printf(lambda values, index: got.append(values))
    with exits() as w:
        with script.start():
            rec = w.go()
    mine = dict((v[0], v) for v in got if v[2] == rec.ppid)
    assert sorted(mine) == sorted(c.pid for c in rec.children), got
    for c in rec.children:
        pid, tid, ppid, status, age_ns, comm = mine[c.pid]
        assert tid == pid and status == c.status and comm == c.comm.encode()


def test_comm_is_escaped():
    child = ("import ctypes, sys; sys.stdin.read(1); "
             "ctypes.CDLL(None).prctl(15, b'tt-x\\x1b[2Jq', 0, 0, 0); sys.exit(4)")
    target = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE)
    run = ToolRun(["exitsnoop", "-p", str(target.pid)], ready=HEADER)
    try:
        run.started()
        target.stdin.write(b"x")
        target.stdin.close()
        assert target.wait(30) == 4
        rc = run.wait(30)
    finally:
        run.stop()
    assert rc == 0, run.stderr
    line = run.stdout.splitlines()[-1]
    assert line.startswith("tt-x\\x1b[2Jq ") and line.endswith("code 4"), run.stdout
    assert "\x1b" not in run.stdout
