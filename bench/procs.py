"""Processes the harness starts -- tracers (through ``launch.py``) and workloads -- and the
guarantee that none is left behind.

Every process is started in its own session (so a Ctrl-C typed at the harness reaches only
the harness, which then stops them in order) and registered in ``LIVE``; ``reap_all()``
(called from the harness's ``finally``) ends whatever is still registered: SIGINT first for
tracers (so they detach and exit cleanly), then SIGTERM, then SIGKILL, each by process id or
by the process group the harness itself created -- never by name.
"""
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = os.path.join(HERE, "launch.py")

# "Lost 12 events" (bpftrace), "Possibly lost 12 samples" (BCC), "12 events lost"
LOST_RE = re.compile(rb"[Ll]ost (\d+) (?:events?|samples?)|(\d+) (?:events?|samples?) "
                     rb"(?:were )?lost")

LIVE = {}          # pid -> description; pids we started and have not reaped
_LIVE_LOCK = threading.Lock()


def _register(pid, what):
    with _LIVE_LOCK:
        LIVE[pid] = what


def _unregister(pid):
    with _LIVE_LOCK:
        LIVE.pop(pid, None)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal(pid, sig, group=False):
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap_all(grace=3.0):
    """End every registered process: SIGINT, then SIGTERM, then SIGKILL (whole groups)."""
    with _LIVE_LOCK:
        items = list(LIVE.items())
    if not items:
        return
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 1.0), (signal.SIGKILL, 1.0)):
        pending = [pid for pid, _ in items if _alive(pid)]
        if not pending:
            break
        for pid in pending:
            _signal(pid, sig, group=True)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_alive(p) for p in pending):
            for p in pending:
                try:
                    os.waitpid(p, os.WNOHANG)
                except ChildProcessError:
                    pass
            time.sleep(0.05)
    for pid, _ in items:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        _unregister(pid)


class OutputReader(threading.Thread):
    """Reads one pipe to EOF in the background: keeps the first and last lines, counts
    occurrences of ``count`` (bytes), sums "lost N events/samples" reports, and fires
    ``on_marker(t)`` once, at the first complete line matching ``marker`` (a compiled
    bytes regex), with the monotonic time it was read."""

    HEAD = 40
    TAIL = 40

    def __init__(self, fd, marker=None, count=None, on_marker=None, on_first_line=None,
                 keep_all=False):
        threading.Thread.__init__(self, daemon=True)
        self.all = [] if keep_all else None
        self.fd = fd
        self.marker = marker
        self.count_bytes = count
        self.on_marker = on_marker
        self.on_first_line = on_first_line
        self.head = []
        self.tail = []
        self.count = 0
        self.lost = 0
        self.lines = 0
        self.nbytes = 0
        self.last_data = time.monotonic()
        self.marker_seen = False
        self.eof = threading.Event()
        self._partial = b""

    def run(self):
        try:
            while True:
                try:
                    chunk = os.read(self.fd, 1 << 16)
                except OSError:
                    break
                if not chunk:
                    break
                now = time.monotonic()
                self.last_data = now
                self.nbytes += len(chunk)
                data = self._partial + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    self._partial = data
                    continue
                self._partial = data[cut + 1:]
                self._lines(data[:cut + 1], now)
            if self._partial:
                self._lines(self._partial + b"\n", time.monotonic())
                self._partial = b""
        finally:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.eof.set()

    def _lines(self, block, now):
        if self.count_bytes:
            self.count += block.count(self.count_bytes)
        if b"ost" in block:
            for m in LOST_RE.finditer(block):
                self.lost += int(m.group(1) or m.group(2))
        lines = block.splitlines()
        if self.lines == 0 and lines and self.on_first_line is not None:
            self.on_first_line(now)
        if len(self.head) < self.HEAD:
            self.head.extend(lines[:self.HEAD - len(self.head)])
        if not self.marker_seen and self.marker is not None:
            for line in lines:
                if self.marker.search(line):
                    self.marker_seen = True
                    if self.on_marker is not None:
                        self.on_marker(now)
                    break
        self.lines += len(lines)
        if self.all is not None:
            self.all.extend(lines)
        self.tail = (self.tail + lines[-self.TAIL:])[-self.TAIL:]

    def text_head(self):
        from tinytrace.output.escape import escape
        return [escape(line) for line in self.head]

    def text_tail(self):
        from tinytrace.output.escape import escape
        return [escape(line) for line in self.tail]


