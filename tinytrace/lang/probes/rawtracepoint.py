"""rawtracepoint:NAME (alias rt:), also rawtracepoint:CATEGORY:NAME.

The program sees the tracepoint's C arguments as an array of u64 (``arg0`` ... ``arg11``),
before the kernel formats any record, which makes it the cheapest kind of tracepoint.

Where the kernel has BTF, ``args`` names those arguments with their C types, as bpftrace
does: ``rawtracepoint:sched_switch { @[args.prev->pid] = count(); }`` (``args->prev``
too).  The names and types come from the function the kernel generates for each
tracepoint (``__probestub_<name>``, 6.5+; ``__traceiter_<name>``, 5.10+;
``__bpf_trace_<name>``), each argument one u64 slot of the context.  Without BTF (the
armhf guests) ``args`` is refused with the field that needs it; ``argN`` and the
tracepoint provider's ``args`` work everywhere.
"""
from tinytrace.lang.probes.base import Provider, Target, has_wildcard, wildcard_match
from tinytrace.lang.source import LangError
from tinytrace.lang.suggest import hint
from tinytrace.lang.types import RecordField, RecordT, UINT64

_PROTO_FUNCS = ("__probestub_", "__traceiter_", "__bpf_trace_")


class BtfArgs(RecordT):
    """``args`` of a raw tracepoint: one field per C argument, 8 bytes apart.  ``why`` is
    set (and there are no fields) when the arguments cannot be known."""
    __slots__ = ("why",)

    def __init__(self, name, fields, why=None):
        RecordT.__init__(self, name, fields, 8 * max(len(fields), 1))
        self.why = why


def btf_args(env, name, probe):
    """The ``BtfArgs`` of raw tracepoint ``name``."""
    b = env.btf()
    if b is None:
        return BtfArgs(probe, [], "needs the kernel's BTF (/sys/kernel/btf/vmlinux), which "
                       "this system does not have; use arg0, arg1 ... or the tracepoint's "
                       "args (tracepoint:CATEGORY:%s)" % name)
    proto = None
    for prefix in _PROTO_FUNCS:
        proto = b.func_proto(prefix + name)
        if proto is not None:
            break
    if proto is None:
        return BtfArgs(probe, [], "is not described by the kernel's BTF (no %s%s); use arg0, "
                       "arg1 ..." % (_PROTO_FUNCS[1], name))
    from tinytrace.lang import btftypes
    fields = []
    for i, m in enumerate(proto.params[1:]):      # the first is the hidden void *__data
        ty = btftypes.lang_type(b, m.type_id)
        if ty is None or not m.name:
            continue
        if ty.size > 8 or not ty.scalar:
            continue        # a struct passed by value does not fit a slot
        fields.append(RecordField(m.name, 8 * i, ty, None, 8))
    return BtfArgs(probe, fields)

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
        return tuple("arg%d" % i for i in range(MAX_ARGS)) + ("args",)

    def builtin_type(self, name, target, env):
        if name.startswith("arg") and name[3:].isdigit() and int(name[3:]) < MAX_ARGS:
            return UINT64
        if name == "args":
            return btf_args(env, target.parts[0], target.name)
        return None

    def group_key(self, target, used):
        fields = used.get("args")
        if not fields:
            return ()
        rec = target.info
        if "*" in fields or not isinstance(rec, RecordT):
            return (target.name,)
        return tuple((f, rec.fields[f].offset, rec.fields[f].ty) for f in sorted(fields)
                     if f in rec.fields)

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
