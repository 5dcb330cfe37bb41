"""docs/benchmarks.md from a results file (pure: data in, markdown out; tested).

The generated part sits between ``<!-- bench:begin -->`` and ``<!-- bench:end -->``; the
rest of the file (the hand-written analysis) is kept as it is when the block is replaced.
"""
import os

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"

MIN_EVENTS = 100         # per-event figures over fewer events per run are marked, not judged
BCC_RUNQLAT_NS = 189.0   # best peer figure: BCC runqlat's sched_switch (raw tracepoint)

TARGETS = {"start_ms": 50.0, "rss_mb": 20.0, "peer_factor": 1.2}


def fmt(x, digits=1, unit=""):
    if x is None:
        return "–"
    if isinstance(x, float) and digits == 0:
        return "%d%s" % (round(x), unit)
    return ("%." + str(digits) + "f%s") % (x, unit)


def fmt_ratio(r):
    return "–" if r is None else "%.2f×" % r


def fmt_ratios(rs):
    xs = [r for r in rs if r is not None]
    if not xs:
        return "–"
    return " ".join("%.2f" % r for r in xs)


def _cell(case, side, value, digits=1):
    st = case.get("status", {}).get(side)
    if st == "missing":
        return "missing"
    if st == "error":
        return "error"
    return fmt(value, digits)


def _table(header, rows, left=(0,)):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i in left else "--:" for i in range(len(header))) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def _md_escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def run_section(d):
    m = d.get("machine", {})
    mem = m.get("mem_kb")
    lines = [
        "Run of %s (%s mode: %d warm-up run(s) per side, then %d pairs; %.0f s in all)." % (
            m.get("date", "?"), "quick" if d.get("quick") else "default", d.get("warmup", 0),
            d.get("pairs", 0), d.get("elapsed_s") or 0),
        "",
        "- machine: %s, %s CPUs, %s, %s" % (
            m.get("cpu_model", "?"), m.get("cpus", "?"),
            "%.1f GB RAM" % (mem / 1048576.0) if mem else "? RAM", m.get("machine", "?")),
        "- kernel %s; %s; BPF JIT %s" % (m.get("kernel", "?"), m.get("os", "?"),
                                         "on" if m.get("jit") in ("1", "2") else m.get("jit")),
        "- tinytrace %s (%s files modified in the checkout) on Python %s (%s), cffi %s" % (
            m.get("tinytrace_commit", "?"), m.get("tinytrace_dirty_files", 0),
            m.get("python", "?"), m.get("python_path", "?"), m.get("cffi", "?")),
        "- %s" % (m.get("bpftrace") or "bpftrace ?"),
    ]
    it = m.get("interpreter") or {}
    if it.get("clean_venv"):
        pth = ", ".join(os.path.basename(p) for p in it.get("machine_pth_with_code", []))
        lines.append("- tinytrace ran on a clean venv of %s: `site` %s ms there, %s ms in the "
                     "interpreter itself (.pth files that run code: %s)" % (
                         it.get("machine_python", "?"), fmt(it.get("venv_site_ms")),
                         fmt(it.get("machine_site_ms")), pth or "none"))
    return "\n".join(lines)


def cases_note(d):
    rows = []
    for c in d.get("cases", []):
        what = "`%s`" % _md_escape(c["program"]) if c.get("program") else "tool"
        size = "%d %s" % (c["size"], c["workload"])
        if c.get("rate"):
            size += " at %d/s" % c["rate"]
        st = c.get("status", {})
        errs = c.get("errors", {})
        tt = st.get("tinytrace", "?")
        if tt == "error" and errs.get("tinytrace"):
            tt += ": " + _md_escape(errs["tinytrace"])[:120]
        bt = st.get("bpftrace", "?")
        if bt == "error" and errs.get("bpftrace"):
            bt += ": " + _md_escape(errs["bpftrace"])[:120]
        for side in ("tinytrace", "bpftrace"):
            early = [r for r in c["runs"].get(side, []) if r.get("status") == "ok" and
                     r.get("attached_at_marker") == 0]
            if early:
                if side == "tinytrace":
                    tt += " (attached line before any probe was attached in %d runs)" % len(early)
                else:
                    bt += " (attached line before any probe was attached in %d runs)" % len(early)
        load = c.get("loadavg") or []
        load = " → ".join(fmt(x, 1) for x in load) if load else "–"
        rows.append([c["name"], what, size, tt, bt, load, _md_escape(c.get("note", ""))])
    return _table(["case", "program", "workload", "tinytrace", "bpftrace", "load avg",
                   "note"], rows, left=(0, 1, 2, 3, 4, 6))


