"""kfunc:FUNCTION and kretfunc:FUNCTION (aliases f:/fentry:, fr:/fexit:): BPF trampolines
on kernel functions, typed by the kernel's BTF.

A kfunc program is loaded for one function (``attach_btf_id``: the function's BTF id), so
every target gets its own program; wildcards (``vfs_*``) are matched against the
functions BTF describes that ftrace can trace (available_filter_functions).  Its context
is the function's arguments, one u64 slot each: ``args.NAME`` (also ``args->NAME``) has
the parameter's C type, so ``args.file->f_pos`` reads through it; ``kretfunc`` adds
``retval`` (the slot after the arguments) and still sees the arguments.  ``func`` is the
function's name.  ``path(p)`` (a ``struct path *``) gives the file's path through the
``d_path`` helper, which the kernel allows in functions such as ``vfs_open`` or
``security_file_permission``.

Needs BTF and BPF trampolines (x86_64 5.5+, arm64 6.0+); where loading a trampoline
program fails, the probe is refused at compile time with one line suggesting a kprobe or a
tracepoint.
"""
from tinytrace.lang.probes.base import Provider, Target, has_wildcard
from tinytrace.lang.probes.kprobe import FUNC
from tinytrace.lang.probes.rawtracepoint import BtfArgs
from tinytrace.lang.source import LangError
from tinytrace.lang.types import INT64, RecordField

_checked = {}


class Kfunc(Provider):
    prog_type = "tracing"
    retprobe = False
    form = "kfunc:FUNCTION"

    def parse(self, parts, loc):
        if len(parts) == 2 and parts[0] and parts[1]:
            raise LangError("kfunc probes on module functions (%s:%s) are not supported; "
                            "use kprobe:%s" % (parts[0], parts[1], parts[1]), loc)
        if len(parts) != 1 or not parts[0]:
            raise LangError("%s probes are written %s" % (self.name, self.form), loc)
        return parts[0]

    def expand(self, spec, env, loc):
        b = env.btf()
        if b is None:
            raise LangError("%s probes need the kernel's BTF (/sys/kernel/btf/vmlinux), which "
                            "this system does not have; use kprobe:%s" % (self.name, spec),
                            loc)
        if has_wildcard(spec):
            names = [n for n, m in env.kernel_functions(spec) if m is None]
            found = [n for n in names if b.func(n) is not None]
            if not found:
                raise LangError("no kernel function BTF describes matches %s" % spec, loc)
        else:
            if b.func(spec) is None:
                from tinytrace.lang.suggest import hint
                from tinytrace.lang.probes.kprobe import _near
                known = env.kernel_function_names() or set()
                raise LangError("the kernel's BTF has no function '%s'%s" % (
                    spec, hint(spec, _near(spec, known))), loc)
            found = [spec]
        why = env.fentry_unavailable(found[0], self.retprobe)
        if why:
            raise LangError("%s:%s: %s" % (self.name, spec, why), loc)
        return [Target(self, "%s:%s" % (self.name, n), (n, b.func(n).id)) for n in found]

    def builtin_names(self):
        return ("args", "func", "retval") if self.retprobe else ("args", "func")

    def builtin_type(self, name, target, env):
        if name == "func":
            return FUNC
        if name == "args":
            return func_args(env, target)
        if name == "retval" and self.retprobe:
            ret = _proto(env, target)[1]
            return ret if ret is not None else INT64
        return None

    def func_name(self, target):
        return target.parts[0]

    def emit_builtin(self, gen, name):
        if name == "func":
            from tinytrace.lang.codegen_builtins import probe_id
            return probe_id(gen)
        if name == "retval":
            params = _proto(gen.comp.env, gen.targets[0])[0]
            r = gen.b.vreg()
            gen.b.load(r, gen.ctx, 8 * len(params), 8)
            ty = self.builtin_type("retval", gen.targets[0], gen.comp.env)
            gen._canonical(r, ty)
            return r
        raise AssertionError(name)

    def programs(self, targets, used, comp):
        attach = "trace_fexit" if self.retprobe else "trace_fentry"
        return [([t], {"expected_attach_type": attach, "attach_btf_id": t.parts[1]})
                for t in targets]

    def attach(self, session, prog, targets, env, cookies=None):
        from tinytrace.kernel import attach
        return [attach.tp_btf(prog, targets[0].parts[0])]

    def list(self, pattern, env):
        return []


class Kretfunc(Kfunc):
    retprobe = True
    form = "kretfunc:FUNCTION"


def _proto(env, target):
    """([(name, type)], return type or None) of the target function, from BTF."""
    from tinytrace.lang import btftypes
    b = env.btf()
    f = b.func(target.parts[0])
    proto = f.type if f is not None else None
    if proto is None:
        return [], None
    params = [(m.name, btftypes.lang_type(b, m.type_id)) for m in proto.params]
    ret = btftypes.lang_type(b, proto.type_id) if proto.type_id else None
    if ret is not None and not ret.scalar:
        ret = None
    return params, ret


def func_args(env, target):
    params, _ = _proto(env, target)
    fields = []
    for i, (name, ty) in enumerate(params):
        if not name or ty is None or ty.size > 8 or not ty.scalar:
            continue
        fields.append(RecordField(name, 8 * i, ty, None, 8))
    return BtfArgs(target.name, fields)


def check_fentry(func_id, retprobe):
    """None when a trampoline program for BTF function ``func_id`` loads, else why not."""
    key = (func_id, retprobe)
    if key in _checked:
        return _checked[key]
    import os
    why = None
    if os.geteuid() == 0:
        from tinytrace.asm import Exit, Mov, R0, link
        from tinytrace.kernel import attach, progs
        try:
            # loading is not enough: arm64 before 6.0 loads trampoline programs and then
            # refuses to attach them (ENOTSUPP)
            with progs.load(link([Mov.Imm(R0, 0), Exit()]), "tracing", "tt_fentry",
                            expected_attach_type="trace_fexit" if retprobe else
                            "trace_fentry", attach_btf_id=func_id) as p:
                attach.tp_btf(p).close()
        except Exception:
            why = ("this kernel cannot attach BPF trampolines (fentry/fexit) to it: a test "
                   "program did not load; use a kprobe or a tracepoint")
    _checked[key] = why
    return why
