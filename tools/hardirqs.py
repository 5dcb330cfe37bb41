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
    from tinytrace import toolkit, tooldata
    p = toolkit.ArgumentParser("hardirqs", "Summarize hard irq event time as histograms",
                               EXAMPLES)
    tooldata.add_irq_options(p, "count", "show event counts instead of timing", "outputs")
    return tooldata.parse_irq_options(p, argv, "count")


def script_text(opts):
    """The script for these options: -C counts, -d histograms, -N the unit, -c a filter.
    The handler's name is only in the entry tracepoint: it is kept per CPU for the exit."""
    from tinytrace.tooldata import irq_script
    return irq_script(opts, opts.count, "irq_handler_entry", "irq_handler_exit", "args->name")


def unit(opts):
    return "count" if opts.count else "nsecs" if opts.nanoseconds else "usecs"


def _name(raw):
    from tinytrace.output.escape import cstring
    return cstring(raw)


def _json_name(raw):
    from tinytrace.output import jsonl
    return jsonl.text(raw)


def report(opts, data, out):
    from tinytrace.tooldata import report_irqs
    report_irqs(opts, data, out, unit(opts), "hardirq", 26, _name, _json_name, "irqs")


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    from tinytrace.tooldata import take_irqs
    opts = parse_args(argv)
    toolkit.require_privileges()
    script = Script(script_text(opts), tool="hardirqs")
    with toolkit.Stopper() as stopper, script.start():
        toolkit.announce(opts, "Tracing hard irq events... Hit Ctrl-C to end." if opts.count
                         else "Tracing hard irq event time... Hit Ctrl-C to end.")
        interval = opts.interval if opts.interval is not None else 99999999

        def one_report(last):
            report(opts, take_irqs(script, opts.dist), sys.stdout)

        toolkit.intervals(interval, opts.outputs, one_report, stopper)
    return 0
