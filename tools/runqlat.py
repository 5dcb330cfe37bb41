"""runqlat: run-queue (scheduler) latency as a histogram, like BCC's runqlat.

A task's run-queue latency is the time from becoming runnable (woken up, or preempted while
still runnable) to running on a CPU.  Three tracepoints measure it:

- ``sched:sched_wakeup`` and ``sched:sched_wakeup_new``: the woken task becomes runnable now;
- ``sched:sched_switch``: ``prev`` leaves the CPU -- if it is still runnable (preempted) it
  starts waiting now -- and ``next`` starts running: its wait ends.

``prev_state`` is tested on its low byte only: a preempted task is reported with
TASK_REPORT_MAX (256) set, yet it is still runnable.

The BPF side is written with tinytrace's assembler; histograms are log2 buckets of
microseconds (``-m``: milliseconds) in an array map (or a hash keyed by PID/TID with
``-P``/``-L``), updated with atomic adds, or in per-CPU maps on JITs without atomics.
"""

SUMMARY = "run-queue (scheduler) latency as a histogram"
PROBES = ("tracepoint:sched:sched_wakeup", "tracepoint:sched:sched_wakeup_new",
          "tracepoint:sched:sched_switch")
NEEDS = ()

EXAMPLES = """\
    tinytrace runqlat            # summarize run queue latency as a histogram
    tinytrace runqlat 1 10       # print 1 second summaries, 10 times
    tinytrace runqlat -mT 1      # 1s summaries, milliseconds, and timestamps
    tinytrace runqlat -P         # show each PID separately
    tinytrace runqlat -L         # show each TID separately
    tinytrace runqlat -p 185     # trace PID 185 only
    tinytrace runqlat --json 1 5 # five 1-second histograms as JSON lines
"""

MAX_SLOTS = 64          # log2 slots of a 64-bit value (slot = bpf_log2l(delta))
START_ENTRIES = 10240   # tasks waiting at once (BCC's default)
KEYED_ENTRIES = 10240


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("runqlat", "Summarize run queue (scheduler) latency as a histogram",
                               EXAMPLES)
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-m", "--milliseconds", action="store_true", help="millisecond histogram")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-P", "--pids", action="store_true", help="print a histogram per process ID")
    g.add_argument("-L", "--tids", action="store_true", help="print a histogram per thread ID")
    p.add_argument("-p", "--pid", type=toolkit.positive_int,
                   help="trace this PID only (its thread ID on this tracepoint-based version)")
    toolkit.add_json(p)
    p.add_argument("interval", nargs="?", type=toolkit.positive_int, default=None,
                   help="output interval, in seconds")
    p.add_argument("count", nargs="?", type=toolkit.positive_int, default=None,
                   help="number of outputs")
    return p.parse_args(argv)


# -- BPF programs -------------------------------------------------------------------------

def _load_field(a, dst, ctx, field):
    """dst = the tracepoint field (unsigned load of its size; callers mask what they need)."""
    size = {1: a.B, 2: a.H, 4: a.W, 8: a.DW}[field.size]
    return [a.LoadMem(dst, ctx, field.offset, size)]


def _log2_slot(a, reg, tmp, prefix):
    """reg = bpf_log2l(reg): 1 + floor(log2(reg)), and 1 for 0 (BCC's slot numbering)."""
    out = [a.Mov.Imm(tmp, 1)]
    # 64-bit compare against 2**32-1 needs a register: shift-test instead.
    for shift in (32, 16, 8, 4, 2, 1):
        skip = "%s_l%d" % (prefix, shift)
        out += [
            a.Mov.Reg(a.R0, reg), a.Rsh.Imm(a.R0, shift), a.JEq.Imm(a.R0, 0, skip),
            a.Mov.Reg(reg, a.R0), a.Add.Imm(tmp, shift),
            a.Label(skip),
        ]
    out += [a.Mov.Reg(reg, tmp)]
    return out


def _wakeup_prog(a, fmt, target_pid):
    """start[pid] = now for the woken task."""
    pid = fmt.field("pid")
    prog = [a.Mov.Reg(a.R6, a.R1)]
    prog += _load_field(a, a.R7, a.R6, pid)
    prog += [a.JEq.Imm32(a.R7, 0, "out")]
    if target_pid:
        prog += [a.JNe.Imm32(a.R7, target_pid, "out")]
    prog += [
        a.StoreMem(a.R10, -4, a.R7, a.W),
        a.Call("ktime_get_ns"),
        a.StoreMem(a.R10, -16, a.R0, a.DW),
        a.LoadMapPtr(a.R1, "start"),
        a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -4),
        a.Mov.Reg(a.R3, a.R10), a.Add.Imm(a.R3, -16),
        a.Mov.Imm(a.R4, 0),
        a.Call("map_update_elem"),
        a.Label("out"),
        a.Mov.Imm(a.R0, 0),
        a.Exit(),
    ]
    return prog


