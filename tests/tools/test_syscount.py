"""syscount under the ``syscalls`` workload: exactly 1000 getppid() and 500 failing openat()
calls (ENOENT) from one child, which makes no other getppid/openat calls while traced.
Counts are filtered by the child's PID (or its cgroup), so they must match exactly."""
import errno
import json
import os

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import syscalls

pytestmark = pytest.mark.bpf

READY = "Tracing"


def _trace(args, setup=None):
    with syscalls() as w:
        extra = setup(w) if setup else ["-p", str(w.pid)]
        run = ToolRun(["syscount"] + args + extra, ready=READY)
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    return run, rec


def _table(out):
    """{first column(s): [numbers]} of the report rows."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if not parts or line.startswith(("[", "Tracing", "Detaching")) or "COUNT" in line:
            continue
        rows[" ".join(p for p in parts if not p.replace(".", "").isdigit())] = \
            [float(p) if "." in p else int(p) for p in parts if p.replace(".", "").isdigit()]
    return rows


def test_counts_per_syscall_are_exact():
    run, rec = _trace([])
    assert "SYSCALL" in run.stdout and run.stdout.rstrip().endswith("Detaching...")
    table = _table(run.stdout)
    assert table["getppid"] == [rec.counts.getppid], run.stdout
    assert table["openat"] == [rec.counts.openat], run.stdout


def test_failures_and_errno_filters():
    for args in (["-x"], ["-e", "ENOENT"], ["-e", str(errno.ENOENT)]):
        run, rec = _trace(args)
        table = _table(run.stdout)
        assert "failed syscalls" in run.stdout
        assert table["openat"] == [rec.errors.openat], (args, run.stdout)
        assert "getppid" not in table, (args, run.stdout)


def test_latency_by_process_in_json():
    run, rec = _trace(["-L", "-P", "-m", "--json"])
    objs = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    assert len(objs) == 1 and objs[0]["unit"] == "msecs", run.stdout
    mine = [p for p in objs[0]["processes"] if p["pid"] == rec.pid]
    assert len(mine) == 1 and mine[0]["comm"] == rec.comm
    # every call of the child is counted: at least the workload's own ones
    assert mine[0]["count"] >= rec.counts.getppid + rec.counts.openat
    assert mine[0]["total"] > 0
    assert "Detaching..." in run.stderr


def test_one_syscall_in_a_cgroup():
    root = _cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    path = os.path.join(root, "ttwl%d-syscount" % os.getpid())
    os.mkdir(path)
    try:
        def into_cgroup(w):
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write(str(w.pid))
            return ["--cgroup", path]
        run, rec = _trace(["--syscall", "getppid", "-L"], setup=into_cgroup)
    finally:
        _rmdir(path)
    table = _table(run.stdout)
    assert list(table) == ["getppid"], run.stdout      # the test's own calls are elsewhere
    assert table["getppid"][0] == rec.counts.getppid
    assert "TIME (us)" in run.stdout


def test_children_of_a_pid():
    # BCC's -c PPID: the workload is a child of this process; the tracer is one too, but
    # makes no getppid() calls
    run, rec = _trace(["--syscall", "getppid"], setup=lambda w: ["-c", str(os.getpid())])
    assert _table(run.stdout) == {"getppid": [rec.counts.getppid]}, run.stdout
    run, rec = _trace(["--syscall", "getppid"], setup=lambda w: ["-c", str(os.getppid())])
    assert "getppid" not in _table(run.stdout), run.stdout


def _rmdir(path):
    import time
    deadline = time.monotonic() + 10
    while True:
        try:
            os.rmdir(path)
            return
        except OSError:                 # EBUSY until the workload child is reaped
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _cgroup2_root():
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == "cgroup2" and os.access(fields[1], os.W_OK):
                return fields[1]
    return None


def test_intervals_duration_and_top():
    rc, out, err = run_tool(["syscount", "-i", "1", "-d", "2", "-T", "3"], timeout=60)
    assert rc == 0, err
    stamps = [l for l in out.splitlines() if l.startswith("[") and l.endswith("]")]
    assert len(stamps) == 2, out
    for block in out.split("\n\n"):
        rows = [l for l in block.splitlines() if l and not l.startswith(("[", "SYSCALL",
                                                                         "Tracing", "Detach"))]
        assert len(rows) <= 3, block


def test_list():
    rc, out, err = run_tool(["syscount", "-l"])
    assert rc == 0 and "getppid" in out.split() and "openat" in out.split()


@pytest.mark.parametrize("args, word", [(["--syscall", "nosuchcall"], "--syscall"),
                                        (["-e", "EBOGUS"], "-e"), (["-T", "0"], "-T"),
                                        (["-c", "/nonexistent"], "-c")])
def test_bad_options_are_one_line_exit_2(args, word):
    rc, out, err = run_tool(["syscount"] + args)
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and word in err


def test_help_has_examples():
    rc, out, err = run_tool(["syscount", "-h"])
    assert rc == 0 and "examples:" in out and "syscount -L" in out


def test_children_of_a_pid_without_btf_is_one_line():
    rc, out, err = run_tool(["syscount", "-c", "1", "-d", "1"],
                            env={"TINYTRACE_TARGET": "btf=0"})
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc == 1 and len(lines) == 1 and "BTF" in lines[0], err
