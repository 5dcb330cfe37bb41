"""Code for builtin variables and tracepoint fields (``args->x``).

Each builtin costs one helper call at most; tracepoint fields are loaded straight from the
context with aligned loads (the verifier allows reads of the record, not a copy).
"""
from tinytrace.lang.codegen import Imm, BPF_F_USER_STACK
from tinytrace.lang.types import ArrayT, IntT, PtrT, StrT, UINT64

_SIMPLE = {
    "nsecs": "ktime_get_ns",
    "cgroup": "get_current_cgroup_id",
    "rand": "get_prandom_u32",
    "curtask": "get_current_task",
    "jiffies": "jiffies64",
    "numaid": "get_numa_node_id",
    "cpu": "get_smp_processor_id",
}


def value(gen, e):
    b = gen.b
    name = e.name
    prov = gen.provider
    if prov.emit_builtin is not None and name in prov.builtin_names():
        return prov.emit_builtin(gen, name)
    helper = _SIMPLE.get(name)
    if helper is not None:
        return b.call(helper)
    if name in ("pid", "tid"):
        r = b.call("get_current_pid_tgid")
        if name == "pid":
            b.alu(">>", r, imm=32)
        else:
            b.zero_extend(r, 32)
        return r
    if name in ("uid", "gid", "username"):
        r = b.call("get_current_uid_gid")
        if name == "gid":
            b.alu(">>", r, imm=32)
        else:
            b.zero_extend(r, 32)
        return r
    if name == "elapsed":
        r = b.call("ktime_get_ns")
        return gen.arith("-", r, UINT64, Imm(gen.comp.start_ns), UINT64, UINT64, UINT64)
    if name == "cpid":
        return Imm(gen.comp.env.cpid or 0)
    if name == "probe":
        return probe_id(gen)
    if name == "kstack":
        return stack_id(gen, e.ty, user=False)
    if name.startswith("arg") and name[3:].isdigit():
        r = b.vreg()
        b.load(r, gen.ctx, 8 * int(name[3:]), 8)
        return r
    raise AssertionError("builtin %s has no scalar code" % name)


def probe_id(gen):
    """The probe's id: a tracepoint record's ``common_type`` (its event id), so one program
    serves many tracepoints; otherwise a constant."""
    if len(set(t.name for t in gen.targets)) > 1:
        # one program on many targets: each attachment carries the id as its cookie
        gen.cookies = dict((t.name, gen.comp.probe_name_for(t)) for t in gen.targets)
        return gen.b.call("get_attach_cookie", gen.ctx)
    return Imm(gen.comp.probe_name_for(gen.targets[0]))


def stack_id(gen, ty, user):
    """``get_stackid`` into the stack map of the type's depth: the id, or a negative errno
    (kept as is: the decoder tells an absent stack from a lost one)."""
    from tinytrace.lang.layout import stack_depth, stack_map_name
    b = gen.b
    depth = stack_depth(ty.params[0])
    gen.comp.stack_depths.add(depth)
    r = b.call("get_stackid", gen.ctx, ("map", stack_map_name(depth)),
               ("imm", BPF_F_USER_STACK if user else 0))
    return r


def store(gen, e, dst, ty, clean):
    b = gen.b
    name = e.name
    if name == "comm":
        n = min(16, ty.size)
        if clean:
            # the helper copies up to the NUL (strscpy, before 6.x's padding): zeroed
            # first, so a comm key has no stale bytes after its end
            gen.zero(dst, ty.size)
        b.call("get_current_comm", gen._ptr(dst), ("imm", n))
        return
    if name == "ustack":
        sid = stack_id(gen, ty, user=True)
        b.store(dst.base, dst.off, sid, 8)
        pid = value(gen, _Fake("pid"))
        b.store(dst.base, dst.off + 8, pid, 8)
        return
    raise AssertionError("builtin %s cannot be stored" % name)


class _Fake:
    def __init__(self, name):
        self.name = name


# -- tracepoint fields ----------------------------------------------------------------------

