"""opens() and stats() make exactly the syscalls their records list (bpftrace as witness)."""
import errno
import os

import pytest

from tests.workloads import opens, stats
from tests.workloads.oracle import Bpftrace

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _events(bt):
    """printf lines 'E|syscall|path|flags' / 'X|syscall|ret' in order."""
    out = []
    for text in bt.prints:
        for line in text.splitlines():
            if line:
                out.append(line.split("|"))
    return out


def test_opens_reach_the_kernel_as_recorded():
    w = opens()
    with w:
        comm = open("/proc/%d/comm" % w.pid).read().strip()
        pid = w.pid
        script = """
        tracepoint:syscalls:sys_enter_open /pid == %(p)d/ { printf("E|open|%%s|%%d\\n", str(args->filename), args->flags); }
        tracepoint:syscalls:sys_enter_openat /pid == %(p)d/ { printf("E|openat|%%s|%%d\\n", str(args->filename), args->flags); }
        tracepoint:syscalls:sys_enter_openat2 /pid == %(p)d/ { printf("E|openat2|%%s|-1\\n", str(args->filename)); }
        tracepoint:syscalls:sys_exit_open /pid == %(p)d/ { printf("X|open|%%d\\n", args->ret); }
        tracepoint:syscalls:sys_exit_openat /pid == %(p)d/ { printf("X|openat|%%d\\n", args->ret); }
        tracepoint:syscalls:sys_exit_openat2 /pid == %(p)d/ { printf("X|openat2|%%d\\n", args->ret); }
        """ % {"p": pid}
        with Bpftrace(script) as bt:
            rec = w.go()
    assert comm == "tt-opens" == rec.comm
    assert rec.pid == pid
    events = _events(bt)
    assert len(events) == 2 * len(rec.calls), events
    for i, call in enumerate(rec.calls):
        enter, exit_ = events[2 * i], events[2 * i + 1]
        assert enter[:3] == ["E", call.syscall, call.path], (enter, call)
        if call.syscall != "openat2":
            assert int(enter[3]) == call.flags
        assert exit_[:2] == ["X", call.syscall]
        ret = int(exit_[2])
        if call.errno:
            assert ret == -call.errno == -errno.ENOENT
        else:
            assert ret >= 0 and ret == call.ret
    # the record's own bookkeeping
    for sc in ("open", "openat", "openat2"):
        assert rec.counts[sc]["failed"] == 2
    assert rec.counts["openat"]["ok"] == 3 and rec.counts["openat2"]["ok"] == 3
    created = [c for c in rec.calls if c.flags & os.O_CREAT]
    assert created and all(c.mode == 0o640 for c in created)
    relative = [c for c in rec.calls if not c.path.startswith("/")]
    assert {c.syscall for c in relative} == {"openat", "openat2"}
    assert all(c.dfd >= 0 for c in relative)
    # closed: nothing left behind
    assert not os.path.exists(rec.dir)


_TP = {"stat": "newstat", "lstat": "newlstat", "newfstatat": "newfstatat", "statx": "statx",
       "statfs": "statfs"}
_ARG = {"stat": "filename", "lstat": "filename", "newfstatat": "filename",
        "statx": "filename", "statfs": "pathname"}


def test_stats_reach_the_kernel_as_recorded():
    w = stats()
    with w:
        pid = w.pid
        parts = []
        for sc in w.syscalls:
            parts.append('tracepoint:syscalls:sys_enter_%s /pid == %d/ { printf("E|%s|%%s\\n", str(args->%s)); }'
                         % (_TP[sc], pid, sc, _ARG[sc]))
            parts.append('tracepoint:syscalls:sys_exit_%s /pid == %d/ { printf("X|%s|%%d\\n", args->ret); }'
                         % (_TP[sc], pid, sc))
        with Bpftrace("\n".join(parts)) as bt:
            rec = w.go()
    events = _events(bt)
    assert len(events) == 2 * len(rec.calls), events
    for i, call in enumerate(rec.calls):
        assert events[2 * i] == ["E", call.syscall, call.path]
        assert events[2 * i + 1] == ["X", call.syscall, str(-call.errno if call.errno else 0)]
    for sc, c in rec.counts.items():
        assert c == {"ok": 2, "failed": 1}
    assert any(c.syscall == "lstat" and "/link-" in c.path for c in rec.calls)
    assert any(c.syscall == "newfstatat" and c.flags == 0x100 for c in rec.calls)
