"""The code generator's instruction list: BPF instructions over virtual registers.

Code generation emits real ``tinytrace.asm.Insn`` values and ``Label`` markers, except that
register fields may hold *virtual* registers (numbers >= ``VREG_BASE``); the register
allocator (``tinytrace.lang.regalloc``) later replaces them with r0-r9.  Physical registers
appear where the ABI fixes them: r1-r5 for helper arguments, r0 for results, r1 (the
context) at entry, r10 for the stack.  Each instruction carries the source location of the
statement or expression that produced it in its ``comment`` field (a ``(line, col)``
tuple) until the final pass turns locations into text.

``uses_defs(insn)`` tells which registers an instruction reads and writes; it is the one
place that knows the register semantics of every opcode the compiler emits.
"""
from tinytrace.asm import Insn, Label
from tinytrace.asm import opcodes as op

VREG_BASE = 16
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
FP = R10
ARG_REGS = (R1, R2, R3, R4, R5)
CALLER_SAVED = (R0, R1, R2, R3, R4, R5)

_SIZE = {1: op.SIZE_B, 2: op.SIZE_H, 4: op.SIZE_W, 8: op.SIZE_DW}
ALU_OPS = {"+": op.ADD, "-": op.SUB, "*": op.MUL, "/": op.DIV, "%": op.MOD, "|": op.OR,
           "&": op.AND, "^": op.XOR, "<<": op.LSH, ">>": op.RSH, "s>>": op.ARSH,
           "mov": op.MOV}
# comparison -> (unsigned jump, signed jump)
JUMP_OPS = {"==": (op.JEQ, op.JEQ), "!=": (op.JNE, op.JNE), ">": (op.JGT, op.JSGT),
            ">=": (op.JGE, op.JSGE), "<": (op.JLT, op.JSLT), "<=": (op.JLE, op.JSLE),
            "&": (op.JSET, op.JSET)}
NEGATE = {"==": "!=", "!=": "==", ">": "<=", "<=": ">", "<": ">=", ">=": "<"}

_helper_ids = {}


def helper_id(name):
    ident = _helper_ids.get(name)
    if ident is None:
        from tinytrace.asm import helpers
        ident = helpers.id_of(name)
        if ident is None:
            raise KeyError(name)
        _helper_ids[name] = ident
    return ident


def is_vreg(r):
    return r >= VREG_BASE


def fits_s32(v):
    return -(1 << 31) <= v < (1 << 31)


