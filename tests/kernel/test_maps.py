"""Map operations for every kind, against the real kernel."""
import struct

import pytest

from tinytrace.kernel import arch, maps
from tinytrace.kernel.maps import Map

from .workload import open_fds

pytestmark = pytest.mark.bpf


def u64(v):
    return struct.pack("=Q", v)


def test_hash_lookup_update_delete_iterate():
    with Map.create("hash", 4, 8, 64, name="t_hash") as m:
        assert m.lookup(1) is None
        for i in range(10):
            m.update(i, u64(i * 100))
        assert m.lookup(3) == u64(300)
        assert m[7] == u64(700)
        assert sorted(struct.unpack("=I", k)[0] for k in m.keys()) == list(range(10))
        items = dict(m.items())
        assert len(items) == 10
        assert items[struct.pack("=I", 9)] == u64(900)
        assert m.delete(3) is True
        assert m.delete(3) is False
        assert 3 not in m and 4 in m
        m.update(4, 44)  # ints are packed to the value size
        assert m.lookup(4) == u64(44)
        m.clear()
        assert m.keys() == [] and m.items() == []


def test_update_flags():
    from tinytrace.kernel import bpf
    with Map.create("hash", 4, 8, 4) as m:
        m.update(1, 1, flags=bpf.BPF_NOEXIST)
        with pytest.raises(OSError):
            m.update(1, 2, flags=bpf.BPF_NOEXIST)
        with pytest.raises(OSError):
            m.update(2, 2, flags=bpf.BPF_EXIST)


def test_wrong_sizes_are_value_errors():
    with Map.create("hash", 4, 8, 4) as m:
        with pytest.raises(ValueError):
            m.update(b"abc", u64(1))
        with pytest.raises(ValueError):
            m.update(1, b"short")


def test_array():
    with Map.create("array", 4, 16, 8, name="t_array") as m:
        assert m.lookup(0) == bytes(16)       # arrays are pre-filled with zeros
        m.update(5, b"x" * 16)
        assert m.lookup(5) == b"x" * 16
        assert len(m.keys()) == 8
        items = m.items()
        assert [struct.unpack("=I", k)[0] for k, _ in items] == list(range(8))
        assert items[5][1] == b"x" * 16
        assert m.lookup(8) is None           # out of range
        m.clear()
        assert m.lookup(5) == bytes(16)


def test_percpu_array_one_value_per_possible_cpu():
    ncpu = len(arch.possible_cpus())
    with Map.create("percpu_array", 4, 4, 2, name="t_pcpu") as m:
        assert m.ncpus == ncpu
        vals = [struct.pack("=I", 10 + i) for i in range(ncpu)]
        m.update(1, vals)
        assert m.lookup(1) == vals            # 4-byte values, rounded to 8 per CPU inside
        assert m.lookup(0) == [bytes(4)] * ncpu
        m.update(0, 7)                        # one value: every CPU
        assert m.lookup(0) == [struct.pack("=I", 7)] * ncpu
        assert dict(m.items())[struct.pack("=I", 1)] == vals
        with pytest.raises(ValueError):
            m.update(0, [b"\0" * 4] * (ncpu + 1))


def test_percpu_hash():
    ncpu = len(arch.possible_cpus())
    with Map.create("percpu_hash", 8, 12, 16, name="t_phash") as m:
        vals = [bytes([i]) * 12 for i in range(ncpu)]
        m.update(u64(99), vals)
        assert m.lookup(u64(99)) == vals
        assert m.items() == [(u64(99), vals)]
        assert m.delete(u64(99))


def test_lru_hash_evicts_instead_of_failing():
    with Map.create("lru_hash", 4, 8, 16, name="t_lru") as m:
        for i in range(200):
            m.update(i, u64(i))
        n = len(m.keys())
        assert 0 < n <= 200
        assert m.lookup(199) == u64(199)     # the newest survives


def test_stack_trace_map():
    with Map.create("stack_trace", 4, 8 * 127, 64, name="t_stacks") as m:
        assert m.kind == "stack_trace"
        assert m.stack(0) is None            # filled by bpf_get_stackid() only
        assert m.keys() == [] and m.items() == []


def test_perf_event_array_defaults():
    with Map.create("perf_event_array", 0, 0, 0, name="t_perf") as m:
        assert (m.key_size, m.value_size) == (4, 4)
        assert m.max_entries == max(arch.possible_cpus()) + 1


