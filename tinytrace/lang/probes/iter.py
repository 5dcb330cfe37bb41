"""iter:NAME (alias it:): BPF iterators -- the program runs once per object of a kind the
kernel walks (``iter:task`` every task, ``iter:task_file`` every open file of every
task, ``iter:tcp`` every TCP socket...), when tinytrace reads the iterator, right after
BEGIN; then the run ends, as with bpftrace.

The program is a tracing program loaded for the BTF function ``bpf_iter_NAME`` (so the
kernel's BTF is needed, Linux 5.8+); its context is ``ctx``, a pointer to ``struct
bpf_iter__NAME`` whose members (after ``meta``) point at the object: ``ctx->task->comm``,
``ctx->file->f_pos``.  The kernel calls the program once more after the last object with
those pointers NULL ("stop"); tinytrace skips that call, so the body only sees objects.
Output goes through the usual event buffer (printf, maps), not the iterator's seq_file.
"""
from tinytrace.lang.probes.base import Provider, Target
from tinytrace.lang.source import LangError

PREFIX = "bpf_iter_"
# iterators that walk the contents of one object the link must name (a map, a cgroup):
# an iter probe has no way to name it
NEEDS_TARGET = {"bpf_map_elem": "a BPF map", "bpf_sk_storage_map": "a socket storage map",
                "sockmap": "a sockmap or sockhash", "cgroup": "a cgroup"}


class Iter(Provider):
    prog_type = "tracing"
    form = "iter:NAME"
    nullable_args = True     # object pointers in ctx may be NULL to the verifier

    def parse(self, parts, loc):
        if len(parts) == 2 and parts[0] and parts[1]:
            raise LangError("iter probes cannot be pinned here (iter:%s:%s); write "
                            "iter:%s" % (parts[0], parts[1], parts[0]), loc)
        if len(parts) != 1 or not parts[0]:
            raise LangError("iter probes are written %s" % self.form, loc)
        return parts[0]

    def expand(self, spec, env, loc):
        b = env.btf()
        if b is None:
            raise LangError("iter probes need the kernel's BTF (/sys/kernel/btf/vmlinux), "
                            "which this system does not have", loc)
        f = b.func(PREFIX + spec)
        if f is None:
            from tinytrace.lang.suggest import hint
            known = _iterators(b)
            raise LangError("this kernel has no iterator '%s'%s%s" % (
                spec, hint(spec, known),
                "" if hint(spec, known) else " (it has: %s)" % ", ".join(sorted(known))), loc)
        if spec in NEEDS_TARGET:
            raise LangError("iter:%s walks the contents of %s, which an iter probe cannot "
                            "name" % (spec, NEEDS_TARGET[spec]), loc)
        return [Target(self, "iter:" + spec, (PREFIX + spec, f.id))]

    def builtin_names(self):
        return ("ctx", "args")     # args: what sema makes of ctx (read as args is)

    def builtin_type(self, name, target, env):
        if name not in ("ctx", "args"):     # sema reads ctx's members as args'
            return None
        from tinytrace.lang.probes.kfunc import func_args
        return func_args(env, target)

    def programs(self, targets, used, comp):
        return [([t], {"expected_attach_type": "trace_iter", "attach_btf_id": t.parts[1]})
                for t in targets]

    def prologue(self, gen):
        """Skip the call after the last object: the first object pointer (the member
        after ``meta``) is NULL then."""
        r = gen.b.vreg()
        gen.b.load(r, gen.ctx, 8, 8)
        gen.b.jump("==", r, gen.exit_label, imm=0)

    def attach(self, session, prog, targets, env, cookies=None):
        from tinytrace.kernel import attach
        return [attach.iterator(prog, targets[0].name.split(":", 1)[1])]

    def list(self, pattern, env):
        import fnmatch
        b = env.btf()
        if b is None:
            return []
        return [n for n in ("iter:" + i for i in sorted(_iterators(b)))
                if fnmatch.fnmatchcase(n, pattern)]


def _iterators(b):
    """The iterator names the kernel's BTF describes (``bpf_iter_NAME`` functions with a
    ``struct bpf_iter__NAME`` context)."""
    names = []
    for n in b.names_with_prefix(PREFIX, "func"):
        name = n[len(PREFIX):]
        if name and name not in NEEDS_TARGET and \
                b.find_struct("bpf_iter__" + name) is not None:
            names.append(name)
    return names
