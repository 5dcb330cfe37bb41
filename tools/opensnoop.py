"""opensnoop: one line per open(), openat() and openat2() call, like BCC's opensnoop.

The entry tracepoints (``syscalls:sys_enter_open``, ``sys_enter_openat``,
``sys_enter_openat2``) keep the file-name pointer, the flags, the mode and the directory fd
by thread ID; openat2 reads flags and mode from the caller's ``struct open_how``.  The
matching exit tracepoint has the result (an fd or -errno): it reads the file name from user
memory then -- the page is surely resident after the kernel has used it -- and sends one
event.  Filters (-p, -t, -u, -f, -x) are predicates in the kernel; -n is applied in user
space, as BCC does.

The script runs with ``str()`` buffers of 256 bytes (``Script(strlen=...)``), so a name
keeps up to 255 characters (BCC keeps NAME_MAX - 1, 254).

Differences from BCC on this kernel: BCC uses kprobes/fexit on the syscall functions; the
syscall tracepoints see the same calls.  ``-F`` (full path of relative names) is resolved in
user space through /proc when the event is printed, from the directory fd the call used
(BCC walks the current directory in the kernel, and ignores the dirfd); a process that has
already exited or changed directory leaves the name as it was passed.  ``-b N`` (BCC's
perf buffer pages per CPU, a power of two, default 64) sizes the output buffer: N pages per
CPU of a perf buffer, or, where the kernel has a BPF ring buffer (one for all CPUs), N
pages x the online CPUs, rounded up to a power of two; without ``-b`` the ring buffer is
1 MiB.  A kprobe-based variant could add the VFS-level open of files that do not go
through these syscalls (e.g. exec's own opens).

``--cgroupmap MAPPATH`` / ``--mntnsmap MAPPATH`` (BCC's container filters, one or the
other) keep only tasks whose cgroup v2 id, or mount namespace id (read through the
kernel's BTF), is a key of the hash map pinned at MAPPATH by whoever manages the
containers (``toolkit.container_filter``): the test is in the entry probes' predicates.
"""

SUMMARY = "open(), openat() and openat2() calls: process, file name, flags and result"
PROBES = ("tracepoint:syscalls:sys_enter_open", "tracepoint:syscalls:sys_exit_open",
          "tracepoint:syscalls:sys_enter_openat", "tracepoint:syscalls:sys_exit_openat",
          "tracepoint:syscalls:sys_enter_openat2", "tracepoint:syscalls:sys_exit_openat2")
NEEDS = ()

EXAMPLES = """\
    tinytrace opensnoop                        # trace all open() syscalls
    tinytrace opensnoop -T                     # include timestamps
    tinytrace opensnoop -U                     # include UID
    tinytrace opensnoop -x                     # only show failed opens
    tinytrace opensnoop -p 181                 # only trace PID 181
    tinytrace opensnoop -t 123                 # only trace TID 123
    tinytrace opensnoop -u 1000                # only trace UID 1000
    tinytrace opensnoop -d 10                  # trace for 10 seconds only
    tinytrace opensnoop -n main                # only print process names containing "main"
    tinytrace opensnoop -e                     # show extended fields
    tinytrace opensnoop -f O_WRONLY -f O_RDWR  # only print calls for writing
    tinytrace opensnoop -F                     # show full path for an open file with relative path
    tinytrace opensnoop -b 256                 # 256 buffer pages per CPU: fewer lost events
    tinytrace opensnoop --cgroupmap /sys/fs/bpf/test  # only trace cgroups in this BPF map
    tinytrace opensnoop --mntnsmap /sys/fs/bpf/mnt_ns  # only trace mount namespaces in the map
    tinytrace opensnoop --json                 # one JSON object per open
"""

