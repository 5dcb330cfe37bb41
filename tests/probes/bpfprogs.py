"""The BPF programs the probe tests load, written with tinytrace.asm.

They are what the compiler will emit for ``argN``/``retval``/USDT arguments, written by
hand from the same tables (``regs``, ``usdt_attach.arg_access``):

* ``counter``: count hits of one process (slot 0 of an array map), optionally only when a
  loaded value equals a constant;
* ``recorder``: count hits of one process in slot 0 and store values (ArgLoc / USDT
  accesses) in slots 1, 2, ... -- the last hit's values win;
* ``sampler``: a perf_event program keeping kernel and user stack ids of one process's
  samples, counted per (kernel id, user id) pair.
"""
import struct

from tinytrace.asm import (B, DW, H, R0, R1, R2, R3, R4, R6, R7, R10, W, Add, AtomicAdd,
                           Call, Exit, Ja, JEq, JNe, Label, LoadImm64, LoadMapPtr, LoadMem,
                           Arsh, Lsh, Mov, Mul, Rsh, StoreImm, StoreMem, link)

SIZES = {1: B, 2: H, 4: W, 8: DW}


def _load(dst, src, off, size, signed):
    """dst = *(size *)(src + off), sign-extended when ``signed``: with shifts, since the
    sign-extending load instruction needs Linux 6.6."""
    out = [LoadMem(dst, src, off, SIZES[size])]
    if signed and size < 8:
        out += [Lsh.Imm(dst, 64 - 8 * size), Arsh.Imm(dst, 64 - 8 * size)]
    return out


def _pid_check(pid):
    """Jump to "out" unless the current process is ``pid`` (None: no check)."""
    if pid is None:
        return []
    return [
        Call("get_current_pid_tgid"),
        Rsh.Imm(R0, 32),
        JNe.Imm(R0, pid, "out"),
    ]


def _add_one(ptr):
    """*(u64 *)ptr += 1: atomically where the JIT can (the 32-bit ARM JIT refuses atomics
    with ENOTSUPP), else a plain load/add/store -- the tests count one thread's hits."""
    from tinytrace.kernel import features
    if features.probe().atomics:
        return [Mov.Imm(R1, 1), AtomicAdd(ptr, 0, R1, DW)]
    return [LoadMem(R1, ptr, 0, DW), Add.Imm(R1, 1), StoreMem(ptr, 0, R1, DW)]


def _bump(slot):
    """map[slot] += 1 on the map named "m" (clobbers r0-r3)."""
    return [
        StoreImm(R10, -4, slot, W),
        LoadMapPtr(R1, "m"),
        Mov.Reg(R2, R10), Add.Imm(R2, -4),
        Call("map_lookup_elem"),
        JEq.Imm(R0, 0, "out"),
    ] + _add_one(R0)


def _store(slot, reg):
    """map[slot] = reg on the map named "m" (``reg`` must be r6-r9)."""
    return [
        StoreImm(R10, -4, slot, W),
        LoadMapPtr(R1, "m"),
        Mov.Reg(R2, R10), Add.Imm(R2, -4),
        Call("map_lookup_elem"),
        JEq.Imm(R0, 0, "out"),
        StoreMem(R0, 0, reg, DW),
    ]


def _read_user(dst, addr_insns, size, signed, helper):
    """dst = *(size *)addr, addr computed into r3 by ``addr_insns`` (ctx in r6), read with
    ``helper`` into the stack at r10-16."""
    return [StoreImm(R10, -16, 0, DW)] + addr_insns + [
        Mov.Reg(R1, R10), Add.Imm(R1, -16),
        Mov.Imm(R2, size),
        Call(helper),
    ] + _load(dst, R10, -16, size, signed)


def load_regs_loc(dst, loc, helper="probe_read_user", signed=False):
    """Instructions putting the value an ``regs.ArgLoc`` describes into ``dst``."""
    if loc.kind == "reg":
        return _load(dst, R6, loc.offset, loc.size, signed)
    addr = [LoadMem(R3, R6, loc.offset, DW if loc.size == 8 else W), Add.Imm(R3, loc.disp)]
    return _read_user(dst, addr, loc.size, signed, helper)


