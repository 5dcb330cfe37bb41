"""profile under CPU burners with known stacks.

``cpu_burn`` in kernel mode reads /dev/zero in a loop: its samples are in the kernel, under
read_zero / vfs_read / ksys_read.  In native mode it spins in ``tt_spin_inner`` called from
``tt_spin`` (a helper library built with frame pointers).  The burner reports its CPU
time, so the sample count is bounded by frequency x CPU time (cpu-clock samples the task
only while it runs).
"""
import json

import pytest

from tests.tools.util import ToolRun, bpf_maps, run_tool
from tests.workloads import cpu_burn

pytestmark = pytest.mark.bpf

FREQ = 199
SECONDS = 0.6


def _run(args, mode):
    with cpu_burn(seconds=SECONDS, mode=mode) as w:
        run = ToolRun(["profile", "-F", str(FREQ), "-p", str(w.pid)] + args, ready="Sampling at")
        try:
            run.started()
            run.maps = bpf_maps(run.proc.pid)
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    return rec, run


def _stacks(text):
    """[(frames, comm, pid, count)] of BCC's multi-line layout."""
    out = []
    frames = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("    -  "):
            rest = line.strip()[1:].strip()
            comm, _, pid = rest.rpartition(" (")
            count = int(lines[i + 1].strip())
            out.append((frames, comm.strip(), int(pid.rstrip(")")), count))
            frames = []
            i += 2
            continue
        if line.startswith("    ") and line.strip():
            frames.append(line.strip())
        i += 1
    return out


def _expected_samples(rec):
    cpu = rec.utime_s + rec.stime_s
    return cpu * FREQ


def test_kernel_stacks_of_a_reading_loop():
    rec, run = _run(["-K"], "kernel")
    assert "Sampling at %d Hertz of PID %d by kernel stack... Hit Ctrl-C to end." % (
        FREQ, rec.pid) in run.stdout, run.stdout
    stacks = _stacks(run.stdout)
    assert stacks and {s[2] for s in stacks} == {rec.pid}, run.stdout
    assert {s[1] for s in stacks} == {rec.comm}, run.stdout
    total = sum(s[3] for s in stacks)
    expect = _expected_samples(rec)
    # os.times() has 10 ms ticks; start-up and the hand-shake add a few samples
    assert expect * 0.5 <= total <= expect * 1.5 + 10, (total, expect, rec)
    in_read = sum(s[3] for s in stacks if set(rec.kstack_expect) & set(s[0]))
    assert in_read >= total * 0.5, run.stdout
    # innermost first: read_zero (when sampled in it) sits above vfs_read
    for frames, _, _, _ in stacks:
        if "read_zero" in frames and "vfs_read" in frames:
            assert frames.index("read_zero") < frames.index("vfs_read"), frames


def test_user_stacks_of_a_native_spin_folded():
    rec, run = _run(["-U", "-f"], "native")
    assert "Sampling at" in run.stderr
    lines = [l for l in run.stdout.splitlines() if l.strip()]
    assert lines, run.stderr
    total = 0
    spin = 0
    for line in lines:
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        assert frames[0] == rec.comm, line
        total += int(n)
        if "tt_spin_inner" in frames and "tt_spin" in frames:
            # folded: outermost first
            assert frames.index("tt_spin") < frames.index("tt_spin_inner"), line
            spin += int(n)
    expect = _expected_samples(rec)
    assert expect * 0.5 <= total <= expect * 1.5 + 10, (total, expect)
    assert spin >= total * 0.5, run.stdout


def test_json_and_delimiter():
    rec, run = _run(["--json", "-d"], "kernel")
    objs = [json.loads(l) for l in run.stdout.splitlines()]
    assert objs and all(o["pid"] == rec.pid and o["comm"] == rec.comm for o in objs), objs
    assert all(set(o) == {"pid", "comm", "kernel_stack", "user_stack", "count"} for o in objs)
    assert any(set(rec.kstack_expect) & set(o["kernel_stack"]) for o in objs), objs
    counts = [o["count"] for o in objs]
    assert counts == sorted(counts)


def test_duration_ends_the_run():
    rc, out, err = run_tool(["profile", "-F", "99", "-K", "1"], timeout=60)
    assert rc == 0, err
    assert "by kernel stack for 1 secs." in out


def _sizes(run, kind):
    return [m["max_entries"] for m in run.maps if m["kind"] == kind]


def test_stack_storage_size_bounds_the_stacks_kept():
    # a read loop is sampled at many different kernel addresses, i.e. many stack ids; a
    # stack map with room for one keeps the first, and the other samples are counted
    # under an empty stack (BCC prints "[Missed Kernel Stack]" there)
    rec, run = _run(["-K", "--stack-storage-size", "1"], "kernel")
    assert _sizes(run, "stack_trace") == [1], run.maps
    assert _sizes(run, "percpu_hash") == [4096], run.maps
    stacks = _stacks(run.stdout)
    assert len({tuple(s[0]) for s in stacks if s[0]}) <= 1, run.stdout
    assert any(not s[0] for s in stacks), run.stdout
    total = sum(s[3] for s in stacks)
    expect = _expected_samples(rec)
    assert expect * 0.5 <= total <= expect * 1.5 + 10, (total, expect, rec)


def test_hash_storage_size_bounds_the_rows():
    # room for one (pid, comm, stack) key in the counts map: one row, whatever the stacks
    rec, run = _run(["-K", "--hash-storage-size", "1", "--stack-storage-size", "100"],
                    "kernel")
    assert _sizes(run, "percpu_hash") == [1], run.maps
    assert _sizes(run, "stack_trace") == [100], run.maps
    stacks = _stacks(run.stdout)
    assert len(stacks) == 1 and stacks[0][2] == rec.pid, run.stdout
    assert stacks[0][3] >= 1, run.stdout


def test_bad_options_are_one_line_exit_2():
    for args in (["-p", "1,x"], ["-U", "-K"], ["-F", "0"], ["-f", "--json"], ["-C", "9999"],
                 ["--stack-storage-size", "0"], ["--stack-storage-size", "-1"],
                 ["--stack-storage-size", "junk"], ["--hash-storage-size", "0"],
                 ["--hash-storage-size", "-1"], ["--hash-storage-size", "4k"],
                 ["--hash-storage-size", str(1 << 40)]):
        rc, out, err = run_tool(["profile"] + args)
        assert rc == 2, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)


def test_help_has_examples():
    rc, out, err = run_tool(["profile", "-h"])
    assert rc == 0
    assert "examples:" in out and "profile -F 99" in out and "--folded" in out
    assert "--stack-storage-size 16384 --hash-storage-size 40960" in out