CALLS = ("open", "openat", "openat2")
AT_FDCWD = -100
PATH_STRLEN = 256    # str() buffer for file names: up to 255 characters (BCC: 254)


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser(
        "opensnoop", "Trace open() syscalls (open, openat, openat2; from the syscall "
        "tracepoints sys_enter/sys_exit_open*)", EXAMPLES)
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-U", "--print-uid", action="store_true", help="print UID column")
    p.add_argument("-x", "--failed", action="store_true", help="only show failed opens")
    p.add_argument("-p", "--pid", type=toolkit.positive_int, help="trace this PID only")
    p.add_argument("-t", "--tid", type=toolkit.positive_int, help="trace this TID only")
    p.add_argument("-u", "--uid", type=toolkit.nonneg_int, help="trace this UID only")
    p.add_argument("-d", "--duration", type=toolkit.positive_int,
                   help="total duration of trace in seconds")
    p.add_argument("-n", "--name", help="only print process names containing this name")
    p.add_argument("-e", "--extended_fields", action="store_true", help="show extended fields")
    p.add_argument("-f", "--flag_filter", action="append", type=_flag,
                   help="filter on flags argument (e.g., O_WRONLY)")
    p.add_argument("-F", "--full-path", action="store_true",
                   help="show full path for an open file with relative path (resolved "
                        "through /proc when printed)")
    p.add_argument("-b", "--buffer-pages", "--buf-pages", type=_buffer_pages, metavar="N",
                   help="size of the perf ring buffer (must be a power of two number of "
                   "pages and defaults to 64; a BPF ring buffer gets N pages per CPU)")
    toolkit.add_container_filters(p)
    toolkit.add_json(p)
    opts = p.parse_args(argv)
    if opts.pid and opts.tid:
        p.error("argument -t/--tid: not allowed with -p/--pid")
    return opts


def _buffer_pages(text):
    """An argparse type: pages of the output buffer per CPU, a power of two from 1 to the
    language's limit (perf_rb_pages)."""
    import argparse
    from tinytrace import toolkit
    from tinytrace.lang.config import SETTINGS
    pages = toolkit.positive_int(text)
    most = SETTINGS["perf_rb_pages"][2][1]
    if pages & (pages - 1) or pages > most:
        raise argparse.ArgumentTypeError("must be a power of two from 1 to %d, not %r"
                                         % (most, text))
    return pages


def _flag(text):
    """An ``O_*`` flag name (the running system's value); O_RDONLY means access mode 0."""
    import argparse
    import os
    value = getattr(os, text, None) if text.startswith("O_") else None
    if not isinstance(value, int):
        raise argparse.ArgumentTypeError("bad flag: %r (expected a name such as O_WRONLY)"
                                         % text)
    return text


# -- the script ---------------------------------------------------------------------------

def _flag_test(opts, expr):
    """The flag filter on ``expr`` (BCC: any of the flags set; O_RDONLY, which is 0, is
    taken as "the access mode is read-only")."""
    import os
    if not opts.flag_filter:
        return None
    mask = 0
    tests = []
    for name in opts.flag_filter:
        if name == "O_RDONLY":
            tests.append("(%s & 3) == 0" % expr)
        else:
            mask |= getattr(os, name)
    if mask:
        tests.append("(%s & %d) != 0" % (expr, mask))
    return "(" + " || ".join(tests) + ")"


def _who(opts):
    tests = []
    if opts.tid:
        tests.append("tid == %d" % opts.tid)
    elif opts.pid:
        tests.append("pid == %d" % opts.pid)
    if opts.uid is not None:
        tests.append("uid == %d" % opts.uid)
    return tests


def _pred(tests):
    return "/%s/\n" % " && ".join(tests) if tests else ""


def script_text(opts, calls, container=""):
    """The script for these options and the syscalls this kernel has (a list);
    ``container`` is the --cgroupmap/--mntnsmap test (``toolkit.container_filter``)."""
    who = _who(opts) + ([container] if container else [])
    parts = []
    for call in calls:
        if call == "openat2":
            flags = _flag_test(opts, "$flags")
            store = ("@open[tid] = (args->filename, $flags, *(uint64 *)(args->how + 8), "
                     "(int64)args->dfd);")
            body = "\t$flags = *(uint64 *)args->how;\n"
            body += ("\tif %s {\n\t\t%s\n\t}\n" % (flags, store)) if flags else "\t%s\n" % store
            pred = who
        else:
            dfd = "(int64)args->dfd" if call == "openat" else "(int64)%d" % AT_FDCWD
            body = ("\t@open[tid] = (args->filename, (uint64)args->flags, (uint64)args->mode, "
                    "%s);\n" % dfd)
            flags = _flag_test(opts, "args->flags")
            pred = who + ([flags] if flags else [])
        parts.append("tracepoint:syscalls:sys_enter_%s\n%s{\n%s}\n" % (call, _pred(pred), body))
    emit = ('printf("%%u %%u %%u %%d %%s %%u %%u %%d %%u %%s\\n", '
            'pid, tid, uid, args->ret, comm, $o.1, $o.2, $o.3, nsecs, str($o.0));')
    if opts.failed:
        emit = "if (args->ret < 0) {\n\t\t%s\n\t}" % emit
    for call in calls:
        parts.append(("tracepoint:syscalls:sys_exit_%s\n/@open[tid].0 != 0/\n{\n"
                      "\t$o = @open[tid];\n\tdelete(@open[tid]);\n\t" + emit + "\n}\n")
                     % call)
    return "\n".join(parts)


