"""uprobe / uretprobe attachment: functions of programs and libraries, by symbol, address or
wildcard, for every process or for one (``-p PID``).

A uprobe is placed at a *file offset* of an ELF file (an inode, really): every process that
maps that file hits it.  The offset comes from the file's symbols (``elf.symbol_offset``:
the symbol's address mapped through its PT_LOAD segment, ppc64le's local entry point, ARM's
Thumb bit cleared) or from a virtual address the user gave.

How a probe is made
-------------------
1. **The uprobe PMU** (4.17+): ``perf_event_open`` with the type from
   ``/sys/bus/event_source/devices/uprobe/type``, ``config1`` pointing at the path,
   ``config2`` the offset, the ``format/retprobe`` bit for a uretprobe, and -- for USDT
   semaphores -- the reference counter's file offset in the ``config`` bits named by
   ``format/ref_ctr_offset`` (``config:32-63``; 4.20+): the kernel then raises the
   semaphore in every process while the probe exists.  Nothing outlives our fd.
2. **tracefs uprobe_events** otherwise: ``p:uprobes/tinytrace_<pid>_<n> /path:0xOFF``
   (``(0xREF)`` appended for a semaphore when tracefs's README lists ``ref_ctr_offset``),
   removed at exit (see ``dynevents``).

With a PID the perf event is opened for that process (``pid``, any CPU): the kernel then
installs the breakpoint only in that process's address space (all its threads; not its
children), so nothing else pays for the probe.  Without one it is opened system-wide (pid
-1, CPU 0; the program still runs on every CPU).

Many probes on one link (``uprobe_multi``, Linux 6.6+)
---------------------------------------------------
Closing a uprobe perf event waits for an RCU grace period under a kernel-wide lock: on the
development VM 70-150 ms each, so a wildcard over 59 libc functions took 8.2 s to detach
(and a Ctrl-C as long).  A ``uprobe_multi`` link holds all of them and goes in one step
(59 probes: 16 ms to attach, 38 ms to detach).  The program must be loaded for it
(``expected_attach_type="trace_uprobe_multi"``), so the compiler decides with
``multi_supported()`` before loading; ``attach_matching`` then uses the link by itself.
Each attach point may carry a cookie (``get_attach_cookie``) telling the program which
function fired.

API for the language (each returns an object with ``close()``; add it to the Session)::

    path = uprobes.resolve("libc")                   # or "/bin/bash", "bash", with pid=...
    a = uprobes.attach_function(prog, path, "malloc", pid=1234)
    a = uprobes.attach_function(prog, path, "readline", retprobe=True)
    a = uprobes.attach_address(prog, path, 0x4a0b0)  # a virtual address of the file
    a = uprobes.attach(prog, path, file_offset, retprobe=False, pid=None, ref_ctr_offset=0)
    g = uprobes.attach_matching(prog, path, "pthread_mutex_*lock")   # ProbeGroup
    uprobes.matching_functions(path, "str*cmp")      # names, for listings
    uprobes.multi_supported()                        # load with trace_uprobe_multi?
    l = uprobes.attach_multi(prog, path, offsets, retprobe=False, pid=None, cookies=None)

The program type is "kprobe" (its context is the user registers, ``struct pt_regs``);
``argN``/``retval`` offsets come from ``regs.user(elf.arch)`` -- see ``regs``.  The
``func`` builtin is the probed symbol's name, known at compile time.
"""
import errno as _errno
import os

from tinytrace.errors import KernelError, UserError

PMU = "/sys/bus/event_source/devices/uprobe"


class UprobeError(UserError):
    """A uprobe that cannot be placed (no such symbol, bad address, refused)."""

    def __init__(self, message, errno=None):
        UserError.__init__(self, message)
        self.errno = errno


class UprobesUnavailable(KernelError):
    """This kernel cannot make uprobes (CONFIG_UPROBE_EVENTS off)."""


def _features():
    from tinytrace.kernel import features
    return features.probe()


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


_ref_ctr = {}


def pmu_ref_ctr_shift():
    """The bit where the uprobe PMU takes a reference counter offset (32), or None when the
    kernel has no such field (before 4.20)."""
    if "pmu" not in _ref_ctr:
        v = _read(PMU + "/format/ref_ctr_offset")
        shift = None
        if v and v.startswith("config:"):
            try:
                shift = int(v.split(":", 1)[1].split("-")[0])
            except ValueError:
                shift = None
        _ref_ctr["pmu"] = shift
    return _ref_ctr["pmu"]


def tracefs_ref_ctr():
    """True when uprobe_events accepts ``path:0xOFF(0xREF)`` (4.20+; tracefs's README
    documents the syntax on kernels that have it)."""
    if "tracefs" not in _ref_ctr:
        ok = False
        try:
            from tinytrace.kernel import tracefs
            ok = "ref_ctr_offset" in (_read(tracefs.path("README")) or "")
        except Exception:
            ok = False
        _ref_ctr["tracefs"] = ok
    return _ref_ctr["tracefs"]


def method():
    """How uprobes are made here: "pmu", "tracefs", or None."""
    if _features().uprobe_pmu is not None:
        return "pmu"
    from tinytrace.kernel import dynevents
    if dynevents.supported("uprobe"):
        return "tracefs"
    return None


def ref_ctr_supported():
    """True when the kernel itself can raise USDT semaphores for our probes."""
    how = method()
    if how == "pmu":
        return pmu_ref_ctr_shift() is not None
    if how == "tracefs":
        return tracefs_ref_ctr()
    return False


# ---------------------------------------------------------------- locating

def resolve(binary, pid=None):
    """The file a probe on ``binary`` goes to: a path, a library name ("libc",
    "libssl.so.3"), a program in PATH, or (with ``pid``) that process's executable or one
    of its libraries.  One-line ``UserError`` when nothing matches."""
    from tinytrace.kernel import ldcache
    return ldcache.resolve_binary(binary, pid)


def _open(path):
    from tinytrace.kernel import elf
    try:
        return elf.open(path)
    except OSError as e:
        raise UprobeError("%s: %s" % (path, e.strerror or e))


THUMB = ("is Thumb code, and 32-bit ARM uprobes can only be placed on ARM-mode "
         "instructions")


def _check_arm_mode(f, sym, what):
    from tinytrace.kernel import elf
    if f.machine == elf.EM_ARM and sym is not None and sym.value & 1:
        raise UprobeError("%s %s" % (what, THUMB))


def is_thumb(path, vaddr):
    """True when the code at virtual address ``vaddr`` of a 32-bit ARM file is Thumb code
    (which ARM uprobes cannot probe): the Thumb bit of the function symbol around it, or,
    for code no symbol covers (static functions of a stripped file), of the entry point --
    distributions build a whole file in one mode."""
    from tinytrace.kernel import elf
    f = _open(path)
    if f.machine != elf.EM_ARM:
        return False
    hit = f.symbolize(vaddr)
    if hit:
        sym = f.find_symbol(hit[0])
        if sym is not None and sym.type in (elf.STT_FUNC, elf.STT_GNU_IFUNC):
            return bool(sym.value & 1)
    return bool(f.entry & 1)


def symbol_offset(path, symbol, offset=0):
    """The file offset of ``symbol`` (+ ``offset`` bytes) in ``path``."""
    from tinytrace.kernel import elf
    f = _open(path)
    sym = f.find_symbol(symbol)
    what = "%s:%s" % (path, symbol)
    if sym is None:
        raise UprobeError("%s: no function %s in %s%s" % (
            what, symbol, path, "" if f.has_symtab or f.section(".dynsym") else
            " (the file has no symbol table)"))
    _check_arm_mode(f, sym, what)
    try:
        base = f.symbol_offset(symbol)
    except elf.ElfError as e:
        raise UprobeError(str(e))
    if offset:
        if sym.size and offset >= sym.size:
            raise UprobeError("%s+%d: offset is past the end of %s (%d bytes)" % (
                what, offset, symbol, sym.size))
        base += offset
    return base


def address_offset(path, address):
    """The file offset of virtual address ``address`` of ``path`` (as ``objdump`` and
    ``nm`` print them)."""
    f = _open(path)
    off = f.vaddr_to_offset(address)
    if off is None:
        raise UprobeError("%s:0x%x: the address is in no loaded segment of the file" % (
            path, address))
    seg = [s for s in f.load_segments if s.vaddr <= address < s.vaddr + s.filesz]
    if seg and not seg[0].executable:
        raise UprobeError("%s:0x%x: the address is not in an executable segment" % (
            path, address))
    return off


