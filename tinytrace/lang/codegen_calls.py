"""Code for function calls: output events (printf, print, exit ...), strings, buffers,
addresses, stacks, and string comparison."""
import struct
import sys

from tinytrace.lang import ast, codegen_maps
from tinytrace.lang.types import INT64, UINT64, BufT, IntT, PtrT, StrT, TupleT

_EVENT_CALLS = ("printf", "cat", "system")


# -- statements -----------------------------------------------------------------------------

def statement(gen, e):
    name = e.name
    b = gen.b
    if name in _EVENT_CALLS:
        args = e.args[1:]
        spec = gen.event(name, [_slot_type(a) for a in args], e.info["format"], e.loc)
        _send_event(gen, spec, args)
    elif name == "print":
        info = e.info
        if "map" in info:
            spec = gen.event("print_map", (), {"map": info["map"].name, "top": info["top"],
                                               "div": info["div"]}, e.loc)
            _send_event(gen, spec, ())
        else:
            a = e.args[0]
            spec = gen.event("print_value", [_slot_type(a)], None, e.loc)
            _send_event(gen, spec, [a])
    elif name in ("clear", "zero"):
        spec = gen.event(name, (), {"map": e.info["map"].name}, e.loc)
        _send_event(gen, spec, ())
    elif name == "exit":
        spec = gen.event("exit", [INT64], None, e.loc)
        code = e.args[0] if e.args else _int(0, e.loc)
        _send_event(gen, spec, [code])
        b.goto(gen.exit_label)
    elif name == "time":
        spec = gen.event("time", (), {"format": e.info["format"]}, e.loc)
        _send_event(gen, spec, ())
    elif name == "join":
        _join(gen, e)
    elif name == "signal":
        sig = gen.reg(gen.convert(gen.value(e.args[0]), e.args[0].ty, UINT64))
        b.call("send_signal", sig)
    elif name == "delete":
        codegen_maps.delete(gen, e.args[0])
    else:
        # a value call used as a statement: evaluate it for its effects
        if e.ty.scalar and not isinstance(e.ty, (StrT, TupleT, BufT)):
            gen.value(e)
        else:
            m = gen.alloc(e.ty.size)
            store(gen, e, m, e.ty, False)


def _int(v, loc):
    n = ast.Int(v, loc)
    n.ty = INT64
    return n


def _slot_type(a):
    ty = a.ty
    if isinstance(ty, PtrT):
        return UINT64
    return ty


def _send_event(gen, spec, args):
    b = gen.b
    mem = gen.alloc(spec.size)
    b.store_imm(mem.base, mem.off, spec.id, 8)
    layout = spec.layout
    for i, a in enumerate(args):
        gen.store(a, mem.at(layout.offsets[i + 1]), layout.elems[i + 1], clean=False)
    _zero_gaps(gen, mem, layout)
    gen.send(mem, spec.size, deferred=spec.kind == "printf" and
             spec.loc in gen.comp.env.deferred_wakeup)


def _zero_gaps(gen, mem, layout):
    """Padding between event fields is zeroed: events must not carry stale kernel bytes."""
    end = 0
    for off, e in zip(layout.offsets, layout.elems):
        if off > end:
            gen.zero(mem.at(end), off - end)
        end = off + e.size
    if layout.size > end:
        gen.zero(mem.at(end), layout.size - end)


def _join(gen, e):
    b = gen.b
    info = e.info
    n = info["max_args"]
    cap = gen.comp.env.strlen
    spec = gen.event("join", [UINT64] + [StrT(cap)] * n, {"sep": info["sep"]}, e.loc)
    mem = gen.alloc(spec.size)
    b.store_imm(mem.base, mem.off, spec.id, 8)
    layout = spec.layout
    count = b.vreg()
    b.movi(count, 0)
    argv = gen.reg(gen.value(e.args[0]))
    p = b.vreg()
    b.mov(p, argv)
    slot = gen.alloc(8)
    done = b.new_label("join")
    user = info["user"]
    psize = _pointer_size()
    for i in range(n):
        b.store_imm(slot.base, slot.off, 0, 8)
        b.call(gen.comp.target.read_helper(user, False), gen._ptr(slot), ("imm", psize), p)
        s = b.vreg()
        b.load(s, slot.base, slot.off, psize)
        b.jump("==", s, done, imm=0)
        dst = mem.at(layout.offsets[i + 2])
        b.store_imm(dst.base, dst.off, 0, 1)
        b.call(gen.comp.target.read_helper(user, True), gen._ptr(dst), ("imm", cap), s)
        b.alu("+", count, imm=1)
        b.alu("+", p, imm=psize)
    b.place(done)
    b.store(mem.base, mem.off + layout.offsets[1], count, 8)
    gen.send(mem, spec.size)


