"""tcpaccept under the loopback TCP workload.

The server (comm ``tt-tcpsrv``) accepts every connection of the client (comm ``tt-tcpcli``).
On loopback the new socket's state transitions run in the *client's* context, so a line
with the client's PID would mean the tool took the state tracepoint's context instead of
the accepting process: every line must carry the server's PID and COMM, the client's
address and port as RADDR/RPORT, and the listening address and port as LADDR/LPORT.
"""
import json

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import tcp_sessions

pytestmark = pytest.mark.bpf

HEADER = ["PID", "COMM", "IP", "RADDR", "RPORT", "LADDR", "LPORT"]


def _run(args, filter_pid=True, **kw):
    with tcp_sessions(**kw) as w:
        extra = ["-p", str(w.server.pid)] if filter_pid else []
        run = ToolRun(["tcpaccept"] + args + extra,
                      ready="Tracing TCP accepts" if "--json" in args else "LPORT")
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    assert "Traceback" not in run.stderr
    return rec, run


def _expected(rec, families=(4, 6)):
    """(family, raddr, rport, laddr, lport) of each connection the server accepted."""
    return [(s["family"], s["client"]["addr"], s["client"]["port"], s["server"]["addr"],
             s["server"]["port"]) for s in rec.sessions if s["family"] in families]


def _row(rec, fam, raddr, rport, laddr, lport):
    return [str(rec.server.pid), rec.server.comm, str(fam), raddr, str(rport), laddr,
            str(lport)]


def test_accepts_show_the_accepting_process_and_both_ends():
    rec, run = _run([], filter_pid=False, connections=2)
    lines = run.stdout.splitlines()
    assert lines[0].split() == HEADER, run.stdout
    ports = {str(p) for p in rec.server.ports.values()}
    # other accepts on the machine may appear: keep the lines on the workload's ports
    rows = [l.split() for l in lines[1:] if l.split()[6] in ports]
    want = [_row(rec, *e) for e in _expected(rec)]
    assert len(want) == 4
    assert rows == want, run.stdout
    assert not any(r[0] == str(rec.pid) for r in rows), "client PID reported"


def test_time_columns_and_family_filter():
    rec, run = _run(["-T", "-t", "-6"])
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["TIME", "TIME(s)"] + HEADER, run.stdout
    rows = [l.split() for l in lines[1:]]
    want = [_row(rec, *e) for e in _expected(rec, families=(6,))]
    assert [r[2:] for r in rows] == want, run.stdout
    for r in rows:
        assert len(r[0]) == 8 and r[0].count(":") == 2
    assert float(rows[0][1]) == 0.0


def test_port_filter_and_json():
    with tcp_sessions() as w:
        port4 = w.ports[4]
        run = ToolRun(["tcpaccept", "--json", "-t", "-P", "1,%d" % port4, "-p",
                       str(w.server.pid)], ready="Tracing TCP accepts")
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    objs = [json.loads(l) for l in run.stdout.splitlines()]
    want = _expected(rec, families=(4,))
    assert len(objs) == len(want) == 1, run.stdout
    (_, raddr, rport, laddr, lport), o = want[0], objs[0]
    assert o == {"ts": 0.0, "pid": rec.server.pid, "comm": rec.server.comm, "ip": 4,
                 "raddr": raddr, "rport": rport, "laddr": laddr, "lport": lport}, o


def test_pid_filter_excludes_other_processes():
    with tcp_sessions() as w:
        run = ToolRun(["tcpaccept", "-p", str(w.pid)], ready="LPORT")   # the client
        try:
            run.started()
            w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    assert run.stdout.splitlines()[1:] == [], run.stdout


def test_bad_options_are_one_line_exit_2():
    for args in (["-P", "http"], ["-p", "0"], ["-4", "-6"], ["--bogus"]):
        rc, out, err = run_tool(["tcpaccept"] + args)
        assert rc == 2, (args, err)
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and "Traceback" not in err, (args, err)


def test_help_has_examples():
    rc, out, err = run_tool(["tcpaccept", "-h"])
    assert rc == 0
    assert "examples:" in out and "tcpaccept -P 80,81" in out
