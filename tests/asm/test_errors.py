"""Every error kind, and that each message names the instruction (slot index and text)."""

import pytest

from tinytrace.asm import *  # noqa: F401,F403
from tinytrace.asm import AsmError, Insn, assemble, decode, encode, link
from tinytrace.asm import opcodes as op


def fails(fn, *args, **kwargs):
    with pytest.raises(AsmError) as e:
        fn(*args, **kwargs)
    return e.value


# --- bad registers ------------------------------------------------------------------------

def test_builder_rejects_register_out_of_range():
    e = fails(Mov.Imm, 11, 0)
    assert "bad register: dst is r11" in str(e)
    assert "r11 = 0" in str(e)          # the instruction it tried to make
    e = fails(Add.Reg, R1, 12)
    assert "bad register: src is r12" in str(e)
    e = fails(LoadMem, R0, -1, 0, W)
    assert "bad register" in str(e)
    e = fails(Mov.Imm, "r1", 0)
    assert "bad register" in str(e)


def test_builder_rejects_writes_to_r10():
    for make in (lambda: Mov.Imm(R10, 0), lambda: Add.Reg(RFP, R1),
                 lambda: LoadMem(R10, R1, 0, DW), lambda: LoadImm64(R10, 1),
                 lambda: Neg(R10), lambda: ToBE(R10, 16),
                 lambda: AtomicAdd(R1, 0, R10, DW, fetch=True),
                 lambda: AtomicXchg(R1, 0, R10, W), lambda: LoadAcquire(R10, R1, 0, DW)):
        assert "r10" in str(fails(make))
    # reading r10, storing through it and comparing it are fine
    Mov.Reg(R1, R10)
    StoreMem(R10, -8, R1, DW)
    AtomicAdd(R10, -8, R1, DW)
    JEq.Reg(R10, R1, 0)


def test_link_names_instruction_with_bad_register():
    prog = [Mov.Imm(R0, 0), Insn(0xbf, 1, 13), Exit()]
    e = fails(link, prog)
    assert str(e).startswith("insn 1 (r1 = r13): bad register: src is r13")
    assert e.index == 1


# --- jumps out of range -------------------------------------------------------------------

def far_program(jump):
    return [jump, *[Mov.Imm(R0, 0)] * 40000, Label("far"), Exit()]


def test_conditional_jump_out_of_range_suggests_jalong():
    e = fails(link, far_program(JEq.Imm(R1, 0, "far")))
    msg = str(e)
    assert msg.startswith("insn 0 (if r1 == 0x0 goto far): jump to 'far' is 40000")
    assert "16-bit" in msg and "JaLong" in msg


def test_ja_out_of_range_suggests_jalong_and_jalong_reaches():
    e = fails(link, far_program(Ja("far")))
    assert "insn 0 (goto far)" in str(e) and "use JaLong" in str(e)
    code = link(far_program(JaLong("far")))
    assert decode(code[:8]) == [Insn(op.JA32_OP, imm=40000)]


def test_backward_jump_out_of_range():
    prog = [Label("top"), *[Mov.Imm(R0, 0)] * 33000, Ja("top"), Exit()]
    e = fails(link, prog)
    assert "insn 33000 (goto top)" in str(e) and "-33001" in str(e)


def test_raw_offset_out_of_range():
    assert "s16" in str(fails(Ja, 40000))
    assert "s16" in str(fails(JEq.Imm, R0, 0, -40000))


# --- unresolved symbols, duplicates -------------------------------------------------------

def test_unresolved_label():
    e = fails(link, [Mov.Imm(R0, 0), JNe.Reg(R0, R1, "nowhere"), Exit()])
    assert str(e) == "insn 1 (if r0 != r1 goto nowhere): unresolved label 'nowhere'"


def test_unresolved_function():
    e = fails(link, [CallFunc("helper_fn"), Exit()])
    assert str(e) == "insn 0 (call helper_fn): unresolved function 'helper_fn'"
    e = fails(link, [LoadFuncPtr(R2, "cb"), Exit()])
    assert "insn 0 (r2 = func[cb] ll): unresolved function 'cb'" == str(e)


def test_unresolved_map():
    prog = [Mov.Imm(R0, 0), LoadMapPtr(R1, "counts"), Exit()]
    e = fails(link, prog)
    assert str(e) == "insn 1 (r1 = map[counts] ll): unresolved map 'counts'"
    e = fails(link, prog, {"other": 3})
    assert "unresolved map 'counts' (known maps: other)" in str(e)
    e = fails(link, [LoadMapValue(R1, "cfg", 8), Exit()], {"cfg": "x"})
    assert "map 'cfg' resolves to 'x', not a file descriptor" in str(e)
    e = fails(link, [LoadMapPtr(R1, "m"), Exit()], {"m": -1})    # e.g. a closed map
    assert "map 'm' resolves to -1, not a file descriptor" in str(e)


def test_duplicate_label():
    e = fails(link, [Label("a"), Mov.Imm(R0, 0), Label("a"), Exit()])
    assert "duplicate label 'a'" in str(e) and "insn 1" in str(e)
    e = fails(assemble, "a:\n r0 = 0\na:\n exit")
    assert str(e).startswith("line 3: duplicate label 'a' (first on line 1)")


def test_unknown_helper():
    assert "unknown helper 'no_such_helper'" in str(fails(Call, "no_such_helper"))
    assert "helper id -1 is negative" in str(fails(Call, -1))


