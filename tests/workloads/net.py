"""TCP workloads: loopback sessions with known ends, bytes and lifetimes, a refused connect
(tcpconnect, tcpaccept, tcplife, tcptop, tcpstates), and retransmissions across a netns pair
(tcpretrans).

The server and the client are separate processes (comm ``tt-tcpsrv`` / ``tt-tcpcli``), so
the accepting and the connecting pid differ, as tools report them.  Each connection runs the
same script: the client connects, waits ``hold`` seconds, sends ``send`` bytes and shuts
its side down (its FIN goes first); the server reads to end of file, sends ``recv`` bytes
and closes; the client reads to end of file and closes.
"""
import errno
import select
import socket
import struct
import time

from tests.workloads import _util
from tests.workloads._held import Workload
from tests.workloads._util import WorkloadError

LOOPBACK = {4: "127.0.0.1", 6: "::1"}
_AF = {4: socket.AF_INET, 6: socket.AF_INET6}

# The sock:inet_sock_set_state transitions of one connection under the script above, as
# observed on Linux 6.x (tests/workloads/test_net.py checks them with bpftrace).  An accepted
# socket starts as a clone of its listener (LISTEN -> SYN_RECV); a client's last transition
# is FIN_WAIT2 -> CLOSE (the time-wait socket that follows is not a full socket); on loopback
# most transitions run in the *other* process's context.
CLIENT_STATES = [("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED"),
                 ("ESTABLISHED", "FIN_WAIT1"), ("FIN_WAIT1", "FIN_WAIT2"),
                 ("FIN_WAIT2", "CLOSE")]
SERVER_STATES = [("LISTEN", "SYN_RECV"), ("SYN_RECV", "ESTABLISHED"),
                 ("ESTABLISHED", "CLOSE_WAIT"), ("CLOSE_WAIT", "LAST_ACK"),
                 ("LAST_ACK", "CLOSE")]
LISTENER_STATES = [("CLOSE", "LISTEN"), ("LISTEN", "CLOSE")]
REFUSED_STATES = [("CLOSE", "SYN_SENT"), ("SYN_SENT", "CLOSE")]


def _has_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _tcp_info_u32(sock, offset):
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("I", info, offset)[0] if len(info) >= offset + 4 else None


def _tcp_info_total_retrans(sock):
    return _tcp_info_u32(sock, 100)        # struct tcp_info.tcpi_total_retrans


def _name(sock):
    n = sock.getsockname()
    return n[0], n[1]


# ---------------------------------------------------------------------------------------
# child processes

def _server_child(cfg):
    listeners, refusers = {}, {}
    for fam_s, addr in cfg["addrs"].items():
        fam = int(fam_s)
        s = socket.socket(_AF[fam], socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, cfg.get("port", 0)))
        listeners[fam] = s
        if cfg.get("refuser"):
            r = socket.socket(_AF[fam], socket.SOCK_STREAM)
            r.bind((addr, 0))                  # bound, never listening: connects get RST
            refusers[fam] = r
    try:
        yield {"ports": {str(f): s.getsockname()[1] for f, s in listeners.items()},
               "refused_ports": {str(f): r.getsockname()[1] for f, r in refusers.items()}}
        for s in listeners.values():
            s.listen(16)
        yield {"listening": True}
        sessions = []
        for _ in range(cfg["expect"]):
            r, _, _ = select.select(list(listeners.values()), [], [], 30)
            if not r:
                raise WorkloadError("server: no connection within 30 s")
            c, peer = r[0].accept()
            t0 = time.monotonic()
            rx = 0
            while True:
                b = c.recv(65536)
                if not b:
                    break
                rx += len(b)
            c.sendall(b"s" * cfg["recv"])
            laddr, lport = _name(c)
            c.close()
            sessions.append({"family": 4 if c.family == socket.AF_INET else 6,
                             "laddr": laddr, "lport": lport, "raddr": peer[0],
                             "rport": peer[1], "rx": rx, "tx": cfg["recv"],
                             "ms": (time.monotonic() - t0) * 1e3})
        for sock in list(listeners.values()) + list(refusers.values()):
            sock.close()                       # LISTEN -> CLOSE, inside the traced run
        yield {"sessions": sessions, "tid": _util.gettid()}
    finally:
        for s in list(listeners.values()) + list(refusers.values()):
            s.close()


