"""USDT: python:function__entry of /usr/bin/python3.11 counted exactly, its arguments read
through usdt_attach.arg_access, and the semaphore raised by the kernel or through
/proc/PID/mem; plus argument-access decoding for other operand kinds and architectures."""
import os

import pytest

from tinytrace.kernel import features, maps, progs, usdt, usdt_attach
from tinytrace.kernel.usdt import UsdtError

from . import bpfprogs as bp
from .workload import PYTHON_WITH_USDT, Child

pytestmark = pytest.mark.guest_safe


def _python_probe(name="function__entry"):
    if not os.path.exists(PYTHON_WITH_USDT):
        pytest.skip("no %s" % PYTHON_WITH_USDT)
    locs = usdt_attach.locations(PYTHON_WITH_USDT, "python", name)
    if not locs:
        pytest.skip("%s has no python:%s probe" % (PYTHON_WITH_USDT, name))
    try:
        usdt_attach.arg_accesses(locs[0])
    except UsdtError as e:
        pytest.skip(str(e))
    from tinytrace.kernel import uprobes
    if uprobes.is_thumb(PYTHON_WITH_USDT, locs[0].pc):
        pytest.skip("%s is Thumb code: 32-bit ARM uprobes cannot probe it" % PYTHON_WITH_USDT)
    return locs


def _lineno_counter(m, pid, probe):
    """Count function__entry hits of ``pid`` whose third argument (the line number) is the
    workload's tt_target's; record the first two (pointers to the file and function
    names) in slots 1 and 2."""
    from tinytrace.asm import Exit, JNe, Label, Mov, R0, R1, R6, R7, Lsh, Rsh, link
    acc = usdt_attach.arg_accesses(probe)
    return acc, lambda line: link(
        [Mov.Reg(R6, R1)] + bp._pid_check(pid) + bp.load_usdt(R7, acc[2]) +
        [Lsh.Imm(R7, 32), Rsh.Imm(R7, 32), JNe.Imm(R7, line, "out")] + bp._bump(0) +
        bp.load_usdt(R7, acc[0]) + bp._store(1, R7) +
        bp.load_usdt(R7, acc[1]) + bp._store(2, R7) +
        [Label("out"), Mov.Imm(R0, 0), Exit()], maps={"m": m.fd})


def _read_cstr(pid, addr):
    fd = os.open("/proc/%d/mem" % pid, os.O_RDONLY)
    try:
        data = os.pread(fd, 256, addr)
    finally:
        os.close(fd)
    return data.split(b"\0")[0].decode()


@pytest.mark.bpf
@pytest.mark.parametrize("mode", ["auto", "kernel", "memory", "tracefs"])
def test_function_entry_counts_exact(tmp_path, mode):
    locs = _python_probe()
    f = features.probe()
    saved = f.uprobe_pmu
    from tinytrace.kernel import uprobes
    if mode == "tracefs":
        from tinytrace.kernel import dynevents
        if not dynevents.supported("uprobe"):
            pytest.skip("no uprobe_events")
        f.override("uprobe_pmu", None)
    if mode in ("kernel", "tracefs") and not uprobes.ref_ctr_supported():
        f.override("uprobe_pmu", saved)
        pytest.skip("the kernel cannot raise semaphores")
    sem_mode = "kernel" if mode == "tracefs" else mode
    try:
        with Child(tmp_path, PYTHON_WITH_USDT) as w, maps.Map.create("array", 4, 8, 4) as m:
            line, = w.do("call", 1)
            probe = locs[0]
            acc, make = _lineno_counter(m, w.pid, probe)
            sem_addr = usdt.semaphore_address(w.pid, probe)
            with progs.load(make(line), "kprobe", "t_usdt") as p:
                atts = [usdt_attach.attach(p, loc, pid=w.pid, semaphore=sem_mode)
                        for loc in locs]
                try:
                    if mode == "auto":
                        expect = "kernel" if uprobes.ref_ctr_supported() else "memory"
                        assert atts[0].semaphore_mode == expect
                    if probe.semaphore:
                        assert usdt_attach.MemorySemaphore(w.pid, sem_addr).value() >= 1
                    w.do("call", 250)
                    assert bp.value(m, 0) == 250
                    w.do("call", 3)
                    assert bp.value(m, 0) == 253
                    assert _read_cstr(w.pid, bp.value(m, 1)) == "<string>"
                    assert _read_cstr(w.pid, bp.value(m, 2)) == "tt_target"
                finally:
                    for a in atts:
                        a.close()
            if probe.semaphore:
                assert usdt_attach.MemorySemaphore(w.pid, sem_addr).value() == 0
            w.do("call", 10)
            assert bp.value(m, 0) == 253
    finally:
        f.override("uprobe_pmu", saved)


@pytest.mark.bpf
def test_memory_semaphore_needs_a_pid():
    locs = _python_probe()
    with maps.Map.create("array", 4, 8, 4) as m, \
            progs.load(bp.counter(m.fd, 1), "kprobe", "t_nopid") as p:
        with pytest.raises(UsdtError) as e:
            usdt_attach.attach(p, locs[0], pid=None, semaphore="memory")
    assert "-p PID" in str(e.value) and "\n" not in str(e.value)


