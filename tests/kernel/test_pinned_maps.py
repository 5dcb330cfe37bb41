"""Pinned maps: a map pinned in a bpffs mount (BPF_OBJ_PIN) is opened again by path
(BPF_OBJ_GET) with the kernel's own description of it (BPF_OBJ_GET_INFO_BY_FD)."""
import errno
import os
import uuid

import pytest

from tinytrace.kernel import bpf, maps

pytestmark = pytest.mark.bpf


@pytest.fixture
def bpffs(bpf):
    from tests.tools.containers import bpffs_dir
    return bpffs_dir()


def _path(d):
    return os.path.join(d, "tt_pin_" + uuid.uuid4().hex[:8])


def test_pin_then_open_by_path_shares_the_map(bpffs):
    path = _path(bpffs)
    with maps.Map.create("hash", 8, 4, 32, name="tt_pinned") as m:
        m.pin(path)
        try:
            with maps.Map.open_pinned(path) as again:
                assert (again.kind, again.key_size, again.value_size, again.max_entries,
                        again.name) == ("hash", 8, 4, 32, "tt_pinned")
                again.update(77, 5)
                assert m.lookup(77) == (5).to_bytes(4, "little" if os.sys.byteorder ==
                                                    "little" else "big")
                info = maps.map_info(again.fd)
                assert info.id == maps.map_info(m.fd).id      # the same kernel object
        finally:
            os.unlink(path)


def test_missing_path_is_enoent(bpffs):
    with pytest.raises(bpf.BpfError) as e:
        maps.Map.open_pinned(_path(bpffs))
    assert e.value.errno == errno.ENOENT


def test_a_file_outside_bpffs_is_refused(bpf):
    with pytest.raises(OSError):
        maps.Map.open_pinned("/proc/self/status")


def test_a_pinned_program_is_not_a_map(bpffs):
    from tinytrace.asm import Exit, Mov, link
    from tinytrace.kernel import progs
    prog = progs.load(link([Mov.Imm(0, 0), Exit()]), "socket_filter", "tt_pinprog")
    path = _path(bpffs)
    try:
        bpf.obj_pin(prog.fileno(), path)
        with pytest.raises(maps.NotAMapError) as e:
            maps.Map.open_pinned(path)
        assert "not a map" in str(e.value)
    finally:
        if os.path.exists(path):
            os.unlink(path)
        prog.close()
