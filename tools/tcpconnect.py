"""tcpconnect: trace active TCP connections (connect()), one line per connection attempt,
like BCC's tcpconnect.

BCC times ``tcp_v4_connect()``/``tcp_v6_connect()`` with kprobes.  This version needs none:
``sock:inet_sock_set_state`` reports a socket's CLOSE -> SYN_SENT transition from inside
``connect()``, in the connecting thread, so ``pid``, ``uid`` and ``comm`` are the caller's,
and the tracepoint's fields carry the family, both addresses and the destination port.  Every
attempt is traced, whether it then succeeds, is refused or times out (as in BCC).

The local port (``-L``) is not chosen yet at SYN_SENT.  It is taken from whichever comes
first: the exit of the ``connect()`` syscall (``syscalls:sys_exit_connect``), reading
``sock.__sk_common.skc_num`` through the kernel's BTF (where there is one); or the socket's next
state transition (SYN_SENT -> ESTABLISHED or CLOSE), whose tracepoint carries the port.
The line is printed once the port is known.

``-c`` counts attempts per source address, destination address and port in the kernel
(``count()`` maps), printed at Ctrl-C.  No ``-d`` (DNS correlation needs a kprobe on
``udp_recvmsg`` and a DNS parser).  On a kernel with kprobes the BCC probe points would
add nothing: the state tracepoint already fires in the caller's context.

``--cgroupmap MAPPATH`` / ``--mntnsmap MAPPATH`` (BCC's container filters, one or the
other) keep only tasks whose cgroup v2 id, or mount namespace id (read through the
kernel's BTF), is a key of the hash map pinned at MAPPATH by whoever manages the
containers (``toolkit.container_filter``): one more test in the SYN_SENT probe's predicate.
"""

SUMMARY = "active TCP connections (connect()), one line per attempt"
PROBES = ("tracepoint:sock:inet_sock_set_state",
          "tracepoint:syscalls:sys_exit_connect")
NEEDS = ()

DESCRIPTION = """\
Trace TCP connects

Probes: tracepoint sock:inet_sock_set_state, whose CLOSE -> SYN_SENT transition runs
inside connect() in the caller's thread (BCC uses kprobes on tcp_v4_connect and
tcp_v6_connect; the lines are the same).  -L adds syscalls:sys_exit_connect, which reads
the local port from the socket through the kernel's BTF.
"""

EXAMPLES = """\
    tinytrace tcpconnect           # trace all TCP connect()s
    tinytrace tcpconnect -t        # include timestamps
    tinytrace tcpconnect -p 181    # only trace PID 181
    tinytrace tcpconnect -P 80     # only trace port 80
    tinytrace tcpconnect -P 80,81  # only trace port 80 and 81
    tinytrace tcpconnect -4        # only trace IPv4 family
    tinytrace tcpconnect -6        # only trace IPv6 family
    tinytrace tcpconnect -U        # include UID
    tinytrace tcpconnect -u 1000   # only trace UID 1000
    tinytrace tcpconnect -c        # count connects per src ip and dest ip/port
    tinytrace tcpconnect -L        # include LPORT while printing outputs
    tinytrace tcpconnect --json    # one JSON object per connect
"""

# what each printf of the script reports (they are numbered in source order)
EV_CONNECT4, EV_CONNECT6, EV_LPORT = "connect4", "connect6", "lport"


def parse_args(argv):
    from tinytrace import toolkit, tooldata
    p = toolkit.ArgumentParser("tcpconnect", DESCRIPTION, EXAMPLES)
    p.add_argument("-t", "--timestamp", action="store_true",
                   help="include timestamp on output")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    p.add_argument("-P", "--port", type=toolkit.port_list,
                   help="comma-separated list of destination ports to trace.")
    tooldata.add_family_options(p)
    p.add_argument("-L", "--lport", action="store_true", help="include LPORT on output")
    p.add_argument("-U", "--print-uid", action="store_true", help="include UID on output")
    p.add_argument("-u", "--uid", type=toolkit.user_id, help="trace this UID only")
    p.add_argument("-c", "--count", action="store_true",
                   help="count connects per src ip and dest ip/port")
    toolkit.add_container_filters(p)
    toolkit.add_json(p)
    return p.parse_args(argv)