class Tracer(object):
    """One tracer process started through the launcher.

    ``marker``: bytes regex of the line printed once probes are attached; ``count``: bytes
    whose occurrences in stdout are counted (the workload's marker)."""

    def __init__(self, argv, marker, count=None, cwd=None, env=None, python=None,
                 keep_stderr=False):
        self.argv = list(argv)
        self.keep_stderr = keep_stderr
        self.marker = re.compile(marker)
        self.count_bytes = count
        self.cwd = cwd
        self.env = env
        self.python = python or sys.executable
        self.launcher = None
        self.pid = None
        self.t_fork = None
        self.t_first_line = None
        self.t_marker = None
        self.cpu_at_marker_ns = None
        self.exit = None          # dict from the launcher's "exit" line
        self._report = None
        self._report_buf = b""
        self._attached = threading.Event()

    # -- start --------------------------------------------------------------------------------
    def start(self):
        rep_r, rep_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            self.launcher = subprocess.Popen(
                [self.python, "-S", "-I", LAUNCHER, str(rep_w), "--"] + self.argv,
                stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, pass_fds=(rep_w,),
                cwd=self.cwd, env=self.env, start_new_session=True)
        finally:
            os.close(rep_w)
            os.close(out_w)
            os.close(err_w)
        _register(self.launcher.pid, "launcher")
        self._report = rep_r
        self.out = OutputReader(out_r, self.marker, self.count_bytes, self._on_marker,
                                self._on_first_line)
        self.err = OutputReader(err_r, keep_all=self.keep_stderr)
        self.out.start()
        self.err.start()
        line = self._report_line(10.0)
        if not line or not line.startswith("pid "):
            raise RuntimeError("launcher did not start %s" % self.argv[0])
        _, pid, t = line.split()
        self.pid = int(pid)
        self.t_fork = float(t)
        _register(self.pid, "tracer")
        return self

    def _on_first_line(self, now):
        if self.t_first_line is None:
            self.t_first_line = now

    def _on_marker(self, now):
        if self.t_marker is None:
            self.t_marker = now
            if self.pid is not None:
                from bench.kstats import task_cpu_ns
                self.cpu_at_marker_ns = task_cpu_ns(self.pid)
            self._attached.set()

    def _report_line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self._report_buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self._report], [], [], left)
            if not r:
                return None
            chunk = os.read(self._report, 4096)
            if not chunk:
                return None
            self._report_buf += chunk
        line, self._report_buf = self._report_buf.split(b"\n", 1)
        return line.decode()

    # -- while running ------------------------------------------------------------------------
    def wait_attached(self, timeout):
        """True once the marker line was read; False if the tracer ended or timed out."""
        deadline = time.monotonic() + timeout
        while not self._attached.is_set():
            if self.out.eof.is_set() and self.err.eof.is_set():
                return self._attached.is_set()
            if time.monotonic() > deadline:
                return False
            self._attached.wait(0.02)
        if self.cpu_at_marker_ns is None:
            from bench.kstats import task_cpu_ns
            self.cpu_at_marker_ns = task_cpu_ns(self.pid)
        return True

    @property
    def start_to_attached_s(self):
        return None if self.t_marker is None else self.t_marker - self.t_fork

    def alive(self):
        return self.pid is not None and self.exit is None and _alive(self.pid)

    def lost(self):
        return self.out.lost + self.err.lost

    def wait_output(self, expected=None, quiet=0.5, cap=10.0, since=None):
        """After a workload: wait until ``expected`` counted lines (plus reported losses)
        arrived, or the output was quiet for ``quiet`` seconds, or ``cap`` seconds passed."""
        start = time.monotonic()
        while time.monotonic() - start < cap and not self.out.eof.is_set():
            if expected is not None and self.out.count + self.lost() >= expected:
                return True
            last = max(self.out.last_data, self.err.last_data, since or 0)
            if time.monotonic() - last >= quiet:
                return expected is None
            time.sleep(0.02)
        return expected is not None and self.out.count + self.lost() >= expected

    # -- stop ---------------------------------------------------------------------------------
    def stop(self, timeout=15.0):
        """SIGINT, and wait for the launcher's exit report (SIGTERM/SIGKILL on timeout)."""
        if self.pid is None:
            return None
        t_int = None
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0),
                          (signal.SIGKILL, 3.0)):
            if self.exit is None and _alive(self.pid):
                if sig == signal.SIGINT:
                    t_int = time.monotonic()
                _signal(self.pid, sig)
            line = self._report_line(wait) if self.exit is None else None
            if line and line.startswith("exit "):
                f = line.split()
                self.exit = {"status": int(f[1]), "utime": float(f[2]), "stime": float(f[3]),
                             "maxrss_kb": int(f[4]), "rss_floor_kb": int(f[5]),
                             "signal": sig if sig != signal.SIGINT else None,
                             # Ctrl-C to exit: final output, detaching, freeing
                             "stop_ms": None if t_int is None or sig != signal.SIGINT else
                             (time.monotonic() - t_int) * 1e3}
                break
        _unregister(self.pid)
        try:
            self.launcher.wait(5.0)
        except subprocess.TimeoutExpired:
            _signal(self.launcher.pid, signal.SIGKILL)
            self.launcher.wait()
        _unregister(self.launcher.pid)
        self.out.eof.wait(5.0)
        self.err.eof.wait(5.0)
        try:
            os.close(self._report)
        except OSError:
            pass
        return self.exit

    def exit_code(self):
        if not self.exit:
            return None
        st = self.exit["status"]
        if os.WIFEXITED(st):
            return os.WEXITSTATUS(st)
        return -os.WTERMSIG(st)

    def error_line(self):
        """The tracer's own complaint: the last stderr line that is not bpftrace's harmless
        RLIMIT_MEMLOCK notice (or stdout's last line if stderr is empty)."""
        for line in reversed(self.err.text_tail()):
            if line.strip() and "RLIMIT_MEMLOCK" not in line:
                return line.strip()
        tail = self.out.text_tail()
        return tail[-1].strip() if tail else "exited without output"


def run_workload(python, script, args, timeout=300.0):
    """Run a workload to completion in its own process group; returns its JSON record."""
    import json
    p = subprocess.Popen([python, "-S", script] + list(args), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    _register(p.pid, "workload")
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal(p.pid, signal.SIGKILL, group=True)
        p.communicate()
        raise RuntimeError("workload %s timed out after %ds" % (args[0], timeout))
    finally:
        _signal(p.pid, signal.SIGKILL, group=True)  # stray children of the workload
        _unregister(p.pid)
    if p.returncode != 0:
        msg = err.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError("workload %s failed: %s" % (args[0], msg[-1] if msg else p.returncode))
    return json.loads(out.decode().strip().splitlines()[-1])
