"""biolatency under the direct-I/O workload.

The workload does synchronous O_DIRECT reads and writes on a loop device of its own: every
call is exactly one request on that disk, so with ``-d`` the histograms must hold exactly
that many samples, split by disk (-D) and by operation (-F) as the record says.  A request
cannot take longer on the device than the syscall that waited for it, so no sample may sit
in a bucket above the slowest call the workload measured.  Completions run in interrupt
context, where the kernel skips a BPF program while another one runs on the CPU (and counts
it; the tool reports the number on exit): the counts may fall short by that many.
"""
import json

import pytest

from tests.tools.util import ToolRun, parse_log2_hist, run_tool
from tests.workloads import direct_io

pytestmark = pytest.mark.bpf

READY = "Tracing block device I/O"


def _trace(args, workload):
    w = workload(direct_io())
    run = ToolRun(["biolatency"] + [a.replace("DISK", w.device.name) for a in args],
                  ready=READY)
    try:
        run.started()
        rec = w.go()
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    return run, rec


def _sections(text):
    """{section label: [(low, high, count)]} of keyed BCC histograms."""
    out, cur = {}, None
    for line in text.splitlines():
        if " = " in line and not line.startswith(" "):
            cur = line.split(" = ", 1)[1]
            out[cur] = []
        elif cur is not None:
            out[cur].extend(parse_log2_hist(line))
    return out


def _exact(n, expected, run):
    """``n`` is ``expected``, less at most the runs the kernel skipped."""
    from tinytrace.toolkit import skipped_in
    return expected - skipped_in(run.stderr) <= n <= expected


def _check_bounds(rows, rec, per_unit):
    slowest = max(rec.latency_ms) * per_unit
    for low, high, count in rows:
        if count:
            assert low <= slowest, (rows, rec.latency_ms)


def test_disk_filter_counts_every_request(workload):
    run, rec = _trace(["-d", "DISK"], workload)
    rows = parse_log2_hist(run.stdout)
    total = sum(c for _, _, c in rows)
    assert rec.reads.count + rec.writes.count == 18
    assert _exact(total, 18, run), (run.stdout, run.stderr)
    assert "usecs" in run.stdout
    _check_bounds(rows, rec, 1000)


def test_per_disk_names_the_loop_device(workload):
    run, rec = _trace(["-D", "-d", "DISK"], workload)
    secs = _sections(run.stdout)
    assert list(secs) == [rec.disk], run.stdout
    assert _exact(sum(c for _, _, c in secs[rec.disk]), 18, run), (run.stdout, run.stderr)


def test_per_flags_splits_reads_and_writes(workload):
    run, rec = _trace(["-F", "-d", "DISK"], workload)
    secs = _sections(run.stdout)
    reads = sum(c for k, rows in secs.items() if k.endswith("-Read") or k == "Read"
                for _, _, c in rows)
    writes = sum(c for k, rows in secs.items() if k.endswith("-Write") or k == "Write"
                 for _, _, c in rows)
    assert _exact(reads, rec.reads.count, run), (run.stdout, run.stderr)
    assert _exact(writes, rec.writes.count, run), (run.stdout, run.stderr)
    # O_DIRECT requests are synchronous: BCC's word for REQ_SYNC leads the label
    assert "flags = Sync-Read" in run.stdout and "flags = Sync-Write" in run.stdout


def test_queued_json_msecs_and_extension(workload):
    run, rec = _trace(["--json", "-Q", "-m", "-e", "-d", "DISK"], workload)
    objs = [json.loads(l) for l in run.stdout.splitlines() if l.strip()]
    assert len(objs) == 1, run.stdout
    assert READY in run.stderr          # stdout is only JSON
    h = objs[0]["hists"][0]
    assert h["unit"] == "msecs" and _exact(h["total"], 18, run), (objs, run.stderr)
    ext = objs[0]["extension"]
    assert ext["count"] == h["total"] and ext["unit"] == "msecs"
    assert ext["total"] <= sum(rec.latency_ms) + 1
    _check_bounds([(b["low"], b["high"], b["count"]) for b in h["buckets"]], rec, 1)


def test_intervals_with_timestamps(loopdev):
    rc, out, err = run_tool(["biolatency", "-T", "-d", loopdev.name, "1", "2"], timeout=60)
    assert rc == 0, err
    stamps = [l for l in out.splitlines() if len(l) == 8 and l.count(":") == 2]
    assert len(stamps) == 2, out


def test_bad_options_are_one_line_exit_2():
    for args in (["-d", "no-such-disk-xyz"], ["-D", "-F"], ["0"]):
        rc, out, err = run_tool(["biolatency"] + args)
        assert rc == 2, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_help_has_examples():
    rc, out, err = run_tool(["biolatency", "-h"])
    assert rc == 0
    assert "examples:" in out and "biolatency -D" in out and "-Q" in out
