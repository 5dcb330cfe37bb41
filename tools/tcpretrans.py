"""tcpretrans: trace TCP retransmissions, one line per retransmitted segment (or a count
per flow with ``-c``), like BCC's tcpretrans.

The probe is the ``tcp:tcp_retransmit_skb`` tracepoint (BCC's choice too where it exists):
its fields give the family, both addresses and ports, and the socket's state.  On kernels
whose tracepoint predates the ``state`` field, the state is read from
``sock.__sk_common.skc_state`` through the kernel's BTF.  A retransmission usually runs from
a timer (softirq), so PID is whatever task was on the CPU -- often 0 -- as in BCC.

One event is one retransmitted *skb*: with segmentation offload an skb can hold several
segments, so the kernel's RetransSegs counter may grow faster than the line count.
SYN-ACK retransmissions (``tcp:tcp_retransmit_synack``) are not included, as in BCC.

``-l`` (tail loss probes) needs a kprobe on ``tcp_send_loss_probe()``: no tracepoint marks
a loss probe.  On this kind of kernel (no kprobes) ``-l`` says so and exits; it is the one
BCC option that is left for the kprobe-based variant.

``-c`` counts in the kernel (a ``count()`` map per family) and prints the flows at Ctrl-C.

``-s`` adds BCC's SEQ column: the sequence number of the retransmitted skb, ``seq`` of the
``struct tcp_skb_cb`` the kernel keeps in the skb's ``cb`` array (``skbaddr`` of the
tracepoint).  The tracepoint's fields do not carry it, so ``-s`` reads kernel memory laid
out as the kernel's BTF says (``offsetof(struct sk_buff, cb)``); without BTF it says so and
exits.  With ``-c`` it changes nothing, as in BCC.
"""

SUMMARY = "TCP retransmissions, per event or counted per flow"
PROBES = ("tracepoint:tcp:tcp_retransmit_skb",)
NEEDS = ()

DESCRIPTION = """\
Trace TCP retransmits

Probe: tracepoint tcp:tcp_retransmit_skb, one line per retransmitted skb.  Retransmits run
from timers, so PID is the task that was on the CPU (often 0), as in BCC.  Tail loss
probes (-l) have no tracepoint: they need a kprobe on tcp_send_loss_probe.
"""

EXAMPLES = """\
    tinytrace tcpretrans           # trace TCP retransmits
    tinytrace tcpretrans -l        # include TLP attempts (needs kprobes)
    tinytrace tcpretrans -4        # trace IPv4 family only
    tinytrace tcpretrans -6        # trace IPv6 family only
    tinytrace tcpretrans -c        # count retransmits per flow
    tinytrace tcpretrans -s        # display TCP sequence numbers (needs BTF)
    tinytrace tcpretrans --json    # one JSON object per retransmit
"""


def parse_args(argv):
    from tinytrace import toolkit, tooldata
    p = toolkit.ArgumentParser("tcpretrans", DESCRIPTION, EXAMPLES)
    p.add_argument("-s", "--sequence", action="store_true",
                   help="display TCP sequence numbers (reads the skb through BTF)")
    p.add_argument("-l", "--lossprobe", action="store_true",
                   help="include tail loss probe attempts (needs kprobes)")
    p.add_argument("-c", "--count", action="store_true",
                   help="count occurred retransmits per flow")
    tooldata.add_family_options(p)
    toolkit.add_json(p)
    return p.parse_args(argv)


def check_lossprobe():
    """-l: loss probes can only be seen with a kprobe on tcp_send_loss_probe."""
    from tinytrace.errors import KernelError
    from tinytrace.kernel import features
    if features.probe().kprobe_pmu is None:
        raise KernelError("tcpretrans -l: tail loss probes have no tracepoint and need a "
                          "kprobe on tcp_send_loss_probe, but this kernel has no kprobes "
                          "(CONFIG_KPROBES); run without -l")
    raise KernelError("tcpretrans -l: tail loss probes need a kprobe on "
                      "tcp_send_loss_probe, which this version of tinytrace does not "
                      "attach yet; run without -l")


def check_sequence_btf():
    """-s reads tcp_skb_cb.seq inside the skb: that needs the kernel's BTF."""
    from tinytrace import toolkit
    if not toolkit.has_btf():
        from tinytrace.errors import KernelError
        from tinytrace.kernel import btf
        raise KernelError("tcpretrans -s reads the sequence number from the skb "
                          "(struct tcp_skb_cb in sk_buff.cb), which needs the kernel's BTF "
                          "(%s); this kernel has none (CONFIG_DEBUG_INFO_BTF); run without "
                          "-s" % btf.VMLINUX)


# -- the script ---------------------------------------------------------------------------

SCRIPT = r"""
tracepoint:tcp:tcp_retransmit_skb
%(filter)s{
%(body)s}
"""

# one line per retransmit, once per family (tooldata.by_family): printf 0 is IPv4, 1 IPv6
TRACE = ('printf("%d %s %d %s %d %d %u\\n", pid, ntop({saddr}), args->sport,\n'
         '       ntop({daddr}), args->dport, {state}, {seq});')

