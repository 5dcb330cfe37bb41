"""ABI name tables (tinytrace.kernel.abi).

Facts checked here come from the kernel's syscall tables (arch/*/syscall*.tbl,
scripts/syscall.tbl) and UAPI headers: x86_64 read 0, execve 59, openat 257, clone3 435;
arm64 openat 56, execve 221; arm EABI execve 11, openat 322; mips n64 read 5000; ppc
switch_endian 363; errno and signal numbers of asm-generic and mips; capability.h;
tcp_states.h; interrupt.h's softirq vectors; blk_fill_rwbs's letters.
"""
import ast
import os

import pytest

from tinytrace.kernel import abi

ABI_DIR = os.path.dirname(abi.__file__)
ARCHES = ["x86_64", "i386", "aarch64", "riscv64", "loongarch64", "arm", "ppc64le", "s390x",
          "mips64", "mips"]


def _literal_keys(module_file, var):
    """Keys of a dict literal as written in the source (a dict would hide duplicates)."""
    tree = ast.parse(open(os.path.join(ABI_DIR, module_file)).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == var:
            return [k.value if hasattr(k, "value") else k.n for k in node.value.keys]
    raise AssertionError("%s not in %s" % (var, module_file))


@pytest.mark.parametrize("module", sorted(f for f in os.listdir(ABI_DIR)
                                          if f.startswith("syscalls_") and f.endswith(".py")))
def test_syscall_modules_have_no_duplicate_numbers(module):
    keys = _literal_keys(module, "NAMES")
    assert len(keys) == len(set(keys)) and len(keys) > 300


@pytest.mark.parametrize("arch", ARCHES)
def test_every_table_is_one_to_one(arch):
    table = abi.syscall_table(arch)
    assert len(set(table.values())) == len(table), "a name appears twice"
    assert all(isinstance(n, int) and n >= 0 for n in table)
    # every table knows the common calls, and the reverse lookup agrees
    for name in ("read", "write", "close", "execve", "openat", "clone3", "bpf",
                 "perf_event_open", "listns"):
        nr = abi.syscall_nr(name, arch)
        assert nr is not None, (arch, name)
        assert abi.syscall_name(nr, arch) == name


@pytest.mark.parametrize("arch,nr,name", [
    ("x86_64", 0, "read"), ("x86_64", 59, "execve"), ("x86_64", 257, "openat"),
    ("x86_64", 435, "clone3"), ("x86_64", 321, "bpf"), ("x86_64", 298, "perf_event_open"),
    ("x86_64", 335, "uretprobe"), ("x86_64", 451, "cachestat"), ("x86_64", 470, "listns"),
    ("amd64", 62, "kill"),
    ("aarch64", 56, "openat"), ("aarch64", 221, "execve"), ("aarch64", 280, "bpf"),
    ("aarch64", 63, "read"), ("aarch64", 38, "renameat"), ("aarch64", 163, "getrlimit"),
    ("arm64", 435, "clone3"),
    ("riscv64", 56, "openat"), ("riscv64", 258, "riscv_hwprobe"),
    ("riscv64", 259, "riscv_flush_icache"),
    ("loongarch64", 221, "execve"), ("loongarch64", 79, "newfstatat"),
    ("arm", 322, "openat"), ("arm", 11, "execve"), ("arm", 386, "bpf"), ("armv7l", 3, "read"),
    ("arm", 0xF0005, "set_tls"),
    ("i386", 11, "execve"), ("i386", 295, "openat"), ("i686", 357, "bpf"),
    ("ppc64le", 11, "execve"), ("ppc64le", 286, "openat"), ("ppc64le", 361, "bpf"),
    ("ppc64le", 363, "switch_endian"),
    ("s390x", 11, "execve"), ("s390x", 288, "openat"), ("s390x", 351, "bpf"),
    ("mips64", 5000, "read"), ("mips64", 5057, "execve"), ("mips64", 5247, "openat"),
    ("mips64", 5470, "listns"),
    ("mips", 4003, "read"), ("mips", 4011, "execve"), ("mips", 4288, "openat"),
])
def test_syscall_spot_checks(arch, nr, name):
    assert abi.syscall_name(nr, arch) == name
    assert abi.syscall_nr(name, arch) == nr


def test_generic_table_differences():
    assert abi.syscall_name(38, "riscv64") is None          # no renameat on riscv
    assert abi.syscall_name(38, "loongarch64") is None
    assert abi.syscall_name(163, "loongarch64") is None     # nor getrlimit
    assert abi.syscall_name(258, "aarch64") is None
    assert abi.syscall_name(9999, "x86_64") is None
    assert abi.syscall_name(9999, "x86_64", default="[unknown: 9999]") == "[unknown: 9999]"
    assert abi.syscall_nr("sys_openat", "x86_64") == 257
    assert abi.syscall_nr("no_such_call", "x86_64") is None


def test_arch_names():
    assert abi.normalize_arch("armv6l") == "arm"
    assert abi.normalize_arch("AARCH64") == "aarch64"
    assert abi.normalize_arch("ppc64") == "ppc64le"
    with pytest.raises(ValueError):
        abi.normalize_arch("vax")
    assert abi.machine() in ARCHES
    # the running kernel's table is the default
    assert abi.syscall_table() is abi.syscall_table(os.uname().machine)


def test_errno():
    assert abi.errno_name(2) == "ENOENT" and abi.errno_name(-2) == "ENOENT"
    assert abi.errno_message(-13) == "Permission denied"
    assert abi.errno_name(11) == "EAGAIN"
    assert abi.errno_nr("EWOULDBLOCK") == 11
    assert abi.errno_name(95) == "EOPNOTSUPP"
    assert abi.errno_name(133) == "EHWPOISON"
    assert abi.errno_name(524) == "ENOTSUPP"                # kernel-internal
    assert "not supported" in abi.errno_message(524)
    assert abi.errno_name(512) == "ERESTARTSYS"
    assert abi.errno_name(58) is None
    assert abi.errno_name(58, "ppc64le") == "EDEADLOCK"
    assert abi.errno_name(35, "mips") == "ENOMSG"
    assert abi.errno_name(1133, "mips64") == "EDQUOT"
    assert abi.errno_message(1133, "mips64") == "Disk quota exceeded"
    assert abi.errno_nr("EDQUOT", "mips") == 1133
    assert abi.errno_name(4000) is None


def test_errno_tables_have_no_duplicates():
    for var in ("GENERIC", "MIPS", "SPARC", "ALPHA"):
        keys = _literal_keys("errnos.py", var)
        assert len(keys) == len(set(keys)), var
    from tinytrace.kernel.abi import errnos
    assert all(name in errnos.MESSAGES for name in errnos.GENERIC.values())
    assert all(name in errnos.MESSAGES for name in errnos.MIPS.values())


def test_signals():
    assert abi.signal_name(9) == "SIGKILL"
    assert abi.signal_name(17) == "SIGCHLD"
    assert abi.signal_name(18, "mips") == "SIGCHLD"
    assert abi.signal_name(10, "mips") == "SIGBUS"
    assert abi.signal_name(34) == "SIGRTMIN"
    assert abi.signal_name(35) == "SIGRTMIN+1"
    assert abi.signal_name(49) == "SIGRTMIN+15"
    assert abi.signal_name(50) == "SIGRTMAX-14"
    assert abi.signal_name(64) == "SIGRTMAX"
    assert abi.signal_name(65) is None
    assert abi.signal_name(128, "mips") == "SIGRTMAX"
    assert abi.signal_name(32) == "SIG32"
    assert abi.signal_nr("TERM") == 15
    assert abi.signal_nr("sigchld", "mips") == 18
    assert abi.signal_nr("SIGIOT") == 6
    assert abi.signal_nr("SIGRTMIN+3") == 37
    for var in ("GENERIC", "MIPS", "SPARC", "ALPHA"):
        keys = _literal_keys("signals.py", var)
        assert len(keys) == len(set(keys)) == 31, var


def test_caps_tcp_softirq_af():
    from tinytrace.kernel.abi import caps
    assert len(caps.NAMES) == 41 == len(set(caps.NAMES))
    assert abi.cap_name(0) == "CAP_CHOWN"
    assert abi.cap_name(21) == "CAP_SYS_ADMIN"
    assert abi.cap_name(39) == "CAP_BPF"
    assert abi.cap_name(40) == "CAP_CHECKPOINT_RESTORE"
    assert abi.cap_name(41) is None
    assert abi.cap_nr("sys_admin") == 21
    assert [abi.tcp_state_name(i) for i in (1, 2, 7, 10, 12)] == \
        ["ESTABLISHED", "SYN_SENT", "CLOSE", "LISTEN", "NEW_SYN_RECV"]
    assert abi.tcp_state_name(0) is None and abi.tcp_state_name(13) is None
    assert abi.tcp_state_nr("TCP_TIME_WAIT") == 6
    assert [abi.softirq_name(i) for i in range(10)] == [
        "hi", "timer", "net_tx", "net_rx", "block", "irq_poll", "tasklet", "sched",
        "hrtimer", "rcu"]
    assert abi.softirq_name(10) is None
    assert abi.af_name(2) == "AF_INET" and abi.af_name(10) == "AF_INET6"
    assert abi.af_name(1) == "AF_UNIX" and abi.af_name(45) == "AF_MCTP"
    assert abi.af_nr("AF_LOCAL") == 1 and abi.af_nr("INET6") == 10
    assert abi.af_name(46) is None


@pytest.mark.parametrize("flags,arch,text", [
    (0, "x86_64", "O_RDONLY"),
    (0o1101, "x86_64", "O_WRONLY|O_CREAT|O_TRUNC"),
    (0o2000002 | 0o2000, "x86_64", "O_RDWR|O_APPEND|O_CLOEXEC"),
    (0o2200000 | 0o4000, "x86_64", "O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC"),
    (0o4010001, "x86_64", "O_WRONLY|O_SYNC"),
    (0o10000, "x86_64", "O_RDONLY|O_DSYNC"),
    (0o20200002, "x86_64", "O_RDWR|O_TMPFILE"),
    (0o10000000, "x86_64", "O_RDONLY|O_PATH"),
    (1 << 30, "x86_64", "O_RDONLY|010000000000"),
    (0o40000, "aarch64", "O_RDONLY|O_DIRECTORY"),
    (0o40000, "x86_64", "O_RDONLY|O_DIRECT"),
    (0o40000, "ppc64le", "O_RDONLY|O_DIRECTORY"),
    (0o200000, "ppc64le", "O_RDONLY|O_LARGEFILE"),
    (0x100 | 0x200 | 1, "mips", "O_WRONLY|O_CREAT|O_TRUNC"),
    (0x80, "mips64", "O_RDONLY|O_NONBLOCK"),
    (0o100, "s390x", "O_RDONLY|O_CREAT"),
    (3, "x86_64", "O_ACCMODE"),
])
def test_open_flags(flags, arch, text):
    assert abi.open_flags(flags, arch) == text


def test_rwbs():
    sync, meta, fua, preflush, rahead = 1 << 11, 1 << 12, 1 << 17, 1 << 18, 1 << 19
    assert abi.rwbs(0) == "R"
    assert abi.rwbs(1 | sync) == "WS"
    assert abi.rwbs(1 | sync | fua | preflush) == "FWFS"
    assert abi.rwbs(0 | rahead) == "RA"
    assert abi.rwbs(1 | sync | meta) == "WSM"
    assert abi.rwbs(2) == "F"
    assert abi.rwbs(3) == "D"
    assert abi.rwbs(5) == "DE"
    assert abi.rwbs(9) == "N"
    assert abi.rwbs_words("FWFS") == ["flush", "write", "fua", "sync"]
    assert abi.rwbs_words("RA") == ["read", "readahead"]
    assert abi.rwbs_words("DE") == ["secure erase"]
    assert abi.rwbs_words("F") == ["flush"]
    assert abi.rwbs_words("WSM") == ["write", "sync", "metadata"]
