"""Loading BPF programs, and explaining the verifier's refusals.

``load()`` first tries without a verifier log: the common case (the program is fine) then
allocates nothing.  Only after a failure is the load repeated with ``log_level=1`` and a large
buffer; the log is parsed for the failing instruction (its index, shown with
``tinytrace.asm.disassemble``) and the verifier's reason (the last meaningful line), and a
``VerifierError`` carries both plus the whole log.
"""
import errno as _errno
import struct

from tinytrace.errors import KernelError
from tinytrace.kernel import bpf
from tinytrace.kernel.libc import OwnedFd, ffi

_PROG_TYPE_BY_NUMBER = {v: k for k, v in bpf.PROG_TYPES.items()}

LOG_SIZES = (1 << 20, (1 << 24) - 1)  # try 1 MiB, then the largest size every kernel takes
LOG_LEVEL_STATS = 4  # only "processed N insns" lines; log_level 1 explains the rejection


def prog_type_number(prog_type):
    if isinstance(prog_type, int):
        return prog_type
    k = prog_type.lower()
    if k.startswith("bpf_prog_type_"):
        k = k[len("bpf_prog_type_"):]
    if k not in bpf.PROG_TYPES:
        raise ValueError("unknown program type %r (known: %s)"
                         % (prog_type, ", ".join(sorted(bpf.PROG_TYPES))))
    return bpf.PROG_TYPES[k]


def attach_type_number(attach_type):
    if isinstance(attach_type, int):
        return attach_type
    k = attach_type.lower()
    if k.startswith("bpf_"):
        k = k[4:]
    if k not in bpf.ATTACH_TYPES:
        raise ValueError("unknown attach type %r" % attach_type)
    return bpf.ATTACH_TYPES[k]


ENOTSUPP = 524   # kernel-internal errno: what a JIT returns for an instruction it lacks


class VerifierError(KernelError):
    """The kernel's verifier refused a program.

    ``index`` is the failing instruction's slot index (or None), ``insn_text`` its
    disassembly, ``reason`` the verifier's explanation, ``log`` the whole verifier log and
    ``errno`` the load's errno.  ``str()`` is a short block; ``full_log()`` the whole text.
    """

    def __init__(self, name, err, log, index, insn_text, reason, insn_count=None):
        self.name = name
        self.errno = err
        self.log = log
        self.index = index
        self.insn_text = insn_text
        self.reason = reason
        self.insn_count = insn_count
        super().__init__(self.summary())

    def summary(self):
        import os
        what = "the BPF verifier rejected program %r" % self.name if self.name else \
            "the BPF verifier rejected the program"
        if self.errno == ENOTSUPP:
            # the verifier accepted the program; the JIT could not translate it and this
            # kernel has no interpreter to fall back on (CONFIG_BPF_JIT_ALWAYS_ON)
            return "\n".join([
                "%s: the kernel's BPF JIT cannot compile it (error 524, ENOTSUPP)" % (
                    "the kernel refused program %r" % self.name if self.name else
                    "the kernel refused the program"),
                "  reason: an instruction this architecture's JIT lacks (32-bit ARM's JIT has "
                "no atomic operations); the verifier itself accepted the program"])
        lines = ["%s (%s)" % (what, os.strerror(self.errno) if self.errno else "error")]
        if self.index is not None:
            lines.append("  at insn %d: %s" % (self.index, self.insn_text or "?"))
        lines.append("  reason: %s" % (self.reason or "(the verifier gave none)"))
        return "\n".join(lines)

    def full_log(self):
        return self.log


