"""Assembler: the C-like text syntax (see the package docstring) to `Insn` and `Label` values.

Each line is matched against the instruction forms the disassembler prints (and the common
variants llvm-objdump and the verifier log print: ``goto pc+3``, ``(r1 + 0x8)``, a leading
``12: (bf)``).  Errors are `AsmError` naming the line.  Immediates are checked the way the
builders check them: a 32-bit operation accepts 0..0xffffffff, a 64-bit one only what its
sign-extended s32 field can hold (``r1 = VALUE`` beyond that becomes a 64-bit load).
"""

import re

from . import opcodes as op
from .insn import AsmError, Insn, Label
from .validate import problem

_NUM = r"[+-]?\s*(?:0[xX][0-9a-fA-F]+|\d+)"
_NAME = r"[A-Za-z_.$][\w.$]*"
_REG = r"([rw])(\d+)"
# (u32 *)(r1 +8): groups sign, bits, base, offset (optional)
_MEMREF = (r"\(\s*([us])(8|16|32|64)\s*\*\s*\)\s*\(\s*r(\d+)\s*((?:[+-]\s*(?:0[xX][0-9a-fA-F]+"
           r"|\d+))?)\s*\)")

_PATTERNS = None


def _patterns():
    global _PATTERNS
    if _PATTERNS is None:
        c = re.compile
        _PATTERNS = {
            "prefix": c(r"^\s*(?:\d+\s*:\s*)?(?:\([0-9a-fA-F]{2}\)\s+)?"),
            "label": c(r"^(%s)\s*:(?!=)\s*(.*)$" % _NAME),
            "insn": c(r"^\.insn\s+(0[xX][0-9a-fA-F]+|\d+)\s+dst=(\d+)\s+src=(\d+)\s+off=(%s)\s+"
                      r"imm=(%s)$" % (_NUM, _NUM)),
            "call": c(r"^call\s+(.+?)$"),
            "goto": c(r"^(goto|gotol|may_goto)\s+(.+?)$"),
            "gotox": c(r"^gotox\s+r(\d+)$"),
            "if": c(r"^if\s+%s\s*(==|!=|s>=|s<=|s>|s<|>=|<=|>|<|&)\s*(?:%s|(%s))\s+goto\s+(.+?)$"
                    % (_REG, _REG, _NUM)),
            "lock": c(r"^lock\s+\*\s*%s\s*(\+=|\|=|&=|\^=)\s*%s$" % (_MEMREF, _REG)),
            "store_rel": c(r"^store_release\s*\(\s*%s\s*,\s*%s\s*\)$" % (_MEMREF, _REG)),
            "store": c(r"^\*\s*%s\s*=\s*(?:%s|(%s))$" % (_MEMREF, _REG, _NUM)),
            "assign": c(r"^%s\s*(=|\+=|-=|\*=|/=|%%=|\|=|&=|\^=|<<=|>>=|s>>=|s/=|s%%=)\s*(.*?)$"
                        % _REG),
            "load": c(r"^\*\s*%s$" % _MEMREF),
            "skb": c(r"^\*\s*\(\s*u(8|16|32)\s*\*\s*\)\s*skb\s*\[\s*(?:r(\d+)\s*(?:([+-])\s*"
                     r"(0[xX][0-9a-fA-F]+|\d+))?|(%s))\s*\]$" % _NUM),
            "fetch": c(r"^atomic(64)?_(fetch_add|fetch_or|fetch_and|fetch_xor|xchg)\s*\(\s*%s\s*,"
                       r"\s*%s\s*\)$" % (_MEMREF, _REG)),
            "cmpxchg": c(r"^atomic(64)?_cmpxchg\s*\(\s*%s\s*,\s*[rw]0\s*,\s*%s\s*\)$"
                         % (_MEMREF, _REG)),
            "xchg_llvm": c(r"^(xchg_64|xchg32_32)\s*\(\s*r(\d+)\s*((?:[+-]\s*(?:0[xX][0-9a-fA-F]+"
                           r"|\d+))?)\s*,\s*%s\s*\)$" % _REG),
            "cmpxchg_llvm": c(r"^(cmpxchg_64|cmpxchg32_32)\s*\(\s*r(\d+)\s*((?:[+-]\s*(?:0[xX]"
                              r"[0-9a-fA-F]+|\d+))?)\s*,\s*[rw]0\s*,\s*%s\s*\)$" % _REG),
            "load_acq": c(r"^load_acquire\s*\(\s*%s\s*\)$" % _MEMREF),
            "neg": c(r"^-\s*%s$" % _REG),
            "movsx": c(r"^\(\s*s(8|16|32)\s*\)\s*%s$" % _REG),
            "end": c(r"^(be|le|bswap)(16|32|64)\s+%s$" % _REG),
            "asc": c(r"^addr_space_cast\s*\(\s*r(\d+)\s*,\s*(%s)\s*,\s*(%s)\s*\)$" % (_NUM, _NUM)),
            "reg": c(r"^%s$" % _REG),
            "num": c(r"^(%s)$" % _NUM),
            "ll": c(r"^(.*?)\s+ll$"),
            "wide": c(r"^(map|map_value|func)\[(%s)\]\s*(%s)?$|"
                      r"^(map_fd|map_value_fd|btf_id|map_idx|map_idx_value)\(\s*(%s)\s*\)\s*(%s)?$|"
                      r"^func\(\s*(?:pc)?\s*(%s)\s*\)\s*(%s)?$|^(%s)$"
                      % (_NAME, _NUM, _NUM, _NUM, _NUM, _NUM, _NAME)),
            "rel": c(r"^(?:pc)?\s*([+-]\s*(?:0[xX][0-9a-fA-F]+|\d+))(?:\s*<[^>]*>)?$"),
            "name": c(r"^(%s)(?:\s*<[^>]*>)?$" % _NAME),
            "helper": c(r"^(%s|kernel-function)#(\d+)(?:@(\d+))?$" % _NAME),
        }
    return _PATTERNS


