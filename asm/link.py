"""From instruction lists to kernel bytes and back: `link`, `encode`, `decode`, `layout`.

Linking is two linear passes.  The first gives every instruction its slot index (a 64-bit
load takes two slots) and records where each `Label` sits.  The second resolves symbols --
jump and call targets become offsets relative to the next slot, map names become fds --
checks each instruction and packs it.

Instruction indexes in errors are slot indexes, the numbers the kernel's verifier prints.
"""

import struct

from . import opcodes as op
from .insn import AsmError, Insn, Label
from .validate import problem

_PACK = struct.Struct("<BBhi").pack
_PACK_WIDE = struct.Struct("<BBhI4xI").pack
_SLOT = struct.Struct("<BBhi")

_JUMP_CLASSES = (op.JMP, op.JMP32)


class Layout(object):
    """Where things are in a linked program.

    - ``labels``: label name -> slot index.
    - ``size``: total number of 8-byte slots.
    - ``functions``: sorted ``[(slot, name)]`` of the program's functions: the entry at slot
      0 (named by a label at slot 0, else None) and every target of a bpf-to-bpf call or of
      a function-pointer load.  This is what BTF func_info describes.
    - ``slots``: the slot index of each instruction, in list order, labels left out.
    """

    __slots__ = ("labels", "size", "functions", "slots")

    def __init__(self, labels, size, functions, slots):
        self.labels = labels
        self.size = size
        self.functions = functions
        self.slots = slots

    def __repr__(self):
        return "Layout(size=%d, labels=%d, functions=%r)" % (
            self.size, len(self.labels), self.functions)


def _place(insns):
    """First pass: (labels, instructions without labels, their slot indexes, total size)."""
    labels = {}
    items = []
    slots = []
    pos = 0
    for x in insns:
        t = type(x)
        if t is Insn:
            items.append(x)
            slots.append(pos)
            pos += 2 if x[0] == op.LD_IMM64 else 1
        elif t is Label:
            if x.name in labels:
                raise AsmError("duplicate label %r (first at insn %d)" % (x.name, labels[x.name]),
                               index=pos, text=x.name + ":")
            labels[x.name] = pos
        elif isinstance(x, Insn):          # a subclass: treat as a plain instruction
            items.append(x)
            slots.append(pos)
            pos += 2 if x[0] == op.LD_IMM64 else 1
        elif isinstance(x, Label):
            if x.name in labels:
                raise AsmError("duplicate label %r" % x.name, index=pos, text=x.name + ":")
            labels[x.name] = pos
        else:
            raise AsmError("not an instruction or label: %r" % (x,), index=pos)
    return labels, items, slots, pos


def layout(insns):
    """The `Layout` of an instruction list (no maps needed)."""
    labels, items, slots, size = _place(insns)
    entry = [name for name, at in labels.items() if at == 0]
    funcs = {0: entry[0] if entry else None}
    for x in items:
        ref = x[5]
        if ref is None:
            continue
        if (x[0] == op.CALL_OP and x[2] == op.PSEUDO_CALL) or \
                (x[0] == op.LD_IMM64 and x[2] == op.PSEUDO_FUNC):
            at = labels.get(ref)
            if at is not None:
                funcs[at] = ref if funcs.get(at) is None else funcs[at]
    return Layout(labels, size, sorted(funcs.items()), slots)


def _text(insn):
    from .disasm import describe
    return describe(insn)


def _fail(reason, insn, index):
    raise AsmError(reason, index=index, text=_text(insn))


def _map_fd(ref, maps, insn, index):
    if maps is None or ref not in maps:
        known = ""
        if maps:
            names = sorted(str(k) for k in maps)
            known = " (known maps: %s)" % ", ".join(names[:8] + (["..."] if len(names) > 8 else []))
        _fail("unresolved map %r%s" % (ref, known), insn, index)
    value = maps[ref]
    fd = value if type(value) is int else getattr(value, "fd", value)
    if type(fd) is not int or not 0 <= fd < (1 << 31):
        _fail("map %r resolves to %r, not a file descriptor" % (ref, value), insn, index)
    return fd & 0xffffffff