def test_ringbuf_size_rules():
    from tinytrace.kernel import perf
    with Map.create("ringbuf", 0, 0, 4 * perf.page_size(), name="t_rb") as m:
        assert m.kind == "ringbuf" and m.items() == []
    with pytest.raises(ValueError):
        Map.create("ringbuf", 0, 0, 3 * perf.page_size())


def test_batch_and_fallback_agree():
    with Map.create("hash", 8, 8, 4096, name="t_batch") as m:
        for i in range(3000):
            m.update(u64(i), u64(i * 3))
        batched = dict(m.items())
        assert "hash" not in maps._no_batch      # this kernel has BPF_MAP_LOOKUP_BATCH
        walked = {k: m.lookup(k) for k in m.keys()}
        assert batched == walked
        assert len(batched) == 3000 and batched[u64(2999)] == u64(8997)


def test_items_without_batch(monkeypatch):
    monkeypatch.setattr(maps, "_no_batch", {"hash"})
    with Map.create("hash", 4, 8, 8) as m:
        m.update(1, 2)
        assert m.items() == [(struct.pack("=I", 1), u64(2))]


def test_names_are_sanitised():
    with Map.create("array", 4, 4, 1, name="a name/with:odd chars and more") as m:
        assert m.fd >= 0


def test_close_frees_the_fd_and_is_idempotent():
    before = open_fds()
    m = Map.create("hash", 4, 4, 4)
    fd = m.fd
    assert fd in open_fds()
    m.close()
    m.close()
    assert open_fds() == before
    with pytest.raises(ValueError):
        m.lookup(1)


def test_finaliser_frees_the_fd():
    import gc
    before = open_fds()
    Map.create("hash", 4, 4, 4)   # dropped at once
    gc.collect()
    assert open_fds() == before


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown map kind"):
        Map.create("nope", 4, 4, 4)


def test_clear_on_fd_arrays_deletes():
    from tinytrace.kernel import perf
    with Map.create("perf_event_array", 4, 4, 0) as m:
        ev = perf.PerfEvent.open(perf.bpf_output(), cpu=0)
        try:
            m.update(0, ev.fd)
            assert m.delete(0) is True         # a filled slot deletes once...
            assert m.delete(0) is False        # ...and is then empty
            m.update(0, ev.fd)
            m.clear()                          # clear() deletes (writing zeros would fail)
            assert m.delete(0) is False
        finally:
            ev.close()


# -- BTF-described maps, task local storage ------------------------------------------------

def test_btf_described_hash_and_a_refused_blob():
    from tinytrace.kernel import bpf
    from tinytrace.kernel.btf import Writer
    w = Writer()
    key = w.int("unsigned int", 4)
    u64_ = w.int("long long unsigned int", 8)
    val = w.struct("pair", 16, [("a", u64_, 0), ("b", u64_, 8)])
    with maps.load_btf(w.encode()) as b:
        with Map.create("hash", 4, 16, 8, name="t_btfhash", btf=b, btf_key_type_id=key,
                        btf_value_type_id=val) as m:
            m.update(3, bytes(range(16)))
            assert m.lookup(3) == bytes(range(16))
        # a value type whose size is not the map's value size: the kernel refuses the map
        with pytest.raises(bpf.BpfError):
            Map.create("hash", 4, 8, 8, btf=b, btf_key_type_id=key, btf_value_type_id=val)
    broken = bytearray(w.encode())
    broken[0:2] = b"\0\0"
    with pytest.raises(bpf.BpfError, match="BTF_LOAD.*magic"):
        maps.load_btf(bytes(broken))


def test_task_storage_from_user_space():
    import os
    from tinytrace.kernel import features
    if not features.probe().task_storage:
        pytest.skip("no task local storage for tracing programs on this kernel")
    if not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open in this Python")
    pidfd = os.pidfd_open(os.getpid())
    try:
        with Map.create("task_storage", 4, 8, 123, name="t_tstore") as m:
            # the storage kinds get key size 4, no max_entries and BPF_F_NO_PREALLOC
            assert (m.key_size, m.max_entries) == (4, 0) and m.flags & 1
            assert m.lookup(pidfd) is None
            m.update(pidfd, 4242)
            assert m.lookup(pidfd) == u64(4242)
            assert m.delete(pidfd) is True and m.lookup(pidfd) is None
        with Map.create("task_storage", 4, 24, 0) as m:     # a value that is not a u64
            m.update(pidfd, bytes(range(24)))
            assert m.lookup(pidfd) == bytes(range(24))
    finally:
        os.close(pidfd)
