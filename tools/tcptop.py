"""tcptop: TCP send/receive throughput by connection and process, refreshed every interval,
like BCC's tcptop.

Two kernel sides, picked at run time from what the kernel has (``variant()``):

**tracepoints** ``sock:sock_send_length`` and ``sock:sock_recv_length`` (Linux 6.3+),
filtered to TCP over IPv4/IPv6: they fire in the calling process with the number of bytes
the send/receive call actually moved (BCC's send side counts the size *asked* for).  So the
figures are application bytes per process and connection; kernel-internal senders (e.g.
an NFS client) do not appear, and peeked data (MSG_PEEK) is not counted.

**kprobes**, BCC's, where those tracepoints are missing (Debian's 6.1) and the kernel has
kprobes: ``tcp_sendmsg(sk, msg, size)`` counts ``size`` (the size asked for) and
``tcp_cleanup_rbuf(sk, copied)`` counts ``copied`` when it is above 0 (what a receive
copied to the application; as in BCC, MSG_PEEK reads are counted too).
``TINYTRACE_TARGET=sock_length=0`` takes this variant on a kernel that has both (tests);
a kernel with neither gets one line saying what is missing.

The connection's addresses and ports are read from the socket
(``sock.__sk_common.skc_rcv_saddr``, ``skc_daddr``, ``skc_v6_*``, ``skc_dport`` and
``inet_sock.inet_sport``) through the kernel's BTF, and are part of the map key (one map
per direction and family: IPv4 keys hold 4-byte addresses, IPv6 keys 16-byte ones), so
sockets that existed before tracing began are shown too.  The local port is
``inet_sport``, not ``skc_num`` (BCC's): a socket that reached CLOSE has given its port
back (``skc_num`` is 0) while the application still reads the last data it received.
Bytes are summed in the kernel (``sum()`` maps keyed by addresses, ports, PID and COMM);
Python sorts and prints them every interval and clears the maps.

Options are BCC's (-C -S -p -4 -6, interval, count) plus ``-r MAXROWS`` as in BCC's other top
tools.  The screen is cleared between intervals only when the output is a terminal.

``--cgroupmap MAPPATH`` / ``--mntnsmap MAPPATH`` (BCC's container filters, one or the
other) keep only tasks whose cgroup v2 id, or mount namespace id (read through the
kernel's BTF), is a key of the hash map pinned at MAPPATH by whoever manages the
containers (``toolkit.container_filter``): one more test in each probe's filter.
"""

SUMMARY = "TCP send/receive throughput by process and connection, per interval"
PROBES = ("tracepoint:sock:sock_send_length", "tracepoint:sock:sock_recv_length",
          "kprobe:tcp_sendmsg", "kprobe:tcp_cleanup_rbuf")
NEEDS = ("btf",)

DESCRIPTION = """\
Summarize TCP send/recv throughput by host

This kernel: %s.  Connection ends are read from the socket through the kernel's BTF.
"""

VARIANT_TEXT = {
    "tracepoint": "tracepoints sock:sock_send_length and sock:sock_recv_length, the bytes each "
                  "send and receive call moved, in the calling process (BCC uses kprobes on "
                  "tcp_sendmsg and tcp_cleanup_rbuf)",
    "kprobe": "kprobes on tcp_sendmsg (the size asked for) and tcp_cleanup_rbuf (the bytes a "
              "receive copied), as BCC (no sock:sock_send_length/sock_recv_length "
              "tracepoints here)",
}

EXAMPLES = """\
    tinytrace tcptop           # trace TCP send/recv by host
    tinytrace tcptop -C        # don't clear the screen
    tinytrace tcptop -p 181    # only trace PID 181
    tinytrace tcptop -4        # trace IPv4 family only
    tinytrace tcptop -6        # trace IPv6 family only
    tinytrace tcptop -r 10 5   # the 10 busiest connections per family, every 5 s
    tinytrace tcptop --json 1 3  # three 1-second reports as JSON lines
"""

MSG_PEEK = 2


def parse_args(argv, kind=None):
    from tinytrace import toolkit, tooldata
    if kind is None:
        kind = variant()
    p = toolkit.ArgumentParser("tcptop", DESCRIPTION % VARIANT_TEXT.get(kind, MISSING),
                               EXAMPLES)
    p.add_argument("-C", "--noclear", action="store_true", help="don't clear the screen")
    p.add_argument("-S", "--nosummary", action="store_true", help="skip system summary line")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    p.add_argument("-r", "--maxrows", type=toolkit.positive_int, default=None,
                   help="maximum rows to print per address family, default: all")
    tooldata.add_family_options(p)
    toolkit.add_container_filters(p)
    toolkit.add_json(p)
    toolkit.add_interval_options(p, interval=1)
    opts = p.parse_args(argv)
    opts.variant = kind
    return opts


# -- the script ---------------------------------------------------------------------------

PROBE = r"""
tracepoint:sock:%(event)s
/args->protocol == 6 && args->ret > 0 &&
 (args->family == %(af_inet)d || args->family == %(af_inet6)d)%(filter)s/
{
	$sk = (struct sock *)args->sk;
	$lport = ((struct inet_sock *)args->sk)->inet_sport;
	$dport = $sk->__sk_common.skc_dport;
	if (args->family == %(af_inet)d) {
		@%(map)s4[$sk->__sk_common.skc_rcv_saddr, $sk->__sk_common.skc_daddr, pid, $lport,
		         $dport, comm] = sum(args->ret);
	} else {
		@%(map)s6[$sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8,
		         $sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, pid, $lport, $dport, comm] =
			sum(args->ret);
	}
}
"""

KPROBE = r"""
kprobe:%(func)s
/(%(family)s == %(af_inet)d || %(family)s == %(af_inet6)d)%(filter)s/
{
	$sk = (struct sock *)arg0;
	$lport = ((struct inet_sock *)arg0)->inet_sport;
	$dport = $sk->__sk_common.skc_dport;
	$n = (uint64)%(bytes)s;
	if ($sk->__sk_common.skc_family == %(af_inet)d) {
		@%(map)s4[$sk->__sk_common.skc_rcv_saddr, $sk->__sk_common.skc_daddr, pid, $lport,
		         $dport, comm] = sum($n);
	} else {
		@%(map)s6[$sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8,
		         $sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, pid, $lport, $dport, comm] =
			sum($n);
	}
}
"""

# tcp_sendmsg(sk, msg, size): the size asked for; tcp_cleanup_rbuf(sk, copied): the bytes a
# receive copied (BCC: only when copied > 0)
KPROBES = (("tcp_sendmsg", "send", "arg2", ""), ("tcp_cleanup_rbuf", "recv", "(int32)arg1",
                                                 " && (int32)arg1 > 0"))
SOCK_FAMILY = "((struct sock *)arg0)->__sk_common.skc_family"

# the maps: bytes per direction and family, keyed (laddr, raddr, pid, lport, rport, comm)
MAPS = (("tx_bytes", 4, "@send4"), ("tx_bytes", 6, "@send6"), ("rx_bytes", 4, "@recv4"),
        ("rx_bytes", 6, "@recv6"))


def check_btf():
    """The connection's ends are read from ``struct sock``: that needs the kernel's BTF."""
    from tinytrace import toolkit
    if not toolkit.has_btf():
        from tinytrace.errors import KernelError
        from tinytrace.kernel import btf
        raise KernelError("tcptop needs the kernel's BTF (%s) to read a socket's addresses; "
                          "this kernel has none (CONFIG_DEBUG_INFO_BTF)" % btf.VMLINUX)


def variant():
    """"tracepoint" where the kernel has sock:sock_send_length and sock_recv_length (they
    count the bytes moved), else "kprobe" where it has kprobes (BCC's tcp_sendmsg and
    tcp_cleanup_rbuf), else None."""
    from tinytrace import toolkit
    if all(toolkit.tracepoint_exists("sock", e) for e in ("sock_send_length",
                                                          "sock_recv_length")):
        if not toolkit.target_disables("sock_length"):
            return "tracepoint"
    if toolkit.has_kprobes():
        return "kprobe"
    return None


MISSING = ("tcptop needs the tracepoints sock:sock_send_length and sock:sock_recv_length "
           "(Linux 6.3+) or kprobes (on tcp_sendmsg and tcp_cleanup_rbuf, as BCC), and this "
           "kernel has neither: a kernel built with CONFIG_KPROBES and CONFIG_KPROBE_EVENTS, "
           "or a newer one, would do")


def _filters(opts, container, family_field):
    from tinytrace import tooldata as td
    pid = " && pid == %d" % opts.pid if opts.pid else ""
    if container:
        pid += " && " + container
    family = td.family_test(opts, family_field)
    if family:
        pid += " && " + family
    return pid


def script_text(opts, container=""):
    """The tracepoint script.  ``container``: the --cgroupmap/--mntnsmap test
    (``toolkit.container_filter``)."""
    from tinytrace import tooldata as td
    pid = _filters(opts, container, "args->family")
    parts = []
    for event, name, extra in (("sock_send_length", "send", ""),
                               ("sock_recv_length", "recv",
                                " && (args->flags & %d) == 0" % MSG_PEEK)):
        parts.append(PROBE % dict(event=event, map=name, af_inet=td.AF_INET,
                                  af_inet6=td.AF_INET6, filter=pid + extra))
    return "".join(parts)


