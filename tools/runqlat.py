"""runqlat: run-queue (scheduler) latency as a histogram, like BCC's runqlat.

A task's run-queue latency is the time from becoming runnable (woken up, or preempted while
still runnable) to running on a CPU.  Three tracepoints measure it:

- ``sched:sched_wakeup`` and ``sched:sched_wakeup_new``: the woken task becomes runnable now;
- ``sched:sched_switch``: ``prev`` leaves the CPU -- if it is still runnable (preempted) it
  starts waiting now -- and ``next`` starts running: its wait ends.

``prev_state`` is tested on its low byte only: a preempted task is reported with
TASK_REPORT_MAX (256) set, yet it is still runnable.

The kernel side is a script in tinytrace's language (``SCRIPT``): start times in a hash by
thread ID, latencies in a ``hist()`` (per-CPU, so no CPU's update is lost), keyed by thread
with ``-P``/``-L``.  Python prints the buckets in BCC's layout.
"""

SUMMARY = "run-queue (scheduler) latency as a histogram"
PROBES = ("tracepoint:sched:sched_wakeup", "tracepoint:sched:sched_wakeup_new",
          "tracepoint:sched:sched_switch")
NEEDS = ()

EXAMPLES = """\
    tinytrace runqlat            # summarize run queue latency as a histogram
    tinytrace runqlat 1 10       # print 1 second summaries, 10 times
    tinytrace runqlat -mT 1      # 1s summaries, milliseconds, and timestamps
    tinytrace runqlat -P         # show each PID separately
    tinytrace runqlat -L         # show each TID separately
    tinytrace runqlat -p 185     # trace PID 185 only
    tinytrace runqlat --json 1 5 # five 1-second histograms as JSON lines
"""

def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("runqlat", "Summarize run queue (scheduler) latency as a histogram",
                               EXAMPLES)
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-m", "--milliseconds", action="store_true", help="millisecond histogram")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-P", "--pids", action="store_true", help="print a histogram per process ID")
    g.add_argument("-L", "--tids", action="store_true", help="print a histogram per thread ID")
    p.add_argument("-p", "--pid", type=toolkit.positive_int,
                   help="trace this PID only (its thread ID on this tracepoint-based version)")
    toolkit.add_json(p)
    p.add_argument("interval", nargs="?", type=toolkit.positive_int, default=None,
                   help="output interval, in seconds")
    p.add_argument("count", nargs="?", type=toolkit.positive_int, default=None,
                   help="number of outputs")
    return p.parse_args(argv)


# -- the script ---------------------------------------------------------------------------

SCRIPT = r"""
tracepoint:sched:sched_wakeup,
tracepoint:sched:sched_wakeup_new
/args->pid != 0%(wakee)s/
{
	@start[args->pid] = nsecs;
}

tracepoint:sched:sched_switch
{
	$now = nsecs;
	// prev leaves the CPU: still runnable (preempted) means it waits from now on.
	// prev_state's low byte: a preempted task also has TASK_REPORT_MAX (256) set.
	if ((args->prev_state & 0xff) == 0 && args->prev_pid != 0%(prev)s) {
		@start[args->prev_pid] = $now;
	}
	$ts = @start[args->next_pid];
	if ($ts != 0) {
		@dist%(key)s = hist(($now - $ts) / %(div)d);
		delete(@start[args->next_pid]);
	}
}
"""


def script_text(opts):
    """The script for these options: -p adds a filter, -P/-L a key, -m the divisor."""
    pid = opts.pid
    return SCRIPT % {
        "wakee": " && args->pid == %d" % pid if pid else "",
        "prev": " && args->prev_pid == %d" % pid if pid else "",
        "key": "[args->next_pid]" if (opts.pids or opts.tids) else "",
        "div": 1000000 if opts.milliseconds else 1000,
    }


class Runqlat(object):
    """The running script, and its histograms in BCC's slots."""

    def __init__(self, opts):
        from tinytrace.script import Script
        self.opts = opts
        self.script = Script(script_text(opts), tool="runqlat")

    def take(self):
        """The histograms since the last call, and reset them: {section key: {slot: count}}
        (one section, key None, without -P/-L)."""
        from tinytrace.script import log2_slots
        dist = self.script.read("@dist")
        self.script.clear("@dist")
        out = {}
        for key, buckets in dist.items():
            slots = log2_slots(buckets)
            if slots or key is None:
                out[key] = slots
        if None not in out and not (self.opts.pids or self.opts.tids):
            out[None] = {}
        if self.opts.pids:
            out = _group_by_process(out)
        return out


def _tgid(tid):
    try:
        with open("/proc/%d/status" % tid) as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return tid


def _group_by_process(by_tid):
    """The tracepoints name threads; -P wants processes: fold each thread into its thread
    group (read from /proc while it lives; a thread already gone keeps its own ID)."""
    out = {}
    for tid, slots in by_tid.items():
        dest = out.setdefault(_tgid(tid), {})
        for slot, n in slots.items():
            dest[slot] = dest.get(slot, 0) + n
    return out


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid, "rb") as f:
            return f.read().rstrip(b"\n")
    except OSError:
        return None


def _section_label(pid):
    from tinytrace.output.escape import escape
    comm = _comm(pid)
    return "%d %s" % (pid, escape(comm)) if comm is not None else "%d" % pid


def report(opts, hists, out):
    from tinytrace import toolkit
    from tinytrace.output import hist as H
    unit = "msecs" if opts.milliseconds else "usecs"
    if opts.json:
        from tinytrace.output import jsonl
        section = "pid" if opts.pids else "tid"
        rec_hists = []
        for key in sorted(hists, key=lambda k: (k is not None, k)):
            h = H.hist_json(hists[key], unit)
            if key is not None:
                h["key"] = {section: key}
            rec_hists.append(h)
        jsonl.write(jsonl.interval_record(time=toolkit.hhmmss(), hists=rec_hists), out)
        return
    out.write("\n")
    if opts.timestamp:
        out.write("%-8s\n" % toolkit.hhmmss())
    if opts.pids or opts.tids:
        label = "pid" if opts.pids else "tid"
        for key in sorted(hists):
            out.write(H.log2_sections_text({key: hists[key]}, unit, section_header=label,
                                           section_fmt=_section_label))
    else:
        out.write(H.log2_hist_text(hists.get(None, {}), unit))
    out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    opts = parse_args(argv)
    toolkit.require_privileges()
    rq = Runqlat(opts)
    with toolkit.Stopper() as stopper, rq.script.start():
        toolkit.announce(opts, "Tracing run queue latency... Hit Ctrl-C to end.")
        interval = opts.interval if opts.interval is not None else 99999999

        def one_report(last):
            report(opts, rq.take(), sys.stdout)

        toolkit.intervals(interval, opts.count, one_report, stopper)
    return 0
