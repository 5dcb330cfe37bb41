"""BTF: the kernel's own description of its types, read from ``/sys/kernel/btf/vmlinux``.

What tinytrace needs from it: struct member offsets (``task_struct.pid``), enum constants
(``TCP_ESTABLISHED``), kernel function prototypes, the ``btf_trace_<tp>`` typedefs that tp_btf
programs attach through, and C-like type names for listings.

Speed is the design constraint.  vmlinux BTF has ~126k types in ~5 MB; decoding all of it
in Python takes far longer than a tool may spend starting up.  So nothing is decoded until
asked for:

* the file is mapped, not read, where the kernel allows it (``mmap`` of the sysfs file,
  Linux 6.16+; any regular file), and its sections are never copied: a lookup reads only
  the pages it touches, so a tool that needs two member offsets does not hold 5 MB;
* the only whole-file pass is a tight loop over type *headers* that records where each type
  starts (``id -> offset``) and its name offset (``id -> name_off``).  Both go into two
  ``array("I")`` and, for the running kernel's BTF, into a small cache file keyed by the BTF's
  size, mtime and the kernel's build id, so later runs map them instead (with the ids
  sorted by name, for binary-search lookups);
* a name lookup searches the string section for ``\\0name\\0`` (``bytes.find``, in C), then
  the name-offset column for that offset (also in C), and decodes only the types it hits;
* an enumerator lookup searches the raw type section for the packed string offset and checks
  by bisection that the hit sits in an enum's value list.

Types are returned as ``BtfType`` objects made on demand (and kept), whose members, values
and parameters are decoded the first time they are read.
"""
import struct

from tinytrace.errors import KernelError

BTF_MAGIC = 0xEB9F
VMLINUX = "/sys/kernel/btf/vmlinux"

(KIND_UNKN, KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD,
 KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_FUNC, KIND_FUNC_PROTO,
 KIND_VAR, KIND_DATASEC, KIND_FLOAT, KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64) = range(20)

KIND_NAMES = ("UNKN", "INT", "PTR", "ARRAY", "STRUCT", "UNION", "ENUM", "FWD", "TYPEDEF",
              "VOLATILE", "CONST", "RESTRICT", "FUNC", "FUNC_PROTO", "VAR", "DATASEC",
              "FLOAT", "DECL_TAG", "TYPE_TAG", "ENUM64")
_KIND_BY_NAME = dict((n.lower(), i) for i, n in enumerate(KIND_NAMES))

# Bytes after the 12-byte common header: (fixed part, per-vlen element).  FUNC keeps its
# linkage in vlen, so it has no elements.
_LAYOUT = {KIND_INT: (4, 0), KIND_ARRAY: (12, 0), KIND_STRUCT: (0, 12), KIND_UNION: (0, 12),
           KIND_ENUM: (0, 8), KIND_FUNC_PROTO: (0, 8), KIND_VAR: (4, 0),
           KIND_DATASEC: (0, 12), KIND_DECL_TAG: (4, 0), KIND_ENUM64: (0, 12)}
for _k in (KIND_PTR, KIND_FWD, KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT,
           KIND_FUNC, KIND_FLOAT, KIND_TYPE_TAG):
    _LAYOUT[_k] = (0, 0)
del _k

# Kinds that only qualify or rename another type.
_MODIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)
_QUALIFIER_WORDS = {KIND_CONST: "const", KIND_VOLATILE: "volatile", KIND_RESTRICT: "restrict"}

INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4

CACHE_FORMAT = b"TTBTFIX4"


class BtfError(KernelError):
    """BTF is missing, malformed, or lacks what was asked for."""


def kind_number(kind):
    """A kind given as number or name (``"struct"``, ``"STRUCT"``) -> its number."""
    if kind is None or isinstance(kind, int):
        return kind
    try:
        return _KIND_BY_NAME[kind.lower()]
    except KeyError:
        raise BtfError("unknown BTF kind %r" % (kind,))


class Member(object):
    """A struct/union member, a function parameter, or a member reached through anonymous
    members.  ``bit_offset`` counts from the start of the outermost struct searched;
    ``bitfield_size`` is 0 for a plain member.  ``path`` lists the member names walked
    (``""`` for an anonymous struct/union on the way)."""
    __slots__ = ("name", "type_id", "bit_offset", "bitfield_size", "path", "_btf")

    def __init__(self, btf, name, type_id, bit_offset=0, bitfield_size=0, path=None):
        self._btf = btf
        self.name, self.type_id = name, type_id
        self.bit_offset, self.bitfield_size = bit_offset, bitfield_size
        self.path = path if path is not None else [name]

    @property
    def type(self):
        return self._btf.type(self.type_id)

    @property
    def offset(self):
        """Byte offset (of the storage unit holding a bitfield: bit_offset // 8)."""
        return self.bit_offset // 8

    @property
    def size(self):
        """The member's size in bytes (of its declared type, for a bitfield)."""
        return self._btf.size_of(self.type_id)

    @property
    def is_bitfield(self):
        return self.bitfield_size != 0

    def __repr__(self):
        extra = ", bits=%d" % self.bitfield_size if self.bitfield_size else ""
        return "Member(%r, %s, bit_offset=%d%s)" % (
            ".".join(p or "<anon>" for p in self.path), self._btf.type_name(self.type_id),
            self.bit_offset, extra)


