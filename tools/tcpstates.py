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

Options are BCC's (-T -t -w -s -L -D -Y) plus -4/-6 from libbpf-tools' tcpstates.  The
kprobe fallback BCC has for pre-4.16 kernels is not needed where this tracepoint exists.

``-Y`` also logs each change to the systemd journal, with BCC's fields (SYSLOG_IDENTIFIER
tcpstates, PRIORITY 5, OBJECT_PID, OBJECT_TCP_*, OBJECT_IPV4_*/OBJECT_IPV6_* addresses,
the span in microseconds, and a MESSAGE "comm laddr lport → raddr rport OLD → NEW").  BCC
uses the python-systemd module; here each entry is one datagram of journald's native
protocol ("KEY=value" lines; a value holding a newline in its length-prefixed form) sent
to /run/systemd/journal/socket -- no dependency.  The socket must exist when the tool
starts (else one line, exit 2); ``TINYTRACE_JOURNAL_SOCKET`` names another socket (tests
bind their own).  A send that fails (journald gone, its queue full) is reported once on
stderr; the tool goes on.  The command name is escaped in MESSAGE, and OBJECT_COMM is left
to journald when this process runs as root (it fills in OBJECT_* from OBJECT_PID), as in BCC.
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
    tinytrace tcpstates -Y        # log events to the systemd journal too
    tinytrace tcpstates --json    # one JSON object per state change
"""


def parse_args(argv):
    from tinytrace import toolkit, tooldata
    p = toolkit.ArgumentParser("tcpstates", DESCRIPTION, EXAMPLES)
    tooldata.add_layout_options(p)
    tooldata.add_session_filters(p)
    p.add_argument("-Y", "--journal", action="store_true",
                   help="log session state changes to the systemd journal")
    toolkit.add_json(p)
    opts = p.parse_args(argv)
    if opts.journal:
        path = journal_socket()
        if not _is_socket(path):
            p.error("argument -Y/--journal: no systemd journal socket at %s (is "
                    "systemd-journald running?)" % path)
    return opts


# -- the systemd journal (-Y) ---------------------------------------------------------------

JOURNAL_SOCKET = "/run/systemd/journal/socket"


def journal_socket():
    """The journal's socket: TINYTRACE_JOURNAL_SOCKET, else journald's own."""
    import os
    return os.environ.get("TINYTRACE_JOURNAL_SOCKET") or JOURNAL_SOCKET


def _is_socket(path):
    import os
    import stat
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def journal_datagram(fields):
    """One entry in journald's native protocol: ``KEY=value\\n`` per field, or, for a
    value holding a newline, ``KEY\\n`` + its length (u64 little-endian) + the value +
    ``\\n``."""
    import struct
    out = []
    for key, value in fields:
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
        if b"\n" in raw:
            out.append(key.encode() + b"\n" + struct.pack("<Q", len(raw)) + raw + b"\n")
        else:
            out.append(key.encode() + b"=" + raw + b"\n")
    return b"".join(out)


def journal_fields(ip, pid, comm, laddr, lport, raddr, rport, old, new, span_us, root):
    """BCC's journal fields for one state change, in order (MESSAGE last)."""
    import time
    from tinytrace.output.escape import escape
    fam = "IPV6" if ip == 6 else "IPV4"
    name = escape(comm)
    fields = [("SYSLOG_IDENTIFIER", "tcpstates"), ("PRIORITY", 5),
              ("_SOURCE_REALTIME_TIMESTAMP", int(time.time() * 1000000)),
              ("OBJECT_PID", pid)]
    if not root:
        fields.append(("OBJECT_COMM", name))
    old_name, new_name = _state_name(old), _state_name(new)
    fields += [("OBJECT_%s_SOURCE_ADDRESS" % fam, laddr), ("OBJECT_TCP_SOURCE_PORT", lport),
               ("OBJECT_%s_DESTINATION_ADDRESS" % fam, raddr),
               ("OBJECT_TCP_DESTINATION_PORT", rport),
               ("OBJECT_TCP_OLD_STATE", old_name), ("OBJECT_TCP_NEW_STATE", new_name),
               ("OBJECT_TCP_SPAN_TIME", span_us),
               ("MESSAGE", u"%s %s %d \u2192 %s %d %s \u2192 %s" % (
                   name, laddr, lport, raddr, rport, old_name, new_name))]
    return fields


