"""Code generation: one checked probe (and one group of its targets) -> BPF instructions.

The generator walks the tree once.  Scalars (integers, pointers, small opaque values) are
computed into virtual registers (``value``); everything else is written straight to where
it is needed (``store``: a map key, an event, a variable) so nothing is copied twice.
Conditions compile to jumps (``branch``), so ``&&``/``||`` short-circuit and ``if (a < b)``
costs one compare.  Memory for temporaries comes from two arenas that are reset after each
statement, so slots are reused: the stack for small objects, a per-CPU scratch map value for
big ones (strings, events, large keys).  Variables of scalar type live in registers.

Per-event cost matters (benchmarks compare it with bpftrace): tracepoint fields are loaded
straight from the context, aggregations update per-CPU values in place through one lookup,
and builtins call exactly one helper each.
"""
from tinytrace.lang import ast
from tinytrace.lang.ir import FP, R1, Builder
from tinytrace.lang.source import LangError
from tinytrace.lang.types import (
    INT64, UINT64, AggT, ArrayT, BufT, IntT, OpaqueT, PtrT, StrT, StructT, TupleT)

STACK_LIMIT = 512
STACK_OBJECT_MAX = 64       # bigger temporaries go to the scratch map
BPF_LOOP_MAX = 1 << 23      # the most rounds bpf_loop runs
LOOP_SHARED = 24            # a for loop's block: ctx, "left the probe", range start; then
                            # the variables it shares
BPF_ANY, BPF_NOEXIST = 0, 1
BPF_F_CURRENT_CPU = 0xFFFFFFFF
BPF_RB_NO_WAKEUP = 1        # bpf_ringbuf_output flags
BPF_RB_FORCE_WAKEUP = 2
BPF_F_USER_STACK = 1 << 8
PROBE_ID_BASE = 1 << 20     # ids of non-tracepoint probes (tracepoints use their event id)


