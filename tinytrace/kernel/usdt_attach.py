"""USDT probes at run time: finding the locations of a probe, attaching each one with its
semaphore raised, and telling the compiler how to load each argument.

``tinytrace.kernel.usdt`` reads the ``.note.stapsdt`` notes; this module puts uprobes on
them (``uprobes.attach``).

Locations
---------
One probe name may appear at several places in a binary (a macro expanded in several
functions, inlining); every location is a separate note with its own argument operands
(``-4@%eax`` in one place, ``-4@-20(%rbp)`` in another).  So the compiler generates one
program per location -- ``locations()`` returns them -- and each is attached on its own.

Semaphores
----------
A probe with a semaphore only fires while that ``unsigned short`` in the traced program is
non-zero (the program checks it before computing the arguments).  It is raised:

* by the kernel, through the uprobe's reference counter (``ref_ctr_offset``, 4.20+): in
  every process that maps the file, present and future, and lowered when the probe goes;
* otherwise -- only possible for one process, ``-p PID`` -- by writing the counter through
  ``/proc/PID/mem`` (add one at attach, subtract one at close, as BCC does on such kernels).

Without either, ``attach`` refuses with a one-line message saying to give a PID.

Arguments
---------
``arg_access(arg, ...)`` turns a decoded operand (``usdt.UsdtArg``) into what the compiler
emits, using the register table of the kernel and the probed program's ABI
(``regs.user``; a 32-bit ARM program on an arm64 kernel finds r0 in an 8-byte slot)::

    ("reg", off, size, signed)          value = *(size *)(ctx + off)   (sign-extend if signed)
    ("mem", base_off, base_size, disp, size, signed)
                                        addr = *(base_size *)(ctx + base_off) + disp;
                                        value = probe_read_user(size bytes at addr)
    ("mem_index", base_off, base_size, index_off, index_size, scale, disp, size, signed)
                                        addr = base + index * scale + disp; read as "mem"
    ("const", value, size, signed)      an immediate
    ("addr", address, size, signed)     value = probe_read_user(size bytes at address): a
                                        global variable at its run-time address

A global of a position-independent file (a PIE or a library) has no fixed address: it
needs the PID (its load bias is read from /proc/PID/maps).  ``size`` is 1, 2, 4 or 8.
Sign-extend a ``signed`` value narrower than 8 bytes with a left and an arithmetic right
shift: the sign-extending load instruction (BPF_MEMSX) needs Linux 6.6.
"""
import os

from tinytrace.kernel.usdt import (KIND_CONST, KIND_GLOBAL, KIND_MEM, KIND_REG, UsdtError,
                                   UsdtProbe)


# ---------------------------------------------------------------- finding

def locations(target, provider=None, name=None, pid=None):
    """Every location of the probes matching ``provider``/``name`` (shell patterns; None
    matches all) in ``target`` -- a binary or library as ``uprobes.resolve`` takes it, or ''
    with a ``pid`` for every file that process maps.  Sorted by (provider, name, address)."""
    from tinytrace.kernel import usdt
    out = []
    if not target:
        if pid is None:
            raise UsdtError("usdt probes need a binary or a PID")
        for path, ps in usdt.process_probes(pid):
            out.extend(_match(ps, provider, name))
    else:
        from tinytrace.kernel import uprobes
        path = uprobes.resolve(target, pid)
        out = _match(usdt.probes(path), provider, name)
    out.sort(key=lambda p: (p.provider, p.name, p.path, p.pc))
    return out


def _match(probes, provider, name):
    from fnmatch import fnmatchcase
    return [p for p in probes
            if (provider is None or fnmatchcase(p.provider, provider)) and
            (name is None or fnmatchcase(p.name, name))]


def names(target, pid=None):
    """Sorted distinct ``provider:name`` of the probes in ``target`` (listings)."""
    return sorted(set(p.full_name for p in locations(target, pid=pid)))


# ---------------------------------------------------------------- semaphores

