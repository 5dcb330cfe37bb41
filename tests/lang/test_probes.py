"""Every kind of probe the kernel offers, run from the language under a workload whose effect
is known: uprobes on libc functions called a known number of times (by symbol, wildcard on
one uprobe_multi link, with ``-p``), a uretprobe on bash's readline fed through a pty,
python3.11's USDT probes, profile samples with kernel and user stacks, kprobes where the
kernel has them (the qemu guests; this development VM has none: there the one-line message
is checked), hardware events (refused where there is no PMU), raw tracepoint arguments
named from BTF, and BTF struct offsets against the tracepoint format files.

Each test starts ``python -m tinytrace`` and waits for "Attaching N probes..." before the
workload acts, then stops it (Ctrl-C, or the ``-p`` process ending) and reads the maps.
"""
import contextlib
import os
import re
import signal
import subprocess
import sys

import pytest

from tests.probes.workload import PYTHON_WITH_USDT, Child, libc_path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TIMEOUT = 120


class Tracer(object):
    """``python -m tinytrace ARGS`` in the background, attached once ``started`` returns."""

    def __init__(self, args, env=None):
        e = dict(os.environ)
        e["PYTHONPATH"] = ROOT
        e.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-m", "tinytrace"] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                                     universal_newlines=True)
        first = self.proc.stdout.readline()
        if not first.startswith("Attaching"):
            out, err = self.proc.communicate(timeout=TIMEOUT)
            raise AssertionError("tinytrace did not attach: %r %s %s" % (first, out, err))

    def stop(self):
        """Ctrl-C; returns (stdout, stderr) after the maps are printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.finish()

    def finish(self):
        try:
            out, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError("tinytrace did not stop: %s %s" % (out, err))
        assert "Traceback" not in err, err
        assert self.proc.returncode == 0, (self.proc.returncode, out, err)
        return out, err


def _value(out, key):
    m = re.search(r"^%s: (-?\d+)$" % re.escape(key), out, re.M)
    assert m, "%s not in:\n%s" % (key, out)
    return int(m.group(1))


def _tinytrace(args, env=None):
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "tinytrace"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=TIMEOUT, env=e)


def _need_uprobes(*libc_functions):
    """Skip without uprobes, or when a libc function named is Thumb code (32-bit ARM
    distributions build libc so; ``test_thumb_functions_are_refused`` covers that)."""
    from tinytrace.kernel import uprobes
    if uprobes.method() is None:
        pytest.skip("this kernel cannot make uprobes")
    for name in libc_functions:
        if _thumb(name):
            pytest.skip("libc's %s is Thumb code" % name)


def _thumb(name):
    from tinytrace.kernel import elf, uprobes
    libc = libc_path()
    if libc is None:
        pytest.skip("no libc mapped")
    addr = elf.open(libc).symbol_address(name)
    return addr is not None and uprobes.is_thumb(libc, addr)


@contextlib.contextmanager
def _held_python(code, *argv):
    """``python3 -c CODE ARGV...`` that does its work between two lines read from stdin:
    the test attaches a tracer, then ``_go`` releases the work and waits for its last line.
    The process is ended (stdin closed, reaped) however the test leaves."""
    proc = subprocess.Popen([sys.executable, "-c", code] + list(argv),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            universal_newlines=True)
    try:
        yield proc
    finally:
        proc.stdin.close()
        proc.wait()


def _go(proc, tracer, done):
    """Release a ``_held_python`` process, wait for its line ``done``, stop ``tracer``;
    returns the tracer's stdout."""
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == done + "\n"
    out, _ = tracer.stop()
    return out


# -- uprobes --------------------------------------------------------------------------------

@pytest.mark.bpf
@pytest.mark.guest_safe
def test_uprobe_counts_libc_calls_of_one_process(tmp_path):
    """-p PID: the uprobe exists in that process only (another one calling getpid is not
    seen, even without a predicate); uretprobe's retval is getpid's result."""
    _need_uprobes("getpid")
    with Child(tmp_path) as w, Child(tmp_path) as other:
        t = Tracer(["-p", str(w.pid), "-e", "uprobe:libc:getpid { @calls = count(); "
                    "@f[func] = count(); } uretprobe:libc:getpid { "
                    "@ret[retval == pid] = count(); }"])
        w.do("getpid", 1000)
        other.do("getpid", 500)
        w.do("getpid", 234)
        out, _ = t.stop()
    assert _value(out, "@calls") == 1234
    assert _value(out, "@f[getpid]") == 1234
    assert _value(out, "@ret[1]") == 1234
    assert "@ret[0]" not in out


