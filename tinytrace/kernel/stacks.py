"""Stacks: reading ``stack_trace`` maps, naming the frames, and printing them as bpftrace
and BCC do.

A BPF program records a stack with ``bpf_get_stackid(ctx, map, flags)`` (``BPF_F_USER_STACK``
= 1 << 8 for the user stack) and keeps the returned id.  The id is an index into the map,
whose value is up to ``value_size / 8`` instruction pointers, innermost first, ending at
the first zero.  A negative id is an errno: ``-EFAULT`` means there was no such stack (no
user stack in a kernel thread, no kernel stack for a sample taken in user mode) and is shown
as an empty stack; ``-EEXIST`` (a hash collision without ``BPF_F_REUSE_STACKID``) and
``-ENOMEM`` (map full) mean a stack was lost, which BCC prints as ``[Missed Kernel Stack]``.

Kernel addresses are named from /proc/kallsyms (``ksyms``), user addresses through the
process's mappings and its files' symbols (``usyms``, which needs the process to still
exist, or at least its files).  Names are escaped here (control characters as ``\\xNN``):
they come from files anyone can write.

bpftrace's text (``format_bpftrace``), for ``print(kstack)``, ``printf("%s", kstack)`` and
map keys: a newline, then one line per frame --

* ``bpftrace`` mode: ``<indent spaces>name+offset`` (decimal offset, always shown, ``+0``
  too); an address nothing names prints as ``0x7f12...``;
* ``perf`` mode: ``\\t<hex address> name+offset``, plus `` (module path)`` for user frames
  (`` ([unknown])`` when unnamed);
* ``raw`` mode: the hex address alone, no indent.

The indent is 8 in map keys; the language passes what it prints with.

BCC's text, for profile/offcputime/stackcount (``bcc_lines``, ``bcc_folded``):
``    name`` per frame (``name+0xoff`` with offsets, `` [module]`` with modules,
``[unknown]`` when unnamed), kernel frames first, ``    --`` between kernel and user with
the delimiter option, ``[Missed Kernel Stack]`` / ``[Missed User Stack]`` for lost ones,
then ``    -                comm (pid)`` and the count; folded: ``comm;user outermost ...
innermost;-;kernel outermost ... innermost count``.

Stack walking in BPF follows frame pointers.  Programs built without them (most
distribution binaries) give user stacks of one or two frames: ``ShortStacks`` watches the
stacks printed and produces one note saying so, once.  Kernel stacks taken in a kretprobe
start at the return trampoline (``kretprobe_trampoline`` / ``__kretprobe_trampoline``):
record kstack in the kprobe for the caller's chain.

API for the language and the tools::

    table = stacks.StackTable(map)            # a maps.Map of kind stack_trace
    frames = table.kernel(stack_id)           # [Frame]  (None when the id is gone)
    frames = table.user(stack_id, pid)
    text = stacks.format_bpftrace(frames, mode="bpftrace", indent=8)
    lines = stacks.bcc_lines(kernel=kf, user=uf, delimited=True)
    line = stacks.bcc_folded("python3", kernel=kf, user=uf, count=17)
"""
import errno as _errno
import os

BPF_F_USER_STACK = 1 << 8
BPF_F_FAST_STACK_CMP = 1 << 9
BPF_F_REUSE_STACKID = 1 << 10

MISSED_KERNEL = "[Missed Kernel Stack]"
MISSED_USER = "[Missed User Stack]"


def _clean(text):
    """Control characters (and backslashes) of a name escaped for printing."""
    if text is None:
        return None
    if all(" " <= c < "\x7f" and c != "\\" for c in text):
        return text
    out = []
    for c in text:
        o = ord(c)
        if c == "\\":
            out.append("\\\\")
        elif o < 0x20 or 0x7f <= o <= 0x9f:
            out.append("\\x%02x" % o)
        elif 0xdc80 <= o <= 0xdcff:             # an undecodable byte (surrogateescape)
            out.append("\\x%02x" % (o - 0xdc00))
        else:
            out.append(c)
    return "".join(out)


# ---------------------------------------------------------------- stack ids

def stack_id_errno(stack_id, bits=64):
    """The errno a ``bpf_get_stackid`` result carries (0 for a valid id).  ``stack_id`` may
    be the raw unsigned value read back from a map or event (``bits`` wide)."""
    sid = int(stack_id)
    if sid >= 1 << (bits - 1):
        sid -= 1 << bits
    if sid < 0:
        return -sid
    return 0


