"""opensnoop under the ``opens`` workload: raw open/openat/openat2 calls of known paths with
known flags and modes, some failing with ENOENT.  Every check compares a line of the tool's
output with one call the workload made (filtered by the workload's PID, so other processes
on the machine do not matter).
"""
import errno
import json
import os
import uuid

import pytest

from tests.tools.util import ToolRun, bpf_maps, run_tool
from tests.workloads import opens

pytestmark = pytest.mark.bpf

HEADER = "PATH"


def _rows(out):
    return [l for l in out.splitlines() if l.strip() and not l.rstrip().endswith(HEADER)]


def _trace(args, workload, ready=HEADER):
    run = ToolRun(["opensnoop"] + args, ready=ready)
    try:
        run.started()
        rec = workload.go()
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    return run, rec


def test_every_call_with_fd_err_flags_mode_and_path():
    with opens(n_ok=3) as w:
        run, rec = _trace(["-e", "-T", "-U", "-p", str(w.pid)], w)
    header = [l for l in run.stdout.splitlines() if l.rstrip().endswith(HEADER)][0]
    assert header.split() == ["TIME(s)", "UID", "PID", "COMM", "FD", "ERR", "FLAGS", "MODE",
                              "PATH"]
    rows = [l.split() for l in _rows(run.stdout)]
    assert len(rows) == len(rec.calls), run.stdout
    stamps = []
    for cols, call in zip(rows, rec.calls):
        ts, uid, pid, comm, fd, err, flags, mode, path = cols
        stamps.append(float(ts))
        assert int(uid) == 0 and int(pid) == rec.pid and comm == rec.comm
        assert path == call.path                       # as passed (relative ones too)
        assert int(fd) == (call.ret if call.ret >= 0 else -1)
        assert int(err) == call.errno
        assert int(flags, 8) == call.flags
        if call.flags & os.O_CREAT:
            assert int(mode, 8) == call.mode
        else:
            assert mode == "n/a"
    assert stamps[0] == 0.0 and stamps == sorted(stamps)
    # all three syscalls were seen, with their successes and failures
    assert {c.syscall for c in rec.calls} == set(rec.counts)


def test_json_full_path_and_tid():
    with opens() as w:
        # the workload child is single-threaded: its TID is its PID
        run, rec = _trace(["--json", "-F", "-t", str(w.pid)], w, ready="Tracing")
    events = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    assert len(events) == len(rec.calls), run.stdout
    for e, call in zip(events, rec.calls):
        assert e["syscall"] == call.syscall
        assert e["pid"] == rec.pid and e["tid"] == rec.tid and e["comm"] == rec.comm
        assert e["path"] == call.abspath               # -F: relative names made absolute
        assert e["fd"] == (call.ret if call.ret >= 0 else -1) and e["err"] == call.errno
        assert e["flags"] == call.flags and e["dfd"] == call.dfd
    relative = [c for c in rec.calls if not c.path.startswith("/")]
    assert relative                                     # the -F case was exercised


def test_flag_filter_and_name():
    with opens(n_ok=3, syscalls=("openat", "openat2")) as w:
        run, rec = _trace(["-f", "O_WRONLY", "-f", "O_RDWR", "-n", "tt-op", "-u", "0",
                           "-p", str(w.pid)], w)
    want = [c.path for c in rec.calls if c.flags & (os.O_WRONLY | os.O_RDWR)]
    assert len(want) == 4                               # create + read-write, per syscall
    assert [l.split()[-1] for l in _rows(run.stdout)] == want, run.stdout


def test_failed_only_escaped_and_long_names():
    tag = uuid.uuid4().hex[:8]
    evil = "/nonexistent-%s/\x1b[31mred\nline" % tag
    long_name = "/nonexistent-%s/%s/%s" % (tag, "d" * 120, "f" * 100)   # < 255 characters
    too_long = "/nonexistent-%s/%s/%s/%s" % (tag, "d" * 120, "e" * 120, "f" * 60)
    existing = os.path.abspath(__file__)
    run = ToolRun(["opensnoop", "-x", "-p", str(os.getpid())], ready=HEADER)
    try:
        run.started()
        os.close(os.open(existing, os.O_RDONLY))        # succeeds: not shown with -x
        for path in (evil, long_name, too_long):
            with pytest.raises(FileNotFoundError):
                os.open(path, os.O_RDONLY)
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    rows = [l for l in _rows(run.stdout) if tag in l]
    assert len(rows) == 3, run.stdout
    assert "\x1b" not in rows[0] and rows[0].endswith("\\x1b[31mred\\nline")
    assert rows[1].split()[-1] == long_name
    assert rows[2].split()[-1] == too_long[:255]          # BCC keeps 254
    for row in rows:
        cols = row.split()
        assert int(cols[0]) == os.getpid() and int(cols[2]) == -1
        assert int(cols[3]) == errno.ENOENT
    assert existing not in run.stdout


