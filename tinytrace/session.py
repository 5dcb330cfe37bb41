"""A tracing session: the owner of every kernel object a run creates.

Maps, programs, attachments, event readers and any other object with ``close()`` are added
to the session as they are made; ``close()`` releases them newest first (attachments before
the programs they run, programs before the maps they use), and runs cleanup callbacks such as
removing kprobe_events entries by name.  A failing close is remembered and the others still
run.

Detaching is what makes a tracer slow to exit: closing a tracepoint's (or a kprobe's, a
uprobe's) perf event waits for RCU grace periods in the kernel -- tens of milliseconds each,
for the BPF link and again for the event.  So the attachments the session holds next to each
other (``concurrent_close`` objects, and the members of groups of them) are closed together
from a few threads, whose waits overlap; everything else is closed one by one, in order.

The session is a context manager.  Inside ``with Session() as s:`` SIGTERM (and SIGHUP)
raise ``Terminated`` -- a ``SystemExit`` -- so the stack unwinds through the ``with`` and
everything is released, exactly as for Ctrl-C (KeyboardInterrupt) or any exception.  The
previous handlers come back when the block ends.  An ``atexit`` hook catches sessions that
were never closed.
"""
import sys

_open_sessions = []
_atexit_installed = False


class Terminated(SystemExit):
    """Raised in the main thread when SIGTERM/SIGHUP arrives inside a session."""

    def __init__(self, signum):
        self.signum = signum
        SystemExit.__init__(self, 128 + signum)


def _close_all_at_exit():
    while _open_sessions:
        try:
            _open_sessions[-1].close()
        except Exception:
            pass


class Session(object):
    """Owns kernel objects; see the module docstring."""

    SIGNALS = ("SIGTERM", "SIGHUP")

    def __init__(self, handle_signals=True):
        self._objects = []       # things with close(), in creation order
        self._closing = False
        self.closed = False
        self.errors = []         # exceptions raised by close() calls, for diagnostics
        self._handle_signals = handle_signals
        self._old_handlers = {}
        self._deferred = None
        self._wakeup = None      # (read fd, write fd) of the signal wakeup pipe
        global _atexit_installed
        if not _atexit_installed:
            import atexit
            atexit.register(_close_all_at_exit)
            _atexit_installed = True
        _open_sessions.append(self)
        from tinytrace.kernel import bpf
        bpf.raise_memlock()

    # -- ownership ----------------------------------------------------------------------------

    def add(self, obj):
        """Take ownership of ``obj`` (anything with ``close()``); returns it."""
        if self.closed:
            try:
                obj.close()
            finally:
                raise RuntimeError("session is closed")
        self._objects.append(obj)
        return obj

    def on_close(self, fn, *args):
        """Run ``fn(*args)`` at close, in order with the objects (newest first)."""
        self._objects.append(_Callback(fn, args))

    def release(self, obj):
        """Stop owning ``obj`` without closing it."""
        for i in range(len(self._objects) - 1, -1, -1):
            if self._objects[i] is obj:
                del self._objects[i]
                return obj
        raise ValueError("not owned by this session")

    def discard(self, obj):
        """Close ``obj`` now and forget it."""
        try:
            self.release(obj)
        except ValueError:
            pass
        obj.close()

    @property
    def objects(self):
        return list(self._objects)

    # -- conveniences that create and own in one step -----------------------------------------

    def map(self, kind, key_size, value_size, max_entries, name=None, flags=0):
        from tinytrace.kernel.maps import Map
        return self.add(Map.create(kind, key_size, value_size, max_entries, name=name,
                                   flags=flags))

    def load(self, code, prog_type, name="", **kw):
        from tinytrace.kernel import progs
        return self.add(progs.load(code, prog_type, name, **kw))

    def tracepoint(self, prog, category, name, **kw):
        from tinytrace.kernel import attach
        return self.add(attach.tracepoint(prog, category, name, **kw))

    def raw_tracepoint(self, prog, name):
        from tinytrace.kernel import attach
        return self.add(attach.raw_tracepoint(prog, name))

    def tp_btf(self, prog, name=""):
        from tinytrace.kernel import attach
        return self.add(attach.tp_btf(prog, name))

    def perf_event(self, prog, attr, cpu=0, pid=-1, **kw):
        from tinytrace.kernel import attach
        return self.add(attach.perf_event(prog, attr, cpu=cpu, pid=pid, **kw))

    def profile(self, prog, frequency=None, period_ns=None, cpus=None):
        from tinytrace.kernel import attach
        return self.add(attach.profile(prog, frequency=frequency, period_ns=period_ns,
                                       cpus=cpus))

    def reader(self, map, on_event, on_lost=None, **options):
        from tinytrace.kernel import events
        return self.add(events.reader(map, on_event, on_lost, **options))

    def output(self, on_event, on_lost=None, **options):
        """The best output channel this kernel has (see ``events.open_output``)."""
        from tinytrace.kernel import events
        return self.add(events.open_output(on_event, on_lost, **options))

    # -- lifetime -----------------------------------------------------------------------------

    def close(self):
        """Release everything, newest first.  Idempotent; signals are held off meanwhile."""
        if self.closed or self._closing:
            return
        self._closing = True
        interrupted = None
        try:
            while self._objects:
                obj = self._objects.pop()
                if _concurrent(obj) and self._objects and _concurrent(self._objects[-1]) or \
                        _group_members(obj) is not None:
                    batch = [obj]
                    while self._objects and _concurrent(self._objects[-1]):
                        batch.append(self._objects.pop())
                    interrupted = close_concurrently(batch, self.errors) or interrupted
                    continue
                try:
                    obj.close()
                except BaseException as e:  # keep going: every fd must be released
                    self.errors.append(e)
        finally:
            self.closed = True
            self._closing = False
            if self in _open_sessions:
                _open_sessions.remove(self)
            self._restore_signals()
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            raise Terminated(deferred)
        if interrupted is not None:
            raise interrupted

    def _on_signal(self, signum, frame):
        if self._closing:
            self._deferred = signum  # let close() finish first, then honour it
            return
        raise Terminated(signum)

    def _install_signals(self):
        if not self._handle_signals:
            return
        # signal handlers belong to the main thread; without ``threading`` imported no other
        # thread can exist (importing it only to ask costs ~1 ms of every start)
        threading = sys.modules.get("threading")
        if threading is not None and threading.current_thread() is not threading.main_thread():
            return
        import signal
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            try:
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
            except (ValueError, OSError):
                pass
        # Ctrl-C must stop us even when started with SIGINT ignored (a background job of a
        # non-interactive shell), as `kill -INT` stops bpftrace
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            self._old_handlers[signal.SIGINT] = signal.signal(signal.SIGINT,
                                                              signal.default_int_handler)
        self._install_wakeup(signal)

    def _install_wakeup(self, signal):
        """Point signal.set_wakeup_fd at a pipe the event readers watch, so a signal that
        lands just before epoll_wait() starts still wakes it (see tinytrace.kernel.events)."""
        import os
        r, w = os.pipe()
        for fd in (r, w):
            os.set_blocking(fd, False)
        try:
            old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except (ValueError, OSError):
            os.close(r)
            os.close(w)
            return
        if old != -1:  # somebody else's wakeup fd: leave theirs in place
            signal.set_wakeup_fd(old)
            os.close(r)
            os.close(w)
            return
        self._wakeup = (r, w)
        from tinytrace.kernel import events
        events.set_signal_wakeup(r)

    def _remove_wakeup(self):
        if self._wakeup is None:
            return
        import os
        import signal
        r, w = self._wakeup
        self._wakeup = None
        try:
            signal.set_wakeup_fd(-1)
        except (ValueError, OSError):
            pass
        from tinytrace.kernel import events
        events.set_signal_wakeup(-1)
        os.close(r)
        os.close(w)

    def _restore_signals(self):
        self._remove_wakeup()
        if not self._old_handlers:
            return
        import signal
        while self._old_handlers:
            sig, old = self._old_handlers.popitem()
            try:
                signal.signal(sig, old if old is not None else signal.SIG_DFL)
            except (ValueError, OSError, TypeError):
                pass

    def __enter__(self):
        self._install_signals()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def __del__(self):
        try:
            if not self.closed and not sys.is_finalizing():
                self.close()
        except Exception:
            pass