class BtfType(object):
    """One BTF type.  ``size`` is set for sized kinds (INT, STRUCT, UNION, ENUM, ENUM64,
    FLOAT, DATASEC), ``type_id`` for the kinds that point at another type (PTR, TYPEDEF,
    qualifiers, FUNC, FUNC_PROTO's return type, VAR, DECL_TAG)."""
    __slots__ = ("_btf", "id", "kind", "name", "vlen", "kind_flag", "size", "type_id",
                 "_pos", "_cache")

    def __init__(self, btf, tid, kind, name, vlen, kind_flag, size_or_type, pos):
        self._btf, self.id, self.kind, self.name = btf, tid, kind, name
        self.vlen, self.kind_flag, self._pos = vlen, kind_flag, pos
        self._cache = None
        if kind in (KIND_INT, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_FLOAT,
                    KIND_DATASEC):
            self.size, self.type_id = size_or_type, None
        elif kind in (KIND_FWD, KIND_ARRAY):
            self.size, self.type_id = None, None
        else:
            self.size, self.type_id = None, size_or_type

    @property
    def kind_name(self):
        return KIND_NAMES[self.kind] if self.kind < len(KIND_NAMES) else str(self.kind)

    @property
    def type(self):
        """The referenced type (PTR target, typedef'd type, FUNC's prototype ...)."""
        return None if self.type_id is None else self._btf.type(self.type_id)

    def _extra(self, fmt, count=1):
        b = self._btf
        st = struct.Struct(b.endian + fmt)
        data, at = b._data, b._t0 + self._pos + 12
        return [st.unpack_from(data, at + i * st.size) for i in range(count)]

    # -- per-kind data -----------------------------------------------------------------

    @property
    def int_encoding(self):
        """INT: ``(encoding bits, bit offset, nr_bits)``; encoding has INT_SIGNED/CHAR/BOOL."""
        (v,), = self._extra("I")
        return (v >> 24) & 0xf, (v >> 16) & 0xff, v & 0xff

    @property
    def signed(self):
        """INT: signed encoding; ENUM/ENUM64: kind_flag marks signed values."""
        if self.kind == KIND_INT:
            return bool(self.int_encoding[0] & INT_SIGNED)
        if self.kind in (KIND_ENUM, KIND_ENUM64):
            return bool(self.kind_flag)
        return False

    @property
    def array(self):
        """ARRAY: ``(element type id, index type id, number of elements)``."""
        (v,) = self._extra("III")
        return v

    @property
    def members(self):
        """STRUCT/UNION: direct members (anonymous ones have name ``""``)."""
        if self.kind not in (KIND_STRUCT, KIND_UNION):
            return []
        if self._cache is None:
            b = self._btf
            out = []
            for name_off, tid, off in self._extra("III", self.vlen):
                if self.kind_flag:
                    bit_off, bits = off & 0xffffff, off >> 24
                else:
                    bit_off, bits = off, 0
                out.append(Member(b, b.string(name_off), tid, bit_off, bits))
            self._cache = out
        return self._cache

    @property
    def values(self):
        """ENUM/ENUM64: ``[(name, value)]``, values signed when the enum is."""
        if self.kind not in (KIND_ENUM, KIND_ENUM64):
            return []
        if self._cache is None:
            b = self._btf
            out = []
            if self.kind == KIND_ENUM:
                for name_off, v in self._extra("Ii" if self.kind_flag else "II", self.vlen):
                    out.append((b.string(name_off), v))
            else:
                for name_off, lo, hi in self._extra("III", self.vlen):
                    v = (hi << 32) | lo
                    if self.kind_flag and v >= 1 << 63:
                        v -= 1 << 64
                    out.append((b.string(name_off), v))
            self._cache = out
        return self._cache

    @property
    def params(self):
        """FUNC_PROTO (or FUNC, through its prototype): ``[Member(name, type)]``; a
        variadic prototype ends with a parameter of type id 0 and no name."""
        if self.kind == KIND_FUNC:
            return self.type.params
        if self.kind != KIND_FUNC_PROTO:
            return []
        if self._cache is None:
            b = self._btf
            self._cache = [Member(b, b.string(n), t) for n, t in self._extra("II", self.vlen)]
        return self._cache

    @property
    def linkage(self):
        """FUNC: 0 static, 1 global, 2 extern (kept in vlen); VAR: its linkage word."""
        if self.kind == KIND_FUNC:
            return self.vlen
        if self.kind == KIND_VAR:
            return self._extra("I")[0][0]
        return None

    @property
    def component_idx(self):
        """DECL_TAG: the member/parameter index the tag applies to (-1: the whole type)."""
        if self.kind != KIND_DECL_TAG:
            return None
        return self._extra("i")[0][0]

    @property
    def datasec_vars(self):
        """DATASEC: ``[(var type id, offset, size)]``."""
        if self.kind != KIND_DATASEC:
            return []
        return [tuple(v) for v in self._extra("III", self.vlen)]

    def __repr__(self):
        return "<BTF %s [%d] %s>" % (self.kind_name, self.id, self._btf.type_name(self.id))


class TracepointProto(object):
    """What a tp_btf program attached to tracepoint ``name`` sees.

    ``btf_id`` is the id of the ``btf_trace_<name>`` typedef -- the value for
    ``attach_btf_id``; ``params`` are the tracepoint's TP_PROTO arguments (the hidden first
    ``void *__data`` is dropped)."""
    __slots__ = ("name", "btf_id", "params", "proto")

    def __init__(self, name, btf_id, params, proto):
        self.name, self.btf_id, self.params, self.proto = name, btf_id, params, proto

    def __repr__(self):
        return "TracepointProto(%r, btf_id=%d, %d params)" % (self.name, self.btf_id,
                                                              len(self.params))