class Imm:
    """A constant operand."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return "Imm(%d)" % self.value


class Mem:
    """A place in memory: ``base`` register (r10 or a pointer register) + ``off``."""
    __slots__ = ("base", "off")

    def __init__(self, base, off):
        self.base = base
        self.off = off

    def at(self, delta):
        return Mem(self.base, self.off + delta)

    def __repr__(self):
        return "Mem(r%d%+d)" % (self.base, self.off)


class Arena:
    """A bump allocator with marks, for stack or scratch space; ``peak`` is its size.
    ``limit`` (the stack's 512 bytes): the first allocation that goes past it is
    remembered with ``where()`` (the source location being compiled)."""

    def __init__(self, limit=None, where=None):
        self.top = 0
        self.peak = 0
        self.limit = limit
        self.where = where
        self.overflow = None   # (location, bytes needed) of the first overflow

    def alloc(self, size):
        size = (size + 7) // 8 * 8
        start = self.top
        self.top += size
        if self.top > self.peak:
            self.peak = self.top
        if self.limit is not None and self.top > self.limit and self.overflow is None:
            self.overflow = (self.where(), self.top)
        return start

    def mark(self):
        return self.top

    def release(self, mark):
        self.top = mark


class Target:
    """What the kernel supports, as far as code generation cares."""

    def __init__(self, ringbuf=True, atomics=True, probe_read_kernel=True, v4=True,
                 bounded_loops=True, percpu=True, cookies=True, percpu_lookup=True,
                 div64=True, for_each=True, bpf_loop=True, callbacks=True):
        self.for_each = for_each    # bpf_for_each_map_elem (Linux 5.13)
        # a JIT that takes callbacks (not the 32-bit ones); None: asked of the kernel when
        # a for loop is compiled (``has_callbacks``)
        self.callbacks = callbacks
        self.bpf_loop = bpf_loop    # bpf_loop (Linux 5.17)
        self.cookies = cookies      # BPF links with a cookie per perf event (Linux 5.15)
        self.div64 = div64          # 64-bit div/mod instructions (not in 32-bit JITs)
        self.percpu_lookup = percpu_lookup   # bpf_map_lookup_percpu_elem (Linux 5.19)
        self.ringbuf = ringbuf
        self.atomics = atomics
        self.probe_read_kernel = probe_read_kernel
        self.v4 = v4                # sdiv/smod, sign-extending loads (Linux 6.6)
        self.bounded_loops = bounded_loops
        self.percpu = percpu

    @classmethod
    def probe(cls):
        """From the running kernel (``tinytrace.kernel.features``); modern defaults when
        bpf() is not usable (e.g. ``-d`` as an ordinary user).  ``TINYTRACE_TARGET``
        (``ringbuf=0,atomics=0,...``) turns features off, to exercise the fallbacks that
        older kernels and 32-bit JITs get."""
        try:
            from tinytrace.kernel import bpf, features
            f = features.probe()
            version = bpf.kernel_version()
            t = cls(ringbuf=bool(f.ringbuf), atomics=bool(f.atomics),
                    probe_read_kernel=bool(f.probe_read_kernel),
                    v4=tuple(version[:2]) >= (6, 6),
                    bounded_loops=bool(f.bounded_loops), percpu=bool(f.percpu_maps),
                    cookies=bool(f.perf_link),
                    percpu_lookup=tuple(version[:2]) >= (5, 19),
                    for_each=tuple(version[:2]) >= (5, 13),
                    bpf_loop=tuple(version[:2]) >= (5, 17),
                    callbacks=None,
                    div64=_kernel_is_64bit())
        except Exception:
            t = cls()
        import os
        for item in os.environ.get("TINYTRACE_TARGET", "").split(","):
            name, _, value = item.partition("=")
            if name.strip() in t.__dict__ and value.strip() in ("0", "1"):
                setattr(t, name.strip(), value.strip() == "1")
        return t

    def has_callbacks(self):
        if self.callbacks is None:
            try:
                from tinytrace.kernel import features
                self.callbacks = bool(features.probe().callbacks)
            except Exception:       # no bpf() here (-d as a user): assume a modern kernel
                self.callbacks = True
        return self.callbacks

    def read_helper(self, user, string):
        if not self.probe_read_kernel:
            return "probe_read_str" if string else "probe_read"
        return "probe_read_%s%s" % ("user" if user else "kernel", "_str" if string else "")


def _kernel_is_64bit():
    """32-bit kernels' JITs (arm in 6.1) refuse 64-bit division: the code divides without
    it there (``ProgramGen.udivmod``)."""
    try:
        from tinytrace.kernel import arch
        return arch.kernel_long_size() == 8
    except Exception:
        return True


class ProgramGen:
    def __init__(self, comp, probe, ap, targets, index, label_prefix="L"):
        self.comp = comp
        self.probe = probe
        self.ap = ap
        self.provider = ap.provider
        self.targets = targets
        self.b = Builder(label_prefix)
        self.stack = Arena(STACK_LIMIT, lambda: self.b.loc)
        self.scratch = Arena()
        self.scratch_base = 0
        self.scratch_reg = self.b.vreg()
        self.scratch_used = False
        self.index = index
        self.ctx = self.b.vreg()
        self.exit_label = "exit"
        self.loop_labels = []
        self.vars = {}
        self.stmt_peaks = []
        self._zero_key = None
        self.cookies = None   # {target name: probe id} when ``probe`` reads the cookie
        # for loops: the body of each is a function of its own (``CallbackGen``), made
        # after this one; every nested one lands in the list of the program's main function
        self.root = self
        self.callbacks = []

    # -- driver -----------------------------------------------------------------------------
    def generate(self):
        b = self.b
        b.loc = self.probe.loc
        body_start = len(b.code)
        b.mov(self.ctx, R1)
        self._zero_key = Mem(FP, -(self.stack.alloc(8) + 8))
        prologue = getattr(self.provider, "prologue", None)
        if prologue is not None:
            prologue(self)
        self._declare_vars(_names_outside_loops(self.probe))
        if self.probe.pred is not None:
            b.loc = self.probe.pred.loc
            self.branch(self.probe.pred, self.exit_label, False)
        self.block(self.probe.body)
        b.loc = self.probe.loc
        b.place(self.exit_label)
        b.exit(0)
        if self.scratch_used:
            self._insert_scratch_prologue(body_start + 1)
        return b.code

    def _insert_scratch_prologue(self, at):
        """scratch = lookup(scratch, 0); if NULL: return -- placed right after ctx is saved."""
        saved = self.b.code
        self.b.code = []
        self.b.loc = self.probe.loc
        key = self._zero_u32_key()
        ptr = self.b.call("map_lookup_elem", ("map", "scratch"), self._ptr(key))
        self.b.mov(self.scratch_reg, ptr)
        self.b.jump("==", self.scratch_reg, self.exit_label, imm=0)
        pro = self.b.code
        self.b.code = saved[:at] + pro + saved[at:]

    def _zero_u32_key(self):
        """An 8-byte zero on the stack (the key of one-element arrays).  Its slot is
        reserved before anything else; it is written where used, so it is initialised on
        every path."""
        self.b.store_imm(self._zero_key.base, self._zero_key.off, 0, 8)
        return self._zero_key

    def _declare_vars(self, names):
        """Scalar variables get a register, others permanent memory.  A variable that
        some path could read before assigning starts at zero (the verifier rejects reads
        of uninitialised registers and stack).  ``names``: the variables this function
        mentions (those only in the body of a for loop belong to its function)."""
        assigned_first = _assigned_before_use(self.probe)
        loc = self.b.loc
        for name, info in sorted(self.probe.vars.items(), key=lambda kv: kv[1].loc):
            if name not in names:
                continue
            ty = info.ty
            self.b.loc = info.loc
            if ty.scalar and not isinstance(ty, (StrT, TupleT, BufT)):
                r = self.b.vreg()
                if name not in assigned_first:
                    self.b.movi(r, 0)
                self.vars[name] = r
            else:
                m = self.alloc(ty.size, permanent=True)
                if name not in assigned_first:
                    self.zero(m, ty.size)
                self.vars[name] = m
        self.b.loc = loc

    # -- memory -----------------------------------------------------------------------------
    def alloc(self, size, permanent=False):
        """Memory for a temporary (or, with ``permanent``, for a variable)."""
        if size > STACK_OBJECT_MAX:
            self.scratch_used = True
            start = self.scratch.alloc(size)
            return Mem(self.scratch_reg, self.scratch_base + start)
        start = self.stack.alloc(size)
        return Mem(FP, -(start + ((size + 7) // 8 * 8)))

    def _ptr(self, mem):
        r = self.b.vreg()
        self.b.addr(r, mem.base, mem.off)
        return r

    def copy(self, dst, src, size):
        """Copy ``size`` bytes with the widest loads and stores both places' alignment
        allows (the verifier refuses misaligned stack access)."""
        b = self.b
        t = b.vreg()
        off = 0
        while off < size:
            for chunk in (8, 4, 2, 1):
                if size - off >= chunk and (dst.off + off) % chunk == 0 and \
                        (src.off + off) % chunk == 0:
                    break
            b.load(t, src.base, src.off + off, chunk)
            b.store(dst.base, dst.off + off, t, chunk)
            off += chunk

    def zero(self, dst, size, start=0):
        """Zero bytes ``start`` to ``size`` of ``dst``."""
        b = self.b
        off = start
        while off < size:
            for chunk in (8, 4, 2, 1):
                if size - off >= chunk and (dst.off + off) % chunk == 0:
                    break
            b.store_imm(dst.base, dst.off + off, 0, chunk)
            off += chunk

    def store_bytes(self, dst, data, size):
        """Write constant bytes (zero-padded to ``size``)."""
        import struct
        import sys
        data = bytes(data[:size]) + bytes(max(0, size - len(data)))
        b = self.b
        fmt = "<" if sys.byteorder == "little" else ">"
        off = 0
        while off < size:
            for chunk, code in ((4, "I"), (2, "H"), (1, "B")):
                if size - off >= chunk and (dst.off + off) % chunk == 0:
                    break
            v = struct.unpack(fmt + code, data[off:off + chunk])[0]
            b.store_imm(dst.base, dst.off + off, v, chunk)
            off += chunk

    # -- statements -------------------------------------------------------------------------
    def block(self, block):
        for s in block.stmts:
            self.stmt(s)

    def stmt(self, s):
        b = self.b
        b.loc = s.loc
        smark, xmark = self.stack.mark(), self.scratch.mark()
        before = self.stack.peak
        self.stack.peak = smark
        try:
            self._stmt(s)
        finally:
            self.stmt_peaks.append((s.loc, self.stack.peak, _describe_stmt(s)))
            self.stack.peak = max(before, self.stack.peak)
            self.stack.release(smark)
            self.scratch.release(xmark)

    def _stmt(self, s):
        if isinstance(s, ast.ExprStmt):
            e = s.expr
            if isinstance(e, ast.Call):
                from tinytrace.lang import codegen_calls
                codegen_calls.statement(self, e)
            elif isinstance(e, ast.IncDec):
                self.incdec(e, want_value=False)
            else:
                raise AssertionError(e)
        elif isinstance(s, ast.Assign):
            self.assign(s)
        elif isinstance(s, ast.If):
            self.if_stmt(s)
        elif isinstance(s, ast.Unroll):
            for _ in range(s.times):
                self.block(s.body)
        elif isinstance(s, ast.While):
            self.while_stmt(s)
        elif isinstance(s, ast.For):
            self.for_stmt(s)
        elif isinstance(s, ast.Jump):
            if s.kind == "return":
                self.b.goto(self.exit_label)
            elif s.kind == "break":
                self.b.goto(self.loop_labels[-1][1])
            else:
                self.b.goto(self.loop_labels[-1][0])
        elif isinstance(s, ast.Block):
            self.block(s)
        else:
            raise AssertionError(s)

    def if_stmt(self, s):
        b = self.b
        else_label = b.new_label("else")
        end_label = b.new_label("fi")
        self.branch(s.cond, else_label, False)
        self.block(s.then)
        if s.orelse is not None:
            b.goto(end_label)
        b.place(else_label)
        if isinstance(s.orelse, ast.If):
            self.stmt(s.orelse)
        elif s.orelse is not None:
            self.block(s.orelse)
        if s.orelse is not None:
            b.place(end_label)

    def for_stmt(self, s):
        """``bpf_for_each_map_elem(map, body, ctx, 0)``.  The body is another function
        with its own stack frame: the variables it shares with this one travel in a block
        on this stack (``ctx``) -- scalars by value, copied back after the walk; others by
        address -- with the probe's context pointer and a flag the body sets when it
        leaves the probe (``return``, ``exit()``)."""
        from tinytrace.asm import opcodes as op
        from tinytrace.asm import Insn
        ranged = s.map is None
        if ranged and not self.comp.target.bpf_loop:
            raise LangError("'for' loops over a range need Linux 5.17 or later (bpf_loop)",
                            s.loc)
        if not ranged and not self.comp.target.for_each:
            raise LangError("'for' loops over maps need Linux 5.13 or later "
                            "(bpf_for_each_map_elem)", s.loc)
        if not self.comp.target.has_callbacks():
            raise LangError("'for' loops need a BPF JIT that calls the program's own "
                            "functions (the kernel calls the loop body); this kernel's does "
                            "not (32-bit JITs have no such calls)", s.loc)
        b = self.b
        count = None
        if ranged:
            # bpf_loop(end - start, ...) with start in the block; none when end <= start
            start = self.reg(self.convert(self.value(s.start), s.start.ty, INT64))
            first = b.vreg()
            b.mov(first, start)
            end = self.reg(self.convert(self.value(s.end), s.end.ty, INT64))
            count = b.vreg()
            b.mov(count, end)
            b.alu("-", count, src=first)
            skip = b.new_label("fornone")
            b.jump("<=", end, skip, b=first, signed=True)
            # bpf_loop takes a u32 count and refuses more than 1 << 23: a longer range
            # runs nothing rather than a truncated count
            b.jump(">", count, skip, imm=BPF_LOOP_MAX)
        shared = sorted(n for n in _names_in(s.body) if n in self.vars and n != s.var.name)
        size = LOOP_SHARED + 8 * len(shared)
        area = Mem(FP, -(self.stack.alloc(size) + size))   # on the stack: the helper's rule
        b.store(area.base, area.off, self.ctx, 8)
        b.store_imm(area.base, area.off + 8, 0, 8)
        if ranged:
            b.store(area.base, area.off + 16, first, 8)
        layout = []
        for i, name in enumerate(shared):
            off = LOOP_SHARED + 8 * i
            v = self.vars[name]
            scalar = not isinstance(v, Mem)
            b.store(area.base, area.off + off, v if scalar else self._ptr(v), 8)
            layout.append((name, off, scalar))
        label = "F%d" % (len(self.root.callbacks) + 1)
        self.root.callbacks.append(CallbackGen(self, s, layout, label))
        fn = b.vreg()
        b.code.append(Insn(op.LD_IMM64, fn, op.PSEUDO_FUNC, 0, 0, label, b.loc))
        if ranged:
            b.call("loop", count, fn, self._ptr(area), ("imm", 0))
        else:
            spec = self.comp.map_spec(s.map.info)
            b.call("for_each_map_elem", ("map", spec.name), fn, self._ptr(area), ("imm", 0))
        for name, off, scalar in layout:
            if scalar:
                b.load(self.vars[name], area.base, area.off + off, 8)
        left = b.vreg()
        b.load(left, area.base, area.off + 8, 8)
        b.jump("!=", left, self.exit_label, imm=0)
        if ranged:
            b.place(skip)

    def while_stmt(self, s):
        if not self.comp.target.bounded_loops:
            raise LangError("while loops need a kernel with bounded loops (Linux 5.3 or "
                            "later); use unroll(N) instead", s.loc)
        b = self.b
        top = b.new_label("while")
        end = b.new_label("wend")
        b.place(top)
        self.branch(s.cond, end, False)
        self.loop_labels.append((top, end))
        self.block(s.body)
        self.loop_labels.pop()
        b.goto(top)
        b.place(end)

    def assign(self, s):
        target = s.target
        if s.op != "=":
            self.compound(s)
            return
        if isinstance(target, ast.Var):
            slot = self.vars[target.name]
            ty = target.info.ty
            if isinstance(slot, Mem):
                self.store(s.value, slot, ty)
            else:
                v = self.convert(self.value(s.value), s.value.ty, ty)
                self.set_reg(slot, v)
            return
        from tinytrace.lang import codegen_maps
        if isinstance(s.value, ast.Call) and isinstance(s.value.ty, AggT):
            codegen_maps.aggregate(self, target, s.value)
        else:
            codegen_maps.assign(self, target, s.value)

    def compound(self, s):
        target = s.target
        op = s.op[:-1]
        if isinstance(target, ast.Var):
            slot = self.vars[target.name]
            ty = target.info.ty
            rhs = self.value(s.value)
            res = self.arith(op, slot, ty, rhs, s.value.ty, ty, ty)
            self.set_reg(slot, res)
            return
        from tinytrace.lang import codegen_maps
        codegen_maps.update(self, target, op, s.value, want_value=False)

    def incdec(self, e, want_value):
        op = "+" if e.op == "++" else "-"
        t = e.target
        if isinstance(t, ast.Var):
            slot = self.vars[t.name]
            ty = t.info.ty
            old = None
            if want_value and not e.prefix:
                old = self.b.vreg()
                self.b.mov(old, slot)
            res = self.arith(op, slot, ty, Imm(1), INT64, ty, ty)
            self.set_reg(slot, res)
            return old if old is not None else slot
        from tinytrace.lang import codegen_maps
        one = ast.Int(1, e.loc)
        one.ty = INT64
        return codegen_maps.update(self, t, op, one, want_value=want_value,
                                   postfix=not e.prefix)

    def set_reg(self, reg, v):
        if isinstance(v, Imm):
            self.b.movi(reg, v.value)
        else:
            self.b.mov(reg, v)

    # -- scalar values ----------------------------------------------------------------------
    def reg(self, v):
        """Materialise an operand in a (fresh if constant) register."""
        if isinstance(v, Imm):
            r = self.b.vreg()
            self.b.movi(r, v.value)
            return r
        return v

    def value(self, e):
        """The value of a scalar expression: a register or an ``Imm``."""
        method = getattr(self, "_v_" + type(e).__name__, None)
        if method is None:
            raise AssertionError("no scalar value for %s" % type(e).__name__)
        return method(e)

    def _v_Int(self, e):
        return Imm(e.value)

    def _v_Var(self, e):
        slot = self.vars[e.name]
        if isinstance(slot, Mem):
            return self.load_scalar(slot, e.info.ty)
        return slot

    def _v_Builtin(self, e):
        from tinytrace.lang import codegen_builtins
        return codegen_builtins.value(self, e)

    def _v_MapRef(self, e):
        from tinytrace.lang import codegen_maps
        return codegen_maps.read_scalar(self, e)

    def _v_Call(self, e):
        from tinytrace.lang import codegen_calls
        return codegen_calls.value(self, e)

    def _v_IncDec(self, e):
        return self.incdec(e, want_value=True)

    def _v_Cast(self, e):
        v = self.value(e.expr)
        src = e.expr.ty
        if isinstance(src, PtrT):
            src = UINT64
        dst = e.ty
        if isinstance(dst, PtrT):
            return v
        return self.convert(v, src, dst)

    def _v_Field(self, e):
        base = e.expr
        if isinstance(base, ast.Builtin) and base.name == "args":
            from tinytrace.lang import codegen_builtins
            return codegen_builtins.args_field_value(self, e)
        if _is_member(e):
            return self.member_value(e)
        mem = self.addr(base)
        off = base.ty.offsets[e.field]
        return self.load_scalar(mem.at(off), e.ty)

    def _v_Index(self, e):
        base_ty = e.expr.ty
        if isinstance(base_ty, PtrT) and isinstance(base_ty.pointee, StructT):
            raise AssertionError("a struct is not a scalar")
        if isinstance(base_ty, PtrT):
            return self.deref(e.expr, e.index, e.ty, base_ty.user)
        mem = self.addr(e.expr)
        elem = e.ty
        if isinstance(e.index, ast.Int):
            return self.load_scalar(mem.at(e.index.value * elem.size), elem)
        # variable index: bounds-checked pointer arithmetic
        count = base_ty.count if isinstance(base_ty, ArrayT) else base_ty.size
        idx = self.reg(self.convert(self.value(e.index), e.index.ty, UINT64))
        res = self.b.vreg()
        self.b.movi(res, 0)
        out = self.b.new_label("idx")
        self.b.jump(">=", idx, out, imm=count)
        p = self._ptr(mem)
        scaled = self.b.vreg()
        self.b.mov(scaled, idx)
        if elem.size > 1:
            self.b.alu("*", scaled, imm=elem.size)
        self.b.alu("+", p, src=scaled)
        self.b.load(res, p, 0, elem.size)
        self._canonical(res, elem)
        self.b.place(out)
        return res

    def _v_Unop(self, e):
        b = self.b
        if e.op == "!":
            return self.bool_value(e)
        if e.op == "*":
            ty = e.operand.ty
            return self.deref(e.operand, None, e.ty, ty.user)
        v = self.value(e.operand)
        rty = e.ty
        v = self.convert(v, e.operand.ty, rty)
        r = b.vreg()
        self.set_reg(r, v)
        if e.op == "-":
            b.neg(r)
        else:
            b.alu("^", r, imm=-1)
        self._canonical(r, rty)
        return r

    def _v_Binop(self, e):
        op = e.op
        if op in ("&&", "||") or op in ("==", "!=", "<", "<=", ">", ">="):
            return self.bool_value(e)
        lt, rt = e.left.ty, e.right.ty
        if isinstance(e.ty, PtrT):
            # pointer +/- integer: scaled by the pointee's size
            ptr_left = isinstance(lt, PtrT)
            p = self.value(e.left if ptr_left else e.right)
            i = self.value(e.right if ptr_left else e.left)
            ity = rt if ptr_left else lt
            scale = e.ty.pointee.size if e.ty.pointee is not None and e.ty.pointee.size else 1
            i = self.convert(i, ity, INT64)
            if scale != 1:
                i = self.arith("*", i, INT64, Imm(scale), INT64, INT64, INT64)
            return self.arith(op, p, UINT64, i, INT64, UINT64, UINT64)
        lv = self.value(e.left)
        rv = self.value(e.right)
        return self.arith(op, lv, lt, rv, rt, e.opty, e.ty)

    def _v_Ternary(self, e):
        b = self.b
        res = b.vreg()
        els = b.new_label("else")
        end = b.new_label("fi")
        self.branch(e.cond, els, False)
        self.set_reg(res, self.convert(self.value(e.then), e.then.ty, e.ty))
        b.goto(end)
        b.place(els)
        self.set_reg(res, self.convert(self.value(e.orelse), e.orelse.ty, e.ty))
        b.place(end)
        return res

    def bool_value(self, e):
        b = self.b
        res = b.vreg()
        b.movi(res, 0)
        end = b.new_label("b")
        self.branch(e, end, False)
        b.movi(res, 1)
        b.place(end)
        return res

    # -- integer arithmetic -----------------------------------------------------------------
    def _canonical(self, reg, ty):
        """Bring ``reg`` to the canonical 64-bit form of integer type ``ty``."""
        if isinstance(ty, IntT) and ty.bits < 64:
            if ty.signed:
                self.b.sign_extend(reg, ty.bits)
            else:
                self.b.zero_extend(reg, ty.bits)

    def convert(self, v, src, dst):
        """Convert a canonical value of ``src`` to canonical ``dst`` (C conversion)."""
        if not (isinstance(dst, IntT) and isinstance(src, (IntT, PtrT))):
            return v
        if isinstance(src, PtrT):
            src = UINT64
        if isinstance(v, Imm):
            return Imm(dst.wrap(v.value))
        if dst.bits == 64 or (dst.bits >= src.bits and dst.signed == src.signed) or \
                (dst.bits > src.bits and not src.signed):
            return v
        r = self.b.vreg()
        self.b.mov(r, v)
        self._canonical(r, dst)
        return r

    def arith(self, op, a, aty, bv, bty, opty, rty):
        """``a op b`` computed in ``opty``, result canonical in ``rty``."""
        b = self.b
        if isinstance(aty, PtrT):
            aty = UINT64
        if isinstance(bty, PtrT):
            bty = UINT64
        if op in ("<<", ">>"):
            a = self.convert(a, aty, opty)
            bv = self.convert(bv, bty, UINT64)
        else:
            a = self.convert(a, aty, opty)
            bv = self.convert(bv, bty, opty)
        if isinstance(a, Imm) and isinstance(bv, Imm):
            from tinytrace.lang.sema import _fold
            folded = _fold(op, opty, a.value, bv.value)
            if folded is not None:
                return Imm(rty.wrap(folded))
        signed = opty.signed
        if isinstance(a, Imm) and op in ("+", "*", "&", "|", "^"):
            a, bv = bv, a
        r = b.vreg()
        self.set_reg(r, a)
        if op in ("/", "%") and signed:
            self._signed_divmod(op, r, bv)
        elif op in ("/", "%"):
            self.udivmod(op, r, bv)
        else:
            name = op
            if op == ">>" and signed:
                name = "s>>"
            if isinstance(bv, Imm):
                imm = bv.value
                if op in ("<<", ">>"):
                    imm &= 63
                if -(1 << 31) <= imm < (1 << 31):
                    b.alu(name, r, imm=imm)
                else:
                    b.alu(name, r, src=self.reg(bv))
            else:
                b.alu(name, r, src=bv)
        self._canonical(r, rty)
        return r

    def udivmod(self, op, r, bv):
        """``r = r / bv`` or ``r % bv``, unsigned 64-bit, BPF's semantics (x / 0 = 0,
        x % 0 = x).  Without 64-bit division instructions (32-bit JITs): a power of two
        becomes a shift or a mask; operands that fit 32 bits use the 32-bit instruction;
        others a shift-and-subtract loop of 64 steps."""
        b = self.b
        if isinstance(bv, Imm):
            v = bv.value & 0xFFFFFFFFFFFFFFFF
            if v and not v & (v - 1) and (op == "/" or v - 1 < (1 << 31)):
                if op == "/":
                    if v > 1:
                        b.alu(">>", r, imm=v.bit_length() - 1)
                else:
                    b.alu("&", r, imm=v - 1)
                return
            if self.comp.target.div64 and 0 <= bv.value < (1 << 31):
                b.alu(op, r, imm=bv.value)
                return
        if self.comp.target.div64:
            b.alu(op, r, src=self.reg(bv))
            return
        d = b.vreg()
        self.set_reg(d, bv)
        t = b.vreg()
        slow = b.new_label("dv")
        done = b.new_label("dd")
        b.mov(t, r)
        b.alu(">>", t, imm=32)
        b.jump("!=", t, slow, imm=0)
        b.mov(t, d)
        b.alu(">>", t, imm=32)
        b.jump("!=", t, slow, imm=0)
        b.alu(op, r, src=d, is32=True)          # both fit 32 bits (x / 0 = 0, x % 0 = x)
        b.goto(done)
        b.place(slow)
        if op == "/":                            # d is not 0 here unless r is wide
            nz = b.new_label("dz")
            b.jump("!=", d, nz, imm=0)
            b.movi(r, 0)
            b.goto(done)
            b.place(nz)
        else:
            b.jump("==", d, done, imm=0)
        q = b.vreg()
        rem = b.vreg()
        b.movi(q, 0)
        b.movi(rem, 0)
        if self.comp.target.bounded_loops:
            i = b.vreg()
            b.movi(i, 64)
            top = b.new_label("dl")
            b.place(top)
            self._div_step(r, d, q, rem, t)
            b.alu("-", i, imm=1)
            b.jump("!=", i, top, imm=0)
        else:
            for _ in range(64):
                self._div_step(r, d, q, rem, t)
        b.mov(r, q if op == "/" else rem)
        b.place(done)

    def _div_step(self, n, d, q, rem, t):
        """One step of binary long division: the top bit of ``n`` moves into ``rem``; when
        ``rem >= d`` (computed without a branch, so the verifier walks each step once:
        ``borrow = ((~rem & d) | ((~rem | d) & (rem - d))) >> 63``) d is taken off and the
        quotient bit set."""
        b = self.b
        b.alu("<<", rem, imm=1)
        b.mov(t, n)
        b.alu(">>", t, imm=63)
        b.alu("|", rem, src=t)
        b.alu("<<", n, imm=1)
        b.alu("<<", q, imm=1)
        u = b.vreg()
        v = b.vreg()
        b.mov(u, rem)
        b.alu("^", u, imm=-1)                    # ~rem
        b.mov(v, u)
        b.alu("&", u, src=d)                     # ~rem & d
        b.alu("|", v, src=d)                     # ~rem | d
        b.mov(t, rem)
        b.alu("-", t, src=d)                     # rem - d
        b.alu("&", v, src=t)
        b.alu("|", u, src=v)
        b.alu(">>", u, imm=63)                   # borrow: 1 when rem < d
        b.alu("^", u, imm=1)                     # take: 1 when rem >= d
        b.alu("|", q, src=u)
        b.neg(u)                                 # all ones when taken
        b.alu("&", u, src=d)
        b.alu("-", rem, src=u)

    def _signed_divmod(self, op, r, bv):
        b = self.b
        if self.comp.target.v4 and self.comp.target.div64:
            if isinstance(bv, Imm) and -(1 << 31) <= bv.value < (1 << 31):
                b.alu(op, r, imm=bv.value, signed=True)
            else:
                b.alu(op, r, src=self.reg(bv), signed=True)
            return
        # |a| op |b|, then the sign: quotient negative when the signs differ, remainder
        # takes the dividend's sign.
        d = b.vreg()
        self.set_reg(d, bv)
        neg = b.vreg()
        b.movi(neg, 0)
        l1 = b.new_label("sd")
        b.jump(">=", r, l1, imm=0, signed=True)
        b.neg(r)
        b.movi(neg, 1)
        b.place(l1)
        l2 = b.new_label("sd")
        b.jump(">=", d, l2, imm=0, signed=True)
        b.neg(d)
        if op == "/":
            b.alu("^", neg, imm=1)
        b.place(l2)
        self.udivmod(op, r, d)
        l3 = b.new_label("sd")
        b.jump("==", neg, l3, imm=0)
        b.neg(r)
        b.place(l3)

    # -- conditions -------------------------------------------------------------------------
    def branch(self, e, label, when):
        """Jump to ``label`` if ``e`` is true (``when``) / false (not ``when``)."""
        b = self.b
        if isinstance(e, ast.Int):
            if bool(e.value) == when:
                b.goto(label)
            return
        if isinstance(e, ast.Unop) and e.op == "!":
            self.branch(e.operand, label, not when)
            return
        if isinstance(e, ast.Binop):
            op = e.op
            if op == "&&" or op == "||":
                short = (op == "||")   # the value that decides without the right side
                if short == when:
                    self.branch(e.left, label, when)
                    self.branch(e.right, label, when)
                else:
                    skip = b.new_label("sc")
                    self.branch(e.left, skip, short)
                    self.branch(e.right, label, when)
                    b.place(skip)
                return
            if op in ("==", "!=", "<", "<=", ">", ">="):
                if isinstance(e.opty, StrT):
                    from tinytrace.lang import codegen_calls
                    eq = codegen_calls.string_equal(self, e.left, e.right)
                    want_eq = (op == "==") == when
                    b.jump("!=" if want_eq else "==", eq, label, imm=0)
                    return
                if isinstance(e.opty, OpaqueT):
                    lv, rv = self.value(e.left), self.value(e.right)
                    self._cmp_jump(op if when else _NEG[op], lv, rv, False, label)
                    return
                ty = e.opty
                lv = self.convert(self.value(e.left), e.left.ty, ty)
                rv = self.convert(self.value(e.right), e.right.ty, ty)
                self._cmp_jump(op if when else _NEG[op], lv, rv, ty.signed, label)
                return
        v = self.value(e)
        if isinstance(v, Imm):
            if bool(v.value) == when:
                b.goto(label)
            return
        b.jump("!=" if when else "==", v, label, imm=0)

    def _cmp_jump(self, op, lv, rv, signed, label):
        b = self.b
        if isinstance(lv, Imm) and not isinstance(rv, Imm):
            lv, rv = rv, lv
            op = _SWAP[op]
        if isinstance(lv, Imm):
            lv = self.reg(lv)
        if isinstance(rv, Imm):
            b.jump(op, lv, label, imm=rv.value if -(1 << 31) <= rv.value < (1 << 31)
                   else rv.value - (1 << 64) if rv.value >= (1 << 63) else rv.value,
                   signed=signed)
        else:
            b.jump(op, lv, label, b=rv, signed=signed)

    # -- memory-valued expressions ----------------------------------------------------------
    def load_scalar(self, mem, ty):
        r = self.b.vreg()
        size = ty.size if ty.size in (1, 2, 4, 8) else 8
        self.b.load(r, mem.base, mem.off, size)
        self._canonical(r, ty)
        return r

    def addr(self, e):
        """The memory holding the value of a non-scalar expression (computed into a
        temporary unless it already lives somewhere)."""
        if isinstance(e, ast.Var):
            slot = self.vars[e.name]
            if isinstance(slot, Mem):
                return slot
        m = self.alloc(e.ty.size)
        self.store(e, m, e.ty)
        return m

    def store(self, e, dst, ty, clean=True):
        """Write the value of ``e`` to ``dst`` as type ``ty`` (the destination's type: a
        map key or value, a variable, an event slot).  ``clean``: bytes past a string's
        end are zeroed (map keys and values must compare equal byte for byte)."""
        ety = e.ty
        if isinstance(ty, IntT) and isinstance(e, ast.Field) and isinstance(ety, IntT) and \
                ety.size == ty.size and e.field is not None and \
                isinstance(e.expr, ast.Builtin) and e.expr.name == "args" and \
                e.field.size == ty.size and \
                e.field.offset % ty.size == 0 and e.field.offset >= 8:
            # a record field stored at its own width: no need to canonicalise it
            r = self.b.vreg()
            self.b.load(r, self.ctx, e.field.offset, ty.size)
            self.b.store(dst.base, dst.off, r, ty.size)
            return
        if isinstance(ty, (IntT, PtrT)) or (isinstance(ty, OpaqueT) and ty.size <= 8
                                            and ty.scalar):
            v = self.value(e)
            if isinstance(ty, IntT):
                v = self.convert(v, ety, ty)
            size = ty.size if ty.size in (1, 2, 4, 8) else 8
            if isinstance(v, Imm) and -(1 << 31) <= v.value < (1 << 31):
                self.b.store_imm(dst.base, dst.off, v.value, size)
            else:
                self.b.store(dst.base, dst.off, self.reg(v), size)
            return
        if isinstance(e, ast.Str):
            self.store_bytes(dst, e.value.encode("utf-8", "surrogateescape"), ty.size)
            return
        if isinstance(e, ast.Tuple):
            for i, x in enumerate(e.elems):
                ety_i = ty.elems[i] if isinstance(ty, TupleT) else x.ty
                self.store(x, dst.at(ty.offsets[i]), ety_i, clean)
            if clean:
                self._zero_tuple_padding(dst, ty)
            return
        if isinstance(e, ast.Var):
            slot = self.vars[e.name]
            self.copy_value(dst, ty, slot, e.info.ty, clean)
            return
        if isinstance(e, ast.Ternary):
            b = self.b
            els = b.new_label("else")
            end = b.new_label("fi")
            self.branch(e.cond, els, False)
            self.store(e.then, dst, ty, clean)
            b.goto(end)
            b.place(els)
            self.store(e.orelse, dst, ty, clean)
            b.place(end)
            return
        if isinstance(e, ast.Builtin):
            from tinytrace.lang import codegen_builtins
            codegen_builtins.store(self, e, dst, ty, clean)
            return
        if isinstance(e, ast.Field) and _is_member(e):
            self.member_store(e, dst, ty, clean)
            return
        if isinstance(e, ast.Field):
            base = e.expr
            if isinstance(base, ast.Builtin) and base.name == "args":
                from tinytrace.lang import codegen_builtins
                codegen_builtins.args_field_store(self, e, dst, ty, clean)
                return
            src = self.addr(base)
            self.copy_value(dst, ty, src.at(base.ty.offsets[e.field]), ety, clean)
            return
        if isinstance(e, ast.MapRef):
            from tinytrace.lang import codegen_maps
            codegen_maps.read_into(self, e, dst, ty, clean)
            return
        if isinstance(e, ast.Call):
            from tinytrace.lang import codegen_calls
            codegen_calls.store(self, e, dst, ty, clean)
            return
        raise AssertionError("cannot store %s" % type(e).__name__)

    def copy_value(self, dst, dty, src, sty, clean):
        """Copy a value of type ``sty`` at ``src`` into ``dst`` typed ``dty``."""
        if isinstance(src, int):  # a scalar variable's register
            self.b.store(dst.base, dst.off, src, dty.size if dty.size in (1, 2, 4, 8) else 8)
            return
        if isinstance(dty, TupleT) and isinstance(sty, TupleT) and dty != sty:
            for i, (de, se) in enumerate(zip(dty.elems, sty.elems)):
                d = dst.at(dty.offsets[i])
                s = src.at(sty.offsets[i])
                if isinstance(de, IntT):
                    v = self.convert(self.load_scalar(s, se), se, de)
                    self.b.store(d.base, d.off, v, de.size)
                else:
                    self.copy_value(d, de, s, se, clean)
            if clean:
                self._zero_tuple_padding(dst, dty)
            return
        n = min(dty.size, sty.size)
        self.copy(dst, src, n)
        if dty.size > n and clean:
            self.zero(dst, dty.size, n)

    def _zero_tuple_padding(self, dst, ty):
        end = 0
        for off, e in zip(ty.offsets, ty.elems):
            if off > end:
                self.zero(dst.at(end), off - end)
            end = off + e.size
        if ty.size > end:
            self.zero(dst.at(end), ty.size - end)

    def deref(self, ptr_expr, index_expr, ty, user):
        """``*p`` or ``p[i]``: read one value through a pointer with probe_read."""
        b = self.b
        p = self.reg(self.value(ptr_expr))
        # a pointer stored in memory (argv[i]) has the kernel's word size: 4 bytes on a
        # 32-bit kernel, whose programs are 32-bit too
        size = _memory_pointer_size() if isinstance(ty, PtrT) else ty.size
        if index_expr is not None:
            idx = self.convert(self.value(index_expr), index_expr.ty, INT64)
            scaled = self.arith("*", idx, INT64, Imm(size), INT64, INT64, INT64)
            p = self.arith("+", p, UINT64, scaled, INT64, UINT64, UINT64)
            p = self.reg(p)
        m = self.alloc(8)
        b.store_imm(m.base, m.off, 0, 8)
        b.call(self.comp.target.read_helper(user, False), self._ptr(m), ("imm", size), p)
        if size != ty.size:
            r = b.vreg()
            b.load(r, m.base, m.off, size)
            return r
        return self.load_scalar(m, ty)

    # -- kernel structs (BTF) ---------------------------------------------------------------
    def struct_addr(self, e):
        """A register holding the address of the struct an expression of StructT type
        stands for: ``*p``, ``p->inner`` (a struct member), ``p[i]``."""
        b = self.b
        if isinstance(e, ast.Unop) and e.op == "*":
            return self.reg(self.value(e.operand))
        if isinstance(e, ast.Field) and _is_member(e):
            base = self.member_base(e.expr)
            if e.field.offset:
                r = b.vreg()
                b.mov(r, base)
                b.alu("+", r, imm=e.field.offset)
                return r
            return base
        if isinstance(e, ast.Index):
            p = self.reg(self.value(e.expr))
            idx = self.convert(self.value(e.index), e.index.ty, INT64)
            off = self.arith("*", idx, INT64, Imm(e.ty.size), INT64, INT64, INT64)
            return self.reg(self.arith("+", p, UINT64, off, INT64, UINT64, UINT64))
        raise AssertionError("no address for %s" % type(e).__name__)

    def member_base(self, base):
        """The address of the struct whose member is read: a pointer's value, or the
        address a struct-typed expression stands for."""
        if isinstance(base.ty, PtrT):
            return self.reg(self.value(base))
        return self.struct_addr(base)

    def _member_addr(self, e):
        base = self.member_base(e.expr)
        r = self.b.vreg()
        self.b.mov(r, base)
        if e.field.offset:
            self.b.alu("+", r, imm=e.field.offset)
        return r

    def member_value(self, e):
        """A scalar struct member, read with probe_read (kernel or user memory)."""
        b = self.b
        m = e.field
        ty = m.ty
        size = ty.size if ty.size in (1, 2, 4, 8) else 8
        if m.width in (1, 2, 4, 8):
            size = m.width
        addr = self._member_addr(e)
        tmp = self.alloc(8)
        b.store_imm(tmp.base, tmp.off, 0, 8)
        b.call(self.comp.target.read_helper(_user(e.expr.ty), False), self._ptr(tmp),
               ("imm", size), addr)
        r = b.vreg()
        b.load(r, tmp.base, tmp.off, size)
        if m.bits:
            import sys
            shift = m.bit_shift if sys.byteorder == "little" else size * 8 - m.bit_shift - m.bits
            if shift:
                b.alu(">>", r, imm=shift)
            if m.bits < 64:
                if m.bits < 32:
                    b.alu("&", r, imm=(1 << m.bits) - 1)
                else:
                    b.alu("<<", r, imm=64 - m.bits)
                    b.alu(">>", r, imm=64 - m.bits)
            if isinstance(ty, IntT) and ty.signed:
                b.sign_extend(r, m.bits)
            return r
        if isinstance(ty, IntT):
            self._canonical(r, ty)
        return r

    def member_store(self, e, dst, ty, clean):
        """A struct member into memory: strings with probe_read_str, arrays with
        probe_read, scalars through ``member_value``."""
        b = self.b
        mty = e.ty
        if isinstance(mty, (StrT, ArrayT)):
            n = min(mty.size, ty.size)
            if clean:
                self.zero(dst, ty.size)
            addr = self._member_addr(e)
            b.call(self.comp.target.read_helper(_user(e.expr.ty), isinstance(mty, StrT)),
                   self._ptr(dst), ("imm", n), addr)
            return
        v = self.member_value(e)
        if isinstance(ty, IntT):
            v = self.convert(v, mty if isinstance(mty, IntT) else UINT64, ty)
        b.store(dst.base, dst.off, self.reg(v), ty.size if ty.size in (1, 2, 4, 8) else 8)

    # -- events -----------------------------------------------------------------------------
    def event(self, kind, arg_types, data=None, loc=None):
        """Register an event kind; returns its spec (the caller fills the arguments)."""
        return self.comp.add_event(kind, arg_types, data, loc,
                                   getattr(self.provider, "run_at", None))

    def send(self, mem, size, deferred=False):
        """Send ``size`` bytes at ``mem`` to user space; count a loss when there's no room.

        Ring buffer wakeups: by default the kernel wakes the reader when it has read
        everything before this record.  When the script defers some events
        (``Env.deferred_wakeup``), ``deferred`` records wake nobody and every other record
        forces a wakeup (the reader has not read the deferred ones before it, so the
        default rule would not wake it).  A perf buffer wakes the reader per record."""
        b = self.b
        ptr = self._ptr(mem)
        if self.comp.target.ringbuf:
            flags = 0
            if self.comp.env.deferred_wakeup:
                flags = BPF_RB_NO_WAKEUP if deferred else BPF_RB_FORCE_WAKEUP
            r = b.call("ringbuf_output", ("map", "out"), ptr, ("imm", size), ("imm", flags))
        else:
            r = b.call("perf_event_output", self.ctx, ("map", "out"),
                       ("imm", BPF_F_CURRENT_CPU), ptr, ("imm", size))
        ok = b.new_label("sent")
        b.jump("==", r, ok, imm=0)
        key = self._zero_u32_key()
        cnt = b.call("map_lookup_elem", ("map", "lost"), self._ptr(key))
        b.jump("==", cnt, ok, imm=0)
        one = b.vreg()
        b.movi(one, 1)
        b.atomic_add(cnt, 0, one, 8) if self.comp.target.atomics else self._add_mem(cnt, one)
        self.comp.uses_lost = True
        b.place(ok)

    def _add_mem(self, ptr, v):
        t = self.b.vreg()
        self.b.load(t, ptr, 0, 8)
        self.b.alu("+", t, src=v)
        self.b.store(ptr, 0, t, 8)


_NEG = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}
_SWAP = {"==": "==", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}


class CallbackGen(ProgramGen):
    """The body of a for loop as a function ``long f(map, key, value, ctx)`` that
    ``bpf_for_each_map_elem`` calls per element, or ``long f(index, ctx)`` that bpf_loop
    calls per number: 0 goes on, 1 stops.  ``layout``:
    ``(name, offset, scalar)`` of the variables shared with the caller in its ``ctx``
    block; the others it mentions are its own, zero at each element."""

    def __init__(self, parent, s, layout, label):
        ProgramGen.__init__(self, parent.comp, parent.probe, parent.ap, parent.targets,
                            parent.index, label_prefix=label + "_")
        self.root = parent.root
        self.parent = parent
        self.loop = s
        self.layout = layout
        self.label = label
        self.exit_label = label + "_leave"   # return / exit(): leave the probe
        self.depth = None                      # stack of the call chain (set when allocated)

    def generate(self):
        from tinytrace.lang.ir import R2, R3, R4
        b = self.b
        s = self.loop
        b.loc = s.loc
        key_p, value_p, area = b.vreg(), b.vreg(), b.vreg()
        if s.map is None:        # bpf_loop: (index, ctx)
            b.mov(key_p, R1)
            b.mov(area, R2)
        else:                    # bpf_for_each_map_elem: (map, key, value, ctx)
            b.mov(key_p, R2)
            b.mov(value_p, R3)
            b.mov(area, R4)
        body_start = len(b.code)
        self._zero_key = Mem(FP, -(self.stack.alloc(8) + 8))
        ctx_load = len(b.code)
        b.load(self.ctx, area, 0, 8)
        for name, off, scalar in self.layout:
            r = b.vreg()
            b.load(r, area, off, 8)
            self.vars[name] = r if scalar else Mem(r, 0)
        own = _names_outside_loops(s.body) | set([s.var.name])
        for name in sorted(own - set(self.vars)):
            info = s.var.info if name == s.var.name else self.probe.vars[name]
            ty = info.ty
            b.loc = info.loc
            if ty.scalar and not isinstance(ty, (StrT, TupleT, BufT)):
                r = b.vreg()
                if name != s.var.name:     # the loop's own is set from the index below
                    b.movi(r, 0)
                self.vars[name] = r
            else:
                m = self.alloc(ty.size, permanent=True)
                if name != s.var.name:
                    self.zero(m, ty.size)
                self.vars[name] = m
        b.loc = s.loc
        if s.map is None:
            i = self.vars[s.var.name]
            b.load(i, area, 16, 8)
            b.alu("+", i, src=key_p)
        else:
            self._fill_pair(self.vars[s.var.name], s.var.info.ty, key_p, value_p)
        go_on, stop = b.new_label("next"), b.new_label("stop")
        self.loop_labels.append((go_on, stop))
        self.block(s.body)
        self.loop_labels.pop()
        b.loc = s.loc
        for label, left, ret in ((go_on, False, 0), (stop, False, 1), (self.exit_label, True, 1)):
            b.place(label)
            if left:
                b.store_imm(area, 8, 1, 8)
            for name, off, scalar in self.layout:
                if scalar:
                    b.store(area, off, self.vars[name], 8)
            b.exit(ret)
        if not _reads(b.code, self.ctx):
            del b.code[ctx_load]     # the body never uses the context: no load per element
        if self.scratch_used:
            self._insert_scratch_prologue(body_start)
        if self.cookies:
            self.root.cookies = self.cookies
        return b.code

    def _fill_pair(self, pair, ty, key_p, value_p):
        """``$kv`` = (key, value): the key copied from the map; the value too, or for a
        count/sum/min/max/avg map its total over the CPUs (``codegen_maps``)."""
        from tinytrace.lang import codegen_maps
        info = self.loop.map.info
        kty, vty = ty.elems
        self.copy(pair.at(ty.offsets[0]), Mem(key_p, 0), kty.size)
        if isinstance(info.value, AggT):
            spec = self.comp.map_spec(info)
            total = codegen_maps.combine_percpu(self, spec, info.value, self._ptr(pair),
                                                self.loop.map)
            self.b.store(pair.base, pair.off + ty.offsets[1], total, 8)
        else:
            self.copy(pair.at(ty.offsets[1]), Mem(value_p, 0), vty.size)


def _reads(code, reg):
    """Whether any instruction of ``code`` reads register ``reg``."""
    from tinytrace.asm import Label
    from tinytrace.lang.ir import uses_defs
    return any(type(x) is not Label and reg in uses_defs(x)[0] for x in code)


def _names_in(node):
    return set(n.name for n in ast.walk(node) if isinstance(n, ast.Var))


def _names_outside_loops(node):
    """The variables ``node`` mentions outside the bodies of its for loops (a loop's own
    variable is of its body)."""
    names = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.For):      # its bounds are the caller's
            stack.extend(x for x in (n.map, n.start, n.end) if x is not None)
            continue
        if isinstance(n, ast.Var):
            names.add(n.name)
        stack.extend(n.children())
    return names


def _is_member(e):
    from tinytrace.lang.btftypes import BtfMember
    return isinstance(e.field, BtfMember)


def _user(ty):
    """Whether a pointer (or struct) lives in the traced process's memory."""
    if isinstance(ty, PtrT):
        return ty.user
    return getattr(ty, "user", False)


