"""The running kernel accepts what the assembler makes and computes what the text says.

Each program is written in the assembler's text syntax, linked, loaded as a socket filter and
run once with BPF_PROG_TEST_RUN; its r0 (low 32 bits) is checked against the value the
instructions compute.  This catches encodings that decode back fine but that the kernel
reads differently (field order, sign of offsets, the pseudo-function offset base...).
Needs root and bpf(); skips elsewhere (fails under TINYTRACE_REQUIRE_BPF=1).
"""

import struct

import pytest

from tinytrace.asm import assemble, link

pytestmark = pytest.mark.bpf

PACKET = bytes(64)


def run(text, maps=None):
    from tinytrace.kernel import progs
    code = link(assemble(text), maps)
    prog = progs.load(code, "socket_filter", name="asm_test")
    try:
        return prog.test_run(data=PACKET)
    finally:
        prog.close()


CASES = [
    ("signed division and modulo", """
        r1 = -7
        r1 s/= 2            ; -3
        r2 = -7
        r2 s%= 2            ; -1
        r1 *= 10
        r0 = r1
        r0 += r2            ; -31
        exit""", (-31) & 0xffffffff),
    ("32-bit signed division", """
        w1 = -9
        w1 s/= 4
        w0 = w1
        exit""", (-2) & 0xffffffff),
    ("sign-extending moves", """
        r1 = 0x80
        r0 = (s8)r1
        w2 = 0x8000
        w2 = (s16)w2
        r3 = 0x80000000 ll
        r3 = (s32)r3
        r3 >>= 32           ; 0xffffffff after sign extension
        r0 ^= r3            ; -128 ^ 0xffffffff = 0x7f in the low bits
        exit""", 0x7f),
    ("byte swaps", """
        r0 = 0x1234
        r0 = bswap16 r0
        r1 = 0x11223344
        r1 = be32 r1
        r1 &= 0xff
        r0 <<= 8
        r0 |= r1
        exit""", 0x341211),
    ("64-bit constant", """
        r0 = 0x1234567800000009 ll
        r0 >>= 32
        exit""", 0x12345678),
    ("sign-extending loads and stores", """
        *(u8 *)(r10 -1) = 0xff
        r0 = *(s8 *)(r10 -1)
        *(u16 *)(r10 -4) = 0x8001
        r1 = *(s16 *)(r10 -4)
        r1 >>= 60           ; 0xf: the top bits are set
        r0 += r1            ; -1 + 15
        exit""", 14),
    ("atomics", """
        r1 = 5
        *(u64 *)(r10 -8) = r1
        r2 = 3
        lock *(u64 *)(r10 -8) += r2                        ; 8
        r3 = 4
        r3 = atomic64_fetch_or((u64 *)(r10 -8), r3)        ; r3 = 8, mem = 12
        r4 = 100
        r4 = atomic64_xchg((u64 *)(r10 -8), r4)            ; r4 = 12, mem = 100
        r0 = 100
        r5 = 7
        r0 = atomic64_cmpxchg((u64 *)(r10 -8), r0, r5)     ; r0 = 100, mem = 7
        r6 = *(u64 *)(r10 -8)
        w7 = 1
        *(u32 *)(r10 -12) = 40
        w7 = atomic_fetch_add((u32 *)(r10 -12), w7)        ; w7 = 40, mem = 41
        r8 = *(u32 *)(r10 -12)
        r0 += r3
        r0 += r4
        r0 += r6
        r0 += r7
        r0 += r8            ; 100 + 8 + 12 + 7 + 40 + 41
        exit""", 208),
    ("load-acquire and store-release", """
        r1 = 77
        store_release((u64 *)(r10 -8), r1)
        r0 = load_acquire((u64 *)(r10 -8))
        exit""", 77),
    ("long and 32-bit jumps", """
        r0 = 1
        if r0 == 2 goto mid    ; keeps "mid" reachable for the verifier's CFG check
        gotol skip
    mid:
        r0 = 2
    skip:
        w1 = -1
        if w1 s< 0 goto neg
        r0 = 3
        exit
    neg:
        if w1 > 0xfffffffe goto big
        r0 = 4
        exit
    big:
        r0 += 40
        exit""", 41),
    ("may_goto falls through while budget remains", """
        r0 = 7
        may_goto out
        r0 = 9
    out:
        exit""", 9),
    ("bpf-to-bpf call", """
        r1 = 5
        call triple
        r0 += 1
        exit
    triple:
        r0 = r1
        r0 *= 3
        exit""", 16),
]


# The first kernel whose verifier accepts each case's instructions (older ones answer EINVAL
# or "uses reserved fields"): cpu v4 (signed div/mod, movsx, sign-extending loads, bswap,
# gotol) came with 6.6, may_goto with 6.9, load-acquire/store-release with 6.15, atomics
# with fetch/xchg/cmpxchg with 5.12.
SINCE = {
    "signed division and modulo": (6, 6), "32-bit signed division": (6, 6),
    "sign-extending moves": (6, 6), "byte swaps": (6, 6),
    "sign-extending loads and stores": (6, 6), "long and 32-bit jumps": (6, 6),
    "atomics": (5, 12), "may_goto falls through while budget remains": (6, 9),
    "load-acquire and store-release": (6, 15),
}


@pytest.mark.parametrize("name,text,want", CASES, ids=[c[0] for c in CASES])
def test_kernel_computes(bpf, name, text, want):
    from tinytrace.kernel.bpf import kernel_version
    since = SINCE.get(name)
    if since is not None and kernel_version()[:2] < since:
        pytest.skip("the verifier of Linux %d.%d and later accepts these instructions"
                    % since)
    if name == "atomics":
        from tinytrace.kernel import features
        if not features.probe().atomics:
            pytest.skip("this kernel's JIT has no atomic instructions (32-bit ARM)")
    assert run(text) == want


def test_map_loads_and_helper_calls(bpf):
    from tinytrace.kernel.maps import Map
    with Map.create("array", 4, 8, 1, name="asm_cfg") as cfg, \
            Map.create("hash", 4, 8, 4, name="asm_counts") as counts:
        cfg.update(struct.pack("<I", 0), struct.pack("<Q", 42))
        text = """
            r6 = map_value[cfg]+0 ll
            r6 = *(u64 *)(r6 +0)            ; 42, read straight from the array's value
            *(u32 *)(r10 -4) = 7
            r1 = map[counts] ll
            r2 = r10
            r2 += -4
            r3 = r10
            r3 += -16
            *(u64 *)(r10 -16) = r6
            r4 = 0
            call bpf_map_update_elem
            r1 = map[counts] ll
            r2 = r10
            r2 += -4
            call map_lookup_elem
            if r0 == 0 goto miss
            r1 = 1
            %s
            r0 = *(u64 *)(r0 +0)
            exit
        miss:
            r0 = 0
            exit"""
        from tinytrace.kernel import features
        # 32-bit ARM's JIT has no atomics (error 524): a plain load, add and store there
        text %= ("lock *(u64 *)(r0 +0) += r1" if features.probe().atomics else
                 "r2 = *(u64 *)(r0 +0)\n            r2 += r1\n"
                 "            *(u64 *)(r0 +0) = r2")
        assert run(text, {"cfg": cfg, "counts": counts.fd}) == 43
        assert counts.lookup(struct.pack("<I", 7)) == struct.pack("<Q", 43)
