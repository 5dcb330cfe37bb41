"""runqlen: scheduler run-queue length, sampled, as a linear histogram, like BCC's runqlen.

A cpu-clock perf event at 99 Hz on every CPU (``profile:hz:99``) reads the current task's
CFS run queue, ``curtask->se.cfs_rq``, and its number of queued entities, less one for the
running task: 0 means nothing waits.  Samples are counted in the kernel by length (and CPU,
for ``-C`` and ``-O``); Python prints BCC's linear histograms or the occupancy (share of
samples with a waiting task).

The field is ``cfs_rq.nr_queued`` since Linux 6.14 and ``nr_running`` before: the script
reads ``curtask->se.cfs_rq->FIELD`` through the kernel's BTF (/sys/kernel/btf/vmlinux),
and the tool picks the name this kernel's BTF has when it starts, so one tool fits every
kernel.  As in BCC, the queue is the one of the current task's scheduling group
(its cgroup's queue with group scheduling, not the CPU's whole run queue), and only CFS
tasks are counted (not real-time ones).
"""

SUMMARY = "run-queue length, sampled, as a histogram"
PROBES = ("profile:hz:99",)
NEEDS = ("btf",)

FREQUENCY = 99

EXAMPLES = """\
    tinytrace runqlen            # summarize run queue length as a histogram
    tinytrace runqlen 1 10       # print 1 second summaries, 10 times
    tinytrace runqlen -T 1       # 1s summaries and timestamps
    tinytrace runqlen -O         # report run queue occupancy
    tinytrace runqlen -C         # show each CPU separately
    tinytrace runqlen --json 1 5 # five 1-second histograms as JSON lines
"""


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("runqlen", "Summarize scheduler run queue length as a histogram",
                               EXAMPLES)
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-O", "--runqocc", action="store_true", help="report run queue occupancy")
    p.add_argument("-C", "--cpus", action="store_true",
                   help="print output for each CPU separately")
    toolkit.add_json(p)
    toolkit.add_interval_options(p)
    return p.parse_args(argv)


def queue_field():
    """The name of the queued-entities count in ``struct cfs_rq`` on this kernel
    (``nr_queued``, 6.14+, or ``nr_running``), from its BTF.  Raises KernelError (one line)
    without BTF, or when neither is there."""
    from tinytrace import toolkit
    from tinytrace.errors import KernelError
    from tinytrace.kernel import btf
    if not toolkit.has_btf():
        raise KernelError("runqlen reads task_struct.se.cfs_rq, which needs the kernel's BTF "
                          "(%s); this kernel has none (CONFIG_DEBUG_INFO_BTF)" % btf.VMLINUX)
    b = btf.vmlinux()
    if b.member("task_struct", "se.cfs_rq") is None:
        raise KernelError("runqlen: no task_struct.se.cfs_rq in this kernel's BTF "
                          "(CONFIG_FAIR_GROUP_SCHED off?)")
    for name in ("nr_queued", "nr_running"):
        m = b.member("cfs_rq", name)
        if m is not None and m.size == 4 and not m.is_bitfield:
            return name
    raise KernelError("runqlen: struct cfs_rq has neither nr_queued nor nr_running "
                      "in this kernel's BTF")


SCRIPT = r"""
profile:hz:%(freq)d
{
	$len = (uint64)curtask->se.cfs_rq->%(field)s;
	// less the running task: 0 is an empty queue (or an idle CPU)
	if ($len > 0) {
		$len = $len - 1;
	}
	@len[%(key)s] = count();
}
"""


def script_text(opts, field):
    return SCRIPT % {"freq": FREQUENCY, "field": field,
                     "key": "cpu, $len" if (opts.cpus or opts.runqocc) else "$len"}


class Runqlen(object):
    def __init__(self, opts):
        from tinytrace.script import Script
        self.opts = opts
        self.script = Script(script_text(opts, queue_field()), tool="runqlen")

    def take(self):
        """{cpu: {len: samples}} (cpu None without -C/-O) since the last call; then reset."""
        counts = self.script.read("@len")
        self.script.clear("@len")
        out = {}
        for key, n in counts.items():
            if not n:
                continue
            cpu, length = key if isinstance(key, tuple) else (None, key)
            slots = out.setdefault(cpu, {})
            slots[length] = slots.get(length, 0) + n
        return out


def occupancy(slots):
    """The share (0..1) of samples with a task waiting; 0 without samples."""
    total = sum(slots.values())
    return float(total - slots.get(0, 0)) / total if total else 0.0


def report(opts, data, out):
    from tinytrace import toolkit
    from tinytrace.output import hist as H
    if opts.json:
        from tinytrace.output import jsonl
        if opts.runqocc:
            if opts.cpus:
                occ = [{"cpu": c, "runqocc": round(100 * occupancy(data.get(c, {})), 2)}
                       for c in range(max(data) + 1 if data else 0)]
            else:
                merged = _merge(data)
                occ = round(100 * occupancy(merged), 2)
            rec = jsonl.interval_record(time=toolkit.hhmmss(), runqocc=occ)
        elif opts.cpus:
            hists = [H.hist_json(data[c], "runqlen", scale="linear", key={"cpu": c})
                     for c in sorted(data)]
            rec = jsonl.interval_record(time=toolkit.hhmmss(), hists=hists)
        else:
            rec = jsonl.interval_record(time=toolkit.hhmmss(), hists=[
                H.hist_json(data.get(None, {}), "runqlen", scale="linear")])
        jsonl.write(rec, out)
        return
    out.write("\n")
    if opts.timestamp:
        out.write("%-8s\n" % toolkit.hhmmss())
    if opts.runqocc:
        if opts.cpus:
            for c in range(max(data) + 1 if data else 0):
                out.write("runqocc, CPU %-3d %6.2f%%\n" % (c, 100 * occupancy(data.get(c, {}))))
        else:
            out.write("runqocc: %0.2f%%\n" % (100 * occupancy(_merge(data))))
    elif opts.cpus:
        out.write(H.linear_sections_text(data, "runqlen", section_header="cpu"))
    else:
        out.write(H.linear_hist_text(data.get(None, {}), "runqlen"))
    out.flush()


def _merge(data):
    merged = {}
    for slots in data.values():
        for k, n in slots.items():
            merged[k] = merged.get(k, 0) + n
    return merged


def main(argv):
    import sys
    from tinytrace import toolkit
    opts = parse_args(argv)
    toolkit.require_privileges()
    rq = Runqlen(opts)
    with toolkit.Stopper() as stopper, rq.script.start():
        toolkit.announce(opts, "Sampling run queue length... Hit Ctrl-C to end.")
        interval = opts.interval if opts.interval is not None else 99999999

        def one_report(last):
            report(opts, rq.take(), sys.stdout)

        toolkit.intervals(interval, opts.count, one_report, stopper)
    return 0
