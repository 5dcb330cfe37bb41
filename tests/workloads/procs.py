"""Process workloads: syscall counts (syscount), signals (killsnoop), exits (exitsnoop) and
capability checks (capable)."""
import ctypes
import errno
import os
import signal
import socket
import threading
import time

from tests.workloads import _util
from tests.workloads._held import Workload
from tests.workloads._util import WorkloadError


# ---------------------------------------------------------------------------------------
# syscalls

class Syscalls(Workload):
    comm = "tt-syscalls"

    def __init__(self, getppid=1000, failed_opens=500):
        super(Syscalls, self).__init__()
        self.n_getppid, self.n_failed = getppid, failed_opens

    def _start(self):
        self.missing = "/nonexistent-%s/marker" % _util.unique_name("sc")
        self.spawn("main", "tests.workloads.procs:_syscalls_child",
                   {"getppid": self.n_getppid, "failed_opens": self.n_failed,
                    "path": self.missing}, comm=self.comm)

    def _go(self, timeout):
        rep = self.children["main"].step(timeout)
        if rep["enoent"] != self.n_failed:
            raise WorkloadError("only %d of %d opens failed with ENOENT" % (
                rep["enoent"], self.n_failed))
        counts = {"getppid": self.n_getppid, "openat": self.n_failed}
        errors = {"getppid": 0, "openat": self.n_failed}
        return {"pid": self.pid, "tid": rep["tid"], "comm": self.comm, "counts": counts,
                "errors": errors, "errnos": {"openat": errno.ENOENT}, "path": self.missing}


def _syscalls_child(cfg):
    getppid, path, n_open = os.getppid, cfg["path"], cfg["failed_opens"]
    yield {}
    for _ in range(cfg["getppid"]):
        getppid()
    enoent = 0
    for _ in range(n_open):
        try:
            os.close(os.open(path, os.O_RDONLY))
        except FileNotFoundError:
            enoent += 1
    yield {"enoent": enoent, "tid": _util.gettid()}


def syscalls(getppid=1000, failed_opens=500):
    """syscount: a child (comm ``tt-syscalls``) making exactly ``getppid`` getppid(2) calls,
    then ``failed_opens`` openat(2) calls of a missing path, each failing with ENOENT.  Between
    go and its report it makes no other getppid or openat calls (only the go read(2), the
    report write(2) and perhaps memory-management calls of the interpreter).

    Record: ``pid``, ``tid``, ``comm``, ``counts`` {"getppid": N, "openat": M}, ``errors``
    (failed calls per syscall), ``errnos`` {"openat": ENOENT}, ``path``.
    """
    return Syscalls(getppid, failed_opens)


# ---------------------------------------------------------------------------------------
# signals

class Signals(Workload):
    comm = "tt-killer"
    target_comm = "tt-target"

    def _start(self):
        ack_r, ack_w = os.pipe()
        try:
            self.target = self.spawn("target", "tests.workloads.procs:_signal_target",
                                     {"ack": ack_w}, comm=self.target_comm, pass_fds=(ack_w,))
            t = self.target.ready
            self.spawn("main", "tests.workloads.procs:_signal_killer",
                       {"ack": ack_r, "pid": self.target.pid, "tid": t["tid"]},
                       comm=self.comm, pass_fds=(ack_r,))
        finally:
            os.close(ack_r)
            os.close(ack_w)

    def _go(self, timeout):
        rep = self.children["main"].step(timeout)
        received = {}
        for c in rep["calls"]:
            if c["delivered"]:
                received[str(c["sig"])] = received.get(str(c["sig"]), 0) + 1
        return {"pid": self.pid, "comm": self.comm, "tid": rep["tid"],
                "target": {"pid": self.target.pid, "comm": self.target_comm,
                           "tid": self.target.ready["tid"], "received": received},
                "calls": rep["calls"], "missing_pid": rep["missing_pid"]}


