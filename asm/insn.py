"""The instruction value (`Insn`), label markers, registers, sizes and `AsmError`.

An `Insn` is an immutable tuple ``(opcode, dst, src, off, imm, ref, comment)``:

- ``opcode``, ``dst``, ``src``, ``off``, ``imm`` are the fields of the kernel's
  ``struct bpf_insn``; ``off`` is s16 and ``imm`` s32 once linked.
- A 64-bit load (``LD|IMM|DW``, opcode 0x18) is ONE `Insn` that encodes to two 8-byte slots.
  Its ``imm`` holds both slots' immediates as one unsigned 64-bit number:
  ``imm = (second_imm << 32) | (first_imm & 0xffffffff)``.  For a plain constant that is the
  constant; for a map value load it is ``(value_offset << 32) | map_fd``.
- ``ref`` names a symbol resolved by `link`: the label of a jump or bpf-to-bpf call, or the
  map of a map load.  ``None`` when the instruction is already concrete.
- ``comment`` is free text the disassembler prints after ``;``.  It does not take part in
  equality: two instructions that encode the same (and refer to the same symbol) are equal.

Tuples keep construction and field access cheap: the compiler builds thousands of these.
"""

from . import opcodes as _op


class AsmError(ValueError):
    """An instruction that cannot be built, linked, encoded or parsed.

    The message names the offending instruction: ``insn N (text): reason`` where N is the slot
    index the kernel's verifier would report, or ``line N: reason`` for assembler text.
    ``index`` (slot index or None), ``line`` (text line or None) and ``reason`` are kept as
    attributes for callers that reformat the error.
    """

    def __init__(self, reason, index=None, text=None, line=None):
        self.reason = reason
        self.index = index
        self.text = text
        self.line = line
        if line is not None:
            msg = "line %d: %s" % (line, reason)
            if text:
                msg += ": %s" % text
        elif index is not None:
            msg = "insn %d (%s): %s" % (index, text, reason) if text else \
                "insn %d: %s" % (index, reason)
        elif text:
            msg = "%s: %s" % (text, reason)
        else:
            msg = reason
        super().__init__(msg)


class Insn(tuple):
    """One BPF instruction (see the module docstring for the field meanings)."""

    __slots__ = ()

    def __new__(cls, opcode, dst=0, src=0, off=0, imm=0, ref=None, comment=None):
        return tuple.__new__(cls, (opcode, dst, src, off, imm, ref, comment))

    @property
    def opcode(self):
        return self[0]

    @property
    def dst(self):
        return self[1]

    @property
    def src(self):
        return self[2]

    @property
    def off(self):
        return self[3]

    @property
    def imm(self):
        return self[4]

    @property
    def ref(self):
        return self[5]

    @property
    def comment(self):
        return self[6]

    @property
    def slots(self):
        """How many 8-byte slots the instruction occupies (2 for a 64-bit load)."""
        return 2 if self[0] == _op.LD_IMM64 else 1

    def __eq__(self, other):
        if isinstance(other, Insn):
            return self[:6] == other[:6]
        return NotImplemented

    def __ne__(self, other):
        if isinstance(other, Insn):
            return self[:6] != other[:6]
        return NotImplemented

    def __hash__(self):
        return hash(self[:6])

    def replace(self, **fields):
        """A copy with some fields changed (``opcode dst src off imm ref comment``)."""
        values = dict(zip(_FIELDS, self))
        for name in fields:
            if name not in values:
                raise TypeError("Insn has no field %r" % name)
        values.update(fields)
        return Insn(**values)

    def with_comment(self, text):
        """A copy carrying ``text`` as its comment (printed by the disassembler)."""
        return tuple.__new__(Insn, self[:6] + (text,))

    def with_ref(self, name):
        """A copy referring to the symbol ``name`` (label or map), resolved by `link`."""
        return tuple.__new__(Insn, self[:5] + (name, self[6]))

    def __repr__(self):
        parts = ["0x%02x" % self[0] if isinstance(self[0], int) else repr(self[0])]
        for name, value in zip(_FIELDS[1:5], self[1:5]):
            parts.append("%s=%r" % (name, value))
        if self[5] is not None:
            parts.append("ref=%r" % (self[5],))
        if self[6] is not None:
            parts.append("comment=%r" % (self[6],))
        return "Insn(%s)" % ", ".join(parts)

    def __str__(self):
        from .disasm import format_insn
        return format_insn(self)

    def __getnewargs__(self):
        return tuple(self)


_FIELDS = ("opcode", "dst", "src", "off", "imm", "ref", "comment")


class Label(object):
    """A jump/call target marker placed in an instruction list; it occupies no slot."""

    __slots__ = ("name",)

    def __init__(self, name):
        if not isinstance(name, str) or not name:
            raise AsmError("label name must be a non-empty string, not %r" % (name,))
        self.name = name

    def __eq__(self, other):
        if isinstance(other, Label):
            return self.name == other.name
        return NotImplemented

    def __ne__(self, other):
        if isinstance(other, Label):
            return self.name != other.name
        return NotImplemented

    def __hash__(self):
        return hash(("label", self.name))

    def __repr__(self):
        return "Label(%r)" % self.name

    def __str__(self):
        return self.name + ":"


class Size(int):
    """A load/store size: `B`, `H`, `W` or `DW` (the value is the opcode's size bits)."""

    __slots__ = ()

    def __repr__(self):
        return _SIZE_NAMES[int(self)]

    __str__ = __repr__

    @property
    def bytes(self):
        return _op.SIZE_BYTES[int(self)]


_SIZE_NAMES = {_op.SIZE_B: "B", _op.SIZE_H: "H", _op.SIZE_W: "W", _op.SIZE_DW: "DW"}

B = Size(_op.SIZE_B)
H = Size(_op.SIZE_H)
W = Size(_op.SIZE_W)
DW = Size(_op.SIZE_DW)

SIZES_BY_BYTES = {1: B, 2: H, 4: W, 8: DW}

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
RFP = R10
