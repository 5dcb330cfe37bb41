"""ext4slower: ext4 reads, writes, opens and fsyncs slower than a threshold, one line each,
like BCC's ext4slower -- a syscall-level approximation on kernels without kprobes.

BCC times the ext4 functions themselves (kprobes and kretprobes on ext4_file_read_iter,
ext4_file_write_iter, ext4_file_open and ext4_sync_file).  Without kprobes this version
times what it can see from tracepoints:

- R / W: the read(2) family (read, readv, pread64, preadv, preadv2) and the write(2) family
  (write, writev, pwrite64, pwritev, pwritev2), entry to exit of the syscall, on file
  descriptors that name a regular file on an ext4 superblock.  At entry the descriptor is
  looked up as the kernel does (``current->files->fdt->fd[fd]``) and the file's
  ``f_inode->i_sb->s_magic`` must be EXT4_SUPER_MAGIC (0xEF53; ext2 and ext3 mounted by the
  ext4 driver share it, as they share BCC's ext4_file_operations) and ``i_mode`` a regular
  file.  OFF_KB is the offset argument of the positioned calls, else the file position at
  entry.
- O: open, openat, openat2 and creat, entry to exit; the new descriptor is looked up at
  exit and kept if it is a regular ext4 file.  This includes the path lookup, which BCC's
  ext4_file_open does not.  BYTES is 0, as in BCC.
- S: fsync is exact: ``ext4_sync_file`` has its own tracepoints (raw tracepoints
  ``ext4_sync_file_enter``/``ext4_sync_file_exit``, whose first argument is the file),
  so fsync, fdatasync, msync(MS_SYNC) and O_SYNC writes are timed in ext4 as BCC times them.

What the syscall level misses: I/O that does not pass through these syscalls (mmap page
faults, io_uring, AIO, sendfile/splice/copy_file_range, kernel-internal reads such as exec);
what it adds: time in the syscall layer around ext4 (fd lookup, locking, copy setup), which
is small next to any latency worth a threshold.  The file name is the dentry's name, as in
BCC.  On a kernel with kprobes a future version will attach BCC's ext4 functions instead.

The kernel side is a script in tinytrace's language: entry probes keep (start, file,
offset, call) by thread ID, exit probes compute the latency and send only the slow ones.
"""

SUMMARY = "ext4 reads, writes, opens and fsyncs slower than a threshold (syscall level)"
PROBES = ("tracepoint:syscalls:sys_enter_read", "tracepoint:syscalls:sys_exit_read",
          "tracepoint:syscalls:sys_enter_write", "tracepoint:syscalls:sys_exit_write",
          "tracepoint:syscalls:sys_enter_readv", "tracepoint:syscalls:sys_exit_readv",
          "tracepoint:syscalls:sys_enter_writev", "tracepoint:syscalls:sys_exit_writev",
          "tracepoint:syscalls:sys_enter_pread64", "tracepoint:syscalls:sys_exit_pread64",
          "tracepoint:syscalls:sys_enter_pwrite64", "tracepoint:syscalls:sys_exit_pwrite64",
          "tracepoint:syscalls:sys_enter_preadv", "tracepoint:syscalls:sys_exit_preadv",
          "tracepoint:syscalls:sys_enter_pwritev", "tracepoint:syscalls:sys_exit_pwritev",
          "tracepoint:syscalls:sys_enter_preadv2", "tracepoint:syscalls:sys_exit_preadv2",
          "tracepoint:syscalls:sys_enter_pwritev2", "tracepoint:syscalls:sys_exit_pwritev2",
          "tracepoint:syscalls:sys_enter_open", "tracepoint:syscalls:sys_exit_open",
          "tracepoint:syscalls:sys_enter_openat", "tracepoint:syscalls:sys_exit_openat",
          "tracepoint:syscalls:sys_enter_openat2", "tracepoint:syscalls:sys_exit_openat2",
          "tracepoint:syscalls:sys_enter_creat", "tracepoint:syscalls:sys_exit_creat",
          "rawtracepoint:ext4_sync_file_enter", "rawtracepoint:ext4_sync_file_exit")
NEEDS = ("btf",)

APPROXIMATION = ("syscall-level approximation: reads, writes and opens timed at the "
                 "syscall on ext4 files, fsync at ext4_sync_file")
APPROXIMATION_NO_EXT4_TP = ("syscall-level approximation: reads, writes, opens and fsyncs "
                            "timed at the syscall on ext4 files")

