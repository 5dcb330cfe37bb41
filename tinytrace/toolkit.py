"""What every tool shares: BCC-style options, the interval loop, and output conventions.

- ``ArgumentParser``: ``-h`` shows the description, the options and an ``examples:`` block, as
  BCC tools do; a bad option is ONE line on stderr naming the option, and exit code 2.
- ``add_json`` / ``json_mode``: every tool has ``--json`` (one JSON object per event or per
  interval, see ``tinytrace.output.jsonl``).  In JSON mode stdout carries only JSON, so
  informational lines ("Tracing ... Hit Ctrl-C to end.") go to stderr.
- ``announce``: the "Tracing ..." line, printed only once every probe is attached (benchmarks
  and tests wait for it to know tracing has started).
- ``intervals``: BCC's ``interval``/``count`` loop, which ends on Ctrl-C after a last report
  (and ``report_skipped``).
- ``snoop``: the run of a per-event tool (events to a printer until Ctrl-C or ``-d``, lost
  events reported on stderr).
- ``add_interval_options`` (BCC's ``interval`` and ``count``), ``syscall_tracepoints``.
- option types: ``positive_int``, ``nonneg_int``, ``cpu_number``, ``port_list`` (and
  ``any_port_list``, which allows port 0), ``pid_list``, ``user_id``.
- script text: ``predicate(conds)`` and ``any_of(expr, values)`` compose filters.
- container filters: ``add_container_filters`` (BCC's ``--cgroupmap``/``--mntnsmap``) and
  ``container_filter(opts)`` -> (condition for the predicates, maps for ``Script(maps=)``).
- histograms: ``take_log2`` / ``take_stats`` read and reset ``hist()`` / ``stats()`` maps,
  ``report_log2`` prints BCC's histograms (keyed or not, with the ``-e`` extension line) or
  one JSON interval record.
- ``LostReporter``, ``stop_after``, ``pid_label``, ``process_comm``, ``loadavg``, ``hhmmss``.
- ``report_skipped``: the runs of the tool's programs the kernel skipped because another BPF
  program was running on that CPU (``recursion_misses``), in one line on stderr at the end;
  ``skipped_in(stderr)`` reads the number back (tests add it to the tool's counts).

What a group of tools knows about its subject (disks, TCP sockets, stacks) is in
``tinytrace.tooldata``.
"""
import argparse
import sys
import time


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and examples' layout; the width is read only when help is
    printed (argparse's own lookup imports shutil on every add_argument: ~2 ms at start)."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        if width is None:
            import shutil
            width = shutil.get_terminal_size().columns - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with BCC's help layout (examples as an epilog) and one-line errors."""

    def __init__(self, prog, description, examples, **kw):
        kw.setdefault("formatter_class", _HelpFormatter)
        super().__init__(prog="tinytrace " + prog, description=description,
                         epilog="examples:\n" + examples.rstrip("\n"), **kw)

    def format_help(self):
        text = super().format_help()
        return text if text.endswith("\n") else text + "\n"

    def error(self, message):
        sys.stderr.write("%s: error: %s (see -h)\n" % (self.prog, message))
        sys.exit(2)


def positive_int(text):
    """An argparse type: an integer > 0."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError("invalid positive integer: %r" % text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0, not %r" % text)
    return value


def nonneg_int(text):
    """An argparse type: an integer >= 0."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError("invalid integer: %r" % text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0, not %r" % text)
    return value


def cpu_number(text):
    """An argparse type: a CPU number this machine has (one of the possible CPUs)."""
    cpu = nonneg_int(text)
    from tinytrace.kernel.arch import possible_cpus
    try:
        cpus = possible_cpus()
    except OSError:
        return cpu
    if cpu not in cpus:
        raise argparse.ArgumentTypeError("no CPU %d on this system" % cpu)
    return cpu


