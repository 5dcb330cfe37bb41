"""capable: security capability checks, one line per check, like BCC's capable.

Two kernel sides, picked at run time from what the kernel has (``variant()``):

**kprobes** (kernels with kprobes: Debian's 6.1 and most others).  As BCC: a kprobe on
``cap_capable(cred, targ_ns, cap, opts)`` reads ``cap`` (arg2) and ``opts`` (arg3): the
check is audited unless CAP_OPT_NOAUDIT (``opts & 0b10``), and INSETID is ``opts & 0b100``
(Linux 5.1+; before 5.1 arg3 was the audit flag itself and INSETID is unknown, ``-``).  BCC's
default applies -- only audited checks are shown, ``-v`` adds the others -- and the AUDIT
column is printed (plus INSETID with ``-x``).  A kretprobe on the same function adds what
BCC's kprobe cannot see, the result (VERDICT, as libbpf-tools' capable does): the entry
keeps the check's fields (and -K/-U stacks, taken at entry, so they start at cap_capable)
in a map keyed by thread, the return emits them with ``retval``.

**tracepoint** ``capability:cap_capable`` (Linux 6.14+) where kprobes are missing.  It fires
at the end of every cap_capable() call with cap and ret, but not the ``opts`` argument: no
audit flag and no INSETID, so every check is shown (-v is accepted and changes nothing),
there is no AUDIT column, and -x adds the TID column only.  The header's NOTE line says so.

UID, PID, TID and COMM come from helpers, NAME from tinytrace's capability table, VERDICT
from the result (0: allow, -EPERM: deny).  The per-check path stays short (checks are
frequent: tens of thousands in ten seconds on a busy machine): nothing else is done in the
kernel unless asked (-K/-U stacks, --unique).  ``--cgroupmap MAPPATH`` / ``--mntnsmap
MAPPATH`` (BCC's container filters, one or the other) keep only tasks whose cgroup v2 id, or
mount namespace id (read through the kernel's BTF), is a key of the hash map pinned at
MAPPATH by whoever manages the containers (``toolkit.container_filter``): one more test in
the predicate.  The tool's own checks are left out, as in BCC.

A kernel with neither gets one line naming both and exits.  ``TINYTRACE_TARGET=kprobes=0``
takes the tracepoint variant on a kernel that has both (tests).
"""

SUMMARY = "security capability checks (cap_capable): process, capability, audit, verdict"
PROBES = ("kprobe:cap_capable", "kretprobe:cap_capable", "tracepoint:capability:cap_capable")
NEEDS = ()

EXAMPLES = """\
    tinytrace capable             # trace capability checks
    tinytrace capable -v          # verbose: include non-audit checks (kprobes)
    tinytrace capable -p 181      # only trace PID 181
    tinytrace capable -K          # add kernel stacks to trace
    tinytrace capable -U          # add user-space stacks to trace
    tinytrace capable -x          # extra fields: show TID and INSETID columns
    tinytrace capable --unique    # don't repeat stacks for the same pid
    tinytrace capable --cgroupmap /sys/fs/bpf/test  # only trace cgroups in this BPF map
    tinytrace capable --json      # one JSON object per check
"""

NOTE = ("every check is shown: the capability:cap_capable tracepoint has no audit flag, "
        "so BCC's default (audited checks only) cannot be applied and there is no AUDIT "
        "column")

KPROBE_TEXT = ("kprobes on cap_capable (entry and return), as BCC: only audited checks unless "
               "-v, an AUDIT column, -x adds TID and INSETID")
TRACEPOINT_TEXT = "tracepoint capability:cap_capable (no kprobes here). Note: " + NOTE

MISSING = ("capable needs kprobes (to probe cap_capable, as BCC does) or the "
           "capability:cap_capable tracepoint (Linux 6.14+), and this kernel has neither: "
           "a kernel built with CONFIG_KPROBES and CONFIG_KPROBE_EVENTS, or a newer kernel, "
           "would do")

CAP_OPT_NOAUDIT = 0b10
CAP_OPT_INSETID = 0b100


def variant():
    """"kprobe" where the kernel has kprobes, else "tracepoint" where it has
    capability:cap_capable, else None."""
    from tinytrace import toolkit
    if toolkit.has_kprobes():
        return "kprobe"
    if toolkit.tracepoint_exists("capability", "cap_capable"):
        return "tracepoint"
    return None


