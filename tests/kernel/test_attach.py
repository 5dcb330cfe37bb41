"""Attaching programs to tracepoints, raw tracepoints, tp_btf and perf events, checked by
counting what a workload child did."""
import os
import struct

import pytest

from tinytrace.kernel import arch, attach, features, maps, perf, progs, tracefs

from . import bpfcode as c
from .workload import Opener

pytestmark = pytest.mark.bpf

OPENAT_NR = {"x86_64": 257, "aarch64": 56, "riscv64": 56, "loongarch64": 56, "arm": 322,
             "ppc64le": 286, "ppc64": 286, "s390x": 288}


def count(m):
    return struct.unpack("=Q", m.lookup(0))[0]


def need_tracepoint(cat, name):
    if tracefs.find() is None or not tracefs.exists(cat, name):
        pytest.skip("no tracepoint %s:%s here" % (cat, name))


@pytest.mark.parametrize("link", [True, False], ids=["bpf-link", "ioctl"])
def test_tracepoint_counts_exact_opens(tmp_path, link):
    need_tracepoint("syscalls", "sys_enter_openat")
    if link and not features.probe().perf_link:
        pytest.skip("kernel has no BPF links for perf events")
    with Opener(str(tmp_path / "f")) as w, maps.Map.create("array", 4, 8, 1, name="t_cnt") as m:
        code = c.count_for_pid(m.fd, w.pid)
        with progs.load(code, "tracepoint", "t_openat") as p:
            a = attach.tracepoint(p, "syscalls", "sys_enter_openat", link=link)
            try:
                assert (a.link_fd >= 0) == link
                w.open_files(37)
                assert count(m) == 37
                w.open_files(5)
                assert count(m) == 42
            finally:
                a.close()
            w.open_files(3)              # detached: not counted
            assert count(m) == 42


def test_one_perf_event_per_tracepoint(tmp_path):
    need_tracepoint("syscalls", "sys_enter_openat")
    with maps.Map.create("array", 4, 8, 1) as m, \
            progs.load(c.count_for_pid(m.fd, 1), "tracepoint", "t_one") as p:
        before = set(os.listdir("/proc/self/fd"))
        a = attach.tracepoint(p, "syscalls", "sys_enter_openat")
        new = set(os.listdir("/proc/self/fd")) - before
        links = 1 if a.link_fd >= 0 else 0
        assert len(new) == 1 + links          # one perf event (+ its link), not one per CPU
        a.close()
        assert set(os.listdir("/proc/self/fd")) == before


def test_missing_tracepoint_is_a_user_error():
    with maps.Map.create("array", 4, 8, 1) as m, \
            progs.load(c.count_for_pid(m.fd, 1), "tracepoint", "t_none") as p:
        with pytest.raises(tracefs.EventNotFound):
            attach.tracepoint(p, "nosuch", "event")


def test_raw_tracepoint_counts_exact_opens(tmp_path):
    nr = OPENAT_NR.get(arch.machine())
    if nr is None:
        pytest.skip("openat number unknown on %s" % arch.machine())
    with Opener(str(tmp_path / "f")) as w, maps.Map.create("array", 4, 8, 1) as m:
        code = c.count_for_pid(m.fd, w.pid, c.raw_syscall_filter(nr))
        with progs.load(code, "raw_tracepoint", "t_raw") as p:
            with attach.raw_tracepoint(p, "sys_enter") as a:
                w.open_files(23)
                assert count(m) == 23
            assert a.closed
            w.open_files(2)
            assert count(m) == 23


def test_raw_tracepoint_unknown_name():
    with maps.Map.create("array", 4, 8, 1) as m, \
            progs.load(c.count_for_pid(m.fd, 1), "raw_tracepoint", "t_raw2") as p:
        with pytest.raises(tracefs.EventNotFound):
            attach.raw_tracepoint(p, "no_such_tracepoint_here")


def test_tp_btf_counts_exact_opens(tmp_path):
    nr = OPENAT_NR.get(arch.machine())
    if nr is None or not features.probe().btf:
        pytest.skip("needs BTF and a known openat number")
    from .btfmini import TYPEDEF, find_type_id
    btf_id = find_type_id("btf_trace_sys_enter", TYPEDEF)
    assert btf_id
    with Opener(str(tmp_path / "f")) as w, maps.Map.create("array", 4, 8, 1) as m:
        code = c.count_for_pid(m.fd, w.pid, c.raw_syscall_filter(nr))
        with progs.load(code, "tracing", "t_btf", expected_attach_type="trace_raw_tp",
                        attach_btf_id=btf_id) as p:
            with attach.tp_btf(p, "sys_enter"):
                w.open_files(11)
                assert count(m) == 11


