"""What makes an instruction one the kernel accepts: known opcode, registers, field ranges.

`problem(insn)` returns the reason an instruction is malformed, or None.  Builders call it
as soon as they make an instruction (so a code generator's bug points at its own line) and
`link` calls it again on every resolved instruction, naming the slot index.

Reserved fields must be zero, as the kernel requires; offsets are s16, immediates s32 (a
64-bit load's immediate is 64 bits).  A symbolic instruction (``ref`` set) may leave the
field that `link` will fill at zero.
"""

from . import opcodes as op

# Kind of every opcode the kernel accepts (plus gotox, which it decodes).
KIND = {}


def _build_kinds():
    alu_ops = (op.ADD, op.SUB, op.MUL, op.DIV, op.OR, op.AND, op.LSH, op.RSH, op.MOD,
               op.XOR, op.MOV, op.ARSH)
    for klass in (op.ALU, op.ALU64):
        for code in alu_ops:
            KIND[klass | code | op.K] = "alu"
            KIND[klass | code | op.X] = "alu"
        KIND[klass | op.NEG | op.K] = "neg"
    KIND[op.ALU | op.END | op.TO_LE] = "end"
    KIND[op.ALU | op.END | op.TO_BE] = "end"
    KIND[op.ALU64 | op.END | op.TO_LE] = "end"          # bswap
    conds = (op.JEQ, op.JGT, op.JGE, op.JSET, op.JNE, op.JSGT, op.JSGE, op.JLT, op.JLE,
             op.JSLT, op.JSLE)
    for klass in (op.JMP, op.JMP32):
        for code in conds:
            KIND[klass | code | op.K] = "jcond"
            KIND[klass | code | op.X] = "jcond"
    KIND[op.JA_OP] = "ja"
    KIND[op.JA32_OP] = "ja32"
    KIND[op.GOTOX_OP] = "gotox"
    KIND[op.CALL_OP] = "call"
    KIND[op.EXIT_OP] = "exit"
    KIND[op.MAY_GOTO_OP] = "may_goto"
    KIND[op.LD_IMM64] = "ldimm64"
    for size in (op.SIZE_W, op.SIZE_H, op.SIZE_B):
        KIND[op.LD | op.ABS | size] = "ldabs"
        KIND[op.LD | op.IND | size] = "ldind"
        KIND[op.LDX | op.MEMSX | size] = "ldx"
    for size in (op.SIZE_W, op.SIZE_H, op.SIZE_B, op.SIZE_DW):
        KIND[op.LDX | op.MEM | size] = "ldx"
        KIND[op.ST | op.MEM | size] = "st"
        KIND[op.STX | op.MEM | size] = "stx"
        KIND[op.STX | op.ATOMIC | size] = "atomic"


_build_kinds()

ATOMIC_OPS = frozenset((op.ADD, op.OR, op.AND, op.XOR,
                        op.ADD | op.FETCH, op.OR | op.FETCH, op.AND | op.FETCH,
                        op.XOR | op.FETCH, op.XCHG, op.CMPXCHG, op.LOAD_ACQ, op.STORE_REL))

S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1
S16_MIN, S16_MAX = -(1 << 15), (1 << 15) - 1


def _bad_reg(which, r):
    if type(r) is int:
        return "bad register: %s is r%d (registers are r0..r10)" % (which, r)
    return "bad register: %s is %r (registers are r0..r10)" % (which, r)


_R10 = "writes r10, the read-only frame pointer"


