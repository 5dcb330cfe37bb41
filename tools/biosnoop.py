"""biosnoop: one line per block device I/O, with the process that issued it and the
latency, like BCC's biosnoop.

Three tracepoints follow each request, keyed by (device, sector):

- ``block:block_io_start`` (6.5+) fires when the request is made from a bio, in the context
  of the task that submitted it: its PID and COMM are kept (and, with ``-Q``, the time);
- ``block:block_rq_issue``: the request goes to the driver -- time and size are kept;
- ``block:block_rq_complete``: the device is done -- one event with all of it.

So COMM/PID name the issuer, not the kworker or interrupt that completes the request.  On
kernels without ``block_io_start`` the task seen at ``block:block_rq_insert`` (else at the
issue) stands in: usually the submitter, but a kworker for plugged or deferred I/O.
Requests whose start was not seen (in flight when tracing began) print COMM "?" and PID 0,
as BCC does.

LAT(ms) is issue to completion; QUE(ms) (``-Q``) is creation to issue, the time the request
spent in the OS (plug lists, I/O scheduler).  TIME(s) counts from the first I/O printed.
The T column is the operation letter of the request's ``rwbs``: R and W as in BCC, D for
discards, F for flushes.  ``-P`` compares each request's sector with where the previous
request on that disk ended (S sequential, R random, ? for a disk's first).

BCC keys requests by their address (kprobes on blk_mq_start_request and the accounting
functions); tracepoints do not carry it, hence (device, sector).  Events go through the
ring buffer (else perf buffers); losses print "Possibly lost N samples" on stderr.
"""

SUMMARY = "block device I/O, one line per request, with issuing PID and latency"
PROBES = ("tracepoint:block:block_io_start", "tracepoint:block:block_rq_issue",
          "tracepoint:block:block_rq_complete", "tracepoint:block:block_rq_insert")
NEEDS = ()

EXAMPLES = """\
    tinytrace biosnoop           # trace all block I/O
    tinytrace biosnoop -Q        # include OS queued time
    tinytrace biosnoop -d sdc    # trace sdc only
    tinytrace biosnoop -P        # display block I/O pattern
    tinytrace biosnoop --json    # one JSON object per I/O
"""

DESCRIPTION = """\
Trace block I/O.

Probes: tracepoints block:block_io_start (issuing task; block_rq_insert on kernels before
6.5), block:block_rq_issue and block:block_rq_complete, requests keyed by disk and sector
(BCC's kprobes key them by request address)."""


def parse_args(argv):
    from tinytrace import toolkit
    from tinytrace.tooldata import resolve_disk
    p = toolkit.ArgumentParser("biosnoop", DESCRIPTION, EXAMPLES)
    p.add_argument("-Q", "--queue", action="store_true", help="include OS queued time")
    p.add_argument("-d", "--disk", type=str, help="trace this disk only")
    p.add_argument("-P", "--pattern", action="store_true",
                   help="display block I/O pattern (sequential or random)")
    toolkit.add_json(p)
    opts = p.parse_args(argv)
    opts.dev = resolve_disk(p, opts.disk) if opts.disk is not None else None
    return opts


# -- the script ---------------------------------------------------------------------------

WHO = r"""
tracepoint:block:%(tp)s
%(pred)s{
	@who[args->dev, args->sector] = (pid, comm);%(queue)s
}
"""

ISSUE = r"""
tracepoint:block:block_rq_issue
%(pred)s{
	@issue[args->dev, args->sector] = (nsecs, args->bytes);%(who)s
}
"""

DONE = r"""
tracepoint:block:block_rq_complete
{
	$i = @issue[args->dev, args->sector];
	if ($i.0 != 0) {
		$now = nsecs;
		$w = @who[args->dev, args->sector];
		$q = (uint64)0;%(queue)s
		printf("%%d %%d %%s %%d %%s %%d %%d %%d %%d\n", $now, $w.0, $w.1, args->dev, args->rwbs,
		       args->sector, $i.1, $q, $now - $i.0);
		delete(@issue[args->dev, args->sector]);
		delete(@who[args->dev, args->sector]);%(queue_del)s
	}
}
"""

_FILL_WHO = """
	if (@who[args->dev, args->sector].0 == 0) {
		@who[args->dev, args->sector] = (pid, comm);%s
	}"""


