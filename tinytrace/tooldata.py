"""What groups of tools share about their subject: block devices, TCP sockets,
interrupts, ext4 files, stack samples.

``tinytrace.toolkit`` holds what every tool does (options, the run loop, lost events); this
module holds the knowledge that several tools of one family need, so that no tool imports
another.  Nothing here runs at import time; each section imports what it uses lazily.

Block devices (biolatency, biosnoop, biotop, bitesize)
  The block tracepoints name a disk by ``dev`` (``major << 20 | minor``, the kernel's
  internal dev_t) and a request's flags by ``rwbs`` (letters such as ``"WS"``).
  ``kernel_dev``/``split_dev`` convert, ``disk_name(dev)`` names a disk from /sys (escaped,
  cached), ``resolve_disk(parser, name)`` turns ``-d sdc`` into a ``dev`` (or a one-line
  option error), ``block_tracepoint(name)`` says whether the kernel has ``block:<name>``
  (``block_io_start`` is 6.5+).  ``rwbs_text`` reads the ``rwbs`` char array as a map key
  or printf value (up to its NUL); ``op_letter``/``flags_label`` read it as BCC's T column
  and ``-F`` labels.

TCP (tcpaccept, tcpconnect, tcplife, tcpretrans, tcpstates, tcptop)
  ``AF_INET``/``AF_INET6`` and the TCP state numbers; ``add_family_options(parser)`` (-4,
  -6) and ``family_test(opts)`` (their predicate on ``args->family``); tcplife's and
  tcpstates' options (``add_layout_options``, ``add_session_filters``, ``port_tests``) and
  ``pick_layout`` (BCC's default, -w and -s row formats); ``by_family(statement)``: the
  tracepoints carry IPv4 and IPv6 addresses in different fields (``saddr`` /
  ``saddr_v6``), so a statement using ``{saddr}`` and ``{daddr}`` is written once per
  family -- its IPv4 copy is the script's earlier printf, so a printf's index tells the
  family (``ip_of(index)``).
  ``TimeColumns``: the optional -T (HH:MM:SS) and -t (seconds since the first event)
  columns, in text, CSV and JSON.

Interrupts (hardirqs, softirqs)
  Both time (or count, -C) a handler between an entry and an exit tracepoint of the ``irq``
  group, per CPU (handlers do not nest on a CPU), and print BCC's table or histograms:
  ``add_irq_options``/``parse_irq_options``, ``irq_script``, ``take_irqs`` and
  ``report_irqs``.

ext4 at the syscall level (ext4slower, ext4dist)
  Without kprobes both time reads, writes and opens at the syscalls on regular ext4 files
  (found through the task's fd table, hence ``ext4_check_btf(tool)``) and fsync at the
  ``ext4_sync_file`` tracepoints.  ``Ext4Calls`` picks the syscalls this kernel traces and
  the fsync source (the syscalls where ext4's tracepoints are missing) and says which
  approximation that is; ``ext4_probes_text(calls, pid, emit)`` is the script, with the
  tool's own statements run once per completed operation; ``EXT4_OPS``/``EXT4_TYPE_OF_OP``
  name the operation codes, ``EXT4_HELP_NOTE`` is the approximation for ``-h``.  Each tool
  spells out its own ``PROBES``, so that ``tinytrace --list`` does not import this module.

Stack samples (profile, offcputime)
  ``sample_stacks`` runs them until the duration or Ctrl-C and reads the map;
  ``stack_rows(samples, ...)`` symbolizes the stacks of a ``kstack(raw)``/``ustack(raw)``
  keyed map (BCC's frame names, through ``tinytrace.kernel.stacks``) and merges keys whose
  stacks print the same; ``print_stacks`` prints BCC's multi-line or folded layout, or one
  JSON object per stack.  ``storage_size`` is the option type of BCC's
  ``--stack-storage-size``/``--hash-storage-size`` (entries of a map, 1 to the language's
  ``MAX_MAP_KEYS``); ``add_stack_storage(parser)`` adds the first.
"""

