"""Running a tool as a user would, next to a workload, and reading what it printed.

Tools run as subprocesses (``python -m tinytrace TOOL ...``) so that a test sees exactly the
output, exit code and teardown a user gets.  ``started`` waits for the line a tool prints only
once its probes are attached, so the workload never starts before tracing does.
"""
import os
import signal
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ToolRun:
    """A tool running in the background; ``stop()`` sends SIGINT and returns its output."""

    def __init__(self, args, ready=None, env=None):
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env["PYTHONUNBUFFERED"] = "1"
        if env:
            full_env.update(env)
        self.args = list(args)
        self.proc = subprocess.Popen([sys.executable, "-m", "tinytrace"] + self.args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=full_env, cwd=REPO, text=True)
        self.lines = []
        self.err = []
        self._ready = threading.Event()
        self._ready_text = ready
        self._t_out = threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True)
        self._t_err = threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True)
        self._t_out.start()
        self._t_err.start()

    def _pump(self, stream, sink):
        for line in stream:
            sink.append(line)
            if self._ready_text is not None and self._ready_text in line:
                self._ready.set()

    def started(self, timeout=30):
        """Wait for the ready line; fail with the tool's stderr if it exits first."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self._ready.wait(0.05):
                return
            if self.proc.poll() is not None:
                self._t_err.join(2)
                raise AssertionError("tool exited with %s before it was ready:\n%s%s" % (
                    self.proc.returncode, "".join(self.lines), "".join(self.err)))
        raise AssertionError("tool not ready after %ss; output so far:\n%s%s" % (
            timeout, "".join(self.lines), "".join(self.err)))

    def wait(self, timeout=60):
        """Wait for the tool to finish by itself (interval/count runs)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self._t_out.join(5)
        self._t_err.join(5)
        return self.proc.returncode

    def stop(self, timeout=30):
        """Ctrl-C the tool, as a user would; return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    @property
    def stdout(self):
        return "".join(self.lines)

    @property
    def stderr(self):
        return "".join(self.err)


def run_tool(args, timeout=60, env=None):
    """Run a tool to completion; return (exit code, stdout, stderr)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    p = subprocess.run([sys.executable, "-m", "tinytrace"] + list(args), capture_output=True,
                       text=True, timeout=timeout, env=full_env, cwd=REPO)
    return p.returncode, p.stdout, p.stderr


def parse_log2_hist(text):
    """The (low, high, count) rows of every BCC log2 histogram in ``text``, in order."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        # "      2 -> 3          : 5        |**     |"
        if len(parts) >= 5 and parts[1] == "->" and parts[3] == ":":
            try:
                rows.append((int(parts[0]), int(parts[2]), int(parts[4])))
            except ValueError:
                pass
    return rows


def as_user_nobody():
    """A preexec_fn that drops to the nobody user, for the non-root error tests."""
    def drop():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    return drop


# map_type numbers of the kernel's enum bpf_map_type, as /proc/PID/fdinfo prints them
MAP_TYPES = {1: "hash", 2: "array", 4: "perf_event_array", 5: "percpu_hash",
             6: "percpu_array", 7: "stack_trace", 9: "lru_hash", 27: "ringbuf"}


def bpf_maps(pid):
    """The BPF maps process ``pid`` holds open, from /proc/PID/fdinfo: a list of dicts with
    ``kind`` (a name from MAP_TYPES, else the number), ``key_size``, ``value_size``,
    ``max_entries`` -- what a tool really asked the kernel for."""
    out = []
    fd_dir = "/proc/%d/fd" % pid
    for name in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, name)) != "anon_inode:bpf-map":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, name)) as f:
                text = f.read()
        except OSError:
            continue
        info = {}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            value = value.strip()
            if key in ("map_type", "key_size", "value_size", "max_entries"):
                info[key] = int(value)
        if "map_type" in info:
            info["kind"] = MAP_TYPES.get(info["map_type"], info["map_type"])
            out.append(info)
    return out
