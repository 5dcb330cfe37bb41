"""--cgroupmap / --mntnsmap (BCC's container filters) on every tool that has them.

The filter map is made the way a container manager would make it: a hash map with 8-byte
keys pinned in bpffs (here with tinytrace's kernel layer instead of bpftool), holding the
cgroup id (the inode number of the cgroup v2 directory) or the mount namespace id
(/proc/PID/ns/mnt -> mnt:[INUM]) of the tasks to trace.  Workloads inside and outside
run side by side; only the one inside may show up.
"""
import os
import subprocess
import sys
import uuid

import pytest

from tests.tools.containers import cgroup2, mntns_id, pinned_map
from tests.tools.util import ToolRun, run_tool
from tests.workloads import opens
from tests.workloads.files import Opens

pytestmark = pytest.mark.bpf

TOOLS = ("capable", "execsnoop", "opensnoop", "profile", "tcpaccept", "tcpconnect", "tcptop")


def _opensnoop(args, inside, outside):
    run = ToolRun(["opensnoop"] + args, ready="PATH")
    try:
        run.started()
        rec_in = inside.go()
        rec_out = outside.go()
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    rows = [l.split() for l in run.stdout.splitlines()[1:] if l.strip()]
    return rows, rec_in, rec_out


def _check_only_inside(rows, rec_in, rec_out):
    # every line is the inside workload's, and each of its calls is there
    assert rows, "nothing traced"
    assert {int(r[0]) for r in rows} == {rec_in.pid}, rows
    paths = [r[-1] for r in rows]
    for call in rec_in.calls:
        assert call.path in paths
    assert not [p for p in paths if p.startswith(rec_out.dir)]


def test_opensnoop_cgroupmap_traces_only_the_cgroup_in_the_map():
    with cgroup2() as cg, opens() as inside, opens() as outside:
        cg.add(inside.pid)
        with pinned_map([cg.id]) as path:
            rows, rec_in, rec_out = _opensnoop(["--cgroupmap", path], inside, outside)
    _check_only_inside(rows, rec_in, rec_out)


class _OpensInNewMountNs(Opens):
    """The opens workload, run by ``unshare -m`` (which execs it: same pid)."""

    def spawn(self, key, target, cfg=None, comm=None, **kw):
        kw["wrap"] = ["unshare", "-m"]
        return Opens.spawn(self, key, target, cfg, comm, **kw)


def test_opensnoop_mntnsmap_traces_only_the_mount_namespace_in_the_map():
    if not os.path.exists("/usr/bin/unshare") and not os.path.exists("/bin/unshare"):
        pytest.skip("no unshare command")
    with _OpensInNewMountNs() as inside, opens() as outside:
        ns = mntns_id(inside.pid)
        assert ns != mntns_id(outside.pid)
        with pinned_map([ns]) as path:
            rows, rec_in, rec_out = _opensnoop(["--mntnsmap", path], inside, outside)
    _check_only_inside(rows, rec_in, rec_out)


def test_execsnoop_cgroupmap_traces_only_execs_in_the_cgroup():
    mark_in = "tt-cgin-" + uuid.uuid4().hex[:8]
    mark_out = "tt-cgout-" + uuid.uuid4().hex[:8]
    with cgroup2() as cg, pinned_map([cg.id]) as path:
        run = ToolRun(["execsnoop", "--cgroupmap", path], ready="PCOMM")
        try:
            run.started()
            p_in = subprocess.Popen(["/bin/true", mark_in], preexec_fn=cg.preexec())
            p_in.wait()
            p_out = subprocess.Popen(["/bin/true", mark_out])
            p_out.wait()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    lines = [l for l in run.stdout.splitlines()[1:] if l.strip()]
    assert len(lines) == 1, run.stdout          # nothing else runs in that cgroup
    cols = lines[0].split(None, 4)
    assert cols[0] == "true" and int(cols[1]) == p_in.pid
    assert cols[4] == "/bin/true " + mark_in
    assert mark_out not in run.stdout


def test_an_empty_map_lets_nothing_through():
    with opens() as w, pinned_map([]) as path:
        rows, rec, _ = _opensnoop(["--cgroupmap", path, "-p", str(w.pid)], w, _Done())
    assert rows == []


class _Done(object):
    def go(self):
        return None


@pytest.mark.parametrize("tool", TOOLS)
def test_help_shows_both_options(tool):
    rc, out, err = run_tool([tool, "-h"])
    assert rc == 0, err
    assert "--cgroupmap MAPPATH" in out and "--mntnsmap MAPPATH" in out
    assert "cgroup (v2) ID is a key of this pinned BPF hash map" in " ".join(out.split())


def test_the_options_exclude_each_other():
    rc, out, err = run_tool(["opensnoop", "--cgroupmap", "/a", "--mntnsmap", "/b"])
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "not allowed with argument --cgroupmap" in err


@pytest.mark.parametrize("tool", ("opensnoop", "execsnoop"))
def test_bad_paths_are_one_line_exit_2(tool):
    from tests.tools.containers import bpffs_dir
    missing = os.path.join(bpffs_dir(), "tt_missing_" + uuid.uuid4().hex[:8])
    cases = [
        ("--cgroupmap", missing, "--cgroupmap: no such file: " + missing),
        ("--mntnsmap", "/etc/hostname" if os.path.exists("/etc/hostname") else "/proc/version",
         "is not a pinned BPF map"),
    ]
    for option, path, text in cases:
        rc, out, err = run_tool([tool, option, path])
        assert rc == 2, err
        assert err.count("\n") == 1 and text in err, err
        assert "Traceback" not in err
    with pinned_map([], key_size=4) as path:
        rc, out, err = run_tool([tool, "--cgroupmap", path])
    assert rc == 2
    assert err.strip() == ("tinytrace: --cgroupmap: the map at %s has 4-byte keys; cgroup "
                           "IDs are 8 bytes (u64)" % path)


def test_mntnsmap_without_btf_says_so():
    with pinned_map([]) as path:
        rc, out, err = run_tool(["opensnoop", "--mntnsmap", path],
                                env={"TINYTRACE_TARGET": "btf=0"})
    assert rc == 1 and err.count("\n") == 1
    assert "--mntnsmap" in err and "needs the kernel's BTF" in err


@pytest.mark.parametrize("tool", ("capable", "profile", "tcpaccept", "tcpconnect", "tcptop"))
def test_each_tools_filtered_script_loads(tool):
    # the verifier accepts every tool's script with the filter, in both flavours
    import importlib
    from tinytrace import toolkit
    from tinytrace.kernel import maps
    from tinytrace.script import Script
    mod = importlib.import_module("tinytrace.tools." + tool)
    opts = mod.parse_args([])
    for cond, name in (("has_key(%s, cgroup)" % toolkit.CGROUP_MAP, toolkit.CGROUP_MAP),
                       ("has_key(%s, %s)" % (toolkit.MNTNS_MAP, toolkit.MNTNS_ID),
                        toolkit.MNTNS_MAP)):
        if tool == "capable":
            text = mod.script_text(opts, os.getpid(), cond)
        elif tool == "tcpaccept":
            text = mod.script_text(opts, mod.accept_syscalls(), cond)
        elif tool == "tcpconnect":
            text = mod.script_text(opts, container=cond)[0]
        else:
            text = mod.script_text(opts, cond)
        assert cond in text
        with maps.Map.create("hash", 8, 8, 8) as m:
            s = Script(text, tool=tool, maps={name: m})
            with s.start():
                pass
