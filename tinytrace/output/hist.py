"""Histograms in BCC's text layouts, and one JSON shape for every tool's histograms.

The tools print the same histograms BCC prints, byte for byte, so that users can diff the
two.  Input is plain data decoded by the caller: ``slots`` is either a sequence indexed by
slot or a mapping ``slot -> count`` (the items of a BPF hash or array map).

Log2 histograms (BCC's ``print_log2_hist``)
-------------------------------------------
Slot ``i`` counts values ``v`` with ``bpf_log2l(v) == i``, i.e. ``2**(i-1) <= v < 2**i``,
except that slot 1 also holds 0 (BCC's ``bpf_log2l(0)`` is 1).  Slot 0 is never printed.
Rows run from slot 1 to the last non-empty slot (trailing empty slots are trimmed); leading
empty rows are dropped only with ``strip_leading_zero=True``, as in BCC.  Nothing at all,
not even the header, is printed for a histogram with no counts.  When the last non-empty
slot is above 32 BCC switches to a wider layout with a 20-column bar::

         usecs               : count     distribution
             0 -> 1          : 0        |                                        |
             2 -> 3          : 4        |****************************************|

- ``log2_hist_text(slots, val_type="value", strip_leading_zero=False) -> str``
- ``print_log2_hist(slots, val_type="value", strip_leading_zero=False, file=None)``

Linear histograms (BCC's ``print_linear_hist``)
-----------------------------------------------
Slot ``i`` is the value ``i``; rows run from 0 (or, with ``strip_leading_zero``, from the
first non-empty slot) to the last non-empty slot.

- ``linear_hist_text(slots, val_type="value", strip_leading_zero=False) -> str``
- ``print_linear_hist(slots, val_type="value", strip_leading_zero=False, file=None)``

Keyed histograms (BCC's ``section_header``)
-------------------------------------------
``sections`` maps a section key (e.g. a disk name) to its slots.  Each section is
introduced by an empty line and ``"<section_header> = <key>"``, as BCC prints it::

    log2_sections_text({"vda": slots}, "usecs", section_header="disk")

``section_fmt`` turns a key into its printed form (default ``str``; bytes are decoded and
escaped).  Sections print in ``sorted`` key order unless ``order`` (a list of keys) is given.

JSON shape (the same for every tool)
------------------------------------
``hist_json(...)`` returns a dict; ``tinytrace.output.jsonl.dumps`` makes it one line::

    {"unit": "usecs",            # the val_type label
     "scale": "log2",            # "log2" or "linear"
     "buckets": [{"low": 0, "high": 1, "count": 0},   # inclusive bounds, the text rows
                 {"low": 2, "high": 3, "count": 4}],
     "total": 4}                 # sum of all counts (also of rows not shown)

A keyed histogram adds ``"key": {"<section_header>": <key>}``; tools that print per
interval wrap them as ``{"time": ..., "hists": [...]}`` (see ``jsonl.interval_record``).
The buckets listed are exactly the rows the text layout prints, so the two agree.
"""

STARS_MAX = 40          # BCC's stars_max
LOG2_INDEX_MAX = 65     # BCC's log2_index_max: slots 0..64 hold any 64-bit value


def _as_list(slots, minimum=0):
    """Slots as a list of ints, whatever the caller had (list, tuple, dict of slot -> count)."""
    if isinstance(slots, dict):
        if not slots:
            return [0] * minimum
        size = max(max(slots) + 1, minimum)
        out = [0] * size
        for k, v in slots.items():
            if k < 0:
                raise ValueError("histogram slot %d is negative" % k)
            out[k] = int(v)
        return out
    out = [int(v) for v in slots]
    if len(out) < minimum:
        out.extend([0] * (minimum - len(out)))
    return out


