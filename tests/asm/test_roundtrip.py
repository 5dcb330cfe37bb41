"""Round trips over thousands of generated programs.

A seeded generator makes valid instructions of every kind the kernel accepts (every ALU and
jump operation in both widths and both operand sources, every load/store size and mode,
every atomic operation, every 64-bit load kind, calls of all three kinds) with boundary
values mixed in.  For each program:
    decode(encode(p)) == p
    assemble(disassemble(p)) == p           (with and without slot numbers)
    encode(assemble(disassemble(p, labels=True))) == encode(p)
and for symbolic programs (labels, functions, map names):
    link(assemble(disassemble(p)), maps) == link(p, maps)
"""

import random

import pytest

from tinytrace.asm import (Insn, Label, assemble, decode, disassemble, encode, link)
from tinytrace.asm import opcodes as op

SEEDS = range(8)
PROGRAMS_PER_SEED = 300

ALU_OPS = [op.ADD, op.SUB, op.MUL, op.DIV, op.OR, op.AND, op.LSH, op.RSH, op.MOD, op.XOR,
           op.MOV, op.ARSH]
JMP_OPS = [op.JEQ, op.JGT, op.JGE, op.JSET, op.JNE, op.JSGT, op.JSGE, op.JLT, op.JLE,
           op.JSLT, op.JSLE]
SIZES = [op.SIZE_B, op.SIZE_H, op.SIZE_W, op.SIZE_DW]
ATOMIC_RMW = [op.ADD, op.OR, op.AND, op.XOR, op.ADD | op.FETCH, op.OR | op.FETCH,
              op.AND | op.FETCH, op.XOR | op.FETCH, op.XCHG, op.CMPXCHG]


