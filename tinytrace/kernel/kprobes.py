"""kprobe / kretprobe attachment: kernel functions by name, name+offset, or wildcard.

How a probe is made
-------------------
1. **The kprobe PMU** (Linux 4.17+): ``perf_event_open`` with the PMU's type number from
   ``/sys/bus/event_source/devices/kprobe/type``, ``config1`` pointing at the function name,
   ``config2`` the offset, and the bit named by ``format/retprobe`` set in ``config`` for a
   kretprobe.  The probe belongs to the file descriptor: nothing outlives the process, even
   after SIGKILL.
2. **tracefs kprobe_events** where the PMU is missing: ``p:kprobes/tinytrace_<pid>_<n>
   func+off`` (``r:`` for returns), opened as a tracepoint, removed at exit; see
   ``dynevents`` for the naming and the clean-up of runs that were killed.
3. Neither: the kernel has no kprobes.  ``KprobesUnavailable`` says so in one line and
   suggests tracepoints whose names fit the function (``do_sys_openat2`` ->
   ``tracepoint:syscalls:sys_enter_openat``).

Wildcards (``vfs_*``, ``tcp_*send*``, ``mod:func*``) are matched against
``available_filter_functions`` -- what ftrace and kprobes consider traceable -- minus the
kprobe blacklist (``/sys/kernel/debug/kprobes/blacklist`` when debugfs is mounted) and the
``__ftrace_invalid_address__`` placeholders.  A match the kernel still refuses is skipped
and reported in ``KprobeGroup.skipped``; only when nothing attaches is it an error.  An
explicit name is attached as given (a function missing from available_filter_functions can
still be kprobed unless blacklisted); when the kernel refuses it the error says why.  Since
6.6 a name shared by several static functions is refused (EADDRNOTAVAIL); such a probe is
attached to each of the addresses /proc/kallsyms lists for it.

Wildcards on one link (``kprobe_multi``, 5.18+ with CONFIG_FPROBE)
------------------------------------------------------------------
Every kprobe perf event costs two file descriptors and, when closed, the same wait for an
RCU grace period under a kernel-wide lock as a uprobe's (``uprobes``: 70-150 ms each on
the development VM), so a wildcard over hundreds of functions is slow to attach and
slower to detach.  A
``kprobe_multi`` link attaches them all through ftrace in one step.  The program must be
loaded for it (``expected_attach_type="trace_kprobe_multi"``): the compiler decides with
``multi_supported()`` before loading, and ``attach_matching`` then uses one link, with a
cookie per function (``get_attach_cookie``: the index into ``MultiLink.names``).  Function
entries only: ``func+offset`` and single functions keep the perf-event path.

API for the language (all return objects with ``close()``; add them to the Session)::

    kprobes.check(func, retprobe=False)          # raise KprobesUnavailable early (sema time)
    a = kprobes.attach(prog, "do_sys_openat2")   # kprobe program ("kprobe" prog type)
    a = kprobes.attach(prog, "vfs_read", offset=5)
    a = kprobes.attach(prog, "do_sys_openat2", retprobe=True)
    g = kprobes.attach_matching(prog, "vfs_*")   # KprobeGroup: .attached, .skipped
    kprobes.matching_functions("vfs_*")          # [(name, module or None)] for -l listings
    kprobes.multi_supported()                    # load wildcard programs for kprobe_multi?
    l = kprobes.attach_multi(prog, ["vfs_read", "vfs_write"], retprobe=False, cookies=[0, 1])

``argN``/``retval`` for these programs come from ``regs.kernel()`` (offsets into the
``struct pt_regs`` the program gets; ``probe_read_kernel`` for stack-passed arguments).
``func`` is the function name, known at compile time for one function; for a wildcard
probe use the ``get_func_ip`` helper (Linux 5.15+ for kprobes) and symbolize it -- the
instruction pointer in pt_regs may point past the breakpoint on some architectures.
``kstack`` works as in any program (bpf_get_stackid); a kretprobe's kernel stack starts
at the return trampoline (see ``stacks``).  The program type is "kprobe".  A kprobe is
system-wide: ``-p PID`` must be a test in the program (``get_current_pid_tgid() >> 32``).
"""
import errno as _errno
import os

from tinytrace.errors import KernelError, UserError

AVAILABLE = "available_filter_functions"
BLACKLIST = "/sys/kernel/debug/kprobes/blacklist"
ENOTSUPP = 524


