"""Kprobe and uprobe events made through tracefs (``kprobe_events`` / ``uprobe_events``).

This is the fallback for kernels without the kprobe/uprobe PMUs (before 4.17, or built
without them).  A PMU event belongs to its file descriptor and disappears with it, even
after SIGKILL; a tracefs event is a named, system-wide object that stays until someone
removes it.  So:

* names are unique and carry our PID: ``p:kprobes/tinytrace_<pid>_<n>`` (``uprobes/`` for
  uprobes), ``n`` counting up within the process;
* ``TracefsProbe.close()`` closes the perf event first (the kernel refuses to remove an event
  in use, EBUSY) and then writes ``-:group/name``; an ``atexit`` hook does the same for any
  the caller forgot;
* the first time a process creates one, it removes the ``tinytrace_<pid>_<n>`` events whose
  PID no longer runs (a run of ours that was killed).  An event of a tinytrace still running
  is left alone -- and if one in another PID namespace looks dead to us, the kernel refuses
  to remove it while its perf event is open;
* the files are only ever appended to (``tracefs.write``: O_WRONLY|O_APPEND).  Opening
  ``kprobe_events`` for writing without O_APPEND truncates it, which deletes every kprobe of
  every tool on the machine.

A definition the kernel rejects is explained with the last entry of tracefs's
``error_log`` (5.4+) when there is one.

Once created, the event is an ordinary tracepoint (``events/<group>/<name>/id``): it is
opened with PERF_TYPE_TRACEPOINT -- pid -1 and CPU 0 for kprobes, the target PID on any CPU
for a uprobe limited to a process -- and the program is attached as for a tracepoint.
"""
import errno as _errno
import os

from tinytrace.errors import KernelError

PREFIX = "tinytrace_"
GROUPS = {"kprobe": "kprobes", "uprobe": "uprobes"}
FILES = {"kprobe": "kprobe_events", "uprobe": "uprobe_events"}

_patterns = []


def _re():
    """(event name, listing line, error_log line) patterns, compiled on first use."""
    if not _patterns:
        import re
        _patterns.extend((re.compile(r"^tinytrace_(\d+)_(\d+)$"),
                          re.compile(r"^[pr]\d*:([^/\s]+)/(\S+)\s"),
                          re.compile(r"error:\s*(.*)$")))
    return _patterns


_counter = [0]
_cleaned = set()
_live = []            # TracefsProbe objects not closed yet (closed by the atexit hook)
_atexit = [False]


class DynamicEventError(KernelError):
    """The kernel refused a kprobe_events / uprobe_events definition: ``errno`` is the
    write's error, ``reason`` the kernel's error_log text (or the errno's)."""

    def __init__(self, message, errno=None, reason=""):
        KernelError.__init__(self, message)
        self.errno = errno
        self.reason = reason


def supported(kind):
    """True when tracefs has ``kprobe_events`` (kind "kprobe") or ``uprobe_events``."""
    from tinytrace.kernel import tracefs
    try:
        return os.path.exists(tracefs.path(FILES[kind]))
    except Exception:
        return False


def next_name():
    """A fresh event name for this process."""
    n = _counter[0]
    _counter[0] += 1
    return "%s%d_%d" % (PREFIX, os.getpid(), n)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


def stale_events(text, alive=_pid_alive):
    """``(group, name)`` of the tinytrace events in a kprobe_events/uprobe_events listing
    whose creating process is gone."""
    name_re, line_re, _ = _re()
    out = []
    for line in text.splitlines():
        m = line_re.match(line + " ")
        if not m:
            continue
        group, name = m.group(1), m.group(2)
        nm = name_re.match(name)
        if nm and int(nm.group(1)) != os.getpid() and not alive(int(nm.group(1))):
            out.append((group, name))
    return out


