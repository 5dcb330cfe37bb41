"""biosnoop under the direct-I/O workload.

Each O_DIRECT call of the workload is one request on a loop device of its own, made one after
the other, so with ``-d`` the tool must print exactly the workload's requests, in order, each
with the workload's PID and COMM (the issuer: completions run in softirq context), the loop
device's name, the operation, the sector and the size the record lists.  The kernel skips
a completion's program when another BPF program runs on that CPU (and counts it; the tool
reports the number on exit): then requests may be missing, at most that many, the others
still in order.
"""
import json
import time

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import direct_io

pytestmark = pytest.mark.bpf

HEADER = "TIME(s)"


def _trace(args, workload, ready=HEADER):
    w = workload(direct_io())
    run = ToolRun(["biosnoop"] + [a.replace("DISK", w.device.name) for a in args], ready=ready)
    try:
        run.started()
        rec = w.go()
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    return run, rec


def _rows(out):
    lines = out.splitlines()
    assert lines and lines[0].startswith(HEADER), out
    return lines[0].split(), [l.split() for l in lines[1:] if l.strip()]


def _matched(rows, ops, key, run):
    """Pairs (row, op): every row is the next of the plan's ops with its ``key(row)``, in
    order; ops may be missing only as many as the runs the kernel skipped."""
    from tinytrace.toolkit import skipped_in
    skipped = skipped_in(run.stderr)
    assert len(ops) - skipped <= len(rows) <= len(ops), (len(rows), skipped, run.stdout)
    pairs, it = [], iter(ops)
    for row in rows:
        for op in it:
            if key(row) == (op.op, op.sector, op.size):
                pairs.append((row, op))
                break
        else:
            raise AssertionError("row %r is not one of the workload's requests, in order:\n%s"
                                 % (row, run.stdout))
    return pairs


def test_every_request_with_issuer_sector_and_size(workload):
    run, rec = _trace(["-d", "DISK"], workload)
    head, rows = _rows(run.stdout)
    assert head == ["TIME(s)", "COMM", "PID", "DISK", "T", "SECTOR", "BYTES", "LAT(ms)"]
    assert len(rec.ops) == 18
    times = []
    for row, op in _matched(rows, rec.ops, lambda r: (r[4], int(r[5]), int(r[6])), run):
        t, comm, pid, disk, kind, sector, nbytes, lat = row
        assert (comm, int(pid), disk) == (rec.comm, rec.pid, rec.disk), row
        assert (kind, int(sector), int(nbytes)) == (op.op, op.sector, op.size), (row, op)
        assert float(lat) >= 0
        times.append(float(t))
    assert times[0] == 0 and times == sorted(times)


def test_queue_and_pattern_columns(workload):
    run, rec = _trace(["-Q", "-P", "-d", "DISK"], workload)
    head, rows = _rows(run.stdout)
    assert head[-3:] == ["P", "QUE(ms)", "LAT(ms)"], head
    pairs = _matched(rows, rec.ops, lambda r: (r[4], int(r[5]), int(r[6])), run)
    # the plan's requests are back to back: after the first, each starts where the last
    # ended -- where the previous one was seen
    shown = [op for _, op in pairs]
    for i, (row, op) in enumerate(pairs):
        if i == 0:
            want = "?"
        else:
            want = "S" if rec.ops.index(op) == rec.ops.index(shown[i - 1]) + 1 else "R"
        assert row[7] == want, (i, run.stdout)
    assert all(float(r[8]) >= 0 and float(r[9]) >= 0 for r in rows)


def test_json_one_object_per_request(workload):
    run, rec = _trace(["--json", "-Q", "-d", "DISK"], workload, ready="Tracing block I/O")
    objs = [json.loads(l) for l in run.stdout.splitlines() if l.strip()]
    pairs = _matched(objs, rec.ops, lambda o: (o["t"], o["sector"], o["bytes"]), run)
    for o, op in pairs:
        assert (o["comm"], o["pid"], o["disk"]) == (rec.comm, rec.pid, rec.disk)
        assert (o["t"], o["sector"], o["bytes"]) == (op.op, op.sector, op.size)
        assert o["rwbs"].startswith(op.op)
        assert o["lat_ms"] >= 0 and o["que_ms"] >= 0


def test_bad_options_are_one_line_exit_2():
    for args in (["-d", "no-such-disk-xyz"], ["--no-such-option"]):
        rc, out, err = run_tool(["biosnoop"] + args)
        assert rc == 2, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_help_has_examples():
    rc, out, err = run_tool(["biosnoop", "-h"])
    assert rc == 0
    assert "examples:" in out and "biosnoop -Q" in out and "--pattern" in out


def test_issuer_fallback_without_block_io_start(workload, monkeypatch):
    # Kernels before 6.5 lack block_io_start: the task seen at block_rq_insert (or at the
    # issue) stands in.  Run that variant here, in-process, on a queue with a scheduler.
    import argparse
    from tinytrace.script import Script
    from tinytrace import tooldata
    from tinytrace.tools import biosnoop
    real = tooldata.block_tracepoint
    monkeypatch.setattr(tooldata, "block_tracepoint",
                        lambda name: name != "block_io_start" and real(name))
    w = workload(direct_io())
    with open("/sys/block/%s/queue/scheduler" % w.device.name, "w") as f:
        f.write("mq-deadline")
    opts = argparse.Namespace(queue=True, dev=tooldata.resolve_disk(None, w.device.name),
                              pattern=False, json=False)
    text = biosnoop.script_text(opts)
    assert "block_io_start" not in text and "block_rq_insert" in text
    events = []
    script = Script(text, tool="biosnoop")
    script.on_printf(lambda values, index: events.append(values))
    with script.start():
        rec = w.go()
        deadline = time.time() + 10
        while len(events) < len(rec.ops) and time.time() < deadline:
            script.drain()
            time.sleep(0.05)
    assert [(e[1], bytes(e[2]).rstrip(b"\0").decode(), e[5], e[6]) for e in events] == \
        [(rec.pid, rec.comm, op.sector, op.size) for op in rec.ops]