def kprobe_script_text(opts, container=""):
    """BCC's kprobes, for kernels without the sock tracepoints."""
    from tinytrace import tooldata as td
    pid = _filters(opts, container, SOCK_FAMILY)
    return "".join(KPROBE % dict(func=func, map=name, bytes=nbytes, family=SOCK_FAMILY,
                                 af_inet=td.AF_INET, af_inet6=td.AF_INET6, filter=extra + pid)
                   for func, name, nbytes, extra in KPROBES)


# -- reading and printing -----------------------------------------------------------------

def _addr(ip, raw):
    """An address of a map key: a u32 in network order (IPv4) or 16 bytes (IPv6)."""
    import socket
    import struct
    if ip == 4:
        return socket.inet_ntop(socket.AF_INET, struct.pack("=I", raw & 0xffffffff))
    return socket.inet_ntop(socket.AF_INET6, bytes(bytearray(raw)))


def connections(maps):
    """The maps' entries (``{map name: {key: bytes}}``, see MAPS) as connections: [{pid,
    comm, ip, laddr, lport, raddr, rport, rx_bytes, tx_bytes}], busiest first.  Threads
    of one process with different names are one row, named after the first seen."""
    import socket
    rows = {}
    for field, ip, name in MAPS:
        for key, n in maps.get(name, {}).items():
            laddr, raddr, pid, lport, rport, comm = key
            ident = (pid, ip, laddr, lport, raddr, rport)
            row = rows.get(ident)
            if row is None:
                row = rows[ident] = {
                    "pid": pid, "comm": comm, "ip": ip,
                    "laddr": _addr(ip, laddr), "lport": socket.ntohs(lport),
                    "raddr": _addr(ip, raddr), "rport": socket.ntohs(rport),
                    "rx_bytes": 0, "tx_bytes": 0}
            row[field] += n
    return sorted(rows.values(), key=lambda r: r["rx_bytes"] + r["tx_bytes"], reverse=True)


def report(opts, rows, out):
    from tinytrace import toolkit
    now = toolkit.hhmmss()
    v4 = _top(opts, [r for r in rows if r["ip"] == 4])
    v6 = _top(opts, [r for r in rows if r["ip"] == 6])
    if opts.json:
        from tinytrace.output import jsonl
        rec = {"time": now}
        if not opts.nosummary:
            rec["loadavg"] = toolkit.loadavg()
        rec["connections"] = [dict(r, comm=jsonl.text(r["comm"])) for r in v4 + v6]
        jsonl.write(rec, out)
        return
    from tinytrace.output.escape import cstring
    if opts.noclear or not out.isatty():
        out.write("\n")
    else:
        out.write("\033[H\033[2J")
    if not opts.nosummary:
        out.write("%-8s loadavg: %s\n\n" % (now, toolkit.loadavg() or "-"))
    if v4:
        out.write("%-6s %-12s %-21s %-21s %6s %6s\n" % (
            "PID", "COMM", "LADDR", "RADDR", "RX_KB", "TX_KB"))
        for r in v4:
            out.write("%-6d %-12.12s %-21s %-21s %6d %6d\n" % (
                r["pid"], cstring(r["comm"]), "%s:%d" % (r["laddr"], r["lport"]),
                "%s:%d" % (r["raddr"], r["rport"]), r["rx_bytes"] // 1024,
                r["tx_bytes"] // 1024))
    if v6:
        out.write("\n%-6s %-12s %-32s %-32s %6s %6s\n" % (
            "PID", "COMM", "LADDR6", "RADDR6", "RX_KB", "TX_KB"))
        for r in v6:
            out.write("%-6d %-12.12s %-32s %-32s %6d %6d\n" % (
                r["pid"], cstring(r["comm"]), "%s:%d" % (r["laddr"], r["lport"]),
                "%s:%d" % (r["raddr"], r["rport"]), r["rx_bytes"] // 1024,
                r["tx_bytes"] // 1024))
    out.flush()


def _top(opts, rows):
    return rows[:opts.maxrows] if opts.maxrows else rows


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    from tinytrace.errors import KernelError
    opts = parse_args(argv)
    toolkit.require_privileges()
    if opts.variant is None:
        raise KernelError(MISSING)
    check_btf()
    container, maps = toolkit.container_filter(opts)
    text = (kprobe_script_text if opts.variant == "kprobe" else script_text)(opts, container)
    script = Script(text, tool="tcptop", maps=maps)
    with toolkit.Stopper() as stopper, script.start():
        toolkit.announce(opts, "Tracing... Output every %d secs. Hit Ctrl-C to end"
                         % opts.interval)

        def one_report(last):
            maps = {}
            for _, _, name in MAPS:
                maps[name] = script.read(name)
                script.clear(name)
            report(opts, connections(maps), sys.stdout)

        toolkit.intervals(opts.interval, opts.count, one_report, stopper)
    return 0