@pytest.mark.bpf
@pytest.mark.guest_safe
def test_uprobe_wildcard_tells_functions_apart(tmp_path):
    """One program on every getpid/getuid of libc (one uprobe_multi link where the kernel
    has them, cookies telling ``func`` and ``probe`` apart)."""
    _need_uprobes("getpid", "getuid")
    libc = libc_path()
    if libc is None:
        pytest.skip("no libc mapped")
    with Child(tmp_path) as w:
        t = Tracer(["-e", "uprobe:%s:get[pu]id /pid == %d/ { @[func, probe] = count(); }"
                    % (libc, w.pid)])
        w.do("getpid", 300)
        w.do("getuid", 200)
        out, _ = t.stop()
    assert _value(out, "@[getpid, uprobe:%s:getpid]" % libc) == 300, out
    assert _value(out, "@[getuid, uprobe:%s:getuid]" % libc) == 200, out


@pytest.mark.bpf
@pytest.mark.guest_safe
def test_uprobe_by_address(tmp_path):
    """uprobe:FILE:0xADDR -- getpid's address as nm prints it."""
    _need_uprobes("getpid")
    from tinytrace.kernel import elf
    libc = libc_path()
    addr = elf.open(libc).symbol_address("getpid")
    with Child(tmp_path) as w:
        t = Tracer(["-p", str(w.pid), "-e", "uprobe:%s:0x%x { @[probe] = count(); }"
                    % (libc, addr)])
        w.do("getpid", 321)
        out, _ = t.stop()
    assert _value(out, "@[uprobe:%s:0x%x]" % (libc, addr)) == 321, out


@pytest.mark.bpf
@pytest.mark.guest_safe
def test_uprobe_arguments(tmp_path):
    """mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0): arg1..arg5 as the caller passed them
    (the sixth argument is in a register on x86_64/arm64, on the stack on 32-bit ARM)."""
    _need_uprobes("mmap")
    length = 7 * 4096
    with Child(tmp_path) as w:
        t = Tracer(["-p", str(w.pid), "-e", "uprobe:libc:mmap /arg1 == %d/ { "
                    "@[arg0, arg2, arg3, arg4] = count(); }" % length])
        fd, = w.do("mmap", length)
        w.do("mmap", length)
        out, _ = t.stop()
    assert _value(out, "@[0, 1, 1, %d]" % fd) == 2, out


@pytest.mark.bpf
@pytest.mark.guest_safe
def test_uretprobe_readline_through_a_pty(tmp_path):
    """bpftrace's classic one-liner: the lines an interactive bash reads."""
    _need_uprobes()
    bash = "/bin/bash"
    if not os.path.exists(bash):
        pytest.skip("no bash")
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(bash, [bash, "--norc", "--noprofile", "-i"])
    try:
        t = Tracer(["-p", str(pid), "-e", 'uretprobe:/bin/bash:readline { '
                    'printf("[%s]\\n", str(retval)); }'])
        # bash was already inside readline() when the probe went in: that call's return
        # is not seen (a uretprobe hooks returns at function entry), so a first line
        # finishes it
        for line in ("true", "echo hello-one", "echo second  line", "exit"):
            os.write(fd, (line + "\n").encode())
        try:
            while os.read(fd, 4096):
                pass
        except OSError:
            pass
        out, _ = t.finish()          # ends with the traced bash
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    assert [x for x in out.splitlines() if x][:3] == [
        "[echo hello-one]", "[echo second  line]", "[exit]"], out


@pytest.mark.guest_safe
def test_thumb_functions_are_refused():
    """32-bit ARM uprobes cannot probe Thumb code: one line naming the function."""
    if not _thumb("getpid"):
        pytest.skip("libc's getpid is not Thumb code here")
    r = _tinytrace(["-e", "uprobe:libc:getpid { @ = count(); }"])
    assert r.returncode == 2, r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith("stdin:1:1: error: ") and "getpid is Thumb code" in first, first
    assert "Traceback" not in r.stderr


@pytest.mark.guest_safe
def test_uprobe_errors():
    r = _tinytrace(["-e", "uprobe:libc:no_such_function_tt { }"])
    assert r.returncode == 2 and "no function 'no_such_function_tt' in " in r.stderr, r.stderr
    r = _tinytrace(["-e", "uprobe:libc:getpd { }"])
    assert r.returncode == 2 and "did you mean 'getpid'" in r.stderr, r.stderr
    r = _tinytrace(["-e", "uprobe:libnosuchlib:f { }"])
    assert r.returncode == 2 and "cannot find 'libnosuchlib'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


# -- USDT -----------------------------------------------------------------------------------

def _python_usdt():
    if not os.path.exists(PYTHON_WITH_USDT):
        pytest.skip("no %s" % PYTHON_WITH_USDT)
    from tinytrace.kernel import usdt
    if not usdt.find(PYTHON_WITH_USDT, "python", "function__entry"):
        pytest.skip("%s has no USDT probes" % PYTHON_WITH_USDT)
    from tinytrace.kernel import uprobes
    if uprobes.is_thumb(PYTHON_WITH_USDT, usdt.find(PYTHON_WITH_USDT, "python",
                                                    "function__entry")[0].pc):
        pytest.skip("Thumb code")


@pytest.mark.bpf
@pytest.mark.guest_safe
def test_usdt_python_function_entry_arguments(tmp_path):
    """function__entry(filename, funcname, lineno): python3.11 fires it when a generator is
    resumed by throw() (the workload's ``call N``); funcname and lineno read from the
    note's operands."""
    _need_uprobes()
    _python_usdt()
    with Child(tmp_path, PYTHON_WITH_USDT) as w:
        t = Tracer(["-p", str(w.pid), "-e", "usdt:%s:python:function__entry { "
                    "@[str(arg1), arg2] = count(); }" % PYTHON_WITH_USDT])
        line, = w.do("call", 37)
        out, _ = t.stop()
    assert _value(out, "@[tt_target, %d]" % line) == 37, out


@pytest.mark.bpf
@pytest.mark.guest_safe
def test_usdt_function_return_counts_every_return(tmp_path):
    """function__return fires for every return: a script calling f() 500 times."""
    _need_uprobes()
    _python_usdt()
    script = tmp_path / "calls.py"
    script.write_text("def tt_leaf():\n    return 1\n\nfor i in range(500):\n    tt_leaf()\n")
    r = _tinytrace(["-q", "-c", "%s %s" % (PYTHON_WITH_USDT, script), "-e",
                    "usdt:%s:python:function__return { @[str(arg1)] = count(); }"
                    % PYTHON_WITH_USDT])
    assert r.returncode == 0, r.stderr
    assert _value(r.stdout, "@[tt_leaf]") == 500, r.stdout


@pytest.mark.bpf
@pytest.mark.guest_safe
def test_usdt_memory_operand_sign_extended(tmp_path):
    """gc__start(generation): a 4-byte signed operand in memory (``-4@112(%rsp)`` on
    x86_64), behind a semaphore; gc.collect(2) five times."""
    _need_uprobes()
    _python_usdt()
    script = tmp_path / "gc.py"
    script.write_text("import gc\nfor i in range(5):\n    gc.collect(2)\n")
    r = _tinytrace(["-q", "-c", "%s %s" % (PYTHON_WITH_USDT, script), "-e",
                    "usdt:%s:python:gc__start { @[arg0] = count(); }" % PYTHON_WITH_USDT])
    assert r.returncode == 0, r.stderr
    assert _value(r.stdout, "@[2]") >= 5, r.stdout
    keys = [int(k) for k in re.findall(r"^@\[(-?\d+)\]", r.stdout, re.M)]
    assert set(keys) <= {0, 1, 2}, r.stdout


def test_usdt_probe_not_found():
    if not os.path.exists(PYTHON_WITH_USDT):
        pytest.skip("no %s" % PYTHON_WITH_USDT)
    r = _tinytrace(["-e", "usdt:%s:python:function__entyr { }" % PYTHON_WITH_USDT])
    assert r.returncode == 2, r.stderr
    assert "usdt probe python:function__entyr not found" in r.stderr, r.stderr
    assert "did you mean 'python:function__entry'" in r.stderr, r.stderr


# -- profile with stacks --------------------------------------------------------------------

@pytest.mark.bpf
@pytest.mark.guest_safe
def test_profile_kernel_stacks_name_the_read_path(tmp_path):
    """A loop reading /dev/zero a megabyte at a time: sampled kernel stacks pass through
    read_zero / vfs_read; ``kstack(3)`` keeps three frames."""
    with _held_python("import os, sys, time\n"
                      "f = os.open('/dev/zero', os.O_RDONLY)\n"
                      "sys.stdin.readline(); end = time.monotonic() + 1.5\n"
                      "while time.monotonic() < end: os.read(f, 1 << 20)\n"
                      "print('done', flush=True); sys.stdin.readline()\n") as proc:
        out = _go(proc, Tracer(["-e", "profile:hz:499 /pid == %d/ { @[kstack(3)] = count(); "
                                "@d[kstack] = count(); }" % proc.pid]), "done")
    assert re.search(r"^    (read_zero|vfs_read|ksys_read|__x64_sys_read|"
                     r"__arm64_sys_read|iov_iter_zero|clear_user\w*|rep_stos\w*)\+\d+$",
                     out, re.M), out
    for key in re.findall(r"^@\[\n((?:    .*\n)*)\]", out, re.M):
        assert len(key.splitlines()) <= 3, key


@pytest.mark.bpf
def test_profile_user_stacks_name_native_functions(tmp_path):
    """A C library built with frame pointers: sampled user stacks show tt_spin_inner
    called from tt_spin; ``ustack(perf)`` adds the module; symbols resolve while the
    process lives (the run is stopped before it exits)."""
    from tests.workloads.native import native_library
    lib = native_library()
    with _held_python("import ctypes, sys\n"
                      "lib = ctypes.CDLL(sys.argv[1])\n"
                      "sys.stdin.readline(); lib.tt_spin(800)\n"
                      "print('spun', flush=True); sys.stdin.readline()\n", lib) as proc:
        out = _go(proc, Tracer(["-e", "profile:hz:999 /pid == %d/ { @[ustack(3)] = count(); "
                                "@p[ustack(perf, 2)] = count(); }" % proc.pid]), "spun")
    assert re.search(r"^    tt_spin_inner\+\d+\n    tt_spin\+\d+\n", out, re.M), out
    assert re.search(r"^\t[0-9a-f]+ tt_spin_inner\+\d+ \(%s\)$" % re.escape(lib), out,
                     re.M), out


# -- kprobes --------------------------------------------------------------------------------

def _kprobes():
    from tinytrace.kernel import kprobes
    return kprobes.method() is not None


def test_kprobe_without_kprobes_says_so():
    if _kprobes():
        pytest.skip("this kernel has kprobes")
    r = _tinytrace(["-e", "kprobe:do_sys_openat2 { @[comm] = count(); }"])
    assert r.returncode == 2, r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith("stdin:1:1: error: kprobe:do_sys_openat2: ") and \
        "CONFIG_KPROBES" in first and "tracepoint:syscalls:sys_enter_openat" in first, first


@pytest.mark.bpf
@pytest.mark.kprobes
@pytest.mark.guest_safe
def test_kprobe_and_kretprobe_count_opens(tmp_path):
    if not _kprobes():
        pytest.skip("this kernel has no kprobes")
    with Child(tmp_path) as w:
        t = Tracer(["-e", "kprobe:do_sys_openat2 /pid == %d/ { @n = count(); "
                    "@f[func, str(uptr(arg1))] = count(); } "
                    "kretprobe:do_sys_openat2 /pid == %d/ { @fd[retval >= 0] = count(); "
                    "@h = hist(retval); }" % (w.pid, w.pid)])
        w.do("open", 17, 0)
        out, _ = t.stop()
    assert _value(out, "@n") == 17, out
    assert _value(out, "@f[do_sys_openat2, opened]") == 17, out
    assert _value(out, "@fd[1]") == 17, out


@pytest.mark.bpf
@pytest.mark.kprobes
@pytest.mark.guest_safe
def test_kprobe_wildcard_and_kretprobe_hist(tmp_path):
    if not _kprobes():
        pytest.skip("this kernel has no kprobes")
    with Child(tmp_path) as w:
        t = Tracer(["-e", "kprobe:do_sys_openat* /pid == %d/ { @[func] = count(); } "
                    "kretprobe:vfs_read /pid == %d/ { @r = hist(retval); }" % (w.pid, w.pid)])
        w.do("open", 9, 1)
        w.do("busy", 1)
        out, _ = t.stop()
    assert _value(out, "@[do_sys_openat2]") == 9 + 1, out     # busy opens /dev/zero
    assert re.search(r"^\[64K, 128K\)\s+\d+ \|@+", out, re.M), out


def test_kprobe_error_messages():
    if not _kprobes():
        pytest.skip("this kernel has no kprobes")
    r = _tinytrace(["-e", "kprobe:do_sys_opnat2 { }"])
    assert r.returncode == 2 and "did you mean 'do_sys_openat2'" in r.stderr, r.stderr


# -- kfunc (BPF trampolines) -----------------------------------------------------------------

@pytest.mark.bpf
@pytest.mark.guest_safe
def test_kfunc_kretfunc_and_path(tmp_path):
    """kfunc/kretfunc on the open path: ``func``, typed ``args``, ``retval`` and path()
    (d_path, which the kernel allows in security_file_open) for one process's opens."""
    if not _btf():
        pytest.skip("no BTF")
    from tinytrace.lang.probes.kfunc import check_fentry
    from tinytrace.kernel import btf
    f = btf.vmlinux().func("security_file_open")
    if f is None or check_fentry(f.id, False):
        pytest.skip("no BPF trampolines on this kernel")
    with Child(tmp_path) as w:
        t = Tracer(["-e", "kfunc:security_file_open /pid == %d/ { "
                    "@p[func, path(args->file->f_path, 256)] = count(); } "
                    "kretfunc:do_sys_openat2 /pid == %d/ { @r[retval >= 0, args.dfd] = "
                    "count(); }" % (w.pid, w.pid)])
        dirfd, *fds = w.do("open", 6, 1)
        out, _ = t.stop()
    assert _value(out, "@p[security_file_open, %s]" % os.path.join(str(tmp_path),
                                                                    "opened")) == 6, out
    assert _value(out, "@r[1, %d]" % dirfd) == 6, out


@pytest.mark.guest_safe
def test_kfunc_refused_without_trampolines():
    from tinytrace.lang.probes.kfunc import check_fentry
    from tinytrace.kernel import btf
    if not _btf():
        pytest.skip("no BTF")
    f = btf.vmlinux().func("vfs_read")
    if f is None or not check_fentry(f.id, False):
        pytest.skip("this kernel has BPF trampolines")
    r = _tinytrace(["-e", "kfunc:vfs_read { @ = count(); }"])
    assert r.returncode == 2, r.stderr
    first = r.stderr.splitlines()[0]
    assert "kfunc:vfs_read: this kernel cannot attach BPF trampolines" in first, first


# -- watchpoints ----------------------------------------------------------------------------

@pytest.mark.bpf
@pytest.mark.guest_safe
def test_watchpoint_counts_writes(tmp_path):
    """A u32 of a process written 100 times (ctypes), watched with -p: 100 hits (four
    bytes: 32-bit ARM watchpoints cover at most that)."""
    if not os.path.exists("/sys/bus/event_source/devices/breakpoint"):
        pytest.skip("no breakpoint PMU")
    with _held_python("import ctypes, sys\n"
                      "v = ctypes.c_uint32(0)\n"
                      "print(hex(ctypes.addressof(v)), flush=True)\n"
                      "sys.stdin.readline()\n"
                      "for i in range(1, 101):\n    v.value = i\n"
                      "print('done', flush=True); sys.stdin.readline()\n") as proc:
        addr = proc.stdout.readline().strip()
        try:
            t = Tracer(["-p", str(proc.pid), "-e", "watchpoint:%s:4:w { @[probe] = count(); }"
                        % addr])
        except AssertionError as e:
            # qemu's emulated Cortex-A15 (the armhf guest) offers the breakpoint PMU but
            # refuses every watchpoint; the tool's one line says so
            if os.uname().machine.startswith("arm") and "perf_event_open() (type 5" in str(e) \
                    and "Invalid argument" in str(e) and "Traceback" not in str(e):
                pytest.skip("this CPU refuses hardware watchpoints: %s" % str(e).strip())
            raise
        out = _go(proc, t, "done")
    assert _value(out, "@[watchpoint:%s:4:w]" % addr) == 100, out


