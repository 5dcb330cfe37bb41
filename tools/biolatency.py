"""biolatency: block device I/O latency as a histogram, like BCC's biolatency.

A request's latency is the time from its issue to the device until its completion:

- ``block:block_rq_issue``: the request goes to the driver -- its start time is stored under
  (device, sector);
- ``block:block_rq_complete``: the device is done -- now minus that start goes into a
  ``hist()``, keyed by disk with ``-D`` or by the request's flags (its ``rwbs``) with ``-F``.

With ``-Q`` the clock starts earlier, when the request is created from a bio:
``block:block_io_start`` (6.5+; in the submitter's context, the point BCC's ``-Q`` uses --
on 6.18 it fires for every request, iostats on or off).  Kernels without it start at
``block:block_rq_insert`` (the I/O scheduler takes the request), and requests that skip the
scheduler at their issue.  Completions come from ``block_rq_complete`` rather than
``block_io_done``, which fires only for requests accounted in iostats.

BCC keys requests by their ``struct request`` address (kprobes); the tracepoints do not carry
it, so requests are keyed by device and sector, as bpftrace's biolatency does.  Two requests
in flight at once for the same sector of the same disk (e.g. two cache flushes, sector 0)
share a start time: the second one's sample is lost.

``-F`` names flags after the ``rwbs`` letters the tracepoints carry (operation, FUA,
read-ahead, sync, metadata, pre-flush) using BCC's words ("Sync-Write", "ReadAhead-Read");
BCC's priority/no-merge/idle/background/no-wait flags are not in ``rwbs``.  The ``rwbs``
char array is the map key (a key stops at its NUL: the kernel leaves old bytes after it).

Disk names and ``rwbs`` decoding are in ``tinytrace.tooldata`` (shared
with biosnoop, biotop and bitesize).  Where kprobes exist, a future variant could key by
request address (``blk_mq_start_request`` / ``blk_account_io_done``) as BCC does.
"""

SUMMARY = "block device I/O latency as a histogram"
PROBES = ("tracepoint:block:block_rq_issue", "tracepoint:block:block_rq_complete",
          "tracepoint:block:block_io_start", "tracepoint:block:block_rq_insert")
NEEDS = ()

EXAMPLES = """\
    tinytrace biolatency               # summarize block I/O latency as a histogram
    tinytrace biolatency 1 10          # print 1 second summaries, 10 times
    tinytrace biolatency -mT 1         # 1s summaries, milliseconds, and timestamps
    tinytrace biolatency -Q            # include OS queued time in I/O time
    tinytrace biolatency -D            # show each disk device separately
    tinytrace biolatency -F            # show I/O flags separately
    tinytrace biolatency -e            # show extension summary (total, average)
    tinytrace biolatency -d sdc        # trace sdc only
    tinytrace biolatency --json 1 5    # five 1-second histograms as JSON lines
"""

DESCRIPTION = """\
Summarize block device I/O latency as a histogram.

Probes: tracepoints block:block_rq_issue -> block:block_rq_complete (-Q: from
block:block_io_start, else block:block_rq_insert).  Requests are keyed by disk and sector
(BCC's kprobes key them by request address); -F names the flags the rwbs letters carry."""


# -- options ------------------------------------------------------------------------------

def parse_args(argv):
    from tinytrace import toolkit
    from tinytrace.tooldata import resolve_disk
    p = toolkit.ArgumentParser("biolatency", DESCRIPTION, EXAMPLES)
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-Q", "--queued", action="store_true",
                   help="include OS queued time in I/O time")
    p.add_argument("-m", "--milliseconds", action="store_true", help="millisecond histogram")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-D", "--disks", action="store_true", help="print a histogram per disk device")
    g.add_argument("-F", "--flags", action="store_true",
                   help="print a histogram per set of I/O flags (from the rwbs letters)")
    p.add_argument("-e", "--extension", action="store_true",
                   help="summarize average/total value")
    p.add_argument("-d", "--disk", type=str, help="Trace this disk only")
    toolkit.add_json(p)
    p.add_argument("-j", dest="json", action="store_true", help="same as --json")
    toolkit.add_interval_options(p)
    opts = p.parse_args(argv)
    opts.dev = resolve_disk(p, opts.disk) if opts.disk is not None else None
    return opts


