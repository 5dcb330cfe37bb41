"""The per-architecture register tables: offsets checked against the kernels' struct layouts
(the running kernel's BTF, <sys/reg.h>, usdt.py's independent tables) and the ABIs'
argument registers."""
import os
import re

import pytest

from tinytrace.kernel import regs, usdt

pytestmark = pytest.mark.guest_safe


def offs(t, n=None):
    n = t.nargs if n is None else n
    return [t.arg(i).offset for i in range(n)]


def test_x86_64():
    t = regs.table("x86_64")
    assert t.size == 168 and t.slot == 8
    assert t.args == ("rdi", "rsi", "rdx", "rcx", "r8", "r9")     # rcx, not the syscall r10
    assert offs(t) == [112, 104, 96, 88, 72, 64]
    assert (t.retval_offset, t.ip_offset, t.sp_offset) == (80, 128, 152)
    assert t.offset("r10") == 56 and t.offset("rbp") == 32 and t.offset("orig_rax") == 120
    assert t.arg(6) == regs.ArgLoc("stack", 152, 8, 8)      # above the return address
    assert t.arg(7).disp == 16


def test_aarch64():
    t = regs.table("aarch64")
    assert t.size == 272                                    # struct user_pt_regs
    assert offs(t) == [0, 8, 16, 24, 32, 40, 48, 56]
    assert (t.retval_offset, t.ip_offset, t.sp_offset) == (0, 256, 248)
    assert t.offset("x29") == 232 and t.offset("lr") == 240 and t.offset("pstate") == 264
    assert t.arg(8) == regs.ArgLoc("stack", 248, 8, 0)


def test_arm():
    t = regs.table("arm")
    assert t.size == 72 and t.slot == 4                     # unsigned long uregs[18]
    assert t.args == ("r0", "r1", "r2", "r3")               # AAPCS: four in registers
    assert offs(t) == [0, 4, 8, 12]
    assert (t.retval_offset, t.ip_offset, t.sp_offset) == (0, 60, 52)
    assert t.offset("cpsr") == 64 and t.offset("orig_r0") == 68
    assert t.arg(4) == regs.ArgLoc("stack", 52, 4, 0)
    assert t.arg(5).disp == 4


def test_riscv64():
    t = regs.table("riscv64")
    assert t.size == 256                                    # struct user_regs_struct
    assert offs(t) == [80, 88, 96, 104, 112, 120, 128, 136]  # a0-a7 = x10-x17
    assert (t.retval_offset, t.ip_offset, t.sp_offset) == (80, 0, 16)
    assert t.offset("ra") == 8 and t.offset("s0") == 64 and t.offset("x31") == 248


def test_ppc64le():
    t = regs.table("ppc64le")
    assert t.size == 352                                    # 32 gprs + 12 specials
    assert offs(t) == [24, 32, 40, 48, 56, 64, 72, 80]      # r3-r10
    assert (t.retval_offset, t.ip_offset, t.sp_offset) == (24, 256, 8)
    assert t.offset("link") == 288 and t.offset("ccr") == 304 and t.offset("result") == 344
    assert t.arg(8).disp == 96                              # ELFv2 parameter save area
    assert regs.table("ppc64").arg(8).disp == 112           # ELFv1


def test_s390x():
    t = regs.table("s390x")
    assert t.size == 152                                    # args[1], psw, gprs[16]
    assert t.args == ("r2", "r3", "r4", "r5", "r6")
    assert offs(t) == [40, 48, 56, 64, 72]
    assert (t.retval_offset, t.ip_offset, t.sp_offset) == (40, 16, 144)
    assert t.arg(5).disp == 160                             # after the register save area
    assert t.big_endian
    assert t.reg_loc("r2", 4).offset == 44                  # low word of a BE slot


def test_mips():
    t = regs.table("mips")                                  # 32-bit kernel, o32
    assert t.size == 184 and t.slot == 4                    # pad0[8] + 32 + 6 words
    assert t.args == ("a0", "a1", "a2", "a3")
    assert offs(t) == [48, 52, 56, 60]                      # regs[4..7] after pad0[8]
    assert (t.retval_offset, t.ip_offset, t.sp_offset) == (40, 180, 148)
    assert t.arg(4).disp == 16                              # o32's argument home area
    t = regs.table("mips64")                                # n64
    assert t.size == 304
    assert offs(t) == [32, 40, 48, 56, 64, 72, 80, 88]      # a0-a7 = regs[4..11]
    assert (t.retval_offset, t.ip_offset, t.sp_offset) == (16, 296, 232)
    assert t.offset("a4") == 64 and t.offset("t0") == 96    # n64 register names


def test_loongarch64():
    t = regs.table("loongarch64")
    assert t.size == 360                                    # regs[32], orig_a0, era, badv, 10
    assert offs(t) == [32, 40, 48, 56, 64, 72, 80, 88]      # a0-a7 = r4-r11
    assert (t.retval_offset, t.ip_offset, t.sp_offset) == (32, 264, 24)
    assert t.offset("fp") == 176 and t.offset("ra") == 8


