"""CPU and scheduler workloads: CPU burners with known stacks (profile), blocking in known
ways (offcputime), on/off-CPU patterns (cpudist) and run-queue contention (runqslower,
runqlen, runqlat)."""
import ctypes
import os
import time

from tests.workloads import _util
from tests.workloads._held import Workload


def _cpu_times():
    t = os.times()
    return t.user, t.system


# ---------------------------------------------------------------------------------------
# CPU burn

class CpuBurn(Workload):
    comm = "tt-burn"

    def __init__(self, seconds=0.5, mode="user"):
        super(CpuBurn, self).__init__()
        if mode not in ("user", "kernel", "native"):
            raise ValueError("mode is user, kernel or native")
        self.seconds, self.mode = seconds, mode

    def _start(self):
        cfg = {"seconds": self.seconds, "mode": self.mode}
        if self.mode == "native":
            from tests.workloads.native import native_library
            cfg["library"] = native_library()
        self.cfg = cfg
        self.spawn("main", "tests.workloads.sched:_burn_child", cfg, comm=self.comm)

    def _go(self, timeout):
        rep = self.children["main"].step(timeout + self.seconds)
        rep.update(pid=self.pid, comm=self.comm, mode=self.mode, seconds=self.seconds,
                   kstack_expect=[], ustack_expect=[], library=self.cfg.get("library"))
        if self.mode == "kernel":
            rep["kstack_expect"] = _util.kernel_functions(["read_zero", "vfs_read", "ksys_read"])
        if self.mode == "native":
            from tests.workloads.native import SPIN_FRAMES
            rep["ustack_expect"] = list(SPIN_FRAMES)
        return rep


def _burn_child(cfg):
    mode, seconds = cfg["mode"], cfg["seconds"]
    if mode == "kernel":
        fd = os.open("/dev/zero", os.O_RDONLY)
        buf = ctypes.create_string_buffer(1 << 20)
        read = _util.libc().read
    elif mode == "native":
        from tests.workloads import native
        lib = native.load(cfg["library"])
    clock = time.perf_counter          # vDSO: no system call
    yield {}
    u0, s0 = _cpu_times()
    t0 = clock()
    end = t0 + seconds
    loops = 0
    if mode == "user":
        while clock() < end:
            loops += 1
    elif mode == "kernel":
        while clock() < end:
            read(fd, buf, 1 << 20)
            loops += 1
        os.close(fd)
    else:
        lib.tt_spin(int(seconds * 1000))
        loops = 1
    wall = clock() - t0
    u1, s1 = _cpu_times()
    yield {"wall_s": wall, "utime_s": u1 - u0, "stime_s": s1 - s0, "loops": loops,
           "tid": _util.gettid()}


def cpu_burn(seconds=0.5, mode="user"):
    """profile: a child (comm ``tt-burn``) burning one CPU for ``seconds``.

    ``mode`` "user": a Python loop (no syscalls; user-mode samples); "kernel": read(2) of
    1 MiB from /dev/zero in a loop (most samples in the kernel, under read_zero / vfs_read /
    ksys_read); "native": ``tt_spin`` of the native helper (user samples whose stack holds
    ``tt_spin_inner`` <- ``tt_spin``; needs a C compiler, else the test skips).

    Record: ``pid``, ``tid``, ``comm``, ``mode``, ``seconds``, ``wall_s``, ``utime_s`` /
    ``stime_s`` (the child's CPU time over the burn), ``loops``, ``kstack_expect`` (kernel
    functions on the sampled stacks that exist in this kernel), ``ustack_expect`` (user
    functions, native mode), ``library`` (native mode).
    """
    return CpuBurn(seconds, mode)


# ---------------------------------------------------------------------------------------
# off-CPU

class OffCpu(Workload):
    comm = "tt-offcpu"
    waker_comm = "tt-waker"

    def __init__(self, sleep_s=0.3, pipe_s=0.2):
        super(OffCpu, self).__init__()
        self.sleep_s, self.pipe_s = sleep_s, pipe_s

    def _start(self):
        self.spawn("main", "tests.workloads.sched:_offcpu_child",
                   {"sleep": self.sleep_s, "pipe": self.pipe_s, "waker": self.waker_comm},
                   comm=self.comm)

    def _go(self, timeout):
        rep = self.children["main"].step(timeout + self.sleep_s + self.pipe_s)
        # what a BPF kernel stack taken at the switch out shows (do_nanosleep is a __sched
        # function: /proc/PID/stack hides it, bpf_get_stackid does not)
        sleep_k = _util.kernel_functions(["do_nanosleep", "hrtimer_nanosleep"])
        pipe_k = _util.kernel_functions(["anon_pipe_read", "pipe_read"])[:1] + \
            _util.kernel_functions(["vfs_read", "ksys_read"])
        blocks = [
            {"kind": "sleep", "syscall": "clock_nanosleep", "planned_s": self.sleep_s,
             "seconds": rep["sleep_s"], "kstack_expect": sleep_k},
            {"kind": "pipe_read", "syscall": "read", "planned_s": self.pipe_s,
             "seconds": rep["pipe_s"], "kstack_expect": pipe_k},
        ]
        return {"pid": self.pid, "tid": rep["tid"], "comm": self.comm, "blocks": blocks,
                "total_s": rep["sleep_s"] + rep["pipe_s"],
                "waker": {"pid": rep["waker_pid"], "comm": self.waker_comm},
                "voluntary_switches": rep["voluntary_switches"]}


