"""A child Python process that does exactly what it is told, for counting probe hits.

It says "ready" once its start-up is over (so nothing attached later sees the interpreter
start), then reads commands, one a line, and answers each with one line:

  getpid N        N calls of os.getpid() (libc getpid each)        -> "done PID"
  getuid N        N calls of os.getuid()                             -> "done UID"
  mmap LEN        one mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0) of a file it opened at
                  start-up, then munmap                              -> "done FD"
  open N D        N os.open("opened", O_RDONLY|O_CREAT) + close, relative to the work
                  folder's fd when D is 1, to the current folder (the work folder too)
                  when 0                          -> "done DIRFD FD1 FD2 ..." (DIRFD -100:
                  AT_FDCWD)
  call N          N entries into the Python function tt_target: a generator resumed by
                  throw() (python3.11 fires its function__entry USDT probe on that path,
                  not for the Python-to-Python calls it inlines)  -> "done LINE of the yield"
  busy SECONDS    a CPU-bound loop that also reads /dev/zero (kernel time) -> "done"
  exit

Nothing else it does between reading a command and answering calls those functions.
"""
import os
import subprocess
import sys

CHILD = r'''
import mmap, os, sys, time


class TtSignal(Exception):
    pass


def tt_target():
    while True:
        try:
            yield 0
        except TtSignal:
            pass


TARGET_LINE = tt_target.__code__.co_firstlineno + 3      # the yield
target = tt_target()
next(target)
workdir = sys.argv[1]
wdir = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
mfd = os.open(os.path.join(workdir, "mapped"), os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(mfd, 1 << 20)
out = sys.stdout
out.write("ready\n"); out.flush()
for line in sys.stdin:
    words = line.split()
    if not words or words[0] == "exit":
        break
    cmd, args = words[0], [int(w) for w in words[1:]]
    if cmd == "getpid":
        for _ in range(args[0]):
            pid = os.getpid()
        out.write("done %d\n" % pid)
    elif cmd == "getuid":
        for _ in range(args[0]):
            uid = os.getuid()
        out.write("done %d\n" % uid)
    elif cmd == "mmap":
        m = mmap.mmap(mfd, args[0], mmap.MAP_SHARED, mmap.PROT_READ, offset=0)
        m.close()
        out.write("done %d\n" % mfd)
    elif cmd == "open":
        fds = []
        dirfd = wdir if args[1] else None
        for i in range(args[0]):
            fd = os.open("opened", os.O_RDONLY | os.O_CREAT, 0o600, dir_fd=dirfd)
            fds.append(fd)
            os.close(fd)
        out.write("done %d %s\n" % (-100 if dirfd is None else dirfd,
                                     " ".join(str(f) for f in fds)))
    elif cmd == "call":
        for _ in range(args[0]):
            target.throw(TtSignal)
        out.write("done %d\n" % TARGET_LINE)
    elif cmd == "busy":
        zero = os.open("/dev/zero", os.O_RDONLY)
        end = time.monotonic() + args[0]
        while time.monotonic() < end:
            s = 0
            for i in range(20000):
                s += i * i
            os.read(zero, 1 << 16)
        os.close(zero)
        out.write("done\n")
    else:
        out.write("error unknown command\n")
    out.flush()
'''

PYTHON_WITH_USDT = "/usr/bin/python3.11"


class Child(object):
    """The workload process.  ``python`` picks the interpreter (default: ours)."""

    def __init__(self, workdir, python=None):
        self.python = python or sys.executable
        self.proc = subprocess.Popen([self.python, "-c", CHILD, str(workdir)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     universal_newlines=True, cwd=str(workdir))
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError("workload did not start: %r" % line)
        self.pid = self.proc.pid

    def do(self, *words):
        """Send one command; returns the integers after "done"."""
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        parts = line.split()
        if not parts or parts[0] != "done":
            raise RuntimeError("workload failed: %r" % line)
        return [int(p) for p in parts[1:]]

    def finish(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("exit\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass
            try:
                self.proc.wait(timeout=60)
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


def libc_path(pid=None):
    """The C library the process ``pid`` (default: this one) maps."""
    with open("/proc/%s/maps" % (pid or "self")) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6:
                name = os.path.basename(parts[5])
                if name.startswith("libc.so") or name.startswith("libc-"):
                    return parts[5]
    return None


def dead_pid():
    """A PID that no process has now (a child that has been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid
