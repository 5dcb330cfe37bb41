"""Checks of tinytrace.pyz under a real workload, for the host and for the qemu guests.

    python3 pyz_checks.py tinytrace.pyz version list runqlat execsnoop

Each check runs ``python3 tinytrace.pyz ...`` as a child process, drives a workload, and
checks the output against what the workload did.  One ``@@CHECK {json}`` line per check says
whether it passed and what it measured (``attach_seconds``: start of the process until the
tool printed its first line, which tinytrace's tools do once their probes are attached).
Exit status 0 when every check passed.

This file is copied alone into guests that have no checkout (only the .pyz), so it uses the
standard library only and runs on Python 3.9+.  tests/test_pyz.py imports it on the host.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

TIMEOUT = float(os.environ.get("TT_CHECK_TIMEOUT", "300"))   # emulated Python is slow
EVENT_TIMEOUT = min(TIMEOUT, 60.0)    # from an exec to its line, once attached


class CheckFailed(AssertionError):
    pass


class Output(object):
    """Collects a child's stdout lines with arrival times, in a thread."""

    def __init__(self, stream):
        self.lines = []          # [(seconds since start, text)]
        self.t0 = time.monotonic()
        self.cond = threading.Condition()
        self.done = False
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        for raw in iter(stream.readline, ""):
            with self.cond:
                self.lines.append((time.monotonic() - self.t0, raw.rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def wait_for(self, pred, timeout):
        """The first (time, line) with pred(line) true, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for t, line in self.lines[seen:]:
                    if pred(line):
                        return t, line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self.done or left <= 0:
                    return None
                self.cond.wait(min(left, 1.0))

    def wait_until(self, pred, timeout):
        """Wait until pred(all lines so far) is true; returns it (False on timeout)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if pred([l for _, l in self.lines]):
                    return True
                left = deadline - time.monotonic()
                if self.done or left <= 0:
                    return False
                self.cond.wait(min(left, 1.0))

    def text(self):
        with self.cond:
            return "\n".join(l for _, l in self.lines)


def _start(python, pyz, args):
    """The tool as a child; its stdout and stderr are read by threads as they come."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([python, pyz] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=env)
    return proc, Output(proc.stdout), Output(proc.stderr)


def _finish(proc, out, err, timeout):
    """Wait for the child; returns (exit status, stderr text)."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise CheckFailed("did not end within %gs; stderr:\n%s" % (timeout, err.text()[-1000:]))
    out.thread.join(10)
    err.thread.join(10)
    return proc.returncode, err.text()


def _no_traceback(err):
    if "Traceback (most recent call last)" in err:
        raise CheckFailed("printed a Python traceback:\n" + err[-2000:])


def _simple(python, pyz, args):
    t0 = time.monotonic()
    p = subprocess.run([python, pyz] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=TIMEOUT)
    secs = time.monotonic() - t0
    _no_traceback(p.stderr)
    if p.returncode != 0:
        raise CheckFailed("%s exited %d: %s" % (" ".join(args), p.returncode, p.stderr[-500:]))
    return p.stdout, secs


def check_version(python, pyz, info=None):
    out, secs = _simple(python, pyz, ["--version"])
    if not re.match(r"^tinytrace \d+\.\d+\S*\n?$", out):
        raise CheckFailed("--version printed %r" % out)
    info = {} if info is None else info
    info.update(seconds=secs, version=out.split()[1])
    return info


def check_list(python, pyz, info=None, tools=None):
    """--list names every tool (``tools``, or $TT_EXPECT_TOOLS, comma-separated)."""
    if tools is None:
        tools = [t for t in os.environ.get("TT_EXPECT_TOOLS", "").split(",") if t]
    out, secs = _simple(python, pyz, ["--list"])
    listed = set(line.split()[0] for line in out.splitlines() if line and not line[0].isspace())
    missing = [t for t in tools if t not in listed]
    if missing:
        raise CheckFailed("--list lacks %s:\n%s" % (", ".join(missing), out))
    info = {} if info is None else info
    info.update(seconds=secs, tools=len(listed))
    return info


# ---------------------------------------------------------------- runqlat

ROW = re.compile(r"^\s*(\d+)\s*->\s*(\d+)\s*:\s*(\d+)\s*\|([^|]*)\|\s*$")
HEADER = re.compile(r"^\s*usecs\s*:\s*count\s+distribution\s*$")


def parse_log2_histogram(text):
    """[(low, high, count, stars)] of the first BCC-style log2 histogram in ``text``."""
    rows = []
    started = False
    for line in text.splitlines():
        if not started:
            started = bool(HEADER.match(line))
            continue
        m = ROW.match(line)
        if not m:
            if rows:
                break
            continue
        rows.append((int(m.group(1)), int(m.group(2)), int(m.group(3)),
                     m.group(4).count("*")))
    if not started:
        raise CheckFailed("no 'usecs : count distribution' header in:\n" + text)
    if not rows:
        raise CheckFailed("a header but no histogram rows in:\n" + text)
    return rows


def check_histogram(rows):
    """The rows are log2 buckets in order, and the bars grow with the counts."""
    prev_high = None
    for low, high, count, _ in rows:
        want_high = 1 if low == 0 else 2 * low - 1
        if high != want_high or (low & (low - 1)):
            raise CheckFailed("bucket %d -> %d is not a log2 bucket" % (low, high))
        if prev_high is not None and low != prev_high + 1:
            raise CheckFailed("bucket %d -> %d does not follow %d" % (low, high, prev_high))
        prev_high = high
    for a in rows:
        for b in rows:
            if a[2] > b[2] and a[3] < b[3]:
                raise CheckFailed("count %d has a shorter bar than count %d" % (a[2], b[2]))
    if sum(r[2] for r in rows) <= 0:
        raise CheckFailed("the histogram counted nothing under a busy workload")


def _workload_cpu(n):
    """n CPU hogs and a task that sleeps and wakes up every 10 ms: run-queue latency."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    procs.append(subprocess.Popen(["sh", "-c", "while :; do sleep 0.01; done"]))
    return procs


def _stop_all(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait()


def check_runqlat(python, pyz, info=None):
    info = {} if info is None else info
    work = _workload_cpu(2)
    try:
        proc, out, errs = _start(python, pyz, ["runqlat", "1", "1"])
        first = out.wait_for(lambda l: l.strip() != "", TIMEOUT)
        if first:
            info.update(attach_seconds=first[0], attach_line=first[1])
        rc, err = _finish(proc, out, errs, TIMEOUT)
    finally:
        _stop_all(work)
    _no_traceback(err)
    if rc != 0:
        raise CheckFailed("runqlat 1 1 exited %d: %s\n%s" % (rc, err[-500:], out.text()))
    rows = parse_log2_histogram(out.text())
    check_histogram(rows)
    info.update(seconds=out.lines[-1][0] if out.lines else None,
                events=sum(r[2] for r in rows))
    return info


# ---------------------------------------------------------------- execsnoop

EXEC_HEADER = re.compile(r"^\s*PCOMM\s+PID\s+PPID\s+RET\s+ARGS\s*$")


def check_execsnoop(python, pyz, info=None, count=5):
    info = {} if info is None else info
    proc, out, errs = _start(python, pyz, ["execsnoop"])
    try:
        head = out.wait_for(lambda l: bool(EXEC_HEADER.match(l)), TIMEOUT)
        if head is None:
            proc.kill()
            _, err = _finish(proc, out, errs, 30)
            raise CheckFailed("no 'PCOMM PID PPID RET ARGS' header; stdout:\n%s\nstderr:\n%s"
                              % (out.text(), err[-1000:]))
        info["attach_seconds"] = head[0]
        echo = shutil.which("echo") or "/bin/echo"
        token = "tt-exec-%d" % os.getpid()
        spawned = {}
        for i in range(count):
            marker = "%s-%d" % (token, i)
            p = subprocess.Popen([echo, marker], stdout=subprocess.DEVNULL)
            p.wait()
            spawned[marker] = p.pid
        # Done once every exec has a line (by marker, or at least by pid: wrong ARGS must
        # fail below, not wait here).
        pids = set(str(p) for p in spawned.values())
        seen = out.wait_until(lambda lines: pids <= set(
            l.split()[1] for l in lines if len(l.split()) > 1), EVENT_TIMEOUT)
        proc.send_signal(signal.SIGINT)
        rc, err = _finish(proc, out, errs, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _no_traceback(err)
    if rc not in (0, 130):
        raise CheckFailed("execsnoop exited %d after SIGINT: %s" % (rc, err[-500:]))
    if not seen:
        raise CheckFailed("not every exec showed up (pids %s); output:\n%s"
                          % (" ".join(sorted(pids)), out.text()))
    lines = [l for _, l in out.lines]
    for marker, pid in sorted(spawned.items()):
        found = [l for l in lines if l.split()[-1:] == [marker]]
        if len(found) != 1:
            raise CheckFailed("want one line for %s (pid %d), got %d:\n%s"
                              % (marker, pid, len(found), out.text()))
        cols = found[0].split(None, 4)
        if len(cols) < 5 or cols[1] != str(pid) or cols[2] != str(os.getpid()) or cols[3] != "0":
            raise CheckFailed("line for pid %d ppid %d ret 0 reads %r"
                              % (pid, os.getpid(), found[0]))
        if not cols[4].endswith(" " + marker) or "echo" not in cols[4]:
            raise CheckFailed("ARGS of pid %d reads %r" % (pid, cols[4]))
    info.update(events=len(spawned), returncode=rc)
    return info


CHECKS = {"version": check_version, "list": check_list, "runqlat": check_runqlat,
          "execsnoop": check_execsnoop}


def main(argv):
    python = sys.executable
    if len(argv) >= 2 and argv[0] == "--python":
        python, argv = argv[1], argv[2:]
    if not argv or any(c not in CHECKS for c in argv[1:]):
        sys.stderr.write("usage: pyz_checks.py [--python PY] PYZ [%s]...\n" % "|".join(CHECKS))
        return 2
    pyz, names = argv[0], argv[1:] or list(CHECKS)
    failed = 0
    for name in names:
        t0 = time.monotonic()
        rec = {"name": name, "ok": True}
        try:
            CHECKS[name](python, pyz, rec)     # fills rec as it measures
        except (CheckFailed, subprocess.TimeoutExpired, OSError) as e:
            rec["ok"] = False
            rec["error"] = str(e)
            failed += 1
        rec["total_seconds"] = time.monotonic() - t0
        sys.stdout.write("@@CHECK %s\n" % json.dumps(rec, sort_keys=True))
        sys.stdout.flush()
    return 1 if failed else 0


def parse_results(text):
    """{name: record} from the @@CHECK lines in ``text``."""
    out = {}
    for line in text.splitlines():
        i = line.find("@@CHECK ")
        if i >= 0:
            try:
                rec = json.loads(line[i + len("@@CHECK "):])
            except ValueError:
                continue
            out[rec.get("name")] = rec
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
