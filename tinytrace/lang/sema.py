"""Semantic analysis: names, types and rules, over the tree the parser built.

What it does, in order:

1. Resolve every probe name through its provider into concrete targets (wildcards
   expanded, unknown names answered with "did you mean").
2. Type every expression, in rounds: map values and variables get the join of everything
   assigned to them anywhere in the program, so a map read in one probe may be written in a
   later one.  Rounds repeat until no type changes; a last round reports what is still
   unknown (a map that is never assigned, a variable read before its assignment).
3. Check the rules: builtins available in each probe's providers, aggregation calls only as
   map values, function arguments, string comparisons, unroll counts, loop jumps...
4. Rewrite what later passes should not see: positional parameters become literals,
   constant integer expressions are folded.

Results for code generation: ``node.ty`` on every expression, ``Var.info`` (a ``VarInfo``),
``MapRef.info`` (a ``MapInfo``), ``AttachPoint.targets``, ``Probe.used`` (provider builtins
and the record fields read), and ``Program.maps``.
"""
from tinytrace.lang import ast
from tinytrace.lang import probes as providers
from tinytrace.lang.builtins import AGGREGATIONS, BUILTINS, DEFAULT_STACK_DEPTH, FUNCTIONS
from tinytrace.lang.source import LangError
from tinytrace.lang.suggest import hint
from tinytrace.lang.types import (
    BOOL, INT64, UINT64, UNKNOWN, VOID, ArrayT, CStructT, IntT, OpaqueT, PtrT, RecordT,
    StructT, StrT, TupleT, common_int, contains_unknown, join, literal_type, parse_typename,
    promote, stack_type, with_user)

MAX_ROUNDS = 8
UNROLL_MAX = 100
READABLE_AGGS = frozenset(("count", "sum", "min", "max", "avg"))


def agg_read_type(agg):
    """The type of an aggregation read in a probe: its value summed over the CPUs."""
    if agg.agg == "count":
        return UINT64
    if agg.agg == "avg":
        return INT64
    arg = agg.arg if agg.arg is not None else INT64
    return IntT(64, arg.signed)


class VarInfo:
    __slots__ = ("name", "ty", "loc", "slot")

    def __init__(self, name, loc):
        self.name = name
        self.ty = UNKNOWN
        self.loc = loc
        self.slot = None  # codegen's storage

    def __repr__(self):
        return "VarInfo($%s: %s)" % (self.name, self.ty)


class MapInfo:
    """One global map.  ``key`` is None for ``@m`` without keys, else the key type (a
    TupleT when written ``@m[a, b]``, with ``nkeys`` = 2)."""
    __slots__ = ("name", "key", "nkeys", "value", "loc", "key_loc", "value_loc", "assigned",
                 "read", "whole_ops", "deleted", "index", "bound")

    def __init__(self, name, loc):
        self.name = name
        self.key = UNKNOWN
        self.nkeys = None
        self.value = UNKNOWN
        self.loc = loc
        self.key_loc = None
        self.value_loc = None
        self.assigned = False
        self.read = False
        self.whole_ops = set()   # print/clear/zero applied to the whole map
        self.deleted = False
        self.index = 0
        self.bound = None        # the existing kernel map this one is (Env.bind_map)

    @property
    def display(self):
        return "@" + self.name

    @property
    def keyless(self):
        return self.nkeys == 0

    def __repr__(self):
        return "MapInfo(@%s[%s] = %s)" % (self.name, self.key, self.value)


def _bind(info, kernel_map, loc):
    """A map the embedding bound to an existing kernel map (``Env.bind_map``): its types
    are fixed (unsigned integers of the map's key and value sizes) and it counts as
    assigned, since whoever made it fills it."""
    info.bound = kernel_map
    info.nkeys = 1
    info.key = IntT(kernel_map.key_size * 8, False)
    info.value = IntT(kernel_map.value_size * 8, False)
    info.key_loc = info.value_loc = loc
    info.assigned = True


def _loc_text(loc):
    return "%d:%d" % loc if loc else "?"


