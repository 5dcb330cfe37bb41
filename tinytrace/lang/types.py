"""The language's types: what a value is, how big it is in BPF memory, how it prints.

Types are small immutable values compared by content.  Integers follow C: operands narrower
than 32 bits are promoted to int32, then the usual arithmetic conversions pick the common
type.  Literals are int64 (uint64 when they do not fit), as in bpftrace.  In a register an
integer is always kept in canonical form: sign-extended (signed) or zero-extended
(unsigned) to 64 bits, so comparisons can use 64-bit jumps.
"""


class Type:
    __slots__ = ()
    kind = "?"
    size = 0
    align = 1

    def key(self):
        return ()

    def __eq__(self, other):
        return type(self) is type(other) and self.key() == other.key()

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((type(self).__name__,) + self.key())

    def __repr__(self):
        return self.describe()

    def describe(self):
        return self.kind

    # Properties used all over the passes.
    @property
    def is_int(self):
        return False

    @property
    def is_agg(self):
        return False

    @property
    def scalar(self):
        """Fits in a register (integers, pointers and small opaque values)."""
        return False


class IntT(Type):
    __slots__ = ("bits", "signed")
    kind = "int"

    def __init__(self, bits, signed):
        self.bits = bits
        self.signed = signed

    def key(self):
        return (self.bits, self.signed)

    @property
    def size(self):
        return self.bits // 8

    @property
    def align(self):
        return self.bits // 8

    @property
    def is_int(self):
        return True

    @property
    def scalar(self):
        return True

    def describe(self):
        return ("int%d" if self.signed else "uint%d") % self.bits

    def wrap(self, value):
        """``value`` reduced to this type, as a Python int (two's complement)."""
        mask = (1 << self.bits) - 1
        value &= mask
        if self.signed and value >> (self.bits - 1):
            value -= 1 << self.bits
        return value

    def fits(self, value):
        if self.signed:
            return -(1 << (self.bits - 1)) <= value < (1 << (self.bits - 1))
        return 0 <= value < (1 << self.bits)


INT8, INT16, INT32, INT64 = IntT(8, True), IntT(16, True), IntT(32, True), IntT(64, True)
UINT8, UINT16, UINT32, UINT64 = IntT(8, False), IntT(16, False), IntT(32, False), IntT(64, False)
BOOL = INT64  # comparisons and logical operators
INT_TYPES = {
    "int8": INT8, "int16": INT16, "int32": INT32, "int64": INT64,
    "uint8": UINT8, "uint16": UINT16, "uint32": UINT32, "uint64": UINT64,
    "s8": INT8, "s16": INT16, "s32": INT32, "s64": INT64,
    "u8": UINT8, "u16": UINT16, "u32": UINT32, "u64": UINT64,
    "int": INT32, "uint": UINT32, "bool": UINT8, "char": INT8, "short": INT16, "long": INT64,
    "signed": INT32, "unsigned": UINT32,
    "signed char": INT8, "unsigned char": UINT8, "signed int": INT32, "unsigned int": UINT32,
    "short int": INT16, "unsigned short": UINT16, "unsigned short int": UINT16,
    "signed short": INT16, "long int": INT64, "unsigned long": UINT64,
    "signed long": INT64, "long long": INT64, "unsigned long long": UINT64,
    "long long int": INT64, "unsigned long long int": UINT64, "unsigned long int": UINT64,
}


def int_type(size, signed):
    return IntT(size * 8, signed)


def literal_type(value):
    """The type of an integer literal: int64, or uint64 when it does not fit."""
    return INT64 if -(1 << 63) <= value < (1 << 63) else UINT64


class PtrT(Type):
    """A pointer: 64 bits; ``pointee`` may be None (void).  ``user`` when it points into the
    traced process's memory (syscall tracepoint arguments), else kernel memory."""
    __slots__ = ("pointee", "user")
    kind = "ptr"
    size = 8
    align = 8

    def __init__(self, pointee, user=False):
        self.pointee = pointee
        self.user = user

    def key(self):
        return (self.pointee, self.user)

    @property
    def scalar(self):
        return True

    def describe(self):
        inner = self.pointee.describe() if self.pointee is not None else "void"
        return inner + " *"


