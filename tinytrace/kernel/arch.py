"""Per-architecture facts the kernel interface needs, chosen at run time from ``uname -m``.

One Python tree runs on every board, so nothing here is decided at install time: the machine
name is normalised once, and the syscall numbers and ioctl encoding follow from it.

Syscall numbers (from each architecture's syscall table):

=============  ===============  =====  ===============================================
machine        perf_event_open  bpf    note
=============  ===============  =====  ===============================================
x86_64         298              321
i386           336              357    (32-bit x86, not a target but cheap to know)
aarch64        241              280    asm-generic numbering
arm            364              386    EABI (OABI is not supported by BPF anyway)
riscv64        241              280    asm-generic numbering
loongarch64    241              280    asm-generic numbering
ppc64le/ppc64  319              361    same numbers for 32- and 64-bit powerpc
s390x          331              351
mips o32       4333             4355   32-bit userland (4000 + o32 table)
mips n64       5292             5315   64-bit userland (5000 + n64 table)
mips n32       6296             6319   ILP32 userland on a 64-bit kernel (6000 + n32)
=============  ===============  =====  ===============================================

MIPS has three userland ABIs, and ``uname -m`` names the *kernel* ("mips" or "mips64"), not
the process: a 32-bit Debian mipsel userland on a 64-bit kernel still uses o32 numbers.  The
ABI is therefore taken from this Python process itself: 8-byte pointers mean n64; 4-byte
pointers mean o32, unless the interpreter says it was built for n32 (its ``SOABI``/multiarch
tuple contains ``gnuabin32``).
"""
import os

# name -> {machine: number}
_SYSCALLS = {
    "perf_event_open": {
        "x86_64": 298, "i386": 336, "aarch64": 241, "arm": 364, "riscv64": 241,
        "loongarch64": 241, "ppc64le": 319, "ppc64": 319, "ppc": 319, "s390x": 331,
        "mips-o32": 4333, "mips-n64": 5292, "mips-n32": 6296,
    },
    "bpf": {
        "x86_64": 321, "i386": 357, "aarch64": 280, "arm": 386, "riscv64": 280,
        "loongarch64": 280, "ppc64le": 361, "ppc64": 361, "ppc": 361, "s390x": 351,
        "mips-o32": 4355, "mips-n64": 5315, "mips-n32": 6319,
    },
}

# uname -m spellings -> our names
_ALIASES = {
    "amd64": "x86_64", "x86-64": "x86_64",
    "i486": "i386", "i586": "i386", "i686": "i386", "x86": "i386",
    "arm64": "aarch64", "armv8b": "aarch64", "aarch64_be": "aarch64",
    "powerpc64le": "ppc64le", "powerpc64": "ppc64", "powerpc": "ppc",
    "loong64": "loongarch64",
}

# Architectures whose CPUs keep loads ordered with loads and stores with stores (TSO), so
# reading a ring buffer's head before its data needs no barrier instruction.
_STRONGLY_ORDERED = frozenset(("x86_64", "i386", "s390x"))

_machine = None


def _uname_machine():
    return os.uname().machine


def machine():
    """The normalised machine name *of this process's userland*: x86_64, aarch64, arm,
    riscv64, ppc64le, s390x, mips, loongarch64 (plus i386, ppc64, ppc).  Cached; a machine we
    have no table for keeps its ``uname -m`` spelling so error messages can name it.

    ``uname -m`` names the kernel.  A 32-bit userland on a 64-bit kernel (Raspberry Pi OS
    32-bit on a 64-bit Pi kernel, i386 containers on x86_64) enters the kernel through the
    compat syscall table, so such a process must use the 32-bit numbers."""
    global _machine
    if _machine is None:
        _machine = userland(normalise(_uname_machine()))
    return _machine


_COMPAT = {"aarch64": "arm", "x86_64": "i386", "ppc64le": "ppc", "ppc64": "ppc"}


def userland(mach, pointer_size=None):
    """``mach`` (a kernel machine name) as seen by a process with ``pointer_size``-byte
    pointers (default: this one)."""
    if pointer_size is None:
        import struct
        pointer_size = struct.calcsize("P")
    if pointer_size == 4 and mach in _COMPAT:
        if mach == "x86_64" and _is_x32():
            return "x32"    # not supported: syscall_nr() will say so
        return _COMPAT[mach]
    return mach


def _is_x32():
    import sysconfig
    return "x32" in str(sysconfig.get_config_var("MULTIARCH") or "")


