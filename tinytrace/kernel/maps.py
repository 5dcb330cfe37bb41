"""BPF maps: create, lookup, update, delete, iterate, free.

Keys and values are bytes (any bytes-like object is accepted; an ``int`` is accepted too and
packed in native byte order to the key or value size).  Decoding belongs to the layers above.

Per-CPU maps (percpu_hash, percpu_array, lru_percpu_hash) hold one value per *possible* CPU,
each rounded up to 8 bytes; ``lookup`` returns a list with one ``bytes`` per possible CPU
(padding removed), and ``update`` takes such a list (or one value, written to every CPU).

Every ``Map`` owns its fd: ``close()``, ``with Map.create(...) as m:``, or the finaliser frees
it.  Lookups reuse one attribute block and one key/value buffer per map (see
``bpf.Prepared``), so reading a map in a loop allocates only the returned bytes.  ``items()``
uses BPF_MAP_LOOKUP_BATCH (Linux 5.6+) when the kernel supports it for the map's type, and
falls back to BPF_MAP_GET_NEXT_KEY plus one lookup per key.

Those shared buffers make a ``Map`` object unsafe to use from several threads at once; the
tracer reads maps from its one event-loop thread.
"""
import errno as _errno
import struct
import sys

from tinytrace.kernel import bpf
from tinytrace.kernel.libc import OwnedFd, ffi

_BYTEORDER = sys.byteorder

PERCPU_KINDS = frozenset(("percpu_hash", "percpu_array", "lru_percpu_hash"))
_ZEROED_KINDS = frozenset(("array", "percpu_array"))  # no delete: clear() writes zeros
# Local storage: a value per task/inode/socket/cgroup, kept by the object itself.  The key is
# an fd naming the object (a pidfd for tasks), the map must be described with BTF (an int
# key) and cannot be preallocated.
STORAGE_KINDS = frozenset(("task_storage", "inode_storage", "sk_storage", "cgrp_storage"))
_KIND_BY_NUMBER = {v: k for k, v in bpf.MAP_TYPES.items()}

# Map kinds for which BPF_MAP_LOOKUP_BATCH turned out to be unsupported in this process.
_no_batch = set()


def kind_name(kind):
    """'hash', 'percpu_array', ... for a name or an enum bpf_map_type number."""
    if isinstance(kind, int):
        return _KIND_BY_NUMBER.get(kind, str(kind))
    k = kind.lower()
    if k.startswith("bpf_map_type_"):
        k = k[len("bpf_map_type_"):]
    if k not in bpf.MAP_TYPES:
        raise ValueError("unknown map kind %r (known: %s)" % (kind, ", ".join(sorted(bpf.MAP_TYPES))))
    return k


