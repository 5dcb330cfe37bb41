"""Resources are really created, and nothing is left behind: not after a normal exit, not
after an exception, not after the test process was killed (the next run sweeps)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.workloads import _util, cgroup, ext4_image, loop_device, netns_pair, opens
from tests.workloads._held import Record, Workload
from tests.workloads._util import WorkloadError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _mounts():
    return open("/proc/self/mounts").read()


def _loops():
    out = {}
    for name in os.listdir("/sys/block"):
        p = "/sys/block/%s/loop/backing_file" % name
        if os.path.exists(p):
            out[name] = open(p).read().strip()
    return out


def _netns():
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def test_loop_device_is_attached_then_gone():
    with loop_device(16) as dev:
        assert _loops()[dev.name] == dev.backing
        assert os.stat(dev.path).st_rdev == dev.devt
        assert dev.size == 16 << 20
        assert dev.stat()["in_flight"] == 0
        backing = dev.backing
    assert dev.name not in _loops() or _loops()[dev.name] != backing
    assert not os.path.exists(backing)


def test_ext4_image_is_mounted_then_gone_even_on_error():
    with pytest.raises(RuntimeError):
        with ext4_image(32) as img:
            line = [l for l in _mounts().splitlines() if " %s " % img.mountpoint in l]
            assert line and line[0].split()[2] == "ext4" and line[0].split()[0] == img.device
            with open(img.path("f"), "w") as f:
                f.write("x")
            assert os.stat(img.path("f")).st_dev == img.devt
            mnt, backing = img.mountpoint, img.loop.backing
            raise RuntimeError("test body failed")
    assert mnt not in _mounts()
    assert not os.path.exists(mnt) and not os.path.exists(backing)
    assert backing not in _loops().values()


def test_netns_pair_connects_then_is_gone():
    with netns_pair() as p:
        assert {p.a.ns, p.b.ns} <= _netns()
        out = p.run(p.a.ns, [sys.executable, "-c",
                             "import socket; s = socket.socket(); s.settimeout(5); "
                             "print(s.connect_ex(('%s', 9)))" % p.b.addr4]).stdout
        assert out.strip() == "111"            # reached b: refused by its kernel, not lost
        route = p.ip(p.a.ns, "-6", "route", "get", p.b.addr6).stdout
        assert p.a.dev in route
        assert p.tcp_counters(p.a.ns)["AttemptFails"] >= 1
        names = (p.a.ns, p.b.ns)
    assert not set(names) & _netns()


def test_cgroup_with_a_process_is_removed():
    with cgroup("memory") as cg:
        child = subprocess.Popen(["sleep", "30"])
        cg.add(child.pid)
        assert cg.procs() == [child.pid]
        d = cg.dirs["memory"]
        cg.limit_memory(64 << 20)
        assert cg.oom_kills() == 0
    assert child.wait(10) == -signal.SIGKILL          # what was left inside was killed
    assert not os.path.exists(d)


def test_failing_child_raises_with_its_traceback_and_leaves_nothing():
    class Broken(Workload):
        def _start(self):
            self.spawn("main", "tests.workloads.test_resources:_broken_child", {}, comm="tt-broken")

        def _go(self, timeout):
            return self.children["main"].step(timeout)

    w = Broken()
    with w:
        pid = w.pid
        with pytest.raises(WorkloadError) as e:
            w.go(10)
    assert "ZeroDivisionError" in str(e.value)
    assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"


def _broken_child(cfg):
    yield {}
    1 / 0


def test_life_cycle_and_record():
    w = opens(n_ok=1, n_missing=1, syscalls=("openat",))
    with w:
        pid = w.pid
        assert open("/proc/%d/comm" % pid).read().strip() == "tt-opens"
        rec = w.go()
        with pytest.raises(WorkloadError):
            w.go()
        assert os.path.exists("/proc/%d" % pid)      # held until close
    deadline = time.monotonic() + 5
    while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists("/proc/%d" % pid)
    assert isinstance(rec, Record) and rec.pid == rec["pid"] == pid
    assert rec.calls[0].syscall == "openat" and rec.counts.openat.ok == 2
    with pytest.raises(AttributeError):
        rec.no_such_field
    import json
    assert json.loads(json.dumps(rec))["pid"] == pid
    assert opens(n_ok=1, n_missing=0, syscalls=("openat",)).run().counts["openat"]["failed"] == 0


# Leftovers of a killed test process: a child python builds a loop+ext4 mount, a netns pair
# and a cgroup, then SIGKILLs itself; sweep_stale() in this process must remove them all.
KILLED = r"""
import os, signal, sys
sys.path.insert(0, %r)
from tests.workloads import ext4_image, netns_pair, cgroup
cms = [ext4_image(16), netns_pair(), cgroup("memory")]     # kept: a collected one cleans up
img, pair, cg = [cm.__enter__() for cm in cms]
print(img.mountpoint, img.loop.backing, img.loop.name, pair.a.ns, pair.b.ns, cg.dirs["memory"])
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sweep_removes_what_a_killed_process_left():
    p = subprocess.run([sys.executable, "-c", KILLED % _util.REPO], stdout=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    assert p.returncode == -signal.SIGKILL
    mnt, backing, loop, nsa, nsb, cgdir = p.stdout.split()
    assert mnt in _mounts() and {nsa, nsb} <= _netns() and os.path.isdir(cgdir)
    from tests.workloads import resources
    resources._swept = False
    resources.sweep_stale()
    assert mnt not in _mounts() and not os.path.exists(mnt)
    assert backing not in _loops().values() and not os.path.exists(backing)
    assert not {nsa, nsb} & _netns()
    assert not os.path.exists(cgdir)
