"""Perf buffer and ring buffer readers delivering real events from a workload."""
import struct

import pytest

from tinytrace.kernel import attach, events, features, maps, perf, progs, tracefs

from . import bpfcode as c
from .workload import Opener, open_fds

pytestmark = pytest.mark.bpf


@pytest.fixture
def openat():
    """The (offset, size) of sys_enter_openat's mode field, from its format file."""
    if tracefs.find() is None or not tracefs.exists("syscalls", "sys_enter_openat"):
        pytest.skip("no syscalls:sys_enter_openat tracepoint")
    f = tracefs.event_format("syscalls", "sys_enter_openat").field("mode")
    return f.offset, f.size


def need_ringbuf():
    if not features.probe().ringbuf:
        pytest.skip("kernel has no BPF ring buffer")


def poll_until(reader, want, got, rounds=200):
    """Poll (100 ms waits, at most ``rounds``) until ``got()`` reaches ``want``."""
    for _ in range(rounds):
        if got() >= want:
            break
        reader.poll(100)
    return got()


def decode(records):
    return [struct.unpack_from("=QQ", r) for r in records]


def test_perf_buffer_delivers_every_event(tmp_path, openat):
    n = 300
    recs = []
    with Opener(str(tmp_path / "f")) as w, \
            maps.Map.create("perf_event_array", 4, 4, 0, name="t_pb") as m:
        with events.PerfBuffer(m, recs.append, pages=8) as r, \
                progs.load(c.emit_pid_and_mode_perf(m.fd, w.pid, mode=openat), "tracepoint",
                           "t_pbout") as p, \
                attach.tracepoint(p, "syscalls", "sys_enter_openat"):
            w.open_files(n, mode_base=0o100)
            poll_until(r, n, lambda: len(recs))
            r.drain()
            assert r.lost == 0
    assert len(recs) == n
    assert all(isinstance(x, bytes) for x in recs)
    # raw payloads are padded to keep records 8-byte aligned: 16 bytes -> 20
    assert all(len(x) >= 16 for x in recs)
    got = decode(recs)
    assert {pid_tgid >> 32 for pid_tgid, _ in got} == {w.pid}
    assert sorted(mode for _, mode in got) == [0o100 + i for i in range(n)]


def test_ringbuf_delivers_every_event_in_order(tmp_path, openat):
    need_ringbuf()
    n = 300
    recs = []
    with Opener(str(tmp_path / "f")) as w, \
            maps.Map.create("ringbuf", 0, 0, 1 << 16, name="t_rb") as rb, \
            maps.Map.create("array", 4, 8, 1, name="t_rblost") as lost:
        with events.RingBuffer(rb, recs.append, lost_counter=(lost, 0)) as r, \
                progs.load(c.emit_pid_and_mode_ringbuf(rb.fd, w.pid, lost.fd, mode=openat), "tracepoint",
                           "t_rbout") as p, \
                attach.tracepoint(p, "syscalls", "sys_enter_openat"):
            w.open_files(n, mode_base=0o200)
            poll_until(r, n, lambda: len(recs))
            r.drain()
            assert r.lost == 0
    assert [len(x) for x in recs] == [16] * n       # exact payload length
    got = decode(recs)
    assert {pid_tgid >> 32 for pid_tgid, _ in got} == {w.pid}
    assert [mode for _, mode in got] == [0o200 + i for i in range(n)]   # one ring: in order


def test_ringbuf_records_wrap_around(tmp_path, openat):
    """Many more records than fit at once, read in rounds: positions pass the ring's end."""
    need_ringbuf()
    recs = []
    page = perf.page_size()
    with Opener(str(tmp_path / "f")) as w, \
            maps.Map.create("ringbuf", 0, 0, page, name="t_rbwrap") as rb, \
            maps.Map.create("array", 4, 8, 1) as lost:
        with events.RingBuffer(rb, recs.append, lost_counter=(lost, 0)) as r, \
                progs.load(c.emit_pid_and_mode_ringbuf(rb.fd, w.pid, lost.fd, mode=openat), "tracepoint",
                           "t_rbwrap") as p, \
                attach.tracepoint(p, "syscalls", "sys_enter_openat"):
            total = 0
            for rnd in range(20):       # 20 x 50 x 24-byte records = 6x the ring
                w.open_files(50, mode_base=rnd * 50)
                total += 50
                r.drain()
            assert r.lost == 0
    assert [m for _, m in decode(recs)] == list(range(total))


