"""Layouts of the C structs and unions a script defines (``tinytrace.lang.cparse``), by the
C rules of the kernel being traced.

Every member sits at its natural alignment; a struct is aligned to its most aligned member
and padded at the end to that alignment; a union's members all start at 0.  ``long`` and
pointers are the kernel's word (``tinytrace.kernel.arch.kernel_long_size``: 8 bytes on
64-bit kernels, 4 on 32-bit ones); 8-byte integers are 4-aligned on i386 only.  Bitfields
follow the System V rule gcc uses on Linux: a bitfield goes at the next free bit unless it
would cross a boundary of a unit of its type's size, in which case it starts the next unit;
``:0`` moves to the next unit; only named bitfields count for the struct's alignment.

A struct's definition is checked when the program is (unknown types, duplicate members, a
struct that holds itself) whether or not a probe uses it.  Members are handed to the rest
of the compiler as ``btftypes.BtfMember`` values, so they are read exactly like the members
of kernel structs known from BTF.  A pointer to a struct the script does not define points
to the kernel's type of that name when there is BTF.
"""
from tinytrace.lang.source import LangError
from tinytrace.lang.suggest import hint
from tinytrace.lang.types import (ArrayT, CStructT, IntT, PtrT, StrT, StructT, UINT8)

# Names of integer types besides C's keyword spellings: (size or "long", signed).
_NAMED_INTS = {
    "u8": (1, False), "u16": (2, False), "u32": (4, False), "u64": (8, False),
    "s8": (1, True), "s16": (2, True), "s32": (4, True), "s64": (8, True),
    "__u8": (1, False), "__u16": (2, False), "__u32": (4, False), "__u64": (8, False),
    "__s8": (1, True), "__s16": (2, True), "__s32": (4, True), "__s64": (8, True),
    "uint8_t": (1, False), "uint16_t": (2, False), "uint32_t": (4, False),
    "uint64_t": (8, False), "int8_t": (1, True), "int16_t": (2, True), "int32_t": (4, True),
    "int64_t": (8, True), "uint8": (1, False), "uint16": (2, False), "uint32": (4, False),
    "uint64": (8, False), "int8": (1, True), "int16": (2, True), "int32": (4, True),
    "int64": (8, True), "size_t": ("long", False), "ssize_t": ("long", True),
    "uintptr_t": ("long", False), "intptr_t": ("long", True), "ptrdiff_t": ("long", True),
    "pid_t": (4, True), "uid_t": (4, False), "gid_t": (4, False), "uint": (4, False),
}
_BOOLS = frozenset(("bool", "_Bool"))


def _align_up(n, a):
    return (n + a - 1) // a * a


# -- resolved C types ---------------------------------------------------------------------------

class _Int:
    __slots__ = ("size", "signed", "is_bool", "is_char", "align")

    def __init__(self, size, signed, align, is_bool=False, is_char=False):
        self.size, self.signed, self.align = size, signed, align
        self.is_bool, self.is_char = is_bool, is_char


class _Ptr:
    """``target``: None (void, functions), a ``_Tag`` (a struct, resolved when used) or
    another resolved type."""
    __slots__ = ("target", "size", "align")

    def __init__(self, target, size):
        self.target = target
        self.size = self.align = size


class _Arr:
    __slots__ = ("elem", "n")

    def __init__(self, elem, n):
        self.elem, self.n = elem, n

    @property
    def size(self):
        return self.elem.size * self.n

    @property
    def align(self):
        return self.elem.align


class _Rec:
    __slots__ = ("layout",)

    def __init__(self, layout):
        self.layout = layout

    @property
    def size(self):
        return self.layout.size

    @property
    def align(self):
        return self.layout.align


class _Tag:
    __slots__ = ("kind", "name")

    def __init__(self, kind, name):
        self.kind, self.name = kind, name


class _Void:
    __slots__ = ()


_VOID = _Void()


class Member:
    """A member of a laid-out struct: ``bit`` is its offset in bits; ``bits`` its width
    when it is a bitfield; ``name`` None for an anonymous struct/union member."""
    __slots__ = ("name", "bit", "ct", "bits", "loc")

    def __init__(self, name, bit, ct, bits, loc):
        self.name, self.bit, self.ct, self.bits, self.loc = name, bit, ct, bits, loc


