"""Builders: functions and operation objects that make `Insn` values and read like the ISA.

    Mov.Imm(R0, 0)            r0 = 0             Add.Reg32(R1, R2)     w1 += w2
    JEq.Imm(R0, 0, "out")     if r0 == 0x0 goto out
    LoadMem(R0, R1, 8, W)     r0 = *(u32 *)(r1 +8)
    StoreImm(R10, -4, 0, W)   *(u32 *)(r10 -4) = 0
    AtomicAdd(R0, 0, R1, DW)  lock *(u64 *)(r0 +0) += r1
    LoadMapPtr(R1, "counts")  r1 = map[counts] ll   (fd filled in by link)
    Call("map_lookup_elem")   call bpf_map_lookup_elem#1
    CallFunc("sub")           call sub            (bpf-to-bpf, offset filled in by link)

Every builder checks what it made (registers, ranges, reserved fields) and raises `AsmError`
naming the instruction, so a code generator's mistake points at the line that made it.
Jump targets are label names (resolved by `link`) or plain ints (a relative offset).
"""

from . import opcodes as op
from .insn import AsmError, Insn, Label, Size
from .validate import problem

__all__ = [
    "Mov", "Add", "Sub", "Mul", "Div", "SDiv", "Mod", "SMod", "Or", "And", "Xor", "Lsh",
    "Rsh", "Arsh", "Neg", "Neg32", "MovSX", "MovSX32", "ToBE", "ToLE", "BSwap",
    "AddrSpaceCast",
    "JEq", "JNe", "JGt", "JGe", "JLt", "JLe", "JSGt", "JSGe", "JSLt", "JSLe", "JSet",
    "Ja", "JaLong", "MayGoto", "GotoX",
    "LoadMem", "LoadMemSX", "StoreMem", "StoreImm",
    "AtomicAdd", "AtomicOr", "AtomicAnd", "AtomicXor", "AtomicXchg", "AtomicCmpXchg",
    "LoadAcquire", "StoreRelease",
    "LoadImm64", "LoadMapPtr", "LoadMapValue", "LoadFuncPtr", "LoadBTFId",
    "LoadAbs", "LoadInd",
    "Call", "CallFunc", "CallKfunc", "Exit", "Label",
]


def _checked(insn):
    why = problem(insn)
    if why is not None:
        from .disasm import describe
        raise AsmError(why, text=describe(insn))
    return insn


def _size(size):
    if type(size) is not Size:
        raise AsmError("size must be one of B, H, W, DW (not %r)" % (size,))
    return int(size)


def _target(label, what):
    """(off_or_imm, ref) for a jump target: a label name or a relative offset."""
    if isinstance(label, str):
        if not label:
            raise AsmError("%s: empty label name" % what)
        return 0, label
    if type(label) is int:
        return label, None
    raise AsmError("%s: jump target must be a label name or an int offset, not %r"
                   % (what, label))


class AluOp(object):
    """An ALU operation with its four forms: ``.Imm/.Reg`` (64-bit), ``.Imm32/.Reg32``."""

    __slots__ = ("name", "code", "off")

    def __init__(self, name, code, off=0):
        self.name = name
        self.code = code
        self.off = off

    def Imm(self, dst, imm):
        return _checked(Insn(op.ALU64 | self.code | op.K, dst, 0, self.off, imm))

    def Reg(self, dst, src):
        return _checked(Insn(op.ALU64 | self.code | op.X, dst, src, self.off, 0))

    def Imm32(self, dst, imm):
        # A 32-bit operation sees only the low 32 bits: accept them written unsigned.
        if type(imm) is int and (1 << 31) <= imm < (1 << 32):
            imm -= 1 << 32
        return _checked(Insn(op.ALU | self.code | op.K, dst, 0, self.off, imm))

    def Reg32(self, dst, src):
        return _checked(Insn(op.ALU | self.code | op.X, dst, src, self.off, 0))

    def __repr__(self):
        return self.name


Mov = AluOp("Mov", op.MOV)
Add = AluOp("Add", op.ADD)
Sub = AluOp("Sub", op.SUB)
Mul = AluOp("Mul", op.MUL)
Div = AluOp("Div", op.DIV)
SDiv = AluOp("SDiv", op.DIV, op.OFF_SIGNED)
Mod = AluOp("Mod", op.MOD)
SMod = AluOp("SMod", op.MOD, op.OFF_SIGNED)
Or = AluOp("Or", op.OR)
And = AluOp("And", op.AND)
Xor = AluOp("Xor", op.XOR)
Lsh = AluOp("Lsh", op.LSH)
Rsh = AluOp("Rsh", op.RSH)
Arsh = AluOp("Arsh", op.ARSH)


def Neg(dst):
    """r = -r (64-bit)."""
    return _checked(Insn(op.ALU64 | op.NEG, dst))


def Neg32(dst):
    """w = -w (32-bit)."""
    return _checked(Insn(op.ALU | op.NEG, dst))


def MovSX(dst, src, bits):
    """r_dst = (s8|s16|s32) r_src."""
    return _checked(Insn(op.ALU64 | op.MOV | op.X, dst, src, bits, 0))


def MovSX32(dst, src, bits):
    """w_dst = (s8|s16) w_src."""
    return _checked(Insn(op.ALU | op.MOV | op.X, dst, src, bits, 0))


def ToBE(dst, bits):
    """r = be16/be32/be64 r: convert between host order and big endian."""
    return _checked(Insn(op.ALU | op.END | op.TO_BE, dst, 0, 0, bits))


def ToLE(dst, bits):
    """r = le16/le32/le64 r: convert between host order and little endian."""
    return _checked(Insn(op.ALU | op.END | op.TO_LE, dst, 0, 0, bits))


def BSwap(dst, bits):
    """r = bswap16/32/64 r: unconditional byte swap."""
    return _checked(Insn(op.ALU64 | op.END, dst, 0, 0, bits))


def AddrSpaceCast(dst, src, dst_as, src_as):
    """r_dst = addr_space_cast(r_src, dst_as, src_as) (arena pointers)."""
    if not (type(dst_as) is int and 0 <= dst_as <= 0xffff and
            type(src_as) is int and 0 <= src_as <= 0xffff):
        raise AsmError("address spaces must be 0..65535")
    imm = (dst_as << 16) | src_as
    if imm >= 1 << 31:
        imm -= 1 << 32
    return _checked(Insn(op.ALU64 | op.MOV | op.X, dst, src, op.OFF_ADDR_SPACE_CAST, imm))


class JumpOp(object):
    """A conditional jump with ``.Imm/.Reg`` (64-bit compare) and ``.Imm32/.Reg32``."""

    __slots__ = ("name", "code")

    def __init__(self, name, code):
        self.name = name
        self.code = code

    def Imm(self, dst, imm, label):
        off, ref = _target(label, self.name)
        return _checked(Insn(op.JMP | self.code | op.K, dst, 0, off, imm, ref))

    def Reg(self, dst, src, label):
        off, ref = _target(label, self.name)
        return _checked(Insn(op.JMP | self.code | op.X, dst, src, off, 0, ref))

    def Imm32(self, dst, imm, label):
        if type(imm) is int and (1 << 31) <= imm < (1 << 32):
            imm -= 1 << 32
        off, ref = _target(label, self.name)
        return _checked(Insn(op.JMP32 | self.code | op.K, dst, 0, off, imm, ref))

    def Reg32(self, dst, src, label):
        off, ref = _target(label, self.name)
        return _checked(Insn(op.JMP32 | self.code | op.X, dst, src, off, 0, ref))

    def __repr__(self):
        return self.name


JEq = JumpOp("JEq", op.JEQ)
JNe = JumpOp("JNe", op.JNE)
JGt = JumpOp("JGt", op.JGT)
JGe = JumpOp("JGe", op.JGE)
JLt = JumpOp("JLt", op.JLT)
JLe = JumpOp("JLe", op.JLE)
JSGt = JumpOp("JSGt", op.JSGT)
JSGe = JumpOp("JSGe", op.JSGE)
JSLt = JumpOp("JSLt", op.JSLT)
JSLe = JumpOp("JSLe", op.JSLE)
JSet = JumpOp("JSet", op.JSET)