def normalise(raw):
    m = raw.strip().lower()
    if m in _ALIASES:
        return _ALIASES[m]
    if m.startswith("arm") and not m.startswith("arm64"):
        return "arm"          # armv6l, armv7l, armv8l (32-bit userland on arm64), armhf
    if m.startswith("mips"):
        return "mips"         # mips, mipsel, mips64, mips64el
    if m.startswith("riscv64"):
        return "riscv64"
    return m


_KERNEL_64 = frozenset(("x86_64", "aarch64", "riscv64", "ppc64le", "ppc64", "s390x",
                        "loongarch64"))


def kernel_long_size(raw=None):
    """sizeof(long) in the *kernel* (8 on a 64-bit kernel even under a 32-bit userland): the
    size of the ring buffer's ``unsigned long`` consumer/producer positions."""
    raw = (_uname_machine() if raw is None else raw).strip().lower()
    if raw.startswith("mips64"):
        return 8
    return 8 if normalise(raw) in _KERNEL_64 else 4


def mips_abi():
    """'o32', 'n32' or 'n64' for this process (see the module docstring)."""
    import struct
    if struct.calcsize("P") == 8:
        return "n64"
    import sysconfig
    tags = " ".join(str(sysconfig.get_config_var(v) or "") for v in ("SOABI", "MULTIARCH"))
    return "n32" if "abin32" in tags else "o32"


def _table_key(mach):
    if mach == "mips":
        return "mips-" + mips_abi()
    return mach


def syscall_nr(name, mach=None):
    """The number of syscall ``name`` (bpf, perf_event_open) on ``mach`` (default: this
    machine).  Raises KernelError naming the machine when we have no table for it."""
    m = machine() if mach is None else normalise(mach)
    table = _SYSCALLS.get(name)
    if table is None:
        raise KeyError("no syscall table entry for %r" % name)
    key = _table_key(m)
    nr = table.get(key)
    if nr is None:
        from tinytrace.errors import KernelError
        raise KernelError("tinytrace does not know the %s() syscall number on %s "
                          "(supported: x86_64, aarch64, arm, riscv64, ppc64le, s390x, mips, "
                          "loongarch64)" % (name, m))
    return nr


def strongly_ordered(mach=None):
    """True when loads are not reordered with loads (x86, s390x): no read barrier needed."""
    return (machine() if mach is None else normalise(mach)) in _STRONGLY_ORDERED


# ioctl request encoding.  Most architectures use the asm-generic layout (dir in bits 30-31,
# size in 16-29, NONE=0 WRITE=1 READ=2); powerpc and mips have 13 size bits and a 3-bit
# direction field (NONE=1 READ=2 WRITE=4) starting at bit 29.
_IOC_3BIT_DIR = frozenset(("ppc64le", "ppc64", "ppc", "mips"))


def ioc(direction, type_char, nr, size, mach=None):
    """Encode an ioctl request.  ``direction`` is one of 'none', 'r', 'w', 'rw'."""
    m = machine() if mach is None else normalise(mach)
    t = ord(type_char) if isinstance(type_char, str) else type_char
    if m in _IOC_3BIT_DIR:
        bits = {"none": 1, "r": 2, "w": 4, "rw": 6}[direction]
        return (bits << 29) | ((size & 0x1FFF) << 16) | (t << 8) | nr
    bits = {"none": 0, "w": 1, "r": 2, "rw": 3}[direction]
    return (bits << 30) | ((size & 0x3FFF) << 16) | (t << 8) | nr


def parse_cpu_list(text):
    """'0-3,5,7-8' -> [0, 1, 2, 3, 5, 7, 8] (the sysfs cpu-list format)."""
    cpus = []
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.extend(range(int(lo), int(hi) + 1))
        else:
            cpus.append(int(part))
    return cpus


_cpu_lists = {}


def _cpus(which):
    cpus = _cpu_lists.get(which)
    if cpus is None:
        try:
            with open("/sys/devices/system/cpu/" + which) as f:
                cpus = parse_cpu_list(f.read())
        except (OSError, ValueError):
            cpus = list(range(os.cpu_count() or 1))
        _cpu_lists[which] = cpus
    return cpus


def possible_cpus():
    """CPU ids that may ever exist: per-CPU maps hold one value slot for each of them."""
    return _cpus("possible")


def online_cpus():
    """CPU ids online now: per-CPU perf events are opened on these."""
    return _cpus("online")
