"""syscount: system call counts (and, with -L, total time) per syscall or per process, like
BCC's syscount.

Every system call passes ``raw_syscalls:sys_exit`` (id, ret): the count is kept in the
kernel, in a per-CPU hash keyed by syscall number (or by process with -P), and Python reads
and clears it once per interval -- nothing is sent per call, so the rate of system calls
does not matter.  With -L, ``raw_syscalls:sys_enter`` stamps the entry time by thread and
the exit adds the elapsed time (``stats()``: count and total).  Filters (-p, -t, -x, -e,
--syscall, -c, --cgroup) are predicates in the kernel.

Syscall names come from tinytrace's own per-architecture table (tinytrace.kernel.abi), so
no kernel headers are needed.  Calls that never return (exit, exit_group, a successful
execve's old image) are not counted, as in BCC.  With -P the key is the process ID and its
name as the kernel reports it at the call (libbpf-tools keeps the name too; BCC reads
/proc later and prints "[unknown]" for processes that are gone), so a process that renames
itself or execs shows once per name.  -c PPID is BCC's: only the children of PPID
(the caller's ``real_parent``, read through the kernel's BTF).  --cgroup takes a cgroup v2
directory (libbpf-tools' option, whose short form -c BCC gives to PPID), matched against
the caller's cgroup ID.
"""

SUMMARY = "system call counts and latencies, per syscall or per process (in-kernel counts)"
PROBES = ("tracepoint:raw_syscalls:sys_enter", "tracepoint:raw_syscalls:sys_exit")
NEEDS = ()

EXAMPLES = """\
    tinytrace syscount                 # count syscalls until Ctrl-C, top 10
    tinytrace syscount -p 181          # look only at a particular process
    tinytrace syscount -L              # measure and sort output by latency
    tinytrace syscount -P              # group statistics by pid, not by syscall
    tinytrace syscount -x -i 5         # count only failed syscalls, every 5 seconds
    tinytrace syscount -e ENOENT -i 5  # count only syscalls failed with a given errno
    tinytrace syscount -c 181          # look only at the children of process 181
    tinytrace syscount --cgroup /sys/fs/cgroup/unified/CG  # processes in cgroup CG
    tinytrace syscount --syscall read  # count read() only
    tinytrace syscount -l              # list the syscall names this architecture has
    tinytrace syscount --json -i 1     # one JSON object per second
"""

FOREVER = 99999999


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("syscount", "Summarize syscall counts and latencies.", EXAMPLES)
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace only this pid")
    p.add_argument("-t", "--tid", type=toolkit.positive_int, help="trace only this tid")
    p.add_argument("-c", "--ppid", type=toolkit.positive_int,
                   help="trace only the children of this pid")
    p.add_argument("--cgroup", metavar="CGROUP", type=_cgroup,
                   help="trace only processes in this cgroup v2 directory")
    p.add_argument("-i", "--interval", type=toolkit.positive_int,
                   help="print summary at this interval (seconds)")
    p.add_argument("-d", "--duration", type=toolkit.positive_int,
                   help="total duration of trace, in seconds")
    p.add_argument("-T", "--top", type=toolkit.positive_int, default=10,
                   help="print only the top syscalls by count or latency")
    p.add_argument("-x", "--failures", action="store_true",
                   help="trace only failed syscalls (return < 0)")
    p.add_argument("-e", "--errno", type=_errno,
                   help="trace only syscalls that return this error (numeric or EPERM, etc.)")
    p.add_argument("-L", "--latency", action="store_true", help="collect syscall latency")
    p.add_argument("-m", "--milliseconds", action="store_true",
                   help="display latency in milliseconds (default: microseconds)")
    p.add_argument("-P", "--process", action="store_true",
                   help="count by process and not by syscall")
    p.add_argument("-l", "--list", action="store_true",
                   help="print list of recognized syscalls and exit")
    p.add_argument("--syscall", type=_syscall,
                   help="trace this syscall only (use option -l to get all recognized "
                        "syscalls)")
    toolkit.add_json(p)
    opts = p.parse_args(argv)
    if opts.pid and opts.tid:
        p.error("argument -t/--tid: not allowed with -p/--pid")
    if opts.duration and not opts.interval:
        opts.interval = opts.duration
    return opts


def _errno(text):
    import argparse
    from tinytrace.kernel import abi
    try:
        n = abs(int(text))
    except ValueError:
        n = abi.errno_nr(text.upper())
        if n is None:
            raise argparse.ArgumentTypeError("couldn't map %s to an errno" % text)
    if n == 0:
        raise argparse.ArgumentTypeError("errno 0 is not an error")
    return n


def _syscall(text):
    import argparse
    from tinytrace.kernel import abi
    nr = abi.syscall_nr(text)
    if nr is None:
        raise argparse.ArgumentTypeError("syscall '%s' not found (see -l)" % text)
    return (text, nr)


def _cgroup(text):
    """A cgroup v2 directory -> its cgroup ID (the directory's inode number)."""
    import argparse
    import os
    path = os.path.realpath(text)
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError("no such cgroup directory: %s" % text)
    mounts = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    mounts.append(fields[1])
    except OSError:
        pass
    if not any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts):
        raise argparse.ArgumentTypeError("%s is not in a cgroup v2 hierarchy" % text)
    return os.stat(path).st_ino


# -- the script ---------------------------------------------------------------------------

