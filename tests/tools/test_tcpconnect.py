"""tcpconnect under the loopback TCP workload.

The client (comm ``tt-tcpcli``) connects once per family to the server, then once per family
to a port nobody listens on (refused).  Every one of those four attempts must be one line
with the client's PID and COMM, the right family, addresses and destination port, in order;
with -L the local port must be the one the client's socket got.
"""
import json

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import tcp_sessions

pytestmark = pytest.mark.bpf

READY = "Tracing connect"


def _run(args, **kw):
    """Run tcpconnect with ``args`` (the client's pid is appended as -p) during one
    tcp_sessions workload; return (record, ToolRun)."""
    with tcp_sessions(**kw) as w:
        run = ToolRun(["tcpconnect"] + args + ["-p", str(w.pid)], ready=READY)
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    assert "Traceback" not in run.stderr
    return rec, run


def _attempts(rec, families=(4, 6)):
    """(family, daddr, dport, lport or None) of each connect the client made, in order."""
    out = [(s["family"], s["server"]["addr"], s["server"]["port"], s["client"]["port"])
           for s in rec.sessions]
    out += [(r["family"], r["raddr"], r["rport"], None) for r in rec.refused]
    return [a for a in out if a[0] in families]


def test_each_connect_is_one_line_with_pid_comm_addresses_and_port():
    rec, run = _run([])
    lines = run.stdout.splitlines()
    assert lines[0] == "Tracing connect ... Hit Ctrl-C to end", run.stdout
    assert lines[1].split() == ["PID", "COMM", "IP", "SADDR", "DADDR", "DPORT"]
    rows = [l.split() for l in lines[2:]]
    expect = _attempts(rec)
    assert len(rows) == len(expect) == 4, run.stdout
    for row, (fam, daddr, dport, _) in zip(rows, expect):
        assert row == [str(rec.pid), rec.comm, str(fam), daddr, daddr, str(dport)], run.stdout


def test_lport_uid_and_timestamps():
    rec, run = _run(["-L", "-U", "-t"])
    lines = run.stdout.splitlines()
    assert lines[1].split() == ["TIME(s)", "UID", "PID", "COMM", "IP", "SADDR", "LPORT",
                                "DADDR", "DPORT"], run.stdout
    rows = [l.split() for l in lines[2:]]
    expect = _attempts(rec)
    assert len(rows) == 4, run.stdout
    stamps = [float(r[0]) for r in rows]
    assert stamps[0] == 0.0 and stamps == sorted(stamps), run.stdout
    for row, (fam, daddr, dport, lport) in zip(rows, expect):
        assert row[1] == "0" and row[2] == str(rec.pid) and row[3] == rec.comm
        assert row[4:6] == [str(fam), daddr] and row[7:] == [daddr, str(dport)], run.stdout
        if lport is not None:
            assert int(row[6]) == lport, run.stdout
        else:
            # a refused connect also got a port before its SYN left
            assert 0 < int(row[6]) < 65536, run.stdout


def test_json_ipv4_only():
    rec, run = _run(["--json", "-4", "-L"])
    assert READY in run.stderr
    objs = [json.loads(l) for l in run.stdout.splitlines()]
    expect = _attempts(rec, families=(4,))
    assert len(objs) == len(expect) == 2, run.stdout
    for o, (fam, daddr, dport, lport) in zip(objs, expect):
        assert o["pid"] == rec.pid and o["comm"] == rec.comm and o["ip"] == 4
        assert o["saddr"] == o["daddr"] == daddr and o["dport"] == dport
        assert o["uid"] == 0 and isinstance(o["lport"], int)
        if lport is not None:
            assert o["lport"] == lport


def test_port_filter_keeps_only_that_destination():
    with tcp_sessions() as w:
        port6 = w.ports[6]
        run = ToolRun(["tcpconnect", "-P", "%d,1" % port6, "-p", str(w.pid)], ready=READY)
        try:
            run.started()
            w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    rows = [l.split() for l in run.stdout.splitlines()[2:]]
    assert len(rows) == 1 and rows[0][2:] == ["6", "::1", "::1", str(port6)], run.stdout


def test_count_mode_counts_per_flow():
    rec, run = _run(["-c"], connections=2)
    lines = run.stdout.splitlines()
    i = lines.index(next(l for l in lines if l.startswith("LADDR")))
    assert lines[i].split() == ["LADDR", "RADDR", "RPORT", "CONNECTS"]
    got = {(r[0], r[1], int(r[2])): int(r[3]) for r in (l.split() for l in lines[i + 1:])}
    want = {}
    for fam, daddr, dport, _ in _attempts(rec):
        want[(daddr, daddr, dport)] = want.get((daddr, daddr, dport), 0) + 1
    assert got == want, run.stdout
    assert sorted(want.values()) == [1, 1, 2, 2]


def test_bad_options_are_one_line_exit_2():
    for args in (["-P", "80,x"], ["-P", "70000"], ["-p", "notapid"], ["-4", "-6"],
                 ["-u", "no-such-user-tt"]):
        rc, out, err = run_tool(["tcpconnect"] + args)
        assert rc == 2, (args, err)
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and "Traceback" not in err, (args, err)


def test_help_has_examples():
    rc, out, err = run_tool(["tcpconnect", "-h"])
    assert rc == 0
    assert "examples:" in out and "tcpconnect -L" in out and "--json" in out


def test_lport_without_btf_comes_from_the_state_transition():
    # Without BTF the connect() exit cannot read the port: the socket's transition out of
    # SYN_SENT (to ESTABLISHED, or CLOSE when refused) carries it instead.
    import io
    from tinytrace.script import Script
    from tinytrace.tools import tcpconnect
    with tcp_sessions() as w:
        opts = tcpconnect.parse_args(["-L", "-p", str(w.pid)])
        text, events = tcpconnect.script_text(opts, btf=False)
        assert "sys_exit_connect" not in text
        out = io.StringIO()
        printer = tcpconnect.Printer(opts, events, out)
        script = Script(text, tool="tcpconnect")
        script.on_printf(printer.event)
        with script.start():
            rec = w.go()
            script.drain()
    assert not printer.pending, printer.pending
    rows = [l.split() for l in out.getvalue().splitlines()]
    expect = _attempts(rec)
    assert len(rows) == 4, out.getvalue()
    for row, (fam, daddr, dport, lport) in zip(rows, expect):
        assert row[0] == str(rec.pid) and row[2:4] == [str(fam), daddr]
        assert row[5:] == [daddr, str(dport)]
        assert int(row[4]) == lport if lport is not None else int(row[4]) > 0, row


EVIL = r"""
import ctypes, socket, sys
ctypes.CDLL(None).prctl(15, b"tt\x1b[31m\nevil", 0, 0, 0)     # PR_SET_NAME
sys.stdin.buffer.read(1)
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    pass
"""


def test_control_characters_in_comm_are_escaped():
    import socket
    import subprocess
    import sys
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))            # bound, not listening: the connect is refused
    port = closed.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", EVIL, str(port)], stdin=subprocess.PIPE)
    run = ToolRun(["tcpconnect", "-p", str(proc.pid)], ready=READY)
    try:
        run.started()
        proc.stdin.write(b"x")
        proc.stdin.close()
        assert proc.wait(30) == 0
    finally:
        rc = run.stop()
        closed.close()
    assert rc == 0, run.stderr
    rows = run.stdout.splitlines()[2:]
    assert len(rows) == 1, run.stdout
    assert "\x1b" not in run.stdout and rows[0].split()[1] == "tt\\x1b[31m\\n", run.stdout
