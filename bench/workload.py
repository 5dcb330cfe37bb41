"""Deterministic, counted workloads for the benchmarks (pure Python, no compiler needed).

Each workload does a known number of operations and prints ONE JSON line on stdout:
``{"kind", "count", "elapsed", "rate", "procs", "target_rate"}`` -- ``count`` is what was
actually done, ``elapsed`` the seconds from the common start to the last operation, so the
harness can check the rate it asked for was reached (and says so when it was not).

    opens    open()+close() of one file, optionally paced (--rate) over --procs processes
    execs    fork+exec of /bin/true with EXEC_MARKER as argument, waited for one by one
    syscalls getppid() (one system call per iteration, never cached by libc)
    pingpong one byte back and forth between two processes over pipes (wakeups, switches)
    reads    read() from /dev/zero with sizes cycling over 1 B .. 64 KiB
    bio      4 KiB O_DIRECT reads at pseudo-random (fixed-seed) offsets of a prepared file
    bio-prepare  write the file for ``bio`` (random data, fsync'd; not a timed workload)

Run by the harness as ``python3 -S bench/workload.py KIND --count N [...]``.
"""
import argparse
import json
import os
import sys
import time

BLOCK = 4096
# The argument execs gives /bin/true.  Fixed here, not passed on the command line: the
# workload's own exec would otherwise show it too and be counted as one more.
EXEC_MARKER = "ttbench_exec_marker"
MAX_BACKLOG_S = 0.01   # a paced loop that falls behind drops backlog beyond this (no bursts)


def _paced(n, rate, start, op):
    """Call op() n times, at most ``rate`` per second (0: unpaced) from ``start``.
    A loop that falls behind does not burst to catch up by more than MAX_BACKLOG_S, so the
    rate seen by the tracer never exceeds the target; the achieved rate is reported."""
    done = 0
    if rate <= 0:
        for _ in range(n):
            op()
        return n
    t0 = start
    mono = time.monotonic
    sleep = time.sleep
    backlog = max(1, int(rate * MAX_BACKLOG_S))
    while done < n:
        now = mono()
        due = int((now - t0) * rate) + 1
        if due - done > backlog:
            t0 = now - (done + backlog) / rate
            due = done + backlog
        if due > n:
            due = n
        if due <= done:
            sleep(max(0.0, min(0.001, (done + 1) / rate - (now - t0))))
            continue
        for _ in range(due - done):
            op()
        done = due
    return done


def _split(n, procs):
    base, extra = divmod(n, procs)
    return [base + (1 if i < extra else 0) for i in range(procs)]


def _in_processes(counts, start, body):
    """Run body(count, start) in one child per entry of ``counts``; returns (done, end)."""
    rfd, wfd = os.pipe()
    pids = []
    for c in counts:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(rfd)
                done = body(c, start)
                os.write(wfd, b"%d %.9f\n" % (done, time.monotonic()))
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(wfd)
    data = b""
    while True:
        chunk = os.read(rfd, 4096)
        if not chunk:
            break
        data += chunk
    os.close(rfd)
    for pid in pids:
        os.waitpid(pid, 0)
    done, end = 0, start
    for line in data.splitlines():
        d, e = line.split()
        done += int(d)
        end = max(end, float(e))
    return done, end


def _wait_until(t):
    while True:
        d = t - time.monotonic()
        if d <= 0:
            return
        time.sleep(d)


def opens(a):
    path = a.path
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    o, c = os.open, os.close

    def op():
        c(o(path, flags))

    def body(count, start):
        _wait_until(start)
        return _paced(count, a.rate / a.procs if a.rate else 0, start, op)

    start = time.monotonic() + 0.05
    if a.procs == 1:
        done = body(a.count, start)
        return done, time.monotonic() - start
    done, end = _in_processes(_split(a.count, a.procs), start, body)
    return done, end - start


def execs(a):
    true = "/bin/true" if os.path.exists("/bin/true") else "/usr/bin/true"
    env = {"PATH": "/usr/bin:/bin"}
    start = time.monotonic()
    for _ in range(a.count):
        pid = os.posix_spawn(true, [true, EXEC_MARKER], env)
        os.waitpid(pid, 0)
    return a.count, time.monotonic() - start


def syscalls(a):
    g = os.getppid
    start = time.monotonic()
    for _ in range(a.count):
        g()
    return a.count, time.monotonic() - start


def pingpong(a):
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(w1)
            os.close(r2)
            rd, wr = os.read, os.write
            for _ in range(a.count):
                rd(r1, 1)
                wr(w2, b"y")
            code = 0
        finally:
            os._exit(code)
    os.close(r1)
    os.close(w2)
    rd, wr = os.read, os.write
    start = time.monotonic()
    for _ in range(a.count):
        wr(w1, b"x")
        rd(r2, 1)
    elapsed = time.monotonic() - start
    os.waitpid(pid, 0)
    return a.count, elapsed


READ_SIZES = (1, 16, 256, 4096, 65536)


def reads(a):
    fd = os.open("/dev/zero", os.O_RDONLY)
    rd = os.read
    sizes = READ_SIZES
    k = len(sizes)
    start = time.monotonic()
    for i in range(a.count):
        rd(fd, sizes[i % k])
    elapsed = time.monotonic() - start
    os.close(fd)
    return a.count, elapsed


def bio_offsets(n, blocks, seed=12345):
    """n block-aligned offsets from a fixed-seed LCG (the same on every run)."""
    x = seed
    out = []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & (2 ** 64 - 1)
        out.append((x >> 33) % blocks * BLOCK)
    return out


def bio(a):
    import mmap
    size = os.path.getsize(a.path)
    offsets = bio_offsets(a.count, size // BLOCK)
    buf = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT wants
    fd = os.open(a.path, os.O_RDONLY | os.O_DIRECT)
    try:
        start = time.monotonic()
        for off in offsets:
            if os.preadv(fd, [buf], off) != BLOCK:
                raise SystemExit("workload.py: short O_DIRECT read at %d" % off)
        elapsed = time.monotonic() - start
    finally:
        os.close(fd)
    return a.count, elapsed


def bio_prepare(a):
    """Write --count MiB of random data (unwritten extents would be read without any I/O)."""
    fd = os.open(a.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(a.count):
            os.write(fd, os.urandom(1 << 20))
        os.fsync(fd)
    finally:
        os.close(fd)
    return 0, 0.0


KINDS = {"opens": opens, "execs": execs, "syscalls": syscalls, "pingpong": pingpong,
         "reads": reads, "bio": bio, "bio-prepare": bio_prepare}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write("workload.py: %s\n" % message)
        sys.exit(2)


def parse_args(argv):
    p = _Parser(prog="workload.py")
    p.add_argument("kind", choices=sorted(KINDS))
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rate", type=float, default=0.0, help="operations per second (opens)")
    p.add_argument("--procs", type=int, default=1, help="processes sharing the work (opens)")
    p.add_argument("--path", help="file to open (opens) or read (bio)")
    a = p.parse_args(argv)
    if a.count < 0 or a.procs < 1:
        p.error("--count must be >= 0 and --procs >= 1")
    if a.kind in ("opens", "bio", "bio-prepare") and not a.path:
        p.error("%s needs --path" % a.kind)
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    done, elapsed = KINDS[a.kind](a)
    rec = {"kind": a.kind, "count": done, "elapsed": round(elapsed, 6),
           "rate": round(done / elapsed, 1) if elapsed > 0 else None,
           "procs": a.procs, "target_rate": a.rate or None}
    sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
