""""Did you mean ...?" for unknown names: the closest candidates by edit distance."""


def distance(a, b, limit=None):
    """Levenshtein distance between ``a`` and ``b`` (stops early above ``limit``)."""
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    if limit is not None and len(a) - len(b) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        best = i
        for j, cb in enumerate(b, 1):
            v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            cur.append(v)
            if v < best:
                best = v
        if limit is not None and best > limit:
            return limit + 1
        prev = cur
    return prev[-1]


def closest(word, candidates, max_results=3):
    """The candidates nearest to ``word``, best first; empty when none is close enough.

    A candidate counts when its distance is at most a quarter of the word's length (at
    least 1, at most 3), or when one contains the other and they differ by little."""
    limit = max(1, min(3, len(word) // 4))
    scored = []
    seen = set()
    for c in candidates:
        if c in seen or c == word:
            continue
        seen.add(c)
        d = distance(word, c, limit)
        if d <= limit:
            scored.append((d, c))
        elif len(word) >= 4 and (word in c or c in word) and abs(len(c) - len(word)) <= 6:
            scored.append((limit + 1, c))
    scored.sort()
    return [c for _, c in scored[:max_results]]


def hint(word, candidates):
    """``"; did you mean 'x'?"`` (or ``'x' or 'y'``), or an empty string."""
    best = closest(word, candidates, 2)
    if not best:
        return ""
    return "; did you mean %s?" % " or ".join("'%s'" % b for b in best)
