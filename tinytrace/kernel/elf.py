"""A small ELF reader: what uprobes, USDT and user-stack symbolization need, nothing more.

It reads 32- and 64-bit files of either byte order through ``mmap`` (or from a bytes object,
for images taken from memory such as ``[vdso]``), and touches only the parts it is asked
about: opening a 200 MB ``libjvm.so`` reads its header and nothing else, finding one symbol
reads the symbol and string tables, and symbolizing an address builds one sorted index per
file (cached on the object).

Addresses in this module are the file's own virtual addresses (``st_value``, ``p_vaddr``);
turning a run-time address into one is the caller's business (see ``usyms``), helped by
``offset_to_vaddr``.  For a uprobe the kernel wants a *file offset*: ``symbol_offset(name)``
maps the symbol's address through the ``PT_LOAD`` segment that holds it.
"""
import struct

from tinytrace.errors import UserError

# e_type
ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
# p_type
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4
# sh_type
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOTE, SHT_NOBITS, SHT_DYNSYM = 1, 2, 3, 7, 8, 11
# special section indexes
SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_COMMON, SHN_XINDEX = 0, 0xff00, 0xfff1, 0xfff2, 0xffff
# symbol types and bindings
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE, STT_COMMON, STT_TLS = range(7)
STT_GNU_IFUNC = 10
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STB_GNU_UNIQUE = 10
# note types
NT_GNU_BUILD_ID = 3
# e_machine
EM_386, EM_MIPS, EM_PPC, EM_PPC64, EM_S390, EM_ARM = 3, 8, 20, 21, 22, 40
EM_X86_64, EM_AARCH64, EM_RISCV, EM_LOONGARCH = 62, 183, 243, 258

SYMBOL_TYPES = {STT_NOTYPE: "NOTYPE", STT_OBJECT: "OBJECT", STT_FUNC: "FUNC",
                STT_SECTION: "SECTION", STT_FILE: "FILE", STT_COMMON: "COMMON",
                STT_TLS: "TLS", STT_GNU_IFUNC: "IFUNC"}
SYMBOL_BINDINGS = {STB_LOCAL: "LOCAL", STB_GLOBAL: "GLOBAL", STB_WEAK: "WEAK",
                   STB_GNU_UNIQUE: "UNIQUE"}

# e_machine -> the architecture name tinytrace uses (tinytrace.kernel.arch's spelling).
MACHINES = {EM_386: "i386", EM_MIPS: "mips", EM_PPC: "ppc", EM_PPC64: "ppc64",
            EM_S390: "s390x", EM_ARM: "arm", EM_X86_64: "x86_64", EM_AARCH64: "aarch64",
            EM_RISCV: "riscv", EM_LOONGARCH: "loongarch64"}

# Symbol types an address can be attributed to.
_ADDRESS_TYPES = (STT_FUNC, STT_GNU_IFUNC, STT_OBJECT)
# Ranking when several symbols start at one address: global beats weak beats local.
_BIND_RANK = {STB_GLOBAL: 0, STB_GNU_UNIQUE: 0, STB_WEAK: 1, STB_LOCAL: 2}


class ElfError(UserError):
    """A file that is not ELF, is truncated, or lacks what was asked of it."""


class Section(object):
    """One section header (``name`` resolved through ``.shstrtab``)."""
    __slots__ = ("index", "name", "type", "flags", "addr", "offset", "size", "link", "info",
                 "align", "entsize")

    def __init__(self, index, name, type, flags, addr, offset, size, link, info, align,
                 entsize):
        self.index, self.name, self.type, self.flags = index, name, type, flags
        self.addr, self.offset, self.size, self.link = addr, offset, size, link
        self.info, self.align, self.entsize = info, align, entsize

    def contains_addr(self, addr):
        return self.addr <= addr < self.addr + self.size

    def __repr__(self):
        return "Section(%d, %r, type=%d, addr=%#x, offset=%#x, size=%#x)" % (
            self.index, self.name, self.type, self.addr, self.offset, self.size)