def _client_child(cfg):
    payload = b"c" * cfg["send"]
    yield {}
    sessions, refused = [], []
    for fam_s, (addr, port) in sorted(cfg["targets"].items()):
        fam = int(fam_s)
        for _ in range(cfg["connections"]):
            s = socket.socket(_AF[fam], socket.SOCK_STREAM)
            t0 = time.monotonic()
            s.connect((addr, port))
            laddr, lport = _name(s)
            if cfg["hold"]:
                _util.nanosleep(cfg["hold"])
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            rx = 0
            while True:
                b = s.recv(65536)
                if not b:
                    break
                rx += len(b)
            s.close()
            sessions.append({"family": fam, "laddr": laddr, "lport": lport, "raddr": addr,
                             "rport": port, "tx": len(payload), "rx": rx,
                             "ms": (time.monotonic() - t0) * 1e3})
    for fam_s, (addr, port) in sorted(cfg["refused"].items()):
        s = socket.socket(_AF[int(fam_s)], socket.SOCK_STREAM)
        try:
            s.connect((addr, port))
            err = 0
        except OSError as e:
            err = e.errno
        finally:
            s.close()
        refused.append({"family": int(fam_s), "raddr": addr, "rport": port, "errno": err})
    yield {"sessions": sessions, "refused": refused, "tid": _util.gettid()}


# ---------------------------------------------------------------------------------------
# loopback sessions

class TcpSessions(Workload):
    comm = "tt-tcpcli"
    server_comm = "tt-tcpsrv"

    def __init__(self, families=(4, 6), connections=1, send=100000, recv=50000, hold=0.1,
                 refused=True):
        super(TcpSessions, self).__init__()
        families = tuple(families)
        if 6 in families and not _has_ipv6_loopback():
            _util.unavailable("no IPv6 loopback address (::1) on this machine")
        self.families, self.connections = families, connections
        self.send, self.recv, self.hold, self.refused = send, recv, hold, refused

    def _start(self):
        addrs = {str(f): LOOPBACK[f] for f in self.families}
        self.server = self.spawn(
            "server", "tests.workloads.net:_server_child",
            {"addrs": addrs, "refuser": self.refused, "recv": self.recv,
             "expect": len(self.families) * self.connections}, comm=self.server_comm)
        ports = self.server.ready["ports"]
        rports = self.server.ready["refused_ports"]
        self.ports = {int(f): p for f, p in ports.items()}
        self.spawn("main", "tests.workloads.net:_client_child",
                   {"targets": {f: [LOOPBACK[int(f)], p] for f, p in ports.items()},
                    "refused": {f: [LOOPBACK[int(f)], p] for f, p in rports.items()},
                    "connections": self.connections, "send": self.send, "hold": self.hold},
                   comm=self.comm)

    def _go(self, timeout):
        client = self.children["main"]
        self.server.step(timeout)                      # listen()
        client.release()
        self.server.release()
        crep = client.collect(timeout)
        srep = self.server.collect(timeout)
        by_port = {(s["family"], s["rport"]): s for s in srep["sessions"]}
        sessions = []
        for c in crep["sessions"]:
            s = by_port.get((c["family"], c["lport"]))
            if s is None:
                raise WorkloadError("server saw no connection from port %d" % c["lport"])
            if s["rx"] != c["tx"] or c["rx"] != s["tx"]:
                raise WorkloadError("byte counts differ: client %s, server %s" % (c, s))
            sessions.append({
                "family": c["family"], "client_pid": client.pid, "client_comm": self.comm,
                "server_pid": self.server.pid, "server_comm": self.server_comm,
                "client": {"addr": c["laddr"], "port": c["lport"]},
                "server": {"addr": s["laddr"], "port": s["lport"]},
                "sent": c["tx"], "received": c["rx"], "duration_ms": c["ms"],
                "server_ms": s["ms"]})
        for r in crep["refused"]:
            if r["errno"] != errno.ECONNREFUSED:
                raise WorkloadError("connect to a closed port gave errno %d" % r["errno"])
            r.update(pid=client.pid, comm=self.comm)
        return {"pid": client.pid, "tid": crep["tid"], "comm": self.comm,
                "server": {"pid": self.server.pid, "tid": srep["tid"],
                           "comm": self.server_comm,
                           "ports": {str(f): p for f, p in self.ports.items()}},
                "sessions": sessions, "refused": crep["refused"], "hold": self.hold,
                "states": {"client": CLIENT_STATES, "server": SERVER_STATES,
                           "listener": LISTENER_STATES, "refused": REFUSED_STATES}}


