"""The lexer and parser: tree shapes, precedence, probe names, locations."""
import pytest

from tinytrace.lang import ast
from tinytrace.lang.lexer import Lexer
from tinytrace.lang.parser import parse
from tinytrace.lang.source import LangError


def body(text):
    return parse(text).probes[0].body.stmts


def expr(text):
    stmt = body("BEGIN { $r = %s; }" % text)[0]
    assert isinstance(stmt, ast.Assign)
    return stmt.value


def show(e):
    """A compact prefix form of an expression tree."""
    if isinstance(e, ast.Int):
        return str(e.value)
    if isinstance(e, ast.Str):
        return repr(e.value)
    if isinstance(e, ast.Builtin):
        return e.name
    if isinstance(e, ast.Var):
        return "$" + e.name
    if isinstance(e, ast.MapRef):
        return "@%s[%s]" % (e.name, ",".join(show(k) for k in e.keys))
    if isinstance(e, ast.Binop):
        return "(%s %s %s)" % (e.op, show(e.left), show(e.right))
    if isinstance(e, ast.Unop):
        return "(%s %s)" % (e.op, show(e.operand))
    if isinstance(e, ast.Ternary):
        return "(? %s %s %s)" % (show(e.cond), show(e.then), show(e.orelse))
    if isinstance(e, ast.Call):
        return "%s(%s)" % (e.name, ",".join(show(a) for a in e.args))
    if isinstance(e, ast.Field):
        return "%s%s%s" % (show(e.expr), "->" if e.arrow else ".", e.name)
    if isinstance(e, ast.Index):
        return "%s[%s]" % (show(e.expr), show(e.index))
    if isinstance(e, ast.Cast):
        return "((%s) %s)" % (e.typename, show(e.expr))
    if isinstance(e, ast.Tuple):
        return "(tuple %s)" % " ".join(show(x) for x in e.elems)
    if isinstance(e, ast.IncDec):
        return "(%s%s %s)" % ("pre" if e.prefix else "post", e.op, show(e.target))
    if isinstance(e, ast.PosParam):
        return "$%d" % e.index if e.index else "$#"
    raise AssertionError(e)


@pytest.mark.parametrize("text,tree", [
    ("1 + 2 * 3", "(+ 1 (* 2 3))"),
    ("(1 + 2) * 3", "(* (+ 1 2) 3)"),
    ("1 - 2 - 3", "(- (- 1 2) 3)"),
    ("a() || b() && c()", "(|| a() (&& b() c()))"),
    ("1 | 2 ^ 3 & 4", "(| 1 (^ 2 (& 3 4)))"),
    ("1 << 2 + 3", "(<< 1 (+ 2 3))"),
    ("1 < 2 == 3 > 4", "(== (< 1 2) (> 3 4))"),
    ("!pid == 0", "(== (! pid) 0)"),
    ("-pid * 2", "(* (- pid) 2)"),
    ("-5", "-5"),
    ("~0x10", "(~ 16)"),
    ("pid > 1 ? 2 : 3 ? 4 : 5", "(? (> pid 1) 2 (? 3 4 5))"),
    ("(uint32)-1", "((uint32) -1)"),
    ("(unsigned long)pid", "((unsigned long) pid)"),
    ("(uint8 *)$p", "((uint8*) $p)"),
    ("(pid)", "pid"),
    ("(1, \"a\", comm)", "(tuple 1 'a' comm)"),
    ("args->filename", "args->filename"),
    ("args.ret", "args.ret"),
    ("$t.1", "$t.1"),
    ("@m[pid, comm]", "@m[pid,comm]"),
    ("@", "@[]"),
    ("$x++", "(post++ $x)"),
    ("--@c[1]", "(pre-- @c[1])"),
    ("str(args->buf, 10)", "str(args->buf,10)"),
    ("args->a[2]", "args->a[2]"),
    ("1_000_000", "1000000"),
    ("0b101", "5"),
    ("010", "8"),
    ("1e3", "1000"),
    ("$1 + $#", "(+ $1 $#)"),
    ("\"a\\tb\\x41\\101\\\"\"", "'a\\tbAA\"'"),
])
def test_expression_trees(text, tree):
    assert show(expr(text)) == tree


def test_statements_and_blocks():
    stmts = body("""BEGIN {
        if (pid == 1) { @a = 1 } else if (pid == 2) { @a = 2; } else { @a = 3 }
        unroll(3) { $i++; }
        while ($i < 10) { $i += 2; if ($i > 5) { break } continue; }
        @x[1] <<= 2;
        delete(@x[1]);
        return;
    }""")
    kinds = [type(s).__name__ for s in stmts]
    assert kinds == ["If", "Unroll", "While", "Assign", "ExprStmt", "Jump"]
    assert isinstance(stmts[0].orelse, ast.If)
    assert isinstance(stmts[0].orelse.orelse, ast.Block)
    assert stmts[3].op == "<<="
    assert [type(s).__name__ for s in stmts[2].body.stmts] == ["Assign", "If", "Jump"]


def test_probe_names_and_predicates():
    prog = parse("""
tracepoint:syscalls:sys_enter_openat, t:syscalls:sys_enter_open* /pid == 1/ { @ = count() }
uprobe:/usr/lib/libc.so.6:malloc/pid == 2/ { }
interval:s:1{exit()}
BEGIN,END{}
""")
    names = [[ap.text for ap in p.points] for p in prog.probes]
    assert names == [["tracepoint:syscalls:sys_enter_openat", "t:syscalls:sys_enter_open*"],
                     ["uprobe:/usr/lib/libc.so.6:malloc"], ["interval:s:1"], ["BEGIN", "END"]]
    assert show(prog.probes[0].pred) == "(== pid 1)"
    assert show(prog.probes[1].pred) == "(== pid 2)"


