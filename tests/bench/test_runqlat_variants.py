"""bench/runqlat_variants.py: the BTF blob for task storage, and (with BPF and BTF) every
variant loads and attaches next to the shipped tool."""
import struct

import pytest

from bench import runqlat_variants as rv


def test_btf_blob_layout():
    blob = rv._btf_blob()
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = \
        struct.unpack_from("<HBBIIIII", blob, 0)
    assert (magic, version, hdr_len) == (0xEB9F, 1, 24)
    assert type_len == 32 and str_off == 32 and len(blob) == 24 + 32 + str_len
    strings = blob[24 + str_off:]
    # type 1: "int", 4 bytes, signed 32-bit; type 2: "u64", 8 bytes, 64-bit
    name1, info1, size1, enc1 = struct.unpack_from("<IIII", blob, 24)
    name2, info2, size2, enc2 = struct.unpack_from("<IIII", blob, 40)
    assert strings[name1:].split(b"\0")[0] == b"int" and size1 == 4 and enc1 == (1 << 24) | 32
    assert strings[name2:].split(b"\0")[0] == b"u64" and size2 == 8 and enc2 == 64
    assert info1 >> 24 == info2 >> 24 == 1     # BTF_KIND_INT


@pytest.mark.bpf
@pytest.mark.parametrize("variant", rv.ORDER)
def test_each_variant_loads_and_attaches(variant):
    from tinytrace.kernel import btf, features
    from tinytrace.session import Session
    if not btf.available() or not features.probe().atomics:
        pytest.skip("needs BTF and BPF atomics")
    errors = {}
    with Session() as s:
        names, counter = rv.build(s, variant, errors)
        assert errors == {}
        if variant == "shipped":
            assert names is None
        else:
            assert set(names) == {"sched_switch", "sched_wakeup", "sched_wakeup_new"}
        assert counter() >= 0
