"""memcg_oom(), malloc_leaks() and kernel_allocs() allocate (and get killed) as their records
say: checked with the cgroup's counters, oom/kmem tracepoints and libc uprobes (bpftrace)."""
import os

import pytest

from tests.workloads import kernel_allocs, malloc_leaks, memcg_oom
from tests.workloads.oracle import Bpftrace

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def test_memcg_oom_kills_the_recorded_victim():
    w = memcg_oom(limit_mb=32, alloc_mb=256)
    with w:
        script = """
        tracepoint:oom:mark_victim { printf("%d|%s|%d\\n", args->pid, comm, pid); }
        """
        with Bpftrace(script) as bt:
            rec = w.go()
        cg = rec.cgroup
        assert os.path.isdir(cg)
    victims = [l.split("|") for t in bt.prints for l in t.splitlines() if l]
    ours = [v for v in victims if int(v[0]) == rec.victim_pid]
    assert len(ours) == 1, victims
    # mark_victim runs in the task that hit the limit: the victim itself here
    assert ours[0][1] == rec.victim_comm == "tt-oomvictim"
    assert int(ours[0][2]) == rec.trigger_pid == rec.victim_pid
    assert rec.exit_signal == 9 and rec.oom_kill_events == 1
    assert rec.limit_bytes == 32 << 20
    assert not os.path.exists(cg)                     # removed on close


def _libc_probe(libc, pid):
    return """
    uprobe:%(l)s:malloc /pid == %(p)d/ { @malloc[arg0] = count(); }
    uprobe:%(l)s:calloc /pid == %(p)d/ { @calloc[arg0 * arg1] = count(); }
    uprobe:%(l)s:posix_memalign /pid == %(p)d/ { @memalign[arg2] = count(); }
    uprobe:%(l)s:strdup /pid == %(p)d/ { @strdup = count(); }
    """ % {"l": libc, "p": pid}


def test_malloc_leaks_call_libc_as_recorded():
    w = malloc_leaks(native=False)
    with w:
        libc = w.children["main"].ready["libc"]
        with Bpftrace(_libc_probe(libc, w.pid)) as bt:
            rec = w.go()
    m = {k: {int(s): n for s, n in v.items()} if isinstance(v, dict) else v
         for k, v in bt.maps.items()}
    by = {a.func: a for a in rec.allocations}
    assert m["@malloc"][3001] == by["malloc"].count == 16
    assert m["@calloc"][7021] == by["calloc"].count == 6
    assert m["@strdup"] == by["strdup"].count == 5
    assert m["@malloc"][5000] == 5                       # strdup allocates len + 1
    assert m["@memalign"][20480] == by["posix_memalign"].count == 4
    assert [(a.func, a.leaked) for a in rec.allocations] == [
        ("malloc", 8), ("calloc", 4), ("strdup", 5), ("posix_memalign", 3)]
    assert rec.leaked_bytes == 8 * 3001 + 4 * 7021 + 5 * 5000 + 3 * 20480
    assert all(len(a.addresses) == a.leaked for a in rec.allocations)


def test_malloc_leaks_native_stack_as_a_frame_pointer_unwinder_sees_it():
    w = malloc_leaks(native=True)
    with w:
        libc = w.children["main"].ready["libc"]
        script = """
        uprobe:%s:malloc /pid == %d && arg0 == 12347/ { @s[ustack(4)] = count(); }
        """ % (libc, w.pid)
        with Bpftrace(script) as bt:
            rec = w.go()
    stacks = bt.maps["@s"]
    assert sum(stacks.values()) == rec.native.count == 3
    for key in stacks:
        frames = [l.strip().split("+")[0] for l in key.strip().splitlines()]
        assert frames[0] == "malloc" or frames[0].endswith("malloc"), frames
        assert frames[1:3] == rec.native.frames_fp == ["tt_leak_b", "tt_leak_a"], frames
    assert rec.native.callers == ["tt_leak_c", "tt_leak_b", "tt_leak_a"]


def test_kernel_allocs_are_made_by_the_syscall_and_held():
    w = kernel_allocs(count=256)
    with w:
        script = """
        tracepoint:kmem:kmalloc /pid == %(p)d/ { @site[ksym(args->call_site)] = count(); }
        tracepoint:kmem:kmem_cache_alloc /pid == %(p)d && str(args->name) == "filp"/ { @filp = count(); }
        """ % {"p": w.pid}
        with Bpftrace(script) as bt:
            rec = w.go()
        held = [os.readlink("/proc/%d/fd/%s" % (w.pid, fd)) for fd in os.listdir("/proc/%d/fd" % w.pid)]
        assert held.count("anon_inode:[eventfd]") == rec.count     # still open: still allocated
    assert rec.kstack_expect[0] == "do_eventfd"
    assert bt.maps["@site"]["do_eventfd"] >= rec.count
    assert bt.maps["@filp"] >= rec.count
    assert rec.fds == 256 and rec.slab_cache == "filp"
