"""tracefs: finding it, parsing format files, listing events, writing safely."""
import os

import pytest

from tinytrace.kernel import tracefs

SCHED_SWITCH = """\
name: sched_switch
ID: 372
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;
\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;
\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;
\tfield:int next_prio;\toffset:60;\tsize:4;\tsigned:1;

print fmt: "prev_comm=%s prev_pid=%d", REC->prev_comm, REC->prev_pid
"""

OPENAT = """\
name: sys_enter_openat
ID: 782
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;

print fmt: "dfd: 0x%08lx, filename: 0x%08lx", ((unsigned long)(REC->dfd)), ((unsigned long)(REC->filename))
"""

IRQ = """\
name: irq_handler_entry
ID: 225
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int irq;\toffset:8;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;

print fmt: "irq=%d name=%s", REC->irq, __get_str(name)
"""

# older kernels had no "signed:" on some lines; newer ones use __rel_loc and symbolic lengths
ODD = """\
name: odd
ID: 7
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;
\tfield:__rel_loc char[] msg;\toffset:8;\tsize:4;\tsigned:0;
\tfield:char comm[TASK_COMM_LEN];\toffset:12;\tsize:16;\tsigned:0;
\tfield:u32 ids[4];\toffset:28;\tsize:16;\tsigned:0;
\tfield:__data_loc u64[] addrs;\toffset:44;\tsize:4;\tsigned:0;

print fmt: "x"
"""


def check_sched_switch(fmt, long_size=8):
    assert fmt.name == "sched_switch"
    assert [f.name for f in fmt.common_fields] == ["common_type", "common_flags",
                                                   "common_preempt_count", "common_pid"]
    names = [f.name for f in fmt.fields]
    assert names == ["prev_comm", "prev_pid", "prev_prio", "prev_state", "next_comm",
                     "next_pid", "next_prio"]
    comm = fmt.field("prev_comm")
    # (char arrays say signed:1 on some kernels, e.g. x86_64 6.1, and signed:0 on others)
    assert (comm.type, comm.offset, comm.size, comm.array_len) == ("char", 8, 16, 16)
    assert comm.is_string and comm.element_size == 1
    state = fmt.field("prev_state")
    assert (state.type, state.offset, state.size, state.signed) == ("long", 32, long_size, True)
    assert fmt.field("next_pid").type == "pid_t"
    assert fmt.field("next_pid").offset == 48 + long_size
    assert fmt.size == 56 + long_size


def check_openat(fmt):
    dfd = fmt.field("dfd")
    # the declared type says int, the kernel says 8 unsigned bytes: the kernel wins
    assert (dfd.type, dfd.offset, dfd.size, dfd.signed) == ("int", 16, 8, False)
    fn = fmt.field("filename")
    assert (fn.type, fn.offset, fn.size) == ("const char *", 24, 8)
    assert fn.is_pointer and not fn.is_string and fn.array_len is None
    assert fmt.field("__syscall_nr").size == 4
    assert fmt.field("mode").offset == 40


def check_irq(fmt):
    name = fmt.field("name")
    assert name.data_loc and not name.rel_loc
    assert (name.offset, name.size, name.element_type) == (12, 4, "char")
    assert name.is_string
    assert fmt.field("irq").signed


def test_parse_embedded_formats():
    check_sched_switch(tracefs.parse_format(SCHED_SWITCH, "sched"))
    f = tracefs.parse_format(OPENAT, "syscalls")
    assert f.id == 782 and f.category == "syscalls"
    check_openat(f)
    check_irq(tracefs.parse_format(IRQ, "irq"))


def test_parse_odd_lines():
    f = tracefs.parse_format(ODD)
    assert f.common_fields[0].signed is False
    msg = f.field("msg")
    assert msg.rel_loc and not msg.data_loc and msg.is_string
    comm = f.field("comm")
    assert comm.array_len == 16 and comm.is_string
    ids = f.field("ids")
    assert ids.array_len == 4 and ids.element_size == 4 and not ids.is_string
    addrs = f.field("addrs")
    assert addrs.data_loc and addrs.element_type == "u64" and not addrs.is_string


def test_parse_field_rejects_other_lines():
    assert tracefs.parse_field("print fmt: \"x\"") is None
    assert tracefs.parse_field("") is None


needs_tracefs = pytest.mark.skipif(tracefs.find() is None, reason="tracefs not mounted")


