"""Feature probes: answers of the right shape, each probed once per process, only on demand."""
import os

import pytest

from tinytrace.kernel import features


def fresh():
    f = features.Features()
    return f


@pytest.mark.bpf
def test_every_probe_answers():
    got = fresh().all()
    assert set(got) == set(features.NAMES)
    for name in ("ringbuf", "perf_link", "btf", "atomics", "atomic_fetch", "bounded_loops",
                 "probe_read_kernel", "probe_read_user", "percpu_maps", "raw_tracepoints"):
        assert isinstance(got[name], bool), name
    for name in ("kprobe_pmu", "uprobe_pmu", "jit"):
        assert got[name] is None or isinstance(got[name], int), name
    assert got["btf"] == os.path.exists("/sys/kernel/btf/vmlinux")
    if os.path.exists("/sys/bus/event_source/devices/uprobe/type"):
        with open("/sys/bus/event_source/devices/uprobe/type") as fh:
            assert got["uprobe_pmu"] == int(fh.read())


@pytest.mark.bpf
def test_this_kernel():
    # the development VM runs 6.18: every modern feature is there, kprobes are not
    from tinytrace.kernel.bpf import kernel_version
    if kernel_version() < (5, 15, 0):
        pytest.skip("older kernel")
    f = fresh()
    assert f.ringbuf and f.perf_link and f.bounded_loops and f.probe_read_kernel
    assert f.probe_read_user and f.percpu_maps and f.raw_tracepoints
    # callbacks (for loops) need a JIT that calls functions: the 64-bit ones do, the
    # 32-bit ARM one does not (the interpreter does not either)
    from tinytrace.kernel import arch
    if arch.kernel_long_size() == 4:
        assert not f.callbacks
    elif f.jit:
        assert f.callbacks


def test_probes_run_once_and_only_when_asked(monkeypatch):
    calls = []
    monkeypatch.setitem(features._PROBES, "ringbuf", lambda: calls.append(1) or True)
    f = fresh()
    assert f.known() == {}
    assert f.ringbuf is True
    assert f.ringbuf is True
    assert calls == [1]
    f.forget("ringbuf")
    assert f.ringbuf is True and calls == [1, 1]


def test_override_and_unknown_names():
    f = fresh()
    f.override("perf_link", False)
    assert f.perf_link is False
    with pytest.raises(AttributeError):
        f.no_such_feature
    with pytest.raises(KeyError):
        f.override("no_such_feature", 1)


def test_process_wide_object():
    assert features.probe() is features.probe()


@pytest.mark.bpf
def test_btf_probes_agree_with_the_kernel():
    f = fresh()
    assert isinstance(f.tp_btf, bool) and isinstance(f.task_storage, bool)
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        assert not f.tp_btf and not f.task_storage
        return
    from tinytrace.kernel.bpf import kernel_version
    if kernel_version() >= (5, 15, 0):
        # the development VM (6.18) has both
        assert f.tp_btf and f.task_storage
    if f.task_storage:
        assert f.tp_btf