def _signal_target(cfg):
    def handler(signum, frame):
        pass

    for s in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(s, handler)
    # CPython's C-level handler writes the signal number to the wakeup fd from whichever
    # thread takes the signal, once per delivery: that byte is the killer's acknowledgement.
    # (Python-level handlers would not do: they coalesce deliveries made while the main
    # thread is blocked.)
    os.set_blocking(cfg["ack"], False)
    signal.set_wakeup_fd(cfg["ack"], warn_on_full_buffer=False)
    stop = threading.Event()
    ready = threading.Event()
    tid = []

    def second():
        tid.append(_util.gettid())
        _util.set_comm("tt-target-thr")
        ready.set()
        stop.wait()

    t = threading.Thread(target=second, daemon=True)
    t.start()
    ready.wait(10)
    try:
        yield {"tid": tid[0]}
    finally:
        stop.set()


def _signal_killer(cfg):
    pid, tid, ack = cfg["pid"], cfg["tid"], cfg["ack"]
    # A pid that surely does not exist: a child of ours, reaped, with its pid not reused yet.
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    plan = [
        ("kill", pid, None, signal.SIGUSR1),
        ("tkill", None, tid, signal.SIGUSR2),
        ("tgkill", pid, tid, signal.SIGUSR1),
        ("kill", pid, None, 0),
        ("kill", dead, None, signal.SIGTERM),
        ("tgkill", pid, dead, signal.SIGUSR2),
        ("tkill", None, dead, signal.SIGUSR1),
        ("kill", pid, None, signal.SIGUSR2),
    ]
    yield {}
    calls = []
    for sc, tpid, ttid, sig in plan:
        if sc == "kill":
            ret, err = _util.raw_syscall("kill", tpid, sig)
        elif sc == "tkill":
            ret, err = _util.raw_syscall("tkill", ttid, sig)
        else:
            ret, err = _util.raw_syscall("tgkill", tpid, ttid, sig)
        delivered = ret == 0 and sig != 0
        if delivered:
            _wait_ack(ack, sig)
        calls.append({"syscall": sc, "pid": tpid, "tid": ttid, "sig": int(sig), "ret": ret,
                      "errno": err, "delivered": delivered,
                      "target": tpid if tpid is not None else ttid})
    yield {"calls": calls, "tid": _util.gettid(), "missing_pid": dead}


def _wait_ack(fd, sig):
    import select
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if r:
            b = os.read(fd, 1)
            if b and b[0] == sig:
                return
    raise WorkloadError("signal %d was not acknowledged by the target" % sig)


def signals():
    """killsnoop: a killer (comm ``tt-killer``) signalling a target process (comm
    ``tt-target``, with a second thread ``tt-target-thr``) through raw kill/tkill/tgkill:
    kill SIGUSR1, tkill(thread) SIGUSR2, tgkill(pid, thread) SIGUSR1, kill signal 0, kill of
    a missing pid SIGTERM (ESRCH), tgkill of a missing tid (ESRCH), tkill of a missing tid
    (ESRCH), kill SIGUSR2.  Each delivered signal is acknowledged by the target before the
    next call, so none is merged with a pending one.

    Record: ``pid``, ``tid``, ``comm`` (killer), ``target`` {``pid``, ``tid`` (second
    thread), ``comm``, ``received`` {"signum": count}}, ``missing_pid``, ``calls`` (in order:
    ``syscall``, ``pid`` (kill/tgkill), ``tid`` (tkill/tgkill), ``target`` (the pid or tid
    argument a tool prints), ``sig``, ``ret``, ``errno``, ``delivered``).
    """
    return Signals()


# ---------------------------------------------------------------------------------------
# exits

_EXIT_PLAN = (
    # (comm, kind, argument, age in seconds before exiting)
    ("tt-exit0", "exit", 0, 0.0),
    ("tt-exit3", "exit", 3, 0.2),
    ("tt-sigterm", "self-signal", signal.SIGTERM, 0.05),
    ("tt-sigkill", "killed", signal.SIGKILL, 0.1),
    ("tt-thrmain", "thread", 0, 0.05),
)


