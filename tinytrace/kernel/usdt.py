"""USDT (SystemTap SDT) probes: the ``.note.stapsdt`` notes of an ELF file, decoded.

Each note names a probe (provider, name), the address of its ``nop`` (where the uprobe
goes), an optional semaphore (a ``unsigned short`` in ``.probes`` that the program tests
before doing the work of computing the arguments -- it must be raised while we trace), and
an argument string written by the compiler in the target's assembler syntax, e.g.
``-4@%edi 8@-8(%rbp)`` on x86_64 or ``-4@x0 8@[sp, 16]`` on aarch64.

Addresses in the note are link-time addresses.  When the file was prelinked the whole image
moved, which shows as ``.stapsdt.base``'s address differing from the base recorded in the
note: the probe address and the semaphore address are then moved by the same difference.

Each argument is decoded into a ``UsdtArg``: a register (its offset in that architecture's
``struct pt_regs``), a memory operand (base register + displacement, optionally an index
register and scale), a constant, or a global variable (``sym(%rip)``: read from the address
of a symbol, to which the load bias must be added at run time).
"""
import re
import struct

from tinytrace.errors import UserError

NT_STAPSDT = 3
NOTE_SECTION = ".note.stapsdt"
BASE_SECTION = ".stapsdt.base"
SEMAPHORE_SECTION = ".probes"

KIND_REG, KIND_MEM, KIND_CONST, KIND_GLOBAL = "reg", "mem", "const", "global"


class UsdtError(UserError):
    """A USDT note or argument that cannot be used."""


# --- struct pt_regs layouts --------------------------------------------------------------------
# name -> (offset in struct pt_regs, bytes to read there).  The read width is the register's
# slot; an argument narrower than that is truncated (and sign-extended) afterwards.

def _x86_64():
    full = ["r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
            "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss"]
    off = dict((n, 8 * i) for i, n in enumerate(full))
    regs = {}
    for n in full:
        regs[n] = (off[n], 8)
    for q, d, w, b in (("rax", "eax", "ax", "al"), ("rbx", "ebx", "bx", "bl"),
                       ("rcx", "ecx", "cx", "cl"), ("rdx", "edx", "dx", "dl"),
                       ("rsi", "esi", "si", "sil"), ("rdi", "edi", "di", "dil"),
                       ("rbp", "ebp", "bp", "bpl"), ("rsp", "esp", "sp", "spl"),
                       ("rip", "eip", "ip", None)):
        for n in (d, w, b):
            if n:
                regs[n] = (off[q], 8)
    for q, h in (("rax", "ah"), ("rbx", "bh"), ("rcx", "ch"), ("rdx", "dh")):
        regs[h] = (off[q] + 1, 1)          # bits 8-15 of a little-endian register
    for i in range(8, 16):
        for suffix in ("d", "w", "b"):
            regs["r%d%s" % (i, suffix)] = (off["r%d" % i], 8)
    return regs


def _i386():
    order = ["ebx", "ecx", "edx", "esi", "edi", "ebp", "eax", "ds", "es", "fs", "gs",
             "orig_eax", "eip", "cs", "eflags", "esp", "ss"]
    regs = dict((n, (4 * i, 4)) for i, n in enumerate(order))
    for e, w, b in (("eax", "ax", "al"), ("ebx", "bx", "bl"), ("ecx", "cx", "cl"),
                    ("edx", "dx", "dl"), ("esi", "si", None), ("edi", "di", None),
                    ("ebp", "bp", None), ("esp", "sp", None)):
        regs[w] = regs[e]
        if b:
            regs[b] = regs[e]
    for e, h in (("eax", "ah"), ("ebx", "bh"), ("ecx", "ch"), ("edx", "dh")):
        regs[h] = (regs[e][0] + 1, 1)
    return regs


def _aarch64():
    regs = {}
    for i in range(31):
        regs["x%d" % i] = regs["w%d" % i] = (8 * i, 8)
    regs["fp"] = regs["x29"]
    regs["lr"] = regs["x30"]
    regs["sp"] = regs["wsp"] = (248, 8)
    regs["pc"] = (256, 8)
    return regs


def _arm():
    regs = dict(("r%d" % i, (4 * i, 4)) for i in range(16))
    for alias, n in (("sb", 9), ("sl", 10), ("fp", 11), ("ip", 12), ("sp", 13), ("lr", 14),
                     ("pc", 15)):
        regs[alias] = regs["r%d" % n]
    return regs


