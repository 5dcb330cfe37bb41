"""tinytrace.script: the API tools use to run a language script and read it back."""
import os
import threading

import pytest

from tinytrace.script import Script, log2_slots


def test_log2_slots_map_bpftrace_buckets_onto_bcc_slots():
    # bpftrace: [neg, 0, 1, [2,4), [4,8) ...]; BCC: slot 1 = 0..1, slot 2 = 2..3, slot 3 = 4..7
    assert log2_slots([5, 1, 2, 3, 4]) == {1: 3, 2: 3, 3: 4}
    assert log2_slots({4: 7}) == {3: 7}
    assert log2_slots([]) == {}


@pytest.mark.bpf
def test_printf_values_and_maps_reach_the_tool():
    got = []
    me = os.getpid()
    s = Script('tracepoint:syscalls:sys_enter_openat /pid == %d/ '
               '{ printf("%%s\\n", str(args->filename)); @n[comm] = count(); }' % me,
               tool="test")
    s.on_printf(lambda values, index: got.append((values, index)))
    with s.start():
        for i in range(3):
            try:
                os.close(os.open("/nonexistent/tt-script-%d" % i, os.O_RDONLY))
            except OSError:
                pass
        s.drain()
        counts = s.read("@n")
        s.clear("@n")
        assert s.read("@n") == {}
    names = [v[0] for v, i in got if v[0].startswith(b"/nonexistent/tt-script-")]
    assert names == [b"/nonexistent/tt-script-%d" % i for i in range(3)]
    assert all(i == 0 for _, i in got)
    assert sum(counts.values()) >= 3


def _ringbuf_output_flags(script, ringbuf):
    """The flags argument (r4) of each bpf_ringbuf_output call, per program."""
    from tinytrace.asm import disassemble
    from tinytrace.lang import compiler
    from tinytrace.lang.codegen import Target
    comp = compiler.compile_program(script.source, script.program, script.env,
                                    target=Target(ringbuf=ringbuf))
    flags = {}
    for p in comp.programs:
        lines = disassemble(p.code, numbers=False).splitlines()
        got = []
        for i, line in enumerate(lines):
            if "ringbuf_output" in line or "perf_event_output" in line:
                r4 = [x for x in lines[:i] if x.strip().startswith("r4 = ")]
                got.append(r4[-1].split("=")[1].strip() if "ringbuf" in line else "perf")
        flags[p.name] = got
    return flags


DEFERRED = ('tracepoint:syscalls:sys_enter_openat { printf("a %d\\n", pid); '
            'printf("b %d\\n", tid); }\n'
            'tracepoint:syscalls:sys_exit_openat { printf("c %d\\n", args->ret); }\n')


@pytest.mark.bpf
def test_deferred_printfs_do_not_wake_the_reader_and_the_others_force_it():
    plain = _ringbuf_output_flags(Script(DEFERRED, tool="test"), True)
    assert sorted(plain.values()) == [["0"], ["0", "0"]]
    flags = _ringbuf_output_flags(Script(DEFERRED, tool="test", deferred=(0, 1)), True)
    # BPF_RB_NO_WAKEUP (1) for printf 0 and 1, BPF_RB_FORCE_WAKEUP (2) for printf 2
    assert sorted(flags.values()) == [["1", "1"], ["2"]]
    flags = _ringbuf_output_flags(Script(DEFERRED, tool="test", deferred=(1,)), True)
    assert sorted(flags.values()) == [["2"], ["2", "1"]]
    # a perf buffer has no such flags: unchanged
    flags = _ringbuf_output_flags(Script(DEFERRED, tool="test", deferred=(0, 1)), False)
    assert sorted(flags.values()) == [["perf"], ["perf", "perf"]]


@pytest.mark.bpf
def test_deferred_records_arrive_with_the_next_one():
    tid = threading.get_native_id() if hasattr(threading, "get_native_id") else None
    if tid is None:
        pytest.skip("needs threading.get_native_id (Python 3.8)")
    got = []
    s = Script('tracepoint:syscalls:sys_enter_openat /tid == %d/ '
               '{ printf("%%s\\n", str(args->filename)); }\n'
               'tracepoint:syscalls:sys_exit_openat /tid == %d/ { printf("%%d\\n", args->ret); }\n'
               % (tid, tid), tool="test", deferred=(0,))
    s.on_printf(lambda values, index: got.append((index, values[0])))
    with s.start():
        for i in range(3):
            try:
                os.close(os.open("/nonexistent/tt-deferred-%d" % i, os.O_RDONLY))
            except OSError:
                pass
        s.drain()
    mine = [n for n, (i, v) in enumerate(got)
            if i == 0 and v.startswith(b"/nonexistent/tt-deferred-")]
    assert [got[n][1] for n in mine] == [b"/nonexistent/tt-deferred-%d" % i for i in range(3)]
    for n in mine:       # each deferred record is followed by its (waking) exit record
        assert got[n + 1] == (1, -2), got