def Ja(label):
    """goto label (16-bit offset)."""
    off, ref = _target(label, "Ja")
    return _checked(Insn(op.JA_OP, 0, 0, off, 0, ref))


def JaLong(label):
    """gotol label (32-bit offset in imm)."""
    imm, ref = _target(label, "JaLong")
    return _checked(Insn(op.JA32_OP, 0, 0, 0, imm, ref))


def MayGoto(label):
    """may_goto label: jump when the kernel's loop budget runs out."""
    off, ref = _target(label, "MayGoto")
    return _checked(Insn(op.MAY_GOTO_OP, 0, 0, off, 0, ref))


def GotoX(dst):
    """gotox r_dst: indirect jump (newer kernels only)."""
    return _checked(Insn(op.GOTOX_OP, dst))


def LoadMem(dst, src, off, size):
    """r_dst = *(u<size> *)(r_src + off)."""
    return _checked(Insn(op.LDX | op.MEM | _size(size), dst, src, off, 0))


def LoadMemSX(dst, src, off, size):
    """r_dst = *(s<size> *)(r_src + off), sign-extended (size B, H or W)."""
    size = _size(size)
    if size == op.SIZE_DW:
        raise AsmError("LoadMemSX: a sign-extending load is B, H or W wide, not DW")
    return _checked(Insn(op.LDX | op.MEMSX | size, dst, src, off, 0))


def StoreMem(dst, off, src, size):
    """*(u<size> *)(r_dst + off) = r_src."""
    return _checked(Insn(op.STX | op.MEM | _size(size), dst, src, off, 0))


def StoreImm(dst, off, imm, size):
    """*(u<size> *)(r_dst + off) = imm."""
    size = _size(size)
    if size != op.SIZE_DW and type(imm) is int and (1 << 31) <= imm < (1 << 32):
        imm -= 1 << 32
    return _checked(Insn(op.ST | op.MEM | size, dst, 0, off, imm))


def _atomic(name, operation, fetch):
    def build(dst, off, src, size, fetch=fetch):
        imm = operation | (op.FETCH if fetch else 0)
        return _checked(Insn(op.STX | op.ATOMIC | _size(size), dst, src, off, imm))
    build.__name__ = name
    build.__qualname__ = name
    build.__doc__ = "lock *(size *)(r_dst + off) %s r_src; with fetch=True, r_src gets " \
        "the old value." % {op.ADD: "+=", op.OR: "|=", op.AND: "&=", op.XOR: "^="}[operation]
    return build


AtomicAdd = _atomic("AtomicAdd", op.ADD, False)
AtomicOr = _atomic("AtomicOr", op.OR, False)
AtomicAnd = _atomic("AtomicAnd", op.AND, False)
AtomicXor = _atomic("AtomicXor", op.XOR, False)


def AtomicXchg(dst, off, src, size):
    """r_src = xchg(*(size *)(r_dst + off), r_src)."""
    return _checked(Insn(op.STX | op.ATOMIC | _size(size), dst, src, off, op.XCHG))


def AtomicCmpXchg(dst, off, src, size):
    """r0 = cmpxchg(*(size *)(r_dst + off), r0, r_src)."""
    return _checked(Insn(op.STX | op.ATOMIC | _size(size), dst, src, off, op.CMPXCHG))


def LoadAcquire(dst, src, off, size):
    """r_dst = load_acquire((size *)(r_src + off))."""
    return _checked(Insn(op.STX | op.ATOMIC | _size(size), dst, src, off, op.LOAD_ACQ))


def StoreRelease(dst, off, src, size):
    """store_release((size *)(r_dst + off), r_src)."""
    return _checked(Insn(op.STX | op.ATOMIC | _size(size), dst, src, off, op.STORE_REL))


