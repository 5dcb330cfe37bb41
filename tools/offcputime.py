"""offcputime: time threads spend blocked (off-CPU), summed by stack trace, like BCC's
offcputime.

``sched:sched_switch`` runs in the context of ``prev``, the thread leaving the CPU: the
script notes the time and takes prev's kernel and user stacks there (they show why it
blocks), keeping them under its thread ID.  When the thread is ``next`` again its off-CPU
time is added, in microseconds, to the total of that (thread, process, name, stacks) key --
all in the kernel.  At the end Python symbolizes the stacks and prints BCC's multi-line or
folded (``-f``) layout, smallest total first.

BCC hooks ``finish_task_switch`` with a kprobe and takes the stacks when the thread runs
again; the stacks are the same blocking path, seen here from ``__schedule`` down instead of
from ``finish_task_switch``.  A kprobe-based variant would only change that first frame.

Other differences: the idle tasks (PID 0) are left out; ``--state`` tests the state as the
tracepoint reports it (``prev_state``: 1 S, 2 D, 4 T, 8 t, 0x80 for TASK_IDLE, where BCC
sees 0x402; 0 means preempted while runnable); ``-u``/``-k`` read ``task_struct.flags``
through an offset from BTF (they need /sys/kernel/btf/vmlinux); stacks that could not be
stored (stack map of 4096 entries full, or a hash collision) print empty, not as
"[Missed ... Stack]", so ``--stack-storage-size`` is not offered; stacks that symbolize
the same are merged.  Start times and stacks of blocked threads live in hashes of 4096
entries: on a machine with more threads blocked at once, some blocks are missed.
"""

SUMMARY = "off-CPU (blocked) time summed by stack trace"
PROBES = ("tracepoint:sched:sched_switch",)
NEEDS = ()

EXAMPLES = """\
    tinytrace offcputime             # trace off-CPU stack time until Ctrl-C
    tinytrace offcputime 5           # trace for 5 seconds only
    tinytrace offcputime -f 5        # 5 seconds, and output in folded format
    tinytrace offcputime -m 1000     # trace only events that last more than 1000 usec
    tinytrace offcputime -M 10000    # trace only events that last less than 10000 usec
    tinytrace offcputime -p 185      # only trace threads for PID 185
    tinytrace offcputime -t 188      # only trace thread 188
    tinytrace offcputime -u          # only trace user threads (no kernel)
    tinytrace offcputime -k          # only trace kernel threads (no user)
    tinytrace offcputime -U          # only show user space stacks (no kernel)
    tinytrace offcputime -K          # only show kernel space stacks (no user)
    tinytrace offcputime --json 5    # one JSON object per stack after 5 seconds
"""

PF_KTHREAD = 0x00200000
U64_MAX = (1 << 64) - 1


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser(
        "offcputime", "Summarize off-CPU time by stack trace\n\n"
        "Uses tracepoint:sched:sched_switch: stacks are taken as a thread leaves the CPU\n"
        "(innermost frame __schedule), and --state tests the state that tracepoint\n"
        "reports (1 S, 2 D, 4 T, 8 t, 0x80 TASK_IDLE; 0 preempted).", EXAMPLES)
    t = p.add_mutually_exclusive_group()
    t.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    t.add_argument("-t", "--tid", type=toolkit.positive_int, help="trace this TID only")
    t.add_argument("-u", "--user-threads-only", action="store_true",
                   help="user threads only (no kernel threads)")
    t.add_argument("-k", "--kernel-threads-only", action="store_true",
                   help="kernel threads only (no user threads)")
    s = p.add_mutually_exclusive_group()
    s.add_argument("-U", "--user-stacks-only", action="store_true",
                   help="show stacks from user space only (no kernel space stacks)")
    s.add_argument("-K", "--kernel-stacks-only", action="store_true",
                   help="show stacks from kernel space only (no user space stacks)")
    p.add_argument("-d", "--delimited", action="store_true",
                   help="insert delimiter between kernel/user stacks")
    p.add_argument("-f", "--folded", action="store_true", help="output folded format")
    p.add_argument("-m", "--min-block-time", type=toolkit.nonneg_int, default=1,
                   help="the amount of time in microseconds over which we store traces "
                   "(default 1)")
    p.add_argument("-M", "--max-block-time", type=toolkit.nonneg_int, default=U64_MAX,
                   help="the amount of time in microseconds under which we store traces "
                   "(default U64_MAX)")
    p.add_argument("--state", type=toolkit.nonneg_int,
                   help="filter on this thread state bitmask (eg, 2 == TASK_UNINTERRUPTIBLE) "
                   "see include/linux/sched.h")
    toolkit.add_json(p)
    p.add_argument("duration", nargs="?", type=toolkit.positive_int, default=None,
                   help="duration of trace, in seconds")
    opts = p.parse_args(argv)
    if opts.json and opts.folded:
        p.error("argument --json: not allowed with -f/--folded")
    if opts.max_block_time > U64_MAX:
        p.error("argument -M/--max-block-time: at most %d" % U64_MAX)
    if opts.min_block_time > opts.max_block_time:
        p.error("argument -m/--min-block-time: larger than -M/--max-block-time")
    return opts