class StrT(Type):
    """A NUL-terminated string in a buffer of ``size`` bytes (the NUL included)."""
    __slots__ = ("_size",)
    kind = "string"
    align = 1

    def __init__(self, size):
        self._size = size

    @property
    def size(self):
        return self._size

    def key(self):
        return (self._size,)

    def describe(self):
        return "string[%d]" % self._size


class BufT(Type):
    """``buf(p, n)``: a length (u32) followed by up to ``cap`` raw bytes; printed as
    ``\\xNN`` escapes for the non-printable bytes."""
    __slots__ = ("cap",)
    kind = "buffer"
    align = 4

    def __init__(self, cap):
        self.cap = cap

    @property
    def size(self):
        return 4 + self.cap

    def key(self):
        return (self.cap,)

    def describe(self):
        return "buffer[%d]" % self.cap


class ArrayT(Type):
    """A fixed array from a tracepoint record (char arrays are ``StrT`` instead)."""
    __slots__ = ("elem", "count")
    kind = "array"

    def __init__(self, elem, count):
        self.elem = elem
        self.count = count

    @property
    def size(self):
        return self.elem.size * self.count

    @property
    def align(self):
        return self.elem.align

    def key(self):
        return (self.elem, self.count)

    def describe(self):
        return "%s[%d]" % (self.elem.describe(), self.count)


def _align_up(n, a):
    return (n + a - 1) // a * a


class TupleT(Type):
    """A tuple, laid out like a C struct of its elements (natural alignment)."""
    __slots__ = ("elems", "offsets", "_size", "_align")
    kind = "tuple"

    def __init__(self, elems):
        self.elems = tuple(elems)
        offsets = []
        off = 0
        align = 1
        for e in self.elems:
            a = max(e.align, 1)
            off = _align_up(off, a)
            offsets.append(off)
            off += e.size
            align = max(align, a)
        self.offsets = tuple(offsets)
        self._align = align
        self._size = _align_up(off, align) if off else 0

    @property
    def size(self):
        return self._size

    @property
    def align(self):
        return self._align

    def key(self):
        return self.elems

    def describe(self):
        return "(%s)" % ", ".join(e.describe() for e in self.elems)


class RecordField:
    """A field of a record: ``data_loc`` is None, "data" (__data_loc: a u32 holding
    ``len << 16 | offset`` from the record start) or "rel" (__rel_loc: offset counted from
    the end of the u32 itself); ``size`` is the field's size in the record."""
    __slots__ = ("name", "offset", "ty", "data_loc", "size")

    def __init__(self, name, offset, ty, data_loc=None, size=None):
        self.name = name
        self.offset = offset
        self.ty = ty
        self.data_loc = data_loc
        self.size = ty.size if size is None else size

    def _key(self):
        return (self.name, self.offset, self.ty, self.data_loc, self.size)

    def __eq__(self, other):
        return isinstance(other, RecordField) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return "RecordField(%s @%d %s)" % (self.name, self.offset, self.ty)


class RecordT(Type):
    """A struct such as a tracepoint's record (``args``); fields keep the kernel's offsets."""
    __slots__ = ("name", "fields", "_size")
    kind = "record"
    align = 8

    def __init__(self, name, fields, size):
        self.name = name
        self.fields = dict((f.name, f) for f in fields)
        self._size = size

    @property
    def size(self):
        return self._size

    def key(self):
        return (self.name,)

    def describe(self):
        return "struct " + self.name


class StructT(Type):
    """A kernel struct or union known from BTF (``struct task_struct``).  Values of this
    type are never copied: an expression of struct type stands for the struct's address
    in kernel (or, ``user``, process) memory, and member reads go through probe_read."""
    __slots__ = ("name", "btf_id", "_size", "user")
    kind = "struct"
    align = 8

    def __init__(self, name, btf_id, size, user=False):
        self.name = name
        self.btf_id = btf_id
        self._size = size
        self.user = user

    @property
    def size(self):
        return self._size

    def key(self):
        return (self.btf_id, self.user)

    def describe(self):
        return "struct " + (self.name or "<anonymous>")


