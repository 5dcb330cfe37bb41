"""tcpretrans under the retransmission workload.

The workload cuts the path of one connection across a netns pair while data is in flight, so
its client retransmits on timeout; the client netns's RetransSegs delta says how many
segments went again.  One line is one retransmitted skb, which may hold several segments, so
the tool must report between 1 and RetransSegs retransmissions of exactly that flow, in
ESTABLISHED.  The tracer cannot filter by PID (retransmissions run from timers), so the test
picks the workload's lines by its addresses and ports.
"""
import json

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import tcp_retransmits

pytestmark = pytest.mark.bpf

READY = "Tracing retransmits"


def _run(args, family=4):
    with tcp_retransmits(family=family) as w:
        run = ToolRun(["tcpretrans"] + args, ready=READY)
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    assert "Traceback" not in run.stderr
    return rec, run


def test_ipv4_retransmits_of_the_cut_flow():
    rec, run = _run([])
    lines = run.stdout.splitlines()
    assert lines[0] == "Tracing retransmits ... Hit Ctrl-C to end"
    assert lines[1].split() == ["TIME", "PID", "IP", "LADDR:LPORT", "T>", "RADDR:RPORT",
                                "STATE"], run.stdout
    local = "%s:%d" % (rec.saddr, rec.sport)
    mine = [l.split() for l in lines[2:] if local in l]
    assert 1 <= len(mine) <= rec.retrans_segs, (rec.retrans_segs, run.stdout)
    for cols in mine:
        assert len(cols[0]) == 8 and cols[0].count(":") == 2
        int(cols[1])
        assert cols[2:] == ["4", local, "R>", "%s:%d" % (rec.daddr, rec.dport),
                            "ESTABLISHED"], run.stdout


def test_ipv6_json_and_family_filter():
    rec, run = _run(["--json", "-6"], family=6)
    assert READY in run.stderr
    objs = [json.loads(l) for l in run.stdout.splitlines()]
    assert all(o["ip"] == 6 for o in objs), objs
    mine = [o for o in objs if o["laddr"] == rec.saddr and o["lport"] == rec.sport]
    assert 1 <= len(mine) <= rec.retrans_segs, (rec.retrans_segs, objs)
    for o in mine:
        assert (o["raddr"], o["rport"], o["state"], o["type"]) == (
            rec.daddr, rec.dport, "ESTABLISHED", "R"), o


def test_state_through_btf_where_the_tracepoint_has_none():
    # Kernels before 4.16 have no state field in tcp_retransmit_skb: the state is read from
    # the socket through BTF.  Run that variant of the script here, in-process.
    import time
    from tinytrace.script import Script
    from tinytrace.tools import tcpretrans
    text = tcpretrans.script_text(tcpretrans.parse_args([]), tcpretrans.BTF_STATE)
    assert "args->state" not in text
    events = []
    script = Script(text, tool="tcpretrans")
    script.on_printf(lambda values, index: events.append(values))
    with tcp_retransmits(family=4) as w:
        with script.start():
            rec = w.go()
            deadline = time.time() + 5
            while not events and time.time() < deadline:
                script.drain()
                time.sleep(0.05)
    mine = [e for e in events if (e[1], e[2]) == (rec.saddr, rec.sport)]
    assert 1 <= len(mine) <= rec.retrans_segs, (rec, events)
    assert all((e[3], e[4], e[5]) == (rec.daddr, rec.dport, 1) for e in mine), mine


def _check_seqs(seqs, rec):
    """Every retransmitted skb starts in the bytes sent while the path was cut (the
    warm-up was acknowledged before), and the RTO retransmits the first of them."""
    assert seqs and all(s > 0 for s in seqs), seqs
    if rec.lost_seq is None:            # no repair mode: no reference sequence numbers
        return
    first, end = rec.lost_seq
    span = (end - first) & 0xffffffff
    assert all((s - first) & 0xffffffff < span for s in seqs), (seqs, rec.lost_seq)
    assert first in seqs, (seqs, rec.lost_seq)


def test_sequence_column_holds_the_lost_bytes_numbers():
    rec, run = _run(["-s"])
    lines = run.stdout.splitlines()
    assert lines[1].split() == ["TIME", "PID", "IP", "LADDR:LPORT", "T>", "RADDR:RPORT",
                                "STATE", "SEQ"], run.stdout
    local = "%s:%d" % (rec.saddr, rec.sport)
    mine = [l.split() for l in lines[2:] if local in l]
    assert 1 <= len(mine) <= rec.retrans_segs, (rec.retrans_segs, run.stdout)
    for cols in mine:
        assert cols[2:7] == ["4", local, "R>", "%s:%d" % (rec.daddr, rec.dport),
                             "ESTABLISHED"], run.stdout
    _check_seqs([int(cols[7]) for cols in mine], rec)


def test_sequence_in_json_ipv6():
    rec, run = _run(["-s", "--json", "-6"], family=6)
    objs = [json.loads(l) for l in run.stdout.splitlines()]
    mine = [o for o in objs if o["laddr"] == rec.saddr and o["lport"] == rec.sport]
    assert 1 <= len(mine) <= rec.retrans_segs, (rec.retrans_segs, objs)
    _check_seqs([o["seq"] for o in mine], rec)
    # without -s there is no seq field
    rec, run = _run(["--json", "-6"], family=6)
    assert all("seq" not in json.loads(l) for l in run.stdout.splitlines()), run.stdout


def test_sequence_without_btf_is_one_clear_line():
    rc, out, err = run_tool(["tcpretrans", "-s"], env={"TINYTRACE_TARGET": "btf=0"})
    assert rc != 0 and out == "", (rc, out)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and "BTF" in lines[0] and "-s" in lines[0], err
    assert "Traceback" not in err


def test_ipv4_only_leaves_out_ipv6():
    rec, run = _run(["-4"], family=6)
    assert rec.saddr not in run.stdout, run.stdout


def test_count_mode_counts_the_flow():
    rec, run = _run(["-c"])
    lines = run.stdout.splitlines()
    i = lines.index(next(l for l in lines if l.startswith("LADDR:LPORT")))
    assert lines[i].split() == ["LADDR:LPORT", "RADDR:RPORT", "RETRANSMITS"]
    flows = {}
    for l in lines[i + 1:]:
        a, arrow, b, n = l.split()
        assert arrow == "<->"
        flows[(a, b)] = int(n)
    key = ("[%s]#%d" % (rec.saddr, rec.sport), "[%s]#%d" % (rec.daddr, rec.dport))
    assert key in flows, run.stdout
    assert 1 <= flows[key] <= rec.retrans_segs, (rec.retrans_segs, run.stdout)


def test_lossprobe_without_kprobes_is_one_clear_line():
    from tinytrace.kernel import features
    if features.probe().kprobe_pmu is not None:
        pytest.skip("this kernel has kprobes")
    rc, out, err = run_tool(["tcpretrans", "-l"])
    assert rc != 0 and out == ""
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and "kprobe" in lines[0] and "Traceback" not in err, err


def test_bad_options_are_one_line_exit_2():
    for args in (["-4", "-6"], ["-x"], ["5"]):
        rc, out, err = run_tool(["tcpretrans"] + args)
        assert rc == 2, (args, err)
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and "Traceback" not in err, (args, err)


def test_help_has_examples():
    rc, out, err = run_tool(["tcpretrans", "-h"])
    assert rc == 0
    assert "examples:" in out and "tcpretrans -c" in out and "tail loss probe" in out
    assert "tcpretrans -s" in out and "--sequence" in out
