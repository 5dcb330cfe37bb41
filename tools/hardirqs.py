"""hardirqs: time spent in hard interrupt handlers, per handler name, like BCC's hardirqs.

``irq:irq_handler_entry`` fires before each handler (``action``) of an interrupt runs, with
the interrupt number and the handler's name (a ``__data_loc`` string: the name
/proc/interrupts shows, e.g. ``virtio1-req.0``); ``irq:irq_handler_exit`` fires after it.
Hard interrupt handlers do not nest on a CPU, so the entry time and name are kept per CPU
and the exit adds the difference to the name's total (or to its histogram with ``-d``).
``-C`` counts entries instead.  Everything is summed in the kernel; Python prints the totals
(or BCC's histograms) every interval.

As in BCC, a shared interrupt line is reported per handler name, and the time is the
handler's own: the interrupt entry/exit code around it is not included.
"""

SUMMARY = "hard interrupt handler time (or counts) per handler name"
PROBES = ("tracepoint:irq:irq_handler_entry", "tracepoint:irq:irq_handler_exit")
NEEDS = ()

EXAMPLES = """\
    tinytrace hardirqs            # sum hard irq event time
    tinytrace hardirqs -d         # show hard irq event time as histograms
    tinytrace hardirqs -C         # show hard irq event counts
    tinytrace hardirqs 1 10       # print 1 second summaries, 10 times
    tinytrace hardirqs -NT 1      # 1s summaries, nanoseconds, and timestamps
    tinytrace hardirqs -c 1       # sum hard irq event time on CPU 1 only
    tinytrace hardirqs --json 1 5 # five 1-second summaries as JSON lines
"""


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("hardirqs", "Summarize hard irq event time as histograms",
                               EXAMPLES)
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-N", "--nanoseconds", action="store_true", help="output in nanoseconds")
    p.add_argument("-C", "--count", action="store_true",
                   help="show event counts instead of timing")
    p.add_argument("-d", "--dist", action="store_true", help="show distributions as histograms")
    p.add_argument("-c", "--cpu", type=cpu_number, help="trace this CPU only")
    toolkit.add_json(p)
    p.add_argument("interval", nargs="?", type=toolkit.positive_int, default=None,
                   help="output interval, in seconds")
    p.add_argument("outputs", nargs="?", type=toolkit.positive_int, default=None,
                   help="number of outputs")
    opts = p.parse_args(argv)
    if opts.count and (opts.dist or opts.nanoseconds):
        p.error("argument -C/--count: not allowed with the time-based options -d and -N")
    return opts


def possible_cpus():
    """The CPU numbers this kernel may bring online (/sys/devices/system/cpu/possible)."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        import os
        return set(range(os.cpu_count() or 1))
    cpus = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def cpu_number(text):
    """An argparse type: a CPU number this kernel has."""
    import argparse
    from tinytrace import toolkit
    cpu = toolkit.nonneg_int(text)
    if cpu not in possible_cpus():
        raise argparse.ArgumentTypeError("no CPU %d on this system" % cpu)
    return cpu


# -- the script ---------------------------------------------------------------------------

COUNT_SCRIPT = r"""
tracepoint:irq:irq_handler_entry
%(filter)s{
	@irqs[args->name] = count();
}
"""

TIME_SCRIPT = r"""
tracepoint:irq:irq_handler_entry
%(filter)s{
	@start[cpu] = nsecs;
	@name[cpu] = args->name;
}

tracepoint:irq:irq_handler_exit
%(filter)s{
	$ts = @start[cpu];
	if ($ts != 0) {
		delete(@start[cpu]);
		@irqs[@name[cpu]] = %(agg)s((nsecs - $ts) / %(div)d);
	}
}
"""


def script_text(opts):
    """The script for these options: -C counts, -d histograms, -N the unit, -c a filter."""
    flt = "/cpu == %d/\n" % opts.cpu if opts.cpu is not None else ""
    if opts.count:
        return COUNT_SCRIPT % {"filter": flt}
    return TIME_SCRIPT % {"filter": flt, "agg": "hist" if opts.dist else "sum",
                          "div": 1 if opts.nanoseconds else 1000}


def unit(opts):
    return "count" if opts.count else "nsecs" if opts.nanoseconds else "usecs"


class Hardirqs(object):
    def __init__(self, opts):
        from tinytrace.script import Script
        self.opts = opts
        self.script = Script(script_text(opts), tool="hardirqs")

    def take(self):
        """{name (bytes): total} or, with -d, {name: {slot: count}}; then reset."""
        irqs = self.script.read("@irqs")
        self.script.clear("@irqs")
        if self.opts.dist:
            from tinytrace.script import log2_slots
            out = {}
            for name, buckets in irqs.items():
                slots = log2_slots(buckets)
                if slots:
                    out[name] = slots
            return out
        return {name: v for name, v in irqs.items() if v}


def _name(raw):
    from tinytrace.output.escape import cstring
    return cstring(raw)


def report(opts, data, out):
    from tinytrace import toolkit
    label = unit(opts)
    if opts.json:
        from tinytrace.output import jsonl
        if opts.dist:
            from tinytrace.output import hist as H
            hists = [H.hist_json(data[k], label, key={"hardirq": jsonl.text(k)})
                     for k in sorted(data)]
            rec = jsonl.interval_record(time=toolkit.hhmmss(), hists=hists)
        else:
            rows = [{"hardirq": jsonl.text(k), "total": v}
                    for k, v in sorted(data.items(), key=lambda kv: (kv[1], kv[0]))]
            rec = jsonl.interval_record(time=toolkit.hhmmss(), unit=label, irqs=rows)
        jsonl.write(rec, out)
        return
    out.write("\n")
    if opts.timestamp:
        out.write("%-8s\n" % toolkit.hhmmss())
    if opts.dist:
        from tinytrace.output import hist as H
        out.write(H.log2_sections_text(data, label, section_header="hardirq",
                                       section_fmt=_name))
    else:
        out.write("%-26s %11s\n" % ("HARDIRQ", "TOTAL_" + label))
        for k, v in sorted(data.items(), key=lambda kv: (kv[1], kv[0])):
            out.write("%-26s %11d\n" % (_name(k), v))
    out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    opts = parse_args(argv)
    toolkit.require_privileges()
    h = Hardirqs(opts)
    with toolkit.Stopper() as stopper, h.script.start():
        toolkit.announce(opts, "Tracing hard irq events... Hit Ctrl-C to end." if opts.count
                         else "Tracing hard irq event time... Hit Ctrl-C to end.")
        interval = opts.interval if opts.interval is not None else 99999999

        def one_report(last):
            report(opts, h.take(), sys.stdout)

        toolkit.intervals(interval, opts.outputs, one_report, stopper)
    return 0
