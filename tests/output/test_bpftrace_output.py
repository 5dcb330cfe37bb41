"""bpftrace's map, value and JSON layouts.

The goldens below were written from the output of bpftrace 0.17.0 (Debian 12's package) for
scripts such as ``BEGIN { @a[1] = count(); @h = hist(5); ... exit(); }``, run with and without
``-f json``, and checked against bpftrace's ``src/output.cpp`` (``TextOutput::hist_to_str``:
``setw(16)`` left header, ``setw(8)`` count, ``" |"``, a 52-wide ``@`` bar;
``map_keyval_to_str``: ``"@h: "`` then a newline for hist maps; ``map_stats`` ends with two
newlines; ``JsonOutput``: ``{"type": "map", "data": {...}}``) and ``src/bpftrace.cpp``
(``print_map``: count/sum/int/min/max sorted by value, other maps by key; hist maps by total
count, stats/avg by average; ``top`` keeps the last entries; main prints two newlines
after Ctrl-C before the maps).
"""
import json

import pytest

from tinytrace.output import bpftrace as B

BAR52 = "|" + "@" * 52 + "|"
BAR0 = "|" + " " * 52 + "|"


def test_count_map_sorted_by_value():
    text = B.map_text("@a", [(2, 2), (1, 1), (3, 5)], "count")
    assert text == "@a[1]: 1\n@a[2]: 2\n@a[3]: 5\n"


def test_scalar_maps():
    assert B.map_text("@b", [(None, 5)], "int") == "@b: 5\n"
    assert B.map_text("@mn", [(None, -4)], "min") == "@mn: -4\n"
    assert B.map_text("@t", [(None, (1, "two"))]) == "@t: (1, two)\n"


def test_empty_map_is_a_blank_line_in_text_and_nothing_in_json():
    assert B.map_text("@e", [], "count") == "\n"
    assert B.map_text("@e", [], "hist") == "\n"
    assert B.map_json("@e", [], "count") == ""


def test_tuple_and_string_keys_sorted_by_key():
    # @m[2,"b"]="1"; @m[1,"z"]="2"; @m[2,"a"]="3"; @m[1,"a"]="4"  (values are strings)
    text = B.map_text("@m", [((2, "b"), "1"), ((1, "z"), "2"), ((2, "a"), "3"), ((1, "a"), "4")])
    assert text == "@m[1, a]: 4\n@m[1, z]: 2\n@m[2, a]: 3\n@m[2, b]: 1\n"
    # ints compare as unsigned 64-bit: -5 sorts last; strings bytewise
    assert B.map_text("@s", [(3, "z"), (256, "y"), (-5, "w"), (2, "x")]) == \
        "@s[2]: x\n@s[3]: z\n@s[256]: y\n@s[-5]: w\n"
    assert B.map_text("@ss", [("b", "q"), ("ab", "r"), ("a", "r")]) == \
        "@ss[a]: r\n@ss[ab]: r\n@ss[b]: q\n"


def test_bytes_keys_are_c_strings_and_escaped():
    text = B.map_text("@c", [(b"bash\0\0\0", 3), (b"ev\x1b[2Jil\0", 1)], "count")
    assert text == "@c[ev\\x1b[2Jil]: 1\n@c[bash]: 3\n"
    raw = B.map_text("@c", [("a\tb", 1)], "count", escape=False)
    assert raw == "@c[a\tb]: 1\n"


def test_top_and_div():
    entries = [("a", 1), ("b", 5), ("c", 3)]
    assert B.map_text("@c", entries, "count", top=2) == "@c[c]: 3\n@c[b]: 5\n"
    # print(@neg, 0, 2) printed -2 and 1 for -5 and 3: C division truncates toward zero
    assert B.map_text("@neg", [(1, -5), (2, 3)], "sum", div=2) == "@neg[1]: -2\n@neg[2]: 1\n"
    assert B.cdiv(-5, 2) == -2 and B.cdiv(5, -2) == -2 and B.cdiv(7, 2) == 3


