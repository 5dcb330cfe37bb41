"""bench/parse.py: -X importtime output and dpkg's dependency closure."""
from bench import parse

IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   _io
import time:       200 |        300 | encodings
import time:        50 |         50 |       tinytrace.kernel.arch
import time:       400 |        450 |     tinytrace.kernel.bpf
import time:        30 |         30 |     struct
import time:       500 |        980 |   tinytrace.kernel
import time:        20 |       1000 | tinytrace
import time:      7000 |       7000 | site
not an importtime line
"""


def test_parse_importtime_fields_and_depth():
    e = parse.parse_importtime(IMPORTTIME)
    assert len(e) == 8
    assert e[0] == (100, 100, 1, "_io")
    assert e[1] == (200, 300, 0, "encodings")
    assert e[2] == (50, 50, 3, "tinytrace.kernel.arch")
    assert e[-1] == (7000, 7000, 0, "site")


def test_importtime_summary():
    s = parse.importtime_summary(parse.parse_importtime(IMPORTTIME), top=2)
    assert s["total_us"] == 300 + 1000 + 7000
    assert s["top_cumulative"] == [("site", 7000), ("tinytrace", 1000)]
    assert s["top_self"] == [("site", 7000), ("tinytrace.kernel", 500)]
    # tinytrace counted once: its nested tinytrace modules are inside its 1000 us
    assert s["tinytrace_us"] == 1000


def test_importtime_summary_counts_separate_tinytrace_chains():
    text = ("import time: 10 | 10 | tinytrace.toolkit\n"
            "import time: 5 | 5 |   tinytrace.errors\n"
            "import time: 20 | 25 | argparse\n")
    # children are printed before their parent, one level deeper: tinytrace.errors was
    # imported while argparse loaded, not by tinytrace.toolkit, so it counts on its own
    s = parse.importtime_summary(parse.parse_importtime(text))
    assert s["tinytrace_us"] == 15


DPKG = "\n".join([
    "bpftrace\tinstall ok installed\t3887\t\tlibc6 (>= 2.34), libllvm14, libbcc | libbpfcc\t",
    "libbpfcc\tinstall ok installed\t3793\t\tlibelf1, libc6\t",
    "libllvm14:amd64\tinstall ok installed\t107438\t\tlibc6, libz3-4 (>= 4.8), zlib-lib\t",
    "libz3-4\tinstall ok installed\t22767\t\tlibc6\t",
    "zlib1g\tinstall ok installed\t164\tlibc6\t\tzlib-lib",
    "libelf1\tinstall ok installed\t1000\t\tlibc6\t",
    "libc6\tinstall ok installed\t13001\t\t\t",
    "removed\tdeinstall ok config-files\t99\t\t\t",
    "python3\tinstall ok installed\t100\t\tlibc6, python3.11\t",
    "python3.11\tinstall ok installed\t500\t\tlibc6, zlib1g\t",
])


def test_parse_dpkg():
    p = parse.parse_dpkg(DPKG)
    assert "removed" not in p
    assert p["libllvm14"]["size_kb"] == 107438       # arch qualifier dropped
    assert p["bpftrace"]["deps"] == [["libc6"], ["libllvm14"], ["libbcc", "libbpfcc"]]
    assert p["zlib1g"]["provides"] == ["zlib-lib"]
    assert p["zlib1g"]["deps"] == [["libc6"]]         # Pre-Depends count


def test_closure_alternatives_and_virtual_packages():
    p = parse.parse_dpkg(DPKG)
    c = parse.dependency_closure(p, "bpftrace")
    # libbcc is not installed: its alternative libbpfcc is taken; zlib-lib is provided
    assert c == {"bpftrace", "libc6", "libllvm14", "libbpfcc", "libelf1", "libz3-4", "zlib1g"}
    assert parse.closure_size_kb(p, c) == 3887 + 13001 + 107438 + 3793 + 1000 + 22767 + 164
    py = parse.dependency_closure(p, "python3")
    assert py == {"python3", "python3.11", "libc6", "zlib1g"}
    assert parse.dependency_closure(p, "not-installed") == set()