class Builder:
    """Appends instructions for one program; hands out virtual registers and labels."""

    def __init__(self, label_prefix="L"):
        self.code = []
        self.next_vreg = VREG_BASE
        self.next_label = 0
        self.label_prefix = label_prefix
        self.loc = None

    def vreg(self):
        v = self.next_vreg
        self.next_vreg += 1
        return v

    def new_label(self, hint="L"):
        self.next_label += 1
        return "%s%s%d" % (self.label_prefix, hint, self.next_label)

    def place(self, name):
        self.code.append(Label(name))

    def emit(self, opcode, dst=0, src=0, off=0, imm=0, ref=None):
        self.code.append(Insn(opcode, dst, src, off, imm, ref, self.loc))

    # -- ALU ------------------------------------------------------------------------------
    def alu(self, name, dst, src=None, imm=None, is32=False, signed=False):
        """``dst OP= src`` (register) or ``dst OP= imm``; 32-bit when ``is32``."""
        cls = op.ALU if is32 else op.ALU64
        off = op.OFF_SIGNED if signed and name in ("/", "%") else 0
        code = ALU_OPS[name]
        if src is not None:
            self.emit(cls | code | op.X, dst, src, off, 0)
        else:
            if is32 and (1 << 31) <= imm < (1 << 32):
                imm -= 1 << 32
            if not fits_s32(imm):
                raise AssertionError("ALU immediate %d out of range" % imm)
            self.emit(cls | code | op.K, dst, 0, off, imm)

    def mov(self, dst, src, is32=False):
        if dst != src or is32:
            self.alu("mov", dst, src=src, is32=is32)

    def movi(self, dst, value):
        """``dst = value`` for any 64-bit value (a two-slot load when it does not fit s32)."""
        value = value & 0xFFFFFFFFFFFFFFFF
        signed = value - (1 << 64) if value >> 63 else value
        if fits_s32(signed):
            self.emit(op.ALU64 | op.MOV | op.K, dst, 0, 0, signed)
        elif value < (1 << 32):
            self.emit(op.ALU | op.MOV | op.K, dst, 0, 0, value - (1 << 32) if value >> 31
                      else value)   # w = imm: the upper half is zeroed
        else:
            self.emit(op.LD_IMM64, dst, 0, 0, value)

    def neg(self, dst, is32=False):
        self.emit((op.ALU if is32 else op.ALU64) | op.NEG, dst)

    def bswap(self, dst, bits):
        self.emit(op.ALU | op.END | op.TO_BE, dst, 0, 0, bits)

    def sign_extend(self, reg, bits):
        """Make the low ``bits`` of ``reg`` its signed 64-bit value."""
        if bits < 64:
            self.alu("<<", reg, imm=64 - bits)
            self.alu("s>>", reg, imm=64 - bits)

    def zero_extend(self, reg, bits):
        if bits == 32:
            self.mov(reg, reg, is32=True)
        elif bits < 32:
            self.alu("&", reg, imm=(1 << bits) - 1)

    # -- memory ---------------------------------------------------------------------------
    def load(self, dst, base, off, size):
        self.emit(op.LDX | op.MEM | _SIZE[size], dst, base, off, 0)

    def store(self, base, off, src, size):
        self.emit(op.STX | op.MEM | _SIZE[size], base, src, off, 0)

    def store_imm(self, base, off, imm, size):
        if size != 8 and (1 << 31) <= imm < (1 << 32):
            imm -= 1 << 32
        self.emit(op.ST | op.MEM | _SIZE[size], base, 0, off, imm)

    def atomic_add(self, base, off, src, size=8):
        self.emit(op.STX | op.ATOMIC | _SIZE[size], base, src, off, op.ADD)

    def addr(self, dst, base, off):
        """``dst = base + off`` (a pointer into the stack or a map value)."""
        self.mov(dst, base)
        if off:
            self.alu("+", dst, imm=off)

    # -- control --------------------------------------------------------------------------
    def jump(self, cmp, a, label, b=None, imm=None, signed=False, is32=False):
        """``if a CMP b goto label`` (register ``b`` or immediate ``imm``)."""
        code = JUMP_OPS[cmp][1 if signed else 0]
        cls = op.JMP32 if is32 else op.JMP
        if b is not None:
            self.emit(cls | code | op.X, a, b, 0, 0, label)
        else:
            if not fits_s32(imm):
                t = self.vreg()
                self.movi(t, imm)
                self.emit(cls | code | op.X, a, t, 0, 0, label)
                return
            self.emit(cls | code | op.K, a, 0, 0, imm, label)

    def goto(self, label):
        self.emit(op.JA_OP, 0, 0, 0, 0, label)

    def call(self, helper, *args):
        """Call a helper; ``args`` are registers (virtual or physical), ("imm", value) or
        ("map", name) pairs.  Returns the virtual register holding the result."""
        for reg, a in zip(ARG_REGS, args):
            if isinstance(a, tuple):
                if a[0] == "map":
                    self.load_map(reg, a[1])
                else:
                    self.movi(reg, a[1])
            else:
                self.mov(reg, a)
        self.emit(op.CALL_OP, 0, op.CALL_HELPER, 0, helper_id(helper))
        res = self.vreg()
        self.mov(res, R0)
        return res

    def call_kfunc(self, btf_id, *args):
        """Call a kernel function by BTF id; like ``call`` otherwise."""
        for reg, a in zip(ARG_REGS, args):
            if isinstance(a, tuple):
                if a[0] == "map":
                    self.load_map(reg, a[1])
                else:
                    self.movi(reg, a[1])
            else:
                self.mov(reg, a)
        self.emit(op.CALL_OP, 0, op.PSEUDO_KFUNC_CALL, 0, btf_id)
        res = self.vreg()
        self.mov(res, R0)
        return res

    def load_map(self, dst, name):
        self.code.append(Insn(op.LD_IMM64, dst, op.PSEUDO_MAP_FD, 0, 0, name, self.loc))

    def exit(self, value=0):
        self.movi(R0, value)
        self.emit(op.EXIT_OP)