# -- the script ---------------------------------------------------------------------------

CONNECT = r"""
tracepoint:sock:inet_sock_set_state
/args->protocol == 6 && args->oldstate == %(close)d && args->newstate == %(syn_sent)d%(filter)s/
{
%(body)s}
"""

# one line per attempt, once per family (tooldata.by_family)
TRACE = ('printf("%d %d %d %s %s %s %d %x\\n", nsecs, pid, uid, comm,\n'
         '       ntop({saddr}), ntop({daddr}), args->dport, args->skaddr);')

# -L: remember the socket until its port is known (see the module docstring).
LPORT_MARK = r"""	@pending[args->skaddr] = 1;
%(by_tid)s"""

LPORT_EXIT = r"""
tracepoint:syscalls:sys_exit_connect
/@connecting[tid]/
{
	$sk = @connecting[tid];
	delete(@connecting[tid]);
	if (has_key(@pending, $sk)) {
		delete(@pending[$sk]);
		printf("%x %d\n", $sk, ((struct sock *)$sk)->__sk_common.skc_num);
	}
}
"""

LPORT_STATE = r"""
tracepoint:sock:inet_sock_set_state
/args->protocol == 6 && args->oldstate == %(syn_sent)d && has_key(@pending, args->skaddr)/
{
	delete(@pending[args->skaddr]);
	printf("%%x %%d\n", args->skaddr, args->sport);
}
"""

COUNT = "@ipv{ip}_count[ntop({saddr}), ntop({daddr}), args->dport] = count();"


def script_text(opts, btf=True, container=""):
    """The script for these options, and what its printfs report (in source order);
    ``btf`` (the kernel has BTF) enables the connect()-exit source of the local port with
    -L; ``container`` is the --cgroupmap/--mntnsmap test (``toolkit.container_filter``)."""
    from tinytrace import toolkit, tooldata as td
    conds = []
    if opts.pid:
        conds.append("pid == %d" % opts.pid)
    if opts.uid is not None:
        conds.append("uid == %d" % opts.uid)
    conds.append(td.family_test(opts))
    if opts.port:
        conds.append(toolkit.any_of("args->dport", opts.port))
    conds.append(container)
    consts = {"close": td.TCP_CLOSE, "syn_sent": td.TCP_SYN_SENT,
              "filter": "".join(" && " + c for c in conds if c)}
    if opts.count:
        return CONNECT % dict(consts, body=td.by_family(COUNT)), []
    body = td.by_family(TRACE)
    if opts.lport:
        body += LPORT_MARK % {"by_tid": "\t@connecting[tid] = args->skaddr;\n" if btf else ""}
    text = CONNECT % dict(consts, body=body)
    events = [EV_CONNECT4, EV_CONNECT6]
    if opts.lport:
        if btf:
            text += LPORT_EXIT
            events.append(EV_LPORT)
        text += LPORT_STATE % consts
        events.append(EV_LPORT)
    return text, events


# -- output -------------------------------------------------------------------------------

