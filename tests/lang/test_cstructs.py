"""C struct and union definitions in scripts: layouts checked against what gcc gives (when
there is a gcc), 32-bit layouts against known values, and the language around them."""
import os
import shutil
import subprocess

import pytest

from tests.lang.fakeenv import FakeEnv
from tinytrace.errors import SourceError
from tinytrace.kernel import arch
from tinytrace.lang.clayout import Layouts
from tinytrace.lang.compiler import check
from tinytrace.lang.parser import parse
from tinytrace.lang.types import CStructT, IntT, PtrT, StrT, ArrayT

DEFS = """
struct tt_point { int x; long y; char name[16]; struct tt_point *next; };
union tt_u { unsigned int a; unsigned char b[4]; unsigned short h[3]; };
struct tt_mix { char c; short s; char c2; long long ll; char tail; };
struct tt_nest { char c; struct tt_point p; union tt_u u; int arr[3][5]; char last; };
struct tt_anon { int k; union { char c; long l; }; struct { short a; short b; }; char z; };
struct tt_bits { unsigned a:3, b:5; int c:20; unsigned long long d:40; unsigned char e:4;
                 unsigned :0; short f:9; unsigned long g:31; char h; };
typedef unsigned int tt_uint;
typedef struct tt_point tt_point_t;
struct tt_ptrs { char c; void *v; void (*cb)(int, char *); tt_point_t *pp; tt_uint n;
                 const char *s; unsigned char bytes[5]; u16 w; size_t sz; };
struct tt_empty_tail { long a; char b; };
"""
# (struct, [members whose offsetof is compared])
CHECKED = [
    ("tt_point", ["x", "y", "name", "next"]),
    ("tt_u", ["a", "b", "h"]),
    ("tt_mix", ["c", "s", "c2", "ll", "tail"]),
    ("tt_nest", ["c", "p", "u", "arr", "last"]),
    ("tt_anon", ["k", "c", "l", "a", "b", "z"]),
    ("tt_ptrs", ["c", "v", "cb", "pp", "n", "s", "bytes", "w", "sz"]),
    ("tt_empty_tail", ["a", "b"]),
]
BITFIELDS = ["a", "b", "c", "d", "e", "f", "g"]


def _layouts(defs=DEFS, **kw):
    return Layouts(parse(defs + "BEGIN { }").cdefs, **kw)


def _tag(name, L):
    layout = L.tags[name]
    return CStructT(layout)


def _gcc_layout():
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <stdint.h>",
             "typedef uint16_t u16;", DEFS.replace("union tt_u {", "union tt_u {"),
             "static int bitpos(unsigned char *p, int n) {",
             "  for (int i = 0; i < n * 8; i++) if (p[i / 8] >> (i % 8) & 1) return i;",
             "  return -1; }",
             "int main(void) {"]
    for name, members in CHECKED:
        tag = "union" if name == "tt_u" else "struct"
        lines.append('printf("%s size %%zu\\n", sizeof(%s %s));' % (name, tag, name))
        for m in members:
            lines.append('printf("%s %s %%zu\\n", offsetof(%s %s, %s));'
                         % (name, m, tag, name, m))
    lines.append('printf("tt_bits size %zu\\n", sizeof(struct tt_bits));')
    for m in BITFIELDS:     # a bitfield's position: set its lowest bit, find it
        lines.append("{ struct tt_bits b = {0}; b.%s = 1; printf(\"tt_bits %s %%d\\n\", "
                     "bitpos((unsigned char *)&b, sizeof b)); }" % (m, m))
    lines.append("return 0; }")
    return cc, "\n".join(lines)