def stack_missing(stack_id, bits=64):
    """True when the stack was lost (an error other than EFAULT): print "[Missed ...]"."""
    e = stack_id_errno(stack_id, bits)
    return e != 0 and e != _errno.EFAULT


def stack_absent(stack_id, bits=64):
    """True when there was no stack to take (EFAULT): print nothing."""
    return stack_id_errno(stack_id, bits) == _errno.EFAULT


# ---------------------------------------------------------------- frames

class Frame(object):
    """One symbolized address.  ``name`` None when nothing names it; ``offset`` from the
    symbol; ``module``: the kernel module (None for vmlinux) or the user file's path
    (``[vdso]``, ``[perf-map]``, ``[stack]``-style names for anonymous memory)."""
    __slots__ = ("addr", "name", "offset", "module", "kernel")

    def __init__(self, addr, name, offset, module, kernel):
        self.addr, self.name, self.offset, self.module = addr, name, offset, module
        self.kernel = kernel

    def __repr__(self):
        return "Frame(0x%x, %r, %r, %r)" % (self.addr, self.name, self.offset, self.module)

    def bpftrace(self, perf=False):
        """The frame as bpftrace prints it (``perf``: the perf-mode symbol part)."""
        if self.name is None:
            s = "0x%x" % self.addr
            if perf and not self.kernel:
                s += " ([unknown])"
            return s
        s = "%s+%d" % (_clean(self.name), self.offset or 0)
        if perf and not self.kernel:
            s += " (%s)" % _clean(self.module or "[unknown]")
        return s

    def bcc(self, show_offset=False, show_module=False):
        """The frame as BCC's ``sym``/``ksym`` print it."""
        if self.name is None:
            s = "[unknown]"
        else:
            s = _clean(self.name)
            if show_offset:
                s += "+0x%x" % (self.offset or 0)
        if show_module:
            if self.kernel:
                s += " [%s]" % _clean(self.module or "kernel")
            elif self.module:
                s += " [%s]" % _clean(os.path.basename(self.module))
        return s


def kernel_frames(ips, ksyms=None):
    """``[Frame]`` for kernel addresses."""
    if ksyms is None:
        from tinytrace.kernel import ksyms as k
        ksyms = k.kallsyms()
    out = []
    for ip in ips:
        try:
            r = ksyms.resolve(ip)
        except Exception:
            r = None
        if r is None:
            out.append(Frame(ip, None, None, None, True))
        else:
            out.append(Frame(ip, r[0], r[1], r[2], True))
    return out


def user_frames(ips, pid, syms=None):
    """``[Frame]`` for user addresses of process ``pid`` (``syms``: a
    ``usyms.UserSymbols`` to use instead of the shared one)."""
    if syms is None:
        from tinytrace.kernel import usyms
        syms = usyms.for_pid(pid)
    out = []
    for ip in ips:
        s = syms.resolve(ip)
        out.append(Frame(ip, s.name, s.offset, s.module, False))
    return out


class StackTable(object):
    """A ``stack_trace`` map read as stacks.  ``max_frames`` cuts stacks (bpftrace's
    ``kstack(N)``)."""

    def __init__(self, map, ksyms=None):
        self.map = map
        self._ksyms = ksyms

    def ips(self, stack_id, max_frames=None):
        """The addresses of stack ``stack_id``, innermost first; [] for an EFAULT id, None
        when the stack was lost or is no longer in the map."""
        if stack_id_errno(stack_id):
            return [] if stack_absent(stack_id) else None
        ips = self.map.stack(stack_id)
        if ips is None:
            return None
        return ips[:max_frames] if max_frames else ips

    def kernel(self, stack_id, max_frames=None):
        ips = self.ips(stack_id, max_frames)
        return None if ips is None else kernel_frames(ips, self._ksyms)

    def user(self, stack_id, pid, max_frames=None):
        ips = self.ips(stack_id, max_frames)
        return None if ips is None else user_frames(ips, pid)


# ---------------------------------------------------------------- bpftrace text

MODES = ("bpftrace", "perf", "raw")


def format_bpftrace(frames, mode="bpftrace", indent=8):
    """bpftrace's text for a stack (``frames``: ``[Frame]``, or ints for raw mode)."""
    if mode not in MODES:
        raise ValueError("stack mode must be one of %s" % ", ".join(MODES))
    lines = ["\n"]
    pad = " " * indent
    for f in frames:
        addr = f if isinstance(f, int) else f.addr
        if mode == "raw":
            lines.append("%x\n" % addr)
        elif mode == "perf":
            lines.append("\t%x %s\n" % (addr, f.bpftrace(perf=True)))
        else:
            lines.append(pad + f.bpftrace() + "\n")
    return "".join(lines)


