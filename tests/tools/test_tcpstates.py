"""tcpstates under the loopback TCP workload.

The workload's record lists the state transitions each kind of socket goes through (client,
accepted server socket, listener, refused connect).  For every socket of the workload the
tool's lines, followed by socket address from its first transition to CLOSE, must be exactly
that sequence, with its addresses and ports.  MS is the time spent in the old state: 0 for a
socket's first transition, and at least the workload's hold time for the client's
ESTABLISHED state (the client sleeps that long between connect() and its first FIN).
"""
import csv
import json

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import tcp_sessions

pytestmark = pytest.mark.bpf

HEADER = ["SKADDR", "C-PID", "C-COMM", "LADDR", "LPORT", "RADDR", "RPORT", "OLDSTATE", "->",
          "NEWSTATE", "MS"]


def _run(args, **kw):
    json_mode = "--json" in args
    with tcp_sessions(**kw) as w:
        run = ToolRun(["tcpstates"] + args, ready="Tracing TCP" if json_mode else "SKADDR")
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    assert "Traceback" not in run.stderr
    return rec, run


def _events(text):
    """Default-layout lines as dicts."""
    out = []
    for line in text.splitlines()[1:]:
        c = line.split()
        if len(c) != 11 or c[8] != "->":
            continue
        out.append({"sk": c[0], "pid": int(c[1]), "comm": c[2], "laddr": c[3],
                    "lport": int(c[4]), "raddr": c[5], "rport": int(c[6]), "old": c[7],
                    "new": c[9], "ms": float(c[10])})
    return out


def _life(events, first):
    """The transitions of the socket whose first event matches ``first(e)``: from that
    event to its CLOSE, following the socket address."""
    for i, e in enumerate(events):
        if first(e):
            seq = [e]
            for f in events[i + 1:]:
                if f["sk"] == e["sk"]:
                    seq.append(f)
                    if f["new"] == "CLOSE":
                        break
            return seq
    raise AssertionError("no such socket")


def _pairs(seq):
    return [[e["old"], e["new"]] for e in seq]


def test_every_socket_of_the_workload_goes_through_its_states():
    rec, run = _run([])
    assert run.stdout.splitlines()[0].split() == HEADER, run.stdout
    ev = _events(run.stdout)
    hold_ms = rec.hold * 1000
    for s in rec.sessions:
        srv, cli = s["server"], s["client"]
        listener = _life(ev, lambda e: e["new"] == "LISTEN" and e["lport"] == srv["port"])
        assert _pairs(listener) == rec.states["listener"], listener
        assert listener[0]["pid"] == rec.server.pid and listener[0]["comm"] == rec.server.comm
        assert listener[0]["laddr"] == srv["addr"] and listener[0]["rport"] == 0
        assert listener[-1]["ms"] >= hold_ms * 0.95, listener

        client = _life(ev, lambda e: e["new"] == "SYN_SENT" and e["rport"] == srv["port"])
        assert _pairs(client) == rec.states["client"], client
        assert client[0]["pid"] == rec.pid and client[0]["comm"] == rec.comm
        assert client[0]["ms"] == 0.0 and client[0]["lport"] == 0
        for e in client[1:]:
            assert (e["laddr"], e["lport"], e["raddr"], e["rport"]) == (
                cli["addr"], cli["port"], srv["addr"], srv["port"]), e
        established = [e for e in client if e["old"] == "ESTABLISHED"][0]
        assert established["ms"] >= hold_ms * 0.95, client

        accepted = _life(ev, lambda e: e["new"] == "SYN_RECV" and e["rport"] == cli["port"])
        assert _pairs(accepted) == rec.states["server"], accepted
        assert accepted[0]["ms"] == 0.0
        for e in accepted:
            assert (e["laddr"], e["lport"], e["raddr"], e["rport"]) == (
                srv["addr"], srv["port"], cli["addr"], cli["port"]), e
    for r in rec.refused:
        refused = _life(ev, lambda e: e["new"] == "SYN_SENT" and e["rport"] == r["rport"])
        assert _pairs(refused) == rec.states["refused"], refused
        assert refused[0]["pid"] == rec.pid and refused[0]["raddr"] == r["raddr"]


