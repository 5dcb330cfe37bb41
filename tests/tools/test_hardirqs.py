"""hardirqs under direct reads from a real disk: every read completes with an interrupt.

/proc/interrupts is the independent count.  It is read twice around the workload while the
tool traces (inner window) and twice around the tool's whole life (outer window), so for
the disk's handler the tool's count lies between the two deltas -- exactly what the kernel
counted, with no tolerance, except for one thing the kernel itself reports: a tracepoint
program does not run while another BPF program runs on the same CPU (an interrupt arriving
during it), and the kernel counts each such skip (recursion_misses), which the tool prints
on exit.  So the tool's count plus its skipped runs reach the inner delta, and its count
alone stays within the outer one.  Time and histogram modes are checked for the same
handler; one test runs under another BPF program's load to make such skips happen.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from tests.tools.util import ToolRun, parse_log2_hist, run_tool
from tests.workloads import disk_irqs
from tests.workloads._util import interrupts

pytestmark = pytest.mark.bpf

READY = "Tracing hard irq"


def _delta(before, after, name, cpu=None):
    """Interrupts of the lines whose handler is ``name`` between two /proc reads."""
    total = 0
    for label, info in after.items():
        if not label.isdigit() or info["name"] != name:
            continue
        prev = before.get(label)
        if cpu is None:
            total += info["total"] - (prev["total"] if prev else 0)
        else:
            total += info["counts"][cpu] - (prev["counts"][cpu] if prev else 0)
    return total


def _skipped(run):
    """The runs of its programs the kernel skipped, as the tool reported them on exit."""
    from tinytrace.toolkit import skipped_in
    return skipped_in(run.stderr)


def _within(count, run, lo, hi):
    """The tool's count is exact but for the runs the kernel skipped."""
    return count <= hi and count + _skipped(run) >= lo


def _run(args, reads=32):
    with disk_irqs(reads=reads) as w:
        outer0 = interrupts()
        run = ToolRun(["hardirqs"] + args, ready=READY)
        try:
            run.started()
            inner0 = interrupts()
            rec = w.go()
            inner1 = interrupts()
        finally:
            rc = run.stop()
        outer1 = interrupts()
    assert rc == 0, run.stderr
    assert rec.disk_irqs, rec
    return rec, run, (outer0, inner0, inner1, outer1)


def _totals(text):
    """{name: value} from the HARDIRQ table."""
    out = {}
    rows = False
    for line in text.splitlines():
        if line.startswith("HARDIRQ"):
            rows = True
            continue
        parts = line.rsplit(None, 1)
        if rows and len(parts) == 2 and parts[1].isdigit():
            out[parts[0].strip()] = int(parts[1])
    return out


def _bracket(snaps, name, cpu=None):
    outer0, inner0, inner1, outer1 = snaps
    return _delta(inner0, inner1, name, cpu), _delta(outer0, outer1, name, cpu)


def test_counts_match_proc_interrupts():
    rec, run, snaps = _run(["-C"])
    assert "HARDIRQ                    TOTAL_count" in run.stdout, run.stdout
    totals = _totals(run.stdout)
    for irq in rec.disk_irqs:
        lo, hi = _bracket(snaps, irq.name)
        assert lo >= irq.delta
        assert _within(totals.get(irq.name, 0), run, lo, hi), (irq, lo, hi, run.stdout,
                                                               run.stderr)


def test_time_per_handler():
    rec, run, snaps = _run([])
    totals = _totals(run.stdout)
    assert "TOTAL_usecs" in run.stdout
    name = rec.disk_irqs[0].name
    assert name in totals, run.stdout
    # rows are sorted by total, ascending (BCC's order)
    values = list(totals.values())
    assert values == sorted(values), run.stdout


def test_histograms_count_every_interrupt():
    rec, run, snaps = _run(["-d", "-N"])
    name = rec.disk_irqs[0].name
    marker = "hardirq = %s\n" % name
    assert marker in run.stdout, run.stdout
    section = run.stdout.split(marker, 1)[1].split("\nhardirq = ", 1)[0]
    assert section.lstrip().startswith("nsecs"), section
    total = sum(n for _, _, n in parse_log2_hist(section))
    lo, hi = _bracket(snaps, name)
    assert _within(total, run, lo, hi), (lo, total, hi, section, run.stderr)


def test_cpu_filter_and_json():
    # all CPUs in JSON, then each CPU alone: bracketed by that CPU's column
    rec, run, snaps = _run(["--json", "-C"])
    objs = [json.loads(l) for l in run.stdout.splitlines()]
    assert len(objs) == 1 and objs[0]["unit"] == "count", run.stdout
    assert READY in run.stderr
    name = rec.disk_irqs[0].name
    counts = {r["hardirq"]: r["total"] for r in objs[0]["irqs"]}
    lo, hi = _bracket(snaps, name)
    assert _within(counts.get(name, 0), run, lo, hi), (lo, hi, objs, run.stderr)
    for cpu in range(len(snaps[0][str(rec.disk_irqs[0].irq)]["counts"])):
        rec, run, snaps = _run(["-C", "-c", str(cpu)])
        lo, hi = _bracket(snaps, name, cpu)
        assert _within(_totals(run.stdout).get(name, 0), run, lo, hi), (
            cpu, lo, hi, run.stdout, run.stderr)


# Another tracer's program that runs long (a loop) on every getppid(), called without pause
# by a process pinned to each CPU: interrupts arriving during it find a BPF program running
# on their CPU.
LOAD_SCRIPT = "tracepoint:syscalls:sys_enter_getppid { $i = 0; while ($i < 20000) { $i++; } }"
HAMMER = ("import os, sys\nos.sched_setaffinity(0, [int(sys.argv[1])])\n"
          "while True:\n    os.getppid()\n")


class _BpfLoad(object):
    def __enter__(self):
        from tests.tools.util import REPO
        env = dict(os.environ, PYTHONPATH=REPO)
        self.procs = [subprocess.Popen([sys.executable, "-m", "tinytrace", "-e", LOAD_SCRIPT],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                       env=env, cwd=REPO)]
        assert b"Attaching" in self.procs[0].stdout.readline()
        for cpu in sorted(os.sched_getaffinity(0)):
            self.procs.append(subprocess.Popen([sys.executable, "-c", HAMMER, str(cpu)]))
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()
        return False


def test_counts_under_another_bpf_programs_load():
    with _BpfLoad():
        rec, run, snaps = _run(["-C"], reads=64)
    skipped = _skipped(run)
    assert skipped > 0, ("the load made no interrupt meet a running BPF program",
                         run.stderr)
    totals = _totals(run.stdout)
    for irq in rec.disk_irqs:
        lo, hi = _bracket(snaps, irq.name)
        assert _within(totals.get(irq.name, 0), run, lo, hi), (irq, lo, hi, skipped,
                                                               run.stdout)


def test_bad_options_are_one_line_exit_2():
    for args in (["-C", "-d"], ["-c", "100000"], ["-c", "x"], ["0"]):
        rc, out, err = run_tool(["hardirqs"] + args)
        assert rc == 2, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)


def test_help_has_examples():
    rc, out, err = run_tool(["hardirqs", "-h"])
    assert rc == 0
    assert "examples:" in out and "hardirqs -d" in out and "--count" in out
