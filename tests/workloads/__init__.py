"""Workloads for the tool tests: real processes doing known things, and records of what
they did, so a tool test is "start the workload, start the tool, go, compare".

    from tests.workloads import opens
    from tests.tools.util import ToolRun

    with opens() as w:                                  # child started, held before its work
        run = ToolRun(["opensnoop", "-p", str(w.pid)], ready="PID")
        run.started()                                   # the tool is tracing
        rec = w.go()                                    # the work runs; rec says what it did
        rc = run.stop()
    for call in rec.calls:
        assert call.path in run.stdout

Life cycle (every workload): ``w = workload(...)`` configures; ``w.start()`` (or ``with
w:``) starts the children, which finish their set-up (interpreter start-up, files, sockets,
cgroup moves) and block; ``w.pid`` / ``w.pids`` / ``w.comm`` are known from then on; ``w.go()``
releases the work, waits for it and returns a ``Record`` (a dict whose keys also read as
attributes, JSON-able); ``w.close()`` (or leaving ``with``) stops children and removes
files, mounts, loop devices, netns and cgroups, also when the test failed.  ``w.run()`` does
it all.  Children name themselves (comm, prctl) before blocking, die with the test process
(PDEATHSIG), and use raw syscalls where the syscall matters, so the record is what the
kernel saw.  Each workload takes under about 2 s.

Workloads (module; the record's main fields -- each function's docstring has them all):

  opens()            files   opensnoop: open/openat/openat2 of marker paths, known flags,
                             some ENOENT -> pid, comm "tt-opens", calls[syscall, path, dfd,
                             flags, mode, ret, errno], counts
  stats()            files   statsnoop: stat/lstat/newfstatat/statx/statfs, some ENOENT ->
                             pid, comm "tt-stats", calls[syscall, path, flags, ret, errno]
  syscalls()         procs   syscount: 1000 getppid + 500 failing openat -> counts, errors
  signals()          procs   killsnoop: kill/tkill/tgkill, delivered and ESRCH -> killer and
                             target pids/tids, calls[syscall, target, sig, ret, errno]
  exits()            procs   exitsnoop: exit(0), exit(3), SIGTERM, SIGKILL, a thread ->
                             children[comm, pid, status, code, signal, age], ppid
  capabilities()     procs   capable: CAP_NET_BIND_SERVICE (granted, then denied),
                             CAP_SYS_ADMIN -> checks[cap, name, op, ret]
  direct_io()        block   biolatency/biosnoop/biotop/bitesize: O_DIRECT reads/writes of
                             known sizes on a loop device -> disk, majmin, ops[op, size,
                             sector], reads/writes{count, bytes}, sizes, diskstat_delta
  ext4_ops()         block   ext4slower/ext4dist: opens, writes, fsyncs, reads on ext4, and
                             throttled (slow) direct reads/writes -> ops[op, file, bytes,
                             latency_ms, slow], counts, slow_floor_ms
  page_cache()       block   cachestat: one read of an evicted file (misses), a second
                             (hits), page writes (dirtied) -> pages, misses, hits, dirtied
  tcp_sessions()     net     tcpconnect/tcpaccept/tcplife/tcptop/tcpstates: loopback IPv4 and
                             IPv6 connections with known bytes and lifetimes, a refused
                             connect -> sessions[client, server, sent, received,
                             duration_ms], refused, states
  tcp_retransmits()  net     tcpretrans: RTO retransmits across a netns pair -> saddr,
                             sport, daddr, dport, retrans_segs
  cpu_burn()         sched   profile: a CPU-bound child in user, kernel (read /dev/zero) or
                             native (tt_spin) mode -> kstack_expect, ustack_expect, cpu times
  off_cpu()          sched   offcputime: clock_nanosleep then a pipe read -> blocks[kind,
                             seconds, kstack_expect]
  on_off_cpu()       sched   cpudist: spin/sleep cycles -> busy_ms, sleep_ms, cycles
  cpu_hogs()         sched   runqlen/cpudist: busy loops pinned per CPU -> hogs[pid, cpu,
                             wait_ns, slices, mean_wait_ms]
  runq_contention()  sched   runqslower/runqlat: 6 hogs on one CPU, ~20 ms run-queue waits
  memcg_oom()        memory  oomkill: a child OOM-killed in a limited memory cgroup ->
                             victim_pid, trigger_pid, oom_kill_events
  malloc_leaks()     memory  memleak: libc allocations partly freed, optional known native
                             stack -> allocations[func, size, leaked, addresses], native
  kernel_allocs()    memory  memleak -k: eventfd2 x N held open -> count, kstack_expect
  net_softirqs()     irqs    softirqs: loopback TCP traffic -> /proc/softirqs deltas
  disk_irqs()        irqs    hardirqs: O_DIRECT reads from a real disk -> disk_irqs[irq,
                             name, delta] from /proc/interrupts

Resources (module ``resources``; context managers):

  loop_device(size_mb)   a loop device on a sparse image -> LoopDevice(path, name, majmin,
                         stat(), settle())
  ext4_image(size_mb)    mkfs.ext4 + mount of a loop device -> Ext4Image(mountpoint, device,
                         majmin, loop, path(...))
  cgroup(*controllers)   a fresh cgroup (v2, else v1) -> Cgroup(add, limit_memory,
                         throttle_io, oom_kills)
  netns_pair()           two netns joined by veth (10.213.0.1/2, fd74:7474::1/2) ->
                         NetnsPair(a, b, exec_prefix(ns), tcp_counters(ns))

``plugin`` holds pytest fixtures for all of these (add ``pytest_plugins =
["tests.workloads.plugin"]`` to the root conftest, or import the fixtures).  ``oracle``
runs bpftrace as an independent witness for the workload tests.  A machine that lacks a
prerequisite (mkfs.ext4, a cgroup controller, root) skips the test, or fails it when
``TINYTRACE_REQUIRE_WORKLOADS=1`` (default: the value of ``TINYTRACE_REQUIRE_BPF``).  Missing
commands are installed with apt-get when possible (e2fsprogs, mount, iproute2).  Optional
extras skip unless asked for explicitly: the native helper needs a C compiler (gcc; fails
only with TINYTRACE_REQUIRE_WORKLOADS=1), the oracle needs bpftrace (fails only with
TINYTRACE_REQUIRE_ORACLE=1).

Objects are named ``ttwl<pid>-...``; leftovers of a killed test process are removed by the
next run (``resources.sweep_stale``).  Nothing here imports tinytrace.
"""

_EXPORTS = {
    "opens": "files", "stats": "files",
    "syscalls": "procs", "signals": "procs", "exits": "procs", "capabilities": "procs",
    "direct_io": "block", "ext4_ops": "block", "page_cache": "block",
    "tcp_sessions": "net", "tcp_retransmits": "net",
    "cpu_burn": "sched", "off_cpu": "sched", "on_off_cpu": "sched", "cpu_hogs": "sched",
    "runq_contention": "sched",
    "memcg_oom": "memory", "malloc_leaks": "memory", "kernel_allocs": "memory",
    "net_softirqs": "irqs", "disk_irqs": "irqs",
    "loop_device": "resources", "ext4_image": "resources", "cgroup": "resources",
    "netns_pair": "resources",
    "Record": "_held", "Workload": "_held", "WorkloadError": "_util",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    # Lazy: a workload child imports this package too, and should not pay for the rest.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError("module 'tests.workloads' has no attribute %r" % name)
    import importlib
    value = getattr(importlib.import_module("tests.workloads." + module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