def _summary(c, key):
    return c.get("summary", {}).get(key, {})


def _min_of(c, side, key):
    from bench.stats import spread
    return spread([r.get(key) for r in c.get("runs", {}).get(side, [])
                   if r.get("status") == "ok"])[0]


def start_table(d):
    rows = []
    for c in d.get("cases", []):
        s = _summary(c, "start_to_attached_ms")
        cells = []
        for side in ("tinytrace", "bpftrace"):
            cell = _cell(c, side, s.get(side))
            low = _min_of(c, side, "start_to_attached_ms")
            if s.get(side) is not None and low is not None:
                cell += " (%s)" % fmt(low)
            cells.append(cell)
        rows.append([c["name"]] + cells + [fmt_ratio(s.get("ratio")),
                                           fmt_ratios(s.get("ratios", []))])
    return _table(["case", "tinytrace ms (min)", "bpftrace ms (min)", "ratio", "pair ratios"],
                  rows, left=(0, 4))


def stop_table(d):
    rows = []
    for c in d.get("cases", []):
        s = _summary(c, "stop_ms")
        if not s:
            continue
        rows.append([c["name"], _cell(c, "tinytrace", s.get("tinytrace"), 0),
                     _cell(c, "bpftrace", s.get("bpftrace"), 0), fmt_ratio(s.get("ratio"))])
    if not rows:
        return "Not measured in this run."
    return _table(["case", "tinytrace exit ms", "bpftrace exit ms", "ratio"], rows)


def memory_table(d):
    rows = []
    for c in d.get("cases", []):
        r = _summary(c, "maxrss_kb")
        p = _summary(c, "start_cpu_ms")
        mb = lambda v: None if v is None else v / 1024.0  # noqa: E731
        rows.append([c["name"], _cell(c, "tinytrace", mb(r.get("tinytrace"))),
                     _cell(c, "bpftrace", mb(r.get("bpftrace"))), fmt_ratio(r.get("ratio")),
                     _cell(c, "tinytrace", p.get("tinytrace")),
                     _cell(c, "bpftrace", p.get("bpftrace")), fmt_ratio(p.get("ratio"))])
    return _table(["case", "tinytrace RSS MB", "bpftrace RSS MB", "ratio",
                   "tinytrace start CPU ms", "bpftrace start CPU ms", "ratio"], rows)


def rss_floor_note(d):
    from bench.stats import median
    floors = [r.get("rss_floor_kb") for c in d.get("cases", []) for side in c["runs"].values()
              for r in side if r.get("status") == "ok"]
    m = median(floors)
    if m is None:
        return ""
    return ("The launcher's RSS when it forks a tracer (the lowest ru_maxrss a tracer can "
            "report) was %.1f MB; VmHWM read just before each tracer was stopped agrees "
            "with ru_maxrss (see the JSON)." % (m / 1024.0))


def per_event_table(d):
    rows = []
    for c in d.get("cases", []):
        pts = _summary(c, "attach_points")
        if not pts:
            rows.append([c["name"], "–", _cell(c, "tinytrace", None), "–",
                         _cell(c, "bpftrace", None), "–", "–", "–"])
            continue
        for key, p in sorted(pts.items()):
            ins = p.get("insns", {})
            ev = p.get("events", {})
            events = ev.get("bpftrace") if ev.get("bpftrace") is not None else ev.get(
                "tinytrace")
            tt = fmt(p.get("tinytrace_ns"), 0) if "tinytrace" in ins else \
                _cell(c, "tinytrace", None) if c["status"].get("tinytrace") != "ok" else "–"
            bt = fmt(p.get("bpftrace_ns"), 0) if "bpftrace" in ins else \
                _cell(c, "bpftrace", None) if c["status"].get("bpftrace") != "ok" else "–"
            note = ""
            if events is not None and events < MIN_EVENTS:
                note = " (no events)" if events == 0 else " (few events)"
            rows.append([c["name"], key + note, tt,
                         ins.get("tinytrace", "–"), bt, ins.get("bpftrace", "–"),
                         fmt_ratio(p.get("ratio")), fmt(events, 0)])
    return _table(["case", "attach point", "tinytrace ns/event", "insns",
                   "bpftrace ns/event", "insns", "ratio", "events/run"], rows, left=(0, 1))


