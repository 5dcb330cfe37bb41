"""Stacks: bpftrace's and BCC's text for symbolized frames, stack-id errors, the short-stack
note, and a real profile of a busy python3.11 child (user frames named from the
interpreter's symbols, kernel frames from kallsyms)."""
import errno
import os
import platform
import struct
import time

import pytest

from tinytrace.kernel import attach, maps, perf, progs, stacks
from tinytrace.kernel.stacks import Frame

from . import bpfprogs as bp
from .workload import PYTHON_WITH_USDT, Child

pytestmark = pytest.mark.guest_safe


def _kframes():
    return [Frame(0xffffffff81000010, "do_nanosleep", 16, None, True),
            Frame(0xffffffff81000200, "hrtimer_nanosleep", 0, None, True),
            Frame(0xffffffffc0001234, "ext4_sync_fs", 0x34, "ext4", True),
            Frame(0xffffffff81999999, None, None, None, True)]


def _uframes():
    return [Frame(0x55d0c0de1000, "main_loop", 42, "/usr/bin/tt-demo", False),
            Frame(0x7f0000001000, None, None, "/usr/lib/libfoo.so", False),
            Frame(0x7f0000002000, "__libc_start_main", 243, "/lib/libc.so.6", False)]


def test_bpftrace_default_mode():
    text = stacks.format_bpftrace(_kframes())
    assert text == ("\n"
                    "        do_nanosleep+16\n"
                    "        hrtimer_nanosleep+0\n"
                    "        ext4_sync_fs+52\n"
                    "        0xffffffff81999999\n")
    assert stacks.format_bpftrace(_uframes(), indent=4).splitlines()[1:] == [
        "    main_loop+42", "    0x7f0000001000", "    __libc_start_main+243"]


def test_bpftrace_perf_and_raw_modes():
    assert stacks.format_bpftrace(_kframes()[:2], "perf") == (
        "\n\tffffffff81000010 do_nanosleep+16\n\tffffffff81000200 hrtimer_nanosleep+0\n")
    assert stacks.format_bpftrace(_uframes(), "perf") == (
        "\n\t55d0c0de1000 main_loop+42 (/usr/bin/tt-demo)"
        "\n\t7f0000001000 0x7f0000001000 ([unknown])"
        "\n\t7f0000002000 __libc_start_main+243 (/lib/libc.so.6)\n")
    assert stacks.format_bpftrace(_kframes()[:2], "raw") == "\nffffffff81000010\nffffffff81000200\n"
    assert stacks.format_bpftrace([0x10, 0x20], "raw") == "\n10\n20\n"
    assert stacks.bpftrace_frames(_kframes()[:1]) == ["do_nanosleep+16"]
    with pytest.raises(ValueError):
        stacks.format_bpftrace([], "fancy")


def test_bcc_lines_and_entry():
    k, u = _kframes()[:3], _uframes()
    assert stacks.bcc_lines(kernel=k, user=u, delimited=True) == [
        "    do_nanosleep", "    hrtimer_nanosleep", "    ext4_sync_fs", "    --",
        "    main_loop", "    [unknown]", "    __libc_start_main"]
    assert stacks.bcc_lines(kernel=k[:1], show_offset=True, show_module=True) == [
        "    do_nanosleep+0x10 [kernel]"]
    assert stacks.bcc_lines(kernel=k[2:3], show_module=True) == ["    ext4_sync_fs [ext4]"]
    assert stacks.bcc_lines(user=u[:1], show_offset=True, show_module=True) == [
        "    main_loop+0x2a [tt-demo]"]
    assert stacks.bcc_lines(kernel=[], user=u[:1], delimited=True) == ["    main_loop"]
    assert stacks.bcc_lines(kernel_missing=True, user=u[:1], delimited=True) == [
        "    [Missed Kernel Stack]", "    main_loop"]
    assert stacks.bcc_lines(kernel=k[:1], annotate=True) == ["    do_nanosleep_[k]"]
    text = stacks.bcc_entry("tt-demo", 4242, 17, kernel=k[:1], user=u[:1], delimited=True)
    assert text == ("    do_nanosleep\n    --\n    main_loop\n"
                    "    -                tt-demo (4242)\n        17\n\n")


def test_bcc_folded():
    k, u = _kframes()[:2], _uframes()
    assert stacks.bcc_folded("tt-demo", 5, kernel=k, user=u) == (
        "tt-demo;__libc_start_main;[unknown];main_loop;hrtimer_nanosleep;do_nanosleep 5")
    assert stacks.bcc_folded("tt-demo", 5, kernel=k, user=u, delimited=True) == (
        "tt-demo;__libc_start_main;[unknown];main_loop;-;hrtimer_nanosleep;do_nanosleep 5")
    assert stacks.bcc_folded("x", 1, kernel=k[:1], user_missing=True, delimited=True) == (
        "x;[Missed User Stack];do_nanosleep 1")
    assert stacks.bcc_folded("x", 2, user=u[:1]) == "x;main_loop 2"


def test_names_from_files_are_escaped():
    f = Frame(0x1000, "evil\x1b[2Jname\n", 1, "/tmp/x\ty", False)
    assert f.bpftrace(perf=True) == "evil\\x1b[2Jname\\x0a+1 (/tmp/x\\x09y)"
    assert f.bcc() == "evil\\x1b[2Jname\\x0a"
    assert "\x1b" not in stacks.bcc_folded("co\x07mm", 1, user=[f])


