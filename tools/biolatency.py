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
text is packed into an integer in the kernel (its bytes after the NUL are not cleared by the
kernel, so the char array itself would split equal flags into several keys).

The helpers here (disk names from /sys, ``rwbs`` decoding, the packing snippet) are shared
by biosnoop, biotop and bitesize.  Where kprobes exist, a future variant could key by
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

MINORBITS = 20          # the kernel's dev_t inside tracepoints: major << 20 | minor


# -- disks --------------------------------------------------------------------------------

_names = {}


def kernel_dev(major, minor):
    """The ``dev`` field of the block tracepoints for a major:minor."""
    return (major << MINORBITS) | minor


def split_dev(dev):
    """(major, minor) of a tracepoint ``dev``."""
    return dev >> MINORBITS, dev & ((1 << MINORBITS) - 1)


def disk_name(dev):
    """The kernel name of a tracepoint ``dev`` ("vda", "loop0"), from
    /sys/dev/block/MAJ:MIN/uevent, escaped for printing; "?" for a device that is gone
    (names are cached)."""
    name = _names.get(dev)
    if name is not None:
        return name
    major, minor = split_dev(dev)
    name = "?"
    try:
        with open("/sys/dev/block/%d:%d/uevent" % (major, minor)) as f:
            for line in f:
                if line.startswith("DEVNAME="):
                    name = line[8:].strip() or "?"
                    break
    except OSError:
        pass
    if name != "?":
        from tinytrace.output.escape import escape
        name = escape(name)
        _names[dev] = name
    return name


def resolve_disk(parser, name):
    """The tracepoint ``dev`` of the disk called ``name`` ("sdc", or "/dev/sdc"); a parser
    error (one line, exit 2) when there is no such block device."""
    import os
    base = os.path.basename(name.rstrip("/")) if name else ""
    if not base or base in (".", ".."):
        parser.error("argument -d/--disk: no such disk %r" % name)
    try:
        with open("/sys/class/block/%s/dev" % base) as f:
            major, minor = f.read().strip().split(":")
        return kernel_dev(int(major), int(minor))
    except (OSError, ValueError):
        parser.error("argument -d/--disk: no such disk %r (see /sys/class/block)" % name)


def block_tracepoint(name):
    """Whether this kernel has ``block:<name>`` (block_io_start/done are 6.5+)."""
    import os
    from tinytrace.kernel import tracefs
    try:
        return os.path.isdir(tracefs.path("events", "block", name))
    except Exception:
        return False


# -- rwbs ---------------------------------------------------------------------------------

RWBS_MAX = 8            # letters packed: pre-flush, two for the operation, F A S M U


def rwbs_pack(var="$rwbs"):
    """Script lines that set ``var`` to the tracepoint's ``rwbs`` text packed into an
    integer (first letter in the low byte), stopping at the NUL."""
    lines = ["%s = (uint64)args->rwbs[0];" % var]
    indent = ""
    for i in range(1, RWBS_MAX):
        lines.append("%sif ((uint64)args->rwbs[%d] != 0) {" % (indent, i - 1))
        indent += "\t"
        lines.append("%s%s = %s | ((uint64)args->rwbs[%d] << %d);" % (indent, var, var, i, 8 * i))
    for i in range(RWBS_MAX - 1, 0, -1):
        indent = indent[:-1]
        lines.append("%s}" % indent)
    return "\n".join(lines)


def rwbs_text(packed):
    """The ``rwbs`` letters of a packed integer."""
    out = []
    while packed and len(out) < RWBS_MAX:
        c = packed & 0xFF
        if not c:
            break
        out.append(chr(c) if 32 < c < 127 else "?")
        packed >>= 8
    return "".join(out)


_OPS = (("DE", "SecureErase"), ("WZ", "WriteZeros"), ("ZA", "ZoneAppend"),
        ("ZR", "ZoneReset"), ("ZO", "ZoneOpen"), ("ZC", "ZoneClose"), ("ZF", "ZoneFinish"),
        ("R", "Read"), ("W", "Write"), ("D", "Discard"), ("F", "Flush"), ("N", "Unknown"))
_OP_LETTERS = "RWDFNZ"


def split_rwbs(rwbs):
    """(pre-flush, operation letters, flag letters) of an ``rwbs`` string."""
    preflush = False
    if len(rwbs) > 1 and rwbs[0] == "F" and rwbs[1] in _OP_LETTERS:
        preflush, rwbs = True, rwbs[1:]
    for letters, _ in _OPS:
        if rwbs.startswith(letters):
            return preflush, letters, rwbs[len(letters):]
    return preflush, rwbs[:1], rwbs[1:]


def op_letter(rwbs):
    """The one-letter operation of an ``rwbs`` ("R", "W", "D", "F", ...; "?" if empty)."""
    _, op, _ = split_rwbs(rwbs)
    return op[:1] or "?"


