"""uprobes and uretprobes on libc and bash: exact hit counts of a workload child, arguments
and return values read through the register tables, the PMU and the tracefs paths."""
import os

import pytest

from tinytrace.kernel import arch, features, maps, progs, regs, uprobes

from . import bpfprogs as bp
from .workload import Child, dead_pid, libc_path

pytestmark = [pytest.mark.bpf, pytest.mark.guest_safe]


@pytest.fixture
def libc():
    p = libc_path()
    if p is None:
        pytest.skip("no libc in our mappings")
    return p


@pytest.fixture(params=["pmu", "tracefs"])
def how(request):
    """Run a test through the uprobe PMU and through uprobe_events."""
    f = features.probe()
    if request.param == "pmu":
        if f.uprobe_pmu is None:
            pytest.skip("no uprobe PMU")
        yield "pmu"
        return
    from tinytrace.kernel import dynevents
    if not dynevents.supported("uprobe"):
        pytest.skip("no uprobe_events")
    saved = f.uprobe_pmu
    f.override("uprobe_pmu", None)
    try:
        yield "tracefs"
    finally:
        f.override("uprobe_pmu", saved)


def _arm_thumb_skip(path, name):
    if arch.machine() == "arm" and uprobes._open(path).find_symbol(name).value & 1:
        pytest.skip("%s is Thumb code here" % name)


def _count(m):
    return bp.value(m, 0)


def test_getpid_counts_exact_with_pid_filter(tmp_path, libc, how):
    _arm_thumb_skip(libc, "getpid")
    with Child(tmp_path) as w, Child(tmp_path) as other, \
            maps.Map.create("array", 4, 8, 4) as m:
        # the program counts every process: the pid filter of the perf event must do it
        with progs.load(bp.counter(m.fd, None), "kprobe", "t_getpid") as p:
            with uprobes.attach_function(p, libc, "getpid", pid=w.pid) as a:
                assert a.fd >= 0
                other.do("getpid", 500)
                w.do("getpid", 123)
                other.do("getpid", 77)
                assert _count(m) == 123
                w.do("getpid", 7)
                assert _count(m) == 130
            w.do("getpid", 5)
            assert _count(m) == 130


def test_system_wide_probe_sees_every_process(tmp_path, libc, how):
    _arm_thumb_skip(libc, "getpid")
    with Child(tmp_path) as a, Child(tmp_path) as b, maps.Map.create("array", 4, 8, 4) as m1, \
            maps.Map.create("array", 4, 8, 4) as m2:
        with progs.load(bp.counter(m1.fd, a.pid), "kprobe", "t_a") as pa, \
                progs.load(bp.counter(m2.fd, b.pid), "kprobe", "t_b") as pb:
            with uprobes.attach_function(pa, libc, "getpid"), \
                    uprobes.attach_function(pb, libc, "getpid"):
                a.do("getpid", 40)
                b.do("getpid", 60)
                a.do("getpid", 2)
            assert (_count(m1), _count(m2)) == (42, 60)


def test_uretprobe_retval_is_the_pid(tmp_path, libc, how):
    _arm_thumb_skip(libc, "getpid")
    t = regs.user()
    with Child(tmp_path) as w, maps.Map.create("array", 4, 8, 4) as m:
        code = bp.recorder(m.fd, w.pid, [bp.load_regs_loc(bp.R7, t.retval_loc())])
        with progs.load(code, "kprobe", "t_ret") as p:
            with uprobes.attach_function(p, libc, "getpid", retprobe=True, pid=w.pid):
                got_pid, = w.do("getpid", 9)
        assert got_pid == w.pid
        assert _count(m) == 9
        assert bp.value(m, 1) & 0xFFFFFFFF == w.pid


def test_six_register_arguments_of_mmap(tmp_path, libc, how):
    """mmap(NULL, len, prot, flags, fd, off): arg3 is rcx on x86_64 (the syscall ABI would
    say r10), and all six are in registers on every 64-bit table."""
    t = regs.user()
    if t.nargs < 6:
        pytest.skip("fewer than six register arguments on %s" % t.name)
    name = "mmap64" if uprobes._open(libc).find_symbol("mmap64") else "mmap"
    _arm_thumb_skip(libc, name)
    length = 3 * 4096 * 7
    with Child(tmp_path) as w, maps.Map.create("array", 4, 8, 8) as m:
        loaders = [bp.load_regs_loc(bp.R7, t.arg(i)) for i in range(6)]
        # keep only the call whose length is ours: filter arg1 before counting
        code = _filtered_recorder(m.fd, w.pid, t.arg(1), length, loaders)
        with progs.load(code, "kprobe", "t_mmap") as p:
            with uprobes.attach_function(p, libc, name, pid=w.pid):
                fd, = w.do("mmap", length)
        count = _count(m)
        got = [bp.value(m, i) for i in range(1, 7)]
    import mmap as mm
    assert count == 1
    assert got[0] == 0
    assert got[1] == length
    assert got[2] & 0xFFFFFFFF == mm.PROT_READ
    assert got[3] & 0xFFFFFFFF == mm.MAP_SHARED
    assert got[4] & 0xFFFFFFFF == fd
    assert got[5] == 0


def _filtered_recorder(map_fd, pid, loc, want, loaders):
    from tinytrace.asm import (Exit, JNe, Label, Mov, R0, R1, R6, R7, link)
    prog = [Mov.Reg(R6, R1)] + bp._pid_check(pid) + bp.load_regs_loc(R7, loc) + \
        [JNe.Imm(R7, want, "out")] + bp._bump(0)
    for i, insns in enumerate(loaders, 1):
        prog += insns + bp._store(i, R7)
    prog += [Label("out"), Mov.Imm(R0, 0), Exit()]
    return link(prog, maps={"m": map_fd})


def test_address_and_wildcard_forms(tmp_path, libc):
    _arm_thumb_skip(libc, "getpid")
    f = uprobes._open(libc)
    vaddr = f.symbol_address("getpid")
    assert uprobes.address_offset(libc, vaddr) == uprobes.symbol_offset(libc, "getpid")
    assert "getpid" in uprobes.matching_functions(libc, "getpi?")
    with Child(tmp_path) as w, maps.Map.create("array", 4, 8, 4) as m:
        with progs.load(bp.counter(m.fd, w.pid), "kprobe", "t_addr") as p:
            with uprobes.attach_address(p, libc, vaddr, pid=w.pid):
                w.do("getpid", 11)
            assert _count(m) == 11
            g = uprobes.attach_matching(p, libc, "getpi[d]", pid=w.pid)
            try:
                assert g.attached == ["getpid"]
                w.do("getpid", 4)
            finally:
                g.close()
            assert _count(m) == 15


def test_tracefs_events_are_named_and_removed(tmp_path, libc):
    from tinytrace.kernel import dynevents, tracefs
    if not dynevents.supported("uprobe"):
        pytest.skip("no uprobe_events")
    _arm_thumb_skip(libc, "getpid")
    f = features.probe()
    saved = f.uprobe_pmu
    f.override("uprobe_pmu", None)
    try:
        with maps.Map.create("array", 4, 8, 4) as m, \
                progs.load(bp.counter(m.fd, 1), "kprobe", "t_names") as p:
            a = uprobes.attach_function(p, libc, "getpid")
            listing = open(tracefs.path("uprobe_events")).read()
            mine = "uprobes/%s" % a.name
            assert a.name.startswith("tinytrace_%d_" % os.getpid())
            assert mine in listing
            a.close()
            assert mine not in open(tracefs.path("uprobe_events")).read()
    finally:
        f.override("uprobe_pmu", saved)


def test_stale_tracefs_events_of_dead_runs_are_removed(libc):
    from tinytrace.kernel import dynevents, tracefs
    if not dynevents.supported("uprobe"):
        pytest.skip("no uprobe_events")
    off = uprobes._open(libc).symbol_offset("getpid")      # never attached: any code will do
    dead, live = dead_pid(), os.getppid()
    names = ["tinytrace_%d_0" % dead, "tinytrace_%d_7" % live]
    for n in names:
        tracefs.write("uprobe_events", "p:uprobes/%s %s:0x%x\n" % (n, libc, off))
    try:
        dynevents._cleaned.discard("uprobe")
        removed = dynevents.clean_stale("uprobe")
        listing = open(tracefs.path("uprobe_events")).read()
        assert "uprobes/" + names[0] in removed
        assert names[0] not in listing
        assert names[1] in listing           # its process still runs
    finally:
        for n in names:
            dynevents.remove("uprobe", "uprobes", n)


def test_killed_run_leaves_nothing_with_the_pmu(tmp_path, libc):
    """A process SIGKILLed while its PMU uprobe is attached leaves no event behind."""
    if features.probe().uprobe_pmu is None:
        pytest.skip("no uprobe PMU")
    _arm_thumb_skip(libc, "getpid")
    import signal
    import subprocess
    import sys
    from tinytrace.kernel import tracefs
    script = (
        "import sys, time\n"
        "from tinytrace.kernel import maps, progs, uprobes\n"
        "from tests.probes import bpfprogs as bp\n"
        "m = maps.Map.create('array', 4, 8, 4)\n"
        "p = progs.load(bp.counter(m.fd, 1), 'kprobe', 't_kill')\n"
        "a = uprobes.attach_function(p, %r, 'getpid')\n"
        "print('attached', flush=True)\n"
        "time.sleep(600)\n" % libc)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE,
                             universal_newlines=True)
    try:
        assert child.stdout.readline().strip() == "attached"
        profile = open(tracefs.path("uprobe_profile")).read()
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    assert "tinytrace_%d_" % child.pid not in profile
    assert "tinytrace_%d_" % child.pid not in open(tracefs.path("uprobe_events")).read()


def test_killed_tracefs_run_is_cleaned_by_the_next(libc):
    """A run killed while its uprobe_events entry exists leaves it behind; the next run
    that makes a tracefs event removes it (its PID is gone)."""
    from tinytrace.kernel import dynevents, tracefs
    if not dynevents.supported("uprobe"):
        pytest.skip("no uprobe_events")
    _arm_thumb_skip(libc, "getpid")
    import signal
    import subprocess
    import sys
    script = (
        "import time\n"
        "from tinytrace.kernel import features, maps, progs, uprobes\n"
        "from tests.probes import bpfprogs as bp\n"
        "features.probe().override('uprobe_pmu', None)\n"
        "m = maps.Map.create('array', 4, 8, 4)\n"
        "p = progs.load(bp.counter(m.fd, 1), 'kprobe', 't_kill')\n"
        "a = uprobes.attach_function(p, %r, 'getpid')\n"
        "print(a.name, flush=True)\n"
        "time.sleep(600)\n" % libc)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE,
                             universal_newlines=True)
    try:
        name = child.stdout.readline().strip()
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    try:
        assert name.startswith("tinytrace_%d_" % child.pid)
        assert "uprobes/" + name in open(tracefs.path("uprobe_events")).read()
        dynevents._cleaned.discard("uprobe")
        assert "uprobes/" + name in dynevents.clean_stale("uprobe")
        assert name not in open(tracefs.path("uprobe_events")).read()
    finally:
        dynevents.remove("uprobe", "uprobes", name)


def test_errors_are_one_line(libc):
    from tinytrace.errors import UserError
    with pytest.raises(UserError) as e:
        uprobes.symbol_offset(libc, "no_such_function_here")
    assert "no function no_such_function_here" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError) as e:
        uprobes.resolve("/no/such/binary")
    assert "no such file" in str(e.value)
    assert uprobes.matching_functions(libc, "no_such_*") == []
    with pytest.raises(UserError) as e:
        uprobes.attach_matching(None, libc, "no_such_*")
    assert "no function of" in str(e.value)