# -- block devices --------------------------------------------------------------------------

MINORBITS = 20          # the kernel's dev_t inside tracepoints: major << 20 | minor

_disk_names = {}


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
    name = _disk_names.get(dev)
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
        _disk_names[dev] = name
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


RWBS_MAX = 8            # the tracepoints' rwbs array: pre-flush, operation, F A S M, NUL


def rwbs_text(raw):
    """The letters of the tracepoints' ``rwbs`` char array, as a map key or printf value
    (bytes, up to the NUL)."""
    raw = bytes(raw).split(b"\0", 1)[0][:RWBS_MAX]
    return "".join(chr(c) if 32 < c < 127 else "?" for c in bytearray(raw))


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


# -- TCP ------------------------------------------------------------------------------------

AF_INET, AF_INET6 = 2, 10
TCP_ESTABLISHED, TCP_SYN_SENT, TCP_SYN_RECV, TCP_FIN_WAIT1 = 1, 2, 3, 4
TCP_CLOSE, TCP_LAST_ACK = 7, 9
IPPROTO_TCP = 6


def add_family_options(parser):
    """-4/--ipv4 and -6/--ipv6, one or the other (BCC's and libbpf-tools' options)."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("-4", "--ipv4", action="store_true", help="trace IPv4 family only")
    g.add_argument("-6", "--ipv6", action="store_true", help="trace IPv6 family only")


def add_layout_options(parser):
    """tcplife's and tcpstates' columns: -T (time), -t (timestamp), -w (wide), -s (CSV)."""
    p = parser
    p.add_argument("-T", "--time", action="store_true",
                   help="include time column on output (HH:MM:SS)")
    p.add_argument("-t", "--timestamp", action="store_true",
                   help="include timestamp on output (seconds)")
    p.add_argument("-w", "--wide", action="store_true",
                   help="wide column output (fits IPv6 addresses)")
    p.add_argument("-s", "--csv", action="store_true", help="comma separated values output")


def add_session_filters(parser):
    """tcplife's and tcpstates' filters: -L local ports, -D remote ports, -4/-6."""
    from tinytrace import toolkit
    parser.add_argument("-L", "--localport", type=toolkit.any_port_list,
                        help="comma-separated list of local ports to trace.")
    parser.add_argument("-D", "--remoteport", type=toolkit.any_port_list,
                        help="comma-separated list of remote ports to trace.")
    add_family_options(parser)


def port_tests(opts):
    """The -L/-D predicate (local, remote ports) on the tracepoint's fields, or "1"."""
    from tinytrace import toolkit
    tests = []
    if opts.localport:
        tests.append(toolkit.any_of("args->sport", opts.localport))
    if opts.remoteport:
        tests.append(toolkit.any_of("args->dport", opts.remoteport))
    return " && ".join(tests) or "1"


def pick_layout(opts, default, wide, csv):
    """The (header, row) formats of BCC's default, ``-w`` (wide) and ``-s`` (CSV) layouts,
    each a (header, row) pair, for ``opts``."""
    return csv if getattr(opts, "csv", False) else wide if getattr(opts, "wide", False) \
        else default


def family_test(opts, field="args->family"):
    """The -4/-6 predicate on the address family, or None for both."""
    if getattr(opts, "ipv4", False):
        return "%s == %d" % (field, AF_INET)
    if getattr(opts, "ipv6", False):
        return "%s == %d" % (field, AF_INET6)
    return None


def by_family(statement, indent="\t"):
    """``statement`` (script text using ``{saddr}`` and ``{daddr}``, and ``{ip}`` for 4 or
    6) once per address family, for the tracepoints that carry IPv4 and IPv6 addresses in
    separate fields (``saddr``/``daddr`` and ``saddr_v6``/``daddr_v6``).  The IPv4 copy
    comes first, so of the printf calls in ``statement`` the IPv4 ones have the lower
    indexes."""
    def copy(suffix):
        text = statement.format(saddr="args->saddr" + suffix, daddr="args->daddr" + suffix,
                                ip=6 if suffix else 4)
        return "".join(indent + "\t" + line + "\n" if line else "\n"
                       for line in text.strip("\n").split("\n"))
    return "%sif (args->family == %d) {\n%s%s} else {\n%s%s}\n" % (
        indent, AF_INET, copy(""), indent, copy("_v6"), indent)


