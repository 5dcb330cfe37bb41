"""Semantic checks of function calls: arguments, types, where a call may appear.

``check(sema, call, statement)`` handles every non-aggregation function; ``statement`` is
True when the call is a whole statement (``printf(...)``; ``exit()``) and False inside an
expression.  ``check_aggregation`` handles ``count()`` ... ``lhist()`` on the right of a
map assignment.  Each check sets ``call.ty`` and, where code generation or the runtime
needs more, ``call.info`` (a dict).
"""
import os

from tinytrace.lang import ast
from tinytrace.lang.builtins import DEFAULT_STACK_DEPTH, FUNCTIONS
from tinytrace.lang.parser import CAST_TYPES
from tinytrace.lang.source import LangError
from tinytrace.lang.suggest import hint
from tinytrace.lang.types import (
    BOOL, INET, INT64, KSYM, MACADDR, UINT64, UNKNOWN, VOID, AggT, ArrayT, BufT, CStructT,
    PtrT, StrT, StructT,
    lhist_buckets, parse_typename, stack_type, timestamp_type, usym_type)

STATEMENT_ONLY = frozenset(("printf", "print", "exit", "clear", "zero", "delete", "time",
                            "cat", "system", "signal", "join"))
SIGNALS = {
    "SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6,
    "SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12,
    "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16, "SIGCHLD": 17,
    "SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22, "SIGURG": 23,
    "SIGXCPU": 24, "SIGXFSZ": 25, "SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28,
    "SIGIO": 29, "SIGPWR": 30, "SIGSYS": 31,
}
MAX_BUF = 1024
MAX_STACK_DEPTH = 1024
LHIST_MAX_BUCKETS = 1024
JOIN_MAX_ARGS = 16
AF_INET, AF_INET6 = 2, 10


def _arity(e, lo, hi=None):
    hi = lo if hi is None else hi
    n = len(e.args)
    if lo <= n <= hi:
        return
    if lo == hi:
        want = "no arguments" if lo == 0 else ("1 argument" if lo == 1 else
                                                "%d arguments" % lo)
    else:
        want = "%d to %d arguments" % (lo, hi)
    raise LangError("%s() takes %s (%d given)" % (e.name, want, n), e.loc)


def _int_arg(sema, e, i, what="an integer"):
    a = e.args[i] = sema.expr(e.args[i])
    if a.ty is UNKNOWN:
        return a
    if not (a.ty.is_int or isinstance(a.ty, PtrT)):
        raise LangError("%s(): argument %d must be %s, not %s"
                        % (e.name, i + 1, what, a.ty.describe()), a.loc)
    return a


def _literal_int(sema, e, i, what):
    a = e.args[i] = sema.expr(e.args[i])
    if isinstance(a, ast.Cast) and isinstance(a.expr, ast.Int):
        a = a.expr
    if not isinstance(a, ast.Int):
        raise LangError("%s(): %s must be a constant number" % (e.name, what), a.loc)
    return a.value


def _literal_str(e, i, what):
    a = e.args[i]
    if not isinstance(a, ast.Str):
        raise LangError("%s(): %s must be a string literal (\"...\")" % (e.name, what), a.loc)
    return a


def _map_arg(sema, e, i, keyless_only=True):
    a = e.args[i]
    if not isinstance(a, ast.MapRef):
        raise LangError("%s(): argument %d must be a map (@name)" % (e.name, i + 1), a.loc)
    if keyless_only and a.keys:
        raise LangError("%s() takes the whole map: write %s(@%s), without a key"
                        % (e.name, e.name, a.name), a.loc)
    return a


def check(sema, e, statement):
    name = e.name
    fn = _CHECKS.get(name)
    if fn is None:
        if name in CAST_TYPES:
            raise LangError("'%s' is a type: a cast is written (%s)value" % (name, name), e.loc)
        cands = list(FUNCTIONS)
        raise LangError("unknown function %s()%s" % (name, hint(name, cands)), e.loc)
    if name in STATEMENT_ONLY and not statement:
        raise LangError("%s() has no value; use it as a statement" % name, e.loc)
    result = fn(sema, e)
    return e if result is None else result


# -- output ---------------------------------------------------------------------------------

