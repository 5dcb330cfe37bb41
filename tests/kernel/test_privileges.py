"""Without privileges: one clear line (PrivilegeError, exit code 2), never a traceback."""
import os
import subprocess
import sys

import pytest

from tinytrace import privileges

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Everything is imported while still root (the interpreter's own files may not be readable
# by the unprivileged user), then the child drops to uid/gid 65534 and tries each operation.
CHILD = r"""
import os, sys
sys.path.insert(0, %(root)r)
from tinytrace.errors import TinytraceError
from tinytrace.kernel import maps, progs, perf, attach, tracefs, bpf, arch, libc
from tinytrace import privileges
import struct
what = sys.argv[1]
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
try:
    if what == "map":
        maps.Map.create("hash", 4, 4, 4)
    elif what == "prog":
        progs.load(struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0),
                   "tracepoint", "t_priv")
    elif what == "perf":
        perf.perf_event_open(perf.tracepoint(1))
    elif what == "tracefs":
        tracefs.event_format("sched", "sched_switch")
    print("no error")
except TinytraceError as e:
    sys.stderr.write("tinytrace: %%s\n" %% e)
    sys.exit(e.exit_code)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
@pytest.mark.parametrize("what", ["map", "prog", "perf", "tracefs"])
def test_unprivileged_gets_one_line(what):
    proc = subprocess.run([sys.executable, "-c", CHILD % {"root": ROOT}, what],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    err = proc.stderr
    assert proc.returncode == 2, (proc.stdout, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "root" in lines[0]
    if what in ("map", "prog"):
        assert "bpf(BPF_" in lines[0] and "uid 65534" in lines[0]
    if what == "perf":
        assert "perf_event_open" in lines[0]


def test_capability_parsing():
    caps = privileges.effective_capabilities()
    if os.geteuid() == 0:
        assert privileges.CAP_SYS_ADMIN in caps
        assert privileges.can_trace()


def test_root_without_permission_names_the_likely_causes(monkeypatch):
    import errno
    monkeypatch.setattr(privileges, "can_trace", lambda: True)
    e = privileges.error("bpf(BPF_MAP_CREATE)", errno.EPERM)
    assert "container" in str(e) and e.exit_code == 2
