"""Where a probed function's arguments, return value, instruction and stack pointers are in
the register block a kprobe/uprobe (or perf_event) BPF program receives.

A kprobe, kretprobe, uprobe or uretprobe program gets a pointer to the registers the CPU had
at the probe (``struct pt_regs``; its first bytes are ``bpf_user_pt_regs_t``, which is also
the start of ``struct bpf_perf_event_data`` for perf_event programs).  ``argN`` and
``retval`` are loads from it at the byte offsets below, chosen by the **ordinary function
calling convention** of the code being probed -- not the syscall convention (x86_64 passes a
syscall's fourth argument in r10, but a function's in rcx).

Tables (offsets in bytes; ``size`` is sizeof(bpf_user_pt_regs_t), the prefix every kernel
version lets a program read; ``stack`` is where argument N >= len(args) is at function
entry: ``*(sp + base + stride * (N - len(args)))``)::

  arch         slot size  args (in order)             retval  ip         sp    stack
  x86_64        8   168   rdi rsi rdx rcx r8 r9       rax     rip        rsp   8 + 8k
  i386          4    68   eax edx ecx (kernel: -mregparm=3); user code: none (cdecl)  4 + 4k
  aarch64       8   272   x0-x7 (user_pt_regs)        x0      pc         sp    0 + 8k
  arm           4    72   r0-r3 (uregs[18], AAPCS)    r0      pc         sp    0 + 4k
  riscv64       8   256   a0-a7 (user_regs_struct)    a0      pc         sp    0 + 8k
  ppc64le       8   352   r3-r10 (user_pt_regs)       r3      nip        r1    96 + 8k (ELFv2)
  ppc64         8   352   r3-r10                      r3      nip        r1    112 + 8k (ELFv1)
  s390x         8   152   r2-r6 (user_pt_regs)        r2      psw.addr   r15   160 + 8k
  mips          4   184   a0-a3 (o32; pad0[8] first)  v0      cp0_epc    sp    16 + 4k
  mips64        8   304   a0-a7 (n64)                 v0      cp0_epc    sp    0 + 8k
  loongarch64   8   360   a0-a7 (user_pt_regs)        a0      csr_era    sp    0 + 8k

Sources: each architecture's ``struct pt_regs`` / ``user_pt_regs`` (arch/*/include/asm and
uapi ptrace.h, and the ``bpf_user_pt_regs_t`` typedef in uapi bpf_perf_event.h) and its ABI
document (System V AMD64 psABI, i386 psABI + the kernel's -mregparm=3, AAPCS64, AAPCS,
RISC-V ELF psABI, 64-bit ELF V2 / V1 ABI for Power, s390x ELF ABI, MIPS o32 / n64,
LoongArch ELF ABI).  The x86_64 table is checked against the running kernel's BTF and
``<sys/reg.h>`` in the tests.

Caveats the language should surface rather than hide:

* Every argument is assumed to take one register: a 64-bit argument on a 32-bit ABI takes a
  register pair (arm and mips o32 align it to an even register), and structs passed by value
  or floating-point arguments are not in these registers at all.
* 32-bit return values of 64 bits come back in a pair (r0:r1, v0:v1, edx:eax): ``retval`` is
  the low word.
* Stack arguments are only where the table says at function entry (offset 0 of a kprobe or
  uprobe); after the prologue the stack pointer has moved.
* mips: kernels built with CONFIG_CPU_HAS_SMARTMIPS insert ``acx`` before cp0_badvaddr,
  moving ``cp0_epc`` 4 (8) bytes further; the argument registers are not affected.
* x86_64 syscall entry points (``__x64_sys_*``) take ONE argument, a ``struct pt_regs *``
  of the user registers -- arg0 is that pointer, not the syscall's first argument.

Which table: ``kernel()`` for kprobes (the *kernel's* architecture: a 32-bit userland on a
64-bit kernel still sees 64-bit pt_regs), ``user(elf_arch)`` for uprobes/USDT in a program
of ``elf_arch`` (a 32-bit ARM, x86 or mips o32 program on a 64-bit kernel gets the 64-bit
kernel's layout with its own ABI: ``arm`` on ``aarch64`` finds r0-r3 in regs[0..3], 8 bytes
apart, and reads the low 4 bytes of each).

API for the compiler::

    t = regs.kernel()                 # or regs.user(elf.arch), regs.table("aarch64")
    loc = t.arg(2)                    # ArgLoc(kind="reg", offset=96, size=8) on x86_64
    if loc.kind == "reg":   load loc.size bytes at ctx + loc.offset
    else:                   sp = load t.sp_loc(); read loc.size bytes of user/kernel memory
                            at sp + loc.disp  (probe_read_kernel for kprobes, _user for uprobes)
    t.retval_loc(), t.ip_loc(), t.sp_loc(), t.fp_loc()   -> ArgLoc of kind "reg"
    t.offset("rdi")                   # any register name the table knows (USDT operands)
"""
import sys