def _format_call(sema, e, fname, first_literal=True):
    """printf-style calls: a literal format and arguments that match it."""
    if not e.args:
        raise LangError("%s() needs a format string" % fname, e.loc)
    fmt_node = e.args[0]
    if isinstance(fmt_node, ast.PosParam):
        fmt_node = e.args[0] = sema.expr(fmt_node)
    if not isinstance(fmt_node, ast.Str):
        raise LangError("%s(): the format must be a string literal" % fname, fmt_node.loc)
    fmt_node.ty = StrT(len(fmt_node.value) + 1)
    from tinytrace.output.printf import Format, FormatError
    try:
        fmt = Format(fmt_node.value)
    except FormatError as err:
        raise LangError("%s: %s" % (fname, err.message), fmt_node.loc_of(err.offset))
    for i in range(1, len(e.args)):
        e.args[i] = sema.expr(e.args[i])
        sema._check_storable(e.args[i].ty, e.args[i].loc, "printf")
    args = e.args[1:]
    msg = fmt.check_args(len(args))
    if msg is not None:
        raise LangError(msg.replace("printf:", fname + ":", 1), e.loc)
    for spec, a in zip(fmt.specs, args):
        ty = a.ty
        if ty is UNKNOWN:
            continue
        kind = spec.kind
        loc = fmt_node.loc_of(spec.offset)
        if kind in ("int", "char", "ptr"):
            if not (ty.is_int or isinstance(ty, PtrT)):
                raise LangError("%s: %s expects an integer, but argument %d is %s"
                                % (fname, spec.text, args.index(a) + 1, ty.describe()), loc)
        elif kind == "buf":
            if not isinstance(ty, (BufT, StrT, ArrayT)):
                raise LangError("%s: %s expects a buffer (buf()), but argument %d is %s"
                                % (fname, spec.text, args.index(a) + 1, ty.describe()), loc)
        elif kind == "float":
            raise LangError("%s: %s needs a floating-point value, and the language has only "
                            "integers" % (fname, spec.text), loc)
    e.info = {"format": fmt}
    e.ty = VOID


def _printf(sema, e):
    _format_call(sema, e, "printf")


def _system(sema, e):
    if not sema.env.unsafe:
        raise LangError("system() runs commands and needs --unsafe", e.loc)
    _format_call(sema, e, "system")


def _cat(sema, e):
    _format_call(sema, e, "cat")


def _print(sema, e):
    _arity(e, 1, 3)
    a = e.args[0]
    if isinstance(a, ast.MapRef) and not a.keys:
        info = sema._map(a, whole=True)
        info.whole_ops.add("print")
        top = _literal_int(sema, e, 1, "top") if len(e.args) > 1 else 0
        div = _literal_int(sema, e, 2, "div") if len(e.args) > 2 else 1
        if top < 0 or div < 1:
            raise LangError("print(): top must be >= 0 and div >= 1", e.loc)
        e.info = {"map": info, "top": top, "div": div}
        e.ty = VOID
        return
    if len(e.args) > 1:
        raise LangError("print() of a value takes one argument (top and div are for maps)",
                        e.args[1].loc)
    a = e.args[0] = sema.expr(a)
    sema._check_storable(a.ty, a.loc, "print")
    e.info = {"value": a.ty}
    e.ty = VOID


def _time(sema, e):
    _arity(e, 0, 1)
    fmt = _literal_str(e, 0, "the format").value if e.args else "%H:%M:%S\n"
    e.info = {"format": fmt}
    e.ty = VOID


def _strftime(sema, e):
    _arity(e, 2)
    fmt = _literal_str(e, 0, "the format")
    _int_arg(sema, e, 1)
    fmt.ty = StrT(len(fmt.value) + 1)
    e.info = {"format": fmt.value}
    e.ty = timestamp_type(fmt.value)


def _join(sema, e):
    _arity(e, 1, 2)
    _int_arg(sema, e, 0, "a pointer to an array of strings")
    sep = _literal_str(e, 1, "the separator").value if len(e.args) > 1 else " "
    if len(e.args) > 1:
        e.args[1].ty = StrT(len(sep) + 1)
    ty = e.args[0].ty
    user = ty.user if isinstance(ty, PtrT) else _default_user(sema)
    e.info = {"sep": sep, "user": user, "max_args": JOIN_MAX_ARGS}
    e.ty = VOID


# -- control --------------------------------------------------------------------------------

def _exit(sema, e):
    _arity(e, 0, 1)
    if e.args:
        _int_arg(sema, e, 0, "an exit code")
    e.ty = VOID


