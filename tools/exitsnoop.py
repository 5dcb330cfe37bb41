"""exitsnoop: process (or thread) exits with their age, exit code or fatal signal and parent,
one line per exit, like BCC's exitsnoop.

One tracepoint, ``sched:sched_process_exit``, fires in the exiting thread itself, so
``curtask`` is the task that is going away.  The tracepoint carries the comm, the thread ID
and ``group_dead`` (this was the process's last live thread); the rest is read from the
task through the kernel's BTF:

- EXIT_CODE: ``task_struct.exit_code``, the wait status (exit code << 8 | signal, 0x80 for
  a core dump);
- PPID: ``task_struct.real_parent->tgid``;
- AGE: now minus ``start_time`` (monotonic ns, the clock of ``nsecs``): of the thread group
  leader for a process exit, of the thread itself with ``--per-thread``.

A process exit is reported when its last thread exits (``group_dead``).  BCC reports the
exit of the thread-group leader instead; the two agree except when the leader leaves first
(``pthread_exit`` in main), where BCC prints the process as gone while its other threads
still run and this version prints it when the last thread is gone (TID is then that
thread).  Kernels whose tracepoint has no ``group_dead`` field (6.1 has comm, pid and prio
only) get BCC's rule.  ``--per-thread`` reports every thread.

Without BTF (CONFIG_DEBUG_INFO_BTF off) the task fields cannot be found: the tool says so
in one line and exits.
"""

SUMMARY = "process exits: age, exit code or fatal signal, parent"
PROBES = ("tracepoint:sched:sched_process_exit",)
NEEDS = ("btf",)

EXAMPLES = """\
    tinytrace exitsnoop                # trace all process termination
    tinytrace exitsnoop -x             # trace only fails, exclude exit(0)
    tinytrace exitsnoop -t             # include timestamps (local time)
    tinytrace exitsnoop --utc          # include timestamps (UTC)
    tinytrace exitsnoop -p 181         # only trace PID 181 (ends when it exits)
    tinytrace exitsnoop --label=exit   # label each output line with 'exit'
    tinytrace exitsnoop --per-thread   # trace per thread termination
    tinytrace exitsnoop --json         # one JSON object per exit
"""


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("exitsnoop", "Trace all process termination (exit, fatal signal)",
                               EXAMPLES)
    p.add_argument("-t", "--timestamp", action="store_true",
                   help="include timestamp (local time default)")
    p.add_argument("--utc", action="store_true", help="include timestamp in UTC (-t implied)")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    p.add_argument("--label", help="label each line")
    p.add_argument("-x", "--failed", action="store_true",
                   help="trace only fails, exclude exit(0)")
    p.add_argument("-T", "--per-thread", action="store_true", dest="per_thread",
                   help="trace per thread termination")
    p.add_argument("-j", "--json", action="store_true",
                   help="print one JSON object per exit")
    opts = p.parse_args(argv)
    if opts.utc:
        opts.timestamp = True
    return opts


# -- the script ---------------------------------------------------------------------------

SCRIPT = r"""
tracepoint:sched:sched_process_exit
%(pred)s{
	$task = curtask;
	printf("%%u %%u %%u %%d %%llu %%s\n", pid, tid, $task->real_parent->tgid,
	       $task->exit_code, nsecs - $task->%(start)s, comm);
}
"""


def has_group_dead():
    """The tracepoint carries ``group_dead`` (recent kernels; 6.1's has comm, pid, prio)."""
    from tinytrace.kernel import tracefs
    try:
        fmt = tracefs.event_format("sched", "sched_process_exit")
    except Exception:
        return False
    return any(f.name == "group_dead" for f in fmt.fields)


def script_text(opts, group_dead=True):
    """-p and -x become predicates; without --per-thread only the process's exit is
    reported: its last thread (``group_dead``), or where the tracepoint lacks that field,
    as BCC does, the thread group leader's; the age is the group leader's."""
    tests = []
    if not opts.per_thread:
        tests.append("args->group_dead" if group_dead else "pid == tid")
    if opts.pid:
        tests.append("pid == %d" % opts.pid)
    if opts.failed:
        tests.append("curtask->exit_code != 0")
    pred = "/%s/\n" % " && ".join(tests) if tests else ""
    start = "start_time" if opts.per_thread else "group_leader->start_time"
    return SCRIPT % {"pred": pred, "start": start}