def cpu_table(d):
    rows = []
    for c in d.get("cases", []):
        s = _summary(c, "cpu_ms_per_mevents")
        t = _summary(c, "total_cpu_s")
        rows.append([c["name"], c.get("primary_label", ""),
                     _cell(c, "tinytrace", s.get("tinytrace")),
                     _cell(c, "bpftrace", s.get("bpftrace")), fmt_ratio(s.get("ratio")),
                     _cell(c, "tinytrace", t.get("tinytrace"), 2),
                     _cell(c, "bpftrace", t.get("bpftrace"), 2)])
    return _table(["case", "events counted", "tinytrace ms/M events", "bpftrace ms/M events",
                   "ratio", "tinytrace CPU s/run", "bpftrace CPU s/run"], rows, left=(0, 1))


def lost_table(d):
    lost = d.get("lost")
    if not lost:
        return "Not measured in this run."
    rows = []
    for side in ("tinytrace", "bpftrace"):
        if lost.get("status", {}).get(side) == "missing":
            rows.append(["all", side, "missing", "–", "–", "–", "–"])
    for r in lost.get("runs", []):
        if r.get("status") != "ok":
            rows.append([r["target_rate"], r["side"], "error: " +
                         _md_escape(r.get("error", ""))[:80], "–", "–", "–", "–"])
            continue
        rows.append([r["target_rate"], r["side"], fmt(r.get("achieved_rate"), 0),
                     r["generated"], r["captured"], r["lost"], r["unaccounted"]])
    return _table(["opens/s asked", "tracer", "opens/s achieved", "generated", "captured",
                   "lost (reported)", "unaccounted"], rows, left=(1,))


PHASE_ORDER = ("import", "options", "metadata", "features", "compile", "assemble", "maps",
               "load", "attach", "buffers", "other")


def phases_table(d):
    prof = d.get("profile", {})
    rows = []
    for name, p in prof.items():
        ph = p.get("phases")
        if not ph:
            continue
        s = ph["phases_s"]
        rows.append([name, fmt(ph.get("interpreter_start_s", 0) * 1000)] +
                    [fmt(s.get(k, 0.0) * 1000) for k in PHASE_ORDER] +
                    [fmt(ph["main_to_marker_s"] * 1000)])
    if not rows:
        return "Not measured in this run."
    return _table(["case", "interpreter"] + list(PHASE_ORDER) + ["main → attached"], rows)


def import_table(d, top=5):
    prof = d.get("profile", {})
    rows = []
    for name, p in prof.items():
        it = p.get("importtime")
        if not it:
            continue
        tops = ", ".join("%s %.1f" % (m, us / 1000.0) for m, us in it["top_cumulative"][:top])
        rows.append([name, fmt(it["total_us"] / 1000.0), fmt(it["tinytrace_us"] / 1000.0),
                     it.get("modules", "–"), _md_escape(tops)])
    if not rows:
        return "Not measured in this run."
    return _table(["case", "all imports ms", "tinytrace's own ms", "modules",
                   "top-level imports, cumulative ms"], rows, left=(0, 4))


def compile_table(d):
    prof = d.get("profile", {})
    rows = []
    for name, p in prof.items():
        ph = (p.get("phases") or {}).get("phases_s", {})
        tt_compile = None
        if ph:
            tt_compile = (ph.get("compile", 0.0) + ph.get("assemble", 0.0)) * 1000
        dry = p.get("tinytrace_dry_run_s")
        base = p.get("tinytrace_baseline_s")
        bdry = p.get("bpftrace_dry_run_s")
        bbase = p.get("bpftrace_baseline_s")
        rows.append([name, fmt(tt_compile), fmt(None if dry is None else dry * 1000),
                     fmt(None if base is None else base * 1000),
                     fmt(None if bdry is None else bdry * 1000),
                     fmt(None if bbase is None else bbase * 1000)])
    if not rows:
        return "Not measured in this run."
    return _table(["case", "tinytrace compile+assemble ms", "tinytrace -d wall ms",
                   "tinytrace --version wall ms", "bpftrace --emit-elf wall ms",
                   "bpftrace --version wall ms"], rows)