class Printer(object):
    """Turns the script's printf values into BCC's columns, or JSON lines."""

    def __init__(self, opts, events, out):
        from tinytrace.tooldata import TimeColumns
        self.opts = opts
        self.events = events
        self.out = out
        self.times = TimeColumns(opts)
        self.pending = {}       # -L: skaddr -> event waiting for its local port
        self.early = {}         # -L: skaddr -> port that came before its event

    def header(self):
        o = self.opts
        if o.json:
            return
        line = self.times.header()
        if o.print_uid:
            line += "%-6s" % "UID"
        if o.lport:
            line += "%-6s %-12s %-2s %-16s %-6s %-16s %-6s" % (
                "PID", "COMM", "IP", "SADDR", "LPORT", "DADDR", "DPORT")
        else:
            line += "%-6s %-12s %-2s %-16s %-16s %-6s" % (
                "PID", "COMM", "IP", "SADDR", "DADDR", "DPORT")
        self.out.write(line + "\n")
        self.out.flush()

    def event(self, values, index):
        kind = self.events[index]
        if kind in (EV_CONNECT4, EV_CONNECT6):
            ts, pid, uid, comm, saddr, daddr, dport, sk = values
            ev = {"ts": ts, "pid": pid, "uid": uid, "comm": comm,
                  "ip": 4 if kind == EV_CONNECT4 else 6, "saddr": saddr, "daddr": daddr,
                  "dport": dport}
            if not self.opts.lport:
                self.emit(ev)
            elif sk in self.early:
                ev["lport"] = self.early.pop(sk)
                self.emit(ev)
            else:
                self.pending[sk] = ev
        else:
            sk, port = values
            ev = self.pending.pop(sk, None)
            if ev is None:
                self.early[sk] = port      # per-CPU buffers may deliver it first
                return
            ev["lport"] = port
            self.emit(ev)

    def finish(self):
        """At the end: attempts whose port never became known (no connect() exit and
        no answer yet) are printed with the port they have so far: 0."""
        for sk in list(self.pending):
            ev = self.pending.pop(sk)
            ev["lport"] = 0
            self.emit(ev)

    def emit(self, ev):
        o = self.opts
        if o.json:
            from tinytrace.output import jsonl
            rec = self.times.record(ev["ts"])
            rec.update(pid=ev["pid"], uid=ev["uid"], comm=jsonl.text(ev["comm"]), ip=ev["ip"],
                       saddr=ev["saddr"], daddr=ev["daddr"], dport=ev["dport"])
            if o.lport:
                rec["lport"] = ev["lport"]
            jsonl.write(rec, self.out)
            return
        from tinytrace.output.escape import cstring
        line = self.times.cells(ev["ts"])
        if o.print_uid:
            line += "%-6d" % ev["uid"]
        comm = cstring(ev["comm"])
        if o.lport:
            line += "%-6d %-12.12s %-2d %-16s %-6d %-16s %-6d" % (
                ev["pid"], comm, ev["ip"], ev["saddr"], ev["lport"], ev["daddr"], ev["dport"])
        else:
            line += "%-6d %-12.12s %-2d %-16s %-16s %-6d" % (
                ev["pid"], comm, ev["ip"], ev["saddr"], ev["daddr"], ev["dport"])
        self.out.write(line + "\n")
        self.out.flush()


def count_rows(script):
    """The -c counts: [(ip, saddr, daddr, dport, connects)], most connects first, IPv4
    before IPv6 (as BCC prints them)."""
    rows = []
    for ip, name in ((4, "@ipv4_count"), (6, "@ipv6_count")):
        part = [(ip, k[0], k[1], k[2], v) for k, v in script.read(name).items()]
        part.sort(key=lambda r: r[4], reverse=True)
        rows.extend(part)
    return rows


def report_counts(opts, rows, out):
    if opts.json:
        from tinytrace import toolkit
        from tinytrace.output import jsonl
        jsonl.write(jsonl.interval_record(time=toolkit.hhmmss(), flows=[
            {"ip": ip, "laddr": s, "raddr": d, "rport": p, "connects": n}
            for ip, s, d, p, n in rows]), out)
        return
    out.write("\n%-25s %-25s %-20s %-10s\n" % ("LADDR", "RADDR", "RPORT", "CONNECTS"))
    for ip, s, d, p, n in rows:
        out.write("%-25s %-25s %-20s %-10d\n" % (s, d, p, n))
    out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    container, maps = toolkit.container_filter(opts)
    text, events = script_text(opts, btf=opts.lport and toolkit.has_btf(), container=container)
    script = Script(text, tool="tcpconnect", maps=maps)
    if opts.count:
        with toolkit.Stopper() as stopper, script.start():
            toolkit.announce(opts, "Tracing connect ... Hit Ctrl-C to end")
            while stopper.sleep(3600):
                pass
            report_counts(opts, count_rows(script), sys.stdout)
            toolkit.report_skipped()
        return 0
    return toolkit.snoop(opts, script, Printer(opts, events, sys.stdout),
                         "Tracing connect ... Hit Ctrl-C to end", always=True)
