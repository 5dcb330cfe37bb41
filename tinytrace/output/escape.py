"""Escaping of strings that come from the kernel or from traced processes.

comm, file names and exec arguments are chosen by whoever runs the traced program, so they
may hold terminal escape sequences or newlines.  Everything of that kind goes through
``escape`` before it is printed: control characters become ``\\xNN`` (or ``\\n``, ``\\t``),
a backslash is doubled, and bytes that are not valid UTF-8 become ``\\xNN``.
"""
import re

_CTRL = re.compile("[\x00-\x1f\x7f-\x9f\\\\\udc80-\udcff]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _sub(m):
    c = m.group(0)
    o = ord(c)
    if o >= 0xDC80:  # a byte that was not valid UTF-8 (surrogateescape)
        o -= 0xDC00
    return _NAMED.get(c) or "\\x%02x" % o


# bytes that make a string more than printable ASCII: control characters, backslash (which
# escape() doubles), DEL and everything past 0x7f
_NEEDS_CARE = re.compile(b"[\\x00-\\x1f\\x5c\\x7f-\\xff]").search


def escape(s):
    """A printable form of ``s`` (str or bytes); a str that needs no change is returned as is.

    Nearly every comm and file name is printable ASCII: that is found with one scan in C
    (a regex search on bytes, ``str.isprintable`` on text) before any per-character work."""
    t = type(s)
    if t is not str:
        if t is not bytes:
            if not isinstance(s, (bytearray, memoryview)):
                return _CTRL.sub(_sub, s)
            s = bytes(s)
        if not _NEEDS_CARE(s):
            return s.decode("ascii")
        s = s.decode("utf-8", "surrogateescape")
    # isprintable() is False for every character _CTRL matches except the backslash
    # (C0/C1 controls, DEL and the surrogates that stand for bytes that were not UTF-8)
    if s.isprintable() and "\\" not in s:
        return s
    return _CTRL.sub(_sub, s)


def cstring(raw):
    """The text of a NUL-terminated byte string from the kernel, escaped for printing."""
    raw = bytes(raw)
    end = raw.find(b"\0")
    if end >= 0:
        raw = raw[:end]
    return escape(raw)