def matching_functions(path, pattern):
    """Sorted names of the functions of ``path`` matching the shell pattern."""
    from fnmatch import fnmatchcase
    return [n for n in _open(path).functions() if fnmatchcase(n, pattern)]


# ---------------------------------------------------------------- attaching

def _refusal(e, target, path=None, offset=None):
    err = e.errno
    if err == _errno.EINVAL and path is not None:
        try:
            f = _open(path)
            vaddr = f.offset_to_vaddr(offset)
            if vaddr is not None and is_thumb(path, vaddr):
                return UprobeError("%s: the code there %s" % (target, THUMB), err)
        except UserError:
            pass
    if err == _errno.ENOENT:
        return UprobeError("%s: the file does not exist (for the kernel)" % target, err)
    if err == _errno.EINVAL:
        return UprobeError("%s: the kernel refused the probe (not an instruction it can "
                           "probe, or a semaphore offset it rejects)" % target, err)
    if err in (_errno.ENOTSUP, 524):
        return UprobeError("%s: uprobes cannot be placed on that instruction" % target, err)
    if err == _errno.ESRCH:
        return UprobeError("%s: no process with that PID" % target, err)
    return UprobeError("%s: %s" % (target, os.strerror(err)), err)


def _pid_args(pid):
    if pid is None or pid < 0:
        return -1, 0
    return pid, -1


def attach(prog, path, offset, retprobe=False, pid=None, ref_ctr_offset=0, target="",
           link=None):
    """Attach a loaded kprobe-type program at file ``offset`` of ``path``.  ``pid`` limits
    it to one process; ``ref_ctr_offset`` (file offset of a USDT semaphore) makes the kernel
    raise that counter while the probe exists -- check ``ref_ctr_supported()`` first."""
    target = target or "%s:%s:0x%x" % ("uretprobe" if retprobe else "uprobe", path, offset)
    how = method()
    if how is None:
        raise UprobesUnavailable("%s: this kernel cannot make uprobes (it was built without "
                                 "CONFIG_UPROBE_EVENTS)" % target)
    epid, cpu = _pid_args(pid)
    if how == "pmu":
        from tinytrace.kernel import attach as att, perf
        f = _features()
        attr = perf.probe_pmu(f.uprobe_pmu, os.fsencode(path), offset, retprobe,
                              f.uprobe_retprobe_bit)
        if ref_ctr_offset:
            shift = pmu_ref_ctr_shift()
            if shift is None:
                raise UprobeError("%s: this kernel cannot maintain USDT semaphores (4.20+)"
                                  % target)
            attr.config |= ref_ctr_offset << shift
        try:
            fd = perf.perf_event_open(attr, pid=epid, cpu=cpu)
        except OSError as e:
            raise _refusal(e, target, path, offset)
        return att.attach_to_event(prog, fd, target, cpu, link)
    from tinytrace.kernel import dynevents
    if any(c.isspace() for c in path):
        raise UprobeError("%s: uprobe_events cannot name a path with white space in it"
                          % target)
    definition = "%s:0x%x" % (path, offset)
    if ref_ctr_offset:
        if not tracefs_ref_ctr():
            raise UprobeError("%s: this kernel cannot maintain USDT semaphores (4.20+)"
                              % target)
        definition += "(0x%x)" % ref_ctr_offset
    try:
        return dynevents.attach(prog, "uprobe", definition, retprobe, epid, target, link)
    except dynevents.DynamicEventError as e:
        raise UprobeError(str(e), e.errno)


def attach_function(prog, path, func, retprobe=False, pid=None, offset=0, link=None):
    """Attach at function ``func`` (+ ``offset``) of ``path``."""
    if retprobe and offset:
        raise UprobeError("uretprobe:%s:%s+%d: a uretprobe cannot have an offset" % (
            path, func, offset))
    off = symbol_offset(path, func, offset)
    target = "%s:%s:%s%s" % ("uretprobe" if retprobe else "uprobe", path, func,
                             "+%d" % offset if offset else "")
    return attach(prog, path, off, retprobe, pid, 0, target, link)


