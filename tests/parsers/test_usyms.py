"""User symbols: real processes (this one, a PIE bash, a non-PIE python3.11, a deleted
binary, another mount namespace), [vdso], perf maps, and synthetic maps text."""
import ctypes
import lzma
import mmap
import os
import shutil
import subprocess
import time

import pytest

from tinytrace.kernel import elf, usyms
from tests.parsers.elfgen import ElfBuilder, PT_LOAD, SHF_ALLOC, SHF_EXECINSTR

PY311 = "/usr/bin/python3.11"
BASH = "/bin/bash"


def wait_mapped(pid, needle, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open("/proc/%d/maps" % pid) as f:
                if needle in f.read():
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError("%s never mapped in %d" % (needle, pid))


def address_in(pid, path, vaddr, f=None):
    """Where the byte at file vaddr ``vaddr`` of ``path`` is mapped in ``pid``."""
    f = f or elf.ElfFile(path)
    off = f.vaddr_to_offset(vaddr)
    return usyms.ProcMaps(pid).address_of_file_offset(path, off)


@pytest.fixture
def bash_proc():
    p = subprocess.Popen([BASH, "-c", "read x"], stdin=subprocess.PIPE)
    try:
        wait_mapped(p.pid, "libc")
        yield p
    finally:
        p.kill()
        p.wait()


def test_own_process_libc():
    u = usyms.UserSymbols(os.getpid())
    libc = ctypes.CDLL(None)
    for fn in ("malloc", "free", "strlen"):
        a = ctypes.cast(getattr(libc, fn), ctypes.c_void_p).value
        s = u.resolve(a + 2)
        assert s.offset == 2 and s.module and "libc" in os.path.basename(s.module)
        # the name may be an alias of the same address (strlen is an ifunc-chosen variant)
        lib = elf.open(s.module)
        assert s.file_offset == lib.vaddr_to_offset(lib.offset_to_vaddr(s.file_offset))
    m = ctypes.cast(libc.malloc, ctypes.c_void_p).value
    assert u.symbolize(m) == "malloc"
    assert u.symbolize(m + 5) == "malloc+5"
    assert u.symbolize(m + 5, hex_offset=True) == "malloc+0x5"
    assert u.symbolize(m + 5, module=True).startswith("malloc+5 (/")


def test_pie_bash(bash_proc):
    f = elf.ElfFile(BASH)
    assert f.is_dyn
    u = usyms.UserSymbols(bash_proc.pid)
    for name in ("readline", "find_variable"):
        s = f.find_symbol(name)
        if s is None:
            continue
        a = address_in(bash_proc.pid, BASH, s.value, f)
        assert a is not None and a != s.value          # loaded with a bias
        r = u.resolve(a + 1)
        assert (r.name, r.offset) == (name, 1)
        assert os.path.realpath(r.module) == os.path.realpath(BASH)


def test_non_pie_python():
    if not os.path.exists(PY311):
        pytest.skip("no python3.11")
    p = subprocess.Popen([PY311, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        wait_mapped(p.pid, "libc")
        f = elf.ElfFile(PY311)
        assert f.is_exec
        s = f.find_symbol("PyObject_GetAttr")
        a = address_in(p.pid, PY311, s.value, f)
        assert a == s.value                               # no bias for ET_EXEC
        assert usyms.UserSymbols(p.pid).symbolize(a + 4) == "PyObject_GetAttr+4"
    finally:
        p.kill()
        p.wait()


def test_deleted_binary(tmp_path):
    copy = tmp_path / "bash-copy"
    shutil.copy(BASH, str(copy))
    p = subprocess.Popen([str(copy), "-c", "read x"], stdin=subprocess.PIPE)
    try:
        wait_mapped(p.pid, "libc")
        f = elf.ElfFile(str(copy))
        s = f.find_symbol("readline")
        a = address_in(p.pid, str(copy), s.value, f)
        os.unlink(str(copy))
        u = usyms.UserSymbols(p.pid)
        m = u.maps.find(a)
        assert m.deleted and m.path == str(copy)
        assert u.file_path(m).startswith("/proc/%d/map_files/" % p.pid)
        r = u.resolve(a + 3)
        assert (r.name, r.offset, r.module) == ("readline", 3, str(copy))
    finally:
        p.kill()
        p.wait()


def test_other_mount_namespace():
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root")
    p = subprocess.Popen([unshare, "-m", "--propagation", "private", BASH, "-c", "read x"],
                         stdin=subprocess.PIPE)
    try:
        wait_mapped(p.pid, "libc")
        deadline = time.time() + 10
        while os.readlink("/proc/%d/exe" % p.pid) != os.path.realpath(BASH) and \
                time.time() < deadline:
            time.sleep(0.02)
        u = usyms.UserSymbols(p.pid)
        f = elf.ElfFile(BASH)
        a = address_in(p.pid, os.path.realpath(BASH), f.find_symbol("readline").value, f)
        m = u.maps.find(a)
        assert u.file_path(m).startswith("/proc/%d/root/" % p.pid)
        assert u.symbolize(a) == "readline"
    finally:
        p.kill()
        p.wait()


def test_vdso():
    u = usyms.UserSymbols(os.getpid())
    vd = [m for m in u.maps.mappings if m.path == "[vdso]"]
    if not vd:
        pytest.skip("no vdso")
    img = u._vdso_image(vd[0])
    sym = [s for s in img.symbols() if s.type == elf.STT_FUNC and s.size > 4][0]
    r = u.resolve(vd[0].start + img.vaddr_to_offset(sym.value) + 1)
    assert r.module == "[vdso]" and r.offset == 1
    assert img.find_symbol(r.name).value == sym.value


def test_unknown_addresses():
    u = usyms.UserSymbols(os.getpid())
    r = u.resolve(0x10)
    assert r.name is None and r.module is None
    assert u.symbolize(0x10) == "0x10"
    assert u.symbolize(0x10, module=True) == "0x10 ([unknown])"
    stack = [m for m in u.maps.mappings if m.path == "[stack]"][0]
    assert u.symbolize(stack.start + 8, module=True) == "0x%x ([stack])" % (stack.start + 8)


def test_perf_map_for_jit_code():
    try:
        region = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError):
        pytest.skip("no executable anonymous memory")
    addr = ctypes.addressof(ctypes.c_char.from_buffer(region))
    path = "/tmp/perf-%d.map" % os.getpid()
    with open(path, "w") as f:
        f.write("%x 40 jitted_add\n%x 20 [stub] with spaces\n" % (addr, addr + 0x100))
    try:
        u = usyms.UserSymbols(os.getpid())
        r = u.resolve(addr + 8)
        assert (r.name, r.offset, r.module) == ("jitted_add", 8, "[perf-map]")
        assert u.symbolize(addr + 0x101) == "[stub] with spaces+1"
        assert u.resolve(addr + 0x200).name is None
    finally:
        os.unlink(path)
        del addr
        region.close()


MAPS = """\
55d0a0000000-55d0a0001000 r--p 00000000 08:01 1234   /usr/bin/prog
55d0a0001000-55d0a0005000 r-xp 00001000 08:01 1234   /usr/bin/prog
55d0a0005000-55d0a0006000 rw-p 00005000 08:01 1234   /usr/bin/prog
55d0a1000000-55d0a1021000 rw-p 00000000 00:00 0      [heap]
7f0000000000-7f0000010000 r-xp 00002000 08:01 99     /tmp/old lib.so (deleted)
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0      [stack]
7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0      [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]
"""


def test_parse_maps_text():
    maps = usyms.ProcMaps(1, text=MAPS)
    assert len(maps.mappings) == 8
    m = maps.find(0x55d0a0001010)
    assert (m.perms, m.offset, m.path, m.inode, m.executable) == ("r-xp", 0x1000,
                                                                  "/usr/bin/prog", 1234, True)
    assert m.file_offset(0x55d0a0001010) == 0x1010
    d = maps.find(0x7f0000000100)
    assert d.deleted and d.path == "/tmp/old lib.so" and d.is_file
    assert maps.find(0x55d0a0fff000) is None
    assert maps.find(0xffffffffff600100).path == "[vsyscall]"
    assert maps.address_of_file_offset("/usr/bin/prog", 0x5008) == 0x55d0a0005008
    assert maps.address_of_file_offset("/usr/bin/prog", 0x9000) is None


def test_format_symbol():
    f = usyms.format_symbol
    S = usyms.UserSymbol
    assert f(S(0x1000, "main", 0, "/bin/x", 0x10)) == "main"
    assert f(S(0x1000, "main", 26, "/bin/x", 0x10)) == "main+26"
    assert f(S(0x1000, "main", 26, "/bin/x", 0x10), offset=False) == "main"
    assert f(S(0x1000, "main", 26, "/bin/x", 0x10), hex_offset=True) == "main+0x1a"
    assert f(S(0x1000, "main", 26, "/bin/x", 0x10), module=True) == "main+26 (/bin/x)"
    assert f(S(0x7f00, None, None, "/lib/a.so", 0x2a), module=True) == "0x7f00 (/lib/a.so+0x2a)"
    assert f(S(0x7f00, None, None, None, None), module=True) == "0x7f00 ([unknown])"
    assert f(S(0x7f00, None, None, "[heap]", None), module=True) == "0x7f00 ([heap])"


def test_minidebuginfo_and_debug_file_sources(tmp_path):
    # A stripped image whose function names live in an xz-compressed ELF inside it.
    inner = ElfBuilder()
    inner.add_section(".text", b"", type=8, addr=0x1000, flags=SHF_ALLOC | SHF_EXECINSTR,
                      size=0x100)
    inner.add_symbol("hidden_fn", 0x1040, 0x20, section=".text", bind=0)
    outer = ElfBuilder()
    outer.add_section(".text", b"\x90" * 0x100, addr=0x1000, flags=SHF_ALLOC | SHF_EXECINSTR)
    outer.add_section(".gnu_debugdata", lzma.compress(inner.build(), format=lzma.FORMAT_XZ))
    outer.add_segment(PT_LOAD, 5, 0x1000, section=".text")
    outer.add_symbol("exported_fn", 0x1000, 0x10, section=".text", table="dynsym")
    p = tmp_path / "stripped.so"
    p.write_bytes(outer.build())
    f = elf.ElfFile(str(p))
    srcs = usyms.symbol_sources(f)
    assert len(srcs) == 2 and srcs[-1] is f
    assert usyms._symbolize_elf(srcs, 0x1044) == ("hidden_fn", 4)
    assert usyms._symbolize_elf(srcs, 0x1004) == ("exported_fn", 4)


def test_installed_debug_file_is_used():
    libc = [m.path for m in usyms.ProcMaps(os.getpid()).mappings if "libc.so" in m.path]
    f = elf.open(libc[0])
    bid = f.build_id
    dbg = os.path.join(usyms.DEBUG_ROOT, ".build-id", bid[:2], bid[2:] + ".debug")
    if not os.path.exists(dbg):
        pytest.skip("libc debug symbols not installed")
    srcs = usyms.symbol_sources(f)
    assert srcs[0].path == dbg and srcs[0].has_symtab
    # a static (local) function of libc is named only through the debug file
    local = [s for s in srcs[0].symbols("symtab") if s.bind == elf.STB_LOCAL and
             s.type == elf.STT_FUNC and s.size > 16]
    s = local[len(local) // 2]
    assert f.symbolize(s.value + 1) is None or f.symbolize(s.value + 1)[0] != s.name
    assert usyms._symbolize_elf(srcs, s.value + 1)[1] == 1


def test_shared_per_pid():
    a = usyms.for_pid(os.getpid())
    assert usyms.for_pid(os.getpid()) is a
    usyms.forget(os.getpid())
    assert usyms.for_pid(os.getpid()) is not a


def test_missing_process():
    from tinytrace.errors import UserError
    with pytest.raises(UserError, match="memory map of PID"):
        usyms.ProcMaps(2 ** 22 + 4321)
    gone = usyms.UserSymbols(2 ** 22 + 4321)
    assert gone.exited and gone.symbolize(0x401000, module=True) == "0x401000 ([unknown])"


def test_exec_in_the_same_pid_is_noticed(monkeypatch):
    monkeypatch.setattr(usyms, "_CHECK_EVERY", 0.0)
    p = subprocess.Popen([BASH, "-c", "read x; exec %s -c 'import sys; sys.stdin.read()'" % (
        PY311 if os.path.exists(PY311) else "python3")], stdin=subprocess.PIPE)
    try:
        wait_mapped(p.pid, "libc")
        first = usyms.for_pid(p.pid)
        assert usyms.for_pid(p.pid) is first          # same image: reused
        p.stdin.write(b"go\n")
        p.stdin.flush()
        deadline = time.time() + 10
        while "python" not in os.readlink("/proc/%d/exe" % p.pid) and time.time() < deadline:
            time.sleep(0.02)
        assert usyms.for_pid(p.pid) is not first      # exec'd: a new symbolizer
    finally:
        p.kill()
        p.wait()
        usyms.forget(p.pid)