class KprobesUnavailable(KernelError):
    """This kernel cannot make kprobes at all."""


class KprobeError(UserError):
    """A kprobe the kernel refused (no such function, not probeable, bad offset).
    ``errno`` is the kernel's answer when there was one."""

    def __init__(self, message, errno=None):
        UserError.__init__(self, message)
        self.errno = errno


def _features():
    from tinytrace.kernel import features
    return features.probe()


def method():
    """How kprobes are made here: "pmu", "tracefs", or None (no kprobes)."""
    if _features().kprobe_pmu is not None:
        return "pmu"
    from tinytrace.kernel import dynevents
    if dynevents.supported("kprobe"):
        return "tracefs"
    return None


# ---------------------------------------------------------------- no kprobes: suggestions

_PREFIXES = ("__x64_sys_", "__ia32_sys_", "__arm64_sys_", "__riscv_sys_", "__s390x_sys_",
             "__se_sys_", "__do_sys_", "__sys_", "do_sys_", "ksys_", "sys_", "__do_", "do_",
             "__x64_", "__arm64_", "vfs_", "__")


def _stems(func):
    """Words a tracepoint for ``func`` might be named after, best first."""
    base = func.split(":")[-1].split("+")[0].strip("*?[]")
    base = base.split(".")[0]
    out = []

    def add(s):
        s = s.strip("_")
        if len(s) >= 3 and s not in out:
            out.append(s)
    stripped = base
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if stripped.startswith(p) and len(stripped) > len(p) + 2:
                stripped = stripped[len(p):]
                changed = True
    add(stripped.rstrip("0123456789"))
    add(stripped)
    add(base)
    return out


# Well-known kernel functions and the tracepoints that cover the same event.
_KNOWN = {
    "schedule": ("sched:sched_switch",), "__schedule": ("sched:sched_switch",),
    "finish_task_switch": ("sched:sched_switch",),
    "try_to_wake_up": ("sched:sched_waking", "sched:sched_wakeup"),
    "wake_up_new_task": ("sched:sched_wakeup_new",),
    "do_exit": ("sched:sched_process_exit",), "do_group_exit": ("sched:sched_process_exit",),
    "kernel_clone": ("sched:sched_process_fork",), "_do_fork": ("sched:sched_process_fork",),
    "copy_process": ("sched:sched_process_fork", "task:task_newtask"),
    "load_elf_binary": ("sched:sched_process_exec",),
    "bprm_execve": ("sched:sched_process_exec",),
    "tcp_v4_connect": ("sock:inet_sock_set_state",),
    "tcp_v6_connect": ("sock:inet_sock_set_state",),
    "tcp_set_state": ("sock:inet_sock_set_state",),
    "inet_csk_accept": ("sock:inet_sock_set_state",),
    "blk_account_io_start": ("block:block_io_start", "block:block_rq_issue"),
    "blk_mq_start_request": ("block:block_rq_issue",),
    "blk_account_io_done": ("block:block_io_done", "block:block_rq_complete"),
    "blk_mq_end_request": ("block:block_rq_complete",),
    "handle_mm_fault": ("exceptions:page_fault_user", "exceptions:page_fault_kernel"),
    "exc_page_fault": ("exceptions:page_fault_user", "exceptions:page_fault_kernel"),
    "do_page_fault": ("exceptions:page_fault_user", "exceptions:page_fault_kernel"),
    "oom_kill_process": ("oom:mark_victim",),
    "__kmalloc": ("kmem:kmalloc",), "kfree": ("kmem:kfree",),
    "do_signal": ("signal:signal_deliver",), "send_signal": ("signal:signal_generate",),
    "__send_signal": ("signal:signal_generate",),
}

_NOISE = frozenset(("do", "sys", "ksys", "x64", "ia32", "arm64", "riscv", "s390x", "se"))


_ENTRY_WORDS = frozenset(("enter", "entry", "start", "begin", "issue"))
_RETURN_WORDS = frozenset(("exit", "end", "done", "return", "complete"))


def _tokens(name):
    return set(t for t in name.lower().split("_") if t and t not in _NOISE)


