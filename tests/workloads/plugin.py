"""pytest fixtures over the workload library.

Register for the whole suite with ``pytest_plugins = ["tests.workloads.plugin"]`` in the
root conftest, or import the fixtures a module needs (``from tests.workloads.plugin import
ext4_fs, workload``).

- ``loopdev``  a 64 MiB loop device (LoopDevice)
- ``ext4_fs``  a mounted 64 MiB ext4 image (Ext4Image)
- ``netns``    a netns pair joined by veth (NetnsPair)
- ``workload`` a starter: ``w = workload(opens())`` starts a workload now and closes it at
  teardown, whatever the test did.
"""
import pytest


@pytest.fixture
def loopdev():
    from tests.workloads.resources import loop_device
    with loop_device(64) as dev:
        yield dev


@pytest.fixture
def ext4_fs():
    from tests.workloads.resources import ext4_image
    with ext4_image(64) as img:
        yield img


@pytest.fixture
def netns():
    from tests.workloads.resources import netns_pair
    with netns_pair() as pair:
        yield pair


@pytest.fixture
def workload():
    started = []

    def start(w):
        started.append(w)
        return w.start()

    yield start
    for w in reversed(started):
        w.close()