from tinytrace.errors import UserError


class RegsError(UserError):
    """A register, argument or architecture the tables do not cover."""


class ArgLoc(object):
    """Where a value is: ``kind`` "reg" (``size`` bytes at ``offset`` in the context) or
    "stack" (``size`` bytes of memory at the stack pointer -- itself at ``offset`` in the
    context -- plus ``disp``)."""
    __slots__ = ("kind", "offset", "size", "disp", "register")

    def __init__(self, kind, offset, size, disp=0, register=None):
        self.kind, self.offset, self.size, self.disp = kind, offset, size, disp
        self.register = register

    def __eq__(self, other):
        return isinstance(other, ArgLoc) and (self.kind, self.offset, self.size, self.disp) == \
            (other.kind, other.offset, other.size, other.disp)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((self.kind, self.offset, self.size, self.disp))

    def __repr__(self):
        if self.kind == "reg":
            return "ArgLoc(reg %s @%d, %d bytes)" % (self.register, self.offset, self.size)
        return "ArgLoc(stack *(%s%+d), %d bytes)" % (self.register, self.disp, self.size)


class Regs(object):
    """One register table (see the module docstring).

    ``name`` (``x86_64``, ``arm-on-aarch64`` ...), ``slot`` (bytes per register slot in the
    context), ``word`` (bytes of an argument register in the probed code's ABI), ``size``
    (bytes of bpf_user_pt_regs_t), ``offsets`` ({register name: offset of its slot}),
    ``args`` (argument registers in order), ``retval``, ``ip``, ``sp``, ``fp``, ``ra``
    (register names; ``fp``/``ra`` may be None), ``stack_base``/``stride`` (stack
    arguments), ``big_endian``."""

    def __init__(self, name, slot, size, offsets, args, retval, ip, sp, fp, ra, stack_base,
                 stride, word=None, big_endian=None, note=""):
        self.name = name
        self.slot = slot
        self.word = word or slot
        self.size = size
        self.offsets = offsets
        self.args = tuple(args)
        self.retval, self.ip, self.sp, self.fp, self.ra = retval, ip, sp, fp, ra
        self.stack_base, self.stride = stack_base, stride
        self.big_endian = (sys.byteorder == "big") if big_endian is None else big_endian
        self.note = note

    def __repr__(self):
        return "<Regs %s: args %s, retval %s, %d bytes>" % (
            self.name, " ".join(self.args), self.retval, self.size)

    def offset(self, register):
        """The offset of ``register``'s slot; RegsError for a name the table lacks."""
        try:
            return self.offsets[register]
        except KeyError:
            raise RegsError("no register %r in the %s register table" % (register, self.name))

    def _reg(self, register, size=None):
        size = size or self.word
        off = self.offset(register)
        if self.big_endian and size < self.slot:
            off += self.slot - size          # the low-order bytes come last
        return ArgLoc("reg", off, size, register=register)

    def reg_loc(self, register, size=None):
        """An ArgLoc reading ``size`` (default: the ABI word) low-order bytes of
        ``register``."""
        return self._reg(register, size)

    def arg(self, n):
        """Where argument ``n`` (0-based) of a function is at its entry."""
        if n < 0:
            raise RegsError("argument numbers start at 0, not %d" % n)
        if n < len(self.args):
            return self._reg(self.args[n])
        if self.stride is None:
            raise RegsError("arg%d: only the first %d arguments can be read on %s%s" % (
                n, len(self.args), self.name, " (%s)" % self.note if self.note else ""))
        disp = self.stack_base + self.stride * (n - len(self.args))
        if self.big_endian and self.word < self.stride:
            disp += self.stride - self.word
        return ArgLoc("stack", self.offset(self.sp), self.word, disp, register=self.sp)

    def arg_offset(self, n):
        """The context offset of argument ``n``'s register (RegsError when it is passed on
        the stack)."""
        loc = self.arg(n)
        if loc.kind != "reg":
            raise RegsError("arg%d is passed on the stack on %s (only arg0-arg%d are in "
                            "registers)" % (n, self.name, len(self.args) - 1))
        return loc.offset

    @property
    def nargs(self):
        """How many arguments arrive in registers."""
        return len(self.args)

    def retval_loc(self):
        return self._reg(self.retval)

    def ip_loc(self):
        return self._reg(self.ip, self.word)

    def sp_loc(self):
        return self._reg(self.sp, self.word)

    def fp_loc(self):
        if self.fp is None:
            raise RegsError("%s has no frame pointer register" % self.name)
        return self._reg(self.fp, self.word)

    @property
    def retval_offset(self):
        return self.retval_loc().offset

    @property
    def ip_offset(self):
        return self.ip_loc().offset

    @property
    def sp_offset(self):
        return self.sp_loc().offset