def _stars(val, val_max, width):
    """The bar of one row: as many stars as BCC's loop draws (``width * val / val_max``,
    rounded down, at most ``width``)."""
    if val_max <= 0:
        return ""
    n = 0
    limit = width * val / val_max - 1
    while not (n > limit or n > width - 1):
        n += 1
    text = "*" * n
    if val > val_max:
        text = text[:-1] + "+"
    return text


def _scan(vals):
    idx_max = -1
    val_max = 0
    for i, v in enumerate(vals):
        if v > 0:
            idx_max = i
        if v > val_max:
            val_max = v
    return idx_max, val_max


def log2_bounds(slot):
    """Inclusive (low, high) of a BCC log2 slot, as its row shows them (slot 1 is 0 -> 1)."""
    low = (1 << slot) >> 1
    high = (1 << slot) - 1
    if low == high:
        low -= 1
    return low, high


def log2_slot(value):
    """The BCC slot of ``value`` (``bpf_log2l``): 0 and 1 -> 1, 2..3 -> 2, 4..7 -> 3 ..."""
    value = int(value) & 0xFFFFFFFFFFFFFFFF
    if value <= 1:
        return 1
    return value.bit_length()


def _log2_rows(vals, strip_leading_zero):
    """(slot, low, high, count) of the rows BCC prints, and the layout flags."""
    idx_max, val_max = _scan(vals)
    rows = []
    strip = bool(strip_leading_zero)
    for i in range(1, idx_max + 1):
        val = vals[i]
        if strip:
            if not val:
                continue
            strip = False
        low, high = log2_bounds(i)
        rows.append((i, low, high, val))
    return rows, idx_max, val_max


def log2_hist_text(slots, val_type="value", strip_leading_zero=False):
    """The text BCC's ``print_log2_hist`` prints for one histogram ('' when it is empty)."""
    vals = _as_list(slots, LOG2_INDEX_MAX)
    rows, idx_max, val_max = _log2_rows(vals, strip_leading_zero)
    if idx_max <= 32:
        header = "     %-19s : count     distribution"
        body = "%10d -> %-10d : %-8d |%-*s|"
        stars = STARS_MAX
    else:
        header = "               %-29s : count     distribution"
        body = "%20d -> %-20d : %-8d |%-*s|"
        stars = STARS_MAX // 2
    out = []
    if idx_max > 0:
        out.append(header % (val_type,))
    for _, low, high, val in rows:
        out.append(body % (low, high, val, stars, _stars(val, val_max, stars)))
    return "".join(line + "\n" for line in out)


def _linear_rows(vals, strip_leading_zero):
    idx_max, val_max = _scan(vals)
    rows = []
    strip = bool(strip_leading_zero)
    for i in range(0, idx_max + 1):
        if strip:
            if not vals[i]:
                continue
            strip = False
        rows.append((i, vals[i]))
    return rows, idx_max, val_max


def linear_hist_text(slots, val_type="value", strip_leading_zero=False):
    """The text BCC's ``print_linear_hist`` prints for one histogram ('' when it is empty)."""
    rows, idx_max, val_max = _linear_rows(_as_list(slots), strip_leading_zero)
    out = []
    if idx_max >= 0:
        out.append("     %-13s : count     distribution" % (val_type,))
    for i, val in rows:
        out.append("        %-10d : %-8d |%-*s|" % (i, val, STARS_MAX, _stars(val, val_max, STARS_MAX)))
    return "".join(line + "\n" for line in out)


def _section_key_text(key, section_fmt):
    if section_fmt is not None:
        return section_fmt(key)
    from .escape import escape
    if isinstance(key, (bytes, bytearray)):
        from .escape import cstring
        return cstring(key)
    if isinstance(key, str):
        return escape(key)
    return str(key)


def _section_order(sections, order):
    if order is not None:
        return list(order)
    try:
        return sorted(sections)
    except TypeError:  # keys of mixed kinds: keep the caller's order
        return list(sections)


