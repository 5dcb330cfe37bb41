"""execsnoop: trace new processes, one line per exec(), like BCC's execsnoop.

Entry of execve/execveat (``syscalls:sys_enter_execve[at]``) reads the file name and up to
``--max-args`` arguments from user memory -- a bounded loop over ``argv`` -- into one event;
the matching exit (``sys_exit_execve[at]``) sends the return value and the new ``comm``.  User
space pairs the two by process ID and prints a line when the exec returns, so failed execs
(``-x``) carry their error code.

The kernel side is a script in tinytrace's language; each argument is its own event (as in
BCC), joined by process ID in user space.  On a ring buffer only the exit's record wakes the
reader (``Script(deferred=...)``): one wakeup per exec, not one per record.  The parent PID
comes from ``curtask->real_parent->tgid`` where the kernel has BTF; without BTF, from the
``sched_process_fork`` that created the process (when that happened while tracing), else
from /proc when the event arrives ("?" for a process that has already exited).
``--cgroupmap MAPPATH`` / ``--mntnsmap MAPPATH`` (BCC's container filters, one or the
other) keep only tasks whose cgroup v2 id, or mount namespace id (read through the
kernel's BTF), is a key of the hash map pinned at MAPPATH by whoever manages the
containers (``toolkit.container_filter``): the test is in the
predicates of the entry and exit probes.
"""

SUMMARY = "new processes, one line per exec()"
PROBES = ("tracepoint:syscalls:sys_enter_execve", "tracepoint:syscalls:sys_exit_execve",
          "tracepoint:syscalls:sys_enter_execveat", "tracepoint:syscalls:sys_exit_execveat")
NEEDS = ()

EXAMPLES = """\
    tinytrace execsnoop           # trace all exec() syscalls
    tinytrace execsnoop -x        # include failed exec()s
    tinytrace execsnoop -T        # include time (HH:MM:SS)
    tinytrace execsnoop -P 181    # only trace new processes whose parent PID is 181
    tinytrace execsnoop -U        # include UID
    tinytrace execsnoop -u 1000   # only trace UID 1000
    tinytrace execsnoop -u user   # get user UID and trace only them
    tinytrace execsnoop -t        # include timestamps
    tinytrace execsnoop -q        # add "quotemarks" around arguments
    tinytrace execsnoop -n main   # only print command lines containing "main"
    tinytrace execsnoop -l tpkg   # only print command where arguments contains "tpkg"
    tinytrace execsnoop --cgroupmap /sys/fs/bpf/test  # only trace cgroups in this BPF map
    tinytrace execsnoop --mntnsmap /sys/fs/bpf/mnt_ns  # only trace mount namespaces in the map
    tinytrace execsnoop --json    # one JSON object per exec
"""

