"""The tool set: one module per tool, named after its BCC namesake.

Each tool module defines:

- ``main(argv) -> int``: parse options (``-h`` with examples), trace, print, return an exit code;
- ``SUMMARY``: one line for ``tinytrace --list``;
- ``PROBES``: the probes it attaches (for ``--list`` and the README);
- ``NEEDS``: kernel features beyond tracepoints it needs, e.g. ``("btf",)``, ``("kprobes",)``.

Tools are found by file name, so that ``tinytrace runqlat`` imports only ``runqlat``.
"""
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def _valid(name):
    return name.isidentifier() and name.islower() and not name.startswith("_")


def tool_names():
    # pkgutil also lists modules inside a zipapp, where os.listdir cannot look.
    import pkgutil
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if not m.ispkg and _valid(m.name))


def _exists(name):
    if os.path.isfile(os.path.join(_HERE, name + ".py")):
        return True
    # Inside a zipapp the folder cannot be listed with os; ask the import system instead.
    import importlib.util
    return importlib.util.find_spec("tinytrace.tools." + name) is not None


def find_tool(name):
    """The tool module called ``name``, or None if there is no such tool."""
    if not _valid(name) or not _exists(name):
        return None
    import importlib
    return importlib.import_module("tinytrace.tools." + name)


def print_tool_list(json_output=False):
    import json
    import sys
    rows = []
    for name in tool_names():
        mod = find_tool(name)
        rows.append({"name": name, "summary": getattr(mod, "SUMMARY", ""),
                     "probes": list(getattr(mod, "PROBES", ())),
                     "needs": list(getattr(mod, "NEEDS", ()))})
    if json_output:
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    width = max([len(r["name"]) for r in rows] + [4])
    for r in rows:
        needs = ", ".join(r["needs"]) or "tracepoints"
        sys.stdout.write("%-*s  %s  [needs: %s]\n" % (width, r["name"], r["summary"], needs))
        if r["probes"]:
            sys.stdout.write("%-*s    probes: %s\n" % (width, "", ", ".join(r["probes"])))
    return 0
