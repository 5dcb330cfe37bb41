"""Attaching loaded programs: tracepoints, raw tracepoints, tp_btf, and perf events.

Tracepoint, kprobe/uprobe-PMU and software/profile programs hang off a perf event.  The
program is attached with a BPF link (BPF_LINK_CREATE, attach type BPF_PERF_EVENT, Linux 5.15+)
when the kernel has them -- the link fd then owns the attachment -- else with the
PERF_EVENT_IOC_SET_BPF ioctl; either way the event is then enabled.

A tracepoint needs ONE perf event (opened on CPU 0, pid -1): the program is called from the
tracepoint itself, on whichever CPU hits it.  Sampling events (profile, interval, software
counters) are per CPU, so ``per_cpu()`` opens one on each online CPU.

Every function returns an object with ``close()`` (and context-manager support) that detaches.
"""
import errno as _errno
import os

from tinytrace.kernel import bpf, perf
from tinytrace.kernel.libc import OwnedFd


def _prog_fd(prog):
    return prog if isinstance(prog, int) else prog.fileno()


class Attachment(OwnedFd):
    """Base: ``fd`` is what keeps the program attached (a link or a perf event)."""

    kind = "attachment"
    target = ""

    def __repr__(self):
        return "<%s %s fd=%d>" % (type(self).__name__, self.target, self.fd)


class RawTracepoint(Attachment):
    kind = "raw_tracepoint"

    def __init__(self, fd, target):
        Attachment.__init__(self, fd)
        self.target = target


class Iterator(Attachment):
    """A BPF iterator link (iter:task ...): ``run()`` reads a fresh iterator fd to its end,
    which calls the program once per object (task, file, socket...)."""
    kind = "iter"

    def __init__(self, fd, target):
        Attachment.__init__(self, fd)
        self.target = target

    def run(self):
        """One pass over the objects; returns the bytes the program wrote with
        bpf_seq_printf (tinytrace's own programs send events instead, and write none)."""
        import os
        fd = bpf.iter_create(self.fileno())
        out = []
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return b"".join(out)
                out.append(chunk)
        finally:
            os.close(fd)


class PerfAttachment(Attachment):
    """A program on a perf event.  ``fd`` is the perf event; ``link_fd`` the BPF link when one
    was used (closed first)."""

    kind = "perf_event"
    # closing waits for RCU grace periods (the link's, then the event's): a Session closes
    # many of these at once from a few threads
    concurrent_close = True

    def __init__(self, event_fd, link_fd=-1, target="", cpu=-1):
        Attachment.__init__(self, event_fd)
        self.link_fd = link_fd
        self.target = target
        self.cpu = cpu

    def _release(self):
        try:
            perf.disable(self.fd)
        except OSError:
            pass
        if self.link_fd >= 0:
            fd, self.link_fd = self.link_fd, -1
            try:
                os.close(fd)
            except OSError:
                pass


class Group(object):
    """Several attachments closed together (one per CPU for sampling events)."""

    def __init__(self, members, target=""):
        self.members = list(members)
        self.target = target

    def close(self):
        while self.members:
            self.members.pop().close()

    @property
    def closed(self):
        return not self.members

    def __iter__(self):
        return iter(self.members)

    def __len__(self):
        return len(self.members)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _use_links():
    from tinytrace.kernel import features
    return features.probe().perf_link


def attach_to_event(prog, event_fd, target="", cpu=-1, link=None, cookie=None):
    """Attach ``prog`` to the open perf event ``event_fd`` (which the result then owns) and
    enable it.  ``link`` forces (True) or forbids (False) a BPF link; default: if available.
    ``cookie`` (a u64 the program reads with bpf_get_attach_cookie) needs a link."""
    pfd = _prog_fd(prog)
    link_fd = -1
    try:
        if link is None:
            link = _use_links()
        if cookie is not None and not link:
            from tinytrace.errors import KernelError
            raise KernelError("attaching to %s: a BPF cookie needs BPF links for perf events "
                              "(Linux 5.15 or later)" % target)
        try:
            if link:
                link_fd = bpf.link_create(pfd, event_fd, bpf.ATTACH_TYPES["perf_event"],
                                          cookie=cookie)
            else:
                perf.set_bpf(event_fd, pfd)
        except OSError as e:
            raise _attach_error(e, target)
        perf.enable(event_fd)
    except BaseException:
        if link_fd >= 0:
            os.close(link_fd)
        os.close(event_fd)
        raise
    return PerfAttachment(event_fd, link_fd, target, cpu)


