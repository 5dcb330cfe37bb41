"""What is measured: each tool and one-liner, on both tracers, with its workload.

A case says how to start each side, which stdout line means "probes attached", which
workload drives it (and how big, in the default and in --quick mode), which attach point is
the case's *primary* event (the one the CPU-per-event figure counts), and -- for tools that
print a line per event -- which bytes of output to count against the workload's count.

How "attached" is detected, per side:

- tinytrace tools print their "Tracing ..." line (``toolkit.announce``) or, like BCC,
  their column header, only after every probe is attached;
- tinytrace one-liners and bpftrace both run BEGIN after attaching every probe (bpftrace
  0.17 prints "Attaching N probes..." *before* loading anything -- checked with strace --
  so that line is not used); the one-liners get ``BEGIN { printf("Tracing...\\n"); }`` on
  both sides, and bpftrace's stock tools print their own line from BEGIN.

A tinytrace tool that does not exist yet is "missing" (never measured, never faked).
"""
import os

from bench.workload import EXEC_MARKER  # the argument the execs workload gives /bin/true

HERE = os.path.dirname(os.path.abspath(__file__))
BT_DIR = os.path.join(HERE, "bpftrace")
STOCK_DIRS = ("/usr/sbin", "/usr/share/bpftrace/tools")

BEGIN_MARK = 'BEGIN { printf("Tracing...\\n"); } '
ONE_LINER_MARKER = rb"^Tracing\.\.\.$"
# tinytrace tools: the announce line, or the column header BCC-style tools print after
# attaching (execsnoop's "PCOMM ...", opensnoop's "PID ...").
TT_TOOL_MARKER = rb"^(Tracing|Counting)\b|^(PCOMM|PID|TIME)\b"

OPEN_TARGET = "ttbench_open_target"   # basename of the file the opens workload opens


class Case(object):
    def __init__(self, name, kind, workload, full, quick, primary, bt, bt_marker,
                 label, count=None, rate=None, note="", equivalent=()):
        self.name = name
        self.kind = kind            # "tool" or "one-liner"
        self.workload = workload    # workload.py kind
        self.full = full            # operation count, default run
        self.quick = quick          # operation count, --quick
        self.primary = primary      # regex on attach points: the case's own event
        self.bt = bt                # bpftrace: script file name, or the one-liner text
        self.bt_marker = bt_marker
        self.label = label          # the primary event, for the tables
        self.count = count          # bytes counted in stdout (one per workload operation)
        self.rate = rate            # paced workload rate (opens/s), None: as fast as it goes
        self.note = note
        # (tinytrace attach point, bpftrace attach point): where the two tools do the same
        # work at different tracepoints, compared as one row ("tt / bt")
        self.equivalent = tuple(equivalent)

    def program(self):
        """The one-liner's text (both sides run the same program), or None for tools."""
        return self.bt if self.kind == "one-liner" else None

    def size(self, quick):
        return self.quick if quick else self.full


CASES = [
    Case("runqlat", "tool", "pingpong", 50000, 5000, r"sched_switch$",
         "runqlat.bt", rb"^Tracing CPU scheduler", "sched_switch",
         note="bpftrace: bench/bpftrace/runqlat.bt (stock script needs kernel headers)"),
    Case("opensnoop", "tool", "opens", 20000, 4000, r"sys_exit_open",
         "opensnoop.bt", rb"^Tracing open syscalls", "sys_exit_open(at)",
         count=OPEN_TARGET.encode(), rate=20000),
    Case("execsnoop", "tool", "execs", 400, 60, r"sys_enter_execve$",
         "execsnoop.bt", rb"^TIME\(ms\)", "sys_enter_execve", count=EXEC_MARKER.encode()),
    Case("syscount", "tool", "syscalls", 1000000, 100000, r"sys_(enter|exit)$",
         "syscount.bt", rb"^Counting syscalls", "raw_syscalls:sys_exit / sys_enter",
         note="tinytrace counts at sys_exit (as BCC's syscount, which also counts errors), "
              "bpftrace's syscount.bt at sys_enter",
         equivalent=[("sys_exit", "sys_enter")]),
    Case("biolatency", "tool", "bio", 4000, 400, r"block_(io_done|rq_complete)$",
         "biolatency.bt", rb"^Tracing block device I/O", "block_io_done",
         note="bpftrace: bench/bpftrace/biolatency.bt (block_io_start/done tracepoints; "
              "the stock script uses kprobes); tinytrace: block_rq_issue/complete, as BCC",
         equivalent=[("block_rq_issue", "block_io_start"),
                     ("block_rq_complete", "block_io_done")]),
    Case("count by comm", "one-liner", "syscalls", 1000000, 100000, r"sys_enter$",
         BEGIN_MARK + "tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }",
         ONE_LINER_MARKER, "raw_syscalls:sys_enter"),
    Case("hist", "one-liner", "reads", 500000, 50000, r"sys_exit_read$",
         BEGIN_MARK + "tracepoint:syscalls:sys_exit_read { @bytes = hist(args->ret); }",
         ONE_LINER_MARKER, "sys_exit_read"),
    Case("printf per event", "one-liner", "opens", 20000, 4000, r"sys_enter_openat$",
         BEGIN_MARK + 'tracepoint:syscalls:sys_enter_openat '
                      '{ printf("%d %s %s\\n", pid, comm, str(args->filename)); }',
         ONE_LINER_MARKER, "sys_enter_openat", count=OPEN_TARGET.encode(), rate=20000),
]

LOST_RATES = (20000, 50000, 100000)   # opens/s for the lost-events figure


def case_names():
    return [c.name for c in CASES]


def find_case(name):
    for c in CASES:
        if c.name == name or c.name.replace(" ", "-") == name:
            return c
    return None


def bpftrace_script(name):
    """The bpftrace script for a tool: ours in bench/bpftrace (the tracepoint equivalents),
    else the stock one; None if neither exists."""
    ours = os.path.join(BT_DIR, name)
    if os.path.isfile(ours):
        return ours
    for d in STOCK_DIRS:
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return p
    return None


def tinytrace_argv(case, python, tools):
    """argv for the tinytrace side, or None when the tool does not exist (yet)."""
    if case.kind == "one-liner":
        return [python, "-m", "tinytrace", "-e", case.program()]
    if case.name not in tools:
        return None
    return [python, "-m", "tinytrace", case.name]


def bpftrace_argv(case, bpftrace):
    if case.kind == "one-liner":
        return [bpftrace, "-e", case.program()]
    script = bpftrace_script(case.bt)
    return None if script is None else [bpftrace, script]


def tinytrace_marker(case):
    return ONE_LINER_MARKER if case.kind == "one-liner" else TT_TOOL_MARKER


def workload_args(case, quick, paths, count=None, rate=None, procs=1):
    """Arguments for workload.py for this case."""
    n = case.size(quick) if count is None else count
    args = [case.workload, "--count", str(n)]
    rate = case.rate if rate is None else rate
    if case.workload == "opens":
        args += ["--path", paths["open_target"]]
        if rate:
            args += ["--rate", str(rate), "--procs", str(procs)]
    elif case.workload == "bio":
        args += ["--path", paths["bio_file"]]
    return args


def lost_procs(rate):
    """Processes for the paced opens workload at ``rate``: one Python loop manages ~50k
    paced opens/s on this class of machine while a tracer competes for the other core."""
    return 1 if rate <= 50000 else 2