def tcp_sessions(families=(4, 6), connections=1, send=100000, recv=50000, hold=0.1,
                 refused=True):
    """tcpconnect / tcpaccept / tcplife / tcptop / tcpstates: a server (comm ``tt-tcpsrv``)
    listening on an ephemeral loopback port per family (127.0.0.1, ::1; ``listen()`` happens
    after go and the listeners are closed before go returns, so their LISTEN transitions
    are traced too) and a client (comm ``tt-tcpcli``)
    making ``connections`` connections per family, one at a time: connect, hold ``hold`` s,
    send ``send`` bytes, shut down writing, read the server's ``recv`` bytes, close.  With
    ``refused``, the client then connects once per family to a port bound by the server but
    never listened on (ECONNREFUSED).

    Record: ``pid``/``tid``/``comm`` (client), ``server`` {``pid``, ``tid``, ``comm``,
    ``ports`` {"4": port, "6": port}}, ``sessions`` (in order: ``family``, ``client_pid``,
    ``client_comm``, ``server_pid``, ``server_comm``, ``client`` {``addr``, ``port``},
    ``server`` {``addr``, ``port``}, ``sent`` (client to server bytes), ``received`` (server
    to client), ``duration_ms`` (connect to close, client side), ``server_ms`` (accept to
    close)), ``refused`` (``family``, ``raddr``, ``rport``, ``errno``, ``pid``, ``comm``),
    ``hold``, ``states`` (the expected inet_sock_set_state transitions of the ``client``,
    ``server`` (accepted) and ``listener`` sockets and of a ``refused`` connect).
    """
    return TcpSessions(families, connections, send, recv, hold, refused)


# ---------------------------------------------------------------------------------------
# retransmissions

def _retrans_client(cfg):
    yield {}
    addr, port = cfg["server"]
    s = socket.socket(_AF[cfg["family"]], socket.SOCK_STREAM)
    s.connect((addr, port))
    s.sendall(b"w" * cfg["warmup"])
    laddr, lport = _name(s)
    deadline = time.monotonic() + 2
    while _tcp_info_u32(s, 24) and time.monotonic() < deadline:    # tcpi_unacked
        time.sleep(0.005)
    yield {"laddr": laddr, "lport": lport}
    # the parent has cut the path: these segments are lost and must be retransmitted
    t0 = time.monotonic()
    s.sendall(b"l" * cfg["lost"])
    yield {"sent_at": t0}
    # the path is back: wait for the retransmissions to get through before closing, so
    # every retransmission happens in ESTABLISHED
    deadline = time.monotonic() + 10
    while _tcp_info_u32(s, 24) and time.monotonic() < deadline:    # tcpi_unacked
        time.sleep(0.005)
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while True:
        b = s.recv(100)
        if not b:
            break
        reply += b
    retrans = _tcp_info_total_retrans(s)
    write_seq = _write_seq(s)
    s.close()
    yield {"reply": reply.decode(), "total_retrans": retrans, "write_seq": write_seq,
           "ms": (time.monotonic() - t0) * 1e3, "tid": _util.gettid()}


def _write_seq(s):
    """The socket's next sequence number to write (the kernel's ``write_seq``), read in
    TCP repair mode (CRIU's interface; needs CAP_NET_ADMIN), or None.  Called once the
    connection is over: entering repair mode stops a live connection from sending."""
    tcp_repair, tcp_repair_queue, tcp_queue_seq, send_queue = 19, 20, 21, 2
    try:
        s.setsockopt(socket.IPPROTO_TCP, tcp_repair, 1)
        s.setsockopt(socket.IPPROTO_TCP, tcp_repair_queue, send_queue)
        raw = s.getsockopt(socket.IPPROTO_TCP, tcp_queue_seq, 4)
    except OSError:
        return None
    return struct.unpack("I", raw)[0]