class Gen(object):
    def __init__(self, seed):
        self.r = random.Random(seed)

    def s32(self):
        r = self.r
        return r.choice([0, 1, -1, 2, 42, -(1 << 31), (1 << 31) - 1, 0x7f, 0x80, 0xffff,
                         r.randint(-(1 << 31), (1 << 31) - 1), r.randint(-300, 300)])

    def s16(self):
        r = self.r
        return r.choice([0, 1, -1, -8, 8, 32767, -32768, r.randint(-32768, 32767),
                         r.randint(-64, 64)])

    def u64(self):
        r = self.r
        return r.choice([0, 1, 0xffffffff, 1 << 32, (1 << 64) - 1, 1 << 63,
                         r.getrandbits(64), r.getrandbits(33)])

    def reg(self):
        return self.r.randint(0, 10)

    def wreg(self):          # a register that may be written
        return self.r.randint(0, 9)

    def insn(self):
        r = self.r
        kind = r.choice(["alu", "alu", "alu", "neg", "end", "jcond", "jcond", "ja", "ja32",
                         "may_goto", "gotox", "call", "exit", "ldimm64", "ldimm64", "ldabs",
                         "ldind", "ldx", "ldx", "st", "stx", "atomic", "acqrel"])
        if kind == "alu":
            klass = r.choice([op.ALU, op.ALU64])
            code = r.choice(ALU_OPS)
            off = 0
            if r.random() < 0.5:
                src = self.reg()
                if code in (op.DIV, op.MOD):
                    off = r.choice([0, 1])
                elif code == op.MOV:
                    widths = [0, 8, 16, 32] if klass == op.ALU64 else [0, 8, 16]
                    off = r.choice(widths)
                    if klass == op.ALU64 and r.random() < 0.1:
                        return Insn(klass | code | op.X, self.wreg(), src, 1,
                                    r.randint(0, 0xffff) | (r.randint(0, 0x7fff) << 16))
                return Insn(klass | code | op.X, self.wreg(), src, off, 0)
            if code in (op.DIV, op.MOD):
                off = r.choice([0, 1])
            return Insn(klass | code | op.K, self.wreg(), 0, off, self.s32())
        if kind == "neg":
            return Insn(r.choice([op.ALU, op.ALU64]) | op.NEG, self.wreg())
        if kind == "end":
            code = r.choice([op.ALU | op.END | op.TO_LE, op.ALU | op.END | op.TO_BE,
                             op.ALU64 | op.END])
            return Insn(code, self.wreg(), 0, 0, r.choice([16, 32, 64]))
        if kind == "jcond":
            klass = r.choice([op.JMP, op.JMP32])
            code = r.choice(JMP_OPS)
            if r.random() < 0.5:
                return Insn(klass | code | op.X, self.reg(), self.reg(), self.s16(), 0)
            return Insn(klass | code | op.K, self.reg(), 0, self.s16(), self.s32())
        if kind == "ja":
            return Insn(op.JA_OP, 0, 0, self.s16(), 0)
        if kind == "ja32":
            return Insn(op.JA32_OP, 0, 0, 0, self.s32())
        if kind == "may_goto":
            return Insn(op.MAY_GOTO_OP, 0, 0, self.s16(), 0)
        if kind == "gotox":
            return Insn(op.GOTOX_OP, self.reg())
        if kind == "call":
            which = r.randint(0, 2)
            if which == 0:
                return Insn(op.CALL_OP, 0, 0, 0, r.choice([r.randint(0, 211),
                                                            r.randint(212, 100000)]))
            if which == 1:
                return Insn(op.CALL_OP, 0, 1, 0, self.s32())
            return Insn(op.CALL_OP, 0, 2, r.choice([0, 0, 1, 7]), r.randint(0, (1 << 31) - 1))
        if kind == "exit":
            return Insn(op.EXIT_OP)
        if kind == "ldimm64":
            src = r.randint(0, 6)
            if src == 0:
                return Insn(op.LD_IMM64, self.wreg(), 0, 0, self.u64())
            hi = r.getrandbits(32) if src in (op.PSEUDO_MAP_VALUE, op.PSEUDO_BTF_ID,
                                              op.PSEUDO_MAP_IDX_VALUE) else 0
            return Insn(op.LD_IMM64, self.wreg(), src, 0, (hi << 32) | r.getrandbits(32))
        if kind in ("ldabs", "ldind"):
            size = r.choice([op.SIZE_B, op.SIZE_H, op.SIZE_W])
            if kind == "ldabs":
                return Insn(op.LD | op.ABS | size, 0, 0, 0, self.s32())
            return Insn(op.LD | op.IND | size, 0, self.reg(), 0, self.s32())
        if kind == "ldx":
            if r.random() < 0.3:
                size = r.choice([op.SIZE_B, op.SIZE_H, op.SIZE_W])
                return Insn(op.LDX | op.MEMSX | size, self.wreg(), self.reg(), self.s16(), 0)
            return Insn(op.LDX | op.MEM | r.choice(SIZES), self.wreg(), self.reg(),
                        self.s16(), 0)
        if kind == "st":
            return Insn(op.ST | op.MEM | r.choice(SIZES), self.reg(), 0, self.s16(), self.s32())
        if kind == "stx":
            return Insn(op.STX | op.MEM | r.choice(SIZES), self.reg(), self.reg(), self.s16(), 0)
        if kind == "atomic":
            imm = r.choice(ATOMIC_RMW)
            src = self.wreg() if imm & op.FETCH else self.reg()
            return Insn(op.STX | op.ATOMIC | r.choice([op.SIZE_W, op.SIZE_DW]), self.reg(),
                        src, self.s16(), imm)
        # load-acquire / store-release, any size
        size = r.choice(SIZES)
        if r.random() < 0.5:
            return Insn(op.STX | op.ATOMIC | size, self.wreg(), self.reg(), self.s16(),
                        op.LOAD_ACQ)
        return Insn(op.STX | op.ATOMIC | size, self.reg(), self.reg(), self.s16(),
                    op.STORE_REL)

    def program(self):
        return [self.insn() for _ in range(self.r.randint(1, 40))]