def areas_table(d, top=6):
    prof = d.get("profile", {})
    rows = []
    for name, p in prof.items():
        pr = (p.get("profile") or {}).get("profile")
        if not pr:
            continue
        total = pr.get("total_s") or sum(pr["areas_s"].values()) or 1.0
        areas = sorted(pr["areas_s"].items(), key=lambda kv: -kv[1])[:top]
        rows.append([name, fmt(total * 1000), _md_escape(", ".join(
            "%s %.0f%%" % (k, 100.0 * v / total) for k, v in areas))])
    if not rows:
        return "Not measured in this run."
    return _table(["case", "profiled ms", "self time by area (builtins charged to callers)"],
                  rows, left=(0, 2))


OVERHEAD = "benchmark timers (overhead)"


def steady_table(d, top=4):
    prof = d.get("profile", {})
    rows = []
    for name, p in prof.items():
        st = p.get("steady")
        if not st:
            continue
        overhead = st["areas_s"].get(OVERHEAD, 0.0)
        total = (st.get("total_s") or 0.0) - overhead
        ev = st.get("events") or 0
        areas = sorted(((k, v) for k, v in st["areas_s"].items() if k != OVERHEAD),
                       key=lambda kv: -kv[1])[:top]
        funcs = ", ".join("%s %.0f%%" % (f.split("/")[-1], 100.0 * t / total)
                          for f, t, _ in st["top_self"][:top]) if total else "–"
        rows.append([name, ev, fmt(total * 1000),
                     _md_escape(", ".join("%s %.0f%%" % (k, 100.0 * v / total)
                                          for k, v in areas) if total else "–"),
                     _md_escape(funcs)])
    if not rows:
        return "Not measured in this run."
    return _table(["case", "events handled", "profiled CPU ms", "by area",
                   "top functions (self time)"], rows, left=(0, 3, 4))


def sizes_table(d):
    s = d.get("sizes")
    if not s:
        return "Not measured in this run."
    kb = lambda b: None if b is None else b / 1024.0  # noqa: E731
    tt = s.get("tinytrace", {})
    cffi = (s.get("cffi") or {}).get("bytes")
    pyc = (s.get("pycparser") or {}).get("bytes")
    rows = [["tinytrace, installed (sources + .pyc)", fmt(kb(tt.get("installed_bytes")), 0)],
            ["tinytrace sources only", fmt(kb(tt.get("source_bytes")), 0)]]
    if s.get("tinytrace_pyz_bytes"):
        rows.append(["tinytrace.pyz (single-file zipapp)", fmt(kb(s["tinytrace_pyz_bytes"]), 0)])
    rows.append(["cffi %s" % (s.get("cffi") or {}).get("version", "?"), fmt(kb(cffi), 0)])
    rows.append(["pycparser (pip installs it with cffi; unused at run time)", fmt(kb(pyc), 0)])
    if tt.get("installed_bytes") and cffi:
        rows.append(["**tinytrace + cffi (+ pycparser)**", "**%s** (%s)" % (
            fmt(kb(tt["installed_bytes"] + cffi), 0),
            fmt(kb(tt["installed_bytes"] + cffi + (pyc or 0)), 0))])
    bt = s.get("bpftrace")
    if bt:
        rows.append(["bpftrace package", fmt(bt["package_kb"], 0)])
        rows.append(["**bpftrace + dependency closure** (%d packages)" % bt["closure_packages"],
                     "**%s**" % fmt(bt["closure_kb"], 0)])
        rows.append(["bpftrace closure beyond python3's (%d packages)" %
                     bt["beyond_python3_packages"], fmt(bt["beyond_python3_kb"], 0)])
        if s.get("python3_closure_kb"):
            rows.append(["python3 + its closure, for reference (%d packages)" %
                         s.get("python3_closure_packages", 0),
                         fmt(s["python3_closure_kb"], 0)])
    out = _table(["what", "KiB"], rows)
    if bt and bt.get("largest"):
        out += "\n\nLargest packages in bpftrace's closure (KiB): " + ", ".join(
            "%s %d" % (n, k) for n, k in bt["largest"]) + "."
    return out