def _retrans_server(cfg):
    s = socket.socket(_AF[cfg["family"]], socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((cfg["addr"], 0))
    s.listen(4)
    yield {"port": s.getsockname()[1]}
    c, _ = s.accept()
    rx = 0
    while True:
        b = c.recv(65536)
        if not b:
            break
        rx += len(b)
    c.sendall(b"ok %d" % rx)
    c.close()
    s.close()
    yield {"rx": rx, "tid": _util.gettid()}


class TcpRetransmits(Workload):
    comm = "tt-retrans"
    server_comm = "tt-rtsrv"

    def __init__(self, pair=None, family=4, outage=0.3, warmup=32768, lost=16384):
        super(TcpRetransmits, self).__init__()
        self.pair, self.family, self.outage = pair, family, outage
        self.warmup, self.lost = warmup, lost

    def _start(self):
        from tests.workloads.resources import netns_pair
        if self.pair is None:
            self.pair = self.enter(netns_pair())
        p, fam = self.pair, self.family
        self.server = self.spawn("server", "tests.workloads.net:_retrans_server",
                                 {"family": fam, "addr": p.b.addr(fam)},
                                 comm=self.server_comm, wrap=p.exec_prefix(p.b.ns))
        self.port = self.server.ready["port"]
        self.spawn("main", "tests.workloads.net:_retrans_client",
                   {"family": fam, "server": [p.b.addr(fam), self.port],
                    "warmup": self.warmup, "lost": self.lost},
                   comm=self.comm, wrap=p.exec_prefix(p.a.ns))

    def _go(self, timeout):
        p, fam, client = self.pair, self.family, self.children["main"]
        plen = p.prefix4 if fam == 4 else p.prefix6
        addr_b = "%s/%d" % (p.b.addr(fam), plen)
        before = p.tcp_counters(p.a.ns)
        self.server.release()                              # accept()
        conn = client.step(timeout)                        # connected, warm-up data acked
        # Cut the path by removing the server's address: segments reaching b are dropped
        # silently (no ICMP, no RST), so the client can only retransmit on timeout.
        p.ip(p.b.ns, "addr", "del", addr_b, "dev", p.b.dev)
        restored = False
        try:
            client.step(timeout)
            time.sleep(self.outage)
        finally:
            extra = ["nodad"] if fam == 6 else []
            p.ip(p.b.ns, "addr", "add", addr_b, "dev", p.b.dev, *extra)
            restored = True
        done = client.step(timeout)
        srep = self.server.collect(timeout)
        after = p.tcp_counters(p.a.ns)
        segs = after["RetransSegs"] - before["RetransSegs"]
        if not restored or segs < 1:
            raise WorkloadError("no retransmission happened (RetransSegs delta %d)" % segs)
        return {"pid": client.pid, "tid": done["tid"], "comm": self.comm, "family": fam,
                "saddr": conn["laddr"], "sport": conn["lport"],
                "daddr": p.b.addr(fam), "dport": self.port,
                "state": "ESTABLISHED", "retrans_segs": segs,
                "total_retrans": done["total_retrans"], "outage_s": self.outage,
                "lost_seq": _lost_seq(done["write_seq"], self.lost),
                "bytes": self.warmup + self.lost, "server_rx": srep["rx"],
                "duration_ms": done["ms"],
                "server": {"pid": self.server.pid, "comm": self.server_comm},
                "netns": {"client": p.a.ns, "server": p.b.ns}}


def _lost_seq(write_seq, lost):
    """[first, end) sequence numbers of the lost bytes, from the client's write_seq after
    its FIN (which took one number): None when repair mode was not available."""
    if write_seq is None:
        return None
    end = (write_seq - 1) & 0xffffffff
    return ((end - lost) & 0xffffffff, end)


def tcp_retransmits(pair=None, family=4, outage=0.3, warmup=32768, lost=16384):
    """tcpretrans: a TCP connection across a netns pair (``pair`` or a fresh one) whose path
    is cut for ``outage`` seconds while ``lost`` bytes are in flight, so the client (comm
    ``tt-retrans``, netns a) retransmits on RTO (about 0.2 s, then 0.4 s later).  The cut
    removes the server's address in netns b, so nothing is queued or refused: segments
    just vanish.  (netem is not needed, and not available on every kernel.)

    Record: ``pid``/``tid``/``comm`` (client), ``family``, ``saddr``/``sport`` (client),
    ``daddr``/``dport`` (server), ``state`` ("ESTABLISHED"), ``retrans_segs`` (the client
    netns's Tcp RetransSegs delta: only this connection lives there), ``total_retrans``
    (tcp_info of the socket), ``lost_seq`` ([first, end) sequence numbers of the bytes
    sent while the path was cut, mod 2**32; the warm-up bytes were acknowledged before, so
    every retransmitted skb starts in it; None without CAP_NET_ADMIN, as the client reads
    its sequence number in TCP repair mode), ``outage_s``, ``bytes``, ``server_rx``,
    ``duration_ms``,
    ``server`` {``pid``, ``comm``}, ``netns`` {``client``, ``server``}.
    """
    return TcpRetransmits(pair, family, outage, warmup, lost)
