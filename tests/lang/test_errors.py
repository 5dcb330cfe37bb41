"""The error corpus: malformed and ill-typed programs, each rejected before anything is
loaded with one ``file:line:col: error: ...`` line, the source line and a caret, exit 2."""
import os
import re
import subprocess
import sys

import pytest

from tests.lang.fakeenv import FakeEnv
from tinytrace import cli
from tinytrace.lang import command

# 33 string variables (16 bytes each) or 22 string comparisons held at once: > 512 bytes
_MANY_VARS = "BEGIN { " + " ".join("$v%d = comm;" % i for i in range(33)) + " exit(); }"
_MANY_CALLS = 'BEGIN { printf("%%d\\n", %s); exit(); }' % " + ".join(
    'strncmp(comm, "%s", 1)' % chr(97 + i) for i in range(22))

def _c(program, at, fragment):
    """A one-line corpus entry whose error is at the first ``at`` in ``program``."""
    return (program, 1, program.index(at) + 1, fragment)


# (program, line, column, fragment of the message)
CORPUS = [
    ('BEGIN { printf("hi\\n")', 1, 23, "found end of input"),
    ("BEGIN { $x = ; }", 1, 14, "expected an expression"),
    ("BEGIN { @x = 1 @y = 2 }", 1, 16, "expected ';' or '}'"),
    ('BEGIN { printf("%d\\n"); }', 1, 9, "Not enough arguments"),
    ('BEGIN { printf("%d\\n", 1, 2); }', 1, 9, "Too many arguments"),
    ('BEGIN { printf("%d %d\\n", 1, "s"); }', 1, 20, "%d expects an integer"),
    ('BEGIN { printf("%d %z\\n", 1, 2); }', 1, 20, "unknown format specifier"),
    ('BEGIN { $x = 1; $x = "a"; }', 1, 22, "type mismatch for $x"),
    ('BEGIN { @x = 1; } END { @x = "a"; }', 1, 30, "type mismatch for @x"),
    ("BEGIN { @x = count(); @x = 1; }", 1, 28, "holds count()"),
    ("BEGIN { print($y); }", 1, 15, "$y is used before it is assigned"),
    ("BEGIN { print(@nope); }", 1, 15, "never assigned"),
    ("BEGIN { @x[1] = 1; @x[1, 2] = 2; }", 1, 20, "2 keys here but with 1 key"),
    ('BEGIN { @x["a"] = 1; @x[1] = 2; }', 1, 22, "key of type int64 here but string[2]"),
    ("tracepoint:syscalls:sys_enter_opnat { }", 1, 1, "did you mean 'sys_enter_openat'"),
    ("tracepoint:sched:sched_switch { print(args->prev_pd); }", 1, 45,
     "did you mean 'prev_pid'"),
    ("tracepoint:nosuchcat:x { }", 1, 1, "unknown tracepoint category"),
    ("tracepoint:sched { }", 1, 1, "tracepoint:CATEGORY:NAME"),
    ("foo:bar { }", 1, 1, "unknown probe type 'foo'"),
    ("kprobe:vfs_raed { }", 1, 1, "unknown kernel function 'vfs_raed'; did you mean "
     "'vfs_read'"),
    ("kprobe:nosuch_* { }", 1, 1, "no probeable kernel function matches nosuch_*"),
    ("kretprobe:vfs_read+4 { }", 1, 1, "a kretprobe cannot have an offset"),
    ("kprobe:vfs_read { print(retval); }", 1, 25, "retval is not available in kprobe"),
    ("kretprobe:vfs_read { print(arg0); }", 1, 28, "arg0 is not available in kretprobe"),
    ("kprobe:vfs_read+x { }", 1, 1, "must be a number"),
    ("uprobe:/bin/sh:no_such_function_here { }", 1, 1, "no function 'no_such_function_here'"),
    ("uprobe:/nonexistent/bin:main { }", 1, 1, "no such file"),
    ("uretprobe:/bin/sh:0x1000 { }", 1, 1, "not an address"),
    ("uprobe:/bin/sh { }", 1, 1, "uprobe probes are written"),
    ("usdt:/bin/sh:python:nothing { }", 1, 1, "usdt probe python:nothing not found"),
    ("usdt:python { }", 1, 1, "usdt probes are written"),
    ("hardware:cache-misses:1000 { }", 1, 1, "no hardware performance counters"),
    ("config = { max_map_keys = 0 } BEGIN { }", 1, 12, "max_map_keys must be from 1"),
    ("config = { max_mapkeys = 10 } BEGIN { }", 1, 12, "did you mean 'max_map_keys'"),
    ("config = { stack_mode = fancy } BEGIN { }", 1, 12, "stack_mode must be one of"),
    ("BEGIN { } config = { max_map_keys = 10 }", 1, 11, "before the first probe"),
    ("config = { max_map_keys 10 } BEGIN { }", 1, 25, "expected '=' after"),
    ("BEGIN { @h = hist(1); print(@h + 1); }", 1, 29, "can only be printed, not read"),
    ("BEGIN { print(path(0)); }", 1, 15, "only available in kfunc/kretfunc probes"),
    ("kfunc:ext4:ext4_sync_file { }", 1, 1, "module functions"),
    ('BEGIN { $s = "abc"; print(macaddr($s)); }', 1, 35, "needs six bytes"),
    ("BEGIN { print(offsetof(pid, x)); }", 1, 24, "takes a struct type first"),
    ("interval:s:0 { }", 1, 1, "positive whole number"),
    ("interval:xs:1 { }", 1, 1, "unknown interval unit"),
    ("software:pagefaults:1 { }", 1, 1, "did you mean 'page-faults'"),
    ("BEGIN { print(pidd); }", 1, 15, "did you mean 'pid'"),
    ("interval:s:1 { print(args->x); }", 1, 22, "args is not available in interval"),
    ("BEGIN { print(retval); }", 1, 15, "retval is not available in BEGIN"),
    ("BEGIN { @x = count() + 1; }", 1, 14, "must be assigned to a map"),
    ("BEGIN { count(); }", 1, 9, "must be assigned to a map"),
    ('BEGIN { $x = printf("a"); }', 1, 14, "has no value"),
    ('BEGIN { if ("a") { } }', 1, 13, "must be an integer"),
    ('BEGIN { $x = "a" < comm; }', 1, 18, "only be compared with == and !="),
    ("BEGIN { $x = comm == 1; }", 1, 19, "cannot compare a string"),
    ("BEGIN { unroll(0) { } }", 1, 16, "between 1 and 100"),
    ("BEGIN { $n = 3; unroll($n) { } }", 1, 24, "constant count"),
    ("BEGIN { break; }", 1, 9, "outside of a loop"),
    _c("BEGIN { @m = 1; for ($kv : @m) { } }", "@m)", "a map with keys; @m has none"),
    _c("BEGIN { @m[1] = hist(2); for ($kv : @m) { } }", "@m)", "holds hist()"),
    _c("BEGIN { for ($kv : @m) { } }", "@m)", "never assigned"),
    _c("BEGIN { @m[1] = 1; $kv = 2; for ($kv : @m) { } }", "$kv :",
       "the loop variable $kv is already a variable"),
    _c("BEGIN { @m[1] = 1; for ($kv : @m) { } print($kv); }", "$kv)",
       "$kv is used before it is assigned"),
    ("iter:task:/sys/fs/bpf/it { }", 1, 1, "iter probes cannot be pinned here"),
    ("iter: { }", 1, 1, "iter probes are written iter:NAME"),
    _c('BEGIN { for ($i : 0..comm) { } }', "comm", "the end of a for range must be an integer"),
    _c('BEGIN { $i = 1; for ($i : 0..3) { } }', "$i :", "already a variable"),
    # each loop's $kv has its own type: the second one's key is a string
    _c('BEGIN { @m[1] = 1; @s["a"] = 1; for ($kv : @m) { $x = $kv.0 + 1; } '
       'for ($kv : @s) { $y = $kv.0 + 1; } }', '+ 1; } }', "not '+'"),
    ("BEGIN { $x = pid / 0; }", 1, 20, "division by zero"),
    ("BEGIN { signal(9); }", 1, 9, "needs --unsafe"),
    ('BEGIN { system("ls"); }', 1, 9, "needs --unsafe"),
    ("BEGIN { @x = lhist(1, 10, 0, 1); }", 1, 27, "greater than the minimum"),
    ("BEGIN { @x = hist(1, 9); }", 1, 22, "between 0 and 5"),
    ('BEGIN { prinf("x"); }', 1, 9, "'printf'?"),
    ('BEGIN { printf("%d\\n", cpid); }', 1, 24, "only available with -c"),
    ("BEGIN { $x = (struct nosuchstruct *)curtask; }", 1, 14, "struct nosuchstruct"),
    ("BEGIN { $x = 1; print($x.foo); }", 1, 26, "int64 has no fields"),
    ("BEGIN { $t = (1, 2); print($t.5); }", 1, 31, "out of range"),
    ('BEGIN { printf("%s\\n", str(comm, 0)); }', 1, 34, "at least 1"),
    ('BEGIN { printf("%d\\n", $1); }', 1, 24, "not a number; use str($1)"),
    ("BEGIN { x = 1; }", 1, 9, "left side of '='"),
    ("BEGIN { 1 + 2; }", 1, 11, "no effect"),
    ('BEGIN { printf("unterminated); }', 1, 16, "unterminated string"),
    ("BEGIN { $x = 0x; }", 1, 14, "invalid number"),
    ("BEGIN { @x = 1; @y = @x[1]; }", 1, 22, "1 key here but with no key"),
    ("BEGIN { $x = args->foo; }", 1, 14, "args is not available in BEGIN"),
    ("BEGIN {} BEGIN {}", 1, 10, "only one BEGIN"),
    ('BEGIN { printf("%f\\n", 1); }', 1, 17, "only integers"),
    ('tracepoint:syscalls:sys_enter_openat /args->filename == "x"/ {}', 1, 54,
     "cannot compare a string with int8 *"),
    ("BEGIN { delete(@nope[1]); }", 1, 16, "never assigned"),
    ("BEGIN { @x[1] = 1; clear(@x[1]); }", 1, 26, "takes the whole map"),
    ('BEGIN { @x = sum("a"); }', 1, 18, "must be an integer"),
    ("BEGIN { print(1, 2); }", 1, 18, "takes one argument"),
    ('BEGIN { exit("no"); }', 1, 14, "exit code"),
    ("BEGIN { $x = -comm; }", 1, 14, "'-' needs an integer"),
    ('BEGIN { $x = 1 ? 2 : "a"; }', 1, 16, "different types"),
    ("tracepoint:sched:sched_switch /pid == 1 { }", 1, 41, "close the predicate"),
    ("BEGIN { @m[1] = 2 ]; }", 1, 19, "expected ';' or '}'"),
    ("BEGIN { ++5; }", 1, 9, "needs a variable"),
    ("rawtracepoint:sched_swich { }", 1, 1, "did you mean 'sched_switch'"),
    ("BEGIN { $x = kstack(3, 4); }", 1, 21, "is the mode"),
    ("BEGIN {\n  @a = 1;\n  @a[2] = 1;\n}", 3, 3, "1 key here but with no key"),
    # function-like macros: errors at the use site, lines after a macro unshifted
    ("#define MAX(a, b) ((a) > (b) ? (a) : (b))\nBEGIN { $x = MAX(1, 2, 3); }", 2, 14,
     "macro MAX takes 2 arguments, 3 given"),
    ("#define MAX(a, b) ((a) > (b) ? (a) : (b))\nBEGIN { $x = MAX(1); }", 2, 14,
     "macro MAX takes 2 arguments, 1 given"),
    ("#define MAX(a, b) ((a) > (b) ? (a) : (b))\nBEGIN { $x = MAX(1, (2); }", 2, 14,
     "unterminated argument list of macro MAX"),
    ("#define S(a) #a\nBEGIN { }", 1, 1, "the # and ## operators are not supported"),
    ("#define C(a, b) a ## b\nBEGIN { }", 1, 1, "the # and ## operators are not supported"),
    ("#define V(...) 1\nBEGIN { }", 1, 1, "variadic macros are not supported"),
    ("#define F(a, a) a\nBEGIN { }", 1, 1, "duplicate parameter 'a'"),
    # conditional compilation: at the directive; kept lines keep their own places
    ("#ifdef DEBUG\nBEGIN { }\n", 1, 1, "#ifdef without #endif"),
    ("BEGIN { }\n  #elif 1\n", 2, 3, "#elif without #if"),
    ("#if 2 * (3\n#endif\nBEGIN { }", 1, 1, "#if: missing ')'"),
    ("#if 0\nBEGIN { }\n#else\nBEGIN { $x = nope; }\n#endif", 4, 14,
     "unknown identifier 'nope'"),
    ("#if !defined(ARCH)\n# error set ARCH\n#endif\nBEGIN { }", 2, 1, "#error set ARCH"),
    ("#define F(a) (a + 1)\nBEGIN { $x = F(\"s\"); }", 2, 14, "strings can only be"),
    ("#define ADD(a, b) \\\n  ((a) + \\\n   (b))\nBEGIN { $x = ADD(1,\n  2); $y = nope; }",
     5, 12, "unknown identifier 'nope'"),
    ("#define F(a) a\nBEGIN { $x = F(1) + comm; }", 2, 19, "strings can only be"),
    ("BEGIN { $x = \"a\" + 1; }", 1, 18, "strings can only be compared"),
    ("BEGIN { @x = 1; printf(\"%d\\n\", len(@x)); }", 1, 36, "@x has none"),
    # C struct definitions (tinytrace.lang.cparse / clayout)
    _c("struct s { int aa; }; BEGIN { $p = (struct s *)0; print($p->ab); }", "ab)",
       "struct s has no member named 'ab'; did you mean 'aa'"),
    _c("struct s { foo_t a; }; BEGIN { }", "foo_t", "unknown type 'foo_t'"),
    _c("struct s { int a; long a; }; BEGIN { }", "a; }", "duplicate member 'a' in struct s"),
    _c("struct s { int a; union { char b; short a; }; }; BEGIN { }", "union {",
       "duplicate member 'a'"),
    _c("struct s { int a; }; struct s { int b; }; BEGIN { }", "struct s { int b",
       "redefinition of struct s"),
    _c("struct s { int a; struct s in; }; BEGIN { }", "struct s in",
       "struct s contains itself"),
    _c("struct s { struct t x; }; BEGIN { }", "struct t", "struct t is not defined here"),
    _c("struct s { void (*f[2])(void); }; BEGIN { }", "[2]",
       "only plain function pointers"),
    _c("struct s { char *p:3; }; BEGIN { }", "p:3", "must have an integer type"),
    _c("struct s { char c:9; }; BEGIN { }", "c:9", "9 bits wide, more than its type's 8"),
    _c("struct s { int n; char d[]; }; BEGIN { }", "[]", "flexible array members"),
    _c("struct s { int n[x]; }; BEGIN { }", "x]", "an array size must be a number"),
    _c("union u { int a; }; BEGIN { $p = (struct u *)0; }", "(struct", "u is a union"),
    _c("struct s { int a; } v; BEGIN { }", "v;", "declaring variables"),
    # C enum definitions
    _c("enum e { A, B, A }; BEGIN { }", "A }", "duplicate enumerator 'A' (first defined at 1:10)"),
    ("enum e { A }; enum f { B, A }; BEGIN { }", 1, 27, "duplicate enumerator 'A'"),
    _c("enum e { A }; enum e { B }; BEGIN { }", "enum e { B", "redefinition of enum e"),
    _c("enum e { A = 0x100000000 }; BEGIN { }", "A =", "enumerator A = 4294967296 is out of "
       "range"),
    _c("enum e { A = -1, B = 0x80000000 }; BEGIN { }", "B =", "B = 2147483648 is out of range"),
    _c("enum e { A = 0xffffffff, B }; BEGIN { }", "B }", "B = 4294967296 is out of range"),
    _c("enum e { A = B }; BEGIN { }", "B }", "'B' is not a constant"),
    _c("enum e { A = 1 / 0 }; BEGIN { }", "/ 0", "division by zero"),
    _c("struct e { int a; }; enum e { A }; BEGIN { }", "enum", "first declared as a struct"),
    _c("enum e { pid }; BEGIN { }", "pid", "enumerator 'pid' has the name of a builtin"),
    _c("enum e { A }; BEGIN { $x = (enum f)A; }", "(enum f)", "unknown enum f"),
    # found by the code generator: the 512-byte stack
    (_MANY_VARS, 1, _MANY_VARS.index("$v31") + 1, "BPF stack would need 520 bytes"),
    (_MANY_CALLS, 1, 9, "BPF stack would need"),
]