def _pointer_size():
    """Bytes of a pointer in the traced programs' argv arrays: the kernel's word (a 32-bit
    kernel runs 32-bit programs)."""
    try:
        from tinytrace.kernel import arch
        return arch.kernel_long_size()
    except Exception:
        return 8


# -- scalar values --------------------------------------------------------------------------

def value(gen, e):
    name = e.name
    b = gen.b
    if name == "has_key":
        return codegen_maps.has_key(gen, e.args[0])
    if name == "len":
        spec = gen.comp.map_spec(e.info["map"])
        btf_id = gen.comp.kfunc_id("bpf_map_sum_elem_count", e.loc,
                                   "len() needs the bpf_map_sum_elem_count kfunc (Linux 6.6)")
        return b.call_kfunc(btf_id, ("map", spec.name))
    if name == "strncmp":
        a = gen.addr(e.args[0])
        c = gen.addr(e.args[1])
        n = min(e.info["n"], e.args[0].ty.size, e.args[1].ty.size)
        eq = _bytes_equal(gen, a, c, n)
        res = b.vreg()
        b.mov(res, eq)
        b.alu("^", res, imm=1)
        return res
    if name == "strcontains":
        return _strcontains(gen, e)
    if name == "bswap":
        ty = e.ty
        v = gen.reg(gen.value(e.args[0]))
        r = b.vreg()
        b.mov(r, v)
        bits = max(ty.bits, 16) if isinstance(ty, IntT) else 64
        b.bswap(r, bits)
        gen._canonical(r, ty)
        return r
    if name in ("ksym", "uptr", "kptr"):
        return gen.value(e.args[0])
    if name == "strftime":
        return gen.convert(gen.value(e.args[1]), e.args[1].ty, UINT64)
    if name == "kstack":
        from tinytrace.lang.codegen_builtins import stack_id
        return stack_id(gen, e.ty, user=False)
    raise AssertionError("call %s() has no scalar code" % name)


# -- values stored in memory -----------------------------------------------------------------

def store(gen, e, dst, ty, clean):
    name = e.name
    b = gen.b
    if name == "str":
        _str(gen, e, dst, ty, clean)
    elif name == "buf":
        _buf(gen, e, dst, ty)
    elif name == "ntop":
        _ntop(gen, e, dst, ty, clean)
    elif name == "ustack":
        from tinytrace.lang.codegen_builtins import stack_id, value as bvalue
        sid = stack_id(gen, e.ty, user=True)
        b.store(dst.base, dst.off, sid, 8)
        pid = bvalue(gen, _Named("pid"))
        b.store(dst.base, dst.off + 8, pid, 8)
    elif name == "macaddr":
        _macaddr(gen, e, dst)
    elif name == "path":
        if clean:
            gen.zero(dst, ty.size)
        a = e.args[0]
        from tinytrace.lang.types import StructT
        # a struct path member (file->f_path) stands for its address: pointer arithmetic
        # on the trampoline's typed pointer, which is what the helper wants
        p = gen.struct_addr(a) if isinstance(a.ty, StructT) else gen.reg(gen.value(a))
        b.call("d_path", p, gen._ptr(dst), ("imm", min(e.ty.size, ty.size)))
    elif name == "usym":
        from tinytrace.lang.codegen_builtins import value as bvalue
        a = gen.reg(gen.value(e.args[0]))
        b.store(dst.base, dst.off, a, 8)
        pid = bvalue(gen, _Named("pid"))
        b.store(dst.base, dst.off + 8, pid, 8)
    elif e.ty.scalar and not isinstance(e.ty, (StrT, TupleT, BufT)):
        v = value(gen, e)
        size = ty.size if ty.size in (1, 2, 4, 8) else 8
        b.store(dst.base, dst.off, gen.reg(v), size)
    else:
        raise AssertionError("call %s() cannot be stored" % name)


