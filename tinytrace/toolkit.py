"""What every tool shares: BCC-style options, the interval loop, and output conventions.

- ``ArgumentParser``: ``-h`` shows the description, the options and an ``examples:`` block, as
  BCC tools do; a bad option is ONE line on stderr naming the option, and exit code 2.
- ``add_json`` / ``json_mode``: every tool has ``--json`` (one JSON object per event or per
  interval, see ``tinytrace.output.jsonl``).  In JSON mode stdout carries only JSON, so
  informational lines ("Tracing ... Hit Ctrl-C to end.") go to stderr.
- ``announce``: the "Tracing ..." line, printed only once every probe is attached (benchmarks
  and tests wait for it to know tracing has started).
- ``intervals``: BCC's ``interval``/``count`` loop, which ends on Ctrl-C after a last report.
"""
import argparse
import sys
import time


class ArgumentParser(argparse.ArgumentParser):
    """argparse with BCC's help layout (examples as an epilog) and one-line errors."""

    def __init__(self, prog, description, examples, **kw):
        super().__init__(prog="tinytrace " + prog, description=description,
                         epilog="examples:\n" + examples.rstrip("\n"),
                         formatter_class=argparse.RawDescriptionHelpFormatter, **kw)

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
        import select
        if self.stopped:
            return False
        p = select.poll()
        p.register(fd, select.POLLIN)
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
    Ctrl-C).  Ctrl-C ends the loop after one last report, as in BCC."""
    done = 0
    while True:
        stop = not stopper.sleep(interval)
        done += 1
        last = stop or (count is not None and done >= count)
        report(last)
        if last or stopper.stopped:
            return


def hhmmss():
    return time.strftime("%H:%M:%S")
