"""Script maps bound to existing kernel maps (``Env.bind_map`` / ``Script(maps=...)``):
the program tests and updates the given map, nothing creates it, ``-d`` shows it."""
import io
import os

import pytest

from tinytrace.errors import SourceError
from tinytrace.kernel import maps
from tinytrace.script import Script

pytestmark = pytest.mark.bpf


def _getppid_script(pred):
    return ('tracepoint:syscalls:sys_enter_getppid /pid == %d && %s/ '
            '{ printf("%%d\\n", pid); }' % (os.getpid(), pred))


def _events(script, work):
    got = []
    script.on_printf(lambda values, index: got.append(values))
    with script.start():
        work()
        script.drain()
    return got


def test_has_key_sees_what_the_owner_put_in_the_map(bpf):
    me = os.getpid()
    with maps.Map.create("hash", 8, 8, 16, name="tt_allowed") as allowed:
        s = Script(_getppid_script("has_key(@allowed, (uint64)tid)"), maps={"@allowed": allowed})
        assert _events(s, os.getppid) == []          # empty: nothing passes
        allowed.update(me, 0)                        # the tid of the main thread is the pid
        s = Script(_getppid_script("has_key(@allowed, tid)"), maps={"@allowed": allowed})
        assert _events(s, os.getppid) == [[me]]
        assert allowed.fd >= 0                       # the runtime did not close it


def test_cgroup_and_mount_namespace_keys(bpf):
    from tinytrace import toolkit
    if not toolkit.has_btf():
        pytest.skip("curtask->nsproxy needs kernel BTF")
    from tests.tools.containers import mntns_id
    with maps.Map.create("hash", 8, 8, 16) as cg, maps.Map.create("hash", 8, 8, 16) as ns:
        text = _getppid_script("has_key(@cg, cgroup) && "
                               "has_key(@ns, curtask->nsproxy->mnt_ns->ns.inum)")
        ns.update(mntns_id(os.getpid()), 0)
        assert _events(Script(text, maps={"cg": cg, "ns": ns}), os.getppid) == []
        cg.update(os.stat(_own_cgroup_dir()).st_ino, 0)
        assert _events(Script(text, maps={"cg": cg, "ns": ns}), os.getppid) == [[os.getpid()]]


def _own_cgroup_dir():
    from tests.tools.containers import cgroup2_root
    with open("/proc/self/cgroup") as f:
        rel = [l.split(":", 2)[2].strip() for l in f if l.startswith("0::")]
    if not rel:
        pytest.skip("this process is in no cgroup v2 hierarchy (the qemu guests mount none)")
    return os.path.join(cgroup2_root(), rel[0].lstrip("/"))


def test_the_program_may_update_the_bound_map(bpf):
    with maps.Map.create("hash", 8, 4, 16) as seen:
        text = ('tracepoint:syscalls:sys_enter_getppid /pid == %d/ { @seen[pid] = 7; }'
                % os.getpid())
        s = Script(text, maps={"@seen": seen})
        with s.start():
            os.getppid()
        assert seen.lookup(os.getpid()) == (7).to_bytes(4, os.sys.byteorder)


def test_dump_names_the_existing_map_and_creates_nothing(bpf):
    from tinytrace.lang import compiler
    with maps.Map.create("hash", 8, 8, 16) as m:
        s = Script(_getppid_script("has_key(@allowed, cgroup)"), maps={"allowed": m})
        out = io.StringIO()
        compiler.dump(s.source, s.program, s.env, out)
        fd = m.fd
    text = out.getvalue()
    assert "; map m.allowed: hash key 8 value 8 entries 16 (existing map, fd %d)" % fd in text
    assert "map_lookup_elem" in text


def test_misuse_points_into_the_script():
    class Fake(object):
        fd, kind, key_size, value_size, max_entries = 99, "hash", 8, 8, 16
    with pytest.raises(SourceError) as e:
        Script('BEGIN { @allowed["text"] = 1; }', maps={"@allowed": Fake()})
    assert "existing map whose keys are uint64" in str(e.value)
    with pytest.raises(SourceError) as e:
        Script('BEGIN { @allowed = 1; }', maps={"@allowed": Fake()})
    assert "existing map with one 8-byte integer key" in str(e.value)
    with pytest.raises(SourceError) as e:
        Script('BEGIN { @allowed[1] = count(); }', maps={"@allowed": Fake()})
    assert "existing map whose values are uint64" in str(e.value)


def test_unsupported_sizes_and_kinds_are_refused():
    class Fake(object):
        fd, kind, key_size, value_size, max_entries = 99, "hash", 16, 8, 16
    with pytest.raises(ValueError) as e:
        Script('BEGIN { exit(); }', maps={"@m": Fake()})
    assert "key of 16 bytes" in str(e.value)
    Fake.key_size, Fake.kind = 8, "ringbuf"
    with pytest.raises(ValueError) as e:
        Script('BEGIN { exit(); }', maps={"@m": Fake()})
    assert "ringbuf map cannot be looked up" in str(e.value)
