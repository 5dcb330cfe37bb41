"""Shared pieces of the workload library: errors, names, commands, syscalls, /proc readers.

Nothing here imports tinytrace: the workloads are the yardstick the tools are measured
against, so they must not share the tools' code (or its bugs).
"""
import atexit
import ctypes
import errno
import itertools
import os
import platform
import shutil
import subprocess
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Every kernel object or file a workload creates is named PREFIX<owner pid>-<what><n>, so a
# later run can tell leftovers of a dead test process from the live objects of a concurrent
# one (several engineers run tests on one machine at the same time).
PREFIX = "ttwl"
_counter = itertools.count(1)


class WorkloadError(RuntimeError):
    """A workload could not do what it promised (a child failed, a command failed)."""


class WorkloadUnavailable(Exception):
    """The machine cannot run a workload (raised only where pytest is not importable)."""


def strict():
    """True when a missing workload prerequisite must fail a test instead of skipping it.

    ``TINYTRACE_REQUIRE_WORKLOADS=1`` asks for it; without that variable it follows
    ``TINYTRACE_REQUIRE_BPF`` (CI sets it), since a CI machine that can run BPF must also be
    able to run the workloads the tool tests need.
    """
    value = os.environ.get("TINYTRACE_REQUIRE_WORKLOADS")
    if value is None:
        value = os.environ.get("TINYTRACE_REQUIRE_BPF", "")
    return value == "1"


def unavailable(reason, optional=False):
    """Skip the calling test (or fail it in strict mode): the machine lacks something.

    ``optional`` prerequisites (a C compiler) only fail when TINYTRACE_REQUIRE_WORKLOADS=1
    is set explicitly, not through TINYTRACE_REQUIRE_BPF.
    """
    if (os.environ.get("TINYTRACE_REQUIRE_WORKLOADS") == "1") if optional else strict():
        raise WorkloadError("workload prerequisite missing (strict mode): " + reason)
    try:
        import pytest
    except ImportError:
        raise WorkloadUnavailable(reason)
    pytest.skip(reason)


def require_root():
    if os.geteuid() != 0:
        unavailable("the workload needs root")


def unique_name(what):
    return "%s%d-%s%d" % (PREFIX, os.getpid(), what, next(_counter))


def owner_pid(name):
    """The pid encoded in a workload object's name, or None when it is not one of ours."""
    base = os.path.basename(name.rstrip("/"))
    if not base.startswith(PREFIX):
        return None
    digits = ""
    for ch in base[len(PREFIX):]:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else None


def owner_dead(name):
    pid = owner_pid(name)
    return pid is not None and pid != os.getpid() and not os.path.exists("/proc/%d" % pid)


# ---------------------------------------------------------------------------------------
# Commands

_PACKAGES = {
    "mkfs.ext4": "e2fsprogs", "losetup": "mount", "mount": "mount", "umount": "mount",
    "ip": "iproute2", "tc": "iproute2", "ss": "iproute2", "bpftrace": "bpftrace",
}
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin")
_apt_lock = threading.Lock()
_apt_tried = set()


def which(cmd):
    found = shutil.which(cmd)
    if found:
        return found
    for d in _SBIN:
        p = os.path.join(d, cmd)
        if os.access(p, os.X_OK):
            return p
    return None


def need_cmd(cmd, install=True):
    """The path of ``cmd``; installs its Debian package when missing (as root, with apt-get),
    skips the test when that is impossible."""
    path = which(cmd)
    if path:
        return path
    package = _PACKAGES.get(cmd)
    if install and package and os.geteuid() == 0 and which("apt-get"):
        with _apt_lock:
            if package not in _apt_tried:
                _apt_tried.add(package)
                env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
                try:
                    subprocess.run([which("apt-get"), "install", "-y", "-q", package],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env=env, timeout=300)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        path = which(cmd)
        if path:
            return path
    unavailable("command %r not found%s" % (
        cmd, " (Debian package %s)" % package if package else ""))


def run(argv, check=True, timeout=60, input=None):
    """Run a command; a failure raises WorkloadError quoting its stderr."""
    argv = list(argv)
    if os.sep not in argv[0]:
        argv[0] = need_cmd(argv[0])
    try:
        p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, universal_newlines=True)
    except subprocess.TimeoutExpired:
        raise WorkloadError("command timed out after %ss: %s" % (timeout, " ".join(argv)))
    if check and p.returncode != 0:
        raise WorkloadError("command failed (exit %d): %s\n%s" % (
            p.returncode, " ".join(argv), p.stderr.strip()))
    return p


# ---------------------------------------------------------------------------------------
# Raw system calls (a workload must make exactly the syscall it reports, not whatever the C
# library prefers this year).

SYSCALLS = {
    "x86_64": {
        "read": 0, "open": 2, "stat": 4, "lstat": 6, "kill": 62, "getppid": 110,
        "capget": 125, "capset": 126, "statfs": 137, "sethostname": 170, "tkill": 200,
        "tgkill": 234, "openat": 257, "newfstatat": 262, "unshare": 272, "eventfd2": 290,
        "statx": 332, "openat2": 437,
    },
    "aarch64": {
        "read": 63, "kill": 129, "getppid": 173, "capget": 90, "capset": 91, "statfs": 43,
        "sethostname": 161, "tkill": 130, "tgkill": 131, "openat": 56, "newfstatat": 79,
        "unshare": 97, "eventfd2": 19, "statx": 291, "openat2": 437,
    },
}


def machine():
    m = platform.machine()
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(m, m)


def syscall_nr(name):
    """The syscall number on this machine, or None when it has no such syscall."""
    return SYSCALLS.get(machine(), {}).get(name)