def test_local_port_filter():
    with tcp_sessions() as w:
        port4 = w.ports[4]
        run = ToolRun(["tcpstates", "-L", str(port4)], ready="SKADDR")
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    ev = _events(run.stdout)
    assert ev and all(e["lport"] == port4 for e in ev), run.stdout
    got = sorted(tuple(p) for p in _pairs(ev))
    want = sorted(tuple(p) for p in rec.states["listener"] + rec.states["server"])
    assert got == want, run.stdout


def test_remote_port_ipv6_json_with_times():
    with tcp_sessions() as w:
        port6 = w.ports[6]
        run = ToolRun(["tcpstates", "--json", "-T", "-t", "-6", "-D", str(port6)],
                      ready="Tracing TCP")
        try:
            run.started()
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    objs = [json.loads(l) for l in run.stdout.splitlines()]
    cli = [s for s in rec.sessions if s["family"] == 6][0]["client"]
    assert [[o["oldstate"], o["newstate"]] for o in objs] == rec.states["client"], objs
    assert objs[0]["ts"] == 0.0 and objs[0]["pid"] == rec.pid and objs[0]["ms"] == 0.0
    for o in objs:
        assert o["ip"] == 6 and o["rport"] == port6 and o["raddr"] == "::1"
        assert len(o["time"]) == 8 and int(o["skaddr"], 16) > 0
    assert objs[-1]["lport"] == cli["port"]
    assert [o["ts"] for o in objs] == sorted(o["ts"] for o in objs)


def test_csv_and_wide_layouts():
    rec, run = _run(["-s", "-T", "-t", "-4"])
    rows = list(csv.reader(run.stdout.splitlines()))
    assert rows[0] == ["TIME", "TIME(s)", "SKADDR", "C-PID", "C-COMM", "IP", "LADDR", "LPORT",
                       "RADDR", "RPORT", "OLDSTATE", "NEWSTATE", "MS"], run.stdout
    srv4 = str(rec.server.ports["4"])
    mine = [r for r in rows[1:] if srv4 in (r[7], r[9])]
    assert len(mine) == 2 + 5 + 5, run.stdout       # listener, accepted socket, client
    assert all(r[5] == "4" for r in rows[1:])

    rec, run = _run(["-w", "-6"])
    lines = run.stdout.splitlines()
    assert lines[0].split() == HEADER[:3] + ["IP"] + HEADER[3:], run.stdout
    srv6 = str(rec.server.ports["6"])
    mine = [l.split() for l in lines[1:] if srv6 in l.split()[5:8]]
    assert mine and all(c[3] == "6" for c in mine), run.stdout


class _JournalSocket(object):
    """A datagram socket bound where the tool is told the journal is
    (TINYTRACE_JOURNAL_SOCKET), drained by a thread while the tool runs: the kernel queues
    only a few datagrams for a receiver that does not read (net.unix.max_dgram_qlen)."""

    def __init__(self, path):
        import socket
        import threading
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.datagrams = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self):
        import socket
        while True:
            try:
                self.datagrams.append(self.sock.recv(65536))
            except socket.timeout:
                if self._stop.is_set():
                    return

    def close(self):
        self._stop.set()
        self._thread.join(10)
        self.sock.close()


def _journal_entry(data):
    """The fields of one native-protocol datagram (both value forms)."""
    import struct
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            i = nl + 1
        else:
            key = line
            n = struct.unpack_from("<Q", data, nl + 1)[0]
            value = data[nl + 9:nl + 9 + n]
            assert data[nl + 9 + n:nl + 10 + n] == b"\n", data
            i = nl + 10 + n
        fields[key.decode()] = value.decode("utf-8")
    return fields