def _u16(data):
    import sys
    return int.from_bytes(data, sys.byteorder)


class MemorySemaphore(object):
    """A USDT semaphore raised by writing the process's memory (``/proc/PID/mem``)."""

    def __init__(self, pid, address):
        self.pid, self.address = pid, address
        self.raised = False

    def _add(self, delta):
        import sys
        fd = os.open("/proc/%d/mem" % self.pid, os.O_RDWR | os.O_CLOEXEC)
        try:
            cur = _u16(os.pread(fd, 2, self.address))
            new = max(0, min(0xFFFF, cur + delta))
            os.pwrite(fd, new.to_bytes(2, sys.byteorder), self.address)
            return new
        finally:
            os.close(fd)

    def raise_(self):
        try:
            self._add(1)
        except OSError as e:
            raise UsdtError("cannot raise the USDT semaphore at 0x%x in PID %d: %s" % (
                self.address, self.pid, e.strerror or e))
        self.raised = True

    def lower(self):
        if self.raised:
            self.raised = False
            try:
                self._add(-1)
            except OSError:
                pass                # the process is gone: nothing to restore

    def value(self):
        fd = os.open("/proc/%d/mem" % self.pid, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return _u16(os.pread(fd, 2, self.address))
        finally:
            os.close(fd)


class UsdtAttachment(object):
    """A program on one USDT location: the uprobe, plus the semaphore we raised by hand
    (``semaphore``, None when the kernel keeps it).  ``close()`` undoes both."""

    def __init__(self, probe, attachment, semaphore=None, mode=None):
        self.probe = probe
        self.attachment = attachment
        self.semaphore = semaphore
        self.semaphore_mode = mode           # None, "kernel" or "memory"
        self.target = getattr(attachment, "target", "")

    @property
    def fd(self):
        return self.attachment.fd

    @property
    def closed(self):
        return self.attachment is None

    def close(self):
        a, self.attachment = self.attachment, None
        try:
            if a is not None:
                a.close()
        finally:
            if self.semaphore is not None:
                self.semaphore.lower()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _target(probe):
    return "usdt:%s:%s:%s" % (probe.path, probe.provider, probe.name)


def attach(prog, probe, pid=None, semaphore="auto", link=None):
    """Attach a kprobe-type program to one location (a ``usdt.UsdtProbe``), for process
    ``pid`` or (None) every process.  ``semaphore``: "auto" (the kernel's reference counter
    when it has one, else /proc/PID/mem), "kernel" or "memory" to force one way.  Returns a
    ``UsdtAttachment``."""
    from tinytrace.kernel import uprobes
    target = _target(probe)
    if probe.offset is None:
        raise UsdtError("%s: the probe's address 0x%x is in no loaded segment" % (
            target, probe.pc))
    if probe.arch == "arm" and uprobes.is_thumb(probe.path, probe.pc):
        raise UsdtError("%s: the probe %s" % (target, uprobes.THUMB))
    if not probe.semaphore:
        return UsdtAttachment(probe, uprobes.attach(prog, probe.path, probe.offset, False,
                                                    pid, 0, target, link))
    mode = semaphore
    if mode == "auto":
        mode = "kernel" if uprobes.ref_ctr_supported() and probe.semaphore_offset else \
            "memory"
    if mode == "kernel":
        if not probe.semaphore_offset:
            raise UsdtError("%s: the semaphore at 0x%x is not backed by the file" % (
                target, probe.semaphore))
        a = uprobes.attach(prog, probe.path, probe.offset, False, pid,
                           probe.semaphore_offset, target, link)
        return UsdtAttachment(probe, a, None, "kernel")
    if mode != "memory":
        raise ValueError("semaphore must be auto, kernel or memory, not %r" % semaphore)
    if pid is None or pid < 0:
        raise UsdtError("%s has a semaphore and this kernel cannot raise it (it needs "
                        "Linux 4.20): trace one process with -p PID" % target)
    from tinytrace.kernel import usdt
    addr = usdt.semaphore_address(pid, probe)
    if addr is None:
        raise UsdtError("%s: PID %d does not map %s" % (target, pid, probe.path))
    sem = MemorySemaphore(pid, addr)
    a = uprobes.attach(prog, probe.path, probe.offset, False, pid, 0, target, link)
    try:
        sem.raise_()
    except BaseException:
        a.close()
        raise
    return UsdtAttachment(probe, a, sem, "memory")


def attach_all(prog_for, probes, pid=None, semaphore="auto", link=None):
    """Attach every location: ``prog_for(probe)`` returns the program for that location.
    Returns the list of ``UsdtAttachment`` (all closed again on failure)."""
    out = []
    try:
        for p in probes:
            out.append(attach(prog_for(p), p, pid, semaphore, link))
    except BaseException:
        for a in out:
            a.close()
        raise
    return out


# ---------------------------------------------------------------- arguments

def _table(probe):
    from tinytrace.kernel import regs
    try:
        return regs.user(probe.arch if probe is not None else None)
    except regs.RegsError:
        return None


def _reg(table, name, fallback_offset, size):
    """(offset, size) to load the low ``size`` bytes of register ``name``."""
    if table is not None and name in table.offsets:
        loc = table.reg_loc(name, min(size, table.slot))
        return loc.offset, loc.size
    return fallback_offset, size


def _bias(probe, pid):
    """The load bias of ``probe``'s file in process ``pid``."""
    from tinytrace.kernel import elf
    from tinytrace.kernel.usyms import ProcMaps
    f = elf.open(probe.path)
    for m in ProcMaps(pid).mappings_of(probe.path):
        v = f.offset_to_vaddr(m.offset)
        if v is not None:
            return m.start - v
    raise UsdtError("PID %d does not map %s" % (pid, probe.path))


def arg_access(arg, probe=None, pid=None, index=None):
    """How to load ``arg`` (a ``usdt.UsdtArg`` of ``probe``); see the module docstring.
    ``pid`` is needed only for globals of position-independent files."""
    size, signed = arg.size, arg.signed
    table = _table(probe)
    word = table.word if table is not None else 8
    if arg.kind == KIND_REG:
        off, sz = _reg(table, arg.reg, arg.reg_offset, min(size, arg.reg_size or size))
        return ("reg", off, sz, signed)
    if arg.kind == KIND_CONST:
        return ("const", arg.value, size, signed)
    if arg.kind == KIND_MEM:
        boff, bsz = _reg(table, arg.reg, arg.reg_offset, word)
        if arg.index_reg:
            ioff, isz = _reg(table, arg.index_reg, arg.index_offset, word)
            return ("mem_index", boff, bsz, ioff, isz, arg.scale, arg.offset, size, signed)
        return ("mem", boff, bsz, arg.offset, size, signed)
    if arg.kind == KIND_GLOBAL:
        addr = arg.address if arg.address is not None else arg.offset
        if probe is not None and arg.symbol is not None:
            from tinytrace.kernel import elf
            f = elf.open(probe.path)
            if f.is_dyn:
                what = "argument %s of %s:%s" % (
                    index if index is not None else "", probe.provider, probe.name)
                if pid is None or pid < 0:
                    raise UsdtError("%s reads the global %s of the position-independent "
                                    "file %s: give a PID (-p) so its address is known" % (
                                        what, arg.symbol, probe.path))
                addr += _bias(probe, pid)
        return ("addr", addr, size, signed)
    raise UsdtError("cannot load USDT argument %r" % arg.text)


def arg_accesses(probe, pid=None):
    """``arg_access`` for every argument of ``probe``, in order."""
    return [arg_access(a, probe, pid, i) for i, a in enumerate(probe.args)]


__all__ = ["locations", "names", "attach", "attach_all", "arg_access", "arg_accesses",
           "MemorySemaphore", "UsdtAttachment", "UsdtError", "UsdtProbe"]