# ---------------------------------------------------------------- the tables

def _x86_64():
    order = ["r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
             "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss"]
    off = dict((n, 8 * i) for i, n in enumerate(order))
    for q, alias in (("rbp", "bp"), ("rbx", "bx"), ("rax", "ax"), ("rcx", "cx"),
                     ("rdx", "dx"), ("rsi", "si"), ("rdi", "di"), ("orig_rax", "orig_ax"),
                     ("rip", "ip"), ("eflags", "flags"), ("rsp", "sp")):
        off[alias] = off[q]
        off["e" + alias] = off[q]
    for i in range(8, 16):
        for suffix in ("d", "w", "b"):
            off["r%d%s" % (i, suffix)] = off["r%d" % i]
    for q, b in (("rax", "al"), ("rbx", "bl"), ("rcx", "cl"), ("rdx", "dl"), ("rsi", "sil"),
                 ("rdi", "dil"), ("rbp", "bpl"), ("rsp", "spl")):
        off[b] = off[q]
    return Regs("x86_64", 8, 168, off, ("rdi", "rsi", "rdx", "rcx", "r8", "r9"), "rax", "rip",
                "rsp", "rbp", None, 8, 8, big_endian=False)


def _i386_offsets():
    order = ["ebx", "ecx", "edx", "esi", "edi", "ebp", "eax", "ds", "es", "fs", "gs",
             "orig_eax", "eip", "cs", "eflags", "esp", "ss"]
    off = dict((n, 4 * i) for i, n in enumerate(order))
    for n in list(off):
        if n.startswith("e") and n not in ("es",):
            off[n[1:]] = off[n]
    off["orig_ax"] = off["orig_eax"]
    for e, b in (("eax", "al"), ("ebx", "bl"), ("ecx", "cl"), ("edx", "dl")):
        off[b] = off[e]
    return off


def _i386_kernel():
    # The kernel is built with -mregparm=3; stack arguments at a kernel probe are not
    # reliable (a same-privilege trap does not save esp in pt_regs), so none are offered.
    return Regs("i386", 4, 68, _i386_offsets(), ("eax", "edx", "ecx"), "eax", "eip", "esp",
                "ebp", None, None, None, big_endian=False,
                note="the kernel passes three arguments in registers")


def _i386_user():
    # cdecl: every argument on the stack, the first just above the return address.
    return Regs("i386", 4, 68, _i386_offsets(), (), "eax", "eip", "esp", "ebp", None, 4, 4,
                big_endian=False)


def _i386_on_x86_64():
    t = _x86_64()
    return Regs("i386-on-x86_64", 8, 168, t.offsets, (), "rax", "rip", "rsp", "rbp", None,
                4, 4, word=4, big_endian=False)


def _aarch64():
    off = {}
    for i in range(31):
        off["x%d" % i] = off["w%d" % i] = off["r%d" % i] = 8 * i
    off["fp"], off["lr"] = off["x29"], off["x30"]
    off["sp"] = off["wsp"] = 248
    off["pc"] = 256
    off["pstate"] = 264
    return Regs("aarch64", 8, 272, off, ["x%d" % i for i in range(8)], "x0", "pc", "sp",
                "x29", "x30", 0, 8)


_ARM_ALIASES = (("sb", 9), ("sl", 10), ("fp", 11), ("ip", 12), ("sp", 13), ("lr", 14),
                ("pc", 15), ("a1", 0), ("a2", 1), ("a3", 2), ("a4", 3))


