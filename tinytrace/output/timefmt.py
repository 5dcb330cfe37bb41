"""Time columns and bpftrace's time formatting.

BCC tools:

- ``-T`` prints wall-clock time as ``%H:%M:%S`` (``hms()``), usually in a ``TIME`` column;
- ``-t`` prints seconds since the first event (``TIME(s)``); ``Elapsed`` remembers the
  first timestamp and gives the offset of each later one in seconds.

bpftrace:

- ``time()`` prints the current local time with ``%H:%M:%S\\n``, ``time(fmt)`` with ``fmt``
  and no newline added (``bpftrace_time(fmt=None)``);
- ``strftime(fmt, nsecs)`` formats a timestamp in nanoseconds since boot
  (``strftime_ns(fmt, epoch_ns)`` after ``boot_ns_to_epoch_ns``); besides C's strftime
  conversions it knows ``%f``, the microseconds (6 digits), as bpftrace does.

BPF timestamps (``bpf_ktime_get_ns``) count from boot on CLOCK_MONOTONIC;
``clock_offset_ns()`` is the wall-clock time of its zero, measured once.
"""
import time as _time

MONOTONIC = "monotonic"
BOOTTIME = "boottime"


def hms(t=None):
    """``HH:MM:SS`` local time of ``t`` (seconds since the epoch; now when None)."""
    return _time.strftime("%H:%M:%S", _time.localtime(t))


class Elapsed(object):
    """Seconds since the first timestamp seen (BCC's ``-t``/``TIME(s)`` column).

    Timestamps are nanoseconds (BPF clocks); ``Elapsed()(ts)`` returns a float."""

    __slots__ = ("first",)

    def __init__(self, first=None):
        self.first = first

    def __call__(self, ts_ns):
        if self.first is None:
            self.first = ts_ns
        return (ts_ns - self.first) / 1e9


def clock_offset_ns(clock=MONOTONIC):
    """CLOCK_REALTIME minus ``clock`` ("monotonic" or "boottime"), in nanoseconds: add it
    to a BPF timestamp to get nanoseconds since the epoch."""
    cid = _time.CLOCK_MONOTONIC if clock == MONOTONIC else getattr(_time, "CLOCK_BOOTTIME", 7)
    # read the wall clock between two reads of the other clock and take the middle
    a = _time.clock_gettime_ns(cid)
    r = _time.clock_gettime_ns(_time.CLOCK_REALTIME)
    b = _time.clock_gettime_ns(cid)
    return r - (a + b) // 2


def boot_ns_to_epoch_ns(ns, clock=MONOTONIC, offset=None):
    """A BPF timestamp (ns on ``clock``) as nanoseconds since the epoch."""
    if offset is None:
        offset = clock_offset_ns(clock)
    return ns + offset


def _expand_f(fmt, usec):
    """Replace ``%f`` (but not ``%%f``) by the microseconds."""
    if "%f" not in fmt:
        return fmt
    out = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c == "%" and i + 1 < n:
            nxt = fmt[i + 1]
            out.append("%06d" % usec if nxt == "f" else c + nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def strftime_ns(fmt, epoch_ns, utc=False):
    """bpftrace's ``strftime``: C strftime of the local time, plus ``%f`` (microseconds)."""
    sec, rem = divmod(int(epoch_ns), 1000000000)
    tm = _time.gmtime(sec) if utc else _time.localtime(sec)
    return _time.strftime(_expand_f(fmt, rem // 1000), tm)


def bpftrace_time(fmt=None, t=None):
    """What bpftrace's ``time(fmt)`` prints: ``%H:%M:%S\\n`` by default."""
    if fmt is None:
        fmt = "%H:%M:%S\n"
    if t is None:
        t = _time.time_ns()
    else:
        t = int(t * 1e9)
    return strftime_ns(fmt, t)