def test_64_bit_values():
    big = 2 ** 64 - 1
    assert B.map_text("@u", [(None, big)], "sum") == "@u: 18446744073709551615\n"
    assert B.map_text("@k", [(2 ** 63, 1), (1, 2)], "count") == \
        "@k[9223372036854775808]: 1\n@k[1]: 2\n"


def test_hist_golden():
    # @h = hist(5); hist(0); hist(-3); hist(1500); and a value in [2G, 4G)
    text = B.map_text("@h", [(None, {0: 1, 1: 1, 4: 1, 12: 1, 33: 1})], "hist")
    lines = text.split("\n")
    assert lines[0] == "@h: "
    assert lines[1] == "(..., 0)               1 " + BAR52
    assert lines[2] == "[0]                    1 " + BAR52
    assert lines[3] == "[1]                    0 " + BAR0
    assert lines[4] == "[2, 4)                 0 " + BAR0
    assert lines[5] == "[4, 8)                 1 " + BAR52
    assert lines[12] == "[512, 1K)              0 " + BAR0
    assert lines[13] == "[1K, 2K)               1 " + BAR52
    assert lines[22] == "[512K, 1M)             0 " + BAR0
    assert lines[32] == "[512M, 1G)             0 " + BAR0
    assert lines[34] == "[2G, 4G)               1 " + BAR52
    assert lines[35:] == ["", ""]      # the hist ends with an empty line


def test_hist_trims_and_bar_scale():
    text = B.hist_text({5: 2, 6: 1, 8: 4})
    assert text == (
        "[8, 16)                2 |" + "@" * 26 + " " * 26 + "|\n"
        "[16, 32)               1 |" + "@" * 13 + " " * 39 + "|\n"
        "[32, 64)               0 " + BAR0 + "\n"
        "[64, 128)              4 " + BAR52 + "\n")
    assert B.hist_text({}) == ""
    assert B.hist_text([0, 0, 0]) == ""


def test_hist_large_buckets_and_huge_counts():
    # the label of bucket i's lower edge is hist_index_label(i - 1)
    assert B.hist_index_label(41) == "1T"      # bucket 42 is [2**40, 2**41)
    assert B.hist_index_label(51) == "1P"
    assert B.hist_index_label(61) == "1E"
    assert B.hist_text({64: 1}) == "[4E, 8E)               1 " + BAR52 + "\n"
    line = B.hist_text({3: 12345678901})
    assert line == "[2, 4)" + " " * 10 + "12345678901 " + BAR52 + "\n"


def test_hist_bits():
    # hist(x, 2): 4 buckets per power of two; single values up to 7
    assert B.hist_index_label(8, 2) == "8"
    assert B.hist_index_label(9, 2) == "10"
    rows = B.hist_text({8: 1, 9: 1, 12: 1}, bits=2).splitlines()
    assert [r[:16].rstrip() for r in rows] == ["[7]", "[8, 10)", "[10, 12)", "[12, 14)",
                                              "[14, 16)", "[16, 20)"][:len(rows)]


def test_keyed_hist_sorted_by_total_with_blank_lines():
    text = B.map_text("@hk", [("x", {3: 1}), ("y", {8: 2}), ("a", {2: 1})], "hist")
    assert text == (
        "@hk[a]: \n[1]                    1 " + BAR52 + "\n\n"
        "@hk[x]: \n[2, 4)                 1 " + BAR52 + "\n\n"
        "@hk[y]: \n[64, 128)              2 " + BAR52 + "\n\n")
    # print(@hk, 0, 10): counts are divided, the bar is not
    div = B.map_text("@hk", [("y", {8: 2})], "hist", div=10)
    assert div == "@hk[y]: \n[64, 128)              0 " + BAR52 + "\n\n"
    assert B.map_text("@hk", [("x", {3: 1}), ("y", {8: 2})], "hist", top=1).startswith("@hk[y]")