def test_i386_and_compat_tables():
    k = regs.table("i386")
    assert k.args == ("eax", "edx", "ecx") and offs(k) == [24, 8, 4]   # -mregparm=3
    with pytest.raises(regs.RegsError) as e:
        k.arg(3)
    assert "three arguments" in str(e.value)
    u = regs.table("i386-user")
    assert u.nargs == 0 and u.arg(0) == regs.ArgLoc("stack", 60, 4, 4)
    arm = regs.table("arm-on-aarch64")                      # 32-bit task, arm64 kernel
    assert offs(arm) == [0, 8, 16, 24] and arm.word == 4 and arm.size == 272
    assert arm.ip_offset == 256 and arm.sp_offset == 104 and arm.offset("lr") == 112
    x86 = regs.table("i386-on-x86_64")
    assert x86.arg(0) == regs.ArgLoc("stack", 152, 4, 4) and x86.retval_loc().size == 4
    mips = regs.table("mips-on-mips64")
    low = 4 if mips.big_endian else 0                     # the low word of an 8-byte slot
    assert offs(mips) == [32 + low, 40 + low, 48 + low, 56 + low]


def test_choosing_tables():
    assert regs.kernel("x86_64").name == "x86_64"
    assert regs.kernel("armv7l").name == "arm"
    assert regs.kernel("aarch64").name == "aarch64"
    assert regs.kernel("mips64").name == "mips64" and regs.kernel("mips").name == "mips"
    assert regs.kernel("loongarch64").name == "loongarch64"
    assert regs.user("arm", kernel_raw="aarch64").name == "arm-on-aarch64"
    assert regs.user("i386", kernel_raw="x86_64").name == "i386-on-x86_64"
    assert regs.user("mipsel", kernel_raw="mips64").name == "mips-on-mips64"
    assert regs.user("x86_64", kernel_raw="x86_64").name == "x86_64"
    with pytest.raises(regs.RegsError):
        regs.user("aarch64", kernel_raw="x86_64")
    with pytest.raises(regs.RegsError):
        regs.table("vax")


def test_every_table_is_consistent():
    for name in regs.ARCHES + ("arm-on-aarch64", "i386-on-x86_64", "mips-on-mips64"):
        t = regs.table(name)
        for r in t.args + (t.retval, t.ip, t.sp):
            off = t.offset(r)
            assert 0 <= off and off + t.slot <= t.size, (name, r)
            assert off % t.slot == 0, (name, r)
        locs = [t.arg(i) for i in range(t.nargs)]
        assert len(set(locs)) == len(locs), name            # no register used twice


def test_agrees_with_usdt_tables():
    """usdt.py was written separately from the same layouts: where both name a register,
    the offsets must agree."""
    for arch, ours in (("x86_64", "x86_64"), ("aarch64", "aarch64"), ("arm", "arm"),
                       ("riscv64", "riscv64"), ("ppc64le", "ppc64le"), ("s390x", "s390x")):
        theirs = usdt.registers(arch)
        t = regs.table(ours)
        common = [n for n in theirs if n in t.offsets and theirs[n][1] == t.slot]
        assert len(common) >= 15, arch
        for n in common:
            assert t.offsets[n] == theirs[n][0], (arch, n)


def test_x86_64_matches_sys_reg_h():
    """glibc's <sys/reg.h> numbers the x86_64 user_regs_struct slots (the pt_regs order)."""
    path = "/usr/include/x86_64-linux-gnu/sys/reg.h"
    if not os.path.exists(path):
        pytest.skip("no x86_64 <sys/reg.h>")
    text = open(path).read()
    part = text.split("#ifdef __x86_64__", 1)[1].split("#else", 1)[0]
    defines = re.findall(r"#\s*define\s+(\w+)\s+(\d+)", part)
    found = dict((n.lower(), int(v)) for n, v in defines)
    t = regs.table("x86_64")
    for name in ("rdi", "rsi", "rdx", "rcx", "r8", "r9", "rax", "rip", "rsp", "rbp", "r10"):
        assert t.offset(name) == 8 * found[name], name


@pytest.mark.btf
def test_running_kernel_btf():
    """The running kernel's own struct pt_regs (from BTF) agrees with its table."""
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("no kernel BTF")
    from tinytrace.kernel import btf
    t = regs.kernel()
    b = btf.vmlinux()
    st = b.find_struct("pt_regs")
    members = {}

    def walk(typ, base):
        for m in b.members(typ):
            if m.name:
                members[m.name] = base + m.offset
            else:
                walk(b.resolve(m.type), base + m.offset)
    walk(st, 0)
    btf_names = {
        "x86_64": {"rdi": "di", "rsi": "si", "rdx": "dx", "rcx": "cx", "r8": "r8",
                   "r9": "r9", "rax": "ax", "rip": "ip", "rsp": "sp"},
        "aarch64": {"sp": "sp", "pc": "pc"},
        "riscv64": {"pc": "epc", "a0": "a0", "a7": "a7", "sp": "sp"},
        "s390x": {"psw_addr": None},
        "loongarch64": {"csr_era": "csr_era"},
        "ppc64le": {"nip": "nip", "link": "link"},
    }.get(t.name)
    if btf_names is None:
        pytest.skip("no BTF names listed for %s" % t.name)
    checked = 0
    for ours, theirs in btf_names.items():
        if theirs is None or theirs not in members:
            continue
        assert t.offset(ours) == members[theirs], ours
        checked += 1
    assert checked
    assert b.size_of(st) >= t.size
