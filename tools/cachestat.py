"""cachestat: page cache hits, misses and dirtied pages per interval, like BCC's cachestat --
an APPROXIMATION built from tracepoints.

BCC counts kernel function calls with kprobes (mark_page_accessed, add_to_page_cache_lru /
filemap_add_folio, account_page_dirtied / folio_account_dirtied, mark_buffer_dirty).  None of
them has a tracepoint, so on a kernel without kprobes the same quantities are estimated from
the ``filemap`` and ``writeback`` tracepoints:

- MISSES: pages inserted into the page cache (``filemap:mm_filemap_add_to_page_cache``,
  ``1 << order`` pages per folio: a read that missed, or read-ahead), except pages a write
  created: a folio added and then dirtied by the same thread (``writeback_dirty_folio`` of
  the same inode and index) is a new page being written, not a miss -- BCC subtracts its
  dirtied count for the same reason;
- accesses: pages a read looked up (``filemap:mm_filemap_get_pages``, its index range; the
  kernel traces it again for the rest of a range it could not batch at once, and such a
  continuation -- same thread, inode and range end, later start -- is not counted twice),
  plus one per page fault on a file mapping (``filemap:mm_filemap_fault``).  Page-cache hits
  from pages mapped by fault-around, and writes to pages already cached, are not counted
  (BCC's kprobe on mark_page_accessed sees some of them);
- HITS = accesses - MISSES (not below 0); HITRATIO = HITS / (HITS + MISSES).  Unlike BCC,
  MISSES is not capped at the accesses: read-ahead may bring in more pages than were read
  in the same interval;
- DIRTIES: folios that became dirty (``writeback:writeback_dirty_folio``; one per folio --
  BCC counts mark_buffer_dirty calls);
- BUFFERS_MB, CACHED_MB: /proc/meminfo's Buffers and Cached, as in BCC.

Counters are sums in per-CPU maps, read and cleared every interval.  The per-thread state
used to tell continuations and written pages apart is cleared each interval too, so its maps
only hold the threads active in one interval.  ``-p`` (from libbpf-tools' cachestat) counts
one process only: reads, read-ahead, faults and writes all run in the reading or writing
task's context.  With kprobes, a future variant can attach BCC's functions instead.
"""

SUMMARY = "page cache hits, misses and dirtied pages per interval (approximation)"
PROBES = ("tracepoint:filemap:mm_filemap_add_to_page_cache",
          "tracepoint:filemap:mm_filemap_get_pages", "tracepoint:filemap:mm_filemap_fault",
          "tracepoint:writeback:writeback_dirty_folio")
NEEDS = ()

EXAMPLES = """\
    tinytrace cachestat             # print a summary every second
    tinytrace cachestat -T          # include timestamps
    tinytrace cachestat 1 5         # print 1 second summaries, 5 times
    tinytrace cachestat -p 181      # count PID 181 only
    tinytrace cachestat --json 1 5  # five 1-second summaries as JSON lines
"""

DESCRIPTION = """\
Count page cache hits and misses (an approximation from tracepoints)

Without kprobes, BCC's counted functions are replaced by tracepoints: misses are pages
added to the page cache (filemap:mm_filemap_add_to_page_cache) that were not created by a
write, accesses are the pages reads looked up (filemap:mm_filemap_get_pages) plus file page
faults (filemap:mm_filemap_fault), hits = accesses - misses, dirties are folios that
became dirty (writeback:writeback_dirty_folio).  See the module documentation."""

APPROX_NOTE = "approximation from filemap/writeback tracepoints, see -h"


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("cachestat", DESCRIPTION, EXAMPLES)
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, metavar="PID",
                   help="trace this PID only")
    toolkit.add_json(p)
    p.add_argument("-j", dest="json", action="store_true", help="same as --json (BCC's -j)")
    toolkit.add_interval_options(p, interval=1)
    return p.parse_args(argv)


# -- the script ---------------------------------------------------------------------------

