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
sees 0x402; 0 means preempted while runnable); ``-u``/``-k`` read ``curtask->flags``
through the kernel's BTF (they need /sys/kernel/btf/vmlinux); stacks that could not be
stored (stack map full, or a hash collision) print empty, not as "[Missed ... Stack]";
stacks that symbolize the same are merged.  The stack map (kernel and user stacks share it)
holds ``--stack-storage-size`` stacks: 4096 unless asked (BCC's default is 16384; each
entry preallocates about 1 KiB of kernel memory, which counts on a small board).  Start
times and stacks of blocked threads live in hashes of 4096 entries: on a machine with more
threads blocked at once, some blocks are missed.
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
    tinytrace offcputime --stack-storage-size 16384  # room for 16384 stacks (BCC's size)
    tinytrace offcputime --json 5    # one JSON object per stack after 5 seconds
"""

PF_KTHREAD = 0x00200000
U64_MAX = (1 << 64) - 1


def parse_args(argv):
    from tinytrace import toolkit
    from tinytrace.tooldata import add_stack_storage
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
    add_stack_storage(p)
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


def check_btf():
    """-u/-k read ``task_struct.flags``: that needs the kernel's BTF."""
    from tinytrace import toolkit
    if not toolkit.has_btf():
        from tinytrace.errors import KernelError
        from tinytrace.kernel import btf
        raise KernelError("-u/-k read task_struct.flags, which needs the kernel's BTF (%s); "
                          "this kernel has none (CONFIG_DEBUG_INFO_BTF)" % btf.VMLINUX)


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


def script_text(opts):
    conds = ["args->prev_pid != 0"]
    if opts.pid:
        conds.append("pid == %d" % opts.pid)
    if opts.tid:
        conds.append("args->prev_pid == %d" % opts.tid)
    if opts.user_threads_only or opts.kernel_threads_only:
        kthread = "(curtask->flags & %d)" % PF_KTHREAD
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


def _split(key):
    """(ident, pid, kstack, ustack) of an @off key: the tuple noted at the switch out."""
    # the map's key is one value, the tuple noted at the switch out
    while isinstance(key, tuple) and len(key) == 1:
        key = key[0]
    if not isinstance(key, tuple) or len(key) != 5:
        return None
    tid, pid, comm, kstack, ustack = key
    return (tid, pid, comm), pid, kstack, ustack


def collect(off):
    """[(microseconds, (tid, pid, comm), kernel frames, user frames)], smallest first,
    frames innermost first; keys whose stacks symbolize the same are merged."""
    from tinytrace.tooldata import stack_rows
    return stack_rows(off, _split)


def report(opts, rows, out):
    from tinytrace.tooldata import print_stacks
    print_stacks(opts, rows, out, comm_pid=lambda ident: (ident[2], ident[0]),
                 json_fields=_json_ident, value_key="usecs")


def _json_ident(ident):
    from tinytrace.output import jsonl
    return {"tid": ident[0], "pid": ident[1], "comm": jsonl.text(ident[2])}


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
    from tinytrace.tooldata import sample_stacks, stack_config
    opts = parse_args(argv)
    toolkit.require_privileges()
    if opts.user_threads_only or opts.kernel_threads_only:
        check_btf()
    script = Script(script_text(opts), tool="offcputime", config=stack_config(opts))
    off = sample_stacks(opts, script, announcement(opts), "@off")
    report(opts, collect(off), sys.stdout)
    return 0