def _attach_error(e, target):
    """A clear error for a refused attachment (e is an OSError or BpfError)."""
    from tinytrace.errors import KernelError
    err = e.errno
    if err == _errno.EEXIST:
        return KernelError("attaching to %s: a BPF program is already attached there" % target)
    if err == _errno.EACCES and bpf._privileged():
        # the kernel compares the furthest context offset the program reads with the size of
        # the event's record (tracepoint fields differ between 32- and 64-bit kernels)
        return KernelError("attaching to %s: the program reads past the end of the event's "
                           "record (check field offsets against the tracepoint's format file)"
                           % target)
    if err in (_errno.EPERM, _errno.EACCES):
        from tinytrace import privileges
        return privileges.error("attaching to %s" % target, err)
    if err == _errno.EINVAL:
        return KernelError("attaching to %s: the kernel refused it (EINVAL): the program's "
                           "type does not fit this event" % target)
    return KernelError("attaching to %s: %s" % (target, os.strerror(err)))


def perf_event(prog, attr, cpu=0, pid=-1, group_fd=-1, target="", link=None, cookie=None):
    """The generic attach: open the perf event described by ``attr`` (a ``perf.Attr``) on
    ``cpu``/``pid`` and attach ``prog`` to it.  kprobe/uprobe PMU events use this with
    ``perf.probe_pmu(...)``."""
    fd = perf.perf_event_open(attr, pid=pid, cpu=cpu, group_fd=group_fd)
    return attach_to_event(prog, fd, target or "perf event type %d config %d" % (
        attr.type, attr.config), cpu, link, cookie)


def tracepoint(prog, category, name, link=None, cookie=None):
    """Attach a tracepoint-type program to ``category:name`` with one perf event."""
    from tinytrace.kernel import tracefs
    eid = tracefs.event_id(category, name)
    target = "tracepoint:%s:%s" % (category, name)
    return perf_event(prog, perf.tracepoint(eid), cpu=0, pid=-1, target=target, link=link,
                      cookie=cookie)


def raw_tracepoint(prog, name):
    """Attach a raw_tracepoint program to tracepoint ``name`` (e.g. 'sys_enter')."""
    try:
        fd = bpf.raw_tracepoint_open(name, _prog_fd(prog))
    except bpf.BpfError as e:
        if e.errno == _errno.ENOENT:
            from tinytrace.kernel.tracefs import EventNotFound
            raise EventNotFound("raw tracepoint %s not found" % name)
        raise
    return RawTracepoint(fd, "rawtracepoint:" + name)


def tp_btf(prog, name=""):
    """Attach a BPF_PROG_TYPE_TRACING program loaded with expected_attach_type
    'trace_raw_tp' and the tracepoint's BTF id (its target is fixed at load time)."""
    fd = bpf.raw_tracepoint_open(None, _prog_fd(prog))
    return RawTracepoint(fd, "tp_btf:" + name)


def iterator(prog, name):
    """Link a program loaded as a 'trace_iter' tracing program (attach_btf_id: the BTF id of
    ``bpf_iter_NAME``); ``run()`` on the result iterates."""
    fd = bpf.link_create(_prog_fd(prog), 0, bpf.ATTACH_TYPES["trace_iter"])
    return Iterator(fd, "iter:" + name)


def per_cpu(prog, attr, cpus=None, target="", link=None):
    """One perf event per CPU (``cpus`` default: every online CPU), all attached to ``prog``;
    returns a ``Group``."""
    if cpus is None:
        from tinytrace.kernel import arch
        cpus = arch.online_cpus()
    members = []
    try:
        for cpu in cpus:
            members.append(perf_event(prog, attr, cpu=cpu, target=target, link=link))
    except BaseException:
        for m in members:
            m.close()
        raise
    return Group(members, target)


def profile(prog, frequency=None, period_ns=None, cpus=None, link=None):
    """profile:hz:N / profile:ms:N style sampling: cpu-clock on every online CPU, at a
    frequency (Hz) or every ``period_ns``."""
    if (frequency is None) == (period_ns is None):
        raise ValueError("give exactly one of frequency and period_ns")
    if frequency is not None:
        attr = perf.software(perf.SW_CPU_CLOCK, sample_freq=frequency)
        target = "profile:hz:%d" % frequency
    else:
        attr = perf.software(perf.SW_CPU_CLOCK, sample_period=period_ns)
        target = "profile:ns:%d" % period_ns
    return per_cpu(prog, attr, cpus, target, link)


def interval(prog, period_ns, cpu=0, link=None):
    """interval:...: a cpu-clock event on one CPU firing every ``period_ns``."""
    attr = perf.software(perf.SW_CPU_CLOCK, sample_period=period_ns)
    return perf_event(prog, attr, cpu=cpu, target="interval:ns:%d" % period_ns, link=link)


def software(prog, config, sample_period=1, cpus=None, link=None, target=""):
    """A software event (perf.SW_*) counted on every online CPU, calling ``prog`` every
    ``sample_period`` occurrences."""
    attr = perf.software(config, sample_period=sample_period)
    return per_cpu(prog, attr, cpus, target or "software:%d:%d" % (config, sample_period),
                   link)