class Segment(object):
    """One program header."""
    __slots__ = ("type", "flags", "offset", "vaddr", "paddr", "filesz", "memsz", "align")

    def __init__(self, type, flags, offset, vaddr, paddr, filesz, memsz, align):
        self.type, self.flags, self.offset, self.vaddr = type, flags, offset, vaddr
        self.paddr, self.filesz, self.memsz, self.align = paddr, filesz, memsz, align

    @property
    def executable(self):
        return bool(self.flags & 1)

    def __repr__(self):
        return "Segment(type=%d, flags=%d, offset=%#x, vaddr=%#x, filesz=%#x, memsz=%#x)" % (
            self.type, self.flags, self.offset, self.vaddr, self.filesz, self.memsz)


class Symbol(object):
    """One symbol table entry.  ``type`` and ``bind`` are the STT_/STB_ numbers;
    ``type_name``/``bind_name`` spell them the way readelf does."""
    __slots__ = ("name", "value", "size", "type", "bind", "other", "shndx", "table", "_elf")

    def __init__(self, name, value, size, info, other, shndx, table, elf):
        self.name, self.value, self.size = name, value, size
        self.type, self.bind = info & 0xf, info >> 4
        self.other, self.shndx, self.table, self._elf = other, shndx, table, elf

    @property
    def type_name(self):
        return SYMBOL_TYPES.get(self.type, str(self.type))

    @property
    def bind_name(self):
        return SYMBOL_BINDINGS.get(self.bind, str(self.bind))

    @property
    def defined(self):
        return self.shndx != SHN_UNDEF

    @property
    def section(self):
        """The name of the section the symbol lives in, ``"ABS"``, ``"COMMON"`` or None."""
        if self.shndx == SHN_UNDEF:
            return None
        if self.shndx == SHN_ABS:
            return "ABS"
        if self.shndx == SHN_COMMON:
            return "COMMON"
        secs = self._elf.sections
        return secs[self.shndx].name if self.shndx < len(secs) else None

    @property
    def address(self):
        """The code address: ``value`` without the Thumb bit on 32-bit ARM."""
        if self._elf.machine == EM_ARM and self.type in (STT_FUNC, STT_GNU_IFUNC):
            return self.value & ~1
        return self.value

    def __repr__(self):
        return "Symbol(%r, %#x, size=%d, %s, %s)" % (self.name, self.value, self.size,
                                                      self.type_name, self.bind_name)


class Note(object):
    """One ELF note: owner ``name`` (str), ``type``, ``desc`` (bytes), and where ``desc``
    starts in the file (``offset``; for a note read from a section, else None)."""
    __slots__ = ("name", "type", "desc", "offset")

    def __init__(self, name, type, desc, offset):
        self.name, self.type, self.desc, self.offset = name, type, desc, offset

    def __repr__(self):
        return "Note(%r, %d, %d bytes)" % (self.name, self.type, len(self.desc))


def parse_notes(data, endian="<", align=4, base_offset=None):
    """Iterate over the notes packed in ``data`` (a section's or a segment's contents)."""
    hdr = struct.Struct(endian + "III")
    pos, end = 0, len(data)
    mask = align - 1
    while pos + 12 <= end:
        namesz, descsz, ntype = hdr.unpack_from(data, pos)
        name_at = pos + 12
        desc_at = (name_at + namesz + mask) & ~mask
        next_at = (desc_at + descsz + mask) & ~mask
        if desc_at + descsz > end:
            return
        name = bytes(data[name_at:name_at + namesz]).rstrip(b"\0").decode("utf-8", "replace")
        desc = bytes(data[desc_at:desc_at + descsz])
        yield Note(name, ntype, desc,
                   None if base_offset is None else base_offset + desc_at)
        pos = next_at


