"""Code for map reads, writes, in-place updates and aggregations.

Aggregations update the per-CPU value in place through the pointer one lookup returns
(only the CPU that owns a per-CPU slot writes it, so plain loads and stores are exact);
the first update of a key inserts its initial value.  ``@x[k] += v`` on a plain map is an
atomic add where the kernel has atomics.
"""
from tinytrace.asm import opcodes as op
from tinytrace.asm import Insn
from tinytrace.lang.codegen import BPF_ANY, Imm, Mem
from tinytrace.lang.types import (INT64, AggT, IntT, PtrT, UINT64, common_int, hist_buckets,
                                  promote)


def key_mem(gen, ref):
    """The key of ``@m[...]`` in memory (built in a temporary)."""
    info = ref.info
    if info.keyless:
        return gen._zero_u32_key()
    ty = info.key
    m = gen.alloc(ty.size)
    if len(ref.keys) == 1:
        gen.store(ref.keys[0], m, ty)
    else:
        for i, k in enumerate(ref.keys):
            gen.store(k, m.at(ty.offsets[i]), ty.elems[i])
        gen._zero_tuple_padding(m, ty)
    return m


def lookup(gen, spec, key):
    return gen.b.call("map_lookup_elem", ("map", spec.name), gen._ptr(key))


def read_scalar(gen, ref):
    b = gen.b
    spec = gen.comp.map_spec(ref.info)
    if isinstance(ref.info.value, AggT):
        return read_aggregation(gen, ref, spec)
    key = key_mem(gen, ref)
    ptr = lookup(gen, spec, key)
    res = b.vreg()
    b.movi(res, 0)
    miss = b.new_label("miss")
    b.jump("==", ptr, miss, imm=0)
    ty = ref.info.value
    b.load(res, ptr, 0, ty.size if ty.size in (1, 2, 4, 8) else 8)
    if isinstance(ty, IntT):
        gen._canonical(res, ty)
    b.place(miss)
    return res


def read_aggregation(gen, ref, spec):
    """``@m[k]`` of a count/sum/min/max/avg map read in a probe: every CPU's slot of the
    key (``map_lookup_percpu_elem``, Linux 5.19) combined in a bounded loop -- the total,
    the extreme of the CPUs that have one, or total / count."""
    agg = ref.info.value
    _need_percpu_lookup(gen, ref, agg)      # before the key's code is emitted
    key = key_mem(gen, ref)
    return combine_percpu(gen, spec, agg, gen._ptr(key), ref, checked=True)


def _need_percpu_lookup(gen, ref, agg):
    from tinytrace.lang.source import LangError
    if not gen.comp.target.percpu_lookup:
        raise LangError("reading @%s (%s) in a probe needs Linux 5.19 "
                        "(bpf_map_lookup_percpu_elem)" % (ref.name, agg.describe()), ref.loc)


