"""Register allocation: virtual registers -> r0-r9, with spills to the stack.

Linear scan over live intervals (Poletto & Sarkar), made exact enough for BPF:

- Liveness is computed per basic block by the usual backward data flow, so a value used
  inside a ``while`` loop stays live over the whole loop; an interval is the hull of the
  positions where its register is live.  Instruction ``i`` reads at position ``2i`` and
  writes at ``2i + 1``.
- Physical registers the ABI fixes (helper arguments in r1-r5, results in r0, the context
  in r1 at entry, and the clobbering of r0-r5 by every call) are *fixed ranges*: a virtual
  register cannot take a physical one whose fixed ranges intersect its interval.  So a
  value that lives across a call lands in r6-r9, and argument set-up never overwrites a
  value still needed (no parallel-move problem).
- Hints from ``mov r1, vX`` / ``mov vX, r0`` steer the choice so those moves disappear.
- When no register is free, the interval that ends last is spilled: every use reloads it
  from an 8-byte stack slot into a fresh short-lived register, every definition stores it,
  and allocation starts over (short intervals always find a register).
"""
import bisect

from tinytrace.asm import Insn, Label
from tinytrace.asm import opcodes as op
from tinytrace.lang.ir import FP, VREG_BASE, is_jump, is_terminator, uses_defs

# Caller-saved first (cheap, and r6-r9 stay free for values that live across calls).
ORDER = (1, 2, 3, 4, 5, 0, 6, 7, 8, 9)
MAX_ROUNDS = 50


class AllocError(Exception):
    pass


class Result:
    __slots__ = ("code", "spill_slots", "rounds")

    def __init__(self, code, spill_slots, rounds):
        self.code = code
        self.spill_slots = spill_slots
        self.rounds = rounds


def allocate(code, frame_size):
    """Allocate registers in ``code`` (a list of Insn/Label over virtual registers).
    ``frame_size`` is the stack the code already uses (spill slots go below it).
    Returns a ``Result`` whose ``code`` uses only r0-r10."""
    unspillable = set()
    spill_slots = 0
    next_vreg = _max_vreg(code) + 1
    for rounds in range(1, MAX_ROUNDS + 1):
        insns, intervals, fixed, hints = _analyse(code)
        assignment, spilled = _scan(intervals, fixed, hints, unspillable)
        if not spilled:
            return Result(_rewrite(code, assignment), spill_slots, rounds)
        for v in sorted(spilled):
            spill_slots += 1
            off = -(frame_size + 8 * spill_slots)
            code, next_vreg = _spill(code, v, off, next_vreg, unspillable)
    raise AllocError("register allocation did not converge")


def _max_vreg(code):
    m = VREG_BASE - 1
    for x in code:
        if type(x) is not Label:
            if x[1] > m:
                m = x[1]
            if x[2] > m and x[0] != op.LD_IMM64 and x[0] != op.CALL_OP:
                m = x[2]
    return m


def _analyse(code):
    """Intervals of virtual registers, fixed ranges of physical ones, and move hints."""
    insns = []
    label_at = {}
    for x in code:
        if type(x) is Label:
            label_at[x.name] = len(insns)
        else:
            insns.append(x)
    n = len(insns)
    # basic blocks
    leaders = {0}
    for i, x in enumerate(insns):
        if is_jump(x):
            leaders.add(label_at[x[5]])
            leaders.add(i + 1)
        elif is_terminator(x):
            leaders.add(i + 1)
    leaders = sorted(x for x in leaders if x < n)
    block_of = [0] * n
    bounds = []
    for b, start in enumerate(leaders):
        end = leaders[b + 1] if b + 1 < len(leaders) else n
        bounds.append((start, end))
        for i in range(start, end):
            block_of[i] = b
    nb = len(bounds)
    succ = []
    ud = [uses_defs(x) for x in insns]
    use_bits = [0] * nb
    def_bits = [0] * nb
    for b, (start, end) in enumerate(bounds):
        u = d = 0
        for i in range(start, end):
            uses, defs = ud[i]
            for r in uses:
                if r >= VREG_BASE:
                    bit = 1 << (r - VREG_BASE)
                    if not d & bit:
                        u |= bit
            for r in defs:
                if r >= VREG_BASE:
                    d |= 1 << (r - VREG_BASE)
        use_bits[b] = u
        def_bits[b] = d
        last = insns[end - 1]
        s = []
        if is_jump(last):
            s.append(block_of[label_at[last[5]]])
            if last[0] != op.JA_OP and end < n:
                s.append(b + 1)
        elif last[0] == op.JA32_OP:
            s.append(block_of[label_at[last[5]]])
        elif not is_terminator(last) and end < n:
            s.append(b + 1)
        succ.append(s)
    live_in = [0] * nb
    live_out = [0] * nb
    changed = True
    while changed:
        changed = False
        for b in range(nb - 1, -1, -1):
            out = 0
            for s in succ[b]:
                out |= live_in[s]
            inn = use_bits[b] | (out & ~def_bits[b])
            if out != live_out[b] or inn != live_in[b]:
                live_out[b] = out
                live_in[b] = inn
                changed = True
    if live_in and live_in[0]:
        v = (live_in[0] & -live_in[0]).bit_length() - 1 + VREG_BASE
        raise AllocError("virtual register v%d is read before it is written" % v)
    start = {}
    end = {}

    def touch(v, p):
        s = start.get(v)
        if s is None or p < s:
            start[v] = p
        e = end.get(v)
        if e is None or p > e:
            end[v] = p

    fixed = {r: [] for r in range(10)}
    hints = {}
    for b, (bs, be) in enumerate(bounds):
        for bits, p in ((live_in[b], 2 * bs), (live_out[b], 2 * (be - 1) + 1)):
            while bits:
                low = bits & -bits
                touch(low.bit_length() - 1 + VREG_BASE, p)
                bits ^= low
        last_def = {}
        for i in range(bs, be):
            uses, defs = ud[i]
            for r in uses:
                if r >= VREG_BASE:
                    touch(r, 2 * i)
                elif r != FP:
                    fixed[r].append((last_def.get(r, -1 if i == 0 or b == 0 else 2 * bs),
                                     2 * i))
            for r in defs:
                if r >= VREG_BASE:
                    touch(r, 2 * i + 1)
                elif r != FP:
                    last_def[r] = 2 * i + 1
                    fixed[r].append((2 * i + 1, 2 * i + 1))
            x = insns[i]
            if x[0] == op.ALU64 | op.MOV | op.X and x[3] == 0:
                d, s = x[1], x[2]
                if d >= VREG_BASE and s < VREG_BASE:
                    hints.setdefault(d, s)
                elif s >= VREG_BASE and d < VREG_BASE:
                    hints.setdefault(s, d)
    intervals = {v: (start[v], end[v]) for v in start}
    fx = {}
    for r, ranges in fixed.items():
        ranges.sort()
        fx[r] = ([a for a, _ in ranges], [b for _, b in ranges],
                 _prefix_max([b for _, b in ranges]))
    return insns, intervals, fx, hints