def _arm():
    off = dict(("r%d" % i, 4 * i) for i in range(16))
    for alias, n in _ARM_ALIASES:
        off[alias] = off["r%d" % n]
    off["cpsr"] = 64
    off["orig_r0"] = 68
    return Regs("arm", 4, 72, off, ("r0", "r1", "r2", "r3"), "r0", "pc", "sp", "fp", "lr",
                0, 4)


def _arm_on_aarch64():
    # A 32-bit task on an arm64 kernel: r0-r14 live in regs[0..14], pc in pc, cpsr in
    # pstate; each slot is 8 bytes of which the task's register is the low half.
    off = dict(("r%d" % i, 8 * i) for i in range(15))
    for alias, n in _ARM_ALIASES:
        if n < 15:
            off[alias] = off["r%d" % n]
    off["pc"] = off["r15"] = 256
    off["cpsr"] = 264
    return Regs("arm-on-aarch64", 8, 272, off, ("r0", "r1", "r2", "r3"), "r0", "pc", "sp",
                "fp", "lr", 0, 4, word=4)


_RISCV_ABI = ["ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3",
              "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10",
              "s11", "t3", "t4", "t5", "t6"]


def _riscv64():
    off = {"pc": 0, "epc": 0}
    for i, n in enumerate(_RISCV_ABI, 1):
        off[n] = off["x%d" % i] = 8 * i
    off["fp"] = off["s0"]
    return Regs("riscv64", 8, 256, off, ["a%d" % i for i in range(8)], "a0", "pc", "sp", "s0",
                "ra", 0, 8, big_endian=False)


def _ppc64_offsets():
    off = {}
    for i in range(32):
        off["r%d" % i] = off["gpr%d" % i] = off["%d" % i] = 8 * i
    for i, n in enumerate(("nip", "msr", "orig_gpr3", "ctr", "link", "xer", "ccr", "softe",
                           "trap", "dar", "dsisr", "result")):
        off[n] = 256 + 8 * i
    off["lr"] = off["link"]
    off["sp"] = off["r1"]
    off["toc"] = off["r2"]
    off["pc"] = off["nip"]
    return off


def _ppc64le():
    return Regs("ppc64le", 8, 352, _ppc64_offsets(), ["r%d" % i for i in range(3, 11)], "r3",
                "nip", "r1", None, "link", 96, 8, big_endian=False)


def _ppc64():
    return Regs("ppc64", 8, 352, _ppc64_offsets(), ["r%d" % i for i in range(3, 11)], "r3",
                "nip", "r1", None, "link", 112, 8, big_endian=True)


def _s390x():
    off = {"args": 0, "orig_gpr2": 0, "psw_mask": 8, "psw_addr": 16, "pc": 16}
    for i in range(16):
        off["r%d" % i] = off["gpr%d" % i] = 24 + 8 * i
    off["sp"] = off["r15"]
    return Regs("s390x", 8, 152, off, ["r%d" % i for i in range(2, 7)], "r2", "psw_addr",
                "r15", "r11", "r14", 160, 8, big_endian=True)


_MIPS_O32 = ["zero", "at", "v0", "v1", "a0", "a1", "a2", "a3", "t0", "t1", "t2", "t3", "t4",
             "t5", "t6", "t7", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "t8", "t9",
             "k0", "k1", "gp", "sp", "fp", "ra"]
_MIPS_N64 = _MIPS_O32[:8] + ["a4", "a5", "a6", "a7", "t0", "t1", "t2", "t3"] + _MIPS_O32[16:]


def _mips_offsets(base, slot, names):
    off = {}
    for i, n in enumerate(names):
        off[n] = off["r%d" % i] = off["$%d" % i] = off["%d" % i] = base + slot * i
    off["s8"] = off["fp"]
    top = base + 32 * slot
    for i, n in enumerate(("cp0_status", "hi", "lo", "cp0_badvaddr", "cp0_cause",
                           "cp0_epc")):
        off[n] = top + slot * i
    off["epc"] = off["pc"] = off["cp0_epc"]
    return off


def _mips():
    # A 32-bit kernel: pad0[8] (the o32 argument save area) comes first.
    return Regs("mips", 4, 184, _mips_offsets(32, 4, _MIPS_O32), ("a0", "a1", "a2", "a3"), "v0",
                "cp0_epc", "sp", "fp", "ra", 16, 4)


def _mips64():
    return Regs("mips64", 8, 304, _mips_offsets(0, 8, _MIPS_N64),
                ("a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"), "v0", "cp0_epc", "sp", "fp",
                "ra", 0, 8)


