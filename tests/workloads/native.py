"""An optional native helper library with known function names, for user-stack tests.

Python frames are invisible to a frame-pointer unwinder and Debian's libc has no frame
pointers, so "a known function on the user stack" needs a little C: ``libttwork.so``, built
at -O0 with frame pointers (every function keeps its frame) when a C compiler is present (``native_library()``
skips the test otherwise; a fresh Debian 12 needs ``apt-get install gcc``).  It is built
once per source version into a root-owned cache directory and loaded with ctypes.

Functions: ``tt_spin(ms)`` burns CPU in ``tt_spin_inner`` (leaf) called from ``tt_spin``;
``tt_leak_a(size)`` calls ``tt_leak_b`` which calls ``tt_leak_c`` which calls malloc(size).
"""
import ctypes
import hashlib
import os
import subprocess
import tempfile

from tests.workloads import _util

SOURCE = r"""
#include <stdlib.h>
#include <time.h>

volatile unsigned long tt_sink;

static double tt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) unsigned long tt_spin_inner(unsigned long n)
{
    unsigned long x = tt_sink;
    for (unsigned long i = 0; i < n; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    tt_sink = x;
    return x;
}

__attribute__((noinline)) void tt_spin(long ms)
{
    double end = tt_now() + ms / 1000.0;
    while (tt_now() < end)
        tt_spin_inner(200000);
}

__attribute__((noinline)) void *tt_leak_c(size_t n)
{
    void *p = malloc(n);
    tt_sink += (unsigned long)p;
    return p;
}

__attribute__((noinline)) void *tt_leak_b(size_t n)
{
    void *p = tt_leak_c(n);
    tt_sink++;
    return p;
}

__attribute__((noinline)) void *tt_leak_a(size_t n)
{
    void *p = tt_leak_b(n);
    tt_sink++;
    return p;
}
"""

#: What a frame-pointer unwinder sees at the malloc entry probe: the uprobe fires before
#: malloc pushes a frame, so its direct caller (tt_leak_c) is skipped.
LEAK_FRAMES_FP = ["tt_leak_b", "tt_leak_a"]
LEAK_CALLERS = ["tt_leak_c", "tt_leak_b", "tt_leak_a"]
SPIN_FRAMES = ["tt_spin_inner", "tt_spin"]


def _compiler():
    for cc in ("cc", "gcc", "clang"):
        path = _util.which(cc)
        if path:
            return path
    return None


def native_library():
    """Path of libttwork.so, built on first use; skips the test without a C compiler."""
    cc = _compiler()
    if cc is None:
        _util.unavailable("no C compiler for the native workload helper (apt-get install gcc)",
                          optional=True)
    digest = hashlib.sha256((SOURCE + "-O0").encode()).hexdigest()[:16]
    cache = os.path.join(tempfile.gettempdir(), "ttwl-native-%d" % os.geteuid())
    lib = os.path.join(cache, "libttwork-%s.so" % digest)
    if os.path.exists(lib):
        st = os.stat(cache)
        if st.st_uid == os.geteuid() and not (st.st_mode & 0o022):
            return lib
    os.makedirs(cache, 0o700, exist_ok=True)
    st = os.stat(cache)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise _util.WorkloadError("refusing to use %s: not owned by us or writable by others"
                                  % cache)
    fd, src = tempfile.mkstemp(suffix=".c", dir=cache)
    with os.fdopen(fd, "w") as f:
        f.write(SOURCE)
    tmp = src[:-2] + ".so"
    try:
        # -O0: every function, leaves too (tt_spin_inner), sets up its frame; gcc 12 drops
        # the frame of a leaf at -O1 even with -fno-omit-frame-pointer, and an unwinder then
        # skips the leaf's caller
        p = subprocess.run([cc, "-shared", "-fPIC", "-O0", "-g", "-fno-omit-frame-pointer",
                            "-o", tmp, src], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=120)
        if p.returncode != 0:
            raise _util.WorkloadError("building the native helper failed:\n" + p.stderr)
        os.rename(tmp, lib)
        for old in os.listdir(cache):              # builds of older sources
            if old.startswith("libttwork-") and os.path.join(cache, old) != lib:
                try:
                    os.unlink(os.path.join(cache, old))
                except OSError:
                    pass
    finally:
        for path in (src, tmp):
            try:
                os.unlink(path)
            except OSError:
                pass
    return lib


def load(path):
    lib = ctypes.CDLL(path)
    lib.tt_spin.argtypes = [ctypes.c_long]
    lib.tt_spin.restype = None
    for name in ("tt_leak_a", "tt_leak_b", "tt_leak_c"):
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_size_t]
        fn.restype = ctypes.c_void_p
    return lib