def test_lhist_golden():
    # @l = lhist(5,0,100,10); lhist(-1,...); lhist(200,...)
    text = B.map_text("@l", [(None, {0: 1, 1: 1, 11: 1})], "lhist", lhist=(0, 100, 10))
    lines = text.split("\n")
    assert lines[0] == "@l: "
    assert lines[1] == "(..., 0)               1 " + BAR52
    assert lines[2] == "[0, 10)                1 " + BAR52
    assert lines[3] == "[10, 20)               0 " + BAR0
    assert lines[11] == "[90, 100)              0 " + BAR0
    assert lines[12] == "[100, ...)             1 " + BAR52
    assert lines[13:] == ["", ""]


def test_lhist_labels_and_trim():
    text = B.lhist_text({1: 1, 4: 1}, 0, 4194304, 1048576)
    assert text.splitlines() == [
        "[0, 1M)                1 " + BAR52, "[1M, 2M)               0 " + BAR0,
        "[2M, 3M)               0 " + BAR0, "[3M, 4M)               1 " + BAR52]
    assert B.lhist_text({3: 1}, 0, 8192, 1024) == "[2K, 3K)               1 " + BAR52 + "\n"
    assert B.lhist_text({0: 1}, 10, 20, 5) == "(..., 10)              1 " + BAR52 + "\n"
    assert B.lhist_text({4: 1}, 0, 10240, 1000) == "[3000, 4000)           1 " + BAR52 + "\n"
    # negative ranges
    assert B.lhist_text({1: 2, 2: 1}, -10, 10, 10).splitlines()[0].startswith("[-10, 0)  ")
    assert B.lhist_text({}, 0, 10, 1) == ""


def test_stats_and_avg():
    assert B.map_text("@s", [(None, (2, 13))], "stats") == "@s: count 2, average 6, total 13\n\n"
    assert B.map_text("@av", [((1, "x"), (1, 7)), ((2, "yy"), (1, 3))], "avg") == \
        "@av[2, yy]: 3\n@av[1, x]: 7\n\n"
    assert B.map_text("@z", [(None, (0, 0))], "stats") == "@z: count 0, average 0, total 0\n\n"
    # negative totals average toward zero
    assert B.map_text("@n", [(None, (2, -7))], "avg") == "@n: -3\n\n"


def test_stack_keys_and_values():
    st = B.Stack(["do_nanosleep+1", "entry_SYSCALL_64+2"])
    assert B.map_text("@k", [(st, 1)], "count") == \
        "@k[\n    do_nanosleep+1\n    entry_SYSCALL_64+2\n]: 1\n"
    vals = B.map_text("@s", [(1, B.Stack(["a+1"])), (2, B.Stack(["b+2"]))])
    assert vals == "@s[1]: \n        a+1\n@s[2]: \n        b+2\n\n"
    perf = B.stack_text(B.Stack([(0xffff1234, "f+1")], mode="perf"))
    assert perf == "\n\tffff1234 f+1\n"


def test_buffer_values():
    assert B.map_text("@b", [(1, B.Buffer(b"ab"))]) == "@b[1]: ab\n"
    assert B.value_text(B.Buffer(b"a\x00b")) == "a\\x00b\n"
    assert B.hex_format_buffer(b"ab\x01\xffc\\\" ~") == 'ab\\x01\\xffc\\" ~'
    assert B.hex_format_buffer(b"ab\x01", keep_ascii=False) == "\\x61\\x62\\x01"
    assert B.hex_format_buffer(b"ab\x01", escape_hex=False) == "61 62 01"


def test_records_arrays_bools():
    assert B.value_str({"a": 1, "b": "x"}) == "{ .a = 1, .b = x }"
    assert B.value_str([1, 2, 3]) == "[1,2,3]"
    assert B.value_str(True) == "true"


