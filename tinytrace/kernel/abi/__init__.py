"""ABI facts as data tables, and lookups that pick the table of an architecture.

Every lookup takes ``arch`` (a ``uname -m`` value or one of the names below) or, when it
is None, uses the running kernel's.  Tables are literals in small modules imported on the
first lookup that needs them; nothing here touches the kernel.

Architectures (``machine()`` normalises ``uname -m`` to these):

============ ======================================== ==================================
arch         also accepted                            syscall table
============ ======================================== ==================================
x86_64       amd64                                    syscalls_x86_64
i386         i486 i586 i686 x86                       syscalls_i386
aarch64      arm64                                    syscalls_generic
riscv64                                               syscalls_generic + riscv deltas
loongarch64  loong64                                  syscalls_generic + loongarch deltas
arm          armv5* armv6* armv7* armv8l armhf armel  syscalls_arm (EABI)
ppc64le      ppc64 powerpc64 powerpc64le               syscalls_ppc64
s390x                                                 syscalls_s390x
mips64       mips64el mips_n64                        syscalls_mips_n64
mips         mipsel mips_o32                          syscalls_mips_o32
============ ======================================== ==================================

Lookups:

- ``syscall_name(nr, arch=None, default=None)``, ``syscall_nr(name, arch=None)``,
  ``syscall_table(arch=None)`` (number -> name; shared, do not modify);
- ``errno_name(n, arch=None)``, ``errno_message(n, arch=None)``, ``errno_nr(name, arch=None)``
  (``n`` may be negative, as in return values; kernel-internal codes 512+ are known too);
- ``signal_name(n, arch=None)``, ``signal_nr(name, arch=None)`` (real-time signals are named
  as ``kill -l`` names them: ``SIGRTMIN`` is 34, then ``SIGRTMIN+1`` ... ``SIGRTMAX``);
- ``cap_name(n)``, ``cap_nr(name)``;
- ``tcp_state_name(n)`` (BCC's names: ``ESTABLISHED`` .. ``NEW_SYN_RECV``),
  ``tcp_state_nr(name)``;
- ``softirq_name(vec)``;
- ``open_flags(flags, arch=None)`` -> ``"O_WRONLY|O_CREAT|O_TRUNC"``;
- ``rwbs(opf)`` -> ``"WS"`` from a request's ``cmd_flags``, ``rwbs_words("WS")``;
- ``af_name(n)``, ``af_nr(name)``.

Unknown numbers give None (or ``default``); unknown architectures raise ``ValueError``.
"""
import os

_ALIASES = {
    "x86_64": "x86_64", "amd64": "x86_64",
    "i386": "i386", "i486": "i386", "i586": "i386", "i686": "i386", "x86": "i386",
    "aarch64": "aarch64", "arm64": "aarch64", "aarch64_be": "aarch64",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64", "loong64": "loongarch64",
    "arm": "arm", "armhf": "arm", "armel": "arm", "armv8l": "arm",
    "ppc64le": "ppc64le", "ppc64": "ppc64le", "powerpc64": "ppc64le", "powerpc64le": "ppc64le",
    "s390x": "s390x",
    "mips64": "mips64", "mips64el": "mips64", "mips_n64": "mips64",
    "mips": "mips", "mipsel": "mips", "mips_o32": "mips",
}

_machine = None


def normalize_arch(name):
    """The canonical name of an architecture (see the table above); ``ValueError`` if unknown."""
    key = name.lower()
    arch = _ALIASES.get(key)
    if arch is None and key.startswith("arm") and not key.startswith("arm64"):
        arch = "arm"          # armv5tel, armv6l, armv7l ...
    if arch is None:
        raise ValueError("unknown architecture %r" % (name,))
    return arch


def machine():
    """The running kernel's architecture, normalised (``uname -m``)."""
    global _machine
    if _machine is None:
        _machine = normalize_arch(os.uname().machine)
    return _machine


def _arch(arch):
    return machine() if arch is None else normalize_arch(arch)


# ---------------------------------------------------------------- syscalls

_SYSCALL_MODULES = {
    "x86_64": "syscalls_x86_64", "i386": "syscalls_i386", "arm": "syscalls_arm",
    "ppc64le": "syscalls_ppc64", "s390x": "syscalls_s390x", "mips64": "syscalls_mips_n64",
    "mips": "syscalls_mips_o32", "aarch64": "syscalls_generic", "riscv64": "syscalls_generic",
    "loongarch64": "syscalls_generic",
}
_tables = {}
_by_name = {}