def _switch_prog(a, fmt, opts, atomics):
    """prev still runnable: start[prev] = now.  next: delta = now - start[next] -> hist."""
    prev_pid, prev_state, next_pid = (fmt.field("prev_pid"), fmt.field("prev_state"),
                                      fmt.field("next_pid"))
    keyed = opts.pids or opts.tids
    prog = [a.Mov.Reg(a.R6, a.R1), a.Call("ktime_get_ns"), a.Mov.Reg(a.R8, a.R0)]
    # -- prev: preempted (state's low byte is TASK_RUNNING) -> it waits from now on
    prog += _load_field(a, a.R1, a.R6, prev_state)
    prog += [a.And.Imm(a.R1, 0xff), a.JNe.Imm(a.R1, 0, "next")]
    prog += _load_field(a, a.R7, a.R6, prev_pid)
    prog += [a.JEq.Imm32(a.R7, 0, "next")]
    if opts.pid:
        prog += [a.JNe.Imm32(a.R7, opts.pid, "next")]
    prog += [
        a.StoreMem(a.R10, -4, a.R7, a.W),
        a.StoreMem(a.R10, -16, a.R8, a.DW),
        a.LoadMapPtr(a.R1, "start"),
        a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -4),
        a.Mov.Reg(a.R3, a.R10), a.Add.Imm(a.R3, -16),
        a.Mov.Imm(a.R4, 0),
        a.Call("map_update_elem"),
    ]
    # -- next: its wait ends now
    prog += [a.Label("next")]
    prog += _load_field(a, a.R7, a.R6, next_pid)
    prog += [a.JEq.Imm32(a.R7, 0, "out")]
    if opts.pid:
        prog += [a.JNe.Imm32(a.R7, opts.pid, "out")]
    prog += [
        a.StoreMem(a.R10, -4, a.R7, a.W),
        a.LoadMapPtr(a.R1, "start"),
        a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -4),
        a.Call("map_lookup_elem"),
        a.JEq.Imm(a.R0, 0, "out"),
        a.LoadMem(a.R1, a.R0, 0, a.DW),
        a.Mov.Reg(a.R9, a.R8), a.Sub.Reg(a.R9, a.R1),       # r9 = delta ns
        a.LoadMapPtr(a.R1, "start"),
        a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -4),
        a.Call("map_delete_elem"),
        a.JSLt.Imm(a.R9, 0, "out"),
        a.Div.Imm(a.R9, 1000000 if opts.milliseconds else 1000),
    ]
    prog += _log2_slot(a, a.R9, a.R8, "slot")
    if not keyed:
        prog += [
            a.StoreMem(a.R10, -8, a.R9, a.W),
            a.LoadMapPtr(a.R1, "dist"),
            a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -8),
            a.Call("map_lookup_elem"),
            a.JEq.Imm(a.R0, 0, "out"),
        ]
    else:
        # key {u32 tid; u32 slot}: the tracepoint names threads; -P folds them into
        # processes in user space (see _group_by_process).
        prog += [
            a.StoreMem(a.R10, -24, a.R7, a.W),
            a.StoreMem(a.R10, -20, a.R9, a.W),
            a.StoreImm(a.R10, -32, 0, a.DW),
            a.LoadMapPtr(a.R1, "dist"),
            a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -24),
            a.Call("map_lookup_elem"),
            a.JNe.Imm(a.R0, 0, "have"),
            a.LoadMapPtr(a.R1, "dist"),
            a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -24),
            a.Mov.Reg(a.R3, a.R10), a.Add.Imm(a.R3, -32),
            a.Mov.Imm(a.R4, 1),                                  # BPF_NOEXIST
            a.Call("map_update_elem"),
            a.LoadMapPtr(a.R1, "dist"),
            a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -24),
            a.Call("map_lookup_elem"),
            a.JEq.Imm(a.R0, 0, "out"),
            a.Label("have"),
        ]
    if atomics:
        prog += [a.Mov.Imm(a.R1, 1), a.AtomicAdd(a.R0, 0, a.R1, a.DW)]
    else:  # per-CPU map: this CPU's slot has no other writer
        prog += [a.LoadMem(a.R1, a.R0, 0, a.DW), a.Add.Imm(a.R1, 1),
                 a.StoreMem(a.R0, 0, a.R1, a.DW)]
    prog += [a.Label("out"), a.Mov.Imm(a.R0, 0), a.Exit()]
    return prog


