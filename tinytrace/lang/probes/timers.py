"""interval:UNIT:N and profile:UNIT:N (also ``interval:1s``, ``profile:hz:99``).

Both are software cpu-clock perf events running a perf_event program.  ``interval`` fires
on one CPU at a fixed period (a timer for the script); ``profile`` fires on every CPU (a
sampler, usually with ``kstack``/``ustack``).
"""
import re

from tinytrace.lang.probes.base import Provider, Target
from tinytrace.lang.source import LangError

_UNIT_NS = {"s": 10 ** 9, "sec": 10 ** 9, "ms": 10 ** 6, "us": 10 ** 3, "ns": 1}
_SUFFIXED = re.compile(r"^(\d+)(s|ms|us|ns|hz)$")


def _number(text, loc, what):
    if not text.isdigit() or int(text) == 0:
        raise LangError("%s needs a positive whole number, not '%s'" % (what, text), loc)
    return int(text)


class _Timer(Provider):
    prog_type = "perf_event"
    example = None
    all_cpus = False

    def parse(self, parts, loc):
        if len(parts) == 1 and _SUFFIXED.match(parts[0]):
            n, unit = _SUFFIXED.match(parts[0]).groups()
            parts = [unit, n]
        if len(parts) != 2 or not parts[0]:
            raise LangError("%s probes are written %s" % (self.name, self.example), loc)
        unit, count = parts
        n = _number(count, loc, "%s:%s:N" % (self.name, unit))
        if unit == "hz":
            return ("freq", n, "%s:hz:%d" % (self.name, n))
        if unit not in _UNIT_NS:
            raise LangError("unknown %s unit '%s' (use s, ms, us, ns or hz)"
                            % (self.name, unit), loc)
        return ("period", n * _UNIT_NS[unit], "%s:%s:%d" % (self.name, unit, n))

    def expand(self, spec, env, loc):
        return [Target(self, spec[2], spec[:2])]

    def list(self, pattern, env):
        import fnmatch
        forms = ["%s:%s:" % (self.name, u) for u in ("hz", "s", "ms", "us")]
        return [f for f in forms if fnmatch.fnmatchcase(f, pattern)]

    def attach(self, session, prog, targets, env, cookies=None):
        from tinytrace.kernel import arch, attach
        out = []
        for t in targets:
            mode, value = t.parts
            if self.all_cpus:
                if mode == "freq":
                    out.append(attach.profile(prog, frequency=value))
                else:
                    out.append(attach.profile(prog, period_ns=value))
            else:
                period = value if mode == "period" else max(1, 10 ** 9 // value)
                out.append(attach.interval(prog, period, cpu=arch.online_cpus()[0]))
        return out


class Interval(_Timer):
    example = "interval:s:N, interval:ms:N, interval:us:N or interval:hz:N"


class Profile(_Timer):
    example = "profile:hz:N, profile:s:N, profile:ms:N or profile:us:N"
    all_cpus = True