def suggest_tracepoints(func, retprobe=False, limit=3, events=None):
    """Tracepoints (``category:name``; ``category:*`` for a whole fitting category) that may
    stand in for kernel function ``func``: the syscall tracepoints named after it
    (``sys_exit_*`` for a kretprobe) first, then tracepoints named like it, then those
    sharing at least two words of its name (or one word and a category it starts with).
    ``events``: (category, name) pairs (default: this kernel's)."""
    if events is None:
        from tinytrace.kernel import tracefs
        try:
            events = tracefs.all_events()
        except Exception:
            events = []
    names = set("%s:%s" % e for e in events)
    cats = set(c for c, _ in events)
    out = []
    stems = _stems(func)
    which = "sys_exit_" if retprobe else "sys_enter_"
    bare = func.split(":")[-1].split("+")[0]
    for cand in _KNOWN.get(bare, ()):
        if cand in names and cand not in out:
            out.append(cand)
    for stem in stems:
        for cand in ("syscalls:" + which + stem, "syscalls:" + which + stem + "2"):
            if cand in names and cand not in out:
                out.append(cand)
    for stem in stems:
        for n in sorted(n for n in names if n.split(":", 1)[1] == stem):
            if n not in out:
                out.append(n)
    base = stems[-1] if stems else func
    want = _tokens(base)
    first = base.split("_")[0].lower()
    fitting_cats = set(c for c in cats if c != "syscalls" and len(c) >= 3 and (
        base.lower().startswith(c) or (len(first) >= 3 and c.startswith(first))))
    scored = []
    for c, n in events:
        if c == "syscalls":
            continue
        shared = len((want & _tokens(n)) - set((c,)))
        score = shared + (1 if c in fitting_cats else 0)
        if shared and score >= 2:
            ends = _tokens(n) & (_RETURN_WORDS if retprobe else _ENTRY_WORDS)
            scored.append((-score, 0 if ends else 1, len(n), c, n))
    for _, _, _, c, n in sorted(scored):
        full = "%s:%s" % (c, n)
        if full not in out:
            out.append(full)
    if len(out) < limit:
        for c in sorted(fitting_cats):
            out.append(c + ":*")
    return out[:limit]


def _kernel_has_kprobes_core():
    """True when kallsyms shows the kprobes core (CONFIG_KPROBES) even though no kprobe
    events can be made (CONFIG_KPROBE_EVENTS off)."""
    try:
        from tinytrace.kernel import ksyms
        return bool(ksyms.kallsyms().lookup_all("register_kprobe"))
    except Exception:
        return False


def unavailable_message(probe):
    """The one-line explanation for ``probe`` ("kprobe:do_sys_openat2") on a kernel without
    kprobes, with tracepoint suggestions."""
    kind, _, func = probe.partition(":")
    retprobe = kind.startswith("kr")
    if _kernel_has_kprobes_core():
        why = ("this kernel has kprobes but no kprobe events (CONFIG_KPROBE_EVENTS), which "
               "BPF programs attach through")
    else:
        why = "this kernel was built without CONFIG_KPROBES"
    sugg = suggest_tracepoints(func, retprobe)
    if sugg:
        return "%s: %s; try a tracepoint: %s" % (
            probe, why, ", ".join("tracepoint:" + s for s in sugg))
    return "%s: %s; use tracepoints instead (list them with `tinytrace -l 'tracepoint:*'`)" % (
        probe, why)


def check(func, retprobe=False):
    """Raise ``KprobesUnavailable`` when this kernel cannot make kprobes."""
    if method() is None:
        raise KprobesUnavailable(unavailable_message(
            "%s:%s" % ("kretprobe" if retprobe else "kprobe", func)))


# ---------------------------------------------------------------- what can be probed

def parse_available(text):
    """``[(name, module or None)]`` from the text of available_filter_functions (in file
    order, placeholders for unnamed addresses left out)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        name = parts[0]
        if name.startswith("__ftrace_invalid_address__"):
            continue
        mod = None
        if len(parts) > 1 and parts[1].startswith("[") and parts[1].endswith("]"):
            mod = parts[1][1:-1]
        out.append((name, mod))
    return out


def parse_blacklist(text):
    """Function names from the kprobe blacklist (``0xSTART-0xEND\\tname [module]``)."""
    out = set()
    for line in text.splitlines():
        parts = line.split()
        for p in parts[1:]:
            if not p.startswith("["):
                out.add(p)
                break
    return out


_available = None
_blacklist = None


def available_functions():
    """``[(name, module)]`` from tracefs's available_filter_functions (cached)."""
    global _available
    if _available is None:
        from tinytrace.kernel import tracefs
        try:
            with open(tracefs.path(AVAILABLE)) as f:
                _available = parse_available(f.read())
        except OSError as e:
            raise KernelError("cannot read %s: %s (is the kernel built with "
                              "CONFIG_FUNCTION_TRACER?)" % (AVAILABLE, e.strerror or e))
    return _available


