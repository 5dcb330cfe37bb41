"""runqslower: one line per run-queue wait longer than a threshold, like BCC's runqslower.

Same probes and rule as runqlat (``tools/runqlat.py``): a task starts waiting when it is
woken (``sched:sched_wakeup``, ``sched:sched_wakeup_new``) or preempted while still runnable
(``sched:sched_switch`` with ``prev_state``'s low byte 0), and stops when ``sched_switch``
puts it on a CPU.  Waits above the threshold (microseconds, default 10000; 0 prints every
wait) become events; the rest never leave the kernel.

``-t TID`` filters on the thread ID, which every one of these tracepoints names.  ``-p PID``
is a process (thread group), which the wakeup tracepoints do not name, so the script keeps
the set of the process's threads in a map: the threads listed in /proc when the tool
starts, threads the process creates (``task:task_newtask`` with CLONE_THREAD), and any
thread of the process seen leaving a CPU (``sched_switch`` runs in its context, where the
``pid`` builtin is its process); exiting threads leave the set
(``sched:sched_process_exit``).

BCC's runqslower uses raw tracepoints (or kprobes on ttwu_do_wakeup / wake_up_new_task /
finish_task_switch) to read ``task_struct`` fields; with the tracepoints' own fields none
of that is needed.
"""

SUMMARY = "run-queue waits above a threshold, one line each"
PROBES = ("tracepoint:sched:sched_wakeup", "tracepoint:sched:sched_wakeup_new",
          "tracepoint:sched:sched_switch", "tracepoint:task:task_newtask",
          "tracepoint:sched:sched_process_exit")      # the last two with -p only
NEEDS = ()

EXAMPLES = """\
    tinytrace runqslower         # trace run queue latency higher than 10000 us (default)
    tinytrace runqslower 1000    # trace run queue latency higher than 1000 us
    tinytrace runqslower -p 123  # trace pid 123
    tinytrace runqslower -t 123  # trace tid 123 (use for threads only)
    tinytrace runqslower -P      # also show previous task comm and TID
    tinytrace runqslower --json  # one JSON object per slow wait
"""

CLONE_THREAD = 0x00010000
MAX_SEEDED_THREADS = 512    # threads of -p PID named in the script itself; the rest are learnt


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("runqslower", "Trace high run queue latency", EXAMPLES)
    p.add_argument("min_us", nargs="?", type=toolkit.nonneg_int, default=10000,
                   help="minimum run queue latency to trace, in us (default 10000)")
    p.add_argument("-P", "--previous", action="store_true",
                   help="also show previous task name and TID")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-p", "--pid", metavar="PID", type=toolkit.positive_int,
                   help="trace this PID only")
    g.add_argument("-t", "--tid", metavar="TID", type=toolkit.positive_int,
                   help="trace this TID only")
    toolkit.add_json(p)
    return p.parse_args(argv)


# -- the script ---------------------------------------------------------------------------

SCRIPT = r"""%(members)s
tracepoint:sched:sched_wakeup,
tracepoint:sched:sched_wakeup_new
/args->pid != 0%(wakee)s/
{
	@start[args->pid] = nsecs;
}

tracepoint:sched:sched_switch
{
	$now = nsecs;%(learn)s
	// prev leaves the CPU: still runnable (preempted) means it waits from now on
	// (prev_state's low byte: a preempted task also has TASK_REPORT_MAX set).
	if ((args->prev_state & 0xff) == 0 && args->prev_pid != 0%(prev)s) {
		@start[args->prev_pid] = $now;
	}
	$ts = @start[args->next_pid];
	if ($ts != 0) {
		delete(@start[args->next_pid]);
		$us = ($now - $ts) / 1000;
		if (%(slow)s) {
			printf("%%s %%d %%d %%s %%d\n", args->next_comm, args->next_pid, $us,
			       args->prev_comm, args->prev_pid);
		}
	}
}
"""

MEMBERS = r"""
BEGIN
{
%(seed)s}

tracepoint:task:task_newtask
/pid == %(pid)d && (args->clone_flags & %(clone_thread)d)/
{
	@member[args->pid] = 1;
}

tracepoint:sched:sched_process_exit
/pid == %(pid)d/
{
	delete(@member[tid]);
}
"""


def process_threads(pid):
    """The thread IDs of ``pid`` now (empty if it is gone)."""
    import os
    try:
        return sorted(int(t) for t in os.listdir("/proc/%d/task" % pid) if t.isdigit())
    except OSError:
        return []


def script_text(opts, threads=()):
    """The script for these options; ``threads``: the thread IDs of -p PID at start."""
    members = wakee = prev = learn = ""
    if opts.tid:
        wakee = " && args->pid == %d" % opts.tid
        prev = " && args->prev_pid == %d" % opts.tid
    elif opts.pid:
        seed = "".join("\t@member[%d] = 1;\n" % t for t in list(threads)[:MAX_SEEDED_THREADS])
        members = MEMBERS % {"seed": seed or "\t@member[0] = 0;\n", "pid": opts.pid,
                             "clone_thread": CLONE_THREAD}
        wakee = " && @member[args->pid]"
        prev = " && pid == %d" % opts.pid
        # (not on its last switch, after sched_process_exit: exit_state 0x10/0x20 then)
        learn = ("\n\t// a thread of the process seen leaving a CPU (alive) is one of its\n"
                 "\tif (pid == %d && (args->prev_state & 0x30) == 0 && @member[tid] == 0) {\n"
                 "\t\t@member[tid] = 1;\n\t}" % opts.pid)
    return SCRIPT % {"members": members, "wakee": wakee, "prev": prev, "learn": learn,
                     "slow": "$us > %d" % opts.min_us if opts.min_us else "1"}


class Printer(object):
    """BCC's columns, or one JSON object per slow wait."""

    def __init__(self, opts, out):
        self.opts = opts
        self.out = out

    def header(self):
        if self.opts.json:
            return
        if self.opts.previous:
            self.out.write("%-8s %-16s %-6s %14s %-16s %-6s\n"
                           % ("TIME", "COMM", "TID", "LAT(us)", "PREV COMM", "PREV TID"))
        else:
            self.out.write("%-8s %-16s %-6s %14s\n" % ("TIME", "COMM", "TID", "LAT(us)"))
        self.out.flush()

    def event(self, values, index):
        from tinytrace import toolkit
        comm, tid, lat_us, prev_comm, prev_tid = values[:5]
        now = toolkit.hhmmss()
        if self.opts.json:
            from tinytrace.output import jsonl
            rec = {"time": now, "comm": jsonl.text(comm), "tid": tid, "lat_us": lat_us}
            if self.opts.previous:
                rec.update(prev_comm=jsonl.text(prev_comm), prev_tid=prev_tid)
            jsonl.write(rec, self.out)
            return
        from tinytrace.output.escape import cstring
        if self.opts.previous:
            self.out.write("%-8s %-16s %-6s %14s %-16s %-6s\n"
                           % (now, cstring(comm), tid, lat_us, cstring(prev_comm), prev_tid))
        else:
            self.out.write("%-8s %-16s %-6s %14s\n" % (now, cstring(comm), tid, lat_us))
        self.out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    threads = process_threads(opts.pid) if opts.pid else ()
    script = Script(script_text(opts, threads), tool="runqslower")
    return toolkit.snoop(opts, script, Printer(opts, sys.stdout),
                         "Tracing run queue latency higher than %d us" % opts.min_us,
                         always=True)
