"""tcplife: trace the lifespan of TCP sessions, one line per closed session with its bytes
and duration, like BCC's tcplife.

The probe is ``sock:inet_sock_set_state`` (BCC's too), keyed by socket address:

- a transition to SYN_SENT, SYN_RECV or ESTABLISHED (any state before FIN_WAIT1) stamps the
  session's start, as BCC does (so the span counts from the last of those);
- the process is remembered when it is certainly in context: at SYN_SENT (inside
  connect()), and else at the application's close (-> FIN_WAIT1 or -> LAST_ACK, inside
  close()/shutdown()).  BCC remembers SYN_SENT and LAST_ACK only; taking FIN_WAIT1 too
  names the process of a server that closes first instead of whatever task ran the last
  packet;
- at CLOSE the line is sent: addresses and ports from the tracepoint, bytes from the
  socket itself -- ``tcp_sock.bytes_acked`` (TX) and ``tcp_sock.bytes_received`` (RX), at
  offsets from the kernel's BTF, the counters BCC reads.  They count sequence space, so
  a SYN or FIN acknowledged counts as one byte: up to 2 more than the payload.

Sessions that started before tracing began are not shown (no start time), as in BCC.
Options are BCC's (-T -t -w -s -p -L -D) plus -4/-6 as in libbpf-tools' tcplife.
"""

SUMMARY = "TCP sessions at close: process, ends, bytes each way, duration"
PROBES = ("tracepoint:sock:inet_sock_set_state",)
NEEDS = ("btf",)

DESCRIPTION = """\
Trace the lifespan of TCP sessions and summarize

Probe: tracepoint sock:inet_sock_set_state (as BCC).  The process is the one seen at
connect() or at the application's close; TX_KB and RX_KB are the socket's
tcp_sock.bytes_acked and bytes_received counters at close, read through the kernel's BTF.
"""

EXAMPLES = """\
    tinytrace tcplife           # trace all TCP connect()s
    tinytrace tcplife -T        # include time column (HH:MM:SS)
    tinytrace tcplife -w        # wider columns (fit IPv6)
    tinytrace tcplife -stT      # csv output, with times & timestamps
    tinytrace tcplife -p 181    # only trace PID 181
    tinytrace tcplife -L 80     # only trace local port 80
    tinytrace tcplife -L 80,81  # only trace local ports 80 and 81
    tinytrace tcplife -D 80     # only trace remote port 80
    tinytrace tcplife --json    # one JSON object per session (exact byte counts)
"""

AF_INET, AF_INET6 = 2, 10
TCP_SYN_SENT, TCP_FIN_WAIT1, TCP_CLOSE, TCP_LAST_ACK = 2, 4, 7, 9


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("tcplife", DESCRIPTION,
                               EXAMPLES)
    p.add_argument("-T", "--time", action="store_true",
                   help="include time column on output (HH:MM:SS)")
    p.add_argument("-t", "--timestamp", action="store_true",
                   help="include timestamp on output (seconds)")
    p.add_argument("-w", "--wide", action="store_true",
                   help="wide column output (fits IPv6 addresses)")
    p.add_argument("-s", "--csv", action="store_true", help="comma separated values output")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    p.add_argument("-L", "--localport", type=_ports,
                   help="comma-separated list of local ports to trace.")
    p.add_argument("-D", "--remoteport", type=_ports,
                   help="comma-separated list of remote ports to trace.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-4", "--ipv4", action="store_true", help="trace IPv4 family only")
    g.add_argument("-6", "--ipv6", action="store_true", help="trace IPv6 family only")
    toolkit.add_json(p)
    return p.parse_args(argv)


