"""tinytrace.script: the API tools use to run a language script and read it back."""
import os

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