class CStructT(StructT):
    """A struct or union defined in the script (``struct tt { int x; };``): used as a BTF
    ``StructT`` is (its address stands for it, members are read with probe_read), with the
    layout computed from its C definition (``tinytrace.lang.clayout.StructLayout``).  A
    script's definition of a name hides the kernel's type of that name."""
    __slots__ = ("layout",)

    def __init__(self, layout, user=False):
        StructT.__init__(self, layout.name, None, 0, user)
        self.layout = layout

    @property
    def size(self):
        return self.layout.size or 0

    @property
    def align(self):
        return self.layout.align or 1

    def key(self):
        return ("c", self.layout.uid, self.user)

    def describe(self):
        return "%s %s" % (self.layout.kind, self.name or "<anonymous>")


def with_user(st, user):
    """``st`` (a struct type) in process (``user``) or kernel memory."""
    if st.user == user:
        return st
    if isinstance(st, CStructT):
        return CStructT(st.layout, user)
    return StructT(st.name, st.btf_id, st.size, user)


class OpaqueT(Type):
    """Values that only print or compare: stack ids, symbols, addresses, probe names.

    ``what`` names the kind (probe, kstack, ustack, ksym, usym, inet, username, timestamp,
    errno, cgroup_path); ``size`` is its size in BPF memory; ``params`` distinguishes
    variants (stack depth and mode, the strftime format)."""
    __slots__ = ("what", "_size", "params")
    kind = "opaque"
    align = 8

    def __init__(self, what, size, params=()):
        self.what = what
        self._size = size
        self.params = tuple(params)

    @property
    def size(self):
        return self._size

    @property
    def scalar(self):
        return self._size <= 8 and self.what not in _IN_MEMORY

    def key(self):
        return (self.what, self._size, self.params)

    def describe(self):
        return self.what


_IN_MEMORY = frozenset(("macaddr",))     # opaque values built in memory, not in a register
PROBE = OpaqueT("probe", 8)
MACADDR = OpaqueT("macaddr", 8)          # six bytes, two of padding
USERNAME = OpaqueT("username", 8)
KSYM = OpaqueT("ksym", 8)
INET = OpaqueT("inet", 24)  # u64 family, then 16 address bytes


COMM_T = StrT(16)


def usym_type():
    return OpaqueT("usym", 16)  # address, pid


def stack_type(user, depth, mode):
    # kernel: u64 stack id; user: u64 stack id, u64 pid (symbols resolve per process)
    return OpaqueT("ustack" if user else "kstack", 16 if user else 8, (depth, mode))


def timestamp_type(fmt_id):
    return OpaqueT("timestamp", 8, (fmt_id,))


class AggT(Type):
    """The value of an aggregation map: ``count``, ``sum``, ``avg``, ``min``, ``max``,
    ``stats``, ``hist`` or ``lhist``.  ``arg`` is the integer type aggregated (None for
    count); ``params`` holds lhist's (min, max, step) or hist's (bits,)."""
    __slots__ = ("agg", "arg", "params")
    kind = "agg"
    align = 8

    def __init__(self, agg, arg=None, params=()):
        self.agg = agg
        self.arg = arg
        self.params = tuple(params)

    @property
    def is_agg(self):
        return True

    def key(self):
        return (self.agg, self.arg, self.params)

    @property
    def size(self):
        return 8 * self.slots

    @property
    def slots(self):
        """Number of u64 words in the map value (see ``tinytrace.lang.mapvalues``)."""
        a = self.agg
        if a == "count":
            return 1
        if a in ("sum", "avg", "stats", "min", "max"):
            return 2
        if a == "hist":
            return hist_buckets(self.params[0] if self.params else 0)
        if a == "lhist":
            lo, hi, step = self.params
            return lhist_buckets(lo, hi, step)
        raise AssertionError(a)

    def describe(self):
        if self.agg == "lhist":
            return "lhist(%d, %d, %d)" % self.params
        return "%s()" % self.agg


