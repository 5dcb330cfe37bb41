"""The compiler driver: text -> checked tree -> BPF programs, one pass after another.

``check(text, filename, env)`` parses and analyses (no kernel needed beyond tracefs);
``compile_program(src, prog, env)`` generates code for every probe (one program per group
of targets that can share one), allocates registers, checks the 512-byte stack, and
returns a ``Compiled``: the programs, the maps they need and the events they send.
Every ``LangError`` leaves here as a ``SourceError`` pointing into the user's text.
"""
import time

from tinytrace.lang.source import LangError, Source

STACK_LIMIT = 512


def check(text, filename, env):
    """Parse and analyse ``text``; returns (source, program)."""
    from tinytrace.lang.parser import parse
    from tinytrace.lang.sema import analyse
    src = Source(text, filename)
    try:
        prog = parse(text, env.params)
        analyse(prog, env)
    except LangError as err:
        raise src.convert(err)
    return src, prog


class ProgramCode:
    """One BPF program: ``code`` (Insn/Label list over r0-r10, comments are text), where it
    attaches (``provider``, ``targets``), and ``locs`` (slot index -> source location)."""

    def __init__(self, name, probe, ap, targets, code, locs, stack, spills, cookies=None):
        self.cookies = cookies
        self.load_opts = {}     # extra progs.load arguments (expected_attach_type ...)
        self.name = name
        self.probe = probe
        self.ap = ap
        self.provider = ap.provider
        self.targets = targets
        self.code = code
        self.locs = locs
        self.stack = stack
        self.spills = spills
        self.functions = None   # [(slot, name)] when for loops add functions

    @property
    def prog_type(self):
        return self.provider.prog_type

    @property
    def run_at(self):
        return getattr(self.provider, "run_at", None)

    def loc_of_slot(self, slot):
        """The source location of the instruction at ``slot`` (or the nearest before)."""
        best = None
        for s, loc in self.locs:
            if s > slot:
                break
            best = loc
        return best


class Compiled:
    def __init__(self, source, program, env, target):
        self.source = source
        self.program = program
        self.env = env
        self.target = target
        self.start_ns = time.monotonic_ns() if hasattr(time, "monotonic_ns") else \
            int(time.monotonic() * 1e9)
        self.programs = []
        self.maps = {}          # asm name -> MapSpec
        self.events = []
        self.probe_names = {}   # probe id -> name
        self.func_names = {}    # probe id -> what ``func`` is there
        self._probe_ids = {}
        self.scratch_total = 0
        self.zero_size = 0
        self.uses_lost = False
        self.stack_depths = set()   # depths of the stack maps used (layout.stack_depth)

    # -- used by the code generator ---------------------------------------------------------
    def map_spec(self, info):
        from tinytrace.lang.layout import asm_name, user_map_spec
        name = asm_name(info.name)
        spec = self.maps.get(name)
        if spec is None:
            settings = self.env.settings
            spec = user_map_spec(info, settings.max_map_keys, settings.is_lru(info.name))
            self.maps[name] = spec
        return spec

    def add_event(self, kind, arg_types, data, loc, run_at=None):
        from tinytrace.lang.layout import EventSpec
        spec = EventSpec(len(self.events), kind, arg_types, data, loc, run_at)
        self.events.append(spec)
        return spec

    def probe_name_for(self, target):
        pid = self._probe_ids.get(target.name)
        if pid is None:
            from tinytrace.lang.codegen import PROBE_ID_BASE
            if target.provider.ctx_is_record:
                pid = target.provider.event_id(target, self.env)
            else:
                pid = PROBE_ID_BASE + len(self._probe_ids)
            self._probe_ids[target.name] = pid
            self.probe_names[pid] = target.name
            self.func_names[pid] = target.provider.func_name(target)
        return pid

    def kfunc_id(self, name, loc, why):
        """The BTF id of kernel function ``name``; a LangError saying ``why`` when the
        kernel has no BTF or no such function."""
        try:
            from tinytrace.kernel import btf
            t = btf.vmlinux().find(name, "func")
        except Exception:
            t = None
        if t is None:
            raise LangError(why + "; this kernel does not have it", loc)
        return t.id if hasattr(t, "id") else t.tid

    def need_zero(self, size):
        self.zero_size = max(self.zero_size, size)

    # -- results ----------------------------------------------------------------------------
    def internal_maps(self):
        """MapSpecs of the maps the programs use besides the user's."""
        from tinytrace.lang.layout import MapSpec, stack_map_name
        settings = self.env.settings
        out = []
        if self.events:
            if self.target.ringbuf:
                out.append(MapSpec("out", "ringbuf", 0, 0, settings.ringbuf_bytes(),
                                   kernel_name="tt_out"))
            else:
                out.append(MapSpec("out", "perf_event_array", 4, 4, 0, kernel_name="tt_out"))
        if self.scratch_total:
            out.append(MapSpec("scratch", "percpu_array", 4, self.scratch_total, 1,
                               kernel_name="tt_scratch"))
        if self.zero_size:
            out.append(MapSpec("zero", "array", 4, self.zero_size, 1, kernel_name="tt_zero"))
        if self.uses_lost:
            out.append(MapSpec("lost", "percpu_array", 4, 8, 1, kernel_name="tt_lost"))
        for depth in sorted(self.stack_depths):
            out.append(MapSpec(stack_map_name(depth), "stack_trace", 4, 8 * depth,
                               settings.stack_entries(), kernel_name="tt_stacks%d" % depth))
        return out

    @property
    def uses_stacks(self):
        return bool(self.stack_depths)

    def all_maps(self):
        return list(self.maps.values()) + self.internal_maps()

    @property
    def attach_count(self):
        return sum(len(p.targets) for p in self.programs)


