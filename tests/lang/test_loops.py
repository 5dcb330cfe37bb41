"""for loops as code: each body is a function after the probe's (``CallbackGen``), the
program lists its functions for BTF func_info, and kernels that cannot run them get one
clear error at the loop.  (What the loops compute is checked on the kernel by the run
corpus: ``for_map_walk``, ``for_jumps``, ``for_range``, ``for_perf_buffer``.)"""
import pytest

from tests.lang.fakeenv import FakeEnv
from tinytrace.lang import compiler
from tinytrace.lang.codegen import Target
from tinytrace.lang.source import ScriptError


def _compile(text, **target):
    env = FakeEnv()
    src, prog = compiler.check(text, "t.bt", env)
    return compiler.compile_program(src, prog, env, Target(**target))


def _labels(p):
    from tinytrace.asm import Label
    return [x.name for x in p.code if type(x) is Label]


def test_each_body_is_a_function_the_program_lists():
    comp = _compile("BEGIN { @a[1] = 1; for ($kv : @a) { for ($i : 0..$kv.1) { "
                    "printf(\"%d\\n\", $i); } } for ($j : 1..3) { @b = count(); } }")
    p = comp.programs[0]
    names = [n for _, n in p.functions]
    assert names == [None, "F1", "F2", "F3"], p.functions
    assert all(n in _labels(p) for n in names[1:])
    slots = [s for s, _ in p.functions]
    assert slots == sorted(slots) and slots[0] == 0


def test_a_program_without_loops_has_one_function():
    assert _compile("BEGIN { @a = 1; }").programs[0].functions is None


def test_shared_variables_travel_and_loop_variables_stay(monkeypatch):
    """The probe's variables the body mentions travel in the block after its 24-byte
    head: scalars by value, others (the string $s) by address.  $tmp and $kv are the
    body's own; $unused is not mentioned in the body."""
    from tinytrace.lang import codegen
    layouts = []
    real = codegen.CallbackGen.__init__

    def keep(self, parent, s, layout, label):
        layouts.append((label, layout))
        real(self, parent, s, layout, label)
    monkeypatch.setattr(codegen.CallbackGen, "__init__", keep)
    _compile('BEGIN { @a[1] = 1; $n = 0; $s = "x"; $unused = 2; for ($kv : @a) { '
             '$tmp = $kv.1; $n += $tmp; $s = "y"; } printf("%d %s %d\\n", $n, $s, $unused); }')
    assert layouts == [("F1", [("n", 24, True), ("s", 32, False)])]


@pytest.mark.parametrize("target,text,message,at", [
    ({"for_each": False}, "BEGIN { @a[1] = 1; for ($kv : @a) { } }", "need Linux 5.13", "for"),
    ({"bpf_loop": False}, "BEGIN { for ($i : 0..2) { } }", "need Linux 5.17", "for"),
    ({"callbacks": False}, "BEGIN { for ($i : 0..2) { } }", "32-bit JITs", "for"),
    ({"percpu_lookup": False}, "BEGIN { @c[1] = count(); for ($kv : @c) { } }",
     "Linux 5.19", "@c)"),
])
def test_kernels_without_what_loops_need(target, text, message, at):
    with pytest.raises(ScriptError) as e:
        _compile(text, **target)
    assert message in e.value.message
    assert (e.value.line, e.value.col) == (1, text.index(at) + 1)


def test_the_body_frame_counts_with_the_probes():
    """The verifier adds up the frames of a call chain: 12 strings in the probe and 12 in
    the body fit in 512 bytes, 12 and 20 do not, and the error is at the loop."""
    def text(n):
        probe = " ".join("$p%d = comm;" % i for i in range(12))
        body = " ".join("$b%d = comm;" % i for i in range(n))
        return "BEGIN { @a[1] = 1; %s for ($kv : @a) { %s } print($p0); }" % (probe, body)
    assert _compile(text(12)).programs[0].functions is not None
    with pytest.raises(ScriptError) as e:
        _compile(text(20))
    assert "the body of this for loop needs" in e.value.message
    assert e.value.col == text(20).index("for") + 1