def _concurrent(obj):
    return getattr(obj, "concurrent_close", False) or _group_members(obj) is not None


def _group_members(obj):
    """The members of a group of attachments (``attach.Group`` and its kin: a ``members``
    list emptied by ``close()``), or None."""
    members = getattr(obj, "members", None)
    if isinstance(members, list) and members and all(_concurrent(m) for m in members):
        return members
    return None


MAX_CLOSE_THREADS = 16


def close_concurrently(objects, errors=None):
    """Close ``objects`` (attachments: see the module docstring) from up to
    ``MAX_CLOSE_THREADS`` threads, groups taken apart into their members; exceptions go to
    ``errors`` (a list).  Returns a KeyboardInterrupt/SystemExit that arrived meanwhile (the
    closing went on), or None."""
    leaves = []
    shells = []
    stack = list(objects)
    while stack:
        obj = stack.pop(0)
        members = _group_members(obj)
        if members is None:
            leaves.append(obj)
            continue
        while members:                  # as the group's own close() would take them
            stack.append(members.pop())
        shells.append(obj)
    if errors is None:
        errors = []
    if len(leaves) < 2:
        for obj in leaves:
            _close_into(obj, errors)
    else:
        import threading
        work = list(reversed(leaves))
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    if not work:
                        return
                    obj = work.pop()
                _close_into(obj, errors)
        threads = [threading.Thread(target=worker, name="tinytrace-close")
                   for _ in range(min(MAX_CLOSE_THREADS, len(leaves)))]
        interrupted = None
        started = []
        for t in threads:
            try:
                t.start()
                started.append(t)
            except RuntimeError:        # no more threads: the started ones do the rest
                break
        if not started:
            worker()
        for t in started:
            while True:
                try:
                    t.join()
                    break
                except (KeyboardInterrupt, SystemExit) as e:
                    interrupted = e     # a second Ctrl-C: finish releasing first
        for obj in shells:
            _close_into(obj, errors)
        return interrupted
    for obj in shells:
        _close_into(obj, errors)
    return None


def _close_into(obj, errors):
    try:
        obj.close()
    except BaseException as e:  # keep going: every fd must be released
        errors.append(e)


class _Callback(object):
    __slots__ = ("fn", "args")

    def __init__(self, fn, args):
        self.fn = fn
        self.args = args

    def close(self):
        fn, self.fn = self.fn, None
        if fn is not None:
            fn(*self.args)
