"""The ELF reader against binutils on real files, and against synthetic images for the
layouts this machine does not have (32-bit, big-endian, ARM, ppc64le)."""
import os
import re
import shutil
import struct
import subprocess

import pytest

from tinytrace.kernel import elf
from tests.parsers.elfgen import (ElfBuilder, note, PT_LOAD, PT_NOTE, SHT_NOTE, SHT_NOBITS,
                                  SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE)

LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
PY311 = "/usr/bin/python3.11"
BASH = "/bin/bash"
READELF = shutil.which("readelf")
NM = shutil.which("nm")


def need(path):
    if not os.path.exists(path):
        pytest.skip("%s not present" % path)
    return path


def readelf(*args):
    if READELF is None:
        pytest.skip("readelf not installed")
    return subprocess.run([READELF, "-W"] + list(args), stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout


def libpython_with_symtab():
    """A shared object with a full .symtab on this machine (pyenv builds are unstripped)."""
    import glob
    for p in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/lib/libpython3*.so.1.0"))):
        if elf.ElfFile(p).has_symtab:
            return p
    pytest.skip("no unstripped shared library found")


# --- real files -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [LIBC, PY311, BASH])
def test_sections_match_readelf(path):
    f = elf.ElfFile(need(path))
    want = []
    for line in readelf("-S", path).splitlines():
        m = re.match(r"\s*\[\s*(\d+)\]\s+(\S*)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)",
                     line)
        if m and m.group(1) != "0":
            want.append((int(m.group(1)), m.group(2), int(m.group(4), 16), int(m.group(5), 16),
                         int(m.group(6), 16)))
    got = [(s.index, s.name, s.addr, s.offset, s.size) for s in f.sections[1:]]
    assert got == want and len(want) > 20


@pytest.mark.parametrize("path", [LIBC, PY311, BASH])
def test_load_segments_match_readelf(path):
    f = elf.ElfFile(need(path))
    want = []
    for line in readelf("-l", path).splitlines():
        m = re.match(r"\s*LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+"
                     r"0x([0-9a-f]+)", line)
        if m:
            want.append(tuple(int(g, 16) for g in m.groups()))
    got = [(s.offset, s.vaddr, s.filesz, s.memsz) for s in f.load_segments]
    assert got == want and want


def test_header_facts():
    py = elf.ElfFile(need(PY311))
    assert (py.bits, py.endian, py.arch, py.is_exec, py.is_dyn) == (64, "<", "x86_64", True,
                                                                    False)
    bash = elf.ElfFile(need(BASH))
    assert bash.is_dyn and not bash.is_exec and bash.load_bias_base == 0
    assert py.load_bias_base == 0x400000


@pytest.mark.parametrize("path", [LIBC, PY311, BASH])
def test_build_id_matches_readelf(path):
    out = readelf("-n", need(path))
    want = re.search(r"Build ID: ([0-9a-f]+)", out).group(1)
    assert elf.ElfFile(path).build_id == want


def test_dynsym_matches_nm():
    if NM is None:
        pytest.skip("nm not installed")
    out = subprocess.run([NM, "-D", "--defined-only", need(LIBC)], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    want = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            want.add((parts[2].split("@")[0], int(parts[0], 16)))
    f = elf.ElfFile(LIBC)
    got = {(s.name, s.value) for s in f.symbols("dynsym") if s.defined}
    assert not f.has_symtab          # Debian's libc is stripped: dynsym only
    assert got == want and len(want) > 2000


def test_symtab_matches_nm():
    path = libpython_with_symtab()
    out = subprocess.run([NM, "--defined-only", path], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    want = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "Tt":
            want[parts[2]] = int(parts[0], 16)
    f = elf.ElfFile(path)
    funcs = {s.name: s.value for s in f.symbols("symtab") if s.type == elf.STT_FUNC
             and s.defined}
    common = set(want) & set(funcs)
    assert len(common) > 1000
    assert all(want[n] == funcs[n] for n in common)
    s = f.find_symbol("PyList_New")
    assert s.value == want["PyList_New"] and s.table == "symtab" and s.section == ".text"


def test_find_symbol_and_uprobe_offset():
    f = elf.ElfFile(need(LIBC))
    s = f.find_symbol("malloc")
    assert s.type_name == "FUNC" and s.bind_name == "GLOBAL" and s.size > 0
    # libc's text: offset == vaddr for the first segments; check with readelf's program headers
    seg = [g for g in f.load_segments if g.vaddr <= s.value < g.vaddr + g.filesz][0]
    assert f.symbol_offset("malloc") == s.value - seg.vaddr + seg.offset
    assert f.find_symbol("no_such_symbol_xyz") is None
    with pytest.raises(elf.ElfError):
        f.symbol_offset("no_such_symbol_xyz")
    # a prefix of a longer name must not match ("mallo" is inside "malloc")
    assert f.find_symbol("mallo") is None


def test_uprobe_offset_non_pie():
    f = elf.ElfFile(need(PY311))
    s = f.find_symbol("PyObject_GetAttr")
    assert s is not None
    # the text segment has p_vaddr 0x400000 and p_offset 0
    assert f.symbol_offset("PyObject_GetAttr") == s.value - 0x400000


def test_symbolize_round_trip():
    f = elf.ElfFile(need(LIBC))
    funcs = [s for s in f.symbols("dynsym") if s.type == elf.STT_FUNC and s.size > 8
             and s.defined]
    assert len(funcs) > 1000
    for s in funcs[::37]:
        name, off = f.symbolize(s.value + s.size // 2)
        # an alias may be reported, but it must start at the same address
        assert off == s.size // 2
        assert f.find_symbol(name).value == s.value
    m = f.find_symbol("malloc")
    assert f.symbolize(m.value) == ("malloc", 0)  # not __libc_malloc
    assert f.symbolize(0x10) is None


def test_open_caches_by_inode(tmp_path):
    a = elf.open(need(BASH))
    assert elf.open(BASH) is a
    p = tmp_path / "copy"
    shutil.copy(BASH, str(p))
    b = elf.open(str(p))
    assert b is not a and b.build_id == a.build_id


def test_open_cache_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(elf, "CACHE_LIMIT", 3)
    elf.clear_cache()
    paths = []
    for i in range(5):
        p = tmp_path / ("f%d" % i)
        p.write_bytes(_image(64, "<"))
        paths.append(str(p))
    first = elf.open(paths[0])
    for p in paths[1:]:
        elf.open(p)
    assert len(elf._cache) == 3
    assert elf.open(paths[0]) is not first        # evicted, parsed again
    assert elf.open(paths[-1]) is elf.open(paths[-1])
    elf.clear_cache()


def test_not_elf(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"#!/bin/sh\necho hi\n" * 4)
    with pytest.raises(elf.ElfError, match="not an ELF file"):
        elf.ElfFile(str(p))
    with pytest.raises(elf.ElfError):
        elf.ElfFile(str(tmp_path / "missing"))
    e = tmp_path / "empty"
    e.write_bytes(b"")
    with pytest.raises(elf.ElfError):
        elf.ElfFile(str(e))


def test_read_header_arch():
    assert elf.read_header_arch(need(LIBC)) == ("x86_64", 64)
    assert elf.read_header_arch("/etc/hostname") is None


# --- synthetic images -------------------------------------------------------------------------

def _image(bits, endian, machine=62, etype=3, flags=0):
    b = ElfBuilder(bits=bits, endian=endian, machine=machine, etype=etype, flags=flags)
    text = bytes(range(256)) * 4
    b.add_section(".text", text, addr=0x11000, flags=SHF_ALLOC | SHF_EXECINSTR, align=16)
    b.add_section(".data", b"\1" * 64, addr=0x22000, flags=SHF_ALLOC | SHF_WRITE, align=8)
    b.add_section(".bss", b"", type=SHT_NOBITS, addr=0x22040, flags=SHF_ALLOC | SHF_WRITE,
                  size=0x100)
    bid = bytes.fromhex("00112233445566778899aabbccddeeff01234567")
    b.add_section(".note.gnu.build-id", note("GNU", 3, bid, endian), type=SHT_NOTE,
                  addr=0x10200, flags=SHF_ALLOC, align=4)
    b.add_segment(PT_LOAD, 5, 0x11000, section=".text")
    b.add_segment(PT_LOAD, 6, 0x22000, section=".data", memsz=0x140)
    b.add_segment(PT_NOTE, 4, 0x10200, section=".note.gnu.build-id", align=4)
    b.add_symbol("func_a", 0x11010, 0x30, section=".text")
    b.add_symbol("func_b", 0x11040, 0x20, section=".text", bind=0)
    b.add_symbol("label", 0x11100, 0, type=0, section=".text")
    b.add_symbol("var", 0x22008, 8, type=1, section=".data")
    b.add_symbol("undef", 0, 0, section=None)
    b.add_symbol("func_a", 0x11010, 0x30, section=".text", table="dynsym")
    b.add_symbol("exported", 0x11200, 0x10, section=".text", table="dynsym")
    return b.build()


@pytest.mark.parametrize("bits,endian", [(32, "<"), (32, ">"), (64, "<"), (64, ">")])
def test_synthetic_layouts(bits, endian):
    f = elf.ElfFile(data=_image(bits, endian, machine=elf.EM_RISCV))
    assert (f.bits, f.endian) == (bits, endian)
    assert f.arch == ("riscv64" if bits == 64 else "riscv32")
    assert [s.name for s in f.sections] == ["", ".text", ".data", ".bss",
                                            ".note.gnu.build-id", ".symtab", ".strtab",
                                            ".dynsym", ".dynstr", ".shstrtab"]
    assert f.build_id == "00112233445566778899aabbccddeeff01234567"
    text = f.section(".text")
    assert f.vaddr_to_offset(0x11010) == text.offset + 0x10
    assert f.offset_to_vaddr(text.offset + 0x10) == 0x11010
    assert f.vaddr_to_offset(0x22050) is None           # .bss: not in the file image
    assert f.read_vaddr(0x11003, 2) == b"\3\4"
    a = f.find_symbol("func_a")
    assert (a.value, a.size, a.type_name, a.bind_name, a.section, a.table) == (
        0x11010, 0x30, "FUNC", "GLOBAL", ".text", "symtab")
    assert f.find_symbol("exported").table == "dynsym"
    assert f.find_symbol("undef") is None               # undefined: not a definition
    assert [s.name for s in f.find_symbols("undef")] == ["undef"]
    assert f.symbol_offset("func_b") == text.offset + 0x40
    assert f.symbolize(0x11010) == ("func_a", 0)
    assert f.symbolize(0x1103f) == ("func_a", 0x2f)
    assert f.symbolize(0x11040) == ("func_b", 0)
    assert f.symbolize(0x11060) is None                 # past func_b, no symbol
    assert f.symbolize(0x2200c) == ("var", 4)
    assert f.symbolize(0x11205) == ("exported", 5)
    assert f.functions() == ["exported", "func_a", "func_b"]
    names = {s.name for s in f.symbols()}
    assert {"func_a", "func_b", "label", "var", "undef", "exported"} <= names


def test_stripped_dynsym_only():
    b = ElfBuilder()
    b.add_section(".text", b"\x90" * 64, addr=0x1000, flags=SHF_ALLOC | SHF_EXECINSTR)
    b.add_segment(PT_LOAD, 5, 0x1000, section=".text")
    b.add_symbol("only_dyn", 0x1008, 8, section=".text", table="dynsym")
    f = elf.ElfFile(data=b.build())
    assert not f.has_symtab
    assert f.symbols("symtab") == []
    assert f.find_symbol("only_dyn").table == "dynsym"
    assert f.symbolize(0x100a) == ("only_dyn", 2)


def test_arm_thumb_bit():
    b = ElfBuilder(bits=32, machine=elf.EM_ARM, etype=2)
    b.add_section(".text", b"\0" * 64, addr=0x10000, flags=SHF_ALLOC | SHF_EXECINSTR)
    b.add_segment(PT_LOAD, 5, 0x10000, section=".text")
    b.add_symbol("thumb_fn", 0x10011, 16, section=".text")
    f = elf.ElfFile(data=b.build())
    assert f.arch == "arm"
    assert f.find_symbol("thumb_fn").address == 0x10010
    assert f.symbol_offset("thumb_fn") == f.section(".text").offset + 0x10
    assert f.symbolize(0x10012) == ("thumb_fn", 2)


def test_ppc64le_local_entry():
    b = ElfBuilder(bits=64, machine=elf.EM_PPC64, flags=2)
    b.add_section(".text", b"\0" * 64, addr=0x10000, flags=SHF_ALLOC | SHF_EXECINSTR)
    b.add_segment(PT_LOAD, 5, 0x10000, section=".text")
    b.add_symbol("fn", 0x10010, 32, section=".text", other=3 << 5)   # local entry at +8
    b.add_symbol("plain", 0x10030, 16, section=".text")
    f = elf.ElfFile(data=b.build())
    assert f.arch == "ppc64le"
    assert f.symbol_address("fn") == 0x10018
    assert f.symbol_address("plain") == 0x10030
    assert [elf.ppc64_local_entry_offset(v << 5) for v in range(8)] == [0, 0, 4, 8, 16, 32,
                                                                         64, 0]


def test_notes_aligned_to_8_and_unallocated_section():
    b = ElfBuilder()
    blob = note("GNU", 5, b"\1\2\3\4\5\6\7\x08\x09\x0a\x0b\x0c", align=8) + \
        note("GNU", 3, b"\xab" * 20, align=8)
    b.add_section(".note.gnu.property", blob, type=SHT_NOTE, addr=0x300, flags=SHF_ALLOC,
                  align=8)
    b.add_section(".note.other", note("Go", 4, b"xyz"), type=SHT_NOTE, align=4)
    f = elf.ElfFile(data=b.build())
    notes = list(f.notes())     # no program headers: every SHT_NOTE section
    assert [(n.name, n.type) for n in notes] == [("GNU", 5), ("GNU", 3), ("Go", 4)]
    assert notes[0].desc == b"\1\2\3\4\5\6\7\x08\x09\x0a\x0b\x0c"
    assert f.build_id == "ab" * 20
    only = list(f.notes(".note.other"))
    assert len(only) == 1 and only[0].desc == b"xyz"
    assert f.read(only[0].offset, 3) == b"xyz"


def test_truncated_images_fail_cleanly():
    img = _image(64, "<")
    with pytest.raises(elf.ElfError):
        elf.ElfFile(data=img[:40])
    f = elf.ElfFile(data=img[:200])
    with pytest.raises(elf.ElfError):
        f.sections


def test_debuglink():
    b = ElfBuilder()
    b.add_section(".gnu_debuglink", b"prog.debug\0\0" + struct.pack("<I", 0xdeadbeef))
    f = elf.ElfFile(data=b.build())
    assert f.debuglink == ("prog.debug", 0xdeadbeef)
