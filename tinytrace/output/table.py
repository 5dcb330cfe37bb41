"""Fixed-width columns for snoop tools, in BCC's style, with a JSON-lines twin.

BCC's snoop tools print a header and rows with matching printf specs separated by one
space, e.g. ``"%-6s %-16s %4s %3s %s" % ("PID", "COMM", "FD", "ERR", "PATH")`` and rows
``"%-6d %-16s %4d %3d %s"``.  A ``Table`` is built from the same facts::

    t = Table([("PID", "%-6d"), ("COMM", "%-16s"), ("FD", "%4d"), ("ERR", "%3d"),
               ("PATH", "%s")])
    t.header()              # 'PID    COMM              FD ERR PATH'
    t.row([42, b"cat", 3, 0, b"/etc/passwd"])

- Each column is ``(title, spec)`` or ``(title, spec, key)``; ``spec`` is one printf
  specifier (``tinytrace.output.printf`` semantics), ``key`` the name in JSON records
  (default: the title in lower case, other characters than letters and digits as ``_``,
  so ``TIME(s)`` is ``time_s``).
- The header uses each spec's width and justification with ``%s``.
- Strings and bytes are escaped (they come from the kernel) unless ``escape=False``.
- ``record(values)`` gives the dict for ``tinytrace.output.jsonl`` (bytes decoded, not
  padded, numbers kept as numbers).
- ``sep`` joins the columns (one space, as BCC); a trailing column is not padded when its
  spec has no width.
"""
import re

_KEY_RE = re.compile(r"[^0-9a-z]+")


def column_key(title):
    """The JSON key of a column title: ``TIME(s)`` -> ``time_s``, ``T`` -> ``t``."""
    key = _KEY_RE.sub("_", title.lower()).strip("_")
    return key or "col"


class Table(object):
    """Header, text rows and JSON records for a fixed set of columns."""

    def __init__(self, columns, sep=" ", escape=True):
        from .printf import Format
        self.titles, self.specs, self.keys = [], [], []
        for col in columns:
            title, spec = col[0], col[1]
            key = col[2] if len(col) > 2 else column_key(title)
            f = Format(spec)
            if len(f.specs) != 1 or f.fragments != ["", ""]:
                raise ValueError("column %r: %r is not one printf specifier" % (title, spec))
            self.titles.append(title)
            self.specs.append(f.specs[0])
            self.keys.append(key)
        self.sep = sep
        self.escape = escape
        self._header = self._make_header()

    def _make_header(self):
        parts = []
        for title, spec in zip(self.titles, self.specs):
            w = spec.width or 0
            parts.append(title.ljust(w) if "-" in spec.flags else title.rjust(w))
        return self.sep.join(parts)

    def header(self):
        """The header line (no newline)."""
        return self._header

    def row(self, values):
        """One row (no newline)."""
        from .printf import format_spec
        if len(values) != len(self.specs):
            raise ValueError("%d values for %d columns" % (len(values), len(self.specs)))
        return self.sep.join(format_spec(s, v, self.escape) for s, v in zip(self.specs, values))

    def record(self, values):
        """One row as a dict for JSON lines."""
        from .jsonl import text
        rec = {}
        for key, v in zip(self.keys, values):
            if isinstance(v, (bytes, bytearray, memoryview)):
                v = text(v)
            rec[key] = v
        return rec

    def print_header(self, file=None):
        _out(file).write(self._header + "\n")

    def print_row(self, values, file=None):
        f = _out(file)
        f.write(self.row(values) + "\n")


def _out(file):
    if file is None:
        import sys
        return sys.stdout
    return file
