"""software:EVENT[:COUNT] and hardware:EVENT[:COUNT]: perf events that run the program
every COUNT occurrences, on every CPU.

Hardware events need the CPU's performance monitoring unit: where there is none (most
virtual machines) or it lacks the event, the probe is refused at compile time with one
line naming a software event to use instead (``tinytrace.kernel.hwevents``)."""
from tinytrace.lang.probes.base import Provider, Target
from tinytrace.lang.source import LangError
from tinytrace.lang.suggest import hint

PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1

# name -> (config, default count); aliases below.
SOFTWARE = {
    "cpu-clock": (0, 1000000), "task-clock": (1, 1000000), "page-faults": (2, 100),
    "context-switches": (3, 1000), "cpu-migrations": (4, 1), "minor-faults": (5, 100),
    "major-faults": (6, 1), "alignment-faults": (7, 1), "emulation-faults": (8, 1),
    "dummy": (9, 1), "bpf-output": (10, 1),
}
SOFTWARE_ALIASES = {"cpu": "cpu-clock", "faults": "page-faults", "cs": "context-switches",
                    "migrations": "cpu-migrations"}
HARDWARE = {
    "cpu-cycles": (0, 1000000), "instructions": (1, 1000000),
    "cache-references": (2, 1000000), "cache-misses": (3, 1000000),
    "branch-instructions": (4, 100000), "branch-misses": (5, 100000),
    "bus-cycles": (6, 100000), "frontend-stalls": (7, 1000000),
    "backend-stalls": (8, 1000000), "ref-cycles": (9, 1000000),
}
HARDWARE_ALIASES = {"cycles": "cpu-cycles", "branches": "branch-instructions"}


class _PerfEvents(Provider):
    prog_type = "perf_event"
    table = None
    aliases = None
    perf_type = None

    def parse(self, parts, loc):
        if len(parts) not in (1, 2) or not parts[0]:
            raise LangError("%s probes are written %s:EVENT or %s:EVENT:COUNT"
                            % (self.name, self.name, self.name), loc)
        event = self.aliases.get(parts[0], parts[0])
        if event not in self.table:
            raise LangError("unknown %s event '%s'%s" % (
                self.name, parts[0], hint(parts[0], list(self.table) + list(self.aliases))),
                loc)
        config, count = self.table[event]
        if len(parts) == 2:
            if not parts[1].isdigit() or int(parts[1]) == 0:
                raise LangError("the count of %s:%s must be a positive whole number, not '%s'"
                                % (self.name, parts[0], parts[1]), loc)
            count = int(parts[1])
        return (event, config, count)

    def expand(self, spec, env, loc):
        event, config, count = spec
        name = "%s:%s:%d" % (self.name, event, count)
        if self.perf_type == PERF_TYPE_HARDWARE:
            why = env.hardware_unavailable(event, name)
            if why:
                raise LangError(why, loc)
        return [Target(self, name, (config, count), event)]

    def list(self, pattern, env):
        import fnmatch
        return ["%s:%s:" % (self.name, e) for e in sorted(self.table)
                if fnmatch.fnmatchcase("%s:%s:" % (self.name, e), pattern)]

    def attach(self, session, prog, targets, env, cookies=None):
        from tinytrace.kernel import attach, perf
        out = []
        for t in targets:
            config, count = t.parts
            if self.perf_type == PERF_TYPE_SOFTWARE:
                attr = perf.software(config, sample_period=count)
                out.append(attach.per_cpu(prog, attr, target=t.name))
            else:
                from tinytrace.kernel import hwevents
                out.append(hwevents.attach(prog, t.info, period=count))
        return out


class Software(_PerfEvents):
    table = SOFTWARE
    aliases = SOFTWARE_ALIASES
    perf_type = PERF_TYPE_SOFTWARE


class Hardware(_PerfEvents):
    table = HARDWARE
    aliases = HARDWARE_ALIASES
    perf_type = PERF_TYPE_HARDWARE
