"""bench/procs.py and bench/launch.py: output reading, the launcher's report, clean-up."""
import os
import re
import sys

from bench import procs


def _feed(chunks, **kw):
    r, w = os.pipe()
    marks = []
    reader = procs.OutputReader(r, on_marker=marks.append, **kw)
    reader.start()
    for c in chunks:
        os.write(w, c)
    os.close(w)
    reader.eof.wait(10)
    return reader, marks


def test_reader_counts_across_chunk_boundaries():
    reader, marks = _feed([b"Attaching 2 probes...\nTrac", b"ing...\n1 open tt_mar",
                           b"k\n2 open tt_mark\nLost 7 events\n", b"tail without newline"],
                          marker=re.compile(rb"^Tracing"), count=b"tt_mark")
    assert reader.count == 2
    assert reader.lost == 7
    assert len(marks) == 1
    assert reader.lines == 6
    assert reader.text_head()[0] == "Attaching 2 probes..."
    assert reader.text_tail()[-1] == "tail without newline"


def test_reader_sums_both_loss_formats_and_escapes():
    reader, marks = _feed([b"Possibly lost 3 samples\nLost 4 events\n\x1b[2Jx\n"
                           b"tinytrace: 5 events lost\nLost 1 event\n"])
    assert reader.lost == 13
    assert marks == []
    assert reader.text_tail()[-3] == "\\x1b[2Jx"


def test_tracer_through_launcher_reports_rusage():
    t = procs.Tracer([sys.executable, "-S", "-c",
                      "import signal,time; print('Tracing now', flush=True); time.sleep(60)"],
                     rb"^Tracing", python=sys.executable)
    t.start()
    try:
        assert t.wait_attached(30)
        assert t.pid in procs.LIVE
        assert t.start_to_attached_s > 0
        assert t.cpu_at_marker_ns > 0
    finally:
        ex = t.stop()
    assert ex["maxrss_kb"] > 0 and ex["rss_floor_kb"] > 0
    assert t.exit_code() in (1, -2)     # KeyboardInterrupt traceback, or killed by SIGINT
    assert t.pid not in procs.LIVE and t.launcher.pid not in procs.LIVE


def test_tracer_that_fails_is_reported():
    t = procs.Tracer([sys.executable, "-S", "-c",
                      "import sys; sys.stderr.write('bad program: no such probe\\n'); "
                      "sys.exit(2)"], rb"^Tracing", python=sys.executable)
    t.start()
    assert not t.wait_attached(30)
    t.stop(timeout=5)
    assert t.exit_code() == 2
    assert t.error_line() == "bad program: no such probe"


def test_reap_all_ends_registered_processes():
    t = procs.Tracer([sys.executable, "-S", "-c", "import time; time.sleep(60)"],
                     rb"^never", python=sys.executable)
    t.start()
    pid = t.pid
    procs.reap_all(grace=2.0)
    assert not procs._alive(pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"
    assert pid not in procs.LIVE


def test_run_workload_counts():
    rec = procs.run_workload(sys.executable, os.path.join(procs.HERE, "workload.py"),
                             ["syscalls", "--count", "1000"])
    assert rec["kind"] == "syscalls" and rec["count"] == 1000
