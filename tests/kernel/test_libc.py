"""libc through cffi (out-of-line ABI module) and the per-architecture tables."""
import os
import re
import subprocess
import sys

import pytest

from tinytrace.kernel import arch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LIBC_PY = os.path.join(ROOT, "tinytrace", "kernel", "_libc.py")


def test_generated_module_is_current(tmp_path):
    pytest.importorskip("pycparser")
    cffi = pytest.importorskip("cffi")
    from tinytrace.kernel import _build_libc
    path = _build_libc.generate(str(tmp_path))
    with open(path) as f:
        fresh = f.read()
    with open(LIBC_PY) as f:
        committed = f.read()
    assert fresh == committed, ("tinytrace/kernel/_libc.py is stale (cffi %s): run "
                                "python3 -m tinytrace.kernel._build_libc" % cffi.__version__)


def test_generated_version_is_one_old_backends_accept():
    # _cffi_backend (1.8 .. 2.x) loads out-of-line modules whose _version lies in
    # 0x2601..0x28FF; 0x2601 is what modules without char16_t/char32_t or embedding get.
    with open(LIBC_PY) as f:
        text = f.read()
    v = int(re.search(r"_version = (0x[0-9A-Fa-f]+)", text).group(1), 16)
    assert 0x2601 <= v <= 0x28FF
    assert "char16_t" not in text and "char32_t" not in text


def test_import_parses_no_c():
    code = ("import sys, tinytrace.kernel.maps, tinytrace.kernel.events, "
            "tinytrace.kernel.attach; "
            "print(sorted(m for m in ('cffi', 'pycparser', 'ctypes') if m in sys.modules))")
    out = subprocess.check_output([sys.executable, "-c", code], cwd=ROOT,
                                  universal_newlines=True)
    assert out.strip() == "[]"


def test_syscall_and_ioctl_errors_carry_errno(bpf):
    import errno
    from tinytrace.kernel import libc
    if arch.machine() == "x86_64":
        assert libc.syscall(39) == os.getpid()  # getpid
    with pytest.raises(OSError) as e:
        libc.ioctl(-1, 0x2400)
    assert e.value.errno == errno.EBADF
    with pytest.raises(OSError) as e:
        libc.syscall(arch.syscall_nr("bpf"), 9999, 0, 0)  # no such bpf command
    assert e.value.errno == errno.EINVAL


def test_mmap_munmap():
    from tinytrace.kernel import libc
    import tempfile
    with tempfile.TemporaryFile() as f:
        f.write(b"hello world" + bytes(4085))
        f.flush()
        p = libc.mmap(4096, libc.PROT_READ, libc.MAP_SHARED, f.fileno(), 0)
        try:
            assert libc.ffi.buffer(p, 11)[:] == b"hello world"
        finally:
            libc.munmap(p, 4096)
    with pytest.raises(OSError):
        libc.mmap(4096, libc.PROT_READ, libc.MAP_SHARED, -1, 0)


def test_fence_runs():
    from tinytrace.kernel import libc
    libc.fence()
    f = libc.get_fence()
    f()


@pytest.mark.parametrize("raw,norm", [
    ("x86_64", "x86_64"), ("amd64", "x86_64"), ("aarch64", "aarch64"), ("arm64", "aarch64"),
    ("armv7l", "arm"), ("armv6l", "arm"), ("armv8l", "arm"), ("riscv64", "riscv64"),
    ("ppc64le", "ppc64le"), ("s390x", "s390x"), ("mips", "mips"), ("mips64", "mips"),
    ("mipsel", "mips"), ("loongarch64", "loongarch64"), ("i686", "i386"),
])
def test_machine_names(raw, norm):
    assert arch.normalise(raw) == norm


@pytest.mark.parametrize("mach,bpf,perf", [
    ("x86_64", 321, 298), ("aarch64", 280, 241), ("armv7l", 386, 364), ("riscv64", 280, 241),
    ("ppc64le", 361, 319), ("s390x", 351, 331), ("loongarch64", 280, 241),
])
def test_syscall_numbers(mach, bpf, perf):
    assert arch.syscall_nr("bpf", mach) == bpf
    assert arch.syscall_nr("perf_event_open", mach) == perf


def test_32_bit_userland_on_64_bit_kernel(monkeypatch):
    assert arch.userland("aarch64", 4) == "arm"
    assert arch.userland("aarch64", 8) == "aarch64"
    assert arch.userland("ppc64le", 4) == "ppc"
    assert arch.userland("arm", 4) == "arm"
    monkeypatch.setattr(arch, "_is_x32", lambda: False)
    assert arch.userland("x86_64", 4) == "i386"
    monkeypatch.setattr(arch, "_is_x32", lambda: True)
    assert arch.userland("x86_64", 4) == "x32"
    assert arch.syscall_nr("bpf", arch.userland("aarch64", 4)) == 386


def test_kernel_long_size():
    assert arch.kernel_long_size("x86_64") == 8
    assert arch.kernel_long_size("aarch64") == 8
    assert arch.kernel_long_size("armv7l") == 4
    assert arch.kernel_long_size("mips64") == 8
    assert arch.kernel_long_size("mips") == 4
    assert arch.kernel_long_size("riscv64") == 8


def test_mips_numbers_follow_the_process_abi(monkeypatch):
    monkeypatch.setattr(arch, "mips_abi", lambda: "o32")
    assert (arch.syscall_nr("bpf", "mips"), arch.syscall_nr("perf_event_open", "mips")) == \
        (4355, 4333)
    monkeypatch.setattr(arch, "mips_abi", lambda: "n64")
    assert (arch.syscall_nr("bpf", "mips64"), arch.syscall_nr("perf_event_open", "mips64")) == \
        (5315, 5292)
    monkeypatch.setattr(arch, "mips_abi", lambda: "n32")
    assert arch.syscall_nr("bpf", "mips64") == 6319


def test_unknown_machine_is_a_clear_error():
    from tinytrace.errors import KernelError
    with pytest.raises(KernelError, match="sparc64"):
        arch.syscall_nr("bpf", "sparc64")


def test_ioctl_encoding():
    # PERF_EVENT_IOC_ENABLE = _IO('$', 0), SET_BPF = _IOW('$', 8, u32), ID = _IOR('$', 7, u64)
    assert arch.ioc("none", "$", 0, 0, "x86_64") == 0x2400
    assert arch.ioc("w", "$", 8, 4, "x86_64") == 0x40042408
    assert arch.ioc("r", "$", 7, 8, "aarch64") == 0x80082407
    assert arch.ioc("none", "$", 0, 0, "ppc64le") == 0x20002400
    assert arch.ioc("w", "$", 8, 4, "ppc64le") == 0x80042408
    assert arch.ioc("r", "$", 7, 8, "mips") == 0x40082407


def test_cpu_lists():
    assert arch.parse_cpu_list("0-3,5,7-8\n") == [0, 1, 2, 3, 5, 7, 8]
    assert arch.parse_cpu_list("0") == [0]
    assert arch.possible_cpus() and arch.online_cpus()
    assert set(arch.online_cpus()) <= set(arch.possible_cpus())


def test_release_parsing():
    from tinytrace.kernel.bpf import parse_release
    assert parse_release("6.18.44-fc-v657") == (6, 18, 44)
    assert parse_release("5.4.0-150-generic") == (5, 4, 0)
    assert parse_release("4.19") == (4, 19, 0)
    assert parse_release("6.1.0+") == (6, 1, 0)
