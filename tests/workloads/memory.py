"""Memory workloads: a memory-cgroup OOM kill (oomkill), user-space leaks through libc
(memleak) and outstanding kernel allocations made by a known syscall loop (memleak -k)."""
import ctypes
import ctypes.util
import os
import signal
import time

from tests.workloads import _util
from tests.workloads._held import Workload
from tests.workloads._util import WorkloadError


# ---------------------------------------------------------------------------------------
# OOM kill

class MemcgOom(Workload):
    comm = "tt-oomvictim"

    def __init__(self, limit_mb=32, alloc_mb=256):
        super(MemcgOom, self).__init__()
        self.limit_mb, self.alloc_mb = limit_mb, alloc_mb

    def _start(self):
        from tests.workloads.resources import cgroup
        self.cg = self.enter(cgroup("memory"))
        self.cg.limit_memory(self.limit_mb << 20)
        child = self.spawn("main", "tests.workloads.memory:_oom_child",
                           {"alloc_mb": self.alloc_mb}, comm=self.comm)
        self.cg.add(child.pid)

    def _go(self, timeout):
        child = self.children["main"]
        before = self.cg.oom_kills()
        t0 = time.monotonic()
        child.release()
        code = child.wait(timeout)
        elapsed = time.monotonic() - t0
        kills = self.cg.oom_kills() - before
        if code != -signal.SIGKILL or kills < 1:
            raise WorkloadError("the child was not OOM-killed (exit %s, oom_kill events %d):\n%s"
                                % (code, kills, child.stderr()))
        return {"pid": child.pid, "comm": self.comm, "victim_pid": child.pid,
                "victim_comm": self.comm, "trigger_pid": child.pid,
                "limit_bytes": self.limit_mb << 20, "alloc_mb": self.alloc_mb,
                "exit_signal": int(signal.SIGKILL), "oom_kill_events": kills,
                "cgroup": self.cg.dirs["memory"], "cgroup_version": self.cg.version["memory"],
                "elapsed_s": elapsed}


