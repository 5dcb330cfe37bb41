"""cachestat under the page-cache workload: the tracepoint approximation (kernels without
kprobes, e.g. this development VM) and BCC's kprobe method (the qemu guests: ``kprobes``,
``guest_safe``, at the end).

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

These tests are for the tracepoint variant: on a kernel with kprobes they run it with
``TINYTRACE_TARGET=kprobes=0`` where it can run (they skip where it cannot: the filemap
tracepoints are missing on 6.1).
"""
import json
import os
import shutil
import tempfile

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import page_cache

pytestmark = pytest.mark.bpf

READY = "Tracing page cache"
COLUMNS = ["HITS", "MISSES", "DIRTIES", "HITRATIO", "BUFFERS_MB", "CACHED_MB"]


TRACEPOINTS = {"TINYTRACE_TARGET": "kprobes=0"}
STARTUP = 240 if os.environ.get("TINYTRACE_GUEST") else 30     # emulated Python is slow


def _plan(env=None):
    from tinytrace.tools import cachestat
    old = os.environ.get("TINYTRACE_TARGET")
    os.environ.update(env or {})
    try:
        return cachestat.plan()
    finally:
        if old is None:
            os.environ.pop("TINYTRACE_TARGET", None)
        else:
            os.environ["TINYTRACE_TARGET"] = old


@pytest.fixture
def tracepoints():
    """The tracepoint variant, or a skip where this kernel lacks its tracepoints."""
    if _plan(TRACEPOINTS)["kind"] != "tracepoint":
        pytest.skip("no filemap/writeback tracepoints here: " + _plan(TRACEPOINTS)["missing"])


def _trace(args, workload, image=None, env=TRACEPOINTS):
    w = workload(page_cache(image))
    run = ToolRun(["cachestat"] + [a.replace("PID", str(w.pid)) for a in args], ready=READY,
                  env=env)
    try:
        run.started(STARTUP)
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


def test_pid_filter_counts_the_workload(workload, tracepoints):
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


def test_json_record(workload, tracepoints):
    run, rec = _trace(["--json", "-p", "PID", "30"], workload)
    assert READY in run.stderr and "approximation" in run.stderr
    objs = [json.loads(l) for l in run.stdout.splitlines() if l.strip()]
    assert len(objs) == 1, run.stdout
    o = objs[0]
    assert o["approximate"] is True and "time" in o
    _check(o["hits"], o["misses"], o["dirties"], rec)
    assert set(o) >= {"hitratio", "buffers_mb", "cached_mb"}


def test_intervals_with_timestamps():
    rc, out, err = run_tool(["cachestat", "-T", "-p", "1", "1", "2"], timeout=60,
                            env=TRACEPOINTS if _plan(TRACEPOINTS)["kind"] else None)
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
    # BCC's -j: one JSON object per interval, as --json (whichever variant this kernel takes)
    rc, out, err = run_tool(["cachestat", "-j", "1", "1"], timeout=60)
    assert rc == 0, err
    objs = [json.loads(l) for l in out.splitlines()]
    assert len(objs) == 1 and {"hits", "misses", "dirties"} <= set(objs[0]), out


def test_help_has_examples_and_says_which_variant():
    rc, out, err = run_tool(["cachestat", "-h"])
    assert rc == 0
    assert "examples:" in out and "cachestat -T" in out
    if _plan()["kind"] == "kprobe":
        assert "This kernel has kprobes: BCC's method" in out and "approximation" not in out
    else:
        assert "approximation" in out


def test_bcc_arithmetic():
    from tinytrace.tools.cachestat import bcc_counts
    # (apcl, mpa, apd, mbd): misses = added - dirtied, hits = (accesses - buffers) - misses
    assert bcc_counts(1088, 2048, 64, 0) == (1024, 1024, 0, 50.0)
    assert bcc_counts(100, 300, 0, 40) == (160, 100, 40, 100.0 * 160 / 260)
    # read-ahead added more than was read: misses = total, hits = 0
    assert bcc_counts(100, 40, 0, 0) == (0, 40, 0, 0.0)
    # negative differences are 0
    assert bcc_counts(3, 5, 9, 8) == (0, 0, 8, 0.0)


class _Folder(object):
    """A plain directory standing in for ``ext4_image`` (the guests have no ext4 module; the
    checkout's 9p share there has a page cache, cache=loose)."""

    def __init__(self, path):
        self.path_, self.device = path, None

    def path(self, name):
        return os.path.join(self.path_, name)

    def settle(self):
        os.sync()

    def stat(self):
        return {}


@pytest.mark.guest_safe
@pytest.mark.kprobes
def test_kprobes_bcc_method(workload):
    """BCC's counters under the workload, in a folder of the checkout: the first read's pages
    are MISSES (pages added less pages dirtied: the written file's new pages cancel out);
    HITS = accesses - MISSES counts the second read's pages at least (mark_page_accessed is
    called once per page per read, and more on some file systems: 9p).  DIRTIES is
    mark_buffer_dirty: 0 on a file system without buffer heads (9p), the written pages on
    one with them."""
    if _plan()["kind"] != "kprobe":
        pytest.skip("this kernel has no kprobes")
    from tests.tools.util import REPO
    folder = tempfile.mkdtemp(prefix=".tt-cachestat-", dir=REPO)
    try:
        run, rec = _trace(["-p", "PID", "600"], workload, _Folder(folder), env=None)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    lines = run.stdout.splitlines()
    assert "kprobes: " in lines[0] and "approximation" not in lines[0], lines[0]
    assert lines[1].split() == COLUMNS, run.stdout
    rows = [l.split() for l in lines[2:] if l.strip()]
    assert len(rows) == 1, run.stdout
    hits, misses, dirties = (int(x) for x in rows[0][:3])
    want_misses = rec.pages - rec.resident_at_start
    assert abs(misses - want_misses) <= 0.03 * rec.pages + 4, (misses, rec)
    assert hits >= rec.pages - 0.03 * rec.pages - 4, (hits, rec)
    assert dirties in (0, rec.dirtied) or rec.dirtied <= dirties <= rec.dirtied + 4, dirties
    ratio = float(rows[0][3].rstrip("%"))
    assert abs(ratio - 100.0 * hits / (hits + misses)) < 0.01