def problem(insn):
    """Why ``insn`` is not a valid instruction, or None if it is."""
    code, dst, src, off, imm = insn[0], insn[1], insn[2], insn[3], insn[4]
    kind = KIND.get(code) if type(code) is int else None
    if kind is None:
        if type(code) is int and 0 <= code <= 0xff:
            return "unknown opcode 0x%02x" % code
        return "opcode %r is not a byte" % (code,)
    if type(dst) is not int or not 0 <= dst <= 10:
        return _bad_reg("dst", dst)
    if type(off) is not int or not S16_MIN <= off <= S16_MAX:
        return "offset %r does not fit in the s16 off field (-32768..32767)" % (off,)
    if kind == "ldimm64":
        if type(imm) is not int or not -(1 << 63) <= imm < (1 << 64):
            return "immediate %r does not fit in 64 bits" % (imm,)
    elif type(imm) is not int or not S32_MIN <= imm <= S32_MAX:
        if type(imm) is int and S32_MAX < imm < (1 << 32):
            return ("immediate %d does not fit in the s32 imm field (-2147483648.."
                    "2147483647); it is sign-extended: write %d, or use a 64-bit load"
                    % (imm, imm - (1 << 32)))
        return "immediate %r does not fit in the s32 imm field" % (imm,)

    if kind == "alu":
        klass = code & 0x07
        operation = code & 0xf0
        if code & op.X:
            if type(src) is not int or not 0 <= src <= 10:
                return _bad_reg("src", src)
            if operation == op.MOV and klass == op.ALU64 and off == op.OFF_ADDR_SPACE_CAST:
                pass                                   # addr_space_cast carries imm
            elif imm != 0:
                return "imm must be 0 when the operand is a register"
        elif src != 0:
            return "src must be 0 when the operand is an immediate"
        if off != 0:
            if operation in (op.DIV, op.MOD):
                if off != op.OFF_SIGNED:
                    return "off of a division/modulo must be 0 (unsigned) or 1 (signed)"
            elif operation == op.MOV and code & op.X:
                allowed = (1, 8, 16, 32) if klass == op.ALU64 else (8, 16)
                if off not in allowed:
                    return "off of a register move must be 0 or a sign extension width %s" \
                        % "/".join(str(a) for a in allowed if a != 1)
            else:
                return "off must be 0 for this operation"
        if dst == 10:
            return _R10
        return None
    if kind == "jcond":
        if code & op.X:
            if type(src) is not int or not 0 <= src <= 10:
                return _bad_reg("src", src)
            if imm != 0:
                return "imm must be 0 when comparing with a register"
        elif src != 0:
            return "src must be 0 when comparing with an immediate"
        return None
    if kind == "ldx":
        if type(src) is not int or not 0 <= src <= 10:
            return _bad_reg("src", src)
        if imm != 0:
            return "imm must be 0 for a load"
        if dst == 10:
            return _R10
        return None
    if kind == "stx":
        if type(src) is not int or not 0 <= src <= 10:
            return _bad_reg("src", src)
        if imm != 0:
            return "imm must be 0 for a register store"
        return None
    if kind == "st":
        if src != 0:
            return "src must be 0 for an immediate store"
        return None
    if kind == "call":
        if dst != 0:
            return "dst must be 0 for a call"
        if src == op.CALL_HELPER:
            if off != 0:
                return "off must be 0 for a helper call"
            if imm < 0:
                return "helper id %d is negative" % imm
        elif src == op.PSEUDO_CALL:
            if off != 0:
                return "off must be 0 for a bpf-to-bpf call"
        elif src != op.PSEUDO_KFUNC_CALL:
            return "src of a call must be 0 (helper), 1 (bpf-to-bpf) or 2 (kfunc), not %r" \
                % (src,)
        return None
    if kind == "exit":
        if dst or src or off or imm:
            return "exit takes no operands (dst, src, off and imm must be 0)"
        return None
    if kind == "ldimm64":
        if type(src) is not int or not 0 <= src <= op.PSEUDO_MAP_IDX_VALUE:
            return "src of a 64-bit load must be a pseudo kind 0..6, not %r" % (src,)
        if off != 0:
            return "off must be 0 for a 64-bit load"
        if dst == 10:
            return _R10
        return None
    if kind == "ja":
        if dst or src or imm:
            return "goto uses only off (dst, src and imm must be 0)"
        return None
    if kind == "ja32":
        if dst or src or off:
            return "gotol uses only imm (dst, src and off must be 0)"
        return None
    if kind == "neg" or kind == "end":
        if src != 0 or off != 0:
            return "src and off must be 0"
        if kind == "neg":
            if imm != 0:
                return "imm must be 0 for a negation"
        elif imm not in (16, 32, 64):
            return "byte swap width must be 16, 32 or 64, not %d" % imm
        if dst == 10:
            return _R10
        return None
    if kind == "atomic":
        if type(src) is not int or not 0 <= src <= 10:
            return _bad_reg("src", src)
        if imm not in ATOMIC_OPS:
            return "unknown atomic operation 0x%x" % (imm & 0xffffffff)
        if imm == op.LOAD_ACQ:
            if dst == 10:
                return _R10
        elif imm != op.STORE_REL:
            if (code & 0x18) not in (op.SIZE_W, op.SIZE_DW):
                return "atomic read-modify-write operations are 32 or 64 bits wide"
            if imm & op.FETCH and imm != op.CMPXCHG and src == 10:
                return "fetches into r10, the read-only frame pointer"
        return None
    if kind == "may_goto":
        if dst or src or imm:
            return "may_goto uses only off (dst, src and imm must be 0)"
        return None
    if kind == "ldabs" or kind == "ldind":
        if dst != 0 or off != 0:
            return "legacy packet loads use r0 and off 0"
        if kind == "ldabs":
            if src != 0:
                return "src must be 0 for an absolute packet load"
        elif type(src) is not int or not 0 <= src <= 10:
            return _bad_reg("src", src)
        return None
    if kind == "gotox":
        if src or off or imm:
            return "gotox uses only dst"
        return None
    return None  # pragma: no cover - every kind is handled above
