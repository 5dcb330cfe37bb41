"""capable: security capability checks, one line per check, like BCC's capable.

``capability:cap_capable`` (cap, ret, cred and namespace pointers) fires at the end of every
cap_capable() call, in the task being checked: UID, PID, TID and COMM come from helpers,
CAP from the tracepoint, NAME from tinytrace's capability table, VERDICT from the result
(0: allow, -EPERM: deny; BCC's kprobe cannot see the result).  The per-check path is one
predicate and one event -- checks are frequent (tens of thousands in ten seconds on a busy
machine), so nothing else is done in the kernel unless asked (-K/-U stacks, --unique).
``--cgroupmap MAPPATH`` / ``--mntnsmap MAPPATH`` (BCC's container filters, one or the
other) keep only tasks whose cgroup v2 id, or mount namespace id (read through the
kernel's BTF), is a key of the hash map pinned at MAPPATH by whoever manages the
containers (``toolkit.container_filter``): one more test in the predicate.

What the tracepoint cannot give: the ``opts`` argument of cap_capable(), i.e. the audit flag
(CAP_OPT_NOAUDIT) and INSETID.  BCC shows only audited checks unless -v is given; here
every check is shown (-v is accepted and changes nothing), there is no AUDIT column, and -x
adds the TID column only.  A kprobe on cap_capable (kernels with kprobes) would give the
audit flag back; that variant is future work.  The tool's own checks are left out, as in
BCC.
"""

SUMMARY = "security capability checks (cap_capable): process, capability, verdict"
PROBES = ("tracepoint:capability:cap_capable",)
NEEDS = ()

EXAMPLES = """\
    tinytrace capable             # trace capability checks
    tinytrace capable -p 181      # only trace PID 181
    tinytrace capable -K          # add kernel stacks to trace
    tinytrace capable -U          # add user-space stacks to trace
    tinytrace capable -x          # extra fields: show TID column
    tinytrace capable --unique    # don't repeat stacks for the same pid
    tinytrace capable --cgroupmap /sys/fs/bpf/test  # only trace cgroups in this BPF map
    tinytrace capable --json      # one JSON object per check
"""

NOTE = ("every check is shown: the capability:cap_capable tracepoint has no audit flag, "
        "so BCC's default (audited checks only) cannot be applied and there is no AUDIT "
        "column")


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser(
        "capable", "Trace security capability checks (tracepoint capability:cap_capable). "
        "Note: " + NOTE + ".", EXAMPLES)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="include non-audit checks (always on here: the tracepoint has no "
                        "audit flag)")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    p.add_argument("-K", "--kernel-stack", action="store_true",
                   help="output kernel stack trace")
    p.add_argument("-U", "--user-stack", action="store_true", help="output user stack trace")
    p.add_argument("-x", "--extra", action="store_true",
                   help="show extra fields in TID column (INSETID is not available from "
                        "the tracepoint)")
    p.add_argument("--unique", action="store_true",
                   help="don't repeat stacks for the same pid")
    toolkit.add_container_filters(p)
    toolkit.add_json(p)
    return p.parse_args(argv)


def script_text(opts, self_pid, container=""):
    """``container``: the --cgroupmap/--mntnsmap test (``toolkit.container_filter``)."""
    tests = ["pid != %d" % self_pid]
    if opts.pid:
        tests.append("pid == %d" % opts.pid)
    if container:
        tests.append(container)
    stacks = (["kstack"] if opts.kernel_stack else []) + (["ustack"] if opts.user_stack else [])
    args = ["uid", "pid", "tid", "comm", "args->cap", "args->ret"] + stacks
    fmt = "%u %u %u %s %d %d" + " %s" * len(stacks)
    emit = 'printf("%s\\n", %s);' % (fmt, ", ".join(args))
    if opts.unique:
        key = "@seen[%s]" % ", ".join(["args->cap", "pid"] + stacks)
        emit = "if (%s == 0) {\n\t\t%s = 1;\n\t\t%s\n\t}" % (key, key, emit)
    return "tracepoint:capability:cap_capable\n/%s/\n{\n\t%s\n}\n" % (" && ".join(tests), emit)


def verdict(ret):
    return "allow" if ret == 0 else "deny"


class Printer(object):
    def __init__(self, opts, out):
        self.opts = opts
        self.out = out

    def header(self):
        if self.opts.json:
            return
        self.out.write("NOTE: %s.\n" % NOTE)
        if self.opts.extra:
            self.out.write("%-9s %-6s %-7s %-7s %-16s %-4s %-20s %s\n" % (
                "TIME", "UID", "PID", "TID", "COMM", "CAP", "NAME", "VERDICT"))
        else:
            self.out.write("%-9s %-6s %-7s %-16s %-4s %-20s %s\n" % (
                "TIME", "UID", "PID", "COMM", "CAP", "NAME", "VERDICT"))
        self.out.flush()

    def event(self, values, index):
        from tinytrace import toolkit
        from tinytrace.kernel import abi
        from tinytrace.output.escape import escape
        o = self.opts
        uid, pid, tid, comm, cap, ret = values[:6]
        rest = list(values[6:])
        kstack = rest.pop(0) if o.kernel_stack else None
        ustack = rest.pop(0) if o.user_stack else None
        name = abi.cap_name(cap) or "?"
        if o.json:
            from tinytrace.output import jsonl
            rec = {"time": toolkit.hhmmss(), "uid": uid, "pid": pid, "tid": tid,
                   "comm": jsonl.text(comm), "cap": cap, "name": name, "ret": ret,
                   "verdict": verdict(ret)}
            if kstack is not None:
                rec["kstack"] = [jsonl.text(f) for f in kstack]
            if ustack is not None:
                rec["ustack"] = [jsonl.text(f) for f in ustack]
            jsonl.write(rec, self.out)
            return
        if o.extra:
            line = "%-9s %-6d %-7d %-7d %-16s %-4d %-20s %s\n" % (
                toolkit.hhmmss(), uid, pid, tid, escape(comm), cap, name, verdict(ret))
        else:
            line = "%-9s %-6d %-7d %-16s %-4d %-20s %s\n" % (
                toolkit.hhmmss(), uid, pid, escape(comm), cap, name, verdict(ret))
        for kind, stack in (("Kernel", kstack), ("User", ustack)):
            if stack is None:
                continue
            if not stack:
                line += "    [Missed %s Stack]\n" % kind
            for frame in stack:
                line += "        %s\n" % escape(frame)
        self.out.write(line)
        self.out.flush()


def main(argv):
    import os
    import sys
    from tinytrace import toolkit
    from tinytrace.errors import KernelError
    from tinytrace.kernel import tracefs
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    if not tracefs.exists("capability", "cap_capable"):
        raise KernelError("this kernel has no capability:cap_capable tracepoint (a recent "
                          "addition); older kernels would need a kprobe on cap_capable")
    container, maps = toolkit.container_filter(opts)
    script = Script(script_text(opts, os.getpid(), container), tool="capable", maps=maps)
    return toolkit.snoop(opts, script, Printer(opts, sys.stdout),
                         "Tracing capability checks (%s)... Hit Ctrl-C to end." % NOTE)
