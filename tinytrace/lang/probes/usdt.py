"""usdt:BINARY:PROVIDER:NAME and usdt:BINARY:NAME (alias U:): statically defined probes
(``.note.stapsdt``) of programs and libraries -- python's ``function__entry``, postgres's
``query__start``...

BINARY as for uprobes; with ``-p PID`` it may be left empty (``usdt::python:gc__start``)
to search every file the process maps.  PROVIDER and NAME may be wildcards.  One probe
name can sit at several places in a file, each with its own argument operands, so each
location gets a program of its own unless the arguments read are loaded the same way.
Semaphores (probes that only fire while a counter in the process is raised) are raised by
the kernel (4.20+) or, for ``-p``, through ``/proc/PID/mem`` (``tinytrace.kernel.usdt_attach``).

``arg0`` ... ``arg11`` are the probe's arguments as the note describes them (a register,
memory at a register plus a displacement, a constant, a global), sign-extended when the
note says signed (with shifts: the sign-extending load needs Linux 6.6).
"""
from tinytrace.lang.probes.base import Provider, Target, has_wildcard
from tinytrace.lang.source import LangError
from tinytrace.lang.types import INT64, UINT64

MAX_ARGS = 12


class Usdt(Provider):
    prog_type = "kprobe"
    user_space = True
    form = "usdt:BINARY:PROVIDER:NAME or usdt:BINARY:NAME"

    def parse(self, parts, loc):
        if len(parts) == 2 and parts[1]:
            return (parts[0], None, parts[1])
        if len(parts) == 3 and parts[1] and parts[2]:
            return tuple(parts)
        raise LangError("usdt probes are written %s" % self.form, loc)

    def expand(self, spec, env, loc):
        from tinytrace.errors import UserError
        from tinytrace.kernel import usdt_attach
        binary, provider, name = spec
        why = env.uprobes_unavailable()
        if why:
            raise LangError(why, loc)
        pid = env.target_pid
        if binary in ("", "*"):
            if pid is None:
                raise LangError("a usdt probe without a binary needs -p PID (every file the "
                                "process maps is searched)", loc)
            binary = ""
        try:
            locs = usdt_attach.locations(binary, provider, name, pid)
        except (UserError, OSError, ValueError) as e:
            raise LangError(str(getattr(e, "strerror", None) or e), loc)
        if not locs:
            raise LangError(self._not_found(binary, provider, name, pid), loc)
        return [Target(self, "usdt:%s:%s:%s" % (p.path, p.provider, p.name),
                       (p.path, p.provider, p.name), p) for p in locs]

    @staticmethod
    def _not_found(binary, provider, name, pid):
        from tinytrace.kernel import usdt_attach
        from tinytrace.lang.suggest import hint
        where = binary or "process %d" % pid
        try:
            known = usdt_attach.names(binary, pid=pid)
        except Exception:
            known = []
        want = "%s:%s" % (provider, name) if provider else name
        if not known:
            return "usdt probe %s not found: %s has no USDT probes" % (want, where)
        cands = known if provider else [k.split(":", 1)[1] for k in known]
        extra = hint(want, cands) if not has_wildcard(want) else ""
        return "usdt probe %s not found in %s%s (it has %d: %s%s)" % (
            want, where, extra, len(known), ", ".join(known[:4]),
            ", ..." if len(known) > 4 else "")

    def builtin_names(self):
        return tuple("arg%d" % i for i in range(MAX_ARGS))

    def builtin_type(self, name, target, env):
        if not (name.startswith("arg") and name[3:].isdigit()):
            return None
        i = int(name[3:])
        args = _args(target, None)
        if i >= len(args):
            return None
        return INT64 if args[i].signed else UINT64

    def accesses(self, target, env, loc=None):
        from tinytrace.errors import UserError
        from tinytrace.kernel import usdt_attach
        probe = target.info
        try:
            return [usdt_attach.arg_access(a, probe, env.target_pid, i)
                    for i, a in enumerate(_args(target, loc))]
        except (UserError, ValueError) as e:
            raise LangError(str(e), loc)

    def group_key(self, target, used):
        names = sorted(n for n in used if n.startswith("arg"))
        if not names:
            return ()
        # locations whose arguments are loaded the same way share a program; an argument
        # that needs the process's load bias is decided at code generation
        args = _args(target, None)
        key = []
        for n in names:
            i = int(n[3:])
            key.append(args[i].text if i < len(args) else None)
        return (target.info.path,) + tuple(key)

    def emit_builtin(self, gen, name):
        i = int(name[3:])
        acc = self.accesses(gen.targets[0], gen.comp.env, gen.b.loc)
        if i >= len(acc):
            raise LangError("%s has only %d arguments" % (gen.targets[0].name, len(acc)),
                            gen.b.loc)
        return emit_access(gen, acc[i])

    def attach(self, session, prog, targets, env, cookies=None):
        from tinytrace.kernel import usdt_attach
        return usdt_attach.attach_all(lambda p: prog, [t.info for t in targets],
                                      pid=env.target_pid)

    def list(self, pattern, env):
        import fnmatch
        from tinytrace.lang.probes import split_name
        parts = split_name(pattern)
        if len(parts) < 2 or has_wildcard(parts[1]):
            return []
        try:
            from tinytrace.kernel import usdt_attach, uprobes
            path = uprobes.resolve(parts[1], env.target_pid) if parts[1] else ""
            names = usdt_attach.names(path, pid=env.target_pid)
        except Exception:
            return []
        out = []
        for n in names:
            full = "usdt:%s:%s" % (path or parts[1], n)
            if fnmatch.fnmatchcase(full, pattern):
                out.append(full)
        return out


