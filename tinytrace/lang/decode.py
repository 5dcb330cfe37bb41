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
    """What decoding needs besides the bytes: probe and function names, the stack maps,
    symbolizers, the clock offset for strftime.

    ``stacks`` maps a stack depth to the ``stack_trace`` map holding stacks of that depth
    (one map per depth, as bpftrace: a stack's id is the hash of the frames kept).
    ``short_stacks`` notices user stacks cut short by missing frame pointers; its
    ``note()`` is printed once at the end of a run."""

    def __init__(self, probe_names=None, stacks=None, func_names=None):
        self.probe_names = probe_names or {}
        self.func_names = func_names or {}
        if stacks is not None and not isinstance(stacks, dict):
            stacks = {None: stacks}
        self.stacks = stacks or {}
        self._tables = {}
        self._ksyms = None
        self._clock = None
        self._short = None

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

    def stack_table(self, depth):
        from tinytrace.lang.layout import stack_depth
        depth = stack_depth(depth)
        t = self._tables.get(depth)
        if t is None:
            m = self.stacks.get(depth)
            if m is None:
                m = self.stacks.get(None)
            if m is None:
                return None
            from tinytrace.kernel import stacks
            t = stacks.StackTable(m, self.ksyms())
            self._tables[depth] = t
        return t

    @property
    def short_stacks(self):
        if self._short is None:
            from tinytrace.kernel import stacks
            self._short = stacks.ShortStacks()
        return self._short


def int_reader(size, signed):
    s = struct.Struct("=" + _INT[(size, signed)])
    unpack = s.unpack_from
    return lambda buf, off: unpack(buf, off)[0]


class Decoders:
    def __init__(self, context):
        self.ctx = context
        self._cache = {}

    def record(self, layout, skip=1):
        """A function ``f(buf) -> [values]`` for the elements of a ``TupleT`` laid out at
        offset 0 (an event: ``skip`` the leading id).  Integers and strings -- nearly all
        of an event -- come out of one precompiled ``struct.Struct`` (one ``unpack_from``
        per event; strings are then cut at their NUL), other values from their decoders."""
        fmt = ["="]
        pos = 0
        ints_and_strs = []       # index in the result of each struct field
        strings = []             # result indexes holding a string
        others = []              # (result index, offset, decoder)
        n = 0
        for i, (off, ty) in enumerate(zip(layout.offsets[skip:], layout.elems[skip:])):
            code = None
            if isinstance(ty, IntT) and ty.size in (1, 2, 4, 8):
                code = _INT[(ty.size, ty.signed)]
            elif isinstance(ty, PtrT):
                code = "Q"
            elif isinstance(ty, StrT):
                code = "%ds" % ty.size
                strings.append(i)
            if code is None:
                others.append((i, off, self.get(ty)))
                n += 1
                continue
            if off > pos:
                fmt.append("%dx" % (off - pos))
            elif off < pos:
                others.append((i, off, self.get(ty)))      # never: tuples do not overlap
                n += 1
                continue
            fmt.append(code)
            pos = off + (ty.size if not isinstance(ty, PtrT) else 8)
            ints_and_strs.append(i)
            n += 1
        st = struct.Struct("".join(fmt))
        unpack = st.unpack_from
        count = n
        if not others and ints_and_strs == list(range(count)):
            if not strings:
                return lambda buf: list(unpack(buf, 0))

            def fast(buf):
                vals = list(unpack(buf, 0))
                for i in strings:
                    v = vals[i]
                    j = v.find(b"\0")
                    if j >= 0:
                        vals[i] = v[:j]
                return vals
            return fast
        slots = ints_and_strs

        def mixed(buf):
            vals = [None] * count
            for i, v in zip(slots, unpack(buf, 0)):
                vals[i] = v
            for i in strings:
                v = vals[i]
                j = v.find(b"\0")
                if j >= 0:
                    vals[i] = v[:j]
            for i, off, f in others:
                vals[i] = f(buf, off)
            return vals
        return mixed

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
            return self._stack(ty)
        if what == "macaddr":
            return lambda buf, off: ":".join("%02X" % x for x in bytes(buf[off:off + 6]))
        if what == "func":
            names = ctx.func_names
            return lambda buf, off: names.get(u64(buf, off), "")
        raise TypeError("no decoder for %s" % what)

    def _stack(self, ty):
        """A stack value: ``Stack`` of bpftrace's frame texts (``Frame.bpftrace``), of
        ``(address, text)`` pairs in perf mode, of hex addresses in raw mode.  Each also
        carries ``stack_id`` (signed) and ``errno``: a failed ``get_stackid`` (a negative
        id: EFAULT when there was no stack to take, EEXIST/ENOMEM when one was lost) is an
        empty stack whose ``errno`` says why, and ``missing`` is True for a lost one."""
        u64 = int_reader(8, False)
        ctx = self.ctx
        depth, mode = ty.params
        user = ty.what == "ustack"
        from tinytrace.kernel import stacks as st

        def stack(buf, off):
            from tinytrace.output.bpftrace import Stack
            sid = u64(buf, off)
            err = st.stack_id_errno(sid)
            frames = None
            if not err:
                table = ctx.stack_table(depth)
                if table is not None:
                    ips = table.ips(sid, depth)
                    if ips is not None:
                        if mode == "raw":
                            frames = ["%x" % a for a in ips]
                        elif user:
                            frames = st.user_frames(ips, u64(buf, off + 8))
                            if depth > ctx.short_stacks.depth:     # not cut by ustack(N)
                                ctx.short_stacks.observe(frames)
                        else:
                            frames = st.kernel_frames(ips, ctx.ksyms())
            if frames is None:
                out = Stack((), mode)
            elif mode == "perf":
                out = Stack([(f.addr, f.bpftrace(perf=True)) for f in frames], "perf")
            elif mode == "raw":
                out = Stack(frames, "raw")
            else:
                out = Stack([f.bpftrace() for f in frames], mode)
            out.stack_id = sid - (1 << 64) if sid >> 63 else sid
            out.errno = err
            out.missing = bool(err) and st.stack_missing(sid) or (not err and frames is None)
            return out
        return stack