def flags_offset():
    """The byte offset of task_struct.flags, from the kernel's BTF (for -u/-k)."""
    from tinytrace.errors import KernelError
    from tinytrace.kernel import btf
    try:
        m = btf.vmlinux().member("task_struct", "flags")
    except KernelError as e:
        raise KernelError("-u/-k read task_struct.flags, which needs the kernel's BTF: %s" % e)
    if m is None:
        raise KernelError("-u/-k: no task_struct.flags in this kernel's BTF")
    return m.offset


# -- the script ---------------------------------------------------------------------------

SCRIPT = r"""
tracepoint:sched:sched_switch
{
	$now = nsecs;
	// prev blocks (or is preempted): note the time and why, in its own context
	if (%(filter)s) {
		@start[args->prev_pid] = $now;
		@why[args->prev_pid] = (args->prev_pid, pid, comm, %(kstack)s, %(ustack)s);
	}
	// next runs again: its off-CPU time goes to the stacks it left with
	$ts = @start[args->next_pid];
	if ($ts != 0) {
		delete(@start[args->next_pid]);
		if ($now >= $ts) {
			$us = ($now - $ts) / 1000;
			if ($us >= %(min)d%(max)s) {
				@off[@why[args->next_pid]] = sum($us);
			}
		}
		delete(@why[args->next_pid]);
	}
}
"""


def script_text(opts, flags_off=None):
    conds = ["args->prev_pid != 0"]
    if opts.pid:
        conds.append("pid == %d" % opts.pid)
    if opts.tid:
        conds.append("args->prev_pid == %d" % opts.tid)
    if opts.user_threads_only or opts.kernel_threads_only:
        kthread = "(*(uint32 *)((uint64)curtask + %d) & %d)" % (flags_off, PF_KTHREAD)
        conds.append(kthread + (" == 0" if opts.user_threads_only else " != 0"))
    if opts.state is not None:
        if opts.state == 0:
            conds.append("(args->prev_state & 0xff) == 0")
        else:
            conds.append("(args->prev_state & %d) != 0" % opts.state)
    return SCRIPT % {
        "filter": " && ".join(conds),
        "kstack": "0" if opts.user_stacks_only else "kstack(raw)",
        "ustack": "0" if opts.kernel_stacks_only else "ustack(raw)",
        "min": opts.min_block_time,
        "max": " && $us <= %d" % opts.max_block_time if opts.max_block_time < U64_MAX else "",
    }


def _addrs(stack):
    if not stack or isinstance(stack, int):
        return []
    return [int(a, 16) for a in stack]


class Symbolizer(object):
    """Frame names as BCC prints them: the symbol without offset, "[unknown]" otherwise."""

    def __init__(self):
        self._ksyms = None
        self._procs = {}

    def kernel(self, addr):
        from tinytrace.output.escape import escape
        if self._ksyms is None:
            from tinytrace.kernel import ksyms
            self._ksyms = ksyms.kallsyms()
        r = self._ksyms.resolve(addr)
        return escape(r[0]) if r is not None else "[unknown]"

    def user(self, addr, pid):
        from tinytrace.output.escape import escape
        syms = self._procs.get(pid)
        if syms is None:
            from tinytrace.kernel import usyms
            syms = self._procs[pid] = usyms.for_pid(pid)
        sym = syms.resolve(addr)
        return escape(sym.name) if sym.name is not None else "[unknown]"