_libc = None


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc


def raw_syscall(name, *args):
    """Make syscall ``name`` directly; returns (return value, errno)."""
    nr = syscall_nr(name)
    if nr is None:
        raise WorkloadError("no %s syscall on %s" % (name, machine()))
    conv = []
    for a in args:
        if isinstance(a, int):
            conv.append(ctypes.c_long(a))
        else:
            conv.append(a)
    ctypes.set_errno(0)
    ret = libc().syscall(ctypes.c_long(nr), *conv)
    return ret, (ctypes.get_errno() if ret == -1 else 0)


PR_SET_NAME = 15
PR_SET_PDEATHSIG = 1


def set_comm(name):
    """Name the calling thread (the process's comm when called from the main thread)."""
    libc().prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def die_with_parent(sig=9):
    libc().prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def gettid():
    return threading.get_native_id()


CLOCK_MONOTONIC = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def nanosleep(seconds):
    """Sleep in clock_nanosleep(2), whatever the Python version (3.9's time.sleep uses select)."""
    ts = _Timespec(int(seconds), int((seconds - int(seconds)) * 1e9))
    while True:
        rem = _Timespec()
        rc = libc().clock_nanosleep(CLOCK_MONOTONIC, 0, ctypes.byref(ts), ctypes.byref(rem))
        if rc != errno.EINTR:
            return
        ts = rem


# ---------------------------------------------------------------------------------------
# Kernel symbols and /proc readers

_ksyms = None


def kernel_functions(candidates):
    """The names among ``candidates`` that /proc/kallsyms lists, in the given order."""
    global _ksyms
    if _ksyms is None:
        names = set()
        try:
            with open("/proc/kallsyms") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[1] in "tTwW":
                        names.add(parts[2])
        except OSError:
            pass
        _ksyms = names
    return [c for c in candidates if c in _ksyms]


def read_text(path):
    with open(path) as f:
        return f.read()


def proc_stat(pid):
    """Selected /proc/PID/stat fields: state, utime/stime (ticks), processor."""
    text = read_text("/proc/%d/stat" % pid)
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state)
    return {"state": rest[0], "utime": int(rest[11]), "stime": int(rest[12]),
            "num_threads": int(rest[17]), "processor": int(rest[36])}


def schedstat(pid, tid=None):
    """/proc/PID[/task/TID]/schedstat: on-CPU ns, run-queue wait ns, times scheduled in."""
    path = "/proc/%d/schedstat" % pid if tid is None else "/proc/%d/task/%d/schedstat" % (pid, tid)
    run_ns, wait_ns, slices = (int(x) for x in read_text(path).split()[:3])
    return {"run_ns": run_ns, "wait_ns": wait_ns, "slices": slices}


def proc_status(pid, field):
    for line in read_text("/proc/%d/status" % pid).splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def interrupts():
    """/proc/interrupts as {label: {"name": action names, "desc": the whole description
    (chip, hardware irq, names), "counts": [per cpu], "total"}}."""
    lines = read_text("/proc/interrupts").splitlines()
    ncpu = len(lines[0].split())
    out = {}
    for line in lines[1:]:
        label, _, rest = line.partition(":")
        label = label.strip()
        parts = rest.split()
        counts = []
        for p in parts[:ncpu]:
            if not p.isdigit():
                break
            counts.append(int(p))
        tail = parts[len(counts):]
        if label.isdigit() and len(tail) >= 3:
            name = " ".join(tail[2:])
        else:
            name = " ".join(tail) or label
        out[label] = {"name": name, "desc": " ".join(tail), "counts": counts,
                      "total": sum(counts)}
    return out


def softirqs():
    """/proc/softirqs as {NAME: [count per cpu]}."""
    out = {}
    for line in read_text("/proc/softirqs").splitlines()[1:]:
        name, _, rest = line.partition(":")
        out[name.strip()] = [int(x) for x in rest.split()]
    return out


BLOCK_STAT_FIELDS = ("read_ios", "read_merges", "read_sectors", "read_ticks", "write_ios",
                     "write_merges", "write_sectors", "write_ticks", "in_flight", "io_ticks",
                     "time_in_queue", "discard_ios", "discard_merges", "discard_sectors",
                     "discard_ticks", "flush_ios", "flush_ticks")


def block_stat(disk):
    """/sys/block/DISK/stat as a dict (sectors are 512 bytes)."""
    values = [int(x) for x in read_text("/sys/block/%s/stat" % disk).split()]
    return dict(zip(BLOCK_STAT_FIELDS, values))


def diff_counts(before, after):
    return {k: after[k] - before.get(k, 0) for k in after if isinstance(after[k], int)}


def wait_until(predicate, timeout=5.0, interval=0.01):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# ---------------------------------------------------------------------------------------
# Last-resort cleanup: context managers clean up in ``finally``; this catches what an
# interpreter exit skips (a generator fixture never finalized, a KeyboardInterrupt between
# creation and ``try``).  Every callback must be idempotent.

_cleanups = {}
_cleanup_ids = itertools.count(1)
_cleanup_lock = threading.Lock()


def at_exit(fn):
    with _cleanup_lock:
        token = next(_cleanup_ids)
        _cleanups[token] = fn
    return token


def done(token):
    with _cleanup_lock:
        _cleanups.pop(token, None)


def _run_cleanups():
    with _cleanup_lock:
        fns = [fn for _, fn in sorted(_cleanups.items(), reverse=True)]
        _cleanups.clear()
    for fn in fns:
        try:
            fn()
        except Exception:
            pass


atexit.register(_run_cleanups)
