"""watchpoint:ADDRESS:LENGTH:MODE and asyncwatchpoint:... (aliases w:, aw:): the CPU's
debug registers, through perf breakpoint events (PERF_TYPE_BREAKPOINT), run the program
when the LENGTH bytes (1, 2, 4 or 8) at ADDRESS are read (``r``), written (``w``) or
executed (``x``); MODE combines ``r`` and ``w`` (``rw``) or is ``x`` alone.

With ``-p PID`` or ``-c CMD`` the address is one of that process (the perf event follows
its threads); without, a kernel address watched on every CPU.  The program runs after the
access (a ``perf_event`` program: ``kstack``/``ustack`` show where it happened).  The
number of debug registers is small (four on x86 and most arm64): the kernel refuses more.
``asyncwatchpoint`` is the same probe here (bpftrace's variant differs only in how it
reports).
"""
from tinytrace.lang.probes.base import Provider, Target
from tinytrace.lang.source import LangError

HW_BREAKPOINT_R, HW_BREAKPOINT_W, HW_BREAKPOINT_X = 1, 2, 4
_MODES = {"r": HW_BREAKPOINT_R, "w": HW_BREAKPOINT_W, "rw": HW_BREAKPOINT_R | HW_BREAKPOINT_W,
          "wr": HW_BREAKPOINT_R | HW_BREAKPOINT_W, "x": HW_BREAKPOINT_X}


class Watchpoint(Provider):
    prog_type = "perf_event"
    form = "watchpoint:ADDRESS:LENGTH:MODE (e.g. watchpoint:0x7f01234:8:w)"

    def parse(self, parts, loc):
        if len(parts) != 3 or not all(parts):
            raise LangError("%s probes are written %s" % (self.name, self.form), loc)
        addr, length, mode = parts
        try:
            a = int(addr, 0)
        except ValueError:
            raise LangError("the address of a watchpoint must be a number, not '%s' "
                            "(function arguments as addresses are not supported)" % addr, loc)
        if not length.isdigit() or int(length) not in (1, 2, 4, 8):
            raise LangError("a watchpoint watches 1, 2, 4 or 8 bytes, not '%s'" % length, loc)
        if mode not in _MODES:
            raise LangError("a watchpoint's mode is r, w, rw or x, not '%s'" % mode, loc)
        n = int(length)
        if a % n:
            raise LangError("a watchpoint of %d bytes needs an address aligned to %d" % (n, n),
                            loc)
        return (a, n, mode)

    def expand(self, spec, env, loc):
        addr, n, mode = spec
        return [Target(self, "%s:0x%x:%d:%s" % (self.name, addr, n, mode), spec)]

    def attach(self, session, prog, targets, env, cookies=None):
        from tinytrace.kernel import attach, perf
        out = []
        pid = env.target_pid
        try:
            for t in targets:
                addr, n, mode = t.parts
                attr = perf.Attr(perf.TYPE_BREAKPOINT, sample_period=1, wakeup_events=1,
                                 bp_type=_MODES[mode], config1=addr, config2=n)
                if pid is not None:
                    out.append(attach.perf_event(prog, attr, cpu=-1, pid=pid, target=t.name))
                else:
                    out.append(attach.per_cpu(prog, attr, target=t.name))
        except BaseException:
            for a in out:
                a.close()
            raise
        return out
