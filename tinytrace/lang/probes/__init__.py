"""Probe providers: one small module per kind of probe, all with the same hooks.

A provider turns the text of a probe name into concrete attach targets, says which
builtins mean something there and what type they have, tells the code generator how to
read them, and attaches a loaded program.  The hooks (see ``base.Provider``):

- ``parse(parts, loc)``          check the words after ``provider:`` and return a spec
- ``expand(spec, env, loc)``     the concrete ``Target`` list (wildcards expanded), or a
                                 ``LangError`` with a "did you mean" for unknown names
- ``builtin_type(name, target, env)`` the type of a provider builtin (``args``, ``argN``,
                                 ``retval``, ``func``...) or None when it is not available
- ``emit_builtin(gen, name)``   code for those builtins (``tinytrace.lang.codegen``; the
                                 program's targets are ``gen.targets``)
- ``group_key(target, used)``    targets with equal keys share one BPF program
- ``programs(targets, used, comp)`` how one group becomes programs: ``[(targets, load
                                 options)]`` (one program per target when ``probe``/``func``
                                 must tell targets apart and no cookie can; kprobe_multi /
                                 uprobe_multi load options)
- ``attach(session, prog, targets, env)`` attach a loaded program to its targets
- ``list(pattern, env)``         probe names for ``-l``

Providers are found by name or alias (``t`` is ``tracepoint``) through ``find``; modules
are imported only when a provider is used, so ``-l`` and start-up stay cheap.  Adding a
kind of probe is adding a module and a line to ``_REGISTRY``.
"""

# name -> (module, class).  Aliases map to the canonical name.
_REGISTRY = {
    "BEGIN": ("special", "Begin"),
    "END": ("special", "End"),
    "tracepoint": ("tracepoint", "Tracepoint"),
    "rawtracepoint": ("rawtracepoint", "RawTracepoint"),
    "interval": ("timers", "Interval"),
    "profile": ("timers", "Profile"),
    "software": ("perfevents", "Software"),
    "hardware": ("perfevents", "Hardware"),
    "kprobe": ("kprobe", "Kprobe"),
    "kretprobe": ("kprobe", "Kretprobe"),
    "uprobe": ("uprobe", "Uprobe"),
    "uretprobe": ("uprobe", "Uretprobe"),
    "usdt": ("usdt", "Usdt"),
    "kfunc": ("kfunc", "Kfunc"),
    "kretfunc": ("kfunc", "Kretfunc"),
    "watchpoint": ("watchpoint", "Watchpoint"),
    "asyncwatchpoint": ("watchpoint", "Watchpoint"),
    "iter": ("iter", "Iter"),
}
ALIASES = {
    "t": "tracepoint", "rt": "rawtracepoint", "i": "interval", "p": "profile",
    "s": "software", "h": "hardware", "k": "kprobe", "kr": "kretprobe", "u": "uprobe",
    "ur": "uretprobe", "U": "usdt", "f": "kfunc", "fentry": "kfunc", "fr": "kretfunc",
    "fexit": "kretfunc", "w": "watchpoint", "aw": "asyncwatchpoint", "it": "iter",
    "begin": "BEGIN", "end": "END",
}
_instances = {}


def canonical(name):
    """The canonical provider name for ``name`` or an alias of it; None if unknown."""
    if name in _REGISTRY:
        return name
    return ALIASES.get(name)


def names():
    """Every provider name and alias (for suggestions)."""
    return sorted(set(_REGISTRY) | set(ALIASES))


def find(name):
    """The provider object for ``name`` (or an alias), or None."""
    canon = canonical(name)
    if canon is None:
        return None
    inst = _instances.get(canon)
    if inst is None:
        import importlib
        module, cls = _REGISTRY[canon]
        mod = importlib.import_module("tinytrace.lang.probes." + module)
        inst = getattr(mod, cls)(canon)
        _instances[canon] = inst
    return inst


def split_name(text):
    """Split a probe name at its colons, keeping quoted parts (``"a:b"``) whole and
    dropping the quotes.  ``uprobe:/bin/sh:main`` -> ['uprobe', '/bin/sh', 'main']."""
    parts = []
    cur = []
    quoted = False
    for c in text:
        if c == '"':
            quoted = not quoted
        elif c == ":" and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts
