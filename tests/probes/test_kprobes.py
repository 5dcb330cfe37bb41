"""kprobes: the message on kernels without them (this development VM), wildcard matching,
tracepoint suggestions, and -- where the kernel has kprobes (the qemu guests) -- exact hit
counts, arguments and return values through the PMU and through kprobe_events."""
import os

import pytest

from tinytrace.errors import KernelError
from tinytrace.kernel import dynevents, features, kprobes, maps, progs, regs

from . import bpfprogs as bp
from .workload import Child, dead_pid

pytestmark = pytest.mark.guest_safe

FUNC = "do_sys_openat2"

EVENTS = [("syscalls", "sys_enter_openat"), ("syscalls", "sys_exit_openat"),
          ("syscalls", "sys_enter_openat2"), ("syscalls", "sys_enter_read"),
          ("syscalls", "sys_exit_read"), ("sched", "sched_switch"),
          ("sched", "sched_process_exit"), ("tcp", "tcp_sendmsg_locked"),
          ("tcp", "tcp_probe"), ("block", "block_io_start"), ("block", "block_rq_issue"),
          ("ext4", "ext4_sync_file_enter"), ("ext4", "ext4_sync_file_exit"),
          ("msr", "read_msr")]


# -- no kprobes --------------------------------------------------------------------------------

def test_message_on_this_kernel():
    """The development VM's kernel has no CONFIG_KPROBES: one line naming it, with the
    syscall tracepoints do_sys_openat2 serves as the suggestion."""
    if kprobes.method() is not None:
        pytest.skip("this kernel has kprobes")
    with pytest.raises(kprobes.KprobesUnavailable) as e:
        kprobes.attach(None, FUNC)
    msg = str(e.value)
    assert msg.startswith("kprobe:do_sys_openat2: this kernel was built without "
                          "CONFIG_KPROBES; try a tracepoint: "
                          "tracepoint:syscalls:sys_enter_openat")
    assert "\n" not in msg and e.value.exit_code == 1
    with pytest.raises(kprobes.KprobesUnavailable) as e:
        kprobes.check("vfs_read", retprobe=True)
    assert str(e.value).startswith("kretprobe:vfs_read: this kernel was built without "
                                   "CONFIG_KPROBES; try a tracepoint: "
                                   "tracepoint:syscalls:sys_exit_read")
    with pytest.raises(kprobes.KprobesUnavailable) as e:
        kprobes.attach_matching(None, "vfs_*")
    assert "use tracepoints instead" in str(e.value)


def test_message_without_kprobes_anywhere(monkeypatch):
    """The same message on any kernel once the PMU and kprobe_events are out of reach."""
    f = features.probe()
    monkeypatch.setitem(f._known, "kprobe_pmu", None)
    monkeypatch.setattr(dynevents, "supported", lambda kind: False)
    monkeypatch.setattr(kprobes, "_kernel_has_kprobes_core", lambda: False)
    from tinytrace.kernel import tracefs
    monkeypatch.setattr(tracefs, "all_events", lambda: EVENTS)
    assert kprobes.method() is None
    with pytest.raises(KernelError) as e:
        kprobes.attach(None, "tcp_sendmsg")
    assert str(e.value) == ("kprobe:tcp_sendmsg: this kernel was built without CONFIG_KPROBES; "
                            "try a tracepoint: tracepoint:tcp:tcp_sendmsg_locked, "
                            "tracepoint:tcp:*")


def test_message_when_only_kprobe_events_are_missing(monkeypatch):
    f = features.probe()
    monkeypatch.setitem(f._known, "kprobe_pmu", None)
    monkeypatch.setattr(dynevents, "supported", lambda kind: False)
    monkeypatch.setattr(kprobes, "_kernel_has_kprobes_core", lambda: True)
    msg = kprobes.unavailable_message("kprobe:" + FUNC)
    assert "has kprobes but no kprobe events (CONFIG_KPROBE_EVENTS)" in msg