class _Error(Exception):
    """A parse failure inside one line (turned into AsmError with the line number)."""


def _int(text):
    t = text.replace(" ", "").replace("\t", "")
    neg = t.startswith("-")
    if t[:1] in "+-":
        t = t[1:]
    value = int(t, 16) if t[:2] in ("0x", "0X") else int(t, 10)
    return -value if neg else value


def _imm32(value, narrow):
    """Check an immediate; ``narrow`` (a 32-bit operation) also accepts 2**31..2**32-1."""
    if narrow and (1 << 31) <= value < (1 << 32):
        return value - (1 << 32)
    if not -(1 << 31) <= value < (1 << 31):
        if not narrow and (1 << 31) <= value < (1 << 32):
            raise _Error("immediate %s does not fit in the s32 imm field, which a 64-bit "
                         "operation sign-extends: write %d, or use a 64-bit load (ll)"
                         % (hex(value), value - (1 << 32)))
        raise _Error("immediate %d does not fit in the s32 imm field" % value)
    return value


def _off(sign_and_num):
    if not sign_and_num:
        return 0
    value = _int(sign_and_num)
    if not -32768 <= value <= 32767:
        raise _Error("offset %d does not fit in the s16 off field" % value)
    return value


_SIZES = {"8": op.SIZE_B, "16": op.SIZE_H, "32": op.SIZE_W, "64": op.SIZE_DW}
_ALU_CODES = {"+=": op.ADD, "-=": op.SUB, "*=": op.MUL, "/=": op.DIV, "%=": op.MOD,
              "|=": op.OR, "&=": op.AND, "^=": op.XOR, "<<=": op.LSH, ">>=": op.RSH,
              "s>>=": op.ARSH, "s/=": op.DIV, "s%=": op.MOD, "=": op.MOV}
_JMP_CODES = {"==": op.JEQ, "!=": op.JNE, ">": op.JGT, ">=": op.JGE, "<": op.JLT,
              "<=": op.JLE, "s>": op.JSGT, "s>=": op.JSGE, "s<": op.JSLT, "s<=": op.JSLE,
              "&": op.JSET}
_LOCK_CODES = {"+=": op.ADD, "|=": op.OR, "&=": op.AND, "^=": op.XOR}
_FETCH_CODES = {"fetch_add": op.ADD | op.FETCH, "fetch_or": op.OR | op.FETCH,
                "fetch_and": op.AND | op.FETCH, "fetch_xor": op.XOR | op.FETCH,
                "xchg": op.XCHG}
_WIDE_KINDS = {"map": op.PSEUDO_MAP_FD, "map_value": op.PSEUDO_MAP_VALUE,
               "func": op.PSEUDO_FUNC, "map_fd": op.PSEUDO_MAP_FD,
               "map_value_fd": op.PSEUDO_MAP_VALUE, "btf_id": op.PSEUDO_BTF_ID,
               "map_idx": op.PSEUDO_MAP_IDX, "map_idx_value": op.PSEUDO_MAP_IDX_VALUE}


