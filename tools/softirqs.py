"""softirqs: time spent in soft interrupts, per vector, like BCC's softirqs.

``irq:softirq_entry`` and ``irq:softirq_exit`` bracket each run of a softirq vector's
handler (``vec``: 0 hi, 1 timer, 2 net_tx, 3 net_rx, 4 block, 5 irq_poll, 6 tasklet,
7 sched, 8 hrtimer, 9 rcu -- names from ``tinytrace.kernel.abi``).  Softirqs do not nest on
a CPU, so the entry time is kept per CPU and the exit adds the difference to the vector's
total (or to its histogram with ``-d``); ``-C`` counts entries instead, which is what
/proc/softirqs counts.  Everything is summed in the kernel; Python prints BCC's tables or
histograms every interval.
"""

SUMMARY = "soft interrupt time (or counts) per vector"
PROBES = ("tracepoint:irq:softirq_entry", "tracepoint:irq:softirq_exit")
NEEDS = ()

EXAMPLES = """\
    tinytrace softirqs            # sum soft irq event time
    tinytrace softirqs -C         # show the number of soft irq events
    tinytrace softirqs -d         # show soft irq event time as histograms
    tinytrace softirqs 1 10       # print 1 second summaries, 10 times
    tinytrace softirqs -NT 1      # 1s summaries, nanoseconds, and timestamps
    tinytrace softirqs -c 1       # sum soft irq event time on CPU 1 only
    tinytrace softirqs --json 1 5 # five 1-second summaries as JSON lines
"""


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("softirqs", "Summarize soft irq event time as histograms.",
                               EXAMPLES)
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-N", "--nanoseconds", action="store_true", help="output in nanoseconds")
    p.add_argument("-C", "--events", action="store_true",
                   help="show the number of soft irq events")
    p.add_argument("-d", "--dist", action="store_true", help="show distributions as histograms")
    p.add_argument("-c", "--cpu", type=cpu_number, help="trace this CPU only")
    toolkit.add_json(p)
    p.add_argument("interval", nargs="?", type=toolkit.positive_int, default=None,
                   help="output interval, in seconds")
    p.add_argument("count", nargs="?", type=toolkit.positive_int, default=None,
                   help="number of outputs")
    opts = p.parse_args(argv)
    if opts.events and (opts.dist or opts.nanoseconds):
        p.error("argument -C/--events: not allowed with the time-based options -d and -N")
    return opts


def cpu_number(text):
    """An argparse type: a CPU number this kernel has."""
    import argparse
    from tinytrace import toolkit
    cpu = toolkit.nonneg_int(text)
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            spec = f.read().strip()
    except OSError:
        return cpu
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if int(lo) <= cpu <= int(hi or lo):
            return cpu
    raise argparse.ArgumentTypeError("no CPU %d on this system" % cpu)


# -- the script ---------------------------------------------------------------------------

COUNT_SCRIPT = r"""
tracepoint:irq:softirq_entry
%(filter)s{
	@vecs[args->vec] = count();
}
"""

TIME_SCRIPT = r"""
tracepoint:irq:softirq_entry
%(filter)s{
	@start[cpu] = nsecs;
}

tracepoint:irq:softirq_exit
%(filter)s{
	$ts = @start[cpu];
	if ($ts != 0) {
		delete(@start[cpu]);
		@vecs[args->vec] = %(agg)s((nsecs - $ts) / %(div)d);
	}
}
"""


def script_text(opts):
    """The script for these options: -C counts, -d histograms, -N the unit, -c a filter."""
    flt = "/cpu == %d/\n" % opts.cpu if opts.cpu is not None else ""
    if opts.events:
        return COUNT_SCRIPT % {"filter": flt}
    return TIME_SCRIPT % {"filter": flt, "agg": "hist" if opts.dist else "sum",
                          "div": 1 if opts.nanoseconds else 1000}


def unit(opts):
    return "count" if opts.events else "nsecs" if opts.nanoseconds else "usecs"


def vec_name(vec):
    """BCC's name of a vector ("net_rx"); an unknown vector (a newer kernel) by number."""
    from tinytrace.kernel.abi import softirq_name
    return softirq_name(vec) or "vec%d" % vec


class Softirqs(object):
    def __init__(self, opts):
        from tinytrace.script import Script
        self.opts = opts
        self.script = Script(script_text(opts), tool="softirqs")

    def take(self):
        """{vec: total} or, with -d, {vec: {slot: count}}; then reset."""
        vecs = self.script.read("@vecs")
        self.script.clear("@vecs")
        if self.opts.dist:
            from tinytrace.script import log2_slots
            out = {}
            for vec, buckets in vecs.items():
                slots = log2_slots(buckets)
                if slots:
                    out[vec] = slots
            return out
        return {vec: v for vec, v in vecs.items() if v}


def report(opts, data, out):
    from tinytrace import toolkit
    label = unit(opts)
    if opts.json:
        from tinytrace.output import jsonl
        if opts.dist:
            from tinytrace.output import hist as H
            hists = [H.hist_json(data[k], label, key={"softirq": vec_name(k)})
                     for k in sorted(data)]
            rec = jsonl.interval_record(time=toolkit.hhmmss(), hists=hists)
        else:
            rows = [{"softirq": vec_name(k), "total": v}
                    for k, v in sorted(data.items(), key=lambda kv: (kv[1], kv[0]))]
            rec = jsonl.interval_record(time=toolkit.hhmmss(), unit=label, softirqs=rows)
        jsonl.write(rec, out)
        return
    out.write("\n")
    if opts.timestamp:
        out.write("%-8s\n" % toolkit.hhmmss())
    if opts.dist:
        from tinytrace.output import hist as H
        out.write(H.log2_sections_text(data, label, section_header="softirq",
                                       section_fmt=vec_name))
    else:
        out.write("%-16s %11s\n" % ("SOFTIRQ", "TOTAL_" + label))
        for k, v in sorted(data.items(), key=lambda kv: (kv[1], kv[0])):
            out.write("%-16s %11d\n" % (vec_name(k), v))
    out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    opts = parse_args(argv)
    toolkit.require_privileges()
    s = Softirqs(opts)
    with toolkit.Stopper() as stopper, s.script.start():
        toolkit.announce(opts, "Tracing soft irq events... Hit Ctrl-C to end." if opts.events
                         else "Tracing soft irq event time... Hit Ctrl-C to end.")
        interval = opts.interval if opts.interval is not None else 99999999

        def one_report(last):
            report(opts, s.take(), sys.stdout)

        toolkit.intervals(interval, opts.count, one_report, stopper)
    return 0
