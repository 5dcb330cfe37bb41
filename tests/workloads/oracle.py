"""bpftrace as an independent witness, for the workload tests that no /proc counter covers
(which syscall was made, which signal went where, which capability was checked).

    with Bpftrace('tracepoint:syscalls:sys_enter_getppid /pid == %d/ { @n = count(); }' % pid) as bt:
        workload.go()
    bt.maps["@n"]

Tracing has started when the constructor returns (a BEGIN probe, which bpftrace fires only
after attaching every probe, has printed).  Leaving the block interrupts bpftrace and parses
its JSON output: ``maps`` {"@name": value or {key: value}}, ``prints`` (printf lines).

Without bpftrace the test skips, unless ``TINYTRACE_REQUIRE_ORACLE=1`` makes that a failure.
"""
import json
import os
import signal
import subprocess
import threading
import time

from tests.workloads import _util

READY = "@@ttwl-ready"
SYNC = "@@ttwl-sync"


def _missing(reason):
    if os.environ.get("TINYTRACE_REQUIRE_ORACLE") == "1":
        raise _util.WorkloadError(reason)
    import pytest
    pytest.skip(reason)


def bpftrace_path():
    path = _util.which("bpftrace")
    if path is None:
        _missing("bpftrace (the independent oracle) is not installed: apt-get install bpftrace")
    if os.geteuid() != 0:
        _missing("bpftrace needs root")
    return path


class Bpftrace(object):
    def __init__(self, script, timeout=60):
        path = bpftrace_path()
        # bpftrace 0.17 drops what is still in its perf buffers when interrupted; stop()
        # first makes a syscall this probe prints and waits until bpftrace has printed it.
        self.script = ('BEGIN { printf("%s\\n"); } '
                       'tracepoint:syscalls:sys_enter_getpgid /pid == %d/ { printf("%s\\n"); } '
                       % (READY, os.getpid(), SYNC)) + script
        self.proc = subprocess.Popen([path, "-f", "json", "-e", self.script],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     universal_newlines=True)
        self._token = _util.at_exit(self._kill)
        self.lines, self.err = [], []
        self._ready = threading.Event()
        self._t_out = threading.Thread(target=self._pump_out, daemon=True)
        self._t_err = threading.Thread(target=self._pump_err, daemon=True)
        self._t_out.start()
        self._t_err.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._kill()
                raise _util.WorkloadError("bpftrace did not start:\n%s\n%s" % (
                    self.script, "".join(self.err)[-3000:]))
        self.maps, self.prints = {}, []

    def _pump_out(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if READY in line:
                self._ready.set()

    def _pump_err(self):
        for line in self.proc.stderr:
            self.err.append(line)

    def _sync(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            os.getpgid(0)
            t = time.monotonic() + 0.2
            while time.monotonic() < t:
                if any(SYNC in line for line in self.lines):
                    time.sleep(0.1)
                    return
                time.sleep(0.01)

    def stop(self, timeout=60):
        self._sync()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise _util.WorkloadError("bpftrace did not stop")
        self._t_out.join(10)
        self._t_err.join(10)
        _util.done(self._token)
        for line in self.lines:
            line = line.strip()
            if not line.startswith("{"):
                continue
            obj = json.loads(line)
            if obj.get("type") == "map":
                self.maps.update(obj["data"])
            elif obj.get("type") == "printf":
                text = obj["data"]
                if READY not in text and SYNC not in text:
                    self.prints.append(text)
        return self

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def map(self, name, default=None):
        return self.maps.get(name, default)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            self._kill()
            _util.done(self._token)
