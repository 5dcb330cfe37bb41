#!/usr/bin/env python3
"""Build tinytrace.pyz: the whole of tinytrace in one file, for a board with only python3 + cffi.

    python3 scripts/make_pyz.py                 # writes ./tinytrace.pyz
    python3 tinytrace.pyz runqlat 1 1           # on the board (as root)

The archive is a zipapp: ``tinytrace/`` from the repository, with ``asm/`` and ``tools/``
placed as ``tinytrace/asm`` and ``tinytrace/tools`` (the installed layout), and a
``__main__.py`` that runs the command line.  It holds no compiled code -- the cffi module is
pure Python in ABI mode -- so the same file runs on every architecture and on Python 3.9+.

``--pyc`` also stores bytecode for the Python that runs this script; other Python versions
ignore it and compile from source.  Entries are sorted and dated from SOURCE_DATE_EPOCH (or
1980-01-01), so the same tree always gives the same bytes.
"""
import argparse
import io
import os
import stat
import sys
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (folder in the repository, its name inside the archive)
LAYOUT = (("tinytrace", "tinytrace"), ("asm", "tinytrace/asm"), ("tools", "tinytrace/tools"))
SKIP_DIRS = ("__pycache__",)
SKIP_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dylib", "~", ".swp", ".orig", ".rej")

MAIN = b'''\
"""tinytrace as a single-file zipapp (built by scripts/make_pyz.py)."""
import sys

from tinytrace.cli import main

sys.exit(main())
'''


def _date_time():
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return time.gmtime(max(int(epoch), 315532800))[:6]
    return (1980, 1, 1, 0, 0, 0)


def collect(root=ROOT):
    """[(archive name, host path)] for every file that goes into the archive, sorted."""
    entries = {}
    for src, dst in LAYOUT:
        top = os.path.join(root, src)
        if not os.path.isfile(os.path.join(top, "__init__.py")):
            raise SystemExit("make_pyz: %s is not a package folder" % top)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames
                                 if d not in SKIP_DIRS and not d.startswith("."))
            rel = os.path.relpath(dirpath, top)
            if src == "tinytrace" and rel.split(os.sep)[0] in ("asm", "tools"):
                raise SystemExit("make_pyz: tinytrace/%s clashes with the %s/ folder"
                                 % (rel, rel.split(os.sep)[0]))
            for f in sorted(filenames):
                if f.startswith(".") or f.endswith(SKIP_SUFFIXES):
                    continue
                path = os.path.join(dirpath, f)
                if not stat.S_ISREG(os.stat(path).st_mode):
                    continue
                name = "/".join(p for p in (dst, rel.replace(os.sep, "/"), f) if p != ".")
                entries[name] = path
    return sorted(entries.items())


def _bytecode(source, name):
    """Unchecked-hash .pyc bytes for ``source`` (zipimport looks for name.pyc beside name.py)."""
    import importlib.util
    import marshal
    code = compile(source, name, "exec", dont_inherit=True)
    flags = 0b01  # hash-based, not checked against the source: both come from this build
    data = bytearray(importlib.util.MAGIC_NUMBER)
    data += flags.to_bytes(4, "little")
    data += importlib.util.source_hash(source)
    data += marshal.dumps(code)
    return bytes(data)


def build(output, python="/usr/bin/env python3", compress=True, pyc=False, root=ROOT):
    """Write the archive to ``output``; returns (number of entries, size in bytes)."""
    entries = collect(root)
    when = _date_time()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    buf = io.BytesIO()
    buf.write(b"#!" + python.encode() + b"\n")
    count = 0
    with zipfile.ZipFile(buf, "w", method) as z:
        def add(name, data):
            info = zipfile.ZipInfo(name, when)
            info.compress_type = method
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            z.writestr(info, data)
        add("__main__.py", MAIN)
        count += 1
        for name, path in entries:
            with open(path, "rb") as f:
                data = f.read()
            add(name, data)
            count += 1
            if pyc and name.endswith(".py"):
                add(name + "c", _bytecode(data, name))
                count += 1
    tmp = output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.chmod(tmp, 0o755)
    os.replace(tmp, output)
    return count, os.path.getsize(output)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write("make_pyz: %s (-h for help)\n" % message)
        sys.exit(2)


def main(argv=None):
    p = _Parser(description="Build tinytrace.pyz, a single-file zipapp of "
                                "tinytrace (python3 tinytrace.pyz TOOL ...).")
    p.add_argument("-o", "--output", default=os.path.join(os.getcwd(), "tinytrace.pyz"),
                   help="where to write it (default: ./tinytrace.pyz)")
    p.add_argument("-p", "--python", default="/usr/bin/env python3",
                   help="interpreter for the #! line (default: /usr/bin/env python3)")
    p.add_argument("--pyc", action="store_true",
                   help="also store bytecode for this Python (%d.%d); faster start there"
                   % sys.version_info[:2])
    p.add_argument("--no-compress", action="store_true", help="store files uncompressed")
    args = p.parse_args(argv)
    count, size = build(args.output, args.python, not args.no_compress, args.pyc)
    print("wrote %s: %d files, %.1f KB" % (args.output, count, size / 1024.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
