"""execsnoop: trace new processes, one line per exec(), like BCC's execsnoop.

Entry of execve/execveat (``syscalls:sys_enter_execve[at]``) reads the file name and up to
``--max-args`` arguments from user memory -- a bounded loop over ``argv`` -- into one event;
the matching exit (``sys_exit_execve[at]``) sends the return value and the new ``comm``.  User
space pairs the two by process ID and prints a line when the exec returns, so failed execs
(``-x``) carry their error code.

The parent PID comes from ``current->real_parent->tgid`` where the kernel has BTF (offsets
read from /sys/kernel/btf/vmlinux), else from /proc when the event arrives.
"""

SUMMARY = "new processes, one line per exec()"
PROBES = ("tracepoint:syscalls:sys_enter_execve", "tracepoint:syscalls:sys_exit_execve",
          "tracepoint:syscalls:sys_enter_execveat", "tracepoint:syscalls:sys_exit_execveat")
NEEDS = ()

EXAMPLES = """\
    tinytrace execsnoop           # trace all exec() syscalls
    tinytrace execsnoop -x        # include failed exec()s
    tinytrace execsnoop -T        # include time (HH:MM:SS)
    tinytrace execsnoop -P 181    # only trace new processes whose parent PID is 181
    tinytrace execsnoop -U        # include UID
    tinytrace execsnoop -u 1000   # only trace UID 1000
    tinytrace execsnoop -u user   # get user UID and trace only them
    tinytrace execsnoop -t        # include timestamps
    tinytrace execsnoop -q        # add "quotemarks" around arguments
    tinytrace execsnoop -n main   # only print command lines containing "main"
    tinytrace execsnoop -l tpkg   # only print command where arguments contains "tpkg"
    tinytrace execsnoop --json    # one JSON object per exec
"""

ARGSIZE = 128       # bytes kept of each argument (BCC's ARGSIZE)
HDR = 24            # event header: type, tgid, uid, ppid, nargs, truncated (u32 each)
EV_ARGS, EV_RET = 1, 2
RET_SIZE = 32       # type, tgid, ret, pad, comm[16]


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("execsnoop", "Trace exec() syscalls", EXAMPLES)
    p.add_argument("-T", "--time", action="store_true", help="include time column on output (HH:MM:SS)")
    p.add_argument("-t", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-x", "--fails", action="store_true", help="include failed exec()s")
    p.add_argument("-u", "--uid", type=_uid, help="trace this UID only (a number or a user name)")
    p.add_argument("-q", "--quote", action="store_true",
                   help='add "quotemarks" around arguments')
    p.add_argument("-n", "--name", type=_regex,
                   help="only print commands matching this name (regex), any arg")
    p.add_argument("-l", "--line", type=_regex,
                   help="only print commands where arg contains this line (regex)")
    p.add_argument("-U", "--print-uid", action="store_true", help="print UID column")
    p.add_argument("--max-args", type=toolkit.positive_int, default=20,
                   help="maximum number of arguments parsed and displayed, defaults to 20")
    p.add_argument("-P", "--ppid", type=toolkit.positive_int,
                   help="trace this parent PID only")
    toolkit.add_json(p)
    opts = p.parse_args(argv)
    if opts.max_args > 128:
        p.error("argument --max-args: at most 128")
    return opts


def _uid(text):
    import argparse
    try:
        return int(text)
    except ValueError:
        pass
    import pwd
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise argparse.ArgumentTypeError("no such user: %r" % text)


def _regex(text):
    import argparse
    import re
    try:
        return re.compile(text.encode())
    except re.error as e:
        raise argparse.ArgumentTypeError("bad regular expression %r: %s" % (text, e))


# -- BPF programs -------------------------------------------------------------------------

def _size(a, n):
    return {1: a.B, 2: a.H, 4: a.W, 8: a.DW}[n]


def _ppid_offsets():
    """(task_struct.real_parent, task_struct.tgid) offsets from BTF, or None without BTF."""
    from tinytrace.kernel import btf
    if not btf.available():
        return None
    try:
        b = btf.vmlinux()
        return b.member("task_struct", "real_parent").offset, b.member("task_struct", "tgid").offset
    except Exception:
        return None


def _output(a, out_is_ringbuf, data_reg, size):
    """Send ``size`` bytes at ``data_reg`` to the output map (ring buffer or perf buffer)."""
    if out_is_ringbuf:
        return [a.LoadMapPtr(a.R1, "out"), a.Mov.Reg(a.R2, data_reg), a.Mov.Imm(a.R3, size),
                a.Mov.Imm(a.R4, 0), a.Call("ringbuf_output")]
    return [a.Mov.Reg(a.R1, a.R6), a.LoadMapPtr(a.R2, "out"),
            a.LoadImm64(a.R3, 0xffffffff),              # BPF_F_CURRENT_CPU
            a.Mov.Reg(a.R4, data_reg), a.Mov.Imm(a.R5, size),
            a.Call("perf_event_output")]


def _scratch(a):
    """r7 = this CPU's event buffer (a per-CPU array of one entry)."""
    return [a.StoreImm(a.R10, -4, 0, a.W), a.LoadMapPtr(a.R1, "scratch"),
            a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -4), a.Call("map_lookup_elem"),
            a.JEq.Imm(a.R0, 0, "out"), a.Mov.Reg(a.R7, a.R0)]


