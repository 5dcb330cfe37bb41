"""cpu_burn(), off_cpu(), on_off_cpu(), cpu_hogs() and runq_contention() burn, block and
queue as their records say: checked with the kernel's CPU accounting, /proc/PID/stack,
schedstat and bpftrace."""
import os

import pytest

from tests.workloads import cpu_burn, cpu_hogs, off_cpu, on_off_cpu, runq_contention
from tests.workloads.oracle import Bpftrace

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _samples(stacks, name):
    return sum(n for key, n in stacks.items() if name in key)


def test_cpu_burn_kernel_mode_samples_are_under_the_expected_functions():
    w = cpu_burn(0.5, "kernel")
    with w:
        with Bpftrace("profile:hz:199 /pid == %d/ { @k[kstack(8)] = count(); }" % w.pid) as bt:
            rec = w.go()
    assert rec.comm == "tt-burn" and rec.loops > 0
    assert rec.stime_s > rec.utime_s                   # the kernel's own CPU accounting
    stacks = bt.maps["@k"]
    total = sum(stacks.values())
    assert total > 0
    assert rec.kstack_expect == ["read_zero", "vfs_read", "ksys_read"]
    for fn in rec.kstack_expect:
        assert _samples(stacks, fn) >= total // 2, (fn, stacks)


def test_cpu_burn_user_mode_stays_in_user_space():
    w = cpu_burn(0.5, "user")
    with w:
        with Bpftrace("profile:hz:199 /pid == %d/ { @k[kstack(1)] = count(); }" % w.pid) as bt:
            rec = w.go()
    assert rec.utime_s > rec.stime_s
    stacks = bt.maps["@k"]
    user = stacks.get("", 0)
    assert user >= sum(stacks.values()) * 0.8, stacks


def test_cpu_burn_native_mode_has_the_known_user_frames():
    w = cpu_burn(0.5, "native")
    with w:
        with Bpftrace("profile:hz:199 /pid == %d/ { @u[ustack(4)] = count(); }" % w.pid) as bt:
            rec = w.go()
    stacks = bt.maps["@u"]
    total = sum(stacks.values())
    assert rec.ustack_expect == ["tt_spin_inner", "tt_spin"]
    both = sum(n for k, n in stacks.items() if "tt_spin_inner" in k and "tt_spin+" in k)
    assert both >= total * 0.8, stacks


def test_off_cpu_blocks_where_the_record_says():
    w = off_cpu(sleep_s=0.3, pipe_s=0.2)
    with w:
        script = """
        tracepoint:sched:sched_switch /args->prev_pid == %d/ { @k[kstack(12)] = count(); }
        """ % w.pid
        with Bpftrace(script) as bt:
            rec = w.go()
        # /proc/PID/stack of the waker, blocked in its pipe read, is another view
    stacks = bt.maps["@k"]
    assert [b.kind for b in rec.blocks] == ["sleep", "pipe_read"]
    assert [b.syscall for b in rec.blocks] == ["clock_nanosleep", "read"]
    for block in rec.blocks:
        assert block.kstack_expect
        # one switch-out stack holds all the functions the record expects for that block
        assert any(all(fn + "+" in key for fn in block.kstack_expect) for key in stacks), (
            block, stacks)
        assert block.seconds >= block.planned_s * 0.9
    assert rec.blocks[0].kstack_expect[0] == "do_nanosleep"
    assert rec.blocks[1].kstack_expect[0] in ("anon_pipe_read", "pipe_read")
    assert rec.voluntary_switches >= 2 and rec.waker.comm == "tt-waker"
    assert not os.path.exists("/proc/%d" % rec.waker.pid)


def test_on_off_cpu_switches_once_per_cycle():
    w = on_off_cpu(busy_ms=4, sleep_ms=4, cycles=40)
    with w:
        script = """
        tracepoint:sched:sched_switch /args->prev_pid == %d && args->prev_state == 1/ { @sleeps = count(); }
        """ % w.pid
        with Bpftrace(script) as bt:
            rec = w.go()
    assert len(rec.on_ms) == rec.cycles == 40
    assert rec.voluntary_switches >= rec.cycles
    assert rec.schedstat_delta["slices"] >= rec.cycles
    assert bt.maps["@sleeps"] >= rec.cycles


def test_cpu_hogs_run_pinned():
    ncpu = len(os.sched_getaffinity(0))
    w = cpu_hogs(n=ncpu, seconds=0.5)
    rec = w.run()
    assert len(rec.hogs) == ncpu
    assert sorted(h.cpu for h in rec.hogs) == sorted(rec.cpus)
    for h in rec.hogs:
        assert h.state_mid == "R" and h.cpu_mid == h.cpu
        assert h.run_ns > 0 and h.slices > 0
        assert not os.path.exists("/proc/%d" % h.pid)


def test_runq_contention_makes_long_run_queue_waits():
    w = runq_contention(cpu=0, n=6, seconds=0.8)
    with w:
        pids = sorted(w.pids.values())
        cond = " || ".join("args->next_pid == %d" % p for p in pids)
        pcond = " || ".join("args->prev_pid == %d" % p for p in pids)
        script = """
        tracepoint:sched:sched_switch /(%s) && (args->prev_state & 0xff) == 0/ { @q[args->prev_pid] = nsecs; }
        tracepoint:sched:sched_switch /(%s) && @q[args->next_pid]/ {
            $d = nsecs - @q[args->next_pid];
            if ($d > 10000000) { @over10ms = count(); }
            @waits = count();
            delete(@q[args->next_pid]);
        }
        """ % (pcond, cond)
        with Bpftrace(script) as bt:
            rec = w.go()
    assert rec.hogs_per_cpu == {"0": 6}
    for h in rec.hogs:
        assert h.cpu == 0 and h.cpu_mid == 0
        # runnable but waiting most of the time: 5 others share the CPU
        assert h.wait_ns > h.run_ns
    assert bt.maps["@waits"] > 0
    assert bt.maps.get("@over10ms", 0) > 0
