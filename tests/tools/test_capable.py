"""capable under the ``capabilities`` workload: a root child binds a low port
(CAP_NET_BIND_SERVICE, allowed), unshares a UTS namespace and sets its host name
(CAP_SYS_ADMIN twice, allowed), then drops CAP_NET_BIND_SERVICE and binds again (denied).
The kernel makes other checks on the way (e.g. CAP_SYS_ADMIN for memory accounting), so
each workload check is identified by its kernel stack: the syscall that made it.

The tool takes kprobes on cap_capable where the kernel has them (the qemu guests: an AUDIT
column, INSETID with -x, audited checks only unless -v) and the capability:cap_capable
tracepoint elsewhere (this development VM); the tests here read the columns from the header
and so check whichever variant the kernel gets.  The kprobe-only test runs in the guests
(``guest_safe``, ``kprobes``)."""
import json
import os
import subprocess
import sys

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import capabilities

pytestmark = pytest.mark.bpf

HEADER = "VERDICT"
STARTUP = 240 if os.environ.get("TINYTRACE_GUEST") else 30     # emulated Python is slow

# workload op -> a kernel function its check must show on the stack
STACK_MARK = {"bind": "bind", "unshare": "unshare", "sethostname": "sethostname"}


def _trace(args, ready=HEADER):
    with capabilities() as w:
        run = ToolRun(["capable"] + args + ["-p", str(w.pid)], ready=ready)
        try:
            run.started(STARTUP)
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    return run, rec


def _variant():
    from tinytrace.tools import capable
    return capable.variant()


def _events(out):
    """[({column: value}, [stack frames])] from the text output (columns from the header)."""
    events, names = [], None
    for line in out.splitlines():
        if line.startswith("TIME"):
            names = line.split()
        elif line.startswith("        ") and events:
            events[-1][1].append(line.strip())
        elif line.strip() and not line.startswith("NOTE"):
            events.append((dict(zip(names, line.split())), []))
    return events


def _find(events, check, start):
    """Index of the first event from ``start`` on that is this workload check."""
    for i in range(start, len(events)):
        cols, stack = events[i]
        if int(cols["CAP"]) == check.cap and cols["NAME"] == check.name and \
                any(STACK_MARK[check.syscall] in f for f in stack):
            assert cols["VERDICT"] == ("allow" if check.ret == 0 else "deny"), events[i]
            return i
    raise AssertionError("check %s not found after event %d" % (check, start))


def test_checks_in_order_with_stacks_and_verdicts():
    run, rec = _trace(["-K", "-x"])
    lines = run.stdout.splitlines()
    if _variant() == "kprobe":
        assert lines[0].split() == ["TIME", "UID", "PID", "TID", "COMM", "CAP", "NAME",
                                    "AUDIT", "INSETID", "VERDICT"], run.stdout
    else:
        assert lines[0].startswith("NOTE") and "audit" in lines[0]
        assert lines[1].split() == ["TIME", "UID", "PID", "TID", "COMM", "CAP", "NAME",
                                    "VERDICT"]
    events = _events(run.stdout)
    assert events, run.stdout
    for cols, stack in events:
        assert cols["UID"] == "0" and int(cols["PID"]) == rec.pid
        assert int(cols["TID"]) == rec.tid
        assert cols["COMM"] == rec.comm and stack and stack[0].startswith("cap_capable")
    pos = 0
    for check in rec.checks:                  # the workload's checks, in its order
        pos = _find(events, check, pos) + 1


def test_json_unique():
    run, rec = _trace(["--json", "--unique"], ready="Tracing")
    assert ("kprobes on cap_capable" if _variant() == "kprobe" else "audit flag") in run.stderr
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


def test_help_names_the_variant():
    rc, out, err = run_tool(["capable", "-h"])
    assert rc == 0 and "examples:" in out and "capable -K" in out
    if _variant() == "kprobe":
        assert "This kernel: kprobes on cap_capable" in out, out
    else:
        assert "This kernel: tracepoint capability:cap_capable" in out and "audit flag" in out


CHECKS_CHILD = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
done = []
def check(cap, mark, fn):
    try:
        fn()
        done.append([cap, mark, 0])
    except OSError as e:
        done.append([cap, mark, e.errno])
def libc_call(name, *args):
    if getattr(libc, name)(*args) != 0:
        raise OSError(ctypes.get_errno(), name)
check(7, "setuid", lambda: os.setuid(0))
check(21, "unshare", lambda: libc_call("unshare", 0x04000000))
check(21, "sethostname", lambda: libc_call("sethostname", b"tt-capable", 10))
check(7, "setuid", lambda: os.setuid(65534))
check(7, "setuid", lambda: os.setuid(0))
sys.stdout.write(json.dumps(done) + "\n"); sys.stdout.flush()
"""


@pytest.mark.guest_safe
@pytest.mark.kprobes
def test_kprobes_audit_and_insetid():
    """With kprobes, BCC's columns.  A root child checks CAP_SETUID by setuid(0) (allowed,
    with CAP_OPT_INSETID), CAP_SYS_ADMIN by unshare(CLONE_NEWUTS) and sethostname (allowed,
    no INSETID), then setuid(65534), which drops its capabilities, and setuid(0) again
    (denied).  Each is audited, so shown without -v (AUDIT 1), in order, with its INSETID and
    verdict; the kernel stack names the syscall."""
    if _variant() != "kprobe":
        pytest.skip("this kernel has no kprobes")
    if os.geteuid() != 0:
        pytest.skip("needs root")
    child = subprocess.Popen([sys.executable, "-c", CHECKS_CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        run = ToolRun(["capable", "-x", "-K", "-p", str(child.pid)], ready=HEADER)
        try:
            run.started(STARTUP)
            child.stdin.write("go\n")
            child.stdin.flush()
            done = json.loads(child.stdout.readline())
            assert child.wait(60) == 0
        finally:
            rc = run.stop()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert rc == 0, run.stderr
    assert [d[2] for d in done] == [0, 0, 0, 0, 1], done       # the last one: EPERM
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["TIME", "UID", "PID", "TID", "COMM", "CAP", "NAME", "AUDIT",
                                "INSETID", "VERDICT"], run.stdout
    events = _events(run.stdout)
    assert all(cols["AUDIT"] == "1" for cols, _ in events), run.stdout   # no -v: audited only
    pos = 0
    for (cap, mark, err), insetid in zip(done, ("1", "0", "0", "1", "1")):
        for i in range(pos, len(events)):
            cols, stack = events[i]
            if int(cols["CAP"]) == cap and any(mark in f for f in stack):
                assert cols["NAME"] == {7: "CAP_SETUID", 21: "CAP_SYS_ADMIN"}[cap], cols
                assert cols["INSETID"] == insetid, (mark, cols)
                assert cols["VERDICT"] == ("deny" if err else "allow"), (mark, cols)
                assert int(cols["PID"]) == child.pid, cols
                pos = i + 1
                break
        else:
            raise AssertionError("%s check (CAP %d) not found after event %d:\n%s" % (
                mark, cap, pos, run.stdout))
