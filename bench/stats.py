"""Statistics over paired runs (pure functions; tested in tests/bench).

Runs alternate tinytrace, bpftrace, tinytrace, bpftrace ... so each pair shares the machine's
state of the moment; the comparison is the *median of the per-pair ratios*
(tinytrace / bpftrace), which a slow period hitting both runs of a pair cancels out of, next
to each side's median.
"""


def median(values):
    """Median of the numbers in ``values`` (None entries ignored); None if there are none."""
    xs = sorted(v for v in values if v is not None)
    n = len(xs)
    if n == 0:
        return None
    mid = n // 2
    if n % 2:
        return xs[mid]
    return (xs[mid - 1] + xs[mid]) / 2.0


def ratio(a, b):
    """a / b, or None when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def pair_ratios(tt, bt):
    """Per-pair ratios tt[i] / bt[i] (None where a pair lacks a value)."""
    return [ratio(a, b) for a, b in zip(tt, bt)]


def summarize(tt, bt):
    """{tinytrace, bpftrace: medians; ratio: median of pair ratios; ratios: each pair's;
    n: pairs with both values}."""
    rs = pair_ratios(tt, bt)
    return {"tinytrace": median(tt), "bpftrace": median(bt), "ratio": median(rs),
            "ratios": rs, "n": sum(1 for r in rs if r is not None)}


def spread(values):
    """(min, max) of the non-None values, or (None, None)."""
    xs = [v for v in values if v is not None]
    return (min(xs), max(xs)) if xs else (None, None)


def per_event(rows, pattern):
    """Sum run_cnt / run_time_ns over program rows whose attach points (or, when a program
    has none recorded, its name) match the regex ``pattern``.  Returns (count, ns)."""
    import re
    rx = re.compile(pattern)
    cnt = ns = 0
    for r in rows:
        keys = r.get("attach") or [r.get("name", "")]
        if any(rx.search(k) for k in keys):
            cnt += r["run_cnt"]
            ns += r["run_time_ns"]
    return cnt, ns


def by_attach_point(rows):
    """{attach point: (run_cnt, run_time_ns, xlated_insns)} summed over programs; a program
    attached to several points (one program, several perf events) is counted once, under
    the points joined by '+'.  Programs with no attachment (BEGIN/END) are left out."""
    out = {}
    for r in rows:
        points = r.get("attach") or []
        if not points:
            continue
        key = "+".join(p.split(":", 1)[-1] for p in points)
        cnt, ns, insns = out.get(key, (0, 0, 0))
        out[key] = (cnt + r["run_cnt"], ns + r["run_time_ns"], max(insns, r["xlated_insns"]))
    return out


def cpu_per_million(cpu_ns, events):
    """Milliseconds of CPU per million events, or None without events."""
    if cpu_ns is None or not events:
        return None
    return cpu_ns / 1e6 / events * 1e6


def merge_points(points, key):
    """In a ``by_attach_point`` result, fold the separate entries of a combined key 'a+b'
    into one entry 'a+b' (summing counts and times), when the entry itself is absent."""
    if key in points:
        return points
    parts = key.split("+")
    if not all(p in points for p in parts):
        return points
    cnt = ns = insns = 0
    for p in parts:
        c, n, i = points.pop(p)
        cnt, ns, insns = cnt + c, ns + n, max(insns, i)
    points[key] = (cnt, ns, insns)
    return points


def rename_points(points, renames):
    """In a ``by_attach_point`` result, move entries to new keys (``{old: new}``)."""
    for old, new in renames.items():
        if old in points and new not in points:
            points[new] = points.pop(old)
    return points