class _Named:
    def __init__(self, name):
        self.name = name


def _str(gen, e, dst, ty, clean):
    b = gen.b
    info = e.info or {}
    src = e.args[0]
    cap = min(e.ty.size, ty.size)
    if info.get("copy"):
        # str() of something that already is a string: copy, cut to the length
        if isinstance(src, ast.Str):
            gen.store_bytes(dst, src.value.encode("utf-8", "surrogateescape")[:cap - 1],
                            ty.size)
            return
        m = gen.addr(src)
        gen.copy_value(dst, StrT(cap), m, src.ty, clean)
        b.store_imm(dst.base, dst.off + cap - 1, 0, 1)
        if clean and ty.size > cap:
            gen.zero(dst, ty.size, cap)
        return
    p = gen.reg(gen.value(src))
    if clean:
        gen.zero(dst, ty.size)
    size = ("imm", cap)
    if info.get("limit_expr"):
        n = gen.reg(gen.convert(gen.value(e.args[1]), e.args[1].ty, UINT64))
        lim = b.vreg()
        b.mov(lim, n)
        b.alu("+", lim, imm=1)
        ok = b.new_label("sl")
        b.jump("<=", lim, ok, imm=cap)
        b.movi(lim, cap)
        b.place(ok)
        size = lim
    b.call(gen.comp.target.read_helper(info.get("user", False), True), gen._ptr(dst), size, p)


def _buf(gen, e, dst, ty):
    b = gen.b
    info = e.info
    cap = e.ty.cap
    data = dst.at(4)
    src = e.args[0]
    if info.get("from_value"):
        m = gen.addr(src)
        n = min(cap, src.ty.size)
        _copy_unaligned(gen, data, m, n)
        b.store_imm(dst.base, dst.off, n, 4)
        return
    p = gen.reg(gen.value(src))
    if len(e.args) > 1 and not isinstance(e.args[1], ast.Int):
        n = gen.reg(gen.convert(gen.value(e.args[1]), e.args[1].ty, UINT64))
        lim = b.vreg()
        b.mov(lim, n)
        ok = b.new_label("bl")
        b.jump("<=", lim, ok, imm=cap)
        b.movi(lim, cap)
        b.place(ok)
        tmp = gen.alloc(cap)
        gen.zero(tmp, cap)
        b.call(gen.comp.target.read_helper(info["user"], False), gen._ptr(tmp), lim, p)
        _copy_unaligned(gen, data, tmp, cap)
        b.store(dst.base, dst.off, lim, 4)
        return
    tmp = gen.alloc(cap)
    b.call(gen.comp.target.read_helper(info["user"], False), gen._ptr(tmp), ("imm", cap), p)
    _copy_unaligned(gen, data, tmp, cap)
    b.store_imm(dst.base, dst.off, cap, 4)


def _macaddr(gen, e, dst):
    """Six bytes at ``dst`` (zeroed to eight): copied from an array, or read through a
    pointer."""
    b = gen.b
    src = e.args[0]
    b.store_imm(dst.base, dst.off, 0, 8)
    if e.info.get("from_value"):
        m = gen.addr(src)
        gen.copy(dst, m, 6)
        return
    p = gen.reg(gen.value(src))
    b.call(gen.comp.target.read_helper(e.info.get("user", False), False), gen._ptr(dst),
           ("imm", 6), p)


def _copy_unaligned(gen, dst, src, n):
    """Copy to a destination that is only 4-byte aligned (a buffer's data)."""
    gen.copy(dst, src, n)


