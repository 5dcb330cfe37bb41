"""What would make runqlat's sched_switch program cheaper: variants measured side by side.

    python3 -m bench.runqlat_variants [--count N] [--rounds R]      (as root)

The peer target is BCC's runqlat on a raw tracepoint (189 ns per sched_switch here, see
/work/shared/research/peers.md).  This loads several versions of runqlat's kernel side
-- each with its own maps and its own wakeup programs -- one at a time (attached alone, so no
variant warms the caches for another; the order rotates from round to round), runs the pipe
ping-pong workload under each, and reads each program's run_time_ns / run_cnt:

- ``shipped``: tools/runqlat.py as it runs on this kernel (its task-storage version where the
  kernel has BTF task storage for tracing programs, else its script);
- ``shipped-script``: tools/runqlat.py's fallback, the script compiled by tinytrace's language;
- ``assembler``: the same logic hand-written with the assembler on classic tracepoints (what
  runqlat was before it moved onto the language), clock read once at entry;
- ``lazy-clock``: as ``assembler``, calling bpf_ktime_get_ns() only on the two paths that use
  the time (a preempted prev; a next found in ``start``);
- ``tp_btf``: tp_btf programs reading prev/next/prev_state from the tracepoint's arguments
  and the pids straight from the BTF-typed task pointers, with the lazy clock;
- ``tp_btf+task-storage``: as ``tp_btf``, but the enqueue time lives in task local storage
  (BPF_MAP_TYPE_TASK_STORAGE) instead of a pid-keyed hash: no hashing, no hash-bucket lock,
  no delete.

Statistics are switched on with a BPF_ENABLE_STATS file descriptor (it leaves the sysctl
alone and ends with the fd).  Results are printed as a markdown table and written to
bench/results/runqlat_variants.json.
"""
import argparse
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BPF_ENABLE_STATS = 32
TASK_STORAGE_GET = "task_storage_get"


def default_opts():
    """runqlat's own options with no arguments (plain histogram, microseconds, no filter),
    from its parser, so a new option cannot leave this benchmark behind."""
    from tinytrace.tools import runqlat
    return runqlat.parse_args([])


def log2_slot(a, reg, tmp, prefix):
    """reg = 1 + floor(log2(reg)) (1 for 0): BCC's slot numbering, in six shift-tests."""
    out = [a.Mov.Imm(tmp, 1)]
    for shift in (32, 16, 8, 4, 2, 1):
        skip = "%s_%d" % (prefix, shift)
        out += [a.Mov.Reg(a.R0, reg), a.Rsh.Imm(a.R0, shift), a.JEq.Imm(a.R0, 0, skip),
                a.Mov.Reg(reg, a.R0), a.Add.Imm(tmp, shift), a.Label(skip)]
    return out + [a.Mov.Reg(reg, tmp)]


def _switch(a, get_prev, get_next, get_prev_runnable, lookup_start, store_start, drop_start,
            lazy_clock=True):
    """The sched_switch logic.  The callables emit code: get_* leave a value in r7 (pids or
    task pointers) or jump to the label given (state), the *_start ones work on the
    ``start`` store for the task in r7 (r8 holds the time to store).  ``lazy_clock``: read
    the clock only where it is used; else once at entry, into r8."""
    prog = [a.Mov.Reg(a.R6, a.R1)]
    if not lazy_clock:
        prog += [a.Call("ktime_get_ns"), a.Mov.Reg(a.R8, a.R0),
                 a.StoreMem(a.R10, -24, a.R0, a.DW)]
    # prev preempted (still runnable): it starts waiting now
    prog += get_prev_runnable("next")
    prog += get_prev()
    prog += [a.JEq.Imm32(a.R7, 0, "next")]
    if lazy_clock:
        prog += [a.Call("ktime_get_ns"), a.Mov.Reg(a.R8, a.R0)]
    prog += store_start()
    prog += [a.Label("next")]
    prog += get_next()
    prog += [a.JEq.Imm32(a.R7, 0, "out")]
    prog += lookup_start()                      # r0 = pointer to the start time, or 0
    prog += [a.JEq.Imm(a.R0, 0, "out"),
             a.LoadMem(a.R9, a.R0, 0, a.DW),
             a.JEq.Imm(a.R9, 0, "out")]
    prog += drop_start()
    if lazy_clock:
        prog += [a.Call("ktime_get_ns")]
    else:
        prog += [a.LoadMem(a.R0, a.R10, -24, a.DW)]
    prog += [a.Sub.Reg(a.R0, a.R9), a.Mov.Reg(a.R9, a.R0),
             a.JSLt.Imm(a.R9, 0, "out"), a.Div.Imm(a.R9, 1000)]
    prog += log2_slot(a, a.R9, a.R8, "slot")
    prog += [a.StoreMem(a.R10, -8, a.R9, a.W),
             a.LoadMapPtr(a.R1, "dist"), a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -8),
             a.Call("map_lookup_elem"), a.JEq.Imm(a.R0, 0, "out"),
             a.Mov.Imm(a.R1, 1), a.AtomicAdd(a.R0, 0, a.R1, a.DW),
             a.Label("out"), a.Mov.Imm(a.R0, 0), a.Exit()]
    return prog


