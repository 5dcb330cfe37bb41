"""Kernel resources the workloads run on: loop devices, ext4 images, cgroups, netns pairs.

Each is a context manager that removes what it created on the way out, also when the body
raises; an interpreter exit removes what is still there (``_util.at_exit``).  Objects are
named ``ttwl<pid>-...``: the first resource a process creates also sweeps away leftovers of
*dead* test processes (a SIGKILLed pytest), never those of a live one.
"""
import contextlib
import errno
import os
import shutil
import signal
import tempfile
import threading
import time

from tests.workloads import _util
from tests.workloads._util import WorkloadError

_swept = False
_sweep_lock = threading.Lock()


# ---------------------------------------------------------------------------------------
# leftovers of dead test processes

def sweep_stale():
    """Remove mounts, loop devices, netns, cgroups and temp files of dead test processes."""
    global _swept
    with _sweep_lock:
        if _swept:
            return
        _swept = True
    if os.geteuid() != 0:
        return
    for mnt in _our_mounts():
        if _util.owner_dead(mnt):
            _util.run(["umount", "-l", mnt], check=False)
    for loop, backing in _our_loops():
        if _util.owner_dead(backing):
            _util.run(["losetup", "-d", "/dev/" + loop], check=False)
    if os.path.isdir("/run/netns"):
        for ns in os.listdir("/run/netns"):
            if _util.owner_dead(ns):
                _delete_netns(ns)
    for parent in _cgroup_parents():
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            if _util.owner_dead(name):
                _remove_cgroup(os.path.join(parent, name))
    mounted = set(_our_mounts())
    for tmp in sorted({tempfile.gettempdir(), "/var/tmp"}):
        try:
            names = os.listdir(tmp)
        except OSError:
            continue
        for name in names:
            path = os.path.join(tmp, name)
            if not _util.owner_dead(name) or path in mounted:
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def _our_mounts():
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mnt = line.split()[4].replace("\\040", " ")
                if os.path.basename(mnt).startswith(_util.PREFIX):
                    out.append(mnt)
    except OSError:
        pass
    return out


def _our_loops():
    out = []
    try:
        names = os.listdir("/sys/block")
    except OSError:
        return out
    for name in names:
        if not name.startswith("loop"):
            continue
        try:
            backing = _util.read_text("/sys/block/%s/loop/backing_file" % name).strip()
        except OSError:
            continue
        backing = backing.replace(" (deleted)", "")
        if os.path.basename(backing).startswith(_util.PREFIX):
            out.append((name, backing))
    return out


# ---------------------------------------------------------------------------------------
# loop devices

class LoopDevice(object):
    """An attached loop device: ``path`` (/dev/loopN), ``name`` (loopN), ``major``,
    ``minor``, ``majmin`` ("7:N"), ``devt``, ``backing`` (the image file), ``size``."""

    def __init__(self, path, backing, size):
        self.path, self.backing, self.size = path, backing, size
        self.name = os.path.basename(path)
        st = os.stat(path)
        self.devt = st.st_rdev
        self.major, self.minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        self.majmin = "%d:%d" % (self.major, self.minor)

    def stat(self):
        """/sys/block/NAME/stat as a dict (read_ios, read_sectors, write_ios, ...)."""
        return _util.block_stat(self.name)

    def settle(self, quiet=0.1, timeout=3.0):
        """Wait until udev probing is over and the I/O counters have been still a while."""
        udevadm = _util.which("udevadm")
        if udevadm:
            _util.run([udevadm, "settle", "-t", "5"], check=False, timeout=10)
        deadline = time.monotonic() + timeout
        last = self.stat()
        still_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now = self.stat()
            if now != last:
                last, still_since = now, time.monotonic()
            elif now["in_flight"] == 0 and time.monotonic() - still_since >= quiet:
                return

    def __repr__(self):
        return "LoopDevice(%s %s, %s)" % (self.path, self.majmin, self.backing)