def test_journal_gets_one_entry_per_change(tmp_path):
    journal = _JournalSocket(str(tmp_path / "journal.sock"))
    try:
        with tcp_sessions() as w:
            port4 = w.ports[4]
            run = ToolRun(["tcpstates", "-Y", "-4", "-D", str(port4)], ready="SKADDR",
                          env={"TINYTRACE_JOURNAL_SOCKET": journal.path})
            try:
                run.started()
                rec = w.go()
            finally:
                rc = run.stop()
    finally:
        journal.close()
    assert rc == 0, run.stderr
    assert "journal" not in run.stderr, run.stderr
    entries = [_journal_entry(d) for d in journal.datagrams]
    # the journal gets what stdout shows: the IPv4 client's changes, in order
    ev = _events(run.stdout)
    assert len(entries) == len(ev) and ev, (entries, run.stdout)
    assert [[e["OBJECT_TCP_OLD_STATE"], e["OBJECT_TCP_NEW_STATE"]] for e in entries] == \
        rec.states["client"], entries
    srv = [s for s in rec.sessions if s["family"] == 4][0]["server"]
    for e, line in zip(entries, ev):
        assert e["SYSLOG_IDENTIFIER"] == "tcpstates" and e["PRIORITY"] == "5", e
        assert int(e["_SOURCE_REALTIME_TIMESTAMP"]) > 0
        assert e["OBJECT_IPV4_DESTINATION_ADDRESS"] == line["raddr"] == srv["addr"], e
        assert int(e["OBJECT_TCP_DESTINATION_PORT"]) == port4
        assert e["OBJECT_IPV4_SOURCE_ADDRESS"] == line["laddr"]
        assert int(e["OBJECT_TCP_SOURCE_PORT"]) == line["lport"]
        assert int(e["OBJECT_PID"]) == line["pid"]
        # the span in microseconds; the line's MS has 3 decimals of the same nanoseconds
        assert abs(int(e["OBJECT_TCP_SPAN_TIME"]) / 1000.0 - line["ms"]) <= 0.002, (e, line)
        assert e["MESSAGE"] == "%s %s %d \u2192 %s %d %s \u2192 %s" % (
            line["comm"], line["laddr"], line["lport"], line["raddr"], line["rport"],
            line["old"], line["new"]), e
        # root: journald fills OBJECT_COMM in from OBJECT_PID (as with BCC)
        assert "OBJECT_COMM" not in e
    assert entries[0]["OBJECT_PID"] == str(rec.pid)


def test_journal_datagram_value_with_a_newline():
    from tinytrace.tools import tcpstates
    data = tcpstates.journal_datagram([("A", "x"), ("B", b"two\nlines"), ("C", 7)])
    assert data == b"A=x\nB\n\x09\x00\x00\x00\x00\x00\x00\x00two\nlines\nC=7\n"
    assert _journal_entry(data) == {"A": "x", "B": "two\nlines", "C": "7"}


def test_journal_without_a_socket_is_one_line_exit_2(tmp_path):
    plain = tmp_path / "not-a-socket"
    plain.write_text("")
    for path in (str(tmp_path / "missing"), str(plain)):
        rc, out, err = run_tool(["tcpstates", "-Y"],
                                env={"TINYTRACE_JOURNAL_SOCKET": path})
        lines = [l for l in err.splitlines() if l.strip()]
        assert rc == 2 and out == "" and len(lines) == 1, (path, err)
        assert "no systemd journal socket at " + path in lines[0], err


def test_bad_options_are_one_line_exit_2():
    for args in (["-L", "80,x"], ["-D", "99999"], ["-4", "-6"]):
        rc, out, err = run_tool(["tcpstates"] + args)
        assert rc == 2, (args, err)
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and "Traceback" not in err, (args, err)


def test_help_has_examples():
    rc, out, err = run_tool(["tcpstates", "-h"])
    assert rc == 0
    assert "examples:" in out and "tcpstates -stT" in out
    assert "tcpstates -Y" in out and "systemd journal" in out
