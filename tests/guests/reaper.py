"""A tiny supervisor between the harness and qemu, so that no qemu outlives its harness.

    python3 -S reaper.py HARNESS_PID TIMEOUT GRACE -- PROGRAM [ARGS...]

It runs PROGRAM as its child and:

- dies with the harness: it asks the kernel for SIGKILL when its parent goes away
  (PR_SET_PDEATHSIG), and gives PROGRAM the same request towards itself, so even a SIGKILL
  of the harness takes qemu down with it;
- enforces the hard timeout on its own: after TIMEOUT seconds PROGRAM gets SIGTERM, and
  SIGKILL GRACE seconds later; the reaper then exits with status 124;
- passes SIGTERM/SIGINT/SIGHUP on to PROGRAM (then SIGKILL after GRACE seconds);
- otherwise exits with PROGRAM's status (128+N when a signal ended it).

Stdlib only, no site import: it starts in a few milliseconds.
"""
import ctypes
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _die_with_parent(expected_parent):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL),
                  ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        return False
    # The parent may have died before the request was in place: then nobody would tell us.
    return os.getppid() == expected_parent


def _status(wait_status):
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def main(argv):
    if len(argv) < 5 or argv[3] != "--":
        sys.stderr.write("usage: reaper.py HARNESS_PID TIMEOUT GRACE -- PROGRAM [ARGS...]\n")
        return 2
    harness, timeout, grace, program = int(argv[0]), float(argv[1]), float(argv[2]), argv[4:]
    if not _die_with_parent(harness):
        return 125
    watched = set(SIGNALS) | {signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    me = os.getpid()
    child = os.fork()
    if child == 0:
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, watched)
            if not _die_with_parent(me):
                os._exit(125)
            os.execvp(program[0], program)
        except BaseException as e:  # noqa: B902 - must never return into the parent's code
            try:
                os.write(2, ("reaper: cannot run %s: %s\n" % (program[0], e)).encode())
            finally:
                os._exit(127)
    deadline = time.monotonic() + timeout
    kill_at = None
    timed_out = False
    while True:
        pid, st = os.waitpid(child, os.WNOHANG)
        if pid == child:
            return 124 if timed_out else _status(st)
        now = time.monotonic()
        if kill_at is not None and now >= kill_at:
            os.kill(child, signal.SIGKILL)
            kill_at = now + 3600
        wake = kill_at if kill_at is not None else deadline
        info = signal.sigtimedwait(watched, max(0.0, wake - now))
        if info is None:
            if kill_at is None:           # the hard timeout
                timed_out = True
                os.kill(child, signal.SIGTERM)
                kill_at = time.monotonic() + grace
        elif info.si_signo in SIGNALS and kill_at is None:
            os.kill(child, signal.SIGTERM)
            kill_at = time.monotonic() + grace


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