def _ntop(gen, e, dst, ty, clean):
    b = gen.b
    af = e.info["af"]
    addr = e.args[-1]
    if e.info.get("af_expr"):
        fam = gen.reg(gen.convert(gen.value(e.args[0]), e.args[0].ty, UINT64))
        b.store(dst.base, dst.off, fam, 8)
    else:
        b.store_imm(dst.base, dst.off, af, 8)
    gen.zero(dst.at(8), 16)
    aty = addr.ty
    if isinstance(aty, IntT) or isinstance(aty, PtrT):
        v = gen.reg(gen.value(addr))
        b.store(dst.base, dst.off + 8, v, 4)
        return
    m = gen.addr(addr)
    gen.copy(dst.at(8), m, min(aty.size, 16))


# -- strings --------------------------------------------------------------------------------

def string_equal(gen, left, right):
    """A register holding 1 when the two strings are equal (C strcmp over their buffers:
    a buffer without a NUL ends at its size), else 0."""
    if isinstance(left, ast.Str) and not isinstance(right, ast.Str):
        left, right = right, left
    if isinstance(right, ast.Str):
        lit = right.value.encode("utf-8", "surrogateescape")
        mem = gen.addr(left)
        return _equal_literal(gen, mem, left.ty.size, lit)
    a = gen.addr(left)
    c = gen.addr(right)
    return _bytes_equal(gen, a, c, min(left.ty.size, right.ty.size))


def _equal_literal(gen, mem, size, lit):
    b = gen.b
    res = b.vreg()
    b.movi(res, 0)
    n = len(lit)
    if n > size:
        return res
    want = lit + (b"\0" if n < size else b"")
    ne = b.new_label("ne")
    t = b.vreg()
    fmt = "<" if sys.byteorder == "little" else ">"
    off = 0
    total = len(want)
    while off < total:
        for chunk, code in ((4, "I"), (2, "H"), (1, "B")):
            if total - off >= chunk:
                v = struct.unpack(fmt + code, want[off:off + chunk])[0]
                b.load(t, mem.base, mem.off + off, chunk)
                if chunk == 4:
                    b.jump("!=", t, ne, imm=v - (1 << 32) if v >> 31 else v, is32=True)
                else:
                    b.jump("!=", t, ne, imm=v)
                off += chunk
                break
    b.movi(res, 1)
    b.place(ne)
    return res


def _bytes_equal(gen, a, c, n):
    """1 when the strings at ``a`` and ``c`` agree up to their NUL within ``n`` bytes."""
    b = gen.b
    res = b.vreg()
    b.movi(res, 0)
    ne = b.new_label("ne")
    eq = b.new_label("eq")
    x = b.vreg()
    y = b.vreg()
    for i in range(n):
        b.load(x, a.base, a.off + i, 1)
        b.load(y, c.base, c.off + i, 1)
        b.jump("!=", x, ne, b=y)
        b.jump("==", x, eq, imm=0)
    b.place(eq)
    b.movi(res, 1)
    b.place(ne)
    return res


def _strcontains(gen, e):
    """1 when the second string occurs in the first (a bounded double loop, unrolled)."""
    b = gen.b
    hay = gen.addr(e.args[0])
    needle = e.args[1]
    res = b.vreg()
    b.movi(res, 0)
    found = b.new_label("found")
    done = b.new_label("nf")
    hsize = e.args[0].ty.size
    if isinstance(needle, ast.Str):
        lit = needle.value.encode("utf-8", "surrogateescape")
        if not lit:
            b.movi(res, 1)
            return res
        x = b.vreg()
        for start in range(0, hsize - len(lit)):
            nxt = b.new_label("sc")
            for j, ch in enumerate(lit):
                b.load(x, hay.base, hay.off + start + j, 1)
                if j == 0:
                    b.jump("==", x, done, imm=0)
                b.jump("!=", x, nxt, imm=ch)
            b.goto(found)
            b.place(nxt)
        b.goto(done)
        b.place(found)
        b.movi(res, 1)
        b.place(done)
        return res
    raise AssertionError("strcontains() needs a literal needle")
