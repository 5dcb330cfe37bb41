"""Hand-encoded BPF for the kernel-layer tests.

The kernel layer is tested on its own, without the assembler: these few encoders produce
the ``struct bpf_insn`` bytes directly, so a bug in ``tinytrace.asm`` cannot hide (or cause)
a kernel-layer failure.  The programs are the ones the tests need, written as small
functions returning bytes.
"""
import struct


def insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def mov64_imm(dst, imm):
    return insn(0xB7, dst, 0, 0, imm)


def mov32_imm(dst, imm):
    return insn(0xB4, dst, 0, 0, imm)


def mov64_reg(dst, src):
    return insn(0xBF, dst, src)


def add64_imm(dst, imm):
    return insn(0x07, dst, 0, 0, imm)


def rsh64_imm(dst, imm):
    return insn(0x77, dst, 0, 0, imm)


def ld_map_fd(dst, fd):
    """r = map (BPF_PSEUDO_MAP_FD): a two-slot LD_IMM64."""
    return insn(0x18, dst, 1, 0, fd) + insn(0, 0, 0, 0, 0)


def ldx_dw(dst, src, off):
    return insn(0x79, dst, src, off)


def ldx_w(dst, src, off):
    return insn(0x61, dst, src, off)


def stx_dw(dst, off, src):
    return insn(0x7B, dst, src, off)


def st_w(dst, off, imm):
    return insn(0x62, dst, 0, off, imm)


def st_dw(dst, off, imm):
    return insn(0x7A, dst, 0, off, imm)


def atomic_add_dw(dst, off, src):
    """``lock *(u64 *)(dst + off) += src`` where the JIT has atomics; else (32-bit ARM's
    JIT refuses them with error 524) a plain load, add and store through r3 -- the tests'
    counters are bumped by one thread at a time.  Callers size their jumps with len()."""
    if _have_atomics():
        return insn(0xDB, dst, src, off, 0)
    return ldx_dw(3, dst, off) + insn(0x0F, 3, src) + stx_dw(dst, off, 3)


_ATOMICS = []


def _have_atomics():
    if not _ATOMICS:
        from tinytrace.kernel import features
        _ATOMICS.append(bool(features.probe().atomics))
    return _ATOMICS[0]


def jne_imm(dst, imm, off):
    return insn(0x55, dst, 0, off, imm)


def jeq_imm(dst, imm, off):
    return insn(0x15, dst, 0, off, imm)


def jne_reg(dst, src, off):
    return insn(0x5D, dst, src, off)


def call(helper):
    return insn(0x85, 0, 0, 0, helper)


def exit_():
    return insn(0x95)


MAP_LOOKUP_ELEM = 1
GET_CURRENT_PID_TGID = 14
PERF_EVENT_OUTPUT = 25
RINGBUF_OUTPUT = 130


def join(*parts):
    return b"".join(parts)