def test_duration_ends_the_run_and_name_filter_drops():
    with opens(n_ok=1, n_missing=1) as w:
        run = ToolRun(["opensnoop", "-d", "2", "-n", "no-such-comm", "-p", str(w.pid)],
                      ready=HEADER)
        run.started()
        w.go()
        rc = run.wait(60)                               # -d: ends by itself, no Ctrl-C
    assert rc == 0, run.stderr
    assert _rows(run.stdout) == [], run.stdout


def test_lost_events_are_reported_as_bcc_does(capsys):
    from tinytrace.toolkit import LostReporter

    class Counting(object):
        lost = 0

    script = Counting()
    reporter = LostReporter(script)
    reporter.check()
    script.lost = 7
    reporter.check()
    reporter.check()                    # nothing new: nothing printed
    script.lost = 9
    reporter.check()
    assert capsys.readouterr().err == "Possibly lost 7 samples\nPossibly lost 2 samples\n"


def _perf_mmaps(pid):
    """Sizes in bytes of the perf-event buffers process ``pid`` has mapped."""
    sizes = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            if line.rstrip().endswith("[perf_event]"):
                lo, hi = line.split()[0].split("-")
                sizes.append(int(hi, 16) - int(lo, 16))
    return sizes


def _online_cpus():
    with open("/sys/devices/system/cpu/online") as f:
        text = f.read().strip()
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


@pytest.mark.parametrize("target", ["", "ringbuf=0"])
def test_buffer_pages_size_the_output_buffer(target):
    # -b 4: a perf buffer of 4 data pages (+1 header page) per CPU, or a BPF ring buffer of
    # 4 pages per online CPU rounded up to a power of two; the events still all arrive
    page = os.sysconf("SC_PAGE_SIZE")
    env = {"TINYTRACE_TARGET": target} if target else None
    with opens(n_ok=2) as w:
        run = ToolRun(["opensnoop", "-b", "4", "-p", str(w.pid)], ready=HEADER, env=env)
        try:
            run.started()
            maps = bpf_maps(run.proc.pid)
            mmaps = _perf_mmaps(run.proc.pid)
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    kinds = [m["kind"] for m in maps]
    if target:
        assert "ringbuf" not in kinds and "perf_event_array" in kinds, maps
        assert mmaps and set(mmaps) == {5 * page}, mmaps
    else:
        ring = [m["max_entries"] for m in maps if m["kind"] == "ringbuf"]
        want = 4 * page * _online_cpus()
        size = page
        while size < want:
            size <<= 1
        assert ring == [size], maps
        assert mmaps == [], mmaps
    assert len(_rows(run.stdout)) == len(rec.calls), run.stdout


@pytest.mark.parametrize("args, word", [
    (["-b", "0"], "-b"),
    (["-b", "-1"], "-b"),
    (["-b", "3"], "-b"),
    (["-b", "junk"], "-b"),
    (["-b", str(1 << 20)], "-b"),
    (["-f", "O_BOGUS"], "-f"),
    (["-p", "notapid"], "-p"),
    (["-p", "1", "-t", "2"], "-t"),
    (["-d", "0"], "-d"),
])
def test_bad_options_are_one_line_exit_2(args, word):
    rc, out, err = run_tool(["opensnoop"] + args)
    assert rc == 2 and "Traceback" not in err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and word in lines[0], err


def test_help_has_examples():
    rc, out, err = run_tool(["opensnoop", "-h"])
    assert rc == 0 and "examples:" in out and "opensnoop -x" in out
    assert "--json" in out and "/proc" in out
    assert "opensnoop -b 256" in out and "power of two" in out
