"""Library lookup: this machine's ld.so.cache against ``ldconfig -p``, synthetic caches in
both formats, the directory fallback, and per-process resolution."""
import os
import shutil
import struct
import subprocess
import sys
import time

import pytest

from tinytrace.errors import UserError
from tinytrace.kernel import ldcache
from tinytrace.kernel.elf import read_header_arch
from tests.parsers.elfgen import ElfBuilder

LDCONFIG = shutil.which("ldconfig") or ("/sbin/ldconfig" if os.path.exists("/sbin/ldconfig")
                                        else None)


def ldconfig_entries():
    if LDCONFIG is None or not os.path.exists(ldcache.LD_SO_CACHE):
        pytest.skip("no ldconfig / ld.so.cache")
    out = subprocess.run([LDCONFIG, "-p"], stdout=subprocess.PIPE, universal_newlines=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines()[1:]:
        if "=>" not in line:
            continue
        left, path = line.split("=>")
        soname = left.strip().split(" (")[0]
        rows.append((soname, path.strip()))
    return rows


def test_real_cache_matches_ldconfig():
    want = ldconfig_entries()
    got = [(e.soname, e.path) for e in ldcache.parse_cache(open(ldcache.LD_SO_CACHE,
                                                                "rb").read())]
    assert got == want and len(got) > 10


def test_real_names():
    rows = dict(ldconfig_entries())
    libc = rows.get("libc.so.6")
    if libc is None:
        pytest.skip("no glibc here")
    for name in ("c", "libc", "libc.so.6", libc):
        assert os.path.realpath(ldcache.find_library(name)) == os.path.realpath(libc)
    ssl = [s for s in rows if s.startswith("libssl.so.")]
    if ssl:
        assert ldcache.find_library("ssl") == rows[ssl[0]]   # versioned name, not libssl.so
    assert ldcache.find_library("no_such_library_xyz") is None
    # Debian's libc.so is a linker script: never returned as a library.
    r = ldcache.find_library("libc.so")
    assert r is None or read_header_arch(r) is not None


# --- synthetic caches -------------------------------------------------------------------------

def new_cache(entries, flags=0x0303):
    """entries: (soname, path).  Offsets are relative to the header start."""
    strings = b""
    offs = []
    base = 48 + 24 * len(entries)
    for so, path in entries:
        k = base + len(strings)
        strings += so.encode() + b"\0"
        v = base + len(strings)
        strings += path.encode() + b"\0"
        offs.append((k, v))
    head = b"glibc-ld.so.cache1.1" + struct.pack("=II", len(entries), len(strings)) + \
        b"\0" * 20
    if isinstance(flags, int):
        flags = [flags] * len(entries)
    body = b"".join(struct.pack("=iIIIQ", f, k, v, 0, 0) for f, (k, v) in zip(flags, offs))
    return head + body + strings


def old_cache(entries, new_part=b""):
    strings = b""
    recs = b""
    for so, path in entries:
        k = len(strings)
        strings += so.encode() + b"\0"
        v = len(strings)
        strings += path.encode() + b"\0"
        recs += struct.pack("=iII", 1, k, v)
    head = b"ld.so-1.7.0\0" + struct.pack("=I", len(entries))
    blob = head + recs
    if new_part:
        pad = (-len(blob)) % 8
        return blob + b"\0" * pad + new_part
    return blob + strings


def test_parse_new_format():
    ents = ldcache.parse_cache(new_cache([("libfoo.so.2", "/opt/lib/libfoo.so.2"),
                                          ("libbar.so", "/opt/lib/libbar.so")]))
    assert [(e.soname, e.path, e.flags) for e in ents] == [
        ("libfoo.so.2", "/opt/lib/libfoo.so.2", 0x0303), ("libbar.so", "/opt/lib/libbar.so",
                                                          0x0303)]


def test_parse_old_and_combined_formats():
    old = ldcache.parse_cache(old_cache([("libold.so.1", "/lib/libold.so.1")]))
    assert [(e.soname, e.path, e.flags) for e in old] == [("libold.so.1", "/lib/libold.so.1",
                                                           1)]
    combined = old_cache([("libx.so.1", "/lib/libx.so.1")],
                         new_cache([("libnew.so.3", "/usr/lib/libnew.so.3")]))
    ents = ldcache.parse_cache(combined)
    assert [(e.soname, e.path) for e in ents] == [("libnew.so.3", "/usr/lib/libnew.so.3")]
    assert ldcache.parse_cache(b"garbage" * 10) == []


def test_cache_lookup_filters_by_arch(tmp_path):
    libc = ldcache.find_library("c")
    if libc is None:
        pytest.skip("no libc")
    native = ldcache._ARCH_FLAGS[ldcache.native_arch()[0]][0]
    wrong, right = tmp_path / "wrong.so", tmp_path / "right.so"
    shutil.copy(libc, str(wrong))
    shutil.copy(libc, str(right))
    cache = tmp_path / "cache"
    cache.write_bytes(new_cache([("libdemo.so.1", str(wrong)), ("libdemo.so.1", str(right))],
                                flags=[0x7f03, native]))
    assert ldcache.find_library("demo", cache_path=str(cache)) == str(right)
    assert ldcache.find_library("libdemo.so.1", cache_path=str(cache)) == str(right)
    cache.write_bytes(new_cache([("libdemo.so.1", str(wrong))], flags=[0x7f03]))
    assert ldcache.find_library("demo", cache_path=str(cache)) is None


def test_directory_fallback_needs_native_elf(tmp_path, monkeypatch):
    libc = ldcache.find_library("c")
    if libc is None:
        pytest.skip("no libc")
    d = tmp_path / "libs"
    d.mkdir()
    shutil.copy(libc, str(d / "libgood.so.1"))
    (d / "libscript.so").write_text("/* GNU ld script */ GROUP ( libc.so.6 )\n")
    b = ElfBuilder(machine=183)        # aarch64 on an x86 host (or x86 elsewhere)
    if ldcache.native_arch()[0] == "aarch64":
        b = ElfBuilder(machine=62)
    (d / "libforeign.so.1").write_bytes(b.build())
    shutil.copy(libc, str(d / "libver.so.2"))
    shutil.copy(libc, str(d / "libver.so.10"))
    monkeypatch.setenv("LD_LIBRARY_PATH", str(d))
    empty = tmp_path / "empty.cache"
    empty.write_bytes(b"")
    assert ldcache.find_library("good", cache_path=str(empty)) == str(d / "libgood.so.1")
    assert ldcache.find_library("script", cache_path=str(empty)) is None
    assert ldcache.find_library("foreign", cache_path=str(empty)) is None
    assert ldcache.find_library("ver", cache_path=str(empty)) == str(d / "libver.so.10")
    assert str(d) == ldcache.library_dirs()[0]


# --- processes --------------------------------------------------------------------------------

@pytest.fixture
def sleeper():
    py = "/usr/bin/python3.11" if os.path.exists("/usr/bin/python3.11") else sys.executable
    p = subprocess.Popen([py, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            with open("/proc/%d/maps" % p.pid) as f:
                if "libc" in f.read():
                    break
            time.sleep(0.02)
        yield p
    finally:
        p.kill()
        p.wait()


def test_library_of_a_process(sleeper):
    path = ldcache.find_library("c", pid=sleeper.pid)
    assert path is not None and os.path.basename(path).startswith("libc")
    assert path in ldcache.mapped_files(sleeper.pid)
    assert ldcache.find_library("no_such_library_xyz", pid=sleeper.pid) is None
    exe = os.path.basename(os.readlink("/proc/%d/exe" % sleeper.pid))
    assert ldcache.resolve_binary(exe, pid=sleeper.pid) == "/proc/%d/exe" % sleeper.pid
    assert ldcache.resolve_binary("c", pid=sleeper.pid) == path
    with pytest.raises(UserError, match="maps no library"):
        ldcache.resolve_binary("no_such_library_xyz", pid=sleeper.pid)


def test_process_in_another_mount_namespace():
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root")
    p = subprocess.Popen([unshare, "-m", "--propagation", "private", "sleep", "30"])
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with open("/proc/%d/maps" % p.pid) as f:
                    if os.readlink("/proc/%d/exe" % p.pid).endswith("sleep") and \
                            "libc" in f.read():
                        break
            except OSError:
                pass
            time.sleep(0.02)
        path = ldcache.find_library("c", pid=p.pid)
        assert path.startswith("/proc/%d/root/" % p.pid) and os.path.exists(path)
    finally:
        p.kill()
        p.wait()


def test_resolve_binary():
    assert ldcache.resolve_binary("/bin/sh") == "/bin/sh"
    sh = ldcache.resolve_binary("sh")
    assert os.path.basename(sh) == "sh" and os.access(sh, os.X_OK)
    assert ldcache.resolve_binary("libc").endswith(os.path.basename(ldcache.find_library("c")))
    with pytest.raises(UserError, match="cannot find 'no_such_prog_xyz'"):
        ldcache.resolve_binary("no_such_prog_xyz")
    with pytest.raises(UserError, match="no such file"):
        ldcache.resolve_binary("/no/such/file")
    with pytest.raises(UserError):
        ldcache.mapped_files(2 ** 22 + 12345)