def _offcpu_child(cfg):
    kick_r, kick_w = os.pipe()
    data_r, data_w = os.pipe()
    waker = os.fork()
    if waker == 0:
        try:
            _util.set_comm(cfg["waker"])
            _util.die_with_parent()
            os.close(kick_w)
            os.close(data_r)
            if os.read(kick_r, 1):
                _util.nanosleep(cfg["pipe"])
                os.write(data_w, b"x")
        finally:
            os._exit(0)
    os.close(kick_r)
    os.close(data_w)
    try:
        yield {}
        v0 = int(_util.proc_status(os.getpid(), "voluntary_ctxt_switches"))
        t0 = time.monotonic()
        _util.nanosleep(cfg["sleep"])
        t1 = time.monotonic()
        os.write(kick_w, b"k")
        os.read(data_r, 1)
        t2 = time.monotonic()
        v1 = int(_util.proc_status(os.getpid(), "voluntary_ctxt_switches"))
        yield {"sleep_s": t1 - t0, "pipe_s": t2 - t1, "tid": _util.gettid(),
               "waker_pid": waker, "voluntary_switches": v1 - v0}
    finally:
        os.close(kick_w)
        os.waitpid(waker, 0)


def off_cpu(sleep_s=0.3, pipe_s=0.2):
    """offcputime: a child (comm ``tt-offcpu``) that blocks twice: clock_nanosleep for
    ``sleep_s`` (through libc, whatever the Python version), then read(2) on a pipe that a
    helper process (comm ``tt-waker``) writes ``pipe_s`` later.

    Record: ``pid``, ``tid``, ``comm``, ``blocks`` (``kind`` "sleep"/"pipe_read",
    ``syscall``, ``planned_s``, ``seconds`` measured, ``kstack_expect``: kernel functions of
    that blocking path present in this kernel, e.g. do_nanosleep / anon_pipe_read),
    ``total_s``, ``waker`` {``pid``, ``comm``}, ``voluntary_switches`` (over the run).
    """
    return OffCpu(sleep_s, pipe_s)


# ---------------------------------------------------------------------------------------
# on/off pattern

class OnOffCpu(Workload):
    comm = "tt-onoff"

    def __init__(self, busy_ms=5, sleep_ms=5, cycles=50):
        super(OnOffCpu, self).__init__()
        self.cfg = {"busy_ms": busy_ms, "sleep_ms": sleep_ms, "cycles": cycles}

    def _start(self):
        self.spawn("main", "tests.workloads.sched:_onoff_child", self.cfg, comm=self.comm)

    def _go(self, timeout):
        c = self.cfg
        rep = self.children["main"].step(timeout + c["cycles"] * (c["busy_ms"] + c["sleep_ms"]) / 1e3)
        rep.update(pid=self.pid, comm=self.comm, **c)
        return rep


def _onoff_child(cfg):
    busy, nap, cycles = cfg["busy_ms"] / 1e3, cfg["sleep_ms"] / 1e3, cfg["cycles"]
    clock = time.perf_counter
    pid = os.getpid()
    yield {}
    s0 = _util.schedstat(pid)
    v0 = int(_util.proc_status(pid, "voluntary_ctxt_switches"))
    on = []
    for _ in range(cycles):
        t0 = clock()
        end = t0 + busy
        while clock() < end:
            pass
        on.append((clock() - t0) * 1e3)
        _util.nanosleep(nap)
    s1 = _util.schedstat(pid)
    v1 = int(_util.proc_status(pid, "voluntary_ctxt_switches"))
    yield {"on_ms": on, "tid": _util.gettid(),
           "schedstat_delta": {k: s1[k] - s0[k] for k in s0},
           "voluntary_switches": v1 - v0}