def LoadImm64(dst, value):
    """r_dst = value (any 64-bit constant; two slots)."""
    if type(value) is not int or not -(1 << 63) <= value < (1 << 64):
        raise AsmError("LoadImm64: %r is not a 64-bit integer" % (value,))
    return _checked(Insn(op.LD_IMM64, dst, 0, 0, value & 0xffffffffffffffff))


def _fd_or_name(name_or_fd, what):
    if isinstance(name_or_fd, str):
        if not name_or_fd:
            raise AsmError("%s: empty map name" % what)
        return 0, name_or_fd
    fd = name_or_fd if type(name_or_fd) is int else getattr(name_or_fd, "fd", None)
    if type(fd) is not int or not 0 <= fd < (1 << 32):
        raise AsmError("%s: map must be a name or a file descriptor, not %r"
                       % (what, name_or_fd))
    return fd, None


def LoadMapPtr(dst, name_or_fd):
    """r_dst = the map (by name, resolved by link, or by fd)."""
    fd, ref = _fd_or_name(name_or_fd, "LoadMapPtr")
    return _checked(Insn(op.LD_IMM64, dst, op.PSEUDO_MAP_FD, 0, fd, ref))


def LoadMapValue(dst, name_or_fd, offset=0):
    """r_dst = address of the map's value (array maps of one entry) plus ``offset``."""
    fd, ref = _fd_or_name(name_or_fd, "LoadMapValue")
    if type(offset) is not int or not 0 <= offset < (1 << 32):
        raise AsmError("LoadMapValue: offset %r is not a u32" % (offset,))
    return _checked(Insn(op.LD_IMM64, dst, op.PSEUDO_MAP_VALUE, 0, (offset << 32) | fd, ref))


def LoadFuncPtr(dst, label):
    """r_dst = address of the function at ``label`` (callbacks for bpf_loop etc.)."""
    rel, ref = _target(label, "LoadFuncPtr")
    return _checked(Insn(op.LD_IMM64, dst, op.PSEUDO_FUNC, 0, rel & 0xffffffff, ref))


def LoadBTFId(dst, btf_id, btf_fd=0):
    """r_dst = address of the kernel variable with this BTF id (``btf_fd`` for module BTF)."""
    if not (type(btf_id) is int and 0 <= btf_id < (1 << 32) and
            type(btf_fd) is int and 0 <= btf_fd < (1 << 32)):
        raise AsmError("LoadBTFId: ids and fds are u32")
    return _checked(Insn(op.LD_IMM64, dst, op.PSEUDO_BTF_ID, 0, (btf_fd << 32) | btf_id))


def LoadAbs(imm, size):
    """r0 = *(size *)skb[imm] (legacy packet access)."""
    size = _size(size)
    return _checked(Insn(op.LD | op.ABS | size, 0, 0, 0, imm))


def LoadInd(src, imm, size):
    """r0 = *(size *)skb[r_src + imm] (legacy packet access)."""
    size = _size(size)
    return _checked(Insn(op.LD | op.IND | size, 0, src, 0, imm))


def Call(helper):
    """Call a helper by name (``"map_lookup_elem"`` or ``"bpf_map_lookup_elem"``) or id."""
    if isinstance(helper, str):
        from .helpers import id_of
        ident = id_of(helper)
        if ident is None:
            raise AsmError("unknown helper %r" % helper)
    elif type(helper) is int:
        ident = helper
    else:
        raise AsmError("Call: helper must be a name or an id, not %r" % (helper,))
    return _checked(Insn(op.CALL_OP, 0, op.CALL_HELPER, 0, ident))


def CallFunc(label):
    """Call the bpf-to-bpf function starting at ``label`` (or a relative offset)."""
    imm, ref = _target(label, "CallFunc")
    return _checked(Insn(op.CALL_OP, 0, op.PSEUDO_CALL, 0, imm, ref))


def CallKfunc(btf_id, btf_fd_index=0):
    """Call a kernel function by BTF id (``btf_fd_index`` selects module BTF in fd_array)."""
    return _checked(Insn(op.CALL_OP, 0, op.PSEUDO_KFUNC_CALL, btf_fd_index, btf_id))


def Exit():
    """exit: return r0."""
    return Insn(op.EXIT_OP)
