"""oomkill under the ``memcg_oom`` workload: a child in a memory cgroup limited to 32 MiB
touches 256 MiB and is OOM-killed; it is both the trigger and the victim.  Other tests on
the machine may cause OOM kills too, so lines are picked by the victim's PID."""
import json
import re

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import memcg_oom

pytestmark = pytest.mark.bpf

READY = "Tracing OOM kills"
LOADAVG = r"\d+\.\d+ \d+\.\d+ \d+\.\d+ \d+/\d+ \d+"


def _trace(args):
    with memcg_oom() as w:
        run = ToolRun(["oomkill"] + args, ready=READY)
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    return run, rec


def test_kill_line_names_trigger_victim_pages_and_loadavg():
    run, rec = _trace([])
    pat = re.compile(r'^\d\d:\d\d:\d\d Triggered by PID (\d+) \("(.*)"\), OOM kill of PID '
                     r'(\d+) \("(.*)"\), (\d+) pages RSS, loadavg: (%s)$' % LOADAVG)
    mine = [m for m in map(pat.match, run.stdout.splitlines())
            if m and int(m.group(3)) == rec.victim_pid]
    assert len(mine) == 1, run.stdout
    m = mine[0]
    assert int(m.group(1)) == rec.trigger_pid and m.group(2) == rec.comm
    assert m.group(4) == rec.victim_comm
    # the victim had filled most of its 32 MiB limit (RSS also counts shared file pages)
    assert int(m.group(5)) * 4096 >= rec.limit_bytes // 2


def test_json_memory_of_the_victim():
    run, rec = _trace(["--json"])
    assert READY in run.stderr
    events = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    mine = [e for e in events if e["victim_pid"] == rec.victim_pid]
    assert len(mine) == 1, run.stdout
    e = mine[0]
    assert e["trigger_pid"] == rec.trigger_pid and e["trigger_comm"] == rec.comm
    assert e["victim_comm"] == rec.victim_comm and e["uid"] == 0
    # the victim filled its limit (memory it had before joining the cgroup is charged
    # elsewhere, so it may hold more) and was killed long before touching all it asked for
    assert rec.limit_bytes // 2 <= e["anon_rss_kb"] * 1024 < (rec.alloc_mb << 20) // 2
    assert e["total_vm_kb"] * 1024 >= e["anon_rss_kb"] * 1024
    assert e["rss_pages"] == (e["anon_rss_kb"] + e["file_rss_kb"] + e["shmem_rss_kb"]) // 4
    assert re.match("^%s$" % LOADAVG, e["loadavg"])


def test_old_kernel_record_with_pid_only():
    # kernels whose oom:mark_victim has only the victim's pid: name from /proc, no pages
    import io
    import os
    from tinytrace.tools.oomkill import Printer, parse_args
    out = io.StringIO()
    Printer(parse_args([]), [], out).event([7, b"trig\x1b", os.getpid()], 0)
    with open("/proc/self/comm") as f:
        me = f.read().strip()
    line = out.getvalue()
    assert 'Triggered by PID 7 ("trig\\x1b"), OOM kill of PID %d ("%s"), loadavg: ' % (
        os.getpid(), me) in line and "pages" not in line


def test_bad_option_is_one_line_exit_2():
    rc, out, err = run_tool(["oomkill", "-z"])
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_help_names_the_approximation():
    rc, out, err = run_tool(["oomkill", "-h"])
    assert rc == 0 and "examples:" in out and "RSS" in out