def _oom_child(cfg):
    chunks = []
    yield {}
    for _ in range(cfg["alloc_mb"] // 8):
        chunks.append(b"\x01" * (8 << 20))      # filled: every page is touched
    yield {"survived": True}


def memcg_oom(limit_mb=32, alloc_mb=256):
    """oomkill: a child (comm ``tt-oomvictim``) in a fresh memory cgroup limited to
    ``limit_mb`` MiB without swap (v2 memory.max / v1 memory.limit_in_bytes) allocates and
    touches ``alloc_mb`` MiB, so the memcg OOM killer kills it (SIGKILL); the child is both
    the task that triggers the OOM and the victim.

    Record: ``pid``, ``comm``, ``victim_pid``, ``victim_comm``, ``trigger_pid``,
    ``limit_bytes``, ``alloc_mb``, ``exit_signal`` (9), ``oom_kill_events`` (the cgroup's
    oom_kill counter delta), ``cgroup``, ``cgroup_version``, ``elapsed_s``.
    """
    return MemcgOom(limit_mb, alloc_mb)


# ---------------------------------------------------------------------------------------
# user-space leaks

# (allocator, size in bytes, count, how many of them are freed again).  Odd sizes, so the
# interpreter's own allocations do not collide with them.
DEFAULT_ALLOCS = (
    ("malloc", 3001, 16, 8),
    ("calloc", 7 * 1003, 6, 2),
    ("strdup", 4999 + 1, 5, 0),
    ("posix_memalign", 20480, 4, 1),
)


class MallocLeaks(Workload):
    comm = "tt-leaker"

    def __init__(self, allocs=DEFAULT_ALLOCS, native=None, native_size=12347, native_count=3):
        super(MallocLeaks, self).__init__()
        self.allocs, self.native = [list(a) for a in allocs], native
        self.native_size, self.native_count = native_size, native_count

    def _start(self):
        cfg = {"allocs": self.allocs}
        if self.native is None:
            from tests.workloads.native import _compiler
            self.native = _compiler() is not None
        if self.native:
            from tests.workloads.native import native_library
            cfg["library"] = native_library()
            cfg["native"] = [self.native_size, self.native_count]
        self.cfg = cfg
        self.spawn("main", "tests.workloads.memory:_leak_child", cfg, comm=self.comm)

    def _go(self, timeout):
        rep = self.children["main"].step(timeout)
        leaked = sum(a["leaked_bytes"] for a in rep["allocations"])
        rep.update(pid=self.pid, comm=self.comm, leaked_bytes=leaked,
                   libc=self.children["main"].ready["libc"])
        if self.native:
            from tests.workloads.native import LEAK_CALLERS, LEAK_FRAMES_FP
            rep["native"].update(callers=LEAK_CALLERS, frames_fp=LEAK_FRAMES_FP,
                                 library=self.cfg["library"])
        return rep


def _libc_path():
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and os.path.basename(parts[5]).startswith("libc.so"):
                return parts[5]
            if len(parts) >= 6 and os.path.basename(parts[5]).startswith("libc-"):
                return parts[5]
    return ctypes.util.find_library("c")


def _leak_child(cfg):
    lib = ctypes.CDLL(None, use_errno=True)
    for name in ("malloc", "calloc", "strdup"):
        getattr(lib, name).restype = ctypes.c_void_p
    lib.malloc.argtypes = [ctypes.c_size_t]
    lib.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    lib.strdup.argtypes = [ctypes.c_char_p]
    lib.free.argtypes = [ctypes.c_void_p]
    lib.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t,
                                   ctypes.c_size_t]
    text = b"s" * 4999
    native = None
    if cfg.get("library"):
        from tests.workloads import native as nat
        native = nat.load(cfg["library"])
    held = []
    yield {"libc": _libc_path()}
    out = []
    for func, size, count, nfree in cfg["allocs"]:
        ptrs = []
        for _ in range(count):
            if func == "malloc":
                p = lib.malloc(size)
            elif func == "calloc":
                p = lib.calloc(7, size // 7)
            elif func == "strdup":
                p = lib.strdup(text[:size - 1])
            elif func == "posix_memalign":
                box = ctypes.c_void_p()
                if lib.posix_memalign(ctypes.byref(box), 4096, size) != 0:
                    raise WorkloadError("posix_memalign failed")
                p = box.value
            else:
                raise ValueError(func)
            if not p:
                raise WorkloadError("%s(%d) failed" % (func, size))
            ptrs.append(p)
        for p in ptrs[:nfree]:
            lib.free(p)
        kept = ptrs[nfree:]
        held.extend(kept)
        out.append({"func": func, "size": size, "count": count, "freed": nfree,
                    "leaked": len(kept), "leaked_bytes": size * len(kept),
                    "addresses": kept})
    rep = {"allocations": out, "tid": _util.gettid()}
    if native is not None:
        size, count = cfg["native"]
        ptrs = [native.tt_leak_a(size) for _ in range(count)]
        held.extend(ptrs)
        rep["native"] = {"func": "malloc", "size": size, "count": count, "leaked": count,
                         "leaked_bytes": size * count, "addresses": ptrs}
        out.append({"func": "malloc", "size": size, "count": count, "freed": 0,
                    "leaked": count, "leaked_bytes": size * count, "addresses": ptrs,
                    "via": "tt_leak_a"})
    yield rep
    # held until the workload is closed: the leaks stay outstanding while a tool reports


def malloc_leaks(allocs=DEFAULT_ALLOCS, native=None, native_size=12347, native_count=3):
    """memleak (user mode): a child (comm ``tt-leaker``) calling libc allocators with odd
    sizes and freeing only some: ``allocs`` is a sequence of (allocator, size, count,
    freed) with allocator malloc, calloc (7 x size/7), strdup (of size-1 chars) or
    posix_memalign (4096-aligned).  With ``native`` (default: when a C compiler exists) it
    also leaks ``native_count`` blocks of ``native_size`` through tt_leak_a -> tt_leak_b ->
    tt_leak_c -> malloc of the native helper, a known user stack.  The leaks stay
    outstanding until the workload is closed.

    Record: ``pid``, ``tid``, ``comm``, ``libc`` (path of the libc the child maps),
    ``allocations`` (``func``, ``size``, ``count``, ``freed``, ``leaked``, ``leaked_bytes``,
    ``addresses`` of the leaked blocks; the native one has ``via``), ``leaked_bytes``
    (total), and ``native`` {``size``, ``count``, ``leaked_bytes``, ``addresses``,
    ``callers`` (tt_leak_c, tt_leak_b, tt_leak_a), ``frames_fp`` (what a frame-pointer
    unwinder sees above malloc at its entry: tt_leak_b, tt_leak_a), ``library``} when
    native.
    """
    return MallocLeaks(allocs, native, native_size, native_count)


# ---------------------------------------------------------------------------------------
# kernel allocations

class KernelAllocs(Workload):
    comm = "tt-kalloc"

    def __init__(self, count=256):
        super(KernelAllocs, self).__init__()
        self.count = count

    def _start(self):
        soft, hard = _rlimit_nofile()
        if self.count + 64 > hard:
            raise ValueError("count exceeds the open-files limit")
        self.spawn("main", "tests.workloads.memory:_kalloc_child", {"count": self.count},
                   comm=self.comm)

    def _go(self, timeout):
        rep = self.children["main"].step(timeout)
        rep.update(pid=self.pid, comm=self.comm, syscall="eventfd2", count=self.count,
                   kstack_expect=_util.kernel_functions(["do_eventfd", "__x64_sys_eventfd2",
                                                         "__arm64_sys_eventfd2"]),
                   slab_cache="filp")
        return rep


def _rlimit_nofile():
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _kalloc_child(cfg):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < cfg["count"] + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, cfg["count"] + 64), hard))
    fds = []
    try:
        yield {}
        for _ in range(cfg["count"]):
            fd, err = _util.raw_syscall("eventfd2", 0, os.O_CLOEXEC)
            if fd < 0:
                raise WorkloadError("eventfd2 failed: errno %d" % err)
            fds.append(fd)
        yield {"fds": len(fds), "tid": _util.gettid()}
    finally:
        for fd in fds:
            os.close(fd)


def kernel_allocs(count=256):
    """memleak (kernel mode): a child (comm ``tt-kalloc``) making ``count`` eventfd2(2) calls
    and holding the fds until the workload is closed, so each call's kernel allocations (a
    kmalloc'd eventfd_ctx from do_eventfd, a ``filp`` slab object for the file) stay
    outstanding under a known kernel stack.

    Record: ``pid``, ``tid``, ``comm``, ``syscall`` ("eventfd2"), ``count``, ``fds`` (held),
    ``kstack_expect`` (do_eventfd and the syscall entry, as named in this kernel),
    ``slab_cache`` ("filp").
    """
    return KernelAllocs(count)