def test_perf_buffer_wraps_around(tmp_path, openat):
    recs = []
    with Opener(str(tmp_path / "f")) as w, maps.Map.create("perf_event_array", 4, 4, 0) as m:
        with events.PerfBuffer(m, recs.append, pages=1) as r, \
                progs.load(c.emit_pid_and_mode_perf(m.fd, w.pid, mode=openat), "tracepoint",
                           "t_pbwrap") as p, \
                attach.tracepoint(p, "syscalls", "sys_enter_openat"):
            for rnd in range(20):       # 20 x 50 x 32-byte records, 1-page rings
                w.open_files(50, mode_base=rnd * 50)
                r.drain()
            assert r.lost == 0
    assert sorted(m for _, m in decode(recs)) == list(range(1000))


def test_perf_buffer_counts_lost_events(tmp_path, openat):
    size = 2048       # 2 KiB samples: a one-page ring holds one
    recs, lost_calls = [], []
    with Opener(str(tmp_path / "f")) as w, \
            maps.Map.create("perf_event_array", 4, 4, 0) as m, \
            maps.Map.create("array", 4, size, 1) as big:
        # one CPU, so that the LOST record the next sample flushes covers every loss
        import os
        os.sched_setaffinity(w.pid, {min(os.sched_getaffinity(0))})
        big.update(0, b"\xab" * size)
        code = c.emit_big_value(m.fd, big.fd, size, w.pid, "perf")
        with events.PerfBuffer(m, recs.append, lost_calls.append, pages=1) as r, \
                progs.load(code, "tracepoint", "t_pblost") as p, \
                attach.tracepoint(p, "syscalls", "sys_enter_openat"):
            w.open_files(20)            # nobody reads meanwhile: all but one are dropped
            r.drain()
            w.open_files(1)             # the kernel writes its LOST record before this one
            poll_until(r, 21, lambda: len(recs) + r.lost)
            r.drain()
            assert r.lost > 0
            assert len(recs) + r.lost == 21
            assert sum(lost_calls) == r.lost
    assert all(x[:size] == b"\xab" * size for x in recs)


def test_ringbuf_counts_lost_events(tmp_path, openat):
    need_ringbuf()
    size = 2048
    recs, lost_calls = [], []
    page = perf.page_size()
    with Opener(str(tmp_path / "f")) as w, \
            maps.Map.create("ringbuf", 0, 0, page) as rb, \
            maps.Map.create("array", 4, 8, 1) as lost, \
            maps.Map.create("array", 4, size, 1) as big:
        big.update(0, b"\xcd" * size)
        code = c.emit_big_value(rb.fd, big.fd, size, w.pid, "ringbuf", lost.fd)
        with events.RingBuffer(rb, recs.append, lost_calls.append, lost_counter=(lost, 0)) as r, \
                progs.load(code, "tracepoint", "t_rblost") as p, \
                attach.tracepoint(p, "syscalls", "sys_enter_openat"):
            w.open_files(20)
            r.drain()
            assert r.lost > 0
            assert len(recs) + r.lost == 20
            assert sum(lost_calls) == r.lost
    assert all(x == b"\xcd" * size for x in recs)


def test_callback_exception_keeps_the_rest(tmp_path, openat):
    need_ringbuf()
    recs = []

    def on_event(data):
        recs.append(data)
        if len(recs) == 3:
            raise KeyboardInterrupt

    with Opener(str(tmp_path / "f")) as w, maps.Map.create("ringbuf", 0, 0, 1 << 16) as rb, \
            maps.Map.create("array", 4, 8, 1) as lost:
        with events.RingBuffer(rb, on_event) as r, \
                progs.load(c.emit_pid_and_mode_ringbuf(rb.fd, w.pid, lost.fd, mode=openat), "tracepoint",
                           "t_rbexc") as p, \
                attach.tracepoint(p, "syscalls", "sys_enter_openat"):
            w.open_files(10)
            with pytest.raises(KeyboardInterrupt):
                r.drain()
            assert len(recs) == 3
            r.drain()                   # the 7 left are delivered from the pending queue
            assert len(recs) == 10
    assert [m for _, m in decode(recs)] == [0o400 + i for i in range(10)]