def is_write(rwbs):
    return op_letter(rwbs) == "W"


def flags_label(rwbs):
    """BCC's ``-F`` label for an ``rwbs`` string: operation, then the flags prepended in
    BCC's order (Sync, Metadata, ForcedUnitAccess, ReadAhead), e.g. "Metadata-Sync-Write";
    a pre-flush adds "PreFlush-" (BCC has no word for it)."""
    preflush, op, flags = split_rwbs(rwbs)
    desc = "Unknown"
    for letters, word in _OPS:
        if op == letters:
            desc = word
            break
    for letter, word in (("S", "Sync"), ("M", "Metadata"), ("F", "ForcedUnitAccess"),
                         ("A", "ReadAhead")):
        if letter in flags:
            desc = word + "-" + desc
    if preflush and op != "F":
        desc = "PreFlush-" + desc
    return desc


# -- options ------------------------------------------------------------------------------

def parse_args(argv):
    from tinytrace import toolkit
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
    p.add_argument("interval", nargs="?", type=toolkit.positive_int, default=None,
                   help="output interval, in seconds")
    p.add_argument("count", nargs="?", type=toolkit.positive_int, default=None,
                   help="number of outputs")
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
    filt = "args->dev == %d" % opts.dev if opts.dev is not None else ""
    unset = "@start[args->dev, args->sector] == 0"
    parts = []
    if opts.queued:
        # The earliest point a request is seen wins; later ones only fill in.
        first = True
        for tp in ("block_io_start", "block_rq_insert", "block_rq_issue"):
            if tp != "block_rq_issue" and not block_tracepoint(tp):
                continue
            conds = [c for c in (filt, None if first else unset) if c]
            parts.append(START % {"tp": tp, "pred": _predicate(conds)})
            first = False
    else:
        parts.append(START % {"tp": "block_rq_issue", "pred": _predicate([filt])})
    if opts.disks:
        key, key_setup = "[args->dev]", ""
    elif opts.flags:
        key = "[$rwbs]"
        key_setup = "".join("\t\t" + l + "\n" for l in rwbs_pack().splitlines())
    else:
        key, key_setup = "", ""
    parts.append(DONE % {"div": 1000000 if opts.milliseconds else 1000, "key": key,
                         "key_setup": key_setup,
                         "ext": "\n\t\t@ext = stats($d);" if opts.extension else ""})
    return "".join(parts)


def _predicate(conds):
    """A probe's predicate line for these conditions (empty ones dropped), or nothing."""
    conds = [c for c in conds if c]
    return "/%s/\n" % " && ".join(conds) if conds else ""


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
        from tinytrace.script import log2_slots
        dist = self.script.read("@dist")
        self.script.clear("@dist")
        out = {}
        for key, buckets in dist.items():
            slots = log2_slots(buckets)
            if not slots:
                continue
            if self.opts.disks:
                label = disk_name(key)
            elif self.opts.flags:
                label = flags_label(rwbs_text(key))
            else:
                label = None
            dest = out.setdefault(label, {})
            for slot, n in slots.items():
                dest[slot] = dest.get(slot, 0) + n
        if not (self.opts.disks or self.opts.flags):
            out = {None: out.get(None, {})}
        ext = None
        if self.opts.extension:
            stats = self.script.read("@ext")
            self.script.clear("@ext")
            ext = stats.get(None, (0, 0))
        return out, ext


def report(opts, hists, ext, out):
    from tinytrace import toolkit
    from tinytrace.output import hist as H
    unit = "msecs" if opts.milliseconds else "usecs"
    section = "disk" if opts.disks else "flags"
    keyed = opts.disks or opts.flags
    if opts.json:
        from tinytrace.output import jsonl
        rec_hists = []
        for key in sorted(hists, key=lambda k: (k is not None, k)):
            h = H.hist_json(hists[key], unit)
            if key is not None:
                h["key"] = {section: key}
            rec_hists.append(h)
        more = {}
        if ext is not None:
            count, total = ext
            more["extension"] = {"unit": unit, "count": count, "total": total,
                                 "avg": total // count if count else 0}
        jsonl.write(jsonl.interval_record(time=toolkit.hhmmss(), hists=rec_hists, **more), out)
        return
    out.write("\n")
    if opts.timestamp:
        out.write("%-8s\n" % toolkit.hhmmss())
    if keyed:
        # disk names come escaped from disk_name, flag labels are the tool's own words
        out.write(H.log2_sections_text(hists, unit, section_header=section, section_fmt=str))
    else:
        out.write(H.log2_hist_text(hists.get(None, {}), unit))
    if ext is not None:
        count, total = ext
        if count > 0:
            out.write("\navg = %d %s, total: %d %s, count: %d\n\n"
                      % (total // count, unit, total, unit, count))
    out.flush()


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
