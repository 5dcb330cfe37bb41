"""Finding the file behind a library or program name, the way the dynamic loader would.

``uprobe:libc:malloc`` and ``-p PID`` style targets name a library loosely (``c``, ``libc``,
``libc.so.6``, ``libssl``) or a program (``bash``).  Resolution order:

1. with a PID: the files mapped by that process (``/proc/PID/maps``), reached through
   ``/proc/PID/root`` when the process lives in another mount namespace;
2. ``/etc/ld.so.cache`` (the ``glibc-ld.so.cache1.1`` format, alone or after an old
   ``ld.so-1.7.0`` table), keeping entries built for this userland's architecture;
3. ``LD_LIBRARY_PATH``, musl's ``/etc/ld-musl-<arch>.path``, then the usual directories
   (multiarch ones for this architecture first), accepting only ELF files of the right
   architecture -- ``/usr/lib/.../libc.so`` is a linker script, not a library;
4. for programs, ``PATH``.
"""
import os
import struct

from tinytrace.errors import UserError

LD_SO_CACHE = "/etc/ld.so.cache"
_NEW_MAGIC = b"glibc-ld.so.cache1.1"
_OLD_MAGIC = b"ld.so-1.7.0"

# ld.so.cache flags: low byte 3 = ELF libc6; high byte = the architecture variant.
FLAG_ELF_LIBC6 = 0x0003
_ARCH_FLAGS = {
    "x86_64": (0x0303,), "i386": (0x0003,), "aarch64": (0x0a03,),
    "arm": (0x0903, 0x0b03, 0x0003), "riscv64": (0x1003, 0x0f03), "ppc64le": (0x0503,),
    "ppc64": (0x0503,), "s390x": (0x0403,), "mips64": (0x0703, 0x0e03),
    "mips64el": (0x0703, 0x0e03), "loongarch64": (0x1203, 0x1103), "mips": (0x0003, 0x0c03),
    "mipsel": (0x0003, 0x0c03), "ppc": (0x0003,),
}

# Debian/Ubuntu multiarch directory names.
_TRIPLETS = {
    "x86_64": ("x86_64-linux-gnu",), "i386": ("i386-linux-gnu",),
    "aarch64": ("aarch64-linux-gnu",), "arm": ("arm-linux-gnueabihf", "arm-linux-gnueabi"),
    "riscv64": ("riscv64-linux-gnu",), "ppc64le": ("powerpc64le-linux-gnu",),
    "ppc64": ("powerpc64-linux-gnu",), "s390x": ("s390x-linux-gnu",),
    "mips64el": ("mips64el-linux-gnuabi64",), "mipsel": ("mipsel-linux-gnu",),
    "mips": ("mips-linux-gnu",), "loongarch64": ("loongarch64-linux-gnu",),
}


class CacheEntry(object):
    __slots__ = ("soname", "path", "flags", "osversion", "hwcap")

    def __init__(self, soname, path, flags, osversion=0, hwcap=0):
        self.soname, self.path, self.flags = soname, path, flags
        self.osversion, self.hwcap = osversion, hwcap

    def __repr__(self):
        return "CacheEntry(%r, %r, flags=%#06x)" % (self.soname, self.path, self.flags)


def _cstr(data, off):
    if off >= len(data):
        return None
    end = data.find(b"\0", off)
    return data[off:end if end >= 0 else len(data)].decode("utf-8", "surrogateescape")


