"""bpftrace's output, text and ``-f json``, from values the language runtime has decoded.

The layouts are those of bpftrace 0.17 (Debian 12's, the version the project diffs against);
where later releases only extended them (hist bits, bucket suffixes past T, ``%i``...), the
later form is used.  Functions return the exact text bpftrace writes, newlines included.

Maps: ``map_text(name, entries, kind, ...)`` and ``map_json(...)``
-----------------------------------------------------------------
``entries`` is an iterable of ``(key, value)``:

- ``key`` is ``None`` for a map without keys (``@x = 1``).  Otherwise it is the key
  argument, or a tuple of the key arguments for ``@x[a, b]`` (a single key argument that is
  itself a tuple is passed as ``((1, 2),)``).  Key arguments are ints, str, bytes (a C
  string: cut at the first NUL) or any value below.
- ``kind`` says what the map holds and so how it is sorted and shown:

  ========== ======================================== =====================================
  kind       value                                    order (ascending, as bpftrace)
  ========== ======================================== =====================================
  count, sum int                                      by value
  int        int (``@x = 5``)                         by value
  min, max   int                                      by value
  avg        ``(count, total)``                       by average
  stats      ``(count, total)``                       by average
  hist       buckets: list or dict index -> count     by total count
  lhist      buckets: list or dict index -> count     by total count
  value      str, bytes, tuple, list, dict (record),  by key: ints as unsigned 64-bit,
             ``Buffer``, ``Stack``, bool               strings bytewise, first arg first
  ========== ======================================== =====================================

  Equal values keep key order (bpftrace leaves ties in hash order).
- ``top``/``div`` are ``print(@m, top, div)``: only the last ``top`` entries after sorting
  are shown (not for ``stats``, as in bpftrace), and ``count/sum/int/min/max/avg`` values
  and hist counts are divided by ``div`` (C division: truncated toward zero).
- ``hist`` buckets use bpftrace's indexes: 0 holds negative values, 1 holds 0, 2 holds 1,
  then each power of two is split into ``2**hist_bits`` buckets (``hist(x, bits)``).
  ``lhist`` needs ``lhist=(min, max, step)``: index 0 is ``< min``, index ``i`` is
  ``[min + (i-1)*step, min + i*step)``, the last is ``>= max``.

Text layout (``@name[k1, k2]: value``; hist rows ``[4, 8)   10 |@@@@   |`` with a 52-wide
bar): a map's text ends with one newline; hist/lhist maps and each of their keys end with
an empty line; stats and avg maps end with an empty line too; an empty map is ``"\\n"``.
Strings are escaped (``tinytrace.output.escape``) unless ``escape=False``.

JSON (one line each): ``{"type": "map"|"hist"|"stats", "data": {"@name": ...}}``; keys are
the key arguments joined with ``,``; an empty map prints nothing (``""``).

Other output
------------
- ``value_text(v)`` / ``value_json(v)``: ``print(v)`` of a non-map value.
- ``printf_json(text)``, ``message_json(type, text)`` (``time``, ``cat``, ``join``,
  ``syscall``), ``attached_probes_text/json(n)``, ``lost_events_text/json(n)``.
- ``EXIT_PREAMBLE``: the two newlines bpftrace writes after Ctrl-C, before the maps.
- ``Buffer(bytes)``: a ``buf()`` value (printed as in ``%r``); ``Stack(frames)``: a kstack
  or ustack, frames are symbol strings (``mode="perf"``: ``(address, symbol)`` pairs).
"""

MASK64 = (1 << 64) - 1
HIST_BAR = 52

_BY_VALUE = frozenset(("count", "sum", "int", "min", "max"))
_STATS = frozenset(("avg", "stats"))
_HISTS = frozenset(("hist", "lhist"))
KINDS = _BY_VALUE | _STATS | _HISTS | frozenset(("value",))


class Buffer(bytes):
    """A ``buf()`` value: printable ASCII as is, other bytes as ``\\xNN``."""


