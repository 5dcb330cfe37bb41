"""printf with bpftrace's semantics, on values the runtime has already decoded.

Compile time: ``parse_format(fmt) -> [Spec]`` checks a format string and returns its
conversion specifiers; a bad one raises ``FormatError`` carrying ``offset`` (0-based index
of its ``%`` in ``fmt``), ``column`` (``offset + 1``), ``length`` and ``text``, so the
language front end can point a caret at it (it maps the offset in the unescaped string back
to the source column).  ``Format(fmt)`` keeps the literal fragments too, and
``Format.check_args(n)`` gives bpftrace's message for a wrong argument count.

Run time: ``Format(fmt).format(args, escape=False) -> str`` or ``format_printf(fmt, args)``.

Specifiers: ``%[flags][width][.precision][length]conversion`` with

- flags ``-`` (left-justify), ``+`` (sign), space, ``#`` (alternate form), ``0`` (zero pad);
- width and precision as decimal numbers (``*`` is rejected: bpftrace has no such args);
- length ``hh h l ll j z t``: integers are first cut to that width (8, 16, or 64 bits).
  Without one an integer is printed as 64 bits, as current bpftrace does (0.17 passed
  plain ``%d`` to C as an ``int``, so larger values were cut to 32 bits there);
- conversions ``d i`` (signed), ``u o x X`` (unsigned), ``c`` (a character from the low
  byte), ``s`` (str, bytes -- a C string, cut at NUL -- or any value, printed as bpftrace
  prints it), ``p`` (``0x...``; ``(nil)`` for 0, like glibc), ``e E f F g G`` (floats),
  ``r`` / ``rx`` / ``rh`` (a buffer: printable ASCII kept and other bytes ``\\xNN`` / every
  byte ``\\xNN`` / hex pairs ``61 62``), and ``%%``.

Integers follow C exactly: precision is a minimum digit count (``%.0d`` of 0 prints
nothing), ``0`` is ignored with ``-`` or a precision, ``#o`` adds a leading 0 and ``#x``
``0x`` for non-zero values.  ``%s`` precision and width count bytes of UTF-8, as C does.

``escape=True`` escapes control characters in ``%s``/``%c`` arguments (for strings that
come from the kernel, see ``tinytrace.output.escape``); the format text itself is not
touched.  Bytes that are not UTF-8 are kept as surrogates (``surrogateescape``), so writing
the result with that error handler reproduces them exactly.
"""

import re

from .escape import escape as _escape

_INT_CONV = frozenset("diuoxX")
_FLOAT_CONV = frozenset("eEfFgG")
_LENGTH_BITS = {"": 64, "hh": 8, "h": 16, "l": 64, "ll": 64, "j": 64, "z": 64, "t": 64}
_FLAGS = "-+ #0"


class FormatError(ValueError):
    """A bad format string: ``offset``/``column`` locate the specifier, ``text`` is it."""

    def __init__(self, message, offset, length, text):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.column = offset + 1
        self.length = length
        self.text = text


class Spec(object):
    """One conversion specifier of a format string."""

    __slots__ = ("text", "offset", "flags", "width", "precision", "length", "conv")

    def __init__(self, text, offset, flags, width, precision, length, conv):
        self.text = text            # e.g. "%-8.3lu"
        self.offset = offset        # index of its '%' in the format string
        self.flags = flags          # the flag characters as written
        self.width = width          # int or None
        self.precision = precision  # int or None
        self.length = length        # "", "hh", "h", "l", "ll", "j", "z", "t"
        self.conv = conv            # "d", "s", "rx", ...

    @property
    def kind(self):
        """What argument it takes: "int", "char", "ptr", "str", "buf" or "float"."""
        c = self.conv
        if c in _INT_CONV:
            return "int"
        if c == "c":
            return "char"
        if c == "p":
            return "ptr"
        if c == "s":
            return "str"
        if c in ("r", "rx", "rh"):
            return "buf"
        return "float"

    def __repr__(self):
        return "Spec(%r at %d)" % (self.text, self.offset)

    def __eq__(self, other):
        return isinstance(other, Spec) and all(
            getattr(self, a) == getattr(other, a) for a in self.__slots__)

    def __hash__(self):
        return hash((self.text, self.offset))


