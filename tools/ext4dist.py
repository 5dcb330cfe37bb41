"""ext4dist: ext4 read, write, open and fsync latency as histograms, one per operation, like
BCC's ext4dist -- a syscall-level approximation on kernels without kprobes.

The probes are ext4slower's (see its docstring; both take them from
``tinytrace.tooldata``): reads, writes and opens timed from entry to
exit of the syscalls on file descriptors of regular ext4 files (superblock magic 0xEF53,
found through the task's fd table with the kernel's BTF), fsync timed exactly at the
``ext4_sync_file_enter``/``ext4_sync_file_exit`` raw tracepoints.  BCC times the ext4
functions (kprobes on ext4_file_read_iter, ext4_file_write_iter, ext4_file_open,
ext4_sync_file); a future version will do that where kprobes exist.  Not seen at the
syscall level: mmap, io_uring, AIO, sendfile/splice.

Latencies go into a ``hist()`` keyed by the operation, in the kernel; Python prints each
interval's histograms in BCC's layout ("operation = read").
"""

SUMMARY = "ext4 read/write/open/fsync latency histograms (syscall level)"
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
    tinytrace ext4dist            # show operation latency as a histogram
    tinytrace ext4dist -p 181     # trace PID 181 only
    tinytrace ext4dist 1 10       # print 1 second summaries, 10 times
    tinytrace ext4dist -m 5       # 5s summaries, milliseconds
    tinytrace ext4dist --json 5 3 # three 5-second summaries as JSON lines
"""


def parse_args(argv):
    from tinytrace import toolkit
    from tinytrace.tooldata import EXT4_HELP_NOTE
    p = toolkit.ArgumentParser("ext4dist", "Summarize ext4 operation latency "
                               "(syscall-level approximation)\n\n" + EXT4_HELP_NOTE, EXAMPLES)
    p.add_argument("-T", "--notimestamp", action="store_true",
                   help="don't include timestamp on interval output")
    p.add_argument("-m", "--milliseconds", action="store_true", help="output in milliseconds")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    toolkit.add_json(p)
    p.add_argument("interval", nargs="?", type=toolkit.positive_int, default=None,
                   help="output interval, in seconds")
    p.add_argument("count", nargs="?", type=toolkit.positive_int, default=None,
                   help="number of outputs")
    return p.parse_args(argv)


_EMIT = "\t@dist[$op] = hist($lat / %d);"


def script_text(opts, calls):
    from tinytrace.tooldata import ext4_probes_text
    return ext4_probes_text(calls, opts.pid, _EMIT % (1000000 if opts.milliseconds else 1000))


class Ext4dist(object):
    def __init__(self, opts):
        from tinytrace.script import Script
        from tinytrace.tooldata import Ext4Calls
        self.opts = opts
        self.calls = Ext4Calls()
        self.script = Script(script_text(opts, self.calls), tool="ext4dist")

    def take(self):
        """{operation name: BCC log2 slots} since the last call; the map is reset."""
        from tinytrace.script import log2_slots
        from tinytrace.tooldata import EXT4_OPS
        dist = self.script.read("@dist")
        self.script.clear("@dist")
        out = {}
        for op, buckets in dist.items():
            slots = log2_slots(buckets)
            if slots and 0 <= op < len(EXT4_OPS):
                out[EXT4_OPS[op]] = slots
        return out


def report(opts, hists, out):
    from tinytrace import toolkit
    from tinytrace.output import hist as H
    unit = "msecs" if opts.milliseconds else "usecs"
    stamp = opts.interval is not None and not opts.notimestamp
    if opts.json:
        from tinytrace.output import jsonl
        recs = [H.hist_json(hists[op], unit, key={"operation": op}) for op in sorted(hists)]
        jsonl.write(jsonl.interval_record(time=toolkit.hhmmss(), hists=recs), out)
        return
    out.write("\n")
    if stamp:
        out.write("%s:\n" % toolkit.hhmmss())
    if hists:
        out.write(H.log2_sections_text(hists, unit, section_header="operation"))
    out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.tooldata import ext4_check_btf
    opts = parse_args(argv)
    toolkit.require_privileges()
    ext4_check_btf("ext4dist")
    tool = Ext4dist(opts)
    with toolkit.Stopper() as stopper, tool.script.start():
        toolkit.announce(opts, "Tracing ext4 operation latency (%s)... Hit Ctrl-C to end."
                         % tool.calls.approximation)
        interval = opts.interval if opts.interval is not None else 99999999

        def one_report(last):
            report(opts, tool.take(), sys.stdout)

        toolkit.intervals(interval, opts.count, one_report, stopper)
    return 0
