"""The benchmark run: tinytrace against bpftrace, side by side, in one command.

    python3 -m bench [--quick] [--pairs N] [--only CASE,...] [...]     (as root)

Order of a run:
1. make sure bpftrace is installed (``apt-get install -y bpftrace`` unless --no-install),
   build the workload's files, switch ``kernel.bpf_stats_enabled`` on (remembering the old
   value);
2. for each case (tools, then one-liners): one warm-up run per side, then N pairs, tinytrace
   then bpftrace each time.  A run starts the tracer through ``launch.py``, waits for its
   "attached" line, snapshots its programs' statistics and its CPU time, runs the workload,
   waits for the output to drain, snapshots again, stops the tracer with SIGINT and collects
   wait4()'s rusage;
3. lost events: opensnoop at 20k, 50k and 100k opens/s on both sides;
4. where tinytrace's start-up time goes: ``-X importtime``, timed phases, cProfile
   (``bench/phases.py``), and dry-run compile times on both sides;
5. sizes on disk; then bench/results/latest.json and docs/benchmarks.md are written.

Whatever happens (Ctrl-C, SIGTERM, an exception), the ``finally`` stops every process the
harness started and puts ``bpf_stats_enabled`` back.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from bench import cases as C
from bench import kstats, procs, stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOAD = os.path.join(ROOT, "bench", "workload.py")
PHASES = os.path.join(ROOT, "bench", "phases.py")
RESULTS = os.path.join(ROOT, "bench", "results")
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
QUICK_JSON = "/tmp/ttbench-quick.json"   # smoke-test results stay out of the checkout

SETTLE_S = 0.3        # after the attached line, before the first snapshot
PROFILE_REPEAT = 3    # import-time and phase runs per case (the median one is kept)
ATTACH_TIMEOUT_S = 60.0


class UsageError(Exception):
    pass


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write("bench: %s (see --help)\n" % message)
        sys.exit(2)


def parse_args(argv):
    p = _Parser(
        prog="python3 -m bench",
        description="Benchmarks of tinytrace against bpftrace: start-up, memory, per-event "
                    "cost, lost events, import/compile time and size on disk.")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: small workloads, 2 pairs, one lost-events rate; writes "
                        "/tmp/ttbench-quick.json and leaves docs/benchmarks.md alone")
    p.add_argument("--pairs", type=int, help="measured pairs per case (default 7; quick 2)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up runs per side (default 1)")
    p.add_argument("--only", help="comma-separated cases to run (default: all): "
                   + ", ".join(c.replace(" ", "-") for c in C.case_names()))
    p.add_argument("--skip-lost", action="store_true", help="skip the lost-events figure")
    p.add_argument("--skip-profile", action="store_true",
                   help="skip the import/phase/profile/compile-time runs")
    p.add_argument("--lost-seconds", type=float, default=None,
                   help="seconds of paced opens per lost-events run (default 3; quick 1)")
    p.add_argument("--python", default=None,
                   help="interpreter that runs tinytrace, used as it is (default: a clean "
                        "venv of --venv-of, see bench/interp.py)")
    p.add_argument("--venv-of", default=sys.executable,
                   help="interpreter whose clean venv (cffi only, no foreign .pth files) "
                        "runs tinytrace when --python is not given (default %(default)s)")
    p.add_argument("--bpftrace", default=None, help="bpftrace binary (default: from PATH)")
    p.add_argument("--no-install", action="store_true",
                   help="do not apt-get install bpftrace when it is missing")
    p.add_argument("--json", help="where to write the raw results "
                                  "(default bench/results/latest.json; --quick: /tmp/ttbench-quick.json)")
    p.add_argument("--docs", help="markdown file to update (default docs/benchmarks.md; "
                                  "with --quick only when given)")
    p.add_argument("--no-docs", action="store_true", help="do not write the markdown")
    p.add_argument("--render", metavar="JSON",
                   help="only re-render the markdown from a results file, run nothing")
    p.add_argument("--compare", nargs="+", metavar="JSON",
                   help="compare two results files (OLD [NEW], NEW defaulting to "
                        "bench/results/latest.json), run nothing")
    a = p.parse_args(argv)
    if a.pairs is None:
        a.pairs = 2 if a.quick else 7
    if a.pairs < 1 or a.warmup < 0:
        raise UsageError("--pairs must be >= 1 and --warmup >= 0")
    if a.lost_seconds is None:
        a.lost_seconds = 1.0 if a.quick else 3.0
    if a.only:
        names = [n.strip() for n in a.only.split(",") if n.strip()]
        bad = [n for n in names if C.find_case(n) is None]
        if bad:
            raise UsageError("--only: unknown case %s (known: %s)" % (
                ", ".join(bad), ", ".join(c.replace(" ", "-") for c in C.case_names())))
        a.cases = [C.find_case(n) for n in names]
    else:
        a.cases = list(C.CASES)
    if a.json is None:
        a.json = QUICK_JSON if a.quick else os.path.join(RESULTS, "latest.json")
    if a.docs is None and not a.quick:
        a.docs = DOCS
    if a.no_docs:
        a.docs = None
    return a


# -- environment -----------------------------------------------------------------------------

def ensure_bpftrace(a):
    path = a.bpftrace or shutil.which("bpftrace")
    if path:
        return path
    if a.no_install:
        raise UsageError("bpftrace is not installed (apt-get install -y bpftrace, or drop "
                         "--no-install)")
    if not shutil.which("apt-get"):
        raise UsageError("bpftrace is not installed and there is no apt-get to install it")
    log("installing bpftrace: apt-get install -y bpftrace")
    r = subprocess.run(["apt-get", "install", "-y", "bpftrace"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    path = shutil.which("bpftrace")
    if r.returncode != 0 or not path:
        err = r.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UsageError("apt-get install -y bpftrace failed: %s" % (err[-1] if err else
                                                                     r.returncode))
    return path


def _run_text(argv, **kw):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
        return r.stdout.decode("utf-8", "replace").strip()
    except OSError:
        return None


def machine_info(a, bpftrace):
    info = {"kernel": platform.release(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            info["mem_kb"] = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    info["python"] = _run_text([a.python, "-c", "import sys; print(sys.version.split()[0])"])
    info["python_path"] = a.python
    info["cffi"] = _run_text([a.python, "-c", "import cffi; print(cffi.__version__)"])
    info["bpftrace"] = _run_text([bpftrace, "--version"])
    info["tinytrace_commit"] = _run_text(["git", "-C", ROOT, "describe", "--always",
                                          "--dirty"])
    status = _run_text(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])
    info["tinytrace_dirty_files"] = len(status.splitlines()) if status else 0
    info["jit"] = _read("/proc/sys/net/core/bpf_jit_enable")
    return info


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def choose_python(a):
    """Sets a.python; returns what to record about the choice."""
    from bench import interp
    info = {}
    base = a.python or a.venv_of
    us, pths = interp.site_cost(base)
    info["machine_python"] = base
    info["machine_site_ms"] = None if us is None else us / 1000.0
    info["machine_pth_with_code"] = pths
    if a.python is None:
        try:
            a.python = interp.clean_venv(a.venv_of, interp.default_venv_dir(a.venv_of))
        except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
            raise UsageError("cannot build the clean venv of %s: %s" % (a.venv_of, e))
        info["clean_venv"] = a.python
        us, _ = interp.site_cost(a.python)
        info["venv_site_ms"] = None if us is None else us / 1000.0
    return info


def tinytrace_tools(python):
    out = subprocess.run([python, "-m", "tinytrace", "--list", "--json"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if out.returncode != 0:
        raise UsageError("tinytrace --list failed: %s" % out.stderr.decode(
            "utf-8", "replace").strip().splitlines()[-1:])
    return {t["name"] for t in json.loads(out.stdout.decode())}


def prepare_files(a, tmp):
    paths = {"open_target": os.path.join(tmp, C.OPEN_TARGET)}
    with open(paths["open_target"], "w") as f:
        f.write("tinytrace benchmark\n")
    if any(c.workload == "bio" for c in a.cases):
        # on a block device, not tmpfs: /var/tmp by default
        d = "/var/tmp" if os.path.isdir("/var/tmp") else tmp
        paths["bio_file"] = os.path.join(d, "ttbench-%d-bio.dat" % os.getpid())
        procs.run_workload(a.python, WORKLOAD, ["bio-prepare", "--count", "16", "--path",
                                                paths["bio_file"]])
    return paths


# -- one run ---------------------------------------------------------------------------------

def _ms(s):
    return None if s is None else s * 1000.0


def run_once(case, side, argv, marker, a, paths, workload_args=None, expect=None,
             drain_cap=10.0):
    """One tracer run under the case's workload; returns the run record."""
    rec = {"side": side, "status": "ok"}
    t = procs.Tracer(argv, marker, count=case.count, cwd=ROOT, python=a.python)
    try:
        t.start()
        if not t.wait_attached(ATTACH_TIMEOUT_S):
            t.stop(timeout=5.0)
            rec.update(status="error", error=t.error_line(), exit_code=t.exit_code())
            return rec
        rec["start_to_attached_ms"] = _ms(t.start_to_attached_s)
        if t.t_first_line is not None:
            rec["first_line_ms"] = _ms(t.t_first_line - t.t_fork)
        rec["start_cpu_ms"] = None if t.cpu_at_marker_ns is None else t.cpu_at_marker_ns / 1e6
        # sanity check of the marker: probes must be attached once it is out
        rec["attached_at_marker"] = sum(len(p["attach"]) for p in
                                        kstats.tracer_programs(t.pid).values())
        time.sleep(SETTLE_S)
        before = kstats.tracer_programs(t.pid)
        cpu0 = kstats.task_cpu_ns(t.pid)
        count0, lost0 = t.out.count, t.lost()
        wl = procs.run_workload(a.python, WORKLOAD, workload_args or
                                C.workload_args(case, a.quick, paths))
        t_done = time.monotonic()
        expected = None
        if case.count:
            expected = count0 + lost0 + (expect if expect is not None else wl["count"])
        drained = t.wait_output(expected=expected, quiet=0.5 if case.count else 0.2,
                                cap=drain_cap, since=t_done)
        after = kstats.tracer_programs(t.pid)
        cpu1 = kstats.task_cpu_ns(t.pid)
        rec["hwm_kb"] = kstats.vm_hwm_kb(t.pid)
        rec["workload"] = wl
        rows = kstats.program_deltas(before, after)
        rec["programs"] = rows
        rec["attach_points"] = sum(len(r["attach"]) for r in rows)
        ev, ns = stats.per_event(rows, case.primary)
        rec["events"] = ev
        rec["primary_ns_per_event"] = (ns / ev) if ev else None
        if cpu0 is not None and cpu1 is not None:
            rec["steady_cpu_ms"] = (cpu1 - cpu0) / 1e6
            rec["cpu_ms_per_mevents"] = stats.cpu_per_million(cpu1 - cpu0, ev)
        if case.count:
            rec["captured"] = t.out.count - count0
            rec["lost"] = t.lost() - lost0
            rec["drained"] = drained
        ex = t.stop()
        if ex is None:
            rec.update(status="error", error="did not exit after SIGINT, SIGTERM, SIGKILL")
            return rec
        rec["exit_code"] = t.exit_code()
        rec["maxrss_kb"] = ex["maxrss_kb"]
        rec["rss_floor_kb"] = ex["rss_floor_kb"]
        rec["total_cpu_s"] = ex["utime"] + ex["stime"]
        rec["stop_ms"] = ex.get("stop_ms")
        rec["output_head"] = t.out.text_head()[:6]
        if rec["exit_code"] not in (0, 130, -signal.SIGINT):
            rec["status"] = "error"
            rec["error"] = "exit code %s after SIGINT: %s" % (rec["exit_code"], t.error_line())
        return rec
    finally:
        if t.exit is None and t.pid is not None:
            t.stop(timeout=3.0)