@pytest.mark.parametrize("func,retprobe,want", [
    ("do_sys_openat2", False, ["syscalls:sys_enter_openat", "syscalls:sys_enter_openat2"]),
    ("__x64_sys_openat", False, ["syscalls:sys_enter_openat", "syscalls:sys_enter_openat2"]),
    ("vfs_read", True, ["syscalls:sys_exit_read"]),
    ("schedule", False, ["sched:sched_switch", "sched:*"]),
    ("do_exit", False, ["sched:sched_process_exit"]),
    ("tcp_sendmsg", False, ["tcp:tcp_sendmsg_locked", "tcp:*"]),
    ("blk_account_io_start", False, ["block:block_io_start", "block:block_rq_issue"]),
    ("ext4_sync_file", True, ["ext4:ext4_sync_file_exit", "ext4:ext4_sync_file_enter"]),
    ("xyzzy_frobnicate", False, []),
])
def test_suggestions(func, retprobe, want):
    got = kprobes.suggest_tracepoints(func, retprobe, limit=len(want) or 3, events=EVENTS)
    assert got == want


# -- what can be probed ------------------------------------------------------------------------

AVAILABLE = """vfs_read
vfs_write
vfs_readv
__ftrace_invalid_address___64
vfs_fsync_range
do_sys_openat2
ext4_sync_file [ext4]
ext4_file_read_iter [ext4]
vfs_read
"""

BLACKLIST = """0xffffffff81000000-0xffffffff81000040\tvfs_readv
0xffffffffc0000000-0xffffffffc0000100\text4_file_read_iter [ext4]
"""


def test_matching_functions():
    funcs = kprobes.parse_available(AVAILABLE)
    assert ("ext4_sync_file", "ext4") in funcs
    assert not any(n.startswith("__ftrace_invalid") for n, _ in funcs)
    black = kprobes.parse_blacklist(BLACKLIST)
    assert black == {"vfs_readv", "ext4_file_read_iter"}
    m = kprobes.matching_functions("vfs_*", funcs, black)
    assert m == [("vfs_fsync_range", None), ("vfs_read", None), ("vfs_write", None)]
    assert kprobes.matching_functions("ext4:*", funcs, black) == [("ext4_sync_file", "ext4")]
    assert kprobes.matching_functions("*_file*", funcs, black) == [("ext4_sync_file", "ext4")]
    assert kprobes.matching_functions("vmlinux:do_*", funcs, black) == [
        ("do_sys_openat2", None)]
    assert kprobes.matching_functions("nope*", funcs, black) == []
    assert kprobes.has_wildcard("vfs_*") and not kprobes.has_wildcard("vfs_read")


def test_stale_event_names():
    dead, me = dead_pid(), os.getpid()
    text = ("p:kprobes/tinytrace_%d_0 do_sys_openat2\n"
            "r16:kprobes/tinytrace_%d_3 vfs_read\n"
            "p:kprobes/tinytrace_%d_1 vfs_write\n"
            "p:kprobes/other_tool vfs_read\n"
            "p:mygroup/tinytrace_%d_9 vfs_read\n" % (dead, dead, me, dead))
    got = dynevents.stale_events(text)
    assert got == [("kprobes", "tinytrace_%d_0" % dead), ("kprobes", "tinytrace_%d_3" % dead),
                   ("mygroup", "tinytrace_%d_9" % dead)]
    name = dynevents.next_name()
    assert name.startswith("tinytrace_%d_" % me)
    assert dynevents.next_name() != name


def test_kretprobe_offset_is_refused():
    with pytest.raises(kprobes.KprobeError):
        kprobes.attach(None, FUNC, offset=4, retprobe=True)


# -- with kprobes (the qemu guests) -----------------------------------------------------------

@pytest.fixture(params=["pmu", "tracefs"])
def how(request):
    """Run through the kprobe PMU and through kprobe_events."""
    if kprobes.method() is None:
        pytest.skip("this kernel has no kprobes")
    f = features.probe()
    if request.param == "pmu":
        if f.kprobe_pmu is None:
            pytest.skip("no kprobe PMU")
        yield "pmu"
        return
    if not dynevents.supported("kprobe"):
        pytest.skip("no kprobe_events")
    saved = f.kprobe_pmu
    f.override("kprobe_pmu", None)
    try:
        yield "tracefs"
    finally:
        f.override("kprobe_pmu", saved)