def _assigned_before_use(probe):
    """Variables whose first mention is a plain assignment at the top level of the probe
    (so every path assigns them before any read)."""
    seen = set()
    first = set()
    if probe.pred is not None:
        for n in ast.walk(probe.pred):
            if isinstance(n, ast.Var):
                seen.add(n.name)
    for s in probe.body.stmts:
        if isinstance(s, ast.Assign) and s.op == "=" and isinstance(s.target, ast.Var):
            name = s.target.name
            mentioned = set(n.name for n in ast.walk(s.value) if isinstance(n, ast.Var))
            if name not in seen and name not in mentioned:
                first.add(name)
            seen.update(mentioned)
            seen.add(name)
            continue
        for n in ast.walk(s):
            if isinstance(n, ast.Var):
                seen.add(n.name)
    return first


def _describe_stmt(s):
    if isinstance(s, ast.Assign):
        t = s.target
        name = "$" + t.name if isinstance(t, ast.Var) else "@" + t.name
        return "the assignment to %s" % name
    if isinstance(s, ast.ExprStmt) and isinstance(s.expr, ast.Call):
        return "%s()" % s.expr.name
    return "this statement"


def _memory_pointer_size():
    """Bytes of a pointer read from memory (``argv[i]``): the kernel's word."""
    try:
        from tinytrace.kernel import arch
        return arch.kernel_long_size()
    except Exception:
        return 8
