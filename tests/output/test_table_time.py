"""Columns, time formatting and JSON lines.

Column facts come from BCC's snoop tools, e.g. opensnoop's header
``"%-6s %-16s %4s %3s %s" % ("PID", "COMM", "FD", "ERR", "PATH")`` and rows
``"%-6d %-16s %4d %3d %s"``; ``-T`` prints ``strftime("%H:%M:%S")``.  bpftrace 0.17's
``time()`` printed ``05:43:00`` plus a newline, ``strftime("%H:%M:%S.%f", nsecs)``
printed ``05:43:00.443024`` (``%f`` = microseconds).
"""
import io
import json
import os
import time

import pytest

from tinytrace.output import jsonl, timefmt
from tinytrace.output.table import Table, column_key


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def opensnoop():
    return Table([("PID", "%-6d"), ("COMM", "%-16s"), ("FD", "%4d"), ("ERR", "%3d"),
                  ("PATH", "%s")])


def test_table_header_and_rows_like_bcc():
    t = opensnoop()
    assert t.header() == "PID    COMM               FD ERR PATH"
    assert t.header() == "%-6s %-16s %4s %3s %s" % ("PID", "COMM", "FD", "ERR", "PATH")
    assert t.row([4242, b"cat\0\0\0", 3, 0, b"/etc/passwd"]) == \
        "%-6d %-16s %4d %3d %s" % (4242, "cat", 3, 0, "/etc/passwd")
    out = io.StringIO()
    t.print_header(out)
    t.print_row([1, "a", -1, 2, "/x"], out)
    assert out.getvalue() == t.header() + "\n" + "1      a                  -1   2 /x\n"


def test_table_escapes_kernel_strings():
    t = opensnoop()
    row = t.row([1, b"ev\x1b[31mil", 3, 0, b"/tmp/a\nb"])
    assert "\x1b" not in row and "\n" not in row
    assert row.endswith("/tmp/a\\nb")
    raw = Table([("C", "%s")], escape=False).row(["a\tb"])
    assert raw == "a\tb"


def test_table_records_and_keys():
    t = Table([("TIME(s)", "%-14.9f"), ("PID", "%-6d"), ("COMM", "%-16s"), ("X", "%d", "custom")])
    assert t.keys == ["time_s", "pid", "comm", "custom"]
    rec = t.record([0.5, 12, b"sh\0", 3])
    assert rec == {"time_s": 0.5, "pid": 12, "comm": "sh", "custom": 3}
    assert json.loads(jsonl.dumps(rec)) == rec
    assert column_key("T") == "t" and column_key("%CPU") == "cpu" and column_key("()") == "col"


def test_table_rejects_bad_specs():
    with pytest.raises(ValueError):
        Table([("PID", "%d %d")])
    with pytest.raises(ValueError):
        Table([("PID", "pid=%d")])
    with pytest.raises(ValueError):
        opensnoop().row([1, 2])


def test_hms_and_bpftrace_time(utc):
    t = 1700000000.25         # 2023-11-14 22:13:20 UTC
    assert timefmt.hms(t) == "22:13:20"
    assert timefmt.bpftrace_time(None, t) == "22:13:20\n"
    assert timefmt.bpftrace_time("%Y-%m-%d ", t) == "2023-11-14 "


def test_strftime_ns_microseconds(utc):
    ns = 1700000000 * 10 ** 9 + 443024123
    assert timefmt.strftime_ns("%H:%M:%S.%f", ns) == "22:13:20.443024"
    assert timefmt.strftime_ns("%%f %f", ns) == "%f 443024"
    assert timefmt.strftime_ns("%H", ns, utc=True) == "22"


def test_elapsed_column():
    e = timefmt.Elapsed()
    assert e(5_000_000_000) == 0.0
    assert e(6_500_000_000) == 1.5
    assert "%-14.9f" % e(5_000_000_001) == "0.000000001   "


def test_clock_offset_is_wall_clock_minus_monotonic():
    off = timefmt.clock_offset_ns()
    now = time.time_ns()
    mono = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    # generous: the two readings are within a second of each other
    assert abs(timefmt.boot_ns_to_epoch_ns(mono, offset=off) - now) < 10 ** 9
    boot = timefmt.clock_offset_ns(timefmt.BOOTTIME)
    assert boot <= off + 10 ** 9


def test_jsonl_helpers():
    out = io.StringIO()
    jsonl.write(jsonl.event_record({"pid": 1, "comm": b"ba\xffsh\0"}, ts=1.25), out)
    line = out.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {"ts": 1.25, "pid": 1, "comm": "ba\\xffsh"}
    assert list(json.loads(line)) == ["ts", "pid", "comm"]
    assert jsonl.dumps({"a": [1, 2]}) == '{"a":[1,2]}'
    assert jsonl.dumps({"s": "\u00e9"}) == '{"s":"\u00e9"}'
    rec = jsonl.interval_record(time="10:00:00", hists=[{"unit": "usecs"}], lost=0)
    assert rec == {"time": "10:00:00", "hists": [{"unit": "usecs"}], "lost": 0}
    assert jsonl.event_record({"a": 1}) == {"a": 1}
    with pytest.raises(TypeError):
        jsonl.dumps({"x": object()})