class Stack(tuple):
    """A resolved kernel or user stack: a tuple of frames (innermost first).

    ``mode`` "bpftrace" frames are symbol strings (``func+off``); "perf" frames are
    ``(address, symbol)`` pairs, printed as bpftrace's ``perf`` stack mode does."""

    def __new__(cls, frames=(), mode="bpftrace"):
        self = super().__new__(cls, frames)
        self.mode = mode
        return self


def cdiv(a, b):
    """C integer division (truncates toward zero), as bpftrace divides values by ``div``."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def hex_format_buffer(raw, keep_ascii=True, escape_hex=True):
    """bpftrace's buffer text: ``%r`` keeps printable ASCII and writes other bytes as
    ``\\xNN``; ``keep_ascii=False`` is ``%rx``; ``escape_hex=False`` is ``%rh``
    (``61 62 0a``)."""
    raw = bytes(raw)
    if not escape_hex:
        return " ".join("%02x" % b for b in raw)
    out = []
    for b in raw:
        if keep_ascii and 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


def stack_text(stack, indent=8):
    """A stack as bpftrace prints it: a newline, then one line per frame."""
    lines = ["\n"]
    if getattr(stack, "mode", "bpftrace") == "perf":
        for addr, sym in stack:
            lines.append("\t%x %s\n" % (addr, sym))
    else:
        pad = " " * indent
        for frame in stack:
            lines.append(pad + str(frame) + "\n")
    return "".join(lines)


# ---------------------------------------------------------------- value text

def _cstr(raw):
    raw = bytes(raw)
    end = raw.find(b"\0")
    if end >= 0:
        raw = raw[:end]
    return raw.decode("utf-8", "surrogateescape")


def _str_text(s, escape):
    """``escape`` True: control characters escaped; False: as is, bytes that are not UTF-8
    replaced by U+FFFD; None: as is, such bytes kept as surrogates (for JSON keys)."""
    if isinstance(s, (bytes, bytearray, memoryview)):
        s = _cstr(s)
    if escape:
        from .escape import escape as esc
        return esc(s)
    if escape is None:
        return s
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def value_str(v, escape=True, stack_indent=8):
    """The text form of one value, as bpftrace writes it inside map output and print()."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Buffer):
        return hex_format_buffer(v)
    if isinstance(v, Stack):
        return stack_text(v, stack_indent)
    if isinstance(v, (str, bytes, bytearray, memoryview)):
        return _str_text(v, escape)
    if isinstance(v, tuple):
        return "(" + ", ".join(value_str(e, escape) for e in v) + ")"
    if isinstance(v, list):
        return "[" + ",".join(value_str(e, escape) for e in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(".%s = %s" % (k, value_str(e, escape)) for k, e in v.items()) + " }"
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    raise TypeError("cannot print a value of type %s" % type(v).__name__)


def value_text(v, escape=True):
    """``print(v)`` of a value that is not a map: its text and a newline."""
    return value_str(v, escape) + "\n"


# ---------------------------------------------------------------- JSON pieces

def json_escape(s):
    """A string's body in bpftrace's JSON: quote, backslash, \\n \\r \\t escaped, other
    control characters as ``\\u00XX``; bytes that are not UTF-8 become the text ``\\xNN``."""
    if isinstance(s, (bytes, bytearray, memoryview)):
        s = bytes(s).decode("utf-8", "surrogateescape")
    out = []
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif o <= 0x1F:
            out.append("\\u%04x" % o)
        elif 0xDC80 <= o <= 0xDCFF:   # a byte that was not valid UTF-8
            out.append("\\\\x%02x" % (o - 0xDC00))
        else:
            out.append(c)
    return "".join(out)


def _jstr(s):
    return '"' + json_escape(s) + '"'


def value_json_str(v):
    """The JSON form of one value as bpftrace writes it (strings quoted, tuples as lists)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Buffer):
        return _jstr(hex_format_buffer(v))
    if isinstance(v, Stack):
        return _jstr(stack_text(v))
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _jstr(_cstr(v))
    if isinstance(v, str):
        return _jstr(v)
    if isinstance(v, (tuple, list)):
        return "[" + ",".join(value_json_str(e) for e in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join('"%s": %s' % (k, value_json_str(e)) for k, e in v.items()) + " }"
    if v is None:
        return "null"
    if isinstance(v, float):
        return repr(v)
    raise TypeError("cannot print a value of type %s" % type(v).__name__)


def value_json(v):
    """``print(v)`` of a non-map value in ``-f json``."""
    return '{"type": "value", "data": %s}\n' % value_json_str(v)


def message_json(mtype, text):
    """A text message (``printf``, ``time``, ``cat``, ``join``, ``syscall``) in JSON."""
    return '{"type": "%s", "data": %s}\n' % (mtype, _jstr(text))


def printf_json(text):
    return message_json("printf", text)


def attached_probes_text(n):
    return "Attaching %d probe%s...\n" % (n, "" if n == 1 else "s")


def attached_probes_json(n):
    return '{"type": "attached_probes", "data": {"probes": %d}}\n' % n


def lost_events_text(n):
    return "Lost %d events\n" % n


def lost_events_json(n):
    return '{"type": "lost_events", "data": {"events": %d}}\n' % n


EXIT_PREAMBLE = "\n\n"


# ---------------------------------------------------------------- sorting

def _key_args(key):
    if key is None:
        return ()
    if isinstance(key, tuple) and not isinstance(key, Stack):
        return key
    return (key,)


def _arg_sort_key(a):
    """bpftrace's sort_by_key: integers compare as unsigned 64-bit, strings bytewise
    (strncmp: up to the first NUL).  Other kinds are not sorted (None)."""
    if isinstance(a, bool):
        return (0, int(a))
    if isinstance(a, int):
        return (0, a & MASK64)
    if isinstance(a, (bytes, bytearray, memoryview)) and not isinstance(a, Buffer):
        raw = bytes(a)
        end = raw.find(b"\0")
        return (1, raw if end < 0 else raw[:end])
    if isinstance(a, str):
        raw = a.encode("utf-8", "surrogateescape")
        end = raw.find(b"\0")
        return (1, raw if end < 0 else raw[:end])
    return None


def _sort_by_key(items):
    """Stable sorts from the last key argument to the first, as bpftrace does."""
    items = list(items)
    nargs = max((len(_key_args(k)) for k, _ in items), default=0)
    for pos in range(nargs - 1, -1, -1):
        def sk(kv, pos=pos):
            args = _key_args(kv[0])
            s = _arg_sort_key(args[pos]) if pos < len(args) else None
            return (0, b"") if s is None else s
        if all(_arg_sort_key(_key_args(k)[pos]) is not None
               for k, _ in items if pos < len(_key_args(k))):
            items.sort(key=sk)
    return items


def _avg(count, total):
    return cdiv(total, count) if count else 0


def _bucket_list(b, size=0):
    if isinstance(b, dict):
        n = max([size] + [k + 1 for k in b])
        out = [0] * n
        for k, v in b.items():
            out[k] = int(v)
        return out
    out = [int(x) for x in b]
    if len(out) < size:
        out.extend([0] * (size - len(out)))
    return out


def sorted_entries(entries, kind):
    """Entries in the order bpftrace prints them (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError("unknown map kind %r" % (kind,))
    items = _sort_by_key(entries)
    if kind in _BY_VALUE:
        items.sort(key=lambda kv: kv[1])
    elif kind in _STATS:
        items.sort(key=lambda kv: _avg(*kv[1]))
    elif kind in _HISTS:
        items.sort(key=lambda kv: sum(_bucket_list(kv[1])))
    return items


def _apply_top(items, kind, top):
    if top and kind != "stats" and len(items) > top:
        return items[len(items) - top:]
    return items


# ---------------------------------------------------------------- hist / lhist

def hist_index_label(index, k=0):
    """The label of the lower edge of a hist bucket (``1K``, ``512``, ``2M`` ...)."""
    n = 1 << k
    interval = index & (n - 1)
    power = (index >> k) - 1
    decade = power // 10
    suffix = ("", "K", "M", "G", "T", "P", "E", "Z", "Y")[decade]
    power -= 10 * decade
    return "%d%s" % ((1 << power) * (n + interval), suffix)


def lhist_index_label(number):
    """lhist edge labels: multiples of 1024**2 as ``M``, of 1024 as ``K`` (bpftrace 0.17)."""
    if number == 0:
        return "0"
    if number % 1048576 == 0:
        return "%dM" % (number // 1048576)
    if number % 1024 == 0:
        return "%dK" % (number // 1024)
    return str(number)


def _f32(x):
    import struct
    return struct.unpack("f", struct.pack("f", x))[0]


def _bar_width(v, vmax):
    """bpftrace's ``values[i] / (float)max_value * 52``, in single precision, truncated."""
    if vmax <= 0:
        return 0
    return int(_f32(_f32(_f32(float(v)) / _f32(float(vmax))) * HIST_BAR))


def _row(header, count, v, vmax):
    return "%-16s%8d |%-52s|\n" % (header, count, "@" * _bar_width(v, vmax))


def _nonzero_span(vals, lo, hi):
    first = last = -1
    for i in range(lo, hi):
        if vals[i] > 0:
            if first < 0:
                first = i
            last = i
    return first, last


def hist_text(buckets, div=1, bits=0):
    """The rows of one hist value ('' when every bucket is empty)."""
    vals = _bucket_list(buckets)
    first, last = _nonzero_span(vals, 0, len(vals))
    if last < 0:
        return ""
    vmax = max(vals)
    div = div or 1
    out = []
    for i in range(first, last + 1):
        if i == 0:
            header = "(..., 0)"
        elif i <= (2 << bits):
            header = "[%d]" % (i - 1)
        else:
            header = "[%s, %s)" % (hist_index_label(i - 1, bits), hist_index_label(i, bits))
        out.append(_row(header, vals[i] // div, vals[i], vmax))
    return "".join(out)


def _lhist_span(vals, lmin, lmax, step):
    nb = cdiv(lmax - lmin, step)
    vals = vals + [0] * max(0, nb + 2 - len(vals))
    first, last = _nonzero_span(vals, 0, nb + 2)
    return vals, nb, first, last


def lhist_text(buckets, lmin, lmax, step):
    """The rows of one lhist value ('' when every bucket is empty)."""
    vals, nb, first, last = _lhist_span(_bucket_list(buckets), lmin, lmax, step)
    if last < 0:
        return ""
    vmax = max(vals)
    out = []
    for i in range(first, last + 1):
        if i == 0:
            header = "(..., %s)" % lhist_index_label(lmin)
        elif i == nb + 1:
            header = "[%s, ...)" % lhist_index_label(lmax)
        else:
            header = "[%s, %s)" % (lhist_index_label((i - 1) * step + lmin),
                                   lhist_index_label(i * step + lmin))
        out.append(_row(header, vals[i], vals[i], vmax))
    return "".join(out)


def hist_json_str(buckets, div=1, bits=0):
    vals = _bucket_list(buckets)
    first, last = _nonzero_span(vals, 0, len(vals))
    if last < 0:
        return "[]"
    div = div or 1
    n = 1 << bits
    parts = []
    for i in range(first, last + 1):
        if i == 0:
            head = '"max": -1, '
        elif i <= (2 << bits):
            head = '"min": %d, "max": %d, ' % (i - 1, i - 1)
        else:
            p, b = ((i - 1) >> bits) - 1, (i - 1) & (n - 1)
            low = (1 << p) * (n + b)
            p, b = (i >> bits) - 1, i & (n - 1)
            high = (1 << p) * (n + b) - 1
            head = '"min": %d, "max": %d, ' % (low, high)
        parts.append('{%s"count": %d}' % (head, vals[i] // div))
    return "[" + ", ".join(parts) + "]"


def lhist_json_str(buckets, lmin, lmax, step):
    vals, nb, first, last = _lhist_span(_bucket_list(buckets), lmin, lmax, step)
    if last < 0:
        return "[]"
    parts = []
    for i in range(first, last + 1):
        if i == 0:
            head = '"max": %d, ' % (lmin - 1)
        elif i == nb + 1:
            head = '"min": %d, ' % lmax
        else:
            low = (i - 1) * step + lmin
            head = '"min": %d, "max": %d, ' % (low, low + step - 1)
        parts.append('{%s"count": %d}' % (head, vals[i]))
    return "[" + ", ".join(parts) + "]"


# ---------------------------------------------------------------- maps

def _check_lhist(kind, lhist):
    if kind == "lhist":
        if lhist is None or len(lhist) != 3 or lhist[2] <= 0:
            raise ValueError("an lhist map needs lhist=(min, max, step) with step > 0")


def map_text(name, entries, kind="value", top=0, div=1, hist_bits=0, lhist=None,
             escape=True):
    """A whole map as bpftrace prints it at exit or on ``print(@m, top, div)``."""
    _check_lhist(kind, lhist)
    items = _apply_top(sorted_entries(entries, kind), kind, top)
    div = div or 1
    elems = []
    delim = "\n"
    for key, value in items:
        args = _key_args(key)
        if args:
            keystr = name + "[" + ", ".join(value_str(a, escape, 4) for a in args) + "]"
        else:
            keystr = name
        if kind in _BY_VALUE:
            val = str(cdiv(value, div))
        elif kind == "avg":
            val = str(cdiv(_avg(*value), div))
        elif kind == "stats":
            c, t = value
            val = "count %d, average %d, total %d" % (c, _avg(c, t), t)
        elif kind == "hist":
            val = "\n" + hist_text(value, div, hist_bits)
        elif kind == "lhist":
            val = "\n" + lhist_text(value, *lhist)
        else:
            if isinstance(value, Stack):
                delim = ""
            val = value_str(value, escape)
        elems.append(keystr + ": " + val)
    text = delim.join(elems) + "\n"
    if kind in _STATS:
        text += "\n"
    return text


def map_json(name, entries, kind="value", top=0, div=1, hist_bits=0, lhist=None,
             keyed=None):
    """A whole map in ``-f json`` (one line), or ``""`` for an empty map.

    ``keyed`` says whether the map has keys; by default it is taken from the entries."""
    _check_lhist(kind, lhist)
    items = _apply_top(sorted_entries(entries, kind), kind, top)
    if not items:
        return ""
    if keyed is None:
        keyed = any(_key_args(k) for k, _ in items)
    div = div or 1
    elems = []
    for key, value in items:
        args = _key_args(key)
        if kind in _BY_VALUE:
            val = str(cdiv(value, div))
        elif kind == "avg":
            val = str(cdiv(_avg(*value), div))
        elif kind == "stats":
            c, t = value
            val = '{"count": %d, "average": %d, "total": %d}' % (c, _avg(c, t), t)
        elif kind == "hist":
            val = hist_json_str(value, div, hist_bits)
        elif kind == "lhist":
            val = lhist_json_str(value, *lhist)
        else:
            val = value_json_str(value)
        if args:
            elems.append(_jstr(",".join(value_str(a, None, 4) for a in args)) + ": " + val)
        else:
            elems.append(val)
    mtype = "hist" if kind in _HISTS else "stats" if kind in _STATS else "map"
    body = ", ".join(elems)
    if keyed:
        body = "{" + body + "}"
    return '{"type": "%s", "data": {%s: %s}}\n' % (mtype, _jstr(name), body)
