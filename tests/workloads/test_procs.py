"""syscalls(), signals(), exits() and capabilities() do what their records say, as bpftrace
and the kernel's own accounting see it."""
import os

import pytest

from tests.workloads import capabilities, exits, signals, syscalls
from tests.workloads.oracle import Bpftrace

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _lines(bt):
    return [l.split("|") for t in bt.prints for l in t.splitlines() if l]


def test_syscall_counts_are_exact():
    w = syscalls(getppid=1000, failed_opens=500)
    with w:
        script = """
        tracepoint:syscalls:sys_enter_getppid /pid == %(p)d/ { @getppid = count(); }
        tracepoint:syscalls:sys_exit_openat /pid == %(p)d/ { @openat = count(); if (args->ret == -2) { @enoent = count(); } }
        tracepoint:raw_syscalls:sys_enter /pid == %(p)d/ { @all = count(); }
        """ % {"p": w.pid}
        with Bpftrace(script) as bt:
            rec = w.go()
    assert rec.comm == "tt-syscalls"
    assert bt.maps["@getppid"] == rec.counts["getppid"] == 1000
    assert bt.maps["@openat"] == rec.counts["openat"] == 500
    assert bt.maps["@enoent"] == rec.errors["openat"] == 500
    # nearly nothing else: the go read, the report write, maybe some memory management
    assert 1500 <= bt.maps["@all"] <= 1500 + 20


def test_signals_are_sent_and_delivered_as_recorded():
    w = signals()
    with w:
        killer, target = w.pid, w.target.pid
        script = """
        tracepoint:syscalls:sys_enter_kill /pid == %(k)d/ { printf("E|kill|%%d|%%d\\n", args->pid, args->sig); }
        tracepoint:syscalls:sys_enter_tkill /pid == %(k)d/ { printf("E|tkill|%%d|%%d\\n", args->pid, args->sig); }
        tracepoint:syscalls:sys_enter_tgkill /pid == %(k)d/ { printf("E|tgkill|%%d|%%d|%%d\\n", args->tgid, args->pid, args->sig); }
        tracepoint:syscalls:sys_exit_kill,tracepoint:syscalls:sys_exit_tkill,tracepoint:syscalls:sys_exit_tgkill /pid == %(k)d/ { printf("X|%%d\\n", args->ret); }
        tracepoint:signal:signal_deliver /pid == %(t)d/ { @delivered[args->sig] = count(); }
        """ % {"k": killer, "t": target}
        with Bpftrace(script) as bt:
            rec = w.go()
    events = _lines(bt)
    assert len(events) == 2 * len(rec.calls), events
    for i, c in enumerate(rec.calls):
        enter, exit_ = events[2 * i], events[2 * i + 1]
        assert enter[1] == c.syscall
        if c.syscall == "kill":
            assert enter[2:] == [str(c.pid), str(c.sig)]
        elif c.syscall == "tkill":
            assert enter[2:] == [str(c.tid), str(c.sig)]
        else:
            assert enter[2:] == [str(c.pid), str(c.tid), str(c.sig)]
        assert exit_ == ["X", str(-c.errno if c.errno else 0)]
    assert [c.errno for c in rec.calls].count(3) == 3             # ESRCH
    delivered = {str(k): v for k, v in bt.maps["@delivered"].items()}
    assert delivered == rec.target.received == {"10": 2, "12": 2}
    assert rec.comm == "tt-killer" and rec.target.comm == "tt-target"


def test_exits_codes_signals_and_thread_as_the_kernel_records_them():
    w = exits()
    with w:
        script = """
        tracepoint:sched:sched_process_exit /curtask->real_parent->tgid == %(p)d || curtask->tgid != curtask->pid && curtask->real_parent->tgid == %(p)d/ {
            printf("%%d|%%d|%%s|%%d|%%d\\n", curtask->tgid, tid, comm, args->group_dead, curtask->exit_code);
        }
        """ % {"p": w.pid}
        with Bpftrace(script) as bt:
            rec = w.go()
    seen = {}
    for tgid, tid, comm, group_dead, code in _lines(bt):
        seen[int(tid)] = (int(tgid), comm, int(group_dead), int(code))
    for c in rec.children:
        tgid, comm, group_dead, code = seen[c.pid]
        assert (tgid, comm, group_dead) == (c.pid, c.comm, 1)
        assert code == c.status
        if c.kind == "thread":
            t = seen[c.thread.tid]
            assert t[:3] == (c.pid, "tt-thread", 0)
    kinds = {c.comm: (c.code, c.signal) for c in rec.children}
    assert kinds == {"tt-exit0": (0, None), "tt-exit3": (3, None), "tt-sigterm": (None, 15),
                     "tt-sigkill": (None, 9), "tt-thrmain": (0, None)}
    assert rec.children[1].age >= 0.2                 # exit(3) waits 0.2 s before exiting


def test_capability_checks_are_made_with_the_recorded_results():
    w = capabilities()
    with w:
        script = """
        tracepoint:capability:cap_capable /pid == %d/ { printf("%%d|%%d\\n", args->cap, args->ret); }
        """ % w.pid
        with Bpftrace(script) as bt:
            rec = w.go()
    seen = [(int(c), int(r)) for c, r in _lines(bt)]
    # the recorded checks appear, in order, among everything the kernel checked
    it = iter(seen)
    for check in rec.checks:
        assert any(ev == (check.cap, check.ret) for ev in it), (check, seen)
    assert [(c.name, c.ret) for c in rec.checks] == [
        ("CAP_NET_BIND_SERVICE", 0), ("CAP_SYS_ADMIN", 0), ("CAP_SYS_ADMIN", 0),
        ("CAP_NET_BIND_SERVICE", -1)]
    assert os.uname().nodename != "tt-capable"        # the host name was set in a child UTS ns