# --- offset / immediate overflow ----------------------------------------------------------

def test_offset_overflow_says_off_s16():
    e = fails(LoadMem, R0, R1, 40000, W)
    assert "offset 40000 does not fit in the s16 off field" in str(e)
    e = fails(link, [Insn(0x61, 0, 1, -40000, 0), Exit()])
    assert str(e).startswith("insn 0 (r0 = *(u32 *)(r1 -40000)): offset -40000 does not fit")


def test_immediate_overflow_says_imm_s32():
    e = fails(Mov.Imm, R0, 1 << 31)
    assert "immediate 2147483648 does not fit in the s32 imm field" in str(e)
    assert "write -2147483648, or use a 64-bit load" in str(e)
    e = fails(Add.Imm, R0, 1 << 40)
    assert "does not fit in the s32 imm field" in str(e)
    e = fails(link, [Insn(0x07, 1, 0, 0, 1 << 33), Exit()])
    assert str(e).startswith("insn 0 (r1 += 8589934592): immediate 8589934592 does not fit")
    # 32-bit operations take the low 32 bits written unsigned
    assert Mov.Imm32(R0, 0xffffffff).imm == -1
    assert JEq.Imm32(R0, 0x80000000, 1).imm == -(1 << 31)
    assert StoreImm(R10, -4, 0xffffffff, W).imm == -1
    assert "s32" in str(fails(StoreImm, R10, -8, 0xffffffff, DW))
    assert "not a 64-bit integer" in str(fails(LoadImm64, R0, 1 << 64))


# --- malformed fields, sizes, opcodes -----------------------------------------------------

def test_reserved_fields_and_widths():
    assert "byte swap width" in str(fails(ToBE, R1, 8))
    assert "sign extension width" in str(fails(MovSX, R1, R2, 64))
    assert "sign extension width 8/16" in str(fails(MovSX32, R1, R2, 32))
    assert "32 or 64 bits wide" in str(fails(AtomicAdd, R1, 0, R2, B))
    assert "size must be one of B, H, W, DW (not 8)" in str(fails(LoadMem, R0, R1, 0, 8))
    assert "B, H or W" in str(fails(LoadMemSX, R0, R1, 0, DW))
    e = fails(link, [Insn(0x95, 0, 0, 0, 1)])
    assert str(e) == "insn 0 (exit): exit takes no operands (dst, src, off and imm must be 0)"


def test_unknown_opcode():
    e = fails(encode, [Insn(0xff, 1, 2, 3, 4)])
    assert "unknown opcode 0xff" in str(e)
    assert ".insn 0xff dst=1 src=2 off=3 imm=4" in str(e)


def test_symbol_on_instruction_that_takes_none():
    e = fails(link, [Mov.Imm(R0, 0).with_ref("x"), Exit()])
    assert "insn 0 (r0 = 0): this instruction takes no symbol" in str(e)
    e = fails(link, [Call(1).with_ref("f"), Label("f"), Exit()])
    assert "only a bpf-to-bpf call" in str(e)


def test_not_an_instruction():
    e = fails(link, [Mov.Imm(R0, 0), "exit"])
    assert "insn 1" in str(e) and "not an instruction or label: 'exit'" in str(e)


# --- decode -------------------------------------------------------------------------------

def test_decode_errors():
    assert "not a whole number" in str(fails(decode, b"\x95" * 7))
    e = fails(decode, bytes.fromhex("9500000000000000 1801000001000000"))
    assert str(e) == "insn 1: 64-bit load is missing its second slot"
    e = fails(decode, bytes.fromhex("1801000001000000 0701000000000000"))
    assert "insn 1: second slot of a 64-bit load" in str(e)


# --- assembler text -----------------------------------------------------------------------

def test_assemble_errors_name_the_line():
    e = fails(assemble, "r0 = 0\nr0 = frobnicate\nexit")
    assert str(e).startswith("line 2: cannot parse 'frobnicate'")
    assert e.line == 2
    e = fails(assemble, "r11 = 0")
    assert str(e) == "line 1: bad register: dst is r11 (registers are r0..r10): r11 = 0"
    e = fails(assemble, "r10 = 1")
    assert "writes r10" in str(e)
    e = fails(assemble, "if r1 == 0 goto nowhere\nexit")
    assert str(e).startswith("line 1: unresolved label 'nowhere'")
    e = fails(assemble, "r1 += 0xffffffff")
    assert "write -1, or use a 64-bit load" in str(e)
    e = fails(assemble, "r1 = *(u32 *)(r2 +40000)")
    assert "offset 40000 does not fit in the s16 off field" in str(e)
    e = fails(assemble, "r1 += w2")
    assert "mixes r and w registers" in str(e)
    e = fails(assemble, "call frob")
    assert "'frob' is neither a label in this text nor a helper" in str(e)
    e = fails(assemble, "call bpf_map_lookup_elem#2")
    assert "helper bpf_map_lookup_elem is id 1, not 2" in str(e)
    e = fails(assemble, "r1 = -r2")
    assert "negation must be of the same register" in str(e)
    e = fails(assemble, "w1 = 5 ll")
    assert "needs an r register" in str(e)
    e = fails(assemble, "r2 = atomic64_fetch_add((u32 *)(r1 +0), r2)")
    assert "atomic64_ operations are on u64" in str(e)
