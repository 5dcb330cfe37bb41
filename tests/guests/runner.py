"""Run a long-lived program (qemu) with a hard time limit, reading its output line by line.

The program runs under ``reaper.py`` in a session of its own, so:

- the time limit holds even if this process hangs (the reaper enforces it, not us);
- SIGKILL of this process takes the program down too (PR_SET_PDEATHSIG in the reaper);
- SIGINT/SIGTERM here (KeyboardInterrupt, SystemExit) end it through ``finally``;
- a terminal's Ctrl-C reaches us, not the program directly (it has its own session).

As a last line of defence the program's own pid file is read and that pid is killed -- only
if its command line still names our pid file, so a recycled pid is never touched.  Nothing
is ever killed by name.

Call ``run_bounded`` from a thread that stays alive until it returns (it blocks anyway): the
kernel ties PR_SET_PDEATHSIG to the thread that started the reaper.
"""
import os
import selectors
import signal
import subprocess
import sys
import time

REAPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reaper.py")
TIMED_OUT = 124


class BoundedResult(object):
    def __init__(self, returncode, timed_out, seconds):
        self.returncode = returncode
        self.timed_out = timed_out
        self.seconds = seconds


def run_bounded(argv, timeout, on_line, grace=10.0, pidfile=None, cwd=None, env=None):
    """Run ``argv`` for at most ``timeout`` seconds; call ``on_line(text)`` for every line
    of its combined stdout/stderr (``\\r`` stripped, undecodable bytes replaced).

    Returns a BoundedResult; ``timed_out`` is true when the limit ended the program.
    """
    cmd = [sys.executable, "-S", REAPER, str(os.getpid()), "%g" % timeout, "%g" % grace, "--"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd + list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True)
    try:
        _pump(proc, on_line, t0 + timeout + grace + 30)
        rc = proc.wait()
    finally:
        _stop(proc, grace)
        _kill_by_pidfile(pidfile)
    return BoundedResult(rc, rc == TIMED_OUT, time.monotonic() - t0)


def _pump(proc, on_line, backstop):
    """Feed lines to on_line until the pipe closes (or, should the reaper hang, the backstop)."""
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    pending = b""
    try:
        while True:
            left = backstop - time.monotonic()
            if left <= 0:
                on_line("harness: no end of output before the backstop, stopping the guest")
                return
            if not sel.select(min(left, 0.5)):
                if proc.poll() is not None and not sel.select(0.5):
                    break   # the program is gone; whatever still holds the pipe is not ours
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                on_line(line.rstrip(b"\r").decode("utf-8", "replace"))
        if pending:
            on_line(pending.rstrip(b"\r").decode("utf-8", "replace"))
    finally:
        sel.close()
        proc.stdout.close()


def _stop(proc, grace):
    """End the reaper (and so its child) if it is still running."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(grace + 5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except OSError:
        pass


def _kill_by_pidfile(pidfile):
    if not pidfile:
        return
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return
    if pid <= 1:
        return
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read()
    except OSError:
        return  # gone already
    if os.fsencode(pidfile) in cmdline.split(b"\0"):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
