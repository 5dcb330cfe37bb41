"""bench/workload.py: the workloads do exactly the operations they report."""
import json
import os
import subprocess
import sys

import pytest

from bench import workload

SCRIPT = workload.__file__


def _run(*args):
    out = subprocess.run([sys.executable, "-S", SCRIPT] + list(args), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, check=True)
    return json.loads(out.stdout.decode())


def test_opens_paced_over_processes(tmp_path):
    f = tmp_path / "target"
    f.write_text("x")
    rec = _run("opens", "--count", "3001", "--rate", "30000", "--procs", "2", "--path", str(f))
    assert rec["count"] == 3001 and rec["procs"] == 2 and rec["target_rate"] == 30000


def test_other_kinds_report_their_counts(tmp_path):
    assert _run("execs", "--count", "3")["count"] == 3
    assert _run("pingpong", "--count", "200")["count"] == 200
    assert _run("reads", "--count", "50")["count"] == 50


def test_split_and_offsets_are_deterministic():
    assert workload._split(10, 3) == [4, 3, 3]
    a = workload.bio_offsets(100, 4096)
    assert a == workload.bio_offsets(100, 4096)
    assert all(o % workload.BLOCK == 0 and 0 <= o < 4096 * workload.BLOCK for o in a)
    assert len(set(a)) > 90


def test_paced_loop_does_every_operation():
    calls = []
    import time
    done = workload._paced(500, 100000.0, time.monotonic(), lambda: calls.append(1))
    assert done == 500 and len(calls) == 500


def test_bad_arguments_are_one_line_and_exit_2():
    r = subprocess.run([sys.executable, "-S", SCRIPT, "opens", "--count", "5"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode == 2
    assert r.stderr.decode().strip().splitlines()[-1].endswith("opens needs --path")


def test_bio_reads_exact_blocks(tmp_path):
    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT here")
    f = str(tmp_path / "bio.dat")
    _run("bio-prepare", "--count", "1", "--path", f)
    assert os.path.getsize(f) == 1 << 20
    try:
        rec = _run("bio", "--count", "20", "--path", f)
    except subprocess.CalledProcessError as e:
        if b"Invalid argument" in e.stderr:
            pytest.skip("this file system refuses O_DIRECT")
        raise
    assert rec["count"] == 20
