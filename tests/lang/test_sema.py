"""Semantic analysis: types, maps across probes, providers, rewrites (no kernel needed)."""
import pytest

from tests.lang.fakeenv import FakeEnv
from tinytrace.errors import SourceError
from tinytrace.lang import ast
from tinytrace.lang.compiler import check
from tinytrace.lang.types import (INT32, INT64, UINT32, UINT64, AggT, PtrT, StrT, TupleT,
                                  common_int, hist_buckets, lhist_buckets, IntT)


def analyse(text, params=(), **kw):
    return check(text, "test.bt", FakeEnv(params=params, **kw))[1]


def value_of(text, **kw):
    """The analysed value of ``$r = EXPR`` in a BEGIN probe."""
    prog = analyse("BEGIN { $r = %s; }" % text, **kw)
    return prog.probes[0].body.stmts[0].value


def test_c_conversions():
    assert common_int(IntT(8, False), IntT(16, True)) == INT32
    assert common_int(UINT32, INT32) == UINT32
    assert common_int(UINT32, INT64) == INT64
    assert common_int(UINT64, INT64) == UINT64


@pytest.mark.parametrize("text,ty", [
    ("1", INT64),
    ("pid", UINT32),
    ("pid + 1", INT64),
    ("pid + (uint32)1", UINT32),
    ("(uint8)pid + (uint8)1", INT32),
    ("nsecs - 5", UINT64),
    ("pid == 3", INT64),
    ("comm", StrT(16)),
    ("\"abc\"", StrT(4)),
    ("(1, comm)", TupleT([INT64, StrT(16)])),
    ("pid > 0 ? \"a\" : \"bcd\"", StrT(4)),
    ("str(0, 10)", StrT(11)),
    ("str(0)", StrT(64)),
])
def test_expression_types(text, ty):
    assert value_of(text).ty == ty


def test_strlen_follows_the_environment_setting():
    assert value_of("str(0)", strlen=32).ty == StrT(32)


def test_constant_folding():
    for text, value in [("1 + 2 * 3", 7), ("-7 / 2", -3), ("-7 % 2", -1), ("1 << 4", 16),
                        ("!0", 1), ("~0", -1), ("1 && 0", 0), ("(3 > 2) + 1", 2),
                        ("\"a\" == \"a\"", 1), ("sizeof(uint16)", 2), ("sizeof(comm)", 16)]:
        v = value_of(text)
        assert isinstance(v, ast.Int), text
        assert v.value == value, text


def test_positional_parameters():
    assert value_of("$1 + 1", params=["41"]).value == 42
    assert value_of("$#", params=["a", "b"]).value == 2
    assert value_of("$3", params=["1"]).value == 0
    s = value_of("str($1)", params=["hello"])
    assert isinstance(s, ast.Str) and s.value == "hello"
    assert value_of("str($1, 3)", params=["hello"]).value == "hel"
    assert value_of("0x10 + $1", params=["0x10"]).value == 32


def test_map_types_join_across_probes():
    prog = analyse("""
BEGIN { @x[(uint8)1] = (uint16)5; @s = "ab"; }
END { @x[pid] = (int32)-1; @s = comm; @y = @z + 1; }
interval:s:1 { @z = 3; @c[comm, pid] = count(); @h = hist(pid); @l = lhist(pid, 0, 100, 10); }
""")
    m = prog.maps
    assert m["x"].key == UINT32 and m["x"].value == INT32
    assert m["s"].value == StrT(16) and m["s"].keyless
    assert m["y"].value == INT64          # read @z before the probe that assigns it
    assert m["c"].key == TupleT([StrT(16), UINT32]) and m["c"].nkeys == 2
    assert m["c"].value == AggT("count")
    assert m["h"].value == AggT("hist", UINT32, (0,))
    assert m["l"].value.params == (0, 100, 10)
    assert m["l"].value.slots == 12


def test_bucket_counts_match_the_output_layout():
    # hist: negative, zero, then one per power of two up to 2**63
    assert hist_buckets(0) == 66
    assert hist_buckets(2) == 253
    assert lhist_buckets(0, 10, 3) == 5


def test_variables_are_per_probe_and_typed_by_their_assignments():
    prog = analyse("BEGIN { $a = (int8)1; $a = 300; $s = \"x\"; $s = comm; } "
                   "END { $a = comm; }")
    begin, end = prog.probes
    assert begin.vars["a"].ty == INT64
    assert begin.vars["s"].ty == StrT(16)
    assert end.vars["a"].ty == StrT(16)


def test_tracepoint_args_and_groups():
    prog = analyse("tracepoint:syscalls:sys_enter_openat { printf(\"%s\\n\", "
                   "str(args->filename)); }")
    p = prog.probes[0]
    call = p.body.stmts[0].expr
    arg = call.args[1]
    assert arg.ty == StrT(64)
    assert arg.info["user"] is True      # syscall arguments are user pointers
    f = arg.args[0]
    assert f.ty == PtrT(IntT(8, True), True) and f.field.offset == 24
    assert p.used == {"args": {"filename"}}


def test_wildcards_share_programs_unless_the_layout_differs():
    prog = analyse("t:syscalls:sys_e*_read { @[probe] = count(); }")
    assert [len(ts) for _, ts in prog.probes[0].groups] == [2]
    prog = analyse("t:syscalls:sys_enter_* { @[args->__syscall_nr] = count(); }")
    groups = prog.probes[0].groups
    assert sum(len(ts) for _, ts in groups) == 3
    # __syscall_nr sits at offset 8 in every syscall record: one program
    assert len(groups) == 1


def test_data_loc_and_char_array_fields_are_strings():
    prog = analyse("t:sched:sched_process_exec { @[args->filename] = count(); } "
                   "t:sched:sched_switch { @n[args->next_comm] = count(); }")
    assert prog.maps[""].key == StrT(64)
    assert prog.maps["n"].key == StrT(16)


def test_field_types_must_agree_across_matches():
    with pytest.raises(SourceError) as e:
        analyse("t:syscalls:sys_enter_read, t:syscalls:sys_enter_openat { @ = args->flags }")
    assert "no field named 'flags'" in str(e.value)


def test_printf_arguments_keep_the_parsed_format():
    prog = analyse('BEGIN { printf("%-5d|%s|%x\\n", pid, comm, 255); }')
    call = prog.probes[0].body.stmts[0].expr
    assert [s.conv for s in call.info["format"].specs] == ["d", "s", "x"]


def test_errors_point_into_the_format_string():
    with pytest.raises(SourceError) as e:
        analyse('BEGIN {\n  printf("\\t%d %q\\n", 1, 2); }')
    assert (e.value.line, e.value.col) == (2, 16)


def test_error_text_is_one_line_plus_source_and_caret():
    with pytest.raises(SourceError) as e:
        analyse("BEGIN {\n\t@x = pidd;\n}")
    lines = str(e.value).split("\n")
    assert lines[0] == "test.bt:2:7: error: unknown identifier 'pidd'; did you mean 'pid'?"
    assert lines[1] == " @x = pidd;"
    assert lines[2] == "      ^"


def test_cpid_needs_a_command():
    assert value_of("cpid", cpid=123).ty == UINT32


def test_unsafe_functions_with_unsafe():
    analyse("BEGIN { signal(\"KILL\"); system(\"true\"); }", unsafe=True)
