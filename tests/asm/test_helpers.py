"""The helper table: complete, contiguous, name <-> id both ways, argument counts."""

import pytest

from tinytrace.asm import AsmError, Call, Helper, decode, encode, helpers


def test_table_is_complete_and_contiguous():
    # include/uapi/linux/bpf.h: FN(unspec, 0) .. FN(cgrp_storage_delete, 211); the list is
    # frozen upstream ("This helper list is effectively frozen").
    assert helpers.MAX_ID == 211
    assert len(helpers.HELPERS) == 212
    assert helpers.name_of(0) == "unspec"
    assert helpers.name_of(211) == "cgrp_storage_delete"
    assert helpers.name_of(212) is None
    assert len(set(helpers.names())) == 212
    for ident, name in enumerate(helpers.names()):
        assert helpers.id_of(name) == ident
        assert helpers.id_of("bpf_" + name) == ident


# Ids from __BPF_FUNC_MAPPER; argument counts from each helper's documented prototype.
KNOWN = [
    ("map_lookup_elem", 1, 2), ("map_update_elem", 2, 4), ("map_delete_elem", 3, 2),
    ("probe_read", 4, 3), ("ktime_get_ns", 5, 0), ("trace_printk", 6, 5),
    ("tail_call", 12, 3), ("get_current_pid_tgid", 14, 0), ("get_current_uid_gid", 15, 0),
    ("get_current_comm", 16, 2), ("perf_event_output", 25, 5), ("get_stackid", 27, 3),
    ("get_current_task", 35, 0), ("probe_read_str", 45, 3), ("send_signal", 109, 1),
    ("probe_read_user", 112, 3), ("probe_read_kernel", 113, 3),
    ("probe_read_user_str", 114, 3), ("probe_read_kernel_str", 115, 3),
    ("ktime_get_boot_ns", 125, 0), ("ringbuf_output", 130, 4), ("ringbuf_reserve", 131, 3),
    ("ringbuf_submit", 132, 2), ("ringbuf_discard", 133, 2), ("get_func_ip", 173, 1),
    ("get_attach_cookie", 174, 1), ("find_vma", 180, 5), ("loop", 181, 4),
    ("user_ringbuf_drain", 209, 4), ("cgrp_storage_get", 210, 4),
    ("cgrp_storage_delete", 211, 2),
]


@pytest.mark.parametrize("name,ident,nargs", KNOWN)
def test_known_helpers(name, ident, nargs):
    assert helpers.id_of(name) == ident
    assert helpers.id_of("bpf_" + name) == ident
    assert helpers.nargs(name) == nargs
    assert helpers.nargs(ident) == nargs
    assert getattr(Helper, name) == ident
    assert encode([Call(name)]) == encode([Call("bpf_" + name)]) == encode([Call(ident)])


def test_every_helper_has_at_most_five_arguments():
    assert all(0 <= n <= 5 for _, n in helpers.HELPERS)


def test_unknown_names():
    assert helpers.id_of("no_such_thing") is None
    with pytest.raises(KeyError):
        helpers.nargs("no_such_thing")
    with pytest.raises(AttributeError):
        Helper.no_such_thing
    with pytest.raises(AsmError):
        Call("bpf_no_such_thing")
    assert "map_lookup_elem" in dir(Helper)


def test_disassembly_names_helpers_and_unknown_ids():
    from tinytrace.asm import disassemble
    assert disassemble(encode([Call(113)]), numbers=False).strip() == \
        "call bpf_probe_read_kernel#113"
    raw = bytes.fromhex("85000000e8030000")
    assert decode(raw)[0].imm == 1000
    assert disassemble(raw, numbers=False).strip() == "call unknown#1000"