class Btf(object):
    """Parsed BTF data (one blob).  ``base`` is the vmlinux ``Btf`` for split BTF (kernel
    modules): type ids and string offsets then continue after the base's."""

    def __init__(self, data, base=None, name="vmlinux", index=None, ptr_size=None):
        self.name = name
        self.base = base
        if isinstance(data, memoryview):
            data = data.tobytes()      # the lookups need find(): bytes, bytearray or mmap
        if len(data) < 24:
            raise BtfError("%s: BTF data too short (%d bytes)" % (name, len(data)))
        magic = struct.unpack_from("<H", data, 0)[0]
        if magic == BTF_MAGIC:
            self.endian = "<"
        elif magic == 0x9FEB:
            self.endian = ">"
        else:
            raise BtfError("%s: not BTF data (magic %#06x)" % (name, magic))
        e = self.endian
        version, flags, hdr_len = struct.unpack_from(e + "BBI", data, 2)
        if version != 1:
            raise BtfError("%s: unsupported BTF version %d" % (name, version))
        type_off, type_len, str_off, str_len = struct.unpack_from(e + "IIII", data, 8)
        layout_off = layout_len = 0
        if hdr_len >= 32:
            layout_off, layout_len = struct.unpack_from(e + "II", data, 24)
        end = len(data)
        if hdr_len + type_off + type_len > end or hdr_len + str_off + str_len > end:
            raise BtfError("%s: BTF sections run past the end of the data" % name)
        self.header = bytes(data[:hdr_len])
        # The sections stay where they are (no copies: vmlinux BTF is ~5 MB, and from an
        # mmap only the pages a lookup touches are read): offsets into ``data``.
        self._data = data
        self._t0, self._tlen = hdr_len + type_off, type_len
        self._s0, self._slen = hdr_len + str_off, str_len
        self._layout = dict(_LAYOUT)
        if layout_len:
            # Newer encoders describe every kind's trailing data, so kinds unknown to this
            # reader can still be skipped.
            raw = data[hdr_len + layout_off:hdr_len + layout_off + layout_len]
            for k in range(len(raw) // 4):
                info_sz, elem_sz, _ = struct.unpack_from(e + "BBH", raw, 4 * k)
                self._layout.setdefault(k, (info_sz, elem_sz))
        if base is not None:
            self.first_id = base.first_id + base.nr_types
            self._str_base = base._slen + base._str_base
        else:
            self.first_id = 1       # id 0 is void
            self._str_base = 0
        self._hdr = struct.Struct(e + "III")
        self._ptr_size = ptr_size
        self._objs = {}
        if index is None:
            index = self._scan()
        elif len(index[0]) != len(index[1]) or (
                len(index[0]) and index[0][-1] * 4 + 12 > self._tlen):
            raise BtfError("%s: BTF index does not fit the data" % name)
        self._offs, self._names = index[0], index[1]
        # Ids of the named types sorted by name: kept in the cache file, so that a name
        # lookup is a binary search instead of a scan of the string section.
        self._sorted = index[2] if len(index) > 2 else None
        self._names_bytes = None
        self._by_name_off = None
        self._memo = {}

    # -- the header index --------------------------------------------------------------------------

    def _scan(self):
        """One pass over the type headers: the offset (in 4-byte words) and the name offset
        of every type."""
        import sys
        from array import array
        words = array("I")
        t0 = self._t0
        words.frombytes(memoryview(self._data)[t0:t0 + (self._tlen & ~3)])
        if (self.endian == "<") != (sys.byteorder == "little"):
            words.byteswap()
        # Steps (in words) indexed by info >> 24, so kind_flag needs no masking.  Unknown
        # kinds get a step that overshoots the end, caught below.
        base = [1 << 40] * 256
        per = [0] * 256
        for kind, (fixed, elem) in self._layout.items():
            if fixed % 4 or elem % 4:
                raise BtfError("%s: BTF kind %d has a layout not in whole words" % (
                    self.name, kind))
            for top in (kind, kind | 0x80, kind | 0x20, kind | 0x40, kind | 0x60, kind | 0xa0,
                        kind | 0xc0, kind | 0xe0):
                base[top] = 3 + fixed // 4
                per[top] = elem // 4
        offs = array("I")
        add = offs.append
        i, n = 0, len(words)
        while i < n:
            add(i)
            info = words[i + 1] if i + 1 < n else 0
            top = info >> 24
            i += base[top] + (info & 0xffff) * per[top]
        if i != n:
            self._scan_error(words, offs)
        from operator import itemgetter
        if len(offs) > 1:
            names = array("I", itemgetter(*offs)(words))
        else:
            names = array("I", [words[o] for o in offs])
        return offs, names

    def _scan_error(self, words, offs):
        last = offs[-1] if offs else 0
        info = words[last + 1] if last + 1 < len(words) else 0
        kind = (info >> 24) & 0x1f
        tid = self.first_id + len(offs) - 1
        if kind not in self._layout:
            raise BtfError("%s: unsupported BTF kind %d (type id %d); tinytrace is older "
                           "than this kernel's BTF" % (self.name, kind, tid))
        raise BtfError("%s: BTF type section is truncated or corrupt at type id %d" % (
            self.name, tid))

    @property
    def nr_types(self):
        """Types in this blob (not counting void, nor a base's)."""
        return len(self._offs)

    @property
    def last_id(self):
        return self.first_id + len(self._offs) - 1

    def _names_column(self):
        if self._names_bytes is None:
            self._names_bytes = self._names.tobytes()
        return self._names_bytes

    # -- strings -----------------------------------------------------------------------------------

    def string(self, off):
        """The string at offset ``off`` (offsets below the base's string size are the
        base's, for split BTF)."""
        if off < self._str_base:
            return self.base.string(off)
        return self._cstring(off - self._str_base).decode("utf-8", "surrogateescape")

    def _cstring(self, off):
        """The NUL-terminated bytes at ``off`` in this blob's string section."""
        data, s0 = self._data, self._s0
        end = s0 + self._slen
        at = data.find(b"\0", s0 + off, end)
        return data[s0 + off:at if at >= 0 else end]

    def _find_str(self, pat, start=0):
        """``bytes.find`` within the string section (offsets relative to it)."""
        at = self._data.find(pat, self._s0 + start, self._s0 + self._slen)
        return at - self._s0 if at >= 0 else -1

    def _find_type_bytes(self, pat, start=0):
        """``bytes.find`` within the type section (offsets relative to it)."""
        at = self._data.find(pat, self._t0 + start, self._t0 + self._tlen)
        return at - self._t0 if at >= 0 else -1

    def _string_offsets(self, name, exact_start=True):
        """Offsets (in this blob's numbering) at which string ``name`` starts."""
        raw = name.encode("utf-8", "surrogateescape")
        find = self._find_str
        out = []
        if exact_start:
            s0 = self._s0
            if self._slen > len(raw) and self._data[s0:s0 + len(raw) + 1] == raw + b"\0":
                out.append(self._str_base)        # split BTF: no empty string first
            pat = b"\0" + raw + b"\0"
            at = find(pat)
            while at >= 0:
                out.append(at + 1 + self._str_base)
                at = find(pat, at + 1)
        else:
            pat = raw + b"\0"
            at = find(pat)
            data, s0 = self._data, self._s0
            while at >= 0:
                if at == 0 or data[s0 + at - 1] != 0:   # the exact starts were tried already
                    out.append(at + self._str_base)
                at = find(pat, at + 1)
        return out

    # -- types -------------------------------------------------------------------------------------

    def type(self, tid):
        """The ``BtfType`` with id ``tid`` (0 is void: returns None)."""
        if tid == 0:
            return None
        if tid < self.first_id:
            if self.base is None:
                raise BtfError("%s: no BTF type id %d" % (self.name, tid))
            return self.base.type(tid)
        t = self._objs.get(tid)
        if t is not None:
            return t
        k = tid - self.first_id
        if k >= len(self._offs):
            raise BtfError("%s: no BTF type id %d (last is %d)" % (self.name, tid,
                                                                   self.last_id))
        pos = self._offs[k] << 2
        name_off, info, size_or_type = self._hdr.unpack_from(self._data, self._t0 + pos)
        t = BtfType(self, tid, (info >> 24) & 0x1f, self.string(name_off) if name_off else "",
                    info & 0xffff, info >> 31, size_or_type, pos)
        self._objs[tid] = t
        return t

    def _name_bytes(self, k):
        off = self._names[k]
        if off < self._str_base:
            return self.base.string(off).encode("utf-8", "surrogateescape")
        return self._cstring(off - self._str_base)

    def build_name_index(self):
        """Sort the named types by name (once; ~25 ms for vmlinux) for binary-search
        lookups.  ``load`` does it when it writes the cache file."""
        if self._sorted is None:
            from array import array
            names = self._names
            key = self._name_bytes
            self._sorted = array("I", sorted((k for k in range(len(names)) if names[k]),
                                             key=key))
        return self._sorted

    def _ids_by_index(self, raw):
        srt = self._sorted
        key = self._name_bytes
        lo, hi = 0, len(srt)
        while lo < hi:
            mid = (lo + hi) // 2
            if key(srt[mid]) < raw:
                lo = mid + 1
            else:
                hi = mid
        out = []
        while lo < len(srt) and key(srt[lo]) == raw:
            out.append(self.first_id + srt[lo])
            lo += 1
        return out

    def ids_named(self, name):
        """Ids of every type (in this blob and its base) whose name is ``name``."""
        hit = self._memo.get(name)
        if hit is not None:
            return hit
        out = []
        if self.base is not None:
            out.extend(self.base.ids_named(name))
        if self._sorted is not None:
            out = sorted(set(out + self._ids_by_index(name.encode("utf-8",
                                                                  "surrogateescape"))))
            if len(self._memo) < 4096:
                self._memo[name] = out
            return out
        mine = []
        offs = self._string_offsets(name, True)
        if self.base is not None:
            offs += self.base._string_offsets(name, True)
        if offs:
            col = self._names_column()
            for off in offs:
                mine.extend(self.first_id + k for k in _u32_indexes(col, off))
        if not mine:
            # Names pointing into the tail of a longer string ("pid" inside "ppid"): no
            # kernel encoder does this, but the format allows it.  There may be thousands
            # of such tails, so go through a map of the whole name column.
            offs = self._string_offsets(name, False)
            if self.base is not None:
                offs += self.base._string_offsets(name, False)
            if offs:
                by_off = self._name_map()
                for off in offs:
                    mine.extend(by_off.get(off, ()))
        out = sorted(set(out + mine))
        if len(self._memo) < 4096:
            self._memo[name] = out
        return out

    def _name_map(self):
        if self._by_name_off is None:
            m = {}
            first = self.first_id
            for k, off in enumerate(self._names):
                if off:
                    m.setdefault(off, []).append(first + k)
            self._by_name_off = m
        return self._by_name_off

    def find_all(self, name, kind=None):
        """Every type named ``name`` (of ``kind``, a number or a name like ``"struct"``)."""
        kind = kind_number(kind)
        out = []
        for tid in self.ids_named(name):
            t = self.type(tid)
            if kind is None or t.kind == kind:
                out.append(t)
        return out

    def find(self, name, kind=None):
        """The type named ``name``, or None.  Without ``kind``, a definition wins over a
        forward declaration or a tag."""
        found = self.find_all(name, kind)
        if not found:
            return None
        if kind is None:
            for t in found:
                if t.kind not in (KIND_FWD, KIND_DECL_TAG):
                    return t
        return found[0]

    def find_struct(self, name):
        """``struct name`` or ``union name`` (a name may carry the ``struct ``/``union ``
        prefix), or None."""
        for prefix, kind in (("struct ", KIND_STRUCT), ("union ", KIND_UNION)):
            if name.startswith(prefix):
                return self.find(name[len(prefix):].strip(), kind)
        return self.find(name, KIND_STRUCT) or self.find(name, KIND_UNION)

    def resolve(self, t):
        """Skip typedefs, qualifiers and type tags: the underlying type (None for void)."""
        if isinstance(t, int):
            t = self.type(t)
        seen = 0
        while t is not None and t.kind in _MODIFIERS:
            t = self.type(t.type_id)
            seen += 1
            if seen > 64:
                raise BtfError("%s: type chain loops" % self.name)
        return t

    @property
    def ptr_size(self):
        """Pointer size of the described kernel (from ``long``'s size)."""
        if self._ptr_size is None:
            t = self.find("long unsigned int", KIND_INT) or self.find("long int", KIND_INT)
            self._ptr_size = t.size if t is not None else struct.calcsize("P")
        return self._ptr_size

    def size_of(self, t):
        """Size in bytes of a type (id or ``BtfType``)."""
        if isinstance(t, int):
            t = self.type(t)
        depth = 0
        mult = 1
        while True:
            depth += 1
            if t is None:
                raise BtfError("%s: void has no size" % self.name)
            if depth > 64:
                raise BtfError("%s: type chain loops" % self.name)
            k = t.kind
            if t.size is not None:
                return mult * t.size
            if k == KIND_PTR:
                return mult * self.ptr_size
            if k == KIND_ARRAY:
                elem, _, n = t.array
                mult *= n
                t = self.type(elem)
                continue
            if k in _MODIFIERS or k == KIND_VAR:
                t = self.type(t.type_id)
                continue
            raise BtfError("%s: %s has no size" % (self.name, self.type_name(t)))

    # -- members -----------------------------------------------------------------------------------

    def members(self, struct_type):
        """Direct members of a struct/union (given as type, id or name)."""
        return self._as_struct(struct_type).members

    def _as_struct(self, st):
        if isinstance(st, str):
            t = self.find_struct(st)
            if t is None:
                raise BtfError("no struct or union %r in %s BTF" % (st, self.name))
            return t
        t = self.resolve(st)
        if t is None or t.kind not in (KIND_STRUCT, KIND_UNION):
            raise BtfError("%s is not a struct or union" % (
                self.type_name(st) if t is not None else "void"))
        return t

    def member(self, struct_type, path):
        """Find member ``path`` (``"pid"``, or dotted ``"se.vruntime"`` through nested
        struct members) of a struct/union given as type, id or name; members of anonymous
        structs/unions are found by name as C allows.  Returns a ``Member`` with the total
        bit offset from the outer struct and the names walked, or None."""
        t = self._as_struct(struct_type)
        total = 0
        walked = []
        found = None
        for part in path.split("."):
            if found is not None:
                t = self.resolve(found.type_id)
                if t is None or t.kind not in (KIND_STRUCT, KIND_UNION):
                    return None
            hit = self._find_member(t, part, 0)
            if hit is None:
                return None
            names, bit_off, bits, tid = hit
            total += bit_off
            walked.extend(names)
            found = Member(self, part, tid, total, bits, list(walked))
        return found

    def _find_member(self, t, name, depth):
        if depth > 32:
            return None
        anon = []
        for m in t.members:
            bits = m.bitfield_size
            if m.name == name:
                off = m.bit_offset
                if not t.kind_flag and not bits:
                    # Old-style bitfield: the width and bit offset live in the INT.
                    r = self.resolve(m.type_id)
                    if r is not None and r.kind == KIND_INT:
                        enc, ioff, nbits = r.int_encoding
                        if nbits != r.size * 8 or ioff:
                            bits = nbits
                            off += ioff
                return [name], off, bits, m.type_id
            if not m.name:
                anon.append(m)
        for m in anon:
            r = self.resolve(m.type_id)
            if r is not None and r.kind in (KIND_STRUCT, KIND_UNION):
                hit = self._find_member(r, name, depth + 1)
                if hit is not None:
                    names, off, bits, tid = hit
                    return [""] + names, m.bit_offset + off, bits, tid
        return None

    # -- enums -------------------------------------------------------------------------------------

    def enum_value(self, name):
        """``(value, enum type)`` of enumerator ``name`` in any enum, or None."""
        hits = self.enumerators(name)
        return hits[0] if hits else None

    def enumerators(self, name):
        """Every ``(value, enum type)`` that defines enumerator ``name``."""
        import bisect
        out = []
        if self.base is not None:
            out.extend(self.base.enumerators(name))
        data, t0 = self._data, self._t0
        offs = self._offs
        for exact in (True, False):
            cands = self._string_offsets(name, exact)
            if self.base is not None:
                cands += self.base._string_offsets(name, exact)
            if len(cands) > 8:
                # Many tails of longer strings: one pass over every enum beats a search of
                # the type section per candidate.
                for tid, idx in self._enum_map_hits(cands):
                    t = self.type(tid)
                    out.append((t.values[idx][1], t))
                if out:
                    break
                continue
            for off in cands:
                pat = struct.pack(self.endian + "I", off)
                at = self._find_type_bytes(pat)
                while at >= 0:
                    if at % 4 == 0:
                        k = bisect.bisect_right(offs, at >> 2) - 1
                        if k >= 0:
                            start = offs[k] << 2
                            info = self._hdr.unpack_from(data, t0 + start)[1]
                            kind = (info >> 24) & 0x1f
                            rel = at - start - 12
                            step = 8 if kind == KIND_ENUM else 12
                            if kind in (KIND_ENUM, KIND_ENUM64) and rel >= 0 and \
                                    rel % step == 0 and rel // step < (info & 0xffff):
                                t = self.type(self.first_id + k)
                                out.append((t.values[rel // step][1], t))
                    at = self._find_type_bytes(pat, at + 1)
            if out:
                break
        return out

    def _enum_map_hits(self, cands):
        """``(type id, value index)`` of every enumerator whose name offset is in cands."""
        want = set(cands)
        hdr = self._hdr
        types, t0 = self._data, self._t0
        e = self.endian
        hits = []
        for k, w in enumerate(self._offs):
            pos = t0 + (w << 2)
            info = hdr.unpack_from(types, pos)[1]
            kind = (info >> 24) & 0x1f
            if kind != KIND_ENUM and kind != KIND_ENUM64:
                continue
            step = 8 if kind == KIND_ENUM else 12
            for j in range(info & 0xffff):
                if struct.unpack_from(e + "I", types, pos + 12 + j * step)[0] in want:
                    hits.append((self.first_id + k, j))
        return hits

    def enum_values(self, enum):
        """``{name: value}`` of an enum given as type, id or name (``"tcp_state"``)."""
        if isinstance(enum, str):
            t = self.find(enum, KIND_ENUM) or self.find(enum, KIND_ENUM64)
            if t is None:
                raise BtfError("no enum %r in %s BTF" % (enum, self.name))
        else:
            t = self.resolve(enum)
        return dict(t.values)

    # -- functions and tracepoints -----------------------------------------------------------------

    def func(self, name):
        """The FUNC type of kernel function ``name`` (its ``.type`` is the FUNC_PROTO)."""
        return self.find(name, KIND_FUNC)

    def func_proto(self, name):
        """The FUNC_PROTO of function ``name``, or None."""
        f = self.func(name)
        return f.type if f is not None else None

    def tracepoint(self, name):
        """The tp_btf view of tracepoint ``name`` (``sched_switch`` or
        ``sched:sched_switch``), or None when the kernel has no ``btf_trace_<name>``."""
        short = name.split(":")[-1]
        td = self.find("btf_trace_" + short, KIND_TYPEDEF)
        if td is None:
            return None
        ptr = self.resolve(td.type_id) if td.type_id else None
        if ptr is None or ptr.kind != KIND_PTR:
            return None
        proto = self.resolve(ptr.type_id)
        if proto is None or proto.kind != KIND_FUNC_PROTO:
            return None
        return TracepointProto(short, td.id, proto.params[1:], proto)

    def names_with_prefix(self, prefix, kind=None):
        """Names of the types (of ``kind``) starting with ``prefix`` -- for listings such as
        every ``btf_trace_*``.  Costs a pass over the name column."""
        kind = kind_number(kind)
        raw = prefix.encode()
        wanted = {}
        at = self._find_str(b"\0" + raw)
        while at >= 0:
            wanted[at + 1 + self._str_base] = True
            at = self._find_str(b"\0" + raw, at + 1)
        out = []
        for k, off in enumerate(self._names):
            if off in wanted:
                t = self.type(self.first_id + k)
                if kind is None or t.kind == kind:
                    out.append(t.name)
        if self.base is not None:
            out = self.base.names_with_prefix(prefix, kind) + out
        return out

    # -- type names --------------------------------------------------------------------------------

    def type_name(self, t, name=""):
        """A C spelling of a type: ``struct task_struct *``, ``unsigned int``, ``char[16]``,
        ``void (*)(int)``; with ``name``, a declaration (``char comm[16]``)."""
        if isinstance(t, int):
            t = self.type(t)
        return self._decl(t, name, 0)

    def _decl(self, t, inner, depth):
        if depth > 64:
            return "?" + (" " + inner if inner else "")
        if t is None:
            return _join("void", inner)
        k = t.kind
        if k == KIND_PTR:
            target = self.type(t.type_id)
            s = "*" + inner
            if target is not None and target.kind in (KIND_ARRAY, KIND_FUNC_PROTO):
                s = "(" + s + ")"
            return self._decl(target, s, depth + 1)
        if k in _QUALIFIER_WORDS:
            q = _QUALIFIER_WORDS[k]
            target = self.type(t.type_id)
            if target is not None and target.kind == KIND_PTR:
                return self._decl(target, q + (" " + inner if inner else ""), depth + 1)
            return q + " " + self._decl(target, inner, depth + 1)
        if k == KIND_TYPE_TAG:
            return self._decl(self.type(t.type_id), inner, depth + 1)
        if k == KIND_ARRAY:
            elem, _, n = t.array
            return self._decl(self.type(elem), inner + "[%d]" % n, depth + 1)
        if k == KIND_FUNC_PROTO:
            ps = []
            for p in t.params:
                if p.type_id == 0 and not p.name:
                    ps.append("...")
                else:
                    ps.append(self._decl(self.type(p.type_id), p.name, depth + 1))
            return self._decl(self.type(t.type_id), inner + "(" + (", ".join(ps) or "void") +
                              ")", depth + 1)
        if k == KIND_FUNC:
            return self._decl(self.type(t.type_id), inner or t.name, depth + 1)
        if k == KIND_VAR:
            return self._decl(self.type(t.type_id), inner or t.name, depth + 1)
        if k in (KIND_STRUCT, KIND_UNION):
            word = "struct" if k == KIND_STRUCT else "union"
            return _join("%s %s" % (word, t.name or "{...}"), inner)
        if k in (KIND_ENUM, KIND_ENUM64):
            return _join("enum " + (t.name or "{...}"), inner)
        if k == KIND_FWD:
            return _join(("union " if t.kind_flag else "struct ") + t.name, inner)
        if k == KIND_DATASEC:
            return _join("SEC(%s)" % t.name, inner)
        if k == KIND_DECL_TAG:
            return _join("__attribute__((btf_decl_tag(\"%s\")))" % t.name, inner)
        return _join(t.name or "(anon)", inner)   # INT, FLOAT, TYPEDEF

    def __repr__(self):
        return "<Btf %s: ids %d..%d>" % (self.name, self.first_id, self.last_id)


def _join(base, inner):
    if not inner:
        return base
    if inner[0] == "[":
        return base + inner
    return base + " " + inner


def _u32_indexes(words, value):
    from tinytrace.kernel.elf import u32_indexes
    return u32_indexes(words, value)


# -- writing small blobs -----------------------------------------------------------------------

class Writer(object):
    """Builds a small BTF blob in this machine's byte order: the types a map's key and value
    are described with (``bpf.btf_load`` hands it to the kernel).  Each method adds one type
    and returns its id::

        w = Writer()
        key = w.int("int", 4, signed=True)
        value = w.int("u64", 8)
        blob = w.encode()
    """

    def __init__(self):
        self._types = []
        self._strings = bytearray(b"\0")
        self._offsets = {"": 0}

    def _str(self, text):
        off = self._offsets.get(text)
        if off is None:
            off = self._offsets[text] = len(self._strings)
            self._strings += text.encode() + b"\0"
        return off

    def _add(self, kind, name, vlen, size_or_type, extra=b"", kind_flag=0):
        self._types.append(struct.pack("=III", self._str(name) if name else 0,
                                       (kind_flag << 31) | (kind << 24) | vlen,
                                       size_or_type) + extra)
        return len(self._types)

    def int(self, name, size, signed=False):
        """An integer type of ``size`` bytes (1, 2, 4, 8 or 16)."""
        return self._add(KIND_INT, name, 0, size,
                         struct.pack("=I", ((INT_SIGNED if signed else 0) << 24) | size * 8))

    def ptr(self, type_id):
        return self._add(KIND_PTR, "", 0, type_id)

    def array(self, elem, count, index_type):
        """``elem[count]``; ``index_type`` is an integer type's id (BTF wants one)."""
        return self._add(KIND_ARRAY, "", 0, 0, struct.pack("=III", elem, index_type, count))

    def struct(self, name, size, members):
        """A struct of ``size`` bytes; ``members`` are ``(name, type id, byte offset)``."""
        extra = b"".join(struct.pack("=III", self._str(m), t, off * 8) for m, t, off in members)
        return self._add(KIND_STRUCT, name, len(members), size, extra)

    def func_proto(self, ret, params=()):
        """A function type: returns type ``ret`` (0: void), takes ``params``
        (``(name, type id)``)."""
        extra = b"".join(struct.pack("=II", self._str(n), t) for n, t in params)
        return self._add(KIND_FUNC_PROTO, "", len(params), ret, extra)

    def func(self, name, proto, linkage=0):
        """A function named ``name`` of type ``proto`` (linkage 0: static, 1: global) --
        what a program's func_info points at."""
        return self._add(KIND_FUNC, name, linkage, proto)

    def encode(self):
        types = b"".join(self._types)
        strings = bytes(self._strings)
        return struct.pack("=HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(types), len(types),
                           len(strings)) + types + strings


# -- facts about the running kernel, remembered ---------------------------------------------------

_facts = None
FACTS_FORMAT = "TTBTFFACTS1"


def cached(key, compute):
    """``compute(vmlinux())`` -- an int, None, or a list of ints: a member offset, a tp_btf
    id -- remembered per running kernel in a small file next to the BTF index, so that
    later runs of a tool that needs only a few such facts do not open the BTF at all.
    ``key`` names the fact (``"task_struct.tgid"``; no tabs or newlines); a ``BtfError``
    from ``compute`` propagates and nothing is kept."""
    global _facts
    if _facts is None:
        _facts = _Facts()
    return _facts.get(key, compute)


def _fact_text(value):
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
        raise TypeError("a BTF fact is an int, None or a list of ints, not %r" % (value,))
    if isinstance(value, int):
        return "%d" % value
    return "[" + ",".join("%d" % int(v) for v in value)


def _fact_value(text):
    if text == "-":
        return None
    if text.startswith("["):
        return [int(v) for v in text[1:].split(",") if v]
    return int(text)


class _Facts(object):
    """The facts file: a header line with the kernel's identity (the index cache's key),
    then ``name<TAB>value`` lines; rewritten whole when a fact is added.  Text, not JSON:
    importing ``json`` (and ``re`` with it) costs more than a tool start can spare."""

    def __init__(self):
        self._key = None
        self._values = None

    def _load(self):
        import os
        self._values = {}
        self._key = ""
        if not os.path.exists(VMLINUX) or not _kernel_build_id():
            return                      # nothing names this kernel's BTF exactly: no file
        data, st = _map_file(VMLINUX)
        self._key = _cache_key(VMLINUX, st, data)
        head = "%s\t%s\n" % (FACTS_FORMAT, self._key)
        for d in _cache_dirs():
            if not _private_enough(d):
                continue
            try:
                with open(os.path.join(d, _facts_name(self._key)), "r") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError):
                continue
            if not text.startswith(head):
                continue
            try:
                values = {}
                for line in text[len(head):].splitlines():
                    name, _, value = line.partition("\t")
                    values[name] = _fact_value(value)
            except ValueError:
                continue
            self._values = values
            return

    def get(self, key, compute):
        if self._values is None:
            self._load()
        if key in self._values:
            return self._values[key]
        if "\t" in key or "\n" in key:
            raise ValueError("bad BTF fact name %r" % key)
        value = compute(vmlinux())
        text = _fact_text(value)
        self._values[key] = _fact_value(text)
        if self._key:
            self._save()
        return self._values[key]

    def _save(self):
        lines = ["%s\t%s" % (FACTS_FORMAT, self._key)]
        lines += ["%s\t%s" % (k, _fact_text(v)) for k, v in sorted(self._values.items())]
        blob = ("\n".join(lines) + "\n").encode()
        for d in _cache_dirs():
            if _cache_write_dir(d, self._key, blob, _facts_name(self._key), "btf-facts-"):
                return


def _facts_name(key):
    import zlib
    return "btf-facts-%08x.txt" % zlib.crc32(key.encode())


# -- loading, caching --------------------------------------------------------------------------

_vmlinux = None
_modules = {}


def available(path=VMLINUX):
    import os
    return os.path.exists(path)


def vmlinux(path=VMLINUX, cache=True):
    """The running kernel's BTF (parsed once per process).  Raises ``BtfError`` with what to
    do when the kernel has none."""
    global _vmlinux
    if _vmlinux is not None and path == VMLINUX:
        return _vmlinux
    b = load(path, cache=cache)
    if path == VMLINUX:
        _vmlinux = b
    return b


def module(name):
    """The split BTF of kernel module ``name`` (``/sys/kernel/btf/<name>``), or None."""
    import os
    if name in _modules:
        return _modules[name]
    path = os.path.join(os.path.dirname(VMLINUX), name)
    b = load(path, base=vmlinux(), cache=False, name=name) if os.path.exists(path) else None
    _modules[name] = b
    return b


def module_names():
    """Kernel modules that carry BTF."""
    import os
    try:
        return sorted(n for n in os.listdir(os.path.dirname(VMLINUX)) if n != "vmlinux")
    except OSError:
        return []


def load(path, base=None, cache=True, name=None):
    """Parse the BTF file at ``path``.  With ``cache``, the header index is kept in (and read
    back from) a cache file; any problem with the cache only means no cache."""
    import os
    name = name or os.path.basename(path)
    try:
        data, st = _map_file(path)
    except OSError as e:
        if e.errno == 2:
            raise BtfError("%s is missing: this kernel was built without BTF "
                           "(CONFIG_DEBUG_INFO_BTF); struct access and tp_btf need it" % path)
        raise BtfError("cannot read %s: %s" % (path, e.strerror or e))
    if not cache:
        return Btf(data, base=base, name=name)
    key = _cache_key(path, st, data)
    index = _cache_read(key)
    if index is not None:
        try:
            return Btf(data, base=base, name=name, index=index)
        except BtfError:
            pass
    b = Btf(data, base=base, name=name)
    _cache_write(key, b)
    return b


def _map_file(path):
    """(contents, stat) of a file: a read-only private mmap where the file allows one (the
    sysfs vmlinux BTF does from Linux 6.16), so only the pages a lookup touches are read
    in, else the bytes read."""
    import os
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_size > 0:
            import mmap
            try:
                return mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE,
                                 prot=mmap.PROT_READ), st
            except (OSError, ValueError):
                pass
        return f.read(), st


def cache_dir():
    """Where tinytrace keeps caches: $TINYTRACE_CACHE_DIR, $XDG_CACHE_HOME/tinytrace,
    /var/cache/tinytrace for root, else ~/.cache/tinytrace."""
    import os
    d = os.environ.get("TINYTRACE_CACHE_DIR")
    if d:
        return d
    x = os.environ.get("XDG_CACHE_HOME")
    if x:
        return os.path.join(x, "tinytrace")
    if os.geteuid() == 0:
        return "/var/cache/tinytrace"
    return os.path.join(os.path.expanduser("~"), ".cache", "tinytrace")


def _cache_dirs():
    """Directories to try, in order: ``cache_dir()``, then (unless the user chose one) a
    private directory in /tmp -- boards often have a read-only root but a writable tmpfs,
    which lasts exactly as long as the running kernel's BTF does."""
    import os
    dirs = [cache_dir()]
    if not os.environ.get("TINYTRACE_CACHE_DIR"):
        dirs.append("/tmp/tinytrace-%d" % os.geteuid())
    return dirs


def _private_enough(d):
    """A cache directory must not be writable by anyone else: the index decides which
    bytes are read as which struct."""
    import os
    import stat
    try:
        st = os.lstat(d)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and \
        not st.st_mode & 0o022


def _kernel_build_id():
    """The running kernel's build id from /sys/kernel/notes, or ""."""
    try:
        with open("/sys/kernel/notes", "rb") as f:
            data = f.read()
    except OSError:
        return ""
    from tinytrace.kernel.elf import parse_notes
    import sys
    endian = "<" if sys.byteorder == "little" else ">"
    for n in parse_notes(data, endian):
        if n.type == 3 and n.name == "GNU":
            return n.desc.hex()
    return ""


def _cache_key(path, st, data):
    import os
    bid = _kernel_build_id() if os.path.abspath(path) == VMLINUX else ""
    # The running kernel's build id names its BTF exactly (sysfs mtimes change at every
    # boot, so they are left out then); other files go by size and mtime.  A CRC of the
    # first and last KiB guards against a file rewritten in place.
    import zlib
    probe = zlib.crc32(bytes(data[:1024]) + bytes(data[-1024:]))
    text = "%s|%d|%s|%s|%08x" % (os.path.abspath(path), st.st_size,
                                 "-" if bid else str(st.st_mtime_ns), bid, probe)
    return text


def _cache_name(key):
    import zlib
    return "btf-index-%08x.bin" % zlib.crc32(key.encode())


def _cache_read(key):
    import os
    for d in _cache_dirs():
        if not _private_enough(d) and d.startswith("/tmp/"):
            continue
        index = _cache_read_file(os.path.join(d, _cache_name(key)), key)
        if index is not None:
            return index
    return None


def _cache_head(kb):
    """The cache file's header for key bytes ``kb``, without the byte order and counts:
    (header, where the arrays start: after order and counts, padded to 4 bytes)."""
    head = CACHE_FORMAT + struct.pack("<I", len(kb)) + kb
    return head, (len(head) + 9 + 3) & ~3


def _cache_read_file(p, key):
    """The index arrays from cache file ``p``: memoryviews of a private mmap of the file
    (only the pages a lookup touches are read), or None when the file does not fit."""
    import sys
    try:
        blob, _ = _map_file(p)
    except OSError:
        return None
    head, start = _cache_head(key.encode())
    pos = len(head)
    if len(blob) < start or blob[:pos] != head:
        return None
    order = blob[pos:pos + 1]
    n, m = struct.unpack_from("<II", blob, pos + 1)
    if len(blob) != start + 8 * n + 4 * m or \
            order != (b"L" if sys.byteorder == "little" else b"B"):
        return None
    view = memoryview(blob)
    return (view[start:start + 4 * n].cast("I"), view[start + 4 * n:start + 8 * n].cast("I"),
            view[start + 8 * n:].cast("I"))


def _cache_write(key, b):
    """Write the index into the first cache directory that takes it; False if none."""
    import sys
    srt = b.build_name_index()
    head, start = _cache_head(key.encode())
    head += (b"L" if sys.byteorder == "little" else b"B") + \
        struct.pack("<II", len(b._offs), len(srt))
    blob = (head + bytes(start - len(head)) + b._offs.tobytes() + b._names.tobytes() +
            srt.tobytes())
    for d in _cache_dirs():
        if _cache_write_dir(d, key, blob):
            return True
    return False


def _cache_write_dir(d, key, blob, name=None, prefix="btf-index-"):
    """Write ``blob`` as ``name`` (default: the index file for ``key``) into directory
    ``d``, atomically; files with the same ``prefix`` made for another version of the same
    BTF file (an older kernel) are removed.  False when ``d`` does not take it."""
    import os
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        if d.startswith("/tmp/") and not _private_enough(d):
            return False
        # a private temporary name (not tempfile: its import costs ~7 ms)
        tmp = os.path.join(d, ".%s%d-%d" % (prefix, os.getpid(), id(blob)))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     0o600)
        final = os.path.join(d, name or _cache_name(key))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        path = key.split("|")[0]
        for n in os.listdir(d):
            full = os.path.join(d, n)
            if not n.startswith(prefix) or full == final:
                continue
            other = _file_key(full)
            if other is not None and other.split("|")[0] == path:
                try:
                    os.unlink(full)
                except OSError:
                    pass
    except OSError:
        return False
    return True


def _file_key(path):
    """The key a cache file was written for (index or facts file, any format), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096 + 16)
        if head.startswith(b"TTBTFIX"):
            klen = struct.unpack_from("<I", head, len(CACHE_FORMAT))[0]
            return head[len(CACHE_FORMAT) + 4:len(CACHE_FORMAT) + 4 + klen].decode(
                "utf-8", "replace")
        if head.startswith(FACTS_FORMAT[:-1].encode()):
            return head.split(b"\n", 1)[0].split(b"\t", 1)[1].decode("utf-8", "replace")
    except (OSError, ValueError, IndexError, struct.error):
        pass
    return None
