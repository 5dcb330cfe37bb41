"""Session teardown: every fd released, nothing left in tracefs, on every way out."""
import os
import signal
import subprocess
import sys

import pytest

from tinytrace.kernel import tracefs
from tinytrace.session import Session, Terminated

from . import bpfcode as c
from .workload import fd_targets, open_fds

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def tracefs_state():
    """Files that would show leftovers: dynamic probe definitions and trace instances."""
    if tracefs.find() is None:
        return None
    out = {}
    for name in ("kprobe_events", "uprobe_events", "dynamic_events"):
        p = tracefs.path(name)
        if os.path.exists(p):
            with open(p) as f:
                out[name] = f.read()
    inst = tracefs.path("instances")
    out["instances"] = sorted(os.listdir(inst)) if os.path.isdir(inst) else []
    return out


def build_everything(s):
    """One of each: maps, a program, a tracepoint, a raw tracepoint, readers."""
    m = s.map("array", 4, 8, 1, name="t_sess")
    s.map("hash", 8, 8, 128)
    s.map("percpu_array", 4, 8, 4)
    p = s.load(c.count_for_pid(m.fd, 1), "tracepoint", "t_sess")
    rp = s.load(c.count_for_pid(m.fd, 1), "raw_tracepoint", "t_sessraw")
    if tracefs.find() is not None and tracefs.exists("syscalls", "sys_enter_openat"):
        s.tracepoint(p, "syscalls", "sys_enter_openat")
    s.raw_tracepoint(rp, "sys_enter")
    s.output(lambda d: None, size=1 << 16)
    pm = s.map("perf_event_array", 4, 4, 0)
    s.reader(pm, lambda d: None, pages=1)
    return m


@pytest.mark.bpf
def test_close_releases_everything():
    before_fds = fd_targets()
    before_tracefs = tracefs_state()
    cleaned = []
    with Session() as s:
        build_everything(s)
        s.on_close(cleaned.append, "callback ran")
        assert len(open_fds()) > len(before_fds) + 8
    assert s.closed and s.errors == []
    assert cleaned == ["callback ran"]
    assert fd_targets() == before_fds
    assert tracefs_state() == before_tracefs


@pytest.mark.bpf
def test_exception_inside_closes():
    before = open_fds()
    with pytest.raises(ZeroDivisionError):
        with Session() as s:
            build_everything(s)
            1 / 0
    assert s.closed and open_fds() == before


@pytest.mark.bpf
def test_close_keeps_going_after_a_failure():
    before = open_fds()

    class Bad(object):
        def close(self):
            raise OSError(5, "boom")

    s = Session(handle_signals=False)
    s.map("hash", 4, 4, 4)
    s.add(Bad())
    s.map("array", 4, 4, 4)
    s.close()
    assert len(s.errors) == 1 and open_fds() == before
    s.close()  # idempotent


def test_release_and_discard():
    s = Session(handle_signals=False)
    closed = []

    class Thing(object):
        def __init__(self, n):
            self.n = n

        def close(self):
            closed.append(self.n)

    a, b, d = Thing(1), Thing(2), Thing(3)
    s.add(a)
    s.add(b)
    s.add(d)
    assert s.release(b) is b
    s.discard(d)
    assert closed == [3]
    s.close()
    assert closed == [3, 1]
    with pytest.raises(RuntimeError):
        s.add(Thing(4))
    assert closed == [3, 1, 4]


def test_sigterm_handler_is_installed_and_restored():
    old = signal.getsignal(signal.SIGTERM)
    with Session() as s:
        assert signal.getsignal(signal.SIGTERM) == s._on_signal
        with pytest.raises(Terminated) as e:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):       # the handler runs at the next bytecode boundary
                pass
        assert e.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == old


CHILD = r"""
import os, sys, time
sys.path.insert(0, %(root)r)
from tinytrace.session import Session
from tests.kernel.test_session import build_everything
base = set(os.listdir("/proc/self/fd"))
try:
    with Session() as s:
        build_everything(s)
        r = s.output(lambda d: None, size=1 << 16)
        print("ready", len(s.objects), flush=True)
        if sys.argv[1] == "raise":
            raise RuntimeError("boom")
        for _ in range(60):
            r.poll(None)                 # the tracer's wait: blocks until a signal
finally:
    now = set(os.listdir("/proc/self/fd"))
    print("leaked", len(now - base), flush=True)
"""


