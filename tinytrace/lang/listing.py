"""``-l [PATTERN]``: list probe names, optionally with the fields of tracepoints (``-v``).

Patterns are shell globs on the full probe name (``tracepoint:sched:*``).  A pattern may
use a provider alias (``t:sched:*``); a pattern without a colon matches anywhere
(``*sleep*``).  Kernel functions (``kprobe:vfs_*``) come from available_filter_functions;
the functions of a file and its USDT probes are listed when the pattern names the file
(``uprobe:/bin/bash:*``, ``usdt:/usr/bin/python3.11:*``), the kernel's iterators when it
names ``iter:`` (from BTF).  The compiler is not imported.
"""
import fnmatch
import sys

from tinytrace.lang import probes

_LISTED = ("BEGIN", "END", "hardware", "interval", "kprobe", "profile", "rawtracepoint",
           "software", "tracepoint", "uprobe", "usdt")
# listed only when the pattern names them (their names come from the kernel's BTF)
_NAMED = ("iter",)


def normalise(pattern):
    """The pattern with an alias provider expanded and a colon-less pattern made to match
    anywhere in the name."""
    if not pattern:
        return "*"
    head, sep, rest = pattern.partition(":")
    if sep:
        canon = probes.canonical(head)
        if canon is not None:
            return canon + ":" + rest
        return pattern
    if any(c in pattern for c in "*?["):
        return "*:" + pattern if pattern not in ("*",) else "*"
    return "*" + pattern + "*"


def probe_names(pattern, env):
    pat = normalise(pattern)
    head = pat.partition(":")[0]
    out = []
    for name in _LISTED:
        if ":" in pat and not fnmatch.fnmatchcase(name, head):
            continue
        prov = probes.find(name)
        out.extend(prov.list(pat, env))
    for name in _NAMED:
        if head == name:
            out.extend(probes.find(name).list(pat, env))
    return out


def field_lines(name, env):
    """The ``-v`` lines for one tracepoint: its fields as C declarations."""
    if not name.startswith("tracepoint:"):
        return []
    _, cat, ev = name.split(":", 2)
    fmt = env.tracepoint_format(cat, ev)
    lines = []
    for f in fmt.fields:
        decl = f.type
        if f.array_len and not (f.data_loc or f.rel_loc):
            lines.append("    %s %s[%d]" % (decl, f.name, f.array_len))
        else:
            lines.append("    %s %s" % (decl, f.name))
    return lines


def main(pattern, verbose, env, out=None):
    out = out or sys.stdout
    names = probe_names(pattern, env)
    from tinytrace.output.escape import escape
    for name in names:
        out.write(escape(name) + "\n")
        if verbose:
            for line in field_lines(name, env):
                out.write(escape(line) + "\n")
    out.flush()
    return 0