def all_programs():
    for seed in SEEDS:
        g = Gen(seed)
        for _ in range(PROGRAMS_PER_SEED):
            yield g.program()


def test_generator_covers_every_opcode():
    from tinytrace.asm.validate import KIND
    seen = set()
    for prog in all_programs():
        seen.update(x.opcode for x in prog)
    assert seen == set(KIND)


@pytest.mark.parametrize("seed", SEEDS)
def test_raw_round_trips(seed):
    g = Gen(seed)
    for _ in range(PROGRAMS_PER_SEED):
        prog = g.program()
        raw = encode(prog)
        assert len(raw) == 8 * sum(x.slots for x in prog)
        assert decode(raw) == prog
        text = disassemble(prog)
        assert assemble(text) == prog, text
        assert disassemble(raw) == text
        assert assemble(disassemble(prog, numbers=False)) == prog
        assert encode(assemble(disassemble(raw, labels=True))) == raw


class SymGen(Gen):
    """Programs with labels, jumps to them, bpf-to-bpf functions and map names."""

    def program(self):
        r = self.r
        nfuncs = r.randint(0, 3)
        body = []
        labels = ["l%d" % i for i in range(r.randint(1, 6))]
        funcs = ["f%d" % i for i in range(nfuncs)]
        maps = ["m%d" % i for i in range(3)]
        for section in ["main"] + funcs:
            if section != "main":
                body.append(Label(section))
            for _ in range(r.randint(1, 25)):
                c = r.random()
                if c < 0.15:
                    name = r.choice(labels)
                    code = r.choice(JMP_OPS)
                    klass = r.choice([op.JMP, op.JMP32])
                    body.append(Insn(klass | code | op.K, self.reg(), 0, 0, self.s32(), name))
                elif c < 0.2:
                    body.append(Insn(op.JA_OP, 0, 0, 0, 0, r.choice(labels)))
                elif c < 0.23:
                    body.append(Insn(op.JA32_OP, 0, 0, 0, 0, r.choice(labels)))
                elif c < 0.25:
                    body.append(Insn(op.MAY_GOTO_OP, 0, 0, 0, 0, r.choice(labels)))
                elif c < 0.3 and funcs:
                    body.append(Insn(op.CALL_OP, 0, 1, 0, 0, r.choice(funcs)))
                elif c < 0.33 and funcs:
                    body.append(Insn(op.LD_IMM64, self.wreg(), op.PSEUDO_FUNC, 0, 0,
                                     r.choice(funcs)))
                elif c < 0.4:
                    body.append(Insn(op.LD_IMM64, self.wreg(), op.PSEUDO_MAP_FD, 0, 0,
                                     r.choice(maps)))
                elif c < 0.45:
                    body.append(Insn(op.LD_IMM64, self.wreg(), op.PSEUDO_MAP_VALUE, 0,
                                     r.randint(0, 4096) << 32, r.choice(maps)))
                else:
                    insn = self.insn()
                    if r.random() < 0.2:
                        insn = insn.with_comment("src.bt:%d:%d; x" % (r.randint(1, 99),
                                                                        r.randint(1, 9)))
                    body.append(insn)
            body.append(Insn(op.EXIT_OP))
        for name in labels:
            body.insert(r.randint(0, len(body)), Label(name))
        return body


@pytest.mark.parametrize("seed", SEEDS)
def test_symbolic_round_trips(seed):
    g = SymGen(1000 + seed)
    maps = {"m0": 3, "m1": 4, "m2": 100}
    for _ in range(PROGRAMS_PER_SEED // 2):
        prog = g.program()
        want = link(prog, maps)
        text = disassemble(prog)
        back = assemble(text)
        assert link(back, maps) == want, text
        assert back == [x for x in prog]  # labels and refs survive; comments are not compared
        assert link(assemble(disassemble(prog, numbers=False)), maps) == want
        # the linked bytes round-trip too, with synthesized labels
        assert encode(assemble(disassemble(want, labels=True))) == want