def test_stack_id_errors():
    efault = (1 << 64) - errno.EFAULT
    eexist = (1 << 64) - errno.EEXIST
    assert stacks.stack_id_errno(7) == 0
    assert stacks.stack_id_errno(efault) == errno.EFAULT
    assert stacks.stack_absent(efault) and not stacks.stack_missing(efault)
    assert stacks.stack_missing(eexist) and not stacks.stack_absent(eexist)
    assert stacks.stack_missing(-errno.ENOMEM)
    assert stacks.stack_id_errno((1 << 32) - errno.EFAULT, bits=32) == errno.EFAULT

    class FakeMap(object):
        def stack(self, sid):
            return {3: [1, 2, 3]}.get(sid)
    t = stacks.StackTable(FakeMap())
    assert t.ips(3) == [1, 2, 3] and t.ips(3, max_frames=2) == [1, 2]
    assert t.ips(efault) == [] and t.ips(eexist) is None and t.ips(4) is None


def test_short_stacks_note_once():
    s = stacks.ShortStacks(min_stacks=3)
    one = [Frame(1, "f", 0, "/usr/bin/python3.11", False)]
    s.observe(one)
    s.observe([])                      # no stack: not counted
    assert s.note() is None            # too few yet
    s.observe(one)
    s.observe(one + one + one)
    note = s.note()
    assert note.startswith("note: 2 of 3 user stacks have 2 frames or fewer")
    assert "python3.11" in note and "frame pointers" in note
    assert s.note() is None
    deep = stacks.ShortStacks(min_stacks=1)
    deep.observe(one * 5)
    assert deep.note() is None


@pytest.mark.bpf
def test_profile_of_a_busy_python(tmp_path):
    """Sample a CPU-bound python3.11 child with kernel and user stack ids; symbolize."""
    python = PYTHON_WITH_USDT if os.path.exists(PYTHON_WITH_USDT) else None
    if python is None:
        pytest.skip("no %s" % PYTHON_WITH_USDT)
    from tinytrace.kernel import ksyms
    if ksyms.kallsyms().hidden:
        pytest.skip("kernel addresses are hidden")
    with Child(tmp_path, python) as w, \
            maps.Map.create("stack_trace", 4, 8 * 127, 1024) as st, \
            maps.Map.create("hash", 16, 8, 4096) as pairs:
        with progs.load(bp.sampler(st.fd, pairs.fd, w.pid), "perf_event", "t_prof") as p:
            g = attach.per_cpu(p, perf.software(perf.SW_CPU_CLOCK, sample_freq=997))
            try:
                deadline = time.monotonic() + 120
                while True:
                    w.do("busy", 1)
                    items = pairs.items()
                    n = sum(struct.unpack("=Q", v)[0] for _, v in items)
                    # samples in the kernel (the /dev/zero reads) may be rarer than the
                    # user-space ones: keep going until both kinds are in (a valid stack
                    # id is small; a failed one is a negative errno)
                    kernel = any(struct.unpack("=QQ", k)[0] < 1 << 32 for k, _ in items)
                    if (n >= 40 and kernel) or time.monotonic() > deadline:
                        break
            finally:
                g.close()
            table = stacks.StackTable(st)
            users, kernels = [], []
            for key, _ in pairs.items():
                kid, uid = struct.unpack("=QQ", key)
                k = table.kernel(kid)
                u = table.user(uid, w.pid)
                if k:
                    kernels.append(k)
                if u:
                    users.append(u)
    assert users, "no user stacks sampled"
    names = set(f.name for u in users for f in u if f.name)
    mods = set(os.path.basename(f.module or "") for u in users for f in u)
    assert any(n.startswith(("_PyEval_EvalFrameDefault", "PyEval", "_Py", "Py")) for n in
               names), names
    assert any(m.startswith(("python3", "libpython3")) for m in mods), mods
    assert kernels, "no kernel stacks sampled (the child reads /dev/zero)"
    k = ksyms.kallsyms()
    floor = _lowest_kernel_address()
    for frames in kernels:
        assert frames[0].name is not None, "kernel address 0x%x not in kallsyms" % frames[0].addr
        for f in frames:
            if f.addr < floor:
                # 32-bit ARM's unwinder may end a stack taken in a system call with the
                # caller's user-space address (seen in the armhf guest): not a kernel
                # address, so no kernel symbol, printed as an address (as BCC and bpftrace do)
                assert platform.machine().startswith("arm"), "0x%x in a kernel stack" % f.addr
                continue
            assert f.name is not None, "kernel address 0x%x not in kallsyms" % f.addr
            assert k.lookup(f.name) is not None
    named = [u for u in users if u[0].name]
    text = stacks.format_bpftrace(named[0])
    assert text.startswith("\n        %s+%d\n" % (named[0][0].name, named[0][0].offset))
    folded = stacks.bcc_folded("python3.11", 1, kernel=kernels[0], user=named[0],
                               delimited=True)
    assert folded.startswith("python3.11;") and ";-;" in folded


def _lowest_kernel_address():
    """The lowest address /proc/kallsyms lists (kernel text and data start there)."""
    low = None
    with open("/proc/kallsyms") as f:
        for line in f:
            a = int(line.split(None, 1)[0], 16)
            if a and (low is None or a < low):
                low = a
    return low or 0
