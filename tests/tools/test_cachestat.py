"""cachestat (the tracepoint approximation) under the page-cache workload.

The workload evicts a file of ``pages`` pages, reads it whole (every page a miss), reads it
again (every page a hit) and writes ``dirtied`` new pages to another file.  With ``-p`` one
report (long interval, ended by Ctrl-C) must show:

- MISSES = pages - resident_at_start, within 3% + 4 pages: read-ahead stops at the end of
  the file; the written pages are new pages, not misses;
- HITS = pages + resident_at_start, within 3% + 8 pages: the second read, plus any page
  that was still cached for the first (a read-range continuation the tool fails to spot
  would add its pages here -- the tolerance bounds that);
- DIRTIES = dirtied, up to 4 more: one folio per 4 KiB write of a new page (other folios
  the writer dirties itself, such as metadata, would be extra).

Measured on 6.18 (ext4 on a loop device, large folios): exactly 1024 / 1024 / 64.
"""
import json

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import page_cache

pytestmark = pytest.mark.bpf

READY = "Tracing page cache"
COLUMNS = ["HITS", "MISSES", "DIRTIES", "HITRATIO", "BUFFERS_MB", "CACHED_MB"]


def _trace(args, workload):
    w = workload(page_cache())
    run = ToolRun(["cachestat"] + [a.replace("PID", str(w.pid)) for a in args], ready=READY)
    try:
        run.started()
        rec = w.go()
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    return run, rec


def _check(hits, misses, dirties, rec):
    want_misses = rec.pages - rec.resident_at_start
    want_hits = rec.pages + rec.resident_at_start
    assert abs(misses - want_misses) <= 0.03 * rec.pages + 4, (misses, rec)
    assert abs(hits - want_hits) <= 0.03 * rec.pages + 8, (hits, rec)
    assert rec.dirtied <= dirties <= rec.dirtied + 4, (dirties, rec)


def test_pid_filter_counts_the_workload(workload):
    run, rec = _trace(["-p", "PID", "30"], workload)
    lines = run.stdout.splitlines()
    assert "approximation" in lines[0], lines[0]
    assert lines[1].split() == COLUMNS, run.stdout
    rows = [l.split() for l in lines[2:] if l.strip()]
    assert len(rows) == 1, run.stdout
    hits, misses, dirties = (int(x) for x in rows[0][:3])
    _check(hits, misses, dirties, rec)
    ratio = float(rows[0][3].rstrip("%"))
    assert abs(ratio - 100.0 * hits / (hits + misses)) < 0.01
    assert float(rows[0][5]) > 0            # Cached from /proc/meminfo


def test_json_record(workload):
    run, rec = _trace(["--json", "-p", "PID", "30"], workload)
    assert READY in run.stderr and "approximation" in run.stderr
    objs = [json.loads(l) for l in run.stdout.splitlines() if l.strip()]
    assert len(objs) == 1, run.stdout
    o = objs[0]
    assert o["approximate"] is True and "time" in o
    _check(o["hits"], o["misses"], o["dirties"], rec)
    assert set(o) >= {"hitratio", "buffers_mb", "cached_mb"}


def test_intervals_with_timestamps():
    rc, out, err = run_tool(["cachestat", "-T", "-p", "1", "1", "2"], timeout=60)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[1].split() == ["TIME"] + COLUMNS, out
    rows = [l.split() for l in lines[2:] if l.strip()]
    assert len(rows) == 2 and all(r[0].count(":") == 2 for r in rows), out


def test_estimate_rules():
    from tinytrace.tools.cachestat import estimate
    # written pages are no misses; hits never go below zero; ratio over hits + misses
    assert estimate(1088, 64, 2048, 64) == (1024, 1024, 64, 50.0)
    assert estimate(100, 0, 40, 0) == (0, 100, 0, 0.0)
    assert estimate(0, 0, 0, 0) == (0, 0, 0, 0.0)
    assert estimate(5, 9, 10, 3) == (10, 0, 3, 100.0)


def test_bad_options_are_one_line_exit_2():
    for args in (["-p", "x"], ["0"], ["--nope"]):
        rc, out, err = run_tool(["cachestat"] + args)
        assert rc == 2, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_bcc_json_letter():
    # BCC's -j: one JSON object per interval, as --json
    rc, out, err = run_tool(["cachestat", "-j", "1", "1"], timeout=60)
    assert rc == 0, err
    objs = [json.loads(l) for l in out.splitlines()]
    assert len(objs) == 1 and {"hits", "misses", "dirties"} <= set(objs[0]), out


def test_help_has_examples_and_says_approximation():
    rc, out, err = run_tool(["cachestat", "-h"])
    assert rc == 0
    assert "examples:" in out and "cachestat -T" in out and "approximation" in out
