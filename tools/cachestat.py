"""cachestat: page cache hits, misses and dirtied pages per interval, like BCC's cachestat.

Two kernel sides, picked at run time from what the kernel has (``Cachestat.plan``):

**kprobes** (kernels with kprobes: Debian's 6.1 and most others) -- BCC's method exactly.
Four counters of kernel function calls, each function chosen as BCC chooses it (the newer
name when available_filter_functions lists it):

- ``apcl``: ``filemap_add_folio`` (else ``add_to_page_cache_lru``): pages added to the cache;
- ``mpa``: ``folio_mark_accessed`` (else ``mark_page_accessed``): cache accesses;
- ``apd``: ``folio_account_dirtied`` (else ``account_page_dirtied``; both are static and often
  inlined away, as on Debian's 6.1 -- then, as BCC does, the tracepoint
  ``writeback:writeback_dirty_folio``, else ``writeback_dirty_page``): pages dirtied;
- ``mbd``: ``mark_buffer_dirty``: buffers dirtied.

Then BCC's arithmetic per interval: total = mpa - mbd, MISSES = apcl - apd (both at least 0),
HITS = total - MISSES (when that is negative -- read-ahead added more pages than were read --
MISSES = total and HITS = 0), HITRATIO = HITS / total, DIRTIES = mbd.  File systems without
buffer heads (9p, NFS, tmpfs) never call mark_buffer_dirty: DIRTIES stays 0 there, in BCC too.

**tracepoints** where kprobes are missing -- an APPROXIMATION, since none of BCC's functions
has a tracepoint; the same quantities are estimated from the ``filemap`` and ``writeback``
tracepoints:

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
  BCC counts mark_buffer_dirty calls).

mm_filemap_get_pages is recent (Linux 6.1 does not have it): a kernel with neither kprobes nor
these tracepoints gets one line naming what is missing.  Both: BUFFERS_MB, CACHED_MB are
/proc/meminfo's Buffers and Cached, as in BCC; counters are sums in per-CPU maps, read and
cleared every interval.  The tracepoint variant's per-thread state (to tell continuations
and written pages apart) is cleared each interval too, so its maps only hold the threads
active in one interval.  ``-p`` (from libbpf-tools' cachestat) counts one process only:
reads, read-ahead, faults and writes all run in the reading or writing task's context.
``TINYTRACE_TARGET=kprobes=0`` takes the tracepoint variant on a kernel that has both (tests).
"""

SUMMARY = "page cache hits, misses and dirtied pages per interval"
PROBES = ("kprobe:filemap_add_folio", "kprobe:add_to_page_cache_lru",
          "kprobe:folio_mark_accessed", "kprobe:mark_page_accessed",
          "kprobe:folio_account_dirtied", "kprobe:account_page_dirtied",
          "kprobe:mark_buffer_dirty",
          "tracepoint:filemap:mm_filemap_add_to_page_cache",
          "tracepoint:filemap:mm_filemap_get_pages", "tracepoint:filemap:mm_filemap_fault",
          "tracepoint:writeback:writeback_dirty_folio",
          "tracepoint:writeback:writeback_dirty_page")
NEEDS = ()

EXAMPLES = """\
    tinytrace cachestat             # print a summary every second
    tinytrace cachestat -T          # include timestamps
    tinytrace cachestat 1 5         # print 1 second summaries, 5 times
    tinytrace cachestat -p 181      # count PID 181 only
    tinytrace cachestat --json 1 5  # five 1-second summaries as JSON lines
"""

KPROBE_DESCRIPTION = """\
Count cache kernel function calls

This kernel has kprobes: BCC's method, kprobes on %(apcl)s, %(mpa)s, %(apd)s
and mark_buffer_dirty; total = accesses - buffers dirtied, misses = pages added - pages
dirtied, hits = total - misses, dirties = mark_buffer_dirty calls.  See the module
documentation."""

TRACEPOINT_DESCRIPTION = """\
Count page cache hits and misses (an approximation from tracepoints)

This kernel has no kprobes, so BCC's counted functions are replaced by tracepoints: misses
are pages added to the page cache (filemap:mm_filemap_add_to_page_cache) that were not
created by a write, accesses are the pages reads looked up (filemap:mm_filemap_get_pages)
plus file page faults (filemap:mm_filemap_fault), hits = accesses - misses, dirties are
folios that became dirty (writeback:writeback_dirty_folio).  See the module documentation."""