def _riscv64():
    # struct pt_regs: epc, then x1..x31 in order.
    abi = ["ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4",
           "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
           "t3", "t4", "t5", "t6"]
    regs = {"pc": (0, 8)}
    for i, n in enumerate(abi, 1):
        regs[n] = regs["x%d" % i] = (8 * i, 8)
    regs["fp"] = regs["s0"]
    return regs


def _ppc64():
    regs = dict(("r%d" % i, (8 * i, 8)) for i in range(32))
    regs.update({"nip": (256, 8), "msr": (264, 8), "ctr": (280, 8), "lr": (288, 8),
                 "link": (288, 8), "xer": (296, 8), "ccr": (304, 8)})
    return regs


def _s390x():
    # struct pt_regs: unsigned long args[1]; psw_t psw (16 bytes); unsigned long gprs[16].
    return dict(("r%d" % i, (24 + 8 * i, 8)) for i in range(16))


_TABLES = {}
_BUILDERS = {"x86_64": _x86_64, "i386": _i386, "aarch64": _aarch64, "arm": _arm,
             "riscv64": _riscv64, "ppc64le": _ppc64, "ppc64": _ppc64, "s390x": _s390x}


def registers(arch):
    """``{register name: (pt_regs offset, width)}`` for ``arch``."""
    t = _TABLES.get(arch)
    if t is None:
        b = _BUILDERS.get(arch)
        if b is None:
            raise UsdtError("USDT arguments are not supported on %s" % arch)
        t = _TABLES[arch] = b()
    return t


# --- arguments --------------------------------------------------------------------------------

class UsdtArg(object):
    """One decoded argument.

    * ``kind``: ``"reg"``, ``"mem"``, ``"const"`` or ``"global"``
    * ``size`` (bytes: 1, 2, 4, 8) and ``signed`` (from the ``-N@`` prefix)
    * reg/mem: ``reg`` (name), ``reg_offset`` and ``reg_size`` (where in pt_regs to load)
    * mem: ``offset`` (displacement); indexed form: ``index_reg``, ``index_offset``,
      ``index_size`` and ``scale`` (address = base + index * scale + offset)
    * const: ``value``
    * global: ``symbol`` + ``offset``; ``address`` (the file's vaddr) once
      ``UsdtProbe.args`` resolved it -- add the load bias at run time
    """
    __slots__ = ("text", "kind", "size", "signed", "reg", "reg_offset", "reg_size", "offset",
                 "index_reg", "index_offset", "index_size", "scale", "value", "symbol",
                 "address")

    def __init__(self, text, kind, size, signed):
        self.text, self.kind, self.size, self.signed = text, kind, size, signed
        self.reg = self.reg_offset = self.reg_size = None
        self.offset = 0
        self.index_reg = self.index_offset = self.index_size = None
        self.scale = 1
        self.value = None
        self.symbol = None
        self.address = None

    def __repr__(self):
        sign = "s" if self.signed else "u"
        if self.kind == KIND_REG:
            d = "%s@%d" % (self.reg, self.reg_offset)
        elif self.kind == KIND_CONST:
            d = str(self.value)
        elif self.kind == KIND_GLOBAL:
            d = "*(%s%+d)" % (self.symbol, self.offset)
        else:
            d = "*(%s%+d" % (self.reg, self.offset)
            if self.index_reg:
                d += " + %s*%d" % (self.index_reg, self.scale)
            d += ")"
        return "UsdtArg(%s%s %s %s)" % (sign, self.size * 8 if self.size else "?", self.kind, d)


_NUM = r"[-+]?(?:0[xX][0-9a-fA-F]+|\d+)"


def _int(s):
    return int(s, 0) if not re.match(r"^[-+]?0\d", s) else int(s, 10)


def _set_reg(arg, regs, name, arch, index=False):
    r = regs.get(name)
    if r is None:
        raise UsdtError("unknown %s register %r in USDT argument %r" % (arch, name, arg.text))
    if index:
        arg.index_reg, arg.index_offset, arg.index_size = name, r[0], r[1]
    else:
        arg.reg, arg.reg_offset, arg.reg_size = name, r[0], r[1]


def _x86_size(name):
    if name in ("al", "bl", "cl", "dl", "ah", "bh", "ch", "dh", "sil", "dil", "bpl", "spl") or \
            re.match(r"^r\d+b$", name):
        return 1
    if name in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "ip") or \
            re.match(r"^r\d+w$", name):
        return 2
    if name.startswith("e") or re.match(r"^r\d+d$", name):
        return 4
    return 8