def _signal(sema, e):
    _arity(e, 1)
    if not sema.env.unsafe:
        raise LangError("signal() sends signals to traced processes and needs --unsafe", e.loc)
    a = e.args[0]
    if isinstance(a, ast.Str):
        name = a.value.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        if name not in SIGNALS:
            raise LangError("unknown signal '%s'%s" % (a.value, hint(name, list(SIGNALS))),
                            a.loc)
        e.args[0] = sema.expr(ast.Int(SIGNALS[name], a.loc))
    else:
        a = _int_arg(sema, e, 0, "a signal number or name")
        if isinstance(a, ast.Int) and not 1 <= a.value <= 64:
            raise LangError("signal(): %d is not a signal number (1-64)" % a.value, a.loc)
    e.ty = VOID


# -- maps -----------------------------------------------------------------------------------

def _clear(sema, e):
    _arity(e, 1)
    info = sema._map(_map_arg(sema, e, 0), whole=True)
    info.whole_ops.add(e.name)
    e.info = {"map": info}
    e.ty = VOID


def _delete(sema, e):
    _arity(e, 1, 2)
    if len(e.args) == 2:
        m = _map_arg(sema, e, 0)
        key = e.args[1]
        keys = list(key.elems) if isinstance(key, ast.Tuple) else [key]
        ref = ast.MapRef(m.name, keys, m.loc)
        e.args = [ref]
    ref = _map_arg(sema, e, 0, keyless_only=False)
    info = sema._map(ref)
    info.deleted = True
    e.ty = VOID


def _has_key(sema, e):
    if len(e.args) == 1 and isinstance(e.args[0], ast.MapRef) and e.args[0].keys:
        sema._map(e.args[0])   # already rewritten by an earlier round
        e.ty = BOOL
        return
    _arity(e, 2)
    m = _map_arg(sema, e, 0)
    key = e.args[1]
    keys = list(key.elems) if isinstance(key, ast.Tuple) else [key]
    ref = ast.MapRef(m.name, keys, m.loc)
    sema._map(ref)
    e.args = [ref]
    e.ty = BOOL


def _len(sema, e):
    _arity(e, 1)
    ref = _map_arg(sema, e, 0)
    info = sema._map(ref, whole=True)
    if info.nkeys == 0:
        raise LangError("len() counts the elements of a map with keys; @%s has none"
                        % info.name, ref.loc)
    e.info = {"map": info}
    e.ty = INT64


# -- values ---------------------------------------------------------------------------------

def _default_user(sema):
    """Whether a plain integer address is taken as a user address: in syscall
    tracepoints (their pointer arguments point into the process) and in uprobes and USDT
    probes (their registers are the process's), yes."""
    for ap in sema.probe.points:
        if getattr(ap.provider, "user_space", False):
            return True
        for t in ap.targets:
            if t.name.startswith("tracepoint:syscalls:"):
                return True
    return False


def _str(sema, e):
    _arity(e, 1, 2)
    src = e.args[0]
    limit = None
    if len(e.args) == 2:
        n = e.args[1] = sema.expr(e.args[1])
        if isinstance(n, ast.Int):
            if n.value < 1:
                raise LangError("str(): the length must be at least 1", n.loc)
            limit = n.value
        elif n.ty is not UNKNOWN and not n.ty.is_int:
            raise LangError("str(): the length must be an integer, not %s" % n.ty.describe(),
                            n.loc)
    if isinstance(src, ast.PosParam):
        params = sema.env.params
        text = params[src.index - 1] if 0 < src.index <= len(params) else \
            (str(len(params)) if src.index == 0 else "")
        if limit is not None:
            text = text[:limit]
        return sema.expr(ast.Str(text, src.loc))
    src = e.args[0] = sema.expr(src)
    ty = src.ty
    cap = sema.env.strlen
    if limit is not None:
        cap = min(cap, limit + 1)
    if ty is UNKNOWN:
        e.ty = StrT(cap)
        return
    if isinstance(ty, StrT):
        e.ty = StrT(min(ty.size, cap))
        e.info = {"copy": True}
        return
    if isinstance(ty, ArrayT) and ty.elem.size == 1:
        e.ty = StrT(min(ty.size + 1, cap))
        e.info = {"copy": True}
        return
    if not (ty.is_int or isinstance(ty, PtrT)):
        raise LangError("str() needs a pointer or an address, not %s" % ty.describe(),
                        src.loc)
    user = ty.user if isinstance(ty, PtrT) else _default_user(sema)
    e.info = {"user": user, "limit_expr": len(e.args) == 2 and limit is None}
    e.ty = StrT(cap)