class Sema:
    def __init__(self, program, env):
        self.prog = program
        self.env = env
        self.maps = {}
        self.final = False
        self.changed = False
        self.probe = None
        self.declared = None     # variables assigned so far in this round (textual order)
        self.loop_depth = 0
        self.used = None
        self.cdefs = None        # clayout.Layouts of the script's C definitions

    # -- driver -----------------------------------------------------------------------------
    def run(self):
        self.apply_config()
        if self.prog.cdefs:
            from tinytrace.lang import clayout
            self.cdefs = clayout.Layouts(self.prog.cdefs, self.env)
        self.check_enumerators()
        self.resolve_probes()
        for _ in range(MAX_ROUNDS):
            self.changed = False
            self.round()
            if not self.changed:
                break
        self.final = True
        self.round()
        self.finish()
        return self.prog

    def check_enumerators(self):
        """A script's enum constant may not take the name of a builtin (it would hide
        ``pid`` or ``arg0`` in every probe); it does hide a kernel (BTF) enum constant."""
        if not self.prog.enumerators:
            return
        names = set(BUILTINS)
        for pname in providers.names():
            if pname not in providers.ALIASES:
                names.update(providers.find(pname).builtin_names())
        for name, (_, loc) in self.prog.enumerators.items():
            if name in names:
                raise LangError("enumerator '%s' has the name of a builtin; rename it" % name,
                                loc)

    def round(self):
        for probe in self.prog.probes:
            self.probe = probe
            self.declared = set()
            self.loop_depth = 0
            self.used = {}
            if probe.pred is not None:
                probe.pred = self.cond(probe.pred, "the predicate")
            self.block(probe.body)
            probe.used = self.used

    def finish(self):
        for m in self.maps.values():
            if m.value is UNKNOWN or not m.assigned:
                raise LangError("map @%s is used but never assigned a value" % m.name, m.loc)
        for i, name in enumerate(sorted(self.maps)):
            self.maps[name].index = i
        self.prog.maps = self.maps
        for probe in self.prog.probes:
            self._group_targets(probe)

    def _group_targets(self, probe):
        """Split a probe's targets into groups that can share one program: same provider
        and same ``group_key`` (the layout of what the program reads)."""
        by_key = {}
        order = []
        for ap in probe.points:
            for t in ap.targets:
                key = (ap.provider.name, ap.provider.group_key(t, probe.used))
                if key not in by_key:
                    by_key[key] = (ap, [])
                    order.append(key)
                by_key[key][1].append(t)
        probe.groups = [by_key[k] for k in order]

    def apply_config(self):
        from tinytrace.lang.config import ConfigError
        for name, value, loc in getattr(self.prog, "config", ()):
            try:
                self.env.settings.apply(name, value)
            except ConfigError as e:
                raise LangError(str(e), loc)

    # -- probe names -----------------------------------------------------------------------
    def resolve_probes(self):
        seen = {}
        for probe in self.prog.probes:
            for ap in probe.points:
                parts = providers.split_name(ap.text)
                prov = providers.find(parts[0])
                if prov is None:
                    raise LangError("unknown probe type '%s'%s" % (
                        parts[0], hint(parts[0], providers.names())), ap.loc)
                ap.provider = prov
                ap.spec = prov.parse(parts[1:], ap.loc)
                ap.targets = prov.expand(ap.spec, self.env, ap.loc)
                if prov.name in ("BEGIN", "END"):
                    if prov.name in seen:
                        raise LangError("only one %s probe is allowed (the first is at %s)"
                                        % (prov.name, _loc_text(seen[prov.name])), ap.loc)
                    seen[prov.name] = ap.loc

    # -- statements -------------------------------------------------------------------------
    def block(self, block):
        for stmt in block.stmts:
            self.stmt(stmt)

    def stmt(self, s):
        if isinstance(s, ast.ExprStmt):
            e = s.expr
            if isinstance(e, ast.Call):
                if e.name in AGGREGATIONS:
                    raise LangError("%s() must be assigned to a map, e.g. @name = %s(...)"
                                    % (e.name, e.name), e.loc)
                s.expr = self.call(e, statement=True)
            elif isinstance(e, ast.IncDec):
                s.expr = self.expr(e)
            else:
                raise LangError("this statement has no effect (assign it to a $variable or "
                                "@map, or print it)", e.loc)
        elif isinstance(s, ast.Assign):
            self.assign(s)
        elif isinstance(s, ast.If):
            s.cond = self.cond(s.cond, "the 'if' condition")
            self.block(s.then)
            if isinstance(s.orelse, ast.If):
                self.stmt(s.orelse)
            elif s.orelse is not None:
                self.block(s.orelse)
        elif isinstance(s, ast.Unroll):
            s.count = self.expr(s.count)
            if not isinstance(s.count, ast.Int):
                raise LangError("unroll needs a constant count", s.count.loc)
            if not 1 <= s.count.value <= UNROLL_MAX:
                raise LangError("unroll count must be between 1 and %d, not %d"
                                % (UNROLL_MAX, s.count.value), s.count.loc)
            s.times = s.count.value
            self.block(s.body)
        elif isinstance(s, ast.While):
            s.cond = self.cond(s.cond, "the 'while' condition")
            self.loop_depth += 1
            self.block(s.body)
            self.loop_depth -= 1
        elif isinstance(s, ast.For):
            self.for_stmt(s)
        elif isinstance(s, ast.Jump):
            if s.kind in ("break", "continue") and not self.loop_depth:
                raise LangError("'%s' outside of a loop" % s.kind, s.loc)
        elif isinstance(s, ast.Block):
            self.block(s)
        else:
            raise AssertionError(s)

    def for_stmt(self, s):
        """``for ($kv : @map)``: ``$kv`` is (key, value) -- the value an aggregation's total,
        as when it is read in a probe -- and exists only in the body."""
        if s.map is None:
            self._range(s)
            return
        info = self._map(s.map, whole=True)
        info.read = True
        if info.nkeys == 0:
            raise LangError("'for' walks the elements of a map with keys; @%s has none"
                            % info.name, s.map.loc)
        value = info.value
        if value.is_agg:
            if value.agg not in READABLE_AGGS:
                raise LangError("'for' cannot walk @%s: it holds %s, which can only be "
                                "printed (count, sum, min, max and avg maps can be walked)"
                                % (info.name, _describe_value(value)), s.map.loc)
            value = agg_read_type(value)
        if self.final and (info.key is UNKNOWN or value is UNKNOWN):
            raise LangError("map @%s is used but never assigned a value" % info.name,
                            s.map.loc)
        self._loop_body(s, TupleT([info.key, value])
                        if info.key is not UNKNOWN and value is not UNKNOWN else None)

    def _range(self, s):
        """``for ($i : start..end)``: integer bounds, $i an int64."""
        for which in ("start", "end"):
            e = self.expr(getattr(s, which))
            setattr(s, which, e)
            if e.ty is not UNKNOWN and not e.ty.is_int:
                raise LangError("the %s of a for range must be an integer, not %s"
                                % (which, e.ty.describe()), e.loc)
        self._loop_body(s, INT64)

    def _loop_body(self, s, ty):
        name = s.var.name
        outer = self.probe.vars.get(name)
        if name in self.declared:
            raise LangError("the loop variable $%s is already a variable of this probe "
                            "(assigned at %s); choose another name" % (
                                name, _loc_text(outer.loc if outer else None)), s.var.loc)
        if s.var.info is None:
            s.var.info = VarInfo(name, s.var.loc)
        loop = s.var.info
        if ty is not None:
            self._join_var(loop, ty, s.var.loc)
        s.var.ty = loop.ty
        self.probe.vars[name] = loop
        self.declared.add(name)
        self.loop_depth += 1
        try:
            self.block(s.body)
        finally:
            self.loop_depth -= 1
            self.declared.discard(name)
            if outer is not None:       # a variable of the same name after the loop
                self.probe.vars[name] = outer
            else:
                del self.probe.vars[name]

    def assign(self, s):
        target = s.target
        value = s.value
        if s.op != "=":
            self._compound(s)
            return
        if isinstance(target, ast.Var):
            s.value = value = self.expr(value)
            self._check_storable(value.ty, value.loc, "assign")
            info = self._var(target, define=True)
            self._join_var(info, value.ty, value.loc)
            target.ty = info.ty
            return
        # map assignment
        if isinstance(value, ast.Call) and value.name in AGGREGATIONS:
            s.value = value = self.agg_call(value)
        else:
            s.value = value = self.expr(value)
            self._check_storable(value.ty, value.loc, "assign")
        info = self._map(target, write=True)
        self._join_map_value(info, value.ty, value.loc)
        target.ty = info.value

    def _compound(self, s):
        target = s.target
        s.value = value = self.expr(s.value)
        ty = self._int_target(target, s.op, s.loc)
        if ty is UNKNOWN or value.ty is UNKNOWN:
            return
        if not value.ty.is_int:
            raise LangError("'%s' needs an integer on the right, not %s"
                            % (s.op, value.ty.describe()), value.loc)
        if s.op in ("/=", "%=") and isinstance(value, ast.Int) and value.value == 0:
            raise LangError("division by zero", value.loc)

    def _int_target(self, target, op, loc):
        """Type of the variable or map element updated in place by ``op`` (+=, ++ ...)."""
        if isinstance(target, ast.Var):
            ty = self._var(target, define=False).ty
        else:
            info = self._map(target, write=True)
            if info.value is UNKNOWN:
                self._join_map_value(info, INT64, loc)  # `@x++` makes an integer map
            ty = info.value
            if ty.is_agg:
                raise LangError("'%s' cannot update the aggregation @%s; assign a new %s() "
                                "instead" % (op, info.name, ty.agg), loc)
        if ty is not UNKNOWN and not (ty.is_int or isinstance(ty, PtrT)):
            raise LangError("'%s' needs an integer, not %s" % (op, ty.describe()), loc)
        target.ty = ty
        return ty

    # -- variables and maps ----------------------------------------------------------------
    def _var(self, node, define):
        info = self.probe.vars.get(node.name)
        if info is None:
            if not define:
                raise LangError("variable $%s is used before it is assigned" % node.name,
                                node.loc)
            info = VarInfo(node.name, node.loc)
            self.probe.vars[node.name] = info
        if define:
            self.declared.add(node.name)
        elif node.name not in self.declared:
            raise LangError("variable $%s is used before it is assigned" % node.name,
                            node.loc)
        node.info = info
        return info

    def _join_var(self, info, ty, loc):
        new = join(info.ty, ty)
        if new is None:
            raise LangError("type mismatch for $%s: assigning %s, but it holds %s (assigned "
                            "at %s)" % (info.name, ty.describe(), info.ty.describe(),
                                        _loc_text(info.loc)), loc)
        if new != info.ty:
            info.ty = new
            self.changed = True

    def _map(self, node, write=False, whole=False):
        info = self.maps.get(node.name)
        if info is None:
            info = MapInfo(node.name, node.loc)
            self.maps[node.name] = info
            bound = getattr(self.env, "bound_maps", {}).get(node.name)
            if bound is not None:
                _bind(info, bound, node.loc)
        node.info = info
        if info.bound is not None and not whole and len(node.keys) != 1:
            raise LangError("@%s is an existing map with one %d-byte integer key; use it as "
                            "@%s[key]" % (node.name, info.bound.key_size, node.name),
                            node.loc)
        if write:
            info.assigned = True
        if whole:
            node.ty = info.value
            return info
        nkeys = len(node.keys)
        if info.nkeys is None:
            info.nkeys = nkeys
            info.key_loc = node.loc
            if nkeys == 0:
                info.key = None
        elif info.nkeys != nkeys:
            raise LangError("@%s is used with %s here but with %s at %s" % (
                node.name, _nkeys(nkeys), _nkeys(info.nkeys), _loc_text(info.key_loc)),
                node.loc)
        if nkeys:
            for i, k in enumerate(node.keys):
                node.keys[i] = self.expr(k)
                self._check_storable(node.keys[i].ty, node.keys[i].loc, "key")
            if nkeys == 1:
                kty = node.keys[0].ty
            else:
                kty = TupleT([k.ty for k in node.keys])
            node.key_ty = kty
            if not contains_unknown(kty):
                new = join(info.key, kty)
                if info.bound is not None:
                    # an existing map's key type is fixed: any integer converts to it
                    if new is None or new.size > info.key.size:
                        raise LangError("@%s is an existing map whose keys are %s; this key "
                                        "is %s" % (node.name, info.key.describe(),
                                                   kty.describe()), node.loc)
                    new = info.key
                if new is None:
                    raise LangError("@%s is used with a key of type %s here but %s at %s" % (
                        node.name, kty.describe(), info.key.describe(),
                        _loc_text(info.key_loc)), node.loc)
                if new != info.key:
                    info.key = new
                    self.changed = True
        node.ty = info.value
        return info

    def _join_map_value(self, info, ty, loc):
        if contains_unknown(ty):
            return
        if info.bound is not None:
            if not (ty.is_int or isinstance(ty, PtrT)):
                raise LangError("@%s is an existing map whose values are %s; it cannot hold "
                                "%s" % (info.name, info.value.describe(),
                                        _describe_value(ty)), loc)
            return
        new = join(info.value, ty)
        if new is None:
            raise LangError("type mismatch for @%s: assigning %s, but it holds %s (assigned "
                            "at %s)" % (info.name, _describe_value(ty),
                                        _describe_value(info.value),
                                        _loc_text(info.value_loc)), loc)
        if new != info.value:
            if info.value is UNKNOWN:
                info.value_loc = loc
            info.value = new
            self.changed = True

    def _check_storable(self, ty, loc, what):
        if ty is UNKNOWN or contains_unknown(ty):
            return
        if ty is VOID:
            raise LangError("this expression has no value", loc)
        if isinstance(ty, (RecordT, StructT)):
            raise LangError("a whole struct (%s) cannot be stored; pick a field" %
                            ty.describe(), loc)
        if isinstance(ty, ArrayT) and what == "key":
            return
        if isinstance(ty, TupleT):
            for e in ty.elems:
                if isinstance(e, TupleT):
                    raise LangError("nested tuples are not supported", loc)
                self._check_storable(e, loc, what)

    # -- conditions -------------------------------------------------------------------------
    def cond(self, e, what):
        e = self.expr(e)
        ty = e.ty
        if ty is UNKNOWN:
            return e
        if not (ty.is_int or isinstance(ty, PtrT)):
            raise LangError("%s must be an integer, not %s" % (what, ty.describe()), e.loc)
        return e

    # -- expressions ------------------------------------------------------------------------
    def expr(self, e):
        method = getattr(self, "_e_" + type(e).__name__)
        return method(e)

    def _e_Int(self, e):
        if not isinstance(e.ty, PtrT):     # uaddr() results stay typed pointers
            e.ty = literal_type(e.value)
        if e.value < -(1 << 63):
            raise LangError("number does not fit in 64 bits", e.loc)
        return e

    def _e_Str(self, e):
        e.ty = StrT(len(e.value.encode("utf-8", "surrogateescape")) + 1)
        return e

    def _e_PosParam(self, e):
        params = self.env.params
        if e.index == 0:
            return self._e_Int(ast.Int(len(params), e.loc))
        if e.index > len(params):
            return self._e_Int(ast.Int(0, e.loc))  # bpftrace: a missing parameter is 0
        text = params[e.index - 1]
        value = _parse_int(text)
        if value is None:
            raise LangError("$%d is '%s', which is not a number; use str($%d) for text"
                            % (e.index, text, e.index), e.loc)
        return self._e_Int(ast.Int(value, e.loc))

    def _e_Builtin(self, e, bare=True):
        name = e.name
        ty = BUILTINS.get(name)
        if name == "curtask":
            ty = self.env.task_type() or ty
        elif name in ("kstack", "ustack") and self.env.settings.stack_mode != "bpftrace":
            ty = stack_type(name == "ustack", DEFAULT_STACK_DEPTH, self.env.settings.stack_mode)
        if ty is not None:
            if name == "cpid" and self.env.cpid is None:
                raise LangError("cpid is only available with -c COMMAND", e.loc)
            if name == "probe":
                self.used["probe"] = True
            e.ty = ty
            return e
        # A provider builtin: every target of every attach point of the probe must have it.
        if name == "ctx" and self._iterating():
            # an iterator's context: its members are read as args' are (the bpftrace name)
            for ap in self.probe.points:
                for t in ap.targets:
                    t.info = ap.provider.builtin_type("ctx", t, self.env)
            e.name = name = "args"
            used = self.used.setdefault("args", set())
            if bare:
                used.add("*")
            e.ty = self.probe.points[0].targets[0].info
            return e
        found = None
        for ap in self.probe.points:
            if name not in ap.provider.builtin_names():
                found = None
                break
            for t in ap.targets:
                ty = ap.provider.builtin_type(name, t, self.env)
                if ty is None:
                    raise LangError("%s is not available in %s" % (name, t.name), e.loc)
                if name == "args":
                    t.info = ty
                if found is None:
                    found = ty
            if found is None:
                break
        if found is None and bare and name in self.prog.enumerators:
            return self._e_Int(ast.Int(self.prog.enumerators[name][0], e.loc))
        if found is None:
            value = self.env.enum_value(name) if bare else None
            if value is not None:
                return self._e_Int(ast.Int(value, e.loc))
            self._unknown_builtin(e)
        used = self.used.setdefault(name, set())
        if bare and name == "args":
            used.add("*")
        e.ty = found
        return e

    def _iterating(self):
        return all(ap.provider.name == "iter" for ap in self.probe.points)

    def _unknown_builtin(self, e):
        name = e.name
        owners = []
        for pname in providers.names():
            if pname in providers.ALIASES:
                continue
            prov = providers.find(pname)
            if name in prov.builtin_names():
                owners.append(pname)
        if owners:
            here = sorted(set(ap.provider.name for ap in self.probe.points))
            raise LangError("%s is not available in %s probes (it exists in %s probes)" % (
                name, "/".join(here), ", ".join(owners)), e.loc)
        if name in FUNCTIONS:
            raise LangError("%s is a function: write %s(...)" % (name, name), e.loc)
        if name in self.maps:
            raise LangError("unknown identifier '%s'; did you mean '@%s'?" % (name, name),
                            e.loc)
        if name in self.probe.vars:
            raise LangError("unknown identifier '%s'; did you mean '$%s'?" % (name, name),
                            e.loc)
        cands = list(BUILTINS)
        for ap in self.probe.points:
            cands.extend(ap.provider.builtin_names())
        extra = hint(name, cands)
        if not extra and name.isupper() and self.env.btf() is None:
            extra = " (enum constants such as TCP_ESTABLISHED come from the kernel's BTF, " \
                "which this system does not have)"
        raise LangError("unknown identifier '%s'%s" % (name, extra), e.loc)

    def _e_Var(self, e):
        info = self._var(e, define=False)
        e.ty = info.ty
        if info.ty is UNKNOWN and self.final:
            raise LangError("the type of $%s is unknown" % e.name, e.loc)
        return e

    def _e_MapRef(self, e):
        info = self._map(e)
        info.read = True
        if info.value.is_agg:
            if info.value.agg not in READABLE_AGGS:
                raise LangError("@%s holds %s, which can only be printed, not read in a probe "
                                "(count, sum, min, max and avg can be read)"
                                % (e.name, _describe_value(info.value)), e.loc)
            e.ty = agg_read_type(info.value)
        if info.value is UNKNOWN and self.final:
            raise LangError("map @%s is used but never assigned a value" % e.name, e.loc)
        return e

    def _e_Tuple(self, e):
        for i, x in enumerate(e.elems):
            e.elems[i] = self.expr(x)
            self._check_storable(e.elems[i].ty, e.elems[i].loc, "tuple")
        e.ty = TupleT([x.ty for x in e.elems])
        return e

    def _e_IncDec(self, e):
        e.ty = self._int_target(e.target, e.op, e.loc)
        return e

    def _e_Unop(self, e):
        e.operand = x = self.expr(e.operand)
        ty = x.ty
        op = e.op
        if ty is UNKNOWN:
            e.ty = UNKNOWN if op != "!" else BOOL
            return e
        if op == "!":
            if not (ty.is_int or isinstance(ty, PtrT)):
                raise LangError("'!' needs an integer, not %s" % ty.describe(), e.loc)
            if isinstance(x, ast.Int):
                return self._e_Int(ast.Int(0 if x.value else 1, e.loc))
            e.ty = BOOL
            return e
        if op in ("-", "~"):
            if not ty.is_int:
                raise LangError("'%s' needs an integer, not %s" % (op, ty.describe()), e.loc)
            rty = promote(ty)
            if isinstance(x, ast.Int):
                v = -x.value if op == "-" else ~x.value
                return self._e_Int(ast.Int(rty.wrap(v), e.loc))
            e.ty = rty
            return e
        if op == "*":
            if not isinstance(ty, PtrT):
                raise LangError("'*' needs a pointer, not %s" % ty.describe(), e.loc)
            if isinstance(ty.pointee, StructT):
                e.ty = ty.pointee      # the struct itself: stands for its address
                return e
            if ty.pointee is None or not (ty.pointee.is_int or isinstance(ty.pointee, PtrT)):
                raise LangError("cannot dereference %s; cast it to an integer pointer first, "
                                "e.g. *(uint64 *)p" % ty.describe(), e.loc)
            e.ty = ty.pointee
            return e
        if op == "&":
            raise LangError("taking an address with '&' is not supported", e.loc)
        raise AssertionError(op)

    def _e_Binop(self, e):
        e.left = lhs = self.expr(e.left)
        e.right = r = self.expr(e.right)
        op = e.op
        lt, rt = lhs.ty, r.ty
        if op in ("&&", "||"):
            for side in (lhs, r):
                if side.ty is not UNKNOWN and not (side.ty.is_int or isinstance(side.ty, PtrT)):
                    raise LangError("'%s' needs integers, not %s" % (op, side.ty.describe()),
                                    side.loc)
            if isinstance(lhs, ast.Int) and isinstance(r, ast.Int):
                v = (lhs.value and r.value) if op == "&&" else (lhs.value or r.value)
                return self._e_Int(ast.Int(1 if v else 0, e.loc))
            e.ty = BOOL
            return e
        if lt is UNKNOWN or rt is UNKNOWN:
            e.ty = BOOL if op in _COMPARISONS else UNKNOWN
            return e
        if isinstance(lt, StrT) or isinstance(rt, StrT):
            if op not in ("==", "!="):
                raise LangError("strings can only be compared with == and != (not '%s')" % op,
                                e.loc)
            if not (isinstance(lt, StrT) and isinstance(rt, StrT)):
                other = rt if isinstance(lt, StrT) else lt
                raise LangError("cannot compare a string with %s" % other.describe(), e.loc)
            if isinstance(lhs, ast.Str) and isinstance(r, ast.Str):
                same = lhs.value == r.value
                return self._e_Int(ast.Int(int(same == (op == "==")), e.loc))
            e.opty = lt if lt.size >= rt.size else rt
            e.ty = BOOL
            return e
        if isinstance(lt, OpaqueT) or isinstance(rt, OpaqueT):
            if op in ("==", "!=") and lt == rt and lt.scalar:
                e.opty = lt
                e.ty = BOOL
                return e
            raise LangError("cannot use '%s' on %s and %s" % (op, lt.describe(), rt.describe()),
                            e.loc)
        lptr, rptr = isinstance(lt, PtrT), isinstance(rt, PtrT)
        if not (lt.is_int or lptr) or not (rt.is_int or rptr):
            bad = lhs if not (lt.is_int or lptr) else r
            raise LangError("'%s' needs integers, not %s" % (op, bad.ty.describe()), bad.loc)
        if (lptr or rptr) and op in ("+", "-") and not (lptr and rptr):
            e.opty = UINT64
            e.ty = lt if lptr else rt
            if rptr and op == "-":
                raise LangError("cannot subtract a pointer from an integer", e.loc)
            return e
        cty = common_int(lt if not lptr else UINT64, rt if not rptr else UINT64)
        e.opty = cty
        if op in ("<<", ">>"):
            cty = promote(lt if not lptr else UINT64)
            e.opty = cty
        if op in ("/", "%") and isinstance(r, ast.Int) and r.value == 0:
            raise LangError("division by zero", r.loc)
        if op in _COMPARISONS:
            e.ty = BOOL
        else:
            e.ty = cty
        if isinstance(lhs, ast.Int) and isinstance(r, ast.Int):
            folded = _fold(op, cty, lhs.value, r.value)
            if folded is not None:
                return self._e_Int(ast.Int(e.ty.wrap(folded), e.loc))
        return e

    def _e_Ternary(self, e):
        e.cond = self.cond(e.cond, "the condition of '?:'")
        e.then = a = self.expr(e.then)
        e.orelse = b = self.expr(e.orelse)
        at, bt = a.ty, b.ty
        if at is UNKNOWN or bt is UNKNOWN:
            e.ty = at if bt is UNKNOWN else bt
            return e
        if at.is_int and bt.is_int:
            e.ty = common_int(at, bt)
        else:
            j = join(at, bt)
            if j is None or j is VOID:
                raise LangError("the two results of '?:' have different types (%s and %s)"
                                % (at.describe(), bt.describe()), e.loc)
            e.ty = j
        if isinstance(e.cond, ast.Int):
            chosen = a if e.cond.value else b
            if isinstance(chosen, ast.Int) and e.ty.is_int:
                return self._e_Int(ast.Int(e.ty.wrap(chosen.value), e.loc))
        return e

    def _e_Field(self, e):
        base = e.expr
        if isinstance(base, ast.Builtin) and (base.name == "args" or (
                base.name == "ctx" and self._iterating())):   # an iterator's context
            return self._args_field(e)
        e.expr = base = self.expr(base)
        ty = base.ty
        if ty is UNKNOWN:
            e.ty = UNKNOWN
            return e
        if isinstance(ty, TupleT):
            if e.arrow:
                raise LangError("use '.' to index a tuple, not '->'", e.loc)
            if not e.name.isdigit():
                raise LangError("tuples are indexed by number ($t.0), not '%s'" % e.name,
                                e.loc)
            i = int(e.name)
            if i >= len(ty.elems):
                raise LangError("tuple index %d is out of range (the tuple has %d elements)"
                                % (i, len(ty.elems)), e.loc)
            e.field = i
            e.ty = ty.elems[i]
            return e
        st = None
        if isinstance(ty, PtrT) and isinstance(ty.pointee, StructT):
            st = ty.pointee
        elif isinstance(ty, StructT):
            st = ty
        if st is not None:
            return self._struct_member(e, st)
        if isinstance(ty, PtrT):
            raise LangError("%s points to no struct; cast it first, e.g. "
                            "((struct task_struct *)p)->pid" % ty.describe(), e.loc)
        raise LangError("%s has no fields" % ty.describe(), e.loc)

    def _struct_member(self, e, st):
        from tinytrace.lang import btftypes
        if isinstance(st, CStructT):
            if st.layout.decl is None:
                raise LangError("%s is not defined (neither in the script nor in the kernel's "
                                "BTF), so its members are unknown" % st.describe(), e.loc)
            m = self.cdefs.member(st, e.name)
            if m is None:
                raise LangError("%s has no member named '%s'%s" % (
                    st.describe(), e.name, hint(e.name, self.cdefs.member_names(st))), e.loc)
            e.field = m
            e.ty = m.ty
            return e
        btf = self.env.btf()
        if btf is None or not st.size:
            raise LangError("%s is not known (no BTF for it)" % st.describe(), e.loc)
        m = btftypes.member(btf, st, e.name)
        if m is None:
            raise LangError("%s has no member named '%s'%s" % (
                st.describe(), e.name, hint(e.name, btftypes.member_names(btf, st))), e.loc)
        if m.ty is None:
            raise LangError("%s.%s has a type the language cannot read" % (
                st.describe(), e.name), e.loc)
        e.field = m
        e.ty = m.ty
        return e

    def _args_field(self, e):
        base = e.expr
        self._e_Builtin(base, bare=False)
        rec_types = []
        for ap in self.probe.points:
            for t in ap.targets:
                rec_types.append((t, t.info))
        name = e.name
        first = None
        for t, rec in rec_types:
            f = rec.fields.get(name) if isinstance(rec, RecordT) else None
            why = getattr(rec, "why", None)
            if f is None and why:
                raise LangError("%s: args->%s %s" % (t.name, name, why), e.loc)
            if f is None:
                cands = [n for n in rec.fields if not n.startswith("common_")] \
                    if isinstance(rec, RecordT) else []
                raise LangError("%s has no field named '%s'%s" % (
                    t.name, name, hint(name, cands)), e.loc)
            if first is None:
                first = (t, f)
            elif f.ty != first[1].ty or f.data_loc != first[1].data_loc:
                raise LangError("args->%s is %s in %s but %s in %s" % (
                    name, first[1].ty.describe(), first[0].name, f.ty.describe(), t.name),
                    e.loc)
        self.used.setdefault("args", set()).add(name)
        e.field = first[1]
        ty = first[1].ty
        if first[1].data_loc:
            ty = StrT(self.env.strlen)
        e.ty = ty
        return e

    def _e_Index(self, e):
        e.expr = base = self.expr(e.expr)
        e.index = idx = self.expr(e.index)
        ty = base.ty
        if ty is UNKNOWN or idx.ty is UNKNOWN:
            e.ty = UNKNOWN
            return e
        if not idx.ty.is_int:
            raise LangError("an index must be an integer, not %s" % idx.ty.describe(),
                            idx.loc)
        if isinstance(ty, ArrayT):
            if isinstance(idx, ast.Int) and not 0 <= idx.value < ty.count:
                raise LangError("index %d is out of range (the array has %d elements)"
                                % (idx.value, ty.count), idx.loc)
            e.ty = ty.elem
            return e
        if isinstance(ty, StrT):
            if isinstance(idx, ast.Int) and not 0 <= idx.value < ty.size:
                raise LangError("index %d is out of range (the string buffer has %d bytes)"
                                % (idx.value, ty.size), idx.loc)
            e.ty = IntT(8, True)
            return e
        if isinstance(ty, PtrT):
            if isinstance(ty.pointee, StructT) and ty.pointee.size:
                e.ty = ty.pointee
                return e
            if ty.pointee is None or not (ty.pointee.is_int or isinstance(ty.pointee, PtrT)):
                raise LangError("cannot index %s; cast it to an integer pointer first"
                                % ty.describe(), e.loc)
            e.ty = ty.pointee
            return e
        raise LangError("%s cannot be indexed" % ty.describe(), e.loc)

    def _e_Cast(self, e):
        e.expr = x = self.expr(e.expr)
        ty = parse_typename(e.typename)
        first = e.typename.replace("*", " ").split()[0]
        if ty is None and first in ("struct", "union"):
            ty = self._struct_pointer_type(e)
        elif ty is None and first == "enum":
            ty = self._enum_type(e)
        elif ty is None and self.cdefs is not None and first in self.cdefs.typedefs:
            ty = self.cdefs.typedef_type(first, e.typename.count("*"))
            if ty is None:
                raise LangError("cannot cast to %s (a struct): cast to a pointer, (%s *)"
                                % (first, first), e.loc)
        if ty is None:
            raise LangError("unknown type '%s' in cast" % e.typename, e.loc)
        xt = x.ty
        if xt is UNKNOWN:
            e.ty = ty
            return e
        if isinstance(ty, PtrT):
            if not (xt.is_int or isinstance(xt, PtrT)):
                raise LangError("cannot cast %s to %s" % (xt.describe(), ty.describe()), e.loc)
            user = xt.user if isinstance(xt, PtrT) else self._user_space()
            pointee = ty.pointee
            if isinstance(pointee, StructT):
                pointee = with_user(pointee, user)
            e.ty = PtrT(pointee, user)
            return e
        if not (xt.is_int or isinstance(xt, PtrT)):
            raise LangError("cannot cast %s to %s" % (xt.describe(), ty.describe()), e.loc)
        if isinstance(x, ast.Int):
            e.expr = self._e_Int(ast.Int(ty.wrap(x.value), x.loc))
        e.ty = ty
        return e

    def _enum_type(self, e):
        """``(enum NAME)``: the script's enum, a 4-byte int (or a pointer to one)."""
        words = e.typename.replace("*", " ").split()
        if len(words) != 2:
            raise LangError("expected an enum's name in the cast: (enum NAME)", e.loc)
        ty = None
        if self.cdefs is not None:
            ty = self.cdefs.enum_type(words[1], e.typename.count("*"))
        if ty is None:
            raise LangError("unknown enum %s (define it in the script to cast to it)"
                            % words[1], e.loc)
        return ty

    def _struct_pointer_type(self, e):
        """``(struct NAME *)``: a pointer to a BTF struct."""
        from tinytrace.lang import btftypes
        text = e.typename.replace("*", " * ").split()
        stars = text.count("*")
        name = " ".join(w for w in text[1:] if w != "*")
        if stars != 1:
            raise LangError("casts to a struct need a pointer: (%s %s *)" % (text[0], name),
                            e.loc)
        st = self.script_struct(text[0], name, e.loc)
        if st is not None:
            return PtrT(st, False)
        btf = self.env.btf()
        if btf is None:
            raise LangError("casts to '%s *' need the kernel's BTF (/sys/kernel/btf/vmlinux), "
                            "which this system does not have, or a definition of %s in the "
                            "script" % (" ".join(text[:2]), " ".join(text[:2])), e.loc)
        st = btftypes.find_struct(btf, name)
        if st is None:
            raise LangError("unknown %s %s" % (text[0], name), e.loc)
        return PtrT(st, False)

    def script_struct(self, kind, name, loc):
        """The script's definition of ``struct name`` / ``union name`` (a ``CStructT``), or
        None; it hides the kernel's type of that name."""
        if self.cdefs is None:
            return None
        st = self.cdefs.struct(kind, name)
        if st is not None and st.layout.decl is None:
            return None          # only declared: the kernel's, if there is one
        if st is not None and st.layout.kind != kind:
            raise LangError("%s is a %s, not a %s" % (name, st.layout.kind, kind), loc)
        return st

    def _user_space(self):
        """Whether an address made from an integer is a process's address: in uprobes and
        USDT probes (their registers and arguments are the process's)."""
        return any(getattr(ap.provider, "user_space", False) for ap in self.probe.points)

    def _e_Call(self, e):
        if e.name in AGGREGATIONS:
            raise LangError("%s() must be assigned to a map, e.g. @name = %s(...)"
                            % (e.name, e.name), e.loc)
        return self.call(e, statement=False)

    # -- calls ------------------------------------------------------------------------------
    def call(self, e, statement):
        from tinytrace.lang import sema_calls
        return sema_calls.check(self, e, statement)

    def agg_call(self, e):
        from tinytrace.lang import sema_calls
        return sema_calls.check_aggregation(self, e)