def _hash_start(a):
    """start as a pid-keyed hash: the key is the pid in r7."""
    def lookup():
        return [a.StoreMem(a.R10, -4, a.R7, a.W), a.LoadMapPtr(a.R1, "start"),
                a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -4), a.Call("map_lookup_elem")]

    def store():
        return [a.StoreMem(a.R10, -4, a.R7, a.W), a.StoreMem(a.R10, -16, a.R8, a.DW),
                a.LoadMapPtr(a.R1, "start"), a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -4),
                a.Mov.Reg(a.R3, a.R10), a.Add.Imm(a.R3, -16), a.Mov.Imm(a.R4, 0),
                a.Call("map_update_elem")]

    def drop():
        return [a.LoadMapPtr(a.R1, "start"), a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -4),
                a.Call("map_delete_elem")]
    return lookup, store, drop


def tracepoint_entry_clock(a, session, maps):
    """Variant 'assembler': classic tracepoints, clock read at entry."""
    return tracepoint_lazy(a, session, maps, lazy_clock=False)


def tracepoint_lazy(a, session, maps, lazy_clock=True):
    """Variant 'lazy-clock': classic tracepoints, clock read on demand."""
    from tinytrace.kernel import tracefs
    fmt = tracefs.event_format("sched", "sched_switch")
    f = dict((n, fmt.field(n)) for n in ("prev_pid", "prev_state", "next_pid"))
    lookup, store, drop = _hash_start(a)

    def runnable(skip):
        return [a.LoadMem(a.R1, a.R6, f["prev_state"].offset, a.DW), a.And.Imm(a.R1, 0xff),
                a.JNe.Imm(a.R1, 0, skip)]
    prog = _switch(a, lambda: [a.LoadMem(a.R7, a.R6, f["prev_pid"].offset, a.W)],
                   lambda: [a.LoadMem(a.R7, a.R6, f["next_pid"].offset, a.W)],
                   runnable, lookup, store, drop, lazy_clock)
    out = [("sched_switch", prog, "tracepoint", None)]
    for ev in ("sched_wakeup", "sched_wakeup_new"):
        pid = tracefs.event_format("sched", ev).field("pid")
        out.append((ev, _wakeup_hash(a, lambda: [a.LoadMem(a.R7, a.R6, pid.offset, a.W)]),
                    "tracepoint", None))
    return out


def _wakeup_hash(a, get_pid):
    return ([a.Mov.Reg(a.R6, a.R1)] + get_pid() +
            [a.JEq.Imm32(a.R7, 0, "out"), a.StoreMem(a.R10, -4, a.R7, a.W),
             a.Call("ktime_get_ns"), a.StoreMem(a.R10, -16, a.R0, a.DW),
             a.LoadMapPtr(a.R1, "start"), a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -4),
             a.Mov.Reg(a.R3, a.R10), a.Add.Imm(a.R3, -16), a.Mov.Imm(a.R4, 0),
             a.Call("map_update_elem"), a.Label("out"), a.Mov.Imm(a.R0, 0), a.Exit()])


def _btf():
    from tinytrace.kernel import btf
    b = btf.vmlinux()
    return b, b.member("task_struct", "pid").offset


def tp_btf_hash(a, session, maps):
    """Variant 'tp_btf': BTF-typed arguments, pid-keyed hash."""
    b, pid_off = _btf()
    lookup, store, drop = _hash_start(a)

    def runnable(skip):       # args: (preempt, prev, next, prev_state)
        return [a.LoadMem(a.R1, a.R6, 24, a.DW), a.JNe.Imm32(a.R1, 0, skip)]

    def pid_of(arg):
        return lambda: [a.LoadMem(a.R1, a.R6, 8 * arg, a.DW),
                        a.LoadMem(a.R7, a.R1, pid_off, a.W)]
    prog = _switch(a, pid_of(1), pid_of(2), runnable, lookup, store, drop)
    out = [("sched_switch", prog, "tp_btf", b.tracepoint("sched_switch").btf_id)]
    for ev in ("sched_wakeup", "sched_wakeup_new"):
        out.append((ev, _wakeup_hash(a, pid_of(0)), "tp_btf", b.tracepoint(ev).btf_id))
    return out


