"""Linking: label and function offsets, map fds, layout of subprograms, Insn values."""

import pytest

from tinytrace.asm import *  # noqa: F401,F403
from tinytrace.asm import Insn, decode, layout, link, resolve
from tinytrace.asm import opcodes as op


def test_offsets_count_slots_of_wide_loads():
    prog = [
        JEq.Imm(R1, 0, "after"),      # slot 0
        LoadImm64(R2, 1 << 40),       # slots 1-2
        LoadMapPtr(R3, "m"),          # slots 3-4
        Label("after"),
        Ja("top"),                    # slot 5
        Label("top"),
        Exit(),                       # slot 6
    ]
    out = decode(link(prog, {"m": 9}))
    assert out[0] == JEq.Imm(R1, 0, 4)          # 0 + 1 + 4 = 5
    assert out[2] == LoadMapPtr(R3, 9)
    assert out[3] == Ja(0)
    lay = layout(prog)
    assert lay.labels == {"after": 5, "top": 6}
    assert lay.size == 7
    assert lay.slots == [0, 1, 3, 5, 6]


def test_subprograms_and_function_pointers():
    prog = [
        Label("main"),
        CallFunc("add1"),             # slot 0
        LoadFuncPtr(R2, "cb"),        # slots 1-2
        Exit(),                       # slot 3
        Label("add1"),
        Add.Imm(R1, 1),               # slot 4
        Exit(),                       # slot 5
        Label("cb"),
        Mov.Imm(R0, 0),               # slot 6
        Exit(),
    ]
    out = decode(link(prog))
    # bpf-to-bpf call: target = slot + imm + 1
    assert out[0] == CallFunc(3)
    # function pointer: the kernel adds the subprogram at (slot + imm + 1) too
    assert out[1] == LoadFuncPtr(R2, 4)
    assert 1 + out[1].imm + 1 == 6
    assert layout(prog).functions == [(0, "main"), (4, "add1"), (6, "cb")]
    assert layout([Exit()]).functions == [(0, None)]


def test_map_value_keeps_offset_and_resolve_keeps_comments():
    prog = [LoadMapValue(R1, "cfg", 24).with_comment("cfg+24"), Exit()]
    out = resolve(prog, {"cfg": 7})
    assert out[0] == LoadMapValue(R1, 7, 24)
    assert out[0].imm == (24 << 32) | 7
    assert out[0].ref is None and out[0].comment == "cfg+24"
    assert link(prog, {"cfg": 7}) == bytes.fromhex(
        "1821000007000000" "0000000018000000" "9500000000000000")


def test_jalong_reaches_far_and_backwards():
    prog = [Label("top"), JaLong("end")] + [Mov.Imm(R0, 0)] * 70000 + \
        [JaLong("top"), Label("end"), Exit()]
    out = decode(link(prog))
    assert out[0] == JaLong(70001)
    assert out[-2] == JaLong(-70002)


def test_large_program_links():
    # a few thousand instructions, as the compiler produces; linear passes only
    prog = []
    for i in range(3000):
        prog.append(Label("l%d" % i))
        prog.append(JNe.Imm(R1, i, "l%d" % ((i + 7) % 3000)))
        prog.append(LoadMapPtr(R1, "m%d" % (i % 5)))
    prog.append(Exit())
    code = link(prog, {"m%d" % k: 10 + k for k in range(5)})
    assert len(code) == 8 * (3000 * 3 + 1)
    assert decode(code)[1] == LoadMapPtr(R1, 10)


def test_insn_is_an_immutable_value():
    a = Mov.Imm(R0, 1)
    with pytest.raises(AttributeError):
        a.imm = 2
    assert a == Insn(0xb7, 0, 0, 0, 1)
    assert a == a.with_comment("x")                     # comments do not take part
    assert hash(a) == hash(a.with_comment("x"))
    assert a != a.with_ref("x")
    assert a.replace(imm=2) == Mov.Imm(R0, 2)
    assert (a.opcode, a.dst, a.src, a.off, a.imm, a.ref, a.comment) == \
        (0xb7, 0, 0, 0, 1, None, None)
    assert LoadImm64(R0, 1).slots == 2 and a.slots == 1
    assert {a, Mov.Imm(R0, 1)} == {a}
    assert Label("x") == Label("x") and Label("x") != Label("y")
    with pytest.raises(TypeError):
        a.replace(bogus=1)


def test_sizes_and_registers():
    assert (B, H, W, DW) == (op.SIZE_B, op.SIZE_H, op.SIZE_W, op.SIZE_DW)
    assert [s.bytes for s in (B, H, W, DW)] == [1, 2, 4, 8]
    assert repr(DW) == "DW"
    assert (R0, R10, RFP) == (0, 10, 10)
