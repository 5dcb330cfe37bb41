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


def escape(s):
    """A printable form of ``s`` (str or bytes); a str that needs no change is returned as is."""
    if isinstance(s, (bytes, bytearray, memoryview)):
        s = bytes(s).decode("utf-8", "surrogateescape")
    return _CTRL.sub(_sub, s)


def cstring(raw):
    """The text of a NUL-terminated byte string from the kernel, escaped for printing."""
    raw = bytes(raw)
    end = raw.find(b"\0")
    if end >= 0:
        raw = raw[:end]
    return escape(raw)