@needs_tracefs
def test_real_formats():
    from tinytrace.kernel import arch
    long_size = arch.kernel_long_size()   # `long prev_state`: 4 bytes on 32-bit kernels
    check_sched_switch(tracefs.event_format("sched", "sched_switch"), long_size)
    check_irq(tracefs.event_format("irq", "irq_handler_entry"))
    if tracefs.exists("syscalls", "sys_enter_openat"):
        f = tracefs.event_format("syscalls", "sys_enter_openat")
        assert f.id == tracefs.event_id("syscalls", "sys_enter_openat")
        # syscall arguments are longs, after the int __syscall_nr padded to a long
        fn = f.field("filename")
        assert (fn.offset, fn.size) == (8 + 2 * long_size, long_size)


@needs_tracefs
def test_every_format_on_this_machine_parses():
    bad = []
    count = 0
    for cat, name in tracefs.all_events():
        p = tracefs.path("events", cat, name, "format")
        try:
            with open(p) as fh:
                text = fh.read()
        except OSError:
            continue
        fmt = tracefs.parse_format(text, cat)
        count += 1
        declared = text.count("field:")
        got = len(fmt.fields) + len(fmt.common_fields)
        if got != declared or any(not f.name for f in fmt.fields):
            bad.append("%s:%s" % (cat, name))
    assert count > 100
    assert bad == []


@needs_tracefs
def test_missing_event():
    with pytest.raises(tracefs.EventNotFound, match="nosuch:event"):
        tracefs.event_id("nosuch", "event")
    with pytest.raises(tracefs.EventNotFound):
        tracefs.event_format("nosuch", "event")


@needs_tracefs
def test_event_globs():
    got = tracefs.events("sched:sched_switch")
    assert got == [("sched", "sched_switch")]
    many = tracefs.events("sched:sched_*")
    assert ("sched", "sched_wakeup") in many and all(c == "sched" for c, _ in many)
    anycat = tracefs.events("irq_handler_*")
    assert ("irq", "irq_handler_entry") in anycat
    assert tracefs.events("nosuch:*") == []


@needs_tracefs
def test_event_listing_without_available_events(monkeypatch):
    real = tracefs.path
    monkeypatch.setattr(tracefs, "path", lambda *p: real(*p) if p != ("available_events",)
                        else "/nonexistent/available_events")
    got = tracefs.events("sched:sched_switch")
    assert got == [("sched", "sched_switch")]


@needs_tracefs
def test_root_is_found_from_mounts():
    r = tracefs.root()
    assert os.path.isdir(os.path.join(r, "events"))
    assert r in [mp for mp, fs in tracefs._mounts() if fs in ("tracefs", "debugfs")] or \
        os.path.isdir(r)


def test_write_appends_without_create_or_truncate(tmp_path):
    p = tmp_path / "kprobe_events_like"
    p.write_text("first\n")
    tracefs.write(str(p), "second\n")
    assert p.read_text() == "first\nsecond\n"
    with pytest.raises(FileNotFoundError):
        tracefs.write(str(tmp_path / "absent"), "x")   # never creates files


def test_mount_needs_root(monkeypatch):
    from tinytrace.errors import PrivilegeError
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PrivilegeError, match="mount -t tracefs"):
        tracefs._mount()


UNSHARE = "/usr/bin/unshare"

MOUNT_CHILD = r"""
import subprocess, sys
sys.path.insert(0, %(root)r)
for mp in ("/sys/kernel/tracing", "/sys/kernel/debug"):
    subprocess.call(["umount", mp], stderr=subprocess.DEVNULL)
from tinytrace.kernel import tracefs
assert tracefs.find() is None, tracefs.find()
r = tracefs.root()
mounted = [l.split()[1] for l in open("/proc/mounts") if l.split()[2] == "tracefs"]
print(r, mounted, tracefs.event_id("sched", "sched_switch") > 0)
"""


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(UNSHARE),
                    reason="needs root and unshare(1)")
def test_mounts_tracefs_when_absent():
    """In a private mount namespace without tracefs, root() mounts it."""
    import subprocess
    import sys
    root_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([UNSHARE, "-m", "--propagation", "private", sys.executable, "-c",
                          MOUNT_CHILD % {"root": root_dir}], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    if out.returncode != 0 and "unshare failed" in out.stderr:
        pytest.skip("cannot create a mount namespace here: " + out.stderr.strip())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "%s ['%s'] True" % (tracefs.DEFAULT, tracefs.DEFAULT)