# Patterns are kept as strings: ``re`` compiles (and caches) them on first use, so importing
# this module costs nothing until an argument is decoded.
# disp(%base,%index,scale), with the displacement a number, a symbol, or both in either
# order ("40+CheckpointStats(%rip)", "counter+8(%rip)").
_X86_MEM = (r"^(?:(?P<disp>%s)\+?(?=[A-Za-z_.(]))?"
                      r"(?:(?P<sym>[A-Za-z_.][\w.$@]*)(?P<symoff>[-+]\d+)?)?"
                      r"\((?P<base>%%\w+)?(?:,(?P<index>%%\w+)(?:,(?P<scale>\d+))?)?\)$" % _NUM)
_X86_SYM = (r"^(?P<sym>[A-Za-z_.][\w.$@]*)(?P<symoff>[-+]\d+)?$")


def _parse_x86(arg, op, regs, arch):
    if op.startswith("$"):
        arg.kind, arg.value = KIND_CONST, _int(op[1:])
        return
    if op.startswith("%"):
        name = op[1:]
        if ":" in name:
            raise UsdtError("segment-relative USDT argument %r is not supported" % arg.text)
        if re.match(r"^([xyz]mm\d+|st\(?\d?\)?)$", name):
            raise UsdtError("USDT argument %r is in a floating-point/vector register, which "
                            "BPF programs cannot read" % arg.text)
        arg.kind = KIND_REG
        _set_reg(arg, regs, name, arch)
        return arg.size or _x86_size(name)
    m = re.match(_X86_MEM, op)
    if m:
        base = m.group("base")
        disp = _int(m.group("disp")) if m.group("disp") else 0
        if m.group("sym"):
            if base not in ("%rip", "%eip", None) or m.group("index"):
                raise UsdtError("USDT argument %r: a symbol with a base register is not "
                                "supported" % arg.text)
            arg.kind, arg.symbol = KIND_GLOBAL, m.group("sym")
            arg.offset = disp + (int(m.group("symoff")) if m.group("symoff") else 0)
            return
        arg.kind, arg.offset = KIND_MEM, disp
        if base is None:
            raise UsdtError("USDT argument %r has no base register" % arg.text)
        _set_reg(arg, regs, base[1:], arch)
        if m.group("index"):
            _set_reg(arg, regs, m.group("index")[1:], arch, index=True)
            arg.scale = int(m.group("scale")) if m.group("scale") else 1
        return
    m = re.match(_X86_SYM, op)
    if m:
        arg.kind, arg.symbol = KIND_GLOBAL, m.group("sym")
        arg.offset = int(m.group("symoff")) if m.group("symoff") else 0
        return
    if re.match("^%s$" % _NUM, op):
        # An absolute address without a symbol: memory at a fixed address.
        arg.kind, arg.symbol, arg.offset = KIND_GLOBAL, None, _int(op)
        return
    raise UsdtError("cannot decode USDT argument %r" % arg.text)


_ARM_MEM = (r"^\[\s*(?P<base>\w+)\s*(?:,\s*#?(?P<off>%s)\s*)?\]$" % _NUM)


def _parse_arm64(arg, op, regs, arch):
    m = re.match(_ARM_MEM, op)
    if m:
        arg.kind = KIND_MEM
        _set_reg(arg, regs, m.group("base"), arch)
        arg.offset = _int(m.group("off")) if m.group("off") else 0
        return
    c = re.match(r"^#?(%s)$" % _NUM, op)
    if c:
        arg.kind, arg.value = KIND_CONST, _int(c.group(1))
        return
    if re.match(r"^\w+$", op):
        arg.kind = KIND_REG
        _set_reg(arg, regs, op, arch)
        return
    raise UsdtError("cannot decode USDT argument %r" % arg.text)


_RISCV_MEM = (r"^(?P<off>%s)?\((?P<base>\w+)\)$" % _NUM)


def _parse_riscv(arg, op, regs, arch):
    m = re.match(_RISCV_MEM, op)
    if m:
        arg.kind = KIND_MEM
        _set_reg(arg, regs, m.group("base"), arch)
        arg.offset = _int(m.group("off")) if m.group("off") else 0
        return
    if re.match(r"^%s$" % _NUM, op):
        arg.kind, arg.value = KIND_CONST, _int(op)
        return
    if re.match(r"^\w+$", op):
        arg.kind = KIND_REG
        _set_reg(arg, regs, op, arch)
        return
    raise UsdtError("cannot decode USDT argument %r" % arg.text)