def combine_percpu(gen, spec, agg, kptr, ref, checked=False):
    """The value of aggregation ``agg`` at the key ``kptr`` points to, over all CPUs
    (``ref``: the map reference an error points at)."""
    if not checked:
        _need_percpu_lookup(gen, ref, agg)
    b = gen.b
    kind = agg.agg
    from tinytrace.kernel import arch
    ncpu = max(arch.possible_cpus()) + 1
    signed = agg.arg.signed if agg.arg is not None else True
    acc = b.vreg()
    b.movi(acc, 0)
    cnt = b.vreg()            # avg: the count; min/max: whether any CPU had a value
    b.movi(cnt, 0)
    cpu = b.vreg()
    b.movi(cpu, 0)
    top = b.new_label("pc")
    nxt = b.new_label("pn")
    done = b.new_label("pd")
    b.place(top)
    b.jump(">=", cpu, done, imm=ncpu)
    p = b.call("map_lookup_percpu_elem", ("map", spec.name), kptr, cpu)
    b.jump("==", p, nxt, imm=0)
    t = b.vreg()
    if kind == "count":
        b.load(t, p, 0, 8)
        b.alu("+", acc, src=t)
    elif kind == "sum":
        b.load(t, p, 0, 8)
        b.alu("+", acc, src=t)
    elif kind == "avg":
        b.load(t, p, 0, 8)
        b.alu("+", cnt, src=t)
        b.load(t, p, 8, 8)
        b.alu("+", acc, src=t)
    else:
        b.load(t, p, 8, 8)
        b.jump("==", t, nxt, imm=0)          # this CPU never saw a value
        b.load(t, p, 0, 8)
        take = b.new_label("pt")
        b.jump("==", cnt, take, imm=0)
        b.jump("<" if kind == "min" else ">", t, take, b=acc, signed=signed)
        b.goto(nxt)
        b.place(take)
        b.mov(acc, t)
        b.movi(cnt, 1)
    b.place(nxt)
    b.alu("+", cpu, imm=1)
    b.goto(top)
    b.place(done)
    if kind == "avg":
        res = b.vreg()
        b.movi(res, 0)
        skip = b.new_label("pz")
        b.jump("==", cnt, skip, imm=0)
        q = gen.arith("/", acc, INT64, cnt, INT64, INT64, INT64)
        b.mov(res, gen.reg(q))
        b.place(skip)
        return res
    return acc


def read_into(gen, ref, dst, ty, clean):
    b = gen.b
    spec = gen.comp.map_spec(ref.info)
    key = key_mem(gen, ref)
    ptr = lookup(gen, spec, key)
    miss = b.new_label("miss")
    end = b.new_label("got")
    b.jump("==", ptr, miss, imm=0)
    gen.copy_value(dst, ty, Mem(ptr, 0), ref.info.value, clean)
    b.goto(end)
    b.place(miss)
    gen.zero(dst, ty.size)
    b.place(end)


def assign(gen, target, value):
    b = gen.b
    info = target.info
    spec = gen.comp.map_spec(info)
    vty = info.value
    val = gen.alloc(vty.size)
    gen.store(value, val, vty)
    key = key_mem(gen, target)
    b.call("map_update_elem", ("map", spec.name), gen._ptr(key), gen._ptr(val),
           ("imm", BPF_ANY))


def delete(gen, ref):
    spec = gen.comp.map_spec(ref.info)
    key = key_mem(gen, ref)
    gen.b.call("map_delete_elem", ("map", spec.name), gen._ptr(key))


def has_key(gen, ref):
    b = gen.b
    spec = gen.comp.map_spec(ref.info)
    key = key_mem(gen, ref)
    ptr = lookup(gen, spec, key)
    res = b.vreg()
    b.movi(res, 1)
    yes = b.new_label("has")
    b.jump("!=", ptr, yes, imm=0)
    b.movi(res, 0)
    b.place(yes)
    return res


def update(gen, target, opname, value, want_value, postfix=False):
    """``@m[k] op= value`` (and ``++``/``--``); returns the new (or, ``postfix``, the old)
    value when ``want_value``."""
    b = gen.b
    info = target.info
    spec = gen.comp.map_spec(info)
    vty = info.value
    if isinstance(vty, PtrT):
        vty = UINT64
    rty = value.ty if not isinstance(value.ty, PtrT) else UINT64
    opty = promote(vty) if opname in ("<<", ">>") else common_int(vty, rty)
    rhs = gen.value(value)
    if not isinstance(rhs, Imm):
        held = b.vreg()
        b.mov(held, rhs)
        rhs = held
    key = key_mem(gen, target)
    ptr = lookup(gen, spec, key)
    size = vty.size
    res = b.vreg() if want_value else None
    miss = b.new_label("miss")
    done = b.new_label("upd")
    b.jump("==", ptr, miss, imm=0)
    atomic = (opname in ("+", "-") and not want_value and gen.comp.target.atomics and
              size in (4, 8) and opty.bits <= size * 8)
    if atomic:
        d = gen.convert(rhs, rty, IntT(size * 8, vty.signed))
        if opname == "-":
            d = gen.arith("-", Imm(0), INT64, d, IntT(size * 8, vty.signed), INT64, INT64)
        b.atomic_add(ptr, 0, gen.reg(d), size)
    else:
        old = gen.load_scalar(Mem(ptr, 0), vty)
        new = gen.arith(opname, old, vty, rhs, rty, opty, vty)
        b.store(ptr, 0, gen.reg(new), size)
        if want_value:
            b.mov(res, old if postfix else gen.reg(new))
    b.goto(done)
    b.place(miss)
    new = gen.arith(opname, Imm(0), vty, rhs, rty, opty, vty)
    init = gen.alloc(max(size, 8))
    if isinstance(new, Imm) and -(1 << 31) <= new.value < (1 << 31):
        b.store_imm(init.base, init.off, new.value, size)
    else:
        b.store(init.base, init.off, gen.reg(new), size)
    b.call("map_update_elem", ("map", spec.name), gen._ptr(key), gen._ptr(init),
           ("imm", BPF_ANY))
    if want_value:
        if postfix:
            b.movi(res, 0)
        else:
            gen.set_reg(res, new)
    b.place(done)
    return res


