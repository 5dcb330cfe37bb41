"""perf_event_open(), ``struct perf_event_attr`` and the perf ioctls.

The attribute is packed with ``struct`` as PERF_ATTR_SIZE_VER5 (112 bytes, Linux 4.1+), the
newest layout holding every field a tracer sets; newer kernels accept the smaller size.

``Attr`` describes one event.  Helpers build the common ones: ``tracepoint(id)``,
``software(config, ...)``, ``bpf_output()``, and ``probe_pmu(...)`` for the kprobe/uprobe PMUs
(``/sys/bus/event_source/devices/{kprobe,uprobe}``).  ``PerfEvent`` owns the fd.
"""
import errno as _errno
import os
import struct

from tinytrace.kernel.libc import OwnedFd, ffi, lib

# perf_type_id
TYPE_HARDWARE = 0
TYPE_SOFTWARE = 1
TYPE_TRACEPOINT = 2
TYPE_HW_CACHE = 3
TYPE_RAW = 4
TYPE_BREAKPOINT = 5

# perf_sw_ids
SW_CPU_CLOCK = 0
SW_TASK_CLOCK = 1
SW_PAGE_FAULTS = 2
SW_CONTEXT_SWITCHES = 3
SW_CPU_MIGRATIONS = 4
SW_PAGE_FAULTS_MIN = 5
SW_PAGE_FAULTS_MAJ = 6
SW_ALIGNMENT_FAULTS = 7
SW_EMULATION_FAULTS = 8
SW_DUMMY = 9
SW_BPF_OUTPUT = 10

# perf_hw_id
HW_CPU_CYCLES = 0
HW_INSTRUCTIONS = 1
HW_CACHE_REFERENCES = 2
HW_CACHE_MISSES = 3
HW_BRANCH_INSTRUCTIONS = 4
HW_BRANCH_MISSES = 5
HW_BUS_CYCLES = 6

# sample_type bits
SAMPLE_IP = 1 << 0
SAMPLE_TID = 1 << 1
SAMPLE_TIME = 1 << 2
SAMPLE_CALLCHAIN = 1 << 5
SAMPLE_CPU = 1 << 7
SAMPLE_PERIOD = 1 << 8
SAMPLE_RAW = 1 << 10

# flag bits of the bitfield word at offset 40
FLAG_DISABLED = 1 << 0
FLAG_INHERIT = 1 << 1
FLAG_EXCLUDE_USER = 1 << 4
FLAG_EXCLUDE_KERNEL = 1 << 5
FLAG_EXCLUDE_HV = 1 << 6
FLAG_FREQ = 1 << 10
FLAG_WATERMARK = 1 << 14

# perf_event_open flags
PERF_FLAG_FD_NO_GROUP = 1 << 0
PERF_FLAG_FD_OUTPUT = 1 << 1
PERF_FLAG_PID_CGROUP = 1 << 2
PERF_FLAG_FD_CLOEXEC = 1 << 3

# record types in the mmap ring
RECORD_LOST = 2
RECORD_SAMPLE = 9

ATTR_SIZE = 112  # PERF_ATTR_SIZE_VER5

_ATTR = struct.Struct("<IIQQQQQIIQQQQIiQIHH")
assert _ATTR.size == ATTR_SIZE


class Attr(object):
    """A perf_event_attr.  ``config1``/``config2`` may be given as str (a kprobe function name
    or a uprobe path): its C string is kept alive by the object for perf_event_open."""

    __slots__ = ("type", "config", "sample_period", "sample_freq", "sample_type",
                 "read_format", "flags", "wakeup_events", "bp_type", "config1", "config2",
                 "_keep")

    def __init__(self, type, config=0, sample_period=0, sample_freq=0, sample_type=0,
                 flags=0, wakeup_events=0, config1=0, config2=0, read_format=0, bp_type=0):
        self.type = type
        self.config = config
        self.sample_period = sample_period
        self.sample_freq = sample_freq
        self.sample_type = sample_type
        self.read_format = read_format
        self.flags = flags
        self.wakeup_events = wakeup_events
        self.bp_type = bp_type
        self.config1 = config1
        self.config2 = config2
        self._keep = []

    def _u64(self, v):
        if isinstance(v, (str, bytes)):
            c = ffi.new("char[]", v.encode() if isinstance(v, str) else v)
            self._keep.append(c)
            return int(ffi.cast("uintptr_t", c))
        return v & 0xFFFFFFFFFFFFFFFF

    def pack(self):
        flags = self.flags
        period = self.sample_period
        if self.sample_freq:
            flags |= FLAG_FREQ
            period = self.sample_freq
        del self._keep[:]
        return bytearray(_ATTR.pack(
            self.type, ATTR_SIZE, self.config, period, self.sample_type, self.read_format,
            flags, self.wakeup_events, self.bp_type, self._u64(self.config1),
            self._u64(self.config2), 0, 0, 0, 0, 0, 0, 0, 0))


