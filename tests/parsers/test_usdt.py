"""USDT notes: python3.11's probes against ``readelf -n``, semaphores in a live process,
argument decoding for every supported architecture, and synthetic notes (32-bit,
big-endian, prelinked base)."""
import glob
import os
import re
import shutil
import struct
import subprocess
import time

import pytest

from tinytrace.kernel import elf, usdt
from tests.parsers.elfgen import (ElfBuilder, note, PT_LOAD, SHT_NOTE, SHF_ALLOC,
                                  SHF_EXECINSTR, SHF_WRITE)

PY311 = "/usr/bin/python3.11"


def readelf_probes(path):
    if shutil.which("readelf") is None:
        pytest.skip("no readelf")
    out = subprocess.run(["readelf", "-n", path], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    rows = re.findall(r"Provider: (\S+)\s+Name: (\S+)\s+Location: (0x[0-9a-f]+), Base: "
                      r"(0x[0-9a-f]+), Semaphore: (0x[0-9a-f]+)\s+Arguments: ?([^\n]*)", out)
    return [(p, n, int(l, 16), int(b, 16), int(s, 16), a.strip()) for p, n, l, b, s, a in rows]


def need_py311():
    if not os.path.exists(PY311):
        pytest.skip("no /usr/bin/python3.11")
    return PY311


def test_python311_matches_readelf():
    path = need_py311()
    want = readelf_probes(path)
    got = [(p.provider, p.name, p.pc, p.base, p.semaphore, p.arg_text)
           for p in usdt.probes(path)]
    assert got == want
    names = {p.name for p in usdt.probes(path)}
    assert {"function__entry", "function__return", "gc__start", "gc__done"} <= names


def test_python311_offsets_and_semaphores():
    path = need_py311()
    f = elf.ElfFile(path)
    probes_sec = f.section(".probes")
    for p in usdt.probes(path):
        seg = [s for s in f.load_segments if s.vaddr <= p.pc < s.vaddr + s.filesz][0]
        assert p.offset == p.pc - seg.vaddr + seg.offset
        assert p.semaphore_offset == p.semaphore - probes_sec.addr + probes_sec.offset
        assert f.read(p.semaphore_offset, 2) == b"\0\0"     # off until a tracer raises it


def test_python311_function_entry_args():
    (p,) = usdt.find(need_py311(), "python", "function__entry")
    kinds = [(a.kind, a.size, a.signed) for a in p.args]
    assert len(kinds) == 3
    # filename, function name (pointers), line number (int)
    assert kinds[0][1:] == (8, False) and kinds[1][1:] == (8, False) and kinds[2][1:] == (4,
                                                                                        True)
    regs = usdt.registers("x86_64")
    for a in p.args:
        if a.kind == usdt.KIND_REG:
            assert regs[a.reg][0] == a.reg_offset
    assert usdt.find(PY311, "python", "function__*")[0].name.startswith("function__")
    assert len(usdt.find(PY311, "python", "function__*")) == 2
    assert usdt.find(PY311, "nope") == []


def test_semaphore_address_in_a_live_process():
    path = need_py311()
    proc = subprocess.Popen([path, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            with open("/proc/%d/maps" % proc.pid) as f:
                if "libc" in f.read():
                    break
            time.sleep(0.02)
        found = dict(usdt.process_probes(proc.pid))
        assert os.path.realpath(path) in [os.path.realpath(k) for k in found]
        (p,) = usdt.find(path, "python", "gc__start")
        addr = usdt.semaphore_address(proc.pid, p)
        assert addr == p.semaphore                     # non-PIE: the link address
        fd = os.open("/proc/%d/mem" % proc.pid, os.O_RDWR)
        try:
            assert os.pread(fd, 2, addr) == b"\0\0"
            os.pwrite(fd, struct.pack("<H", 1), addr)
            assert os.pread(fd, 2, addr) == b"\1\0"
        finally:
            os.close(fd)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("path", sorted(set(
    glob.glob("/usr/lib/jvm/*/lib/server/libjvm.so") +
    glob.glob("/usr/lib/postgresql/*/bin/postgres") +
    glob.glob("/usr/lib/x86_64-linux-gnu/libpython3*.so.1.0"))) or ["none"])
def test_every_real_probe_decodes(path):
    if path == "none":
        pytest.skip("no other USDT-carrying binaries here")
    ps = usdt.probes(path)
    assert ps
    assert [(p.provider, p.name, p.pc, p.semaphore, p.arg_text) for p in ps] == [
        (a, b, c, e, f) for a, b, c, d, e, f in readelf_probes(path)]
    f = elf.open(path)
    for p in ps:
        for a in p.args:
            assert a.size in (1, 2, 4, 8)
            if a.kind == usdt.KIND_GLOBAL:
                assert a.address is not None and f.vaddr_to_offset(a.address) is not None \
                    or f.section_for_addr(a.address) is not None


# --- argument decoding per architecture -------------------------------------------------------

CASES = [
    # arch, spec, kind, size, signed, reg, reg_offset, offset, value, index_reg, scale
    ("x86_64", "-4@%edi", "reg", 4, True, "edi", 112, 0, None, None, 1),
    ("x86_64", "8@%rax", "reg", 8, False, "rax", 80, 0, None, None, 1),
    ("x86_64", "8@-8(%rbp)", "mem", 8, False, "rbp", 32, -8, None, None, 1),
    ("x86_64", "8@40(%rsp)", "mem", 8, False, "rsp", 152, 40, None, None, 1),
    ("x86_64", "-4@$5", "const", 4, True, None, None, 0, 5, None, 1),
    ("x86_64", "8@(%rdi,%rsi,8)", "mem", 8, False, "rdi", 112, 0, None, "rsi", 8),
    ("x86_64", "4@0x10(%r8,%r9)", "mem", 4, False, "r8", 72, 16, None, "r9", 1),
    ("x86_64", "2@%r10w", "reg", 2, False, "r10w", 56, 0, None, None, 1),
    ("x86_64", "-1@%ah", "reg", 1, True, "ah", 81, 0, None, None, 1),
    ("x86_64", "%rdx", "reg", 8, False, "rdx", 96, 0, None, None, 1),      # no size given
    ("x86_64", "%esi", "reg", 4, False, "esi", 104, 0, None, None, 1),
    ("i386", "-4@8(%ebp)", "mem", 4, True, "ebp", 20, 8, None, None, 1),
    ("i386", "4@%eax", "reg", 4, False, "eax", 24, 0, None, None, 1),
    ("aarch64", "-4@x0", "reg", 4, True, "x0", 0, 0, None, None, 1),
    ("aarch64", "8@[sp, 16]", "mem", 8, False, "sp", 248, 16, None, None, 1),
    ("aarch64", "8@[x1]", "mem", 8, False, "x1", 8, 0, None, None, 1),
    ("aarch64", "-4@#5", "const", 4, True, None, None, 0, 5, None, 1),
    ("aarch64", "4@5", "const", 4, False, None, None, 0, 5, None, 1),
    ("aarch64", "-8@[x29, -24]", "mem", 8, True, "x29", 232, -24, None, None, 1),
    ("aarch64", "4@w3", "reg", 4, False, "w3", 24, 0, None, None, 1),
    ("arm", "-4@r0", "reg", 4, True, "r0", 0, 0, None, None, 1),
    ("arm", "4@[fp, #-8]", "mem", 4, False, "fp", 44, -8, None, None, 1),
    ("arm", "-4@#5", "const", 4, True, None, None, 0, 5, None, 1),
    ("arm", "4@[sp]", "mem", 4, False, "sp", 52, 0, None, None, 1),
    ("arm", "1@lr", "reg", 1, False, "lr", 56, 0, None, None, 1),
    ("riscv64", "-4@a0", "reg", 4, True, "a0", 80, 0, None, None, 1),
    ("riscv64", "-8@-88(s0)", "mem", 8, True, "s0", 64, -88, None, None, 1),
    ("riscv64", "8@8(sp)", "mem", 8, False, "sp", 16, 8, None, None, 1),
    ("riscv64", "4@5", "const", 4, False, None, None, 0, 5, None, 1),
    ("riscv64", "8@ra", "reg", 8, False, "ra", 8, 0, None, None, 1),
    ("ppc64le", "-4@%r4", "reg", 4, True, "r4", 32, 0, None, None, 1),
    ("ppc64le", "8@3", "reg", 8, False, "r3", 24, 0, None, None, 1),     # bare number: r3
    ("ppc64le", "-8@-24(31)", "mem", 8, True, "r31", 248, -24, None, None, 1),
    ("ppc64le", "4@16(%r1)", "mem", 4, False, "r1", 8, 16, None, None, 1),
    ("ppc64le", "4@i32", "const", 4, False, None, None, 0, 32, None, 1),
    ("ppc64le", "8@%r9,%r10", "mem", 8, False, "r9", 72, 0, None, "r10", 1),
    ("s390x", "-8@%r2", "reg", 8, True, "r2", 40, 0, None, None, 1),
    ("s390x", "-2@-28(%r15)", "mem", 2, True, "r15", 144, -28, None, None, 1),
    ("s390x", "4@71", "const", 4, False, None, None, 0, 71, None, 1),
    ("s390x", "8@160(%r11,%r1)", "mem", 8, False, "r11", 112, 160, None, "r1", 1),
]


@pytest.mark.parametrize("case", CASES, ids=["%s:%s" % (c[0], c[1]) for c in CASES])
def test_decode(case):
    arch, spec, kind, size, signed, reg, reg_off, off, value, index, scale = case
    a = usdt.parse_arg(spec, arch)
    assert (a.kind, a.size, a.signed, a.reg, a.reg_offset) == (kind, size, signed, reg,
                                                               reg_off)
    if kind == "mem":
        assert a.offset == off and a.index_reg == index and a.scale == scale
    if kind == "const":
        assert a.value == value


def test_x86_globals_and_rip_relative():
    a = usdt.parse_arg("-4@40+CheckpointStats(%rip)", "x86_64")
    assert (a.kind, a.symbol, a.offset, a.size, a.signed) == ("global", "CheckpointStats",
                                                              40, 4, True)
    b = usdt.parse_arg("8@counter+8(%rip)", "x86_64")
    assert (b.kind, b.symbol, b.offset) == ("global", "counter", 8)
    c = usdt.parse_arg("4@counter", "x86_64")
    assert (c.kind, c.symbol, c.offset) == ("global", "counter", 0)


def test_argument_string_splitting():
    assert usdt.split_args("-4@x0 8@[sp, 16]  8@[x1]") == ["-4@x0", "8@[sp, 16]", "8@[x1]"]
    args = usdt.parse_args("8@%rbp 8@%r12 -4@%eax", "x86_64")
    assert [a.reg for a in args] == ["rbp", "r12", "eax"]


def test_bad_arguments():
    with pytest.raises(usdt.UsdtError, match="unknown x86_64 register"):
        usdt.parse_arg("8@%zz9", "x86_64")
    with pytest.raises(usdt.UsdtError, match="16 bytes"):
        usdt.parse_arg("16@%xmm0", "x86_64")
    with pytest.raises(usdt.UsdtError, match="floating-point"):
        usdt.parse_arg("8@%xmm1", "x86_64")
    with pytest.raises(usdt.UsdtError, match="not supported on mips"):
        usdt.parse_arg("4@$1", "mips")
    with pytest.raises(usdt.UsdtError):
        usdt.parse_arg("8@[sp, ", "aarch64")
    with pytest.raises(usdt.UsdtError, match="segment"):
        usdt.parse_arg("8@%fs:0x28", "x86_64")


def test_register_tables():
    x = usdt.registers("x86_64")
    assert x["rdi"] == (112, 8) and x["r15"] == (0, 8) and x["rip"] == (128, 8)
    assert x["rsp"] == (152, 8)
    assert usdt.registers("aarch64")["x30"] == (240, 8) == usdt.registers("aarch64")["lr"]
    assert usdt.registers("aarch64")["pc"] == (256, 8)
    assert usdt.registers("arm")["pc"] == (60, 4)
    assert usdt.registers("riscv64")["t6"] == (248, 8) and usdt.registers("riscv64")["x31"] \
        == (248, 8)
    assert usdt.registers("ppc64le")["r31"] == (248, 8) and usdt.registers("ppc64le")["nip"] \
        == (256, 8)
    assert usdt.registers("s390x")["r15"] == (144, 8)


# --- synthetic notes ------------------------------------------------------------------------

def sdt_note(bits, endian, pc, base, sem, provider, name, args):
    fmt = endian + ("QQQ" if bits == 64 else "III")
    desc = struct.pack(fmt, pc, base, sem) + b"\0".join(
        s.encode() for s in (provider, name, args)) + b"\0"
    return note("stapsdt", 3, desc, endian)


def sdt_image(bits, endian, machine, notes_spec, base_addr=0x2000, recorded_base=None,
              etype=3):
    b = ElfBuilder(bits=bits, endian=endian, machine=machine, etype=etype)
    b.add_section(".text", b"\x90" * 0x200, addr=0x1000, flags=SHF_ALLOC | SHF_EXECINSTR,
                  align=16)
    b.add_section(".stapsdt.base", b"\0", addr=base_addr, flags=SHF_ALLOC)
    b.add_section(".probes", b"\0" * 8, addr=0x3000, flags=SHF_ALLOC | SHF_WRITE, align=2)
    rb = base_addr if recorded_base is None else recorded_base
    blob = b"".join(sdt_note(bits, endian, pc, rb, sem, p, n, a)
                    for pc, sem, p, n, a in notes_spec)
    blob += note("other", 3, b"\0" * 24, endian)            # ignored: wrong owner
    b.add_section(".note.stapsdt", blob, type=SHT_NOTE, align=4)
    b.add_segment(PT_LOAD, 5, 0x1000, section=".text")
    b.add_segment(PT_LOAD, 6, 0x3000, section=".probes")
    return b.build()


ARCH_SAMPLES = [
    (64, "<", elf.EM_AARCH64, "aarch64", "-4@x0 8@[sp, 16] -4@#5"),
    (32, "<", elf.EM_ARM, "arm", "-4@r0 4@[fp, #-8]"),
    (64, "<", elf.EM_RISCV, "riscv64", "-4@a0 -8@-88(s0)"),
    (64, "<", elf.EM_PPC64, "ppc64le", "-4@%r4 -8@-24(31)"),
    (64, ">", elf.EM_PPC64, "ppc64", "8@3 4@i7"),
    (64, ">", elf.EM_S390, "s390x", "-8@%r2 -2@-28(%r15)"),
    (32, "<", elf.EM_386, "i386", "-4@8(%ebp) 4@%eax"),
]


@pytest.mark.parametrize("bits,endian,machine,arch,args", ARCH_SAMPLES,
                         ids=[s[3] for s in ARCH_SAMPLES])
def test_synthetic_notes(tmp_path, bits, endian, machine, arch, args):
    img = sdt_image(bits, endian, machine, [(0x1010, 0x3002, "prov", "ev__one", args),
                                            (0x1020, 0, "prov", "ev__two", "")])
    f = elf.ElfFile(data=img)
    assert f.arch == arch
    ps = usdt.read_probes(f, "/x")
    assert [(p.provider, p.name, p.pc, p.semaphore) for p in ps] == [
        ("prov", "ev__one", 0x1010, 0x3002), ("prov", "ev__two", 0x1020, 0)]
    text = f.section(".text")
    assert ps[0].offset == text.offset + 0x10
    assert ps[0].semaphore_offset == f.section(".probes").offset + 2
    assert ps[1].semaphore_offset is None and ps[1].args == []
    assert [a.text for a in ps[0].args] == usdt.split_args(args)
    assert len(ps[0].args) == args.count("@")
    assert all(a.kind in ("reg", "mem", "const") for a in ps[0].args)


def test_prelinked_base_moves_pc_and_semaphore():
    # Recorded base 0x1f00, actual .stapsdt.base at 0x2000: the image moved by +0x100.
    img = sdt_image(64, "<", elf.EM_X86_64, [(0x0f10, 0x2f02, "p", "n", "8@%rdi")],
                    recorded_base=0x1f00)
    f = elf.ElfFile(data=img)
    (p,) = usdt.read_probes(f)
    assert (p.pc, p.semaphore, p.base) == (0x1010, 0x3002, 0x1f00)
    assert p.offset == f.section(".text").offset + 0x10


def test_unsupported_arch_lists_but_does_not_decode():
    img = sdt_image(32, ">", elf.EM_MIPS, [(0x1010, 0, "p", "n", "4@$2")])
    f = elf.ElfFile(data=img)
    (p,) = usdt.read_probes(f)
    assert p.full_name == "p:n"
    with pytest.raises(usdt.UsdtError, match="not supported"):
        p.args


def test_global_argument_resolved_through_symbols():
    b = ElfBuilder()
    b.add_section(".text", b"\x90" * 0x100, addr=0x1000, flags=SHF_ALLOC | SHF_EXECINSTR)
    b.add_section(".data", b"\0" * 0x100, addr=0x4000, flags=SHF_ALLOC | SHF_WRITE)
    b.add_section(".note.stapsdt", sdt_note(64, "<", 0x1004, 0, 0, "app", "tick",
                                            "-4@8+counter(%rip) 8@missing(%rip)"),
                  type=SHT_NOTE, align=4)
    b.add_segment(PT_LOAD, 5, 0x1000, section=".text")
    b.add_segment(PT_LOAD, 6, 0x4000, section=".data")
    b.add_symbol("counter", 0x4010, 16, type=1, section=".data")
    f = elf.ElfFile(data=b.build())
    (p,) = usdt.read_probes(f)
    with pytest.raises(usdt.UsdtError, match="unknown symbol 'missing'"):
        p.args
    b2 = ElfBuilder()
    b2.add_section(".text", b"\x90" * 0x100, addr=0x1000, flags=SHF_ALLOC | SHF_EXECINSTR)
    b2.add_section(".data", b"\0" * 0x100, addr=0x4000, flags=SHF_ALLOC | SHF_WRITE)
    b2.add_section(".note.stapsdt", sdt_note(64, "<", 0x1004, 0, 0, "app", "tick",
                                             "-4@8+counter(%rip)"), type=SHT_NOTE, align=4)
    b2.add_segment(PT_LOAD, 5, 0x1000, section=".text")
    b2.add_symbol("counter", 0x4010, 16, type=1, section=".data")
    (p2,) = usdt.read_probes(elf.ElfFile(data=b2.build()))
    (a,) = p2.args
    assert (a.kind, a.address, a.size, a.signed) == ("global", 0x4018, 4, True)