class Exits(Workload):
    comm = "tt-exits"

    def _start(self):
        self.spawn("main", "tests.workloads.procs:_exits_child", {"plan": _EXIT_PLAN},
                   comm=self.comm)

    def _go(self, timeout):
        rep = self.children["main"].step(timeout)
        for c in rep["children"]:
            if c["kind"] in ("exit", "thread") and c["status"] != (c["code"] << 8):
                raise WorkloadError("child %s: status %#x" % (c["comm"], c["status"]))
            if c["kind"] in ("self-signal", "killed") and c["status"] != c["signal"]:
                raise WorkloadError("child %s: status %#x" % (c["comm"], c["status"]))
        rep.update(pid=self.pid, comm=self.comm)
        return rep


def _exits_child(cfg):
    yield {}
    children = []
    t0 = time.monotonic()
    for comm, kind, arg, age in cfg["plan"]:
        r, w = os.pipe()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                _exit_grandchild(comm, kind, arg, age, w)
            finally:
                os._exit(99)
        os.close(w)
        info = {"comm": comm, "kind": kind, "pid": pid, "age_planned": age}
        extra = b""
        if kind == "killed":
            os.read(r, 1)                    # the child is alive and named
            time.sleep(age)
            os.kill(pid, int(arg))
        while True:
            chunk = os.read(r, 100)
            if not chunk:
                break
            extra += chunk
        os.close(r)
        _, status = os.waitpid(pid, 0)
        info["age"] = time.monotonic() - start
        info["status"] = status
        info["code"] = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        info["signal"] = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        if kind == "thread":
            info["thread"] = {"tid": int(extra.decode().split()[-1]), "comm": "tt-thread"}
        children.append(info)
    yield {"children": children, "ppid": os.getpid(), "elapsed": time.monotonic() - t0}


def _exit_grandchild(comm, kind, arg, age, w):
    _util.set_comm(comm)
    _util.die_with_parent()
    if kind == "killed":
        os.write(w, b"r")
        while True:
            time.sleep(1)
    if kind == "thread":
        tids = []

        def body():
            _util.set_comm("tt-thread")
            tids.append(_util.gettid())
            time.sleep(age)

        t = threading.Thread(target=body)
        t.start()
        t.join()
        # join() returns before the kernel thread is gone; wait for it, so the thread's
        # exit comes first and the process's is the group exit
        deadline = time.monotonic() + 5
        while len(os.listdir("/proc/self/task")) > 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        os.write(w, ("tid %d" % tids[0]).encode())
        os._exit(0)
    time.sleep(age)
    if kind == "exit":
        os._exit(arg)
    if kind == "self-signal":
        signal.signal(arg, signal.SIG_DFL)
        os.kill(os.getpid(), arg)
        time.sleep(5)


def exits():
    """exitsnoop: a launcher (comm ``tt-exits``) forks, one after the other, children that
    exit(0) at once (``tt-exit0``), exit(3) after 0.2 s (``tt-exit3``), kill themselves with
    SIGTERM after 0.05 s (``tt-sigterm``), are SIGKILLed by the launcher after 0.1 s
    (``tt-sigkill``), and one (``tt-thrmain``) whose thread ``tt-thread`` exits after 0.05 s
    before the process exits 0 (the thread's exit is not a group exit; the main thread's,
    which waits until the thread is gone, is).

    Record: ``pid`` / ``comm`` (launcher, the children's parent), ``children`` (in order:
    ``comm``, ``kind``, ``pid``, ``status`` (wait status == the kernel's task exit_code:
    code << 8 | signal), ``code``, ``signal``, ``age`` (fork to reap, seconds),
    ``age_planned``, and for the thread case ``thread`` {``tid``, ``comm``}).
    """
    return Exits()


# ---------------------------------------------------------------------------------------
# capabilities