@pytest.fixture
def fake_env(monkeypatch):
    monkeypatch.setattr(command, "make_env", lambda o, cpid=None: FakeEnv(
        params=o.params, unsafe=o.unsafe, cpid=cpid, pid=o.pid))

    def no_run(*args):
        raise AssertionError("the program was accepted and would have run")
    from tinytrace.lang import runtime
    monkeypatch.setattr(runtime.Runtime, "run", no_run)


@pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"), reason="no kernel BTF")
@pytest.mark.parametrize("program,line,col,fragment", [
    ('BEGIN { printf("%d\\n", curtask->pidd); }', 1, 33, "did you mean 'pid'"),
    ('BEGIN { printf("%d\\n", curtask->se.vruntim); }', 1, 36, "did you mean 'vruntime'"),
    ('BEGIN { $p = curtask->comm->x; }', 1, 29, "string[16] has no fields"),
    ('BEGIN { $t = *curtask; }', 1, 14, "a whole struct (struct task_struct) cannot"),
    ("kfunc:vfs_raed { }", 1, 1, "has no function 'vfs_raed'; did you mean 'vfs_read'"),
    ("kfunc:vfs_read { print(retval); }", 1, 24, "retval is not available in kfunc"),
    ("kfunc:vfs_read { print(args->cont); }", 1, 30, "did you mean 'count'"),
    ("rawtracepoint:sched_switch { print(args->prevv); }", 1, 42, "did you mean 'prev'"),
    ("iter:tsk { }", 1, 1, "this kernel has no iterator 'tsk'; did you mean 'task'"),
    ("iter:task { print(ctx->tsk); }", 1, 24, "iter:task has no field named 'tsk'; did you "
     "mean 'task'"),
    ("iter:task { print(retval); }", 1, 19, "retval is not available in iter probes"),
    ("iter:bpf_map_elem { }", 1, 1, "walks the contents of a BPF map, which an iter probe "
     "cannot name"),
])
def test_btf_error(program, line, col, fragment, fake_env, capsys):
    rc = cli.main(["-e", program])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("stdin:%d:%d: error: " % (line, col)), err
    assert fragment in err.split("\n")[0], err


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("program,line,col,fragment", CORPUS)
def test_error(program, line, col, fragment, fake_env, capsys):
    rc = cli.main(["-e", program, "abc"])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 3, err
    head = "stdin:%d:%d: error: " % (line, col)
    assert lines[0].startswith(head), err
    assert fragment in lines[0], err
    assert lines[1] == program.split("\n")[line - 1]
    assert lines[2] == " " * (col - 1) + "^"
    assert "Traceback" not in err