def _description(kind):
    text = "Trace security capability checks. This kernel: "
    if kind == "kprobe":
        return text + KPROBE_TEXT + "."
    if kind == "tracepoint":
        return text + TRACEPOINT_TEXT + "."
    return text + "neither kprobes nor the capability:cap_capable tracepoint (" + MISSING + ")."


def parse_args(argv, kind=None):
    from tinytrace import toolkit
    if kind is None:
        kind = variant()
    p = toolkit.ArgumentParser("capable", _description(kind), EXAMPLES)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="include non-audit checks (always on with the tracepoint, which "
                        "has no audit flag)")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    p.add_argument("-K", "--kernel-stack", action="store_true",
                   help="output kernel stack trace")
    p.add_argument("-U", "--user-stack", action="store_true", help="output user stack trace")
    p.add_argument("-x", "--extra", action="store_true",
                   help="show extra fields in TID and INSETID columns (INSETID needs kprobes)")
    p.add_argument("--unique", action="store_true",
                   help="don't repeat stacks for the same pid")
    toolkit.add_container_filters(p)
    toolkit.add_json(p)
    opts = p.parse_args(argv)
    opts.variant = kind
    return opts


def _tests(opts, self_pid, container):
    tests = ["pid != %d" % self_pid]
    if opts.pid:
        tests.append("pid == %d" % opts.pid)
    if container:
        tests.append(container)
    return tests


def _stacks(opts):
    return (["kstack"] if opts.kernel_stack else []) + (["ustack"] if opts.user_stack else [])


def _unique(opts, emit, cap, stacks):
    """``emit`` only for the first (cap, pid[, stacks]) when --unique."""
    if not opts.unique:
        return emit
    key = "@seen[%s]" % ", ".join([cap, "pid"] + stacks)
    return "if (%s == 0) {\n\t\t%s = 1;\n\t\t%s\n\t}" % (key, key, emit)


def script_text(opts, self_pid, container=""):
    """The tracepoint script.  ``container``: the --cgroupmap/--mntnsmap test
    (``toolkit.container_filter``)."""
    tests = _tests(opts, self_pid, container)
    stacks = _stacks(opts)
    args = ["uid", "pid", "tid", "comm", "args->cap", "args->ret"] + stacks
    fmt = "%u %u %u %s %d %d" + " %s" * len(stacks)
    emit = _unique(opts, 'printf("%s\\n", %s);' % (fmt, ", ".join(args)), "args->cap", stacks)
    return "tracepoint:capability:cap_capable\n/%s/\n{\n\t%s\n}\n" % (" && ".join(tests), emit)


def kprobe_script_text(opts, self_pid, container="", opts_bits=True):
    """The kprobe script: the entry keeps (cap, audit, insetid[, stacks]) per thread, the
    return prints them with the result (written first: see the end).  ``opts_bits``: arg3
    is the CAP_OPT_* bit mask (Linux 5.1+), else the audit flag itself (INSETID then -1)."""
    tests = _tests(opts, self_pid, container)
    if opts_bits:
        audit = "(arg3 & %d) == 0" % CAP_OPT_NOAUDIT
        insetid = "(arg3 & %d) != 0" % CAP_OPT_INSETID
    else:
        audit, insetid = "arg3 != 0", "-1"
    if not opts.verbose:
        tests.append("(%s)" % audit)
    stacks = _stacks(opts)
    saved = ["1", "(int32)arg2", "(int64)(%s)" % audit, "(int64)(%s)" % insetid] + stacks
    entry = "kprobe:cap_capable\n/%s/\n{\n\t@capargs[tid] = (%s);\n}\n" % (
        " && ".join(tests), ", ".join(saved))
    args = ["uid", "pid", "tid", "comm", "$c.1", "(int32)retval", "$c.2", "$c.3"] + [
        "$c.%d" % (4 + i) for i in range(len(stacks))]
    fmt = "%u %u %u %s %d %d %d %d" + " %s" * len(stacks)
    emit = _unique(opts, 'printf("%s\\n", %s);' % (fmt, ", ".join(args)), "$c.1",
                   ["$c.%d" % (4 + i) for i in range(len(stacks))])
    ret = ("kretprobe:cap_capable\n/@capargs[tid].0 != 0/\n{\n\t$c = @capargs[tid];\n"
           "\tdelete(@capargs[tid]);\n\t%s\n}\n" % emit)
    # The kretprobe comes first: then the entry program runs before the kretprobe's own
    # entry handler swaps the return address for the trampoline, and -K stacks are whole
    # on 32-bit ARM, whose unwinder stops at the trampoline (measured on the armhf guest's
    # 6.1: cap_capable, __kretprobe_trampoline and nothing else the other way round).
    return ret + entry