def collect(off):
    """[(microseconds, tid, pid, comm, kernel frames, user frames)], smallest first, frames
    innermost first; keys whose stacks symbolize the same are merged."""
    sym = Symbolizer()
    merged = {}
    for key, us in off.items():
        # the map's key is one value, the tuple noted at the switch out
        while isinstance(key, tuple) and len(key) == 1:
            key = key[0]
        if not us or not isinstance(key, tuple) or len(key) != 5:
            continue
        tid, pid, comm, kstack, ustack = key
        k = tuple(sym.kernel(a) for a in _addrs(kstack))
        u = tuple(sym.user(a, pid) for a in _addrs(ustack))
        mk = (tid, pid, comm, k, u)
        merged[mk] = merged.get(mk, 0) + us
    rows = [(us, tid, pid, comm, list(k), list(u))
            for (tid, pid, comm, k, u), us in merged.items()]
    rows.sort(key=lambda r: (r[0], r[1], r[4], r[5]))
    return rows


def report(opts, rows, out):
    from tinytrace.output.escape import cstring
    delimit = opts.delimited and not (opts.kernel_stacks_only or opts.user_stacks_only)
    if opts.json:
        from tinytrace.output import jsonl
        for us, tid, pid, comm, kframes, uframes in rows:
            rec = {"tid": tid, "pid": pid, "comm": jsonl.text(comm)}
            if not opts.user_stacks_only:
                rec["kernel_stack"] = kframes
            if not opts.kernel_stacks_only:
                rec["user_stack"] = uframes
            rec["usecs"] = us
            jsonl.write(rec, out)
        return
    for us, tid, pid, comm, kframes, uframes in rows:
        if opts.folded:
            line = [cstring(comm)]
            if not opts.kernel_stacks_only:
                line.extend(reversed(uframes))
            if not opts.user_stacks_only:
                if delimit and kframes and uframes:
                    line.append("-")
                line.extend(reversed(kframes))
            out.write("%s %d\n" % (";".join(line), us))
            continue
        text = []
        if not opts.user_stacks_only:
            text.extend("    %s" % f for f in kframes)
        if not opts.kernel_stacks_only:
            if delimit and kframes and uframes:
                text.append("    --")
            text.extend("    %s" % f for f in uframes)
        text.append("    %-16s %s (%d)" % ("-", cstring(comm), tid))
        text.append("        %d\n" % us)
        out.write("\n".join(text) + "\n")
    out.flush()


def announcement(opts):
    if opts.pid:
        who = "PID %d" % opts.pid
    elif opts.tid:
        who = "TID %d" % opts.tid
    elif opts.user_threads_only:
        who = "user threads"
    elif opts.kernel_threads_only:
        who = "kernel threads"
    else:
        who = "all threads"
    stacks = "user" if opts.user_stacks_only else "kernel" if opts.kernel_stacks_only \
        else "user + kernel"
    text = "Tracing off-CPU time (us) of %s by %s stack" % (who, stacks)
    if opts.duration:
        return text + " for %d secs." % opts.duration
    return text + "... Hit Ctrl-C to end."


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    flags_off = None
    if opts.user_threads_only or opts.kernel_threads_only:
        flags_off = flags_offset()
    script = Script(script_text(opts, flags_off), tool="offcputime")
    with toolkit.Stopper() as stopper, script.start():
        if opts.folded:
            sys.stderr.write(announcement(opts) + "\n")
            sys.stderr.flush()
        else:
            toolkit.announce(opts, announcement(opts))
        if opts.duration:
            stopper.sleep(opts.duration)
        else:
            while stopper.sleep(99999999):
                pass
        off = script.read("@off")
    report(opts, collect(off), sys.stdout)
    return 0
