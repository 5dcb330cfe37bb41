"""Hardware events: names, and the one-line message where the CPU exposes no PMU (this
development VM); where one exists, samples of a busy child are counted."""
import pytest

from tinytrace.errors import UserError
from tinytrace.kernel import hwevents, maps, progs

from . import bpfprogs as bp
from .workload import Child

pytestmark = pytest.mark.guest_safe


def test_names():
    assert hwevents.config("cpu-cycles") == 0 and hwevents.config("cycles") == 0
    assert hwevents.config("instructions") == 1 and hwevents.config("cache-misses") == 3
    assert hwevents.config("branches") == 4 and hwevents.config("ref-cycles") == 9
    with pytest.raises(UserError) as e:
        hwevents.config("cache-hits")
    assert "unknown hardware event 'cache-hits'" in str(e.value)


@pytest.mark.bpf
def test_message_without_a_pmu():
    if hwevents.has_pmu():
        pytest.skip("this machine has a CPU PMU")
    with pytest.raises(hwevents.HardwareUnavailable) as e:
        hwevents.check("cache-misses")
    msg = str(e.value)
    assert msg.startswith("hardware:cache-misses: this machine exposes no hardware "
                          "performance counters")
    assert "software:cpu-clock" in msg and "\n" not in msg and e.value.exit_code == 1
    with maps.Map.create("array", 4, 8, 4) as m, \
            progs.load(bp.counter(m.fd, 1), "perf_event", "t_hw") as p:
        with pytest.raises(hwevents.HardwareUnavailable):
            hwevents.attach(p, "cycles", period=100000)


@pytest.mark.bpf
def test_cycles_of_a_busy_child(tmp_path):
    if not hwevents.has_pmu():
        pytest.skip("no CPU PMU here")
    with Child(tmp_path) as w, maps.Map.create("array", 4, 8, 4) as m:
        with progs.load(bp.counter(m.fd, w.pid), "perf_event", "t_cyc") as p:
            with hwevents.attach(p, "cycles", period=1000000):
                w.do("busy", 1)
        assert bp.value(m, 0) > 0
