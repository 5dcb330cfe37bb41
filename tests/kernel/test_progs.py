"""Program loading and verifier errors."""
import errno
import struct

import pytest

from tinytrace.errors import KernelError
from tinytrace.kernel import progs

from . import bpfcode as c


@pytest.mark.bpf
def test_load_and_run():
    code = c.join(c.mov64_imm(0, 42), c.exit_())
    with progs.load(code, "socket_filter", "tt_answer") as p:
        assert p.fd >= 0 and p.insn_count == 2 and p.type_name == "socket_filter"
        assert p.log == ""                       # no log unless asked for
        info = p.info()
        assert info["id"] > 0 and info["xlated_len"] == 16
        assert p.test_run(data=bytes(64)) == 42
    assert p.closed


@pytest.mark.bpf
def test_log_on_request():
    code = c.join(c.mov64_imm(0, 0), c.exit_())
    with progs.load(code, "tracepoint", "tt_logged", log_level=1) as p:
        assert "processed" in p.log


@pytest.mark.bpf
def test_raw_tracepoint_test_run():
    code = c.join(c.ldx_dw(0, 1, 8), c.exit_())  # return args[1]
    import struct
    with progs.load(code, "raw_tracepoint", "tt_rawrun") as p:
        assert p.test_run(ctx=struct.pack("=QQ", 5, 77)) == 77


@pytest.mark.bpf
def test_verifier_rejection_names_instruction_and_reason():
    # r0 = 0; r0 = r2 (r2 was never written); exit
    code = c.join(c.mov64_imm(0, 0), c.mov64_reg(0, 2), c.exit_())
    with pytest.raises(progs.VerifierError) as e:
        progs.load(code, "socket_filter", "tt_bad")
    err = e.value
    assert isinstance(err, KernelError)
    assert err.index == 1
    assert err.reason == "R2 !read_ok"
    assert "r2" in err.insn_text
    text = str(err)
    assert "tt_bad" in text and "insn 1" in text and "R2 !read_ok" in text
    assert len(text.splitlines()) <= 4           # a short block, not the log
    assert "processed" in err.full_log()          # the whole log is kept
    assert err.errno == errno.EACCES


@pytest.mark.bpf
def test_structural_rejection_points_at_instruction():
    code = c.join(c.mov64_imm(0, 0), c.jeq_imm(0, 0, 5), c.exit_())
    with pytest.raises(progs.VerifierError) as e:
        progs.load(code, "socket_filter", "tt_jump")
    assert e.value.index == 1
    assert "jump out of range" in e.value.reason


@pytest.mark.bpf
def test_unknown_helper_is_reported():
    code = c.join(c.call(99999), c.mov64_imm(0, 0), c.exit_())
    with pytest.raises(progs.VerifierError) as e:
        progs.load(code, "tracepoint", "tt_helper")
    assert e.value.index == 0
    assert "invalid func" in e.value.reason or "unknown" in e.value.reason


@pytest.mark.bpf
def test_infinite_loop_rejection_names_the_loop():
    # r0 = 0; r1 = 0; loop: r1 += 0; if r1 < 10 goto loop; exit -- r1 never changes, so
    # the verifier sees the same state twice and stops ("infinite loop detected at insn 3"),
    # then prints the two states; the reason is the loop, not "old state: ...".
    code = c.join(c.mov64_imm(0, 0), c.mov64_imm(1, 0), c.insn(0x07, 1, 0, 0, 0),
                  c.insn(0xA5, 1, 0, -2, 10), c.exit_())
    with pytest.raises(progs.VerifierError) as e:
        progs.load(code, "socket_filter", "tt_loop")
    if "infinite loop" not in e.value.log:
        pytest.skip("this kernel rejects the loop differently: %s" % e.value.reason)
    assert e.value.reason.startswith("infinite loop detected"), e.value.log
    assert e.value.index == 3 and "goto" in e.value.insn_text, e.value.summary()
    assert "state" not in e.value.summary()


def test_bad_code_is_a_value_error():
    with pytest.raises(ValueError):
        progs.load(b"1234567", "socket_filter")
    with pytest.raises(ValueError, match="unknown program type"):
        progs.load(c.exit_(), "nonsense")


LOG_WITH_STATE = """\
func#0 @0
0: R1=ctx() R10=fp0
0: (bf) r6 = r1                       ; R1=ctx() R6_w=ctx()
1: (79) r2 = *(u64 *)(r6 +4096)
invalid bpf_context access off=4096 size=8
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

LOG_WITH_SOURCE = """\
0: R1=ctx() R10=fp0
; @x = count() @ script.bt:1
0: (b7) r1 = 0                        ; R1_w=0
1: (85) call bpf_map_lookup_elem#1
R1 type=scalar expected=map_ptr
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