def uses_defs(x):
    """(registers read, registers written) by instruction ``x``."""
    code = x[0]
    cls = code & 0x07
    dst, src = x[1], x[2]
    if cls == op.ALU64 or cls == op.ALU:
        sub = code & 0xF0
        if sub == op.MOV:
            return ((src,) if code & op.X else ()), (dst,)
        if sub == op.NEG or sub == op.END:
            return (dst,), (dst,)
        return ((dst, src) if code & op.X else (dst,)), (dst,)
    if cls == op.LDX:
        return (src,), (dst,)
    if cls == op.ST:
        return (dst,), ()
    if cls == op.STX:
        if code & 0xE0 == op.ATOMIC:
            imm = x[4]
            if imm == op.CMPXCHG:
                return (dst, src, R0), (R0,)
            if imm & op.FETCH:
                return (dst, src), (src,)
            return (dst, src), ()
        return (dst, src), ()
    if cls == op.JMP or cls == op.JMP32:
        sub = code & 0xF0
        if sub == op.CALL:
            if src == op.PSEUDO_KFUNC_CALL:
                return ARG_REGS, CALLER_SAVED    # argument count unknown: assume all
            from tinytrace.asm import helpers
            n = helpers.nargs(x[4])
            return ARG_REGS[:n], CALLER_SAVED
        if sub == op.EXIT:
            return (R0,), ()
        if sub == op.JA:
            return (), ()
        return ((dst, src) if code & op.X else (dst,)), ()
    if code == op.LD_IMM64:
        return (), (dst,)
    raise AssertionError("unexpected opcode 0x%02x" % code)


def is_jump(x):
    cls = x[0] & 0x07
    if cls not in (op.JMP, op.JMP32):
        return False
    sub = x[0] & 0xF0
    return sub not in (op.CALL, op.EXIT)


def is_terminator(x):
    """Control never falls through: goto or exit."""
    return x[0] in (op.JA_OP, op.JA32_OP, op.EXIT_OP)


def is_call(x):
    return x[0] == op.CALL_OP


def prune(code):
    """Drop what can never run or does nothing: instructions no path reaches (the verifier
    rejects them), ``goto`` to the very next instruction, and labels nobody jumps to."""
    from tinytrace.asm import opcodes as _op
    while True:
        items = code
        label_at = {}
        insn_index = []
        for i, x in enumerate(items):
            if type(x) is Label:
                label_at[x.name] = i
            else:
                insn_index.append(i)
        reach = set()
        work = [0]
        n = len(items)
        while work:
            i = work.pop()
            while i < n:
                x = items[i]
                if i in reach:
                    break
                reach.add(i)
                if type(x) is Label:
                    i += 1
                    continue
                if is_jump(x) or x[0] == _op.JA32_OP:
                    work.append(label_at[x[5]])
                if is_terminator(x):
                    break
                i += 1
        out = []
        changed = False
        for i, x in enumerate(items):
            if i not in reach and type(x) is not Label:
                changed = True
                continue
            out.append(x)
        # goto the next instruction (only labels in between)
        final = []
        for i, x in enumerate(out):
            if type(x) is not Label and x[0] == _op.JA_OP and x[5] is not None:
                j = i + 1
                nxt = set()
                while j < len(out) and type(out[j]) is Label:
                    nxt.add(out[j].name)
                    j += 1
                if x[5] in nxt:
                    changed = True
                    continue
            final.append(x)
        final, flipped = _flip_jumps(final)
        changed = changed or flipped
        used = set(x[5] for x in final if type(x) is not Label and x[5] is not None
                   and (is_jump(x) or x[0] == _op.JA32_OP))
        code = [x for x in final if type(x) is not Label or x.name in used]
        if len(code) != len(final):
            changed = True
        if not changed:
            return code


_INVERSE = {op.JEQ: op.JNE, op.JNE: op.JEQ, op.JGT: op.JLE, op.JLE: op.JGT, op.JGE: op.JLT,
            op.JLT: op.JGE, op.JSGT: op.JSLE, op.JSLE: op.JSGT, op.JSGE: op.JSLT,
            op.JSLT: op.JSGE}


def _flip_jumps(code):
    """``if c goto A; goto B; A:``  ->  ``if !c goto B; A:``."""
    out = []
    flipped = False
    i = 0
    n = len(code)
    while i < n:
        x = code[i]
        if type(x) is not Label and is_jump(x) and x[0] != op.JA_OP and i + 2 < n:
            y = code[i + 1]
            inv = _INVERSE.get(x[0] & 0xF0)
            if inv is not None and type(y) is not Label and y[0] == op.JA_OP:
                j = i + 2
                names = set()
                while j < n and type(code[j]) is Label:
                    names.add(code[j].name)
                    j += 1
                if x[5] in names:
                    out.append(Insn((x[0] & ~0xF0) | inv, x[1], x[2], x[3], x[4], y[5], x[6]))
                    i += 2
                    flipped = True
                    continue
        out.append(x)
        i += 1
    return out, flipped