def clean_stale(kind):
    """Remove the events a killed tinytrace left behind (once per process and kind).
    Returns the ``group/name`` strings removed."""
    if kind in _cleaned:
        return []
    _cleaned.add(kind)
    from tinytrace.kernel import tracefs
    try:
        with open(tracefs.path(FILES[kind])) as f:
            text = f.read()
    except OSError:
        return []
    removed = []
    for group, name in stale_events(text):
        try:
            tracefs.write(FILES[kind], "-:%s/%s\n" % (group, name))
            removed.append("%s/%s" % (group, name))
        except OSError:
            pass              # in use (another namespace's live run) or already gone
    return removed


def last_error():
    """The message of the newest entry in tracefs's error_log, or ''."""
    from tinytrace.kernel import tracefs
    try:
        with open(tracefs.path("error_log")) as f:
            text = f.read()
    except OSError:
        return ""
    msg = ""
    error_re = _re()[2]
    for line in text.splitlines():
        m = error_re.search(line)
        if m:
            msg = m.group(1).strip()
    return msg


def create(kind, definition, retprobe=False, target=""):
    """Write ``p:<group>/<name> <definition>`` (``r:`` for a return probe) and return
    ``(group, name, event id)``.  ``definition`` is what follows the name: ``func+off`` or
    ``0xaddr`` for a kprobe, ``/path:0xoffset[(0xref_ctr)]`` for a uprobe."""
    from tinytrace.kernel import tracefs
    clean_stale(kind)
    group = GROUPS[kind]
    name = next_name()
    line = "%s:%s/%s %s\n" % ("r" if retprobe else "p", group, name, definition)
    try:
        tracefs.write(FILES[kind], line)
    except OSError as e:
        if e.errno in (_errno.EPERM, _errno.EACCES):
            from tinytrace import privileges
            raise privileges.error("writing %s" % FILES[kind], e.errno)
        why = last_error() or os.strerror(e.errno)
        raise DynamicEventError("%s: the kernel refused %s %r: %s" % (
            target or kind, FILES[kind], line.strip(), why), e.errno, why)
    try:
        eid = tracefs.event_id(group, name)
    except BaseException:
        remove(kind, group, name)
        raise
    return group, name, eid


def remove(kind, group, name):
    """Delete one event; True when it is gone."""
    from tinytrace.kernel import tracefs
    try:
        tracefs.write(FILES[kind], "-:%s/%s\n" % (group, name))
        return True
    except OSError as e:
        return e.errno == _errno.ENOENT


def _close_live():
    while _live:
        p = _live.pop()
        try:
            p.close()
        except Exception:
            pass


class TracefsProbe(object):
    """A program attached to a kprobe/uprobe made through tracefs: the perf attachment plus
    the event it hangs off.  ``close()`` detaches, then deletes the event."""

    def __init__(self, kind, group, name, attachment, target=""):
        self.kind, self.group, self.name = kind, group, name
        self.attachment = attachment
        self.target = target
        self.removed = False
        _live.append(self)
        if not _atexit[0]:
            import atexit
            atexit.register(_close_live)
            _atexit[0] = True

    @property
    def fd(self):
        return self.attachment.fd

    @property
    def link_fd(self):
        return getattr(self.attachment, "link_fd", -1)

    @property
    def closed(self):
        return self.removed

    def close(self):
        if self.removed:
            return
        try:
            self.attachment.close()
        finally:
            self.removed = True
            remove(self.kind, self.group, self.name)
            try:
                _live.remove(self)
            except ValueError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return "<TracefsProbe %s %s/%s>" % (self.target, self.group, self.name)


def attach(prog, kind, definition, retprobe=False, pid=-1, target="", link=None):
    """Create the event, open it as a tracepoint (for ``pid`` when >= 0) and attach
    ``prog``.  Returns a ``TracefsProbe``; on any failure the event is removed again."""
    from tinytrace.kernel import attach as att, perf
    group, name, eid = create(kind, definition, retprobe, target)
    try:
        attr = perf.tracepoint(eid)
        if pid is not None and pid >= 0:
            a = att.perf_event(prog, attr, cpu=-1, pid=pid, target=target, link=link)
        else:
            a = att.perf_event(prog, attr, cpu=0, pid=-1, target=target, link=link)
    except BaseException:
        remove(kind, group, name)
        raise
    return TracefsProbe(kind, group, name, a, target)
