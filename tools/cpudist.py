"""cpudist: on-CPU (or, with -O, off-CPU) time per task as a histogram, like BCC's cpudist.

One tracepoint does it all: ``sched:sched_switch`` fires on the CPU that switches, in the
context of ``prev`` (the task leaving), and names ``next`` (the task arriving).

- on-CPU time: ``next`` starts running now (its start time is stored under its thread ID);
  when it later leaves the CPU as ``prev``, now minus that start is one on-CPU spell;
- off-CPU time (``-O``): the roles swap -- ``prev`` leaves now, and when it is ``next`` again
  the gap is one off-CPU spell.

Spells go into a ``hist()`` in the kernel (per-CPU, so no update is lost), keyed by process
(``-P``) or thread (``-L``); ``-e`` adds a ``stats()`` for the average, total and count.
Idle (PID 0) is left out unless ``-I``; the idle tasks of all CPUs share PID 0, so their
start times are kept per CPU.

On this tracepoint only the thread ID of ``next`` is known, while ``prev`` is the current
task, so its process ID is the ``pid`` builtin:

- on-CPU: the filter (``-p``) and the process key (``-P``) apply when the spell ends, in
  ``prev``'s context -- exact;
- off-CPU: the spell starts in ``prev``'s context, so the filter applies there, and with
  ``-P`` the process ID is stored beside the start time.

BCC's cpudist hooks ``finish_task_switch`` with a kprobe (libbpf-tools use ``tp_btf`` /
raw tracepoints of sched_switch with the task_struct pointers); neither is needed here.
Start times live in a hash of 4096 entries: with -O on a machine with more sleeping threads
than that, spells of threads beyond it are missed.
"""

SUMMARY = "on-CPU (or off-CPU) time per task as a histogram"
PROBES = ("tracepoint:sched:sched_switch",)
NEEDS = ()

EXAMPLES = """\
    tinytrace cpudist              # summarize on-CPU time as a histogram
    tinytrace cpudist -O           # summarize off-CPU time as a histogram
    tinytrace cpudist 1 10         # print 1 second summaries, 10 times
    tinytrace cpudist -mT 1        # 1s summaries, milliseconds, and timestamps
    tinytrace cpudist -P           # show each PID separately
    tinytrace cpudist -p 185       # trace PID 185 only
    tinytrace cpudist -I           # include CPU idle time
    tinytrace cpudist -e           # show extension summary (average/total/count)
    tinytrace cpudist --json 1 5   # five 1-second histograms as JSON lines
"""


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("cpudist",
                               "Summarize on- and off-CPU time per task as a histogram.",
                               EXAMPLES)
    p.add_argument("-O", "--offcpu", action="store_true", help="measure off-CPU time")
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-m", "--milliseconds", action="store_true", help="millisecond histogram")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-P", "--pids", action="store_true", help="print a histogram per process ID")
    g.add_argument("-L", "--tids", action="store_true", help="print a histogram per thread ID")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    p.add_argument("-I", "--include-idle", action="store_true", help="include CPU idle time")
    p.add_argument("-e", "--extension", action="store_true",
                   help="show extension summary (average/total/count)")
    toolkit.add_json(p)
    toolkit.add_interval_options(p)
    return p.parse_args(argv)


# -- the script ---------------------------------------------------------------------------

# The idle tasks of all CPUs are PID 0: with -I their start times are kept per CPU, under
# keys above any thread ID.
IDLE_BASE = 0x100000000

SCRIPT = r"""
tracepoint:sched:sched_switch
{
	$now = nsecs;
%(keys)s	// the task leaving this CPU
	if (%(prev_cond)s) {
%(prev_body)s
	}
	// the task arriving on it
	if (%(next_cond)s) {
%(next_body)s
	}
}
"""

# One spell ends: its length goes into the histogram (and the stats with -e).
_RECORD = """\
		$ts = @start[%(key)s];
		if ($ts != 0) {
			delete(@start[%(key)s]);
			if ($now >= $ts%(filter)s) {
				$d = ($now - $ts) / %(div)d;
				@dist%(hkey)s = hist($d);%(ext)s
			}
		}"""