def test_software_event_per_cpu():
    # a perf_event program counting its own invocations on cpu-clock samples
    with maps.Map.create("array", 4, 8, 1) as m:
        code = c.join(
            c.st_w(10, -4, 0), c.ld_map_fd(1, m.fd), c.mov64_reg(2, 10), c.add64_imm(2, -4),
            c.call(c.MAP_LOOKUP_ELEM),
            c.jeq_imm(0, 0, 1 + len(c.atomic_add_dw(0, 0, 1)) // 8), c.mov64_imm(1, 1),
            c.atomic_add_dw(0, 0, 1), c.mov64_imm(0, 0), c.exit_())
        with progs.load(code, "perf_event", "t_prof") as p:
            g = attach.profile(p, frequency=999)
            try:
                assert len(g) == len(arch.online_cpus())
                # burn CPU until a sample lands (bounded, no timing asserted)
                x = 0
                for _ in range(200):
                    for i in range(20000):
                        x += i
                    if count(m) > 0:
                        break
                assert count(m) > 0
            finally:
                g.close()
            assert g.closed


def test_generic_perf_event_with_ioctl_path():
    with maps.Map.create("array", 4, 8, 1) as m:
        code = c.join(c.mov64_imm(0, 0), c.exit_())
        with progs.load(code, "perf_event", "t_generic") as p:
            attr = perf.software(perf.SW_CPU_CLOCK, sample_period=10000000)
            a = attach.perf_event(p, attr, cpu=0, link=False)
            assert a.link_fd == -1 and a.fd >= 0
            a.close()
            assert a.closed


def _libc_path():
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6:
                name = os.path.basename(parts[5])
                if name.startswith("libc.so") or name.startswith("libc-"):
                    return parts[5]
    return None


def test_uprobe_pmu_counts_exact_calls(tmp_path):
    """The generic perf-event attach with a uprobe PMU event: open() in libc, per pid."""
    f = features.probe()
    if f.uprobe_pmu is None:
        pytest.skip("no uprobe PMU")
    libc_path = _libc_path()
    if libc_path is None:
        pytest.skip("libc not found in our mappings")
    from tinytrace.kernel.elf import ElfFile
    with ElfFile(libc_path) as elf:
        name = "open64" if elf.find_symbol("open64") is not None else "open"
        off = elf.symbol_offset(name)
        thumb = elf.find_symbol(name).value & 1
    if arch.machine() == "arm" and thumb:
        # the kernel plants an ARM breakpoint into Thumb code and the process breaks
        pytest.skip("libc's open is Thumb code; 32-bit ARM uprobes handle ARM code only")
    with Opener(str(tmp_path / "f")) as w, maps.Map.create("array", 4, 8, 1) as m:
        with progs.load(c.count_for_pid(m.fd, w.pid), "kprobe", "t_uprobe") as p:
            attr = perf.probe_pmu(f.uprobe_pmu, libc_path, off)
            with attach.perf_event(p, attr, cpu=0, pid=-1, target="uprobe:open") as a:
                assert a.fd >= 0
                w.open_files(17)
                assert count(m) == 17
            w.open_files(2)
            assert count(m) == 17


@pytest.mark.parametrize("link", [True, False], ids=["bpf-link", "ioctl"])
def test_reading_past_the_record_is_explained(link):
    need_tracepoint("sched", "sched_process_exec")
    if link and not features.probe().perf_link:
        pytest.skip("kernel has no BPF links for perf events")
    size = tracefs.event_format("sched", "sched_process_exec").size
    off = (size + 64) & ~7
    code = c.join(c.ldx_dw(0, 1, off), c.mov64_imm(0, 0), c.exit_())
    from tinytrace.errors import KernelError
    with progs.load(code, "tracepoint", "t_far") as p:
        with pytest.raises(KernelError, match="reads past the end"):
            attach.tracepoint(p, "sched", "sched_process_exec", link=link)


def test_tracepoint_with_cookie(tmp_path):
    """bpf_get_attach_cookie() (helper 174) sees the cookie given at attach time."""
    need_tracepoint("syscalls", "sys_enter_openat")
    if not features.probe().perf_link:
        pytest.skip("kernel has no BPF links for perf events")
    with Opener(str(tmp_path / "f")) as w, maps.Map.create("array", 4, 8, 1) as m:
        # if pid matches: map[0] = bpf_get_attach_cookie(ctx)
        code = c.join(
            c.mov64_reg(6, 1), c.call(c.GET_CURRENT_PID_TGID), c.rsh64_imm(0, 32),
            c.jne_imm(0, w.pid, 11),            # -> r0 = 0 (slot 15)
            c.mov64_reg(1, 6), c.call(174), c.mov64_reg(7, 0),
            c.st_w(10, -4, 0), c.ld_map_fd(1, m.fd), c.mov64_reg(2, 10), c.add64_imm(2, -4),
            c.call(c.MAP_LOOKUP_ELEM),
            c.jeq_imm(0, 0, 1), c.stx_dw(0, 0, 7),
            c.mov64_imm(0, 0), c.exit_())
        with progs.load(code, "tracepoint", "t_cookie") as p:
            with attach.tracepoint(p, "syscalls", "sys_enter_openat", cookie=0x1234abcd):
                w.open_files(1)
                assert count(m) == 0x1234abcd
        with progs.load(code, "tracepoint", "t_cookie2") as p:
            from tinytrace.errors import KernelError
            with pytest.raises(KernelError, match="cookie needs BPF links"):
                attach.tracepoint(p, "syscalls", "sys_enter_openat", cookie=1, link=False)