def _enter_prog(a, fmt, opts, ppid_offs, ringbuf):
    maxargs = opts.max_args
    fname, argv = fmt.field("filename"), fmt.field("argv")
    prog = [a.Mov.Reg(a.R6, a.R1)]
    prog += _scratch(a)
    prog += [a.Call("get_current_uid_gid"), a.Mov.Reg32(a.R0, a.R0)]
    if opts.uid is not None:
        prog += [a.JNe.Imm32(a.R0, opts.uid, "out")]
    prog += [a.StoreMem(a.R7, 8, a.R0, a.W),
             a.Call("get_current_pid_tgid"), a.Rsh.Imm(a.R0, 32),
             a.StoreMem(a.R7, 4, a.R0, a.W),
             a.StoreImm(a.R7, 0, EV_ARGS, a.W),
             a.StoreImm(a.R7, 20, 0, a.W)]
    if ppid_offs is not None:
        parent_off, tgid_off = ppid_offs
        prog += [a.Call("get_current_task"),
                 a.Mov.Reg(a.R3, a.R0), a.Add.Imm(a.R3, parent_off),
                 a.Mov.Reg(a.R1, a.R10), a.Add.Imm(a.R1, -16), a.Mov.Imm(a.R2, 8),
                 a.Call("probe_read_kernel"),
                 a.StoreImm(a.R10, -8, 0, a.DW),
                 a.LoadMem(a.R3, a.R10, -16, a.DW), a.Add.Imm(a.R3, tgid_off),
                 a.Mov.Reg(a.R1, a.R10), a.Add.Imm(a.R1, -8), a.Mov.Imm(a.R2, 4),
                 a.Call("probe_read_kernel"),
                 a.LoadMem(a.R0, a.R10, -8, a.W)]
        if opts.ppid:
            prog += [a.JNe.Imm32(a.R0, opts.ppid, "out")]
        prog += [a.StoreMem(a.R7, 12, a.R0, a.W)]
    else:
        prog += [a.StoreImm(a.R7, 12, 0, a.W)]
    prog += [
        # slot 0: the file name
        a.Mov.Reg(a.R1, a.R7), a.Add.Imm(a.R1, HDR), a.Mov.Imm(a.R2, ARGSIZE),
        a.LoadMem(a.R3, a.R6, fname.offset, _size(a, fname.size)),
        a.Call("probe_read_user_str"),
        # slots 1..maxargs-1: argv[1..], until a NULL pointer
        a.LoadMem(a.R8, a.R6, argv.offset, _size(a, argv.size)),
        a.Mov.Imm(a.R9, 1),
        a.Label("loop"),
        a.JGe.Imm(a.R9, maxargs, "done"),
        a.Mov.Reg(a.R3, a.R9), a.Lsh.Imm(a.R3, 3), a.Add.Reg(a.R3, a.R8),
        a.Mov.Reg(a.R1, a.R10), a.Add.Imm(a.R1, -16), a.Mov.Imm(a.R2, 8),
        a.Call("probe_read_user"),
        a.JNe.Imm(a.R0, 0, "done"),
        a.LoadMem(a.R3, a.R10, -16, a.DW),
        a.JEq.Imm(a.R3, 0, "done"),
        a.Mov.Reg(a.R1, a.R9), a.Mul.Imm(a.R1, ARGSIZE), a.Add.Reg(a.R1, a.R7),
        a.Add.Imm(a.R1, HDR), a.Mov.Imm(a.R2, ARGSIZE),
        a.Call("probe_read_user_str"),
        a.Add.Imm(a.R9, 1),
        a.Ja("loop"),
        a.Label("done"),
        a.StoreMem(a.R7, 16, a.R9, a.W),
        # every slot was used: is there more?  (then print "..." as BCC does)
        a.JLt.Imm(a.R9, maxargs, "send"),
        a.Mov.Reg(a.R3, a.R8), a.Add.Imm(a.R3, 8 * maxargs),
        a.Mov.Reg(a.R1, a.R10), a.Add.Imm(a.R1, -16), a.Mov.Imm(a.R2, 8),
        a.Call("probe_read_user"),
        a.JNe.Imm(a.R0, 0, "send"),
        a.LoadMem(a.R3, a.R10, -16, a.DW),
        a.JEq.Imm(a.R3, 0, "send"),
        a.StoreImm(a.R7, 20, 1, a.W),
        a.Label("send"),
    ]
    prog += _output(a, ringbuf, a.R7, HDR + maxargs * ARGSIZE)
    prog += [a.Label("out"), a.Mov.Imm(a.R0, 0), a.Exit()]
    return prog