APPROX_NOTE = "approximation from filemap/writeback tracepoints, see -h"

# the tracepoint variant's probes (see SCRIPT)
TRACEPOINTS = (("filemap", "mm_filemap_add_to_page_cache"), ("filemap", "mm_filemap_get_pages"),
               ("filemap", "mm_filemap_fault"), ("writeback", "writeback_dirty_folio"))

# BCC's counted functions: (counter, candidates in BCC's order of preference)
FUNCTIONS = (("apcl", ("filemap_add_folio", "add_to_page_cache_lru")),
             ("mpa", ("folio_mark_accessed", "mark_page_accessed")),
             ("apd", ("folio_account_dirtied", "account_page_dirtied")),
             ("mbd", ("mark_buffer_dirty",)))
# BCC's stand-ins for apd when both its functions were inlined away
APD_TRACEPOINTS = (("writeback", "writeback_dirty_folio"), ("writeback", "writeback_dirty_page"))


def plan():
    """What this kernel lets the tool attach: ``{"kind": "kprobe", "apcl": probe, "mpa":
    probe, "apd": probe, "mbd": probe}`` (probes as the language writes them), ``{"kind":
    "tracepoint"}``, or ``{"kind": None, "missing": text}``."""
    from tinytrace import toolkit
    if toolkit.has_kprobes():
        names = [n for _, cands in FUNCTIONS for n in cands]
        have = toolkit.traceable_functions(names)
        chosen = {"kind": "kprobe"}
        for counter, cands in FUNCTIONS:
            found = [n for n in cands if n in have]
            if found:
                chosen[counter] = "kprobe:" + found[0]
            elif counter == "apd":
                tps = [t for t in APD_TRACEPOINTS if toolkit.tracepoint_exists(*t)]
                if tps:
                    chosen[counter] = "tracepoint:%s:%s" % tps[0]
            else:
                # not listed (e.g. available_filter_functions unreadable): attach by name,
                # as BCC does; the kernel says so if it really is missing
                chosen[counter] = "kprobe:" + cands[-1]
        if "apd" in chosen:
            return chosen
        return {"kind": None, "missing": (
            "cachestat: this kernel has kprobes, but BCC's dirtied-page counter has nothing "
            "to count: folio_account_dirtied and account_page_dirtied are not traceable "
            "(inlined) and there is no writeback:writeback_dirty_folio or "
            "writeback_dirty_page tracepoint")}
    absent = ["%s:%s" % t for t in TRACEPOINTS if not toolkit.tracepoint_exists(*t)]
    if not absent:
        return {"kind": "tracepoint"}
    return {"kind": None, "missing": (
        "cachestat needs kprobes (BCC's method) or, without them, the tracepoint%s %s, and "
        "this kernel has neither: a kernel built with CONFIG_KPROBES and "
        "CONFIG_KPROBE_EVENTS, or a newer one with those tracepoints, would do" % (
            "s" if len(absent) > 1 else "", ", ".join(absent)))}


def _probe_text(probe):
    kind, _, name = probe.partition(":")
    return name if kind == "kprobe" else "the tracepoint " + name


def _description(chosen):
    if chosen["kind"] == "kprobe":
        return KPROBE_DESCRIPTION % dict((k, _probe_text(chosen[k]))
                                         for k in ("apcl", "mpa", "apd"))
    if chosen["kind"] == "tracepoint":
        return TRACEPOINT_DESCRIPTION
    return "Count page cache hits and misses\n\nThis kernel: " + chosen["missing"] + "."


def parse_args(argv, chosen=None):
    from tinytrace import toolkit
    if chosen is None:
        chosen = plan()
    p = toolkit.ArgumentParser("cachestat", _description(chosen), EXAMPLES)
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, metavar="PID",
                   help="trace this PID only")
    toolkit.add_json(p)
    p.add_argument("-j", dest="json", action="store_true", help="same as --json (BCC's -j)")
    toolkit.add_interval_options(p, interval=1)
    opts = p.parse_args(argv)
    opts.plan = chosen
    return opts


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


