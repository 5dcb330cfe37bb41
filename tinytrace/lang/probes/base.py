"""The provider interface and the attach target value every provider produces."""
import fnmatch

from tinytrace.lang.source import LangError


def has_wildcard(text):
    return any(c in text for c in "*?[")


def wildcard_match(names, pattern):
    """The names matching a shell-style pattern, in sorted order."""
    if not has_wildcard(pattern):
        return [pattern] if pattern in names else []
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


class Target:
    """One concrete place a program is attached: ``name`` is the full probe name as
    ``probe`` prints it (``tracepoint:sched:sched_switch``); ``parts`` are the provider's
    words; ``info`` is provider data (a record type, an event id, a perf_event_attr...)."""

    __slots__ = ("provider", "name", "parts", "info")

    def __init__(self, provider, name, parts, info=None):
        self.provider = provider
        self.name = name
        self.parts = tuple(parts)
        self.info = info

    def __repr__(self):
        return "Target(%s)" % self.name


class Provider:
    """Base class: override what your kind of probe needs."""

    prog_type = None          # BPF program type name (tinytrace.kernel.progs)
    supported = True
    ctx_is_record = False     # ctx points to a tracepoint record (common_type at offset 0)
    per_target_programs = False
    user_space = False        # plain addresses are the traced process's (str(arg0) ...)
    emit_builtin = None       # emit_builtin(gen, name) -> register, for provider builtins

    def __init__(self, name):
        self.name = name

    # -- compile time ----------------------------------------------------------------------
    def parse(self, parts, loc):
        """Check the words after the provider name; return a spec for ``expand``."""
        if parts:
            raise LangError("%s takes no arguments (write just '%s')" % (self.name, self.name),
                            loc)
        return ()

    def expand(self, spec, env, loc):
        """The concrete targets of a parsed probe name."""
        return [Target(self, self.name, spec)]

    def builtin_type(self, name, target, env):
        """The type of provider builtin ``name`` at ``target``; None if not available."""
        return None

    def builtin_names(self):
        """Provider builtins, for "did you mean" and availability messages."""
        return ()

    def group_key(self, target, used):
        """Targets with the same key share one program.  ``used`` is the set of provider
        builtins the probe reads (and 'probe' when the probe builtin is used)."""
        return ()

    def probe_names(self, targets):
        """Names that ``probe`` may take in a program attached to ``targets``."""
        return [t.name for t in targets]

    def func_name(self, target):
        """What the ``func`` builtin is at ``target`` (providers that have it)."""
        return target.name

    def cookies_ok(self, comp):
        """Whether one program on several targets can tell them apart by the attachment's
        cookie (``probe``, ``func``)."""
        return False

    def programs(self, targets, used, comp):
        """The programs one group of targets gets: ``[(targets, load options)]``."""
        ids = "probe" in used or "func" in used
        if ids and len(set(t.name for t in targets)) > 1 and not self.cookies_ok(comp):
            return [([t], {}) for t in targets]
        return [(targets, {})]

    # -- run time --------------------------------------------------------------------------
    def attach(self, session, prog, targets, env, cookies=None):
        raise NotImplementedError

    def list(self, pattern, env):
        """Probe names for ``-l`` matching ``pattern`` (a shell pattern on the full name)."""
        return []