def test_json_maps_golden():
    assert B.map_json("@a", [(1, 1), (2, 2)], "count") == \
        '{"type": "map", "data": {"@a": {"1": 1, "2": 2}}}\n'
    assert B.map_json("@b", [(None, 5)], "int") == '{"type": "map", "data": {"@b": 5}}\n'
    assert B.map_json("@t", [(None, (1, "two"))]) == \
        '{"type": "map", "data": {"@t": [1,"two"]}}\n'
    assert B.map_json("@av", [((1, "x"), (1, 7)), ((2, "yy"), (1, 3))], "avg") == \
        '{"type": "stats", "data": {"@av": {"2,yy": 3, "1,x": 7}}}\n'
    assert B.map_json("@s", [(None, (2, 13))], "stats") == \
        '{"type": "stats", "data": {"@s": {"count": 2, "average": 6, "total": 13}}}\n'
    assert B.map_json("@str", [('ab"c', 1)], "count") == \
        '{"type": "map", "data": {"@str": {"ab\\"c": 1}}}\n'


def test_json_hists_golden():
    assert B.map_json("@h", [(None, {0: 1, 1: 1, 4: 1})], "hist") == (
        '{"type": "hist", "data": {"@h": [{"max": -1, "count": 1}, '
        '{"min": 0, "max": 0, "count": 1}, {"min": 1, "max": 1, "count": 0}, '
        '{"min": 2, "max": 3, "count": 0}, {"min": 4, "max": 7, "count": 1}]}}\n')
    assert B.map_json("@hk", [("x", {3: 1}), ("y", {8: 1})], "hist") == (
        '{"type": "hist", "data": {"@hk": {"x": [{"min": 2, "max": 3, "count": 1}], '
        '"y": [{"min": 64, "max": 127, "count": 1}]}}}\n')
    lh = B.map_json("@l", [(None, {0: 1, 1: 1, 11: 1})], "lhist", lhist=(0, 100, 10))
    doc = json.loads(lh)
    assert doc["data"]["@l"][0] == {"max": -1, "count": 1}
    assert doc["data"]["@l"][1] == {"min": 0, "max": 9, "count": 1}
    assert doc["data"]["@l"][-1] == {"min": 100, "count": 1}
    assert len(doc["data"]["@l"]) == 12


def test_json_escaping_and_validity():
    line = B.map_json("@x", [("a\tb\x01\"\\", 1)], "count")
    assert line == '{"type": "map", "data": {"@x": {"a\\tb\\u0001\\"\\\\": 1}}}\n'
    assert json.loads(line)["data"]["@x"] == {"a\tb\x01\"\\": 1}
    # bytes that are not UTF-8 stay visible and the line stays valid JSON
    bad = B.map_json("@x", [(b"\xff\xfeok", 1)], "count")
    assert json.loads(bad)["data"]["@x"] == {"\\xff\\xfeok": 1}


def test_json_values_and_messages():
    assert B.value_json((1, 2)) == '{"type": "value", "data": [1,2]}\n'
    assert B.value_json("str") == '{"type": "value", "data": "str"}\n'
    assert B.value_json(3) == '{"type": "value", "data": 3}\n'
    assert B.printf_json("hi 3\n") == '{"type": "printf", "data": "hi 3\\n"}\n'
    assert B.message_json("time", "05\n") == '{"type": "time", "data": "05\\n"}\n'
    assert B.attached_probes_json(1) == '{"type": "attached_probes", "data": {"probes": 1}}\n'
    assert B.lost_events_json(7) == '{"type": "lost_events", "data": {"events": 7}}\n'
    assert B.attached_probes_text(1) == "Attaching 1 probe...\n"
    assert B.attached_probes_text(3) == "Attaching 3 probes...\n"
    assert B.lost_events_text(7) == "Lost 7 events\n"
    assert B.EXIT_PREAMBLE == "\n\n"


def test_bad_arguments():
    with pytest.raises(ValueError):
        B.map_text("@l", [(None, [1])], "lhist")
    with pytest.raises(ValueError):
        B.map_text("@x", [(None, 1)], "quantize")
