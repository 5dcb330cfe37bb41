"""capable under the ``capabilities`` workload: a root child binds a low port
(CAP_NET_BIND_SERVICE, allowed), unshares a UTS namespace and sets its host name
(CAP_SYS_ADMIN twice, allowed), then drops CAP_NET_BIND_SERVICE and binds again (denied).
The kernel makes other checks on the way (e.g. CAP_SYS_ADMIN for memory accounting), so
each workload check is identified by its kernel stack: the syscall that made it."""
import json

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import capabilities

pytestmark = pytest.mark.bpf

HEADER = "VERDICT"

# workload op -> a kernel function its check must show on the stack
STACK_MARK = {"bind": "bind", "unshare": "unshare", "sethostname": "sethostname"}


def _trace(args, ready=HEADER):
    with capabilities() as w:
        run = ToolRun(["capable"] + args + ["-p", str(w.pid)], ready=ready)
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    return run, rec


def _events(out):
    """[(columns, [stack frames])] from the text output."""
    events = []
    for line in out.splitlines():
        if line.startswith("        ") and events:
            events[-1][1].append(line.strip())
        elif line.strip() and not line.startswith(("NOTE", "TIME")):
            events.append((line.split(), []))
    return events


def _find(events, check, start):
    """Index of the first event from ``start`` on that is this workload check."""
    for i in range(start, len(events)):
        cols, stack = events[i]
        cap, name, verdict = int(cols[5]), cols[6], cols[7]
        if cap == check.cap and name == check.name and \
                any(STACK_MARK[check.syscall] in f for f in stack):
            assert verdict == ("allow" if check.ret == 0 else "deny"), events[i]
            return i
    raise AssertionError("check %s not found after event %d" % (check, start))


def test_checks_in_order_with_stacks_and_verdicts():
    run, rec = _trace(["-K", "-x"])
    lines = run.stdout.splitlines()
    assert lines[0].startswith("NOTE") and "audit" in lines[0]
    assert lines[1].split() == ["TIME", "UID", "PID", "TID", "COMM", "CAP", "NAME", "VERDICT"]
    events = _events(run.stdout)
    assert events, run.stdout
    for cols, stack in events:
        assert cols[1] == "0" and int(cols[2]) == rec.pid and int(cols[3]) == rec.tid
        assert cols[4] == rec.comm and stack and stack[0].startswith("cap_capable")
    pos = 0
    for check in rec.checks:                  # the workload's checks, in its order
        pos = _find(events, check, pos) + 1


def test_json_unique():
    run, rec = _trace(["--json", "--unique"], ready="Tracing")
    assert "audit flag" in run.stderr
    events = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    caps = [e["cap"] for e in events]
    assert len(caps) == len(set(caps)), events          # one line per (cap, pid)
    assert {c.cap for c in rec.checks} <= set(caps)
    for e in events:
        assert e["pid"] == rec.pid and e["comm"] == rec.comm
        assert e["name"] == {10: "CAP_NET_BIND_SERVICE", 21: "CAP_SYS_ADMIN"}.get(
            e["cap"], e["name"])
    bind = [e for e in events if e["cap"] == 10][0]
    assert bind["ret"] == 0 and bind["verdict"] == "allow"   # the first one is kept


def test_json_user_stacks():
    run, rec = _trace(["--json", "-U"], ready="Tracing")
    events = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    assert len(events) >= len(rec.checks), run.stdout
    for e in events:
        assert "kstack" not in e
        assert e["ustack"] and all(isinstance(f, str) and f for f in e["ustack"]), e


def test_bad_option_is_one_line_exit_2():
    rc, out, err = run_tool(["capable", "-p", "abc"])
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "-p" in err


def test_help_names_the_approximation():
    rc, out, err = run_tool(["capable", "-h"])
    assert rc == 0 and "examples:" in out and "capable -K" in out
    assert "audit flag" in out