def _buf(sema, e):
    _arity(e, 1, 2)
    src = e.args[0] = sema.expr(e.args[0])
    ty = src.ty
    if len(e.args) == 2:
        n = e.args[1] = sema.expr(e.args[1])
        if isinstance(n, ast.Int):
            if not 1 <= n.value <= MAX_BUF:
                raise LangError("buf(): the length must be between 1 and %d" % MAX_BUF, n.loc)
            cap = n.value
        else:
            if n.ty is not UNKNOWN and not n.ty.is_int:
                raise LangError("buf(): the length must be an integer", n.loc)
            cap = sema.env.strlen
    elif isinstance(ty, (ArrayT, StrT)):
        cap = ty.size
    else:
        raise LangError("buf() of a pointer needs a length: buf(p, n)", e.loc)
    if ty is not UNKNOWN and not (ty.is_int or isinstance(ty, (PtrT, ArrayT, StrT))):
        raise LangError("buf() needs a pointer or an array, not %s" % ty.describe(), src.loc)
    user = ty.user if isinstance(ty, PtrT) else _default_user(sema)
    e.info = {"user": user, "from_value": isinstance(ty, (ArrayT, StrT))}
    e.ty = BufT(cap)


def _ntop(sema, e):
    _arity(e, 1, 2)
    af_expr = False
    if len(e.args) == 2:
        a = e.args[0] = sema.expr(e.args[0])
        if isinstance(a, ast.Cast) and isinstance(a.expr, ast.Int):
            a = a.expr
        if isinstance(a, ast.Int):
            af = a.value
            if af not in (AF_INET, AF_INET6):
                raise LangError("ntop(): the address family must be 2 (AF_INET) or 10 "
                                "(AF_INET6)", a.loc)
        else:
            # a family known only at run time (args->family): the address is printed as
            # IPv6 when it is 10, else as IPv4 (its first four bytes)
            _int_arg(sema, e, 0, "an address family")
            af = None
            af_expr = True
        addr = e.args[1] = sema.expr(e.args[1])
    else:
        addr = e.args[0] = sema.expr(e.args[0])
        af = None
    ty = addr.ty
    if ty is not UNKNOWN:
        if ty.is_int:
            if af is None and not af_expr:
                af = AF_INET
            if af == AF_INET6:
                raise LangError("ntop(): an IPv6 address needs 16 bytes (an array), not an "
                                "integer", addr.loc)
        elif isinstance(ty, (ArrayT, StrT)) and ty.size in (4, 16):
            size_af = AF_INET if ty.size == 4 else AF_INET6
            if af is None and not af_expr:
                af = size_af
        else:
            raise LangError("ntop() needs an IPv4 address (integer or 4 bytes) or an IPv6 "
                            "address (16 bytes), not %s" % ty.describe(), addr.loc)
    e.info = {"af": af, "af_expr": af_expr}
    e.ty = INET


def _strncmp(sema, e):
    _arity(e, 3)
    for i in (0, 1):
        a = e.args[i] = sema.expr(e.args[i])
        if a.ty is not UNKNOWN and not isinstance(a.ty, StrT):
            raise LangError("strncmp(): argument %d must be a string, not %s"
                            % (i + 1, a.ty.describe()), a.loc)
    n = _literal_int(sema, e, 2, "the length")
    if n < 0:
        raise LangError("strncmp(): the length must not be negative", e.args[2].loc)
    e.info = {"n": n}
    e.ty = INT64


def _strcontains(sema, e):
    _arity(e, 2)
    if not isinstance(e.args[1], ast.Str):
        raise LangError("strcontains(): the string to look for must be a literal",
                        e.args[1].loc)
    for i in (0, 1):
        a = e.args[i] = sema.expr(e.args[i])
        if a.ty is not UNKNOWN and not isinstance(a.ty, StrT):
            raise LangError("strcontains(): argument %d must be a string, not %s"
                            % (i + 1, a.ty.describe()), a.loc)
    e.ty = BOOL


