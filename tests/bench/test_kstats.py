"""bench/kstats.py: bpf_prog_info decoding, /proc parsing, and (with BPF) finding the
programs a process has attached."""
import os
import struct

import pytest

from bench import kstats


def test_parse_prog_info_fields():
    buf = bytearray(kstats.INFO_SIZE)
    struct.pack_into("<II", buf, 0, 5, 77)              # type tracepoint, id
    struct.pack_into("<II", buf, 16, 120, 88 * 8)       # jited bytes, xlated bytes
    struct.pack_into("16s", buf, 64, b"rq_switch")
    struct.pack_into("<QQ", buf, 192, 123456, 789)      # run_time_ns, run_cnt
    struct.pack_into("<I", buf, 216, 95)                # verified_insns
    info = kstats.parse_prog_info(bytes(buf))
    assert info["id"] == 77 and info["type_name"] == "tracepoint"
    assert info["name"] == "rq_switch"
    assert info["xlated_insns"] == 88 and info["jited_prog_len"] == 120
    assert (info["run_time_ns"], info["run_cnt"], info["verified_insns"]) == (123456, 789, 95)


def test_parse_prog_info_short_buffer():
    # an old kernel fills in less: the missing fields read as zero
    info = kstats.parse_prog_info(bytes(struct.pack("<II", 17, 3)) + bytes(72))
    assert info["type_name"] == "raw_tracepoint"
    assert info["run_cnt"] == 0 and info["verified_insns"] == 0


def test_proc_parsers():
    text = "pos:\t0\nflags:\t02000002\nprog_type:\t5\nprog_id:\t4242\nrun_cnt:\t0\n"
    assert kstats.parse_fdinfo_prog_id(text) == 4242
    assert kstats.parse_fdinfo_prog_id("pos:\t0\n") is None
    assert kstats.parse_schedstat("881115 142483 4\n") == 881115


def test_program_deltas():
    before = {7: {"run_cnt": 10, "run_time_ns": 1000}}
    after = {7: {"name": "a", "type_name": "tracepoint", "attach": ["tracepoint:x"],
                 "xlated_insns": 3, "jited_prog_len": 20, "verified_insns": 3,
                 "run_cnt": 30, "run_time_ns": 5000},
             8: {"name": "b", "type_name": "tracepoint", "attach": [], "xlated_insns": 2,
                 "jited_prog_len": 10, "verified_insns": 2, "run_cnt": 0, "run_time_ns": 0}}
    rows = kstats.program_deltas(before, after)
    assert rows[0]["run_cnt"] == 20 and rows[0]["ns_per_event"] == 200.0
    assert rows[1]["ns_per_event"] is None


def test_own_cpu_time_is_visible():
    assert kstats.task_cpu_ns(os.getpid()) > 0
    assert kstats.vm_hwm_kb(os.getpid()) > 0


BPF_ENABLE_STATS = 32


@pytest.mark.bpf
def test_tracer_programs_finds_an_attached_program():
    """A tracepoint program attached by this process is found with its attach point, and
    its run count follows the system calls made (statistics switched on through a
    BPF_ENABLE_STATS fd, which leaves the sysctl alone and ends when the fd is closed)."""
    from tinytrace import asm as a
    from tinytrace.kernel import attach, bpf, progs, tracefs
    if not tracefs.exists("syscalls", "sys_enter_getppid"):
        pytest.skip("no syscalls:sys_enter_getppid tracepoint")
    stats_fd = bpf.call(BPF_ENABLE_STATS, bytearray(struct.pack("<I", 0)))
    try:
        code = a.link([a.Mov.Imm(a.R0, 0), a.Exit()])
        with progs.load(code, "tracepoint", "ttb_test") as p:
            with attach.tracepoint(p, "syscalls", "sys_enter_getppid"):
                before = kstats.tracer_programs(os.getpid())
                mine = [i for i, v in before.items() if v["name"] == "ttb_test"]
                assert len(mine) == 1
                assert before[mine[0]]["attach"] == ["tracepoint:sys_enter_getppid"]
                assert before[mine[0]]["xlated_insns"] == 2
                for _ in range(500):
                    os.getppid()
                after = kstats.tracer_programs(os.getpid())
        rows = [r for r in kstats.program_deltas(before, after) if r["id"] == mine[0]]
        assert rows[0]["run_cnt"] >= 500
        assert rows[0]["run_time_ns"] > 0
    finally:
        os.close(stats_fd)