def describe_status(status):
    """(exit code, signal, core dumped) from a wait status (the task's exit_code)."""
    return (status >> 8) & 0xff, status & 0x7f, bool(status & 0x80)


def status_text(status):
    """BCC's EXIT_CODE column: "0", "code N", "signal N (NAME)" and ", core dumped"."""
    code, sig, core = describe_status(status)
    if status & 0xff == 0:
        return "0" if code == 0 else "code %d" % code
    text = ""
    if sig:
        text = "signal %d (%s)" % (sig, _signame(sig))
    if core:
        text += ", core dumped"
    return text


def _signame(sig):
    from tinytrace.kernel import abi
    name = abi.signal_name(sig)
    if name is None:
        return "unknown"
    return name[3:] if name.startswith("SIG") else name


class Printer(object):
    def __init__(self, opts, out):
        self.opts = opts
        self.out = out
        self.seen_target = False

    def _now(self):
        import datetime
        if self.opts.utc:
            now = datetime.datetime.now(datetime.timezone.utc)
        else:
            now = datetime.datetime.now()
        return now.strftime("%H:%M:%S.%f")[:-3]

    def header(self):
        if self.opts.json:
            return
        import time
        head = ""
        if self.opts.timestamp:
            head += "%-13s" % ("TIME-" + ("UTC" if self.opts.utc else time.strftime("%Z")))
        if self.opts.label is not None:
            head += "%-6s" % "LABEL"
        head += "%-16s %-7s %-7s %-7s %-7s %-10s" % ("PCOMM", "PID", "PPID", "TID", "AGE(s)",
                                                    "EXIT_CODE")
        self.out.write(head.rstrip() + "\n")
        self.out.flush()

    def event(self, values, index):
        pid, tid, ppid, status, age_ns, comm = values
        if self.opts.pid and pid == self.opts.pid:
            self.seen_target = True
        age = age_ns / 1e9
        label = (self.opts.label or "exit") if self.opts.label is not None else None
        if self.opts.json:
            from tinytrace.output import jsonl
            code, sig, core = describe_status(status)
            rec = {"time": self._now(), "comm": jsonl.text(comm), "pid": pid, "ppid": ppid,
                   "tid": tid, "age": round(age, 6), "status": status}
            if label is not None:
                rec["label"] = label
            if status & 0xff == 0:
                rec["exit_code"] = code
            else:
                rec["signal"] = sig
                rec["signal_name"] = "SIG" + _signame(sig) if sig else None
                rec["core_dumped"] = core
            jsonl.write(rec, self.out)
            return
        from tinytrace.output.escape import escape
        line = ""
        if self.opts.timestamp:
            line += "%-13s" % self._now()
        if label is not None:
            line += "%-6s" % label
        line += "%-16s %-7d %-7d %-7d %-7.2f %s\n" % (escape(comm), pid, ppid, tid, age,
                                                     status_text(status))
        self.out.write(line)
        self.out.flush()


def _check_btf():
    from tinytrace import toolkit
    from tinytrace.errors import KernelError
    from tinytrace.kernel import btf
    if not toolkit.has_btf():
        raise KernelError("exitsnoop reads task_struct.exit_code, start_time and real_parent, "
                          "which needs the kernel's BTF (%s); this kernel has none "
                          "(CONFIG_DEBUG_INFO_BTF)" % btf.VMLINUX)


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    _check_btf()
    printer = Printer(opts, sys.stdout)
    script = Script(script_text(opts, has_group_dead()), tool="exitsnoop")
    script.on_printf(printer.event)
    lost = toolkit.LostReporter()
    script.on_lost(lost.report)
    # -p in process mode ends once that process has exited, as BCC's does
    until = (lambda: printer.seen_target) if opts.pid and not opts.per_thread else None
    with toolkit.Stopper() as stopper, script.start():
        if opts.json:
            toolkit.announce(opts, "Tracing process exits... Hit Ctrl-C to end.")
        printer.header()
        script.follow(stopper, until=until)
    return 0