def test_layouts_match_gcc(tmp_path):
    cc, source = _gcc_layout()
    if arch.kernel_long_size() != 8 or not arch.machine() in ("x86_64", "aarch64"):
        pytest.skip("compared on 64-bit little-endian machines")
    src = tmp_path / "layout.c"
    src.write_text(source)
    exe = str(tmp_path / "layout")
    p = subprocess.run([cc, "-o", exe, str(src)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    want = {}
    for line in subprocess.run([exe], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        s, m, v = line.split()
        want[(s, m)] = int(v)
    L = _layouts()
    got = {}
    for name, members in CHECKED:
        st = _tag(name, L)
        got[(name, "size")] = st.size
        for m in members:
            got[(name, m)] = L.member(st, m).offset
    st = _tag("tt_bits", L)
    got[("tt_bits", "size")] = st.size
    for m in BITFIELDS:
        mem = L.member(st, m)
        got[("tt_bits", m)] = mem.offset * 8 + mem.bit_shift
    assert got == want


def test_member_types(monkeypatch):
    # the 64-bit layout (a long is 8 bytes); test_32_bit_layouts has the others
    monkeypatch.setattr(arch, "_uname_machine", lambda: "x86_64")
    L = _layouts()
    st = _tag("tt_point", L)
    assert L.member(st, "x").ty == IntT(32, True)
    assert L.member(st, "y").ty == IntT(64, True)
    assert L.member(st, "name").ty == StrT(16)
    nxt = L.member(st, "next").ty
    assert isinstance(nxt, PtrT) and nxt.pointee == st
    p = _tag("tt_ptrs", L)
    assert L.member(p, "bytes").ty == ArrayT(IntT(8, False), 5)
    assert L.member(p, "v").ty == PtrT(None)
    assert L.member(p, "cb").ty == PtrT(None)
    assert L.member(p, "n").ty == IntT(32, False)
    assert L.member(p, "pp").ty.pointee == st
    assert L.member(_tag("tt_nest", L), "arr").ty == ArrayT(ArrayT(IntT(32, True), 5), 3)


@pytest.mark.parametrize("machine,want", [
    # x at 0, y (long) at 4, name at 8, next (pointer) at 24; size 28
    ("armv7l", {"tt_point": (28, [0, 4, 8, 24]), "tt_mix": (24, [0, 2, 4, 8, 16]),
                "tt_ptrs": (36, [0, 4, 8, 12, 16, 20, 24, 30, 32])}),
    # i386: 8-byte integers are 4-aligned in structs
    ("i686", {"tt_point": (28, [0, 4, 8, 24]), "tt_mix": (20, [0, 2, 4, 8, 16]),
              "tt_ptrs": (36, [0, 4, 8, 12, 16, 20, 24, 30, 32])}),
    ("x86_64", {"tt_point": (40, [0, 8, 16, 32]), "tt_mix": (24, [0, 2, 4, 8, 16]),
                "tt_ptrs": (64, [0, 8, 16, 24, 32, 40, 48, 54, 56])}),
])
def test_32_bit_layouts(monkeypatch, machine, want):
    monkeypatch.setattr(arch, "_uname_machine", lambda: machine)
    L = _layouts()
    members = dict(CHECKED)
    for name, (size, offsets) in want.items():
        st = _tag(name, L)
        assert st.size == size, name
        assert [L.member(st, m).offset for m in members[name]] == offsets, name
    width = 4 if machine != "x86_64" else 8
    assert L.member(_tag("tt_point", L), "next").width == width


def _analyse(text, **kw):
    return check(DEFS + text, "test.bt", FakeEnv(**kw))[1]


def test_sizeof_offsetof_and_casts_without_btf(monkeypatch):
    monkeypatch.setenv("TINYTRACE_TARGET", "btf=0")
    monkeypatch.setattr(arch, "_uname_machine", lambda: "x86_64")   # 64-bit sizes
    prog = _analyse('BEGIN { @a = sizeof(struct tt_point); @b = offsetof(struct tt_anon, l); '
                    '@c = sizeof(union tt_u); @d = sizeof(tt_point_t); '
                    '@e = offsetof(struct tt_nest, p.next); @f = sizeof(tt_uint); }')
    vals = [s.value.value for s in prog.probes[0].body.stmts]
    assert vals == [40, 8, 8, 40, 8 + 32, 4]


def test_casts_read_user_memory_in_uprobes():
    try:
        prog = _analyse('uprobe:libc:malloc { $p = (struct tt_point *)arg0; $n = $p->next; '
                        '$q = (tt_point_t *)arg1; }')
    except SourceError as e:
        if "Thumb code" in str(e):     # Debian's armhf libc: 32-bit ARM uprobes refuse it
            pytest.skip(str(e).splitlines()[0])
        raise
    stmts = prog.probes[0].body.stmts
    assert stmts[0].value.ty.user and stmts[0].value.ty.pointee.user
    assert stmts[1].value.ty.user            # a pointer read from process memory
    assert stmts[2].value.ty.user
    prog = _analyse('kprobe:vfs_read { $p = (struct tt_point *)arg0; }')
    assert not prog.probes[0].body.stmts[0].value.ty.user


def test_script_definition_hides_the_kernel_type():
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("no kernel BTF")
    prog = check("struct task_struct { int only; };\n"
                 "kprobe:vfs_read { $t = (struct task_struct *)arg0; @x = $t->only; "
                 "@s = sizeof(struct task_struct); }", "t.bt", FakeEnv())[1]
    stmts = prog.probes[0].body.stmts
    assert stmts[1].value.field.offset == 0 and stmts[2].value.value == 4


def test_pointer_to_an_undefined_struct_uses_btf_or_says_so(monkeypatch):
    monkeypatch.setenv("TINYTRACE_TARGET", "btf=0")
    with pytest.raises(SourceError) as e:
        check("struct tt_o { struct tt_nowhere *p; };\n"
              "kprobe:vfs_read { $o = (struct tt_o *)arg0; @x = $o->p->x; }", "t.bt",
              FakeEnv())
    assert "struct tt_nowhere is not defined" in str(e.value)
