"""Interrupt workloads: loopback TCP traffic for NET_RX softirqs (softirqs) and direct reads
from a real disk for its completion interrupts (hardirqs).  The independent record is the
delta of /proc/softirqs and /proc/interrupts over the run: system-wide counters, so they
include other activity too -- they are lower bounds for a tool, not exact values."""
import os
import tempfile

from tests.workloads import _util
from tests.workloads._held import Workload
from tests.workloads._util import WorkloadError

SOFTIRQ_NAMES = ("HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED",
                 "HRTIMER", "RCU")


def _softirq_delta(before, after):
    out = {}
    for name, counts in after.items():
        prev = before.get(name, [0] * len(counts))
        out[name] = [a - b for a, b in zip(counts, prev)]
    return out


class NetSoftirqs(Workload):
    comm = "tt-tcpcli"

    def __init__(self, nbytes=8 << 20):
        super(NetSoftirqs, self).__init__()
        self.nbytes = nbytes

    def _start(self):
        from tests.workloads.net import tcp_sessions
        self.tcp = self.enter(tcp_sessions(families=(4,), send=self.nbytes, recv=0, hold=0,
                                           refused=False))
        self.children = self.tcp.children

    def _go(self, timeout):
        before = _util.softirqs()
        rec = self.tcp.go(timeout)
        after = _util.softirqs()
        per_cpu = _softirq_delta(before, after)
        totals = {k: sum(v) for k, v in per_cpu.items()}
        if totals.get("NET_RX", 0) < 1:
            raise WorkloadError("no NET_RX softirq during loopback traffic: %s" % totals)
        return {"pid": rec["pid"], "comm": rec["comm"], "server": rec["server"],
                "session": rec["sessions"][0], "bytes": self.nbytes,
                "softirqs": totals, "softirqs_per_cpu": per_cpu, "expect": ["NET_RX"]}


def net_softirqs(nbytes=8 << 20):
    """softirqs: ``nbytes`` sent over one loopback IPv4 TCP connection (client comm
    ``tt-tcpcli``, server ``tt-tcpsrv``): every loopback packet is received in the NET_RX
    softirq.

    Record: ``pid``/``comm`` (client), ``server``, ``session`` (as in tcp_sessions),
    ``bytes``, ``softirqs`` {NAME: delta over the run, all CPUs} and ``softirqs_per_cpu``
    {NAME: [delta per CPU]} from /proc/softirqs (names as there: NET_RX, TIMER, ...; tools
    print them in lower case), ``expect`` (["NET_RX"]: the vectors this traffic raises).
    """
    return NetSoftirqs(nbytes)


# ---------------------------------------------------------------------------------------
# disk interrupts

def _block_backed_dir():
    """(directory, disk name, device basename) for a directory on a real disk, or None."""
    for d in ("/var/tmp", tempfile.gettempdir(), _util.REPO, os.path.expanduser("~")):
        try:
            st = os.stat(d)
        except OSError:
            continue
        sysdev = "/sys/dev/block/%d:%d" % (os.major(st.st_dev), os.minor(st.st_dev))
        if not os.path.exists(sysdev):
            continue
        real = os.path.realpath(sysdev)
        if os.path.exists(os.path.join(real, "partition")):
            real = os.path.dirname(real)
        disk = os.path.basename(real)
        if disk.startswith(("loop", "zram", "ram", "dm-", "md", "nbd")):
            continue
        dev = os.path.join(real, "device")
        if not os.path.exists(dev):
            continue
        devreal = os.path.realpath(dev)
        names = [os.path.basename(devreal), os.path.basename(os.path.dirname(devreal))]
        if os.access(d, os.W_OK):
            return d, disk, names
    return None


class DiskIrqs(Workload):
    comm = "tt-diskirq"

    def __init__(self, reads=32, size=65536):
        super(DiskIrqs, self).__init__()
        self.reads, self.size = reads, size

    def _start(self):
        _util.require_root()
        found = _block_backed_dir()
        if found is None:
            _util.unavailable("no writable directory on a real disk (virtio, nvme, sd...)")
        d, self.disk, self.dev_names = found
        self.path = os.path.join(d, _util.unique_name("irq") + ".dat")
        self.cleanup(_unlink, self.path)
        with open(self.path, "wb") as f:
            f.write(os.urandom(self.size) * self.reads)
            f.flush()
            os.fsync(f.fileno())
        self.spawn("main", "tests.workloads.irqs:_diskirq_child",
                   {"path": self.path, "reads": self.reads, "size": self.size},
                   comm=self.comm)

    def _go(self, timeout):
        irq0, disk0 = _util.interrupts(), _util.block_stat(self.disk)
        rep = self.children["main"].step(timeout)
        irq1, disk1 = _util.interrupts(), _util.block_stat(self.disk)
        deltas = {}
        for label, info in irq1.items():
            d = info["total"] - irq0.get(label, {"total": 0})["total"]
            if d > 0:
                deltas[label] = {"name": info["name"], "delta": d}
        disk_irqs = []
        for label, info in irq1.items():
            if not label.isdigit() or label not in deltas:
                continue
            if any(n and n in info["desc"] for n in self.dev_names):
                disk_irqs.append({"irq": int(label), "name": info["name"],
                                  "delta": deltas[label]["delta"]})
        return {"pid": self.pid, "tid": rep["tid"], "comm": self.comm, "path": self.path,
                "disk": self.disk, "reads": self.reads, "size": self.size,
                "device_names": self.dev_names, "disk_irqs": disk_irqs,
                "irq_deltas": deltas, "diskstat_delta": _util.diff_counts(disk0, disk1)}


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _diskirq_child(cfg):
    from tests.workloads.block import _AlignedBuffer, _pread
    fd = os.open(cfg["path"], os.O_RDONLY | os.O_DIRECT)
    buf = _AlignedBuffer(cfg["size"])
    try:
        yield {}
        for i in range(cfg["reads"]):
            _pread(fd, buf, cfg["size"], i * cfg["size"])
        yield {"tid": _util.gettid()}
    finally:
        os.close(fd)


def disk_irqs(reads=32, size=65536):
    """hardirqs: a child (comm ``tt-diskirq``) doing ``reads`` O_DIRECT reads of ``size``
    bytes from a file on a real disk (the first writable one of: /var/tmp, the temp dir,
    the repository, ~), so each read is a device request completed by an interrupt.

    Record: ``pid``, ``tid``, ``comm``, ``path``, ``disk`` (e.g. vda), ``reads``, ``size``,
    ``device_names`` (the disk's device and its parent, e.g. virtio1 and 0000:00:02.0),
    ``disk_irqs`` (``irq``, ``name`` as /proc/interrupts and irq_handler_entry name it, e.g.
    "virtio1-req.0", ``delta``) for the disk's interrupt lines that fired, ``irq_deltas``
    {label: {``name``, ``delta``}} for every line that fired, ``diskstat_delta``.
    """
    return DiskIrqs(reads, size)
