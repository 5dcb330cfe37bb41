"""bench/stats.py: medians, per-pair ratios and per-attach-point sums."""
from bench import stats


def test_median_odd_even_and_none():
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 3, 2]) == 2.5
    assert stats.median([None, 5, None]) == 5
    assert stats.median([]) is None
    assert stats.median([None]) is None


def test_ratio_guards():
    assert stats.ratio(1.0, 4.0) == 0.25
    assert stats.ratio(None, 4.0) is None
    assert stats.ratio(1.0, 0) is None


def test_summarize_uses_median_of_pair_ratios():
    tt = [10.0, 30.0, 20.0]
    bt = [100.0, 50.0, 40.0]
    s = stats.summarize(tt, bt)
    assert s["tinytrace"] == 20.0
    assert s["bpftrace"] == 50.0
    assert s["ratios"] == [0.1, 0.6, 0.5]
    # the median of the ratios (0.5), not the ratio of the medians (0.4)
    assert s["ratio"] == 0.5
    assert s["n"] == 3


def test_summarize_skips_incomplete_pairs():
    s = stats.summarize([10.0, None, 30.0], [20.0, 20.0, None])
    assert s["ratios"] == [0.5, None, None]
    assert s["ratio"] == 0.5
    assert s["n"] == 1


ROWS = [
    {"name": "rq_switch", "attach": ["tracepoint:sched_switch"], "run_cnt": 100,
     "run_time_ns": 25000, "xlated_insns": 88},
    {"name": "rq_wakeup", "attach": ["tracepoint:sched_wakeup"], "run_cnt": 40,
     "run_time_ns": 8000, "xlated_insns": 16},
    {"name": "BEGIN", "attach": [], "run_cnt": 1, "run_time_ns": 900, "xlated_insns": 30},
    {"name": "sys_exit_open", "attach": ["tracepoint:sys_exit_open"], "run_cnt": 3,
     "run_time_ns": 300, "xlated_insns": 111},
    {"name": "sys_exit_opena", "attach": ["tracepoint:sys_exit_openat"], "run_cnt": 7,
     "run_time_ns": 1400, "xlated_insns": 111},
]


def test_per_event_matches_attach_points_by_regex():
    assert stats.per_event(ROWS, r"sched_switch$") == (100, 25000)
    assert stats.per_event(ROWS, r"sys_exit_open") == (10, 1700)
    assert stats.per_event(ROWS, r"nothing") == (0, 0)
    # a program with no attachment is matched by its name
    assert stats.per_event(ROWS, r"^BEGIN$") == (1, 900)


def test_by_attach_point_leaves_out_unattached_programs():
    pts = stats.by_attach_point(ROWS)
    assert set(pts) == {"sched_switch", "sched_wakeup", "sys_exit_open", "sys_exit_openat"}
    assert pts["sched_switch"] == (100, 25000, 88)


def test_by_attach_point_one_program_on_two_events():
    rows = [{"name": "p", "attach": ["tracepoint:a", "tracepoint:b"], "run_cnt": 5,
             "run_time_ns": 50, "xlated_insns": 9}]
    assert stats.by_attach_point(rows) == {"a+b": (5, 50, 9)}


def test_cpu_per_million():
    # 2 ms of CPU for 1000 events is 2000 ms per million
    assert stats.cpu_per_million(2000000, 1000) == 2000.0
    assert stats.cpu_per_million(5, 0) is None
    assert stats.cpu_per_million(None, 10) is None


def test_merge_points_folds_separate_events_into_a_combined_key():
    pts = {"a": (10, 100, 5), "b": (2, 40, 6), "c": (1, 1, 1)}
    stats.merge_points(pts, "a+b")
    assert pts == {"a+b": (12, 140, 6), "c": (1, 1, 1)}
    # present already, or a part missing: unchanged
    assert stats.merge_points({"a+b": (1, 1, 1), "a": (2, 2, 2)}, "a+b") == \
        {"a+b": (1, 1, 1), "a": (2, 2, 2)}
    assert stats.merge_points({"a": (1, 1, 1)}, "a+b") == {"a": (1, 1, 1)}


def test_rename_points_pairs_equivalent_tracepoints():
    from bench import stats
    pts = {"sys_exit": (10, 900, 20), "other": (1, 1, 1)}
    assert stats.rename_points(pts, {"sys_exit": "sys_exit / sys_enter", "absent": "x"}) == \
        {"sys_exit / sys_enter": (10, 900, 20), "other": (1, 1, 1)}