def blacklist(path=BLACKLIST):
    """Names on the kprobe blacklist; empty when debugfs is not mounted."""
    global _blacklist
    if _blacklist is None or path != BLACKLIST:
        try:
            with open(path) as f:
                names = parse_blacklist(f.read())
        except OSError:
            names = set()
        if path != BLACKLIST:
            return names
        _blacklist = names
    return _blacklist


def _split_module(pattern):
    if ":" in pattern:
        mod, _, func = pattern.partition(":")
        return (mod or None), func
    return None, pattern


def has_wildcard(text):
    return any(c in text for c in "*?[")


def matching_functions(pattern, functions=None, excluded=None):
    """Sorted, distinct ``(name, module)`` of the probeable functions matching the shell
    pattern ``[module:]func`` (``functions``/``excluded``: lists for tests)."""
    from fnmatch import fnmatchcase
    mod_pat, func_pat = _split_module(pattern)
    if functions is None:
        functions = available_functions()
    if excluded is None:
        excluded = blacklist()
    out = set()
    for name, mod in functions:
        if name in excluded or not fnmatchcase(name, func_pat):
            continue
        if mod_pat is not None and not fnmatchcase(mod or "vmlinux", mod_pat):
            continue
        out.add((name, mod))
    return sorted(out, key=lambda nm: (nm[0], nm[1] or ""))


# ---------------------------------------------------------------- attaching

def _target(func, offset, retprobe):
    t = "%s:%s" % ("kretprobe" if retprobe else "kprobe", func)
    if offset:
        t += "+%d" % offset
    return t


def _refusal(e, func, offset, retprobe, target):
    """A one-line error for the kernel refusing a kprobe on ``func``."""
    return KprobeError(_refusal_text(e.errno, func, offset, target), e.errno)


def _refusal_text(err, func, offset, target):
    if err == _errno.ENOENT:
        hint = ""
        try:
            from tinytrace.kernel import ksyms
            if not ksyms.kallsyms().lookup_all(func.split(":")[-1]):
                hint = (" (it is not in /proc/kallsyms: inlined, renamed, or in a module "
                        "that is not loaded)")
        except Exception:
            pass
        return "%s: no kernel function %s%s" % (target, func, hint)
    if err == _errno.EILSEQ:
        return "%s: offset %d is not at an instruction boundary of %s" % (target, offset, func)
    if err == _errno.EINVAL:
        if offset:
            return ("%s: the kernel refused offset %d (past the end of %s, or not an "
                    "instruction boundary)" % (target, offset, func))
        return ("%s: %s cannot be probed (on the kprobe blacklist, marked notrace, or not "
                "a function)" % (target, func))
    if err == _errno.EADDRNOTAVAIL:
        return "%s: several kernel functions are named %s" % (target, func)
    if err in (ENOTSUPP, _errno.EOPNOTSUPP):
        return "%s: kprobes are not supported at %s" % (target, func)
    if err == _errno.EBUSY:
        return "%s: %s is already probed in a way that excludes this one (EBUSY)" % (
            target, func)
    return "%s: %s" % (target, os.strerror(err))


def _attach_pmu(prog, func, offset, retprobe, target, link, address=None):
    from tinytrace.kernel import attach as att, perf
    f = _features()
    if address is not None:
        attr = perf.probe_pmu(f.kprobe_pmu, "", address, retprobe, f.kprobe_retprobe_bit)
    else:
        attr = perf.probe_pmu(f.kprobe_pmu, func, offset, retprobe, f.kprobe_retprobe_bit)
    try:
        fd = perf.perf_event_open(attr, pid=-1, cpu=0)
    except OSError as e:
        raise _refusal(e, func, offset, retprobe, target)
    return att.attach_to_event(prog, fd, target, 0, link)