def _memref(m, i):
    """(size, base register, offset) from the _MEMREF groups starting at group ``i``."""
    sign, bits, base, off = m.group(i), m.group(i + 1), int(m.group(i + 2)), m.group(i + 3)
    return sign, _SIZES[bits], base, _off(off)


def _target(text, p):
    """(value, ref) of a jump target: ``+3``, ``pc-2``, ``name``."""
    m = p["rel"].match(text)
    if m:
        return _int(m.group(1)), None
    m = p["name"].match(text)
    if m:
        return 0, m.group(1)
    raise _Error("bad jump target %r" % text)


def _parse_call(text, p, label_names):
    m = p["rel"].match(text)
    if m:
        return Insn(op.CALL_OP, 0, op.PSEUDO_CALL, 0, _imm32(_int(m.group(1)), False))
    m = p["helper"].match(text)
    if m:
        name, ident = m.group(1), int(m.group(2))
        if name in ("kfunc", "kernel-function"):
            return Insn(op.CALL_OP, 0, op.PSEUDO_KFUNC_CALL, _off(m.group(3) or "0"),
                        _imm32(ident, False))
        if m.group(3):
            raise _Error("only a kfunc call takes @index")
        if name != "unknown":
            from .helpers import id_of
            known = id_of(name)
            if known is not None and known != ident:
                raise _Error("helper %s is id %d, not %d" % (name, known, ident))
        return Insn(op.CALL_OP, 0, op.CALL_HELPER, 0, _imm32(ident, False))
    m = p["num"].match(text)
    if m:
        return Insn(op.CALL_OP, 0, op.CALL_HELPER, 0, _imm32(_int(m.group(1)), False))
    m = p["name"].match(text)
    if m:
        name = m.group(1)
        if name in label_names:
            return Insn(op.CALL_OP, 0, op.PSEUDO_CALL, 0, 0, name)
        from .helpers import id_of
        ident = id_of(name)
        if ident is None:
            raise _Error("%r is neither a label in this text nor a helper" % name)
        return Insn(op.CALL_OP, 0, op.CALL_HELPER, 0, ident)
    raise _Error("bad call target %r" % text)


def _parse_wide(dst, text, p):
    """r = <64-bit operand> ll."""
    m = p["wide"].match(text)
    if m is None:
        m2 = p["num"].match(text)
        if m2 is None:
            raise _Error("bad 64-bit operand %r" % text)
        value = _int(m2.group(1))
        if not -(1 << 63) <= value < (1 << 64):
            raise _Error("%d does not fit in 64 bits" % value)
        return Insn(op.LD_IMM64, dst, 0, 0, value & 0xffffffffffffffff)
    g = m.groups()
    if g[0] is not None:                       # map[name] / map_value[name] / func[name]
        kind, ref, tail = _WIDE_KINDS[g[0]], g[1], g[2]
        low = 0
    elif g[3] is not None:                     # map_fd(5) ... with a number
        kind, ref, tail = _WIDE_KINDS[g[3]], None, g[5]
        low = _int(g[4])
    elif g[6] is not None:                     # func(pc+5)
        kind, ref, tail = op.PSEUDO_FUNC, None, g[7]
        low = _int(g[6])
    else:                                      # bare symbol: a map (as llvm writes relocations)
        kind, ref, tail, low = op.PSEUDO_MAP_FD, g[8], None, 0
    if not -(1 << 31) <= low < (1 << 32):
        raise _Error("%d does not fit in 32 bits" % low)
    high = _int(tail) if tail else 0
    if not -(1 << 31) <= high < (1 << 32):
        raise _Error("%d does not fit in 32 bits" % high)
    return Insn(op.LD_IMM64, dst, kind, 0, ((high & 0xffffffff) << 32) | (low & 0xffffffff),
                ref)


