"""Figures the guest matrix measured, printed at the end of the pytest run (conftest.py).

Every number is host wall-clock seconds unless it says otherwise; under TCG they describe the
emulator, never a real board.
"""
import json
import os

_DATA = {}


def record(arch, **values):
    d = _DATA.setdefault(arch, {"seconds": 0.0})
    add = values.pop("add_seconds", None)
    if add:
        d["seconds"] += add
    d.update(values)


def data():
    return _DATA


def lines():
    out = []
    for arch in sorted(_DATA):
        d = _DATA[arch]
        parts = ["%-6s" % arch, "kernel %s" % d.get("kernel", "?")]
        if "prepare" in d:
            parts.append("prepare %.1fs%s" % (d["prepare"], " (cold)" if d.get("cold") else ""))
        if "boot" in d:
            parts.append("boot %.1fs" % d["boot"])
        if "subset" in d:
            parts.append("subset %.1fs (%s)" % (d["subset"], d.get("subset_summary", "?")))
        if "pyz_size" in d:
            parts.append("pyz %.0f KB" % (d["pyz_size"] / 1024.0))
        for name in ("version", "runqlat", "execsnoop"):
            v = d.get("pyz_" + name)
            if v is not None:
                parts.append("%s %s %.1fs" % (name, "start" if name == "version" else "attach", v))
        parts.append("total %.1fs" % d["seconds"])
        out.append("  ".join(parts))
    return out


def save(path):
    with open(path, "w") as f:
        json.dump(_DATA, f, indent=1, sort_keys=True)
        f.write("\n")


def save_if_asked():
    path = os.environ.get("TINYTRACE_GUEST_REPORT")
    if path and _DATA:
        save(path)