def _attach(backing):
    for attempt in range(5):
        p = _util.run(["losetup", "--find", "--show", backing], check=False)
        if p.returncode == 0 and p.stdout.strip():
            return p.stdout.strip()
        time.sleep(0.05 * (attempt + 1))
    raise WorkloadError("losetup could not attach %s: %s" % (backing, p.stderr.strip()))


def _detach(dev):
    for _ in range(50):
        p = _util.run(["losetup", "-d", dev], check=False)
        if p.returncode == 0 or "No such device" in p.stderr:
            return
        time.sleep(0.1)
    _util.run(["losetup", "-d", dev], check=False)


def _image_file(size_mb, directory=None):
    d = directory or tempfile.gettempdir()
    path = os.path.join(d, _util.unique_name("img") + ".img")
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)
    return path


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _count_io(dev):
    """Loop devices are reused: a run that switched off I/O accounting on this one (a test of
    the tracepoints without iostats) must not leave our /sys/block/*/stat checks at zero."""
    path = "/sys/block/%s/queue/iostats" % os.path.basename(dev)
    try:
        with open(path, "w") as f:
            f.write("1")
    except OSError:
        pass


@contextlib.contextmanager
def loop_device(size_mb=64, directory=None, backing=None):
    """A loop device over a fresh sparse image of ``size_mb`` MiB (or over ``backing``).

    Yields a LoopDevice; detaches it and deletes the image on exit.
    """
    _util.require_root()
    _util.need_cmd("losetup")
    sweep_stale()
    own = backing is None
    if own:
        backing = _image_file(size_mb, directory)
    t_file = _util.at_exit(lambda: _unlink(backing)) if own else None
    try:
        dev = _attach(backing)
        t_dev = _util.at_exit(lambda: _detach(dev))
        _count_io(dev)
        try:
            loop = LoopDevice(dev, backing, os.path.getsize(backing))
            loop.settle()
            yield loop
        finally:
            _detach(dev)
            _util.done(t_dev)
    finally:
        if own:
            _unlink(backing)
            _util.done(t_file)


class Ext4Image(object):
    """A mounted ext4 file system on a loop device: ``loop`` (LoopDevice), ``mountpoint``,
    ``device`` (/dev/loopN), ``name`` (loopN), ``majmin``, ``devt`` (st_dev of its files)."""

    def __init__(self, loop, mountpoint):
        self.loop, self.mountpoint = loop, mountpoint
        self.device, self.name, self.majmin = loop.path, loop.name, loop.majmin
        self.devt = os.stat(mountpoint).st_dev

    def path(self, *parts):
        return os.path.join(self.mountpoint, *parts)

    def stat(self):
        return self.loop.stat()

    def settle(self):
        self.loop.settle()

    def __repr__(self):
        return "Ext4Image(%s on %s)" % (self.device, self.mountpoint)


def _umount(mnt):
    for _ in range(30):
        p = _util.run(["umount", mnt], check=False)
        if p.returncode == 0 or "not mounted" in p.stderr:
            break
        time.sleep(0.1)
    else:
        _util.run(["umount", "-l", mnt], check=False)
    try:
        os.rmdir(mnt)
    except OSError:
        pass


@contextlib.contextmanager
def ext4_image(size_mb=64, mount_options="", directory=None):
    """A fresh ext4 file system (mkfs.ext4 with eager inode-table and journal init, so no
    background init I/O follows) on a loop device, mounted on a temporary directory.

    Yields an Ext4Image; unmounts, detaches and deletes everything on exit.
    """
    _util.require_root()
    mkfs = _util.need_cmd("mkfs.ext4")
    _util.need_cmd("mount")
    sweep_stale()
    image = _image_file(size_mb, directory)
    t_file = _util.at_exit(lambda: _unlink(image))
    try:
        _util.run([mkfs, "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
                   "-L", "ttwl", image])
        with loop_device(backing=image) as loop:
            mnt = os.path.join(tempfile.gettempdir(), _util.unique_name("mnt"))
            os.mkdir(mnt, 0o755)
            t_mnt = _util.at_exit(lambda: _umount(mnt))
            try:
                argv = ["mount", "-t", "ext4"]
                if mount_options:
                    argv += ["-o", mount_options]
                _util.run(argv + [loop.path, mnt])
                img = Ext4Image(loop, mnt)
                loop.settle()
                yield img
            finally:
                _umount(mnt)
                _util.done(t_mnt)
    finally:
        _unlink(image)
        _util.done(t_file)


