"""softirqs under loopback TCP traffic: every loopback packet is received in NET_RX.

/proc/softirqs counts each run of a vector's handler, which is what ``-C`` counts.  It is
read around the workload while the tool traces (inner window) and around the tool's whole
life (outer window): for every vector the tool's count lies between the two deltas, with
no tolerance but the runs of its programs the kernel skipped because another BPF program
was running on the CPU (recursion_misses, which the tool prints on exit): count plus
skipped runs reach the inner delta, the count alone stays within the outer one.  Time and
histogram modes are checked for NET_RX, the vector the traffic raises.
"""
import json

import pytest

from tests.tools.util import ToolRun, parse_log2_hist, run_tool
from tests.workloads import net_softirqs
from tests.workloads._util import softirqs as proc_softirqs

pytestmark = pytest.mark.bpf

READY = "Tracing soft irq"
NBYTES = 4 << 20


def _run(args):
    with net_softirqs(nbytes=NBYTES) as w:
        outer0 = proc_softirqs()
        run = ToolRun(["softirqs"] + args, ready=READY)
        try:
            run.started()
            inner0 = proc_softirqs()
            rec = w.go()
            inner1 = proc_softirqs()
        finally:
            rc = run.stop()
        outer1 = proc_softirqs()
    assert rc == 0, run.stderr
    return rec, run, (outer0, inner0, inner1, outer1)


def _within(count, run, lo, hi):
    from tinytrace.toolkit import skipped_in
    return count <= hi and count + skipped_in(run.stderr) >= lo


def _bracket(snaps, name, cpu=None):
    """(inner, outer) deltas of /proc/softirqs for ``name`` (e.g. "NET_RX")."""
    outer0, inner0, inner1, outer1 = snaps

    def delta(a, b):
        if cpu is not None:
            return b[name][cpu] - a[name][cpu]
        return sum(b[name]) - sum(a[name])
    return delta(inner0, inner1), delta(outer0, outer1)


def _totals(text):
    out = {}
    rows = False
    for line in text.splitlines():
        if line.startswith("SOFTIRQ"):
            rows = True
            continue
        parts = line.split()
        if rows and len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def test_counts_match_proc_softirqs_for_every_vector():
    rec, run, snaps = _run(["-C"])
    assert "SOFTIRQ          TOTAL_count" in run.stdout, run.stdout
    totals = _totals(run.stdout)
    assert set(totals) <= {n.lower() for n in snaps[0]}, run.stdout
    for name in snaps[0]:
        lo, hi = _bracket(snaps, name)
        assert _within(totals.get(name.lower(), 0), run, lo, hi), (name, lo, hi, run.stdout,
                                                                   run.stderr)
    from tinytrace.toolkit import skipped_in
    assert totals.get("net_rx", 0) + skipped_in(run.stderr) >= rec.softirqs["NET_RX"] > 0


def test_time_and_histograms_for_net_rx():
    rec, run, snaps = _run([])
    totals = _totals(run.stdout)
    assert "TOTAL_usecs" in run.stdout
    assert totals.get("net_rx", 0) > 0, run.stdout
    values = list(totals.values())
    assert values == sorted(values), run.stdout

    rec, run, snaps = _run(["-d", "-N"])
    marker = "softirq = net_rx\n"
    assert marker in run.stdout, run.stdout
    section = run.stdout.split(marker, 1)[1].split("\nsoftirq = ", 1)[0]
    assert section.lstrip().startswith("nsecs"), section
    lo, hi = _bracket(snaps, "NET_RX")
    assert _within(sum(n for _, _, n in parse_log2_hist(section)), run, lo, hi), (
        lo, hi, section, run.stderr)


def test_cpu_filter_and_json():
    rec, run, snaps = _run(["--json", "-C", "-c", "0"])
    assert READY in run.stderr
    objs = [json.loads(l) for l in run.stdout.splitlines()]
    assert len(objs) == 1 and objs[0]["unit"] == "count", run.stdout
    counts = {r["softirq"]: r["total"] for r in objs[0]["softirqs"]}
    for name in snaps[0]:
        lo, hi = _bracket(snaps, name, cpu=0)
        assert _within(counts.get(name.lower(), 0), run, lo, hi), (name, lo, hi, objs,
                                                                   run.stderr)


def test_intervals_with_timestamps():
    rc, out, err = run_tool(["softirqs", "-T", "1", "2"], timeout=60)
    assert rc == 0, err
    assert out.count("SOFTIRQ          TOTAL_usecs") == 2, out
    stamps = [l for l in out.splitlines() if len(l.strip()) == 8 and l.strip().count(":") == 2]
    assert len(stamps) == 2, out


def test_bad_options_are_one_line_exit_2():
    for args in (["-C", "-N"], ["-c", "100000"], ["-c", "-1"], ["x"]):
        rc, out, err = run_tool(["softirqs"] + args)
        assert rc == 2, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)


def test_help_has_examples():
    rc, out, err = run_tool(["softirqs", "-h"])
    assert rc == 0
    assert "examples:" in out and "softirqs -d" in out and "--events" in out
