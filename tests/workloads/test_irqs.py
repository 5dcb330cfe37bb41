"""net_softirqs() and disk_irqs() raise the interrupts their records name: /proc/softirqs and
/proc/interrupts deltas, confirmed by the irq: tracepoints (bpftrace)."""
import os

import pytest

from tests.workloads import disk_irqs, net_softirqs
from tests.workloads.oracle import Bpftrace

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

NET_RX_VEC = 3


def test_loopback_traffic_raises_net_rx():
    w = net_softirqs(nbytes=8 << 20)
    with w:
        script = "tracepoint:irq:softirq_entry { @vec[args->vec] = count(); }"
        with Bpftrace(script) as bt:
            rec = w.go()
    assert rec.expect == ["NET_RX"]
    assert rec.softirqs["NET_RX"] >= 1
    assert sum(rec.softirqs_per_cpu["NET_RX"]) == rec.softirqs["NET_RX"]
    assert bt.maps["@vec"][str(NET_RX_VEC)] >= 1
    assert rec.session.sent == rec.bytes == 8 << 20
    assert rec.comm == "tt-tcpcli" and rec.server.comm == "tt-tcpsrv"


def test_direct_disk_reads_raise_the_disk_interrupt():
    w = disk_irqs(reads=32, size=65536)
    with w:
        path = w.path
        script = "tracepoint:irq:irq_handler_entry { @irq[args->irq, str(args->name)] = count(); }"
        with Bpftrace(script) as bt:
            rec = w.go()
        assert os.path.exists(path)
    assert not os.path.exists(path)
    assert rec.diskstat_delta["read_ios"] >= rec.reads
    assert rec.disk_irqs, rec.irq_deltas
    fired = {}
    for key, n in bt.maps["@irq"].items():
        irq, _, name = key.partition(",")
        fired[(int(irq), name.strip().strip('"'))] = n
    for d in rec.disk_irqs:
        assert d.delta >= 1
        assert fired.get((d.irq, d.name), 0) >= 1, (d, fired)
    assert sum(d.delta for d in rec.disk_irqs) >= 1
