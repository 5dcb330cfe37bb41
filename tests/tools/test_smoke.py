"""Every tool starts, attaches, and stops cleanly on Ctrl-C -- on any kernel.

This is the tools' part of the guest matrix (marked ``guest_safe``): in each qemu guest
(Debian 6.1 on x86_64, arm64 and armhf) every tool must attach on that kernel, print its
first line, and end with exit code 0 when interrupted, or -- for a tool that needs what the
kernel lacks (BTF on armhf) -- stop with one clear line and exit code 1 or 2, never a
traceback.  The per-tool tests next to this file check output against workloads.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from tinytrace.tools import find_tool, tool_names
from tests.tools.util import REPO

pytestmark = [pytest.mark.bpf, pytest.mark.guest_safe]

# Extra arguments so that interval tools report soon; everything else runs until Ctrl-C.
ARGS = {"biotop": ["1"], "tcptop": ["1"], "cachestat": ["1"], "syscount": ["-i", "1"]}
GUEST = os.environ.get("TINYTRACE_GUEST") is not None
FIRST_LINE_TIMEOUT = 240 if GUEST else 30


def _kernel_has_btf():
    return os.path.exists("/sys/kernel/btf/vmlinux")


@pytest.mark.parametrize("name", tool_names())
def test_tool_attaches_and_stops_cleanly(name):
    tool = find_tool(name)
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "tinytrace", name] + ARGS.get(name, []),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    os.set_blocking(proc.stdout.fileno(), False)
    os.set_blocking(proc.stderr.fileno(), False)
    out, err = b"", b""
    deadline = time.time() + FIRST_LINE_TIMEOUT
    while time.time() < deadline and proc.poll() is None and b"\n" not in out + err:
        time.sleep(0.05)
        out += proc.stdout.read() or b""
        err += proc.stderr.read() or b""
    if proc.poll() is None:
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
    try:
        rest_out, rest_err = proc.communicate(timeout=FIRST_LINE_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        rest_out, rest_err = proc.communicate()
        pytest.fail("%s did not stop after Ctrl-C" % name)
    out += rest_out or b""
    err += rest_err or b""
    text = (out + err).decode("utf-8", "replace")
    assert b"Traceback" not in err, text
    if "btf" in getattr(tool, "NEEDS", ()) and not _kernel_has_btf():
        lines = [l for l in err.decode().splitlines() if l.strip()]
        assert proc.returncode in (1, 2) and len(lines) == 1 and "BTF" in lines[0], text
        return
    assert proc.returncode == 0, text
    assert text.strip(), "%s printed nothing" % name