def _stack(sema, e):
    _arity(e, 0, 2)
    mode = sema.env.settings.stack_mode
    depth = DEFAULT_STACK_DEPTH
    for i, a in enumerate(e.args):
        if isinstance(a, ast.Builtin) and a.name in ("bpftrace", "perf", "raw"):
            if i != 0:
                raise LangError("%s(): the stack mode comes first" % e.name, a.loc)
            mode = a.name
            continue
        if i == 0 and len(e.args) == 2:
            raise LangError("%s(): the first of two arguments is the mode (bpftrace, perf or "
                            "raw)" % e.name, a.loc)
        depth = _literal_int(sema, e, i, "the depth")
        if not 1 <= depth <= MAX_STACK_DEPTH:
            raise LangError("%s(): the depth must be between 1 and %d"
                            % (e.name, MAX_STACK_DEPTH), e.args[i].loc)
    e.ty = stack_type(e.name == "ustack", depth, mode)


def _ksym(sema, e):
    _arity(e, 1)
    _int_arg(sema, e, 0, "an address")
    e.ty = KSYM if e.name == "ksym" else usym_type()


def _bswap(sema, e):
    _arity(e, 1)
    a = _int_arg(sema, e, 0)
    if a.ty is not UNKNOWN and isinstance(a.ty, PtrT):
        raise LangError("bswap() needs an integer, not %s" % a.ty.describe(), a.loc)
    e.ty = a.ty


def _sizeof(sema, e):
    _arity(e, 1)
    a = e.args[0]
    if isinstance(a, ast.Builtin) and a.name in CAST_TYPES:
        ty = parse_typename(a.name)
    elif isinstance(a, ast.Builtin) and a.name.startswith("enum "):
        name = a.name.split()[1]
        if sema.cdefs is None or sema.cdefs.enum_type(name, 0) is None:
            raise LangError("sizeof(): unknown enum %s (define it in the script)" % name,
                            a.loc)
        return sema.expr(ast.Int(4, e.loc))
    elif isinstance(a, ast.Builtin) and a.name.split()[0] in ("struct", "union"):
        return sema.expr(ast.Int(_named_struct(sema, a).size, e.loc))
    elif isinstance(a, ast.Builtin) and sema.cdefs is not None and \
            a.name in sema.cdefs.typedefs:
        size = sema.cdefs.sizeof_typedef(a.name)
        if size is None:
            raise LangError("sizeof(): %s is an incomplete type" % a.name, a.loc)
        return sema.expr(ast.Int(size, e.loc))
    else:
        a = e.args[0] = sema.expr(a)
        ty = a.ty
    if ty is None or ty is UNKNOWN or ty is VOID:
        raise LangError("sizeof(): unknown type", a.loc)
    return sema.expr(ast.Int(ty.size, e.loc))


def _cgroupid(sema, e):
    _arity(e, 1)
    path = _literal_str(e, 0, "the cgroup path").value
    try:
        st = os.stat(path)
    except OSError as err:
        raise LangError("cgroupid(): cannot read %s: %s" % (path, err.strerror), e.args[0].loc)
    return sema.expr(ast.Int(st.st_ino, e.loc))


def _uptr(sema, e):
    _arity(e, 1)
    a = _int_arg(sema, e, 0, "a pointer")
    pointee = a.ty.pointee if isinstance(a.ty, PtrT) else None
    e.ty = PtrT(pointee, e.name == "uptr")


def _kaddr(sema, e):
    """``kaddr("symbol")``: a kernel symbol's address, from /proc/kallsyms now."""
    _arity(e, 1)
    name = _literal_str(e, 0, "the symbol").value
    addr = sema.env.kernel_address(name)
    if isinstance(addr, str):
        raise LangError("kaddr(): %s" % addr, e.args[0].loc)
    if addr is None:
        raise LangError("kaddr(): no kernel symbol '%s' in /proc/kallsyms" % name,
                        e.args[0].loc)
    n = ast.Int(addr, e.loc)
    n.ty = UINT64
    return n


