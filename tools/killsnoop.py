"""killsnoop: signals sent with kill(), tkill() and tgkill(), one line per call, like BCC's
killsnoop.

The entry tracepoints (``syscalls:sys_enter_kill``, ``sys_enter_tkill``,
``sys_enter_tgkill``) keep the target and the signal by thread ID; the exit tracepoint adds
the result and sends one event.  TPID is the target argument as passed: the process (or
process group, when negative) of kill(), the thread of tkill(), the thread group of
tgkill() (its thread ID is in the JSON record).  Filters (-p, -T, -s) are predicates in the
kernel, -x is a test on the result at exit.

BCC traces kill() only (kprobes on the syscall function); this version adds tkill and
tgkill, the calls behind pthread_kill() and raise().  Signals the kernel itself generates
(SIGSEGV, SIGCHLD, SIGPIPE ...) do not pass through these syscalls; ``signal:signal_generate``
would show them (libbpf-tools' sigsnoop).
"""

SUMMARY = "signals sent by kill(), tkill() and tgkill(): sender, signal, target, result"
PROBES = ("tracepoint:syscalls:sys_enter_kill", "tracepoint:syscalls:sys_exit_kill",
          "tracepoint:syscalls:sys_enter_tkill", "tracepoint:syscalls:sys_exit_tkill",
          "tracepoint:syscalls:sys_enter_tgkill", "tracepoint:syscalls:sys_exit_tgkill")
NEEDS = ()

EXAMPLES = """\
    tinytrace killsnoop           # trace all kill() signals
    tinytrace killsnoop -x        # only show failed kills
    tinytrace killsnoop -p 181    # only trace PID 181
    tinytrace killsnoop -T 189    # only trace target PID 189
    tinytrace killsnoop -s 9      # only trace signal 9
    tinytrace killsnoop -s TERM   # only trace SIGTERM
    tinytrace killsnoop --json    # one JSON object per call
"""

CALLS = ("kill", "tkill", "tgkill")


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser(
        "killsnoop", "Trace signals issued by the kill() syscall (and tkill(), tgkill())",
        EXAMPLES)
    p.add_argument("-x", "--failed", action="store_true", help="only show failed kill syscalls")
    p.add_argument("-p", "--pid", type=toolkit.positive_int,
                   help="trace this PID only which is the sender of signal")
    p.add_argument("-T", "--tpid", type=int,
                   help="trace this target PID only which is the receiver of signal")
    p.add_argument("-s", "--signal", type=_signal,
                   help="trace this signal only (a number, or a name such as TERM)")
    toolkit.add_json(p)
    return p.parse_args(argv)


def _signal(text):
    import argparse
    from tinytrace.kernel import abi
    try:
        n = int(text, 0)
    except ValueError:
        n = abi.signal_nr(text)
        if n is None:
            raise argparse.ArgumentTypeError("unknown signal: %r" % text)
    if not 0 <= n <= 64:
        raise argparse.ArgumentTypeError("signal out of range: %r" % text)
    return n


def script_text(opts, calls):
    parts = []
    for call in calls:
        target = "(int64)(int32)args->%s" % ("tgid" if call == "tgkill" else "pid")
        thread = "(int64)(int32)args->pid" if call == "tgkill" else "(int64)0"
        tests = []
        if opts.pid:
            tests.append("pid == %d" % opts.pid)
        if opts.tpid is not None:
            tests.append("%s == %d" % (target, opts.tpid))
        if opts.signal is not None:
            tests.append("args->sig == %d" % opts.signal)
        pred = "/%s/\n" % " && ".join(tests) if tests else ""
        parts.append("tracepoint:syscalls:sys_enter_%s\n%s{\n"
                     "\t@sig[tid] = (%s, %s, (int64)args->sig, (int64)1);\n}\n"
                     % (call, pred, target, thread))
    emit = ('printf("%u %u %s %d %d %d %d\\n", pid, tid, comm, $k.0, $k.1, $k.2, '
            'args->ret);')
    if opts.failed:
        emit = "if (args->ret < 0) {\n\t\t%s\n\t}" % emit
    for call in calls:
        parts.append("tracepoint:syscalls:sys_exit_%s\n/@sig[tid].3 != 0/\n{\n"
                     "\t$k = @sig[tid];\n\tdelete(@sig[tid]);\n\t%s\n}\n" % (call, emit))
    return "\n".join(parts)


def _pid_width():
    """BCC's PID column: as wide as the largest PID, plus one."""
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            return len(f.read().strip()) + 1
    except OSError:
        return 6


class Printer(object):
    def __init__(self, opts, calls, out):
        self.opts = opts
        self.calls = calls
        self.out = out
        self.width = _pid_width()

    def header(self):
        if self.opts.json:
            return
        w = self.width
        self.out.write("%-9s %-*s %-16s %-4s %-*s %s\n" % (
            "TIME", w, "PID", "COMM", "SIG", w, "TPID", "RESULT"))
        self.out.flush()

    def event(self, values, index):
        from tinytrace import toolkit
        from tinytrace.output.escape import escape
        pid, tid, comm, target, thread, sig, ret = values
        if self.opts.json:
            from tinytrace.kernel import abi
            from tinytrace.output import jsonl
            call = self.calls[index] if 0 <= index < len(self.calls) else None
            rec = {"time": toolkit.hhmmss(), "pid": pid, "tid": tid, "comm": jsonl.text(comm),
                   "syscall": call, "sig": sig, "signal": abi.signal_name(sig), "tpid": target}
            if call == "tgkill":
                rec["ttid"] = thread
            rec["ret"] = ret
            jsonl.write(rec, self.out)
            return
        w = self.width
        self.out.write("%-9s %-*d %-16s %-4d %-*d %d\n" % (
            toolkit.hhmmss(), w, pid, escape(comm), sig, w, target, ret))
        self.out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    calls = toolkit.syscall_tracepoints(CALLS, "kill/tkill/tgkill")
    script = Script(script_text(opts, calls), tool="killsnoop")
    return toolkit.snoop(opts, script, Printer(opts, calls, sys.stdout),
                         "Tracing kill() signals... Hit Ctrl-C to end.")
