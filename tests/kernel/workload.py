"""A child process that opens a file exactly N times when told to, for counting tests.

The child starts, says "ready" (so its interpreter start-up, which opens many files, is over
before anything is attached), then for each line "N BASE" it reads does exactly N ``os.open``
calls (one openat(2) each, with ``mode`` = BASE + i and O_CREAT so the mode reaches the
syscall) and says "done"; "exit" ends it.  Nothing it does between reading a line and saying
"done" is anything but those opens.
"""
import os
import subprocess
import sys

CHILD = r"""
import os, sys
path = sys.argv[1]
out = sys.stdout
out.write("ready\n"); out.flush()
for line in sys.stdin:
    if line.strip() == "exit":
        break
    n, base = (int(x) for x in line.split())
    for i in range(n):
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, base + i)
        os.close(fd)
    out.write("done\n"); out.flush()
"""


class Opener(object):
    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     universal_newlines=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError("workload did not start: %r" % line)
        self.pid = self.proc.pid

    def open_files(self, n, mode_base=0o400):
        """Make the child open the file ``n`` times; returns when it has."""
        self.proc.stdin.write("%d %d\n" % (n, mode_base))
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if line.strip() != "done":
            raise RuntimeError("workload failed: %r" % line)

    def finish(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("exit\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.finish()
        return False


def open_fds():
    """The set of this process's open fd numbers (minus the one listing them)."""
    return set(int(x) for x in os.listdir("/proc/self/fd"))


def fd_targets():
    out = {}
    for x in os.listdir("/proc/self/fd"):
        try:
            out[int(x)] = os.readlink("/proc/self/fd/" + x)
        except OSError:
            pass
    return out