def _verdict(ok):
    return "meets" if ok else "misses"


def targets_section(d):
    lines = []
    cases = d.get("cases", [])

    def tt_ok(c):
        return c.get("status", {}).get("tinytrace") == "ok"

    measured = [c for c in cases if tt_ok(c)]
    missing = [c["name"] for c in cases if c.get("status", {}).get("tinytrace") == "missing"]
    failed = [c["name"] for c in cases if c.get("status", {}).get("tinytrace") == "error"]
    if missing:
        lines.append("- Not measurable yet (tinytrace tool missing): %s." % ", ".join(missing))
    if failed:
        lines.append("- tinytrace failed to run: %s (see the cases table)." % ", ".join(failed))
    # start-up
    parts = []
    for c in measured:
        v = _summary(c, "start_to_attached_ms").get("tinytrace")
        if v is not None:
            low = _min_of(c, "tinytrace", "start_to_attached_ms")
            extra = "" if low is None or v <= TARGETS["start_ms"] else \
                "; fastest run %s" % fmt(low, 0, " ms")
            parts.append("%s %s (%s%s)" % (c["name"], fmt(v, 0, " ms"),
                                           _verdict(v <= TARGETS["start_ms"]), extra))
    if parts:
        lines.append("- start-to-attached ≤ 50 ms: " + "; ".join(parts) + ".")
    parts = []
    for c in measured:
        v = _summary(c, "maxrss_kb").get("tinytrace")
        if v is not None:
            parts.append("%s %s (%s)" % (c["name"], fmt(v / 1024.0, 1, " MB"),
                                         _verdict(v / 1024.0 <= TARGETS["rss_mb"])))
    if parts:
        lines.append("- peak RSS ≤ 20 MB: " + "; ".join(parts) + ".")
    parts = []
    for c in measured:
        for key, p in sorted(_summary(c, "attach_points").items()):
            if p.get("tinytrace_ns") is None or p.get("bpftrace_ns") is None:
                continue
            ev = [v for v in (p.get("events") or {}).values() if v is not None]
            if ev and min(ev) < MIN_EVENTS:
                continue
            parts.append("%s %s %s vs %s (%s)" % (
                c["name"], key, fmt(p["tinytrace_ns"], 0), fmt(p["bpftrace_ns"], 0, " ns"),
                _verdict(p["tinytrace_ns"] <= p["bpftrace_ns"])))
    if parts:
        lines.append("- per-event cost ≤ bpftrace's: " + "; ".join(parts) + ".")
    for c in measured:
        if c["name"] != "runqlat":
            continue
        p = _summary(c, "attach_points").get("sched_switch")
        if p and p.get("tinytrace_ns") is not None:
            lim = BCC_RUNQLAT_NS * TARGETS["peer_factor"]
            lines.append("- runqlat sched_switch within 1.2× of BCC's 189 ns (≤ %.0f ns): "
                         "%s ns (%s)." % (lim, fmt(p["tinytrace_ns"], 0),
                                          _verdict(p["tinytrace_ns"] <= lim)))
    lost = d.get("lost") or {}
    at50 = [r for r in lost.get("runs", []) if r.get("side") == "tinytrace" and
            r.get("target_rate") == 50000 and r.get("status") == "ok"]
    if at50:
        worst = max(r["lost"] + max(0, r["unaccounted"]) for r in at50)
        lines.append("- zero lost events at 50k opens/s: worst run %d lost or missing (%s)." % (
            worst, _verdict(worst == 0)))
    elif lost.get("status", {}).get("tinytrace") == "missing":
        lines.append("- zero lost events at 50k opens/s: not measurable (no tinytrace "
                     "opensnoop yet).")
    parts = []
    for c in measured:
        s = _summary(c, "cpu_ms_per_mevents")
        if s.get("tinytrace") is None or s.get("bpftrace") is None:
            continue
        digits = 0 if max(s["tinytrace"], s["bpftrace"]) >= 10 else 1
        parts.append("%s %s vs %s ms (%s)" % (c["name"], fmt(s["tinytrace"], digits),
                                              fmt(s["bpftrace"], digits),
                                              _verdict(s["tinytrace"] <= s["bpftrace"])))
    if parts:
        lines.append("- tracer CPU per million events ≤ bpftrace's: " + "; ".join(parts) + ".")
    return "\n".join(lines) if lines else "Nothing measured."


