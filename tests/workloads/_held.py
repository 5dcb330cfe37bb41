"""The parent side: held child processes, the Workload base class and Record.

Every workload follows one life cycle::

    w = some_workload(...)      # configure; nothing runs yet
    w.start()                   # children started and set up, each blocked before its work
    ...                         # start the tracer here: w.pid / w.pids / w.comm are known
    record = w.go()             # release the work, wait for it, return what it did
    w.close()                   # stop children, remove files/mounts/netns/cgroups

``with w:`` does start/close; ``w.run()`` does all four.  ``record`` is a ``Record``: a dict
(JSON-able) whose keys also read as attributes, nested all the way down.
"""
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

from tests.workloads import _util
from tests.workloads._child import BOOT
from tests.workloads._util import WorkloadError


class Record(dict):
    """A dict whose keys are also attributes (``rec.pid`` == ``rec["pid"]``), recursively."""

    def __init__(self, *args, **kw):
        super(Record, self).__init__(*args, **kw)
        for k, v in list(self.items()):
            dict.__setitem__(self, k, _wrap(v))

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError("record has no field %r (fields: %s)" % (
                name, ", ".join(sorted(self))))

    def __setattr__(self, name, value):
        self[name] = value

    def __setitem__(self, key, value):
        dict.__setitem__(self, key, _wrap(value))


def _wrap(v):
    if isinstance(v, Record):
        return v
    if isinstance(v, dict):
        return Record(v)
    if isinstance(v, (list, tuple)):
        return [_wrap(x) for x in v]
    return v


class HeldChild(object):
    """A Python child running ``target`` ("module:function" generator) under the protocol
    of ``_child``.  The constructor returns once the child is set up (``ready``).

    The child dies with the *thread* that started it (PR_SET_PDEATHSIG): start workloads
    from the test's own thread, not from a short-lived helper thread.
    """

    def __init__(self, target, cfg=None, comm=None, wrap=(), pass_fds=(), cwd=None,
                 env=None, timeout=30, preexec_fn=None):
        self.target = target
        self.comm = comm
        ctl_r, self._ctl = os.pipe()
        self._rep, rep_w = os.pipe()
        self._buf = b""
        self._err = tempfile.TemporaryFile()
        spec = json.dumps({"target": target, "cfg": cfg or {}, "comm": comm,
                           "ctl": ctl_r, "rep": rep_w})
        argv = list(wrap) + [sys.executable, "-c", BOOT % _util.REPO, spec]
        full_env = dict(os.environ)
        full_env.pop("PYTHONSTARTUP", None)
        if env:
            full_env.update(env)
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=self._err,
                                         pass_fds=(ctl_r, rep_w) + tuple(pass_fds),
                                         cwd=cwd or "/", env=full_env, preexec_fn=preexec_fn)
        finally:
            os.close(ctl_r)
            os.close(rep_w)
        self.pid = self.proc.pid
        self._token = _util.at_exit(self.kill)
        try:
            self.ready = self.collect(timeout)
        except BaseException:
            self.kill()
            raise

    def release(self):
        """Let the child run to its next report (does not wait)."""
        try:
            os.write(self._ctl, b"g")
        except (BrokenPipeError, OSError):
            raise WorkloadError("%s exited early:\n%s" % (self.target, self.stderr()))

    def collect(self, timeout=30):
        """The child's next report (a Record); raises WorkloadError if it dies first."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WorkloadError("%s did not report within %ss:\n%s" % (
                    self.target, timeout, self.stderr()))
            r, _, _ = select.select([self._rep], [], [], left)
            if not r:
                continue
            chunk = os.read(self._rep, 65536)
            if not chunk:
                code = self.wait(5)
                raise WorkloadError("%s exited (status %s) before reporting:\n%s" % (
                    self.target, code, self.stderr()))
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return Record(json.loads(line.decode()))

    def step(self, timeout=30):
        self.release()
        return self.collect(timeout)

    def wait(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def finish(self, timeout=10):
        """Close the control pipe (the child cleans up and exits); returns its exit code."""
        if self._ctl is not None:
            try:
                os.close(self._ctl)
            except OSError:
                pass
            self._ctl = None
        code = self.wait(timeout)
        self._close_fds()
        return code

    def kill(self):
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._close_fds()

    def close(self):
        if self.proc.poll() is None:
            self.finish(5)
        self.kill()

    def alive(self):
        return self.proc.poll() is None

    def stderr(self):
        try:
            self._err.seek(0)
            text = self._err.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""
        return text[-4000:]

    def _close_fds(self):
        for attr in ("_ctl", "_rep"):
            fd = getattr(self, attr)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, attr, None)
        _util.done(self._token)


class Workload(object):
    """Base of every workload: see the module docstring for the life cycle."""

    #: comm of the main child (set by subclasses)
    comm = None

    def __init__(self):
        self._stack = None
        self.children = {}
        self.record = None

    # life cycle -----------------------------------------------------------------------
    def start(self):
        if self._stack is not None:
            return self
        from tests.workloads.resources import sweep_stale
        sweep_stale()
        self._stack = contextlib.ExitStack()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def go(self, timeout=30):
        """Release the work, wait until it is done, return its Record."""
        if self._stack is None:
            self.start()
        if self.record is not None:
            raise WorkloadError("%s already ran" % type(self).__name__)
        self.record = Record(self._go(timeout))
        return self.record

    def close(self):
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def run(self, timeout=30):
        with self:
            return self.go(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # helpers for subclasses -----------------------------------------------------------
    def spawn(self, key, target, cfg=None, comm=None, **kw):
        child = HeldChild(target, cfg, comm, **kw)
        self._stack.callback(child.close)
        self.children[key] = child
        return child

    def cleanup(self, fn, *args):
        self._stack.callback(fn, *args)

    def enter(self, cm):
        return self._stack.enter_context(cm)

    @property
    def pid(self):
        """The pid of the main child (the one doing the traced work)."""
        return self.children["main"].pid

    @property
    def pids(self):
        return {k: c.pid for k, c in self.children.items()}

    def _start(self):
        raise NotImplementedError

    def _go(self, timeout):
        raise NotImplementedError
