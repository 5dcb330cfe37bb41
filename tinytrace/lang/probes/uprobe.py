"""uprobe:BINARY:FUNCTION[+OFFSET], uprobe:BINARY:ADDRESS and uretprobe:BINARY:FUNCTION
(aliases u:, ur:).

BINARY is a path, a library's short name (``libc``: ld.so.cache, the library folders), a
program in PATH, or -- with ``-p PID`` -- that process's executable or one of its
libraries.  FUNCTION may be a wildcard (``pthread_mutex_*lock``).  With ``-p`` or ``-c``
the probes exist only in that process (perf events opened for its pid); otherwise every
process that maps the file hits them.

A wildcard shares one program: on ``uprobe_multi`` links where the kernel has them (6.6+;
closing hundreds of single uprobes takes seconds), with cookies telling ``probe`` and
``func`` apart; else one perf event per function (one program per function when
``probe`` or ``func`` is read).  ``argN``/``retval`` follow the probed file's calling
convention (``tinytrace.kernel.regs.user(elf arch)``).  32-bit ARM uprobes cannot probe
Thumb code: such a function is refused at compile time, with the reason.
"""
from tinytrace.lang.probes.base import Provider, Target, has_wildcard
from tinytrace.lang.probes.kprobe import FUNC, MAX_ARGS
from tinytrace.lang.source import LangError
from tinytrace.lang.types import INT64, UINT64


class UprobeInfo(object):
    """Where one uprobe goes: the file, the symbol (None for an address), the file offset,
    the file's architecture, and whether a wildcard chose it."""
    __slots__ = ("path", "symbol", "offset", "arch", "wildcard")

    def __init__(self, path, symbol, offset, arch, wildcard=False):
        self.path, self.symbol, self.offset = path, symbol, offset
        self.arch, self.wildcard = arch, wildcard


def _resolve(binary, env, loc):
    from tinytrace.errors import UserError
    from tinytrace.kernel import uprobes
    try:
        return uprobes.resolve(binary, pid=env.target_pid)
    except UserError as e:
        raise LangError(str(e), loc)


def _elf(path, loc):
    from tinytrace.errors import UserError
    from tinytrace.kernel import elf
    try:
        return elf.open(path)
    except (UserError, OSError, ValueError) as e:
        raise LangError("%s: %s" % (path, getattr(e, "strerror", None) or e), loc)


