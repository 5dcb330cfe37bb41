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