def _uaddr(sema, e):
    """``uaddr("symbol")``: the address of a symbol of the probed file (uprobes, USDT), a
    pointer sized by the symbol (1, 2, 4 or 8 bytes; else to uint64).  A symbol of a
    position-independent file is moved by the load bias of the -p process."""
    _arity(e, 1)
    lit = _literal_str(e, 0, "the symbol")
    paths = set()
    for ap in sema.probe.points:
        if ap.provider.name not in ("uprobe", "uretprobe", "usdt"):
            raise LangError("uaddr() is only available in uprobe, uretprobe and usdt probes",
                            e.loc)
        for t in ap.targets:
            paths.add(t.parts[0])
    if len(paths) != 1:
        raise LangError("uaddr(): the probe's targets are in %d files; it needs one"
                        % len(paths), e.loc)
    path = paths.pop()
    from tinytrace.kernel import elf
    try:
        f = elf.open(path)
    except Exception as err:
        raise LangError("uaddr(): %s: %s" % (path, err), lit.loc)
    sym = f.find_symbol(lit.value)
    if sym is None:
        raise LangError("uaddr(): no symbol '%s' in %s" % (lit.value, path), lit.loc)
    addr = sym.address
    if f.is_dyn:
        pid = sema.env.target_pid
        if pid is None:
            raise LangError("uaddr(): %s is position-independent, so '%s' has an address "
                            "only in a running process: give -p PID" % (path, lit.value),
                            e.loc)
        off = f.vaddr_to_offset(addr)
        from tinytrace.kernel import usyms
        run = usyms.ProcMaps(pid).address_of_file_offset(path, off) if off is not None \
            else None
        if run is None:
            raise LangError("uaddr(): process %d does not map %s" % (pid, path), e.loc)
        addr = run
    size = sym.size if sym.size in (1, 2, 4, 8) else 8
    from tinytrace.lang.types import IntT
    n = ast.Int(addr, e.loc)
    n.ty = PtrT(IntT(size * 8, False), True)
    return n


def _macaddr(sema, e):
    """``macaddr(x)``: six bytes shown as ``AA:BB:CC:DD:EE:FF``; ``x`` is an array (a
    tracepoint field, a struct member) or a pointer to the bytes."""
    _arity(e, 1)
    a = e.args[0] = sema.expr(e.args[0])
    ty = a.ty
    if ty is not UNKNOWN:
        if isinstance(ty, (ArrayT, StrT)):
            if ty.size < 6:
                raise LangError("macaddr() needs six bytes, not %s" % ty.describe(), a.loc)
            e.info = {"from_value": True}
        elif ty.is_int or isinstance(ty, PtrT):
            user = ty.user if isinstance(ty, PtrT) else _default_user(sema)
            e.info = {"from_value": False, "user": user}
        else:
            raise LangError("macaddr() needs an array of six bytes or a pointer to them, "
                            "not %s" % ty.describe(), a.loc)
    e.ty = MACADDR


def _offsetof(sema, e):
    """``offsetof(struct NAME, member[.member...])``: a byte offset from BTF, a constant."""
    _arity(e, 2)
    what, path = e.args
    if not (isinstance(what, ast.Builtin) and what.name.split()[0] in ("struct", "union")):
        raise LangError("offsetof() takes a struct type first: offsetof(struct NAME, "
                        "member)", what.loc)
    if not isinstance(path, ast.Str):
        raise LangError("offsetof(): the member must be a name (a.b for nested ones)",
                        path.loc)
    from tinytrace.lang import btftypes
    st = _named_struct(sema, what, "offsetof()")
    btf = sema.env.btf()

    def member(cur, part):
        if isinstance(cur, CStructT):
            return sema.cdefs.member(cur, part) if cur.layout.decl is not None else None
        return btftypes.member(btf, cur, part)

    def member_names(cur):
        if isinstance(cur, CStructT):
            return sema.cdefs.member_names(cur) if cur.layout.decl is not None else []
        return btftypes.member_names(btf, cur)
    off = 0
    cur = st
    for part in path.value.split("."):
        m = member(cur, part) if cur is not None else None
        if m is None:
            from tinytrace.lang.suggest import hint
            names = member_names(cur) if cur is not None else []
            raise LangError("%s has no member named '%s'%s" % (
                cur.describe() if cur is not None else what.name, part, hint(part, names)),
                path.loc)
        off += m.offset
        cur = m.ty if isinstance(m.ty, StructT) else None
    return sema.expr(ast.Int(off, e.loc))