def _ctx_chunks(field_off, size, dst_off=0):
    """(position, size) of the loads and stores that copy ``size`` bytes from ``field_off``
    to ``dst_off``: each aligned at both ends (the verifier refuses misaligned stack
    access, and a field may land at any offset of a key laid out as C would)."""
    pos = 0
    while pos < size:
        for c in (8, 4, 2, 1):
            if (field_off + pos) % c == 0 and (dst_off + pos) % c == 0 and size - pos >= c:
                yield pos, c
                pos += c
                break


def args_field_value(gen, e):
    f = e.field
    ty = e.ty
    b = gen.b
    size = f.size if f.size in (1, 2, 4, 8) else 8
    if _direct(gen, f.offset, size):
        r = b.vreg()
        b.load(r, gen.ctx, f.offset, size)
        if getattr(gen.provider, "nullable_args", False) and isinstance(ty, PtrT):
            # the verifier types the pointer "maybe NULL" and forbids arithmetic on it
            # (a member's address) until a test splits the two cases
            known = b.new_label("nn")
            b.jump("==", r, known, imm=0)
            b.place(known)
    else:
        r = _read_ctx(gen, f.offset, size)
    if isinstance(ty, IntT):
        gen._canonical(r, ty)
    return r


def _direct(gen, off, size):
    """Whether the context can be loaded directly: aligned, and (tracepoints) past the
    first 8 bytes, which the verifier keeps to itself."""
    if off % size:
        return False
    return not (gen.provider.ctx_is_record and off < 8)


def _read_ctx(gen, off, size):
    """Read ``size`` bytes of the record at ``off`` with probe_read (unaligned fields and
    the common fields at the start of a tracepoint record)."""
    b = gen.b
    m = gen.alloc(8)
    b.store_imm(m.base, m.off, 0, 8)
    src = b.vreg()
    b.addr(src, gen.ctx, off)
    b.call(gen.comp.target.read_helper(False, False), gen._ptr(m), ("imm", size), src)
    r = b.vreg()
    b.load(r, m.base, m.off, size)
    return r


def args_field_store(gen, e, dst, ty, clean):
    f = e.field
    b = gen.b
    if f.data_loc:
        loc = b.vreg()
        b.load(loc, gen.ctx, f.offset, 4)
        b.alu("&", loc, imm=0xFFFF)
        if f.data_loc == "rel":
            b.alu("+", loc, imm=f.offset + 4)
        src = b.vreg()
        b.mov(src, gen.ctx)
        b.alu("+", src, src=loc)
        if clean:
            gen.zero(dst, ty.size)
        b.call(gen.comp.target.read_helper(False, True), gen._ptr(dst), ("imm", ty.size), src)
        return
    fty = e.ty
    if isinstance(fty, StrT) and isinstance(ty, StrT) and clean:
        # a char array as a string that must compare byte for byte (a map key or value):
        # the bytes after its NUL are zeroed, so equal strings are equal keys
        gen.zero(dst, ty.size)
        src = b.vreg()
        b.addr(src, gen.ctx, f.offset)
        b.call(gen.comp.target.read_helper(False, True), gen._ptr(dst),
               ("imm", min(f.size + 1, ty.size)), src)
        return
    if isinstance(fty, (StrT, ArrayT)):
        n = min(f.size, ty.size)
        t = b.vreg()
        for pos, c in _ctx_chunks(f.offset, n, dst.off):
            b.load(t, gen.ctx, f.offset + pos, c)
            b.store(dst.base, dst.off + pos, t, c)
        if isinstance(ty, StrT) and isinstance(fty, StrT) and f.size > ty.size:
            # cut short: the last byte of the copy ends the string
            b.store_imm(dst.base, dst.off + n - 1, 0, 1)
        if clean and ty.size > n:
            gen.zero(dst, ty.size, n)
        return
    v = args_field_value(gen, e)
    if isinstance(ty, IntT):
        v = gen.convert(v, fty if isinstance(fty, IntT) else UINT64, ty)
    b.store(dst.base, dst.off, gen.reg(v), ty.size if ty.size in (1, 2, 4, 8) else 8)
