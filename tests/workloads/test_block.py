"""direct_io(), ext4_ops() and page_cache() do the block and page-cache work their records
claim: checked with the device's /sys/block/*/stat, mincore and bpftrace."""
import os

import pytest

from tests.workloads import direct_io, ext4_ops, page_cache
from tests.workloads.oracle import Bpftrace

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _kdev(major, minor):
    return (major << 20) | minor               # dev_t as block tracepoints report it


def _lines(bt):
    return [l.split("|") for t in bt.prints for l in t.splitlines() if l]


def test_direct_io_is_one_request_per_call():
    w = direct_io(reads=((4096, 8), (65536, 4)), writes=((16384, 6),))
    with w:
        dev = w.device
        script = """
        tracepoint:block:block_rq_issue /args->dev == %(d)d/ { printf("I|%%s|%%d|%%d\\n", args->rwbs, args->bytes, args->sector); }
        tracepoint:block:block_io_start /args->dev == %(d)d/ { printf("S|%%s|%%d\\n", args->comm, pid); }
        """ % {"d": _kdev(dev.major, dev.minor)}
        with Bpftrace(script) as bt:
            rec = w.go()
    d = rec.diskstat_delta
    assert d["read_ios"] == rec.reads.count == 12
    assert d["read_sectors"] * 512 == rec.reads.bytes == 8 * 4096 + 4 * 65536
    assert d["write_ios"] == rec.writes.count == 6
    assert d["write_sectors"] * 512 == rec.writes.bytes == 6 * 16384
    issued = [(e[1][0], int(e[2]), int(e[3])) for e in _lines(bt) if e[0] == "I"]
    planned = [(o.op, o.size, o.sector) for o in rec.ops]
    assert sorted(issued) == sorted(planned)
    starts = [e for e in _lines(bt) if e[0] == "S"]
    assert len(starts) == len(rec.ops)
    assert all(e[1] == "tt-dio" and int(e[2]) == rec.pid for e in starts)
    assert rec.sizes == {"R4096": 8, "R65536": 4, "W16384": 6}
    assert rec.majmin == "%d:%d" % (rec.major, rec.minor) and rec.disk.startswith("loop")
    assert not os.path.exists(rec.device) or rec.disk not in _attached_loops()


def _attached_loops():
    out = set()
    for name in os.listdir("/sys/block"):
        if name.startswith("loop") and os.path.exists("/sys/block/%s/loop/backing_file" % name):
            out.add(name)
    return out


def test_ext4_ops_make_the_recorded_syscalls_and_throttle_the_slow_ones():
    w = ext4_ops()
    with w:
        p = w.pid
        script = """
        tracepoint:syscalls:sys_enter_openat /pid == %(p)d/ { @openat = count(); }
        tracepoint:syscalls:sys_exit_read /pid == %(p)d && args->ret == 4096/ { @read = count(); }
        tracepoint:syscalls:sys_exit_write /pid == %(p)d && args->ret == 4096/ { @write = count(); }
        tracepoint:syscalls:sys_exit_pread64 /pid == %(p)d/ { @pread64 = sum(args->ret); }
        tracepoint:syscalls:sys_exit_pwrite64 /pid == %(p)d/ { @pwrite64 = sum(args->ret); }
        tracepoint:ext4:ext4_sync_file_enter /pid == %(p)d/ { @fsync = count(); }
        """ % {"p": p}
        with Bpftrace(script) as bt:
            rec = w.go()
        mounted = open("/proc/self/mounts").read()
        assert rec.mountpoint in mounted
    assert rec.counts == {"open": 4, "write": 10, "fsync": 2, "read": 10}
    m = bt.maps
    assert m["@openat"] == rec.counts["open"]
    assert m["@read"] == 8                                   # buffered 4 KiB reads
    assert m["@write"] == 8                                  # buffered 4 KiB writes
    assert m["@pread64"] == m["@pwrite64"] == 2 * 65536      # throttled direct I/O
    assert m["@fsync"] == rec.counts["fsync"]
    slow = [o for o in rec.ops if o.slow]
    assert [(o.op, o.syscall, o.bytes, o.direct) for o in slow] == [
        ("read", "pread64", 65536, True)] * 2 + [("write", "pwrite64", 65536, True)] * 2
    # throttling is a floor: 64 KiB at 512 KiB/s cannot finish in under 125 ms
    assert rec.slow_floor_ms == 125.0
    assert all(o.latency_ms >= 0.9 * rec.slow_floor_ms for o in slow)
    assert rec.mountpoint not in open("/proc/self/mounts").read()


def test_page_cache_misses_hits_and_dirties():
    w = page_cache(size_mb=4, write_pages=64)
    with w:
        ino = os.stat(w.path).st_ino
        devt = os.stat(w.path).st_dev
        script = """
        tracepoint:filemap:mm_filemap_add_to_page_cache /args->i_ino == %(i)d && args->s_dev == %(d)d/ { @added = sum(1 << args->order); }
        tracepoint:writeback:writeback_dirty_folio /pid == %(p)d/ { @dirtied = count(); }
        """ % {"i": ino, "p": w.pid, "d": _kdev(os.major(devt), os.minor(devt))}
        with Bpftrace(script) as bt:
            rec = w.go()
    assert rec.pages == 1024 and rec.resident_at_start == 0
    first, second, write = rec.phases["first_read"], rec.phases["second_read"], rec.phases["write"]
    assert first.bytes == second.bytes == rec.size
    assert first.resident_after == second.resident_after == rec.pages
    # the first read went to the device for the whole file, the second for none of it
    assert rec.size // 512 <= first.diskstat_delta["read_sectors"] <= rec.size // 512 + 64
    assert second.diskstat_delta["read_sectors"] == 0
    assert bt.maps["@added"] == rec.misses == rec.pages
    assert bt.maps["@dirtied"] == rec.dirtied == 64
    assert write.bytes == 64 * 4096