METHOD = """\
How each figure is taken (bench/harness.py; all tracers are started through bench/launch.py):

- **start-to-attached**: from just before fork+exec of the tracer to the moment the harness
  reads the line the tracer prints once its probes are live: tinytrace tools print
  "Tracing ..." (or BCC's column header) after attaching; bpftrace 0.17 prints
  "Attaching N probes..." *before* loading anything (checked with strace), so bpftrace is
  timed to the first line its BEGIN block prints, which runs after every probe is attached.
  The one-liners get `BEGIN { printf("Tracing...\\n"); }` on both sides for that reason.
- **exit**: from the SIGINT the harness sends (once the workload's output has drained) to
  the launcher's report of the tracer's exit: last output, detaching, freeing.
- **peak RSS**: wait4()'s ru_maxrss of the tracer, collected by the launcher (a small
  `python3 -S -I` process: the kernel keeps the pre-exec image's RSS as a floor of
  ru_maxrss, so tracers are not forked from the harness itself). **start CPU**: the
  tracer's CPU time (schedstat, all threads) when the attached line was read.
- **per-event cost**: `kernel.bpf_stats_enabled=1`; each program the tracer holds or has
  attached (fds in /proc/PID/fdinfo, BPF_TASK_FD_QUERY for attachments) is read with
  BPF_PROG_GET_FD_BY_ID + BPF_OBJ_GET_INFO_BY_FD before and after the workload;
  ns/event = Δrun_time_ns / Δrun_cnt, per attach point, median over the pairs. "insns" is
  the translated (post-verifier) instruction count.
- **CPU per million events**: tracer CPU (schedstat) from after start-up until its output
  has drained, divided by the run_cnt of the case's own event (e.g. sched_switch).
- Ratios are tinytrace / bpftrace, the median of the per-pair ratios (lower is better for
  tinytrace everywhere).
"""


def variants_table(v):
    """The table of ``python3 -m bench.runqlat_variants`` (its JSON), or a note."""
    if not v:
        return "Not measured yet: run `python3 -m bench.runqlat_variants`."
    rows = []
    order = ["shipped", "shipped-script", "assembler", "lazy-clock", "tp_btf",
             "tp_btf+task-storage"]
    summ = sorted(v.get("summary", []), key=lambda r: (
        order.index(r["variant"]) if r["variant"] in order else 99, r["event"]))
    counts = v.get("latencies_recorded", {})
    for r in summ:
        few = r.get("events") is not None and r["events"] < MIN_EVENTS
        rows.append([r["variant"], r["event"] + (" (few events)" if few else ""),
                     fmt(r.get("ns"), 0), r.get("insns", "–"), fmt(r.get("events"), 0),
                     counts.get(r["variant"], "–") if r["event"] == "sched_switch" else ""])
    for variant, err in sorted(v.get("errors", {}).items()):
        rows.append([variant, "refused: " + _md_escape(err), "–", "–", "–", "–"])
    intro = ("%d rounds of %d ping-pong round trips; in each round every variant runs alone "
             "(rotating order):\n\n" % (v.get("rounds", 0), v.get("count", 0)))
    return intro + _table(["variant", "event", "ns/event (median)", "insns", "events/round",
                           "latencies recorded"], rows, left=(0, 1))


