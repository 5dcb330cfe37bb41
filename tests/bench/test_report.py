"""bench/report.py: the markdown tables from a results dict, and the block merge."""
from bench import report


def _run(side, start, rss_kb, ns, ev=1000, cpu=2.0):
    return {"side": side, "status": "ok", "start_to_attached_ms": start, "maxrss_kb": rss_kb,
            "start_cpu_ms": start * 0.8, "primary_ns_per_event": ns, "cpu_ms_per_mevents": cpu,
            "total_cpu_s": 0.1,
            "programs": [{"name": "p", "attach": ["tracepoint:sched_switch"], "run_cnt": ev,
                          "run_time_ns": int(ns * ev), "xlated_insns": 88 if side == "tinytrace"
                          else 101}]}


def _data():
    from bench import harness
    runqlat = {"name": "runqlat", "kind": "tool", "workload": "pingpong", "size": 100,
               "rate": None, "primary": "sched_switch$", "primary_label": "sched_switch",
               "note": "", "program": None, "status": {"tinytrace": "ok", "bpftrace": "ok"},
               "runs": {"tinytrace": [_run("tinytrace", 40.0, 15360, 200.0),
                                      _run("tinytrace", 60.0, 15360, 240.0)],
                        "bpftrace": [_run("bpftrace", 160.0, 102400, 400.0),
                                     _run("bpftrace", 150.0, 102400, 400.0)]}}
    runqlat["summary"] = harness.summarize_case(runqlat)
    missing = {"name": "syscount", "kind": "tool", "workload": "syscalls", "size": 10,
               "rate": None, "primary": "sys_enter$", "primary_label": "sys_enter", "note": "",
               "program": None, "status": {"tinytrace": "missing", "bpftrace": "ok"},
               "runs": {"tinytrace": [], "bpftrace": [_run("bpftrace", 90.0, 102400, 300.0)]}}
    missing["summary"] = harness.summarize_case(missing)
    return {"quick": True, "pairs": 2, "warmup": 1, "elapsed_s": 12.0,
            "machine": {"kernel": "6.18", "cpus": 2, "date": "today"},
            "cases": [runqlat, missing],
            "lost": {"status": {"tinytrace": "missing", "bpftrace": "ok"},
                     "runs": [{"side": "bpftrace", "status": "ok", "target_rate": 20000,
                               "achieved_rate": 19990.0, "generated": 1000, "captured": 990,
                               "lost": 10, "unaccounted": 0}]}}


def test_render_tables():
    text = report.render(_data())
    assert text.startswith(report.BEGIN) and text.rstrip().endswith(report.END)
    # start-up: medians 50 vs 155, pair ratios 0.25 and 0.40 -> median 0.33
    assert "| runqlat | 50.0 (40.0) | 155.0 (150.0) | 0.33× | 0.25 0.40 |" in text
    assert "| syscount | missing | 90.0 (90.0) | – | – |" in text
    # per-event per attach point, with instruction counts
    assert "| runqlat | sched_switch | 220 | 88 | 400 | 101 | 0.55× | 1000 |" in text
    assert "| 20000 | bpftrace | 19990 | 1000 | 990 | 10 | 0 |" in text
    assert "| all | tinytrace | missing |" in text
    # targets: reported, never asserted
    assert "runqlat 50 ms (meets)" in text
    assert "within 1.2× of BCC's 189 ns (≤ 227 ns): 220 ns (meets)" in text
    assert "Not measurable yet (tinytrace tool missing): syscount." in text


def test_merge_keeps_hand_written_text():
    old = "# Title\n\nintro\n\n%s\nold numbers\n%s\n\n## Where the time goes\n\nnotes\n" % (
        report.BEGIN, report.END)
    new = report.merge(old, report.BEGIN + "\nnew numbers\n" + report.END + "\n")
    assert "old numbers" not in new
    assert "new numbers" in new
    assert new.startswith("# Title\n\nintro\n\n")
    assert new.endswith("\n\n## Where the time goes\n\nnotes\n")


def test_merge_into_new_file():
    block = report.BEGIN + "\nx\n" + report.END + "\n"
    assert report.merge(None, block).startswith(report.HEADER)
    assert report.merge("# Mine\n", block) == "# Mine\n\n" + block


def test_cells_are_escaped_for_markdown():
    d = _data()
    d["cases"][0]["program"] = 'a | b\nc'
    d["cases"][0]["kind"] = "one-liner"
    assert "`a \\| b c`" in report.render(d)


def test_compare_two_runs():
    old = _data()
    new = _data()
    new["machine"]["date"] = "tomorrow"
    for r in new["cases"][0]["runs"]["tinytrace"]:
        r["start_to_attached_ms"] /= 2
    from bench import harness
    new["cases"][0]["summary"] = harness.summarize_case(new["cases"][0])
    text = report.compare(old, new)
    assert text.startswith("today (?) → tomorrow (?)")
    assert "| runqlat | start ms | 50.0 | 25.0 | 0.50× | 0.33× | 0.16× |" in text
