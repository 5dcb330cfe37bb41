"""Who may trace, and the one-line error for those who may not.

The kernel answers EPERM/EACCES from bpf() and perf_event_open() for several different
reasons; this module turns the errno plus what we can read about our own process (uid,
effective capabilities, sysctls) into a ``PrivilegeError`` that says which one applies and
what to do about it.
"""
import os

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


def effective_capabilities():
    """The set of effective capability numbers of this process (from /proc/self/status)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    mask = int(line.split()[1], 16)
                    return {n for n in range(64) if mask >> n & 1}
    except (OSError, ValueError):
        pass
    return set()


def can_trace():
    """True when this process holds what tracing needs: CAP_SYS_ADMIN, or CAP_BPF together
    with CAP_PERFMON (Linux 5.8+).  A root process normally holds all of them."""
    caps = effective_capabilities()
    return CAP_SYS_ADMIN in caps or {CAP_BPF, CAP_PERFMON} <= caps


def _sysctl(name):
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return f.read().strip()
    except OSError:
        return None


def _memlock_may_apply():
    """Before 5.11 BPF memory was charged to RLIMIT_MEMLOCK, and running out gives EPERM."""
    from tinytrace.kernel.bpf import kernel_version
    return kernel_version() < (5, 11, 0)


def error(what, err):
    """A PrivilegeError for ``what`` (e.g. 'bpf(BPF_PROG_LOAD)') failing with errno ``err``."""
    from tinytrace.errors import PrivilegeError
    reason = os.strerror(err)
    uid = os.geteuid()
    if uid != 0 and not can_trace():
        hint = ""
        if what.startswith("bpf"):
            v = _sysctl("kernel.unprivileged_bpf_disabled")
            if v not in (None, "0"):
                hint = " (kernel.unprivileged_bpf_disabled=%s)" % v
        else:
            v = _sysctl("kernel.perf_event_paranoid")
            if v is not None:
                hint = " (kernel.perf_event_paranoid=%s)" % v
        return PrivilegeError(
            "%s: %s as uid %d%s: tracing needs root; run tinytrace as root (e.g. with sudo) "
            "or give it CAP_BPF and CAP_PERFMON" % (what, reason, uid, hint))
    causes = "a container or seccomp policy may block it, or kernel lockdown forbids it"
    if _memlock_may_apply():
        causes += ", or RLIMIT_MEMLOCK is too low (try `ulimit -l unlimited`)"
    return PrivilegeError("%s: %s although running with privileges: %s"
                          % (what, reason, causes))