def test_open_output_picks_a_reader_and_owns_its_map():
    before = open_fds()
    r = events.open_output(lambda d: None, size=1 << 16)
    assert r.map.kind == ("ringbuf" if features.probe().ringbuf else "perf_event_array")
    assert r.poll(0) == 0
    r.close()
    assert r.map.closed
    r2 = events.open_output(lambda d: None, size=1 << 16, ringbuf=False)
    assert isinstance(r2, events.PerfBuffer) and r2.pages >= 1
    r2.close()
    assert open_fds() == before


def test_reader_for_map_kind():
    with maps.Map.create("array", 4, 4, 1) as m:
        with pytest.raises(ValueError):
            events.reader(m, print)
    with pytest.raises(ValueError):
        with maps.Map.create("perf_event_array", 4, 4, 0) as m:
            events.PerfBuffer(m, print, pages=3)


@pytest.mark.parametrize("kind", ["ringbuf", "perf"])
def test_weakly_ordered_machine_paths(tmp_path, openat, monkeypatch, kind):
    """The code paths arm/riscv/ppc/mips take (real fences, two-pass ring reads) also work."""
    from tinytrace.kernel import arch, libc
    monkeypatch.setattr(arch, "strongly_ordered", lambda mach=None: False)
    monkeypatch.setattr(libc, "_fence", None)
    assert libc.get_fence() is not None and libc._fence_mutex is not None
    if kind == "ringbuf":
        need_ringbuf()
    n = 100
    recs = []
    with Opener(str(tmp_path / "f")) as w, maps.Map.create("array", 4, 8, 1) as lost:
        if kind == "ringbuf":
            out = maps.Map.create("ringbuf", 0, 0, 1 << 16)
            r = events.RingBuffer(out, recs.append)
            code = c.emit_pid_and_mode_ringbuf(out.fd, w.pid, lost.fd, mode=openat)
        else:
            out = maps.Map.create("perf_event_array", 4, 4, 0)
            r = events.PerfBuffer(out, recs.append, pages=4)
            code = c.emit_pid_and_mode_perf(out.fd, w.pid, mode=openat)
        with out, r, progs.load(code, "tracepoint", "t_weak") as p, \
                attach.tracepoint(p, "syscalls", "sys_enter_openat"):
            w.open_files(n, mode_base=0)
            poll_until(r, n, lambda: len(recs))
    assert sorted(m for _, m in decode(recs)) == list(range(n))


def test_ringbuf_with_32_bit_kernel_positions(tmp_path, openat, monkeypatch):
    """A 32-bit kernel's ring positions are 32-bit: read them as such (on this little-endian
    64-bit kernel the low halves are exactly that view while positions stay below 4 GiB)."""
    import sys
    if sys.byteorder != "little":
        pytest.skip("the low-half view only holds on little-endian machines")
    need_ringbuf()
    from tinytrace.kernel import arch
    monkeypatch.setattr(arch, "kernel_long_size", lambda raw=None: 4)
    recs = []
    with Opener(str(tmp_path / "f")) as w, \
            maps.Map.create("ringbuf", 0, 0, perf.page_size()) as rb, \
            maps.Map.create("array", 4, 8, 1) as lost:
        with events.RingBuffer(rb, recs.append) as r, \
                progs.load(c.emit_pid_and_mode_ringbuf(rb.fd, w.pid, lost.fd, mode=openat), "tracepoint",
                           "t_rb32") as p, \
                attach.tracepoint(p, "syscalls", "sys_enter_openat"):
            assert r._posmask == 0xFFFFFFFF
            for rnd in range(10):
                w.open_files(50, mode_base=rnd * 50)
                r.drain()
        assert count_lost(lost) == 0
    assert [m for _, m in decode(recs)] == list(range(500))


def count_lost(m):
    return struct.unpack("=Q", m.lookup(0))[0]