# -s: the skb's sequence number, tcp_skb_cb.seq in the skb's control buffer
SEQ = ("((struct tcp_skb_cb *)((uint64)args->skbaddr + offsetof(struct sk_buff, cb)))"
       "->seq")

COUNT = ("@ipv{ip}_count[ntop({saddr}), args->sport, ntop({daddr}), args->dport] =\n"
         "\tcount();")


# the state where the tracepoint has no field for it (before 4.16)
BTF_STATE = "((struct sock *)args->skaddr)->__sk_common.skc_state"


def state_expr():
    """How the script gets the socket's state: the tracepoint's ``state`` field (4.16+...
    where present), else a read of ``skc_state`` through BTF, else nothing (None)."""
    from tinytrace.kernel import tracefs
    fmt = tracefs.event_format("tcp", "tcp_retransmit_skb")
    if fmt.field("state") is not None:
        return "args->state"
    from tinytrace import toolkit
    if toolkit.has_btf():
        return BTF_STATE
    return None


def script_text(opts, state="args->state"):
    from tinytrace import toolkit, tooldata as td
    seq = SEQ if getattr(opts, "sequence", False) and not opts.count else "0"
    body = COUNT if opts.count else TRACE.replace("{state}", state or "0").replace(
        "{seq}", seq)
    return SCRIPT % {"filter": toolkit.predicate([td.family_test(opts)]),
                     "body": td.by_family(body)}


# -- output -------------------------------------------------------------------------------


def _state_name(n):
    from tinytrace.kernel import abi
    if n == 0:
        return "-"
    return abi.tcp_state_name(n) or str(n)


class Printer(object):
    def __init__(self, opts, out):
        self.opts = opts
        self.out = out

    def header(self):
        if self.opts.json:
            return
        head = "%-8s %-6s %-2s %-20s %1s> %-20s" % (
            "TIME", "PID", "IP", "LADDR:LPORT", "T", "RADDR:RPORT")
        if self.opts.sequence:
            # BCC's -s layout: STATE padded, then SEQ
            self.out.write(head + " %-12s %-10s\n" % ("STATE", "SEQ"))
        else:
            self.out.write(head + " %-4s\n" % "STATE")
        self.out.flush()

    def event(self, values, index):
        from tinytrace import toolkit
        from tinytrace.tooldata import ip_of
        pid, saddr, sport, daddr, dport, state, seq = values
        ip = ip_of(index)
        now = toolkit.hhmmss()
        if self.opts.json:
            from tinytrace.output import jsonl
            rec = {"time": now, "pid": pid, "ip": ip, "laddr": saddr, "lport": sport,
                   "raddr": daddr, "rport": dport, "type": "R", "state": _state_name(state)}
            if self.opts.sequence:
                rec["seq"] = seq
            jsonl.write(rec, self.out)
            return
        line = "%-8s %-6d %-2d %-20s %1s> %-20s" % (
            now, pid, ip, "%s:%d" % (saddr, sport), "R", "%s:%d" % (daddr, dport))
        if self.opts.sequence:
            self.out.write(line + " %-12s %d\n" % (_state_name(state), seq))
        else:
            self.out.write(line + " %s\n" % _state_name(state))
        self.out.flush()


def count_rows(script):
    """The -c counts: [(ip, laddr, lport, raddr, rport, retransmits)], IPv4 first, each
    family in increasing count (as BCC prints them)."""
    rows = []
    for ip, name in ((4, "@ipv4_count"), (6, "@ipv6_count")):
        part = [(ip,) + tuple(k) + (v,) for k, v in script.read(name).items()]
        part.sort(key=lambda r: r[5])
        rows.extend(part)
    return rows


def report_counts(opts, rows, out):
    if opts.json:
        from tinytrace import toolkit
        from tinytrace.output import jsonl
        jsonl.write(jsonl.interval_record(time=toolkit.hhmmss(), flows=[
            {"ip": ip, "laddr": la, "lport": lp, "raddr": ra, "rport": rp, "retransmits": n}
            for ip, la, lp, ra, rp, n in rows]), out)
        return
    out.write("\n%-25s %-25s %-10s\n" % ("LADDR:LPORT", "RADDR:RPORT", "RETRANSMITS"))
    for ip, la, lp, ra, rp, n in rows:
        out.write("%-20s <-> %-20s %10d\n" % ("[%s]#%d" % (la, lp), "[%s]#%d" % (ra, rp), n))
    out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    if opts.lossprobe:
        check_lossprobe()
    if opts.sequence and not opts.count:
        check_sequence_btf()
    script = Script(script_text(opts, state_expr()), tool="tcpretrans")
    if opts.count:
        with toolkit.Stopper() as stopper, script.start():
            toolkit.announce(opts, "Tracing retransmits ... Hit Ctrl-C to end")
            while stopper.sleep(3600):
                pass
            report_counts(opts, count_rows(script), sys.stdout)
            toolkit.report_skipped()
        return 0
    return toolkit.snoop(opts, script, Printer(opts, sys.stdout),
                         "Tracing retransmits ... Hit Ctrl-C to end", always=True)