def _parse_assign(m, p):
    rw, dst, sym, rhs = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    narrow = rw == "w"
    klass = op.ALU if narrow else op.ALU64
    if sym != "=":
        code = _ALU_CODES[sym]
        off = 1 if sym in ("s/=", "s%=") else 0
        r = p["reg"].match(rhs)
        if r:
            if r.group(1) != rw:
                raise _Error("mixes r and w registers")
            return Insn(klass | code | op.X, dst, int(r.group(2)), off, 0)
        n = p["num"].match(rhs)
        if n:
            return Insn(klass | code | op.K, dst, 0, off, _imm32(_int(n.group(1)), narrow))
        raise _Error("bad operand %r" % rhs)
    r = p["reg"].match(rhs)
    if r:
        if r.group(1) != rw:
            raise _Error("mixes r and w registers")
        return Insn(klass | op.MOV | op.X, dst, int(r.group(2)))
    n = p["num"].match(rhs)
    if n:
        value = _int(n.group(1))
        if not narrow and not -(1 << 31) <= value < (1 << 31):
            # Too wide for a move: the kernel log prints 64-bit loads this way.
            return _parse_wide(dst, n.group(1), p)
        return Insn(klass | op.MOV | op.K, dst, 0, 0, _imm32(value, narrow))
    w = p["ll"].match(rhs)
    if w:
        if narrow:
            raise _Error("a 64-bit load needs an r register")
        return _parse_wide(dst, w.group(1).strip(), p)
    x = p["load"].match(rhs)
    if x:
        sign, size, base, off = _memref(x, 1)
        if sign == "s":
            if size == op.SIZE_DW:
                raise _Error("sign-extending loads are s8, s16 or s32")
            return Insn(op.LDX | op.MEMSX | size, dst, base, off, 0)
        return Insn(op.LDX | op.MEM | size, dst, base, off, 0)
    x = p["neg"].match(rhs)
    if x:
        if x.group(1) != rw or int(x.group(2)) != dst:
            raise _Error("negation must be of the same register (%s%d = -%s%d)"
                         % (rw, dst, rw, dst))
        return Insn(klass | op.NEG, dst)
    x = p["movsx"].match(rhs)
    if x:
        if x.group(2) != rw:
            raise _Error("mixes r and w registers")
        return Insn(klass | op.MOV | op.X, dst, int(x.group(3)), int(x.group(1)), 0)
    x = p["end"].match(rhs)
    if x:
        if int(x.group(4)) != dst:
            raise _Error("byte swaps work in place (r%d = %s%s r%d)"
                         % (dst, x.group(1), x.group(2), dst))
        kind = x.group(1)
        code = op.ALU64 | op.END if kind == "bswap" else \
            op.ALU | op.END | (op.TO_BE if kind == "be" else op.TO_LE)
        return Insn(code, dst, 0, 0, int(x.group(2)))
    x = p["skb"].match(rhs)
    if x:
        size = _SIZES[x.group(1)]
        if dst != 0:
            raise _Error("legacy packet loads write r0")
        if x.group(2) is not None:
            imm = _int((x.group(3) or "+") + (x.group(4) or "0"))
            return Insn(op.LD | op.IND | size, 0, int(x.group(2)), 0, _imm32(imm, False))
        return Insn(op.LD | op.ABS | size, 0, 0, 0, _imm32(_int(x.group(5)), False))
    x = p["fetch"].match(rhs)
    if x:
        _sign, size, base, off = _memref(x, 3)
        src = int(x.group(8))
        if src != dst:
            raise _Error("the fetched value goes to the source register (%s%d = ...(.., %s%d))"
                         % (rw, src, rw, src))
        _check_width(x.group(1), size)
        return Insn(op.STX | op.ATOMIC | size, base, src, off, _FETCH_CODES[x.group(2)])
    x = p["cmpxchg"].match(rhs)
    if x:
        _sign, size, base, off = _memref(x, 2)
        if dst != 0:
            raise _Error("cmpxchg returns in r0")
        _check_width(x.group(1), size)
        return Insn(op.STX | op.ATOMIC | size, base, int(x.group(7)), off, op.CMPXCHG)
    x = p["xchg_llvm"].match(rhs)
    if x:
        size = op.SIZE_DW if x.group(1) == "xchg_64" else op.SIZE_W
        src = int(x.group(5))
        if src != dst:
            raise _Error("the exchanged value goes to the source register")
        return Insn(op.STX | op.ATOMIC | size, int(x.group(2)), src, _off(x.group(3)), op.XCHG)
    x = p["cmpxchg_llvm"].match(rhs)
    if x:
        if dst != 0:
            raise _Error("cmpxchg returns in r0")
        size = op.SIZE_DW if x.group(1) == "cmpxchg_64" else op.SIZE_W
        return Insn(op.STX | op.ATOMIC | size, int(x.group(2)), int(x.group(5)),
                    _off(x.group(3)), op.CMPXCHG)
    x = p["load_acq"].match(rhs)
    if x:
        _sign, size, base, off = _memref(x, 1)
        return Insn(op.STX | op.ATOMIC | size, dst, base, off, op.LOAD_ACQ)
    x = p["asc"].match(rhs)
    if x:
        dst_as, src_as = _int(x.group(2)), _int(x.group(3))
        if not (0 <= dst_as <= 0xffff and 0 <= src_as <= 0xffff):
            raise _Error("address spaces are 0..65535")
        imm = (dst_as << 16) | src_as
        return Insn(op.ALU64 | op.MOV | op.X, dst, int(x.group(1)), op.OFF_ADDR_SPACE_CAST,
                    imm - (1 << 32) if imm >= 1 << 31 else imm)
    raise _Error("cannot parse %r" % rhs)