CAP_NAMES = {10: "CAP_NET_BIND_SERVICE", 21: "CAP_SYS_ADMIN"}
CLONE_NEWUTS = 0x04000000


class Capabilities(Workload):
    comm = "tt-capable"

    def _start(self):
        _util.require_root()
        try:
            start = int(_util.read_text("/proc/sys/net/ipv4/ip_unprivileged_port_start"))
        except (OSError, ValueError):
            start = 1024
        if start <= 1:
            _util.unavailable("ip_unprivileged_port_start is %d: binding a low port "
                              "checks no capability" % start)
        self.spawn("main", "tests.workloads.procs:_capable_child", {"below": start},
                   comm=self.comm)

    def _go(self, timeout):
        rep = self.children["main"].step(timeout)
        for c in rep["checks"]:
            c["name"] = CAP_NAMES[c["cap"]]
            if c["expect_errno"] != c["errno"]:
                raise WorkloadError("%s gave errno %d, expected %d" % (
                    c["op"], c["errno"], c["expect_errno"]))
        rep.update(pid=self.pid, comm=self.comm)
        return rep


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _free_low_port(below):
    for port in range(below - 1, 0, -1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise WorkloadError("no free port below %d" % below)


def _bind(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return 0
    except OSError as e:
        return e.errno
    finally:
        s.close()


def _capable_child(cfg):
    port = _free_low_port(cfg["below"])
    hdr = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    yield {"port": port}
    checks = []
    # 1. CAP_NET_BIND_SERVICE, granted
    checks.append({"cap": 10, "op": "bind 127.0.0.1:%d" % port, "syscall": "bind",
                   "errno": _bind(port), "expect_errno": 0, "ret": 0})
    # 2. CAP_SYS_ADMIN, granted: unshare(CLONE_NEWUTS), then sethostname in the new namespace
    ret, err = _util.raw_syscall("unshare", CLONE_NEWUTS)
    checks.append({"cap": 21, "op": "unshare(CLONE_NEWUTS)", "syscall": "unshare",
                   "errno": err, "expect_errno": 0, "ret": 0})
    name = b"tt-capable"
    ret, err = _util.raw_syscall("sethostname", ctypes.c_char_p(name), len(name))
    checks.append({"cap": 21, "op": "sethostname", "syscall": "sethostname",
                   "errno": err, "expect_errno": 0, "ret": 0})
    # 3. CAP_NET_BIND_SERVICE, denied: drop it from the effective set, bind again
    ret, err = _util.raw_syscall("capget", ctypes.byref(hdr), data)
    if ret != 0:
        raise WorkloadError("capget failed: errno %d" % err)
    data[0].effective &= ~(1 << 10)
    ret, err = _util.raw_syscall("capset", ctypes.byref(hdr), data)
    if ret != 0:
        raise WorkloadError("capset failed: errno %d" % err)
    checks.append({"cap": 10, "op": "bind 127.0.0.1:%d without the capability" % port,
                   "syscall": "bind", "errno": _bind(port), "expect_errno": errno.EACCES,
                   "ret": -errno.EPERM})
    yield {"checks": checks, "tid": _util.gettid(), "port": port}


def capabilities():
    """capable: a child (comm ``tt-capable``, root) whose syscalls make known capability
    checks: bind to a free port below ip_unprivileged_port_start (CAP_NET_BIND_SERVICE,
    granted), unshare(CLONE_NEWUTS) and sethostname in that namespace (CAP_SYS_ADMIN,
    granted), then -- after dropping CAP_NET_BIND_SERVICE from its effective set -- the same
    bind again (denied: cap_capable returns -EPERM, bind fails with EACCES).  Other checks
    the kernel makes on the way may show up as well.

    Record: ``pid``, ``tid``, ``comm``, ``port``, ``checks`` (in order: ``cap``, ``name``,
    ``op``, ``syscall``, ``ret`` (what cap_capable returns: 0 or -EPERM), ``errno`` of the
    syscall).
    """
    return Capabilities()
