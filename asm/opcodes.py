"""Numeric facts of the eBPF instruction set: classes, operations, sizes, modes, pseudo kinds.

An instruction's 8-bit opcode is ``specific | class``.  For the ALU and jump classes the
specific part is ``code | source`` (source K = immediate, X = register); for the load/store
classes it is ``mode | size``.  The values are those of the kernel's ``linux/bpf.h`` and
Documentation/bpf/standardization/instruction-set.rst; nothing here is computed.
"""

# Instruction classes (low three bits of the opcode).
LD = 0x00
LDX = 0x01
ST = 0x02
STX = 0x03
ALU = 0x04
JMP = 0x05
JMP32 = 0x06
ALU64 = 0x07

# Source operand (ALU and jump classes).
K = 0x00
X = 0x08

# ALU operation codes.
ADD = 0x00
SUB = 0x10
MUL = 0x20
DIV = 0x30
OR = 0x40
AND = 0x50
LSH = 0x60
RSH = 0x70
NEG = 0x80
MOD = 0x90
XOR = 0xa0
MOV = 0xb0
ARSH = 0xc0
END = 0xd0

# Byte-order selector of ALU|END (in the source bit).
TO_LE = 0x00
TO_BE = 0x08

# Jump operation codes.
JA = 0x00
JEQ = 0x10
JGT = 0x20
JGE = 0x30
JSET = 0x40
JNE = 0x50
JSGT = 0x60
JSGE = 0x70
CALL = 0x80
EXIT = 0x90
JLT = 0xa0
JLE = 0xb0
JSLT = 0xc0
JSLE = 0xd0
JCOND = 0xe0           # may_goto (src_reg = MAY_GOTO)

MAY_GOTO = 0

# Load/store sizes.
SIZE_W = 0x00
SIZE_H = 0x08
SIZE_B = 0x10
SIZE_DW = 0x18

SIZE_BYTES = {SIZE_B: 1, SIZE_H: 2, SIZE_W: 4, SIZE_DW: 8}

# Load/store modes.
IMM = 0x00
ABS = 0x20
IND = 0x40
MEM = 0x60
MEMSX = 0x80
ATOMIC = 0xc0

# Atomic operations (in imm of STX|ATOMIC).
FETCH = 0x01
XCHG = 0xe0 | FETCH
CMPXCHG = 0xf0 | FETCH
LOAD_ACQ = 0x100
STORE_REL = 0x110

# Offsets with a meaning on ALU instructions.
OFF_SIGNED = 1            # DIV/MOD: signed division / modulo
OFF_ADDR_SPACE_CAST = 1   # ALU64|MOV|X: addr_space_cast

# src_reg kinds of LD|IMM|DW.
PSEUDO_NONE = 0
PSEUDO_MAP_FD = 1
PSEUDO_MAP_VALUE = 2
PSEUDO_BTF_ID = 3
PSEUDO_FUNC = 4
PSEUDO_MAP_IDX = 5
PSEUDO_MAP_IDX_VALUE = 6

# src_reg kinds of JMP|CALL.
CALL_HELPER = 0
PSEUDO_CALL = 1
PSEUDO_KFUNC_CALL = 2

# Frequently used whole opcodes.
LD_IMM64 = LD | IMM | SIZE_DW          # 0x18, two slots
CALL_OP = JMP | CALL                   # 0x85
EXIT_OP = JMP | EXIT                   # 0x95
JA_OP = JMP | JA                       # 0x05
JA32_OP = JMP32 | JA                   # 0x06, gotol
GOTOX_OP = JMP | JA | X                # 0x0d, indirect jump (decode only)
MAY_GOTO_OP = JMP | JCOND              # 0xe5

MAX_REG = 10
FP = 10


def cls(opcode):
    """The class bits of an opcode."""
    return opcode & 0x07
