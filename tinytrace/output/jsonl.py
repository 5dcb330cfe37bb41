"""JSON-lines output: one compact JSON object per event or per interval.

Every tool's ``--json`` mode writes one object per line so that the output of the same tool
on several devices can be compared with ``jq`` or diffed.  Conventions:

- keys are lower-case, values keep their native type (numbers stay numbers);
- strings from the kernel are passed as they are: JSON escaping makes them safe, bytes that
  are not UTF-8 become ``\\xNN`` text (``text(raw)``), so no event is ever dropped;
- an event record is ``event_record(fields, ts=None)``: the fields, plus ``"ts"`` (seconds,
  float) when given;
- an interval record is ``interval_record(time=..., hists=[...], **more)``: histograms use
  the shape documented in ``tinytrace.output.hist``.

``dumps(obj)`` is ``json.dumps`` with compact separators and ``ensure_ascii=False`` (the
output is UTF-8); ``write(obj, file=None)`` writes it and a newline, and flushes, so that a
reader on a pipe sees each event at once.
"""


def text(raw):
    """A kernel string (bytes, NUL-terminated or not) as a str for JSON: UTF-8 decoded,
    bytes that are not UTF-8 written as ``\\xNN``."""
    if isinstance(raw, str):
        return raw
    raw = bytes(raw)
    end = raw.find(b"\0")
    if end >= 0:
        raw = raw[:end]
    return raw.decode("utf-8", "backslashreplace")


def _default(o):
    if isinstance(o, (bytes, bytearray, memoryview)):
        return text(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError("%s is not JSON serialisable" % type(o).__name__)


def dumps(obj):
    """One compact JSON line (no newline) for ``obj``; bytes become text (see ``text``)."""
    import json
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=_default)


def write(obj, file=None):
    """Write ``obj`` as one JSON line and flush."""
    if file is None:
        import sys
        file = sys.stdout
    file.write(dumps(obj) + "\n")
    file.flush()


def event_record(fields, ts=None):
    """An event: ``fields`` (a dict, order kept) and, when given, ``"ts"`` first."""
    if ts is None:
        return dict(fields)
    rec = {"ts": ts}
    rec.update(fields)
    return rec


def interval_record(time=None, hists=None, **more):
    """One interval of a periodic tool: ``{"time": ..., "hists": [...], ...}``.

    ``time`` is what the text output shows (e.g. ``"14:02:11"``), or left out when None."""
    rec = {}
    if time is not None:
        rec["time"] = time
    if hists is not None:
        rec["hists"] = list(hists)
    rec.update(more)
    return rec