# -- aggregations ---------------------------------------------------------------------------

def aggregate(gen, target, call):
    """``@m[k] = count()/sum(x)/.../hist(x)/lhist(x, ...)``."""
    b = gen.b
    info = target.info
    spec = gen.comp.map_spec(info)
    agg = info.value
    kind = agg.agg
    v = None
    if kind != "count":
        arg = call.args[0]
        aty = arg.ty if isinstance(arg.ty, IntT) else UINT64
        v = gen.reg(gen.convert(gen.value(arg), aty, _wide(agg.arg or aty)))
        held = b.vreg()
        b.mov(held, v)
        v = held
    key = key_mem(gen, target)
    ptr = lookup(gen, spec, key)
    done = b.new_label("agg")
    keyed = spec.kind != "percpu_array"
    if kind in ("hist", "lhist"):
        have = b.new_label("have")
        b.jump("!=", ptr, have, imm=0)
        if keyed:
            zero = b.vreg()
            b.code.append(Insn(op.LD_IMM64, zero, op.PSEUDO_MAP_VALUE, 0, 0, "zero", b.loc))
            gen.comp.need_zero(agg.size)
            b.call("map_update_elem", ("map", spec.name), gen._ptr(key), zero,
                   ("imm", BPF_ANY))
            p2 = lookup(gen, spec, key)
            b.mov(ptr, p2)
            b.jump("!=", ptr, have, imm=0)
        b.goto(done)
        b.place(have)
        idx = hist_index(gen, v, agg) if kind == "hist" else lhist_index(gen, v, agg)
        b.alu("<<", idx, imm=3)
        slot = b.vreg()
        b.mov(slot, ptr)
        b.alu("+", slot, src=idx)
        _add(gen, slot, 0, Imm(1))
        b.place(done)
        return
    miss = b.new_label("first")
    b.jump("==", ptr, miss, imm=0)
    if kind == "count":
        _add(gen, ptr, 0, Imm(1))
    elif kind == "sum":
        _add(gen, ptr, 0, v)
        _add(gen, ptr, 8, Imm(1))
    elif kind in ("avg", "stats"):
        _add(gen, ptr, 0, Imm(1))
        _add(gen, ptr, 8, v)
    elif kind in ("min", "max"):
        write = b.new_label("set")
        t = b.vreg()
        b.load(t, ptr, 8, 8)
        b.jump("==", t, write, imm=0)
        b.load(t, ptr, 0, 8)
        signed = agg.arg.signed if agg.arg is not None else True
        b.jump("<" if kind == "min" else ">", v, write, b=t, signed=signed)
        b.goto(done)
        b.place(write)
        b.store(ptr, 0, v, 8)
        b.store_imm(ptr, 8, 1, 8)
    else:
        raise AssertionError(kind)
    b.goto(done)
    b.place(miss)
    if keyed:
        init = gen.alloc(agg.size)
        if kind == "count":
            b.store_imm(init.base, init.off, 1, 8)
        elif kind in ("sum", "min", "max"):
            b.store(init.base, init.off, v, 8)
            b.store_imm(init.base, init.off + 8, 1, 8)
        else:
            b.store_imm(init.base, init.off, 1, 8)
            b.store(init.base, init.off + 8, v, 8)
        b.call("map_update_elem", ("map", spec.name), gen._ptr(key), gen._ptr(init),
               ("imm", BPF_ANY))
    b.place(done)