def parse_cache(data):
    """The entries of an ld.so.cache image (bytes), in file order (ldconfig writes the
    newest version of a name first).  Unknown formats give an empty list."""
    import sys
    native = "<" if sys.byteorder == "little" else ">"
    new_at = None
    old = []
    if data.startswith(_OLD_MAGIC):
        nlibs = struct.unpack_from(native + "I", data, 12)[0]
        if 16 + nlibs * 12 <= len(data):
            strings_at = 16 + nlibs * 12
            for i in range(nlibs):
                flags, key, value = struct.unpack_from(native + "iII", data, 16 + 12 * i)
                k, v = _cstr(data, strings_at + key), _cstr(data, strings_at + value)
                if k is not None and v is not None:
                    old.append(CacheEntry(k, v, flags))
            at = (strings_at + 7) & ~7
            pos = data.find(_NEW_MAGIC, at)
            new_at = pos if pos >= 0 else None
    elif data.startswith(_NEW_MAGIC):
        new_at = 0
    if new_at is None:
        return old
    for endian in (native, ">" if native == "<" else "<"):
        nlibs, len_strings = struct.unpack_from(endian + "II", data, new_at + 20)
        if new_at + 48 + nlibs * 24 <= len(data):
            break
    else:
        return old
    out = []
    for i in range(nlibs):
        flags, key, value, osv, hwcap = struct.unpack_from(endian + "iIIIQ", data,
                                                           new_at + 48 + 24 * i)
        k, v = _cstr(data, new_at + key), _cstr(data, new_at + value)
        if k is not None and v is not None:
            out.append(CacheEntry(k, v, flags, osv, hwcap))
    return out or old


_entries = None


def cache_entries(path=LD_SO_CACHE):
    """The parsed ``/etc/ld.so.cache`` (cached for the process); empty when absent."""
    global _entries
    if _entries is not None and path == LD_SO_CACHE:
        return _entries
    try:
        with open(path, "rb") as f:
            ents = parse_cache(f.read())
    except OSError:
        ents = []
    if path == LD_SO_CACHE:
        _entries = ents
    return ents


_native = None


def native_arch():
    """The userland's architecture, from this Python's own ELF header (a 32-bit userland
    on a 64-bit kernel must get 32-bit libraries), falling back to ``uname -m``."""
    global _native
    if _native is None:
        import sys
        from tinytrace.kernel.elf import read_header_arch
        got = read_header_arch(os.path.realpath(sys.executable)) if sys.executable else None
        if got is None:
            m = os.uname().machine
            m = {"armv7l": "arm", "armv6l": "arm", "armv8l": "arm", "i686": "i386",
                 "arm64": "aarch64", "ppc64el": "ppc64le"}.get(m, m)
            got = (m, 64 if m.endswith("64") or m in ("x86_64", "s390x", "ppc64le") else 32)
        _native = got
    return _native


def _match_rank(name):
    """A function ranking file names against library ``name`` (lower is better, None for
    no match).  ``c``/``libc`` match ``libc.so.6`` (a versioned runtime name, preferred),
    then ``libc.so`` (a development link), then old-style ``libc-2.31.so``; a name that
    already holds ``.so`` (``libc.so.6``) matches only itself."""
    base = name
    if not base.startswith("lib") and ".so" not in base:
        base = "lib" + base
    if ".so" in base:
        return lambda f: 0 if f == base else None
    versioned, dev, dash = base + ".so.", base + ".so", base + "-"

    def rank(f):
        if f == base:
            return 0
        if f.startswith(versioned):
            return 1
        if f == dev:
            return 2
        if f.startswith(dash) and ".so" in f[len(dash):]:
            return 3
        return None
    return rank


def _is_native_elf(path):
    from tinytrace.kernel.elf import read_header_arch
    got = read_header_arch(path)
    return got is not None and got == native_arch()


def find_library(name, pid=None, cache_path=LD_SO_CACHE):
    """The path of library ``name``, or None.  ``name`` may be ``c``, ``libc``,
    ``libc.so.6`` or a path.  With ``pid``, the process's own mappings decide."""
    if "/" in name:
        path = _in_root(name, pid)
        return path if os.path.isfile(path) else None
    rank = _match_rank(name)
    if pid is not None:
        best = None
        for path in mapped_files(pid):
            r = rank(os.path.basename(path))
            if r is not None and (best is None or r < best[0]):
                best = (r, path)
        return _in_root(best[1], pid) if best else None
    arch = native_arch()[0]
    flags_ok = _ARCH_FLAGS.get(arch)
    hits = []
    for i, e in enumerate(cache_entries(cache_path)):
        r = rank(e.soname)
        if r is not None:
            hits.append((r, i, e))
    hits.sort(key=lambda h: (h[0], h[1]))      # by rank, then ldconfig's order
    for _, _, e in hits:
        if flags_ok is not None and e.flags not in flags_ok:
            continue
        if flags_ok is None and not _is_native_elf(e.path):
            continue
        if os.path.exists(e.path):
            return e.path
    return _search_dirs(rank)


