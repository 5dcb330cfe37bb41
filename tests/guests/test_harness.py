"""The guest harness's own parts, on the host: no qemu, no downloads, a few seconds.

The cpio writer, module ordering, the payload, apt output parsing, the test subset and its
plugin, the runqlat histogram checks, and above all that a guest cannot outlive its harness:
the reaper's timeout, and SIGKILL/SIGTERM of the harness, with ``sleep`` standing in for qemu.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.guests import arches, debian, harness, initramfs, pyz_checks, runner, subset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------- cpio

def test_cpio_newc_layout_and_round_trip(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "f.txt").write_bytes(b"hello")
    (tmp_path / "d" / "e" / "odd").write_bytes(b"x" * 5)
    os.chmod(str(tmp_path / "d" / "e" / "odd"), 0o755)
    os.symlink("f.txt", str(tmp_path / "d" / "link"))
    import io
    buf = io.BytesIO()
    w = initramfs.CpioWriter(buf)
    w.add_tree(str(tmp_path), prefix="root")
    w.add_file("init", b"#!/bin/sh\n", 0o755)
    w.finish()
    data = buf.getvalue()
    assert len(data) % 512 == 0
    assert data[:6] == b"070701"
    # first header: name size counts the NUL, header + name padded to 4
    namesize = int(data[94:102], 16)
    assert data[110:110 + namesize] == b"root/d\0"
    entries = {name: (mode, body) for name, mode, body in initramfs.read_cpio(data)}
    assert set(entries) == {"root/d", "root/d/e", "root/d/e/odd", "root/d/f.txt",
                            "root/d/link", "init"}
    assert entries["root/d/f.txt"][1] == b"hello"
    assert entries["root/d/e/odd"][0] == 0o100755
    assert entries["root/d/link"] == (0o120777, b"f.txt")
    assert entries["root/d"][0] & 0o170000 == 0o040000
    names = [n for n, _, _ in initramfs.read_cpio(data)]
    assert names.index("root/d") < names.index("root/d/e") < names.index("root/d/e/odd")
    # every uid/gid field is root
    pos = 0
    while data[pos:pos + 6] == b"070701":
        assert data[pos + 22:pos + 38] == b"0" * 16
        size = int(data[pos + 54:pos + 62], 16)
        nsz = int(data[pos + 94:pos + 102], 16)
        pos += 110 + nsz
        pos += (4 - pos % 4) % 4
        pos += size + (4 - size % 4) % 4


def test_read_cpio_rejects_garbage():
    with pytest.raises(ValueError):
        initramfs.read_cpio(b"not a cpio archive at all" + b"\0" * 200)


# ---------------------------------------------------------------- modules

def _fake_module(depends):
    return b"\x7fELF junk\0license=GPL\0depends=" + depends.encode() + b"\0vermagic=6.1\0"


def test_modules_come_after_their_dependencies():
    blobs = {"9p": _fake_module("9pnet,netfs"), "9pnet": _fake_module(""),
             "netfs": _fake_module("fscache"), "fscache": _fake_module(""),
             "9pnet_virtio": _fake_module("9pnet,virtio_ring"), "virtio_ring": _fake_module(""),
             "virtio_pci": _fake_module("virtio_pci_legacy_dev")}
    index = dict((k, k) for k in blobs)
    order = initramfs.resolve_modules(("virtio_pci", "9pnet_virtio", "9p"), index,
                                      builtin={"virtio_pci_legacy_dev"},
                                      read=lambda p: blobs[p])
    names = [n for n, _ in order]
    assert sorted(names) == sorted(set(blobs) - set())
    for mod, blob in order:
        for dep in initramfs.module_depends(blob):
            if dep in index:
                assert names.index(dep) < names.index(mod), (dep, mod)


def test_built_in_modules_are_skipped_and_unknown_ones_named():
    order = initramfs.resolve_modules(("virtio_pci",), {}, builtin={"virtio_pci"},
                                      read=lambda p: b"")
    assert order == []
    with pytest.raises(LookupError, match="9p"):
        initramfs.resolve_modules(("9p",), {}, builtin=set(), read=lambda p: b"")


def test_module_names_with_dashes_match(tmp_path):
    d = tmp_path / "usr/lib/modules/6.12.0/kernel/fs"
    d.mkdir(parents=True)
    (d / "nine-p.ko").write_bytes(_fake_module(""))
    import lzma
    with lzma.open(str(d / "net-x.ko.xz"), "wb") as f:
        f.write(_fake_module("nine_p"))
    idx = initramfs.module_index(str(tmp_path))
    assert set(idx) == {"nine_p", "net_x"}
    order = initramfs.resolve_modules(("net-x",), idx, set())
    assert [n for n, _ in order] == ["nine_p", "net_x"]


# ---------------------------------------------------------------- apt output, payload

def test_print_uris_parsing():
    text = textwrap.dedent("""\
        Reading package lists...
        'http://deb.debian.org/debian/pool/main/b/busybox/busybox-static_1%3a1.35.0-4+b1_arm64.deb' busybox-static_1%3a1.35.0-4+b1_arm64.deb 912340 SHA256:ab12
        'http://deb.debian.org/debian/pool/main/p/python3.11/python3.11_3.11.2-6_arm64.deb' python3.11_3.11.2-6_arm64.deb 573000 SHA256:cd34
        """)
    debs = debian.parse_print_uris(text)
    assert [(d.name, d.version, d.size) for d in debs] == [
        ("busybox-static", "1:1.35.0-4+b1", 912340), ("python3.11", "3.11.2-6", 573000)]
    assert debian.apt_errors("W: x\nE: Unable to locate package nosuch\n") == \
        "E: Unable to locate package nosuch"


def test_payload_holds_init_command_env_and_files(tmp_path):
    f = tmp_path / "tool.pyz"
    f.write_bytes(b"PK..")
    os.chmod(str(f), 0o755)
    data = harness.build_payload("tok123", "echo 'a b'\n", {"X": "it's"}, {"tool.pyz": str(f),
                                 "note": b"hi"}, share="/x", jit=1, p9_cache="loose",
                                 arch_name="armhf")
    e = {n: (m, b) for n, m, b in initramfs.read_cpio(data)}
    assert e["init"][0] == 0o100755 and e["init"][1].startswith(b"#!/bin/busybox sh")
    assert e["tt/run"][1] == b"echo 'a b'\n"
    assert e["tt/work/tool.pyz"] == (0o100755, b"PK..")
    assert e["tt/work/note"][1] == b"hi"
    env = e["tt/env"][1].decode()
    assert "TT_TOKEN=tok123\n" in env and "TT_JIT=1\n" in env and "TT_SHARE=1\n" in env
    assert "X='it'\"'\"'s'\n" in env
    with pytest.raises(ValueError):
        harness.build_payload("t", "true", {}, {"../x": b""}, None, None, "none", "arm64")


def test_qemu_command_line(tmp_path):
    s = harness.Settings("armhf", cache=str(tmp_path), append="mitigations=off")

    class Img(object):
        vmlinuz = "/k/vmlinuz"
    argv = harness.qemu_argv(s, Img(), "/w/initrd", "/w/pid", "/a,b")
    assert argv[0] == "qemu-system-arm"
    assert argv[argv.index("-M") + 1] == "virt,highmem=off"
    assert argv[argv.index("-cpu") + 1] == "cortex-a15"
    assert "console=ttyAMA0" in argv[argv.index("-append") + 1]
    assert "mitigations=off" in argv[argv.index("-append") + 1]
    # a host-starved TCG vCPU must not panic the guest: soft lockups only warn
    assert "softlockup_panic" not in argv[argv.index("-append") + 1]
    assert "watchdog_thresh=60" in argv[argv.index("-append") + 1].split()
    assert "local,id=tt0,path=/a,,b,security_model=none" in argv
    assert s.jit == 1          # armhf turns the JIT on
    assert harness.Settings("arm64", cache=str(tmp_path)).jit is None
    with pytest.raises(ValueError):
        harness.Settings("sparc")
    assert arches.lookup("aarch64").name == "arm64" and arches.lookup("amd64").name == "x86_64"


def test_unavailable_guest_is_reported_not_crashed(tmp_path, monkeypatch):
    """No apt-get on PATH: a GuestUnavailable naming the tool, and exit 77 from the CLI."""
    monkeypatch.setenv("PATH", str(tmp_path))
    s = harness.Settings("arm64", cache=str(tmp_path / "c"), rebuild=1)
    with pytest.raises(harness.GuestUnavailable, match="apt-get"):
        harness.prepare("arm64", settings=s)
    monkeypatch.undo()
    env = dict(os.environ, PATH=str(tmp_path), TINYTRACE_GUEST_CACHE=str(tmp_path / "c"),
               TINYTRACE_GUEST_REBUILD="1")
    p = subprocess.run([sys.executable, "-m", "tests.guests", "arm64", "true"], cwd=REPO,
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert p.returncode == 77
    assert p.stderr.count("\n") == 1 and "apt-get" in p.stderr
    assert "Traceback" not in p.stderr


def test_cli_bad_input_is_one_line_exit_2():
    for args in (["sparc", "true"], ["arm64"], ["arm64", "--env", "NOEQUALS", "true"]):
        p = subprocess.run([sys.executable, "-m", "tests.guests"] + args, cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        assert p.returncode == 2, args
        assert p.stderr.count("\n") == 1, p.stderr
        assert "Traceback" not in p.stderr


# ---------------------------------------------------------------- no qemu outlives the harness

def _alive(pid):
    """True while ``pid`` runs (a zombie waiting for init to reap it counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _wait_gone(pid, limit=20.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


STAND_IN = ["sh", "-c", "echo $$; exec sleep 300"]


def test_exit_status_and_lines_come_back():
    lines = []
    r = runner.run_bounded(["sh", "-c", "echo one; printf 'two\\r\\n'; printf three; exit 3"],
                           30, lines.append)
    assert (r.returncode, r.timed_out) == (3, False)
    assert lines == ["one", "two", "three"]


def test_hard_timeout_ends_the_program():
    lines = []
    r = runner.run_bounded(STAND_IN, 0.5, lines.append, grace=2)
    assert r.timed_out and r.returncode == runner.TIMED_OUT
    pid = int(lines[0])
    assert _wait_gone(pid), "the stand-in outlived its timeout"


def test_timeout_escalates_to_sigkill():
    lines = []
    r = runner.run_bounded(["sh", "-c", "trap '' TERM; echo $$; while :; do sleep 1; done"],
                           0.5, lines.append, grace=0.5)
    assert r.timed_out
    assert _wait_gone(int(lines[0]))


HARNESS = """\
import os, signal, sys
sys.path.insert(0, %(repo)r)
from tests.guests import runner
def ex(n, f): raise SystemExit(128 + n)
signal.signal(signal.SIGTERM, ex)
def line(l):
    sys.stdout.write(l + "\\n"); sys.stdout.flush()
runner.run_bounded(%(argv)r, 300, line, pidfile=None)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killed_harness_leaves_nothing_running(sig):
    code = HARNESS % {"repo": REPO, "argv": STAND_IN}
    h = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         universal_newlines=True)
    try:
        pid = int(h.stdout.readline())
        assert _alive(pid)
        h.send_signal(sig)
        h.wait(30)
        assert _wait_gone(pid), "stand-in %d survived %s of its harness" % (pid, sig.name)
    finally:
        if h.poll() is None:
            h.kill()
            h.wait()


def test_pidfile_kill_spares_other_processes(tmp_path):
    pidfile = str(tmp_path / "q.pid")
    mine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", pidfile])
    other = subprocess.Popen(["sleep", "300"])
    try:
        with open(pidfile, "w") as f:
            f.write("%d\n" % other.pid)
        runner._kill_by_pidfile(pidfile)
        time.sleep(0.2)
        assert other.poll() is None, "killed a process that does not name our pid file"
        with open(pidfile, "w") as f:
            f.write("%d\n" % mine.pid)
        runner._kill_by_pidfile(pidfile)
        assert mine.wait(10) == -signal.SIGKILL
    finally:
        for p in (mine, other):
            if p.poll() is None:
                p.kill()
                p.wait()


# ---------------------------------------------------------------- the subset

def test_subset_paths_grow_with_the_tree(tmp_path):
    root = tmp_path
    (root / "tests" / "asm").mkdir(parents=True)
    (root / "tests" / "asm" / "test_x.py").write_text("def test_a(): pass\n")
    (root / "tests" / "output").mkdir()
    (root / "tests" / "output" / "test_plain.py").write_text("def test_b(): pass\n")
    (root / "tests" / "output" / "test_marked.py").write_text(
        "import pytest\n@pytest.mark.guest_safe\ndef test_c(): pass\n")
    (root / "tests" / "guests").mkdir()
    (root / "tests" / "guests" / "test_g.py").write_text("# guest_safe\n")
    assert subset.paths(str(root)) == ["tests/asm", "tests/output/test_marked.py"]
    (root / "tests" / "kernel").mkdir()
    (root / "tests" / "kernel" / "test_maps.py").write_text("def test_d(): pass\n")
    assert subset.paths(str(root))[:2] == ["tests/asm", "tests/kernel"]
    assert subset.command(str(tmp_path / "nothing")) is None


def test_subset_plugin_selects_and_refuses_feature_skips(tmp_path):
    t = tmp_path / "tests"
    (t / "asm").mkdir(parents=True)
    (t / "asm" / "test_a.py").write_text(textwrap.dedent("""\
        import pytest
        def test_runs(): pass
        @pytest.mark.host_only
        def test_host(): pass
        @pytest.mark.kprobes
        def test_kprobe(): pytest.skip("no kprobes here")
        @pytest.mark.btf
        def test_btf(): pytest.skip("no BTF here")
        """))
    (t / "other").mkdir()
    (t / "other" / "test_o.py").write_text(textwrap.dedent("""\
        import pytest
        @pytest.mark.guest_safe
        def test_safe(): pass
        def test_not_chosen(): pass
        """))
    env = dict(os.environ, PYTHONPATH=REPO, TINYTRACE_GUEST="arm64",
               TINYTRACE_GUEST_FEATURES="kprobes")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                        "-p", "tests.guests.subset", "--rootdir", str(tmp_path),
                        "tests/asm", "tests/other"], cwd=str(tmp_path), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    out = p.stdout
    assert "PASSED tests/asm/test_a.py::test_runs" in out
    assert "PASSED tests/other/test_o.py::test_safe" in out
    assert "FAILED tests/asm/test_a.py::test_kprobe" in out      # guest has kprobes
    assert "SKIPPED" in out and "no BTF here" in out              # guest lacks BTF
    assert "test_host" not in out and "test_not_chosen" not in out
    assert "2 deselected" in out
    assert p.returncode == 1


def test_subset_plugin_stops_a_hanging_test_and_names_it(tmp_path):
    t = tmp_path / "tests" / "asm"
    t.mkdir(parents=True)
    (t / "test_h.py").write_text(textwrap.dedent("""\
        import time
        def test_quick(): pass
        def test_hangs():
            time.sleep(300)
        def test_after(): pass
        """))
    env = dict(os.environ, PYTHONPATH=REPO, TINYTRACE_GUEST="arm64",
               TINYTRACE_GUEST_TEST_TIMEOUT="1")
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-p", "tests.guests.subset", "--rootdir", str(tmp_path), "tests/asm"],
                       cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    assert time.monotonic() - t0 < 100, "the hanging test was not stopped"
    assert "tests/asm/test_h.py::test_hangs: still running after 1s" in p.stdout
    assert "in test_hangs" in p.stdout              # its stack
    assert "1 passed" in p.stdout and "KeyboardInterrupt" in p.stdout
    assert p.returncode != 0


# ---------------------------------------------------------------- runqlat output checks

GOOD = """\
Tracing run queue latency... Hit Ctrl-C to end.

     usecs               : count     distribution
         0 -> 1          : 3        |****                                    |
         2 -> 3          : 30       |****************************************|
         4 -> 7          : 0        |                                        |
         8 -> 15         : 1        |*                                       |
"""


def test_histogram_checks_accept_bcc_layout():
    rows = pyz_checks.parse_log2_histogram(GOOD)
    assert [(lo, hi, n) for lo, hi, n, _ in rows] == [(0, 1, 3), (2, 3, 30), (4, 7, 0),
                                                      (8, 15, 1)]
    pyz_checks.check_histogram(rows)


@pytest.mark.parametrize("bad", [
    GOOD.replace("4 -> 7 ", "4 -> 8 "),                              # not a log2 bucket
    GOOD.replace("         4 -> 7          : 0        |                                        |\n", ""),
    GOOD.replace(": 30       |", ": 2        |"),                     # bar longer than count's
    GOOD.replace(": 3 ", ": 0 ").replace(": 30 ", ": 0  ").replace(": 1 ", ": 0 "),
    "Tracing...\n",                                                  # no histogram at all
])
def test_histogram_checks_reject_wrong_output(bad):
    with pytest.raises(pyz_checks.CheckFailed):
        pyz_checks.check_histogram(pyz_checks.parse_log2_histogram(bad))


def test_check_results_parse_from_console_noise():
    text = 'noise\n@@CHECK {"name": "version", "ok": true}\n[  1.2] kernel: x\n@@CHECK bad\n'
    assert pyz_checks.parse_results(text) == {"version": {"name": "version", "ok": True}}


# ---------------------------------------------------------------- run(), with a stand-in qemu

FAKE_QEMU = """\
#!%(python)s
# Stands in for qemu: unpacks the payload cpio from -initrd and runs /tt/run with sh, the
# way the guest's /init would, markers included.
import os, subprocess, sys, tempfile
sys.path.insert(0, %(repo)r)
from tests.guests import initramfs
a = sys.argv
with open(a[a.index("-pidfile") + 1], "w") as f:
    f.write("%%d\\n" %% os.getpid())
with open(a[a.index("-initrd") + 1], "rb") as f:
    files = dict((n, b) for n, m, b in initramfs.read_cpio(f.read()))
d = tempfile.mkdtemp()
for name in ("tt/env", "tt/run"):
    with open(os.path.join(d, name.split("/")[1]), "wb") as f:
        f.write(files[name])
env = dict(l.split("=", 1) for l in files["tt/env"].decode().splitlines())
tok = env["TT_TOKEN"]
print("kernel noise before the command", flush=True)
print("@@TT:%%s:BEGIN 1.00" %% tok, flush=True)
import signal
child = subprocess.Popen(["sh", "-c", "cd %%s; set -a; . ./env; set +a; sh ./run" %% d],
                         start_new_session=True, env=dict(os.environ, QEMU_PID=str(os.getpid())))
def stop(n, f):
    os.killpg(child.pid, signal.SIGKILL)
    sys.exit(1)
signal.signal(signal.SIGTERM, stop)
rc = child.wait()
print("@@TT:%%s:EXIT=%%d 2.00" %% (tok, rc), flush=True)
"""


class _FakeImage(object):
    def __init__(self, tmp):
        self.vmlinuz = str(tmp / "vmlinuz")
        self.modules = str(tmp / "mods.cpio")
        self.userland = str(tmp / "userland.cpio.zst")
        for p in (self.vmlinuz, self.modules, self.userland):
            open(p, "wb").close()
        self.kernel = {"release": "6.1.0-fake", "features": {}}
        self.features = {}


@pytest.fixture
def fake_qemu(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    q = bin_dir / "qemu-system-aarch64"
    q.write_text(FAKE_QEMU % {"python": sys.executable, "repo": REPO})
    os.chmod(str(q), 0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    return _FakeImage(tmp_path)


def test_run_returns_status_and_only_the_commands_output(fake_qemu, tmp_path):
    seen = []
    res = harness.run("arm64", "echo \"$GREETING\"; printf 'no newline'; exit 4",
                      env={"GREETING": "hi there"}, image=fake_qemu, echo=seen.append,
                      cache=str(tmp_path / "c"), progress=lambda line: None)
    assert res.returncode == 4 and not res.ok
    assert res.output == "hi there\nno newline\n"
    assert seen == ["hi there", "no newline"]
    assert res.guest_uptime == 1.0 and res.boot_seconds is not None
    assert res.console[0] == "kernel noise before the command"
    with open(res.log_path) as f:
        assert "kernel noise" in f.read()


def test_run_that_hangs_is_cut_by_the_timeout(fake_qemu, tmp_path):
    res = harness.run("arm64", "echo started; sleep 300", image=fake_qemu, timeout=1,
                      cache=str(tmp_path / "c"), progress=lambda line: None)
    assert res.returncode is None and res.timed_out
    assert "timed out" in res.error and "timed out" in res.describe()
    assert res.output == "started\n"


def test_kernel_panic_is_named(fake_qemu, tmp_path):
    res = harness.run("arm64", "echo '[   47.1] Kernel panic - not syncing: softlockup: hung "
                      "tasks'; kill -9 $QEMU_PID", image=fake_qemu,
                      cache=str(tmp_path / "c"), progress=lambda line: None)
    assert res.returncode is None and not res.timed_out
    assert res.error == "the guest kernel panicked: Kernel panic - not syncing: softlockup: " \
        "hung tasks"


def test_forged_markers_do_not_end_the_run(fake_qemu, tmp_path):
    res = harness.run("arm64", "echo '@@TT:0000:EXIT=0'; exit 7", image=fake_qemu,
                      cache=str(tmp_path / "c"), progress=lambda line: None)
    assert res.returncode == 7


# ---------------------------------------------------------------- the cache

def _ready(cache, arch, name, userland, kdir, debs):
    import json
    os.makedirs(os.path.join(cache, "ready"), exist_ok=True)
    with open(os.path.join(cache, "ready", name), "w") as f:
        json.dump({"userland": userland, "vmlinuz": os.path.join(kdir, "vmlinuz"),
                   "debs": debs}, f)


def test_garbage_collection_keeps_what_ready_records_use(tmp_path):
    c = str(tmp_path)
    s = harness.Settings("arm64", cache=c)
    keep_k = os.path.join(c, "kernels/arm64/linux-image-new-3")
    old_k = os.path.join(c, "kernels/arm64/linux-image-old-3")
    other_arch_k = os.path.join(c, "kernels/armhf/linux-image-x-3")
    for d in (keep_k, old_k, other_arch_k, os.path.join(c, "debs/arm64"),
              os.path.join(c, "userland")):
        os.makedirs(d, exist_ok=True)
    for f in ("userland/arm64-new.cpio.zst", "userland/arm64-old.cpio.zst",
              "userland/armhf-x.cpio.zst", "debs/arm64/a_1_arm64.deb",
              "debs/arm64/a_0_arm64.deb", "debs/arm64/k_1_arm64.deb"):
        open(os.path.join(c, f), "w").close()
    _ready(c, "arm64", "arm64-bookworm-x.json", os.path.join(c, "userland/arm64-new.cpio.zst"),
           keep_k, ["arm64/a_1_arm64.deb", "arm64/k_1_arm64.deb"])
    harness._collect_garbage(s)
    assert os.path.isdir(keep_k) and not os.path.exists(old_k) and os.path.isdir(other_arch_k)
    assert sorted(os.listdir(os.path.join(c, "userland"))) == ["arm64-new.cpio.zst",
                                                                "armhf-x.cpio.zst"]
    assert sorted(os.listdir(os.path.join(c, "debs/arm64"))) == ["a_1_arm64.deb",
                                                                  "k_1_arm64.deb"]
