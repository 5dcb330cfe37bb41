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
    from tinytrace import toolkit, tooldata
    p = toolkit.ArgumentParser("softirqs", "Summarize soft irq event time as histograms.",
                               EXAMPLES)
    tooldata.add_irq_options(p, "events", "show the number of soft irq events", "count")
    return tooldata.parse_irq_options(p, argv, "events")


def script_text(opts):
    """The script for these options: -C counts, -d histograms, -N the unit, -c a filter."""
    from tinytrace.tooldata import irq_script
    return irq_script(opts, opts.events, "softirq_entry", "softirq_exit", "args->vec",
                      "args->vec")


def unit(opts):
    return "count" if opts.events else "nsecs" if opts.nanoseconds else "usecs"


def vec_name(vec):
    """BCC's name of a vector ("net_rx"); an unknown vector (a newer kernel) by number."""
    from tinytrace.kernel.abi import softirq_name
    return softirq_name(vec) or "vec%d" % vec


def report(opts, data, out):
    from tinytrace.tooldata import report_irqs
    report_irqs(opts, data, out, unit(opts), "softirq", 16, vec_name, vec_name, "softirqs")


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    from tinytrace.tooldata import take_irqs
    opts = parse_args(argv)
    toolkit.require_privileges()
    script = Script(script_text(opts), tool="softirqs")
    with toolkit.Stopper() as stopper, script.start():
        toolkit.announce(opts, "Tracing soft irq events... Hit Ctrl-C to end." if opts.events
                         else "Tracing soft irq event time... Hit Ctrl-C to end.")
        interval = opts.interval if opts.interval is not None else 99999999

        def one_report(last):
            report(opts, take_irqs(script, opts.dist), sys.stdout)

        toolkit.intervals(interval, opts.count, one_report, stopper)
    return 0
