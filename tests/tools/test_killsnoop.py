"""killsnoop under the ``signals`` workload: a killer sends known signals to a target with
raw kill/tkill/tgkill, some to missing processes (ESRCH).  Lines are matched one to one
with the killer's calls (filtered by the killer's PID)."""
import errno
import json
import signal

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import signals

pytestmark = pytest.mark.bpf

HEADER = "RESULT"


def _trace(args, sender=True, ready=HEADER):
    with signals() as w:
        extra = ["-p", str(w.pid)] if sender else ["-T", str(w.pids["target"])]
        run = ToolRun(["killsnoop"] + args + extra, ready=ready)
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    return run, rec


def _rows(out):
    return [l.split() for l in out.splitlines() if l.strip() and HEADER not in l]


def test_every_call_with_signal_target_and_result():
    run, rec = _trace([])
    header = [l for l in run.stdout.splitlines() if HEADER in l][0]
    assert header.split() == ["TIME", "PID", "COMM", "SIG", "TPID", "RESULT"]
    rows = _rows(run.stdout)
    assert len(rows) == len(rec.calls), run.stdout
    for (tm, pid, comm, sig, tpid, result), call in zip(rows, rec.calls):
        assert tm.count(":") == 2
        assert int(pid) == rec.pid and comm == rec.comm
        assert int(sig) == call.sig and int(tpid) == call.target
        assert int(result) == (0 if call.ret == 0 else -call.errno)
    assert {c.syscall for c in rec.calls} == {"kill", "tkill", "tgkill"}


def test_json_failed_only():
    run, rec = _trace(["--json", "-x"], ready="Tracing")
    events = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    failed = [c for c in rec.calls if c.ret != 0]
    assert len(failed) == 3 and len(events) == len(failed), run.stdout
    for e, call in zip(events, failed):
        assert e["syscall"] == call.syscall and e["sig"] == call.sig
        assert e["signal"] == signal.Signals(call.sig).name
        assert e["pid"] == rec.pid and e["tid"] == rec.tid and e["comm"] == rec.comm
        assert e["tpid"] == call.target and e["ret"] == -errno.ESRCH
        if call.syscall == "tgkill":
            assert e["ttid"] == call.tid


def test_target_and_signal_filters():
    # -T: the target process (kill's pid, tgkill's tgid); -s by name
    run, rec = _trace(["-s", "USR1"], sender=False)
    want = [c for c in rec.calls if c.target == rec.target.pid and c.sig == signal.SIGUSR1]
    assert len(want) == 2                                 # kill and tgkill
    rows = _rows(run.stdout)
    assert [(int(r[1]), int(r[3]), int(r[4])) for r in rows] == \
        [(rec.pid, c.sig, c.target) for c in want], run.stdout


@pytest.mark.parametrize("args, word", [(["-s", "SIGNOPE"], "-s"), (["-p", "0"], "-p"),
                                        (["-T", "x"], "-T")])
def test_bad_options_are_one_line_exit_2(args, word):
    rc, out, err = run_tool(["killsnoop"] + args)
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and word in err


def test_help_has_examples():
    rc, out, err = run_tool(["killsnoop", "-h"])
    assert rc == 0 and "examples:" in out and "killsnoop -T 189" in out
