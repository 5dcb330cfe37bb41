"""File-name workloads: opens (opensnoop) and stats (statsnoop).

Both make *raw* system calls through ``syscall(2)``, so the syscall a record names is the one
the kernel saw (glibc would turn ``open()`` into openat and ``stat()`` into newfstatat).
Paths live in a fresh directory named ``/tmp/ttwl<pid>-...``; some exist, some do not.
"""
import ctypes
import errno
import os
import shutil
import tempfile

from tests.workloads import _util
from tests.workloads._held import Workload

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
STATX_BASIC_STATS = 0x7FF
RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def _make_dir(what):
    d = os.path.join(tempfile.gettempdir(), _util.unique_name(what))
    os.mkdir(d, 0o755)
    return d


# ---------------------------------------------------------------------------------------
# opens

_OPEN_VARIANTS = (
    # (kind, flags, mode): kind "existing" opens a file that exists, "create" a new one
    ("existing", os.O_RDONLY | os.O_CLOEXEC, 0),
    ("create", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640),
    ("existing", os.O_RDWR | os.O_APPEND, 0),
    ("existing", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, 0),
)


class Opens(Workload):
    comm = "tt-opens"

    def __init__(self, n_ok=2, n_missing=2, syscalls=("open", "openat", "openat2"),
                 relative=True):
        super(Opens, self).__init__()
        self.n_ok, self.n_missing, self.relative = n_ok, n_missing, relative
        self.syscalls = [s for s in syscalls if _util.syscall_nr(s) is not None]
        if not self.syscalls:
            _util.unavailable("none of %s exists on %s" % (syscalls, _util.machine()))

    def _start(self):
        self.dir = _make_dir("opens")
        self.cleanup(shutil.rmtree, self.dir, True)
        calls = []
        for sc in self.syscalls:
            for i in range(self.n_ok):
                kind, flags, mode = _OPEN_VARIANTS[i % len(_OPEN_VARIANTS)]
                path = os.path.join(self.dir, "%s-%s-%d" % (kind, sc, i))
                if kind == "existing":
                    with open(path, "w") as f:
                        f.write("marker\n")
                calls.append({"syscall": sc, "path": path, "flags": flags, "mode": mode,
                              "dfd": AT_FDCWD, "expect_errno": 0})
            if self.relative and sc in ("openat", "openat2"):
                name = "relative-%s" % sc
                with open(os.path.join(self.dir, name), "w") as f:
                    f.write("marker\n")
                calls.append({"syscall": sc, "path": name, "flags": os.O_RDONLY, "mode": 0,
                              "dfd": "dir", "expect_errno": 0,
                              "resolve": RESOLVE_BENEATH if sc == "openat2" else 0})
            for j in range(self.n_missing):
                path = os.path.join(self.dir, "missing-%s-%d" % (sc, j))
                calls.append({"syscall": sc, "path": path, "flags": os.O_RDONLY, "mode": 0,
                              "dfd": AT_FDCWD, "expect_errno": errno.ENOENT})
        self.planned = calls
        self.spawn("main", "tests.workloads.files:_opens_child",
                   {"dir": self.dir, "calls": calls}, comm=self.comm)

    def _go(self, timeout):
        rep = self.children["main"].step(timeout)
        for call in rep["calls"]:
            if call["syscall"] == "openat2" and call["errno"] == errno.ENOSYS:
                _util.unavailable("openat2 is not supported by this kernel")
            if call["errno"] != call["expect_errno"]:
                raise _util.WorkloadError("open of %s gave errno %d, expected %d" % (
                    call["path"], call["errno"], call["expect_errno"]))
        counts = {}
        for call in rep["calls"]:
            c = counts.setdefault(call["syscall"], {"ok": 0, "failed": 0})
            c["ok" if call["ret"] >= 0 else "failed"] += 1
        rep.update(pid=self.pid, comm=self.comm, dir=self.dir, counts=counts)
        return rep


def _opens_child(cfg):
    lib = _util.libc()
    dfd = os.open(cfg["dir"], os.O_RDONLY | os.O_DIRECTORY)
    how = _OpenHow()
    yield {"dir_fd": dfd}
    results = []
    for call in cfg["calls"]:
        d = dfd if call["dfd"] == "dir" else call["dfd"]
        path = call["path"].encode()
        if call["syscall"] == "open":
            ret, err = _util.raw_syscall("open", ctypes.c_char_p(path), call["flags"],
                                        call["mode"])
        elif call["syscall"] == "openat":
            ret, err = _util.raw_syscall("openat", d, ctypes.c_char_p(path), call["flags"],
                                        call["mode"])
        else:
            how.flags, how.mode, how.resolve = call["flags"], call["mode"], call.get("resolve", 0)
            ret, err = _util.raw_syscall("openat2", d, ctypes.c_char_p(path),
                                        ctypes.byref(how), ctypes.sizeof(how))
        r = dict(call)
        r.update(ret=ret, errno=err, dfd=d, resolve=call.get("resolve", 0),
                 abspath=call["path"] if call["path"].startswith("/")
                 else os.path.join(cfg["dir"], call["path"]))
        results.append(r)
        if ret >= 0:
            os.close(ret)
    del lib
    yield {"calls": results, "tid": _util.gettid()}