def verdict(ret):
    return "allow" if ret == 0 else "deny"


class Printer(object):
    def __init__(self, opts, out):
        self.opts = opts
        self.out = out
        self.kprobes = opts.variant == "kprobe"

    def header(self):
        if self.opts.json:
            return
        if not self.kprobes:
            self.out.write("NOTE: %s.\n" % NOTE)
        cols = ["%-9s" % "TIME", "%-6s" % "UID", "%-7s" % "PID"]
        if self.opts.extra:
            cols.append("%-7s" % "TID")
        cols += ["%-16s" % "COMM", "%-4s" % "CAP", "%-20s" % "NAME"]
        if self.kprobes:
            cols.append("%-6s" % "AUDIT")
            if self.opts.extra:
                cols.append("%-7s" % "INSETID")
        cols.append("VERDICT")
        self.out.write(" ".join(cols) + "\n")
        self.out.flush()

    def event(self, values, index):
        from tinytrace import toolkit
        from tinytrace.kernel import abi
        from tinytrace.output.escape import escape
        o = self.opts
        uid, pid, tid, comm, cap, ret = values[:6]
        rest = list(values[6:])
        audit = insetid = None
        if self.kprobes:
            audit, insetid = rest.pop(0), rest.pop(0)
        kstack = rest.pop(0) if o.kernel_stack else None
        ustack = rest.pop(0) if o.user_stack else None
        name = abi.cap_name(cap) or "?"
        if o.json:
            from tinytrace.output import jsonl
            rec = {"time": toolkit.hhmmss(), "uid": uid, "pid": pid, "tid": tid,
                   "comm": jsonl.text(comm), "cap": cap, "name": name}
            if self.kprobes:
                rec["audit"] = audit
                rec["insetid"] = insetid
            rec["ret"] = ret
            rec["verdict"] = verdict(ret)
            if kstack is not None:
                rec["kstack"] = [jsonl.text(f) for f in kstack]
            if ustack is not None:
                rec["ustack"] = [jsonl.text(f) for f in ustack]
            jsonl.write(rec, self.out)
            return
        cells = ["%-9s" % toolkit.hhmmss(), "%-6d" % uid, "%-7d" % pid]
        if o.extra:
            cells.append("%-7d" % tid)
        cells += ["%-16s" % escape(comm), "%-4d" % cap, "%-20s" % name]
        if self.kprobes:
            cells.append("%-6d" % audit)
            if o.extra:
                cells.append("%-7s" % (insetid if insetid >= 0 else "-"))
        cells.append(verdict(ret))
        line = " ".join(cells) + "\n"
        for kind, stack in (("Kernel", kstack), ("User", ustack)):
            if stack is None:
                continue
            if not stack:
                line += "    [Missed %s Stack]\n" % kind
            for frame in stack:
                line += "        %s\n" % escape(frame)
        self.out.write(line)
        self.out.flush()


def _opts_bits():
    """cap_capable's 4th argument is a CAP_OPT_* mask since Linux 5.1."""
    try:
        from tinytrace.kernel import bpf
        return tuple(bpf.kernel_version()[:2]) >= (5, 1)
    except Exception:
        return True


def main(argv):
    import os
    import sys
    from tinytrace import toolkit
    from tinytrace.errors import KernelError
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    if opts.variant is None:
        raise KernelError(MISSING)
    container, maps = toolkit.container_filter(opts)
    if opts.variant == "kprobe":
        text = kprobe_script_text(opts, os.getpid(), container, _opts_bits())
        what = "kprobes on cap_capable"
    else:
        text = script_text(opts, os.getpid(), container)
        what = NOTE
    script = Script(text, tool="capable", maps=maps)
    return toolkit.snoop(opts, script, Printer(opts, sys.stdout),
                         "Tracing capability checks (%s)... Hit Ctrl-C to end." % what)
