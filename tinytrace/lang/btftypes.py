"""Kernel types from BTF as language types: struct pointers and their members.

``lang_type(btf, type_id)`` turns a BTF type into a ``tinytrace.lang.types`` type:
integers and enums become ``IntT`` of their size and sign, pointers ``PtrT`` (to a
``StructT`` for struct pointers, so ``p->member`` works), char arrays ``StrT``, other
arrays ``ArrayT``, structs and unions ``StructT``.  ``member(btf, struct, name)`` finds a
member (also inside anonymous structs and unions) with its byte offset and, for bitfields,
its bit position.  Nothing is converted before it is used: BTF holds ~100k types.
"""
from tinytrace.lang.types import ArrayT, IntT, PtrT, StrT, StructT, UINT8

(KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD,
 KIND_FUNC_PROTO, KIND_FLOAT, KIND_ENUM64) = (1, 2, 3, 4, 5, 6, 7, 13, 16, 19)
INT_CHAR, INT_BOOL = 2, 4


class BtfMember:
    """A member found in a struct: ``offset`` in bytes from the struct's start (of the
    storage unit for a bitfield), ``ty``, and for bitfields ``bit_shift``/``bits``.
    ``width``: the bytes it occupies when that is not its type's size (a pointer of a 32-bit
    kernel is 4 bytes; a ``PtrT`` value is 8); None otherwise."""
    __slots__ = ("name", "offset", "ty", "bit_shift", "bits", "width")

    def __init__(self, name, offset, ty, bit_shift=0, bits=0, width=None):
        self.width = width
        self.name = name
        self.offset = offset
        self.ty = ty
        self.bit_shift = bit_shift
        self.bits = bits


def lang_type(btf, tid, user=False, depth=0):
    """The language type of BTF type ``tid`` (None for void, functions and floats)."""
    t = btf.resolve(tid)
    if t is None or depth > 16:
        return None
    k = t.kind
    if k == KIND_INT:
        enc = t.int_encoding[0]
        if enc & INT_BOOL:
            return UINT8
        if t.size in (1, 2, 4, 8):
            return IntT(t.size * 8, bool(enc & 1))
        return ArrayT(UINT8, t.size)
    if k in (KIND_ENUM, KIND_ENUM64):
        return IntT(t.size * 8, t.signed) if t.size in (1, 2, 4, 8) else None
    if k == KIND_PTR:
        target = btf.resolve(t.type_id)
        if target is None or target.kind == KIND_FUNC_PROTO:
            return PtrT(None, user)
        if target.kind in (KIND_STRUCT, KIND_UNION, KIND_FWD):
            return PtrT(struct_type(btf, target, user), user)
        return PtrT(lang_type(btf, target.id, user, depth + 1), user)
    if k in (KIND_STRUCT, KIND_UNION, KIND_FWD):
        return struct_type(btf, t, user)
    if k == KIND_ARRAY:
        elem_id, _, n = t.array
        et = btf.resolve(elem_id)
        if et is not None and et.kind == KIND_INT and et.size == 1 and (
                et.int_encoding[0] & INT_CHAR or btf.type_name(et.id) in ("char", "u8")):
            if btf.type_name(et.id).endswith("char"):
                return StrT(max(n, 1))
        elem = lang_type(btf, elem_id, user, depth + 1)
        if elem is None or n == 0:
            return None
        return ArrayT(elem, n)
    return None


def struct_type(btf, t, user=False):
    size = t.size if t.kind != KIND_FWD else 0
    return StructT(t.name, t.id, size or 0, user)


def find_struct(btf, name, user=False):
    """``StructT`` for ``struct name`` / ``union name`` / a typedef of one, or None."""
    t = btf.find_struct(name)
    if t is None:
        td = btf.find(name)
        t = btf.resolve(td) if td is not None else None
        if t is None or t.kind not in (KIND_STRUCT, KIND_UNION):
            return None
    return struct_type(btf, t, user)


def member(btf, st, name):
    """The member ``name`` of ``StructT`` ``st`` as a ``BtfMember``, or None."""
    m = btf.member(st.btf_id, name)
    if m is None:
        return None
    ty = lang_type(btf, m.type_id, st.user)
    if ty is None:
        return BtfMember(name, m.bit_offset // 8, None)
    if m.bitfield_size:
        unit = ty.size if ty.size in (1, 2, 4, 8) else 8
        start = (m.bit_offset // (unit * 8)) * unit
        return BtfMember(name, start, ty, m.bit_offset - start * 8, m.bitfield_size)
    return BtfMember(name, m.bit_offset // 8, ty)


def member_names(btf, st):
    """Every member name reachable without a dot (anonymous members flattened)."""
    out = []
    seen = set()

    def walk(tid, depth):
        t = btf.resolve(tid)
        if t is None or depth > 8 or t.id in seen:
            return
        seen.add(t.id)
        for m in t.members:
            if m.name:
                out.append(m.name)
            else:
                walk(m.type_id, depth + 1)
    walk(st.btf_id, 0)
    return out
