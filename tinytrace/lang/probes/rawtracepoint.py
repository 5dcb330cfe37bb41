"""rawtracepoint:NAME (alias rt:), also rawtracepoint:CATEGORY:NAME.

The program sees the tracepoint's C arguments as an array of u64 (``arg0`` ... ``arg11``),
before the kernel formats any record, which makes it the cheapest kind of tracepoint.
"""
from tinytrace.lang.probes.base import Provider, Target, has_wildcard, wildcard_match
from tinytrace.lang.source import LangError
from tinytrace.lang.suggest import hint
from tinytrace.lang.types import UINT64

MAX_ARGS = 12
# tracefs event groups that are not kernel tracepoints: syscall events are built on the
# raw_syscalls:sys_enter/sys_exit tracepoints, ftrace events on the function tracer.
NOT_RAW = frozenset(("syscalls", "ftrace"))


class RawTracepoint(Provider):
    prog_type = "raw_tracepoint"

    def parse(self, parts, loc):
        if len(parts) == 2 and parts[0] and parts[1]:
            return tuple(parts)
        if len(parts) != 1 or not parts[0]:
            raise LangError("a raw tracepoint is written rawtracepoint:NAME "
                            "(e.g. rawtracepoint:sched_switch)", loc)
        return ("*", parts[0])

    def expand(self, spec, env, loc):
        cat, name = spec
        events = env.tracepoints()
        names = set()
        for c in wildcard_match(events, cat):
            if c not in NOT_RAW:
                names.update(events[c])
        found = wildcard_match(names, name)
        if not found:
            if has_wildcard(name):
                raise LangError("no raw tracepoint matches '%s'" % name, loc)
            for c in NOT_RAW:
                if name in events.get(c, ()):
                    raise LangError("%s is a %s event, not a raw tracepoint; use "
                                    "tracepoint:%s:%s (or rawtracepoint:sys_enter/sys_exit)"
                                    % (name, c, c, name), loc)
            raise LangError("unknown raw tracepoint '%s'%s" % (name, hint(name, names)), loc)
        return [Target(self, "rawtracepoint:%s" % n, (n,)) for n in found]

    def builtin_names(self):
        return tuple("arg%d" % i for i in range(MAX_ARGS))

    def builtin_type(self, name, target, env):
        if name.startswith("arg") and name[3:].isdigit() and int(name[3:]) < MAX_ARGS:
            return UINT64
        return None

    def attach(self, session, prog, targets, env, cookies=None):
        from tinytrace.kernel import attach
        return [attach.raw_tracepoint(prog, t.parts[0]) for t in targets]

    def list(self, pattern, env):
        import fnmatch
        out = set()
        events = env.tracepoints()
        for c in events:
            if c in NOT_RAW:
                continue
            for n in events[c]:
                full = "rawtracepoint:%s" % n
                if fnmatch.fnmatchcase(full, pattern):
                    out.add(full)
        return sorted(out)