def run_child(how):
    env = dict(os.environ, PYTHONPATH=ROOT)
    code = CHILD % {"root": ROOT}
    proc = subprocess.Popen([sys.executable, "-c", code, how], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=env, cwd=ROOT)
    first = proc.stdout.readline()
    assert first.startswith("ready"), first + proc.stderr.read()
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    elif how == "sigint":
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@pytest.mark.bpf
@pytest.mark.parametrize("how,code", [("sigterm", 128 + signal.SIGTERM), ("sigint", -signal.SIGINT),
                                      ("raise", 1)])
def test_child_cleans_up_on_every_way_out(how, code):
    before = tracefs_state()
    rc, out, err = run_child(how)
    assert "leaked 0" in out, out + err
    assert rc == code, err
    assert tracefs_state() == before


@pytest.mark.bpf
def test_a_signal_wakes_a_blocking_poll():
    """The C-level handler writes to the session's wakeup pipe; readers watch it, so a signal
    landing just before epoll_wait() starts cannot be slept through."""
    with Session() as s:
        assert s._wakeup is not None
        r = s.output(lambda d: None, size=1 << 16)
        rfd, wfd = s._wakeup
        os.write(wfd, b"\x02")          # what the C handler writes for SIGINT
        assert r.poll(30000) == 0        # returns (instead of waiting 30 s) ...
        with pytest.raises(BlockingIOError):
            os.read(rfd, 1)              # ... having drained the pipe
    assert signal.set_wakeup_fd(-1) == -1    # restored


def test_sigint_works_even_when_ignored_at_start():
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with Session():
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)


# -- detaching many attachments at once ---------------------------------------------------------

def test_attachments_close_together_and_in_order():
    """Neighbouring concurrent_close objects (and a group's members) are closed at the same
    time: four of them meet at a barrier, which only works if all four close() calls run
    together (one by one, the first would wait out the timeout and fail).  What comes
    before them in the session (maps, programs) is closed after them, in order."""
    import threading
    barrier = threading.Barrier(4, timeout=30)
    order = []

    class Att(object):
        concurrent_close = True

        def __init__(self, n):
            self.n = n

        def close(self):
            barrier.wait()
            order.append(self.n)

    class Group(object):
        def __init__(self, members):
            self.members = members

        def close(self):
            while self.members:
                self.members.pop().close()

    class Thing(object):
        def __init__(self, n):
            self.n = n

        def close(self):
            order.append(self.n)

    s = Session(handle_signals=False)
    s.add(Thing("map"))
    s.add(Thing("prog"))
    s.add(Att(1))
    s.add(Group([Att(2), Att(3)]))
    s.add(Att(4))
    s.close()
    assert s.errors == []
    assert sorted(order[:4]) == [1, 2, 3, 4] and order[4:] == ["prog", "map"]


def test_one_attachment_alone_is_closed_in_place():
    order = []

    class Att(object):
        concurrent_close = True

        def close(self):
            import threading
            order.append(threading.current_thread() is threading.main_thread())

    s = Session(handle_signals=False)
    s.add(Att())
    s.close()
    assert order == [True]


@pytest.mark.bpf
def test_many_tracepoints_detach_and_leave_nothing():
    """Tracepoints, a per-CPU group of software events and a raw tracepoint, closed by the
    session: every fd is gone afterwards and no program stays attached."""
    from tinytrace.kernel import attach, perf
    if tracefs.find() is None:
        pytest.skip("no tracefs")
    events = [e for e in ("sched_switch", "sched_wakeup", "sched_wakeup_new",
                          "sched_process_fork", "sched_process_exec", "sched_process_exit")
              if tracefs.exists("sched", e)]
    before = fd_targets()
    with Session() as s:
        m = s.map("array", 4, 8, 1)
        p = s.load(c.count_for_pid(m.fd, 1), "tracepoint", "t_many")
        atts = [s.tracepoint(p, "sched", e) for e in events]
        sw = s.load(c.join(c.mov64_imm(0, 0), c.exit_()), "perf_event", "t_sw")
        group = s.add(attach.software(sw, perf.SW_CPU_CLOCK, sample_period=10 ** 9))
        rp = s.load(c.count_for_pid(m.fd, 1), "raw_tracepoint", "t_manyraw")
        s.raw_tracepoint(rp, "sys_enter")
        assert len(open_fds()) >= len(before) + len(events) + len(group) + 3
    assert s.errors == [] and fd_targets() == before
    assert all(a.closed for a in atts) and group.closed
