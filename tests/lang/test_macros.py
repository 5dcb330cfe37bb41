"""Function-like macros (``#define MAX(a, b) ...``): expansion as the C preprocessor does it
in the common cases, and the locations of what comes from them and after them."""
import pytest

from tests.lang.test_parser import show
from tinytrace.lang.lexer import Lexer
from tinytrace.lang.parser import parse
from tinytrace.lang.source import LangError

DEFS = """#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIN(a, b) \\
    ((a) < (b) ? \\
     (a) : (b))
#define CLAMP(x, lo, hi) MIN(MAX(x, lo), hi)
#define SQ(x) ((x) * (x))
#define APPLY(f, x) f(x)
#define ALIAS MAX
#define ZERO() 0
#define SELF(x) SELF(x + 1)
#define PAIR(a, b) a, b
"""


def _value(expr):
    prog = parse(DEFS + "BEGIN { $r = %s; }" % expr)
    return show(prog.probes[0].body.stmts[0].value)


@pytest.mark.parametrize("expr,tree", [
    ("MAX(1, 2)", "(? (> 1 2) 1 2)"),
    ("SQ(1 + 2)", "(* (+ 1 2) (+ 1 2))"),
    ("MIN(3, pid)", "(? (< 3 pid) 3 pid)"),
    ("CLAMP(pid, 1, 9)", "(? (< (? (> pid 1) pid 1) 9) (? (> pid 1) pid 1) 9)"),
    ("MAX(MAX(1, 2), 3)", "(? (> (? (> 1 2) 1 2) 3) (? (> 1 2) 1 2) 3)"),
    ("APPLY(SQ, 4)", "(* 4 4)"),
    ("ALIAS(5, 6)", "(? (> 5 6) 5 6)"),
    ("ZERO() + 1", "(+ 0 1)"),
    ("SELF(1)", "SELF((+ 1 1))"),                  # not expanded in itself
    ("MAX((1, 2).0, f(3, 4))", "(? (> (tuple 1 2).0 f(3,4)) (tuple 1 2).0 f(3,4))"),                                     # commas inside parentheses
    ("MAX(PAIR(1, 2))", None),                             # arguments are counted first
])
def test_expansion(expr, tree):
    if tree is None:
        with pytest.raises(LangError) as e:
            _value(expr)
        assert "takes 2 arguments, 1 given" in e.value.message
        return
    assert _value(expr) == tree


def test_name_without_parentheses_is_a_plain_name():
    prog = parse("#define pid(x) 0\nBEGIN { $r = pid + pid(1); }")
    assert show(prog.probes[0].body.stmts[0].value) == "(+ pid 0)"


def test_undef():
    prog = parse("#define F(x) 1\n#undef F\nBEGIN { $r = F(2); }")
    assert show(prog.probes[0].body.stmts[0].value) == "F(2)"


def test_locations_of_the_expansion_and_after_it():
    prog = parse(DEFS + "BEGIN {\n  $r = MAX(pid,\n     tid);\n  $s = 1 +\n 2;\n}")
    line = DEFS.count("\n") + 2
    a, b = prog.probes[0].body.stmts
    assert a.value.loc == (line, 8)              # the body's tokens: the macro's use
    assert a.value.then.loc == (line, 12)        # an argument: where it was written
    assert a.value.orelse.loc == (line + 1, 6)
    assert b.value.loc == (line + 2, 10) and b.value.right.loc == (line + 3, 2)


def test_strings_in_arguments_keep_their_columns():
    lx = Lexer('#define F(s) s\n  F("a%d")')
    tok = lx.next()
    assert tok.kind == "str" and tok.loc == (2, 5) and tok.cols[:2] == [6, 7]
    lx = Lexer('#define G() "a%d"\n  G()')
    tok = lx.next()
    assert tok.loc == (2, 3) and tok.cols is None   # columns of the definition are not kept


def test_hash_in_strings_and_comments_is_fine():
    prog = parse('#define F(x) printf("#%d\\n", x) /* # */ // #\nBEGIN { F(1); }')
    assert show(prog.probes[0].body.stmts[0].expr) == "printf('#%d\\n',1)"