def opens(n_ok=2, n_missing=2, syscalls=("open", "openat", "openat2"), relative=True):
    """opensnoop: a child (comm ``tt-opens``) opening marker paths with known flags.

    Per syscall in ``syscalls`` (``open`` is skipped where the architecture lacks it):
    ``n_ok`` successful opens cycling through flag sets (read-only+cloexec, create+trunc with
    mode 0640, read-write+append, read-only+nofollow+nonblock), one open relative to a
    directory fd for openat/openat2 (``relative``; openat2 with RESOLVE_BENEATH), and
    ``n_missing`` opens of missing paths failing with ENOENT.

    Record: ``pid``, ``tid``, ``comm``, ``dir``, ``calls`` (in order: ``syscall``, ``path``
    as passed, ``abspath``, ``dfd`` (-100 = AT_FDCWD), ``flags``, ``mode``, ``resolve``,
    ``ret`` (fd or -1), ``errno``), ``counts`` {syscall: {"ok", "failed"}}.
    """
    return Opens(n_ok, n_missing, syscalls, relative)


# ---------------------------------------------------------------------------------------
# stats

_STAT_SYSCALLS = ("stat", "lstat", "newfstatat", "statx", "statfs")


class Stats(Workload):
    comm = "tt-stats"

    def __init__(self, n_ok=2, n_missing=1, syscalls=_STAT_SYSCALLS):
        super(Stats, self).__init__()
        self.n_ok, self.n_missing = n_ok, n_missing
        self.syscalls = [s for s in syscalls if _util.syscall_nr(s) is not None]
        if not self.syscalls:
            _util.unavailable("none of %s exists on %s" % (syscalls, _util.machine()))

    def _start(self):
        self.dir = _make_dir("stats")
        self.cleanup(shutil.rmtree, self.dir, True)
        calls = []
        for sc in self.syscalls:
            for i in range(self.n_ok):
                path = os.path.join(self.dir, "file-%s-%d" % (sc, i))
                with open(path, "w") as f:
                    f.write("x" * (100 + i))
                flags = 0
                if sc == "lstat" or (sc == "newfstatat" and i % 2 == 1):
                    link = os.path.join(self.dir, "link-%s-%d" % (sc, i))
                    os.symlink(path, link)
                    path = link
                    if sc == "newfstatat":
                        flags = AT_SYMLINK_NOFOLLOW
                calls.append({"syscall": sc, "path": path, "flags": flags, "expect_errno": 0})
            for j in range(self.n_missing):
                calls.append({"syscall": sc, "path": os.path.join(self.dir, "missing-%s-%d" % (sc, j)),
                              "flags": 0, "expect_errno": errno.ENOENT})
        self.spawn("main", "tests.workloads.files:_stats_child", {"calls": calls},
                   comm=self.comm)

    def _go(self, timeout):
        rep = self.children["main"].step(timeout)
        for call in rep["calls"]:
            if call["errno"] != call["expect_errno"]:
                raise _util.WorkloadError("%s of %s gave errno %d, expected %d" % (
                    call["syscall"], call["path"], call["errno"], call["expect_errno"]))
        counts = {}
        for call in rep["calls"]:
            c = counts.setdefault(call["syscall"], {"ok": 0, "failed": 0})
            c["ok" if call["ret"] == 0 else "failed"] += 1
        rep.update(pid=self.pid, comm=self.comm, dir=self.dir, counts=counts)
        return rep


def _stats_child(cfg):
    buf = ctypes.create_string_buffer(512)
    yield {}
    results = []
    for call in cfg["calls"]:
        sc, path = call["syscall"], ctypes.c_char_p(call["path"].encode())
        if sc in ("stat", "lstat", "statfs"):
            ret, err = _util.raw_syscall(sc, path, buf)
        elif sc == "newfstatat":
            ret, err = _util.raw_syscall(sc, AT_FDCWD, path, buf, call["flags"])
        else:
            ret, err = _util.raw_syscall(sc, AT_FDCWD, path, call["flags"], STATX_BASIC_STATS, buf)
        r = dict(call)
        r.update(ret=ret, errno=err)
        results.append(r)
    yield {"calls": results, "tid": _util.gettid()}


def stats(n_ok=2, n_missing=1, syscalls=_STAT_SYSCALLS):
    """statsnoop: a child (comm ``tt-stats``) calling stat, lstat (on a symlink), newfstatat
    (AT_FDCWD; every second one on a symlink with AT_SYMLINK_NOFOLLOW), statx (AT_FDCWD,
    STATX_BASIC_STATS) and statfs: ``n_ok`` existing paths and ``n_missing`` missing ones
    (ENOENT) each.  Syscalls this architecture lacks (stat, lstat on arm64) are left out.

    Record: ``pid``, ``tid``, ``comm``, ``dir``, ``calls`` (``syscall``, ``path``, ``flags``,
    ``ret`` (0 or -1), ``errno``), ``counts`` {syscall: {"ok", "failed"}}.
    """
    return Stats(n_ok, n_missing, syscalls)
