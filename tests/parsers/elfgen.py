"""Builds small ELF images in memory for tests: any class, byte order and machine.

The parsers are checked against real files of this machine, but those are all x86_64
little-endian; these synthetic files cover 32-bit, big-endian and the other architectures.
"""
import struct

SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOTE, SHT_NOBITS, SHT_DYNSYM = 1, 2, 3, 7, 8, 11
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
PT_LOAD, PT_NOTE = 1, 4


def note(name, ntype, desc, endian="<", align=4):
    """One note record: header, padded owner name, padded descriptor."""
    n = name.encode() + b"\0"
    out = struct.pack(endian + "III", len(n), len(desc), ntype) + n
    out += b"\0" * (-len(out) % align) + desc
    return out + b"\0" * (-len(out) % align)


class ElfBuilder(object):
    def __init__(self, bits=64, endian="<", machine=62, etype=3, flags=0, entry=0):
        self.bits, self.endian, self.machine = bits, endian, machine
        self.etype, self.flags, self.entry = etype, flags, entry
        self.sections = []          # dicts
        self.segments = []          # dicts
        self.symbols = {"symtab": [], "dynsym": []}

    def add_section(self, name, data=b"", type=SHT_PROGBITS, addr=0, flags=0, link=0, info=0,
                    align=1, entsize=0, size=None):
        self.sections.append(dict(name=name, data=data, type=type, addr=addr, flags=flags,
                                  link=link, info=info, align=align, entsize=entsize,
                                  size=size))
        return len(self.sections)  # index (section 0 is the null section)

    def add_segment(self, type, flags, vaddr, offset=None, filesz=0, memsz=None, align=0x1000,
                    section=None):
        """A program header; with ``section=name`` its offset/size follow that section."""
        self.segments.append(dict(type=type, flags=flags, vaddr=vaddr, offset=offset,
                                  filesz=filesz, memsz=memsz, align=align, section=section))

    def add_symbol(self, name, value, size=0, type=2, bind=1, section=None, other=0,
                   table="symtab", shndx=None):
        self.symbols[table].append(dict(name=name, value=value, size=size, type=type,
                                        bind=bind, section=section, other=other,
                                        shndx=shndx))

    def _sym_entry(self, s, name_off, shndx):
        e = self.endian
        info = (s["bind"] << 4) | s["type"]
        if self.bits == 64:
            return struct.pack(e + "IBBHQQ", name_off, info, s["other"], shndx, s["value"],
                               s["size"])
        return struct.pack(e + "IIIBBH", name_off, s["value"], s["size"], info, s["other"],
                           shndx)

    def build(self):
        e, b64 = self.endian, self.bits == 64
        secs = list(self.sections)
        names = [s["name"] for s in secs]
        for table, strname, typ in (("symtab", ".strtab", SHT_SYMTAB),
                                    ("dynsym", ".dynstr", SHT_DYNSYM)):
            syms = self.symbols[table]
            if not syms:
                continue
            strtab = b"\0"
            entsize = 24 if b64 else 16
            body = b"\0" * entsize
            str_index = len(secs) + 2       # 1-based index of the string section
            for s in syms:
                off = len(strtab)
                strtab += s["name"].encode() + b"\0"
                if s["shndx"] is not None:
                    shndx = s["shndx"]
                elif s["section"] is None:
                    shndx = 0
                else:
                    shndx = names.index(s["section"]) + 1
                body += self._sym_entry(s, off, shndx)
            secs.append(dict(name="." + table, data=body, type=typ, addr=0,
                             flags=SHF_ALLOC if table == "dynsym" else 0, link=str_index,
                             info=1, align=8 if b64 else 4, entsize=entsize, size=None))
            secs.append(dict(name=strname, data=strtab, type=SHT_STRTAB, addr=0, flags=0,
                             link=0, info=0, align=1, entsize=0, size=None))
        shstr = b"\0"
        name_offs = []
        for s in secs + [dict(name=".shstrtab")]:
            name_offs.append(len(shstr))
            shstr += s["name"].encode() + b"\0"
        secs.append(dict(name=".shstrtab", data=shstr, type=SHT_STRTAB, addr=0, flags=0,
                         link=0, info=0, align=1, entsize=0, size=None))
        ehsize = 64 if b64 else 52
        phentsize = 56 if b64 else 32
        shentsize = 64 if b64 else 40
        pos = ehsize + phentsize * len(self.segments)
        blob = bytearray(pos)
        offsets = []
        for s in secs:
            align = max(s["align"], 1)
            pos = (pos + align - 1) // align * align
            blob.extend(b"\0" * (pos - len(blob)))
            offsets.append(pos)
            if s["type"] != SHT_NOBITS:
                blob.extend(s["data"])
                pos += len(s["data"])
        pos = (pos + 7) & ~7
        blob.extend(b"\0" * (pos - len(blob)))
        shoff = pos
        # section headers
        blob.extend(b"\0" * shentsize)
        for i, s in enumerate(secs):
            size = s["size"] if s["size"] is not None else len(s["data"])
            if b64:
                blob.extend(struct.pack(e + "IIQQQQIIQQ", name_offs[i], s["type"], s["flags"],
                                        s["addr"], offsets[i], size, s["link"], s["info"],
                                        s["align"], s["entsize"]))
            else:
                blob.extend(struct.pack(e + "IIIIIIIIII", name_offs[i], s["type"], s["flags"],
                                        s["addr"], offsets[i], size, s["link"], s["info"],
                                        s["align"], s["entsize"]))
        # program headers
        ph = bytearray()
        for g in self.segments:
            off, filesz = g["offset"], g["filesz"]
            if g["section"] is not None:
                i = [s["name"] for s in secs].index(g["section"])
                off, filesz = offsets[i], len(secs[i]["data"])
            memsz = g["memsz"] if g["memsz"] is not None else filesz
            if b64:
                ph.extend(struct.pack(e + "IIQQQQQQ", g["type"], g["flags"], off, g["vaddr"],
                                      g["vaddr"], filesz, memsz, g["align"]))
            else:
                ph.extend(struct.pack(e + "IIIIIIII", g["type"], off, g["vaddr"], g["vaddr"],
                                      filesz, memsz, g["flags"], g["align"]))
        blob[ehsize:ehsize + len(ph)] = ph
        ident = b"\x7fELF" + bytes([2 if b64 else 1, 1 if e == "<" else 2, 1, 0]) + b"\0" * 8
        if b64:
            hdr = struct.pack(e + "HHIQQQIHHHHHH", self.etype, self.machine, 1, self.entry,
                              ehsize if self.segments else 0, shoff, self.flags, ehsize,
                              phentsize, len(self.segments), shentsize, len(secs) + 1,
                              len(secs))
        else:
            hdr = struct.pack(e + "HHIIIIIHHHHHH", self.etype, self.machine, 1, self.entry,
                              ehsize if self.segments else 0, shoff, self.flags, ehsize,
                              phentsize, len(self.segments), shentsize, len(secs) + 1,
                              len(secs))
        blob[0:ehsize] = ident + hdr
        return bytes(blob)