def _named_struct(sema, what, user="sizeof()"):
    """The struct type ``what`` (a Builtin ``struct NAME``) names: the script's definition,
    else the kernel's from BTF."""
    kind, _, name = what.name.partition(" ")
    st = sema.script_struct(kind, name, what.loc)
    if st is not None:
        return st
    btf = sema.env.btf()
    if btf is None:
        raise LangError("%s needs the kernel's BTF (/sys/kernel/btf/vmlinux) for %s, which "
                        "this system does not have; define it in the script" % (user,
                                                                                what.name),
                        what.loc)
    from tinytrace.lang import btftypes
    st = btftypes.find_struct(btf, name)
    if st is None:
        raise LangError("unknown %s" % what.name, what.loc)
    return st


def _path(sema, e):
    """``path(p)``: the path of a ``struct path *`` (the kernel's d_path helper, which only
    BPF trampolines on some functions may call: kfunc/kretfunc probes)."""
    _arity(e, 1, 2)
    for ap in sema.probe.points:
        if ap.provider.name not in ("kfunc", "kretfunc"):
            raise LangError("path() is only available in kfunc/kretfunc probes (the kernel "
                            "allows its d_path helper only there)", e.loc)
    a = e.args[0] = sema.expr(e.args[0])
    if a.ty is not UNKNOWN and not (a.ty.is_int or isinstance(a.ty, (PtrT, StructT))):
        raise LangError("path() needs a struct path (or a pointer to one), not %s"
                        % a.ty.describe(), a.loc)
    cap = sema.env.strlen
    if len(e.args) == 2:
        cap = _literal_int(sema, e, 1, "the size")
        if not 1 <= cap <= MAX_BUF:
            raise LangError("path(): the size must be between 1 and %d" % MAX_BUF,
                            e.args[1].loc)
    e.ty = StrT(cap)


_CHECKS = {
    "printf": _printf, "system": _system, "cat": _cat, "print": _print, "time": _time,
    "strftime": _strftime, "join": _join, "exit": _exit, "signal": _signal,
    "clear": _clear, "zero": _clear, "delete": _delete, "has_key": _has_key, "len": _len,
    "str": _str, "buf": _buf, "ntop": _ntop, "strncmp": _strncmp,
    "strcontains": _strcontains, "kstack": _stack, "ustack": _stack, "ksym": _ksym,
    "usym": _ksym, "bswap": _bswap, "sizeof": _sizeof, "cgroupid": _cgroupid,
    "uptr": _uptr, "kptr": _uptr, "kaddr": _kaddr, "uaddr": _uaddr, "macaddr": _macaddr,
    "offsetof": _offsetof, "path": _path,
}


# -- aggregations ---------------------------------------------------------------------------

def check_aggregation(sema, e):
    name = e.name
    if name == "count":
        _arity(e, 0)
        e.ty = AggT("count")
        return e
    if name in ("sum", "avg", "min", "max", "stats"):
        _arity(e, 1)
        a = _int_arg(sema, e, 0)
        e.ty = AggT(name, _agg_arg(a.ty))
        return e
    if name == "hist":
        _arity(e, 1, 2)
        a = _int_arg(sema, e, 0)
        bits = _literal_int(sema, e, 1, "the bits per power of two") if len(e.args) > 1 \
            else 0
        if not 0 <= bits <= 5:
            raise LangError("hist(): the second argument must be between 0 and 5",
                            e.args[1].loc)
        e.ty = AggT("hist", _agg_arg(a.ty), (bits,))
        return e
    if name == "lhist":
        _arity(e, 4)
        a = _int_arg(sema, e, 0)
        lo = _literal_int(sema, e, 1, "the minimum")
        hi = _literal_int(sema, e, 2, "the maximum")
        step = _literal_int(sema, e, 3, "the step")
        if step <= 0:
            raise LangError("lhist(): the step must be positive", e.args[3].loc)
        if hi <= lo:
            raise LangError("lhist(): the maximum must be greater than the minimum",
                            e.args[2].loc)
        if (hi - lo) // step < 1:
            raise LangError("lhist(): the step is larger than the range", e.args[3].loc)
        if lhist_buckets(lo, hi, step) > LHIST_MAX_BUCKETS:
            raise LangError("lhist(): %d buckets is too many (at most %d)"
                            % (lhist_buckets(lo, hi, step), LHIST_MAX_BUCKETS), e.loc)
        e.ty = AggT("lhist", _agg_arg(a.ty), (lo, hi, step))
        return e
    raise AssertionError(name)


def _agg_arg(ty):
    if ty is UNKNOWN:
        return INT64
    if isinstance(ty, PtrT):
        return UINT64
    return ty