def test_listing_and_locations():
    locs = _python_probe()
    names = usdt_attach.names(PYTHON_WITH_USDT)
    assert "python:function__entry" in names and "python:function__return" in names
    assert all(p.provider == "python" for p in locs)
    both = usdt_attach.locations(PYTHON_WITH_USDT, "python", "function__*")
    assert set(p.name for p in both) == {"function__entry", "function__return"}
    assert usdt_attach.locations(PYTHON_WITH_USDT, "nosuch", None) == []


# -- argument access without a kernel ------------------------------------------------------

def _arg(text, arch):
    return usdt.parse_arg(text, arch)


class _FakeProbe(object):
    def __init__(self, arch, path=None):
        self.arch, self.path = arch, path
        self.provider, self.name = "p", "n"


def test_x86_64_operands():
    p = _FakeProbe("x86_64")
    assert usdt_attach.arg_access(_arg("-4@%eax", "x86_64"), p) == ("reg", 80, 4, True)
    assert usdt_attach.arg_access(_arg("8@%rdi", "x86_64"), p) == ("reg", 112, 8, False)
    assert usdt_attach.arg_access(_arg("1@%ah", "x86_64"), p) == ("reg", 81, 1, False)
    assert usdt_attach.arg_access(_arg("-4@-20(%rbp)", "x86_64"), p) == \
        ("mem", 32, 8, -20, 4, True)
    assert usdt_attach.arg_access(_arg("8@8(%rax,%rdx,4)", "x86_64"), p) == \
        ("mem_index", 80, 8, 96, 8, 4, 8, 8, False)
    assert usdt_attach.arg_access(_arg("4@$-7", "x86_64"), p) == ("const", -7, 4, False)
    assert usdt_attach.arg_access(_arg("-4@112(%rsp)", "x86_64"), p) == \
        ("mem", 152, 8, 112, 4, True)


def test_aarch64_and_compat_arm(monkeypatch):
    from tinytrace.kernel import regs
    monkeypatch.setattr(regs, "kernel_arch", lambda raw=None: "aarch64")
    p = _FakeProbe("aarch64")
    assert usdt_attach.arg_access(_arg("-4@x1", "aarch64"), p) == ("reg", 8, 4, True)
    assert usdt_attach.arg_access(_arg("8@[sp, 16]", "aarch64"), p) == \
        ("mem", 248, 8, 16, 8, False)
    # a 32-bit ARM program on the arm64 kernel: r-registers in 8-byte slots
    p32 = _FakeProbe("arm")
    assert usdt_attach.arg_access(_arg("4@r3", "arm"), p32) == ("reg", 24, 4, False)
    assert usdt_attach.arg_access(_arg("-4@[r11, #-8]", "arm"), p32) == \
        ("mem", 88, 4, -8, 4, True)
    assert usdt_attach.arg_access(_arg("4@[sp]", "arm"), p32) == ("mem", 104, 4, 0, 4, False)


def test_big_endian_narrow_register(monkeypatch):
    from tinytrace.kernel import regs
    monkeypatch.setattr(regs, "kernel_arch", lambda raw=None: "s390x")
    p = _FakeProbe("s390x")
    # the low 4 bytes of an 8-byte big-endian slot are its last 4
    assert usdt_attach.arg_access(_arg("-4@%r2", "s390x"), p) == ("reg", 44, 4, True)
    assert usdt_attach.arg_access(_arg("8@%r2", "s390x"), p) == ("reg", 40, 8, False)
    assert usdt_attach.arg_access(_arg("4@160(%r15)", "s390x"), p) == \
        ("mem", 144, 8, 160, 4, False)


def test_global_of_pie_needs_pid():
    """A global operand of a position-independent file is at its address plus the file's
    load bias in that process: unknown without a PID."""
    import subprocess
    import time
    from tinytrace.kernel import elf
    sleep = "/bin/sleep"
    if not os.path.exists(sleep) or not elf.open(sleep).is_dyn or \
            elf.open(sleep).arch != "x86_64":
        pytest.skip("needs a PIE x86_64 /bin/sleep")
    a = _arg("4@counter(%rip)", "x86_64")
    a.address = 0x1000
    p = _FakeProbe("x86_64", sleep)
    with pytest.raises(UsdtError) as e:
        usdt_attach.arg_access(a, p, pid=None, index=0)
    assert "give a PID" in str(e.value) and "\n" not in str(e.value)
    child = subprocess.Popen([sleep, "30"])
    other = subprocess.Popen(["/bin/cat"], stdin=subprocess.PIPE)
    try:
        for _ in range(200):
            with open("/proc/%d/maps" % child.pid) as fh:
                text = fh.read()
            if sleep in text or "/usr/bin/sleep" in text:
                break
            time.sleep(0.01)
        first = [line.split() for line in text.splitlines()
                 if line.split()[-1].endswith("/sleep") and int(line.split()[2], 16) == 0][0]
        start = int(first[0].split("-")[0], 16)
        bias = start - elf.open(sleep).offset_to_vaddr(0)
        assert usdt_attach.arg_access(a, p, pid=child.pid) == ("addr", 0x1000 + bias, 4, False)
        with pytest.raises(UsdtError):           # cat does not map sleep
            usdt_attach.arg_access(a, p, pid=other.pid)
    finally:
        child.kill()
        child.wait()
        other.kill()
        other.wait()
        other.stdin.close()