def on_off_cpu(busy_ms=5, sleep_ms=5, cycles=50):
    """cpudist: a child (comm ``tt-onoff``) alternating ``cycles`` times between spinning
    ``busy_ms`` (no syscalls) and sleeping ``sleep_ms`` (clock_nanosleep): about ``cycles``
    on-CPU spells of ``busy_ms`` and as many off-CPU spells of ``sleep_ms``.

    Record: ``pid``, ``tid``, ``comm``, ``busy_ms``, ``sleep_ms``, ``cycles``, ``on_ms``
    (each spin's wall time), ``schedstat_delta`` {``run_ns``, ``wait_ns``, ``slices``},
    ``voluntary_switches``.
    """
    return OnOffCpu(busy_ms, sleep_ms, cycles)


# ---------------------------------------------------------------------------------------
# CPU hogs / run-queue contention

class CpuHogs(Workload):
    comm = "tt-hog0"

    def __init__(self, n=2, cpus=None, seconds=1.0):
        super(CpuHogs, self).__init__()
        allowed = sorted(os.sched_getaffinity(0))
        self.cpus = list(cpus) if cpus is not None else allowed
        for c in self.cpus:
            if c not in allowed:
                _util.unavailable("CPU %d is not available to this process" % c)
        self.n, self.seconds = n, seconds

    def _start(self):
        for i in range(self.n):
            cpu = self.cpus[i % len(self.cpus)]
            self.spawn("main" if i == 0 else "hog%d" % i, "tests.workloads.sched:_hog_child",
                       {"cpu": cpu, "seconds": self.seconds}, comm="tt-hog%d" % i)

    def _go(self, timeout):
        kids = list(self.children.values())
        before = {c.pid: _util.schedstat(c.pid) for c in kids}
        for c in kids:
            c.release()
        time.sleep(self.seconds / 2.0)
        sample = {}
        for c in kids:
            st = _util.proc_stat(c.pid)
            sample[str(c.pid)] = {"state": st["state"], "cpu": st["processor"]}
        loadavg = _util.read_text("/proc/loadavg").split()
        reps = [c.collect(timeout + self.seconds) for c in kids]
        hogs = []
        for c, rep in zip(kids, reps):
            d = {k: rep["schedstat"][k] - before[c.pid][k] for k in before[c.pid]}
            hogs.append({"pid": c.pid, "comm": c.comm, "cpu": rep["cpu"],
                         "run_ns": d["run_ns"], "wait_ns": d["wait_ns"],
                         "slices": d["slices"],
                         "mean_wait_ms": d["wait_ns"] / 1e6 / max(d["slices"], 1),
                         "state_mid": sample[str(c.pid)]["state"],
                         "cpu_mid": sample[str(c.pid)]["cpu"]})
        per_cpu = {}
        for h in hogs:
            per_cpu[str(h["cpu"])] = per_cpu.get(str(h["cpu"]), 0) + 1
        return {"pid": self.pid, "comm": self.comm, "hogs": hogs, "seconds": self.seconds,
                "cpus": self.cpus, "hogs_per_cpu": per_cpu,
                "running_mid": int(loadavg[3].split("/")[0])}


def _hog_child(cfg):
    os.sched_setaffinity(0, {cfg["cpu"]})
    clock = time.perf_counter
    pid = os.getpid()
    yield {}
    end = clock() + cfg["seconds"]
    while clock() < end:
        pass
    yield {"schedstat": _util.schedstat(pid), "cpu": cfg["cpu"], "tid": _util.gettid()}


def cpu_hogs(n=2, cpus=None, seconds=1.0):
    """runqlen / cpudist / profile: ``n`` busy-looping children (comm ``tt-hog0`` ...
    ``tt-hogN``), hog i pinned to ``cpus[i % len(cpus)]`` (default: every CPU this process
    may use), all released at once for ``seconds``.

    Record: ``pid``/``comm`` (hog 0), ``hogs`` (``pid``, ``comm``, ``cpu``, and from
    /proc/PID/schedstat over the run: ``run_ns``, ``wait_ns`` (time runnable but waiting),
    ``slices`` (times scheduled in), ``mean_wait_ms``; ``state_mid``/``cpu_mid`` sampled
    half-way), ``seconds``, ``cpus``, ``hogs_per_cpu`` {"cpu": n}, ``running_mid`` (runnable
    tasks system-wide half-way, from /proc/loadavg).
    """
    return CpuHogs(n, cpus, seconds)


def runq_contention(cpu=0, n=6, seconds=0.8):
    """runqslower / runqlat / runqlen: ``n`` CPU hogs all pinned to CPU ``cpu``, so each
    waits for the other n-1 in the run queue: with 4 ms ticks and n=6 the waits are about
    20 ms, well over runqslower's 10 ms default.  Same record as ``cpu_hogs`` (check
    ``mean_wait_ms``)."""
    return CpuHogs(n, [cpu], seconds)