class Journal(object):
    """Sends entries to the journal's socket; the first failure is reported on stderr."""

    def __init__(self, path):
        import os
        import socket
        self.path = path
        self.root = os.geteuid() == 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.failed = False

    def send(self, fields):
        try:
            self.sock.sendto(journal_datagram(fields), self.path)
        except OSError as e:
            if not self.failed:
                import sys
                self.failed = True
                sys.stderr.write("tcpstates: cannot log to the journal at %s: %s\n"
                                 % (self.path, e.strerror or e))
                sys.stderr.flush()

    def close(self):
        self.sock.close()


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
%(emit)s		if (args->newstate == %(close)d) {
			delete(@last[args->skaddr]);
		} else {
			@last[args->skaddr] = $now;
		}
	} else {
		delete(@last[args->skaddr]);
	}
}
"""


# one line per change, once per family (tooldata.by_family): printf 0 is IPv4, 1 IPv6
EMIT = ('printf("%d %x %d %s %s %d %s %d %d %d %d\\n", $now, args->skaddr, pid,\n'
        '       comm, ntop({saddr}), args->sport, ntop({daddr}), args->dport,\n'
        '       args->oldstate, args->newstate, $span);')


def script_text(opts):
    from tinytrace import tooldata as td
    family = td.family_test(opts)
    return SCRIPT % {"family": " && " + family if family else "",
                     "ports": td.port_tests(opts), "close": td.TCP_CLOSE,
                     "emit": td.by_family(EMIT, indent="\t\t")}


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
    def __init__(self, opts, out, journal=None):
        from tinytrace.tooldata import TimeColumns, pick_layout
        self.opts = opts
        self.out = out
        self.journal = journal
        self.times = TimeColumns(opts, "spaced", opts.csv)
        self.head, self.row = pick_layout(opts, (HEADER, ROW), (WIDE_HEADER, WIDE_ROW),
                                          (CSV_HEADER, CSV_ROW))

    def header(self):
        o = self.opts
        if o.json:
            return
        self.out.write(self.times.header() + self.head % (
            "SKADDR", "C-PID", "C-COMM", "IP" if o.wide or o.csv else "", "LADDR", "LPORT",
            "RADDR", "RPORT", "OLDSTATE", "NEWSTATE", "MS") + "\n")
        self.out.flush()

    def event(self, values, index):
        from tinytrace import tooldata as td
        ts, skaddr, pid, comm, laddr, lport, raddr, rport, old, new, span = values
        o = self.opts
        ip = td.ip_of(index)
        ms = span / 1e6
        if self.journal is not None:
            self.journal.send(journal_fields(ip, pid, comm, laddr, lport, raddr, rport, old,
                                             new, span // 1000, self.journal.root))
        if o.json:
            from tinytrace.output import jsonl
            rec = self.times.record(ts)
            rec.update(skaddr="%x" % skaddr, pid=pid, comm=jsonl.text(comm), ip=ip,
                       laddr=laddr, lport=lport, raddr=raddr, rport=rport,
                       oldstate=_state_name(old), newstate=_state_name(new),
                       ms=round(ms, 3))
            jsonl.write(rec, self.out)
            return
        from tinytrace.output.escape import cstring
        c = td.csv_cell(cstring(comm)) if o.csv else cstring(comm)
        self.out.write(self.times.cells(ts) + self.row % (
            skaddr, pid, c, str(ip) if o.wide or o.csv else "", laddr, lport, raddr, rport,
            _state_name(old), _state_name(new), ms) + "\n")
        self.out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    script = Script(script_text(opts), tool="tcpstates")
    journal = Journal(journal_socket()) if opts.journal else None
    try:
        return toolkit.snoop(opts, script, Printer(opts, sys.stdout, journal),
                             "Tracing TCP state changes ... Hit Ctrl-C to end")
    finally:
        if journal is not None:
            journal.close()