class Uprobe(Provider):
    prog_type = "kprobe"
    retprobe = False
    user_space = True
    form = ("uprobe:BINARY:FUNCTION, uprobe:BINARY:FUNCTION+OFFSET or "
            "uprobe:BINARY:ADDRESS")

    def parse(self, parts, loc):
        if len(parts) == 3 and parts[1] in ("c", "cpp"):
            if parts[1] == "cpp":
                raise LangError("C++ names (uprobe:BINARY:cpp:NAME) are not supported; use "
                                "the mangled name", loc)
            parts = [parts[0], parts[2]]
        if len(parts) != 2 or not parts[1]:
            raise LangError("%s probes are written %s" % (self.name, self.form), loc)
        binary, what = parts
        if what[:2].lower() == "0x" or what.isdigit():
            try:
                addr = int(what, 0)
            except ValueError:
                raise LangError("bad address '%s'" % what, loc)
            if self.retprobe:
                raise LangError("a uretprobe is placed on a function, not an address", loc)
            return (binary, None, addr, 0)
        func, plus, off = what.partition("+")
        offset = 0
        if plus:
            try:
                offset = int(off, 0)
            except ValueError:
                raise LangError("the offset in %s must be a number, not '%s'" % (what, off),
                                loc)
            if self.retprobe:
                raise LangError("a uretprobe cannot have an offset", loc)
            if has_wildcard(func):
                raise LangError("a wildcard probe cannot have an offset", loc)
        return (binary, func, None, offset)

    def expand(self, spec, env, loc):
        from tinytrace.errors import UserError
        from tinytrace.kernel import uprobes
        binary, func, addr, offset = spec
        why = env.uprobes_unavailable()
        if why:
            raise LangError(why, loc)
        path = _resolve(binary, env, loc)
        f = _elf(path, loc)
        arch = f.arch
        shown = binary if binary.startswith("/") else path
        if func is None:
            try:
                off = uprobes.address_offset(path, addr)
            except UserError as e:
                raise LangError(str(e), loc)
            self._thumb(path, addr, "%s:0x%x" % (path, addr), loc)
            return [Target(self, "%s:%s:0x%x" % (self.name, shown, addr), (path, addr),
                           UprobeInfo(path, None, off, arch))]
        if has_wildcard(func):
            names = uprobes.matching_functions(path, func)
            if not names:
                raise LangError("no function of %s matches %s" % (path, func), loc)
            out = []
            for n in names:
                try:
                    off = uprobes.symbol_offset(path, n)
                except UserError:
                    continue        # Thumb code, or nothing the kernel could probe
                out.append(Target(self, "%s:%s:%s" % (self.name, shown, n), (path, n),
                                  UprobeInfo(path, n, off, arch, True)))
            if not out:
                raise LangError("none of the %d functions of %s matching %s can be probed"
                                % (len(names), path, func), loc)
            return out
        if f.find_symbol(func) is None:
            from tinytrace.lang.suggest import hint
            raise LangError("no function '%s' in %s%s" % (
                func, path, hint(func, f.functions())), loc)
        try:
            off = uprobes.symbol_offset(path, func, offset)
        except UserError as e:
            raise LangError(str(e), loc)
        name = "%s:%s:%s%s" % (self.name, shown, func, "+%d" % offset if offset else "")
        return [Target(self, name, (path, func), UprobeInfo(path, func, off, arch))]

    @staticmethod
    def _thumb(path, vaddr, what, loc):
        from tinytrace.kernel import uprobes
        if uprobes.is_thumb(path, vaddr):
            raise LangError("%s %s" % (what, uprobes.THUMB), loc)

    def builtin_names(self):
        if self.retprobe:
            return ("func", "retval")
        return tuple("arg%d" % i for i in range(MAX_ARGS)) + ("func",)

    def builtin_type(self, name, target, env):
        if name == "func":
            return FUNC
        if name == "retval":
            return INT64 if self.retprobe else None
        if name.startswith("arg") and name[3:].isdigit() and not self.retprobe:
            return UINT64
        return None

    def func_name(self, target):
        return target.info.symbol or "0x%x" % target.parts[1]

    def regs(self, target):
        from tinytrace.kernel import regs
        return regs.user(target.info.arch)

    def emit_builtin(self, gen, name):
        from tinytrace.lang.probes import regsread
        if name == "func":
            from tinytrace.lang.codegen_builtins import probe_id
            return probe_id(gen)
        return regsread.emit(gen, self.regs(gen.targets[0]), name, user=True)

    def group_key(self, target, used):
        return (target.info.arch,)

    # -- programs and attaching -------------------------------------------------------------
    def _multi(self, targets):
        if len(targets) < 2:
            return False
        try:
            from tinytrace.kernel import uprobes
            return uprobes.multi_supported()
        except Exception:
            return False

    def programs(self, targets, used, comp):
        if self._multi(targets):
            return [(targets, {"expected_attach_type": "trace_uprobe_multi"})]
        return Provider.programs(self, targets, used, comp)

    def attach(self, session, prog, targets, env, cookies=None):
        from tinytrace.kernel import uprobes
        pid = env.target_pid
        out = []
        try:
            if getattr(prog, "expected_attach_type", 0) == uprobes.UPROBE_MULTI:
                by_path = {}
                for t in targets:
                    by_path.setdefault(t.info.path, []).append(t)
                for path, ts in sorted(by_path.items()):
                    out.append(uprobes.attach_multi(
                        prog, path, [t.info.offset for t in ts], self.retprobe, pid=pid,
                        cookies=[cookies[t.name] for t in ts] if cookies else None,
                        names=[t.info.symbol or t.name for t in ts], target=ts[0].name))
                return out
            for t in targets:
                out.append(uprobes.attach(prog, t.info.path, t.info.offset, self.retprobe,
                                          pid=pid, target=t.name))
        except BaseException:
            for a in out:
                a.close()
            raise
        return out

    def list(self, pattern, env):
        """Functions of the file a pattern names (``uprobe:/bin/bash:*``)."""
        import fnmatch
        from tinytrace.lang.probes import split_name
        parts = split_name(pattern)
        if len(parts) < 3 or has_wildcard(parts[1]):
            return []
        try:
            path = _resolve(parts[1], env, None)
            funcs = _elf(path, None).functions()
        except LangError:
            return []
        out = []
        for n in funcs:
            full = "%s:%s:%s" % (self.name, parts[1], n)
            if fnmatch.fnmatchcase(full, pattern):
                out.append(full)
        return out


class Uretprobe(Uprobe):
    retprobe = True
    form = "uretprobe:BINARY:FUNCTION"