# -- the script ---------------------------------------------------------------------------

START = r"""
tracepoint:block:%(tp)s
%(pred)s{
	@start[args->dev, args->sector] = nsecs;
}
"""

DONE = r"""
tracepoint:block:block_rq_complete
{
	$ts = @start[args->dev, args->sector];
	if ($ts != 0) {
		delete(@start[args->dev, args->sector]);
		$d = (nsecs - $ts) / %(div)d;
%(key_setup)s		@dist%(key)s = hist($d);%(ext)s
	}
}
"""


def script_text(opts):
    """The script for these options: start probes (-Q), disk filter (-d), key (-D/-F),
    unit (-m) and the extension (-e)."""
    from tinytrace import toolkit, tooldata
    filt = "args->dev == %d" % opts.dev if opts.dev is not None else ""
    unset = "@start[args->dev, args->sector] == 0"
    parts = []
    if opts.queued:
        # The earliest point a request is seen wins; later ones only fill in.
        first = True
        for tp in ("block_io_start", "block_rq_insert", "block_rq_issue"):
            if tp != "block_rq_issue" and not tooldata.block_tracepoint(tp):
                continue
            conds = [filt, None if first else unset]
            parts.append(START % {"tp": tp, "pred": toolkit.predicate(conds)})
            first = False
    else:
        parts.append(START % {"tp": "block_rq_issue", "pred": toolkit.predicate([filt])})
    if opts.disks:
        key, key_setup = "[args->dev]", ""
    elif opts.flags:
        # the char array: a map key stops at its NUL (the kernel leaves bytes after it)
        key, key_setup = "[args->rwbs]", ""
    else:
        key, key_setup = "", ""
    parts.append(DONE % {"div": 1000000 if opts.milliseconds else 1000, "key": key,
                         "key_setup": key_setup,
                         "ext": "\n\t\t@ext = stats($d);" if opts.extension else ""})
    return "".join(parts)


class Biolatency(object):
    """The running script, and its histograms in BCC's slots."""

    def __init__(self, opts):
        from tinytrace.script import Script
        self.opts = opts
        self.script = Script(script_text(opts), tool="biolatency")

    def take(self):
        """(histograms, extension) since the last call, and reset them.

        Histograms: {section label: {slot: count}} -- the disk name (-D), the flags label
        (-F), or one section None; extension: (count, total) with -e, else None."""
        from tinytrace import toolkit, tooldata
        if self.opts.disks:
            label = tooldata.disk_name
        elif self.opts.flags:
            label = lambda key: tooldata.flags_label(tooldata.rwbs_text(key))  # noqa: E731
        else:
            label = lambda key: None                                            # noqa: E731
        out = toolkit.take_log2(self.script, "@dist", label)
        if not (self.opts.disks or self.opts.flags):
            out = {None: out.get(None, {})}
        ext = toolkit.take_stats(self.script, "@ext") if self.opts.extension else None
        return out, ext


def report(opts, hists, ext, out):
    from tinytrace import toolkit
    # disk names come escaped from disk_name, flag labels are the tool's own words
    section = "disk" if opts.disks else "flags" if opts.flags else None
    toolkit.report_log2(opts, hists, out, "msecs" if opts.milliseconds else "usecs",
                        section=section, ext=ext)


def main(argv):
    import sys
    from tinytrace import toolkit
    opts = parse_args(argv)
    toolkit.require_privileges()
    bl = Biolatency(opts)
    with toolkit.Stopper() as stopper, bl.script.start():
        toolkit.announce(opts, "Tracing block device I/O... Hit Ctrl-C to end.")
        interval = opts.interval if opts.interval is not None else 99999999

        def one_report(last):
            hists, ext = bl.take()
            report(opts, hists, ext, sys.stdout)

        toolkit.intervals(interval, opts.count, one_report, stopper)
    return 0