def _wide(ty):
    return IntT(64, ty.signed) if isinstance(ty, IntT) else INT64


def _add(gen, ptr, off, v):
    b = gen.b
    t = b.vreg()
    b.load(t, ptr, off, 8)
    if isinstance(v, Imm):
        b.alu("+", t, imm=v.value)
    else:
        b.alu("+", t, src=v)
    b.store(ptr, off, t, 8)


def _log2(gen, v):
    """floor(log2(v)) for v > 0, by binary search (6 steps)."""
    b = gen.b
    t = b.vreg()
    b.mov(t, v)
    r = b.vreg()
    b.movi(r, 0)
    s = b.vreg()
    for shift in (32, 16, 8, 4, 2, 1):
        skip = b.new_label("lg")
        b.mov(s, t)
        b.alu(">>", s, imm=shift)
        b.jump("==", s, skip, imm=0)
        b.mov(t, s)
        b.alu("+", r, imm=shift)
        b.place(skip)
    return r


def hist_index(gen, v, agg):
    """bpftrace's hist bucket of ``v`` (see ``types.hist_buckets``), clamped so that the
    verifier sees the bound."""
    b = gen.b
    bits = agg.params[0] if agg.params else 0
    n = 1 << bits
    idx = b.vreg()
    done = b.new_label("hx")
    signed = agg.arg.signed if agg.arg is not None else True
    b.movi(idx, 0)
    if signed:
        b.jump("<", v, done, imm=0, signed=True)
    small = b.new_label("hs")
    b.jump("<", v, small, imm=2 * n)
    p = _log2(gen, v)
    # idx = ((p - bits + 1) << bits) + ((v >> (p - bits)) - n) + 1
    sh = p
    if bits:
        sh = b.vreg()
        b.mov(sh, p)
        b.alu("-", sh, imm=bits)
    frac = b.vreg()
    b.mov(frac, v)
    b.alu(">>", frac, src=sh)
    if n > 1:
        b.alu("-", frac, imm=n - 1)
    b.mov(idx, p)
    b.alu("+", idx, imm=1 - bits)
    if bits:
        b.alu("<<", idx, imm=bits)
    b.alu("+", idx, src=frac)
    b.goto(done)
    b.place(small)
    b.mov(idx, v)
    b.alu("+", idx, imm=1)
    b.place(done)
    _clamp(gen, idx, hist_buckets(bits) - 1)
    return idx


def lhist_index(gen, v, agg):
    b = gen.b
    lo, hi, step = agg.params
    nb = (hi - lo) // step
    signed = agg.arg.signed if agg.arg is not None else True
    idx = b.vreg()
    done = b.new_label("lx")
    b.movi(idx, 0)
    t = gen.reg(Imm(lo)) if not -(1 << 31) <= lo < (1 << 31) else None
    if t is None:
        b.jump("<", v, done, imm=lo, signed=signed or lo < 0)
    else:
        b.jump("<", v, done, b=t, signed=True)
    b.movi(idx, nb + 1)
    b.jump(">=", v, done, imm=hi, signed=signed or lo < 0)
    b.mov(idx, v)
    if lo:
        b.alu("-", idx, imm=lo)
    gen.udivmod("/", idx, Imm(step))
    b.alu("+", idx, imm=1)
    b.place(done)
    _clamp(gen, idx, nb + 1)
    return idx


def _clamp(gen, idx, maximum):
    b = gen.b
    ok = b.new_label("cl")
    b.jump("<=", idx, ok, imm=maximum)
    b.movi(idx, maximum)
    b.place(ok)