def compile_program(src, prog, env, target=None):
    """Generate the BPF programs of an analysed ``prog``; returns a ``Compiled``."""
    from tinytrace.lang.codegen import Target
    if target is None:
        target = Target.probe()
    comp = Compiled(src, prog, env, target)
    try:
        if not target.percpu:
            raise LangError("this kernel has no per-CPU maps (Linux 4.6+), which "
                            "aggregations need", prog.loc)
        # every user map exists even if no program touches it (print/clear from user space)
        for info in prog.maps.values():
            comp.map_spec(info)
        for probe in prog.probes:
            for ap, targets in probe.groups:
                for ts, load_opts in ap.provider.programs(targets, probe.used, comp):
                    p = _compile_one(comp, probe, ap, ts, len(comp.programs))
                    p.load_opts = load_opts
                    comp.programs.append(p)
    except LangError as err:
        raise src.convert(err)
    return comp


def _compile_one(comp, probe, ap, targets, index):
    from tinytrace.lang.codegen import ProgramGen
    from tinytrace.lang.ir import prune
    from tinytrace.lang.regalloc import allocate
    from tinytrace.asm import Label
    gen = ProgramGen(comp, probe, ap, targets, index)
    gen.scratch_base = comp.scratch_total
    code = prune(gen.generate())
    comp.scratch_total += gen.scratch.peak
    frame = gen.stack.peak
    if gen.stack.overflow is not None:
        loc, need = gen.stack.overflow
        raise LangError("the BPF stack would need %d bytes here and the limit is %d: too "
                        "many values are held at once; split this statement or use fewer "
                        "variables" % (need, STACK_LIMIT), loc)
    res = allocate(code, frame)
    stack = frame + 8 * res.spill_slots
    if stack > STACK_LIMIT:
        raise LangError("this probe needs %d bytes of BPF stack (%d for spilled registers) "
                        "and the limit is %d; split it into smaller statements"
                        % (stack, 8 * res.spill_slots, STACK_LIMIT), probe.loc)
    gen.depth = _frame(stack)
    whole = res.code
    spills = res.spill_slots
    # the bodies of for loops: functions after the main one, each allocated on its own;
    # the verifier counts the frames of a call chain together against the 512 bytes
    done = 0
    while done < len(gen.callbacks):
        cb = gen.callbacks[done]
        done += 1
        cb.scratch_base = comp.scratch_total
        cb_code = prune(cb.generate())
        comp.scratch_total += cb.scratch.peak
        cb_res = allocate(cb_code, cb.stack.peak)
        cb_stack = cb.stack.peak + 8 * cb_res.spill_slots
        cb.depth = cb.parent.depth + _frame(cb_stack)
        if cb.stack.overflow is not None or cb.depth > STACK_LIMIT:
            raise LangError("the body of this for loop needs %d bytes of BPF stack, and with "
                            "the %d its callers use that is over the limit of %d; use fewer "
                            "variables in the probe or the loop" % (
                                cb_stack, cb.parent.depth, STACK_LIMIT), cb.loop.loc)
        whole = whole + [Label(cb.label)] + cb_res.code
        spills += cb_res.spill_slots
    final, locs = _finish(whole, comp.source)
    p = ProgramCode(_prog_name(targets[0].name, index), probe, ap, targets, final, locs,
                    stack, spills, gen.cookies)
    if gen.callbacks:
        from tinytrace.asm import layout
        p.functions = layout(final).functions
    return p


def _frame(size):
    """A function's stack as the verifier counts it: rounded up to 32 bytes."""
    return (max(size, 1) + 31) // 32 * 32


def _prog_name(name, index):
    tail = name.split(":")[-1] or name.split(":")[0]
    tail = "".join(c if c.isalnum() or c == "_" else "_" for c in tail)
    return tail[:15] or "tt_prog%d" % index


def _finish(code, source):
    """Comments become text (the source line at each change of location); returns the
    code and the (slot, loc) list."""
    from tinytrace.asm import Insn, Label
    from tinytrace.asm import opcodes as op
    out = []
    locs = []
    slot = 0
    last = None
    for x in code:
        if type(x) is Label:
            out.append(x)
            continue
        loc = x[6]
        comment = None
        if loc is not None and loc != last:
            locs.append((slot, loc))
            text = source.line(loc[0]) or ""
            text = " ".join(text.split())
            if len(text) > 60:
                text = text[:57] + "..."
            comment = "%d:%d %s" % (loc[0], loc[1], text)
            last = loc
        out.append(Insn(x[0], x[1], x[2], x[3], x[4], x[5], comment))
        slot += 2 if x[0] == op.LD_IMM64 else 1
    return out, locs


def dump(src, prog, env, out, target=None):
    """``-d``: the assembly of every program, with the maps it uses; loads nothing."""
    from tinytrace.asm import disassemble
    comp = compile_program(src, prog, env, target)
    for spec in comp.all_maps():
        out.write("; map %s: %s key %d value %d entries %d%s\n" % (
            spec.name, spec.kind, spec.key_size, spec.value_size, spec.max_entries,
            " (existing map, fd %d)" % spec.existing.fd if spec.existing is not None else ""))
    for p in comp.programs:
        names = ", ".join(t.name for t in p.targets[:4])
        if len(p.targets) > 4:
            names += ", ... (%d targets)" % len(p.targets)
        out.write("\n; program %s (%s): %s; %d bytes of stack\n" % (
            p.name, p.prog_type, names, p.stack))
        out.write(disassemble(p.code))
        out.write("\n")
    out.flush()
    return 0
