"""Writing initramfs archives: the cpio "newc" format, kernel modules, and the guest's /init.

The guest's initrd is three archives one after another, which the kernel unpacks in order
(the layout Debian uses for early microcode):

1. the per-run payload (plain cpio): /init, /tt/run, /tt/env, the files of this run;
2. the kernel's modules for virtio-9p (plain cpio, one per kernel);
3. the Debian userland (cpio compressed with zstd, one per architecture and package set).

The cpio writer is here rather than GNU cpio so that ownership (always root), ordering and
padding are ours to decide, and so that the small per-run payload never touches a tool.
"""
import lzma
import os
import re
import stat
import subprocess

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"


def _pad4(n):
    return (4 - n % 4) % 4


class CpioWriter(object):
    """Writes a cpio archive in the SVR4 "newc" format (no CRC) to a binary file object.

    Every entry is owned by root.  Directories must be added before what they contain;
    ``add_tree`` does that.  ``finish`` writes the trailer and pads to 512 bytes.
    """

    def __init__(self, out):
        self.out = out
        self.ino = 721
        self.written = 0

    def _write(self, data):
        self.out.write(data)
        self.written += len(data)

    def _entry(self, name, mode, data=b"", mtime=0, nlink=1):
        name_b = name.encode("utf-8") + b"\0"
        self.ino += 1
        fields = (self.ino, mode, 0, 0, nlink, int(mtime) & 0xFFFFFFFF, len(data),
                  0, 0, 0, 0, len(name_b), 0)
        header = NEWC_MAGIC + b"".join(b"%08X" % v for v in fields)
        self._write(header + name_b + b"\0" * _pad4(len(header) + len(name_b)))
        if data:
            self._write(data)
            self._write(b"\0" * _pad4(len(data)))

    def add_dir(self, name, mode=0o755, mtime=0):
        self._entry(name, stat.S_IFDIR | (mode & 0o7777), mtime=mtime, nlink=2)

    def add_file(self, name, data, mode=0o644, mtime=0):
        self._entry(name, stat.S_IFREG | (mode & 0o7777), data, mtime=mtime)

    def add_symlink(self, name, target, mtime=0):
        self._entry(name, stat.S_IFLNK | 0o777, os.fsencode(target), mtime=mtime)

    def add_tree(self, root, prefix=""):
        """Everything below ``root`` (directories, regular files, symlinks), sorted."""
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel = os.path.relpath(dirpath, root)
            base = prefix if rel == "." else os.path.join(prefix, rel)
            names = sorted(filenames + [d for d in dirnames
                                        if os.path.islink(os.path.join(dirpath, d))])
            for d in dirnames:
                p = os.path.join(dirpath, d)
                if not os.path.islink(p):
                    st = os.lstat(p)
                    self.add_dir(os.path.join(base, d), st.st_mode, st.st_mtime)
            for n in names:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                arc = os.path.join(base, n)
                if stat.S_ISLNK(st.st_mode):
                    self.add_symlink(arc, os.readlink(p), st.st_mtime)
                elif stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        self.add_file(arc, f.read(), st.st_mode, st.st_mtime)

    def finish(self):
        self._entry(TRAILER, 0)
        self._write(b"\0" * ((512 - self.written % 512) % 512))


def read_cpio(data):
    """Parse a newc archive into [(name, mode, bytes)] -- for tests and for inspection."""
    out = []
    pos = 0
    while True:
        if data[pos:pos + 6] != NEWC_MAGIC:
            raise ValueError("bad cpio magic at offset %d" % pos)
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        pos += 110
        name = data[pos:pos + namesize - 1].decode("utf-8")
        pos += namesize
        pos += _pad4(pos)
        if name == TRAILER:
            return out
        out.append((name, mode, data[pos:pos + size]))
        pos += size + _pad4(size)


# ---------------------------------------------------------------- kernel modules

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst")