def ip_of(index, per_family=1):
    """4 or 6: the family of an event from a ``by_family`` printf (``per_family``: printf
    calls in each copy)."""
    return 4 if index < per_family else 6


class TimeColumns(object):
    """The optional time columns of a per-event tool: ``-T`` (``opts.time``, the wall
    clock HH:MM:SS) and ``-t`` (``opts.timestamp``, seconds since the first event, from
    the events' own ``nsecs``).  ``layout`` is BCC's spacing for the tool:

    - ``"tight"`` (tcpaccept, tcpconnect): ``%-9s`` heads, ``%-9.3f`` seconds;
    - ``"spaced"`` (tcplife, tcpstates): ``%-8s `` / ``%-9s `` heads, ``%-9.6f `` seconds,
      and ``TIME,`` / ``TIME(s),`` cells with ``csv``.

    In JSON the columns are ``"time"`` and ``"ts"`` (seconds, 6 decimals)."""

    def __init__(self, opts, layout="tight", csv=False):
        self.time = bool(getattr(opts, "time", False))
        self.timestamp = bool(getattr(opts, "timestamp", False))
        self.layout = layout
        self.csv = csv
        self.first_ns = None

    def seconds(self, ns):
        """Seconds since the first event seen (0.0 for the first)."""
        if self.first_ns is None:
            self.first_ns = ns
        return (ns - self.first_ns) / 1e9

    def header(self):
        out = ""
        if self.csv:
            return ("TIME," if self.time else "") + ("TIME(s)," if self.timestamp else "")
        tight = self.layout == "tight"
        if self.time:
            out += "%-9s" % "TIME" if tight else "%-8s " % "TIME"
        if self.timestamp:
            out += "%-9s" % "TIME(s)" if tight else "%-9s " % "TIME(s)"
        return out

    def cells(self, ns):
        """The columns' text for an event at ``ns`` (call once per event)."""
        import time
        rel = self.seconds(ns)
        out = ""
        if self.time:
            now = time.strftime("%H:%M:%S")
            out += now + "," if self.csv else "%-9s" % now if self.layout == "tight" \
                else "%-8s " % now
        if self.timestamp:
            out += "%.6f," % rel if self.csv else "%-9.3f" % rel if self.layout == "tight" \
                else "%-9.6f " % rel
        return out

    def record(self, ns):
        """The columns as the first fields of a JSON record (call once per event)."""
        import time
        rel = self.seconds(ns)
        rec = {}
        if self.time:
            rec["time"] = time.strftime("%H:%M:%S")
        if self.timestamp:
            rec["ts"] = round(rel, 6)
        return rec


def csv_cell(text):
    """A text cell of CSV output: commas escaped, as the rest of the escaping does."""
    return text.replace(",", "\\x2c")


# -- interrupts -----------------------------------------------------------------------------

def add_irq_options(parser, count_dest, count_help, outputs_dest):
    """BCC's hardirqs/softirqs options: -T -N -C (``count_dest``) -d -c CPU, --json,
    interval and number of outputs (``outputs_dest``); -C excludes -d and -N."""
    from tinytrace import toolkit
    p = parser
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-N", "--nanoseconds", action="store_true", help="output in nanoseconds")
    p.add_argument("-C", "--" + count_dest, action="store_true", help=count_help)
    p.add_argument("-d", "--dist", action="store_true", help="show distributions as histograms")
    p.add_argument("-c", "--cpu", type=toolkit.cpu_number, help="trace this CPU only")
    toolkit.add_json(p)
    toolkit.add_interval_options(p, count=outputs_dest)