def load_usdt(dst, access):
    """Instructions putting a USDT argument (``usdt_attach.arg_access``) into ``dst``."""
    kind = access[0]
    if kind == "reg":
        _, off, size, signed = access
        return _load(dst, R6, off, size, signed)
    if kind == "const":
        return [Mov.Imm(dst, access[1])]
    if kind == "mem":
        _, boff, bsize, disp, size, signed = access
        addr = [LoadMem(R3, R6, boff, SIZES[bsize]), Add.Imm(R3, disp)]
        return _read_user(dst, addr, size, signed, "probe_read_user")
    if kind == "mem_index":
        _, boff, bsize, ioff, isize, scale, disp, size, signed = access
        addr = [LoadMem(R3, R6, boff, SIZES[bsize]), LoadMem(R2, R6, ioff, SIZES[isize]),
                Mul.Imm(R2, scale), Add.Reg(R3, R2), Add.Imm(R3, disp)]
        return _read_user(dst, addr, size, signed, "probe_read_user")
    if kind == "addr":
        _, address, size, signed = access
        return _read_user(dst, [LoadImm64(R3, address)], size, signed, "probe_read_user")
    raise ValueError(kind)


def counter(map_fd, pid, value_insns=None, equals=None):
    """Count the hits of process ``pid``; with ``value_insns`` (leaving a value in r7) only
    those where it equals ``equals``."""
    prog = [Mov.Reg(R6, R1)] + _pid_check(pid)
    if value_insns is not None:
        prog += value_insns + [JNe.Imm(R7, equals, "out")]
    prog += _bump(0) + [Label("out"), Mov.Imm(R0, 0), Exit()]
    return link(prog, maps={"m": map_fd})


def cookie_counter(map_fd, pid):
    """Count the hits of ``pid`` (None: everyone's) in the slot named by the attach cookie
    (multi links)."""
    prog = [Mov.Reg(R6, R1)] + _pid_check(pid) + [
        Mov.Reg(R1, R6), Call("get_attach_cookie"),
        StoreMem(R10, -4, R0, W),
        LoadMapPtr(R1, "m"), Mov.Reg(R2, R10), Add.Imm(R2, -4),
        Call("map_lookup_elem"),
        JEq.Imm(R0, 0, "out"),
    ] + _add_one(R0) + [Label("out"), Mov.Imm(R0, 0), Exit()]
    return link(prog, maps={"m": map_fd})


def recorder(map_fd, pid, loaders):
    """Count hits of ``pid`` in slot 0; the value each of ``loaders`` (lists of
    instructions leaving a value in r7) produces goes to slot 1, 2, ..."""
    prog = [Mov.Reg(R6, R1)] + _pid_check(pid) + _bump(0)
    for i, insns in enumerate(loaders, 1):
        prog += insns + _store(i, R7)
    prog += [Label("out"), Mov.Imm(R0, 0), Exit()]
    return link(prog, maps={"m": map_fd})


def sampler(stacks_fd, pairs_fd, pid):
    """perf_event program: for samples of ``pid`` (any thread), count (kernel stack id,
    user stack id) pairs in the hash map "pairs" (key: two u64, value: u64)."""
    prog = [Mov.Reg(R6, R1)] + _pid_check(pid) + [
        Mov.Reg(R1, R6), LoadMapPtr(R2, "stacks"), Mov.Imm(R3, 0),
        Call("get_stackid"),
        StoreMem(R10, -16, R0, DW),
        Mov.Reg(R1, R6), LoadMapPtr(R2, "stacks"), Mov.Imm(R3, 1 << 8),   # BPF_F_USER_STACK
        Call("get_stackid"),
        StoreMem(R10, -8, R0, DW),
        LoadMapPtr(R1, "pairs"), Mov.Reg(R2, R10), Add.Imm(R2, -16),
        Call("map_lookup_elem"),
        JEq.Imm(R0, 0, "new"),
    ] + _add_one(R0) + [
        Ja("out"),
        Label("new"),
        StoreImm(R10, -24, 1, DW),
        LoadMapPtr(R1, "pairs"),
        Mov.Reg(R2, R10), Add.Imm(R2, -16),
        Mov.Reg(R3, R10), Add.Imm(R3, -24),
        Mov.Imm(R4, 0),
        Call("map_update_elem"),
        Label("out"), Mov.Imm(R0, 0), Exit()]
    return link(prog, maps={"stacks": stacks_fd, "pairs": pairs_fd})


def value(m, slot, signed=False):
    raw = m.lookup(slot)
    return struct.unpack("=q" if signed else "=Q", raw)[0]
