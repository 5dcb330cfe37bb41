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
  socket itself -- ``tcp_sock.bytes_acked`` (TX) and ``tcp_sock.bytes_received`` (RX), read
  through the kernel's BTF, the counters BCC reads.  They count sequence space, so
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


def parse_args(argv):
    from tinytrace import toolkit, tooldata
    p = toolkit.ArgumentParser("tcplife", DESCRIPTION, EXAMPLES)
    tooldata.add_layout_options(p)
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    tooldata.add_session_filters(p)
    toolkit.add_json(p)
    return p.parse_args(argv)


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
				$tx = ((struct tcp_sock *)$sk)->bytes_acked;
				$rx = ((struct tcp_sock *)$sk)->bytes_received;
				if (%(pid)s) {
%(emit)s				}
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


def check_btf():
    """The byte counters are read from ``struct tcp_sock``: that needs the kernel's BTF."""
    from tinytrace import toolkit
    if not toolkit.has_btf():
        from tinytrace.errors import KernelError
        from tinytrace.kernel import btf
        raise KernelError("tcplife needs the kernel's BTF (%s) to read a session's byte "
                          "counters; this kernel has none (CONFIG_DEBUG_INFO_BTF)" % btf.VMLINUX)


# the line at CLOSE, once per family (tooldata.by_family): printf 0 is IPv4, 1 IPv6
EMIT = ('printf("%d %d %s %s %d %s %d %d %d %d\\n", nsecs, $pid, $comm,\n'
        '       ntop({saddr}), args->sport, ntop({daddr}), args->dport,\n'
        '       $tx, $rx, $span);')


def script_text(opts):
    from tinytrace import tooldata as td
    family = td.family_test(opts)
    return SCRIPT % dict(
        family=" && " + family if family else "", ports=td.port_tests(opts),
        pid="$pid == %d" % opts.pid if opts.pid else "1",
        emit=td.by_family(EMIT, indent="\t\t\t\t\t"),
        syn_sent=td.TCP_SYN_SENT, fin_wait1=td.TCP_FIN_WAIT1, last_ack=td.TCP_LAST_ACK,
        close=td.TCP_CLOSE)


# -- output -------------------------------------------------------------------------------

HEADER = "%-5s %-10.10s %s%-15s %-5s %-15s %-5s %5s %5s %s"
ROW = "%-5d %-10.10s %s%-15s %-5d %-15s %-5d %5d %5d %.2f"
WIDE_HEADER = "%-5s %-16.16s %-2s %-26s %-5s %-26s %-5s %6s %6s %s"
WIDE_ROW = "%-5d %-16.16s %-2s %-26s %-5s %-26s %-5d %6d %6d %.2f"
CSV_HEADER = "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s"
CSV_ROW = "%d,%s,%s,%s,%s,%s,%d,%d,%d,%.2f"


class Printer(object):
    def __init__(self, opts, out):
        from tinytrace.tooldata import TimeColumns, pick_layout
        self.opts = opts
        self.out = out
        self.times = TimeColumns(opts, "spaced", opts.csv)
        self.head, self.row = pick_layout(opts, (HEADER, ROW), (WIDE_HEADER, WIDE_ROW),
                                          (CSV_HEADER, CSV_ROW))

    def header(self):
        o = self.opts
        if o.json:
            return
        self.out.write(self.times.header() + self.head % (
            "PID", "COMM", "IP" if o.wide or o.csv else "", "LADDR", "LPORT", "RADDR",
            "RPORT", "TX_KB", "RX_KB", "MS") + "\n")
        self.out.flush()

    def event(self, values, index):
        from tinytrace import tooldata as td
        ts, pid, comm, laddr, lport, raddr, rport, tx, rx, span = values
        o = self.opts
        ip = td.ip_of(index)
        ms = span / 1e6
        if o.json:
            from tinytrace.output import jsonl
            rec = self.times.record(ts)
            rec.update(pid=pid, comm=jsonl.text(comm), ip=ip, laddr=laddr, lport=lport,
                       raddr=raddr, rport=rport, tx_bytes=tx, rx_bytes=rx, ms=round(ms, 3))
            jsonl.write(rec, self.out)
            return
        from tinytrace.output.escape import cstring
        c = td.csv_cell(cstring(comm)) if o.csv else cstring(comm)
        self.out.write(self.times.cells(ts) + self.row % (
            pid, c, str(ip) if o.wide or o.csv else "", laddr, lport, raddr, rport,
            tx // 1024, rx // 1024, ms) + "\n")
        self.out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    check_btf()
    script = Script(script_text(opts), tool="tcplife")
    return toolkit.snoop(opts, script, Printer(opts, sys.stdout),
                         "Tracing TCP sessions ... Hit Ctrl-C to end")
