"""statsnoop: one line per stat-family call with the path and the result, like BCC's statsnoop.

Every stat-family syscall tracepoint this kernel has is traced: ``statfs``, ``statfs64``,
``newstat``, ``newlstat``, ``newfstatat``, ``statx`` (x86_64, arm64 ...) and the 32-bit
``stat64``, ``lstat64``, ``fstatat64``, ``stat``, ``lstat`` where they exist.  The entry
keeps the path pointer by thread ID; the exit reads the path (up to 255 characters: the
script's ``str()`` buffers are 256 bytes; BCC keeps 254) and sends the result and the
syscall number, whose name comes from tinytrace's own syscall table (``newstat`` is
``stat`` on x86_64, for example).

BCC's version probes only stat/statfs/newstat with kprobes and shows thread IDs as PID;
this one covers the whole family and shows process IDs.  Note that glibc's fstat() is
``newfstatat(fd, "", AT_EMPTY_PATH)`` on x86_64 since glibc 2.33: such calls show an empty
PATH.  Calls without a path (``fstat``, ``fstatfs``) are not traced, as in BCC.
"""

SUMMARY = "stat-family syscalls (stat, lstat, fstatat, statx, statfs) with path and result"
PROBES = ("tracepoint:syscalls:sys_enter_statfs", "tracepoint:syscalls:sys_exit_statfs",
          "tracepoint:syscalls:sys_enter_newstat", "tracepoint:syscalls:sys_exit_newstat",
          "tracepoint:syscalls:sys_enter_newlstat", "tracepoint:syscalls:sys_exit_newlstat",
          "tracepoint:syscalls:sys_enter_newfstatat",
          "tracepoint:syscalls:sys_exit_newfstatat",
          "tracepoint:syscalls:sys_enter_statx", "tracepoint:syscalls:sys_exit_statx")
NEEDS = ()

EXAMPLES = """\
    tinytrace statsnoop           # trace all stat() syscalls
    tinytrace statsnoop -t        # include timestamps
    tinytrace statsnoop -x        # only show failed stats
    tinytrace statsnoop -p 181    # only trace PID 181
    tinytrace statsnoop -s        # show which stat syscall was made
    tinytrace statsnoop --json    # one JSON object per call
"""

PATH_STRLEN = 256    # str() buffer for paths: up to 255 characters (BCC: 254)

# tracepoint names (sys_enter_<name>), in the order they are tried
CALLS = ("statfs", "statfs64", "newstat", "newlstat", "newfstatat", "statx",
         "stat", "lstat", "stat64", "lstat64", "fstatat64")


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser(
        "statsnoop", "Trace stat() syscalls (the stat family, from the syscall tracepoints)",
        EXAMPLES)
    p.add_argument("-t", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-x", "--failed", action="store_true", help="only show failed stats")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    p.add_argument("-s", "--syscall", action="store_true",
                   help="print the name of the syscall (SYSCALL column)")
    toolkit.add_json(p)
    return p.parse_args(argv)


def available_calls():
    """[(tracepoint name, path field)] of the stat-family tracepoints this kernel has."""
    from tinytrace.kernel import tracefs
    out = []
    for call in CALLS:
        if not (tracefs.exists("syscalls", "sys_enter_" + call)
                and tracefs.exists("syscalls", "sys_exit_" + call)):
            continue
        names = [f.name for f in tracefs.event_format("syscalls", "sys_enter_" + call).fields]
        for field in ("filename", "pathname", "path"):
            if field in names:
                out.append((call, field))
                break
    return out


def script_text(opts, calls):
    pred = "/pid == %d/\n" % opts.pid if opts.pid else ""
    parts = []
    for call, field in calls:
        parts.append("tracepoint:syscalls:sys_enter_%s\n%s{\n\t@path[tid] = args->%s;\n}\n"
                     % (call, pred, field))
    emit = ('printf("%%u %%d %%s %%d %%u %%s\\n", pid, args->ret, comm, '
            'args->__syscall_nr, nsecs, str($p));')
    if opts.failed:
        emit = "if (args->ret < 0) {\n\t\t%s\n\t}" % emit
    for call, _ in calls:
        parts.append(("tracepoint:syscalls:sys_exit_%s\n/@path[tid] != 0/\n{\n"
                      "\t$p = @path[tid];\n\tdelete(@path[tid]);\n\t" + emit + "\n}\n") % call)
    return "\n".join(parts)


class Printer(object):
    def __init__(self, opts, out):
        self.opts = opts
        self.out = out
        self.first_ns = None

    def header(self):
        o = self.opts
        if o.json:
            return
        line = "%-14s" % "TIME(s)" if o.timestamp else ""
        line += "%-6s %-16s %4s %3s " % ("PID", "COMM", "FD", "ERR")
        if o.syscall:
            line += "%-10s " % "SYSCALL"
        self.out.write(line + "PATH\n")
        self.out.flush()

    def event(self, values, index):
        from tinytrace.kernel import abi
        from tinytrace.output.escape import escape
        o = self.opts
        pid, ret, comm, nr, ns, path = values
        name = abi.syscall_name(nr, default="#%d" % nr)
        if self.first_ns is None:
            self.first_ns = ns
        fd, err = (ret, 0) if ret >= 0 else (-1, -ret)
        if o.json:
            from tinytrace.output import jsonl
            rec = {}
            if o.timestamp:
                rec["ts"] = round((ns - self.first_ns) / 1e9, 9)
            rec.update(pid=pid, comm=jsonl.text(comm), syscall=name, ret=ret, fd=fd, err=err,
                       path=jsonl.text(path))
            jsonl.write(rec, self.out)
            return
        line = "%-14.9f" % ((ns - self.first_ns) / 1e9) if o.timestamp else ""
        line += "%-6d %-16s %4d %3d " % (pid, escape(comm), fd, err)
        if o.syscall:
            line += "%-10s " % name
        self.out.write(line + escape(path) + "\n")
        self.out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.errors import KernelError
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    calls = available_calls()
    if not calls:
        raise KernelError("no stat-family syscall tracepoints on this kernel "
                          "(CONFIG_FTRACE_SYSCALLS is off?)")
    script = Script(script_text(opts, calls), tool="statsnoop", strlen=PATH_STRLEN)
    return toolkit.snoop(opts, script, Printer(opts, sys.stdout),
                         "Tracing stat() syscalls... Hit Ctrl-C to end.")