def render(d, variants=None):
    parts = [
        BEGIN,
        "<!-- generated by `python3 -m bench`; edits inside this block are overwritten -->",
        "",
        "## Results",
        "",
        run_section(d),
        "",
        METHOD,
        "### Cases",
        "",
        cases_note(d),
        "",
        "### 1. Start-to-attached (median ms, the fastest run in brackets)",
        "",
        start_table(d),
        "",
        "Exit (median ms from Ctrl-C -- SIGINT -- to the tracer's exit: last output, "
        "detaching, freeing):",
        "",
        stop_table(d),
        "",
        "### 2. Peak RSS and CPU time spent starting (medians)",
        "",
        memory_table(d),
        "",
        rss_floor_note(d),
        "",
        "### 3. In-kernel cost per event (median ns per program run)",
        "",
        per_event_table(d),
        "",
        "### 4. Tracer CPU in steady state",
        "",
        cpu_table(d),
        "",
        "### 5. Lost events: opensnoop under paced opens",
        "",
        lost_table(d),
        "",
        "### 6. Import time, start-up phases and compile time (tinytrace)",
        "",
        "Imports (`python -X importtime` to the attached line; of 3 runs, the one with the "
        "median total):",
        "",
        import_table(d),
        "",
        "Start-up phases (bench/phases.py, wall ms, exclusive; of 3 runs, the one with the "
        "median total):",
        "",
        phases_table(d),
        "",
        "Compile time: tinytrace's compile+assemble phases above; dry runs on both sides "
        "(median of 3, each including process start-up; the --version runs are the "
        "start-up floor):",
        "",
        compile_table(d),
        "",
        "cProfile of one start-up (slows Python code; proportions only):",
        "",
        areas_table(d),
        "",
        "User-space CPU per event in steady state (cProfile on CPU time, from the attached "
        "line to the end of a run of the case's workload; cases that print a line per "
        "event).  The profiler multiplies the cost of each Python call, so only the "
        "proportions mean something; the real CPU per event is in table 4:",
        "",
        steady_table(d),
        "",
        "### 7. Size on disk",
        "",
        sizes_table(d),
        "",
        "### runqlat's sched_switch: variants (`python3 -m bench.runqlat_variants`)",
        "",
        variants_table(variants),
        "",
        "### Targets: where we stand",
        "",
        targets_section(d),
        "",
        END,
    ]
    return "\n".join(parts) + "\n"


HEADER = """\
# Benchmarks: tinytrace against bpftrace

`python3 -m bench` (as root, from the repository root) measures tinytrace and bpftrace side
by side and rewrites the block below; raw numbers go to bench/results/latest.json.
`python3 -m bench --quick` is a smoke test (writes /tmp/ttbench-quick.json only).
"""


def merge(existing, block):
    """Replace the generated block in ``existing`` (or append it after a header)."""
    if existing and BEGIN in existing and END in existing:
        head, rest = existing.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        return head + block.rstrip("\n") + tail
    if existing:
        return existing.rstrip("\n") + "\n\n" + block
    return HEADER + "\n" + block


def write_docs(data, path, variants_json=None):
    existing = None
    if os.path.exists(path):
        with open(path) as f:
            existing = f.read()
    if variants_json is None:
        variants_json = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                     "runqlat_variants.json")
    variants = None
    if os.path.exists(variants_json):
        import json
        with open(variants_json) as f:
            variants = json.load(f)
    text = merge(existing, render(data, variants))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


COMPARED = (("start_to_attached_ms", "start ms", 1), ("maxrss_kb", "RSS kB", 0),
            ("start_cpu_ms", "start CPU ms", 1), ("primary_ns_per_event", "ns/event", 0),
            ("cpu_ms_per_mevents", "CPU ms/M events", 1))


def compare(old, new):
    """Markdown: for every case in both results, each figure's tinytrace median (and the
    tinytrace/bpftrace ratio) before and after."""
    olds = dict((c["name"], c) for c in old.get("cases", []))
    rows = []
    for c in new.get("cases", []):
        o = olds.get(c["name"])
        if o is None:
            continue
        for key, label, digits in COMPARED:
            a = o.get("summary", {}).get(key, {})
            b = c.get("summary", {}).get(key, {})
            if a.get("tinytrace") is None and b.get("tinytrace") is None:
                continue
            change = None
            if a.get("tinytrace") and b.get("tinytrace") is not None:
                change = b["tinytrace"] / a["tinytrace"]
            rows.append([c["name"], label, fmt(a.get("tinytrace"), digits),
                         fmt(b.get("tinytrace"), digits), fmt_ratio(change),
                         fmt_ratio(a.get("ratio")), fmt_ratio(b.get("ratio"))])
    head = "%s (%s) → %s (%s)\n\n" % (
        old.get("machine", {}).get("date", "?"), old.get("machine", {}).get(
            "tinytrace_commit", "?"), new.get("machine", {}).get("date", "?"),
        new.get("machine", {}).get("tinytrace_commit", "?"))
    if not rows:
        return head + "No case in common."
    return head + _table(["case", "figure", "tinytrace before", "tinytrace after", "after/before",
                          "vs bpftrace before", "vs bpftrace after"], rows, left=(0, 1))