# -- user space ---------------------------------------------------------------------------

def _full_path(pid, tid, dfd, path):
    """``path`` made absolute through /proc: the thread's cwd, or the directory fd."""
    import os
    if path.startswith(b"/"):
        return path
    if dfd == AT_FDCWD:
        links = ("/proc/%d/task/%d/cwd" % (pid, tid), "/proc/%d/cwd" % pid)
    else:
        links = ("/proc/%d/fd/%d" % (pid, dfd),)
    for link in links:
        try:
            base = os.readlink(link.encode())
        except OSError:
            continue
        return base.rstrip(b"/") + b"/" + path
    return path


class Printer(object):
    """BCC's columns (or JSON lines) from the exit events."""

    def __init__(self, opts, calls, out):
        self.opts = opts
        self.calls = calls
        self.out = out
        self.first_ns = None
        self.name = opts.name.encode("utf-8", "surrogateescape") if opts.name else None
        from tinytrace.output.escape import escape
        self._escape = escape
        # the default columns (no -T -U -e -F --json): one format, nothing else to decide
        self._plain = not (opts.json or opts.timestamp or opts.print_uid or
                           opts.extended_fields or opts.full_path)

    def header(self):
        o = self.opts
        if o.json:
            return
        line = ""
        if o.timestamp:
            line += "%-14s" % "TIME(s)"
        if o.print_uid:
            line += "%-6s" % "UID"
        line += "%-6s %-16s %4s %3s " % ("TID" if o.tid else "PID", "COMM", "FD", "ERR")
        if o.extended_fields:
            line += "%-8s %-4s " % ("FLAGS", "MODE")
        self.out.write(line + "PATH\n")
        self.out.flush()

    def event(self, values, index):
        pid, tid, uid, ret, comm, flags, mode, dfd, ns, path = values
        if self.name is not None and self.name not in comm:
            return
        escape = self._escape
        o = self.opts
        if self._plain:
            if self.first_ns is None:
                self.first_ns = ns
            fd, err = (ret, 0) if ret >= 0 else (-1, -ret)
            self.out.write("%-6d %-16s %4d %3d %s\n" % (tid if o.tid else pid, escape(comm),
                                                         fd, err, escape(path)))
            self.out.flush()
            return
        if o.full_path:
            path = _full_path(pid, tid, dfd, path)
        if self.first_ns is None:
            self.first_ns = ns
        fd, err = (ret, 0) if ret >= 0 else (-1, -ret)
        if o.json:
            from tinytrace.output import jsonl
            rec = {}
            if o.timestamp:
                rec["ts"] = round((ns - self.first_ns) / 1e9, 9)
            rec.update(uid=uid, pid=pid, tid=tid, comm=jsonl.text(comm),
                       syscall=self.calls[index] if 0 <= index < len(self.calls) else None,
                       fd=fd, err=err, flags=flags, mode=mode, dfd=dfd,
                       path=jsonl.text(path))
            jsonl.write(rec, self.out)
            return
        line = ""
        if o.timestamp:
            line += "%-14.9f" % ((ns - self.first_ns) / 1e9)
        if o.print_uid:
            line += "%-6d" % uid
        line += "%-6d %-16s %4d %3d " % (tid if o.tid else pid, escape(comm), fd, err)
        if o.extended_fields:
            if mode == 0 and not _takes_mode(flags):
                line += "%08o n/a  " % flags
            else:
                line += "%08o %04o " % (flags, mode)
        self.out.write(line + escape(path) + "\n")
        self.out.flush()


def _takes_mode(flags):
    import os
    tmpfile = getattr(os, "O_TMPFILE", 0)
    return bool(flags & os.O_CREAT) or (tmpfile and (flags & tmpfile) == tmpfile)


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    calls = toolkit.syscall_tracepoints(CALLS, "open/openat/openat2")
    # printf indexes: one per exit probe, in the order of ``calls``
    config = {"perf_rb_pages": opts.buffer_pages} if opts.buffer_pages else None
    container, maps = toolkit.container_filter(opts)
    script = Script(script_text(opts, calls, container), tool="opensnoop", maps=maps,
                    strlen=PATH_STRLEN,
                    config=config)
    return toolkit.snoop(opts, script, Printer(opts, calls, sys.stdout),
                         "Tracing open() syscalls... Hit Ctrl-C to end.",
                         duration=opts.duration)