def _check_width(is64, size):
    # The verifier log writes atomic64_ for u64; llvm-objdump writes atomic_ for both.
    if is64 and size != op.SIZE_DW:
        raise _Error("atomic64_ operations are on u64")


def _parse_line(line, p, label_names):
    m = p["insn"].match(line)
    if m:
        return Insn(int(m.group(1), 0), int(m.group(2)), int(m.group(3)), _int(m.group(4)),
                    _int(m.group(5)))
    if line == "exit":
        return Insn(op.EXIT_OP)
    m = p["assign"].match(line)
    if m:
        return _parse_assign(m, p)
    m = p["if"].match(line)
    if m:
        rw, dst, sym = m.group(1), int(m.group(2)), m.group(3)
        klass = op.JMP32 if rw == "w" else op.JMP
        off, ref = _target(m.group(7), p)
        off = _off("%d" % off) if ref is None else 0
        if m.group(4) is not None:
            if m.group(4) != rw:
                raise _Error("mixes r and w registers")
            return Insn(klass | _JMP_CODES[sym] | op.X, dst, int(m.group(5)), off, 0, ref)
        return Insn(klass | _JMP_CODES[sym] | op.K, dst, 0, off,
                    _imm32(_int(m.group(6)), rw == "w"), ref)
    m = p["call"].match(line)
    if m:
        return _parse_call(m.group(1), p, label_names)
    m = p["goto"].match(line)
    if m:
        value, ref = _target(m.group(2), p)
        if m.group(1) == "gotol":
            return Insn(op.JA32_OP, 0, 0, 0, _imm32(value, False), ref)
        code = op.JA_OP if m.group(1) == "goto" else op.MAY_GOTO_OP
        return Insn(code, 0, 0, _off("%d" % value), 0, ref)
    m = p["gotox"].match(line)
    if m:
        return Insn(op.GOTOX_OP, int(m.group(1)))
    m = p["store"].match(line)
    if m:
        _sign, size, base, off = _memref(m, 1)
        if m.group(5) is not None:
            return Insn(op.STX | op.MEM | size, base, int(m.group(6)), off, 0)
        return Insn(op.ST | op.MEM | size, base, 0, off,
                    _imm32(_int(m.group(7)), size != op.SIZE_DW))
    m = p["lock"].match(line)
    if m:
        _sign, size, base, off = _memref(m, 1)
        return Insn(op.STX | op.ATOMIC | size, base, int(m.group(7)), off,
                    _LOCK_CODES[m.group(5)])
    m = p["store_rel"].match(line)
    if m:
        _sign, size, base, off = _memref(m, 1)
        return Insn(op.STX | op.ATOMIC | size, base, int(m.group(6)), off, op.STORE_REL)
    raise _Error("cannot parse")


def _strip_comment(line):
    cut = line.find(";")
    if cut >= 0:
        line = line[:cut]
    cut = line.find("//")
    if cut >= 0:
        line = line[:cut]
    return line.strip()


def assemble(text):
    """Parse ``text`` into a list of `Insn` and `Label` (see the package docstring)."""
    p = _patterns()
    lines = []
    label_names = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if not line:
            continue
        line = p["prefix"].sub("", line, count=1)
        while True:
            m = p["label"].match(line)
            if m is None:
                break
            name = m.group(1)
            if name in label_names:
                raise AsmError("duplicate label %r (first on line %d)"
                               % (name, label_names[name]), line=number)
            label_names[name] = number
            lines.append((number, name, None))
            line = m.group(2).strip()
        if line:
            lines.append((number, None, line))
    out = []
    for number, name, line in lines:
        if name is not None:
            out.append(Label(name))
            continue
        try:
            insn = _parse_line(line, p, label_names)
        except _Error as e:
            raise AsmError(str(e), line=number, text=line)
        why = problem(insn)
        if why is not None:
            raise AsmError(why, line=number, text=line)
        ref = insn[5]
        if ref is not None and ref not in label_names and _is_label_ref(insn):
            raise AsmError("unresolved label %r" % ref, line=number, text=line)
        out.append(insn)
    return out


def _is_label_ref(insn):
    code = insn[0]
    if code == op.LD_IMM64:
        return insn[2] == op.PSEUDO_FUNC
    return code & 0x07 in (op.JMP, op.JMP32)
