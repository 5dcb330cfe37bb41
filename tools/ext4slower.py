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
The probes are shared with ext4dist and live in ``tinytrace.tooldata`` (``Ext4Calls``,
``ext4_probes_text``); this module adds the threshold and the printed line.
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

EXAMPLES = """\
    tinytrace ext4slower             # trace operations slower than 10 ms (default)
    tinytrace ext4slower 1           # trace operations slower than 1 ms
    tinytrace ext4slower -j 1        # ... 1 ms, parsable output (csv)
    tinytrace ext4slower 0           # trace all operations (warning: verbose)
    tinytrace ext4slower -p 185      # trace PID 185 only
    tinytrace ext4slower --json 5    # one JSON object per operation slower than 5 ms
"""


def parse_args(argv):
    from tinytrace import toolkit
    from tinytrace.tooldata import EXT4_HELP_NOTE
    p = toolkit.ArgumentParser("ext4slower",
                               "Trace common ext4 file operations slower than a threshold "
                               "(syscall-level approximation)\n\n" + EXT4_HELP_NOTE, EXAMPLES)
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


_EMIT = r"""	if ($lat > %(min_ns)d) {
		$file = (struct file *)$fp;
		printf("%%llu %%u %%u %%d %%lld %%lld %%llu %%s %%s\n", nsecs, pid, tid, $idx, $bytes,
		       $off, $lat, comm, str($file->f_path.dentry->d_name.name));
	}"""


def script_text(opts, calls):
    from tinytrace.tooldata import ext4_probes_text
    min_ns = opts.min_ms * 1000000
    return ext4_probes_text(calls, opts.pid, _EMIT % {"min_ns": min_ns},
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
        from tinytrace.tooldata import EXT4_TYPE_OF_OP
        ts, pid, tid, idx, nbytes, off, lat, comm, name = values
        syscall, op = self.calls.names[idx]
        typ = EXT4_TYPE_OF_OP[op]
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


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    from tinytrace.tooldata import Ext4Calls, ext4_check_btf
    opts = parse_args(argv)
    toolkit.require_privileges()
    ext4_check_btf("ext4slower")
    calls = Ext4Calls()
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
