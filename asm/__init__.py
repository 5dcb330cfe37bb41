"""tinytrace.asm: a BPF assembler in pure Python (it never touches the kernel).

Build programs from instruction values, link them against map fds, and read or write them as
text::

    from tinytrace.asm import *
    prog = [
        StoreImm(R10, -4, 0, W),
        LoadMapPtr(R1, "counts"),
        Mov.Reg(R2, R10), Add.Imm(R2, -4),
        Call("map_lookup_elem"),
        JEq.Imm(R0, 0, "out"),
        Mov.Imm(R1, 1),
        AtomicAdd(R0, 0, R1, DW),
        Label("out"),
        Mov.Imm(R0, 0),
        Exit(),
    ]
    code = link(prog, maps={"counts": fd})   # bytes for BPF_PROG_LOAD
    print(disassemble(prog))

Text syntax
-----------
The C-like syntax of the kernel verifier log and llvm-objdump, one instruction a line.
``rN`` names a 64-bit register, ``wN`` its low 32 bits (which selects the 32-bit ALU/JMP32
classes).  Integers are decimal or ``0x`` hex, optionally negative.

=====================================  ===========================================
``r1 = 5`` / ``w1 = 5`` / ``r1 = r2``   move (``rN = VALUE`` beyond s32 becomes a 64-bit load)
``r1 += r2``  ``w1 -= 3``                ``+= -= *= /= %= |= &= ^= <<= >>= s>>=``
``r1 s/= r2``  ``r1 s%= 3``              signed division / modulo (off = 1)
``r1 = -r1``                             negation
``r1 = (s8)r2``  ``w1 = (s16)w2``        sign-extending move (s8, s16, s32)
``r1 = be16 r1`` / ``le32`` / ``bswap64``  byte swaps (to big/little endian, unconditional)
``r1 = addr_space_cast(r2, 1, 0)``       arena address-space cast (dst space, src space)
``r0 = *(u32 *)(r1 +8)``                 load; ``s8 s16 s32`` for sign-extending loads
``*(u64 *)(r10 -8) = r1``                store a register
``*(u32 *)(r10 -8) = 5``                 store an immediate
``lock *(u64 *)(r1 +0) += r2``           atomic ``+= |= &= ^=``
``r2 = atomic64_fetch_add((u64 *)(r1 +0), r2)``   also ``_or _and _xor``; ``atomic_`` for u32
``r2 = atomic64_xchg((u64 *)(r1 +0), r2)``
``r0 = atomic64_cmpxchg((u64 *)(r1 +0), r0, r2)``
``r0 = load_acquire((u64 *)(r1 +0))``  ``store_release((u32 *)(r1 +0), r2)``
``r0 = *(u16 *)skb[12]``  ``r0 = *(u8 *)skb[r1 + 2]``  legacy packet loads
``r1 = 0x123456789 ll``                  64-bit constant (two slots)
``r1 = map[counts] ll``                  map by name (fd filled in by ``link``)
``r1 = map_fd(5) ll``                    map by fd
``r1 = map_value[counts]+8 ll``          address in a map's value; ``map_value_fd(5)+8``
``r1 = func[cb] ll`` / ``func(pc+5) ll``  address of a function (callbacks)
``r1 = btf_id(123) ll``  ``map_idx(0) ll``  ``map_idx_value(0)+8 ll``  other 64-bit loads;
                                         for these a trailing ``+N`` is the second slot's imm
``if r1 > 0x5 goto +3``                  ``== != > >= < <= s> s>= s< s<= &``; ``w`` = JMP32
``goto +5`` / ``goto out``               16-bit jump; ``gotol`` has a 32-bit offset
``may_goto +3``  ``gotox r1``
``call bpf_map_lookup_elem#1``           helper (also ``call map_lookup_elem`` or ``call 1``)
``call pc+3`` / ``call sub``             bpf-to-bpf call (``sub`` is a label in the text)
``call kfunc#1234`` / ``kfunc#1234@2``   kernel function by BTF id (@ index of module BTF)
``exit``
``out:``                                 a label (may also precede an instruction)
``.insn 0xff dst=1 src=0 off=0 imm=0``   any raw instruction
=====================================  ===========================================

Jump offsets are in 8-byte slots relative to the next slot (``pc+N`` is accepted too).  A
comment starts with ``;`` (or ``//``) and runs to the end of the line; the disassembler
prints `Insn` comments that way.  A leading slot number ``12:`` and a verifier-log opcode
``(bf)`` are ignored, so verifier log lines parse.  ``disassemble`` output assembles back
to the same bytes.

See docs/DEVELOPING.md ("The assembler contract") for the builder names.
"""

from .insn import (AsmError, Insn, Label, Size, B, H, W, DW, R0, R1, R2, R3, R4, R5, R6, R7,
                   R8, R9, R10, RFP)
from .builder import *  # noqa: F401,F403
from .builder import __all__ as _builders
from .link import Layout, decode, encode, layout, link, resolve


def disassemble(prog, numbers=True, labels=False):
    """Text of a program (a list of `Insn`/`Label`, or bytes); see `disasm.disassemble`."""
    from .disasm import disassemble as _disassemble
    return _disassemble(prog, numbers=numbers, labels=labels)


def assemble(text):
    """Parse the text syntax (see above) into a list of `Insn` and `Label`."""
    from .text import assemble as _assemble
    return _assemble(text)


def __getattr__(name):
    # Lazy: the helper table is imported on first use.  import_module (not "from . import",
    # which would ask this very function again) loads the submodule and binds it here.
    if name in ("helpers", "Helper"):
        import importlib
        module = importlib.import_module(__name__ + ".helpers")
        return module if name == "helpers" else module.Helper
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


__all__ = ["AsmError", "Insn", "Label", "Size", "B", "H", "W", "DW",
           "R0", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10", "RFP",
           "Layout", "decode", "encode", "layout", "link", "resolve",
           "disassemble", "assemble", "Helper"] + [n for n in _builders if n != "Label"]
