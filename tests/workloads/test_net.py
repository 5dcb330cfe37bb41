"""tcp_sessions() and tcp_retransmits() make the connections, state changes, byte counts and
retransmissions their records list, as sock:/tcp: tracepoints (bpftrace) see them."""
import os

import pytest

from tests.workloads import tcp_retransmits, tcp_sessions
from tests.workloads.oracle import Bpftrace

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
          6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
          11: "CLOSING", 12: "NEW_SYN_RECV"}
AF = {2: 4, 10: 6}


def _lines(bt):
    return [l.split("|") for t in bt.prints for l in t.splitlines() if l]


def test_sessions_states_and_bytes():
    w = tcp_sessions(families=(4, 6), connections=2, send=100000, recv=50000, hold=0.05)
    with w:
        ports = sorted(set(w.ports.values()) | set(
            int(p) for p in w.server.ready["refused_ports"].values()))
        cond = " || ".join("args->sport == %d || args->dport == %d" % (p, p) for p in ports)
        script = """
        tracepoint:sock:inet_sock_set_state /args->protocol == 6 && (%(c)s)/ {
            printf("%%d|%%d|%%d|%%d|%%d|%%d|%%d\\n", nsecs, args->skaddr, args->family, args->sport, args->dport, args->oldstate, args->newstate);
        }
        tracepoint:sock:sock_send_length /args->protocol == 6 && args->ret > 0 && (pid == %(cp)d || pid == %(sp)d)/ { @tx[pid] = sum(args->ret); }
        tracepoint:sock:sock_recv_length /args->protocol == 6 && args->ret > 0 && (pid == %(cp)d || pid == %(sp)d)/ { @rx[pid] = sum(args->ret); }
        """ % {"c": cond, "cp": w.pid, "sp": w.server.pid}
        with Bpftrace(script) as bt:
            rec = w.go()
    # one life per socket: a socket address is reused once the previous socket is closed.
    # bpftrace reads its per-CPU buffers one after the other, so the events are put back in
    # time order first (a reused address's first event can come before the end of its
    # previous socket's life, which happened on another CPU).
    lives, current = [], {}
    events = sorted(_lines(bt), key=lambda e: int(e[0]))
    for _, sk, fam, sport, dport, old, new in events:
        ev = (AF[int(fam)], int(sport), int(dport), (STATES[int(old)], STATES[int(new)]))
        current.setdefault(sk, []).append(ev)
        if ev[3][1] == "CLOSE":
            lives.append(current.pop(sk))
    assert not current, current
    states = {k: [tuple(t) for t in v] for k, v in rec.states.items()}
    seen = {"client": [], "server": [], "listener": [], "refused": []}
    refused_ports = {r.rport for r in rec.refused}
    server_ports = {s.server.port for s in rec.sessions}
    for evs in lives:
        trans = [e[3] for e in evs]
        dports = {e[2] for e in evs}
        if dports & refused_ports:
            seen["refused"].append(trans)
        elif dports & server_ports:
            seen["client"].append(trans)
        elif dports == {0}:
            seen["listener"].append(trans)
        else:
            seen["server"].append(trans)
    assert len(rec.sessions) == 4 and len(rec.refused) == 2
    assert seen["client"] == [states["client"]] * 4, seen
    assert seen["server"] == [states["server"]] * 4, seen
    assert seen["listener"] == [states["listener"]] * 2, seen
    assert seen["refused"] == [states["refused"]] * 2, seen
    # every session's client end is in the trace with its family
    traced_client_ports = {e[1] for evs in lives for e in evs if e[1]}
    for s in rec.sessions:
        assert s.client.port in traced_client_ports
        assert s.sent == 100000 and s.received == 50000
        assert s.client_comm == "tt-tcpcli" and s.server_comm == "tt-tcpsrv"
        assert s.client.addr == s.server.addr == ("127.0.0.1" if s.family == 4 else "::1")
    assert [s.family for s in rec.sessions] == [4, 4, 6, 6]
    tx = {int(k): v for k, v in bt.maps["@tx"].items()}
    rx = {int(k): v for k, v in bt.maps["@rx"].items()}
    assert tx[rec.pid] == rx[rec.server.pid] == sum(s.sent for s in rec.sessions)
    assert tx[rec.server.pid] == rx[rec.pid] == sum(s.received for s in rec.sessions)


@pytest.mark.parametrize("family", [4, 6])
def test_retransmits_of_the_recorded_connection(family):
    w = tcp_retransmits(family=family)
    with w:
        script = """
        tracepoint:tcp:tcp_retransmit_skb /args->dport == %d/ {
            printf("%%d|%%d|%%d|%%d|%%d\\n", args->family, args->sport, args->dport, args->state, args->err);
        }
        """ % w.port
        with Bpftrace(script) as bt:
            rec = w.go()
        ns = rec.netns.client
        assert ns in os.listdir("/run/netns")
    events = [[int(x) for x in e] for e in _lines(bt)]
    assert events, "no tcp_retransmit_skb event"
    for fam, sport, dport, state, err in events:
        assert (AF[fam], sport, dport) == (family, rec.sport, rec.dport)
        assert STATES[state] == rec.state == "ESTABLISHED"
        assert err == 0
    # an event may carry several segments (GSO); the socket counts segments
    assert 1 <= len(events) <= rec.retrans_segs == rec.total_retrans
    assert rec.server_rx == rec.bytes
    assert ns not in os.listdir("/run/netns")                  # removed on close