def attach_address(prog, path, address, retprobe=False, pid=None, link=None):
    """Attach at virtual address ``address`` of ``path``."""
    off = address_offset(path, address)
    target = "%s:%s:0x%x" % ("uretprobe" if retprobe else "uprobe", path, address)
    return attach(prog, path, off, retprobe, pid, 0, target, link)


class ProbeGroup(object):
    """Attachments made together: ``attached`` (names), ``skipped`` ((name, reason)),
    ``close()`` detaches all."""

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


# ---------------------------------------------------------------- multi links

UPROBE_MULTI = 48            # BPF_TRACE_UPROBE_MULTI
UPROBE_MULTI_RETURN = 1      # BPF_F_UPROBE_MULTI_RETURN


class MultiLink(object):
    """A BPF link holding many kprobes or uprobes (``kprobe_multi``/``uprobe_multi``):
    ``names`` (what each attach point is, in cookie order when cookies were given),
    ``close()`` detaches them all at once."""

    def __init__(self, fd, target, names):
        from tinytrace.kernel.libc import OwnedFd
        self._fd = OwnedFd(fd)
        self.target = target
        self.names = list(names)

    @property
    def fd(self):
        return self._fd.fd

    @property
    def closed(self):
        return self._fd.closed

    def fileno(self):
        return self._fd.fileno()

    def close(self):
        self._fd.close()

    def __len__(self):
        return len(self.names)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return "<MultiLink %s: %d probes fd=%d>" % (self.target, len(self.names), self.fd)


def _u64_array(values):
    from tinytrace.kernel.libc import ffi
    if not values:
        return None, 0
    arr = ffi.new("unsigned long long[]", [v & 0xFFFFFFFFFFFFFFFF for v in values])
    return arr, int(ffi.cast("uintptr_t", arr))


def link_create_raw(prog_fd, attach_type, tail, keep=()):
    """BPF_LINK_CREATE with a multi-link attribute tail (packed bytes after the common
    prog_fd/target_fd/attach_type/flags words).  Returns the link fd; raises OSError."""
    import struct
    from tinytrace.kernel import bpf
    attr = bytearray(struct.pack("<IIII", prog_fd, 0, attach_type, 0) + tail)
    attr += b"\0" * (-len(attr) % 8)
    try:
        return bpf.call(bpf.LINK_CREATE, attr, privilege_errors=False)
    except bpf.BpfError as e:
        raise OSError(e.errno, os.strerror(e.errno))


_multi = {}


def multi_supported():
    """True when this kernel has ``uprobe_multi`` links (6.6+): load programs for wildcard
    uprobes with ``expected_attach_type="trace_uprobe_multi"`` and use ``attach_multi``."""
    if "uprobe" not in _multi:
        from tinytrace.kernel import bpf
        ok = bpf.kernel_version() >= (6, 6, 0) and method() is not None
        _multi["uprobe"] = ok and try_multi(UPROBE_MULTI) == _errno.EINVAL
    return _multi["uprobe"]


def try_multi(attach_type):
    """The errno of an empty multi-link request from a do-nothing kprobe program loaded
    for ``attach_type``: EINVAL (the request) where the kernel has such links, EOPNOTSUPP
    where it was built without them.  (Before they existed the attach type itself was
    EINVAL: callers check the kernel version first.)"""
    import struct
    from tinytrace.kernel import bpf, progs
    exit0 = struct.pack("<BBhiBBhi", 0xB7, 0, 0, 0, 0x95, 0, 0, 0)     # r0 = 0; exit
    try:
        p = progs.load(exit0, "kprobe", "tt_probe", expected_attach_type=attach_type)
    except (progs.VerifierError, bpf.BpfError) as e:
        return getattr(e, "errno", _errno.EINVAL) or _errno.EINVAL
    try:
        fd = link_create_raw(p.fd, attach_type, bytes(48))
        os.close(fd)
        return 0
    except OSError as e:
        return e.errno
    finally:
        p.close()


