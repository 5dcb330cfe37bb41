"""Code for ``argN`` and ``retval`` of kprobes and uprobes: loads from the ``pt_regs`` the
program gets, at the offsets ``tinytrace.kernel.regs`` gives for the probed code's calling
convention (kernel or user, per architecture).

An argument in a register is one load from the context (narrower than 8 bytes on 32-bit
ABIs: the low word of the register's slot).  An argument passed on the stack is read with
``probe_read_kernel`` / ``probe_read_user`` at the stack pointer plus its displacement
(correct at function entry only, which is where kprobes and uprobes on a symbol fire).
``argN`` is zero-extended (bpftrace's ``argN`` are unsigned 64-bit); ``retval`` is
sign-extended from the ABI's word, so a 32-bit ``-1`` stays ``-1``.
"""
from tinytrace.lang.source import LangError


def location(table, name, loc=None):
    """The ``regs.ArgLoc`` of builtin ``name`` (``argN`` / ``retval``) in ``table``."""
    from tinytrace.kernel.regs import RegsError
    try:
        if name == "retval":
            return table.retval_loc()
        return table.arg(int(name[3:]))
    except RegsError as e:
        raise LangError(str(e), loc)


def emit(gen, table, name, user):
    """A register holding ``name``'s value."""
    b = gen.b
    loc = location(table, name, b.loc)
    size = loc.size if loc.size in (1, 2, 4, 8) else 8
    r = b.vreg()
    if loc.kind == "reg":
        b.load(r, gen.ctx, loc.offset, size)
    else:
        sp = b.vreg()
        b.load(sp, gen.ctx, loc.offset, table.slot if table.slot in (4, 8) else 8)
        if loc.disp:
            b.alu("+", sp, imm=loc.disp)
        tmp = gen.alloc(8)
        b.store_imm(tmp.base, tmp.off, 0, 8)
        b.call(gen.comp.target.read_helper(user, False), gen._ptr(tmp), ("imm", size), sp)
        b.load(r, tmp.base, tmp.off, size)
    if size < 8:
        if name == "retval":
            b.sign_extend(r, size * 8)
        else:
            b.zero_extend(r, size * 8)
    return r
