"""Block and file-system workloads: direct I/O of known sizes (biolatency, biosnoop, biotop,
bitesize), ext4 operations with deliberately slow ones (ext4slower, ext4dist) and page-cache
misses/hits/dirties (cachestat).

I/O goes through pread64/pwrite64 from libc on a page-aligned buffer, so every O_DIRECT call
is one syscall and one bio; a synchronous O_DIRECT read or write of up to a few hundred KiB
on a loop device is exactly one request of that size.
"""
import ctypes
import os
import time

from tests.workloads import _util
from tests.workloads._held import Workload
from tests.workloads._util import WorkloadError

PAGE = 4096


class _AlignedBuffer(object):
    """A page-aligned, zero-filled buffer of ``size`` bytes for O_DIRECT (``addr``)."""

    def __init__(self, size, fill=b"\0"):
        self._raw = ctypes.create_string_buffer(size + PAGE)
        base = ctypes.addressof(self._raw)
        self.addr = (base + PAGE - 1) & ~(PAGE - 1)
        self.size = size
        if fill != b"\0":
            ctypes.memmove(self.addr, fill * size, size)


def _pread(fd, buf, n, off):
    lib = _util.libc()
    lib.pread.restype = ctypes.c_ssize_t
    ret = lib.pread(fd, ctypes.c_void_p(buf.addr), ctypes.c_size_t(n), ctypes.c_long(off))
    if ret < 0:
        raise OSError(ctypes.get_errno(), "pread: " + os.strerror(ctypes.get_errno()))
    return ret


def _pwrite(fd, buf, n, off):
    lib = _util.libc()
    lib.pwrite.restype = ctypes.c_ssize_t
    ret = lib.pwrite(fd, ctypes.c_void_p(buf.addr), ctypes.c_size_t(n), ctypes.c_long(off))
    if ret < 0:
        raise OSError(ctypes.get_errno(), "pwrite: " + os.strerror(ctypes.get_errno()))
    return ret


# ---------------------------------------------------------------------------------------
# direct I/O on a block device

