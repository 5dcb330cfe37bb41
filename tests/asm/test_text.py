"""The text syntax: what the disassembler prints, and the variants the assembler reads."""

from tinytrace.asm import *  # noqa: F401,F403
from tinytrace.asm import Insn, assemble, decode, disassemble, encode, link
from tinytrace.asm import opcodes as op


def contract_example():
    return [
        StoreImm(R10, -4, 0, W),
        LoadMapPtr(R1, "counts"),
        Mov.Reg(R2, R10), Add.Imm(R2, -4),
        Call("map_lookup_elem"),
        JEq.Imm(R0, 0, "out"),
        Mov.Imm(R1, 1),
        AtomicAdd(R0, 0, R1, DW).with_comment("count.bt:1:20"),
        Label("out"),
        Mov.Imm(R0, 0),
        Exit(),
    ]


def test_symbolic_disassembly():
    assert disassemble(contract_example()) == "\n".join([
        "    0: *(u32 *)(r10 -4) = 0",
        "    1: r1 = map[counts] ll",
        "    3: r2 = r10",
        "    4: r2 += -4",
        "    5: call bpf_map_lookup_elem#1",
        "    6: if r0 == 0x0 goto out",
        "    7: r1 = 1",
        "    8: lock *(u64 *)(r0 +0) += r1       ; count.bt:1:20",
        "out:",
        "    9: r0 = 0",
        "   10: exit",
    ])


def test_linked_disassembly_and_synthesized_labels():
    code = link(contract_example(), {"counts": 5})
    text = disassemble(code)
    assert "    1: r1 = map_fd(5) ll" in text
    assert "    6: if r0 == 0x0 goto +2" in text
    labelled = disassemble(code, numbers=False, labels=True)
    assert "    if r0 == 0x0 goto L9\n" in labelled
    assert "\nL9:\n    r0 = 0\n" in labelled


def test_contract_round_trip():
    prog = contract_example()
    maps = {"counts": 5}
    assert link(assemble(disassemble(prog)), maps) == link(prog, maps)
    # a map object with .fd works as well as an int
    class FakeMap(object):
        fd = 5
    assert link(prog, {"counts": FakeMap()}) == link(prog, maps)


def test_comments_prefixes_and_whitespace():
    text = """
    ; a whole-line comment
    // another
    12: (b7) r0 = 0          ; verifier-log style prefix
      r1 =   r2 // trailing
    start: r3 += 1
    exit
    """
    prog = assemble(text)
    assert prog == [Mov.Imm(R0, 0), Mov.Reg(R1, R2), Label("start"), Add.Imm(R3, 1), Exit()]


def test_comment_text_is_escaped():
    insn = Mov.Imm(R0, 0).with_comment("a\nb\x1b[31m;c")
    text = disassemble([insn])
    assert "\n" not in text and "\x1b" not in text
    assert text.endswith("; a\\nb\\x1b[31m;c")
    assert assemble(text) == [Mov.Imm(R0, 0)]


def test_jump_target_forms():
    want = [Insn(op.JA_OP, off=3), Insn(op.JA_OP, off=-2), Insn(op.JA_OP, off=0x1b)]
    assert assemble("goto +3\ngoto pc-2\ngoto +0x1b <LBB0_2>") == want
    assert assemble("gotol +70000")[0] == JaLong(70000)
    assert assemble("may_goto +3")[0] == MayGoto(3)
    assert assemble("gotox r4")[0] == GotoX(R4)


def test_call_forms():
    sub_prog = assemble("call sub\ncall bpf_ktime_get_ns#5\ncall ktime_get_ns\ncall 5\n"
                        "call pc+3\ncall kfunc#77\ncall kfunc#77@2\nsub:\nexit")
    assert sub_prog[:7] == [CallFunc("sub"), Call(5), Call(5), Call(5), CallFunc(3),
                            CallKfunc(77), CallKfunc(77, 2)]
    # a label of the text wins over a helper of the same name
    prog = assemble("call loop\nexit\nloop:\nexit")
    assert prog[0] == CallFunc("loop")
    assert assemble("call loop")[0] == Call("loop")


def test_wide_load_forms():
    prog = assemble("\n".join([
        "r1 = 0x123456789 ll",
        "r1 = -1 ll",
        "r1 = 0x123456789",                 # too wide for a move: the kernel log's ld_imm64
        "r2 = map[counts] ll",
        "r2 = map_fd(5) ll",
        "r3 = map_value[cfg]+16 ll",
        "r3 = map_value_fd(6)+16 ll",
        "r4 = btf_id(123)+7 ll",
        "r5 = map_idx(2) ll",
        "r5 = map_idx_value(2)+8 ll",
        "r6 = func[cb] ll",
        "r6 = func(pc+4) ll",
        "r7 = some_map ll",
        "cb:",
        "exit",
    ]))
    assert prog[:13] == [
        LoadImm64(R1, 0x123456789), LoadImm64(R1, -1), LoadImm64(R1, 0x123456789),
        LoadMapPtr(R2, "counts"), LoadMapPtr(R2, 5),
        LoadMapValue(R3, "cfg", 16), LoadMapValue(R3, 6, 16),
        LoadBTFId(R4, 123, 7),
        Insn(op.LD_IMM64, 5, op.PSEUDO_MAP_IDX, 0, 2),
        Insn(op.LD_IMM64, 5, op.PSEUDO_MAP_IDX_VALUE, 0, (8 << 32) | 2),
        LoadFuncPtr(R6, "cb"), LoadFuncPtr(R6, 4), LoadMapPtr(R7, "some_map"),
    ]


def test_immediate_forms():
    assert assemble("w1 = 0xffffffff")[0] == Mov.Imm32(R1, -1)
    assert assemble("r1 = -2147483648")[0] == Mov.Imm(R1, -(1 << 31))
    assert assemble("r1 = 2147483648")[0] == LoadImm64(R1, 1 << 31)
    assert assemble("if w1 > 0xffffffff goto +1")[0] == JGt.Imm32(R1, -1, 1)
    assert assemble("*(u32 *)(r10 -4) = 0xffffffff")[0] == StoreImm(R10, -4, -1, W)
    assert assemble("r0 = *(u16 *)skb[r1 - 2]")[0] == LoadInd(R1, -2, H)


def test_raw_insn_form():
    raw = Insn(0xb7, 1, 0, 0, 7)
    assert assemble(".insn 0xb7 dst=1 src=0 off=0 imm=7") == [raw]
    # instructions the kernel would reject show in raw form with the reason
    bad = bytes.fromhex("ff21030004000000")
    text = disassemble(bad)
    assert text == "    0: .insn 0xff dst=1 src=2 off=3 imm=4 ; invalid: unknown opcode 0xff"
    assert decode(bad) == [Insn(0xff, 1, 2, 3, 4)]


def test_str_of_insn_is_its_text():
    assert str(AtomicXchg(R1, 8, R2, W)) == "r2 = atomic_xchg((u32 *)(r1 +8), r2)"
    assert str(Label("x")) == "x:"
    assert repr(Mov.Imm(R0, 1).with_comment("c")) == \
        "Insn(0xb7, dst=0, src=0, off=0, imm=1, comment='c')"


def test_labels_at_end_and_label_only_lines():
    prog = assemble("goto end\nexit\nend:")
    assert prog == [Ja("end"), Exit(), Label("end")]
    assert encode(prog) == encode([Ja(1), Exit()])
