"""kprobe:FUNCTION[+OFFSET], kprobe:MODULE:FUNCTION and kretprobe:FUNCTION (aliases k:, kr:).

Kernel functions by name, offset or wildcard (``vfs_*``, ``ext4:*``), attached through
``tinytrace.kernel.kprobes`` (the kprobe PMU, else tracefs ``kprobe_events``).  Wildcards
are matched against ``available_filter_functions`` minus the kprobe blacklist; a match
the kernel still refuses is skipped (and said so once, on stderr) -- only when nothing
attaches is it an error.  A wildcard shares one program: on one ``kprobe_multi`` link where
the kernel has them (5.18+), whose cookies tell the program which function fired (for
``probe`` and ``func``); else one perf event per function (and, when ``probe`` or ``func``
is read, one program per function).

Builtins: ``arg0`` ... (the ordinary calling convention of the kernel's architecture:
``tinytrace.kernel.regs.kernel()``; arguments past the registers are read from the stack
at function entry), ``retval`` in kretprobes, ``func`` (the function's name).  A kernel
without kprobes gets one line saying so and naming tracepoints that may stand in.
"""
from tinytrace.lang.probes.base import Provider, Target, has_wildcard
from tinytrace.lang.source import LangError
from tinytrace.lang.types import INT64, UINT64, OpaqueT

FUNC = OpaqueT("func", 8)
MAX_ARGS = 12


def parse_function(parts, loc, form):
    """(module or None, function, offset) of ``kprobe:[MOD:]FUNC[+OFF]``."""
    if len(parts) not in (1, 2) or not all(parts):
        raise LangError("probes are written %s" % form, loc)
    mod = parts[0] if len(parts) == 2 else None
    text = parts[-1]
    func, plus, off = text.partition("+")
    offset = 0
    if plus:
        try:
            offset = int(off, 0)
        except ValueError:
            raise LangError("the offset in %s must be a number, not '%s'" % (text, off), loc)
        if offset < 0:
            raise LangError("the offset in %s must not be negative" % text, loc)
    if not func:
        raise LangError("probes are written %s" % form, loc)
    return mod, func, offset