def script_text(opts):
    who, ret = [], []
    if opts.tid:
        who.append("tid == %d" % opts.tid)
    elif opts.pid:
        who.append("pid == %d" % opts.pid)
    if opts.ppid:
        who.append("curtask->real_parent->tgid == %d" % opts.ppid)
    if opts.cgroup:
        who.append("cgroup == %d" % opts.cgroup)
    if opts.syscall is not None:
        who.append("args->id == %d" % opts.syscall[1])
    if opts.failures:
        ret.append("args->ret < 0")
    if opts.errno:
        ret.append("args->ret == -%d" % opts.errno)
    key = "[pid, comm]" if opts.process else "[args->id]"
    if not opts.latency:
        tests = who + ret
        pred = "/%s/\n" % " && ".join(tests) if tests else ""
        return "tracepoint:raw_syscalls:sys_exit\n%s{\n\t@data%s = count();\n}\n" % (pred, key)
    pred = "/%s/\n" % " && ".join(who) if who else ""
    text = "tracepoint:raw_syscalls:sys_enter\n%s{\n\t@start[tid] = nsecs;\n}\n\n" % pred
    add = "@data%s = stats(nsecs - $t);" % key
    if ret:
        add = "if (%s) {\n\t\t%s\n\t}" % (" && ".join(ret), add)
    text += ("tracepoint:raw_syscalls:sys_exit\n/@start[tid] != 0/\n{\n"
             "\t$t = @start[tid];\n\tdelete(@start[tid]);\n\t%s\n}\n" % add)
    return text


# -- user space ---------------------------------------------------------------------------

def syscall_label(nr):
    from tinytrace.kernel import abi
    return abi.syscall_name(nr, default="[unknown: %d]" % nr)


def take(script, opts):
    """The rows of this interval, best first: [(key, count, total_ns)] (key: syscall number,
    or (pid, comm) with -P); the map is cleared."""
    data = script.read("@data")
    script.clear("@data")
    rows = []
    for key, value in data.items():
        if opts.latency:
            count, total = value
        else:
            count, total = value, 0
        if not opts.process and (key < 0 or key == 0xFFFFFFFF):
            continue            # not a syscall number (BCC drops these too)
        if count:
            rows.append((key, count, total))
    if opts.latency:
        rows.sort(key=lambda r: (-r[2], -r[1], str(r[0])))
    else:
        rows.sort(key=lambda r: (-r[1], str(r[0])))
    return rows[:opts.top]


def report(opts, rows, out):
    from tinytrace import toolkit
    from tinytrace.output.escape import escape
    div = 1e6 if opts.milliseconds else 1e3
    if opts.json:
        from tinytrace.output import jsonl
        items = []
        for key, count, total in rows:
            if opts.process:
                item = {"pid": key[0], "comm": jsonl.text(key[1])}
            else:
                item = {"syscall": syscall_label(key), "nr": key}
            item["count"] = count
            if opts.latency:
                item["total"] = round(total / div, 6 if opts.milliseconds else 3)
            items.append(item)
        rec = {"time": toolkit.hhmmss()}
        if opts.latency:
            rec["unit"] = "msecs" if opts.milliseconds else "usecs"
        rec["processes" if opts.process else "syscalls"] = items
        jsonl.write(rec, out)
        return
    agg = "PID    COMM" if opts.process else "SYSCALL"
    out.write("[%s]\n" % toolkit.hhmmss())
    if opts.latency:
        unit = "TIME (ms)" if opts.milliseconds else "TIME (us)"
        out.write("%-22s %8s %16s\n" % (agg, "COUNT", unit))
    else:
        out.write("%-22s %8s\n" % (agg, "COUNT"))
    for key, count, total in rows:
        if opts.process:
            label = "%-6d %-15s" % (key[0], escape(key[1]))
        else:
            label = syscall_label(key)
        line = "%-22s %8d" % (label, count)
        if opts.latency:
            line += (" %16.6f" if opts.milliseconds else " %16.3f") % (total / div)
        out.write(line + "\n")
    out.write("\n")
    out.flush()


def list_syscalls(out):
    from tinytrace.kernel import abi
    names = sorted(abi.syscall_table().values())
    for i in range(0, len(names), 4):
        out.write("   ".join("%-22s" % n for n in names[i:i + 4]).rstrip() + "\n")


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    if opts.list:
        list_syscalls(sys.stdout)
        return 0
    toolkit.require_privileges()
    if opts.ppid and not toolkit.has_btf():
        from tinytrace.errors import KernelError
        from tinytrace.kernel import btf
        raise KernelError("syscount -c finds a caller's parent through task_struct, which "
                          "needs the kernel's BTF (%s); this kernel has none "
                          "(CONFIG_DEBUG_INFO_BTF)" % btf.VMLINUX)
    script = Script(script_text(opts), tool="syscount")
    interval = opts.interval or FOREVER
    count = None
    if opts.duration:
        count = max(1, -(-opts.duration // interval))
    failed = "failed " if (opts.failures or opts.errno) else ""
    if opts.syscall is not None:
        what = "Tracing %ssyscall '%s'... Ctrl+C to quit." % (failed, opts.syscall[0])
    else:
        what = "Tracing %ssyscalls, printing top %d... Ctrl+C to quit." % (failed, opts.top)
    with toolkit.Stopper() as stopper, script.start():
        toolkit.announce(opts, what)

        def one_report(last):
            report(opts, take(script, opts), sys.stdout)

        toolkit.intervals(interval, count, one_report, stopper)
        toolkit.info(opts, "Detaching...")
    return 0