_COMPARISONS = frozenset(("==", "!=", "<", "<=", ">", ">="))


def _nkeys(n):
    return "no key" if n == 0 else ("1 key" if n == 1 else "%d keys" % n)


def _describe_value(ty):
    if ty is UNKNOWN:
        return "nothing yet"
    if ty.is_agg:
        return ty.describe()
    return ty.describe()


def _parse_int(text):
    t = text.strip()
    neg = t.startswith("-")
    if neg:
        t = t[1:]
    try:
        if t.lower().startswith("0x"):
            v = int(t[2:], 16)
        elif t.isdigit():
            v = int(t, 10)
        else:
            return None
    except ValueError:
        return None
    return -v if neg else v


def _fold(op, ty, a, b):
    """Constant folding of ``a op b`` in type ``ty`` (None when it must not be folded)."""
    a = ty.wrap(a)
    b = ty.wrap(b)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op in ("/", "%"):
        if b == 0:
            return None
        q = abs(a) // abs(b)
        if (a < 0) != (b < 0):
            q = -q
        return q if op == "/" else a - q * b
    if op == "&":
        return a & b
    if op == "|":
        return a | b
    if op == "^":
        return a ^ b
    if op == "<<":
        return a << (b & (ty.bits - 1))
    if op == ">>":
        return a >> (b & (ty.bits - 1))
    if op == "==":
        return int(a == b)
    if op == "!=":
        return int(a != b)
    if op == "<":
        return int(a < b)
    if op == "<=":
        return int(a <= b)
    if op == ">":
        return int(a > b)
    if op == ">=":
        return int(a >= b)
    return None


def analyse(program, env):
    """Run semantic analysis on ``program`` (an ``ast.Program``) in place."""
    return Sema(program, env).run()