class Kprobe(Provider):
    prog_type = "kprobe"
    retprobe = False
    form = "kprobe:FUNCTION, kprobe:FUNCTION+OFFSET or kprobe:MODULE:FUNCTION"

    def parse(self, parts, loc):
        mod, func, offset = parse_function(parts, loc, self.form)
        if offset and self.retprobe:
            raise LangError("a kretprobe cannot have an offset", loc)
        if offset and (has_wildcard(func) or (mod and has_wildcard(mod))):
            raise LangError("a wildcard probe cannot have an offset", loc)
        return (mod, func, offset)

    def _name(self, mod, func, offset):
        text = "%s:%s%s" % (self.name, "%s:" % mod if mod else "", func)
        return text + ("+%d" % offset if offset else "")

    def expand(self, spec, env, loc):
        mod, func, offset = spec
        why = env.kprobes_unavailable(self._name(mod, func, offset))
        if why:
            raise LangError(why, loc)
        if has_wildcard(func) or (mod and has_wildcard(mod)):
            pattern = "%s:%s" % (mod, func) if mod else func
            found = env.kernel_functions(pattern)
            if not found:
                raise LangError("no probeable kernel function matches %s" % pattern, loc)
            return [Target(self, self._name(m, n, 0), (n, m, 0), "wildcard")
                    for n, m in found]
        known = env.kernel_function_names()
        if known is not None and func not in known and not env.kernel_symbol(func):
            from tinytrace.lang.suggest import hint
            raise LangError("unknown kernel function '%s'%s" % (
                func, hint(func, _near(func, known))), loc)
        return [Target(self, self._name(mod, func, offset), (func, mod, offset), "exact")]

    def builtin_names(self):
        if self.retprobe:
            return ("func", "retval")
        return tuple("arg%d" % i for i in range(MAX_ARGS)) + ("func",)

    def builtin_type(self, name, target, env):
        if name == "func":
            return FUNC
        if name == "retval":
            return INT64 if self.retprobe else None
        if name.startswith("arg") and name[3:].isdigit():
            if self.retprobe:
                return None
            return UINT64
        return None

    def func_name(self, target):
        return target.parts[0]

    def regs(self, target, env):
        from tinytrace.kernel import regs
        return regs.kernel()

    def emit_builtin(self, gen, name):
        from tinytrace.lang.probes import regsread
        if name == "func":
            from tinytrace.lang.codegen_builtins import probe_id
            return probe_id(gen)
        table = self.regs(gen.targets[0], gen.comp.env)
        return regsread.emit(gen, table, name, user=False)

    def group_key(self, target, used):
        return ()

    # -- programs and attaching -------------------------------------------------------------
    def _multi(self, targets):
        if len(targets) < 2 or any(t.parts[2] for t in targets):
            return False
        try:
            from tinytrace.kernel import kprobes
            return kprobes.multi_supported()
        except Exception:
            return False

    def programs(self, targets, used, comp):
        if self._multi(targets):
            return [(targets, {"expected_attach_type": "trace_kprobe_multi"})]
        return Provider.programs(self, targets, used, comp)

    def attach(self, session, prog, targets, env, cookies=None):
        from tinytrace.kernel import kprobes
        multi = getattr(prog, "expected_attach_type", 0) == kprobes.KPROBE_MULTI
        if multi:
            return _attach_multi(prog, targets, self.retprobe, cookies, self.name)
        out = []
        skipped = []
        try:
            for t in targets:
                func, mod, offset = t.parts
                full = "%s:%s" % (mod, func) if mod else func
                try:
                    out.append(kprobes.attach(prog, full, offset, self.retprobe))
                except kprobes.KprobeError as e:
                    if t.info != "wildcard":
                        raise
                    skipped.append((t.name, str(e)))
        except BaseException:
            for a in out:
                a.close()
            raise
        if skipped:
            _skipped_note(skipped, len(targets))
            if not out:
                raise kprobes.KprobeError("%s: none of the %d matching functions could be "
                                          "probed (%s)" % (targets[0].name, len(targets),
                                                           skipped[0][1]))
        return out

    def list(self, pattern, env):
        import fnmatch
        try:
            if env.kprobes_unavailable(self.name + ":x"):
                return []
            funcs = env.kernel_functions("*")
        except Exception:
            return []
        out = []
        for n, m in funcs:
            full = self._name(m, n, 0)
            if fnmatch.fnmatchcase(full, pattern) or fnmatch.fnmatchcase(
                    "%s:%s" % (self.name, n), pattern):
                out.append(full)
        return out


class Kretprobe(Kprobe):
    retprobe = True
    form = "kretprobe:FUNCTION or kretprobe:MODULE:FUNCTION"


def _near(word, names):
    """Candidates worth a "did you mean" check: about as long, sharing a letter."""
    n = len(word)
    first = set(word[:3])
    return [x for x in names if abs(len(x) - n) <= 3 and (x[:1] in first or word in x)]


def _attach_multi(prog, targets, retprobe, cookies, kind):
    """One kprobe_multi link for all; where the kernel refuses the set, halves are tried
    (the program may hold several links) and the functions it refuses one by one are
    skipped -- unless they were named exactly."""
    from tinytrace.kernel import kprobes
    links = []
    skipped = []

    def go(ts):
        funcs = [(t.parts[0], t.parts[1]) for t in ts]
        cks = [cookies[t.name] for t in ts] if cookies else None
        try:
            links.append(kprobes.attach_multi(prog, funcs, retprobe, cookies=cks,
                                              target=ts[0].name))
            return
        except (kprobes.KprobeError, OSError) as e:
            if len(ts) == 1:
                if ts[0].info != "wildcard":
                    raise
                skipped.append((ts[0].name, str(e)))
                return
        half = len(ts) // 2
        go(ts[:half])
        go(ts[half:])

    try:
        go(list(targets))
    except BaseException:
        for a in links:
            a.close()
        raise
    if skipped:
        _skipped_note(skipped, len(targets))
    if not links:
        raise kprobes.KprobeError("%s: none of the %d matching functions could be probed "
                                  "(%s)" % (kind, len(targets), skipped[0][1]))
    return links


def _skipped_note(skipped, total):
    import sys
    from tinytrace.output.escape import escape
    names = ", ".join(n for n, _ in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
    sys.stderr.write("tinytrace: skipped %d of %d probes the kernel refused (%s): %s\n" % (
        len(skipped), total, escape(names), escape(skipped[0][1])))