def hist_buckets(bits=0):
    """Buckets of ``hist(x[, k])`` in bpftrace's indexing (``tinytrace.output.bpftrace``):
    0 holds negatives, 1 holds 0, values below ``2 << k`` have one bucket each, and from
    there each power of two is split into ``2**k`` buckets; 2**64 - 1 is the last."""
    return (65 - bits) * (1 << bits) + 1


def lhist_buckets(lo, hi, step):
    """Buckets of ``lhist(x, lo, hi, step)``: below lo, one per whole step, at or above
    the last step (bpftrace divides (hi - lo) by step, rounding down)."""
    return (hi - lo) // step + 2


class _Simple(Type):
    __slots__ = ("_kind",)

    def __init__(self, kind):
        self._kind = kind

    @property
    def kind(self):
        return self._kind

    def key(self):
        return (self._kind,)

    def describe(self):
        return self._kind


VOID = _Simple("none")
UNKNOWN = _Simple("unknown")


# -- conversions ---------------------------------------------------------------------------

def promote(t):
    """C integer promotion (pointers act as uint64)."""
    if isinstance(t, PtrT):
        return UINT64
    if t.is_int and t.bits < 32:
        return INT32
    return t


def common_int(a, b):
    """C's usual arithmetic conversions of two integer types."""
    a = promote(a)
    b = promote(b)
    if a == b:
        return a
    if a.signed == b.signed:
        return a if a.bits >= b.bits else b
    s, u = (a, b) if a.signed else (b, a)
    if u.bits >= s.bits:
        return u
    return s  # the signed type is wider and holds every value of the unsigned one


def join(a, b):
    """The type that holds values of both ``a`` and ``b`` (map values, variables), or None
    when they cannot share storage."""
    if a == b:
        return a
    if a is UNKNOWN:
        return b
    if b is UNKNOWN:
        return a
    if a.is_int and b.is_int:
        return IntT(max(a.bits, b.bits), a.signed or b.signed)
    if isinstance(a, PtrT) and isinstance(b, PtrT):
        return a if a.pointee is not None else b
    if isinstance(a, PtrT) and b.is_int or a.is_int and isinstance(b, PtrT):
        return UINT64
    if isinstance(a, StrT) and isinstance(b, StrT):
        return a if a.size >= b.size else b
    if isinstance(a, BufT) and isinstance(b, BufT):
        return a if a.cap >= b.cap else b
    if isinstance(a, TupleT) and isinstance(b, TupleT) and len(a.elems) == len(b.elems):
        elems = []
        for x, y in zip(a.elems, b.elems):
            j = join(x, y)
            if j is None:
                return None
            elems.append(j)
        return TupleT(elems)
    if isinstance(a, AggT) and isinstance(b, AggT) and a.agg == b.agg and \
            a.params == b.params:
        if a.arg is None or b.arg is None:
            return a
        arg = join(a.arg, b.arg)
        return AggT(a.agg, arg, a.params)
    if isinstance(a, OpaqueT) and isinstance(b, OpaqueT) and a.what == b.what and \
            a.size == b.size:
        return a
    return None


def contains_unknown(t):
    if t is UNKNOWN:
        return True
    if isinstance(t, TupleT):
        return any(contains_unknown(e) for e in t.elems)
    return False


def parse_typename(text):
    """The type named by a cast, e.g. ``uint32`` or ``unsigned long``; None if unknown.
    Pointer casts (``uint8 *``) give a PtrT."""
    t = text.strip()
    stars = 0
    while t.endswith("*"):
        stars += 1
        t = t[:-1].strip()
    base = INT_TYPES.get(" ".join(t.split()))
    if base is None:
        if t == "void" and stars:
            base = None
        else:
            return None
    ty = base
    for _ in range(stars):
        ty = PtrT(ty)
    return ty
