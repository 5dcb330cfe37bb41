"""A small launcher that starts one tracer and reports its resource use.

Why a separate process: Linux folds the RSS of the image a process had *before* exec into
``ru_maxrss`` (the signal struct keeps the high-water mark across exec).  A tracer forked
straight from the harness -- a Python process holding the results, threads and buffers --
would report the harness's RSS if that were larger than its own.  This launcher is started
with ``-S -I`` (no site, no environment), so the floor it leaves -- its own RSS when it
forks the tracer -- is a few MB, below any tracer's own peak; the floor is reported too
(``FLOOR_KB``) so a reader can check.

Usage (run by the harness, never by hand)::

    python3 -S -I bench/launch.py REPORT_FD -- PROGRAM ARGS...

Lines written to REPORT_FD:

    pid PID T_FORK              T_FORK: CLOCK_MONOTONIC just before fork(), in seconds
    exit STATUS UTIME STIME MAXRSS_KB FLOOR_KB
                                STATUS as from wait4 (raw); times in seconds; FLOOR_KB the
                                launcher's VmRSS at fork (the lowest ru_maxrss possible)

The tracer gets SIGINT/SIGTERM reset to their defaults (a launcher started from a
background shell may inherit SIGINT ignored, and Ctrl-C must reach the tracer's handler).
The launcher itself ignores SIGINT: the harness decides when the tracer stops.
"""
import os
import signal
import sys
import time


def _vm_rss_kb():
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        os.write(2, b"launch.py: usage: launch.py REPORT_FD -- PROGRAM ARGS...\n")
        return 2
    report = int(argv[0])
    args = argv[2:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    floor = _vm_rss_kb()
    t_fork = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(report)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.execvp(args[0], args)
        except OSError as e:
            os.write(2, ("launch.py: cannot run %s: %s\n" % (args[0], e.strerror)).encode())
        os._exit(127)
    os.write(report, b"pid %d %.9f\n" % (pid, t_fork))
    while True:
        try:
            _, status, ru = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    os.write(report, b"exit %d %.6f %.6f %d %d\n" % (
        status, ru.ru_utime, ru.ru_stime, ru.ru_maxrss, floor))
    os.close(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
