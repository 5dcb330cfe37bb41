"""biotop: the processes doing the most block device I/O, per interval, like BCC's biotop.

The kernel does the counting, in maps keyed by (PID, COMM, read/write, disk): the number of
requests, their bytes and their total latency.  Each request is followed by (device, sector):

- ``block:block_io_start`` (6.5+), in the context of the task submitting the request: its PID
  and COMM (on older kernels the task at ``block:block_rq_insert``, else at the issue);
- ``block:block_rq_issue``: the time and the size;
- ``block:block_rq_complete``: the request is counted, latency = completion - issue.

Requests whose start was not seen count under PID 0 with an empty COMM, as in BCC; with
``-p`` they are left out.  Every interval Python reads the maps, clears them, sorts (``-s``,
libbpf-tools' choices; "all" sums I/O count, bytes and microseconds, as libbpf-tools does)
and prints the top ``-r`` rows in BCC's columns.  BCC keys requests by their address
(kprobes); the tracepoints do not carry it, hence (device, sector).
"""

SUMMARY = "top processes by block device I/O, per interval"
PROBES = ("tracepoint:block:block_io_start", "tracepoint:block:block_rq_issue",
          "tracepoint:block:block_rq_complete", "tracepoint:block:block_rq_insert")
NEEDS = ()

EXAMPLES = """\
    tinytrace biotop            # block device I/O top, 1 second refresh
    tinytrace biotop -C         # don't clear the screen
    tinytrace biotop -p 181     # only trace PID 181
    tinytrace biotop -s io      # sort by number of I/Os
    tinytrace biotop -r 5       # print at most 5 rows
    tinytrace biotop 5          # 5 second summaries
    tinytrace biotop 5 10       # 5 second summaries, 10 times only
    tinytrace biotop --json 1 3 # three 1-second summaries as JSON lines
"""

DESCRIPTION = """\
Block device (disk) I/O by process

Probes: tracepoints block:block_io_start (issuing task; block_rq_insert on kernels before
6.5), block:block_rq_issue and block:block_rq_complete, requests keyed by disk and sector
(BCC's kprobes key them by request address)."""

SORTS = ("all", "io", "bytes", "time")


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("biotop", DESCRIPTION, EXAMPLES)
    p.add_argument("-C", "--noclear", action="store_true", help="don't clear the screen")
    p.add_argument("-r", "--maxrows", type=toolkit.positive_int, default=20,
                   help="maximum rows to print, default 20")
    p.add_argument("-s", "--sort", choices=SORTS, default="all",
                   help="sort column, default all (I/O count + bytes + microseconds)")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, metavar="PID",
                   help="trace this PID only")
    toolkit.add_json(p)
    toolkit.add_interval_options(p, interval=1)
    return p.parse_args(argv)


# -- the script ---------------------------------------------------------------------------

WHO = r"""
tracepoint:block:%(tp)s
%(pred)s{
	@who[args->dev, args->sector] = (pid, comm);
}
"""

ISSUE = r"""
tracepoint:block:block_rq_issue
{
	@issue[args->dev, args->sector] = (nsecs, args->bytes);%(who)s
}
"""

DONE = r"""
tracepoint:block:block_rq_complete
{
	$i = @issue[args->dev, args->sector];
	if ($i.0 != 0) {
		$w = @who[args->dev, args->sector];
		delete(@issue[args->dev, args->sector]);
		delete(@who[args->dev, args->sector]);
		// a write: "W" first, or after the "F" of a pre-flush
		$op = (uint64)args->rwbs[0];
		if ($op == 70) { $op = (uint64)args->rwbs[1]; }
		$wr = $op == 87 ? 1 : 0;
		if (%(cond)s) {
			@io[$w.0, $w.1, $wr, args->dev] = count();
			@bytes[$w.0, $w.1, $wr, args->dev] = sum($i.1);
			@us[$w.0, $w.1, $wr, args->dev] = sum((nsecs - $i.0) / 1000);
		}
	}
}
"""

_FILL_WHO = """
	if (@who[args->dev, args->sector].0 == 0%s) {
		@who[args->dev, args->sector] = (pid, comm);
	}"""