class StructLayout:
    """One struct or union: ``members`` (``Member``), ``size`` and ``align`` in bytes once
    computed; ``decl`` is the definition (None while only declared)."""

    def __init__(self, kind, name, decl, uid):
        self.kind = kind
        self.name = name
        self.decl = decl
        self.uid = uid
        self.members = []
        self.size = None
        self.align = None
        self.state = "new"      # "busy" while being computed (a struct holding itself)

    def describe(self):
        return "%s %s" % (self.kind, self.name or "<anonymous>")

    def find(self, name):
        """(byte offset of the containing anonymous members, Member) or None."""
        for m in self.members:
            if m.name == name:
                return 0, m
        for m in self.members:
            if m.name is None and isinstance(m.ct, _Rec):
                hit = m.ct.layout.find(name)
                if hit is not None:
                    return m.bit // 8 + hit[0], hit[1]
        return None

    def names(self):
        out = []
        for m in self.members:
            if m.name is not None:
                out.append(m.name)
            elif isinstance(m.ct, _Rec):
                out.extend(m.ct.layout.names())
        return out


class Layouts:
    """The definitions of one program; ``env`` gives the kernel's BTF (pointers to structs
    the script does not define)."""

    def __init__(self, defs, env=None, long_size=None, machine=None):
        from tinytrace.kernel import arch
        self.env = env
        self.long = long_size or arch.kernel_long_size()
        mach = machine if machine is not None else arch.normalise(arch._uname_machine())
        self.align8 = 4 if mach == "i386" else 8
        self.tags = {}          # name -> StructLayout
        self.typedefs = {}      # name -> (CTypedef, resolved type or None)
        self.enums = {}         # name -> CEnum (defined)
        self._anon = 0
        from tinytrace.lang import ast
        for d in defs:
            self._register(d)
        for d in defs:
            if isinstance(d, ast.CTypedef):
                self._typedef(d.decl.name)
        for layout in list(self.tags.values()):
            if layout.decl is not None:
                self._compute(layout)

    # -- definitions ----------------------------------------------------------------------
    def _register(self, d):
        from tinytrace.lang import ast
        if isinstance(d, ast.CTypedef):
            name = d.decl.name
            if name in self.typedefs:
                raise LangError("typedef %s is already defined at %d:%d"
                                % (name, self.typedefs[name][0].loc[0],
                                   self.typedefs[name][0].loc[1]), d.decl.loc)
            self.typedefs[name] = [d, None]
            return
        if isinstance(d, ast.CEnum):
            if d.name is None:
                return
            st = self.tags.get(d.name)
            if st is not None:
                raise LangError("%s was first declared as a %s at %d:%d" % (
                    d.name, st.kind, st.loc[0], st.loc[1]), d.loc)
            self.enums[d.name] = d       # the parser refused a second definition
            return
        if d.name in self.enums:
            old = self.enums[d.name]
            raise LangError("%s was first declared as an enum at %d:%d" % (
                d.name, old.loc[0], old.loc[1]), d.loc)
        old = self.tags.get(d.name)
        if old is not None and old.kind != d.kind:
            raise LangError("%s was first declared as a %s at %d:%d" % (
                d.name, old.kind, old.loc[0], old.loc[1]), d.loc)
        if d.members is None:
            if old is None:
                layout = StructLayout(d.kind, d.name, None, d.name)
                layout.loc = d.loc
                self.tags[d.name] = layout
            return
        if old is not None and old.decl is not None:
            raise LangError("redefinition of %s %s (first defined at %d:%d)"
                            % (d.kind, d.name, old.decl.loc[0], old.decl.loc[1]), d.loc)
        if old is None:
            old = self.tags[d.name] = StructLayout(d.kind, d.name, d, d.name)
        old.decl = d
        old.loc = d.loc

    def _typedef(self, name, depth=0):
        entry = self.typedefs[name]
        if entry[1] is None:
            if depth > 16:
                raise LangError("typedef %s refers to itself" % name, entry[0].decl.loc)
            d = entry[0]
            # a typedef of a struct needs no definition of it until a member holds it
            entry[1] = self._resolve(d.ctype, d.decl, depth + 1, by_value=bool(d.decl.dims))
        return entry[1]

    # -- types ----------------------------------------------------------------------------
    def _int(self, size, signed, **kw):
        if size == "long":
            size = self.long
        return _Int(size, signed, self.align8 if size == 8 else size, **kw)

    def _base(self, ctype, depth):
        if ctype.tag == "enum":
            # the script's enum (signed when a value is negative); else the kernel's
            # usual unsigned int
            d = ctype.body if ctype.body is not None else self.enums.get(ctype.name)
            return self._int(4, d is not None and d.signed)
        if ctype.tag:
            if ctype.body is not None:
                self._anon += 1
                layout = StructLayout(ctype.tag, None, ctype.body, "%s.<anon%d>"
                                      % (ctype.tag, self._anon))
                layout.loc = ctype.loc
                self._compute(layout)
                return _Rec(layout)
            return _Tag(ctype.tag, ctype.name)
        words = ctype.words
        if len(words) == 1:
            w = words[0]
            if w == "void":
                return _VOID
            if w in _BOOLS:
                return self._int(1, False, is_bool=True)
            if w in _NAMED_INTS:
                return self._int(*_NAMED_INTS[w])
            if w in self.typedefs:
                return self._typedef(w, depth)
        t = _c_int(words)
        if t is None:
            known = list(self.typedefs) + list(_NAMED_INTS) + ["int", "long", "char"]
            raise LangError("unknown type '%s'%s" % (ctype.text(), hint(ctype.text(), known)),
                            ctype.loc)
        size, signed = t
        # plain char arrays are strings; signed/unsigned char arrays are bytes
        return self._int(size, signed, is_char=(words == ("char",)))

    def _resolve(self, ctype, decl, depth=0, by_value=True):
        """The type of ``decl`` declared with ``ctype``; structs held by value are laid
        out (and must be defined)."""
        base = self._base(ctype, depth)
        if decl is not None and decl.func:
            return _Ptr(None, self.long)
        ct = base
        stars = decl.stars if decl is not None else 0
        for _ in range(stars):
            ct = _Ptr(None if ct is _VOID else ct, self.long)
        if not stars and by_value:
            ct = self._by_value(ct, ctype, decl)
        if decl is not None:
            for n in reversed(decl.dims):
                ct = _Arr(ct, n)
        return ct

    def _by_value(self, ct, ctype, decl):
        if ct is _VOID:
            raise LangError("%s cannot have type void (a pointer can: void *)"
                            % _what(decl), ctype.loc)
        if isinstance(ct, _Tag):
            layout = self.tags.get(ct.name)
            if layout is None or layout.decl is None:
                raise LangError("%s %s is not defined here; %s holds it by value, so its "
                                "definition must be in the script (a pointer to it needs "
                                "none)" % (ct.kind, ct.name, _what(decl)), ctype.loc)
            if layout.kind != ct.kind:
                raise LangError("%s is a %s, not a %s" % (ct.name, layout.kind, ct.kind),
                                ctype.loc)
            if layout.state == "busy":
                raise LangError("%s %s contains itself (use a pointer: %s %s *%s)" % (
                    ct.kind, ct.name, ct.kind, ct.name,
                    decl.name if decl is not None and decl.name else "p"), ctype.loc)
            self._compute(layout)
            return _Rec(layout)
        return ct

    # -- layout ---------------------------------------------------------------------------
    def _compute(self, layout):
        if layout.state == "done":
            return
        layout.state = "busy"
        union = layout.kind == "union"
        bit = 0         # next free bit (structs)
        end = 0         # bytes used (unions: the largest member)
        align = 1
        seen = {}
        for ctype, decl in layout.decl.members:
            ct = self._resolve(ctype, decl)
            if decl is None:                 # anonymous struct/union: members flattened
                for n in ct.layout.names():
                    _check_dup(layout, seen, n, ctype.loc)
                off = 0 if union else _align_up((bit + 7) // 8, ct.align)
                layout.members.append(Member(None, off * 8, ct, None, ctype.loc))
                bit = (off + ct.size) * 8
                end = max(end, off + ct.size)
                align = max(align, ct.align)
                continue
            if decl.name is not None:
                _check_dup(layout, seen, decl.name, decl.loc)
            if decl.bits is not None:
                if not isinstance(ct, _Int):
                    raise LangError("bitfield %s must have an integer type" % _what(decl),
                                    decl.loc)
                unit = ct.size * 8
                if decl.bits > unit:
                    raise LangError("bitfield %s is %d bits wide, more than its type's %d"
                                    % (_what(decl), decl.bits, unit), decl.loc)
                if decl.bits == 0:
                    if not union:
                        bit = _align_up(bit, unit)
                    continue
                start = 0 if union else bit
                if start // unit != (start + decl.bits - 1) // unit:
                    start = _align_up(start, unit)
                if decl.name is not None:
                    layout.members.append(Member(decl.name, start, ct, decl.bits, decl.loc))
                    align = max(align, ct.align)
                bit = start + decl.bits
                end = max(end, (bit + 7) // 8)
                continue
            off = 0 if union else _align_up((bit + 7) // 8, ct.align)
            layout.members.append(Member(decl.name, off * 8, ct, None, decl.loc))
            bit = (off + ct.size) * 8
            end = max(end, off + ct.size)
            align = max(align, ct.align)
        layout.align = align
        layout.size = _align_up(end, align)
        layout.state = "done"

    # -- for the compiler -----------------------------------------------------------------
    def struct(self, kind, name, user=False):
        """``CStructT`` of the script's ``struct``/``union`` ``name``, or None."""
        layout = self.tags.get(name)
        if layout is None:
            return None
        return CStructT(layout, user)

    def typedef_type(self, name, stars, user=False):
        """The language type of typedef ``name`` with ``stars`` pointers (a cast)."""
        ct = self._typedef(name)
        for _ in range(stars):
            ct = _Ptr(None if ct is _VOID else ct, self.long)
        if not isinstance(ct, (_Int, _Ptr)):
            return None
        return self.lang_type(ct, user)

    def enum_type(self, name, stars):
        """The language type of ``enum name`` with ``stars`` pointers (a cast), or None
        when the script does not define that enum."""
        d = self.enums.get(name)
        if d is None:
            return None
        ty = IntT(32, d.signed)
        for _ in range(stars):
            ty = PtrT(ty)
        return ty

    def sizeof_typedef(self, name):
        ct = self._typedef(name)
        if isinstance(ct, _Tag):
            layout = self.tags.get(ct.name)
            return layout.size if layout is not None and layout.decl is not None else None
        if ct is _VOID:
            return None
        return ct.size

    def member(self, st, name):
        """The member ``name`` of ``CStructT`` ``st`` as a ``BtfMember``, or None."""
        from tinytrace.lang.btftypes import BtfMember
        hit = st.layout.find(name)
        if hit is None:
            return None
        base, m = hit
        ty = self.lang_type(m.ct, st.user)
        if m.bits:
            unit = m.ct.size
            start = (m.bit // (unit * 8)) * unit
            return BtfMember(name, base + start, ty, m.bit - start * 8, m.bits)
        width = m.ct.size if isinstance(m.ct, (_Int, _Ptr)) else None
        return BtfMember(name, base + m.bit // 8, ty, width=width)

    def member_names(self, st):
        return st.layout.names()

    def lang_type(self, ct, user):
        if isinstance(ct, _Int):
            return UINT8 if ct.is_bool else IntT(ct.size * 8, ct.signed)
        if isinstance(ct, _Ptr):
            t = ct.target
            if t is None:
                return PtrT(None, user)
            if isinstance(t, _Tag):
                return PtrT(self.pointee_struct(t, user), user)
            return PtrT(self.lang_type(t, user), user)
        if isinstance(ct, _Arr):
            e = ct.elem
            if isinstance(e, _Int) and e.is_char:
                return StrT(ct.n)
            if isinstance(e, _Ptr) and e.size != 8:
                return ArrayT(IntT(e.size * 8, False), ct.n)   # addresses, as integers
            inner = self.lang_type(e, user)
            return ArrayT(inner, ct.n) if inner is not None else None
        if isinstance(ct, _Rec):
            return CStructT(ct.layout, user)
        return None

    def pointee_struct(self, tag, user):
        """What a ``struct NAME *`` member points to: the script's definition, else the
        kernel's (BTF), else an undefined struct (its members cannot be read)."""
        layout = self.tags.get(tag.name)
        if layout is not None and layout.decl is not None:
            return CStructT(layout, user)
        btf = self.env.btf() if self.env is not None else None
        if btf is not None:
            from tinytrace.lang import btftypes
            st = btftypes.find_struct(btf, tag.name, user)
            if st is not None:
                return st
        if layout is None:
            layout = StructLayout(tag.kind, tag.name, None, tag.name)
            layout.loc = None
            self.tags[tag.name] = layout
        return CStructT(layout, user)


def _c_int(words):
    """(size or "long", signed) of a C integer spelling in any word order, or None."""
    counts = {}
    for w in words:
        if w not in ("unsigned", "signed", "char", "short", "int", "long"):
            return None
        counts[w] = counts.get(w, 0) + 1
    if counts.get("unsigned") and counts.get("signed"):
        return None
    if any(n > 1 for w, n in counts.items() if w != "long") or counts.get("long", 0) > 2:
        return None
    signed = not counts.get("unsigned")
    longs = counts.get("long", 0)
    kinds = [w for w in ("char", "short") if counts.get(w)]
    if len(kinds) > 1 or kinds and (longs or (kinds[0] == "char" and counts.get("int"))):
        return None
    if kinds:
        return (1 if kinds[0] == "char" else 2), signed
    if longs == 2:
        return 8, signed
    if longs == 1:
        return "long", signed
    return 4, signed


def _what(decl):
    if decl is None or decl.name is None:
        return "an unnamed member"
    return "member %s" % decl.name


def _check_dup(layout, seen, name, loc):
    if name in seen:
        raise LangError("duplicate member '%s' in %s (also at %d:%d)"
                        % (name, layout.describe(), seen[name][0], seen[name][1]), loc)
    seen[name] = loc
