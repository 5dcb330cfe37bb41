"""tcplife under the loopback TCP workload.

Each workload session moves known bytes: the client sends ``sent`` and receives
``received``; the server the reverse.  Each session must give two lines (client side with
the client's PID/COMM, server side with the server's), with the kernel's byte counters --
which also count the SYN and FIN, so up to 2 more than the payload -- and a span of at least
the workload's hold time (the client sleeps that long between connect() and sending).  The
refused connects are sessions too (SYN_SENT -> CLOSE) with no bytes.
"""
import csv
import json

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import tcp_sessions

pytestmark = pytest.mark.bpf

HEADER = ["PID", "COMM", "LADDR", "LPORT", "RADDR", "RPORT", "TX_KB", "RX_KB", "MS"]


def _run(args, **kw):
    json_mode = "--json" in args
    with tcp_sessions(**kw) as w:
        run = ToolRun(["tcplife"] + args, ready="Tracing TCP" if json_mode else "RX_KB")
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    assert "Traceback" not in run.stderr
    return rec, run


def _rows(text):
    return [l.split() for l in text.splitlines()[1:] if len(l.split()) == 9]


def _find(rows, lport, rport):
    hits = [r for r in rows if r[3] == str(lport) and r[5] == str(rport)]
    assert len(hits) == 1, (lport, rport, rows)
    return hits[0]


def test_both_ends_of_each_session_with_bytes_and_span():
    rec, run = _run([])
    assert run.stdout.splitlines()[0].split() == HEADER, run.stdout
    rows = _rows(run.stdout)
    hold_ms = rec.hold * 1000
    for s in rec.sessions:
        cli, srv = s["client"], s["server"]
        c = _find(rows, cli["port"], srv["port"])
        assert c[:3] == [str(rec.pid), rec.comm, cli["addr"]] and c[4] == srv["addr"], c
        assert (int(c[6]), int(c[7])) == (s["sent"] // 1024, s["received"] // 1024), c
        assert float(c[8]) >= hold_ms * 0.95, c
        v = _find(rows, srv["port"], cli["port"])
        assert v[:3] == [str(rec.server.pid), rec.server.comm, srv["addr"]], v
        assert (int(v[6]), int(v[7])) == (s["received"] // 1024, s["sent"] // 1024), v
        assert float(v[8]) >= hold_ms * 0.95, v
    for r in rec.refused:
        hits = [x for x in rows if x[5] == str(r["rport"])]
        assert len(hits) == 1 and hits[0][:2] == [str(rec.pid), rec.comm], rows
        assert hits[0][6:8] == ["0", "0"] and hits[0][4] == r["raddr"]


def test_json_exact_bytes_for_the_server_pid():
    with tcp_sessions() as w:
        run = ToolRun(["tcplife", "--json", "-p", str(w.server.pid)], ready="Tracing TCP")
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    objs = [json.loads(l) for l in run.stdout.splitlines()]
    assert len(objs) == len(rec.sessions) == 2, run.stdout
    for o, s in zip(objs, rec.sessions):
        assert o["pid"] == rec.server.pid and o["comm"] == rec.server.comm
        assert o["ip"] == s["family"]
        assert (o["laddr"], o["lport"]) == (s["server"]["addr"], s["server"]["port"])
        assert (o["raddr"], o["rport"]) == (s["client"]["addr"], s["client"]["port"])
        assert s["received"] <= o["tx_bytes"] <= s["received"] + 2, o
        assert s["sent"] <= o["rx_bytes"] <= s["sent"] + 2, o
        assert o["ms"] >= rec.hold * 1000 * 0.95


def test_local_port_filter_wide_and_times():
    with tcp_sessions() as w:
        port6 = w.ports[6]
        run = ToolRun(["tcplife", "-w", "-T", "-t", "-L", str(port6)], ready="RX_KB")
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["TIME", "TIME(s)", "PID", "COMM", "IP"] + HEADER[2:]
    rows = [l.split() for l in lines[1:]]
    s = [x for x in rec.sessions if x["family"] == 6][0]
    # only the accepted IPv6 socket has that local port (the listener never got a start)
    assert len(rows) == 1, run.stdout
    r = rows[0]
    assert len(r[0]) == 8 and float(r[1]) == 0.0
    assert r[2:9] == [str(rec.server.pid), rec.server.comm, "6", "::1", str(port6), "::1",
                      str(s["client"]["port"])], r


def test_csv_remote_port_ipv4():
    with tcp_sessions() as w:
        port4 = w.ports[4]
        run = ToolRun(["tcplife", "-s", "-4", "-D", str(port4)], ready="RX_KB")
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    rows = list(csv.reader(run.stdout.splitlines()))
    assert rows[0] == ["PID", "COMM", "IP"] + HEADER[2:], run.stdout
    s = [x for x in rec.sessions if x["family"] == 4][0]
    assert len(rows) == 2, run.stdout
    r = rows[1]
    assert r[:8] == [str(rec.pid), rec.comm, "4", "127.0.0.1", str(s["client"]["port"]),
                     "127.0.0.1", str(port4), str(s["sent"] // 1024)], r


def test_bad_options_are_one_line_exit_2():
    for args in (["-L", "x"], ["-p", "-3"], ["-4", "-6"], ["1"]):
        rc, out, err = run_tool(["tcplife"] + args)
        assert rc == 2, (args, err)
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and "Traceback" not in err, (args, err)


def test_help_has_examples():
    rc, out, err = run_tool(["tcplife", "-h"])
    assert rc == 0
    assert "examples:" in out and "tcplife -stT" in out