def test_bash_readline_through_a_pty(tmp_path):
    """uprobe and uretprobe on bash's readline, driven through a terminal: each line typed
    is one return from readline; the prompt waiting for the next is one more entry."""
    bash = "/bin/bash"
    if not os.path.exists(bash) or uprobes._open(bash).find_symbol("readline") is None:
        pytest.skip("no bash with a readline symbol")
    import pty
    import select
    import time
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(bash, [bash, "--norc", "--noprofile", "-i"])
        os._exit(127)

    pending = [b""]

    def expect(marker, timeout=60):
        """Read until ``marker`` has been printed; what follows it stays pending."""
        buf = pending[0]
        end = time.monotonic() + timeout
        while marker not in buf:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("bash did not print %r: %r" % (marker, buf[-200:]))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    buf += os.read(fd, 4096)
                except OSError:
                    break
        pending[0] = buf[buf.index(marker) + len(marker):]

    try:
        # readline prints the prompt itself: once "tt$ " follows our marker, bash is in it
        os.write(fd, b"PS1='tt$ '; echo ready$((1+1))\n")
        expect(b"ready2")
        expect(b"tt$ ")
        with maps.Map.create("array", 4, 8, 4) as m1, maps.Map.create("array", 4, 8, 4) as m2:
            with progs.load(bp.counter(m1.fd, pid), "kprobe", "t_rl") as p1, \
                    progs.load(bp.counter(m2.fd, pid), "kprobe", "t_rlr") as p2:
                with uprobes.attach_function(p1, bash, "readline", pid=pid), \
                        uprobes.attach_function(p2, bash, "readline", retprobe=True,
                                                pid=pid):
                    for i in range(5):
                        os.write(fd, b"echo mark$((%d+1000))\n" % i)
                        expect(b"mark%d" % (i + 1000))
                        expect(b"tt$ ")
                    # the readline running when we attached returns unseen (its return
                    # address was not redirected); the one waiting now has entered
                    assert (_count(m1), _count(m2)) == (5, 4)
                    os.write(fd, b"true\n")
                    expect(b"tt$ ")
                    assert (_count(m1), _count(m2)) == (6, 5)
    finally:
        try:
            os.write(fd, b"exit\n")
        except OSError:
            pass
        os.close(fd)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


@pytest.fixture
def multi():
    if not uprobes.multi_supported():
        pytest.skip("no uprobe_multi links (Linux 6.6+)")


def test_multi_link_counts_per_cookie(tmp_path, libc, multi):
    for name in ("getpid", "getuid"):
        _arm_thumb_skip(libc, name)
    offsets = [uprobes.symbol_offset(libc, n) for n in ("getpid", "getuid")]
    with Child(tmp_path) as w, Child(tmp_path) as other, \
            maps.Map.create("array", 4, 8, 4) as m:
        code = bp.cookie_counter(m.fd, None)            # the link's pid filter does it
        with progs.load(code, "kprobe", "t_multi",
                        expected_attach_type="trace_uprobe_multi") as p:
            with uprobes.attach_multi(p, libc, offsets, pid=w.pid, cookies=[0, 1],
                                      names=["getpid", "getuid"]) as link:
                assert len(link) == 2 and link.fd >= 0
                w.do("getpid", 5)
                w.do("getuid", 3)
                other.do("getpid", 50)
                assert (bp.value(m, 0), bp.value(m, 1)) == (5, 3)
            w.do("getpid", 5)
            assert bp.value(m, 0) == 5


def test_multi_uretprobes_and_wildcards(tmp_path, libc, multi):
    _arm_thumb_skip(libc, "getpid")
    with Child(tmp_path) as w, maps.Map.create("array", 4, 8, 4) as m:
        with progs.load(bp.cookie_counter(m.fd, w.pid), "kprobe", "t_multi_w",
                        expected_attach_type="trace_uprobe_multi") as p:
            link = uprobes.attach_matching(p, libc, "getpi[d]", retprobe=True)
            try:
                assert isinstance(link, uprobes.MultiLink) and link.names == ["getpid"]
                w.do("getpid", 7)
                assert bp.value(m, 0) == 7
            finally:
                link.close()
            with pytest.raises(uprobes.UprobeError):
                uprobes.attach_multi(p, libc, [])


def test_multi_needs_a_program_loaded_for_it(libc, multi):
    with maps.Map.create("array", 4, 8, 4) as m, \
            progs.load(bp.counter(m.fd, 1), "kprobe", "t_plain") as p:
        with pytest.raises(uprobes.UprobeError) as e:
            uprobes.attach_multi(p, libc, [uprobes.symbol_offset(libc, "getpid")])
    assert "trace_uprobe_multi" in str(e.value)
