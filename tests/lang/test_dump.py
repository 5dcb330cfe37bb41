"""``-d``: for every program of the run corpus, the printed assembly of each BPF program
assembles back (tinytrace.asm.assemble) to exactly the bytes the compiler produced."""
import os

import pytest

from tests.lang.test_run import CASES, _subst, missing
from tinytrace.asm import assemble, link
from tinytrace.lang import command, compiler


def _tracefs_or_skip():
    from tinytrace.kernel import tracefs
    try:
        if tracefs.find() is None or not os.access(
                os.path.join(tracefs.find(), "events"), os.R_OK):
            pytest.skip("tracefs is not readable")
    except Exception as e:
        pytest.skip("tracefs: %s" % e)


def _sections(text):
    """{program header: assembly text} of a -d dump."""
    out = {}
    cur = None
    for line in text.splitlines():
        if line.startswith("; program "):
            cur = line
            out[cur] = []
        elif cur is not None:
            out[cur].append(line)
    return dict((k, "\n".join(v)) for k, v in out.items())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_dump_assembles_back(case, tmp_path, monkeypatch, capsys):
    _tracefs_or_skip()
    if missing(case):
        pytest.skip(missing(case))
    d = str(tmp_path)
    program = _subst(case.program, d)
    params = [_subst(p, d) for p in case.params]
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    argv = ["-d"] + [o for o in case.options if o == "--unsafe"] + \
        (["-c", "true"] if case.work is not None else []) + \
        ["-e", program] + params
    made = []
    real = compiler.compile_program

    def keep(*args, **kw):
        made.append(real(*args, **kw))
        return made[-1]
    monkeypatch.setattr(compiler, "compile_program", keep)
    assert command.main(argv) == 0
    text = capsys.readouterr().out
    sections = _sections(text)
    comp = made[0]
    fds = dict((m.name, 100 + i) for i, m in enumerate(comp.all_maps()))
    assert len(sections) == len(comp.programs)
    for (header, asm_text), p in zip(sections.items(), comp.programs):
        assert p.name in header
        assert link(assemble(asm_text), fds) == link(p.code, fds), header


def test_dump_shows_maps_and_source_lines(capsys):
    _tracefs_or_skip()
    assert command.main(["-d", "-e", "BEGIN { @c[comm] = count(); exit(); }"]) == 0
    out = capsys.readouterr().out
    assert "; map m.c: percpu_hash key 16 value 8 entries 4096" in out
    assert "; program BEGIN (raw_tracepoint): BEGIN;" in out
    assert "call bpf_get_current_comm#16" in out
    assert "; 1:9 BEGIN { @c[comm] = count(); exit(); }" in out


def test_char_array_keys_are_read_up_to_their_nul(capsys):
    """A char array field that becomes a map key is copied with a string read into a zeroed
    key (bytes after its NUL would make equal strings different keys); printed, it is
    plain loads from the record."""
    _tracefs_or_skip()
    prog = ('t:task:task_rename { @[args->newcomm] = count(); '
            'printf("%s\\n", args->oldcomm); }')
    assert command.main(["-d", "-e", prog]) == 0
    out = capsys.readouterr().out
    reads = [ln for ln in out.splitlines() if "call bpf_probe_read" in ln]
    assert len(reads) == 1 and "_str#" in reads[0], out
    import re
    assert re.search(r"= \*\(u32 \*\)\(r\d \+12\)", out), out     # oldcomm: loads


def test_config_sizes_the_maps(capsys):
    _tracefs_or_skip()
    prog = ('config = { max_map_keys = 100; stack_map_keys = 7; lru_maps = "@s" } '
            'profile:hz:99 { @s[tid] = nsecs; @c[kstack(5)] = count(); @u[ustack] = count(); }')
    assert command.main(["-d", "-e", prog]) == 0
    out = capsys.readouterr().out
    assert "; map m.s: lru_hash key 4 value 8 entries 100" in out, out
    assert "; map m.c: percpu_hash key 8 value 8 entries 100" in out, out
    assert "; map stacks5: stack_trace key 4 value 40 entries 7" in out, out
    assert "; map stacks127: stack_trace key 4 value 1016 entries 7" in out, out


@pytest.mark.parametrize("machine,size", [("x86_64", 8), ("armv7l", 4)])
def test_argv_pointers_have_the_kernel_word_size(machine, size, monkeypatch, capsys):
    """``args->argv[i]`` reads a pointer from user memory: 4 bytes at a 4-byte stride on a
    32-bit kernel (the armhf guests printed garbage arguments when it read 8)."""
    _tracefs_or_skip()
    from tinytrace.kernel import arch, tracefs
    if not tracefs.exists("syscalls", "sys_enter_execve"):
        pytest.skip("no sys_enter_execve tracepoint")
    monkeypatch.setattr(arch, "_uname_machine", lambda: machine)
    assert command.main(["-d", "-e", 't:syscalls:sys_enter_execve '
                         '{ printf("%s\\n", str(args->argv[3])); }']) == 0
    text = capsys.readouterr().out
    # the element's address: argv + 3 * size, then a probe_read_user of size bytes
    lines = text.splitlines()
    at = [i for i, l in enumerate(lines) if "call bpf_probe_read_user#" in l]
    assert at, text
    before = "\n".join(lines[max(0, at[0] - 6):at[0] + 1])
    assert "+= %d\n" % (3 * size) in before and "r2 = %d\n" % size in before, before
