"""bitesize under the direct-I/O workload.

The workload's O_DIRECT calls are one request each, of known sizes, on its own loop device:
with ``--disk`` the histogram of its process name must hold exactly one sample per call, in
the BCC bucket of its size in KiB.
"""
import json

import pytest

from tests.tools.util import ToolRun, parse_log2_hist, run_tool
from tests.workloads import direct_io

pytestmark = pytest.mark.bpf

READY = "Tracing block I/O"


def _trace(args, workload):
    w = workload(direct_io())
    run = ToolRun(["bitesize"] + [a.replace("DISK", w.device.name) for a in args], ready=READY)
    try:
        run.started()
        rec = w.go()
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    return run, rec


def _expected_rows(rec):
    """{(low, high): count} of the workload's requests, by KiB as BCC buckets them."""
    out = {}
    for op in rec.ops:
        kib = op.size // 1024
        slot = max(kib, 1).bit_length()
        low, high = (1 << slot) >> 1, (1 << slot) - 1
        if low == high:
            low = 0
        out[(low, high)] = out.get((low, high), 0) + 1
    return out


def _section(text, name):
    lines = text.splitlines()
    at = lines.index("Process Name = %s" % name)
    rows = []
    for line in lines[at + 2:]:
        got = parse_log2_hist(line)
        if not got:
            break
        rows.extend(got)
    return {(lo, hi): n for lo, hi, n in rows if n}


def test_sizes_per_process_on_the_disk(workload):
    run, rec = _trace(["--disk", "DISK"], workload)
    assert "Process Name = %s" % rec.comm in run.stdout, run.stdout
    assert "Kbytes" in run.stdout
    assert _section(run.stdout, rec.comm) == _expected_rows(rec) == \
        {(4, 7): 8, (16, 31): 6, (64, 127): 4}
    # only the workload did I/O on its own loop device
    assert run.stdout.count("Process Name = ") == 1, run.stdout


def test_comm_filter_and_json(workload):
    run, rec = _trace(["-j", "-c", "tt-dio", "--disk", "DISK"], workload)
    assert READY in run.stderr
    objs = [json.loads(l) for l in run.stdout.splitlines() if l.strip()]
    assert len(objs) == 1, run.stdout
    hists = objs[0]["hists"]
    assert [h["key"] for h in hists] == [{"comm": rec.comm}]
    got = {(b["low"], b["high"]): b["count"] for b in hists[0]["buckets"] if b["count"]}
    assert got == _expected_rows(rec) and hists[0]["total"] == len(rec.ops)


def test_comm_filter_leaves_others_out(workload):
    run, rec = _trace(["-c", "not-tt-dio", "--disk", "DISK"], workload)
    assert "Process Name" not in run.stdout, run.stdout


def test_duration_and_intervals(loopdev):
    rc, out, err = run_tool(["bitesize", "-d", "1", "--disk", loopdev.name], timeout=60)
    assert rc == 0 and "Tracing block I/O" in out, err
    rc, out, err = run_tool(["bitesize", "-T", "--disk", loopdev.name, "1", "2"], timeout=60)
    assert rc == 0, err
    stamps = [l for l in out.splitlines() if len(l) == 8 and l.count(":") == 2]
    assert len(stamps) == 2, out


def test_bad_options_are_one_line_exit_2():
    for args in (["-c", "a-name-far-too-long"], ["--disk", "no-such-disk-xyz"], ["-d", "0"]):
        rc, out, err = run_tool(["bitesize"] + args)
        assert rc == 2, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_help_has_examples():
    rc, out, err = run_tool(["bitesize", "-h"])
    assert rc == 0
    assert "examples:" in out and "bitesize -j" in out


def test_script_before_block_io_start(monkeypatch):
    # Kernels before 6.5: the name comes from block_rq_issue's comm field; the text compiles.
    import argparse
    from tinytrace.script import Script
    from tinytrace import tooldata
    from tinytrace.tools import bitesize
    monkeypatch.setattr(tooldata, "block_tracepoint", lambda name: False)
    text = bitesize.script_text(argparse.Namespace(dev=7 << 20, comm="tt-dio"))
    assert "block_io_start" not in text and 'args->comm == "tt-dio"' in text
    Script(text, tool="bitesize")