def tp_btf_storage(a, session, maps):
    """Variant 'tp_btf+task-storage': the enqueue time in task local storage."""
    b, pid_off = _btf()

    def task(arg, skip):
        # r7 = the task pointer; pid 0 (the idle task) is left out, as the pid-keyed
        # variants leave it out
        return [a.LoadMem(a.R7, a.R6, 8 * arg, a.DW), a.LoadMem(a.R1, a.R7, pid_off, a.W),
                a.JEq.Imm32(a.R1, 0, skip)]

    def runnable(skip):
        return [a.LoadMem(a.R1, a.R6, 24, a.DW), a.JNe.Imm32(a.R1, 0, skip)]

    def get(create):
        return [a.LoadMapPtr(a.R1, "start"), a.Mov.Reg(a.R2, a.R7), a.Mov.Imm(a.R3, 0),
                a.Mov.Imm(a.R4, 1 if create else 0), a.Call(TASK_STORAGE_GET)]

    def store():
        return get(True) + [a.JEq.Imm(a.R0, 0, "next"), a.StoreMem(a.R0, 0, a.R8, a.DW)]

    def lookup():
        return get(False)

    def drop():
        return [a.StoreImm(a.R0, 0, 0, a.DW)]       # zero: "not waiting"
    prog = _switch(a, lambda: task(1, "next"), lambda: task(2, "out"), runnable, lookup, store,
                   drop)
    out = [("sched_switch", prog, "tp_btf", b.tracepoint("sched_switch").btf_id)]
    for ev in ("sched_wakeup", "sched_wakeup_new"):
        wake = ([a.Mov.Reg(a.R6, a.R1)] + task(0, "out") + [
                a.Call("ktime_get_ns"), a.Mov.Reg(a.R8, a.R0)] + get(True) +
                [a.JEq.Imm(a.R0, 0, "out"), a.StoreMem(a.R0, 0, a.R8, a.DW),
                 a.Label("out"), a.Mov.Imm(a.R0, 0), a.Exit()])
        out.append((ev, wake, "tp_btf", b.tracepoint(ev).btf_id))
    return out


VARIANTS = (("assembler", tracepoint_entry_clock), ("lazy-clock", tracepoint_lazy),
            ("tp_btf", tp_btf_hash), ("tp_btf+task-storage", tp_btf_storage))
MAX_SLOTS = 64
START_ENTRIES = 10240


ORDER = ("shipped", "shipped-script", "assembler", "lazy-clock", "tp_btf",
         "tp_btf+task-storage")


def build(session, variant, errors):
    """Load and attach one variant in ``session``; returns ({event: program name} or None
    for the shipped tool, a function returning the number of latencies recorded), or
    (None, None) when the kernel refused it (the reason goes into ``errors``)."""
    from tinytrace import asm as a
    from tinytrace.kernel import features
    if variant in ("shipped", "shipped-script"):
        # the tool exactly as `tinytrace runqlat` sets it up (its programs are found by
        # elimination: the sched programs of the session that are not named rqv*)
        from tinytrace.tools import runqlat
        rq = runqlat.Runqlat(default_opts(), task_storage=False if variant == "shipped-script" else None)
        rq.start(session)
        return None, lambda: sum(sum(s.values()) for s in rq.take().values())
    if not features.probe().atomics:
        errors[variant] = "no BPF atomics on this JIT: the variants need them"
        return None, None
    k = ORDER.index(variant)
    maker = dict(VARIANTS)[variant]
    try:
        if variant.endswith("task-storage"):
            start = session.map("task_storage", 4, 8, 0, name="rqv%d_start" % k)
        else:
            start = session.map("hash", 4, 8, START_ENTRIES, name="rqv%d_start" % k)
        dist = session.map("array", 4, 8, MAX_SLOTS, name="rqv%d_dist" % k)
        maps = {"start": start, "dist": dist}
        names = {}
        for event, insns, kind, btf_id in maker(a, session, maps):
            pname = "rqv%d_%s" % (k, event[6:])
            code = a.link(insns, maps)
            if kind == "tp_btf":
                p = session.load(code, "tracing", pname, expected_attach_type="trace_raw_tp",
                                 attach_btf_id=btf_id, source=insns)
                session.tp_btf(p, event)
            else:
                p = session.load(code, "tracepoint", pname, source=insns)
                session.tracepoint(p, "sched", event)
            names[event] = pname
    except Exception as e:  # one variant the kernel refuses must not hide the others
        errors[variant] = str(e).strip().splitlines()[-1][:200]
        return None, None
    return names, lambda: samples(dist)