def module_index(tree):
    """Map module name (with '_') -> file, for a kernel package extracted at ``tree``.

    Bookworm keeps modules in lib/modules, trixie in usr/lib/modules, possibly compressed.
    """
    idx = {}
    for sub in ("lib/modules", "usr/lib/modules"):
        for dirpath, _, files in os.walk(os.path.join(tree, sub)):
            for f in files:
                for suffix in MODULE_SUFFIXES:
                    if f.endswith(suffix):
                        idx[f[:-len(suffix)].replace("-", "_")] = os.path.join(dirpath, f)
    return idx


def builtin_modules(tree):
    """Names listed in modules.builtin: code that is part of vmlinuz, nothing to load."""
    names = set()
    for sub in ("lib/modules", "usr/lib/modules"):
        top = os.path.join(tree, sub)
        if not os.path.isdir(top):
            continue
        for release in os.listdir(top):
            try:
                with open(os.path.join(top, release, "modules.builtin")) as f:
                    for line in f:
                        base = os.path.basename(line.strip())
                        if base.endswith(".ko"):
                            names.add(base[:-3].replace("-", "_"))
            except OSError:
                pass
    return names


def module_bytes(path):
    if path.endswith(".xz"):
        with lzma.open(path) as f:
            return f.read()
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-q", "-d", "-c", path], check=True,
                               stdout=subprocess.PIPE).stdout
    with open(path, "rb") as f:
        return f.read()


_DEPENDS = re.compile(rb"(?:^|\0)depends=([^\0]*)")


def module_depends(blob):
    """The ``depends=`` entry of a module's .modinfo section (found by its text)."""
    m = _DEPENDS.search(blob)
    if not m or not m.group(1):
        return []
    return [d.decode().replace("-", "_") for d in m.group(1).split(b",") if d]


def resolve_modules(wanted, index, builtin, read=module_bytes):
    """Load order for ``wanted`` and their dependencies: [(name, bytes)], dependencies first.

    There is no depmod on the host, so the order comes from each module's ``depends=``.
    A name that is neither a module file nor built in raises LookupError.
    """
    order = []
    seen = set()

    def visit(name, chain):
        name = name.replace("-", "_")
        if name in seen:
            return
        if name not in index:
            if name in builtin or chain:
                # built in, or a dependency that is (kernels list built-in deps too)
                seen.add(name)
                return
            raise LookupError("kernel module %s: neither a module file nor built in" % name)
        seen.add(name)
        blob = read(index[name])
        for dep in module_depends(blob):
            visit(dep, chain + (name,))
        order.append((name, blob))

    for w in wanted:
        visit(w, ())
    return order


# ---------------------------------------------------------------- /init

INIT_SCRIPT = r"""#!/bin/busybox sh
# tinytrace guest init: mount the kernel's file systems, run /tt/run once, power off.
/bin/busybox --install -s /bin 2>/dev/null
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8 USER=root LOGNAME=root
mount -t proc proc /proc
hostname -F /etc/hostname 2>/dev/null
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /dev/shm 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
ulimit -l unlimited
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null
set -a; . /tt/env; set +a
say() { echo "@@TT:$TT_TOKEN:$*"; }
if [ -n "$TT_JIT" ]; then
  echo "$TT_JIT" > /proc/sys/net/core/bpf_jit_enable || say "WARN cannot set bpf_jit_enable=$TT_JIT"
fi
cd /tt/work
if [ -n "$TT_SHARE" ]; then
  for m in $(cat /tt/mod/order); do insmod /tt/mod/$m.ko || say "WARN insmod $m failed"; done
  if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=$TT_9P_CACHE ttshare /mnt/host; then
    cd /mnt/host
  else
    say "ERROR the 9p share did not mount"
    poweroff -f
  fi
fi
say "BEGIN $(cut -d' ' -f1 /proc/uptime)"
sh /tt/run </dev/null
rc=$?
say "EXIT=$rc $(cut -d' ' -f1 /proc/uptime)"
cd /
umount /mnt/host 2>/dev/null
sync
poweroff -f
"""