def library_dirs():
    """Directories searched after ld.so.cache, in order."""
    arch = native_arch()[0]
    dirs = []
    for d in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        if d:
            dirs.append(d)
    musl = "/etc/ld-musl-%s.path" % arch
    try:
        with open(musl) as f:
            for line in f.read().replace(":", "\n").splitlines():
                if line.strip():
                    dirs.append(line.strip())
    except OSError:
        pass
    for t in _TRIPLETS.get(arch, ()):
        dirs += ["/lib/" + t, "/usr/lib/" + t]
    if native_arch()[1] == 64:
        dirs += ["/lib64", "/usr/lib64"]
    else:
        dirs += ["/lib32", "/usr/lib32"]
    dirs += ["/lib", "/usr/lib", "/usr/local/lib"]
    seen, out = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def _version_key(fname):
    parts = []
    for p in fname.split(".so")[-1].split("."):
        parts.append(int(p) if p.isdigit() else -1)
    return parts


def _search_dirs(rank):
    for d in library_dirs():
        try:
            names = os.listdir(d)
        except OSError:
            continue
        cands = []
        for n in names:
            r = rank(n)
            if r is not None:
                cands.append((r, [-v for v in _version_key(n)], n))
        cands.sort()
        for _, _, n in cands:
            p = os.path.join(d, n)
            if _is_native_elf(p):
                return p
    return None


# -- processes ---------------------------------------------------------------------------------

def mapped_files(pid):
    """Distinct file paths mapped by process ``pid`` (as the process sees them), in
    first-mapped order.  ``(deleted)`` files are left out."""
    out, seen = [], set()
    try:
        with open("/proc/%d/maps" % int(pid), "rb") as f:
            text = f.read()
    except OSError as e:
        raise UserError("cannot read the mappings of PID %s: %s" % (pid, e.strerror or e))
    for line in text.split(b"\n"):
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        path = parts[5].decode("utf-8", "surrogateescape")
        if not path.startswith("/") or path.endswith(" (deleted)"):
            continue
        if path not in seen:
            seen.add(path)
            out.append(path)
    return out


def _same_mount_ns(pid):
    try:
        return os.stat("/proc/%d/ns/mnt" % pid).st_ino == os.stat("/proc/self/ns/mnt").st_ino
    except OSError:
        return True


def _in_root(path, pid):
    """``path`` as seen by process ``pid``: through /proc/PID/root when its mount namespace
    differs from ours."""
    if pid is None or _same_mount_ns(pid):
        return path
    return "/proc/%d/root%s" % (pid, path if path.startswith("/") else "/" + path)


def which(program, path=None):
    """The first executable called ``program`` in ``PATH``, or None."""
    for d in (path if path is not None else os.environ.get("PATH", os.defpath)).split(":"):
        p = os.path.join(d or ".", program)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def resolve_binary(target, pid=None):
    """The file a uprobe/USDT target names: a path, a library name, or a program in PATH
    (with ``pid``: the process's executable or one of its libraries).  Raises ``UserError``
    (one line) when nothing matches."""
    if not target:
        if pid is not None:
            return "/proc/%d/exe" % pid
        raise UserError("no binary given for the probe")
    if "/" in target:
        path = _in_root(target, pid)
        if not os.path.exists(path):
            raise UserError("%s: no such file" % target)
        return path
    if pid is not None:
        try:
            exe = os.readlink("/proc/%d/exe" % pid)
        except OSError:
            exe = None
        if exe and os.path.basename(exe) == target:
            return "/proc/%d/exe" % pid
    lib = find_library(target, pid)
    if lib is not None:
        return lib
    if pid is None:
        prog = which(target)
        if prog is not None:
            return prog
        raise UserError("cannot find %r: not a path, a library known to ld.so.cache or the "
                        "library directories, nor a program in PATH" % target)
    raise UserError("process %d maps no library or executable matching %r" % (pid, target))
