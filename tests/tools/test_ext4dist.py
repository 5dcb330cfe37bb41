"""ext4dist under the ``ext4_ops`` workload (opens, buffered writes, fsyncs, reads, and
throttled O_DIRECT pread64/pwrite64 on a fresh ext4 file system), filtered by its PID.

Each operation's histogram must count exactly the workload's calls of that kind, and the
throttled calls must sit in the buckets of their enforced minimum latency.  Three runs of
the tool watch one workload: usecs text, msecs JSON, and 1-second intervals whose counts
must add up to the same totals (each interval is cleared after it is printed).
"""
import json

import pytest

from tests.tools.util import ToolRun, parse_log2_hist, run_tool
from tests.workloads import ext4_ops

pytestmark = pytest.mark.bpf

READY = "Tracing ext4 operation latency"


def _sections(text):
    """{operation: [(low, high, count), ...]} summed over every report in ``text``."""
    out = {}
    current = None
    chunk = []

    def flush():
        if current is not None:
            rows = out.setdefault(current, {})
            for low, high, n in parse_log2_hist("\n".join(chunk)):
                rows[(low, high)] = rows.get((low, high), 0) + n
    for line in text.splitlines():
        if line.startswith("operation = "):
            flush()
            current, chunk = line.split(" = ", 1)[1], []
        else:
            chunk.append(line)
    flush()
    return out


def test_histograms_count_every_operation():
    with ext4_ops() as w:
        args = ["-p", str(w.pid)]
        runs = [ToolRun(["ext4dist"] + args, ready=READY),
                ToolRun(["ext4dist", "--json", "-m"] + args, ready=READY),
                ToolRun(["ext4dist", "-m", "1"] + args, ready=READY)]
        try:
            for run in runs:
                run.started()
            rec = w.go()
        finally:
            rcs = [run.stop() for run in runs]
    for run, rc in zip(runs, rcs):
        assert rc == 0, run.stderr
    text, js, intervals = runs
    assert rec.counts == {"open": 4, "write": 10, "fsync": 2, "read": 10}
    slow = {}
    for o in rec.ops:
        if o.slow:
            slow[o.op] = slow.get(o.op, 0) + 1
    floor_us = rec.slow_floor_ms * 1000 * 0.9

    # usecs text: BCC's sections, in BCC's (sorted) order
    order = [l.split(" = ")[1] for l in text.stdout.splitlines() if l.startswith("operation")]
    assert order == ["fsync", "open", "read", "write"], text.stdout
    assert "usecs" in text.stdout
    sections = _sections(text.stdout)
    for op, n in rec.counts.items():
        assert sum(sections[op].values()) == n, (op, text.stdout)
        at_floor = sum(c for (low, high), c in sections[op].items() if high >= floor_us)
        assert at_floor >= slow.get(op, 0), (op, text.stdout)

    # msecs JSON: one interval record, a histogram per operation
    recs = [json.loads(l) for l in js.stdout.splitlines() if l.startswith("{")]
    assert len(recs) == 1, js.stdout
    hists = {h["key"]["operation"]: h for h in recs[0]["hists"]}
    assert {op: h["total"] for op, h in hists.items()} == rec.counts
    for op, n in slow.items():
        h = hists[op]
        assert h["unit"] == "msecs"
        assert sum(b["count"] for b in h["buckets"]
                   if b["high"] >= rec.slow_floor_ms * 0.9) >= n, h

    # 1 s intervals with timestamps: the reports add up to the same totals
    stamps = [l for l in intervals.stdout.splitlines()
              if len(l) == 9 and l.endswith(":") and l.count(":") == 3]
    assert stamps, intervals.stdout
    totals = dict((op, sum(rows.values())) for op, rows in _sections(intervals.stdout).items())
    assert totals == rec.counts, intervals.stdout


def test_count_ends_the_run_and_no_timestamp():
    rc, out, err = run_tool(["ext4dist", "-T", "1", "2"], timeout=60)
    assert rc == 0, err
    assert READY in out
    assert not [l for l in out.splitlines() if l.endswith(":") and l.count(":") == 3], out


@pytest.mark.parametrize("args, word", [(["-p", "x"], "-p"), (["0"], "interval"),
                                        (["1", "-1"], "count")])
def test_bad_options_are_one_line_exit_2(args, word):
    rc, out, err = run_tool(["ext4dist"] + args)
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and word in err


def test_help_has_examples_and_names_the_approximation():
    rc, out, err = run_tool(["ext4dist", "-h"])
    assert rc == 0
    assert "examples:" in out and "ext4dist -m 5" in out
    assert "syscall" in out and "ext4_sync_file" in out


def test_probes_are_ext4slowers_and_the_shared_scripts():
    """Both ext4 tools spell PROBES out (``--list`` then imports no tooldata): the two lists
    must stay equal and name every probe of tooldata's script (every call present)."""
    import re
    import types
    from tinytrace import tooldata
    from tinytrace.tools import ext4dist, ext4slower
    assert ext4dist.PROBES == ext4slower.PROBES
    calls = types.SimpleNamespace(rw=list(tooldata._EXT4_RW_CALLS),
                                  open=list(tooldata._EXT4_OPEN_CALLS), sync_tp=True,
                                  posv="args->pos_l", names=[None])
    text = tooldata.ext4_probes_text(calls, 1, "")
    attached = re.findall(r"^((?:raw)?tracepoint:\S+?),?$", text, re.M)
    assert sorted(attached) == sorted(ext4slower.PROBES)


def test_without_btf_is_one_clear_line():
    rc, out, err = run_tool(["ext4dist"], env={"TINYTRACE_TARGET": "btf=0"})
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc == 1 and len(lines) == 1 and "BTF" in lines[0] and "Traceback" not in err, err