def _parse(fmt):
    """(fragments, specs): len(fragments) == len(specs) + 1."""
    fragments, specs = [], []
    lit = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c != "%":
            lit.append(c)
            i += 1
            continue
        start = i
        i += 1
        if i < n and fmt[i] == "%":
            lit.append("%")
            i += 1
            continue
        flags = ""
        while i < n and fmt[i] in _FLAGS:
            flags += fmt[i]
            i += 1
        width = precision = None
        if i < n and fmt[i] == "*":
            raise FormatError("'*' width is not supported in printf formats",
                              start, i + 1 - start, fmt[start:i + 1])
        j = i
        while i < n and fmt[i].isdigit():
            i += 1
        if i > j:
            width = int(fmt[j:i])
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                raise FormatError("'*' precision is not supported in printf formats",
                                  start, i + 1 - start, fmt[start:i + 1])
            j = i
            while i < n and fmt[i].isdigit():
                i += 1
            precision = int(fmt[j:i]) if i > j else 0
        j = i
        while i < n and fmt[i] in "hljztL":
            i += 1
        length = fmt[j:i]
        if i >= n:
            raise FormatError("incomplete format specifier '%s' at the end of the format"
                              % fmt[start:], start, n - start, fmt[start:])
        c = fmt[i]
        i += 1
        if c == "r":
            conv = "r"
            if i < n and fmt[i] in "xh":
                conv += fmt[i]
                i += 1
        elif c in _INT_CONV or c in _FLOAT_CONV or c in "csp":
            conv = c
        else:
            text = fmt[start:i]
            raise FormatError("unknown format specifier '%s'" % text, start, i - start, text)
        text = fmt[start:i]
        if length not in _LENGTH_BITS:
            raise FormatError("invalid length modifier '%s' in '%s'" % (length, text),
                              start, i - start, text)
        if length and conv not in _INT_CONV and conv not in ("c", "s", "p"):
            raise FormatError("length modifier '%s' does not apply to %%%s" % (length, conv),
                              start, i - start, text)
        fragments.append("".join(lit))
        lit = []
        specs.append(Spec(text, start, flags, width, precision, length, conv))
    fragments.append("".join(lit))
    return fragments, specs


def parse_format(fmt):
    """The conversion specifiers of ``fmt`` (``%%`` is not one); ``FormatError`` if bad."""
    return _parse(fmt)[1]


# ---------------------------------------------------------------- conversions

def _pad(body, spec, zero_ok):
    w = spec.width or 0
    if len(body[0]) + len(body[1]) >= w:
        return body[0] + body[1]
    if "-" in spec.flags:
        return (body[0] + body[1]).ljust(w)
    if zero_ok and "0" in spec.flags:
        return body[0] + body[1].rjust(w - len(body[0]), "0")
    return (body[0] + body[1]).rjust(w)


def _as_int(v):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v)
    if isinstance(v, (bytes, bytearray)) and len(v) <= 8:
        return int.from_bytes(bytes(v), "little")
    raise TypeError("%s is not an integer" % type(v).__name__)


def _fmt_int(spec, v):
    bits = _LENGTH_BITS[spec.length]
    v = _as_int(v) & ((1 << bits) - 1)
    conv = spec.conv
    signed = conv in "di"
    if signed and v >> (bits - 1):
        v -= 1 << bits
    mag = -v if v < 0 else v
    if conv in "diu":
        digits = "%d" % mag
    elif conv == "o":
        digits = "%o" % mag
    elif conv == "x":
        digits = "%x" % mag
    else:
        digits = "%X" % mag
    if spec.precision is not None:
        digits = "" if (spec.precision == 0 and mag == 0) else digits.rjust(spec.precision, "0")
    prefix = ""
    if signed:
        if v < 0:
            prefix = "-"
        elif "+" in spec.flags:
            prefix = "+"
        elif " " in spec.flags:
            prefix = " "
    if "#" in spec.flags:
        if conv == "o" and not digits.startswith("0"):
            digits = "0" + digits
        elif conv in "xX" and mag:
            prefix = "0x" if conv == "x" else "0X"
    return _pad((prefix, digits), spec, spec.precision is None)