def samples(dist):
    """How many latencies a variant's histogram holds (the variants must agree)."""
    total = 0
    for _, v in dist.items():
        total += int.from_bytes(v[:8], sys.byteorder)
    return total


def measure(count, rounds):
    """Each round runs every variant alone (attached by itself, in a rotating order), so no
    variant warms the caches for another."""
    from bench import kstats, procs
    from tinytrace.kernel import bpf
    from tinytrace.session import Session
    errors = {}
    results = []
    counts = {}
    stats_fd = bpf.call(BPF_ENABLE_STATS, bytearray(struct.pack("<I", 0)))
    try:
        for r in range(rounds):
            order = ORDER[r % len(ORDER):] + ORDER[:r % len(ORDER)]
            for variant in order:
                if variant in errors:
                    continue
                with Session() as session:
                    names, counter = build(session, variant, errors)
                    if counter is None:
                        continue
                    before = kstats.tracer_programs(os.getpid())
                    wl = procs.run_workload(sys.executable,
                                            os.path.join(ROOT, "bench", "workload.py"),
                                            ["pingpong", "--count", str(count)])
                    after = kstats.tracer_programs(os.getpid())
                    counts[variant] = counts.get(variant, 0) + counter()
                rows = kstats.program_deltas(before, after)
                if names is None:
                    # the shipped tool's programs (tp_btf attachments are raw tracepoints)
                    # a program on several tracepoints (one probe body for sched_wakeup and
                    # sched_wakeup_new) is listed under its points joined by '+'
                    found = dict(("+".join(p.split(":")[-1] for p in row["attach"]), row)
                                 for row in rows if row["attach"] and
                                 all(p.split(":")[-1].startswith("sched_")
                                     for p in row["attach"]))
                else:
                    by_name = dict((row["name"], row) for row in rows)
                    found = dict((ev, by_name.get(pn)) for ev, pn in names.items())
                for event, row in found.items():
                    if row is None:
                        continue
                    results.append({"round": r, "variant": variant, "event": event,
                                    "run_cnt": row["run_cnt"],
                                    "run_time_ns": row["run_time_ns"],
                                    "ns_per_event": row["ns_per_event"],
                                    "xlated_insns": row["xlated_insns"],
                                    "jited_bytes": row["jited_bytes"], "workload": wl})
    finally:
        os.close(stats_fd)
    return results, errors, counts


def summarize(results):
    from bench.stats import median
    out = {}
    for r in results:
        key = (r["variant"], r["event"])
        e = out.setdefault(key, {"ns": [], "cnt": [], "insns": r["xlated_insns"]})
        e["ns"].append(r["ns_per_event"])
        e["cnt"].append(r["run_cnt"])
    return dict((k, {"ns": median(v["ns"]), "events": median(v["cnt"]), "insns": v["insns"]})
                for k, v in out.items())


def table(summary, errors, counts):
    order = ORDER
    lines = ["| variant | event | ns/event (median) | insns | events/round | latencies "
             "recorded (all rounds) |", "|---|---|--:|--:|--:|--:|"]
    for v in order:
        if v in errors:
            lines.append("| %s | – | refused: %s | – | – | – |" % (
                v, errors[v].replace("|", "\\|")))
            continue
        events = sorted(set(e for (vv, e) in summary if vv == v),
                        key=lambda e: (e != "sched_switch", e))
        for ev in events:
            s = summary.get((v, ev))
            if s is None or s["ns"] is None:
                continue
            lines.append("| %s | %s | %.0f | %d | %d | %s |" % (
                v, ev, s["ns"], s["insns"], s["events"],
                counts.get(v, "–") if ev == "sched_switch" else ""))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m bench.runqlat_variants",
                                description="runqlat's sched_switch program, variants side "
                                            "by side under the same events")
    p.add_argument("--count", type=int, default=50000, help="ping-pong round trips per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds (medians are reported)")
    p.add_argument("--json", default=os.path.join(ROOT, "bench", "results",
                                                  "runqlat_variants.json"))
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        sys.stderr.write("runqlat_variants: needs root\n")
        return 2
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    results, errors, counts = measure(a.count, a.rounds)
    summary = summarize(results)
    print(table(summary, errors, counts))
    with open(a.json, "w") as f:
        json.dump({"count": a.count, "rounds": a.rounds, "errors": errors,
                   "latencies_recorded": counts,
                   "summary": [dict(variant=k[0], event=k[1], **v) for k, v in
                               sorted(summary.items())],
                   "results": results}, f, indent=1, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
