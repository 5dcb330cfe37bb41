"""statsnoop under the ``stats`` workload: raw stat, lstat, newfstatat, statx and statfs calls
of known paths (symlinks among them), some failing with ENOENT.  Lines are matched one to
one with the workload's calls (filtered by its PID)."""
import errno
import json

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import stats

pytestmark = pytest.mark.bpf

HEADER = "PATH"


def _trace(args, ready=HEADER):
    with stats() as w:
        run = ToolRun(["statsnoop"] + args + ["-p", str(w.pid)], ready=ready)
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    return run, rec


def test_every_call_with_syscall_result_and_path():
    run, rec = _trace(["-s", "-t"])
    lines = run.stdout.splitlines()
    header = [l for l in lines if l.rstrip().endswith(HEADER)]
    assert header[0].split() == ["TIME(s)", "PID", "COMM", "FD", "ERR", "SYSCALL", "PATH"]
    rows = [l.split() for l in lines if l.strip() and l not in header]
    assert len(rows) == len(rec.calls), run.stdout
    for (ts, pid, comm, fd, err, syscall, path), call in zip(rows, rec.calls):
        assert int(pid) == rec.pid and comm == rec.comm
        assert syscall == call.syscall and path == call.path
        assert int(fd) == (0 if call.ret == 0 else -1) and int(err) == call.errno
        float(ts)
    assert {c.syscall for c in rec.calls} >= {"statx", "statfs", "newfstatat"}


def test_json_failed_only():
    run, rec = _trace(["--json", "-x"], ready="Tracing")
    events = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    failed = [c for c in rec.calls if c.errno]
    assert failed and len(events) == len(failed), run.stdout
    for e, call in zip(events, failed):
        assert e["syscall"] == call.syscall and e["path"] == call.path
        assert e["pid"] == rec.pid and e["comm"] == rec.comm
        assert e["ret"] == -errno.ENOENT and e["err"] == errno.ENOENT and e["fd"] == -1


def test_bad_option_is_one_line_exit_2():
    rc, out, err = run_tool(["statsnoop", "-p", "-3"])
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "-p" in err


def test_help_has_examples():
    rc, out, err = run_tool(["statsnoop", "-h"])
    assert rc == 0 and "examples:" in out and "statsnoop -x" in out