def script_text(opts):
    """The script for these options: the issuer probe (block_io_start where it exists) and
    the PID filter (-p)."""
    from tinytrace.tooldata import block_tracepoint
    pid = opts.pid
    pred = "/pid == %d/\n" % pid if pid else ""
    parts = []
    fill = ""
    if block_tracepoint("block_io_start"):
        parts.append(WHO % {"tp": "block_io_start", "pred": pred})
    else:
        if block_tracepoint("block_rq_insert"):
            parts.append(WHO % {"tp": "block_rq_insert", "pred": pred})
        fill = _FILL_WHO % (" && pid == %d" % pid if pid else "")
    parts.append(ISSUE % {"who": fill})
    parts.append(DONE % {"cond": "$w.0 == %d" % pid if pid else "1"})
    return "".join(parts)


class Biotop(object):
    """The running script, and its counts per (PID, COMM, direction, disk)."""

    def __init__(self, opts):
        from tinytrace.script import Script
        self.opts = opts
        self.script = Script(script_text(opts), tool="biotop")

    def take(self):
        """Rows since the last call (and reset): dicts with pid, comm (bytes), write, dev,
        io, bytes, us; sorted by ``-s``, all of them (the caller cuts to ``-r``)."""
        maps = {}
        for name in ("@io", "@bytes", "@us"):
            maps[name] = self.script.read(name)
            self.script.clear(name)
        rows = []
        for key, io in maps["@io"].items():
            pid, comm, wr, dev = key
            if not io:
                continue
            rows.append({"pid": pid, "comm": comm, "write": bool(wr), "dev": dev, "io": io,
                         "bytes": maps["@bytes"].get(key, 0), "us": maps["@us"].get(key, 0)})
        sort = self.opts.sort
        if sort == "io":
            rank = lambda r: r["io"]                                    # noqa: E731
        elif sort == "bytes":
            rank = lambda r: r["bytes"]                                 # noqa: E731
        elif sort == "time":
            rank = lambda r: r["us"]                                    # noqa: E731
        else:
            rank = lambda r: r["io"] + r["bytes"] + r["us"]             # noqa: E731
        rows.sort(key=lambda r: (rank(r), r["pid"]), reverse=True)
        return rows


def report(opts, rows, out):
    from tinytrace import toolkit
    from tinytrace.tooldata import disk_name, split_dev
    rows = rows[:opts.maxrows]
    now = toolkit.hhmmss()
    load = toolkit.loadavg() or ""
    if opts.json:
        from tinytrace.output import jsonl
        recs = []
        for r in rows:
            major, minor = split_dev(r["dev"])
            recs.append({"pid": r["pid"], "comm": jsonl.text(r["comm"]),
                         "d": "W" if r["write"] else "R", "major": major, "minor": minor,
                         "disk": disk_name(r["dev"]), "io": r["io"], "bytes": r["bytes"],
                         "kbytes": r["bytes"] / 1024.0,
                         "avg_ms": round(r["us"] / 1000.0 / r["io"], 3)})
        jsonl.write(jsonl.interval_record(time=now, loadavg=load, rows=recs), out)
        return
    from tinytrace.output.escape import cstring
    if opts.noclear:
        out.write("\n")
    else:
        out.write("\033[H\033[2J")
    out.write("%-8s loadavg: %s\n\n" % (now, load))
    out.write("%-7s %-16s %1s %-3s %-3s %-8s %5s %7s %6s\n" % (
        "PID", "COMM", "D", "MAJ", "MIN", "DISK", "I/O", "Kbytes", "AVGms"))
    for r in rows:
        major, minor = split_dev(r["dev"])
        avg_ms = r["us"] / 1000.0 / r["io"]
        out.write("%-7d %-16s %1s %-3d %-3d %-8s %5s %7s %6.2f\n" % (
            r["pid"], cstring(r["comm"]), "W" if r["write"] else "R", major, minor,
            disk_name(r["dev"]), r["io"], r["bytes"] / 1024, avg_ms))
    out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    opts = parse_args(argv)
    toolkit.require_privileges()
    top = Biotop(opts)
    with toolkit.Stopper() as stopper, top.script.start():
        toolkit.announce(opts, "Tracing... Output every %d secs. Hit Ctrl-C to end"
                         % opts.interval)

        def one_report(last):
            report(opts, top.take(), sys.stdout)

        toolkit.intervals(opts.interval, opts.count, one_report, stopper)
    return 0
