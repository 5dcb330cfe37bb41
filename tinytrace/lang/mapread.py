"""Reading a user map back: keys and values decoded, per-CPU values combined.

``read_map(map, spec, decoders, for_print=False) -> (entries, kind, extra)`` gives
``(key, value)`` pairs, the map kind, and the hist/lhist parameters.  Keys are natural:
``@m[k]`` gives ``k`` itself (also when ``k`` is a tuple: ``@off[@why[tid]]`` keyed by a
tuple reads back as that tuple), ``@m[a, b]`` gives ``(a, b)``, a map without keys None.
``for_print=True`` gives what ``tinytrace.output.bpftrace.map_text``/``map_json`` take,
where a single key that is a tuple is wrapped as ``(k,)`` so it prints as one argument.  Aggregations are per CPU; the CPUs are added up
here (min/max take the extreme over the CPUs that saw a value).  An element of a keyless
aggregation that no CPU has touched is not shown, as bpftrace shows no element.
"""
import struct

from tinytrace.lang.types import AggT, IntT, PtrT

_Q = struct.Struct("=Q")
_q = struct.Struct("=q")


def _words(raw, n, signed_from=None):
    vals = list(struct.unpack_from("=%dQ" % n, raw, 0))
    return vals


def _s64(v):
    return v - (1 << 64) if v >> 63 else v


def read_map(m, spec, decoders, for_print=False):
    info = spec.info
    value_ty = spec.value_ty
    agg = value_ty if isinstance(value_ty, AggT) else None
    if info.keyless:
        key_dec = None
    else:
        key_dec = decoders.get(spec.key_ty)
    multi = (info.nkeys is not None and info.nkeys > 1) or not for_print
    items = list(m.items())
    entries = []
    extra = {}
    if agg is not None:
        kind = agg.agg
        signed = agg.arg.signed if isinstance(agg.arg, IntT) else False
        n = agg.slots
        if kind == "hist":
            extra["hist_bits"] = agg.params[0] if agg.params else 0
        elif kind == "lhist":
            extra["lhist"] = agg.params
        for kraw, vraw in items:
            per_cpu = vraw if isinstance(vraw, list) else [vraw]
            words = [_words(v, n) for v in per_cpu]
            value = _combine(kind, words, signed)
            if value is None:
                if info.keyless:
                    continue       # the one array element, never updated
                value = _EMPTY[kind](n)   # a key whose value was zero()ed
            entries.append((_key(kraw, key_dec, multi), value))
        return entries, kind, extra
    kind = "int" if isinstance(value_ty, (IntT, PtrT)) else "value"
    vdec = decoders.get(value_ty if not isinstance(value_ty, PtrT) else IntT(64, False))
    for kraw, vraw in items:
        entries.append((_key(kraw, key_dec, multi), vdec(vraw, 0)))
    return entries, kind, extra


_EMPTY = {"count": lambda n: 0, "sum": lambda n: 0, "min": lambda n: 0, "max": lambda n: 0,
          "avg": lambda n: (0, 0), "stats": lambda n: (0, 0), "hist": lambda n: [0] * n,
          "lhist": lambda n: [0] * n}


def _key(raw, dec, multi):
    if dec is None:
        return None
    k = dec(raw, 0)
    if multi:       # the tuple of key arguments, or (not for printing) the natural key
        return k
    if isinstance(k, tuple):
        return (k,)
    return k


def _combine(kind, words, signed):
    """The value of one key from its per-CPU words; None when no CPU has a value."""
    if kind == "count":
        total = sum(w[0] for w in words)
        return total if total else None
    if kind == "sum":
        if not sum(w[1] for w in words):
            return None
        total = sum(w[0] for w in words) & 0xFFFFFFFFFFFFFFFF
        return _s64(total) if signed else total
    if kind in ("min", "max"):
        seen = [(_s64(w[0]) if signed else w[0]) for w in words if w[1]]
        if not seen:
            return None
        return min(seen) if kind == "min" else max(seen)
    if kind in ("avg", "stats"):
        count = sum(w[0] for w in words)
        if not count:
            return None
        total = sum(w[1] for w in words) & 0xFFFFFFFFFFFFFFFF
        return (count, _s64(total) if signed else total)
    if kind in ("hist", "lhist"):
        buckets = [sum(col) for col in zip(*words)]
        if not any(buckets):
            return None
        return buckets
    raise AssertionError(kind)
