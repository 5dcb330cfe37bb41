"""execsnoop under a workload that execs marked commands.

Every exec the workload makes carries a unique marker argument, so the test can find exactly
its own lines among whatever else the machine runs, and check PID, PPID, RET and ARGS.
"""
import json
import os
import subprocess
import uuid

import pytest

from tests.tools.util import ToolRun, run_tool

pytestmark = pytest.mark.bpf

HEADER = "PCOMM"


def _exec_true(marker, times=3, extra=("second arg",)):
    pids = []
    for _ in range(times):
        p = subprocess.Popen(["/bin/true", marker] + list(extra))
        p.wait()
        pids.append(p.pid)
    return pids


def _lines_with(out, marker):
    return [l for l in out.splitlines() if marker in l]


def test_execs_show_pid_ppid_ret_and_args():
    marker = "tt-mark-" + uuid.uuid4().hex[:8]
    run = ToolRun(["execsnoop"], ready=HEADER)
    try:
        run.started()
        pids = _exec_true(marker)
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    lines = _lines_with(run.stdout, marker)
    assert len(lines) == 3, run.stdout
    for line, pid in zip(lines, pids):
        cols = line.split(None, 4)
        assert cols[0] == "true"
        assert int(cols[1]) == pid
        assert int(cols[2]) == os.getpid()
        assert int(cols[3]) == 0
        assert cols[4] == "/bin/true %s second arg" % marker


def test_parent_without_btf_comes_from_the_fork():
    # Kernels without BTF (32-bit ARM boards): the parent is remembered at fork time.
    marker = "tt-nobtf-" + uuid.uuid4().hex[:8]
    run = ToolRun(["execsnoop"], ready=HEADER, env={"TINYTRACE_TARGET": "btf=0"})
    try:
        run.started()
        pids = _exec_true(marker, times=2)
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    lines = _lines_with(run.stdout, marker)
    assert [int(l.split()[1]) for l in lines] == pids, run.stdout
    assert all(int(l.split()[2]) == os.getpid() for l in lines), run.stdout


def test_failed_exec_only_with_x():
    marker = "tt-missing-" + uuid.uuid4().hex[:8]
    path = "/nonexistent/" + marker
    for opts, expect in (([], 0), (["-x"], 1)):
        run = ToolRun(["execsnoop"] + opts, ready=HEADER)
        try:
            run.started()
            with pytest.raises(OSError):
                subprocess.Popen([path, "arg"])
        finally:
            rc = run.stop()
        assert rc == 0, run.stderr
        lines = _lines_with(run.stdout, marker)
        assert len(lines) == expect, run.stdout
        if expect:
            assert int(lines[0].split()[3]) == -2  # ENOENT


def test_filters_quote_max_args_and_columns():
    marker = "tt-filt-" + uuid.uuid4().hex[:8]
    run = ToolRun(["execsnoop", "-T", "-U", "-q", "--max-args", "2", "-l", marker],
                  ready=HEADER)
    try:
        run.started()
        _exec_true(marker, times=1, extra=("b", "c", "d"))
        _exec_true("tt-other-" + uuid.uuid4().hex[:8], times=1)
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    header = [l for l in run.stdout.splitlines() if HEADER in l][0]
    assert header.split()[:3] == ["TIME", "UID", "PCOMM"]
    body = [l for l in run.stdout.splitlines() if l.strip() and HEADER not in l]
    assert len(body) == 1, run.stdout      # -l keeps only the marked exec
    cols = body[0].split(None, 6)
    assert cols[1] == "0"                   # UID column (root)
    # --max-args 2: the filename plus one argument, quoted, then an ellipsis marker
    assert cols[6].startswith('"/bin/true" "%s"' % marker), body[0]
    assert '"b"' not in cols[6]


def test_name_filter_drops_other_commands():
    marker = "tt-name-" + uuid.uuid4().hex[:8]
    run = ToolRun(["execsnoop", "-n", "^no-such-comm$"], ready=HEADER)
    try:
        run.started()
        _exec_true(marker, times=1)
    finally:
        rc = run.stop()
    assert rc == 0
    assert not _lines_with(run.stdout, marker)


def test_json_lines():
    marker = "tt-json-" + uuid.uuid4().hex[:8]
    run = ToolRun(["execsnoop", "--json"], ready="Tracing")
    try:
        run.started()
        pids = _exec_true(marker, times=2)
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    events = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    mine = [e for e in events if marker in e["args"]]
    assert [e["pid"] for e in mine] == pids
    for e in mine:
        assert e["comm"] == "true" and e["ret"] == 0 and e["ppid"] == os.getpid()
        assert e["args"] == ["/bin/true", marker, "second arg"]


def test_control_characters_are_escaped():
    marker = "tt-esc-" + uuid.uuid4().hex[:8]
    run = ToolRun(["execsnoop"], ready=HEADER)
    try:
        run.started()
        _exec_true(marker, times=1, extra=("\x1b[31mred\nline",))
    finally:
        rc = run.stop()
    assert rc == 0
    lines = _lines_with(run.stdout, marker)
    assert len(lines) == 1, run.stdout
    assert "\x1b" not in lines[0] and "\\x1b[31mred\\nline" in lines[0]


def test_help_has_examples():
    rc, out, err = run_tool(["execsnoop", "-h"])
    assert rc == 0 and "examples:" in out and "execsnoop -x" in out