def _ports(text, lowest):
    out = []
    for part in text.split(","):
        try:
            port = int(part.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError("invalid port list: %r" % text)
        if not lowest <= port < 65536:
            raise argparse.ArgumentTypeError("port out of range (%d-65535): %d"
                                             % (lowest, port))
        out.append(port)
    return out


def port_list(text):
    """An argparse type: "80" or "80,81" -> [80, 81] (each 1..65535)."""
    return _ports(text, 1)


def any_port_list(text):
    """``port_list`` that also takes port 0 (a socket whose port is not chosen yet)."""
    return _ports(text, 0)


def pid_list(text):
    """An argparse type: "123" or "123,456" -> [123, 456]."""
    try:
        out = [int(p, 10) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("invalid PID list: %r" % text)
    if any(p <= 0 for p in out):
        raise argparse.ArgumentTypeError("PIDs must be > 0: %r" % text)
    return out


def user_id(text):
    """An argparse type: a UID, or a user name looked up in the password database."""
    try:
        uid = int(text, 10)
    except ValueError:
        import pwd
        try:
            return pwd.getpwnam(text).pw_uid
        except KeyError:
            raise argparse.ArgumentTypeError("no such user: %r" % text)
    if uid < 0:
        raise argparse.ArgumentTypeError("invalid UID: %r" % text)
    return uid


def add_interval_options(parser, interval=None, count="count"):
    """BCC's positional ``interval`` (seconds; default ``interval``, None: one report at
    Ctrl-C) and number of outputs (dest ``count``)."""
    parser.add_argument("interval", nargs="?", type=positive_int, default=interval,
                        help="output interval, in seconds" + (
                            " (default %d)" % interval if interval else ""))
    parser.add_argument(count, nargs="?", type=positive_int, default=None,
                        help="number of outputs")


def syscall_tracepoints(names, what):
    """The syscalls of ``names`` whose sys_enter_ and sys_exit_ tracepoints this kernel has
    (some architectures lack a few); a KernelError naming ``what`` when there is none."""
    from tinytrace.kernel import tracefs
    found = [n for n in names if tracefs.exists("syscalls", "sys_enter_" + n)
             and tracefs.exists("syscalls", "sys_exit_" + n)]
    if not found:
        from tinytrace.errors import KernelError
        raise KernelError("no %s syscall tracepoints on this kernel (CONFIG_FTRACE_SYSCALLS "
                          "is off?)" % what)
    return found


def add_json(parser):
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per event or per interval")


def info(args, text):
    """An informational line: stdout in text mode, stderr in JSON mode (stdout is data)."""
    stream = sys.stderr if getattr(args, "json", False) else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def announce(args, text):
    """The "Tracing ..." line; call it only after every probe is attached."""
    info(args, text)


def require_privileges():
    """Fail early, in one line, when this process cannot trace at all."""
    import os
    from tinytrace.privileges import can_trace
    if can_trace():
        return
    from tinytrace.errors import PrivilegeError
    if os.geteuid() == 0:
        raise PrivilegeError("tracing needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), which "
                             "this root process lacks; run it with those capabilities")
    raise PrivilegeError("tracing needs root (or CAP_BPF and CAP_PERFMON); "
                         "run this tool with sudo or as root")


class Stopper(object):
    """Ctrl-C (SIGINT) ends a run at a safe point.

    While the tool waits (for events, or for the next interval) the signal interrupts the
    wait at once; while it handles events or prints a report, the signal only sets
    ``stopped`` and the run ends when that work is done -- an event being printed is never
    cut in half, and the last report is always complete.
    """

    def __init__(self):
        self.stopped = False
        self._waiting = False
        self._old = None
        self._poll = None       # (fd, select.poll object watching it): reused while waits
                                # are on the same fd

    def __enter__(self):
        import signal
        self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        import signal
        signal.signal(signal.SIGINT, self._old)
        return False

    def _handler(self, signum, frame):
        self.stopped = True
        if self._waiting:
            raise KeyboardInterrupt

    def sleep(self, seconds):
        """Sleep; returns False when Ctrl-C came (before or during the sleep)."""
        if self.stopped:
            return False
        self._waiting = True
        try:
            time.sleep(seconds)
        except KeyboardInterrupt:
            pass
        finally:
            self._waiting = False
        return not self.stopped

    def wait_readable(self, fd, timeout=None):
        """Wait until ``fd`` is readable (or ``timeout`` seconds pass); False on Ctrl-C."""
        if self.stopped:
            return False
        if self._poll is None or self._poll[0] != fd:
            import select
            p = select.poll()
            p.register(fd, select.POLLIN)
            self._poll = (fd, p)
        p = self._poll[1]
        self._waiting = True
        try:
            p.poll(None if timeout is None else int(timeout * 1000))
        except KeyboardInterrupt:
            pass
        finally:
            self._waiting = False
        return not self.stopped

    def follow(self, reader, until=None):
        """Hand events from ``reader`` to its callback until Ctrl-C (or until ``until()``
        is true after a batch), then deliver what is still buffered."""
        while self.wait_readable(reader.fileno()):
            reader.drain()
            if until is not None and until():
                break
        reader.drain()


def intervals(interval, count, report, stopper):
    """Call ``report(last)`` every ``interval`` seconds, ``count`` times (None: until
    Ctrl-C).  Ctrl-C ends the loop after one last report, as in BCC.  Then, if the kernel
    skipped runs of the tool's programs, one line on stderr says how many
    (``report_skipped``)."""
    done = 0
    while True:
        stop = not stopper.sleep(interval)
        done += 1
        last = stop or (count is not None and done >= count)
        report(last)
        if last or stopper.stopped:
            break
    report_skipped()


def target_disables(feature):
    """True when ``TINYTRACE_TARGET`` (e.g. ``btf=0,ringbuf=0``, as the language takes it)
    switches ``feature`` off, so tests can run a tool's fallback on any machine."""
    import os
    for item in os.environ.get("TINYTRACE_TARGET", "").split(","):
        name, _, value = item.strip().partition("=")
        if name == feature and value in ("0", "no", "off", "false"):
            return True
    return False


def has_btf():
    """The kernel has BTF (/sys/kernel/btf/vmlinux) and the tool may use it."""
    if target_disables("btf"):
        return False
    from tinytrace.kernel import btf
    return btf.available()


def has_kprobes():
    """The kernel can make kprobes (the kprobe PMU or tracefs kprobe_events) and the tool may
    use them: ``TINYTRACE_TARGET=kprobes=0`` makes tools take their tracepoint variant on
    any kernel.  False when it cannot be found out (e.g. tracefs unreadable)."""
    if target_disables("kprobes"):
        return False
    try:
        from tinytrace.kernel import kprobes
        return kprobes.method() is not None
    except Exception:
        return False


def traceable_functions(names):
    """The subset of ``names`` that tracefs's available_filter_functions lists (what BCC's
    ``get_kprobe_functions`` checks: a function the compiler inlined everywhere is missing
    there).  One read of the file; an empty set when it cannot be read."""
    import re
    from tinytrace.kernel import kprobes, tracefs
    try:
        with open(tracefs.path(kprobes.AVAILABLE)) as f:
            text = f.read()
    except Exception:
        return set()
    return set(n for n in names
               if re.search(r"^%s(?:\s|$)" % re.escape(n), text, re.M) is not None)


def tracepoint_exists(category, name):
    """``category:name`` is a tracepoint of this kernel (False when tracefs is unreadable)."""
    try:
        from tinytrace.kernel import tracefs
        return tracefs.exists(category, name)
    except Exception:
        return False


def hhmmss():
    return time.strftime("%H:%M:%S")


def process_comm(pid, raw=False):
    """The comm of a live process (escaped; with ``raw``, the bytes as they are), or None."""
    try:
        with open("/proc/%d/comm" % pid, "rb") as f:
            name = f.read().rstrip(b"\n")
    except (OSError, ValueError):
        return None
    if raw:
        return name
    from tinytrace.output.escape import escape
    return escape(name)


def pid_label(pid):
    """BCC's section label for a process: "PID comm" while it lives, else "PID"."""
    comm = process_comm(pid) if pid > 0 else None
    return "%d %s" % (pid, comm) if comm is not None else "%d" % pid


class LostReporter(object):
    """BCC's "Possibly lost N samples" on stderr, as losses are noticed.

    Pass ``reporter.report`` to ``Script.on_lost`` (reports as the reader notices), or call
    ``check()`` now and then (e.g. as ``Script.follow``'s ``until``: it returns False)."""

    def __init__(self, script=None):
        self.script = script
        self.seen = 0

    def report(self, n):
        if n > 0:
            sys.stderr.write("Possibly lost %d samples\n" % n)
            sys.stderr.flush()
            self.seen += n

    def check(self):
        if self.script is not None:
            lost = self.script.lost
            if lost > self.seen:
                sys.stderr.write("Possibly lost %d samples\n" % (lost - self.seen))
                sys.stderr.flush()
                self.seen = lost
        return False


def stop_after(seconds):
    """Deliver a Ctrl-C to this process after ``seconds`` (BCC's -d), so the run ends the
    way a user's Ctrl-C ends it; returns a function that cancels it."""
    import os
    import signal

    def fire(signum, frame):
        os.kill(os.getpid(), signal.SIGINT)

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)

    def cancel():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return cancel


def loadavg():
    """/proc/loadavg's text (stripped), or None when it cannot be read."""
    try:
        with open("/proc/loadavg") as f:
            return f.read().strip()
    except OSError:
        return None


# -- script text ----------------------------------------------------------------------------

def predicate(conds):
    """A probe's predicate line (``/a && b/`` and a newline) for the conditions that are
    not empty, or "" when none is left."""
    conds = [c for c in conds if c]
    return "/%s/\n" % " && ".join(conds) if conds else ""


def any_of(expr, values):
    """``(expr == v1 || expr == v2 ...)``: a filter on a list of values (ports, PIDs)."""
    return "(" + " || ".join("%s == %d" % (expr, v) for v in values) + ")"


# -- container filters (BCC's --cgroupmap / --mntnsmap) -------------------------------------

CGROUP_MAP = "@__cgroupmap"
MNTNS_MAP = "@__mntnsmap"
# The mount namespace of the current task, as /proc/PID/ns/mnt names it (mnt:[INUM]).
MNTNS_ID = "curtask->nsproxy->mnt_ns->ns.inum"


def add_container_filters(parser):
    """BCC's ``--cgroupmap MAPPATH`` and ``--mntnsmap MAPPATH`` (one or the other): trace
    only the tasks whose cgroup v2 id, or mount namespace id, is a key of a BPF hash map
    (8-byte keys) that someone else pinned in bpffs.  ``container_filter(opts)`` gives the
    script text and the map for them."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--cgroupmap", metavar="MAPPATH",
                       help="only trace tasks whose cgroup (v2) ID is a key of this pinned "
                            "BPF hash map")
    group.add_argument("--mntnsmap", metavar="MAPPATH",
                       help="only trace tasks whose mount namespace ID is a key of this "
                            "pinned BPF hash map")


def container_filter(opts):
    """``(condition, maps)`` for ``--cgroupmap``/``--mntnsmap``: a condition for the
    script's predicates (``has_key(@__cgroupmap, cgroup)``; "" without either option) and
    ``{script map name: the opened pinned map}`` for ``Script(maps=...)``.  A path that is
    missing, not a pinned map, or a map whose keys are not 8 bytes is a ``UserError`` naming
    the option; ``--mntnsmap`` without the kernel's BTF (needed to read the task's mount
    namespace) is a ``KernelError``."""
    cgroup_path = getattr(opts, "cgroupmap", None)
    mntns_path = getattr(opts, "mntnsmap", None)
    if cgroup_path is not None:
        m = open_filter_map("--cgroupmap", cgroup_path, "cgroup IDs")
        return "has_key(%s, cgroup)" % CGROUP_MAP, {CGROUP_MAP: m}
    if mntns_path is not None:
        if not has_btf():
            from tinytrace.errors import KernelError
            raise KernelError("--mntnsmap reads the task's mount namespace "
                              "(task->nsproxy->mnt_ns), which needs the kernel's BTF "
                              "(/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF); this kernel "
                              "has none: use --cgroupmap instead")
        m = open_filter_map("--mntnsmap", mntns_path, "mount namespace IDs")
        return "has_key(%s, %s)" % (MNTNS_MAP, MNTNS_ID), {MNTNS_MAP: m}
    return "", {}


def open_filter_map(option, path, what):
    """The hash map pinned at ``path`` (kernel layer ``Map``), checked to have the 8-byte
    keys ``what`` need; else one ``UserError`` line naming ``option``."""
    import errno
    from tinytrace.errors import UserError
    from tinytrace.kernel import maps
    from tinytrace.lang.env import BINDABLE_KINDS
    try:
        m = maps.Map.open_pinned(path)
    except maps.NotAMapError as e:
        raise UserError("%s: %s" % (option, e))
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise UserError("%s: no such file: %s (pin a hash map with 8-byte keys there "
                            "first, e.g. with bpftool map create)" % (option, path))
        if e.errno in (errno.EACCES, errno.EPERM, errno.EINVAL, errno.ENOTDIR,
                       errno.EISDIR):
            raise UserError("%s: %s is not a pinned BPF map (it must be a file in a bpffs "
                            "mount such as /sys/fs/bpf)" % (option, path))
        raise UserError("%s: cannot open %s: %s" % (option, path, e.strerror or e))
    if m.key_size != 8 or m.kind not in BINDABLE_KINDS or m.value_size not in (1, 2, 4, 8):
        m.close()
        if m.key_size != 8:
            raise UserError("%s: the map at %s has %d-byte keys; %s are 8 bytes (u64)"
                            % (option, path, m.key_size, what))
        raise UserError("%s: the map at %s is a %s map with %d-byte values; a hash map "
                        "with 8-byte keys and integer values is needed"
                        % (option, path, m.kind, m.value_size))
    return m


# -- per-event tools ------------------------------------------------------------------------

def snoop(opts, script, printer, announcement=None, always=False, duration=None):
    """Run a per-event tool: every printf of ``script`` goes to ``printer.event(values,
    index)``, lost events are reported on stderr as they are noticed, and the run ends on
    Ctrl-C (or after ``duration`` seconds, BCC's -d).

    Once every probe is attached, ``announcement`` (the "Tracing ..." line) is announced --
    only in JSON mode (on stderr) unless ``always``: in text mode most of BCC's per-event
    tools print just their header -- and then ``printer.header()`` (which prints nothing in
    JSON mode).  After the last events, runs of the programs the kernel skipped are reported
    (``report_skipped``) and ``printer.finish()`` runs if the printer has one.

    While events are delivered, ``printer.out`` is a ``BatchedOutput``: the lines of one
    read of the event buffer are written together once it is done, before the next wait."""
    script.on_printf(printer.event)
    script.on_lost(LostReporter().report)
    out = getattr(printer, "out", None)
    batched = None
    if out is not None:
        batched = printer.out = BatchedOutput(out)
    commit = batched.commit if batched is not None else None
    try:
        with Stopper() as stopper, script.start():
            if announcement is not None and (always or getattr(opts, "json", False)):
                announce(opts, announcement)
            printer.header()
            if commit is not None:
                commit()
            script.follow(stopper, timeout=duration, after=commit)
            report_skipped()
    finally:
        if batched is not None:
            printer.out = out
            batched.commit()
    finish = getattr(printer, "finish", None)
    if finish is not None:
        finish()
    return 0


class BatchedOutput(object):
    """A text stream that collects what is written until ``commit()`` writes it to the
    stream underneath (one ``write``) and flushes that.  ``flush()`` does nothing: the
    owner commits at the end of each batch of events, so a printer that flushes after every
    line costs no system call per line (stdout to a terminal is line-buffered, and
    write-through under PYTHONUNBUFFERED)."""

    def __init__(self, out):
        self.out = out
        self._parts = []
        self.write = self._parts.append

    def flush(self):
        pass

    def commit(self):
        parts = self._parts
        if parts:
            text = "".join(parts)
            del parts[:]
            self.out.write(text)
        self.out.flush()

    def __getattr__(self, name):       # encoding, fileno(), isatty() ...: the stream's
        return getattr(self.out, name)


# -- histograms -----------------------------------------------------------------------------

def take_log2(script, name, label=None):
    """The ``hist()`` map ``name`` as BCC's log2 slots per section, then the map is reset:
    ``{label(key): {slot: count}}`` (``label`` None keeps the map's keys; keys that get the
    same label are merged; histograms without counts are left out)."""
    from tinytrace.script import log2_slots
    dist = script.read(name)
    script.clear(name)
    out = {}
    for key, buckets in dist.items():
        slots = log2_slots(buckets)
        if not slots:
            continue
        dest = out.setdefault(key if label is None else label(key), {})
        for slot, n in slots.items():
            dest[slot] = dest.get(slot, 0) + n
    return out


def take_stats(script, name):
    """(count, total) of the unkeyed ``stats()`` map ``name``, then the map is reset."""
    stats = script.read(name)
    script.clear(name)
    return stats.get(None, (0, 0))


def report_log2(opts, hists, out, unit, section=None, section_fmt=str, ext=None):
    """One interval of a log2 histogram tool, as BCC prints it: an empty line, the time
    with ``opts.timestamp``, the histogram (``hists[None]``) or, with ``section``, one per
    key (``<section> = <section_fmt(key)>``), and with ``ext`` ((count, total)) BCC's
    ``avg = ..., total: ..., count: ...`` line.  In JSON mode: one interval record, the
    section keys as they are (``{section: key}``) and ``ext`` as ``"extension"``."""
    from tinytrace.output import hist as H
    if opts.json:
        from tinytrace.output import jsonl
        rec_hists = []
        for key in sorted(hists, key=lambda k: (k is not None, k)):
            h = H.hist_json(hists[key], unit)
            if key is not None:
                h["key"] = {section: key}
            rec_hists.append(h)
        more = {}
        if ext is not None:
            count, total = ext
            more["extension"] = {"unit": unit, "count": count, "total": total,
                                 "avg": total // count if count else 0}
        jsonl.write(jsonl.interval_record(time=hhmmss(), hists=rec_hists, **more), out)
        return
    out.write("\n")
    if getattr(opts, "timestamp", False):
        out.write("%-8s\n" % hhmmss())
    if section is not None:
        out.write(H.log2_sections_text(hists, unit, section_header=section,
                                       section_fmt=section_fmt))
    else:
        out.write(H.log2_hist_text(hists.get(None, {}), unit))
    if ext is not None:
        count, total = ext
        if count > 0:
            out.write("\navg = %d %s, total: %d %s, count: %d\n\n"
                      % (total // count, unit, total, unit, count))
    out.flush()


# -- runs the kernel skipped ----------------------------------------------------------------

def skipped_runs():
    """How many runs of this process's BPF programs the kernel skipped: a tracepoint or
    perf-event program does not run while another BPF program runs on the same CPU (an
    interrupt arriving then, a tracepoint hit inside a BPF helper); the kernel counts each
    skip in ``bpf_prog_info.recursion_misses`` (for these program types from Linux 6.7).
    A tool's process holds only its own programs, so all of them are summed."""
    import os
    from tinytrace.kernel import progs
    total = 0
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    for name in fds:
        try:
            if os.readlink("/proc/self/fd/" + name) != "anon_inode:bpf-prog":
                continue
            total += progs.recursion_misses(int(name))
        except (OSError, ValueError):
            continue
    return total


SKIPPED_NOTE = ("note: the kernel skipped %d runs of this tool's BPF programs (another BPF "
                "program was running on the same CPU): up to %d events are missing")


def report_skipped():
    """Say on stderr, in one line, how many runs of this tool's programs the kernel skipped
    (nothing when none): the tool's counts may be short by that much.  Call it while the
    programs are still loaded, after the last report."""
    n = skipped_runs()
    if n:
        sys.stderr.write(SKIPPED_NOTE % (n, n) + "\n")
        sys.stderr.flush()
    return n


def skipped_in(text):
    """The number in a tool's ``report_skipped`` note found in ``text`` (its stderr), or 0:
    what a test adds to a tool's counts before comparing them with the kernel's."""
    import re
    m = re.search(re.escape(SKIPPED_NOTE.split("%d")[0]) + r"(\d+)", text)
    return int(m.group(1)) if m else 0