class DirectIO(Workload):
    comm = "tt-dio"

    def __init__(self, device=None, reads=((4096, 8), (65536, 4)), writes=((16384, 6),),
                 size_mb=64):
        super(DirectIO, self).__init__()
        self.device, self.reads, self.writes, self.size_mb = device, reads, writes, size_mb

    def _start(self):
        if self.device is None:
            from tests.workloads.resources import loop_device
            self.device = self.enter(loop_device(self.size_mb))
        dev = self.device
        ops, off = [], 0
        for op, plan in (("R", self.reads), ("W", self.writes)):
            for size, count in plan:
                if size % 512 or size > 512 * 1024:
                    raise ValueError("direct I/O sizes must be multiples of 512 up to 512 KiB")
                for _ in range(count):
                    ops.append({"op": op, "size": size, "offset": off, "sector": off // 512})
                    off += max(size, PAGE)
        if off > dev.size:
            raise ValueError("the I/O plan needs %d bytes, the device has %d" % (off, dev.size))
        self.plan = ops
        self.spawn("main", "tests.workloads.block:_dio_child",
                   {"path": dev.path, "ops": ops}, comm=self.comm)
        dev.settle()

    def _go(self, timeout):
        dev = self.device
        before = dev.stat()
        rep = self.children["main"].step(timeout)
        after = _util.wait_until(lambda: (lambda s: s if s["in_flight"] == 0 else None)(dev.stat()), 5)
        delta = _util.diff_counts(before, after)
        r = [o for o in self.plan if o["op"] == "R"]
        w = [o for o in self.plan if o["op"] == "W"]
        sizes = {}
        for o in self.plan:
            key = "%s%d" % (o["op"], o["size"])
            sizes[key] = sizes.get(key, 0) + 1
        return {"pid": self.pid, "tid": rep["tid"], "comm": self.comm, "device": dev.path,
                "disk": dev.name, "major": dev.major, "minor": dev.minor, "majmin": dev.majmin,
                "ops": self.plan, "latency_ms": rep["latency_ms"],
                "reads": {"count": len(r), "bytes": sum(o["size"] for o in r)},
                "writes": {"count": len(w), "bytes": sum(o["size"] for o in w)},
                "sizes": sizes, "diskstat_delta": delta}


def _dio_child(cfg):
    fd = os.open(cfg["path"], os.O_RDWR | os.O_DIRECT)
    biggest = max(o["size"] for o in cfg["ops"])
    buf = _AlignedBuffer(biggest, b"w")
    yield {}
    lat = []
    for o in cfg["ops"]:
        t = time.monotonic()
        if o["op"] == "R":
            n = _pread(fd, buf, o["size"], o["offset"])
        else:
            n = _pwrite(fd, buf, o["size"], o["offset"])
        lat.append((time.monotonic() - t) * 1e3)
        if n != o["size"]:
            raise WorkloadError("short direct I/O: %d of %d" % (n, o["size"]))
    os.close(fd)
    yield {"latency_ms": lat, "tid": _util.gettid()}


def direct_io(device=None, reads=((4096, 8), (65536, 4)), writes=((16384, 6),), size_mb=64):
    """biolatency / biosnoop / biotop / bitesize: a child (comm ``tt-dio``) doing synchronous
    O_DIRECT pread64/pwrite64 on a raw block device -- ``device`` (a LoopDevice) or a fresh
    ``size_mb`` MiB loop device -- one request per call: ``reads`` then ``writes``, each a
    sequence of (size in bytes, count), at distinct, increasing, non-overlapping offsets.

    Record: ``pid``, ``tid``, ``comm``, ``device`` (/dev/loopN), ``disk`` (loopN), ``major``,
    ``minor``, ``majmin``, ``ops`` (in order: ``op`` "R"/"W", ``size``, ``offset``,
    ``sector``), ``latency_ms`` (per op, measured by the child), ``reads`` / ``writes``
    {``count``, ``bytes``}, ``sizes`` {"R4096": n, ...}, ``diskstat_delta`` (the device's
    /sys/block/DISK/stat counters over the run: read_ios, read_sectors, write_ios, ...).
    """
    return DirectIO(device, reads, writes, size_mb)


# ---------------------------------------------------------------------------------------
# ext4 operations with slow ones

class Ext4Ops(Workload):
    comm = "tt-ext4"

    def __init__(self, image=None, n_files=2, n_writes=4, n_reads=8, n_slow=2,
                 slow_bytes=65536, throttle_bps=512 * 1024):
        super(Ext4Ops, self).__init__()
        self.image = image
        self.cfg = {"n_files": n_files, "n_writes": n_writes, "n_reads": n_reads,
                    "n_slow": n_slow, "slow_bytes": slow_bytes}
        self.throttle_bps = throttle_bps

    def _start(self):
        from tests.workloads.resources import cgroup, ext4_image
        if self.image is None:
            self.image = self.enter(ext4_image(64))
        img = self.image
        d = img.path(_util.unique_name("ops"))
        os.mkdir(d)
        data = os.path.join(d, "data")
        with open(data, "wb") as f:
            f.write(b"d" * (1 << 20))
            f.flush()
            os.fsync(f.fileno())
        self.cfg.update(dir=d, data=data)
        self.child = self.spawn("main", "tests.workloads.block:_ext4_child", self.cfg,
                                comm=self.comm)
        if self.cfg["n_slow"]:
            cg = self.enter(cgroup("io"))
            cg.throttle_io(img.majmin, rbps=self.throttle_bps, wbps=self.throttle_bps)
            cg.add(self.child.pid)
            self.cgroup = cg
        img.settle()

    def _go(self, timeout):
        rep = self.children["main"].step(timeout)
        counts = {}
        for o in rep["ops"]:
            counts[o["op"]] = counts.get(o["op"], 0) + 1
        # throttled ops take at least bytes / bps; the record says which ops were meant slow
        slow_floor_ms = 1e3 * self.cfg["slow_bytes"] / float(self.throttle_bps)
        rep.update(pid=self.pid, comm=self.comm, counts=counts, device=self.image.device,
                   majmin=self.image.majmin, mountpoint=self.image.mountpoint,
                   dir=self.cfg["dir"], throttle_bps=self.throttle_bps,
                   slow_floor_ms=slow_floor_ms)
        for o in rep["ops"]:
            if o["slow"] and o["latency_ms"] < slow_floor_ms * 0.9:
                raise WorkloadError("throttled %s took only %.1f ms" % (o["op"], o["latency_ms"]))
        return rep


def _ext4_child(cfg):
    d, data = cfg["dir"], cfg["data"]
    big = _AlignedBuffer(cfg["slow_bytes"], b"s")
    yield {}
    ops = []

    def timed(op, syscall, path, fn, nbytes=0, offset=None, direct=False, slow=False):
        t = time.monotonic()
        ret = fn()
        ms = (time.monotonic() - t) * 1e3
        ops.append({"op": op, "syscall": syscall, "path": path, "file": os.path.basename(path),
                    "bytes": nbytes, "offset": offset, "latency_ms": ms, "direct": direct,
                    "slow": slow})
        return ret

    fd_r = timed("open", "openat", data, lambda: os.open(data, os.O_RDONLY))
    fd_d = timed("open", "openat", data, lambda: os.open(data, os.O_RDWR | os.O_DIRECT),
                 direct=True)
    for i in range(cfg["n_files"]):
        path = os.path.join(d, "new-%d" % i)
        fd = timed("open", "openat", path,
                   lambda: os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
        for j in range(cfg["n_writes"]):
            timed("write", "write", path, lambda: os.write(fd, b"n" * PAGE), PAGE, j * PAGE)
        timed("fsync", "fsync", path, lambda: os.fsync(fd))
        os.close(fd)
    for j in range(cfg["n_reads"]):
        timed("read", "read", data, lambda: os.read(fd_r, PAGE), PAGE, j * PAGE)
    n = cfg["slow_bytes"]
    for j in range(cfg["n_slow"]):
        off = (j + 1) * n
        timed("read", "pread64", data, lambda: _pread(fd_d, big, n, off), n, off, True, True)
    for j in range(cfg["n_slow"]):
        off = (j + 4) * n
        timed("write", "pwrite64", data, lambda: _pwrite(fd_d, big, n, off), n, off, True, True)
    os.close(fd_r)
    os.close(fd_d)
    yield {"ops": ops, "tid": _util.gettid()}


def ext4_ops(image=None, n_files=2, n_writes=4, n_reads=8, n_slow=2, slow_bytes=65536,
             throttle_bps=512 * 1024):
    """ext4slower / ext4dist: a child (comm ``tt-ext4``) working on an ext4 file system
    (``image``, an Ext4Image, or a fresh 64 MiB one) in a directory of its own:

    - opens ``data`` (1 MiB, written and synced beforehand) read-only, and again O_DIRECT;
    - ``n_files`` times: creates ``new-I`` (openat O_CREAT), ``n_writes`` buffered 4 KiB
      writes, one fsync;
    - ``n_reads`` buffered 4 KiB reads of ``data`` (page-cache hits: fast);
    - ``n_slow`` O_DIRECT pread64 and ``n_slow`` O_DIRECT pwrite64 of ``slow_bytes`` each,
      throttled by an io/blkio cgroup to ``throttle_bps`` bytes/s on the device, so each takes
      at least ``slow_floor_ms`` (125 ms by default).

    Record: ``pid``, ``tid``, ``comm``, ``device``, ``majmin``, ``mountpoint``, ``dir``,
    ``ops`` (in order: ``op`` read/write/open/fsync, ``syscall``, ``path``, ``file``,
    ``bytes``, ``offset``, ``latency_ms`` as the child measured it around the syscall,
    ``direct``, ``slow`` (throttled on purpose)), ``counts`` {op: n}, ``throttle_bps``,
    ``slow_floor_ms``.
    """
    return Ext4Ops(image, n_files, n_writes, n_reads, n_slow, slow_bytes, throttle_bps)


# ---------------------------------------------------------------------------------------
# page cache

class PageCache(Workload):
    comm = "tt-cache"

    def __init__(self, image=None, size_mb=4, write_pages=64):
        super(PageCache, self).__init__()
        self.image, self.size, self.write_pages = image, size_mb << 20, write_pages

    def _start(self):
        from tests.workloads.resources import ext4_image
        if self.image is None:
            self.image = self.enter(ext4_image(64))
        d = self.image.path(_util.unique_name("cache"))
        os.mkdir(d)
        path = os.path.join(d, "cached")
        with open(path, "wb") as f:
            f.write(b"c" * self.size)
            f.flush()
            os.fsync(f.fileno())
        self.path, self.dirty = path, os.path.join(d, "dirty")
        self.spawn("main", "tests.workloads.block:_cache_child",
                   {"path": path, "size": self.size, "dirty": self.dirty,
                    "write_pages": self.write_pages}, comm=self.comm)
        self.image.settle()

    def _go(self, timeout):
        child, img = self.children["main"], self.image
        phases = {}
        for name in ("first_read", "second_read", "write"):
            before = img.stat()
            rep = child.step(timeout)
            after = img.stat()
            rep["diskstat_delta"] = _util.diff_counts(before, after)
            phases[name] = rep
        pages = self.size // PAGE
        return {"pid": self.pid, "comm": self.comm, "tid": phases["write"]["tid"],
                "path": self.path, "dirty_path": self.dirty, "device": img.device,
                "pages": pages, "size": self.size, "resident_at_start": child.ready["resident"],
                "phases": phases, "misses": pages, "hits": pages,
                "dirtied": self.write_pages}


def _resident_pages(path):
    """Pages of ``path`` in the page cache (mincore over a private mapping)."""
    import mmap
    lib = _util.libc()
    size = os.path.getsize(path)
    npages = (size + PAGE - 1) // PAGE
    fd = os.open(path, os.O_RDONLY)
    try:
        mm = mmap.mmap(fd, size, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    try:
        anchor = ctypes.c_char.from_buffer(mm)
        vec = (ctypes.c_ubyte * npages)()
        rc = lib.mincore(ctypes.c_void_p(ctypes.addressof(anchor)), ctypes.c_size_t(size), vec)
        del anchor
        if rc != 0:
            raise OSError(ctypes.get_errno(), "mincore")
        return sum(v & 1 for v in vec)
    finally:
        mm.close()


def _read_all(path, chunk=128 * 1024):
    fd = os.open(path, os.O_RDONLY)
    total = 0
    try:
        while True:
            b = os.read(fd, chunk)
            if not b:
                return total
            total += len(b)
    finally:
        os.close(fd)


def _cache_child(cfg):
    path = cfg["path"]
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    yield {"resident": _resident_pages(path)}
    n = _read_all(path)
    yield {"bytes": n, "resident_after": _resident_pages(path)}
    n = _read_all(path)
    yield {"bytes": n, "resident_after": _resident_pages(path)}
    fd = os.open(cfg["dirty"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for _ in range(cfg["write_pages"]):
        os.write(fd, b"y" * PAGE)
    os.close(fd)
    yield {"bytes": cfg["write_pages"] * PAGE, "tid": _util.gettid()}


def page_cache(image=None, size_mb=4, write_pages=64):
    """cachestat: a child (comm ``tt-cache``) on an ext4 file system (``image`` or a fresh
    one).  Set-up writes and syncs a ``size_mb`` MiB file and evicts it from the page cache
    (fadvise DONTNEED; ``resident_at_start`` says how many pages stayed: normally 0).  Then
    three phases: read the whole file (every page a miss, read from the device), read it
    again (every page a hit, no device reads), write ``write_pages`` new 4 KiB pages to
    another file (each page dirtied once; not synced).

    Record: ``pid``, ``tid``, ``comm``, ``path``, ``dirty_path``, ``device``, ``pages`` (of
    the file), ``size``, ``misses`` (= pages, first read), ``hits`` (= pages, second read),
    ``dirtied`` (= write_pages), ``phases`` {first_read, second_read, write: {``bytes``,
    ``resident_after`` (pages cached after the phase, by mincore), ``diskstat_delta`` (the
    loop device's counters)}}.  (/proc/vmstat's nr_dirtied is no check: it is folded from
    per-CPU counters lazily.)
    """
    return PageCache(image, size_mb, write_pages)
