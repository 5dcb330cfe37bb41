"""C enum definitions in scripts: values (implicit, explicit, negative, built from earlier
enumerators), the constants used by name, enums as struct members and in casts, and a
script's enumerator hiding the kernel's (BTF) constant of the same name."""
import pytest

from tests.lang.fakeenv import FakeEnv
from tinytrace.errors import SourceError
from tinytrace.lang import ast
from tinytrace.lang.clayout import Layouts
from tinytrace.lang.compiler import check
from tinytrace.lang.parser import parse
from tinytrace.lang.types import CStructT, IntT, PtrT

DEFS = """
enum tt_color { RED, GREEN = 5, BLUE, NEG = -3, AFTER, BIG = BLUE * 2 + (GREEN << 1), };
enum tt_flags { F_A = 1 << 0, F_B = 1 << 1, F_AB = F_A | F_B, F_TOP = 0xffffffff };
typedef enum { T_ZERO, T_ONE } tt_t;
struct tt_s { char c; enum tt_color color; enum tt_flags f; tt_t t;
              enum tt_inner { IN_A = 10, IN_B } inner; int arr[IN_B]; enum tt_undef u; };
"""


def _analyse(text):
    return check(DEFS + text, "t.bt", FakeEnv())[1]


def _values(text):
    prog = _analyse("BEGIN { %s }" % text)
    return [s.value for s in prog.probes[0].body.stmts]


def test_values():
    prog = parse(DEFS + "BEGIN { }")
    got = dict((k, v[0]) for k, v in prog.enumerators.items())
    assert got == {"RED": 0, "GREEN": 5, "BLUE": 6, "NEG": -3, "AFTER": -2, "BIG": 22,
                   "F_A": 1, "F_B": 2, "F_AB": 3, "F_TOP": 0xffffffff, "T_ZERO": 0,
                   "T_ONE": 1, "IN_A": 10, "IN_B": 11}
    enums = [d for d in prog.cdefs if isinstance(d, ast.CEnum)]
    assert [(e.name, e.signed) for e in enums] == [
        ("tt_color", True), ("tt_flags", False), (None, False), ("tt_inner", False)]
    assert prog.enumerators["GREEN"][1] == (2, 22)


def test_constant_expressions_follow_c():
    prog = parse("enum e { A = -7 / 2, B = -7 % 2, C = ~0, D = !A, E = A < 0 ? 100 : 200, "
                 "F = (A + B) * -2 };\nBEGIN { }")
    got = [prog.enumerators[n][0] for n in "ABCDEF"]
    assert got == [-3, -1, -1, 0, 100, 8]


def test_constants_by_name():
    vals = _values("$a = GREEN; $b = NEG; $c = F_TOP; $d = BIG + 1;")
    assert all(isinstance(v, ast.Int) for v in vals)
    assert [v.value for v in vals] == [5, -3, 0xffffffff, 23]


def test_enum_members_are_four_byte_ints():
    L = Layouts(parse(DEFS + "BEGIN { }").cdefs, long_size=8, machine="x86_64")
    st = CStructT(L.tags["tt_s"])
    offs = dict((n, L.member(st, n).offset) for n in ("c", "color", "f", "t", "inner", "arr",
                                                      "u"))
    assert offs == {"c": 0, "color": 4, "f": 8, "t": 12, "inner": 16, "arr": 20, "u": 64}
    assert st.size == 68
    assert L.member(st, "color").ty == IntT(32, True)     # has a negative value
    assert L.member(st, "f").ty == IntT(32, False)
    assert L.member(st, "u").ty == IntT(32, False)        # not defined: the kernel's way


def test_casts_and_sizeof():
    prog = _analyse("kprobe:vfs_read { $a = (enum tt_color)arg0; $b = (enum tt_flags)arg1; "
                    "$p = (enum tt_color *)arg2; $s = sizeof(enum tt_flags); "
                    "$m = (enum tt_color)-1; }")
    s = prog.probes[0].body.stmts
    assert s[0].value.ty == IntT(32, True) and s[1].value.ty == IntT(32, False)
    assert isinstance(s[2].value.ty, PtrT) and s[2].value.ty.pointee == IntT(32, True)
    assert s[3].value.value == 4
    assert s[4].value.ty == IntT(32, True)


def test_script_enumerator_hides_the_kernel_constant(monkeypatch):
    env = FakeEnv()
    monkeypatch.setattr(env, "enum_value", lambda name: 0 if name == "TASK_RUNNING" else None)
    prog = check("BEGIN { $a = TASK_RUNNING; }", "t.bt", env)[1]
    assert prog.probes[0].body.stmts[0].value.value == 0
    prog = check("enum tt { TASK_RUNNING = 9 };\nBEGIN { $a = TASK_RUNNING; }", "t.bt",
                 env)[1]
    assert prog.probes[0].body.stmts[0].value.value == 9


def test_enumerators_size_arrays_and_use_macros():
    prog = parse("#define BASE 40\nenum e { N = BASE + 2 };\nstruct s { char b[N]; };\n"
                 "BEGIN { }")
    L = Layouts(prog.cdefs, long_size=8, machine="x86_64")
    assert L.tags["s"].size == 42


@pytest.mark.parametrize("text,fragment", [
    ("enum e { A };\nBEGIN { $x = (enum f)1; }", "unknown enum f"),
    ("enum e { A };\nBEGIN { $x = sizeof(enum f); }", "unknown enum f"),
    ("enum e { retval };\nBEGIN { }", "enumerator 'retval' has the name of a builtin"),
])
def test_sema_errors(text, fragment):
    with pytest.raises(SourceError) as e:
        check(text, "t.bt", FakeEnv())
    assert fragment in str(e.value)
