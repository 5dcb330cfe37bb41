"""Generate ``_libc.py``, the out-of-line cffi ABI module through which tinytrace calls libc.

Run ``python3 -m tinytrace.kernel._build_libc`` after changing ``CDEF`` and commit the result.
The generated module holds the declarations in cffi's pre-parsed binary form, so importing it
costs no C parsing (and does not need pycparser); ``libc.py`` then dlopen()s the C library.

The declarations are deliberately few.  Kernel structures (bpf_attr, perf_event_attr, ring
headers) are packed with ``struct`` into bytearrays and passed with ``ffi.from_buffer``: that
keeps this file architecture-neutral, which is what lets one generated module serve x86_64,
arm, mips and the rest.  Only prototypes whose C types have the same meaning everywhere are
listed (``long`` for mmap's offset is the plain, non-LFS ``mmap`` symbol on every libc).
"""
import os
import sys

MODULE = "tinytrace.kernel._libc"

CDEF = """
long syscall(long number, ...);
int ioctl(int fd, unsigned long request, ...);
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int munmap(void *addr, size_t length);
int mount(const char *source, const char *target, const char *fstype,
          unsigned long flags, const void *data);
int pthread_mutex_lock(void *mutex);
int pthread_mutex_unlock(void *mutex);
"""


def builder():
    import cffi
    ffi = cffi.FFI()
    ffi.set_source(MODULE, None)
    ffi.cdef(CDEF)
    return ffi


def generate(tmpdir):
    """Write the module under ``tmpdir`` (as tinytrace/kernel/_libc.py); return its path."""
    return builder().compile(tmpdir=tmpdir)


def main(argv=None):
    import shutil
    import tempfile
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        path = generate(tmp)
        shutil.copyfile(path, os.path.join(here, "_libc.py"))
    sys.stdout.write("wrote %s\n" % os.path.join(here, "_libc.py"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