def test_division_in_predicate_needs_parentheses():
    prog = parse("BEGIN /(pid / 2) == 1/ { }")
    assert show(prog.probes[0].pred) == "(== (/ pid 2) 1)"


def test_positional_parameters_in_probe_names():
    prog = parse("interval:s:$1 { } t:$2:* { }", ["5", "sched"])
    assert [p.points[0].text for p in prog.probes] == ["interval:s:5", "t:sched:*"]
    with pytest.raises(LangError) as e:
        parse("interval:s:$3 { }", ["1"])
    assert "$3" in e.value.message


def test_preprocessor_lines_and_comments():
    prog = parse("""#!/usr/bin/env bpftrace
#include <linux/sched.h>
#define TASK_RUNNING 0
#define LIMIT (TASK_RUNNING + 10)
// a comment
/* a block
   comment */
BEGIN { $x = LIMIT; }   # not a comment in the middle of a line is an error
""".replace("   # not a comment in the middle of a line is an error", ""))
    assert show(prog.probes[0].body.stmts[0].value) == "(+ 0 10)"
    assert prog.probes[0].loc == (8, 1)


def test_locations():
    prog = parse("BEGIN {\n  $x = pid +\n    comm;\n}")
    a = prog.probes[0].body.stmts[0]
    assert a.target.loc == (2, 3)
    assert a.value.loc == (2, 12)          # the operator
    assert a.value.right.loc == (3, 5)


def test_string_columns_map_escapes_back_to_the_source():
    tok = Lexer('  "a\\nb%d"').next()
    assert tok.value == "a\nb%d"
    assert tok.cols[:5] == [4, 5, 7, 8, 9]


@pytest.mark.parametrize("text,loc,fragment", [
    ("", (1, 1), "no probes"),
    ("BEGIN", (1, 6), "expected '{'"),
    ("BEGIN { ", (1, 9), "missing '}'"),
    ("BEGIN { @x[] = 1 }", (1, 12), "empty map key"),
    ("BEGIN { $x = (1 + 2; }", (1, 20), "expected ')'"),
    ("BEGIN { 'a' }", (1, 9), "character literals"),
    ("BEGIN { $x = 99999999999999999999999; }", (1, 14), "does not fit"),
    ("BEGIN { $ }", (1, 9), "'$' must be followed"),
    ("BEGIN { /* }", (1, 9), "unterminated comment"),
    ("#pragma once\nBEGIN {}", (1, 1), "unsupported preprocessor"),
    ("struct foo { int a; }", (1, 22), "expected ';' after the definition of struct foo"),
    ("enum e { A };", (1, 1), "no probes"),
    ("enum e { A = $x };", (1, 14), "must be a constant expression"),
    ("enum e { A, 1 };", (1, 13), "expected an enumerator name"),
    ("enum e { A", (1, 11), "expected ',' or '}' after enumerator A"),
    ("enum e { A,", (1, 12), "missing '}' to close enum e opened at 1:8"),
    ("BEGIN {} struct foo { int a; };", (1, 10), "must come before the first probe"),
    ("BEGIN { for (k : @m) { } }", (1, 14), "expected a variable ($name) after 'for ('"),
    ("BEGIN { for ($k in @m) { } }", (1, 17), "expected ':' after 'for ($k'"),
    ("BEGIN { for ($k : 1) { } }", (1, 20), "expected '..' after the start"),
    ("BEGIN { for ($k : 1..) { } }", (1, 22), "expected an expression"),
    ("BEGIN { for ($k : @m[1]) { } }", (1, 21), "a whole map"),
    ("BEGIN { for ($k : @m) }", (1, 23), "expected '{'"),
    ("BEGIN { else { } }", (1, 9), "'else' without"),
    ("BEGIN { return 1; }", (1, 16), "takes no value"),
    ("BEGIN { printf(\"a\" \"b\"); }", (1, 20), "expected ',' or ')'"),
    ("{ }", (1, 1), "expected a probe"),
])
def test_syntax_errors(text, loc, fragment):
    with pytest.raises(LangError) as e:
        parse(text)
    assert fragment in e.value.message
    assert e.value.loc == loc


def test_for_loops():
    prog = parse("END { for ($kv : @m) { print($kv.0); break; } $x = 1; }")
    stmts = prog.probes[0].body.stmts
    assert [type(s).__name__ for s in stmts] == ["For", "Assign"]
    f = stmts[0]
    assert (f.var.name, f.map.name, f.map.keys, f.loc) == ("kv", "m", [], (1, 7))
    assert [type(s).__name__ for s in f.body.stmts] == ["ExprStmt", "Jump"]


def test_for_ranges():
    prog = parse("BEGIN { for ($i : 0..5) { } for ($j : $a + 1..$b * 2) { } "
                 "for ($k : $t.0..$t.1) { } }")
    a, b, c = prog.probes[0].body.stmts
    assert a.map is None and (show(a.start), show(a.end)) == ("0", "5")
    assert (show(b.start), show(b.end)) == ("(+ $a 1)", "(* $b 2)")
    assert (show(c.start), show(c.end)) == ("$t.0", "$t.1")