def _need(func):
    from tinytrace.kernel import ksyms
    if not ksyms.kallsyms().lookup_all(func):
        pytest.skip("no %s in this kernel" % func)


@pytest.mark.bpf
@pytest.mark.kprobes
def test_kprobe_counts_exact_and_reads_arg0(tmp_path, how):
    _need(FUNC)
    t = regs.kernel()
    with Child(tmp_path) as w, maps.Map.create("array", 4, 8, 4) as m:
        code = bp.recorder(m.fd, w.pid, [bp.load_regs_loc(bp.R7, t.arg(0),
                                                          "probe_read_kernel")])
        with progs.load(code, "kprobe", "t_kp") as p:
            with kprobes.attach(p, FUNC) as a:
                assert a.fd >= 0
                dirfd, *fds = w.do("open", 37, 0)
                assert bp.value(m, 0) == 37
                assert bp.value(m, 1) & 0xFFFFFFFF == dirfd & 0xFFFFFFFF   # AT_FDCWD
                dirfd, *fds = w.do("open", 5, 1)
                assert bp.value(m, 0) == 42
                assert bp.value(m, 1) & 0xFFFFFFFF == dirfd
            w.do("open", 3, 0)
            assert bp.value(m, 0) == 42


@pytest.mark.bpf
@pytest.mark.kprobes
def test_kretprobe_retval_is_the_fd(tmp_path, how):
    _need(FUNC)
    t = regs.kernel()
    with Child(tmp_path) as w, maps.Map.create("array", 4, 8, 4) as m:
        code = bp.recorder(m.fd, w.pid, [bp.load_regs_loc(bp.R7, t.retval_loc())])
        with progs.load(code, "kprobe", "t_kret") as p:
            with kprobes.attach(p, FUNC, retprobe=True):
                _, *fds = w.do("open", 12, 0)
        assert bp.value(m, 0) == 12
        assert bp.value(m, 1) & 0xFFFFFFFF == fds[-1]


@pytest.mark.bpf
@pytest.mark.kprobes
def test_kprobe_at_an_offset(tmp_path, how):
    """func+offset: the first offset the kernel accepts (an instruction boundary) counts
    every call; offsets inside an instruction are refused with a clear error."""
    _need(FUNC)
    with Child(tmp_path) as w, maps.Map.create("array", 4, 8, 4) as m:
        with progs.load(bp.counter(m.fd, w.pid), "kprobe", "t_off") as p:
            a, refused = None, []
            for off in range(1, 17):
                try:
                    a = kprobes.attach(p, FUNC, offset=off)
                    break
                except kprobes.KprobeError as e:
                    refused.append(str(e))
            assert a is not None, refused
            try:
                w.do("open", 9, 0)
                assert bp.value(m, 0) == 9
            finally:
                a.close()
    for r in refused:
        assert r.startswith("kprobe:%s+" % FUNC) and "\n" not in r


@pytest.mark.bpf
@pytest.mark.kprobes
def test_wildcard(tmp_path, how):
    _need(FUNC)
    with Child(tmp_path) as w, maps.Map.create("array", 4, 8, 4) as m:
        with progs.load(bp.counter(m.fd, w.pid), "kprobe", "t_wild") as p:
            with kprobes.attach_matching(p, "do_sys_openat*") as g:
                assert g.attached == [FUNC]
                w.do("open", 8, 0)
            assert bp.value(m, 0) == 8
            with kprobes.attach_matching(p, "vfs_rea*") as g:
                assert "vfs_read" in g.attached
                for name, why in g.skipped:
                    assert why and "\n" not in why


@pytest.mark.bpf
@pytest.mark.kprobes
def test_refusals_are_one_line(how):
    with maps.Map.create("array", 4, 8, 4) as m, \
            progs.load(bp.counter(m.fd, 1), "kprobe", "t_bad") as p:
        with pytest.raises(kprobes.KprobeError) as e:
            kprobes.attach(p, "no_such_function_tt")
        assert str(e.value).startswith("kprobe:no_such_function_tt: ")
        assert "\n" not in str(e.value)
        with pytest.raises(kprobes.KprobeError) as e:
            kprobes.attach_matching(p, "no_such_function_tt*")
        assert "no probeable kernel function" in str(e.value)