def test_script_file_name_is_reported(tmp_path, fake_env, capsys):
    script = tmp_path / "bad.bt"
    script.write_text("BEGIN {\n  @x = nope;\n}\n")
    rc = cli.main([str(script)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("%s:2:8: error: unknown identifier 'nope'" % script)


@pytest.mark.parametrize("argv,fragment", [
    (["-f", "xml", "-e", "BEGIN {}"], "-f must be text or json"),
    (["-e"], "option -e needs a value"),
    (["-Z", "-e", "BEGIN {}"], "unknown option -Z"),
    (["--frobnicate"], "unknown option --frobnicate"),
    (["-p", "abc", "-e", "BEGIN {}"], "-p needs a process id"),
    (["/nonexistent/script.bt"], "cannot read /nonexistent/script.bt"),
    (["-e", "BEGIN {}", "-e", "END {}"], "-e may be given only once"),
    (["-q"], "no program"),
])
def test_bad_options(argv, fragment, capsys):
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert fragment in err
    assert err.count("\n") == 1


def test_no_traceback_from_the_real_command():
    r = subprocess.run([sys.executable, "-m", "tinytrace", "-e", "BEGIN { @x = ; }"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert re.match(r"^stdin:1:14: error: expected an expression", r.stderr)
    assert "Traceback" not in r.stderr


def test_help_has_examples(capsys):
    assert cli.main(["-e", "x", "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "tracepoint:raw_syscalls:sys_enter" in out