def log2_sections_text(sections, val_type="value", section_header="Bucket ptr",
                       section_fmt=None, order=None, strip_leading_zero=False):
    """BCC's keyed ``print_log2_hist``: for each key an empty line, ``"<header> = <key>"``
    and that key's histogram."""
    out = []
    for key in _section_order(sections, order):
        out.append("\n%s = %s\n" % (section_header, _section_key_text(key, section_fmt)))
        out.append(log2_hist_text(sections[key], val_type, strip_leading_zero))
    return "".join(out)


def linear_sections_text(sections, val_type="value", section_header="Bucket ptr",
                         section_fmt=None, order=None, strip_leading_zero=False):
    """BCC's keyed ``print_linear_hist``."""
    out = []
    for key in _section_order(sections, order):
        out.append("\n%s = %s\n" % (section_header, _section_key_text(key, section_fmt)))
        out.append(linear_hist_text(sections[key], val_type, strip_leading_zero))
    return "".join(out)


def _write(text, file):
    if file is None:
        import sys
        file = sys.stdout
    file.write(text)


def print_log2_hist(slots, val_type="value", strip_leading_zero=False, file=None):
    """Print a log2 histogram as BCC does (see ``log2_hist_text``)."""
    _write(log2_hist_text(slots, val_type, strip_leading_zero), file)


def print_linear_hist(slots, val_type="value", strip_leading_zero=False, file=None):
    """Print a linear histogram as BCC does (see ``linear_hist_text``)."""
    _write(linear_hist_text(slots, val_type, strip_leading_zero), file)


def print_log2_sections(sections, val_type="value", section_header="Bucket ptr",
                        section_fmt=None, order=None, strip_leading_zero=False, file=None):
    """Print keyed log2 histograms as BCC does (see ``log2_sections_text``)."""
    _write(log2_sections_text(sections, val_type, section_header, section_fmt, order,
                              strip_leading_zero), file)


def print_linear_sections(sections, val_type="value", section_header="Bucket ptr",
                          section_fmt=None, order=None, strip_leading_zero=False, file=None):
    """Print keyed linear histograms as BCC does."""
    _write(linear_sections_text(sections, val_type, section_header, section_fmt, order,
                                strip_leading_zero), file)


def hist_json(slots, unit="value", scale="log2", key=None, strip_leading_zero=False):
    """The JSON form (a dict) of one histogram; see the module docstring for the shape.

    ``key`` is ``None`` or a dict such as ``{"disk": "vda"}`` for keyed histograms."""
    if scale == "log2":
        vals = _as_list(slots, LOG2_INDEX_MAX)
        rows, _, _ = _log2_rows(vals, strip_leading_zero)
        buckets = [{"low": low, "high": high, "count": val} for _, low, high, val in rows]
    elif scale == "linear":
        vals = _as_list(slots)
        rows, _, _ = _linear_rows(vals, strip_leading_zero)
        buckets = [{"low": i, "high": i, "count": val} for i, val in rows]
    else:
        raise ValueError("unknown histogram scale %r (log2 or linear)" % (scale,))
    rec = {"unit": unit, "scale": scale, "buckets": buckets, "total": sum(vals)}
    if key is not None:
        rec["key"] = dict(key)
    return rec


def sections_json(sections, unit="value", scale="log2", section_header="key",
                  section_fmt=None, order=None, strip_leading_zero=False):
    """A list of ``hist_json`` dicts, one per key, each with ``"key": {section_header: key}``."""
    out = []
    for k in _section_order(sections, order):
        shown = section_fmt(k) if section_fmt is not None else _json_key(k)
        out.append(hist_json(sections[k], unit, scale, {section_header: shown},
                             strip_leading_zero))
    return out


def _json_key(key):
    if isinstance(key, (bytes, bytearray)):
        raw = bytes(key)
        end = raw.find(b"\0")
        if end >= 0:
            raw = raw[:end]
        return raw.decode("utf-8", "backslashreplace")
    return key