def _attach_tracefs(prog, func, offset, retprobe, target, link, address=None):
    from tinytrace.kernel import dynevents
    if address is not None:
        definition = "0x%x" % address
    else:
        definition = func + ("+%d" % offset if offset else "")
    try:
        return dynevents.attach(prog, "kprobe", definition, retprobe, -1, target, link)
    except dynevents.DynamicEventError as e:
        # The kernel's error_log text says more than the errno; an ambiguous name is EINVAL
        # here ("The symbol is not unique") where the PMU answers EADDRNOTAVAIL.
        err = e.errno
        if "not unique" in (e.reason or ""):
            err = _errno.EADDRNOTAVAIL
        raise KprobeError("%s (%s)" % (_refusal_text(err, func, offset, target), e.reason),
                          err)


def _addresses_of(func):
    from tinytrace.kernel import ksyms
    k = ksyms.kallsyms()
    mod = None
    name = func
    if ":" in func:
        mod, name = func.split(":", 1)
    return sorted(set(a for a, t, m in k.lookup_all(name)
                      if a and t in "Tt" and (mod is None or m == mod)))


def attach(prog, func, offset=0, retprobe=False, link=None):
    """Attach a loaded kprobe-type program to kernel function ``func`` (``module:func``
    allowed) at ``offset`` bytes into it; ``retprobe`` for a kretprobe.  Raises
    ``KprobesUnavailable`` (no kprobes), ``KprobeError`` (refused), ``PrivilegeError``."""
    target = _target(func, offset, retprobe)
    if retprobe and offset:
        raise KprobeError("%s: a kretprobe cannot have an offset" % target)
    how = method()
    if how is None:
        raise KprobesUnavailable(unavailable_message(target.split("+")[0]))
    do = _attach_pmu if how == "pmu" else _attach_tracefs
    try:
        return do(prog, func, offset, retprobe, target, link)
    except KprobeError as e:
        if e.errno != _errno.EADDRNOTAVAIL:
            raise
        err = e
    # The name is ambiguous (6.6+): probe every function of that name by address.
    from tinytrace.kernel import attach as att
    members = []
    try:
        for a in _addresses_of(func):
            members.append(do(prog, func, 0, retprobe, "%s@0x%x" % (target, a), link,
                              address=a + offset))
    except BaseException:
        for m in members:
            m.close()
        raise
    if not members:
        raise err
    return att.Group(members, target)


