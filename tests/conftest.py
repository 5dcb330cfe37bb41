"""Shared test configuration.

Tests that need a working ``bpf()`` ask for the ``bpf`` fixture (or carry the ``bpf``
marker).  Where BPF cannot work (not root, no CONFIG_BPF_SYSCALL, a seccomp'd container)
they skip with the reason -- unless ``TINYTRACE_REQUIRE_BPF=1`` is set, as CI sets it on
machines where BPF does work: then the same condition is a failure, so a broken loader can
never hide behind a skip.

The probe below deliberately uses ctypes and hand-encoded bytes, not tinytrace itself: a bug
in tinytrace's kernel layer must show up as failing tests, not as skipped ones.
"""
import ctypes
import os
import platform
import struct

import pytest

REQUIRE_BPF = os.environ.get("TINYTRACE_REQUIRE_BPF") == "1"

# Workload fixtures (loop devices, ext4 images, netns pairs, cgroups ...) for every test.
pytest_plugins = ["tests.workloads.plugin"]

# bpf() syscall numbers, enough to probe on the architectures we test on.
_NR_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "armv8l": 386, "arm": 386,
           "riscv64": 280, "ppc64le": 361, "s390x": 351, "loongarch64": 280}

_bpf_state = None


def _probe_bpf():
    """Load the smallest socket-filter program (r0 = 0; exit).  Returns (ok, reason)."""
    if os.geteuid() != 0:
        return False, "not running as root"
    nr = _NR_BPF.get(platform.machine())
    if nr is None:
        return False, "no bpf() syscall number known for %s" % platform.machine()
    libc = ctypes.CDLL(None, use_errno=True)
    insns = struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)
    ibuf = ctypes.create_string_buffer(insns)
    lic = ctypes.create_string_buffer(b"GPL")
    # bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, ...
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIQQ", attr, 0, 1, 2, ctypes.addressof(ibuf), ctypes.addressof(lic))
    fd = libc.syscall(ctypes.c_long(nr), ctypes.c_long(5), attr, ctypes.c_long(128))
    if fd < 0:
        err = ctypes.get_errno()
        return False, "bpf(BPF_PROG_LOAD) failed: %s" % os.strerror(err)
    os.close(fd)
    return True, ""


def bpf_status():
    global _bpf_state
    if _bpf_state is None:
        _bpf_state = _probe_bpf()
    return _bpf_state


def pytest_configure(config):
    config.addinivalue_line("markers", "bpf: needs a working bpf() syscall (root)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "guest: boots a kernel under qemu")
    config.addinivalue_line("markers", "guest_safe: also run this test inside the qemu guests "
                            "(tests/guests/subset.py)")
    config.addinivalue_line("markers", "host_only: never run this test inside the guests")
    config.addinivalue_line("markers", "kprobes: needs kprobes; in a guest whose kernel has "
                            "them a skip is a failure")
    config.addinivalue_line("markers", "btf: needs kernel BTF; in a guest whose kernel has it "
                            "a skip is a failure")


def pytest_runtest_setup(item):
    if item.get_closest_marker("bpf") is not None:
        _require_bpf()


def _require_bpf():
    ok, reason = bpf_status()
    if ok:
        return
    if REQUIRE_BPF:
        pytest.fail("TINYTRACE_REQUIRE_BPF=1 but BPF is unusable: " + reason, pytrace=False)
    pytest.skip("BPF unavailable: " + reason)


@pytest.fixture
def bpf():
    """Marks a test as needing BPF: skip (or fail under TINYTRACE_REQUIRE_BPF=1) without it."""
    _require_bpf()
    return True