def bpftrace_frames(frames, mode="bpftrace"):
    """The per-frame strings of ``format_bpftrace`` without layout (for JSON output)."""
    if mode == "raw":
        return ["%x" % (f if isinstance(f, int) else f.addr) for f in frames]
    if mode == "perf":
        return ["%x %s" % (f.addr, f.bpftrace(perf=True)) for f in frames]
    return [f.bpftrace() for f in frames]


# ---------------------------------------------------------------- BCC text

def bcc_lines(kernel=None, user=None, kernel_missing=False, user_missing=False,
              delimited=False, show_offset=False, show_module=False, annotate=False,
              indent="    "):
    """The frame lines BCC's profile/offcputime print for one entry: kernel frames, then
    (``delimited``, both stacks present) ``--``, then user frames.  ``kernel``/``user``:
    ``[Frame]`` or None to leave that stack out; ``*_missing``: print the "[Missed ...]"
    placeholder instead; ``annotate``: ``_[k]`` after kernel frames (profile -a)."""
    out = []
    if kernel is not None or kernel_missing:
        if kernel_missing:
            out.append(indent + MISSED_KERNEL)
        else:
            for f in kernel:
                out.append(indent + f.bcc(show_offset, show_module) + ("_[k]" if annotate
                                                                       else ""))
    if user is not None or user_missing:
        if delimited and kernel and user and not kernel_missing and not user_missing:
            out.append(indent + "--")
        if user_missing:
            out.append(indent + MISSED_USER)
        else:
            for f in user:
                out.append(indent + f.bcc(show_offset, show_module))
    return out


def bcc_entry(comm, pid, count, kernel=None, user=None, kernel_missing=False,
              user_missing=False, delimited=False, show_offset=False, show_module=False,
              annotate=False):
    """One complete entry of BCC profile's default output (frames, the ``-  comm (pid)``
    line and the count, then a blank line), as text."""
    lines = bcc_lines(kernel, user, kernel_missing, user_missing, delimited, show_offset,
                      show_module, annotate)
    lines.append("    %-16s %s (%d)" % ("-", _clean(comm), pid))
    lines.append("        %d\n" % count)
    return "\n".join(lines) + "\n"


def bcc_folded(comm, count, kernel=None, user=None, kernel_missing=False,
               user_missing=False, delimited=False, annotate=False):
    """One line of BCC's folded output (``-f``), for flame graphs:
    ``comm;user frames outermost first;-;kernel frames outermost first count``."""
    parts = [_clean(comm)]
    if user is not None or user_missing:
        if user_missing:
            parts.append(MISSED_USER)
        else:
            parts.extend(f.bcc() for f in reversed(user))
    if kernel is not None or kernel_missing:
        if delimited and kernel and user and not kernel_missing and not user_missing:
            parts.append("-")
        if kernel_missing:
            parts.append(MISSED_KERNEL)
        else:
            parts.extend(f.bcc() + ("_[k]" if annotate else "") for f in reversed(kernel))
    return "%s %d" % (";".join(parts), count)


# ---------------------------------------------------------------- short stacks

class ShortStacks(object):
    """Notices user stacks cut short by missing frame pointers and says so once.

    ``observe(frames)`` each user stack printed; ``note()`` returns the one-line note the
    first time at least ``min_stacks`` were seen and at least ``share`` of them had no
    more than ``depth`` frames (then None forever)."""

    def __init__(self, depth=2, share=0.5, min_stacks=1):
        self.depth, self.share, self.min_stacks = depth, share, min_stacks
        self.seen = 0
        self.short = 0
        self.files = {}
        self.said = False

    def observe(self, frames):
        if not frames:
            return
        self.seen += 1
        if len(frames) <= self.depth:
            self.short += 1
            mod = getattr(frames[-1], "module", None)
            if mod:
                self.files[mod] = self.files.get(mod, 0) + 1

    def note(self):
        if self.said or self.seen < self.min_stacks or not self.seen:
            return None
        if self.short < self.share * self.seen:
            return None
        self.said = True
        where = ""
        if self.files:
            top = max(self.files, key=self.files.get)
            where = " (most end in %s)" % _clean(os.path.basename(top))
        return ("note: %d of %d user stacks have %d frames or fewer%s: the code was "
                "probably built without frame pointers, which BPF stack walking follows "
                "(rebuild with -fno-omit-frame-pointer for full stacks)" % (
                    self.short, self.seen, self.depth, where))