def _to_bytes(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        raw = bytes(v)
        end = raw.find(b"\0")
        return raw if end < 0 else raw[:end]
    if not isinstance(v, str):
        from .bpftrace import value_str
        v = value_str(v, escape=None)
    return v.encode("utf-8", "surrogateescape")


def _bytes_text(raw, escape):
    if not _NEEDS_CARE(raw):            # printable ASCII: nothing to decode or escape
        return raw.decode("ascii")
    s = raw.decode("utf-8", "surrogateescape")
    if escape:
        s = _escape(s)
    return s


# bytes that make a string more than printable ASCII (control characters, backslash --
# which escape() doubles --, DEL and everything past 0x7f)
_NEEDS_CARE = re.compile(b"[\\x00-\\x1f\\x5c\\x7f-\\xff]").search


def _fmt_str(spec, v, escape):
    raw = _to_bytes(v)
    if spec.precision is not None and len(raw) > spec.precision:
        whole = _complete_utf8(raw)
        raw = raw[:spec.precision]
        # do not leave half of a UTF-8 character behind (bytes that were not UTF-8 are
        # cut where C would cut them)
        for _ in range(3):
            if not whole or _complete_utf8(raw):
                break
            raw = raw[:-1]
    text = _bytes_text(raw, escape)
    shown = len(raw) if not escape else len(text)
    w = spec.width or 0
    if shown >= w:
        return text
    fill = " " * (w - shown)
    return text + fill if "-" in spec.flags else fill + text


def _complete_utf8(raw):
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _fmt_char(spec, v, escape):
    b = _as_int(v) & 0xFF
    ch = chr(b) if b < 0x80 else chr(0xDC00 + b)
    if escape:
        ch = _escape(ch)
    w = spec.width or 0
    if w <= 1:
        return ch
    return ch + " " * (w - 1) if "-" in spec.flags else " " * (w - 1) + ch


def _fmt_ptr(spec, v):
    v = _as_int(v) & 0xFFFFFFFFFFFFFFFF
    body = "(nil)" if v == 0 else "0x%x" % v
    return _pad(("", body), spec, False)


def _fmt_buf(spec, v):
    from .bpftrace import hex_format_buffer
    if isinstance(v, str):
        v = v.encode("utf-8", "surrogateescape")
    if spec.conv == "r":
        text = hex_format_buffer(v)
    elif spec.conv == "rx":
        text = hex_format_buffer(v, keep_ascii=False)
    else:
        text = hex_format_buffer(v, escape_hex=False)
    return _pad(("", text), spec, False)


def _fmt_float(spec, v):
    f = "%" + spec.flags
    if spec.width is not None:
        f += str(spec.width)
    if spec.precision is not None:
        f += "." + str(spec.precision)
    return (f + spec.conv) % (float(v),)


def format_spec(spec, value, escape=False):
    """One argument formatted by one specifier."""
    kind = spec.kind
    if kind == "int":
        return _fmt_int(spec, value)
    if kind == "str":
        return _fmt_str(spec, value, escape)
    if kind == "char":
        return _fmt_char(spec, value, escape)
    if kind == "ptr":
        return _fmt_ptr(spec, value)
    if kind == "buf":
        return _fmt_buf(spec, value)
    return _fmt_float(spec, value)


_I64 = 1 << 63
_U64 = 1 << 64


def converter(spec, escape):
    """``f(value) -> text`` for one specifier, with everything that does not depend on the
    value decided now: the common plain forms (``%d``, ``%u``, ``%s``, ``%x`` without
    flags, width or precision) take a short path; the rest goes through ``format_spec``."""
    plain = not spec.flags and spec.width is None and spec.precision is None
    conv = spec.conv
    if plain and spec.length in ("", "l", "ll", "j", "z", "t"):
        if conv in "di":
            def f(v):
                if type(v) is int and -_I64 <= v < _I64:
                    return str(v)
                return _fmt_int(spec, v)
            return f
        if conv == "u":
            def f(v):
                if type(v) is int and 0 <= v < _U64:
                    return str(v)
                return _fmt_int(spec, v)
            return f
        if conv == "x":
            def f(v):
                if type(v) is int and 0 <= v < _U64:
                    return "%x" % v
                return _fmt_int(spec, v)
            return f
    if plain and conv == "s":
        care = _NEEDS_CARE

        def f(v):
            if type(v) is bytes:
                if not care(v):         # printable ASCII (so no NUL either): as it is
                    return v.decode("ascii")
                end = v.find(b"\0")
                if end >= 0:
                    v = v[:end]
                return _bytes_text(v, escape)
            return _fmt_str(spec, v, escape)
        return f
    kind = spec.kind
    if kind == "int":
        return lambda v: _fmt_int(spec, v)
    if kind == "str":
        return lambda v: _fmt_str(spec, v, escape)
    if kind == "char":
        return lambda v: _fmt_char(spec, v, escape)
    if kind == "ptr":
        return lambda v: _fmt_ptr(spec, v)
    if kind == "buf":
        return lambda v: _fmt_buf(spec, v)
    return lambda v: _fmt_float(spec, v)


class Format(object):
    """A parsed printf format: ``fragments`` (literal text) around ``specs``.

    ``format`` compiles the format on first use (per ``escape`` setting) into one
    converter per specifier (``converter``), so an event costs one call per argument and
    one ``join``."""

    __slots__ = ("fmt", "fragments", "specs", "_compiled")

    def __init__(self, fmt):
        self.fmt = fmt
        self.fragments, self.specs = _parse(fmt)
        self._compiled = {}

    def compile(self, escape=False):
        """``f(args) -> text``: this format applied to a sequence of arguments."""
        f = self._compiled.get(bool(escape))
        if f is not None:
            return f
        convs = [converter(sp, escape) for sp in self.specs]
        frags = self.fragments
        nspecs = len(convs)
        check = self.check_args
        last = frags[-1]
        if nspecs == 0:
            text = frags[0]

            def f(args):
                if args:
                    raise ValueError(check(len(args)))
                return text
        else:
            f = _join_function(frags, self.specs, convs, check)
        self._compiled[bool(escape)] = f
        return f

    def check_args(self, nargs):
        """bpftrace's message when ``nargs`` arguments do not fit the format, else None."""
        n = len(self.specs)
        if nargs < n:
            return ("printf: Not enough arguments for format string (%d supplied, %d expected)"
                    % (nargs, n))
        if nargs > n:
            return ("printf: Too many arguments for format string (%d supplied, %d expected)"
                    % (nargs, n))
        return None

    def format(self, args, escape=False):
        """The formatted text; ``args`` must match the specifiers one for one."""
        return self.compile(escape)(args)


def _inline(spec, i):
    """The short path of ``converter`` for argument ``a<i>`` as an expression, falling back
    to its converter ``c<i>`` (None: just call the converter)."""
    if spec.flags or spec.width is not None or spec.precision is not None:
        return None
    conv = spec.conv
    if spec.length in ("", "l", "ll", "j", "z", "t"):
        if conv in "di":
            return "(str(a%d) if type(a%d) is int and -I64 <= a%d < I64 else c%d(a%d))" % (
                i, i, i, i, i)
        if conv == "u":
            return "(str(a%d) if type(a%d) is int and 0 <= a%d < U64 else c%d(a%d))" % (
                i, i, i, i, i)
    if conv == "s":
        # printable ASCII (so no NUL, nothing to escape) is the text itself
        return "(a%d.decode('ascii') if type(a%d) is bytes and not care(a%d) else c%d(a%d))" % (
            i, i, i, i, i)
    return None


def _join_function(frags, specs, convs, check):
    """``f(args)`` for one or more specifiers: the arguments unpacked into locals, each
    converted (the plain ``%d``/``%u``/``%s`` forms inline, the others by their converter),
    and put into the literal text with one ``%`` operation.  The function is generated for
    its format, so an event costs one Python call and no loop."""
    n = len(convs)
    template = "%s".join(frag.replace("%", "%%") for frag in frags)
    exprs = [_inline(sp, i) or "c%d(a%d)" % (i, i) for i, sp in enumerate(specs)]
    src = ("def f(args):\n"
           "    if len(args) != %d:\n"
           "        raise ValueError(check(len(args)))\n"
           "    %s, = args\n"
           "    return template %% (%s,)\n"
           % (n, ", ".join("a%d" % i for i in range(n)), ", ".join(exprs)))
    scope = dict(("c%d" % i, c) for i, c in enumerate(convs))
    scope.update(template=template, check=check, care=_NEEDS_CARE, I64=_I64, U64=_U64,
                 ValueError=ValueError, len=len, str=str, type=type, int=int, bytes=bytes)
    exec(compile(src, "<printf %r>" % "".join(frags)[:40], "exec"), scope)
    return scope["f"]


_CACHE = {}


def format_printf(fmt, args, escape=False):
    """``Format(fmt).format(args, escape)``, with the parsed format cached."""
    f = _CACHE.get(fmt)
    if f is None:
        if len(_CACHE) > 256:
            _CACHE.clear()
        f = _CACHE[fmt] = Format(fmt)
    return f.format(args, escape)
