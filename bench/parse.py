"""Parsers for what the harness reads from other programs (pure functions; tested).

- ``python -X importtime`` output,
- ``dpkg-query`` output: package sizes and the installed dependency closure,
- a tinytrace phase report (``bench/phases.py``) is JSON and needs no parser.
"""
import re

_IMPORT_RE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S.*)$")


def parse_importtime(text):
    """[(self_us, cumulative_us, depth, module)] in the order Python printed them (a module
    is printed after the modules it imported)."""
    out = []
    for line in text.splitlines():
        m = _IMPORT_RE.match(line)
        if not m:
            continue
        indent = len(m.group(3)) - 1
        out.append((int(m.group(1)), int(m.group(2)), max(0, indent // 2), m.group(4).strip()))
    return out


def importtime_summary(entries, top=10):
    """{total_us, top_cumulative: [(module, cum_us)], top_self: [(module, self_us)],
    tinytrace_us}.  ``total_us`` sums the top-level imports (depth 0); ``tinytrace_us``
    those of tinytrace's own modules at the top level of their import chain."""
    total = sum(cum for _, cum, depth, _ in entries if depth == 0)
    tops = sorted(((mod, cum) for _, cum, depth, mod in entries if depth == 0),
                  key=lambda x: -x[1])[:top]
    selfs = sorted(((mod, s) for s, _, _, mod in entries), key=lambda x: -x[1])[:top]
    # tinytrace's share: cumulative time of tinytrace modules not imported by another
    # tinytrace module (so nothing is counted twice)
    tt = 0
    stack = []  # (depth, is_tinytrace) of enclosing imports, innermost last
    # entries come children-first; walk them in reverse so parents precede children
    for s, cum, depth, mod in reversed(entries):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        mine = mod == "tinytrace" or mod.startswith("tinytrace.")
        if mine and not any(t for _, t in stack):
            tt += cum
        stack.append((depth, mine))
    return {"total_us": total, "top_cumulative": tops, "top_self": selfs, "tinytrace_us": tt}


# -- dpkg -------------------------------------------------------------------------------

DPKG_FORMAT = ("${Package}\\t${Status}\\t${Installed-Size}\\t${Pre-Depends}\\t${Depends}"
               "\\t${Provides}\\n")


def _names(field):
    """'a (>= 1) | b:any, c' -> [['a', 'b'], ['c']]"""
    groups = []
    for group in field.split(","):
        alts = []
        for alt in group.split("|"):
            alt = re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", alt).strip()
            if not alt:
                continue
            alts.append(alt.split(":", 1)[0])
        if alts:
            groups.append(alts)
    return groups


def parse_dpkg(text):
    """{package: {size_kb, deps: [[alternatives]], provides: [names]}} for installed
    packages, from ``dpkg-query -W -f=DPKG_FORMAT`` output."""
    pkgs = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 6:
            continue
        name, status, size, pre, deps, provides = parts[:6]
        if not status.endswith(" installed"):
            continue
        name = name.split(":", 1)[0]
        try:
            kb = int(size)
        except ValueError:
            kb = 0
        entry = pkgs.setdefault(name, {"size_kb": 0, "deps": [], "provides": []})
        entry["size_kb"] += kb  # multi-arch copies of one package add up
        entry["deps"] += _names(pre) + _names(deps)
        entry["provides"] += [alts[0] for alts in _names(provides)]
    return pkgs


def dependency_closure(pkgs, root):
    """The installed packages ``root`` needs, itself included (Depends and Pre-Depends,
    first installed alternative of each group, virtual packages through Provides)."""
    providers = {}
    for name, p in pkgs.items():
        for v in p["provides"]:
            providers.setdefault(v, []).append(name)
    seen = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen or name not in pkgs:
            continue
        seen.add(name)
        for alts in pkgs[name]["deps"]:
            for alt in alts:
                if alt in pkgs:
                    todo.append(alt)
                    break
                if alt in providers:
                    todo.append(sorted(providers[alt])[0])
                    break
    return seen


def closure_size_kb(pkgs, names):
    return sum(pkgs[n]["size_kb"] for n in names if n in pkgs)
