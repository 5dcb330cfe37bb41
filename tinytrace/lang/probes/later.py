"""Probe kinds the language parses and checks but cannot attach yet: iter.

Their names are checked for shape here so that a script using them gets the same errors it
will get once they work, and then one clear "not supported here yet" at the probe name.
Their builtins (``argN``, ``retval``, ``func``) are declared so that using one in a
tracepoint says where it belongs.
"""
from tinytrace.lang.probes.base import Provider
from tinytrace.lang.source import LangError
from tinytrace.lang.types import INT64, UINT64


class _Later(Provider):
    supported = False
    shapes = ()           # accepted part counts
    form = ""
    builtins = ()

    def parse(self, parts, loc):
        if len(parts) not in self.shapes or not all(parts):
            raise LangError("%s probes are written %s" % (self.name, self.form), loc)
        return tuple(parts)

    def expand(self, spec, env, loc):
        raise LangError("%s probes are not supported here yet; tracepoints, raw tracepoints, "
                        "kprobes, uprobes, usdt, profile, interval, software and hardware "
                        "events are (see tinytrace -l)" % self.name, loc)

    def builtin_names(self):
        return self.builtins

    def builtin_type(self, name, target, env):
        if name not in self.builtins:
            return None
        if name == "retval":
            return INT64
        return UINT64


class Iter(_Later):
    shapes = (1, 2)
    form = "iter:NAME"
    builtins = ()
