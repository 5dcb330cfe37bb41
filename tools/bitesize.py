"""bitesize: block device I/O sizes as a histogram per process name, like BCC's bitesize.

Each request's size is taken where it goes to the device (``block:block_rq_issue``, field
``bytes``), in KiB, into a ``hist()`` keyed by process name -- aggregated in the kernel.

The name is that of the task that made the request: ``block:block_io_start`` (6.5+) fires in
its context when the request is created, and its COMM is kept under (device, sector) until
the issue.  BCC's current bitesize takes the ``comm`` field of ``block_rq_issue`` instead --
the task that dispatches the request, which is a kworker for plugged or scheduled I/O; that
field is still used for requests whose creation was not seen (and on kernels before 6.5).
Requests of zero bytes (cache flushes) have no size and are left out.

Besides BCC's options (``-j``, ``-d`` duration), libbpf-tools' filters and intervals are
here: ``-c`` COMM, ``--disk`` (libbpf-tools' ``-d``, taken here by BCC's duration), ``-T``,
``interval`` and ``count``.
"""

SUMMARY = "block device I/O size histograms per process name"
PROBES = ("tracepoint:block:block_rq_issue", "tracepoint:block:block_io_start")
NEEDS = ()

EXAMPLES = """\
    tinytrace bitesize              # block I/O size histogram, until Ctrl-C
    tinytrace bitesize -j           # print json output
    tinytrace bitesize -d 10        # trace for 10 seconds
    tinytrace bitesize -c fio       # trace fio only
    tinytrace bitesize --disk sdc   # trace sdc only
    tinytrace bitesize -T 1 10      # 1 second summaries with timestamps, 10 times
"""

DESCRIPTION = """\
Block I/O size histogram

Probes: tracepoints block:block_rq_issue (size) and block:block_io_start (the process that
made the request; requests keyed by disk and sector)."""


def parse_args(argv):
    from tinytrace import toolkit
    from tinytrace.tooldata import resolve_disk
    p = toolkit.ArgumentParser("bitesize", DESCRIPTION, EXAMPLES)
    p.add_argument("-j", "--json", action="store_true",
                   help="json output: one JSON object per interval")
    p.add_argument("-d", "--duration", type=toolkit.positive_int, default=None,
                   help="total duration of trace in seconds")
    p.add_argument("-c", "--comm", type=_comm, help="trace this process name only")
    p.add_argument("--disk", type=str, help="trace this disk only")
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    toolkit.add_interval_options(p)
    opts = p.parse_args(argv)
    opts.dev = resolve_disk(p, opts.disk) if opts.disk is not None else None
    return opts


def _comm(text):
    import argparse
    raw = text.encode("utf-8", "surrogateescape")
    if not raw or len(raw) > 15 or any(c in raw for c in b'"\\\0') or \
            any(c < 32 or c == 127 for c in raw):
        raise argparse.ArgumentTypeError("a process name is 1 to 15 printable bytes, "
                                         "without quotes or backslashes: %r" % text)
    return text


# -- the script ---------------------------------------------------------------------------

SCRIPT = r"""
tracepoint:block:block_io_start
%(pred)s{
	@who[args->dev, args->sector] = comm;
}

tracepoint:block:block_rq_issue
%(pred)s{
	$c = args->comm;
	$w = @who[args->dev, args->sector];
	if ($w != "") {
		$c = $w;
		delete(@who[args->dev, args->sector]);
	}
	if (args->bytes != 0%(comm)s) {
		@dist[$c] = hist(args->bytes / 1024);
	}
}
"""

ISSUE_ONLY = r"""
tracepoint:block:block_rq_issue
/args->bytes != 0%(filt)s%(comm)s/
{
	@dist[args->comm] = hist(args->bytes / 1024);
}
"""


def script_text(opts):
    """The script for these options: the creator's name where block_io_start exists, the
    disk filter (--disk) and the name filter (-c)."""
    from tinytrace.tooldata import block_tracepoint
    filt = "args->dev == %d" % opts.dev if opts.dev is not None else None
    if block_tracepoint("block_io_start"):
        return SCRIPT % {"pred": "/%s/\n" % filt if filt else "",
                         "comm": ' && $c == "%s"' % opts.comm if opts.comm else ""}
    return ISSUE_ONLY % {"filt": " && " + filt if filt else "",
                         "comm": ' && args->comm == "%s"' % opts.comm if opts.comm else ""}


class Bitesize(object):
    """The running script, and its histograms (BCC's slots) per process name."""

    def __init__(self, opts):
        from tinytrace.script import Script
        self.opts = opts
        self.script = Script(script_text(opts), tool="bitesize")

    def take(self):
        """{process name (bytes): {slot: count}} since the last call, and reset."""
        from tinytrace import toolkit
        return toolkit.take_log2(self.script, "@dist",
                                 lambda key: bytes(key).split(b"\0", 1)[0])


def report(opts, hists, out):
    from tinytrace import toolkit
    from tinytrace.output import hist as H
    from tinytrace.output.escape import escape
    if opts.json:
        from tinytrace.output import jsonl
        rec = [H.hist_json(hists[k], "kbytes", key={"comm": jsonl.text(k)})
               for k in sorted(hists)]
        jsonl.write(jsonl.interval_record(time=toolkit.hhmmss(), hists=rec), out)
        return
    if opts.timestamp:
        out.write("\n%-8s\n" % toolkit.hhmmss())
    out.write(H.log2_sections_text(hists, "Kbytes", section_header="Process Name",
                                   section_fmt=escape))
    out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    opts = parse_args(argv)
    toolkit.require_privileges()
    bs = Bitesize(opts)
    with toolkit.Stopper() as stopper, bs.script.start():
        toolkit.announce(opts, "Tracing block I/O... Hit Ctrl-C to end.")
        interval = opts.interval or opts.duration or 99999999
        count = opts.count
        if opts.duration is not None:
            runs = max(1, opts.duration // interval)
            count = runs if count is None else min(count, runs)

        def one_report(last):
            report(opts, bs.take(), sys.stdout)

        toolkit.intervals(interval, count, one_report, stopper)
    return 0
