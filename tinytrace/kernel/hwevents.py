"""Hardware events (PERF_TYPE_HARDWARE): cycles, instructions, cache misses ... counted by
the CPU's performance monitoring unit, sampled on every CPU.

Whether a CPU PMU exists is found by trying: a counting (non-sampling) ``cpu-cycles`` event
on this process.  Virtual machines usually expose none (``/sys/bus/event_source/devices``
then lists only breakpoint, software, tracepoint, uprobe and the like), and some PMUs lack
some of the generic events (``ref-cycles`` on ARM).  Both cases get a one-line message that
names the event and suggests a software event instead.

API for the language (``hardware:EVENT[:COUNT]`` probes)::

    hwevents.config("cache-misses")              # -> perf_hw_id (aliases: cycles, branches)
    hwevents.check("cache-misses")               # raise HardwareUnavailable early
    g = hwevents.attach(prog, "cache-misses", period=1000000)   # attach.Group, one per CPU

The program type is "perf_event"; its context is ``struct bpf_perf_event_data``
(``regs.kernel().size`` bytes of registers, then sample_period and addr).
"""
import errno as _errno
import os

from tinytrace.errors import KernelError, UserError

# generic hardware event names (perf's and bpftrace's) -> perf_hw_id
EVENTS = {
    "cpu-cycles": 0, "instructions": 1, "cache-references": 2, "cache-misses": 3,
    "branch-instructions": 4, "branch-misses": 5, "bus-cycles": 6, "frontend-stalls": 7,
    "backend-stalls": 8, "ref-cycles": 9,
}
ALIASES = {"cycles": "cpu-cycles", "branches": "branch-instructions",
           "stalled-cycles-frontend": "frontend-stalls",
           "stalled-cycles-backend": "backend-stalls"}
DEVICES = "/sys/bus/event_source/devices"
_NOT_THERE = (_errno.ENOENT, _errno.EOPNOTSUPP, _errno.ENODEV, _errno.EINVAL)


class HardwareUnavailable(KernelError):
    """No CPU PMU, or the PMU does not count this event."""


def canonical(name):
    """The generic name of event ``name`` (aliases resolved); UserError when unknown."""
    n = ALIASES.get(name, name)
    if n not in EVENTS:
        raise UserError("unknown hardware event %r (known: %s)" % (
            name, ", ".join(sorted(list(EVENTS) + list(ALIASES)))))
    return n


def config(name):
    return EVENTS[canonical(name)]


def event_sources():
    """The PMU names the kernel lists in /sys/bus/event_source/devices."""
    try:
        return sorted(os.listdir(DEVICES))
    except OSError:
        return []


_probed = {}


def _try(cfg):
    """0 when a counting event for ``cfg`` opens on this process, else the errno."""
    if cfg in _probed:
        return _probed[cfg]
    from tinytrace.kernel import perf
    attr = perf.Attr(perf.TYPE_HARDWARE, config=cfg,
                     flags=perf.FLAG_DISABLED | perf.FLAG_EXCLUDE_KERNEL | perf.FLAG_EXCLUDE_HV)
    try:
        fd = perf.perf_event_open(attr, pid=0, cpu=-1)
        os.close(fd)
        err = 0
    except OSError as e:
        err = e.errno
    _probed[cfg] = err
    return err


def has_pmu():
    """True when the CPU counts cycles for us (a hardware PMU is there)."""
    return _try(EVENTS["cpu-cycles"]) == 0


def _unavailable(name, probe):
    devs = event_sources()
    if not has_pmu():
        listed = ", ".join(devs) or "nothing"
        return HardwareUnavailable(
            "%s: this machine exposes no hardware performance counters (no CPU PMU in %s, "
            "only: %s; usual in virtual machines): use a software event instead, such as "
            "software:cpu-clock or profile:hz:99" % (probe, DEVICES, listed))
    cpu = [d for d in devs if d not in ("breakpoint", "software", "tracepoint", "kprobe",
                                        "uprobe", "msr", "power")]
    return HardwareUnavailable("%s: this CPU's PMU (%s) does not count %s" % (
        probe, ", ".join(cpu) or "?", canonical(name)))


def check(name, probe=None):
    """Raise ``HardwareUnavailable`` when event ``name`` cannot be counted here."""
    probe = probe or "hardware:%s" % name
    err = _try(config(name))
    if err in _NOT_THERE:
        raise _unavailable(name, probe)


def attach(prog, name, period=None, freq=None, cpus=None, link=None):
    """Attach a perf_event program to hardware event ``name`` on every online CPU (or
    ``cpus``), called every ``period`` events (or ``freq`` times a second)."""
    from tinytrace.kernel import attach as att, perf
    cfg = config(name)
    probe = "hardware:%s%s" % (canonical(name), ":%d" % period if period else "")
    if (period is None) == (freq is None):
        raise ValueError("give exactly one of period and freq")
    check(name, probe)
    attr = perf.hardware(cfg, sample_period=period or 0, sample_freq=freq or 0)
    try:
        return att.per_cpu(prog, attr, cpus, target=probe, link=link)
    except OSError as e:
        if e.errno in _NOT_THERE:
            raise _unavailable(name, probe)
        raise KernelError("%s: %s" % (probe, os.strerror(e.errno)))
