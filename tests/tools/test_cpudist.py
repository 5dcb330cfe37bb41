"""cpudist under a workload that alternates known on-CPU and off-CPU spells.

``on_off_cpu`` spins ``busy_ms`` and sleeps ``sleep_ms``, ``cycles`` times, and records its
own /proc schedstat over the run (on-CPU nanoseconds and times scheduled in).  With ``-p``
the tool sees only that process, so:

- on-CPU (``-e``): the spell count is at least the times it was scheduled in during the run,
  and the total is its on-CPU time (a little more: the tool also sees the hand-shake around
  the run);
- off-CPU (``-O -e``): at least ``cycles`` spells, together at least the time it slept;
- every sleep is an off-CPU spell of at least ``sleep_ms``.

Preemption splits spells on a loaded machine, so bucket-by-bucket timings are not checked.
The kernel skips a run of the tool's program when another BPF program is running on the
CPU, and counts it (recursion_misses; the tool prints the number on exit): each skipped
sched_switch loses at most two spells (the task leaving and the task arriving), so the
lower bounds allow two spells per skipped run.
"""
import json

import pytest

from tests.tools.util import ToolRun, parse_log2_hist, run_tool
from tests.workloads import on_off_cpu

pytestmark = pytest.mark.bpf

BUSY_MS, SLEEP_MS, CYCLES = 5, 5, 40


def _run(args, ready="Tracing"):
    with on_off_cpu(busy_ms=BUSY_MS, sleep_ms=SLEEP_MS, cycles=CYCLES) as w:
        run = ToolRun(["cpudist"] + args + ["-p", str(w.pid)], ready=ready)
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    return rec, run


def _lost_spells(run):
    """The spells the tool may have lost: two per run the kernel skipped."""
    from tinytrace.toolkit import skipped_in
    return 2 * skipped_in(run.stderr)


def _extension(text):
    # "avg = 2510 usecs, total: 251034 usecs, count: 100"
    for line in text.splitlines():
        if line.startswith("avg = "):
            parts = line.replace(",", "").split()
            return int(parts[2]), int(parts[5]), int(parts[8]), parts[3]
    raise AssertionError("no extension summary in:\n" + text)


def test_on_cpu_spells_and_total_match_schedstat():
    rec, run = _run(["-e"])
    assert "Tracing on-CPU time... Hit Ctrl-C to end." in run.stdout
    avg, total, count, unit = _extension(run.stdout)
    assert unit == "usecs"
    slices = rec.schedstat_delta.slices
    run_us = rec.schedstat_delta.run_ns // 1000
    # schedstat counts the arrivals between its two reads; the tool also sees the spell
    # in progress at the first read, and may miss the end of the last (the tool is stopped
    # right after the run) -- and schedstat and sched_switch have been seen to differ by
    # one on a loaded machine
    lost = _lost_spells(run)
    assert slices - 2 - lost <= count <= slices + 20, (count, rec.schedstat_delta,
                                                       run.stdout, run.stderr)
    # a lost spell is at most one busy period (and the hand-shake): BUSY_MS + 1 ms each
    assert run_us * 0.95 - lost * (BUSY_MS + 1) * 1000 <= total <= run_us + 200000, (
        total, rec.schedstat_delta, run.stderr)
    rows = parse_log2_hist(run.stdout)
    assert sum(n for _, _, n in rows) == count, run.stdout


def test_off_cpu_spells_cover_the_sleeps():
    rec, run = _run(["-O", "-e", "-m"])
    assert "Tracing off-CPU time... Hit Ctrl-C to end." in run.stdout
    avg, total, count, unit = _extension(run.stdout)
    assert unit == "msecs"
    sleeps = CYCLES - _lost_spells(run)         # the sleeps the tool surely saw
    assert count >= sleeps, (run.stdout, run.stderr)
    # each sleep is at least sleep_ms off the CPU (msecs truncate: >= sleep_ms - 1 each)
    assert total >= sleeps * (SLEEP_MS - 1), (run.stdout, run.stderr)
    rows = parse_log2_hist(run.stdout)
    assert sum(n for _, _, n in rows) == count, run.stdout
    # every sleep is one spell of at least sleep_ms: in the bucket of sleep_ms or above
    # (preemptions add shorter spells, a loaded machine may stretch a sleep)
    assert sum(n for lo, hi, n in rows if hi >= SLEEP_MS) >= sleeps, (run.stdout, run.stderr)