def _prefix_max(values):
    out = []
    m = -2
    for v in values:
        if v > m:
            m = v
        out.append(m)
    return out


def _conflicts(fixed, r, s, e):
    starts, ends, pmax = fixed[r]
    # ranges with start <= e; among them, any with end >= s?
    k = bisect.bisect_right(starts, e)
    return k > 0 and pmax[k - 1] >= s


def _scan(intervals, fixed, hints, unspillable):
    order = sorted(intervals, key=lambda v: intervals[v][0])
    assignment = {}
    active = []   # (end, vreg)
    spilled = set()
    for v in order:
        s, e = intervals[v]
        active = [(e2, v2) for (e2, v2) in active if e2 >= s]
        busy = set(assignment[v2] for _, v2 in active)
        reg = None
        h = hints.get(v)
        if h is not None and h in ORDER and h not in busy and not _conflicts(fixed, h, s, e):
            reg = h
        else:
            for r in ORDER:
                if r not in busy and not _conflicts(fixed, r, s, e):
                    reg = r
                    break
        if reg is None:
            victim = v if v not in unspillable else None
            far = e if victim is not None else -1
            for e2, v2 in active:
                if v2 in unspillable or e2 <= far:
                    continue
                if _conflicts(fixed, assignment[v2], s, e):
                    continue
                victim, far = v2, e2
            if victim is None:
                raise AllocError("no register for v%d and nothing to spill" % v)
            spilled.add(victim)
            if victim == v:
                continue
            reg = assignment.pop(victim)
            active = [(e2, v2) for (e2, v2) in active if v2 != victim]
        assignment[v] = reg
        active.append((e, v))
    return assignment, spilled


def _spill(code, v, off, next_vreg, unspillable):
    out = []
    for x in code:
        if type(x) is Label:
            out.append(x)
            continue
        uses, defs = uses_defs(x)
        if v not in uses and v not in defs:
            out.append(x)
            continue
        t = next_vreg
        next_vreg += 1
        unspillable.add(t)
        loc = x[6]
        if v in uses:
            out.append(Insn(op.LDX | op.MEM | op.SIZE_DW, t, FP, off, 0, None, loc))
        dst = t if x[1] == v else x[1]
        src = t if (x[2] == v and x[0] != op.LD_IMM64 and x[0] != op.CALL_OP) else x[2]
        out.append(Insn(x[0], dst, src, x[3], x[4], x[5], loc))
        if v in defs:
            out.append(Insn(op.STX | op.MEM | op.SIZE_DW, FP, t, off, 0, None, loc))
    return out, next_vreg


def _rewrite(code, assignment):
    out = []
    mov_x = op.ALU64 | op.MOV | op.X
    for x in code:
        if type(x) is Label:
            out.append(x)
            continue
        d, s = x[1], x[2]
        if d >= VREG_BASE:
            d = assignment[d]
        if s >= VREG_BASE and x[0] != op.LD_IMM64 and x[0] != op.CALL_OP:
            s = assignment[s]
        if x[0] == mov_x and d == s and x[3] == 0:
            continue
        out.append(Insn(x[0], d, s, x[3], x[4], x[5], x[6]))
    return out