def parse_irq_options(parser, argv, count_dest):
    """Parse; counting (-C) with a time option (-d, -N) is a one-line error."""
    opts = parser.parse_args(argv)
    if getattr(opts, count_dest) and (opts.dist or opts.nanoseconds):
        parser.error("argument -C/--%s: not allowed with the time-based options -d and -N"
                     % count_dest)
    return opts


IRQ_COUNT = r"""
tracepoint:irq:%(entry)s
%(filter)s{
	@irqs[%(key)s] = count();
}
"""

IRQ_TIME = r"""
tracepoint:irq:%(entry)s
%(filter)s{
	@start[cpu] = nsecs;%(keep)s
}

tracepoint:irq:%(exit)s
%(filter)s{
	$ts = @start[cpu];
	if ($ts != 0) {
		delete(@start[cpu]);
		@irqs[%(exit_key)s] = %(agg)s((nsecs - $ts) / %(div)d);
	}
}
"""


def irq_script(opts, counting, entry, exit, key, exit_key=None):
    """The script of an interrupt tool: with ``counting`` (-C) ``@irqs[key]`` counts
    ``entry``; else the time from ``entry`` to ``exit`` on each CPU is summed (or, with
    -d, a histogram) in ``@irqs[exit_key]``, microseconds (-N: nanoseconds).  When the key
    exists only at the entry (a handler's name), ``exit_key`` is None and the entry keeps
    it per CPU for the exit.  -c CPU is a predicate on both probes."""
    flt = "/cpu == %d/\n" % opts.cpu if opts.cpu is not None else ""
    if counting:
        return IRQ_COUNT % {"entry": entry, "filter": flt, "key": key}
    keep = ""
    if exit_key is None:
        keep, exit_key = "\n\t@key[cpu] = %s;" % key, "@key[cpu]"
    return IRQ_TIME % {"entry": entry, "exit": exit, "filter": flt, "keep": keep,
                       "exit_key": exit_key, "agg": "hist" if opts.dist else "sum",
                       "div": 1 if opts.nanoseconds else 1000}


def take_irqs(script, dist):
    """{key: total} or, with ``dist``, {key: BCC log2 slots} since the last call; then the
    map is reset.  Keys without counts are left out."""
    from tinytrace import toolkit
    if dist:
        return toolkit.take_log2(script, "@irqs")
    data = script.read("@irqs")
    script.clear("@irqs")
    return dict((k, v) for k, v in data.items() if v)


def report_irqs(opts, data, out, unit, section, width, text_name, json_name, json_list):
    """One interval of an interrupt tool: BCC's ``SECTION  TOTAL_unit`` table (``width``:
    the name column), smallest total first, or its histograms with -d, after an empty line
    and the time (-T).  ``text_name``/``json_name`` print a key; in JSON the interval
    record has ``hists`` (-d) or ``unit`` and ``json_list`` [{section, total}]."""
    from tinytrace import toolkit
    rows = [] if opts.dist else sorted(data.items(), key=lambda kv: (kv[1], kv[0]))
    if opts.json:
        from tinytrace.output import jsonl
        if opts.dist:
            from tinytrace.output import hist as H
            hists = [H.hist_json(data[k], unit, key={section: json_name(k)})
                     for k in sorted(data)]
            rec = jsonl.interval_record(time=toolkit.hhmmss(), hists=hists)
        else:
            rec = jsonl.interval_record(time=toolkit.hhmmss(), unit=unit, **{json_list: [
                {section: json_name(k), "total": v} for k, v in rows]})
        jsonl.write(rec, out)
        return
    out.write("\n")
    if opts.timestamp:
        out.write("%-8s\n" % toolkit.hhmmss())
    if opts.dist:
        from tinytrace.output import hist as H
        out.write(H.log2_sections_text(data, unit, section_header=section,
                                       section_fmt=text_name))
    else:
        out.write("%-*s %11s\n" % (width, section.upper(), "TOTAL_" + unit))
        for k, v in rows:
            out.write("%-*s %11d\n" % (width, text_name(k), v))
    out.flush()


# -- ext4 at the syscall level (ext4slower, ext4dist) ---------------------------------------

EXT4_APPROXIMATION = ("syscall-level approximation: reads, writes and opens timed at the "
                      "syscall on ext4 files, fsync at ext4_sync_file")
EXT4_APPROXIMATION_NO_EXT4_TP = ("syscall-level approximation: reads, writes, opens and "
                                 "fsyncs timed at the syscall on ext4 files")

EXT4_HELP_NOTE = """\
On this kernel without kprobes, reads, writes and opens are timed from the syscall
tracepoints (read/write families, open/openat/openat2/creat) on file descriptors of
regular ext4 files (superblock magic 0xEF53, found through the task's fd table), and
fsync exactly at the ext4_sync_file tracepoints.  mmap, io_uring, AIO and
sendfile/splice I/O are not seen.  BCC uses kprobes on ext4_file_read_iter,
ext4_file_write_iter, ext4_file_open and ext4_sync_file.
"""

# (syscall, type, offset expression): the calls timed at the syscall on an ext4 fd.
_EXT4_RW_CALLS = (
    ("read", "R", "$f->f_pos"),
    ("write", "W", "$f->f_pos"),
    ("readv", "R", "$f->f_pos"),
    ("writev", "W", "$f->f_pos"),
    ("pread64", "R", "args->pos"),
    ("pwrite64", "W", "args->pos"),
    ("preadv", "R", "%(posv)s"),
    ("pwritev", "W", "%(posv)s"),
    ("preadv2", "R", "%(posv)s"),      # -1: the file position (handled in the probe)
    ("pwritev2", "W", "%(posv)s"),
)
# without the ext4_sync_file tracepoints (ext4 not loaded yet): fsync at the syscall
_EXT4_SYNC_CALLS = (("fsync", "S", "0"), ("fdatasync", "S", "0"))
_EXT4_OPEN_CALLS = ("open", "openat", "openat2", "creat")
_EXT4_OP_OF_TYPE = {"R": 0, "W": 1, "S": 3}
EXT4_OPS = ("read", "write", "open", "fsync")           # op codes 0..3
EXT4_TYPE_OF_OP = {"read": "R", "write": "W", "open": "O", "fsync": "S"}

EXT4_SUPER_MAGIC = 0xEF53


class Ext4Calls(object):
    """The syscalls this kernel has tracepoints for, and their index in events."""

    def __init__(self):
        from tinytrace.kernel import tracefs
        from tinytrace.errors import KernelError

        def have(call):
            return (tracefs.exists("syscalls", "sys_enter_" + call)
                    and tracefs.exists("syscalls", "sys_exit_" + call))
        self.rw = [c for c in _EXT4_RW_CALLS if have(c[0])]
        self.open = [c for c in _EXT4_OPEN_CALLS if have(c)]
        if not self.rw:
            raise KernelError("no read/write syscall tracepoints on this kernel "
                              "(CONFIG_FTRACE_SYSCALLS is off?)")
        # fsync exactly at ext4_sync_file; where its tracepoints are missing (ext4 is a
        # module not loaded yet) at the fsync/fdatasync syscalls like the rest
        self.sync_tp = (tracefs.exists("ext4", "ext4_sync_file_enter")
                        and tracefs.exists("ext4", "ext4_sync_file_exit"))
        if not self.sync_tp:
            self.rw += [c for c in _EXT4_SYNC_CALLS if have(c[0])]
        self.approximation = (EXT4_APPROXIMATION if self.sync_tp
                              else EXT4_APPROXIMATION_NO_EXT4_TP)
        # index -> (syscall or None, op): what an event's call number means
        self.names = [(c[0], EXT4_OPS[_EXT4_OP_OF_TYPE[c[1]]]) for c in self.rw]
        self.names += [(c, "open") for c in self.open]
        if self.sync_tp:
            self.names.append((None, "fsync"))
        self.posv = "args->pos_l"
        if any(c[0].startswith("p") and c[0].endswith(("v", "v2")) for c in self.rw):
            try:
                fmt = tracefs.event_format("syscalls", "sys_enter_" + [
                    c[0] for c in self.rw if c[0].endswith(("v", "v2"))
                    and c[0].startswith("p")][0])
                sizes = dict((f.name, f.size) for f in fmt.fields)
                if sizes.get("pos_l") == 4:           # a 32-bit kernel: two halves
                    self.posv = "((args->pos_h << 32) | args->pos_l)"
            except Exception:
                pass


_EXT4_FILE = ("$f != 0 && $f->f_inode->i_sb->s_magic == %d && "
              "($f->f_inode->i_mode & 0xF000) == 0x8000" % EXT4_SUPER_MAGIC)

_EXT4_RW_ENTRY = r"""
tracepoint:syscalls:sys_enter_%(call)s
%(pred)s{
	$fdt = curtask->files->fdt;
	if (args->fd < $fdt->max_fds) {
		$f = $fdt->fd[args->fd];
		if (%(ext4)s) {
			$pos = (int64)%(pos)s;%(pos_fix)s
			@io[tid] = (nsecs, (uint64)$f, $pos, %(idx)d, %(op)d);
		}
	}
}
"""

_EXT4_RW_EXIT = r"""
%(probes)s
/@io[tid].0 != 0/
{
	$s = @io[tid];
	delete(@io[tid]);
	$lat = nsecs - $s.0;
	$op = $s.4;
	$idx = $s.3;
	$bytes = (int64)args->ret;
	$off = $s.2;
	$fp = $s.1;
%(emit)s
}
"""

_EXT4_OPEN_ENTRY = r"""
%(probe)s
%(pred)s{
	@open[tid] = (nsecs, %(idx)d);
}
"""

_EXT4_OPEN_EXIT = r"""
%(probes)s
/@open[tid].0 != 0/
{
	$s = @open[tid];
	delete(@open[tid]);
	$lat = nsecs - $s.0;
	$ret = (int64)args->ret;
	if ($ret >= 0%(open_min)s) {
		$fdt = curtask->files->fdt;
		if ($ret < $fdt->max_fds) {
			$f = $fdt->fd[$ret];
			if (%(ext4)s) {
				$op = 2;
				$idx = $s.1;
				$bytes = (int64)0;
				$off = (int64)0;
				$fp = (uint64)$f;
%(emit)s
			}
		}
	}
}
"""

_EXT4_SYNC = r"""
rawtracepoint:ext4_sync_file_enter
%(pred)s{
	@sync[tid] = (nsecs, arg0);
}

rawtracepoint:ext4_sync_file_exit
/@sync[tid].0 != 0/
{
	$s = @sync[tid];
	delete(@sync[tid]);
	$lat = nsecs - $s.0;
	$op = 3;
	$idx = %(idx)d;
	$bytes = (int64)(int32)arg1;
	$off = (int64)0;
	$fp = $s.1;
%(emit)s
}
"""


def ext4_probes_text(calls, pid, emit, open_min=""):
    """The script: every probe, with ``emit`` (statements using $lat (ns), $op (0 read,
    1 write, 2 open, 3 fsync), $idx (index in ``calls.names``), $bytes, $off and $fp (the
    struct file address)) run once per completed operation on an ext4 file.  ``open_min``
    is a condition added to the open exit's test (a latency threshold checked before the
    fd lookup)."""
    import os
    # never the tracer itself: its own output to an ext4 file would feed back
    pred = ("/pid == %d/\n" % pid) if pid else ("/pid != %d/\n" % os.getpid())
    parts = []
    for idx, (call, typ, pos) in enumerate(calls.rw):
        pos = pos % {"posv": calls.posv}
        fix = ""
        if call in ("preadv2", "pwritev2"):
            fix = "\n\t\t\tif ($pos == -1) {\n\t\t\t\t$pos = (int64)$f->f_pos;\n\t\t\t}"
        parts.append(_EXT4_RW_ENTRY % {"call": call, "pred": pred, "ext4": _EXT4_FILE,
                                       "pos": pos, "pos_fix": fix, "idx": idx,
                                       "op": _EXT4_OP_OF_TYPE[typ]})
    parts.append(_EXT4_RW_EXIT % {
        "probes": ",\n".join("tracepoint:syscalls:sys_exit_%s" % c[0] for c in calls.rw),
        "emit": emit})
    base = len(calls.rw)
    for i, call in enumerate(calls.open):
        parts.append(_EXT4_OPEN_ENTRY % {"probe": "tracepoint:syscalls:sys_enter_%s" % call,
                                         "pred": pred, "idx": base + i})
    if calls.open:
        parts.append(_EXT4_OPEN_EXIT % {
            "probes": ",\n".join("tracepoint:syscalls:sys_exit_%s" % c for c in calls.open),
            "ext4": _EXT4_FILE, "open_min": open_min, "emit": _ext4_indent(emit, 3)})
    if calls.sync_tp:
        parts.append(_EXT4_SYNC % {"pred": pred, "idx": len(calls.names) - 1, "emit": emit})
    return "".join(parts)


def _ext4_indent(text, n):
    return "\n".join(("\t" * n + line) if line.strip() else line
                     for line in text.splitlines())


def ext4_check_btf(tool):
    """The fd -> file -> superblock walk reads kernel structs: ``tool`` needs BTF."""
    from tinytrace import toolkit
    from tinytrace.errors import KernelError
    from tinytrace.kernel import btf
    if not toolkit.has_btf():
        raise KernelError("%s finds a file's file system through task_struct.files, which "
                          "needs the kernel's BTF (%s); this kernel has none "
                          "(CONFIG_DEBUG_INFO_BTF)" % (tool, btf.VMLINUX))


# -- stack samples --------------------------------------------------------------------------

def storage_size(text):
    """An argparse type: the number of entries of a map (1 to the language's limit)."""
    import argparse
    from tinytrace import toolkit
    from tinytrace.lang.config import MAX_MAP_KEYS
    value = toolkit.positive_int(text)
    if value > MAX_MAP_KEYS:
        raise argparse.ArgumentTypeError("at most %d, not %r" % (MAX_MAP_KEYS, text))
    return value


def add_stack_storage(parser):
    """BCC's ``--stack-storage-size`` (``opts.stack_storage_size``, None: the language's
    default, ``max_map_keys``): the stacks the one stack map holds, kernel and user."""
    from tinytrace.lang.config import DEFAULT_MAP_KEYS
    parser.add_argument("--stack-storage-size", type=storage_size, metavar="N",
                        help="the number of unique stack traces that can be stored and "
                        "displayed (default %d; BCC's is 16384)" % DEFAULT_MAP_KEYS)


def stack_config(opts, config=None):
    """The Script ``config`` of a stack tool's options (``--stack-storage-size``)."""
    config = dict(config or {})
    if getattr(opts, "stack_storage_size", None):
        config["stack_map_keys"] = opts.stack_storage_size
    return config


def _addrs(stack):
    """The addresses of a ``kstack(raw)``/``ustack(raw)`` value (hex strings); [] for a
    stack that was not taken (0)."""
    if not stack or isinstance(stack, int):
        return []
    return [int(a, 16) for a in stack]


class _Names(object):
    """BCC's frame names (symbol, no offset; "[unknown]"), cached per address."""

    def __init__(self):
        self._kernel = {}
        self._user = {}

    def kernel(self, addrs):
        from tinytrace.kernel import stacks
        missing = [a for a in addrs if a not in self._kernel]
        for a, f in zip(missing, stacks.kernel_frames(missing)):
            self._kernel[a] = f.bcc()
        return tuple(self._kernel[a] for a in addrs)

    def user(self, addrs, pid):
        from tinytrace.kernel import stacks
        missing = [a for a in addrs if (pid, a) not in self._user]
        for a, f in zip(missing, stacks.user_frames(missing, pid)):
            self._user[(pid, a)] = f.bcc()
        return tuple(self._user[(pid, a)] for a in addrs)


def sample_stacks(opts, script, announcement, name):
    """Run a stack tool (profile, offcputime): announce (on stderr with -f, so stdout holds
    only folded stacks), wait for the duration or Ctrl-C, and return the map ``name`` as
    (key, value) pairs (``Script.entries``), reporting skipped runs first."""
    import sys
    from tinytrace import toolkit
    with toolkit.Stopper() as stopper, script.start():
        if opts.folded:
            sys.stderr.write(announcement + "\n")
            sys.stderr.flush()
        else:
            toolkit.announce(opts, announcement)
        if opts.duration:
            stopper.sleep(opts.duration)
        else:
            while stopper.sleep(99999999):
                pass
        # entries, not read(): lost and absent stacks decode alike, and both counts count
        samples = script.entries(name)
        toolkit.report_skipped()
    return samples


def stack_rows(samples, split):
    """Symbolized rows of a map of stack samples (a dict, or (key, value) pairs),
    smallest value first.

    ``split(key)`` returns ``(ident, pid, kstack, ustack)`` for a map key (``ident``: the
    tuple of fields that name the row besides its stacks, e.g. (pid, comm); ``pid``: the
    process whose memory the user stack belongs to), or None to skip the key.  Keys whose
    stacks print the same (different offsets in the same functions) are merged.  Returns
    ``[(value, ident, kernel frames, user frames)]``, frames innermost first, ordered by
    value, then ident's first field, then frames."""
    names = _Names()
    merged = {}
    for key, value in (samples.items() if isinstance(samples, dict) else samples):
        if not value:
            continue
        parts = split(key)
        if parts is None:
            continue
        ident, pid, kstack, ustack = parts
        mk = (ident, names.kernel(_addrs(kstack)), names.user(_addrs(ustack), pid))
        merged[mk] = merged.get(mk, 0) + value
    rows = [(v, ident, list(k), list(u)) for (ident, k, u), v in merged.items()]
    rows.sort(key=lambda r: (r[0], r[1][0], r[2], r[3]))
    return rows


def print_stacks(opts, rows, out, comm_pid, json_fields, value_key, annotate=False):
    """BCC's multi-line or folded (``opts.folded``) output of ``stack_rows``, or one JSON
    object per row (``opts.json``).  ``comm_pid(ident)`` gives the (comm, id) of the
    ``-  comm (id)`` line; ``json_fields(ident)`` the leading JSON fields; ``value_key``
    names the value in JSON; ``annotate`` adds ``_[k]`` to kernel frames (profile -a).
    -U/-K (``user_stacks_only``/``kernel_stacks_only``) leave a stack out, and
    ``delimited`` puts BCC's delimiter between the two."""
    from tinytrace.output.escape import cstring
    ksuffix = "_[k]" if annotate else ""
    delimit = opts.delimited and not (opts.kernel_stacks_only or opts.user_stacks_only)
    if opts.json:
        from tinytrace.output import jsonl
        for value, ident, kframes, uframes in rows:
            rec = json_fields(ident)
            if not opts.user_stacks_only:
                rec["kernel_stack"] = [f + ksuffix for f in kframes]
            if not opts.kernel_stacks_only:
                rec["user_stack"] = uframes
            rec[value_key] = value
            jsonl.write(rec, out)
        return
    for value, ident, kframes, uframes in rows:
        comm, shown_id = comm_pid(ident)
        if opts.folded:
            line = [cstring(comm)]
            if not opts.kernel_stacks_only:
                line.extend(reversed(uframes))
            if not opts.user_stacks_only:
                if delimit and kframes and uframes:
                    line.append("-")
                line.extend(f + ksuffix for f in reversed(kframes))
            out.write("%s %d\n" % (";".join(line), value))
            continue
        text = []
        if not opts.user_stacks_only:
            text.extend("    %s%s" % (f, ksuffix) for f in kframes)
        if not opts.kernel_stacks_only:
            if delimit and kframes and uframes:
                text.append("    --")
            text.extend("    %s" % f for f in uframes)
        text.append("    %-16s %s (%d)" % ("-", cstring(comm), shown_id))
        text.append("        %d\n" % value)
        out.write("\n".join(text) + "\n")
    out.flush()