class Program(OwnedFd):
    """A loaded program.  ``log`` holds the verifier log when one was requested."""

    def __init__(self, fd, prog_type, name="", insn_count=0, expected_attach_type=0,
                 attach_btf_id=0, log=""):
        OwnedFd.__init__(self, fd)
        self.prog_type = prog_type
        self.name = name
        self.insn_count = insn_count
        self.expected_attach_type = expected_attach_type
        self.attach_btf_id = attach_btf_id
        self.log = log

    @property
    def type_name(self):
        return _PROG_TYPE_BY_NUMBER.get(self.prog_type, str(self.prog_type))

    def __repr__(self):
        return "<Program %s %r fd=%d insns=%d>" % (self.type_name, self.name, self.fd,
                                                   self.insn_count)

    def info(self):
        """A few fields of ``struct bpf_prog_info``: id, tag (hex), jited_len, xlated_len."""
        raw = bpf.obj_get_info(self.fileno(), 64)
        raw = raw + bytes(64 - len(raw))
        ptype, pid, tag, jited, xlated = struct.unpack_from("<II8sII", raw, 0)
        return {"type": ptype, "id": pid, "tag": tag.hex(), "jited_len": jited,
                "xlated_len": xlated}

    def recursion_misses(self):
        """How many runs of this program the kernel skipped; see ``recursion_misses``."""
        return recursion_misses(self.fileno())

    def test_run(self, ctx=b"", data=b"", repeat=0, cpu=None):
        """Run the program once in the kernel (BPF_PROG_TEST_RUN); returns its r0.  For
        raw_tracepoint programs ``ctx`` is the argument array and ``cpu`` may pin the run."""
        flags = 0
        if cpu is not None:
            flags = bpf.BPF_F_TEST_RUN_ON_CPU
        retval, _ = bpf.prog_test_run(self.fileno(), ctx_in=ctx, data_in=data, repeat=repeat,
                                      flags=flags, cpu=cpu or 0)
        return retval


_RECURSION_MISSES = 208     # offset in struct bpf_prog_info (after run_time_ns, run_cnt)
_PROG_INFO_SIZE = 216


def recursion_misses(fd):
    """``bpf_prog_info.recursion_misses`` of program ``fd``: the runs the kernel skipped
    because a BPF program was already running on that CPU (an interrupt arriving then, a
    tracepoint hit inside a helper, or a map operation of a system call on that CPU).
    The field exists from Linux 5.12; tracepoint, kprobe and perf-event programs are counted
    from 6.7 (0 before)."""
    info = bpf.obj_get_info(fd, _PROG_INFO_SIZE)
    if len(info) < _RECURSION_MISSES + 8:
        return 0
    return struct.unpack_from("<Q", info, _RECURSION_MISSES)[0]


_PROG_LOAD = struct.Struct("<IIQQIIQII16sIIIIQIIQIIII")  # up to attach_btf_obj_fd (120 bytes)


def _attr(prog_type, insn_cnt, insns_addr, license_addr, log_level, log_size, log_addr,
          kern_version, prog_flags, name, expected_attach_type, attach_btf_id,
          attach_btf_obj_fd, func_info=(0, 0, 0)):
    btf_fd, finfo_addr, finfo_cnt = func_info
    return bytearray(_PROG_LOAD.pack(
        prog_type, insn_cnt, insns_addr, license_addr, log_level, log_size, log_addr,
        kern_version, prog_flags, name, 0, expected_attach_type, btf_fd,
        _FUNC_INFO.size if finfo_cnt else 0, finfo_addr, finfo_cnt, 0, 0, 0,
        attach_btf_id, attach_btf_obj_fd, 0))


_FUNC_INFO = struct.Struct("=II")     # struct bpf_func_info: insn_off, type_id


def _function_btf(functions):
    """(BTF blob, func_info bytes) describing a program's functions: each is a static
    ``long NAME(void)`` -- enough for the verifier, which needs func_info before it takes a
    callback (``bpf_for_each_map_elem``) and checks argument types of global functions
    only."""
    from tinytrace.kernel.btf import Writer
    w = Writer()
    ret = w.int("long", 8, signed=True)
    proto = w.func_proto(ret)
    recs = []
    for i, (slot, name) in enumerate(functions):
        clean = "".join(c if c.isalnum() or c == "_" else "_" for c in (name or ""))
        if not clean or clean[0].isdigit():
            clean = "f%d_%s" % (i, clean)
        ident = w.func(clean, proto)
        recs.append(_FUNC_INFO.pack(slot, ident))
    return w.encode(), b"".join(recs)


