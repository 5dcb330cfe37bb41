"""Bytes from the kernel -> Python values the output layer prints.

``Decoders(context)`` builds one function per type, ``f(buf, offset) -> value``:
integers are ints, strings are bytes cut at the NUL (the output layer escapes them),
tuples are tuples, ``buf()`` values are ``Buffer``, stacks are ``Stack`` (symbolized),
``probe`` is its name, ``inet`` the address text, ``strftime`` values the formatted time.
The same functions decode event arguments, map keys and map values.
"""
import struct

from tinytrace.lang.types import (ArrayT, BufT, IntT, OpaqueT, PtrT, RecordT, StrT, TupleT)

_INT = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
        (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}


class Context:
    """What decoding needs besides the bytes: probe names, the stack map, symbolizers,
    the clock offset for strftime."""

    def __init__(self, probe_names=None, stacks=None):
        self.probe_names = probe_names or {}
        self.stacks = stacks
        self._ksyms = None
        self._clock = None

    def ksyms(self):
        if self._ksyms is None:
            from tinytrace.kernel import ksyms
            self._ksyms = ksyms.kallsyms()
        return self._ksyms

    def clock_offset(self):
        if self._clock is None:
            from tinytrace.output.timefmt import clock_offset_ns
            self._clock = clock_offset_ns()
        return self._clock


def int_reader(size, signed):
    s = struct.Struct("=" + _INT[(size, signed)])
    unpack = s.unpack_from
    return lambda buf, off: unpack(buf, off)[0]


class Decoders:
    def __init__(self, context):
        self.ctx = context
        self._cache = {}

    def get(self, ty):
        f = self._cache.get(ty)
        if f is None:
            f = self._make(ty)
            self._cache[ty] = f
        return f

    def _make(self, ty):
        if isinstance(ty, IntT):
            return int_reader(ty.size, ty.signed)
        if isinstance(ty, PtrT):
            return int_reader(8, False)
        if isinstance(ty, StrT):
            n = ty.size

            def string(buf, off):
                raw = bytes(buf[off:off + n])
                end = raw.find(b"\0")
                return raw if end < 0 else raw[:end]
            return string
        if isinstance(ty, BufT):
            cap = ty.cap
            rd = int_reader(4, False)

            def buffer(buf, off):
                from tinytrace.output.bpftrace import Buffer
                n = min(rd(buf, off), cap)
                return Buffer(bytes(buf[off + 4:off + 4 + n]))
            return buffer
        if isinstance(ty, TupleT):
            parts = [(o, self.get(e)) for o, e in zip(ty.offsets, ty.elems)]

            def tup(buf, off):
                return tuple(f(buf, off + o) for o, f in parts)
            return tup
        if isinstance(ty, ArrayT):
            elem = self.get(ty.elem)
            step = ty.elem.size
            count = ty.count

            def array(buf, off):
                return [elem(buf, off + i * step) for i in range(count)]
            return array
        if isinstance(ty, OpaqueT):
            return self._opaque(ty)
        if isinstance(ty, RecordT):
            raise TypeError("records are not decoded")
        raise TypeError("no decoder for %s" % ty.describe())

    def _opaque(self, ty):
        u64 = int_reader(8, False)
        ctx = self.ctx
        what = ty.what
        if what == "probe":
            names = ctx.probe_names
            return lambda buf, off: names.get(u64(buf, off), "unknown probe")
        if what == "username":
            def username(buf, off):
                uid = u64(buf, off) & 0xFFFFFFFF
                try:
                    import pwd
                    return pwd.getpwuid(uid).pw_name
                except (KeyError, ImportError):
                    return str(uid)
            return username
        if what == "inet":
            def inet(buf, off):
                import socket
                fam = u64(buf, off)
                if fam == 10:
                    return socket.inet_ntop(socket.AF_INET6, bytes(buf[off + 8:off + 24]))
                return socket.inet_ntop(socket.AF_INET, bytes(buf[off + 8:off + 12]))
            return inet
        if what == "timestamp":
            fmt = ty.params[0]

            def timestamp(buf, off):
                from tinytrace.output.timefmt import strftime_ns
                return strftime_ns(fmt, u64(buf, off) + ctx.clock_offset())
            return timestamp
        if what == "ksym":
            return lambda buf, off: ctx.ksyms().symbolize(u64(buf, off), offset=False)
        if what == "usym":
            def usym(buf, off):
                from tinytrace.kernel import usyms
                addr, pid = u64(buf, off), u64(buf, off + 8)
                return usyms.format_symbol(usyms.for_pid(pid).resolve(addr), offset=False)
            return usym
        if what in ("kstack", "ustack"):
            depth, mode = ty.params
            user = what == "ustack"

            def stack(buf, off):
                from tinytrace.output.bpftrace import Stack
                sid = u64(buf, off)
                if sid >> 63 or ctx.stacks is None:
                    return Stack((), mode)
                ips = ctx.stacks.stack(sid) or []
                ips = ips[:depth]
                if user:
                    from tinytrace.kernel import usyms
                    syms = usyms.for_pid(u64(buf, off + 8))
                    names = [usyms.format_symbol(syms.resolve(a)) for a in ips]
                else:
                    k = ctx.ksyms()
                    names = [k.symbolize(a) for a in ips]
                if mode == "perf":
                    return Stack(list(zip(ips, names)), "perf")
                if mode == "raw":
                    return Stack(["%x" % a for a in ips])
                return Stack(names)
            return stack
        raise TypeError("no decoder for %s" % what)