def _exit_prog(a, fmt, ringbuf):
    ret = fmt.field("ret")
    prog = [a.Mov.Reg(a.R6, a.R1)]
    prog += _scratch(a)
    prog += [
        a.StoreImm(a.R7, 0, EV_RET, a.W),
        a.Call("get_current_pid_tgid"), a.Rsh.Imm(a.R0, 32),
        a.StoreMem(a.R7, 4, a.R0, a.W),
        a.LoadMem(a.R1, a.R6, ret.offset, _size(a, ret.size)),
        a.StoreMem(a.R7, 8, a.R1, a.W),
        a.Mov.Reg(a.R1, a.R7), a.Add.Imm(a.R1, 16), a.Mov.Imm(a.R2, 16),
        a.Call("get_current_comm"),
    ]
    prog += _output(a, ringbuf, a.R7, RET_SIZE)
    prog += [a.Label("out"), a.Mov.Imm(a.R0, 0), a.Exit()]
    return prog


# -- user space ---------------------------------------------------------------------------

def _ppid_from_proc(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _cstr(raw):
    end = raw.find(b"\0")
    return bytes(raw if end < 0 else raw[:end])


class Printer(object):
    """Pairs entry and exit events and prints BCC's columns (or JSON lines)."""

    def __init__(self, opts, out):
        import struct
        import time
        self.opts = opts
        self.out = out
        self.pending = {}
        self.start = time.time()
        order = "<" if __import__("sys").byteorder == "little" else ">"
        self.hdr = struct.Struct(order + "IIIIII")
        self.ret = struct.Struct(order + "IIiI16s")

    def header(self):
        o = self.opts
        if o.json:
            return
        line = ""
        if o.time:
            line += "%-9s" % "TIME"
        if o.timestamp:
            line += "%-8s" % "TIME(s)"
        if o.print_uid:
            line += "%-6s" % "UID"
        line += "%-16s %-7s %-7s %3s %s" % ("PCOMM", "PID", "PPID", "RET", "ARGS")
        self.out.write(line + "\n")
        self.out.flush()

    def event(self, data):
        kind = int.from_bytes(data[:4], __import__("sys").byteorder)
        if kind == EV_ARGS:
            _, tgid, uid, ppid, nargs, truncated = self.hdr.unpack_from(data, 0)
            nargs = min(nargs, self.opts.max_args)
            args = [_cstr(data[HDR + i * ARGSIZE:HDR + (i + 1) * ARGSIZE]) for i in range(nargs)]
            self.pending[tgid] = (uid, ppid, args, bool(truncated))
        elif kind == EV_RET:
            _, tgid, ret, _, comm = self.ret.unpack_from(data, 0)
            entry = self.pending.pop(tgid, None)
            if entry is None:
                return
            if ret != 0 and not self.opts.fails:
                return
            self.emit(tgid, ret, _cstr(comm), *entry)

    def emit(self, pid, ret, comm, uid, ppid, args, truncated):
        import time
        from tinytrace.output.escape import escape
        o = self.opts
        if o.name is not None and not o.name.search(comm):
            return
        if o.line is not None and not o.line.search(b" ".join(args)):
            return
        if not ppid:
            ppid = _ppid_from_proc(pid)
        if o.ppid and ppid != o.ppid:
            return
        if o.json:
            from tinytrace.output import jsonl
            rec = {}
            if o.time:
                rec["time"] = time.strftime("%H:%M:%S")
            if o.timestamp:
                rec["ts"] = round(time.time() - self.start, 3)
            rec.update(uid=uid, comm=jsonl.text(comm), pid=pid, ppid=ppid or None, ret=ret,
                       args=[jsonl.text(x) for x in args], truncated=truncated)
            jsonl.write(rec, self.out)
            return
        shown = [escape(x) for x in args] + (["..."] if truncated else [])
        if o.quote:
            shown = ['"%s"' % x.replace('"', '\\"') for x in shown]
        line = ""
        if o.time:
            line += "%-9s" % time.strftime("%H:%M:%S")
        if o.timestamp:
            line += "%-8.3f" % (time.time() - self.start)
        if o.print_uid:
            line += "%-6d" % uid
        line += "%-16s %-7d %-7s %3d %s" % (escape(comm), pid, ppid if ppid else "?", ret,
                                             " ".join(shown))
        self.out.write(line + "\n")
        self.out.flush()


def lost(count):
    import sys
    sys.stderr.write("Possibly lost %d samples\n" % count)
    sys.stderr.flush()


def main(argv):
    import sys
    from tinytrace import asm as a
    from tinytrace import toolkit
    from tinytrace.kernel import tracefs
    from tinytrace.session import Session
    opts = parse_args(argv)
    toolkit.require_privileges()
    printer = Printer(opts, sys.stdout)
    with Session() as session:
        reader = session.output(printer.event, lost)
        ringbuf = reader.map.kind == "ringbuf"
        scratch = session.map("percpu_array", 4, HDR + opts.max_args * ARGSIZE, 1,
                              name="exec_scratch")
        maps = {"out": reader.map, "scratch": scratch}
        ppid_offs = _ppid_offsets()
        loaded = []
        for call in ("execve", "execveat"):
            if not tracefs.exists("syscalls", "sys_enter_" + call):
                continue  # execveat is missing on some old kernels
            enter = _enter_prog(a, tracefs.event_format("syscalls", "sys_enter_" + call), opts,
                                ppid_offs, ringbuf)
            leave = _exit_prog(a, tracefs.event_format("syscalls", "sys_exit_" + call), ringbuf)
            for kind, insns in (("enter", enter), ("exit", leave)):
                prog = session.load(a.link(insns, maps), "tracepoint", "exec_%s_%s" % (kind, call),
                                    source=insns)
                loaded.append((prog, "sys_%s_%s" % (kind, call)))
        for prog, event in loaded:
            session.tracepoint(prog, "syscalls", event)
        with toolkit.Stopper() as stopper:
            if opts.json:
                toolkit.announce(opts, "Tracing exec()s... Hit Ctrl-C to end.")
            printer.header()
            stopper.follow(reader)
    return 0