def _load(module):
    import importlib
    return importlib.import_module(__name__ + "." + module)


def syscall_table(arch=None):
    """number -> name of every system call of ``arch`` (a shared dict: do not modify it)."""
    arch = _arch(arch)
    table = _tables.get(arch)
    if table is None:
        mod = _load(_SYSCALL_MODULES[arch])
        table = mod.NAMES
        if arch in ("riscv64", "loongarch64"):
            prefix = "RISCV64" if arch == "riscv64" else "LOONGARCH64"
            table = dict(table)
            for nr in getattr(mod, prefix + "_DROP"):
                del table[nr]
            table.update(getattr(mod, prefix + "_ADD"))
        _tables[arch] = table
    return table


def syscall_name(nr, arch=None, default=None):
    """The name of system call ``nr`` (``"openat"``), or ``default``."""
    return syscall_table(arch).get(nr, default)


def syscall_nr(name, arch=None):
    """The number of system call ``name`` (with or without ``sys_``), or None."""
    arch = _arch(arch)
    rev = _by_name.get(arch)
    if rev is None:
        rev = _by_name[arch] = {v: k for k, v in syscall_table(arch).items()}
    if name.startswith("sys_") and name not in rev:
        name = name[4:]
    return rev.get(name)


# ---------------------------------------------------------------- errno

def _errno_table(arch):
    from . import errnos
    arch = _arch(arch)
    if arch in ("mips", "mips64"):
        return errnos.MIPS
    if arch == "ppc64le":
        t = dict(errnos.GENERIC)
        t.update(errnos.PPC_EXTRA)
        return t
    return errnos.GENERIC


def errno_name(n, arch=None):
    """``"ENOENT"`` for 2 (or -2), or None."""
    from . import errnos
    n = abs(n)
    name = _errno_table(arch).get(n)
    if name is None and n in errnos.KERNEL:
        name = errnos.KERNEL[n][0]
    return name


def errno_message(n, arch=None):
    """``"No such file or directory"`` for 2 (or -2), or None."""
    from . import errnos
    n = abs(n)
    name = _errno_table(arch).get(n)
    if name is None:
        k = errnos.KERNEL.get(n)
        return k[1] if k else None
    return errnos.MESSAGES.get(name)


def errno_nr(name, arch=None):
    """The number of ``name`` (aliases such as EWOULDBLOCK accepted), or None."""
    from . import errnos
    table = _errno_table(arch)
    for want in (name, errnos.ALIASES.get(name)):
        if want is None:
            continue
        for n, nm in table.items():
            if nm == want:
                return n
        for n, (nm, _) in errnos.KERNEL.items():
            if nm == want:
                return n
    return None


# ---------------------------------------------------------------- signals

def _signal_table(arch):
    from . import signals
    arch = _arch(arch)
    if arch in ("mips", "mips64"):
        return signals.MIPS, signals.NSIG["mips"]
    return signals.GENERIC, signals.NSIG["generic"]


def signal_name(n, arch=None):
    """``"SIGKILL"`` for 9; real-time signals as ``kill -l`` shows them; None if out of range."""
    table, nsig = _signal_table(arch)
    if n in table:
        return table[n]
    if n in (32, 33):
        return "SIG%d" % n
    if 34 <= n <= nsig:
        off = n - 34
        if off <= (nsig - 34) // 2:
            return "SIGRTMIN" if off == 0 else "SIGRTMIN+%d" % off
        back = nsig - n
        return "SIGRTMAX" if back == 0 else "SIGRTMAX-%d" % back
    return None


def signal_nr(name, arch=None):
    """The number of ``"SIGTERM"`` or ``"TERM"`` (aliases and SIGRTMIN+n accepted), or None."""
    from . import signals
    table, nsig = _signal_table(arch)
    name = name.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    name = signals.ALIASES.get(name, name)
    for n, nm in table.items():
        if nm == name:
            return n
    for n in range(32, nsig + 1):
        if signal_name(n, arch) == name:
            return n
    return None


# ---------------------------------------------------------------- small tables

def cap_name(n):
    """``"CAP_SYS_ADMIN"`` for 21, or None."""
    from .caps import NAMES
    return NAMES[n] if 0 <= n < len(NAMES) else None


def cap_nr(name):
    from .caps import NAMES
    name = name.upper()
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    return NAMES.index(name) if name in NAMES else None