def _resolve_one(x, slot, labels, maps):
    """``x`` with its symbol replaced by the concrete field value (ref dropped)."""
    code, ref = x[0], x[5]
    klass = code & 0x07
    if code == op.LD_IMM64:
        kind = x[2]
        if kind in (op.PSEUDO_MAP_FD, op.PSEUDO_MAP_VALUE, op.PSEUDO_MAP_IDX,
                    op.PSEUDO_MAP_IDX_VALUE):
            fd = _map_fd(ref, maps, x, slot)
            imm = (x[4] & ~0xffffffff & 0xffffffffffffffff) | fd
            return Insn(code, x[1], x[2], x[3], imm, None, x[6])
        if kind == op.PSEUDO_FUNC:
            target = labels.get(ref)
            if target is None:
                _fail("unresolved function %r" % (ref,), x, slot)
            rel = target - (slot + 1)
            imm = (x[4] & ~0xffffffff & 0xffffffffffffffff) | (rel & 0xffffffff)
            return Insn(code, x[1], x[2], x[3], imm, None, x[6])
        _fail("a 64-bit load of this kind takes no symbol (ref %r)" % (ref,), x, slot)
    if klass in _JUMP_CLASSES:
        target = labels.get(ref)
        if code == op.CALL_OP:
            if x[2] != op.PSEUDO_CALL:
                _fail("only a bpf-to-bpf call (src=1) can name a function", x, slot)
            if target is None:
                _fail("unresolved function %r" % (ref,), x, slot)
            return Insn(code, x[1], x[2], x[3], target - (slot + 1), None, x[6])
        if code == op.EXIT_OP or code == op.GOTOX_OP:
            _fail("this instruction takes no symbol (ref %r)" % (ref,), x, slot)
        if target is None:
            _fail("unresolved label %r" % (ref,), x, slot)
        rel = target - (slot + 1)
        if code == op.JA32_OP:
            return Insn(code, x[1], x[2], x[3], rel, None, x[6])
        if not -32768 <= rel <= 32767:
            if code == op.JA_OP:
                hint = "use JaLong (gotol, 32-bit offset)"
            elif code == op.MAY_GOTO_OP:
                hint = "may_goto has only a 16-bit offset: jump near, then JaLong"
            else:
                hint = "jump over a JaLong (gotol) with the inverted condition instead"
            _fail("jump to %r is %d instructions away, beyond the 16-bit offset; %s"
                  % (ref, rel, hint), x, slot)
        return Insn(code, x[1], x[2], rel, x[4], None, x[6])
    _fail("this instruction takes no symbol (ref %r)" % (ref,), x, slot)


def resolve(insns, maps=None):
    """The instructions with labels removed and every symbol resolved (and checked)."""
    labels, items, slots, _ = _place(insns)
    out = []
    for x, slot in zip(items, slots):
        if x[5] is not None:
            x = _resolve_one(x, slot, labels, maps)
        why = problem(x)
        if why is not None:
            _fail(why, x, slot)
        out.append(x)
    return out


def link(insns, maps=None):
    """Resolve labels, functions and maps (``{name: fd or object with .fd}``); check every
    instruction; return the bytes for BPF_PROG_LOAD."""
    labels, items, slots, _ = _place(insns)
    out = []
    append = out.append
    pack, pack_wide, wide = _PACK, _PACK_WIDE, op.LD_IMM64
    for x, slot in zip(items, slots):
        if x[5] is not None:
            x = _resolve_one(x, slot, labels, maps)
        why = problem(x)
        if why is not None:
            _fail(why, x, slot)
        code, dst, src, off, imm = x[:5]
        if code == wide:
            imm &= 0xffffffffffffffff
            append(pack_wide(code, dst | (src << 4), off, imm & 0xffffffff, imm >> 32))
        else:
            append(pack(code, dst | (src << 4), off, imm))
    return b"".join(out)


def encode(insns):
    """`link` without maps: the bytes of a list whose only symbols are labels."""
    return link(insns, None)


def decode(data):
    """The instructions in ``data`` (bytes of 8-byte slots; a 64-bit load is one Insn).

    Any opcode decodes (so the disassembler can show anything); `encode` checks them.
    """
    data = bytes(data)
    if len(data) % 8:
        raise AsmError("%d bytes is not a whole number of 8-byte instructions" % len(data))
    out = []
    append = out.append
    new = tuple.__new__
    it = _SLOT.iter_unpack(data)
    index = 0
    for code, regs, off, imm in it:
        if code == op.LD_IMM64:
            try:
                code2, regs2, off2, imm2 = next(it)
            except StopIteration:
                raise AsmError("64-bit load is missing its second slot", index=index)
            if code2 or regs2 or off2:
                raise AsmError("second slot of a 64-bit load must have zero opcode, "
                               "registers and offset", index=index + 1)
            append(new(Insn, (code, regs & 0x0f, regs >> 4, off,
                              ((imm2 & 0xffffffff) << 32) | (imm & 0xffffffff), None, None)))
            index += 2
        else:
            append(new(Insn, (code, regs & 0x0f, regs >> 4, off, imm, None, None)))
            index += 1
    return out
