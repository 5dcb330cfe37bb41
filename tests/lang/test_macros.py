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


# -- conditional compilation -----------------------------------------------------------------

def _kept(text):
    """The values ``$r`` gets in the BEGIN probe of ``text``, in order."""
    prog = parse(text)
    return [show(s.value) for s in prog.probes[0].body.stmts]


@pytest.mark.parametrize("cond,kept", [
    ("1", True), ("0", False), ("LEVEL > 1", True), ("LEVEL >= 3", False),
    ("defined(LEVEL)", True), ("defined LEVEL && !defined(NOPE)", True),
    ("NOPE", False),                                  # names left after expansion are 0
    ("NOPE == 0 && TWICE(LEVEL) == 4", True),         # function-like macros expand
    ("(1 << 4) / 3 == 5 && -7 / 2 == -3 && -7 % 2 == -1", True),   # C division
    ("LEVEL ? 0 : 1", False), ("~0 == -1 && (3 ^ 1) == 2 && (6 & 3 | 8) == 10", True),
    ("0x10 == 16 && 010 == 8", True),
    # the operand C does not evaluate may divide by zero
    ("defined(N) && 100 / N", False), ("!defined(N) || 100 / N", True),
    ("defined(N) ? 100 / N : 1", True), ("1 || 1 / 0", True),
])
def test_if_expressions(cond, kept):
    text = ("#define LEVEL 2\n#define TWICE(x) ((x) * 2)\n"
            "BEGIN {\n#if %s\n  $r = 1;\n#endif\n  $r = 2;\n}" % cond)
    assert _kept(text) == (["1", "2"] if kept else ["2"])


def test_ifdef_ifndef_elif_else_and_nesting():
    text = """#define A 1
BEGIN {
#ifdef A
  $r = 1;
# ifndef B
  $r = 2;
# else
  $r = 3;
# endif
#elif 1
  $r = 4;
#else
  $r = 5;
#endif
#if 0
  $r = 6;
# if 1
  $r = 7;
# endif
#elif defined(A) && A == 1
  $r = 8;
#elif 1
  $r = 9;
#endif
}"""
    assert _kept(text) == ["1", "2", "8"]


def test_dropped_groups_are_not_looked_at():
    """Inside a group that is dropped, other directives (even unknown ones), #define and
    text that would not parse are skipped, as the C preprocessor does."""
    text = ("#ifdef NOT_DEFINED\n#error never\n#define X 5\n@@@ not a program\n#endif\n"
            "BEGIN { $r = X; }")
    assert _kept(text) == ["X"]


def test_conditionals_keep_locations():
    prog = parse("#if 0\nBEGIN { }\n#endif\nBEGIN {\n  $r = 1;\n}")
    assert prog.probes[0].loc == (4, 1)
    assert prog.probes[0].body.stmts[0].value.loc == (5, 8)


@pytest.mark.parametrize("text,loc,message", [
    ("#if 1\nBEGIN { }", (1, 1), "#if without #endif"),
    ("BEGIN { }\n#endif", (2, 1), "#endif without #if"),
    ("#else\nBEGIN { }", (1, 1), "#else without #if"),
    ("#if 1\n#else\n#else\n#endif\nBEGIN { }", (3, 1), "#else after #else"),
    ("#if 1\n#else\n#elif 1\n#endif\nBEGIN { }", (3, 1), "#elif after #else"),
    ("#if\n#endif\nBEGIN { }", (1, 1), "#if needs an expression"),
    ("#if 1 +\n#endif\nBEGIN { }", (1, 1), "#if: the expression ends too early"),
    ("#if (1\n#endif\nBEGIN { }", (1, 1), "#if: missing ')'"),
    ("#if 1 / 0\n#endif\nBEGIN { }", (1, 1), "#if: division by zero"),
    ("#if \"s\"\n#endif\nBEGIN { }", (1, 1), "#if: unexpected string literal"),
    ("#if defined(\n#endif\nBEGIN { }", (1, 1), "'defined' needs a macro name"),
    ("#ifdef 9x\n#endif\nBEGIN { }", (1, 1), "#ifdef needs a macro name"),
    ("  #if 1 2\n#endif\nBEGIN { }", (1, 3), "#if: unexpected number 2"),
    ("#ifndef ARCH\n#error define ARCH first\n#endif\nBEGIN { }", (2, 1),
     "#error define ARCH first"),
])
def test_conditional_errors(text, loc, message):
    with pytest.raises(LangError) as e:
        parse(text)
    assert message in e.value.message and e.value.loc == loc, (e.value.message, e.value.loc)


@pytest.mark.parametrize("text,kept", [
    # a comment in a dropped group may run over lines: a #endif inside it is no directive
    ("#if 0\n/* old code\n#endif\n*/\nBEGIN { $r = 7; }\n#endif\nBEGIN { $r = 1; }", ["1"]),
    # a comment opener inside a string of a dropped group opens nothing
    ('#if 0\nBEGIN { printf("/*"); }\n#endif\nBEGIN { $r = 1; }', ["1"]),
    ("#if 0\nBEGIN { $c = '/*'; }\n#endif\nBEGIN { $r = 1; }", ["1"]),
    # a directive's comment may close on a later line, and the directive goes on after it
    ("#if 1 /* kept\nbecause 1 */\nBEGIN { $r = 2; }\n#endif", ["2"]),
    ("BEGIN {\n#if 0 /* dropped unless\nwe add */ + 1\n$r = 2;\n#endif\n$r = 3; }",
     ["2", "3"]),
])
def test_comments_across_lines_in_conditionals(text, kept):
    assert _kept(text) == kept


def test_comments_in_dropped_groups_keep_locations():
    prog = parse("#if 0\n/* a\n#endif\n*/\n#endif\nBEGIN {\n  $r = 1;\n}")
    assert prog.probes[0].loc == (6, 1)
    assert prog.probes[0].body.stmts[0].value.loc == (7, 8)
    with pytest.raises(LangError) as e:
        parse("#if 0\nx /* never closed\n#endif\nBEGIN { }")
    assert e.value.message == "unterminated comment" and e.value.loc == (2, 3)