def load(code, prog_type, name="", license="GPL", expected_attach_type=0, attach_btf_id=0,
         attach_btf_obj_fd=0, kern_version=None, prog_flags=0, log_level=0, source=None,
         functions=None):
    """Load ``code`` (linked bytecode, bytes) as ``prog_type`` (a name from
    ``bpf.PROG_TYPES`` or a number).  ``source`` may be the instruction list ``code`` was
    linked from, so a rejection can show the instruction with its comment.  ``log_level`` > 0
    always captures the verifier log (into ``Program.log``).  ``functions``: the
    ``[(slot, name)]`` of a program with more than one function (``asm.layout(...)
    .functions``), described to the kernel in BTF func_info.  Returns a ``Program``; raises
    ``VerifierError``, ``PrivilegeError`` or ``BpfError``."""
    code = bytes(code)
    if not code or len(code) % 8:
        raise ValueError("program %r: code must be a non-empty multiple of 8 bytes" % name)
    ptype = prog_type_number(prog_type)
    eat = attach_type_number(expected_attach_type) if expected_attach_type else 0
    if kern_version is None:
        kern_version = bpf.kernel_version_code()
    bpf.raise_memlock()
    insns = ffi.new("char[]", code)
    lic = ffi.new("char[]", license.encode())
    iaddr = int(ffi.cast("uintptr_t", insns))
    laddr = int(ffi.cast("uintptr_t", lic))
    cname = bpf.sanitize_name(name)
    n = len(code) // 8
    finfo = (0, 0, 0)
    btf_fd = None
    if functions and len(functions) > 1:
        blob, recs = _function_btf(functions)
        btf_fd = bpf.btf_load(blob)
        finfo_buf = ffi.new("char[]", recs)
        finfo = (btf_fd, int(ffi.cast("uintptr_t", finfo_buf)), len(functions))
    try:
        return _load(code, ptype, name, lic, iaddr, laddr, cname, n, eat, attach_btf_id,
                     attach_btf_obj_fd, kern_version, prog_flags, log_level, source, finfo)
    finally:
        if btf_fd is not None:
            import os
            os.close(btf_fd)     # the program keeps its own reference


def _load(code, ptype, name, lic, iaddr, laddr, cname, n, eat, attach_btf_id,
          attach_btf_obj_fd, kern_version, prog_flags, log_level, source, finfo):

    def attempt(level, size, with_name=True):
        logbuf = ffi.new("char[]", size) if size else None
        laddr_ = int(ffi.cast("uintptr_t", logbuf)) if size else 0
        attr = _attr(ptype, n, iaddr, laddr, level, size, laddr_, kern_version, prog_flags,
                     cname if with_name else b"", eat, attach_btf_id, attach_btf_obj_fd,
                     finfo)
        err = 0
        fd = -1
        for _ in range(5):  # EAGAIN: the verifier was interrupted by a signal; try again
            try:
                fd = bpf.call(bpf.PROG_LOAD, attr, privilege_errors=False)
                err = 0
                break
            except bpf.BpfError as e:
                err = e.errno
                if err != _errno.EAGAIN:
                    break
        log = ""
        if logbuf is not None:
            log = ffi.string(logbuf).decode("utf-8", "replace")
        return fd, err, log

    use_name = True
    fd, err, log = attempt(log_level, LOG_SIZES[0] if log_level else 0)
    if err == _errno.EINVAL and cname:
        # kernels before 4.15 know no program names; try once without before blaming the code
        fd2, err2, log2 = attempt(log_level, LOG_SIZES[0] if log_level else 0, False)
        if not err2:
            fd, err, log, use_name = fd2, err2, log2, False
    if not err:
        return Program(fd, ptype, name, n, eat, attach_btf_id, log)

    first_err = err
    for size in LOG_SIZES:
        fd, err, log = attempt(max(log_level, 1), size, use_name)
        if not err:  # passed with a log (should not happen): keep it, it is a program
            return Program(fd, ptype, name, n, eat, attach_btf_id, log)
        if err != _errno.ENOSPC:
            break
    if not log.strip():
        if first_err in (_errno.EPERM, _errno.EACCES):
            from tinytrace import privileges
            raise privileges.error("bpf(BPF_PROG_LOAD)", first_err)
        raise bpf.BpfError(bpf.PROG_LOAD, first_err,
                           " of %s program %r" % (_PROG_TYPE_BY_NUMBER.get(ptype, ptype), name))
    index, reason = parse_log(log)
    text = describe_insn(code, index, source) if index is not None else None
    raise VerifierError(name, first_err if first_err != _errno.ENOSPC else err, log, index,
                        text, _clean(reason), n)