class Map(OwnedFd):
    """One BPF map.  Attributes: fd, kind, key_size, value_size, max_entries, name, flags,
    percpu, ncpus (value slots per key for per-CPU maps)."""

    @classmethod
    def create(cls, kind, key_size, value_size, max_entries, name=None, flags=0,
               inner_map_fd=0, map_extra=0, btf=None, btf_key_type_id=0,
               btf_value_type_id=0):
        """Create a map.  ``kind`` is a name from ``bpf.MAP_TYPES`` (or its number).

        perf_event_array: key/value sizes are 4, and ``max_entries`` 0 means one slot per
        possible CPU.  ringbuf: key/value sizes are 0, ``max_entries`` is the ring's size in
        bytes (a power of two, at least one page).  stack_trace: ``value_size`` is 8 * depth.

        ``btf`` (a BTF object fd, or an object with ``fileno()``, see ``load_btf``) and the
        ids of the key and value types in it describe the map's layout.  The local storage
        kinds (``STORAGE_KINDS``: task_storage ...) need one: without ``btf`` a blob that
        describes an ``int`` key and a ``value_size``-byte value is made for them, the key
        size is 4, ``max_entries`` 0 and BPF_F_NO_PREALLOC is added to ``flags``.
        """
        k = kind_name(kind)
        own_btf = None
        if k in STORAGE_KINDS:
            key_size, max_entries = 4, 0
            flags |= bpf.BPF_F_NO_PREALLOC
            if btf is None:
                own_btf, btf_key_type_id, btf_value_type_id = _storage_btf(value_size)
                btf = own_btf
        if k == "perf_event_array":
            from tinytrace.kernel import arch
            key_size = value_size = 4
            if not max_entries:
                max_entries = max(arch.possible_cpus()) + 1
        elif k == "ringbuf":
            from tinytrace.kernel import perf
            page = perf.page_size()
            if max_entries < page or max_entries & (max_entries - 1):
                raise ValueError("ringbuf size must be a power of two of at least %d bytes, "
                                 "not %d" % (page, max_entries))
            key_size = value_size = 0
        bpf.raise_memlock()
        btf_fd = btf if isinstance(btf, int) or btf is None else btf.fileno()
        try:
            fd = bpf.map_create(bpf.MAP_TYPES[k], key_size, value_size, max_entries, flags,
                                name or b"", inner_map_fd=inner_map_fd, map_extra=map_extra,
                                btf_fd=btf_fd or 0, btf_key_type_id=btf_key_type_id,
                                btf_value_type_id=btf_value_type_id)
        finally:
            if own_btf is not None:
                own_btf.close()       # the map keeps its own reference to the BTF object
        return cls(fd, k, key_size, value_size, max_entries, name=name or "", flags=flags)

    def __init__(self, fd, kind, key_size, value_size, max_entries, name="", flags=0):
        OwnedFd.__init__(self, fd)
        self.kind = kind_name(kind)
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.name = name
        self.flags = flags
        self.percpu = self.kind in PERCPU_KINDS
        if self.percpu:
            from tinytrace.kernel import arch
            self.ncpus = len(arch.possible_cpus())
            self._stride = (value_size + 7) & ~7
            self._vbytes = self._stride * self.ncpus
        else:
            self.ncpus = 1
            self._stride = value_size
            self._vbytes = value_size
        self._ops = None

    def __repr__(self):
        return "<Map %s %r fd=%d key=%d value=%d max=%d>" % (
            self.kind, self.name, self.fd, self.key_size, self.value_size, self.max_entries)

    @classmethod
    def open_pinned(cls, path, flags=0):
        """The map pinned at ``path`` in a bpffs mount (made by another program, or by
        ``pin``), described by the kernel (``map_info``).  A missing path raises the
        ``BpfError`` of BPF_OBJ_GET (ENOENT); a pinned object that is not a map (a program,
        a link) raises ``NotAMapError``."""
        fd = bpf.obj_get(path, flags)
        try:
            if _fd_kind(fd) not in (None, "bpf-map"):
                raise NotAMapError("%s is a pinned %s, not a map"
                                   % (path, _fd_kind(fd).replace("bpf-", "BPF ")
                                      .replace("bpf_", "BPF ")))
            info = map_info(fd)
        except BaseException:
            import os
            os.close(fd)
            raise
        return cls(fd, info.kind, info.key_size, info.value_size, info.max_entries,
                   name=info.name, flags=info.flags)

    def pin(self, path):
        """Pin this map at ``path`` (in a bpffs mount): it stays until the file is removed."""
        bpf.obj_pin(self.fileno(), path)

    # -- buffers and prepared attribute blocks, built on first use --------------------------

    def _prepare(self):
        if self.fd < 0:
            raise ValueError("map %r is closed" % self.name)
        ks = max(self.key_size, 1)
        kbuf = ffi.new("char[]", ks)
        nbuf = ffi.new("char[]", ks)       # next key (GET_NEXT_KEY)
        vbuf = ffi.new("char[]", max(self._vbytes, 1))
        ka = int(ffi.cast("uintptr_t", kbuf))
        na = int(ffi.cast("uintptr_t", nbuf))
        va = int(ffi.cast("uintptr_t", vbuf))
        lookup = bpf.Prepared(bpf.MAP_LOOKUP_ELEM, 32)
        struct.pack_into("<IIQQQ", lookup.view, 0, self.fd, 0, ka, va, 0)
        update = bpf.Prepared(bpf.MAP_UPDATE_ELEM, 32)
        struct.pack_into("<IIQQQ", update.view, 0, self.fd, 0, ka, va, 0)
        delete = bpf.Prepared(bpf.MAP_DELETE_ELEM, 32)
        struct.pack_into("<IIQQQ", delete.view, 0, self.fd, 0, ka, 0, 0)
        first = bpf.Prepared(bpf.MAP_GET_NEXT_KEY, 24)
        struct.pack_into("<IIQQ", first.view, 0, self.fd, 0, 0, na)
        nxt = bpf.Prepared(bpf.MAP_GET_NEXT_KEY, 24)
        struct.pack_into("<IIQQ", nxt.view, 0, self.fd, 0, ka, na)
        self._ops = _Ops(kbuf, ffi.buffer(kbuf, self.key_size), nbuf,
                         ffi.buffer(nbuf, self.key_size), vbuf,
                         ffi.buffer(vbuf, self._vbytes), lookup, update, delete, first, nxt)
        return self._ops

    def _release(self):
        self._ops = None

    # -- encoding ---------------------------------------------------------------------------

    def _key(self, key):
        if isinstance(key, int):
            return key.to_bytes(self.key_size, _BYTEORDER, signed=key < 0)
        if len(key) != self.key_size:
            raise ValueError("map %r: key is %d bytes, expected %d"
                             % (self.name, len(key), self.key_size))
        return key

    def _one_value(self, value):
        if isinstance(value, int):
            return value.to_bytes(self.value_size, _BYTEORDER, signed=value < 0)
        if len(value) != self.value_size:
            raise ValueError("map %r: value is %d bytes, expected %d"
                             % (self.name, len(value), self.value_size))
        return bytes(value)

    def _value(self, value):
        if not self.percpu:
            return self._one_value(value)
        pad = b"\0" * (self._stride - self.value_size)
        if isinstance(value, (list, tuple)):
            if len(value) != self.ncpus:
                raise ValueError("map %r: %d per-CPU values given, the map has %d"
                                 % (self.name, len(value), self.ncpus))
            return b"".join(self._one_value(v) + pad for v in value)
        return (self._one_value(value) + pad) * self.ncpus

    def _split(self, raw):
        if not self.percpu:
            return raw
        s, n = self._stride, self.value_size
        return [raw[i:i + n] for i in range(0, s * self.ncpus, s)]

    # -- element operations -----------------------------------------------------------------

    def lookup(self, key, default=None):
        """The value for ``key`` (bytes, or a list of bytes for per-CPU maps) or ``default``."""
        ops = self._ops or self._prepare()
        ops.kview[:] = self._key(key)
        r = ops.lookup.try_call()
        if r < 0:
            if r == -_errno.ENOENT:
                return default
            raise bpf.fail(bpf.MAP_LOOKUP_ELEM, -r)
        return self._split(ops.vview[:])

    __getitem__ = lookup

    def update(self, key, value, flags=bpf.BPF_ANY):
        ops = self._ops or self._prepare()
        ops.kview[:] = self._key(key)
        ops.vview[:] = self._value(value)
        struct.pack_into("<Q", ops.update.view, 24, flags)
        ops.update()

    def __setitem__(self, key, value):
        self.update(key, value)

    def delete(self, key):
        """Delete ``key``; returns False when it was not there."""
        ops = self._ops or self._prepare()
        ops.kview[:] = self._key(key)
        r = ops.delete.try_call()
        if r < 0:
            if r == -_errno.ENOENT:
                return False
            raise bpf.fail(bpf.MAP_DELETE_ELEM, -r)
        return True

    def __delitem__(self, key):
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key):
        return self.lookup(key) is not None

    def keys(self):
        """A snapshot list of the keys (bytes), by BPF_MAP_GET_NEXT_KEY."""
        if self.kind == "ringbuf":
            return []
        ops = self._ops or self._prepare()
        out = []
        r = ops.first.try_call()
        kview, nview, nxt = ops.kview, ops.nview, ops.next
        limit = self.max_entries + 1
        while r >= 0:
            k = nview[:]
            out.append(k)
            if len(out) > limit:  # a hash map being rewritten under us restarts the walk
                break
            kview[:] = k
            r = nxt.try_call()
        if r != -_errno.ENOENT and r < 0:
            raise bpf.fail(bpf.MAP_GET_NEXT_KEY, -r)
        return out

    def __iter__(self):
        return iter(self.keys())

    def values(self):
        return [v for _, v in self.items()]

    def items(self):
        """A snapshot list of (key, value) pairs; batched where the kernel can."""
        if self.kind == "ringbuf":
            return []
        if self.kind not in _no_batch and self.kind not in ("stack_trace", "perf_event_array"):
            got = self._items_batch()
            if got is not None:
                return got
        out = []
        for k in self.keys():
            v = self.lookup(k)
            if v is not None:
                out.append((k, v))
        return out

    def _items_batch(self):
        ks, vb = self.key_size, self._vbytes
        chunk = max(1, min(self.max_entries, (1 << 20) // max(ks + vb, 1)))
        tok = max(ks, 8)
        tok_in = ffi.new("char[]", tok)
        tok_out = ffi.new("char[]", tok)
        keys = ffi.new("char[]", max(chunk * ks, 1))
        vals = ffi.new("char[]", max(chunk * vb, 1))
        addr = lambda c: int(ffi.cast("uintptr_t", c))  # noqa: E731
        attr = bytearray(56)
        out = []
        in_addr = 0
        while True:
            struct.pack_into("<QQQQIIQQ", attr, 0, in_addr, addr(tok_out), addr(keys),
                             addr(vals), chunk, self.fd, 0, 0)
            try:
                bpf.call(bpf.MAP_LOOKUP_BATCH, attr, privilege_errors=False)
                done = False
            except bpf.BpfError as e:
                if e.errno == _errno.ENOENT:
                    done = True
                elif e.errno == _errno.ENOSPC and chunk < self.max_entries:
                    # a hash bucket holds more entries than fit: grow and retry this batch
                    chunk = min(self.max_entries, chunk * 2)
                    keys = ffi.new("char[]", chunk * ks)
                    vals = ffi.new("char[]", chunk * vb)
                    continue
                elif e.errno in (_errno.EINVAL, _errno.EOPNOTSUPP, bpf.ENOTSUPP) and not out \
                        and in_addr == 0:
                    _no_batch.add(self.kind)
                    return None
                elif e.errno in (_errno.EPERM, _errno.EACCES):
                    raise bpf.fail(bpf.MAP_LOOKUP_BATCH, e.errno)
                else:
                    raise
            n, = struct.unpack_from("<I", attr, 32)
            if n:
                kb = ffi.buffer(keys, n * ks)[:]
                vbytes = ffi.buffer(vals, n * vb)[:]
                split = self._split
                for i in range(n):
                    out.append((kb[i * ks:(i + 1) * ks], split(vbytes[i * vb:(i + 1) * vb])))
            if done:
                return out
            ffi.memmove(tok_in, tok_out, tok)
            in_addr = addr(tok_in)

    def clear(self):
        """Remove every element (array maps, which cannot delete, are zeroed instead)."""
        if self.kind in _ZEROED_KINDS:
            zero = self._value(bytes(self.value_size))
            for i in range(self.max_entries):
                ops = self._ops or self._prepare()
                ops.kview[:] = i.to_bytes(self.key_size, _BYTEORDER)
                ops.vview[:] = zero
                ops.update()
            return
        for k in self.keys():
            self.delete(k)

    def stack(self, stack_id):
        """For stack_trace maps: the instruction pointers of stack ``stack_id`` (list of
        ints, innermost first), or None when the id is not (or no longer) there."""
        raw = self.lookup(stack_id)
        if raw is None:
            return None
        fmt = "%d%s" % (self.value_size // 8, "Q")
        ips = struct.unpack("=" + fmt, raw)
        out = []
        for ip in ips:
            if not ip:
                break
            out.append(ip)
        return out


class NotAMapError(ValueError):
    """A pinned object that is not a map was opened as one."""


class MapInfo(object):
    """What the kernel says about a map (struct bpf_map_info): ``kind`` (a name, or the
    number for types unknown here), ``type`` (the number), ``id``, ``key_size``,
    ``value_size``, ``max_entries``, ``flags``, ``name``."""

    __slots__ = ("kind", "type", "id", "key_size", "value_size", "max_entries", "flags",
                 "name")

    def __init__(self, type, id, key_size, value_size, max_entries, flags, name):
        self.type, self.id = type, id
        self.kind = _KIND_BY_NUMBER.get(type, type)
        self.key_size, self.value_size, self.max_entries = key_size, value_size, max_entries
        self.flags, self.name = flags, name

    def __repr__(self):
        return "MapInfo(%s id=%d key=%d value=%d max=%d name=%r)" % (
            self.kind, self.id, self.key_size, self.value_size, self.max_entries, self.name)


_MAP_INFO = struct.Struct("<6I16s")


def map_info(fd):
    """The ``MapInfo`` of map fd ``fd`` (BPF_OBJ_GET_INFO_BY_FD).  ``NotAMapError`` when
    the kernel's answer is too short to be a map's (the fd is another kind of object)."""
    raw = bpf.obj_get_info(fd, _MAP_INFO.size)
    if len(raw) < 20:
        raise NotAMapError("fd %d is not a BPF map" % fd)
    raw = raw + bytes(_MAP_INFO.size - len(raw))
    t, mid, ks, vs, n, flags, name = _MAP_INFO.unpack(raw)
    return MapInfo(t, mid, ks, vs, n, flags, name.split(b"\0", 1)[0].decode("ascii", "replace"))


def _fd_kind(fd):
    """"bpf-map", "bpf-prog", "bpf_link"... from /proc/self/fd (None when unreadable)."""
    import os
    try:
        target = os.readlink("/proc/self/fd/%d" % fd)
    except OSError:
        return None
    return target[len("anon_inode:"):] if target.startswith("anon_inode:") else target


class BtfObject(OwnedFd):
    """A BTF blob loaded into the kernel (BPF_BTF_LOAD): maps and programs refer to its
    types by id.  Close it once the maps that use it exist (they hold their own reference)."""

    def __repr__(self):
        return "<BtfObject fd=%d>" % self.fd


def load_btf(blob):
    """Load a BTF blob (``tinytrace.kernel.btf.Writer().encode()``); returns a ``BtfObject``.
    A blob the kernel refuses raises ``bpf.BpfError`` with the kernel's reason."""
    bpf.raise_memlock()
    return BtfObject(bpf.btf_load(blob))


def _storage_btf(value_size):
    """(BtfObject, key type id, value type id): an ``int`` key and a value of
    ``value_size`` bytes (a u64 when it is 8, else an array of bytes)."""
    from tinytrace.kernel.btf import Writer
    w = Writer()
    key = w.int("int", 4, signed=True)
    if value_size == 8:
        value = w.int("long long unsigned int", 8)
    else:
        value = w.array(w.int("unsigned char", 1), value_size, key)
    return load_btf(w.encode()), key, value


class _Ops(object):
    __slots__ = ("kbuf", "kview", "nbuf", "nview", "vbuf", "vview", "lookup", "update",
                 "delete", "first", "next")

    def __init__(self, kbuf, kview, nbuf, nview, vbuf, vview, lookup, update, delete, first,
                 nxt):
        self.kbuf, self.kview, self.nbuf, self.nview = kbuf, kview, nbuf, nview
        self.vbuf, self.vview = vbuf, vview
        self.lookup, self.update, self.delete, self.first, self.next = \
            lookup, update, delete, first, nxt


def create(kind, key_size, value_size, max_entries, name=None, flags=0):
    """Shorthand for ``Map.create``."""
    return Map.create(kind, key_size, value_size, max_entries, name=name, flags=flags)
