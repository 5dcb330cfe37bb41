"""tcpaccept: trace passive TCP connections (accept()), one line per accepted connection,
with the accepting process, like BCC's tcpaccept.

BCC uses a kretprobe on ``inet_csk_accept()``.  Without kprobes, two tracepoints are
paired, because neither alone has both halves:

- ``sock:inet_sock_set_state``: a new connection's socket is born as a clone of its
  listener (-> SYN_RECV).  The tracepoint gives its address (``skaddr``) and its addresses
  and ports, but it runs in softirq context or in whichever task sent the packet (on
  loopback: the *client*), so its PID and COMM are not the acceptor's.  The tuple is kept in
  a map by socket address; a socket that closes without being accepted is dropped from it.
- ``syscalls:sys_exit_accept`` / ``sys_exit_accept4``: run in the accepting thread.  The
  returned fd leads to the socket: ``current->files->fdt->fd[fd]->private_data`` (a
  ``struct socket``) ``->sk``, at offsets from the kernel's BTF.  If that socket's tuple
  is in the map, the line is printed with this thread's PID and COMM.

So accepts by io_uring (no accept syscall) are missed, and so are connections whose
handshake completed before tracing began.  With kprobes, a kretprobe on
``inet_csk_accept`` (BCC's probe) would see both; this tool does not use it.
"""

SUMMARY = "passive TCP connections (accept()), with the accepting process"
PROBES = ("tracepoint:sock:inet_sock_set_state", "tracepoint:syscalls:sys_exit_accept",
          "tracepoint:syscalls:sys_exit_accept4")
NEEDS = ("btf",)

DESCRIPTION = """\
Trace TCP accepts

Probes: tracepoint sock:inet_sock_set_state keeps each new connection's ends by socket (it
runs in softirq or in the peer's task, not in the acceptor); syscalls:sys_exit_accept and
sys_exit_accept4 follow the returned fd to that socket (offsets from the kernel's BTF) and
print it with the accepting process.  Not seen: accepts made through io_uring, and
connections whose handshake completed before tracing began (BCC's kretprobe on
inet_csk_accept, on a kernel with kprobes, sees those too).
"""

EXAMPLES = """\
    tinytrace tcpaccept           # trace all TCP accept()s
    tinytrace tcpaccept -t        # include timestamps
    tinytrace tcpaccept -T        # include time (HH:MM:SS)
    tinytrace tcpaccept -P 80,81  # only trace port 80 and 81
    tinytrace tcpaccept -p 181    # only trace PID 181
    tinytrace tcpaccept -4        # trace IPv4 family
    tinytrace tcpaccept -6        # trace IPv6 family
    tinytrace tcpaccept --json    # one JSON object per accept
"""

AF_INET, AF_INET6 = 2, 10
TCP_SYN_RECV, TCP_CLOSE = 3, 7


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("tcpaccept", DESCRIPTION, EXAMPLES)
    p.add_argument("-T", "--time", action="store_true",
                   help="include time column on output (HH:MM:SS)")
    p.add_argument("-t", "--timestamp", action="store_true",
                   help="include timestamp on output")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    p.add_argument("-P", "--port", type=_ports,
                   help="comma-separated list of local ports to trace")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-4", "--ipv4", action="store_true", help="trace IPv4 family only")
    g.add_argument("-6", "--ipv6", action="store_true", help="trace IPv6 family only")
    toolkit.add_json(p)
    return p.parse_args(argv)