# -- the verifier log -----------------------------------------------------------------------

_patterns = None


def _re():
    """The log patterns, compiled on first use: ``re`` is not imported on the success path."""
    global _patterns
    if _patterns is None:
        import re
        _patterns = (
            re.compile(r"^(\d+): \(([0-9a-f]{2})\)"),          # "12: (79) r0 = ..."
            re.compile(r"\binsn (\d+)\b"),                       # "... from insn 4 to 2"
            re.compile(                                           # lines that are not reasons
                r"^(processed \d+ insns|verification time|stack depth|max_states_per_insn|"
                r"peak_states|mark_read|Live regs|-- END|func#\d+ @|from \d+ to \d+:|\d+: R\d|"
                r"\d+: \(|;|R\d+[_=]|Func#|last_idx|regs=|parent |arg#\d|Validating|"
                r"\d+:\s*$|mark_precise|caller passes|callee |returning from|"
                r"cur state:|old state:)"),            # the states an infinite loop repeats
            re.compile(r"^\s*\d+:\s*"),
        )
    return _patterns


def parse_log(log):
    """(failing instruction index or None, reason line) from a verifier log."""
    insn_line, insn_in_text, noise, _ = _re()
    lines = [ln.rstrip() for ln in log.splitlines()]
    reason = None
    reason_at = len(lines)
    for i in range(len(lines) - 1, -1, -1):
        ln = lines[i].strip()
        if not ln or noise.match(ln):
            continue
        reason, reason_at = ln, i
        break
    if reason is None:
        reason = ""
    index = None
    at = _at_insn(reason)
    if at is not None:       # "infinite loop detected at insn 3": the reason names it
        return at, reason
    for i in range(reason_at - 1, -1, -1):
        m = insn_line.match(lines[i].strip())
        if m:
            index = int(m.group(1))
            break
    if index is None:
        m = insn_in_text.search(reason)
        if m:
            index = int(m.group(1))
    return index, reason


def _at_insn(reason):
    """N of a reason that says where it happened ("... at insn N"), or None."""
    k = reason.rfind(" at insn ")
    if k < 0:
        return None
    digits = reason[k + 9:].split(None, 1)[0].rstrip(":,.") if reason[k + 9:].strip() else ""
    return int(digits) if digits.isdigit() else None


def _clean(text):
    """Verifier text comes from the kernel: keep it printable."""
    if text is None:
        return None
    return "".join(c if c.isprintable() else "\\x%02x" % ord(c) for c in text)


def describe_insn(code, index, source=None):
    """Disassembly of the instruction at slot ``index`` (with its comment when ``source``, the
    instruction list, is given); falls back to the raw fields."""
    insn = None
    if source is not None:
        slot = 0
        for x in source:
            op = getattr(x, "opcode", None)
            if op is None:
                continue  # a label: occupies no slot
            if slot == index:
                insn = x
                break
            slot += 2 if op == 0x18 else 1
            if slot > index:
                break
    try:
        from tinytrace.asm import disassemble
        if insn is not None:
            text = disassemble([insn])
        else:
            end = index + 1
            if code[index * 8] == 0x18 and len(code) >= (index + 2) * 8:
                end += 1
            text = disassemble(code[index * 8:end * 8])
        text = text.strip().splitlines()[0] if text.strip() else ""
        text = _re()[3].sub("", text)
        if "  ;" in text:  # the disassembler aligns comments in a column: one gap is enough
            code_part, _, comment = text.partition(";")
            text = "%s  ;%s" % (code_part.rstrip(), comment)
        if text:
            return text
    except Exception:
        pass
    if index * 8 + 8 > len(code):
        return None
    op, regs, off, imm = struct.unpack_from("<BBhi", code, index * 8)
    return "opcode 0x%02x dst r%d src r%d off %d imm %d" % (op, regs & 15, regs >> 4, off, imm)