def test_watchpoint_errors():
    for prog, frag in (("watchpoint:0x1001:8:w { }", "aligned to 8"),
                       ("watchpoint:0x1000:3:w { }", "1, 2, 4 or 8 bytes"),
                       ("watchpoint:0x1000:8:q { }", "mode is r, w, rw or x"),
                       ("watchpoint:main+1:8:w { }", "must be a number")):
        r = _tinytrace(["-e", prog])
        assert r.returncode == 2 and frag in r.stderr, (prog, r.stderr)


# -- hardware -------------------------------------------------------------------------------

def test_hardware_event_without_pmu_is_one_line():
    from tinytrace.kernel import hwevents
    if hwevents.has_pmu():
        pytest.skip("this machine has a PMU")
    r = _tinytrace(["-e", "hardware:cache-misses:1000 { @ = count(); }"])
    assert r.returncode == 2
    assert "no hardware performance counters" in r.stderr.splitlines()[0], r.stderr
    assert "software:cpu-clock" in r.stderr.splitlines()[0]


@pytest.mark.bpf
@pytest.mark.guest_safe
def test_hardware_event_samples_where_there_is_a_pmu(tmp_path):
    from tinytrace.kernel import hwevents
    if not hwevents.has_pmu():
        pytest.skip("no PMU here")
    with Child(tmp_path) as w:
        t = Tracer(["-e", "hardware:cpu-cycles:100000 /pid == %d/ { @n = count(); }"
                    % w.pid])
        w.do("busy", 1)
        out, _ = t.stop()
    assert _value(out, "@n") > 0, out


# -- BTF ------------------------------------------------------------------------------------

def _btf():
    return os.path.exists("/sys/kernel/btf/vmlinux")


@pytest.mark.bpf
@pytest.mark.btf
@pytest.mark.guest_safe
def test_rawtracepoint_args_from_btf():
    """``args.prev->pid`` on the raw sched_switch tracepoint is the switching thread."""
    if not _btf():
        pytest.skip("no BTF")
    r = _tinytrace(["-q", "-e", "rawtracepoint:sched_switch { "
                    "@[args.prev->pid == tid, args->next->pid != tid] = count(); "
                    "if (@n++ >= 50) { exit(); } }"])
    assert r.returncode == 0, r.stderr
    assert re.search(r"^@\[1, 1\]: \d+$", r.stdout, re.M), r.stdout
    assert not re.search(r"^@\[0, ", r.stdout, re.M), r.stdout


def test_rawtracepoint_args_without_btf_name_the_field():
    from tests.lang.fakeenv import FakeEnv
    from tinytrace.lang import compiler

    class NoBtf(FakeEnv):
        def btf(self):
            return None

    with pytest.raises(Exception) as e:
        compiler.check("rawtracepoint:sched_switch { @[args->prev] = count(); }",
                       "t.bt", NoBtf())
    msg = str(e.value.format() if hasattr(e.value, "format") else e.value)
    assert "args->prev needs the kernel's BTF" in msg, msg
    # argN and tracepoint args keep working without BTF
    compiler.check("rawtracepoint:sched_switch { @[arg1] = count(); } "
                   "tracepoint:sched:sched_switch { @[args->prev_pid] = count(); }",
                   "t.bt", NoBtf())