@pytest.mark.bpf
@pytest.mark.kprobes
def test_kprobe_events_are_named_and_removed(tmp_path):
    if kprobes.method() is None or not dynevents.supported("kprobe"):
        pytest.skip("no kprobe_events")
    _need(FUNC)
    from tinytrace.kernel import tracefs
    f = features.probe()
    saved = f.kprobe_pmu
    f.override("kprobe_pmu", None)
    dead = dead_pid()
    stale = "tinytrace_%d_0" % dead
    tracefs.write("kprobe_events", "p:kprobes/%s %s\n" % (stale, FUNC))
    try:
        dynevents._cleaned.discard("kprobe")
        with maps.Map.create("array", 4, 8, 4) as m, \
                progs.load(bp.counter(m.fd, 1), "kprobe", "t_names") as p:
            a = kprobes.attach(p, FUNC)
            listing = open(tracefs.path("kprobe_events")).read()
            assert "kprobes/%s" % a.name in listing
            assert stale not in listing                # a dead run's event: cleaned
            a.close()
            assert a.name not in open(tracefs.path("kprobe_events")).read()
    finally:
        f.override("kprobe_pmu", saved)
        dynevents.remove("kprobe", "kprobes", stale)


@pytest.mark.bpf
@pytest.mark.kprobes
def test_ambiguous_name_is_probed_at_every_address(how):
    """Since 6.6 the kernel refuses a name several functions share (EADDRNOTAVAIL); such a
    probe then goes on each of their addresses.  Older kernels take the first by name."""
    from tinytrace.kernel import attach as att
    from tinytrace.kernel.bpf import kernel_version
    counts = {}
    for name, mod in kprobes.available_functions():
        if mod is None:
            counts[name] = counts.get(name, 0) + 1
    black = kprobes.blacklist()
    dups = sorted(n for n, c in counts.items() if c > 1 and n not in black and "." not in n)
    if not dups:
        pytest.skip("no kernel function name is shared here")
    with maps.Map.create("array", 4, 8, 4) as m, \
            progs.load(bp.counter(m.fd, 1), "kprobe", "t_dup") as p:
        for name in dups[:30]:
            addrs = kprobes._addresses_of(name)
            if len(addrs) < 2:
                continue
            try:
                a = kprobes.attach(p, name)
            except kprobes.KprobeError:
                continue                        # one of them cannot be probed: try another
            try:
                if kernel_version() >= (6, 6, 0):
                    assert isinstance(a, att.Group) and len(a) == len(addrs), name
                    assert all(mb.fd >= 0 for mb in a)
            finally:
                a.close()
            return
    pytest.skip("none of the shared names could be probed")


@pytest.mark.bpf
def test_kprobe_multi_link(tmp_path):
    """Wildcards on one kprobe_multi link, a cookie per function (where the kernel has
    them: 5.18+, CONFIG_FPROBE, 64-bit)."""
    if kprobes.method() is None:
        pytest.skip("this kernel has no kprobes")
    if not kprobes.multi_supported():
        pytest.skip("no kprobe_multi links here")
    _need(FUNC)
    with Child(tmp_path) as w, maps.Map.create("array", 4, 8, 4) as m:
        with progs.load(bp.cookie_counter(m.fd, w.pid), "kprobe", "t_kmulti",
                        expected_attach_type="trace_kprobe_multi") as p:
            with kprobes.attach_multi(p, ["vfs_read", FUNC], cookies=[1, 0]) as link:
                assert link.names == ["vfs_read", FUNC]
                w.do("open", 11, 0)
                assert bp.value(m, 0) == 11
            g = kprobes.attach_matching(p, "do_sys_openat*", retprobe=True)
            try:
                assert g.names == [FUNC]
                w.do("open", 4, 0)
                assert bp.value(m, 0) == 15
            finally:
                g.close()