# ---------------------------------------------------------------------------------------
# cgroups (v2 where the controller is there, else v1)

_V1_NAMES = {"io": "blkio", "memory": "memory", "cpu": "cpu", "pids": "pids"}


def _cgroup_mounts():
    """(v2 mount or None, {v1 controller: mount})."""
    v2, v1 = None, {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(rfields) < 3:
                continue
            fstype, opts = rfields[0], rfields[2].split(",")
            if fstype == "cgroup2" and v2 is None:
                v2 = fields[4]
            elif fstype == "cgroup":
                for o in opts:
                    v1.setdefault(o, fields[4])
    return v2, v1


def _cgroup_parents():
    v2, v1 = _cgroup_mounts()
    out = set()
    if v2:
        out.add(v2)
    for mnt in v1.values():
        out.add(mnt)
        for path in _self_cgroups().values():
            out.add(os.path.join(mnt, path.lstrip("/")))
    return [p for p in out if os.path.isdir(p)]


def _self_cgroups():
    """{controller or "" (v2): path} from /proc/self/cgroup."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                out[c] = path
    return out


def _remove_cgroup(path):
    deadline = time.monotonic() + 5
    while True:
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.rmdir(path)
            return
        except OSError as e:
            if e.errno == errno.ENOENT:
                return
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)


class Cgroup(object):
    """A fresh cgroup with the given controllers; ``dirs`` maps each controller to its
    directory and ``version`` to 1 or 2."""

    def __init__(self, controllers):
        v2, v1 = _cgroup_mounts()
        v2_ctrls = []
        if v2:
            try:
                v2_ctrls = _util.read_text(os.path.join(v2, "cgroup.subtree_control")).split()
                avail = _util.read_text(os.path.join(v2, "cgroup.controllers")).split()
            except OSError:
                v2_ctrls, avail = [], []
            for c in controllers:
                # available at the root but not delegated to its children (e.g. io on a
                # systemd machine where no unit asked for it): enable it, as systemd would
                if c in avail and c not in v2_ctrls:
                    try:
                        with open(os.path.join(v2, "cgroup.subtree_control"), "w") as f:
                            f.write("+" + c)
                        v2_ctrls.append(c)
                    except OSError:
                        pass
        mine = _self_cgroups()
        self.name = _util.unique_name("cg")
        self.dirs, self.version = {}, {}
        self._made = []
        try:
            for c in controllers:
                if c in v2_ctrls:
                    d = os.path.join(v2, self.name)
                    self.version[c] = 2
                elif _V1_NAMES.get(c, c) in v1:
                    v1name = _V1_NAMES.get(c, c)
                    mnt = v1[v1name]
                    parent = os.path.join(mnt, mine.get(v1name, "/").lstrip("/"))
                    if not os.access(parent, os.W_OK):
                        parent = mnt
                    d = os.path.join(parent, self.name)
                    self.version[c] = 1
                else:
                    _util.unavailable("no cgroup hierarchy offers the %s controller" % c)
                if d not in self._made:
                    os.mkdir(d)
                    self._made.append(d)
                self.dirs[c] = d
        except BaseException:
            self.remove()
            raise
        self._token = _util.at_exit(self.remove)

    def _file(self, controller, v2name, v1name):
        return os.path.join(self.dirs[controller],
                            v2name if self.version[controller] == 2 else v1name)

    def write(self, controller, v2name, v1name, value):
        with open(self._file(controller, v2name, v1name), "w") as f:
            f.write(str(value))

    def read(self, controller, v2name, v1name):
        return _util.read_text(self._file(controller, v2name, v1name))

    def add(self, pid):
        """Move ``pid`` into the cgroup (in every hierarchy it spans)."""
        for d in self._made:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(pid))

    def procs(self):
        out = set()
        for d in self._made:
            out.update(int(x) for x in _util.read_text(os.path.join(d, "cgroup.procs")).split())
        return sorted(out)

    # memory
    def limit_memory(self, limit_bytes):
        """Hard limit, and no swap so the limit ends in the OOM killer, not in swapping."""
        if self.version["memory"] == 2:
            self.write("memory", "memory.max", None, limit_bytes)
            if os.path.exists(os.path.join(self.dirs["memory"], "memory.swap.max")):
                self.write("memory", "memory.swap.max", None, 0)
        else:
            self.write("memory", None, "memory.limit_in_bytes", limit_bytes)
            if os.path.exists(os.path.join(self.dirs["memory"], "memory.memsw.limit_in_bytes")):
                self.write("memory", None, "memory.memsw.limit_in_bytes", limit_bytes)
            if os.path.exists(os.path.join(self.dirs["memory"], "memory.swappiness")):
                try:
                    self.write("memory", None, "memory.swappiness", 0)
                except OSError:
                    pass

    def oom_kills(self):
        """How many processes the OOM killer has killed in this cgroup."""
        text = self.read("memory", "memory.events", "memory.oom_control")
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return 0

    # io
    def throttle_io(self, majmin, rbps=None, wbps=None):
        """Block-I/O bandwidth limits (bytes/s) on one device for the cgroup's bios."""
        if self.version["io"] == 2:
            parts = [majmin]
            if rbps:
                parts.append("rbps=%d" % rbps)
            if wbps:
                parts.append("wbps=%d" % wbps)
            self.write("io", "io.max", None, " ".join(parts))
        else:
            if rbps:
                self.write("io", None, "blkio.throttle.read_bps_device", "%s %d" % (majmin, rbps))
            if wbps:
                self.write("io", None, "blkio.throttle.write_bps_device", "%s %d" % (majmin, wbps))

    def remove(self):
        for d in reversed(self._made):
            _remove_cgroup(d)
        self._made = []
        _util.done(getattr(self, "_token", None))


@contextlib.contextmanager
def cgroup(*controllers):
    """A fresh cgroup with ``controllers`` ("memory", "io", ...), v2 if the unified hierarchy
    has the controller enabled at its root, else v1 (nested under this process's own v1
    cgroup when possible).  Yields a Cgroup; kills what is left in it and removes it on exit.
    """
    _util.require_root()
    sweep_stale()
    cg = Cgroup(controllers)
    try:
        yield cg
    finally:
        cg.remove()


# ---------------------------------------------------------------------------------------
# network namespace pair

class NetnsEnd(object):
    def __init__(self, ns, dev, addr4, addr6):
        self.ns, self.dev, self.addr4, self.addr6 = ns, dev, addr4, addr6

    def addr(self, family):
        return self.addr4 if family == 4 else self.addr6

    def __repr__(self):
        return "NetnsEnd(%s %s %s %s)" % (self.ns, self.dev, self.addr4, self.addr6)


class NetnsPair(object):
    """Two network namespaces joined by a veth pair: ``a`` and ``b`` are NetnsEnd objects
    (``ns``, ``dev``, ``addr4``, ``addr6``; ``prefix4``/``prefix6`` give the prefix lengths)."""

    prefix4, prefix6 = 24, 64

    def __init__(self, a, b):
        self.a, self.b = a, b

    @staticmethod
    def exec_prefix(ns):
        """argv prefix that runs a command inside ``ns`` (the command keeps its pid)."""
        return [_util.need_cmd("ip"), "netns", "exec", ns]

    def run(self, ns, argv, check=True):
        return _util.run(self.exec_prefix(ns) + list(argv), check=check)

    def ip(self, ns, *args):
        return _util.run(["ip", "-n", ns] + list(args))

    def tcp_counters(self, ns):
        """The Tcp: counters of /proc/net/snmp inside ``ns`` (RetransSegs, OutSegs, ...)."""
        text = self.run(ns, ["cat", "/proc/net/snmp"]).stdout
        rows = [l.split()[1:] for l in text.splitlines() if l.startswith("Tcp:")]
        return dict(zip(rows[0], (int(x) for x in rows[1])))


def _delete_netns(ns):
    p = _util.run(["ip", "netns", "pids", ns], check=False)
    for pid in p.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    for _ in range(20):
        q = _util.run(["ip", "netns", "del", ns], check=False)
        if q.returncode == 0 or not os.path.exists("/run/netns/" + ns):
            return
        time.sleep(0.05)


@contextlib.contextmanager
def netns_pair(addr4=("10.213.0.1", "10.213.0.2"), addr6=("fd74:7474::1", "fd74:7474::2")):
    """Two fresh network namespaces, ``a`` and ``b``, joined by a veth pair with IPv4 /24
    and IPv6 /64 addresses (no DAD, permanent neighbour entries: usable at once, no ARP or
    neighbour discovery traffic) and loopback up in both.  The default
    addresses are private to the pair, so concurrent pairs do not clash.

    Yields a NetnsPair; kills the processes left inside and deletes both on exit.
    """
    _util.require_root()
    _util.need_cmd("ip")
    sweep_stale()
    na, nb = _util.unique_name("nsa"), _util.unique_name("nsb")
    tag = "%d%d" % (os.getpid() % 100000, next(_util._counter))
    da, db = ("tw%sa" % tag)[:15], ("tw%sb" % tag)[:15]
    created = []
    token = _util.at_exit(lambda: [_delete_netns(n) for n in created])
    try:
        for n in (na, nb):
            _util.run(["ip", "netns", "add", n])
            created.append(n)
            # no duplicate address detection: a tentative link-local address would delay
            # neighbour discovery and lose the first packets (a SYN retransmitted after 1 s)
            _util.run(["ip", "netns", "exec", n, "sh", "-c",
                       "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad; "
                       "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad"], check=False)
        _util.run(["ip", "link", "add", da, "netns", na, "type", "veth", "peer", "name", db,
                   "netns", nb])
        for n, d, a4, a6 in ((na, da, addr4[0], addr6[0]), (nb, db, addr4[1], addr6[1])):
            _util.run(["ip", "-n", n, "addr", "add", "%s/24" % a4, "dev", d])
            _util.run(["ip", "-n", n, "addr", "add", "%s/64" % a6, "dev", d, "nodad"])
            _util.run(["ip", "-n", n, "link", "set", d, "up"])
            _util.run(["ip", "-n", n, "link", "set", "lo", "up"])
        # Permanent neighbour entries: no ARP / neighbour discovery at all.  (A fresh
        # device joins its solicited-node multicast groups late, so the first IPv6
        # neighbour solicitation is lost and the first packet waits a second.)
        macs = {}
        for n, d in ((na, da), (nb, db)):
            out = _util.run(["ip", "-n", n, "-o", "link", "show", "dev", d]).stdout.split()
            macs[n] = out[out.index("link/ether") + 1]
        for n, d, peer, peer_addrs in ((na, da, nb, (addr4[1], addr6[1])),
                                       (nb, db, na, (addr4[0], addr6[0]))):
            for a in peer_addrs:
                _util.run(["ip", "-n", n, "neigh", "replace", a, "lladdr", macs[peer], "dev",
                           d, "nud", "permanent"])
        for n in (na, nb):
            _util.wait_until(lambda: not _util.run(
                ["ip", "-n", n, "-6", "addr", "show", "tentative"]).stdout.strip(), 3)
        yield NetnsPair(NetnsEnd(na, da, addr4[0], addr6[0]), NetnsEnd(nb, db, addr4[1], addr6[1]))
    finally:
        for n in reversed(created):
            _delete_netns(n)
        _util.done(token)