def script_text(opts):
    """The script for these options: the issuer probe (block_io_start where it exists),
    the disk filter (-d) and the queued time (-Q)."""
    from tinytrace import tooldata
    filt = "args->dev == %d" % opts.dev if opts.dev is not None else None
    pred = "/%s/\n" % filt if filt else ""
    qset = "\n\t@qstart[args->dev, args->sector] = nsecs;" if opts.queue else ""
    parts = []
    fill = ""
    if tooldata.block_tracepoint("block_io_start"):
        parts.append(WHO % {"tp": "block_io_start", "pred": pred, "queue": qset})
    else:
        if tooldata.block_tracepoint("block_rq_insert"):
            parts.append(WHO % {"tp": "block_rq_insert", "pred": pred, "queue": qset})
        # requests that skip the scheduler: the issuing task, if nobody was seen before
        fill = _FILL_WHO % qset.replace("\n\t", "\n\t\t")
    parts.append(ISSUE % {"pred": pred, "who": fill})
    queue = ""
    queue_del = ""
    if opts.queue:
        queue = ("\n\t\t$qs = @qstart[args->dev, args->sector];"
                 "\n\t\tif ($qs != 0 && $qs <= $i.0) { $q = $i.0 - $qs; }")
        queue_del = "\n\t\tdelete(@qstart[args->dev, args->sector]);"
    parts.append(DONE % {"queue": queue, "queue_del": queue_del})
    return "".join(parts)


# -- output -------------------------------------------------------------------------------

class Printer(object):
    """Turns events into BCC's columns (or JSON lines)."""

    def __init__(self, opts, out):
        self.opts = opts
        self.out = out
        self.first_ts = None
        self.last_end = {}      # -P: disk -> the sector after its previous request

    def header(self):
        if self.opts.json:
            return
        text = "%-11s %-14s %-7s %-9s %-1s %-10s %-7s" % (
            "TIME(s)", "COMM", "PID", "DISK", "T", "SECTOR", "BYTES")
        if self.opts.pattern:
            text += "%-1s " % "P"
        if self.opts.queue:
            text += "%7s " % "QUE(ms)"
        text += "%7s\n" % "LAT(ms)"
        self.out.write(text)
        self.out.flush()

    def event(self, values, index=0):
        from tinytrace.output.escape import cstring
        from tinytrace.tooldata import disk_name, op_letter, rwbs_text
        ts, pid, comm, dev, raw_rwbs, sector, nbytes, qdelta, delta = values
        if self.first_ts is None:
            self.first_ts = ts
        rel = (ts - self.first_ts) / 1e9
        rwbs = rwbs_text(raw_rwbs)
        op = op_letter(rwbs)
        disk = disk_name(dev)
        pattern = None
        if self.opts.pattern:
            last = self.last_end.get(dev)
            pattern = "?" if last is None else ("S" if sector == last else "R")
            self.last_end[dev] = sector + nbytes // 512
        if pid == 0 and not bytes(comm).strip(b"\0"):
            comm = b"?"
        if self.opts.json:
            from tinytrace.output import jsonl
            rec = {"time": round(rel, 6), "comm": jsonl.text(comm), "pid": pid, "disk": disk,
                   "t": op, "rwbs": rwbs, "sector": sector, "bytes": nbytes}
            if pattern is not None:
                rec["pattern"] = pattern
            if self.opts.queue:
                rec["que_ms"] = round(qdelta / 1e6, 6)
            rec["lat_ms"] = round(delta / 1e6, 6)
            jsonl.write(rec, self.out)
            return
        text = "%-11.6f %-14.14s %-7s %-9s %-1s %-10s %-7s" % (
            rel, cstring(comm), pid, disk, op, sector, nbytes)
        if pattern is not None:
            text += "%-1s " % pattern
        if self.opts.queue:
            text += "%7.2f " % (qdelta / 1e6)
        text += "%7.2f\n" % (delta / 1e6)
        self.out.write(text)
        self.out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    script = Script(script_text(opts), tool="biosnoop")
    return toolkit.snoop(opts, script, Printer(opts, sys.stdout),
                         "Tracing block I/O... Hit Ctrl-C to end.")
