"""Kernel symbols: /proc/kallsyms of this machine checked against a plain full parse, and
synthetic texts for per-CPU symbols, modules, hidden addresses and 32-bit kernels."""
import bisect
import os
import random

import pytest

from tinytrace.kernel import ksyms

X86_TEXT = b"""\
0000000000000000 A fixed_percpu_data
0000000000001000 A cpu_debug_store
0000000000002000 A irq_stack_backing_store
ffffffff81000000 T _text
ffffffff81000000 T _stext
ffffffff81000000 t startup_64
ffffffff81000100 T secondary_startup_64
ffffffff81001000 t helper
ffffffff81002000 T schedule
ffffffff81002400 T do_sys_open
ffffffff81002400 t alias_local
ffffffff81003000 T _etext
ffffffffc0400000 t nf_ct_get\t[nf_conntrack]
ffffffffc0300100 t helper\t[ext4]
ffffffffc0300000 T ext4_read\t[ext4]
ffffffffc0201000 t ftrace_trampoline\t[__builtin__ftrace]
ffffffffc0500000 t bpf_prog_6deef7357e7b4530_sd_fw_ingress\t[bpf]
"""


def snapshot():
    """One read of /proc/kallsyms: ``(KernelSymbols over it, full parse of it)``.  Both
    sides must see the same text -- BPF programs loaded meanwhile add and remove lines."""
    if not os.path.exists(ksyms.KALLSYMS):
        pytest.skip("no /proc/kallsyms")
    with open(ksyms.KALLSYMS, "rb") as f:
        data = f.read()
    k = ksyms.KernelSymbols(data=data)
    if k.hidden:
        pytest.skip("kallsyms addresses hidden here")
    out = []
    for line in data.decode().splitlines():
        p = line.split()
        out.append((int(p[0], 16), p[2], p[1]))
    return k, out


def test_real_lookup_and_resolve():
    k, entries = snapshot()
    by_name = {}
    for a, n, t in entries:
        by_name.setdefault(n, a)
    addr = k.lookup("schedule")
    assert addr == by_name["schedule"] and addr > 0
    name, off, mod = k.resolve(addr + 3)
    assert (name, off, mod) == ("schedule", 3, None)
    assert k.symbolize(addr + 0x10) == "schedule+16"
    assert k.symbolize(addr + 0x10, hex_offset=True) == "schedule+0x10"
    assert k.symbolize(addr) == "schedule"
    assert k.lookup("no_such_kernel_symbol_xyz") is None
    assert k.resolve(0x1000) is None or k.resolve(0x1000)[1] >= 0


def test_real_matches_full_parse_at_random_addresses():
    k, entries = snapshot()
    entries = sorted(e for e in entries if e[0])
    addrs = [e[0] for e in entries]
    rnd = random.Random(1)
    for _ in range(3000):
        x = rnd.randint(addrs[0], addrs[-1] + 64)
        r = k.resolve(x)
        j = bisect.bisect_right(addrs, x) - 1
        assert r is not None and x - r[1] == addrs[j]
    # exact hits on every 50th symbol: an alias at that address may be named
    names_at = {}
    for a, n, t in entries:
        names_at.setdefault(a, set()).add(n)
    for a, n, t in entries[::50]:
        name, off, _ = k.resolve(a)
        assert off == 0 and name in names_at[a]


def test_per_cpu_zero_lines_are_not_hidden():
    k = ksyms.KernelSymbols(data=X86_TEXT)
    assert not k.hidden
    assert k.lookup("fixed_percpu_data") == 0
    assert k.resolve(0xffffffff81002010) == ("schedule", 0x10, None)
    assert k.resolve(0xffffffff81000050) == ("_text", 0x50, None)     # first T alias
    assert k.resolve(0xffffffff81002400) == ("do_sys_open", 0, None)  # T over t
    assert k.resolve(0x10) is None                                    # only zero-address lines


def test_modules_unsorted_tail():
    k = ksyms.KernelSymbols(data=X86_TEXT)
    assert k.resolve(0xffffffffc0300150) == ("helper", 0x50, "ext4")
    assert k.resolve(0xffffffffc0300010) == ("ext4_read", 0x10, "ext4")
    assert k.resolve(0xffffffffc0400008) == ("nf_ct_get", 8, "nf_conntrack")
    assert k.resolve(0xffffffffc0201004) == ("ftrace_trampoline", 4, "__builtin__ftrace")
    assert k.symbolize(0xffffffffc0300010, module=True) == "ext4_read+16 [ext4]"
    assert k.module_of(0xffffffffc0500010) == "bpf"
    assert k.resolve(0xffffffff81003100) == ("_etext", 0x100, None)
    assert k.lookup("helper") == 0xffffffff81001000
    assert k.lookup("helper", module="ext4") == 0xffffffffc0300100
    assert k.lookup_all("helper") == [(0xffffffff81001000, "t", None),
                                      (0xffffffffc0300100, "t", "ext4")]
    assert "schedule" in k.names() and "fixed_percpu_data" not in k.names()
    assert k.lookup("schedul") is None and k.lookup("chedule") is None


def test_hidden_addresses():
    text = b"".join(b"0000000000000000 T f%d\n" % i for i in range(50)) + \
        b"0000000000000000 t m\t[mod]\n"
    k = ksyms.KernelSymbols(data=text)
    assert k.hidden
    assert k.resolve(0xffffffff81000000) is None
    assert k.symbolize(0xffffffff81000000) == "0xffffffff81000000"
    with pytest.raises(ksyms.KsymsError, match="kptr_restrict"):
        k.lookup("f3")


def test_32bit_kernel_text():
    text = b"c0008000 T _text\nc0008000 T stext\nc0100000 T schedule\nc0100200 t tick\n" \
           b"bf000000 t mod_fn\t[mymod]\n"
    k = ksyms.KernelSymbols(data=text)
    assert k.resolve(0xc0100204) == ("tick", 4, None)
    assert k.resolve(0xbf000010) == ("mod_fn", 0x10, "mymod")
    assert k.resolve(0xbe000000) is None
    assert k.lookup("schedule") == 0xc0100000


def test_large_synthetic_table_binary_search():
    rnd = random.Random(7)
    addrs = sorted(set(0xffffffff81000000 + rnd.randrange(0, 1 << 26) for _ in range(20000)))
    text = b"".join(b"%016x %s sym_%d\n" % (a, b"Tt"[i % 2:i % 2 + 1], i)
                    for i, a in enumerate(addrs))
    k = ksyms.KernelSymbols(data=text)
    for _ in range(2000):
        x = rnd.randint(addrs[0] - 10, addrs[-1] + 10)
        j = bisect.bisect_right(addrs, x) - 1
        r = k.resolve(x)
        if j < 0:
            assert r is None
        else:
            assert r == ("sym_%d" % j, x - addrs[j], None)


def test_reads_the_real_file():
    k = ksyms.KernelSymbols()
    if k.hidden:
        pytest.skip("kallsyms addresses hidden here")
    a = k.lookup("schedule")
    assert a and k.resolve(a + 1)[:2] == ("schedule", 1)


def test_empty_and_missing():
    assert ksyms.KernelSymbols(data=b"").hidden
    with pytest.raises(ksyms.KsymsError):
        ksyms.KernelSymbols(path="/nonexistent/kallsyms").resolve(1)


def test_shared_instance():
    assert ksyms.kallsyms() is ksyms.kallsyms()
    first = ksyms.kallsyms()
    ksyms.reload()
    assert ksyms.kallsyms() is not first
