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
  returned fd leads to the socket: ``curtask->files->fdt->fd[fd]->private_data`` (a
  ``struct socket``) ``->sk``, read through the kernel's BTF.  If that socket's tuple is
  in the map, the line is printed with this thread's PID and COMM.

So accepts by io_uring (no accept syscall) are missed, and so are connections whose
handshake completed before tracing began.  With kprobes, a kretprobe on
``inet_csk_accept`` (BCC's probe) would see both; this tool does not use it.

``--cgroupmap MAPPATH`` / ``--mntnsmap MAPPATH`` (BCC's container filters, one or the
other) keep only tasks whose cgroup v2 id, or mount namespace id (read through the
kernel's BTF), is a key of the hash map pinned at MAPPATH by whoever manages the
containers (``toolkit.container_filter``):
the test is made at the accept() exit, in the accepting task.
"""

SUMMARY = "passive TCP connections (accept()), with the accepting process"
PROBES = ("tracepoint:sock:inet_sock_set_state", "tracepoint:syscalls:sys_exit_accept",
          "tracepoint:syscalls:sys_exit_accept4")
NEEDS = ("btf",)

DESCRIPTION = """\
Trace TCP accepts

Probes: tracepoint sock:inet_sock_set_state keeps each new connection's ends by socket (it
runs in softirq or in the peer's task, not in the acceptor); syscalls:sys_exit_accept and
sys_exit_accept4 follow the returned fd to that socket (through the kernel's BTF) and print
it with the accepting process.  Not seen: accepts made through io_uring, and
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


def parse_args(argv):
    from tinytrace import toolkit, tooldata
    p = toolkit.ArgumentParser("tcpaccept", DESCRIPTION, EXAMPLES)
    p.add_argument("-T", "--time", action="store_true",
                   help="include time column on output (HH:MM:SS)")
    p.add_argument("-t", "--timestamp", action="store_true",
                   help="include timestamp on output")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    p.add_argument("-P", "--port", type=toolkit.port_list,
                   help="comma-separated list of local ports to trace")
    tooldata.add_family_options(p)
    toolkit.add_container_filters(p)
    toolkit.add_json(p)
    return p.parse_args(argv)


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
	$file = curtask->files->fdt->fd[args->ret];
	$sk = (uint64)((struct socket *)$file->private_data)->sk;
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


def check_btf():
    """The fd -> socket walk reads kernel structs: it needs the kernel's BTF."""
    from tinytrace import toolkit
    if not toolkit.has_btf():
        from tinytrace.errors import KernelError
        from tinytrace.kernel import btf
        raise KernelError("tcpaccept needs the kernel's BTF (%s) to find the socket an "
                          "accept() returned; this kernel has none (CONFIG_DEBUG_INFO_BTF)"
                          % btf.VMLINUX)


def script_text(opts, accept_calls=("accept", "accept4"), container=""):
    """``container``: the --cgroupmap/--mntnsmap test (``toolkit.container_filter``), made
    in the accepting task."""
    from tinytrace import toolkit, tooldata as td
    conds = [td.family_test(opts)]
    if opts.port:
        conds.append(toolkit.any_of("args->sport", opts.port))
    return SCRIPT % dict(
        syn_recv=td.TCP_SYN_RECV, close=td.TCP_CLOSE, af_inet=td.AF_INET,
        filter="".join(" && " + c for c in conds if c),
        pid=(" && pid == %d" % opts.pid if opts.pid else "") +
            (" && " + container if container else ""),
        accepts=",\n".join("tracepoint:syscalls:sys_exit_%s" % c for c in accept_calls))


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
        from tinytrace.tooldata import TimeColumns
        self.opts = opts
        self.out = out
        self.times = TimeColumns(opts)

    def header(self):
        if self.opts.json:
            return
        self.out.write(self.times.header() + "%-7s %-12s %-2s %-16s %-5s %-16s %-5s\n" % (
            "PID", "COMM", "IP", "RADDR", "RPORT", "LADDR", "LPORT"))
        self.out.flush()

    def event(self, values, index):
        from tinytrace.tooldata import ip_of
        ts, pid, comm, raddr, rport, laddr, lport = values
        ip = ip_of(index)
        if self.opts.json:
            from tinytrace.output import jsonl
            rec = self.times.record(ts)
            rec.update(pid=pid, comm=jsonl.text(comm), ip=ip, raddr=raddr, rport=rport,
                       laddr=laddr, lport=lport)
            jsonl.write(rec, self.out)
            return
        from tinytrace.output.escape import cstring
        self.out.write(self.times.cells(ts) + "%-7d %-12.12s %-2d %-16s %-5d %-16s %-5d\n" % (
            pid, cstring(comm), ip, raddr, rport, laddr, lport))
        self.out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    check_btf()
    container, maps = toolkit.container_filter(opts)
    script = Script(script_text(opts, accept_syscalls(), container), tool="tcpaccept",
                    maps=maps)
    return toolkit.snoop(opts, script, Printer(opts, sys.stdout),
                         "Tracing TCP accepts ... Hit Ctrl-C to end")
