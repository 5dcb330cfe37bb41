"""tcpstates: trace TCP state changes, with the time spent in the old state, like BCC's
tcpstates.

The probe is ``sock:inet_sock_set_state`` (protocol TCP), which carries the socket's
address, old and new states, family, addresses and ports.  The time of each socket's last
transition is kept in a hash by socket address, so each line shows how long the socket was
in OLDSTATE (0 for the first transition seen); the entry is dropped when the socket reaches
CLOSE.

C-PID and C-COMM are the *context* of the transition: the process only when the change
happened in a system call (connect(), listen(), close(), ...).  Many transitions run in
softirq context or, on loopback, in the peer's task.  A connecting socket's first
transitions (CLOSE -> SYN_SENT) show local port 0: the port is chosen right after.

Options are BCC's (-T -t -w -s -L -D) plus -4/-6 from libbpf-tools' tcpstates; BCC's -Y
(systemd journal) is left out.  The kprobe fallback BCC has for pre-4.16 kernels is not
needed where this tracepoint exists.
"""

SUMMARY = "TCP state changes, with the time spent in each state"
PROBES = ("tracepoint:sock:inet_sock_set_state",)
NEEDS = ()

DESCRIPTION = """\
Trace TCP session state changes and durations

Probe: tracepoint sock:inet_sock_set_state.  C-PID and C-COMM are the context the change
ran in: the process for changes made by its system calls (connect, listen, close...),
otherwise softirq or, on loopback, the peer's task.
"""

EXAMPLES = """\
    tinytrace tcpstates           # trace all TCP state changes
    tinytrace tcpstates -t        # include timestamp column
    tinytrace tcpstates -T        # include time column (HH:MM:SS)
    tinytrace tcpstates -w        # wider columns (fit IPv6)
    tinytrace tcpstates -stT      # csv output, with times & timestamps
    tinytrace tcpstates -L 80     # only trace local port 80
    tinytrace tcpstates -L 80,81  # only trace local ports 80 and 81
    tinytrace tcpstates -D 80     # only trace remote port 80
    tinytrace tcpstates -6        # only trace IPv6
    tinytrace tcpstates --json    # one JSON object per state change
"""

AF_INET, AF_INET6 = 2, 10
TCP_CLOSE = 7


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("tcpstates", DESCRIPTION,
                               EXAMPLES)
    p.add_argument("-T", "--time", action="store_true",
                   help="include time column on output (HH:MM:SS)")
    p.add_argument("-t", "--timestamp", action="store_true",
                   help="include timestamp on output (seconds)")
    p.add_argument("-w", "--wide", action="store_true",
                   help="wide column output (fits IPv6 addresses)")
    p.add_argument("-s", "--csv", action="store_true", help="comma separated values output")
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
	if (%(ports)s) {
		$now = nsecs;
		$last = @last[args->skaddr];
		$span = 0;
		if ($last != 0) {
			$span = $now - $last;
		}
		if (args->family == %(af_inet)d) {
			printf("%%d %%x %%d %%s %%s %%d %%s %%d %%d %%d %%d\n", $now, args->skaddr, pid,
			       comm, ntop(args->saddr), args->sport, ntop(args->daddr), args->dport,
			       args->oldstate, args->newstate, $span);
		} else {
			printf("%%d %%x %%d %%s %%s %%d %%s %%d %%d %%d %%d\n", $now, args->skaddr, pid,
			       comm, ntop(args->saddr_v6), args->sport, ntop(args->daddr_v6),
			       args->dport, args->oldstate, args->newstate, $span);
		}
		if (args->newstate == %(close)d) {
			delete(@last[args->skaddr]);
		} else {
			@last[args->skaddr] = $now;
		}
	} else {
		delete(@last[args->skaddr]);
	}
}
"""


def _any(field, ports):
    return "(" + " || ".join("args->%s == %d" % (field, p) for p in ports) + ")"


def script_text(opts):
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
    return SCRIPT % {"family": family, "ports": " && ".join(ports) or "1",
                     "af_inet": AF_INET, "close": TCP_CLOSE}


# -- output -------------------------------------------------------------------------------

HEADER = "%-16s %-5s %-10.10s %s%-15s %-5s %-15s %-5s %-11s -> %-11s %s"
ROW = "%-16x %-5d %-10.10s %s%-15s %-5d %-15s %-5d %-11s -> %-11s %.3f"
WIDE_HEADER = "%-16s %-5s %-16.16s %-2s %-26s %-5s %-26s %-5s %-11s -> %-11s %s"
WIDE_ROW = "%-16x %-5d %-16.16s %-2s %-26s %-5s %-26s %-5d %-11s -> %-11s %.3f"
CSV_HEADER = "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s"
CSV_ROW = "%x,%d,%s,%s,%s,%s,%s,%d,%s,%s,%.3f"


def _state_name(n):
    from tinytrace.kernel import abi
    return abi.tcp_state_name(n) or str(n)


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
        line += self.head % ("SKADDR", "C-PID", "C-COMM", "IP" if o.wide or o.csv else "",
                             "LADDR", "LPORT", "RADDR", "RPORT", "OLDSTATE", "NEWSTATE", "MS")
        self.out.write(line + "\n")
        self.out.flush()

    def event(self, values, index):
        import time
        ts, skaddr, pid, comm, laddr, lport, raddr, rport, old, new, span = values
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
            rec.update(skaddr="%x" % skaddr, pid=pid, comm=jsonl.text(comm), ip=ip,
                       laddr=laddr, lport=lport, raddr=raddr, rport=rport,
                       oldstate=_state_name(old), newstate=_state_name(new),
                       ms=round(ms, 3))
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
        line += self.row % (skaddr, pid, c, str(ip) if o.wide or o.csv else "", laddr, lport,
                            raddr, rport, _state_name(old), _state_name(new), ms)
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
    script = Script(script_text(opts), tool="tcpstates", out=_Discard())
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
            toolkit.announce(opts, "Tracing TCP state changes ... Hit Ctrl-C to end")
        printer.header()
        script.follow(stopper, until=report_lost)
        report_lost()
    return 0
