"""Disassembler: instructions (or program bytes) to the C-like text the verifier log prints.

`format_insn` renders one instruction; `disassemble` renders a program with slot numbers,
label lines and comments.  The syntax is described in the package docstring and is exactly
what `tinytrace.asm.text.assemble` reads back.
"""

from . import opcodes as op
from .insn import Insn, Label

_ALU = {op.ADD: "+=", op.SUB: "-=", op.MUL: "*=", op.DIV: "/=", op.OR: "|=", op.AND: "&=",
        op.LSH: "<<=", op.RSH: ">>=", op.MOD: "%=", op.XOR: "^=", op.MOV: "=",
        op.ARSH: "s>>="}
_ALU_SIGNED = {op.DIV: "s/=", op.MOD: "s%="}
_JMP = {op.JEQ: "==", op.JGT: ">", op.JGE: ">=", op.JSET: "&", op.JNE: "!=", op.JSGT: "s>",
        op.JSGE: "s>=", op.JLT: "<", op.JLE: "<=", op.JSLT: "s<", op.JSLE: "s<="}
_UTYPE = {op.SIZE_W: "u32", op.SIZE_H: "u16", op.SIZE_B: "u8", op.SIZE_DW: "u64"}
_STYPE = {op.SIZE_W: "s32", op.SIZE_H: "s16", op.SIZE_B: "s8"}
_ATOMIC = {op.ADD: "add", op.OR: "or", op.AND: "and", op.XOR: "xor"}
_ATOMIC_LOCK = {op.ADD: "+=", op.OR: "|=", op.AND: "&=", op.XOR: "^="}


def _s32(v):
    v &= 0xffffffff
    return v - (1 << 32) if v & 0x80000000 else v


def _jimm(imm):
    return "0x%x" % imm if imm >= 0 else "%d" % imm


def _rel(value, slot, names):
    """A jump/call target: a synthesized label name, or a signed offset like ``+3``."""
    if names is not None and slot is not None:
        name = names.get(slot + 1 + value)
        if name is not None:
            return name
    return "%+d" % value


def raw_insn(x):
    """The always-parsable ``.insn`` form of an instruction (for opcodes with no syntax)."""
    return ".insn 0x%02x dst=%d src=%d off=%d imm=%d" % (x[0], x[1], x[2], x[3], x[4])


def _mem(size, base, off, signed=False):
    return "(%s *)(r%d %+d)" % ((_STYPE if signed else _UTYPE)[size], base, off)


def _ldimm64(x, slot, names):
    dst, kind, imm, ref = x[1], x[2], x[4], x[5]
    imm &= 0xffffffffffffffff
    lo, hi = imm & 0xffffffff, _s32(imm >> 32)
    tail = "%+d" % hi if hi else ""
    if kind == op.PSEUDO_NONE:
        return "r%d = 0x%x ll" % (dst, imm)
    if kind == op.PSEUDO_MAP_FD:
        body = "map[%s]" % ref if ref is not None else "map_fd(%d)" % lo
    elif kind == op.PSEUDO_MAP_VALUE:
        body = "map_value[%s]" % ref if ref is not None else "map_value_fd(%d)" % lo
        tail = "%+d" % hi
    elif kind == op.PSEUDO_BTF_ID:
        body = "btf_id(%d)" % lo
    elif kind == op.PSEUDO_FUNC:
        if ref is not None:
            body = "func[%s]" % ref
        else:
            target = _rel(_s32(lo), slot, names)
            body = "func[%s]" % target if target[0] not in "+-" else "func(pc%s)" % target
    elif kind == op.PSEUDO_MAP_IDX:
        body = "map_idx(%d)" % lo
    elif kind == op.PSEUDO_MAP_IDX_VALUE:
        body = "map_idx_value(%d)" % lo
        tail = "%+d" % hi
    else:
        return None
    return "r%d = %s%s ll" % (dst, body, tail)


