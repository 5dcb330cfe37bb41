"""Builds BTF blobs for tests: every kind, either byte order, split BTF on top of a base."""
import struct

(INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC,
 FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64) = range(1, 20)


class BtfBuilder(object):
    def __init__(self, endian="<", base=None):
        self.e = endian
        self.base = base
        self.types = []                       # encoded records
        self.strings = bytearray(b"\0") if base is None else bytearray()
        self._str_index = {} if base is None else dict(base._str_index)
        self.str_base = 0 if base is None else base.str_base + len(base.strings)
        self.first_id = 1 if base is None else base.first_id + len(base.types)
        if base is None:
            self._str_index[""] = 0

    def s(self, text):
        if text in self._str_index:
            return self._str_index[text]
        off = self.str_base + len(self.strings)
        self.strings += text.encode() + b"\0"
        self._str_index[text] = off
        return off

    def add(self, kind, name, vlen, kind_flag, size_or_type, extra=b""):
        info = (kind_flag << 31) | (kind << 24) | vlen
        self.types.append(struct.pack(self.e + "III", self.s(name) if name else 0, info,
                                      size_or_type) + extra)
        return self.first_id + len(self.types) - 1

    def p(self, fmt, *v):
        return struct.pack(self.e + fmt, *v)

    # kinds
    def int_(self, name, size, signed=False, bits=None, offset=0, char=False, boolean=False):
        enc = (1 if signed else 0) | (2 if char else 0) | (4 if boolean else 0)
        bits = size * 8 if bits is None else bits
        return self.add(INT, name, 0, 0, size, self.p("I", (enc << 24) | (offset << 16) | bits))

    def ptr(self, t):
        return self.add(PTR, "", 0, 0, t)

    def array(self, elem, index, n):
        return self.add(ARRAY, "", 0, 0, 0, self.p("III", elem, index, n))

    def struct(self, name, size, members, union=False, kind_flag=None):
        """members: (name, type, bit_offset[, bitfield_size])"""
        if kind_flag is None:
            kind_flag = 1 if any(len(m) > 3 and m[3] for m in members) else 0
        extra = b""
        for m in members:
            off = m[2]
            if kind_flag:
                off |= (m[3] if len(m) > 3 else 0) << 24
            extra += self.p("III", self.s(m[0]) if m[0] else 0, m[1], off)
        return self.add(UNION if union else STRUCT, name, len(members), kind_flag, size, extra)

    def enum(self, name, size, values, signed=False):
        extra = b"".join(self.p("Ii" if signed else "II", self.s(n), v) for n, v in values)
        return self.add(ENUM, name, len(values), 1 if signed else 0, size, extra)

    def enum64(self, name, size, values, signed=False):
        extra = b""
        for n, v in values:
            v &= (1 << 64) - 1
            extra += self.p("III", self.s(n), v & 0xffffffff, v >> 32)
        return self.add(ENUM64, name, len(values), 1 if signed else 0, size, extra)

    def fwd(self, name, union=False):
        return self.add(FWD, name, 0, 1 if union else 0, 0)

    def typedef(self, name, t):
        return self.add(TYPEDEF, name, 0, 0, t)

    def const(self, t):
        return self.add(CONST, "", 0, 0, t)

    def volatile(self, t):
        return self.add(VOLATILE, "", 0, 0, t)

    def restrict(self, t):
        return self.add(RESTRICT, "", 0, 0, t)

    def type_tag(self, name, t):
        return self.add(TYPE_TAG, name, 0, 0, t)

    def func_proto(self, ret, params):
        extra = b"".join(self.p("II", self.s(n) if n else 0, t) for n, t in params)
        return self.add(FUNC_PROTO, "", len(params), 0, ret, extra)

    def func(self, name, proto, linkage=1):
        return self.add(FUNC, name, linkage, 0, proto)

    def var(self, name, t, linkage=1):
        return self.add(VAR, name, 0, 0, t, self.p("I", linkage))

    def datasec(self, name, size, entries):
        extra = b"".join(self.p("III", *e) for e in entries)
        return self.add(DATASEC, name, len(entries), 0, size, extra)

    def float_(self, name, size):
        return self.add(FLOAT, name, 0, 0, size)

    def decl_tag(self, name, t, component_idx=-1):
        return self.add(DECL_TAG, name, 0, 0, t, self.p("i", component_idx))

    def raw(self, kind, name, vlen, size_or_type, extra=b""):
        return self.add(kind, name, vlen, 0, size_or_type, extra)

    def build(self, layout=None):
        types = b"".join(self.types)
        strings = bytes(self.strings)
        hdr_len = 24 if layout is None else 32
        fields = [0, len(types), len(types), len(strings)]
        tail = b""
        if layout is not None:
            lay = b"".join(self.p("BBH", a, b, 0) for a, b in layout)
            fields += [len(types) + len(strings), len(lay)]
            tail = lay
        return self.p("HBBI", 0xEB9F, 1, 0, hdr_len) + self.p("I" * len(fields), *fields) + \
            types + strings + tail