KPROBE_COUNTERS = ("@apcl", "@mpa", "@apd", "@mbd")


def script_text(opts):
    """The tracepoint script for these options: -p becomes a predicate on every probe."""
    return SCRIPT % {"pred": "/pid == %d/\n" % opts.pid if opts.pid else ""}


def kprobe_script_text(opts, chosen):
    """BCC's four counters, one probe each (``chosen``: from ``plan()``)."""
    pred = "/pid == %d/\n" % opts.pid if opts.pid else ""
    return "".join("%s\n%s{\n\t@%s = count();\n}\n" % (chosen[c], pred, c)
                   for c in ("apcl", "mpa", "apd", "mbd"))


class Cachestat(object):
    """The running script, and the interval's figures."""

    def __init__(self, opts):
        from tinytrace.script import Script
        self.opts = opts
        chosen = getattr(opts, "plan", None) or {"kind": "tracepoint"}
        self.kprobes = chosen["kind"] == "kprobe"
        text = kprobe_script_text(opts, chosen) if self.kprobes else script_text(opts)
        self.script = Script(text, tool="cachestat")

    def _take(self, names):
        raw = {}
        for name in names:
            values = self.script.read(name)
            self.script.clear(name)
            raw[name] = int(values.get(None, 0) or 0)
        return raw

    def take(self):
        """(hits, misses, dirties, ratio in %) since the last call, and reset."""
        if self.kprobes:
            raw = self._take(KPROBE_COUNTERS)
            return bcc_counts(raw["@apcl"], raw["@mpa"], raw["@apd"], raw["@mbd"])
        raw = self._take(COUNTERS)
        for name in ("@lastadd", "@lastget"):
            self.script.clear(name)
        return estimate(raw["@added"], raw["@written"], raw["@accessed"], raw["@dirtied"])


def bcc_counts(apcl, mpa, apd, mbd):
    """(hits, misses, dirties, hit ratio in %) from BCC's four counters, with BCC's
    arithmetic (see the docstring)."""
    total = max(0, mpa - mbd)
    misses = max(0, apcl - apd)
    hits = total - misses
    if hits < 0:
        misses, hits = total, 0
    ratio = 100.0 * hits / total if total else 0.0
    return hits, misses, mbd, ratio


def estimate(added, written, accessed, dirtied):
    """(hits, misses, dirties, hit ratio in %) from the tracepoint variant's raw counts (see
    the docstring)."""
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


def report(opts, stats, out, approximate=True):
    from tinytrace import toolkit
    hits, misses, dirties, ratio = stats
    buffers, cached = meminfo_mb()
    if opts.json:
        from tinytrace.output import jsonl
        jsonl.write(jsonl.interval_record(
            time=toolkit.hhmmss(), hits=hits, misses=misses, dirties=dirties,
            hitratio=round(ratio, 2), buffers_mb=round(buffers), cached_mb=round(cached),
            approximate=approximate), out)
        return
    text = "%-8s " % toolkit.hhmmss() if opts.timestamp else ""
    text += "%8d %8d %8d %7.2f%% %12.0f %10.0f\n" % (hits, misses, dirties, ratio, buffers,
                                                     cached)
    out.write(text)
    out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.errors import KernelError
    opts = parse_args(argv)
    toolkit.require_privileges()
    if opts.plan["kind"] is None:
        raise KernelError(opts.plan["missing"])
    cs = Cachestat(opts)
    if cs.kprobes:
        what = "kprobes: " + ", ".join(_probe_text(opts.plan[c])
                                       for c in ("apcl", "mpa", "apd", "mbd"))
    else:
        what = APPROX_NOTE
    with toolkit.Stopper() as stopper, cs.script.start():
        toolkit.announce(opts, "Tracing page cache (%s)... Hit Ctrl-C to end." % what)
        header(opts, sys.stdout)

        def one_report(last):
            report(opts, cs.take(), sys.stdout, approximate=not cs.kprobes)

        toolkit.intervals(opts.interval, opts.count, one_report, stopper)
    return 0