def format_insn(x, slot=None, names=None):
    """One instruction as text.  ``slot`` and ``names`` ({slot: label}) let relative jump
    targets print as label names."""
    code, dst, src, off, imm, ref = x[0], x[1], x[2], x[3], x[4], x[5]
    klass = code & 0x07
    if klass == op.ALU64 or klass == op.ALU:
        r = "r" if klass == op.ALU64 else "w"
        operation = code & 0xf0
        if operation == op.END:
            if klass == op.ALU64:
                return "r%d = bswap%d r%d" % (dst, imm, dst)
            return "r%d = %s%d r%d" % (dst, "be" if code & op.TO_BE else "le", imm, dst)
        if operation == op.NEG:
            return "%s%d = -%s%d" % (r, dst, r, dst)
        if code & op.X:
            if operation == op.MOV:
                if off in (8, 16, 32):
                    return "%s%d = (s%d)%s%d" % (r, dst, off, r, src)
                if off == op.OFF_ADDR_SPACE_CAST and klass == op.ALU64:
                    return "r%d = addr_space_cast(r%d, %d, %d)" % (
                        dst, src, (imm & 0xffffffff) >> 16, imm & 0xffff)
            sym = _ALU_SIGNED[operation] if off == 1 and operation in _ALU_SIGNED \
                else _ALU.get(operation)
            if sym is None:
                return None
            return "%s%d %s %s%d" % (r, dst, sym, r, src)
        sym = _ALU_SIGNED[operation] if off == 1 and operation in _ALU_SIGNED \
            else _ALU.get(operation)
        if sym is None:
            return None
        return "%s%d %s %d" % (r, dst, sym, imm)
    if klass == op.JMP or klass == op.JMP32:
        operation = code & 0xf0
        if code == op.CALL_OP:
            if src == op.PSEUDO_CALL:
                if ref is not None:
                    return "call " + ref
                target = _rel(imm, slot, names)
                return "call " + ("pc" + target if target[0] in "+-" else target)
            if src == op.PSEUDO_KFUNC_CALL:
                return "call kfunc#%d%s" % (imm, "@%d" % off if off else "")
            from .helpers import name_of
            name = name_of(imm)
            return "call %s#%d" % ("bpf_" + name if name else "unknown", imm)
        if code == op.EXIT_OP:
            return "exit"
        if code == op.JA_OP:
            return "goto %s" % (ref if ref is not None else _rel(off, slot, names))
        if code == op.JA32_OP:
            return "gotol %s" % (ref if ref is not None else _rel(imm, slot, names))
        if code == op.MAY_GOTO_OP:
            return "may_goto %s" % (ref if ref is not None else _rel(off, slot, names))
        if code == op.GOTOX_OP:
            return "gotox r%d" % dst
        sym = _JMP.get(operation)
        if sym is None:
            return None
        r = "r" if klass == op.JMP else "w"
        target = ref if ref is not None else _rel(off, slot, names)
        if code & op.X:
            return "if %s%d %s %s%d goto %s" % (r, dst, sym, r, src, target)
        return "if %s%d %s %s goto %s" % (r, dst, sym, _jimm(imm), target)
    size = code & 0x18
    mode = code & 0xe0
    if klass == op.LDX:
        if mode == op.MEM:
            return "r%d = *%s" % (dst, _mem(size, src, off))
        if mode == op.MEMSX and size != op.SIZE_DW:
            return "r%d = *%s" % (dst, _mem(size, src, off, True))
        return None
    if klass == op.STX:
        if mode == op.MEM:
            return "*%s = r%d" % (_mem(size, dst, off), src)
        if mode != op.ATOMIC:
            return None
        mem = _mem(size, dst, off)
        wide = "64" if size == op.SIZE_DW else ""
        if imm in _ATOMIC_LOCK:
            return "lock *%s %s r%d" % (mem, _ATOMIC_LOCK[imm], src)
        if imm & op.FETCH and (imm & ~op.FETCH) in _ATOMIC:
            return "r%d = atomic%s_fetch_%s(%s, r%d)" % (src, wide, _ATOMIC[imm & ~op.FETCH],
                                                         mem, src)
        if imm == op.XCHG:
            return "r%d = atomic%s_xchg(%s, r%d)" % (src, wide, mem, src)
        if imm == op.CMPXCHG:
            return "r0 = atomic%s_cmpxchg(%s, r0, r%d)" % (wide, mem, src)
        if imm == op.LOAD_ACQ:
            return "r%d = load_acquire(%s)" % (dst, _mem(size, src, off))
        if imm == op.STORE_REL:
            return "store_release(%s, r%d)" % (mem, src)
        return None
    if klass == op.ST:
        if mode == op.MEM:
            return "*%s = %d" % (_mem(size, dst, off), imm)
        return None
    # klass == LD
    if code == op.LD_IMM64:
        return _ldimm64(x, slot, names)
    if size == op.SIZE_DW:
        return None
    if mode == op.ABS:
        return "r0 = *(%s *)skb[%d]" % (_UTYPE[size], imm)
    if mode == op.IND:
        return "r0 = *(%s *)skb[r%d %s %d]" % (_UTYPE[size], src, "-" if imm < 0 else "+",
                                              abs(imm))
    return None