LOG_CFG = """\
back-edge from insn 4 to 2
processed 0 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

LOG_LOOP = """\
2: (07) r1 += 0                       ; R1=0
3: (a5) if r1 < 0xa goto pc-2         ; R1=0
2: (07) r1 += 0
infinite loop detected at insn 3
cur state: R0=0 R1=0 R10=fp0
old state: R0=0 R1=P0 R10=fp0
processed 10 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 0
"""

LOG_OLD_KERNEL = """\
0: (b7) r0 = 0
1: (05) goto pc-2
back-edge from insn 1 to 0
"""


@pytest.mark.parametrize("log,index,reason", [
    (LOG_WITH_STATE, 1, "invalid bpf_context access off=4096 size=8"),
    (LOG_WITH_SOURCE, 1, "R1 type=scalar expected=map_ptr"),
    (LOG_CFG, 4, "back-edge from insn 4 to 2"),
    (LOG_OLD_KERNEL, 1, "back-edge from insn 1 to 0"),
    (LOG_LOOP, 3, "infinite loop detected at insn 3"),
    ("", None, ""),
])
def test_parse_log(log, index, reason):
    assert progs.parse_log(log) == (index, reason)


def test_describe_insn_without_assembler_output():
    code = c.join(c.mov64_imm(0, 0), c.ld_map_fd(1, 7), c.exit_())
    text = progs.describe_insn(code, 1)
    assert text and ("7" in text)
    assert progs.describe_insn(code, 9) is None


def test_reason_is_made_printable():
    e = progs.VerifierError("p", errno.EACCES, "x", 0, "exit", progs._clean("bad\x1b[31m"))
    assert "\x1b" not in str(e)


@pytest.mark.bpf
def test_rejection_shows_the_assembler_text_and_comment():
    asm = pytest.importorskip("tinytrace.asm")
    # a map fd that is no map: refused before any instruction is walked
    prog = [asm.Mov.Imm(asm.R0, 0), asm.LoadMapPtr(asm.R1, 0x7fffffff), asm.Exit()]
    with pytest.raises(progs.VerifierError) as e:
        progs.load(asm.link(prog), "socket_filter", "tt_src", source=prog)
    assert "not pointing to valid bpf_map" in e.value.reason
    # slot numbering counts the two slots of a 64-bit load; labels take none
    prog2 = [asm.Mov.Imm(asm.R0, 0), asm.Label("here"), asm.LoadImm64(asm.R1, 1 << 40),
             asm.Mov.Reg(asm.R0, asm.R3).with_comment("script.bt:3:5"), asm.Exit()]
    with pytest.raises(progs.VerifierError) as e:
        progs.load(asm.link(prog2), "socket_filter", "tt_src2", source=prog2)
    assert e.value.index == 3
    assert e.value.insn_text == "r0 = r3  ; script.bt:3:5"
    assert "at insn 3: r0 = r3  ; script.bt:3:5" in str(e.value)


def test_a_jit_refusal_is_not_blamed_on_the_verifier():
    # 32-bit ARM's JIT returns ENOTSUPP (524) for atomics after the verifier said yes
    e = progs.VerifierError("cnt", 524, "processed 9 insns", None, None, "processed 9 insns")
    text = str(e)
    assert "JIT cannot compile" in text and "524" in text and "atomic" in text, text
    assert "Unknown error" not in text and "verifier rejected" not in text, text


_WALK = """
    r1 = 0
    *(u64 *)(r10 -8) = r1
    r1 = map[vals] ll
    r2 = func[add] ll
    r3 = r10
    r3 += -8
    r4 = 0
    call bpf_for_each_map_elem
    r0 = *(u64 *)(r10 -8)
    exit
add:
    r0 = *(u64 *)(r3 +0)
    r5 = *(u64 *)(r4 +0)
    r5 += r0
    *(u64 *)(r4 +0) = r5
    r0 = 0
    exit
"""


@pytest.mark.bpf
def test_a_callback_needs_func_info_and_gets_it():
    """bpf_for_each_map_elem calls a function of the program, which the kernel takes only
    with BTF func_info: ``functions`` describes them (names and slots from the layout)."""
    from tinytrace.asm import assemble, layout, link
    from tinytrace.kernel import bpf, maps
    insns = assemble(_WALK)
    funcs = layout(insns).functions
    assert funcs == [(0, None), (12, "add")]   # two ld_imm64 take two slots each
    if tuple(bpf.kernel_version()[:2]) < (5, 13):
        pytest.skip("bpf_for_each_map_elem is Linux 5.13+")
    with maps.Map.create("array", 4, 8, 4) as m:
        for i in range(4):
            m.update(struct.pack("=I", i), struct.pack("=Q", 10 ** i))
        code = link(insns, {"vals": m})
        with pytest.raises(progs.VerifierError) as e:
            progs.load(code, "raw_tracepoint", "tt_walk0")
        assert "func_info" in e.value.reason, e.value.reason
        try:
            p = progs.load(code, "raw_tracepoint", "tt_walk", functions=funcs)
        except progs.VerifierError as e:
            if "non-JITed" in e.reason:
                pytest.skip("this kernel's JIT takes no callbacks: %s" % e.reason)
            raise
        with p:
            assert p.test_run(ctx=bytes(8)) == 1111