def _progress(case, label, side, rec):
    if rec["status"] != "ok":
        from tinytrace.output.escape import escape
        log("  %-18s %-9s %-10s %s: %s" % (case.name, label, side, rec["status"],
                                           escape(rec.get("error", ""))))
        return
    bits = ["start %6.1f ms" % rec["start_to_attached_ms"],
            "rss %5.1f MB" % (rec["maxrss_kb"] / 1024.0)]
    if rec.get("primary_ns_per_event") is not None:
        bits.append("%6.0f ns/ev" % rec["primary_ns_per_event"])
    if "captured" in rec:
        bits.append("captured %d lost %d" % (rec["captured"], rec["lost"]))
    log("  %-18s %-9s %-10s %s" % (case.name, label, side, "  ".join(bits)))


def run_case(case, a, paths, tools, bpftrace):
    tt_argv = C.tinytrace_argv(case, a.python, tools)
    bt_argv = C.bpftrace_argv(case, bpftrace)
    sides = {"tinytrace": (tt_argv, C.tinytrace_marker(case)),
             "bpftrace": (bt_argv, case.bt_marker)}
    res = {"name": case.name, "kind": case.kind, "workload": case.workload,
           "size": case.size(a.quick), "rate": case.rate, "primary": case.primary,
           "primary_label": case.label,
           "note": case.note, "program": case.program(),
           "argv": {k: (v[0][1:] if v[0] else None) for k, v in sides.items()},
           "status": {}, "runs": {"tinytrace": [], "bpftrace": []}, "warmup": {}}
    res["loadavg"] = [_loadavg()]
    live = {}
    for side, (argv, _) in sides.items():
        if argv is None:
            res["status"][side] = "missing"
        else:
            live[side] = True
    for i in range(a.warmup):
        for side in list(live):
            argv, marker = sides[side]
            rec = run_once(case, side, argv, marker, a, paths)
            _progress(case, "warm-up", side, rec)
            res["warmup"][side] = {"status": rec["status"], "error": rec.get("error")}
            if rec["status"] != "ok":
                res["status"][side] = "error"
                res.setdefault("errors", {})[side] = rec.get("error")
                del live[side]
    for i in range(a.pairs):
        for side in ("tinytrace", "bpftrace"):
            if side not in live:
                continue
            argv, marker = sides[side]
            rec = run_once(case, side, argv, marker, a, paths)
            _progress(case, "pair %d/%d" % (i + 1, a.pairs), side, rec)
            res["runs"][side].append(rec)
    for side in live:
        ok = [r for r in res["runs"][side] if r["status"] == "ok"]
        res["status"][side] = "ok" if ok else "error"
        if not ok and res["runs"][side]:
            res.setdefault("errors", {})[side] = res["runs"][side][-1].get("error")
    res["loadavg"].append(_loadavg())
    res["summary"] = summarize_case(res)
    return res


