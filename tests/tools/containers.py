"""Test helpers for the container filters (--cgroupmap, --mntnsmap): a bpffs mount, a
pinned hash map holding given keys (made with tinytrace's kernel layer, as bpftool would),
a cgroup v2 child, and the ids the filters compare (cgroup id, mount namespace inode).

Everything made here is removed when its context ends, also when the test failed.
"""
import contextlib
import os
import uuid

import pytest

BPFFS = "/sys/fs/bpf"


def _mounts():
    with open("/proc/self/mounts") as f:
        return [line.split() for line in f]


def bpffs_dir():
    """A directory in a bpffs mount: /sys/fs/bpf, mounted here if nothing is mounted there
    (the mount stays: it is where bpffs belongs)."""
    for m in _mounts():
        if m[2] == "bpf" and m[1] == BPFFS:
            return BPFFS
    import subprocess
    p = subprocess.run(["mount", "-t", "bpf", "bpf", BPFFS], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount bpffs at %s: %s" % (BPFFS, p.stderr.strip()))
    return BPFFS


@contextlib.contextmanager
def pinned_map(keys=(), key_size=8, value_size=8, kind="hash", entries=128):
    """A hash map pinned in bpffs holding ``keys`` (ints, native byte order, value 0), as
    ``bpftool map create PATH type hash key 8 value 8 entries 128`` plus ``bpftool map
    update`` would make it.  Yields the path; unpins on exit."""
    from tinytrace.kernel import maps
    path = os.path.join(bpffs_dir(), "tt_test_" + uuid.uuid4().hex[:10])
    with maps.Map.create(kind, key_size, value_size, entries, name="tt_testset") as m:
        for k in keys:
            m.update(k, 0)
        m.pin(path)
    try:
        yield path
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def cgroup2_root():
    """Where the unified (v2) hierarchy is mounted (/sys/fs/cgroup, or .../unified on a
    hybrid machine); skips when there is none."""
    for m in _mounts():
        if m[2] == "cgroup2":
            return m[1]
    pytest.skip("no cgroup v2 hierarchy mounted")


class Cgroup2(object):
    """A fresh child of the v2 root: ``path``, ``id`` (its inode number, which is what
    bpf_get_current_cgroup_id returns) and ``add(pid)``."""

    def __init__(self):
        self.path = os.path.join(cgroup2_root(), "tt-cgmap-%d-%s" % (os.getpid(),
                                                                     uuid.uuid4().hex[:6]))
        os.mkdir(self.path)
        self.id = os.stat(self.path).st_ino

    def add(self, pid):
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def preexec(self):
        """A preexec_fn that moves the new child into this cgroup before it execs."""
        procs = os.path.join(self.path, "cgroup.procs")

        def move():
            with open(procs, "w") as f:
                f.write("0")
        return move

    def remove(self):
        """Move what is left back to the root, then remove the directory."""
        root_procs = os.path.join(os.path.dirname(self.path), "cgroup.procs")
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                pids = f.read().split()
        except OSError:
            pids = []
        for pid in pids:
            try:
                with open(root_procs, "w") as f:
                    f.write(pid)
            except OSError:
                pass
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                import time
                time.sleep(0.1)


@contextlib.contextmanager
def cgroup2():
    cg = Cgroup2()
    try:
        yield cg
    finally:
        cg.remove()


def mntns_id(pid):
    """The inode number of ``pid``'s mount namespace (readlink /proc/PID/ns/mnt ->
    ``mnt:[INUM]``), the key --mntnsmap compares."""
    link = os.readlink("/proc/%d/ns/mnt" % pid)
    return int(link[link.index("[") + 1:link.index("]")])