class KprobeGroup(object):
    """The attachments of a wildcard probe: ``attached`` (function names), ``skipped``
    (``(name, reason)`` the kernel refused), ``close()`` detaches all."""

    def __init__(self, target):
        self.target = target
        self.members = []
        self.attached = []
        self.skipped = []

    def close(self):
        while self.members:
            self.members.pop().close()

    @property
    def closed(self):
        return not self.members

    def __len__(self):
        return len(self.members)

    def __iter__(self):
        return iter(self.members)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _raise_fd_limit(needed):
    """Each probe holds a perf event fd and a link fd: raise RLIMIT_NOFILE's soft limit
    toward the hard one when a wildcard needs more."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = needed + 256
        if soft != resource.RLIM_INFINITY and soft < want:
            new = want if hard == resource.RLIM_INFINITY else min(want, hard)
            if new > soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (ImportError, ValueError, OSError):
        pass


KPROBE_MULTI = 42             # BPF_TRACE_KPROBE_MULTI
KPROBE_MULTI_RETURN = 1       # BPF_F_KPROBE_MULTI_RETURN

_multi = []


def multi_supported():
    """True when this kernel has ``kprobe_multi`` links (5.18+, CONFIG_FPROBE, 64-bit)."""
    if not _multi:
        from tinytrace.kernel import bpf, uprobes
        ok = method() is not None and bpf.kernel_version() >= (5, 18, 0)
        _multi.append(ok and uprobes.try_multi(KPROBE_MULTI) == _errno.EINVAL)
    return _multi[0]


def attach_multi(prog, functions, retprobe=False, cookies=None, target=""):
    """Attach a program loaded with ``expected_attach_type="trace_kprobe_multi"`` to the
    entry (or, ``retprobe``, the return) of every function in ``functions`` -- names, or
    ``(name, module)`` pairs -- with one link.  ``cookies``: one u64 per function, what
    ``get_attach_cookie`` returns there.  Returns a ``uprobes.MultiLink`` whose ``names``
    are the functions in the order given."""
    import struct
    from tinytrace.kernel.libc import ffi
    from tinytrace.kernel.uprobes import MultiLink, _u64_array, link_create_raw
    funcs = [f if isinstance(f, tuple) else (f, None) for f in functions]
    target = target or "%s:%s" % ("kretprobe" if retprobe else "kprobe",
                                  ",".join(n for n, _ in funcs[:3]) +
                                  (",..." if len(funcs) > 3 else ""))
    if not funcs:
        raise KprobeError("%s: nothing to attach" % target)
    if cookies is not None and len(cookies) != len(funcs):
        raise ValueError("cookies: one per function")
    if method() is None:
        raise KprobesUnavailable(unavailable_message(target))
    keep = []
    if all(m is None for _, m in funcs):
        # by name: the kernel resolves them (through ftrace's list)
        order = sorted(range(len(funcs)), key=lambda i: funcs[i][0])
        strs = [ffi.new("char[]", funcs[i][0].encode()) for i in order]
        keep.append(strs)
        syms, syms_p = _u64_array([int(ffi.cast("uintptr_t", s)) for s in strs])
        addrs_p = 0
    else:
        # module functions: by address, from kallsyms
        order, addresses = [], []
        for i, (name, mod) in enumerate(funcs):
            found = _addresses_of("%s:%s" % (mod, name) if mod else name)
            if not found:
                raise KprobeError("%s: no kernel function %s in /proc/kallsyms" % (
                    target, name))
            order.append(i)
            addresses.append(found[0])
        syms, syms_p = None, 0
        addrs, addrs_p = _u64_array(addresses)
        keep.append(addrs)
    keep.append(syms)
    cks, cks_p = _u64_array([cookies[i] for i in order] if cookies is not None else None)
    keep.append(cks)
    tail = struct.pack("<IIQQQ", KPROBE_MULTI_RETURN if retprobe else 0, len(order), syms_p,
                       addrs_p, cks_p)
    pfd = prog if isinstance(prog, int) else prog.fileno()
    try:
        fd = link_create_raw(pfd, KPROBE_MULTI, tail)
    except OSError as e:
        if e.errno in (_errno.EPERM, _errno.EACCES):
            from tinytrace import privileges
            raise privileges.error("attaching %s" % target, e.errno)
        if e.errno in (_errno.ESRCH, _errno.ENOENT):
            raise KprobeError("%s: a function is not in the kernel's traceable list "
                              "(available_filter_functions)" % target, e.errno)
        if e.errno == _errno.EOPNOTSUPP:
            raise KprobeError("%s: this kernel has no kprobe_multi links (CONFIG_FPROBE)"
                              % target, e.errno)
        raise KprobeError("%s: the kernel refused the kprobe_multi link: %s" % (
            target, os.strerror(e.errno)), e.errno)
    finally:
        del keep
    return MultiLink(fd, target, ["%s:%s" % (m, n) if m else n for n, m in funcs])


def attach_matching(prog, pattern, retprobe=False, link=None, functions=None):
    """Attach ``prog`` to every probeable function matching ``pattern`` (see
    ``matching_functions``).  Returns a ``KprobeGroup`` -- or, for a program loaded for
    kprobe_multi links, one ``MultiLink`` whose cookies index its ``names``.  Raises
    ``KprobeError`` when nothing matches or nothing could be attached."""
    kind = "kretprobe" if retprobe else "kprobe"
    target = "%s:%s" % (kind, pattern)
    if method() is None:
        raise KprobesUnavailable(unavailable_message(target))
    names = matching_functions(pattern) if functions is None else functions
    if not names:
        raise KprobeError("%s: no probeable kernel function matches %s" % (target, pattern))
    if getattr(prog, "expected_attach_type", 0) == KPROBE_MULTI:
        return attach_multi(prog, names, retprobe, cookies=list(range(len(names))),
                            target=target)
    _raise_fd_limit(2 * len(names))
    g = KprobeGroup(target)
    try:
        for name, mod in names:
            full = "%s:%s" % (mod, name) if mod else name
            try:
                g.members.append(attach(prog, full, 0, retprobe, link))
                g.attached.append(full)
            except KprobeError as e:
                g.skipped.append((full, str(e)))
            except OSError as e:
                if e.errno in (_errno.EMFILE, _errno.ENFILE):
                    raise KernelError("%s: out of file descriptors after %d probes (raise "
                                      "`ulimit -n`)" % (target, len(g.members)))
                g.skipped.append((full, os.strerror(e.errno)))
    except BaseException:
        g.close()
        raise
    if not g.members:
        first = g.skipped[0][1] if g.skipped else ""
        raise KprobeError("%s: none of the %d matching functions could be probed (%s)" % (
            target, len(names), first))
    return g