ARGSIZE = 128       # bytes kept of each argument (BCC's ARGSIZE)


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("execsnoop", "Trace exec() syscalls", EXAMPLES)
    p.add_argument("-T", "--time", action="store_true",
                   help="include time column on output (HH:MM:SS)")
    p.add_argument("-t", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-x", "--fails", action="store_true", help="include failed exec()s")
    p.add_argument("-u", "--uid", type=_uid, help="trace this UID only (a number or a user name)")
    p.add_argument("-q", "--quote", action="store_true",
                   help='add "quotemarks" around arguments')
    p.add_argument("-n", "--name", type=_regex,
                   help="only print commands matching this name (regex), any arg")
    p.add_argument("-l", "--line", type=_regex,
                   help="only print commands where arg contains this line (regex)")
    p.add_argument("-U", "--print-uid", action="store_true", help="print UID column")
    p.add_argument("--max-args", type=toolkit.positive_int, default=20,
                   help="maximum number of arguments parsed and displayed, defaults to 20")
    p.add_argument("-P", "--ppid", type=toolkit.positive_int,
                   help="trace this parent PID only")
    toolkit.add_container_filters(p)
    toolkit.add_json(p)
    opts = p.parse_args(argv)
    if opts.max_args > 128:
        p.error("argument --max-args: at most 128")
    return opts


def _uid(text):
    import argparse
    try:
        return int(text)
    except ValueError:
        pass
    import pwd
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise argparse.ArgumentTypeError("no such user: %r" % text)


def _regex(text):
    import argparse
    import re
    try:
        return re.compile(text.encode())
    except re.error as e:
        raise argparse.ArgumentTypeError("bad regular expression %r: %s" % (text, e))


# -- the script ---------------------------------------------------------------------------

# printf events, by their order in the script (Script.on_printf's index)
EV_FILE, EV_ARG, EV_MORE, EV_RET = 0, 1, 2, 3

# Without BTF the parent cannot be read from the task: remember it from the fork instead
# (the thread that forked; for a process started after tracing began), and forget it when
# the task exits.
FORKS = r"""
tracepoint:sched:sched_process_fork
{
	@parent[args->child_pid] = args->parent_pid;
}

tracepoint:sched:sched_process_exit
{
	delete(@parent[tid]);
}
"""

SCRIPT = r"""
%(forks)s
%(enter)s
%(uid_pred)s{
	$ppid = %(ppid)s;
%(ppid_filter)s	printf("%%d %%d %%d %%s\n", pid, uid, $ppid, str(args->filename, %(argsize)d));
	$i = 1;
	while ($i < %(maxargs)d) {
		$p = args->argv[$i];
		if ($p == 0) {
			break;
		}
		printf("%%d %%s\n", pid, str($p, %(argsize)d));
		$i++;
	}
	if ($i == %(maxargs)d && args->argv[%(maxargs)d] != 0) {
		printf("%%d\n", pid);
	}
}

%(exit)s
%(exit_pred)s{
	printf("%%d %%d %%s\n", pid, args->ret, comm);
}
"""


def script_text(opts, calls, btf, container=""):
    """The script for these options; ``calls`` are the exec syscalls this kernel has, and
    ``btf`` says whether the parent can be read from the task (else it comes from /proc);
    ``container`` is the --cgroupmap/--mntnsmap test (``toolkit.container_filter``)."""
    from tinytrace import toolkit
    ppid_filter = ""
    if opts.ppid:
        ppid_filter = "\tif ($ppid != %d) {\n\t\treturn;\n\t}\n" % opts.ppid
    return SCRIPT % {
        "enter": ",\n".join("tracepoint:syscalls:sys_enter_" + c for c in calls),
        "exit": ",\n".join("tracepoint:syscalls:sys_exit_" + c for c in calls),
        "uid_pred": toolkit.predicate(["uid == %d" % opts.uid if opts.uid is not None
                                       else "", container]),
        "exit_pred": toolkit.predicate([container]),
        "ppid": "curtask->real_parent->tgid" if btf else "@parent[pid]",
        "forks": "" if btf else FORKS,
        "ppid_filter": ppid_filter,
        "argsize": ARGSIZE,
        "maxargs": opts.max_args,
    }


# -- user space ---------------------------------------------------------------------------


def _ppid_from_proc(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _cstr(raw):
    end = raw.find(b"\0")
    return bytes(raw if end < 0 else raw[:end])


class Printer(object):
    """Pairs entry and exit events and prints BCC's columns (or JSON lines)."""

    def __init__(self, opts, out):
        import time
        from tinytrace.output.escape import escape
        self.opts = opts
        self.out = out
        self.pending = {}
        self.start = time.time()
        # bound once: an import statement per line costs microseconds on a cache that the
        # exec just before it has made cold
        self._time = time
        self._escape = escape

    def header(self):
        o = self.opts
        if o.json:
            return
        line = ""
        if o.time:
            line += "%-9s" % "TIME"
        if o.timestamp:
            line += "%-8s" % "TIME(s)"
        if o.print_uid:
            line += "%-6s" % "UID"
        line += "%-16s %-7s %-7s %3s %s" % ("PCOMM", "PID", "PPID", "RET", "ARGS")
        self.out.write(line + "\n")
        self.out.flush()

    def event(self, values, index):
        if index == EV_FILE:
            pid, uid, ppid, filename = values
            self.pending[pid] = [uid, ppid, [filename], False]
        elif index == EV_ARG:
            entry = self.pending.get(values[0])
            if entry is not None:
                entry[2].append(values[1])
        elif index == EV_MORE:
            entry = self.pending.get(values[0])
            if entry is not None:
                entry[3] = True
        elif index == EV_RET:
            pid, ret, comm = values
            entry = self.pending.pop(pid, None)
            if entry is None:
                return
            if ret != 0 and not self.opts.fails:
                return
            self.emit(pid, ret, comm, *entry)

    def emit(self, pid, ret, comm, uid, ppid, args, truncated):
        time = self._time
        escape = self._escape
        o = self.opts
        if o.name is not None and not o.name.search(comm):
            return
        if o.line is not None and not o.line.search(b" ".join(args)):
            return
        if not ppid:
            ppid = _ppid_from_proc(pid)
        if o.ppid and ppid != o.ppid:
            return
        if o.json:
            from tinytrace.output import jsonl
            rec = {}
            if o.time:
                rec["time"] = time.strftime("%H:%M:%S")
            if o.timestamp:
                rec["ts"] = round(time.time() - self.start, 3)
            rec.update(uid=uid, comm=jsonl.text(comm), pid=pid, ppid=ppid or None, ret=ret,
                       args=[jsonl.text(x) for x in args], truncated=truncated)
            jsonl.write(rec, self.out)
            return
        if o.quote:
            shown = [escape(x) for x in args] + (["..."] if truncated else [])
            shown = " ".join('"%s"' % x.replace('"', '\\"') for x in shown)
        else:
            # one escape() of the joined arguments: a space never continues a UTF-8
            # sequence, so this is the join of the arguments escaped one by one
            shown = escape(b" ".join(args)) + (" ..." if truncated else "")
        line = ""
        if o.time:
            line += "%-9s" % time.strftime("%H:%M:%S")
        if o.timestamp:
            line += "%-8.3f" % (time.time() - self.start)
        if o.print_uid:
            line += "%-6d" % uid
        line += "%-16s %-7d %-7s %3d %s" % (escape(comm), pid, ppid if ppid else "?", ret,
                                             shown)
        self.out.write(line + "\n")
        self.out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    # execveat is missing on old kernels
    calls = toolkit.syscall_tracepoints(("execve", "execveat"), "execve")
    container, maps = toolkit.container_filter(opts)
    # the file name and argument records print nothing by themselves: only the exit
    # record wakes the reader, which then reads the whole exec at once
    script = Script(script_text(opts, calls, toolkit.has_btf(), container), maps=maps,
                    tool="execsnoop",
                    strlen=ARGSIZE, deferred=(EV_FILE, EV_ARG, EV_MORE))
    return toolkit.snoop(opts, script, Printer(opts, sys.stdout),
                         "Tracing exec()s... Hit Ctrl-C to end.")