SCRIPT = r"""
tracepoint:filemap:mm_filemap_add_to_page_cache
%(pred)s{
	$n = (uint64)1 << args->order;
	@added = sum($n);
	@lastadd[tid] = (args->s_dev, args->i_ino, args->index, $n);
}

tracepoint:writeback:writeback_dirty_folio
%(pred)s{
	@dirtied = count();
	// the folio this thread has just added: a page created by a write, not a miss
	$a = @lastadd[tid];
	if ($a.3 != 0 && $a.1 == args->ino && $a.2 == args->index) {
		@written = sum($a.3);
		delete(@lastadd[tid]);
	}
}

tracepoint:filemap:mm_filemap_get_pages
%(pred)s{
	$n = args->last_index - args->index + 1;
	// the rest of the same read's range, traced again: counted already
	$p = @lastget[tid];
	if ($p.0 == args->s_dev && $p.1 == args->i_ino && $p.3 == args->last_index &&
	    args->index > $p.2) {
		$n = 0;
	}
	@accessed = sum($n);
	@lastget[tid] = (args->s_dev, args->i_ino, args->index, args->last_index);
	delete(@lastadd[tid]);
}

tracepoint:filemap:mm_filemap_fault
%(pred)s{
	@accessed = sum(1);
}
"""

COUNTERS = ("@added", "@written", "@accessed", "@dirtied")


def script_text(opts):
    """The script for these options: -p becomes a predicate on every probe."""
    return SCRIPT % {"pred": "/pid == %d/\n" % opts.pid if opts.pid else ""}


class Cachestat(object):
    """The running script, and the interval's estimates."""

    def __init__(self, opts):
        from tinytrace.script import Script
        self.opts = opts
        self.script = Script(script_text(opts), tool="cachestat")

    def take(self):
        """(hits, misses, dirties, ratio in %) since the last call, and reset."""
        raw = {}
        for name in COUNTERS:
            values = self.script.read(name)
            self.script.clear(name)
            raw[name] = int(values.get(None, 0) or 0)
        for name in ("@lastadd", "@lastget"):
            self.script.clear(name)
        return estimate(raw["@added"], raw["@written"], raw["@accessed"], raw["@dirtied"])


def estimate(added, written, accessed, dirtied):
    """(hits, misses, dirties, hit ratio in %) from the raw counts (see the docstring)."""
    misses = max(0, added - written)
    hits = max(0, accessed - misses)
    total = hits + misses
    ratio = 100.0 * hits / total if total else 0.0
    return hits, misses, dirtied, ratio


def meminfo_mb():
    """(Buffers, Cached) from /proc/meminfo, in MiB."""
    buffers = cached = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("Buffers:"):
                    buffers = int(line.split()[1])
                elif line.startswith("Cached:"):
                    cached = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return buffers / 1024.0, cached / 1024.0


def header(opts, out):
    if opts.json:
        return
    text = "%-8s " % "TIME" if opts.timestamp else ""
    text += "%8s %8s %8s %8s %12s %10s\n" % ("HITS", "MISSES", "DIRTIES", "HITRATIO",
                                             "BUFFERS_MB", "CACHED_MB")
    out.write(text)
    out.flush()


def report(opts, stats, out):
    from tinytrace import toolkit
    hits, misses, dirties, ratio = stats
    buffers, cached = meminfo_mb()
    if opts.json:
        from tinytrace.output import jsonl
        jsonl.write(jsonl.interval_record(
            time=toolkit.hhmmss(), hits=hits, misses=misses, dirties=dirties,
            hitratio=round(ratio, 2), buffers_mb=round(buffers), cached_mb=round(cached),
            approximate=True), out)
        return
    text = "%-8s " % toolkit.hhmmss() if opts.timestamp else ""
    text += "%8d %8d %8d %7.2f%% %12.0f %10.0f\n" % (hits, misses, dirties, ratio, buffers,
                                                     cached)
    out.write(text)
    out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    opts = parse_args(argv)
    toolkit.require_privileges()
    cs = Cachestat(opts)
    with toolkit.Stopper() as stopper, cs.script.start():
        toolkit.announce(opts, "Tracing page cache (%s)... Hit Ctrl-C to end." % APPROX_NOTE)
        header(opts, sys.stdout)

        def one_report(last):
            report(opts, cs.take(), sys.stdout)

        toolkit.intervals(opts.interval, opts.count, one_report, stopper)
    return 0