def script_text(opts):
    """The script for these options: on- or off-CPU roles, filter, key, unit, idle."""
    idle = opts.include_idle
    if idle:
        keys = ("\t$pk = (uint64)args->prev_pid;\n"
                "\tif ($pk == 0) { $pk = %d + cpu; }\n"
                "\t$nk = (uint64)args->next_pid;\n"
                "\tif ($nk == 0) { $nk = %d + cpu; }\n") % (IDLE_BASE, IDLE_BASE)
        prev_key, next_key = "$pk", "$nk"
    else:
        keys = ""
        prev_key, next_key = "args->prev_pid", "args->next_pid"
    # prev is the current task: its process ID is the pid builtin.
    prev_cond = [] if idle else ["args->prev_pid != 0"]
    next_cond = [] if idle else ["args->next_pid != 0"]
    # -p: prev is the current task, so its process is known; the filter applies where
    # prev's spell starts (off-CPU) or is recorded (on-CPU: its start is removed either
    # way, else the starts of every other task would fill the map).
    pid_filter = "pid == %d" % opts.pid if opts.pid else None
    div = 1000000 if opts.milliseconds else 1000
    ext = "\n\t\t\t\t@ext = stats($d);" if opts.extension else ""
    if not opts.offcpu:
        # on-CPU: next starts running; prev's spell ends (filter and keys known: current).
        if opts.pids:
            hkey = "[pid]"
        elif opts.tids:
            hkey = "[args->prev_pid]"
        else:
            hkey = ""
        prev_body = _RECORD % {"key": prev_key, "div": div, "hkey": hkey, "ext": ext,
                               "filter": " && " + pid_filter if pid_filter else ""}
        next_body = "\t\t@start[%s] = $now;" % next_key
    else:
        # off-CPU: prev starts waiting (filter here, and its process ID kept for -P);
        # next's wait ends.
        if pid_filter:
            prev_cond.append(pid_filter)
        prev_body = "\t\t@start[%s] = $now;" % prev_key
        if opts.pids:
            prev_body += "\n\t\t@tgid[%s] = pid;" % prev_key
            hkey = "[$tg]"
        elif opts.tids:
            hkey = "[args->next_pid]"
        else:
            hkey = ""
        next_body = _RECORD % {"key": next_key, "div": div, "hkey": hkey, "ext": ext,
                               "filter": ""}
        if opts.pids:
            next_body = next_body.replace(
                "\t\t\tdelete(@start[%s]);" % next_key,
                "\t\t\tdelete(@start[%s]);\n\t\t\t$tg = @tgid[%s];\n\t\t\tdelete(@tgid[%s]);"
                % (next_key, next_key, next_key))
    return SCRIPT % {"keys": keys, "prev_cond": " && ".join(prev_cond) or "1",
                     "next_cond": " && ".join(next_cond) or "1", "prev_body": prev_body,
                     "next_body": next_body}


class Cpudist(object):
    """The running script, and its histograms in BCC's slots."""

    def __init__(self, opts):
        from tinytrace.script import Script
        self.opts = opts
        self.script = Script(script_text(opts), tool="cpudist")

    def take(self):
        """(histograms, extension) since the last call, and reset them.

        Histograms: {section key: {slot: count}} (one section, key None, without -P/-L);
        extension: (count, total) with -e, else None."""
        from tinytrace import toolkit
        out = toolkit.take_log2(self.script, "@dist")
        if not (self.opts.pids or self.opts.tids):
            out = {None: out.get(None, {})}
        ext = toolkit.take_stats(self.script, "@ext") if self.opts.extension else None
        return out, ext


def report(opts, hists, ext, out):
    from tinytrace import toolkit
    section = "pid" if opts.pids else "tid" if opts.tids else None
    toolkit.report_log2(opts, hists, out, "msecs" if opts.milliseconds else "usecs",
                        section=section, section_fmt=toolkit.pid_label, ext=ext)


def main(argv):
    import sys
    from tinytrace import toolkit
    opts = parse_args(argv)
    toolkit.require_privileges()
    cd = Cpudist(opts)
    with toolkit.Stopper() as stopper, cd.script.start():
        toolkit.announce(opts, "Tracing %s-CPU time... Hit Ctrl-C to end."
                         % ("off" if opts.offcpu else "on"))
        interval = opts.interval if opts.interval is not None else 99999999

        def one_report(last):
            hists, ext = cd.take()
            report(opts, hists, ext, sys.stdout)

        toolkit.intervals(interval, opts.count, one_report, stopper)
    return 0