HELP_NOTE = """\
On this kernel without kprobes, reads, writes and opens are timed from the syscall
tracepoints (read/write families, open/openat/openat2/creat) on file descriptors of
regular ext4 files (superblock magic 0xEF53, found through the task's fd table), and
fsync exactly at the ext4_sync_file tracepoints.  mmap, io_uring, AIO and
sendfile/splice I/O are not seen.  BCC uses kprobes on ext4_file_read_iter,
ext4_file_write_iter, ext4_file_open and ext4_sync_file.
"""

EXAMPLES = """\
    tinytrace ext4slower             # trace operations slower than 10 ms (default)
    tinytrace ext4slower 1           # trace operations slower than 1 ms
    tinytrace ext4slower -j 1        # ... 1 ms, parsable output (csv)
    tinytrace ext4slower 0           # trace all operations (warning: verbose)
    tinytrace ext4slower -p 185      # trace PID 185 only
    tinytrace ext4slower --json 5    # one JSON object per operation slower than 5 ms
"""

# (syscall, type, offset expression): the calls timed at the syscall on an ext4 fd.
RW_CALLS = (
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
SYNC_CALLS = (("fsync", "S", "0"), ("fdatasync", "S", "0"))
OPEN_CALLS = ("open", "openat", "openat2", "creat")
OP_OF_TYPE = {"R": 0, "W": 1, "S": 3}
OPS = ("read", "write", "open", "fsync")           # op codes 0..3
TYPE_OF_OP = {"read": "R", "write": "W", "open": "O", "fsync": "S"}

EXT4_SUPER_MAGIC = 0xEF53


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("ext4slower",
                               "Trace common ext4 file operations slower than a threshold "
                               "(syscall-level approximation)\n\n" + HELP_NOTE, EXAMPLES)
    p.add_argument("-j", "--csv", action="store_true",
                   help="just print fields: comma-separated values")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    toolkit.add_json(p)
    p.add_argument("min_ms", nargs="?", type=toolkit.nonneg_int, default=10,
                   help="minimum I/O duration to trace, in ms (default 10)")
    opts = p.parse_args(argv)
    if opts.csv and opts.json:
        p.error("-j/--csv and --json cannot be combined")
    return opts


# -- the probes (shared with ext4dist) ------------------------------------------------------

class Calls(object):
    """The syscalls this kernel has tracepoints for, and their index in events."""

    def __init__(self):
        from tinytrace.kernel import tracefs
        from tinytrace.errors import KernelError

        def have(call):
            return (tracefs.exists("syscalls", "sys_enter_" + call)
                    and tracefs.exists("syscalls", "sys_exit_" + call))
        self.rw = [c for c in RW_CALLS if have(c[0])]
        self.open = [c for c in OPEN_CALLS if have(c)]
        if not self.rw:
            raise KernelError("no read/write syscall tracepoints on this kernel "
                              "(CONFIG_FTRACE_SYSCALLS is off?)")
        # fsync exactly at ext4_sync_file; where its tracepoints are missing (ext4 is a
        # module not loaded yet) at the fsync/fdatasync syscalls like the rest
        self.sync_tp = (tracefs.exists("ext4", "ext4_sync_file_enter")
                        and tracefs.exists("ext4", "ext4_sync_file_exit"))
        if not self.sync_tp:
            self.rw += [c for c in SYNC_CALLS if have(c[0])]
        self.approximation = APPROXIMATION if self.sync_tp else APPROXIMATION_NO_EXT4_TP
        # index -> (syscall or None, op): what an event's call number means
        self.names = [(c[0], OPS[OP_OF_TYPE[c[1]]]) for c in self.rw]
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

_RW_ENTRY = r"""
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

_RW_EXIT = r"""
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

_OPEN_ENTRY = r"""
%(probe)s
%(pred)s{
	@open[tid] = (nsecs, %(idx)d);
}
"""

_OPEN_EXIT = r"""
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

_SYNC = r"""
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


def probes_text(calls, pid, emit, open_min=""):
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
        parts.append(_RW_ENTRY % {"call": call, "pred": pred, "ext4": _EXT4_FILE,
                                  "pos": pos, "pos_fix": fix, "idx": idx,
                                  "op": OP_OF_TYPE[typ]})
    parts.append(_RW_EXIT % {
        "probes": ",\n".join("tracepoint:syscalls:sys_exit_%s" % c[0] for c in calls.rw),
        "emit": emit})
    base = len(calls.rw)
    for i, call in enumerate(calls.open):
        parts.append(_OPEN_ENTRY % {"probe": "tracepoint:syscalls:sys_enter_%s" % call,
                                    "pred": pred, "idx": base + i})
    if calls.open:
        parts.append(_OPEN_EXIT % {
            "probes": ",\n".join("tracepoint:syscalls:sys_exit_%s" % c for c in calls.open),
            "ext4": _EXT4_FILE, "open_min": open_min, "emit": _indent(emit, 3)})
    if calls.sync_tp:
        parts.append(_SYNC % {"pred": pred, "idx": len(calls.names) - 1, "emit": emit})
    return "".join(parts)


def _indent(text, n):
    return "\n".join(("\t" * n + line) if line.strip() else line
                     for line in text.splitlines())


# -- ext4slower itself ----------------------------------------------------------------------

_EMIT = r"""	if ($lat > %(min_ns)d) {
		$file = (struct file *)$fp;
		printf("%%llu %%u %%u %%d %%lld %%lld %%llu %%s %%s\n", nsecs, pid, tid, $idx, $bytes,
		       $off, $lat, comm, str($file->f_path.dentry->d_name.name));
	}"""


def script_text(opts, calls):
    min_ns = opts.min_ms * 1000000
    return probes_text(calls, opts.pid, _EMIT % {"min_ns": min_ns},
                       open_min=" && $lat > %d" % min_ns)


class Printer(object):
    def __init__(self, opts, calls, out):
        self.opts = opts
        self.calls = calls
        self.out = out

    def header(self):
        if self.opts.json:
            return
        if self.opts.csv:
            self.out.write("ENDTIME_us,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE\n")
        else:
            self.out.write("%-8s %-14s %-6s %1s %-7s %-8s %7s %s\n" % (
                "TIME", "COMM", "PID", "T", "BYTES", "OFF_KB", "LAT(ms)", "FILENAME"))
        self.out.flush()

    def event(self, values, index):
        from tinytrace.output.escape import escape
        ts, pid, tid, idx, nbytes, off, lat, comm, name = values
        syscall, op = self.calls.names[idx]
        typ = TYPE_OF_OP[op]
        if self.opts.json:
            from tinytrace import toolkit
            from tinytrace.output import jsonl
            jsonl.write({"time": toolkit.hhmmss(), "ts_us": ts // 1000, "comm": jsonl.text(comm),
                         "pid": pid, "tid": tid, "type": typ, "op": op, "syscall": syscall,
                         "bytes": nbytes, "offset": off, "latency_us": round(lat / 1e3, 3),
                         "file": jsonl.text(name)}, self.out)
            return
        if self.opts.csv:
            self.out.write("%d,%s,%d,%s,%d,%d,%d,%s\n" % (
                ts // 1000, escape(comm).replace(",", "\\x2c"), pid, typ, nbytes, off,
                lat // 1000, escape(name).replace(",", "\\x2c")))
        else:
            import time
            self.out.write("%-8s %-14.14s %-6s %1s %-7s %-8d %7.2f %s\n" % (
                time.strftime("%H:%M:%S"), escape(comm), pid, typ, nbytes, off // 1024,
                lat / 1e6, escape(name)))
        self.out.flush()


def _check_btf(tool):
    from tinytrace import toolkit
    from tinytrace.errors import KernelError
    from tinytrace.kernel import btf
    if not toolkit.has_btf():
        raise KernelError("%s finds a file's file system through task_struct.files, which "
                          "needs the kernel's BTF (%s); this kernel has none "
                          "(CONFIG_DEBUG_INFO_BTF)" % (tool, btf.VMLINUX))


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    _check_btf("ext4slower")
    calls = Calls()
    printer = Printer(opts, calls, sys.stdout)
    script = Script(script_text(opts, calls), tool="ext4slower")
    script.on_printf(printer.event)
    lost = toolkit.LostReporter()
    script.on_lost(lost.report)
    with toolkit.Stopper() as stopper, script.start():
        if not opts.csv:
            what = ("Tracing ext4 operations" if opts.min_ms == 0 else
                    "Tracing ext4 operations slower than %d ms" % opts.min_ms)
            toolkit.announce(opts, "%s (%s)... Hit Ctrl-C to end." % (what,
                                                                          calls.approximation))
        printer.header()
        script.follow(stopper)
    return 0