def _ports(text):
    """An argparse type: "80" or "80,81" -> [80, 81] (each 0..65535)."""
    import argparse
    out = []
    for part in text.split(","):
        try:
            port = int(part.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError("invalid port list: %r" % text)
        if not 0 <= port < 65536:
            raise argparse.ArgumentTypeError("port out of range (0-65535): %d" % port)
        out.append(port)
    return out


# -- the script ---------------------------------------------------------------------------

SCRIPT = r"""
tracepoint:sock:inet_sock_set_state
/args->protocol == 6%(family)s/
{
	$sk = args->skaddr;
	if (%(ports)s) {
		$new = args->newstate;
		if ($new < %(fin_wait1)d) {
			@birth[$sk] = nsecs;
		}
		if ($new == %(syn_sent)d ||
		    (($new == %(fin_wait1)d || $new == %(last_ack)d) && !has_key(@who, $sk))) {
			@who[$sk] = (pid, comm);
		}
		if ($new == %(close)d) {
			if (has_key(@birth, $sk)) {
				$span = nsecs - @birth[$sk];
				$pid = pid;
				$comm = comm;
				if (has_key(@who, $sk)) {
					$w = @who[$sk];
					$pid = $w.0;
					$comm = $w.1;
				}
				$tx = *(uint64 *)($sk + %(bytes_acked)d);
				$rx = *(uint64 *)($sk + %(bytes_received)d);
				if (%(pid)s) {
					if (args->family == %(af_inet)d) {
						printf("%%d %%d %%s %%s %%d %%s %%d %%d %%d %%d\n", nsecs, $pid, $comm,
						       ntop(args->saddr), args->sport, ntop(args->daddr), args->dport,
						       $tx, $rx, $span);
					} else {
						printf("%%d %%d %%s %%s %%d %%s %%d %%d %%d %%d\n", nsecs, $pid, $comm,
						       ntop(args->saddr_v6), args->sport, ntop(args->daddr_v6),
						       args->dport, $tx, $rx, $span);
					}
				}
			}
			delete(@birth[$sk]);
			delete(@who[$sk]);
		}
	} else {
		delete(@birth[$sk]);
		delete(@who[$sk]);
	}
}
"""


def byte_offsets():
    """Offsets of ``tcp_sock.bytes_acked`` and ``tcp_sock.bytes_received``, from BTF."""
    from tinytrace.errors import KernelError
    from tinytrace.kernel import btf
    if not btf.available():
        raise KernelError("tcplife needs the kernel's BTF (%s) to read a session's byte "
                          "counters; this kernel has none (CONFIG_DEBUG_INFO_BTF)" % btf.VMLINUX)
    b = btf.vmlinux()
    out = {}
    for name in ("bytes_acked", "bytes_received"):
        m = b.member("tcp_sock", name)
        if m is None:
            raise KernelError("tcplife: this kernel's BTF has no tcp_sock.%s" % name)
        out[name] = m.offset
    return out


def _any(field, ports):
    return "(" + " || ".join("args->%s == %d" % (field, p) for p in ports) + ")"


def script_text(opts, offsets):
    ports = []
    if opts.localport:
        ports.append(_any("sport", opts.localport))
    if opts.remoteport:
        ports.append(_any("dport", opts.remoteport))
    family = ""
    if opts.ipv4:
        family = " && args->family == %d" % AF_INET
    elif opts.ipv6:
        family = " && args->family == %d" % AF_INET6
    consts = dict(offsets)
    consts.update(family=family, ports=" && ".join(ports) or "1",
                  pid="$pid == %d" % opts.pid if opts.pid else "1", af_inet=AF_INET,
                  syn_sent=TCP_SYN_SENT, fin_wait1=TCP_FIN_WAIT1, last_ack=TCP_LAST_ACK,
                  close=TCP_CLOSE)
    return SCRIPT % consts


# -- output -------------------------------------------------------------------------------

HEADER = "%-5s %-10.10s %s%-15s %-5s %-15s %-5s %5s %5s %s"
ROW = "%-5d %-10.10s %s%-15s %-5d %-15s %-5d %5d %5d %.2f"
WIDE_HEADER = "%-5s %-16.16s %-2s %-26s %-5s %-26s %-5s %6s %6s %s"
WIDE_ROW = "%-5d %-16.16s %-2s %-26s %-5s %-26s %-5d %6d %6d %.2f"
CSV_HEADER = "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s"
CSV_ROW = "%d,%s,%s,%s,%s,%s,%d,%d,%d,%.2f"


class Printer(object):
    def __init__(self, opts, out):
        self.opts = opts
        self.out = out
        self.start_ns = None
        if opts.csv:
            self.head, self.row = CSV_HEADER, CSV_ROW
        elif opts.wide:
            self.head, self.row = WIDE_HEADER, WIDE_ROW
        else:
            self.head, self.row = HEADER, ROW

    def header(self):
        o = self.opts
        if o.json:
            return
        line = ""
        if o.time:
            line += "TIME," if o.csv else "%-8s " % "TIME"
        if o.timestamp:
            line += "TIME(s)," if o.csv else "%-9s " % "TIME(s)"
        line += self.head % ("PID", "COMM", "IP" if o.wide or o.csv else "", "LADDR", "LPORT",
                             "RADDR", "RPORT", "TX_KB", "RX_KB", "MS")
        self.out.write(line + "\n")
        self.out.flush()

    def event(self, values, index):
        import time
        ts, pid, comm, laddr, lport, raddr, rport, tx, rx, span = values
        o = self.opts
        ip = 4 if index == 0 else 6
        if self.start_ns is None:
            self.start_ns = ts
        rel = (ts - self.start_ns) / 1e9
        ms = span / 1e6
        if o.json:
            from tinytrace.output import jsonl
            rec = {}
            if o.time:
                rec["time"] = time.strftime("%H:%M:%S")
            if o.timestamp:
                rec["ts"] = round(rel, 6)
            rec.update(pid=pid, comm=jsonl.text(comm), ip=ip, laddr=laddr, lport=lport,
                       raddr=raddr, rport=rport, tx_bytes=tx, rx_bytes=rx, ms=round(ms, 3))
            jsonl.write(rec, self.out)
            return
        from tinytrace.output.escape import cstring
        line = ""
        if o.time:
            now = time.strftime("%H:%M:%S")
            line += now + "," if o.csv else "%-8s " % now
        if o.timestamp:
            line += "%.6f," % rel if o.csv else "%-9.6f " % rel
        c = cstring(comm)
        if o.csv:
            c = c.replace(",", "\\x2c")
        line += self.row % (pid, c, str(ip) if o.wide or o.csv else "", laddr, lport, raddr,
                            rport, tx // 1024, rx // 1024, ms)
        self.out.write(line + "\n")
        self.out.flush()


class _Discard(object):
    """The runtime's own text output (its "Lost N events" lines): tools print their own."""

    def write(self, text):
        pass

    def flush(self):
        pass


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    script = Script(script_text(opts, byte_offsets()), tool="tcplife", out=_Discard())
    printer = Printer(opts, sys.stdout)
    script.on_printf(printer.event)
    lost = [0]

    def report_lost():
        if script.lost > lost[0]:
            sys.stderr.write("Possibly lost %d samples\n" % (script.lost - lost[0]))
            sys.stderr.flush()
            lost[0] = script.lost
        return False

    with toolkit.Stopper() as stopper, script.start():
        if opts.json:
            toolkit.announce(opts, "Tracing TCP sessions ... Hit Ctrl-C to end")
        printer.header()
        script.follow(stopper, until=report_lost)
        report_lost()
    return 0