def count_for_pid(map_fd, tgid, filter_insns=b""):
    """Add 1 to the u64 at key 0 of array ``map_fd`` when the current process is ``tgid``.
    ``filter_insns`` run first with the context in r6 (see ``raw_syscall_filter``)."""
    bump = join(mov64_imm(1, 1), atomic_add_dw(0, 0, 1))
    lookup = join(
        st_w(10, -4, 0),
        ld_map_fd(1, map_fd),                # 2 slots
        mov64_reg(2, 10),
        add64_imm(2, -4),
        call(MAP_LOOKUP_ELEM),
        jeq_imm(0, 0, len(bump) // 8),       # -> out
        bump,
    )
    body = join(
        call(GET_CURRENT_PID_TGID),
        rsh64_imm(0, 32),
        jne_imm(0, tgid, len(lookup) // 8),  # -> out
        lookup,
        mov64_imm(0, 0),                     # out:
        exit_(),
    )
    return join(mov64_reg(6, 1), filter_insns, body)


def body_out():
    """Slot of "out:" inside count_for_pid's body."""
    return 3 + 7 + len(join(mov64_imm(1, 1), atomic_add_dw(0, 0, 1))) // 8


def raw_syscall_filter(nr):
    """For raw_tracepoint:sys_enter (ctx = u64 args[]: args[1] is the syscall number): skip
    to the end of count_for_pid's body unless the syscall is ``nr``."""
    return join(ldx_dw(1, 6, 8), jne_imm(1, nr, body_out()))


def _pid_guard(tgid, skip):
    """r7 = pid_tgid; jump ``skip`` slots ahead (past the caller's body) unless tgid
    matches.  3 slots + the call."""
    return join(call(GET_CURRENT_PID_TGID), mov64_reg(7, 0), rsh64_imm(0, 32),
                jne_imm(0, tgid, skip))


def load_field(dst, src, off, size):
    """dst = the ``size``-byte unsigned field at src + off (size 4 or 8)."""
    return ldx_dw(dst, src, off) if size == 8 else ldx_w(dst, src, off)


def emit_pid_and_mode_perf(map_fd, tgid, mode=(40, 8)):
    """sys_enter_openat program: perf_event_output({u64 pid_tgid, u64 mode}) for ``tgid``.
    ``mode`` is the (offset, size) of the tracepoint's mode field (from its format file:
    syscall arguments are longs, 4 bytes on 32-bit kernels)."""
    body = join(
        stx_dw(10, -16, 7),
        load_field(1, 6, mode[0], mode[1]),  # the tracepoint's "mode" field
        stx_dw(10, -8, 1),
        mov64_reg(1, 6),
        ld_map_fd(2, map_fd),
        mov32_imm(3, -1),                    # BPF_F_CURRENT_CPU (0xffffffff, zero-extended)
        mov64_reg(4, 10),
        add64_imm(4, -16),
        mov64_imm(5, 16),
        call(PERF_EVENT_OUTPUT),
    )
    n = len(body) // 8
    return join(mov64_reg(6, 1), _pid_guard(tgid, n), body, mov64_imm(0, 0), exit_())


def _bump_counter(counter_fd):
    """map[counter_fd][0] += 1 (u64); clobbers r0-r5."""
    bump = join(mov64_imm(1, 1), atomic_add_dw(0, 0, 1))
    return join(
        st_w(10, -20, 0),
        ld_map_fd(1, counter_fd),
        mov64_reg(2, 10),
        add64_imm(2, -20),
        call(MAP_LOOKUP_ELEM),
        jeq_imm(0, 0, len(bump) // 8),
        bump,
    )


def emit_pid_and_mode_ringbuf(ring_fd, tgid, lost_fd, mode=(40, 8)):
    """sys_enter_openat program: bpf_ringbuf_output({u64 pid_tgid, u64 mode}); on failure
    count the loss in array ``lost_fd`` key 0.  ``mode`` as for the perf variant."""
    bump = _bump_counter(lost_fd)
    body = join(
        stx_dw(10, -16, 7),
        load_field(1, 6, mode[0], mode[1]),
        stx_dw(10, -8, 1),
        ld_map_fd(1, ring_fd),
        mov64_reg(2, 10),
        add64_imm(2, -16),
        mov64_imm(3, 16),
        mov64_imm(4, 0),
        call(RINGBUF_OUTPUT),
        jeq_imm(0, 0, len(bump) // 8),
        bump,
    )
    n = len(body) // 8
    return join(mov64_reg(6, 1), _pid_guard(tgid, n), body, mov64_imm(0, 0), exit_())


def emit_big_value(out_fd, big_fd, size, tgid, kind, lost_fd=None):
    """Emit the ``size``-byte value at key 0 of array ``big_fd`` (records big enough to fill
    a one-page buffer fast).  ``kind`` is 'perf' or 'ringbuf'."""
    if kind == "perf":
        emit = join(mov64_reg(4, 0), mov64_reg(1, 6), ld_map_fd(2, out_fd), mov32_imm(3, -1),
                    mov64_imm(5, size), call(PERF_EVENT_OUTPUT))
        after = b""
    else:
        bump = _bump_counter(lost_fd)
        emit = join(mov64_reg(2, 0), ld_map_fd(1, out_fd), mov64_imm(3, size),
                    mov64_imm(4, 0), call(RINGBUF_OUTPUT))
        after = join(jeq_imm(0, 0, len(bump) // 8), bump)
    body = join(
        st_w(10, -4, 0),
        ld_map_fd(1, big_fd),
        mov64_reg(2, 10),
        add64_imm(2, -4),
        call(MAP_LOOKUP_ELEM),
    )
    rest = join(emit, after)
    body = join(body, jeq_imm(0, 0, len(rest) // 8), rest)
    n = len(body) // 8
    return join(mov64_reg(6, 1), _pid_guard(tgid, n), body, mov64_imm(0, 0), exit_())