@pytest.mark.btf
@pytest.mark.guest_safe
def test_enum_constants_from_btf():
    if not _btf():
        pytest.skip("no BTF")
    r = _tinytrace(["-q", "-e", "BEGIN { printf(\"%d %d\\n\", TCP_ESTABLISHED, TCP_CLOSE); "
                    "exit(); }"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "7"], r.stdout


@pytest.mark.btf
@pytest.mark.guest_safe
def test_offsetof_from_btf():
    if not _btf():
        pytest.skip("no BTF")
    from tinytrace.kernel import btf
    b = btf.vmlinux()
    want = [b.member(b.find_struct("task_struct").id, "pid").offset,
            b.member(b.find_struct("sock_common").id, "skc_family").offset +
            b.member(b.find_struct("sock").id, "__sk_common").offset]
    r = _tinytrace(["-q", "-e", "BEGIN { printf(\"%d %d\\n\", offsetof(struct task_struct, "
                    "pid), offsetof(struct sock, __sk_common.skc_family)); exit(); }"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(w) for w in want], r.stdout
    r = _tinytrace(["-e", "BEGIN { print(offsetof(struct task_struct, pidd)); }"])
    assert r.returncode == 2 and "did you mean 'pid'" in r.stderr, r.stderr


@pytest.mark.btf
@pytest.mark.guest_safe
@pytest.mark.parametrize("event", ["sched:sched_switch", "sched:sched_process_exec",
                                   "sock:inet_sock_set_state", "task:task_rename"])
def test_btf_offsets_agree_with_tracepoint_formats(event):
    """The kernel describes each tracepoint record twice: the tracefs format file and the
    ``trace_event_raw_<event or class>`` struct in BTF.  Every field both name sits at the
    same offset."""
    if not _btf():
        pytest.skip("no BTF")
    from tinytrace.kernel import btf, tracefs
    from tinytrace.lang import btftypes
    cat, name = event.split(":")
    try:
        fmt = tracefs.event_format(cat, name)
    except Exception as e:
        pytest.skip("no %s: %s" % (event, e))
    b = btf.vmlinux()
    st = btftypes.find_struct(b, "trace_event_raw_" + name)
    if st is None:
        pytest.skip("no trace_event_raw_%s (an event class of another name)" % name)
    compared = 0
    for f in fmt.fields:
        m = btftypes.member(b, st, f.name)
        if m is None:
            continue
        assert m.offset == f.offset, (f.name, m.offset, f.offset)
        compared += 1
    assert compared >= 2, fmt.fields


# -- -d of the new probe kinds ---------------------------------------------------------------

@pytest.mark.guest_safe
def test_dump_of_probe_kinds_assembles_back(capsys, monkeypatch):
    """-d of a kprobe (canned kernel functions), uprobes and USDT: each program's text
    reads back to the same bytes."""
    from tests.lang.fakeenv import FakeEnv
    from tests.lang.test_dump import _sections
    from tinytrace.asm import assemble, link
    from tinytrace.lang import command, compiler
    monkeypatch.setattr(command, "make_env", lambda o, cpid=None: FakeEnv(
        params=o.params, unsafe=o.unsafe, cpid=cpid, pid=o.pid))
    progs = ["kprobe:vfs_read { @[func, arg2, kstack(4)] = count(); } "
             "kretprobe:vfs_* { @r[probe] = hist(retval); }"]
    if not _thumb("getpid"):
        progs.append("uprobe:libc:getpid { @[ustack(perf, 3), arg0, arg7] = count(); }")
    if _btf():
        progs.append("kfunc:vfs_read { @[args->count, args.file->f_pos, func] = count(); } "
                     "kretfunc:vfs_read { @r = hist(retval); } rawtracepoint:sched_switch "
                     "{ @s[args.prev->pid, TCP_CLOSE, offsetof(struct task_struct, pid)] = "
                     "count(); }")
    if os.path.exists(PYTHON_WITH_USDT):
        progs.append("usdt:%s:python:function__entry { @[str(arg1), arg2] = count(); }"
                     % PYTHON_WITH_USDT)
    made = []
    real = compiler.compile_program

    def keep(*args, **kw):
        made.append(real(*args, **kw))
        return made[-1]
    monkeypatch.setattr(compiler, "compile_program", keep)
    for text in progs:
        assert command.main(["-d", "-e", text]) == 0
        sections = _sections(capsys.readouterr().out)
        comp = made[-1]
        fds = dict((m.name, 100 + i) for i, m in enumerate(comp.all_maps()))
        assert len(sections) == len(comp.programs)
        for (header, text_), p in zip(sections.items(), comp.programs):
            assert link(assemble(text_), fds) == link(p.code, fds), header