def test_per_process_and_per_thread_sections():
    rec, run = _run(["-P"])
    assert ("pid = %d tt-onoff" % rec.pid) in run.stdout, run.stdout
    sections = [l for l in run.stdout.splitlines() if l.startswith("pid = ")]
    assert len(sections) == 1, run.stdout
    rec, run = _run(["-L", "-O"])
    assert ("tid = %d tt-onoff" % rec.tid) in run.stdout, run.stdout
    # off-CPU per process: the process ID is kept beside the start time
    rec, run = _run(["-P", "-O", "-e"])
    sections = [l for l in run.stdout.splitlines() if l.startswith("pid = ")]
    assert sections == ["pid = %d tt-onoff" % rec.pid], run.stdout
    assert _extension(run.stdout)[2] >= CYCLES - _lost_spells(run), (run.stdout, run.stderr)


def test_json_interval_record():
    rec, run = _run(["--json", "-e"])
    objs = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    assert len(objs) == 1, run.stdout
    assert "Tracing on-CPU time" in run.stderr
    hist = objs[0]["hists"][0]
    assert hist["unit"] == "usecs" and hist["scale"] == "log2"
    ext = objs[0]["extension"]
    # the two maps are read one after the other while tracing goes on: the target is
    # blocked by then, but allow a spell in between
    assert abs(hist["total"] - ext["count"]) <= 2, objs
    lost = _lost_spells(run)
    assert ext["count"] >= rec.schedstat_delta.slices - 2 - lost
    assert ext["total"] >= (rec.schedstat_delta.run_ns // 1000 * 0.95
                            - lost * (BUSY_MS + 1) * 1000)


def test_intervals_with_timestamps():
    rc, out, err = run_tool(["cpudist", "-T", "-m", "1", "2"], timeout=60)
    assert rc == 0, err
    assert out.count("msecs") == 2, out
    stamps = [l for l in out.splitlines() if len(l.strip()) == 8 and l.strip().count(":") == 2]
    assert len(stamps) == 2, out


def _idle_ticks():
    """The CPUs' idle time so far, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as f:
        return int(f.readline().split()[4])


def test_idle_only_with_include_idle():
    # the idle tasks are PID 0: a section of their own with -I, none without -- when the
    # CPUs were idle at all during the run (a machine kept busy by others may never be)
    before = _idle_ticks()
    rc, out, err = run_tool(["cpudist", "-I", "-L", "1", "1"], timeout=60)
    idle = _idle_ticks() - before
    assert rc == 0, err
    if idle < 5:
        pytest.skip("the CPUs were not idle during the run (%d ticks)" % idle)
    assert "\ntid = 0\n" in out, (idle, out)
    rc, out, err = run_tool(["cpudist", "-L", "1", "1"], timeout=60)
    assert rc == 0, err
    assert "tid = " in out and "\ntid = 0\n" not in out, out


def test_bad_option_is_one_line_exit_2():
    rc, out, err = run_tool(["cpudist", "-p", "nope"])
    assert rc == 2 and "Traceback" not in err and "-p" in err
    assert len(err.strip().splitlines()) == 1
    rc, out, err = run_tool(["cpudist", "-P", "-L"])
    assert rc == 2 and "Traceback" not in err


def test_help_has_examples():
    rc, out, err = run_tool(["cpudist", "-h"])
    assert rc == 0
    assert "examples:" in out and "cpudist -O" in out and "--offcpu" in out
