"""Runs inside a guest: prints what the guest's kernel offers, as one JSON line.

    python3 -m tests.guests.probe        (from the shared checkout)

test_matrix.py compares this with what the harness built and asked for (architecture,
kernel release, BTF, kprobes, JIT setting, the checkout seen through 9p).  Stdlib only.
"""
import hashlib
import json
import os
import subprocess
import sys


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def facts():
    u = os.uname()
    tracing = "/sys/kernel/tracing"
    out = {
        "machine": u.machine,
        "release": u.release,
        "python": "%d.%d.%d" % sys.version_info[:3],
        "cpus": os.cpu_count(),
        "btf": os.path.exists("/sys/kernel/btf/vmlinux"),
        "tracefs": os.path.isdir(os.path.join(tracing, "events")),
        "kprobe_events": os.path.exists(os.path.join(tracing, "kprobe_events")),
        "kprobe_pmu": _int(_read("/sys/bus/event_source/devices/kprobe/type")),
        "uprobe_pmu": _int(_read("/sys/bus/event_source/devices/uprobe/type")),
        "bpf_jit_enable": _int(_read("/proc/sys/net/core/bpf_jit_enable")),
        "cwd": os.getcwd(),
    }
    try:
        import cffi
        out["cffi"] = cffi.__version__
    except ImportError:
        out["cffi"] = None
    try:
        with open("setup.cfg", "rb") as f:
            out["setup_cfg_sha1"] = hashlib.sha1(f.read()).hexdigest()
    except OSError:
        out["setup_cfg_sha1"] = None
    p = subprocess.run([sys.executable, "-m", "tinytrace", "--version"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    out["tinytrace_version"] = p.stdout.strip() if p.returncode == 0 else "exit %d: %s" % (
        p.returncode, p.stdout.strip()[-300:])
    return out


if __name__ == "__main__":
    sys.stdout.write("@@PROBE %s\n" % json.dumps(facts(), sort_keys=True))