_PPC_REG = r"(?:%r)?([12]?\d|3[01])"
_PPC_MEM = (r"^(?P<off>%s)\(%s\)$" % (_NUM, _PPC_REG))
_PPC_IDX = (r"^%s,%s$" % (_PPC_REG, _PPC_REG))


def _parse_ppc(arg, op, regs, arch):
    # Bare numbers are registers here; constants carry an "i" prefix.
    c = re.match(r"^i(%s)$" % _NUM, op)
    if c:
        arg.kind, arg.value = KIND_CONST, _int(c.group(1))
        return
    m = re.match(_PPC_MEM, op)
    if m:
        arg.kind, arg.offset = KIND_MEM, _int(m.group("off"))
        _set_reg(arg, regs, "r" + m.group(2), arch)
        return
    m = re.match(_PPC_IDX, op)
    if m:
        arg.kind = KIND_MEM
        _set_reg(arg, regs, "r" + m.group(1), arch)
        _set_reg(arg, regs, "r" + m.group(2), arch, index=True)
        return
    m = re.match(r"^%s$" % _PPC_REG, op)
    if m:
        arg.kind = KIND_REG
        _set_reg(arg, regs, "r" + m.group(1), arch)
        return
    raise UsdtError("cannot decode USDT argument %r" % arg.text)


_S390_MEM = (r"^(?P<off>%s)?\(%%(?P<base>r\d+)(?:,%%(?P<index>r\d+))?\)$" % _NUM)


def _parse_s390(arg, op, regs, arch):
    m = re.match(_S390_MEM, op)
    if m:
        arg.kind = KIND_MEM
        arg.offset = _int(m.group("off")) if m.group("off") else 0
        _set_reg(arg, regs, m.group("base"), arch)
        if m.group("index"):
            _set_reg(arg, regs, m.group("index"), arch, index=True)
        return
    if re.match(r"^%s$" % _NUM, op):
        arg.kind, arg.value = KIND_CONST, _int(op)
        return
    if op.startswith("%"):
        arg.kind = KIND_REG
        _set_reg(arg, regs, op[1:], arch)
        return
    raise UsdtError("cannot decode USDT argument %r" % arg.text)


_PARSERS = {"x86_64": _parse_x86, "i386": _parse_x86, "aarch64": _parse_arm64,
            "arm": _parse_arm64, "riscv64": _parse_riscv, "ppc64le": _parse_ppc,
            "ppc64": _parse_ppc, "s390x": _parse_s390}
_ADDR_SIZE = {"x86_64": 8, "i386": 4, "aarch64": 8, "arm": 4, "riscv64": 8, "ppc64le": 8,
              "ppc64": 8, "s390x": 8}


def parse_arg(text, arch):
    """Decode one argument spec (``-4@%edi``) for ``arch``."""
    parser = _PARSERS.get(arch)
    if parser is None:
        raise UsdtError("USDT arguments are not supported on %s" % arch)
    regs = registers(arch)
    m = re.match(r"^(-?)(\d+)@(.+)$", text)
    if m and int(m.group(2)) in (1, 2, 4, 8, 16):
        size, signed, op = int(m.group(2)), m.group(1) == "-", m.group(3)
    else:
        size, signed, op = None, False, text      # old-style spec without a size
    if size == 16:
        raise UsdtError("USDT argument %r is 16 bytes wide (a vector register); only "
                        "integers up to 8 bytes are supported" % text)
    arg = UsdtArg(text, None, size, signed)
    implied = parser(arg, op.strip(), regs, arch)
    if arg.size is None:
        arg.size = implied or _ADDR_SIZE[arch]
    return arg


def split_args(text):
    """Split an argument string on the spaces between arguments (not those inside
    ``[sp, 16]``)."""
    out, depth, cur = [], 0, []
    for ch in text.strip():
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == " " and depth <= 0:
            if cur:
                out.append("".join(cur))
                cur = []
            continue
        cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


def parse_args(text, arch):
    """Decode a whole argument string into a list of ``UsdtArg``."""
    return [parse_arg(a, arch) for a in split_args(text)]


# --- notes ------------------------------------------------------------------------------------

class UsdtProbe(object):
    """One probe site.  ``pc`` and ``semaphore`` are (base-adjusted) virtual addresses of the
    file; ``offset`` and ``semaphore_offset`` are file offsets -- the values for the uprobe's
    offset and its ``ref_ctr_offset``.  ``args`` decodes on first use (and raises
    ``UsdtError`` for an argument it cannot decode), so listing never fails."""
    __slots__ = ("path", "provider", "name", "pc", "base", "semaphore", "offset",
                 "semaphore_offset", "arg_text", "arch", "_args", "_elf")

    def __init__(self, elf, path, provider, name, pc, base, semaphore, offset, sem_offset,
                 arg_text):
        self._elf = elf
        self.path, self.provider, self.name = path, provider, name
        self.pc, self.base, self.semaphore = pc, base, semaphore
        self.offset, self.semaphore_offset = offset, sem_offset
        self.arg_text, self.arch = arg_text, elf.arch
        self._args = None

    @property
    def args(self):
        if self._args is None:
            args = parse_args(self.arg_text, self.arch) if self.arg_text else []
            for a in args:
                if a.kind == KIND_GLOBAL:
                    if a.symbol is None:
                        a.address = a.offset
                    else:
                        s = self._elf.find_symbol(a.symbol)
                        if s is None:
                            raise UsdtError("USDT %s:%s: argument %r names unknown symbol %r" %
                                            (self.provider, self.name, a.text, a.symbol))
                        a.address = s.value + a.offset
            self._args = args
        return self._args

    @property
    def full_name(self):
        return "%s:%s" % (self.provider, self.name)

    def __repr__(self):
        return "UsdtProbe(%s:%s @ %#x, sem=%#x, args=%r)" % (
            self.provider, self.name, self.pc, self.semaphore, self.arg_text)


def read_probes(elf, path=None):
    """Every USDT probe of an ``ElfFile``, in note order."""
    path = path or elf.path or elf.name
    addr_fmt = elf.endian + ("QQQ" if elf.bits == 64 else "III")
    addr_len = struct.calcsize(addr_fmt)
    base_sec = elf.section(BASE_SECTION)
    out = []
    for n in elf.notes(NOTE_SECTION):
        if n.name != "stapsdt" or n.type != NT_STAPSDT or len(n.desc) < addr_len:
            continue
        pc, base, sem = struct.unpack_from(addr_fmt, n.desc, 0)
        strings = n.desc[addr_len:].split(b"\0")
        if len(strings) < 3:
            continue
        provider, name, args = (s.decode("utf-8", "surrogateescape") for s in strings[:3])
        if base_sec is not None and base:
            delta = base_sec.addr - base
            pc += delta
            if sem:
                sem += delta
        offset = elf.vaddr_to_offset(pc)
        sem_off = _semaphore_offset(elf, sem) if sem else None
        out.append(UsdtProbe(elf, path, provider, name, pc, base, sem, offset, sem_off,
                             args.strip()))
    return out


def _semaphore_offset(elf, addr):
    sec = elf.section(SEMAPHORE_SECTION)
    if sec is not None and sec.contains_addr(addr) and sec.type != 8:   # not NOBITS
        return addr - sec.addr + sec.offset
    return elf.vaddr_to_offset(addr)


def probes(path):
    """The USDT probes of the file at ``path`` (cached with the parsed file)."""
    from tinytrace.kernel import elf as elfmod
    f = elfmod.open(path)
    cached = getattr(f, "_usdt_probes", None)
    if cached is None:
        cached = read_probes(f, path)
        f._usdt_probes = cached
    return cached


def find(path, provider=None, name=None):
    """Probes of ``path`` whose provider and name match (shell-style patterns; None
    matches all)."""
    import fnmatch
    out = []
    for p in probes(path):
        if provider is not None and not fnmatch.fnmatchcase(p.provider, provider):
            continue
        if name is not None and not fnmatch.fnmatchcase(p.name, name):
            continue
        out.append(p)
    return out


def process_probes(pid):
    """``(path, probes)`` for every mapped ELF file of process ``pid`` that has USDT probes
    (the executable and its libraries; paths usable from here, see ``ldcache``)."""
    from tinytrace.kernel import elf as elfmod
    from tinytrace.kernel.ldcache import mapped_files, _in_root
    out = []
    for path in mapped_files(pid):
        p = _in_root(path, pid)
        try:
            ps = probes(p)
        except (elfmod.ElfError, OSError):
            continue
        if ps:
            out.append((p, ps))
    return out


def semaphore_address(pid, probe):
    """Where ``probe``'s semaphore lives in process ``pid`` (for writes through
    /proc/PID/mem), or None when the file is not mapped there."""
    if not probe.semaphore or probe.semaphore_offset is None:
        return None
    from tinytrace.kernel.usyms import ProcMaps
    return ProcMaps(pid).address_of_file_offset(probe.path, probe.semaphore_offset)
