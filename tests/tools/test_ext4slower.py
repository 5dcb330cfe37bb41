"""ext4slower under the ``ext4_ops`` workload: opens, buffered writes, fsyncs and reads on a
fresh ext4 file system, and throttled (slow) O_DIRECT pread64/pwrite64.

With threshold 0 every operation of the workload's files must be there once, with its type,
byte count, offset and file name; with the default 10 ms the throttled ones must be there,
and every line is above the threshold and no slower than the workload itself measured
around the call.  Three runs of the tool (text, JSON, CSV) watch one workload at once.
"""
import collections
import json

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import ext4_ops

pytestmark = pytest.mark.bpf

HEADER = "FILENAME"
TYPES = {"read": "R", "write": "W", "open": "O", "fsync": "S"}


@pytest.fixture(scope="module")
def image():
    from tests.workloads.resources import ext4_image
    with ext4_image(64) as img:
        yield img


def _run(image, variants):
    """Start one tool per (args, ready) in ``variants`` next to one workload; return the
    runs and the record."""
    with ext4_ops(image=image) as w:
        runs = [ToolRun(["ext4slower", "-p", str(w.pid)] + args, ready=ready)
                for args, ready in variants]
        try:
            for run in runs:
                run.started()
            rec = w.go()
        finally:
            rcs = [run.stop() for run in runs]
    for run, rc in zip(runs, rcs):
        assert rc == 0, run.stderr
    return runs, rec


def _files(rec):
    return {o.file for o in rec.ops}


def _expected(op):
    off = op.offset or 0
    return (TYPES[op.op], op.bytes if op.op in ("read", "write") else 0, off, op.file)


def test_every_operation_text_json_and_csv(image):
    (text, js, csv), rec = _run(image, [(["0"], HEADER), (["--json"], "Tracing"),
                                        (["-j", "1"], "ENDTIME_us")])
    files = _files(rec)
    assert files == {"data", "new-0", "new-1"}

    # text, threshold 0: every operation of the workload, once
    lines = text.stdout.splitlines()
    assert "syscall-level approximation" in lines[0]
    assert lines[1].split() == ["TIME", "COMM", "PID", "T", "BYTES", "OFF_KB", "LAT(ms)",
                                "FILENAME"]
    got = collections.Counter()
    for line in lines[2:]:
        tm, comm, pid, typ, nbytes, off_kb, lat, name = line.split()
        assert comm == rec.comm and int(pid) == rec.pid, line
        if name in files:
            got[(typ, int(nbytes), int(off_kb), name)] += 1
    want = collections.Counter((t, b, off // 1024, f) for t, b, off, f in map(_expected, rec.ops))
    assert got == want, text.stdout
    assert sum(want.values()) == len(rec.ops) == 4 + 2 * 4 + 2 + 8 + 2 + 2

    # JSON, default 10 ms: the throttled calls, and nothing faster than the threshold
    events = [json.loads(l) for l in js.stdout.splitlines() if l.startswith("{")]
    slow = [o for o in rec.ops if o.slow]
    assert len(slow) == 4
    mine = [e for e in events if e["file"] in files]
    for op in slow:
        match = [e for e in mine if (e["syscall"], e["bytes"], e["offset"], e["file"]) ==
                 (op.syscall, op.bytes, op.offset, op.file)]
        assert len(match) == 1, (op, events)
        e = match[0]
        assert e["type"] == TYPES[op.op] and e["op"] == op.op
        assert e["pid"] == rec.pid and e["tid"] == rec.tid and e["comm"] == rec.comm
        # the kernel's span lies inside the one the workload measured around the call
        assert rec.slow_floor_ms * 900 <= e["latency_us"] <= op.latency_ms * 1000 + 1, (e, op)
    for e in mine:
        assert e["latency_us"] > 10000, e

    # CSV, 1 ms: BCC's fields; the throttled calls with byte offsets and microseconds
    rows = csv.stdout.splitlines()
    assert rows[0] == "ENDTIME_us,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE"
    parsed = [r.split(",") for r in rows[1:]]
    for op in slow:
        match = [r for r in parsed if (r[3], int(r[4]), int(r[5]), r[7]) ==
                 (TYPES[op.op], op.bytes, op.offset, op.file)]
        assert len(match) == 1, (op, rows)
        ts, task, pid, _, _, _, lat_us, _ = match[0]
        assert task == rec.comm and int(pid) == rec.pid and int(ts) > 0
        assert int(lat_us) >= rec.slow_floor_ms * 900
    assert all(int(r[6]) > 1000 for r in parsed), rows


@pytest.mark.parametrize("args, word", [(["-p", "0"], "-p"), (["ten"], "min_ms"),
                                        (["-j", "--json"], "--json")])
def test_bad_options_are_one_line_exit_2(args, word):
    rc, out, err = run_tool(["ext4slower"] + args)
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and word in err


def test_help_has_examples_and_names_the_approximation():
    rc, out, err = run_tool(["ext4slower", "-h"])
    assert rc == 0
    assert "examples:" in out and "ext4slower -j 1" in out
    assert "syscall" in out and "ext4_sync_file" in out and "kprobes" in out


def test_without_btf_is_one_clear_line():
    rc, out, err = run_tool(["ext4slower"], env={"TINYTRACE_TARGET": "btf=0"})
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc == 1 and len(lines) == 1 and "BTF" in lines[0] and "Traceback" not in err, err


def test_file_names_are_escaped(image):
    import os
    path = image.path("tt-esc\x1b[31m\nname")
    run = ToolRun(["ext4slower", "-p", str(os.getpid()), "0"], ready=HEADER)
    try:
        run.started()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, b"x" * 10)
        os.close(fd)
    finally:
        rc = run.stop()
        os.unlink(path)
    assert rc == 0, run.stderr
    mine = [l for l in run.stdout.splitlines() if "tt-esc" in l]
    assert {l.split()[3] for l in mine} == {"O", "W"}, run.stdout
    assert all(l.endswith("tt-esc\\x1b[31m\\nname") for l in mine), mine
    assert "\x1b" not in run.stdout