class Runqlat(object):
    """The kernel side: maps, programs and attachments, owned by a session."""

    def __init__(self, session, opts):
        from tinytrace import asm as a
        from tinytrace.kernel import features, tracefs
        self.opts = opts
        self.keyed = opts.pids or opts.tids
        self.atomics = features.probe().atomics
        percpu = "" if self.atomics else "percpu_"
        self.start = session.map("hash", 4, 8, START_ENTRIES, name="rq_start")
        if self.keyed:
            self.dist = session.map(percpu + "hash", 8, 8, KEYED_ENTRIES, name="rq_dist")
        else:
            self.dist = session.map(percpu + "array", 4, 8, MAX_SLOTS, name="rq_dist")
        maps = {"start": self.start, "dist": self.dist}
        progs = []
        for event in ("sched_wakeup", "sched_wakeup_new"):
            fmt = tracefs.event_format("sched", event)
            progs.append((event, _wakeup_prog(a, fmt, opts.pid)))
        fmt = tracefs.event_format("sched", "sched_switch")
        progs.append(("sched_switch", _switch_prog(a, fmt, opts, self.atomics)))
        loaded = []
        for event, insns in progs:
            code = a.link(insns, maps)
            loaded.append((event, session.load(code, "tracepoint", "rq_" + event[6:],
                                               source=insns)))
        for event, prog in loaded:
            session.tracepoint(prog, "sched", event)

    def _count(self, raw):
        if isinstance(raw, list):  # per-CPU
            return sum(int.from_bytes(v[:8], "little" if _little() else "big") for v in raw)
        return int.from_bytes(raw[:8], "little" if _little() else "big")

    def take(self):
        """The histograms since the last call, and reset them: {section key: {slot: count}}
        (one section, key None, without -P/-L)."""
        import struct
        order = "<" if _little() else ">"
        out = {}
        items = self.dist.items()
        if self.keyed:
            for k, v in items:
                ident, slot = struct.unpack(order + "II", k)
                n = self._count(v)
                if n:
                    out.setdefault(ident, {})[slot] = n
            for k, _ in items:
                self.dist.delete(k)
            if self.opts.pids:
                out = _group_by_process(out)
        else:
            slots = {}
            zero = bytes(8)
            for k, v in items:
                n = self._count(v)
                if n:
                    slots[struct.unpack(order + "I", k)[0]] = n
                    self.dist.update(k, zero)
            out[None] = slots
        return out


def _tgid(tid):
    try:
        with open("/proc/%d/status" % tid) as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return tid


def _group_by_process(by_tid):
    """The tracepoints name threads; -P wants processes: fold each thread into its thread
    group (read from /proc while it lives; a thread already gone keeps its own ID)."""
    out = {}
    for tid, slots in by_tid.items():
        dest = out.setdefault(_tgid(tid), {})
        for slot, n in slots.items():
            dest[slot] = dest.get(slot, 0) + n
    return out


def _little():
    import sys
    return sys.byteorder == "little"


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid, "rb") as f:
            return f.read().rstrip(b"\n")
    except OSError:
        return None


def _section_label(pid):
    from tinytrace.output.escape import escape
    comm = _comm(pid)
    return "%d %s" % (pid, escape(comm)) if comm is not None else "%d" % pid


def report(opts, hists, out):
    from tinytrace import toolkit
    from tinytrace.output import hist as H
    unit = "msecs" if opts.milliseconds else "usecs"
    if opts.json:
        from tinytrace.output import jsonl
        section = "pid" if opts.pids else "tid"
        rec_hists = []
        for key in sorted(hists, key=lambda k: (k is not None, k)):
            h = H.hist_json(hists[key], unit)
            if key is not None:
                h["key"] = {section: key}
            rec_hists.append(h)
        jsonl.write(jsonl.interval_record(time=toolkit.hhmmss(), hists=rec_hists), out)
        return
    out.write("\n")
    if opts.timestamp:
        out.write("%-8s\n" % toolkit.hhmmss())
    if opts.pids or opts.tids:
        label = "pid" if opts.pids else "tid"
        for key in sorted(hists):
            out.write(H.log2_sections_text({key: hists[key]}, unit, section_header=label,
                                           section_fmt=_section_label))
    else:
        out.write(H.log2_hist_text(hists.get(None, {}), unit))
    out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.session import Session
    opts = parse_args(argv)
    toolkit.require_privileges()
    with Session() as session, toolkit.Stopper() as stopper:
        rq = Runqlat(session, opts)
        toolkit.announce(opts, "Tracing run queue latency... Hit Ctrl-C to end.")
        interval = opts.interval if opts.interval is not None else 99999999

        def one_report(last):
            report(opts, rq.take(), sys.stdout)

        toolkit.intervals(interval, opts.count, one_report, stopper)
    return 0