def _args(target, loc):
    from tinytrace.errors import UserError
    try:
        return target.info.args
    except (UserError, ValueError) as e:
        raise LangError(str(e), loc)


def emit_access(gen, acc):
    """A register holding one USDT argument, from its ``usdt_attach.arg_access`` form."""
    b = gen.b
    kind = acc[0]
    r = b.vreg()
    if kind == "const":
        _, value, size, signed = acc
        b.movi(r, value)
        _extend(b, r, size, signed)
        return r
    if kind == "reg":
        _, off, size, signed = acc
        b.load(r, gen.ctx, off, size)
        _extend(b, r, size, signed)
        return r
    if kind == "mem":
        _, boff, bsize, disp, size, signed = acc
        addr = b.vreg()
        b.load(addr, gen.ctx, boff, bsize)
        if disp:
            _add_const(gen, addr, disp)
    elif kind == "mem_index":
        _, boff, bsize, ioff, isize, scale, disp, size, signed = acc
        addr = b.vreg()
        b.load(addr, gen.ctx, boff, bsize)
        idx = b.vreg()
        b.load(idx, gen.ctx, ioff, isize)
        if scale and scale != 1:
            b.alu("*", idx, imm=scale)
        b.alu("+", addr, src=idx)
        if disp:
            _add_const(gen, addr, disp)
    elif kind == "addr":
        _, address, size, signed = acc
        addr = b.vreg()
        b.movi(addr, address)
    else:
        raise AssertionError(kind)
    tmp = gen.alloc(8)
    b.store_imm(tmp.base, tmp.off, 0, 8)
    b.call(gen.comp.target.read_helper(True, False), gen._ptr(tmp), ("imm", size), addr)
    b.load(r, tmp.base, tmp.off, size)
    _extend(b, r, size, signed)
    return r


def _add_const(gen, reg, value):
    if -(1 << 31) <= value < (1 << 31):
        gen.b.alu("+", reg, imm=value)
    else:
        t = gen.b.vreg()
        gen.b.movi(t, value)
        gen.b.alu("+", reg, src=t)


def _extend(b, r, size, signed):
    if size >= 8:
        return
    if signed:
        b.sign_extend(r, size * 8)
    else:
        b.zero_extend(r, size * 8)