def tcp_state_name(n):
    """BCC's name of TCP state ``n``: 1 ``ESTABLISHED`` .. 12 ``NEW_SYN_RECV``, or None."""
    from .net import TCP_STATES
    return TCP_STATES[n] if 1 <= n < len(TCP_STATES) else None


def tcp_state_nr(name):
    from .net import TCP_STATES
    name = name.upper()
    if name.startswith("TCP_"):
        name = name[4:]
    return TCP_STATES.index(name) if name in TCP_STATES[1:] else None


def softirq_name(vec):
    """``"net_rx"`` for vector 3, or None."""
    from .softirqs import NAMES
    return NAMES[vec] if 0 <= vec < len(NAMES) else None


def af_name(n):
    """``"AF_INET6"`` for 10, or None."""
    from .net import AF_NAMES
    return AF_NAMES[n] if 0 <= n < len(AF_NAMES) else None


def af_nr(name):
    from .net import AF_ALIASES, AF_NAMES
    name = name if name.startswith("AF_") else "AF_" + name
    for cand in (name, name.upper()):
        if cand in AF_NAMES:
            return AF_NAMES.index(cand)
        if cand in AF_ALIASES:
            return AF_ALIASES[cand]
    return None


# ---------------------------------------------------------------- open flags

def _open_table(arch):
    from . import openflags
    arch = _arch(arch)
    if arch in ("arm", "aarch64"):
        return openflags.ARM
    if arch == "ppc64le":
        return openflags.PPC
    if arch in ("mips", "mips64"):
        return openflags.MIPS
    return openflags.GENERIC


def open_flags(flags, arch=None):
    """open(2) flags as text: ``"O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC"``; bits without a
    name are appended in octal (``"O_RDONLY|0200000000"``)."""
    from .openflags import ORDER
    bits = _open_table(arch)
    flags = int(flags) & 0xFFFFFFFF
    acc = flags & 3
    parts = [("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")[acc]]
    rest = flags & ~3
    for name in ORDER:
        bit = bits[name]
        if not rest & bit:
            continue
        if name == "__O_SYNC":
            if flags & bits["O_DSYNC"]:
                parts.remove("O_DSYNC")
                parts.append("O_SYNC")
            else:
                parts.append("__O_SYNC")
            rest &= ~bit
            continue
        if name == "__O_TMPFILE":
            if "O_DIRECTORY" in parts:
                parts.remove("O_DIRECTORY")
                parts.append("O_TMPFILE")
            else:
                parts.append("__O_TMPFILE")
            rest &= ~bit
            continue
        parts.append(name)
        rest &= ~bit
    if rest:
        parts.append("0%o" % rest)
    return "|".join(parts)


# ---------------------------------------------------------------- block

def rwbs(opf):
    """The ``rwbs`` string the block tracepoints print, from a request's ``cmd_flags``."""
    from . import block as b
    opf = int(opf)
    out = []
    if opf & (1 << b.REQ_PREFLUSH_BIT):
        out.append("F")
    op = opf & ((1 << b.REQ_OP_BITS) - 1)
    out.append({b.REQ_OP_WRITE: "W", b.REQ_OP_DISCARD: "D", b.REQ_OP_SECURE_ERASE: "DE",
                b.REQ_OP_FLUSH: "F", b.REQ_OP_READ: "R"}.get(op, "N"))
    if opf & (1 << b.REQ_FUA_BIT):
        out.append("F")
    if opf & (1 << b.REQ_RAHEAD_BIT):
        out.append("A")
    if opf & (1 << b.REQ_SYNC_BIT):
        out.append("S")
    if opf & (1 << b.REQ_META_BIT):
        out.append("M")
    return "".join(out)


def rwbs_words(text):
    """The meaning of an ``rwbs`` string, e.g. ``"FWFS"`` -> ``["flush", "write", "fua",
    "sync"]``; unknown letters are kept as they are."""
    ops = {"W": "write", "R": "read", "D": "discard", "N": "other", "F": "flush"}
    flags = {"F": "fua", "A": "readahead", "S": "sync", "M": "metadata"}
    words = []
    i = 0
    if len(text) > 1 and text[0] == "F" and text[1] in ops:
        words.append("flush")          # REQ_PREFLUSH before the operation
        i = 1
    if i < len(text) and text[i] in ops:
        if text[i:i + 2] == "DE":
            words.append("secure erase")
            i += 2
        else:
            words.append(ops[text[i]])
            i += 1
    for ch in text[i:]:
        words.append(flags.get(ch, ch))
    return words