def attach_multi(prog, path, offsets, retprobe=False, pid=None, ref_ctr_offsets=None,
                 cookies=None, names=None, target=""):
    """Attach a program loaded with ``expected_attach_type="trace_uprobe_multi"`` at every
    file offset of ``path`` in ``offsets`` with one link; ``cookies`` (one u64 per offset)
    are what ``get_attach_cookie`` returns there; ``pid`` limits it to one process.
    Returns a ``MultiLink``."""
    import struct
    from tinytrace.kernel.libc import ffi
    target = target or "%s:%s" % ("uretprobe" if retprobe else "uprobe", path)
    offsets = list(offsets)
    if not offsets:
        raise UprobeError("%s: nothing to attach" % target)
    for arg, what in ((ref_ctr_offsets, "ref_ctr_offsets"), (cookies, "cookies")):
        if arg is not None and len(arg) != len(offsets):
            raise ValueError("%s: one entry per offset" % what)
    cpath = ffi.new("char[]", os.fsencode(path))
    offs, offs_p = _u64_array(offsets)
    refs, refs_p = _u64_array(ref_ctr_offsets)
    cks, cks_p = _u64_array(cookies)
    tail = struct.pack("<QQQQIII", int(ffi.cast("uintptr_t", cpath)), offs_p, refs_p, cks_p,
                       len(offsets), UPROBE_MULTI_RETURN if retprobe else 0,
                       pid if pid is not None and pid > 0 else 0)
    pfd = prog if isinstance(prog, int) else prog.fileno()
    try:
        fd = link_create_raw(pfd, UPROBE_MULTI, tail)
    except OSError as e:
        if e.errno in (_errno.EPERM, _errno.EACCES):
            from tinytrace import privileges
            raise privileges.error("attaching %s" % target, e.errno)
        if e.errno == _errno.EINVAL and getattr(prog, "expected_attach_type", None) not in (
                None, UPROBE_MULTI):
            raise UprobeError("%s: the program was not loaded for uprobe_multi links "
                              "(expected_attach_type trace_uprobe_multi)" % target, e.errno)
        raise _refusal(e, target)
    finally:
        del offs, refs, cks, cpath
    return MultiLink(fd, target, names or ["0x%x" % o for o in offsets])


def attach_matching(prog, path, pattern, retprobe=False, pid=None, link=None):
    """Attach to every function of ``path`` matching ``pattern``; functions the kernel
    refuses (or Thumb code) are skipped and listed in ``skipped``.  A program loaded for
    uprobe_multi links gets one such link (a ``MultiLink`` whose cookies number the
    functions in ``names`` order)."""
    kind = "uretprobe" if retprobe else "uprobe"
    target = "%s:%s:%s" % (kind, path, pattern)
    names = matching_functions(path, pattern)
    if not names:
        raise UprobeError("%s: no function of %s matches %s" % (target, path, pattern))
    if getattr(prog, "expected_attach_type", 0) == UPROBE_MULTI:
        offsets, picked, seen = [], [], set()
        for name in names:
            try:
                off = symbol_offset(path, name)
            except UprobeError:
                continue
            if off not in seen:
                seen.add(off)
                offsets.append(off)
                picked.append(name)
        if not offsets:
            raise UprobeError("%s: none of the matching functions can be probed" % target)
        return attach_multi(prog, path, offsets, retprobe, pid,
                            cookies=list(range(len(offsets))), names=picked, target=target)
    from tinytrace.kernel import kprobes
    kprobes._raise_fd_limit(2 * len(names))
    g = ProbeGroup(target)
    seen = set()
    try:
        for name in names:
            try:
                off = symbol_offset(path, name)
                if off in seen:            # aliases of one function: probe it once
                    g.skipped.append((name, "an alias of a function already probed"))
                    continue
                seen.add(off)
                g.members.append(attach(prog, path, off, retprobe, pid, 0,
                                        "%s:%s:%s" % (kind, path, name), link))
                g.attached.append(name)
            except UprobeError as e:
                g.skipped.append((name, str(e)))
    except BaseException:
        g.close()
        raise
    if not g.members:
        raise UprobeError("%s: none of the %d matching functions could be probed (%s)" % (
            target, len(names), g.skipped[0][1] if g.skipped else ""))
    return g