class ElfFile(object):
    """An ELF file (``path``) or image (``data``, bytes-like).

    Use ``tinytrace.kernel.elf.open(path)`` to share one parsed file between callers.
    """

    def __init__(self, path=None, data=None, name=None):
        self.path = path
        self.name = name or path or "<memory>"
        self._map = None
        if data is None:
            data = self._map_file(path)
        self._data = data
        self._parse_header()
        self._sections = None
        self._segments = None
        self._tables = {}
        self._addr_index = None

    # -- opening -------------------------------------------------------------------------

    def _map_file(self, path):
        import mmap
        import os
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise ElfError("%s: %s" % (path, e.strerror or e))
        try:
            size = os.fstat(fd).st_size
            if size < 16:
                raise ElfError("%s: not an ELF file (%d bytes)" % (path, size))
            try:
                self._map = mmap.mmap(fd, 0, mmap.MAP_PRIVATE, mmap.PROT_READ)
            except (OSError, ValueError):
                # Not mappable (a pipe, procfs, an odd filesystem): read it instead.
                import io
                with io.open(fd, "rb", closefd=False) as f:
                    return f.read()
            return self._map
        finally:
            os.close(fd)

    def close(self):
        """Release the mapping.  Objects returned earlier (symbols, notes) stay valid."""
        if self._map is not None:
            try:
                self._map.close()
            except Exception:
                pass
            self._map = None
        self._data = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _parse_header(self):
        d = self._data
        if len(d) < 52 or d[:4] != b"\x7fELF":
            raise ElfError("%s: not an ELF file" % self.name)
        ei_class, ei_data = d[4], d[5]
        if ei_class not in (1, 2) or ei_data not in (1, 2):
            raise ElfError("%s: unsupported ELF class %d / data %d" % (self.name, ei_class,
                                                                        ei_data))
        self.bits = 32 if ei_class == 1 else 64
        self.endian = "<" if ei_data == 1 else ">"
        e = self.endian
        if self.bits == 64:
            if len(d) < 64:
                raise ElfError("%s: truncated ELF header" % self.name)
            (self.type, self.machine, _, self.entry, self.phoff, self.shoff, self.flags, _,
             self.phentsize, self.phnum, self.shentsize, self.shnum,
             self.shstrndx) = struct.unpack_from(e + "HHIQQQIHHHHHH", d, 16)
            self._addr = "Q"
        else:
            (self.type, self.machine, _, self.entry, self.phoff, self.shoff, self.flags, _,
             self.phentsize, self.phnum, self.shentsize, self.shnum,
             self.shstrndx) = struct.unpack_from(e + "HHIIIIIHHHHHH", d, 16)
            self._addr = "I"

    # -- header facts --------------------------------------------------------------------

    @property
    def little_endian(self):
        return self.endian == "<"

    @property
    def arch(self):
        """The architecture name (``x86_64``, ``aarch64``, ``arm``, ``riscv64``,
        ``ppc64le``, ``s390x`` ...), from e_machine, class and byte order."""
        m = MACHINES.get(self.machine, "em%d" % self.machine)
        if m == "riscv":
            return "riscv64" if self.bits == 64 else "riscv32"
        if m == "ppc64":
            return "ppc64le" if self.little_endian else "ppc64"
        if m == "mips" and self.bits == 64:
            return "mips64" if not self.little_endian else "mips64el"
        if m == "mips" and self.little_endian:
            return "mipsel"
        if m == "s390x" and self.bits == 32:
            return "s390"
        return m

    @property
    def is_dyn(self):
        """ET_DYN: a shared object or a PIE executable, loaded at a bias chosen at run time."""
        return self.type == ET_DYN

    @property
    def is_exec(self):
        """ET_EXEC: a non-PIE executable, loaded at its link addresses."""
        return self.type == ET_EXEC

    # -- raw reads ------------------------------------------------------------------------

    def read(self, offset, size):
        """``size`` bytes at file ``offset`` (fewer at the end of the file)."""
        return bytes(self._data[offset:offset + size])

    def read_vaddr(self, vaddr, size):
        """Bytes at a virtual address of the file's image, or None if not backed by the file."""
        off = self.vaddr_to_offset(vaddr)
        if off is None:
            return None
        return self.read(off, size)

    def read_cstring(self, offset, limit=4096):
        d = self._data
        end = d.find(b"\0", offset, offset + limit)
        if end < 0:
            end = min(len(d), offset + limit)
        return bytes(d[offset:end]).decode("utf-8", "surrogateescape")

    # -- sections --------------------------------------------------------------------------

    @property
    def sections(self):
        if self._sections is None:
            self._sections = self._parse_sections()
        return self._sections

    def _parse_sections(self):
        if not self.shoff:
            return []
        e, d = self.endian, self._data
        if self.bits == 64:
            fmt = struct.Struct(e + "IIQQQQIIQQ")
        else:
            fmt = struct.Struct(e + "IIIIIIIIII")
        shnum, shstrndx = self.shnum, self.shstrndx
        if self.shoff + fmt.size > len(d):
            raise ElfError("%s: section headers beyond the end of the file" % self.name)
        if shnum == 0 or shstrndx == SHN_XINDEX:
            # Extended numbering: the real values live in section 0.
            s0 = fmt.unpack_from(d, self.shoff)
            if shnum == 0:
                shnum = s0[5]
            if shstrndx == SHN_XINDEX:
                shstrndx = s0[6]
        entsize = self.shentsize or fmt.size
        if self.shoff + shnum * entsize > len(d):
            raise ElfError("%s: section headers beyond the end of the file" % self.name)
        raw = []
        for i in range(shnum):
            # (name, type, flags, addr, offset, size, link, info, align, entsize): the same
            # order for both classes, only the widths differ.
            raw.append(fmt.unpack_from(d, self.shoff + i * entsize))
        names_off = raw[shstrndx][4] if shstrndx < len(raw) else None
        out = []
        for i, r in enumerate(raw):
            name = self.read_cstring(names_off + r[0], 256) if names_off is not None else ""
            out.append(Section(i, name, *r[1:]))
        return out

    def section(self, name):
        """The first section called ``name``, or None."""
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def section_data(self, section):
        """A section's contents (bytes); empty for SHT_NOBITS."""
        if isinstance(section, str):
            section = self.section(section)
            if section is None:
                return b""
        if section.type == SHT_NOBITS:
            return b""
        return bytes(self._data[section.offset:section.offset + section.size])

    def section_for_addr(self, addr):
        """The allocated section whose address range holds ``addr``, or None."""
        for s in self.sections:
            if s.addr and s.flags & 2 and s.contains_addr(addr):
                return s
        return None

    # -- segments ----------------------------------------------------------------------------

    @property
    def segments(self):
        if self._segments is None:
            self._segments = self._parse_segments()
        return self._segments

    def _parse_segments(self):
        if not self.phoff or not self.phnum:
            return []
        e, d = self.endian, self._data
        out = []
        if self.bits == 64:
            fmt = struct.Struct(e + "IIQQQQQQ")
        else:
            fmt = struct.Struct(e + "IIIIIIII")
        entsize = self.phentsize or fmt.size
        if self.phoff + self.phnum * entsize > len(d):
            raise ElfError("%s: program headers beyond the end of the file" % self.name)
        for i in range(self.phnum):
            v = fmt.unpack_from(d, self.phoff + i * entsize)
            if self.bits == 64:
                typ, flags, off, vaddr, paddr, filesz, memsz, align = v
            else:
                typ, off, vaddr, paddr, filesz, memsz, flags, align = v
            out.append(Segment(typ, flags, off, vaddr, paddr, filesz, memsz, align))
        return out

    @property
    def load_segments(self):
        return [s for s in self.segments if s.type == PT_LOAD]

    @property
    def load_bias_base(self):
        """The lowest PT_LOAD vaddr rounded down to its alignment: what a loader maps at
        the load bias.  0 for most shared objects and PIEs."""
        loads = self.load_segments
        if not loads:
            return 0
        low = min(loads, key=lambda s: s.vaddr)
        align = low.align if low.align > 1 else 0x1000
        return low.vaddr - (low.vaddr % align)

    def vaddr_to_offset(self, vaddr):
        """The file offset that holds virtual address ``vaddr`` (through its PT_LOAD), or
        None when no segment's file image covers it.  Falls back to section headers for
        files without program headers (relocatable objects, debug files)."""
        for s in self.segments:
            if s.type == PT_LOAD and s.vaddr <= vaddr < s.vaddr + max(s.filesz, 1):
                if vaddr - s.vaddr < s.filesz:
                    return vaddr - s.vaddr + s.offset
        if not self.segments:
            for s in self.sections:
                if s.addr and s.type != SHT_NOBITS and s.contains_addr(vaddr):
                    return vaddr - s.addr + s.offset
        return None

    def offset_to_vaddr(self, offset):
        """The virtual address the byte at file ``offset`` is loaded at, or None."""
        for s in self.segments:
            if s.type == PT_LOAD and s.offset <= offset < s.offset + s.filesz:
                return offset - s.offset + s.vaddr
        return None

    # -- notes ---------------------------------------------------------------------------------

    def notes(self, section=None):
        """Notes from the PT_NOTE segments, or from one named note section (which need not
        be loaded: ``.note.stapsdt`` is not).  With no PT_NOTE segment, every SHT_NOTE
        section is read."""
        if section is not None:
            sec = self.section(section) if isinstance(section, str) else section
            if sec is None or sec.type == SHT_NOBITS:
                return
            data = self._data[sec.offset:sec.offset + sec.size]
            for n in parse_notes(data, self.endian, 8 if sec.align == 8 else 4, sec.offset):
                yield n
            return
        segs = [s for s in self.segments if s.type == PT_NOTE]
        if segs:
            for s in segs:
                data = self._data[s.offset:s.offset + s.filesz]
                for n in parse_notes(data, self.endian, 8 if s.align == 8 else 4, s.offset):
                    yield n
            return
        for sec in self.sections:
            if sec.type == SHT_NOTE:
                data = self._data[sec.offset:sec.offset + sec.size]
                for n in parse_notes(data, self.endian, 8 if sec.align == 8 else 4,
                                     sec.offset):
                    yield n

    @property
    def build_id(self):
        """The GNU build id as lowercase hex, or None."""
        for n in self.notes():
            if n.type == NT_GNU_BUILD_ID and n.name == "GNU":
                return n.desc.hex()
        if any(s.type == PT_NOTE for s in self.segments):
            # Some files keep the build id only in a section outside PT_NOTE.
            for sec in self.sections:
                if sec.type == SHT_NOTE:
                    for n in self.notes(sec):
                        if n.type == NT_GNU_BUILD_ID and n.name == "GNU":
                            return n.desc.hex()
        return None

    @property
    def debuglink(self):
        """``(file name, crc32)`` from ``.gnu_debuglink``, or None."""
        data = self.section_data(".gnu_debuglink")
        if not data:
            return None
        end = data.find(b"\0")
        if end <= 0:
            return None
        crc_at = (end + 4) & ~3
        crc = struct.unpack_from(self.endian + "I", data, crc_at)[0] if crc_at + 4 <= len(
            data) else 0
        return data[:end].decode("utf-8", "surrogateescape"), crc

    # -- symbols -------------------------------------------------------------------------------

    def _table(self, kind):
        """``(symtab section, strtab bytes)`` for ``"symtab"`` or ``"dynsym"``, or None."""
        if kind in self._tables:
            return self._tables[kind]
        want = SHT_SYMTAB if kind == "symtab" else SHT_DYNSYM
        found = None
        for s in self.sections:
            if s.type == want and s.size and s.link < len(self.sections):
                strsec = self.sections[s.link]
                found = (s, bytes(self._data[strsec.offset:strsec.offset + strsec.size]))
                break
        self._tables[kind] = found
        return found

    @property
    def has_symtab(self):
        """True when the file has a full ``.symtab`` (not stripped)."""
        return self._table("symtab") is not None

    def _sym_struct(self):
        if self.bits == 64:
            return struct.Struct(self.endian + "IBBHQQ"), 24     # name info other shndx value size
        return struct.Struct(self.endian + "IIIBBH"), 16         # name value size info other shndx

    def _entry_to_symbol(self, fields, strtab, table):
        if self.bits == 64:
            nm, info, other, shndx, value, size = fields
        else:
            nm, value, size, info, other, shndx = fields
        end = strtab.find(b"\0", nm)
        name = strtab[nm:end if end >= 0 else len(strtab)].decode("utf-8", "surrogateescape")
        return Symbol(name, value, size, info, other, shndx, table, self)

    def symbols(self, table=None):
        """Every symbol of ``.symtab`` (``table="symtab"``), ``.dynsym`` (``"dynsym"``), or
        both (None, symtab first), as a list of ``Symbol``; the null entry 0 is skipped."""
        kinds = ("symtab", "dynsym") if table is None else (table,)
        out = []
        for kind in kinds:
            t = self._table(kind)
            if t is None:
                continue
            sec, strtab = t
            fmt, size = self._sym_struct()
            entsize = sec.entsize or size
            data = self._data[sec.offset:sec.offset + sec.size]
            n = len(data) // entsize
            for i in range(1, n):
                out.append(self._entry_to_symbol(fmt.unpack_from(data, i * entsize), strtab,
                                                 kind))
        return out

    def functions(self):
        """Sorted names of the functions defined in the file (both tables, versions
        stripped): what a ``uprobe:FILE:pattern*`` wildcard is matched against."""
        names = set()
        for sym in self.symbols():
            if sym.type in (STT_FUNC, STT_GNU_IFUNC) and sym.defined and sym.value:
                names.add(sym.name.split("@")[0])
        return sorted(names)

    def _name_column(self, sec):
        """The st_name field of every entry of one symbol table, as an array of u32."""
        from array import array
        fmt, size = self._sym_struct()
        entsize = sec.entsize or size
        raw = bytes(self._data[sec.offset:sec.offset + sec.size])
        if entsize % 4 or len(raw) % entsize:
            # Odd entry size: decode one by one.
            return array("I", [struct.unpack_from(self.endian + "I", raw, i)[0]
                               for i in range(0, len(raw) - entsize + 1, entsize)])
        words = array("I")
        words.frombytes(raw)
        import sys
        if (self.endian == "<") != (sys.byteorder == "little"):
            words.byteswap()
        return words[0::entsize // 4]

    def find_symbols(self, name, table=None):
        """Every entry named ``name`` (exactly) in symtab and dynsym, without decoding the
        rest of the table: the string table is searched first, then the st_name column."""
        want = name.encode("utf-8", "surrogateescape") + b"\0"
        kinds = ("symtab", "dynsym") if table is None else (table,)
        out = []
        for kind in kinds:
            t = self._table(kind)
            if t is None:
                continue
            sec, strtab = t
            offsets = []
            at = strtab.find(want)
            while at >= 0:
                offsets.append(at)
                at = strtab.find(want, at + 1)
            if not offsets:
                continue
            col = self._name_column(sec).tobytes()
            fmt, size = self._sym_struct()
            entsize = sec.entsize or size
            for off in offsets:
                for i in u32_indexes(col, off):
                    if i:
                        fields = fmt.unpack_from(self._data, sec.offset + i * entsize)
                        out.append(self._entry_to_symbol(fields, strtab, kind))
        return out

    def find_symbol(self, name):
        """The best definition of ``name``: a defined function (or ifunc) first, then any
        defined symbol; symtab before dynsym.  None when there is none."""
        best = None
        for s in self.find_symbols(name):
            if not s.defined or s.type in (STT_SECTION, STT_FILE):
                continue
            rank = (0 if s.type in (STT_FUNC, STT_GNU_IFUNC) else 1,
                    _BIND_RANK.get(s.bind, 3), 0 if s.table == "symtab" else 1)
            if best is None or rank < best[0]:
                best = (rank, s)
        return best[1] if best else None

    def symbol_address(self, name):
        """The address a probe on function ``name`` goes to, or None: the symbol's value
        (Thumb bit cleared on ARM), moved to the local entry point on ppc64le (ELFv2
        functions have a global entry that sets up r2 and a local one after it; uprobes,
        like callers inside the module, use the local one)."""
        sym = self.find_symbol(name)
        if sym is None:
            return None
        addr = sym.address
        if self.machine == EM_PPC64 and (self.flags & 3) == 2 and sym.type == STT_FUNC:
            addr += ppc64_local_entry_offset(sym.other)
        return addr

    def symbol_offset(self, name):
        """The file offset of function ``name`` for a uprobe.  Raises ``ElfError`` when the
        symbol is missing or not backed by the file."""
        addr = self.symbol_address(name)
        if addr is None:
            raise ElfError("%s: no symbol %r" % (self.name, name))
        off = self.vaddr_to_offset(addr)
        if off is None:
            raise ElfError("%s: symbol %r at %#x is not in a loaded segment" % (
                self.name, name, addr))
        return off

    # -- address -> symbol ---------------------------------------------------------------------

    def _build_addr_index(self):
        """Sorted arrays of (start, end, name) over function and object symbols of both
        tables.  Built once; names are decoded only when a lookup hits them."""
        from array import array
        fmt, size = self._sym_struct()
        arm = self.machine == EM_ARM
        cands = {}
        sources = []
        b64 = self.bits == 64
        for kind in ("symtab", "dynsym"):
            t = self._table(kind)
            if t is None:
                continue
            sec, strtab = t
            src = len(sources)
            sources.append(strtab)
            entsize = sec.entsize or size
            data = bytes(self._data[sec.offset:sec.offset + sec.size])
            if entsize == size and len(data) % size == 0:
                rows = fmt.iter_unpack(data)
            else:
                rows = (fmt.unpack_from(data, i) for i in range(0, len(data) - size + 1,
                                                                entsize))
            for r in rows:
                if b64:
                    nm, info, other, shndx, value, sz = r
                else:
                    nm, value, sz, info, other, shndx = r
                typ = info & 0xf
                if typ not in _ADDRESS_TYPES or not value or shndx == SHN_UNDEF or \
                        shndx == SHN_ABS:
                    continue
                if arm and typ != STT_OBJECT:
                    value &= ~1
                rank = (_BIND_RANK.get(info >> 4, 3), 1 if typ == STT_OBJECT else 0)
                old = cands.get(value)
                if old is None:
                    cands[value] = (rank, sz, src, nm)
                    continue
                # Several names for one address: keep the best-ranked, then the one with
                # fewer leading underscores (``malloc`` over ``__libc_malloc``); keep the
                # largest size any of them declares.
                keep_new = rank < old[0] or (rank == old[0] and _underscores(strtab, nm) <
                                             _underscores(sources[old[2]], old[3]))
                big = max(sz, old[1])
                cands[value] = (rank, big, src, nm) if keep_new else (old[0], big, old[2],
                                                                        old[3])
        starts = sorted(cands)
        ends = array("Q")
        maxend = array("Q")
        names = []
        running = 0
        for i, a in enumerate(starts):
            rank, sz, src, nm = cands[a]
            if sz:
                end = a + sz
            else:
                # A label without a size: it runs up to the next symbol.
                end = starts[i + 1] if i + 1 < len(starts) else a + 1
            ends.append(end)
            running = max(running, end)
            maxend.append(running)
            names.append((src, nm))
        self._addr_index = (array("Q", starts), ends, maxend, names, sources)

    def symbolize(self, vaddr):
        """``(name, offset)`` of the symbol that holds virtual address ``vaddr``, or None.
        A symbol version suffix (``@@GLIBC_2.17``) is not part of the name returned."""
        if self._addr_index is None:
            self._build_addr_index()
        import bisect
        starts, ends, maxend, names, sources = self._addr_index
        i = bisect.bisect_right(starts, vaddr) - 1
        while i >= 0 and maxend[i] > vaddr:
            if ends[i] > vaddr:
                src, nm = names[i]
                strtab = sources[src]
                end = strtab.find(b"\0", nm)
                raw = strtab[nm:end if end >= 0 else len(strtab)]
                at = raw.find(b"@")     # "memcpy@@GLIBC_2.14" in a full symtab
                if at > 0:
                    raw = raw[:at]
                return raw.decode("utf-8", "surrogateescape"), vaddr - starts[i]
            i -= 1
        return None

    def __repr__(self):
        return "ElfFile(%r, %d-bit %s, type=%d, %s)" % (
            self.name, self.bits, "LE" if self.little_endian else "BE", self.type, self.arch)


def u32_indexes(words, value):
    """Indexes at which native-order u32 ``value`` occurs in ``words`` (bytes of an
    ``array("I")``): a C-speed scan, for Python versions whose ``array.index`` has no start
    argument."""
    pat = struct.pack("=I", value)
    out = []
    at = words.find(pat)
    while at >= 0:
        if at % 4 == 0:
            out.append(at // 4)
            at = words.find(pat, at + 4)
        else:
            at = words.find(pat, at + 1)
    return out


def _underscores(strtab, off):
    n = 0
    while off + n < len(strtab) and strtab[off + n] == 0x5f:
        n += 1
    return n


def ppc64_local_entry_offset(st_other):
    """Bytes from an ELFv2 function's global entry to its local entry (st_other bits 5-7)."""
    v = (st_other >> 5) & 7
    if v in (0, 1):
        return 0
    if v == 7:
        return 0  # reserved
    return 1 << v  # 2 -> 4, 3 -> 8, ... 6 -> 64


_cache = {}
# Each mapping keeps a file descriptor open (mmap holds a duplicate), and a tracer needs
# its descriptors for perf events: keep at most this many files, least recently used out.
CACHE_LIMIT = 64


def open(path):  # noqa: A001 - the module's natural verb
    """A shared ``ElfFile`` for ``path``, re-read when the file changes (keyed by device,
    inode, size and mtime).  Do not close it: others may hold it."""
    import os
    try:
        st = os.stat(path)
    except OSError as e:
        raise ElfError("%s: %s" % (path, e.strerror or e))
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    f = _cache.pop(key, None)
    if f is None:
        f = ElfFile(path)
        while len(_cache) >= CACHE_LIMIT:
            # Dropped, not closed: a caller may still use it; the mapping goes with the
            # last reference.
            _cache.pop(next(iter(_cache)))
    _cache[key] = f             # (re)inserted last: most recently used
    return f


def clear_cache():
    """Forget every cached ``ElfFile`` (their mappings close when nothing else holds them)."""
    _cache.clear()


def read_header_arch(path):
    """``(arch, bits)`` of an ELF file from its first 64 bytes, or None if not ELF.  Cheap:
    for picking a library of the right architecture among candidates."""
    import io
    try:
        with io.open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or \
            head[5] not in (1, 2):
        return None
    machine = struct.unpack_from("<H" if head[5] == 1 else ">H", head, 18)[0]
    bits = 32 if head[4] == 1 else 64
    m = MACHINES.get(machine, "em%d" % machine)
    if m == "riscv":
        m = "riscv64" if bits == 64 else "riscv32"
    elif m == "ppc64":
        m = "ppc64le" if head[5] == 1 else "ppc64"
    return m, bits