def tracepoint(event_id):
    """A tracepoint event: one per tracepoint is enough, its BPF program runs on every CPU."""
    return Attr(TYPE_TRACEPOINT, config=event_id, sample_period=1, wakeup_events=1,
                flags=FLAG_DISABLED)


def software(config, sample_period=0, sample_freq=0):
    """A software event (cpu-clock, page-faults, ...) sampled every period or at a frequency."""
    return Attr(TYPE_SOFTWARE, config=config, sample_period=sample_period,
                sample_freq=sample_freq, flags=FLAG_DISABLED)


def hardware(config, sample_period=0, sample_freq=0):
    return Attr(TYPE_HARDWARE, config=config, sample_period=sample_period,
                sample_freq=sample_freq, flags=FLAG_DISABLED)


def bpf_output():
    """The per-CPU event behind a perf_event_array slot for bpf_perf_event_output()."""
    return Attr(TYPE_SOFTWARE, config=SW_BPF_OUTPUT, sample_period=1, wakeup_events=1,
                sample_type=SAMPLE_RAW, flags=FLAG_DISABLED)


def probe_pmu(pmu_type, target, offset_or_addr=0, retprobe=False, retprobe_bit=0):
    """A kprobe or uprobe PMU event (Linux 4.17+).  ``pmu_type`` is from
    ``features.probe().kprobe_pmu`` / ``uprobe_pmu``; ``target`` is the kernel function name
    (kprobe; '' with an address in ``offset_or_addr``) or the binary's path (uprobe), and
    ``offset_or_addr`` the offset from it.  ``retprobe_bit`` comes from the PMU's
    ``format/retprobe`` file (``config:0`` on every kernel so far)."""
    return Attr(pmu_type, config=(1 << retprobe_bit) if retprobe else 0, sample_period=1,
                wakeup_events=1, flags=FLAG_DISABLED, config1=target or 0,
                config2=offset_or_addr)


_nr = None
_long = ffi.typeof("long")


def perf_event_open(attr, pid=-1, cpu=0, group_fd=-1, flags=PERF_FLAG_FD_CLOEXEC):
    """perf_event_open(2); returns the fd.  EPERM/EACCES become a PrivilegeError; other
    failures raise OSError naming the event."""
    global _nr
    if _nr is None:
        from tinytrace.kernel import arch
        _nr = ffi.cast(_long, arch.syscall_nr("perf_event_open"))
    raw = attr.pack() if isinstance(attr, Attr) else bytearray(attr)
    buf = ffi.from_buffer(raw)
    c = ffi.cast
    r = lib.syscall(_nr, c(_long, buf), c(_long, pid), c(_long, cpu), c(_long, group_fd),
                    c(_long, flags))
    if r < 0:
        err = ffi.errno
        if err in (_errno.EPERM, _errno.EACCES):
            from tinytrace import privileges
            raise privileges.error("perf_event_open()", err)
        desc = ""
        if isinstance(attr, Attr):
            desc = " (type %d, config %d, cpu %d)" % (attr.type, attr.config, cpu)
        raise OSError(err, "perf_event_open()%s: %s" % (desc, os.strerror(err)))
    return r


def _ioctls():
    from tinytrace.kernel import arch
    return {
        "enable": arch.ioc("none", "$", 0, 0),
        "disable": arch.ioc("none", "$", 1, 0),
        "refresh": arch.ioc("none", "$", 2, 0),
        "reset": arch.ioc("none", "$", 3, 0),
        "id": arch.ioc("r", "$", 7, 8),
        "set_bpf": arch.ioc("w", "$", 8, 4),
    }


_IOC = None


def ioctl_request(name):
    global _IOC
    if _IOC is None:
        _IOC = _ioctls()
    return _IOC[name]


def ioctl(fd, name, arg=0):
    from tinytrace.kernel import libc
    return libc.ioctl(fd, ioctl_request(name), arg)


def enable(fd):
    ioctl(fd, "enable")


def disable(fd):
    ioctl(fd, "disable")


def set_bpf(fd, prog_fd):
    ioctl(fd, "set_bpf", prog_fd)


_page = None


def page_size():
    global _page
    if _page is None:
        _page = os.sysconf("SC_PAGE_SIZE")
    return _page


class PerfEvent(OwnedFd):
    """An open perf event (its fd).  ``cpu`` and ``pid`` are what it was opened with."""

    def __init__(self, fd, cpu=-1, pid=-1, attr=None):
        OwnedFd.__init__(self, fd)
        self.cpu = cpu
        self.pid = pid
        self.attr = attr

    @classmethod
    def open(cls, attr, pid=-1, cpu=0, group_fd=-1):
        return cls(perf_event_open(attr, pid, cpu, group_fd), cpu=cpu, pid=pid, attr=attr)

    def enable(self):
        enable(self.fd)

    def disable(self):
        disable(self.fd)