def _ports(text):
    """An argparse type: "80" or "80,81" -> [80, 81] (each 1..65535)."""
    import argparse
    out = []
    for part in text.split(","):
        try:
            port = int(part.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError("invalid port list: %r" % text)
        if not 0 < port < 65536:
            raise argparse.ArgumentTypeError("port out of range (1-65535): %d" % port)
        out.append(port)
    return out


# -- the script ---------------------------------------------------------------------------

SCRIPT = r"""
tracepoint:sock:inet_sock_set_state
/args->protocol == 6/
{
	if (args->newstate == %(syn_recv)d%(filter)s) {
		// a connection's socket, cloned from its listener: remember its ends
		// (arrays first: the language packs tuples without padding)
		@conn[args->skaddr] = (args->saddr, args->daddr, args->saddr_v6, args->daddr_v6,
		                       args->family, args->sport, args->dport);
	} else if (args->newstate == %(close)d) {
		delete(@conn[args->skaddr]);
	}
}

%(accepts)s
/args->ret >= 0%(pid)s/
{
	// the accepted fd -> struct file -> struct socket -> struct sock
	$files = *(uint64 *)((uint64)curtask + %(task_files)d);
	$fdt = *(uint64 *)($files + %(files_fdt)d);
	$fds = *(uint64 *)($fdt + %(fdt_fd)d);
	$file = *(uint64 *)($fds + args->ret * 8);
	$socket = *(uint64 *)($file + %(file_private)d);
	$sk = *(uint64 *)($socket + %(socket_sk)d);
	if (has_key(@conn, $sk)) {
		$c = @conn[$sk];
		if ($c.4 == %(af_inet)d) {
			printf("%%d %%d %%s %%s %%d %%s %%d\n", nsecs, pid, comm,
			       ntop($c.1), $c.6, ntop($c.0), $c.5);
		} else {
			printf("%%d %%d %%s %%s %%d %%s %%d\n", nsecs, pid, comm,
			       ntop($c.3), $c.6, ntop($c.2), $c.5);
		}
		delete(@conn[$sk]);
	}
}
"""

# (struct, member path) for each offset the walk from the task to the socket needs
WALK = (("task_files", "task_struct", "files"), ("files_fdt", "files_struct", "fdt"),
        ("fdt_fd", "fdtable", "fd"), ("file_private", "file", "private_data"),
        ("socket_sk", "socket", "sk"))


def walk_offsets():
    """The offsets of the fd -> socket walk, from the kernel's BTF."""
    from tinytrace.errors import KernelError
    from tinytrace.kernel import btf
    if not btf.available():
        raise KernelError("tcpaccept needs the kernel's BTF (%s) to find the socket an "
                          "accept() returned; this kernel has none (CONFIG_DEBUG_INFO_BTF)"
                          % btf.VMLINUX)
    b = btf.vmlinux()
    out = {}
    for key, struct, path in WALK:
        m = b.member(struct, path)
        if m is None:
            raise KernelError("tcpaccept: this kernel's BTF has no %s.%s" % (struct, path))
        out[key] = m.offset
    return out


def script_text(opts, offsets, accept_calls=("accept", "accept4")):
    conds = []
    if opts.ipv4:
        conds.append("args->family == %d" % AF_INET)
    elif opts.ipv6:
        conds.append("args->family == %d" % AF_INET6)
    if opts.port:
        conds.append("(" + " || ".join("args->sport == %d" % p for p in opts.port) + ")")
    consts = dict(offsets)
    consts.update(
        syn_recv=TCP_SYN_RECV, close=TCP_CLOSE, af_inet=AF_INET,
        filter="".join(" && " + c for c in conds),
        pid=" && pid == %d" % opts.pid if opts.pid else "",
        accepts=",\n".join("tracepoint:syscalls:sys_exit_%s" % c for c in accept_calls))
    return SCRIPT % consts


def accept_syscalls():
    """The accept syscalls this kernel has tracepoints for (accept4 everywhere; plain
    accept is missing on a few architectures)."""
    from tinytrace.kernel import tracefs
    calls = tuple(c for c in ("accept", "accept4")
                  if tracefs.exists("syscalls", "sys_exit_" + c))
    if not calls:
        from tinytrace.errors import KernelError
        raise KernelError("tcpaccept needs the syscalls:sys_exit_accept4 tracepoint "
                          "(CONFIG_FTRACE_SYSCALLS), which this kernel lacks")
    return calls


# -- output -------------------------------------------------------------------------------

class Printer(object):
    def __init__(self, opts, out):
        self.opts = opts
        self.out = out
        self.start_ns = None

    def header(self):
        o = self.opts
        if o.json:
            return
        line = ""
        if o.time:
            line += "%-9s" % "TIME"
        if o.timestamp:
            line += "%-9s" % "TIME(s)"
        line += "%-7s %-12s %-2s %-16s %-5s %-16s %-5s" % (
            "PID", "COMM", "IP", "RADDR", "RPORT", "LADDR", "LPORT")
        self.out.write(line + "\n")
        self.out.flush()

    def event(self, values, index):
        import time
        ts, pid, comm, raddr, rport, laddr, lport = values
        ip = 4 if index == 0 else 6
        o = self.opts
        if self.start_ns is None:
            self.start_ns = ts
        rel = (ts - self.start_ns) / 1e9
        if o.json:
            from tinytrace.output import jsonl
            rec = {}
            if o.time:
                rec["time"] = time.strftime("%H:%M:%S")
            if o.timestamp:
                rec["ts"] = round(rel, 6)
            rec.update(pid=pid, comm=jsonl.text(comm), ip=ip, raddr=raddr, rport=rport,
                       laddr=laddr, lport=lport)
            jsonl.write(rec, self.out)
            return
        from tinytrace.output.escape import cstring
        line = ""
        if o.time:
            line += "%-9s" % time.strftime("%H:%M:%S")
        if o.timestamp:
            line += "%-9.3f" % rel
        line += "%-7d %-12.12s %-2d %-16s %-5d %-16s %-5d" % (
            pid, cstring(comm), ip, raddr, rport, laddr, lport)
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
    text = script_text(opts, walk_offsets(), accept_syscalls())
    script = Script(text, tool="tcpaccept", out=_Discard())
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
            toolkit.announce(opts, "Tracing TCP accepts ... Hit Ctrl-C to end")
        printer.header()
        script.follow(stopper, until=report_lost)
        report_lost()
    return 0