def _mips_o32_on_mips64():
    return Regs("mips-on-mips64", 8, 304, _mips_offsets(0, 8, _MIPS_O32),
                ("a0", "a1", "a2", "a3"), "v0", "cp0_epc", "sp", "fp", "ra", 16, 4, word=4)


def _loongarch64():
    names = ["zero", "ra", "tp", "sp", "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "t0",
             "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "u0", "fp", "s0", "s1", "s2",
             "s3", "s4", "s5", "s6", "s7", "s8"]
    off = {}
    for i, n in enumerate(names):
        off[n] = off["r%d" % i] = off["$r%d" % i] = off["$%s" % n] = 8 * i
    off["s9"] = off["fp"]
    off["orig_a0"] = 256
    off["csr_era"] = off["era"] = off["pc"] = 264
    off["csr_badv"] = 272
    return Regs("loongarch64", 8, 360, off, ["a%d" % i for i in range(8)], "a0", "csr_era",
                "sp", "fp", "ra", 0, 8, big_endian=False)


_BUILDERS = {
    "x86_64": _x86_64, "i386": _i386_kernel, "i386-user": _i386_user,
    "i386-on-x86_64": _i386_on_x86_64, "aarch64": _aarch64, "arm": _arm,
    "arm-on-aarch64": _arm_on_aarch64, "riscv64": _riscv64, "ppc64le": _ppc64le,
    "ppc64": _ppc64, "s390x": _s390x, "mips": _mips, "mips64": _mips64,
    "mips-on-mips64": _mips_o32_on_mips64, "loongarch64": _loongarch64,
}
ARCHES = ("x86_64", "aarch64", "arm", "riscv64", "ppc64le", "s390x", "mips", "mips64",
          "loongarch64", "ppc64", "i386")

_cache = {}


def table(name):
    """The table called ``name`` (see ``ARCHES``; also the compat ones ``arm-on-aarch64``,
    ``i386-on-x86_64``, ``mips-on-mips64`` and ``i386-user``)."""
    t = _cache.get(name)
    if t is None:
        b = _BUILDERS.get(name)
        if b is None:
            raise RegsError("no register table for %s (known: %s)" % (name, ", ".join(ARCHES)))
        t = _cache[name] = b()
    return t


def kernel_arch(raw=None):
    """The running kernel's architecture in this module's spelling (``uname -m`` names the
    kernel: a 32-bit userland on an arm64 kernel still gets ``aarch64``)."""
    import os
    from tinytrace.kernel import arch
    raw = (os.uname().machine if raw is None else raw).strip().lower()
    if raw.startswith("mips"):
        return "mips64" if raw.startswith("mips64") else "mips"
    return arch.normalise(raw)


def kernel(raw=None):
    """The table for kprobes/kretprobes on this kernel (``raw``: a ``uname -m`` to use
    instead of the running one)."""
    return table(kernel_arch(raw))


_ELF_TO_TABLE = {"x86_64": "x86_64", "i386": "i386-user", "aarch64": "aarch64", "arm": "arm",
                 "riscv64": "riscv64", "ppc64le": "ppc64le", "ppc64": "ppc64",
                 "s390x": "s390x", "mips": "mips", "mipsel": "mips", "mips64": "mips64",
                 "mips64el": "mips64", "loongarch64": "loongarch64"}
_COMPAT = {("aarch64", "arm"): "arm-on-aarch64", ("x86_64", "i386-user"): "i386-on-x86_64",
           ("mips64", "mips"): "mips-on-mips64"}


def user(elf_arch=None, kernel_raw=None):
    """The table for uprobes/USDT in a program of ``elf_arch`` (``ElfFile.arch``; default:
    this process's own userland) on this kernel (``kernel_raw``: a ``uname -m``)."""
    from tinytrace.kernel import arch
    k = kernel_arch(kernel_raw)
    if elf_arch is None:
        elf_arch = arch.machine()
        if elf_arch == "mips":
            elf_arch = "mips64" if arch.mips_abi() == "n64" else "mips"
    name = _ELF_TO_TABLE.get(elf_arch)
    if name is None:
        raise RegsError("no register table for %s programs" % elf_arch)
    if name == "i386-user" and k == "i386":
        return table("i386-user")
    if (k, name) in _COMPAT:
        return table(_COMPAT[(k, name)])
    if name != k:
        raise RegsError("cannot probe a %s program on a %s kernel" % (elf_arch, k))
    return table(name)