def _loadavg():
    """The 1-minute load average (other work on the machine shows up here)."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _values(runs, key):
    return [r.get(key) if r.get("status") == "ok" else None for r in runs]


FIGURES = ("start_to_attached_ms", "start_cpu_ms", "maxrss_kb", "primary_ns_per_event",
           "cpu_ms_per_mevents", "total_cpu_s", "stop_ms")


def summarize_case(res):
    tt, bt = res["runs"]["tinytrace"], res["runs"]["bpftrace"]
    n = max(len(tt), len(bt))
    tt = tt + [{}] * (n - len(tt))
    bt = bt + [{}] * (n - len(bt))
    out = {}
    for key in FIGURES:
        out[key] = stats.summarize(_values(tt, key), _values(bt, key))
    # per attach point: median ns/event and instruction counts, each side
    points = {}
    per_run = [(side, stats.by_attach_point(r["programs"]))
               for side, runs in (("tinytrace", tt), ("bpftrace", bt))
               for r in runs if r.get("status") == "ok"]
    # one side may run one program on two events (a+b) where the other has one per event:
    # the other side's a and b are then compared as one
    combined = set(k for _, pts in per_run for k in pts if "+" in k)
    for side, pts in per_run:
        for key in combined:
            stats.merge_points(pts, key)
    # the same work at different tracepoints (e.g. syscount at sys_exit / sys_enter)
    case = C.find_case(res.get("name", ""))
    for tt_key, bt_key in (case.equivalent if case is not None else ()):
        label = "%s / %s" % (tt_key, bt_key)
        for side, pts in per_run:
            stats.rename_points(pts, {tt_key if side == "tinytrace" else bt_key: label})
    for side, pts in per_run:
        for key, (cnt, ns, insns) in pts.items():
            p = points.setdefault(key, {"tinytrace": [], "bpftrace": [],
                                        "insns": {}, "events": {}})
            p[side].append(ns / cnt if cnt else None)
            p["insns"][side] = insns
            p["events"].setdefault(side, []).append(cnt)
    out["attach_points"] = {}
    for key, p in sorted(points.items()):
        out["attach_points"][key] = {
            "tinytrace_ns": stats.median(p["tinytrace"]),
            "bpftrace_ns": stats.median(p["bpftrace"]),
            "ratio": stats.ratio(stats.median(p["tinytrace"]), stats.median(p["bpftrace"])),
            "insns": p["insns"],
            "events": {s: stats.median(v) for s, v in p["events"].items()},
        }
    return out


# -- lost events -----------------------------------------------------------------------------

def run_lost(a, paths, tools, bpftrace):
    case = C.find_case("opensnoop")
    rates = C.LOST_RATES[:1] if a.quick else C.LOST_RATES
    pairs = 1 if a.quick else 2
    out = {"rates": list(rates), "seconds": a.lost_seconds, "runs": []}
    tt_argv = C.tinytrace_argv(case, a.python, tools)
    bt_argv = C.bpftrace_argv(case, bpftrace)
    out["status"] = {"tinytrace": "missing" if tt_argv is None else "ok",
                     "bpftrace": "missing" if bt_argv is None else "ok"}
    for rate in rates:
        n = int(rate * a.lost_seconds)
        nprocs = C.lost_procs(rate)
        wargs = C.workload_args(case, a.quick, paths, count=n, rate=rate, procs=nprocs)
        for i in range(pairs):
            for side, argv, marker in (("tinytrace", tt_argv, C.tinytrace_marker(case)),
                                       ("bpftrace", bt_argv, case.bt_marker)):
                if argv is None:
                    continue
                rec = run_once(case, side, argv, marker, a, paths, workload_args=wargs,
                               expect=n, drain_cap=30.0)
                rec["target_rate"] = rate
                rec["procs"] = nprocs
                _progress(case, "%dk/s" % (rate // 1000), side, rec)
                slim = {k: rec.get(k) for k in ("side", "status", "error", "target_rate",
                                                "procs", "captured", "lost", "workload",
                                                "drained", "maxrss_kb", "steady_cpu_ms")}
                if rec["status"] == "ok":
                    slim["generated"] = rec["workload"]["count"]
                    slim["achieved_rate"] = rec["workload"]["rate"]
                    slim["unaccounted"] = slim["generated"] - rec["captured"] - rec["lost"]
                out["runs"].append(slim)
    return out


# -- where the time goes ---------------------------------------------------------------------

def _timed_cmd(argv, repeat=3, cwd=None):
    """Median wall seconds of running argv to completion, and its last exit code."""
    times, code = [], None
    for _ in range(repeat):
        t = time.monotonic()
        r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           cwd=cwd)
        times.append(time.monotonic() - t)
        code = r.returncode
    return stats.median(times), code


def _wait_for(path, timeout):
    end = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.02)


def _until_marker(argv, marker, a, timeout=60.0, keep_stderr=False):
    """Start argv through the launcher, wait for the marker, stop it; returns the Tracer."""
    t = procs.Tracer(argv, marker, cwd=ROOT, python=a.python, keep_stderr=keep_stderr)
    try:
        t.start()
        t.wait_attached(timeout)
    finally:
        t.stop(timeout=5.0)
    return t


def profile_case(case, a, tools, bpftrace, tmp, paths):
    """Import time, phases, profile and dry-run compile times for one case."""
    from bench import parse
    out = {}
    tt_argv = C.tinytrace_argv(case, a.python, tools)
    if tt_argv is not None:
        marker = C.tinytrace_marker(case)
        args = tt_argv[3:]  # after python -m tinytrace
        # three runs each; the one with the median total is kept (a source file edited
        # meanwhile -- this checkout is shared -- costs one run a recompile, not the figure)
        runs = []
        for _ in range(PROFILE_REPEAT):
            t = _until_marker([a.python, "-X", "importtime"] + tt_argv[1:], marker, a,
                              keep_stderr=True)
            entries = parse.parse_importtime(b"\n".join(t.err.all).decode("utf-8", "replace"))
            if entries:
                summary = parse.importtime_summary(entries)
                summary["modules"] = len(entries)
                runs.append(summary)
            else:
                out["importtime_error"] = t.error_line()
        if runs:
            runs.sort(key=lambda r: r["total_us"])
            out["importtime"] = runs[len(runs) // 2]
            out["importtime"]["totals_us"] = [r["total_us"] for r in runs]
        for mode in ("phases", "profile"):
            reps = []
            for _ in range(PROFILE_REPEAT if mode == "phases" else 1):
                report = os.path.join(tmp, "phases-%s.json" % mode)
                if os.path.exists(report):
                    os.unlink(report)
                argv = [a.python, PHASES, "--report", report, "--marker",
                        marker.decode()] + (["--profile"] if mode == "profile" else []) + \
                    ["--"] + args
                t = _until_marker(argv, marker, a)
                if t.t_marker is not None:
                    _wait_for(report, 5.0)
                if os.path.exists(report):
                    with open(report) as f:
                        rep = json.load(f)
                    rep["interpreter_start_s"] = rep["t_start"] - t.t_fork
                    reps.append(rep)
                else:
                    out[mode + "_error"] = t.error_line()
            if reps:
                reps.sort(key=lambda r: r["interpreter_start_s"] + r["main_to_marker_s"])
                out[mode] = reps[len(reps) // 2]
        if case.count:
            report = os.path.join(tmp, "phases-steady.json")
            if os.path.exists(report):
                os.unlink(report)
            argv = [a.python, PHASES, "--report", report, "--marker", marker.decode(),
                    "--steady", "--"] + args
            rec = run_once(case, "tinytrace", argv, marker, a, paths)
            rep = None
            if os.path.exists(report):
                with open(report) as f:
                    rep = json.load(f).get("steady_profile")
            if rep is not None and rec["status"] == "ok":
                rep["events"] = rec.get("events")        # all the tracer handled
                rep["marked_events"] = rec.get("captured")  # the workload's own
                rep["cpu_ms_per_mevents"] = rec.get("cpu_ms_per_mevents")
                out["steady"] = rep
            else:
                out["steady_error"] = rec.get("error") or "no steady-state profile written"
        if case.kind == "one-liner":
            wall, code = _timed_cmd([a.python, "-m", "tinytrace", "-d", "-e", case.program()],
                                    cwd=ROOT)
            base, _ = _timed_cmd([a.python, "-m", "tinytrace", "--version"], cwd=ROOT)
            out["tinytrace_dry_run_s"] = wall if code == 0 else None
            out["tinytrace_baseline_s"] = base
    bt_argv = C.bpftrace_argv(case, bpftrace)
    if bt_argv is not None:
        elf = os.path.join(tmp, "dry.elf")
        wall, code = _timed_cmd([bpftrace, "--emit-elf", elf] + bt_argv[1:])
        base, _ = _timed_cmd([bpftrace, "--version"])
        out["bpftrace_dry_run_s"] = wall if code == 0 else None
        out["bpftrace_baseline_s"] = base
    return out


# -- the run ---------------------------------------------------------------------------------

class _Terminate(BaseException):
    pass


def _on_term(signum, frame):
    raise _Terminate()


def main(argv=None):
    try:
        a = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        log("bench: %s" % e)
        return 2
    if a.compare:
        from bench import report
        if len(a.compare) > 2:
            log("bench: --compare takes OLD [NEW]")
            return 2
        try:
            files = [a.compare[0], a.compare[1] if len(a.compare) > 1 else
                     os.path.join(RESULTS, "latest.json")]
            old, new = [json.load(open(p)) for p in files]
        except (OSError, ValueError) as e:
            log("bench: --compare: %s" % e)
            return 2
        sys.stdout.write(report.compare(old, new) + "\n")
        return 0
    if a.render:
        from bench import report
        with open(a.render) as f:
            data = json.load(f)
        for c in data.get("cases", []):
            c["summary"] = summarize_case(c)   # figures from the raw runs, as now computed
        report.write_docs(data, a.docs or DOCS)
        log("wrote %s" % (a.docs or DOCS))
        return 0
    if os.geteuid() != 0:
        log("bench: tracing needs root: run it as root (sudo python3 -m bench)")
        return 2
    try:
        bpftrace = ensure_bpftrace(a)
        interp_info = choose_python(a)
        tools = tinytrace_tools(a.python)
    except UsageError as e:
        log("bench: %s" % e)
        return 2
    old_handlers = {s: signal.signal(s, _on_term) for s in (signal.SIGTERM, signal.SIGHUP)}
    # Ctrl-C must reach us even when started with SIGINT ignored (a background job)
    old_handlers[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    tmp = tempfile.mkdtemp(prefix="ttbench-")
    old_stats = None
    stats_fd = None
    paths = {}
    t_begin = time.monotonic()
    data = {"version": 1, "quick": a.quick, "pairs": a.pairs, "warmup": a.warmup}
    try:
        data["machine"] = machine_info(a, bpftrace)
        data["machine"]["interpreter"] = interp_info
        paths = prepare_files(a, tmp)
        old_stats = kstats.bpf_stats(True)
        stats_fd = kstats.hold_stats()
        data["bpf_stats_enabled_before"] = old_stats
        log("tinytrace tools present: %s" % ", ".join(sorted(tools)))
        data["cases"] = []
        for case in a.cases:
            log("%s (%s, workload %s x%d)" % (case.name, case.kind, case.workload,
                                              case.size(a.quick)))
            data["cases"].append(run_case(case, a, paths, tools, bpftrace))
        if not a.skip_lost:
            log("lost events: opensnoop at %s opens/s" % ", ".join(
                str(r) for r in (C.LOST_RATES[:1] if a.quick else C.LOST_RATES)))
            data["lost"] = run_lost(a, paths, tools, bpftrace)
        if not a.skip_profile:
            log("where the time goes: importtime, phases, cProfile, dry-run compiles")
            # byte-compile first: import figures are about loading, not compiling
            subprocess.run([a.python, "-m", "compileall", "-q", "tinytrace", "asm", "tools"],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            data["profile"] = {}
            for case in a.cases:
                data["profile"][case.name] = profile_case(case, a, tools, bpftrace, tmp,
                                                          paths)
        data["sizes"] = __import__("bench.sizes", fromlist=["measure"]).measure(ROOT, a.python)
        data["elapsed_s"] = time.monotonic() - t_begin
    except (KeyboardInterrupt, _Terminate):
        log("bench: interrupted; stopping tracers and workloads")
        return 130
    finally:
        procs.reap_all()
        if stats_fd is not None:
            os.close(stats_fd)
        if old_stats is not None:
            try:
                # put the old value back -- unless someone else changed it since (the
                # machine is shared): then theirs stands
                if kstats.read_sysctl() == "1":
                    kstats.write_sysctl(old_stats)
            except OSError as e:
                log("bench: could not restore kernel.bpf_stats_enabled=%s: %s" % (
                    old_stats, e.strerror))
        for p in paths.values():
            if p.startswith("/var/tmp/"):
                try:
                    os.unlink(p)
                except OSError:
                    pass
        shutil.rmtree(tmp, ignore_errors=True)
        for s, h in old_handlers.items():
            signal.signal(s, h)
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    log("wrote %s (%.0f s)" % (a.json, data["elapsed_s"]))
    if a.docs:
        from bench import report
        report.write_docs(data, a.docs)
        log("wrote %s" % a.docs)
    return 0