def describe(x, slot=None, names=None):
    """Text for any instruction, even a malformed one (for error messages)."""
    try:
        text = format_insn(x, slot, names)
    except Exception:
        text = None
    if text is not None:
        return text
    try:
        return raw_insn(x)
    except Exception:
        return repr(x)



def _all_ints(x):
    return all(type(v) is int for v in x[:5])


def _escape(text):
    out = []
    for ch in str(text):
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif o < 0x20 or o == 0x7f:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, "\\x%02x" % o))
        else:
            out.append(ch)
    return "".join(out)


def _targets(items):
    """Slots that raw (non-symbolic) jumps, calls and function loads point at."""
    found = set()
    slot = 0
    for x in items:
        if type(x) is Label or not isinstance(x, Insn):
            continue
        code = x[0]
        klass = code & 0x07
        if x[5] is None:
            if code == op.LD_IMM64:
                if x[2] == op.PSEUDO_FUNC:
                    found.add(slot + 1 + _s32(x[4]))
            elif klass in (op.JMP, op.JMP32):
                if code == op.CALL_OP:
                    if x[2] == op.PSEUDO_CALL:
                        found.add(slot + 1 + x[4])
                elif code == op.JA32_OP:
                    found.add(slot + 1 + x[4])
                elif (code & 0xf0) in _JMP or code in (op.JA_OP, op.MAY_GOTO_OP):
                    found.add(slot + 1 + x[3])
        slot += 2 if code == op.LD_IMM64 else 1
    return found


def disassemble(prog, numbers=True, labels=False):
    """The text of a program: a list of `Insn`/`Label` or the bytes of one.

    ``numbers`` prefixes each instruction with its slot index (as the verifier log does).
    ``labels`` replaces relative jump targets by synthesized ``L<slot>:`` labels.
    Instructions the kernel would reject print in the raw ``.insn`` form with the reason.
    """
    if isinstance(prog, (bytes, bytearray, memoryview)):
        from .link import decode
        prog = decode(prog)
    from .validate import problem
    names = None
    if labels:
        starts = {}
        slot = 0
        existing = {}
        for x in prog:
            if type(x) is Label:
                existing.setdefault(slot, x.name)
            else:
                starts[slot] = True
                slot += 2 if x[0] == op.LD_IMM64 else 1
        starts[slot] = True
        taken = set(existing.values())
        names = {}
        for target in sorted(_targets(prog)):
            if target in existing:
                names[target] = existing[target]
            elif target in starts:
                name = "L%d" % target
                while name in taken:
                    name += "_"
                taken.add(name)
                names[target] = name
    lines = []
    slot = 0
    pending = dict(names) if names else {}
    for x in prog:
        if type(x) is Label:
            if pending.get(slot) == x.name:
                del pending[slot]
            lines.append(x.name + ":")
            continue
        if slot in pending:
            lines.append(pending.pop(slot) + ":")
        why = problem(x)
        if why is None:
            text = describe(x, slot, names)
        else:
            text = (raw_insn(x) if _all_ints(x) else repr(x)) + " ; invalid: " + why
        if x[6] is not None:
            text = "%-32s ; %s" % (text, _escape(x[6]))
        lines.append("%5d: %s" % (slot, text) if numbers else "    " + text)
        slot += 2 if x[0] == op.LD_IMM64 else 1
    if slot in pending:
        lines.append(pending.pop(slot) + ":")
    return "\n".join(lines)
