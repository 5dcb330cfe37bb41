"""The kernel and architecture matrix: tinytrace inside real Debian kernels under qemu.

Off unless ``TINYTRACE_GUESTS`` is set (``1``/``all``, or a list such as ``arm64,armhf``):
each guest boots in seconds from a warm cache, but the guest-safe subset of the suite runs
20-30x slower than on the host.  ``.ci/run`` turns it on after the host suite.

Per architecture:

- ``test_environment``: the guest is what the harness built and asked for (architecture,
  kernel release, BTF, kprobes and their PMU types, the JIT setting, the checkout over 9p,
  ``python3 -m tinytrace`` from the share);
- ``test_subset``: the guest-safe tests (``subset.py``) pass inside the guest;
- ``test_pyz_*``: ``tinytrace.pyz`` alone (no checkout in the guest) starts, lists its tools,
  and runs runqlat and execsnoop under a workload.

A guest that cannot be built because a download failed is a skip naming the package; a test
that fails inside a guest is a failure.
"""
import os
import re
import time

import pytest

from tests.guests import arches, report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _enabled():
    value = os.environ.get("TINYTRACE_GUESTS", "").strip().lower()
    if value in ("", "0", "no", "off"):
        return []
    if value in ("1", "all", "yes", "on"):
        return arches.names()
    chosen = []
    for name in value.replace(" ", ",").split(","):
        if not name:
            continue
        a = arches.lookup(name)
        if a is None:
            raise ValueError("TINYTRACE_GUESTS: unknown architecture %r (one of: %s)"
                             % (name, ", ".join(arches.names())))
        chosen.append(a.name)
    return chosen


ENABLED = _enabled()
SUBSET_TIMEOUT = float(os.environ.get("TINYTRACE_GUEST_SUBSET_TIMEOUT", "900"))
PYZ_TIMEOUT = float(os.environ.get("TINYTRACE_GUEST_PYZ_TIMEOUT", "600"))
# The whole matrix gets this many minutes of qemu time, so a hanging guest cannot push CI
# past its hour: each run's timeout is cut to what is left.
BUDGET = float(os.environ.get("TINYTRACE_GUEST_BUDGET", "45")) * 60
_START = time.monotonic()

pytestmark = [
    pytest.mark.guest,
    pytest.mark.skipif(not ENABLED, reason="guest matrix off: set TINYTRACE_GUESTS=1 "
                       "(or a list such as arm64,armhf); see docs/guests.md"),
]


def _arch_param():
    return [pytest.param(a, marks=() if a in ENABLED else pytest.mark.skip(
        reason="%s not in TINYTRACE_GUESTS" % a)) for a in arches.names()]


_images = {}


@pytest.fixture(params=_arch_param(), scope="module")
def guest(request):
    """(arch, Settings, Image) -- built or found in the cache; a download failure skips."""
    from tests.guests import harness
    arch = request.param
    if arch not in _images:
        settings = harness.Settings(arch, progress=_progress)
        t0 = time.monotonic()
        try:
            image = harness.prepare(arch, settings=settings)
        except harness.GuestUnavailable as e:
            _images[arch] = e
        else:
            secs = time.monotonic() - t0
            _images[arch] = (settings, image)
            report.record(arch, kernel=image.kernel["release"], prepare=secs,
                          cold=not image.from_cache,
                          add_seconds=secs)
    got = _images[arch]
    if isinstance(got, Exception):
        pytest.skip("%s guest unavailable: %s" % (arch, got))
    return (arch,) + got


def _progress(line):
    # Shown with -s; pytest captures it otherwise.
    print(line)


def _run(guest, command, timeout, **kw):
    from tests.guests import harness
    arch, settings, image = guest
    left = BUDGET - (time.monotonic() - _START)
    if left < 60:
        pytest.fail("the guest matrix used up its %.0f-minute budget (TINYTRACE_GUEST_BUDGET)"
                    % (BUDGET / 60), pytrace=False)
    res = harness.run(arch, command, image=image, settings=settings,
                      timeout=min(timeout, left), **kw)
    report.record(arch, add_seconds=res.total_seconds or 0.0)
    if res.boot_seconds is not None and "boot" not in report.data().get(arch, {}):
        report.record(arch, boot=res.boot_seconds)
    return res


def _fail_unless_status(res):
    if res.returncode is None:
        pytest.fail(res.describe(), pytrace=False)


def test_environment(guest):
    from tests.guests import harness
    import json
    arch, settings, image = guest
    res = _run(guest, "python3 -m tests.guests.probe", 180, share=REPO)
    _fail_unless_status(res)
    assert res.returncode == 0, res.describe()
    line = [l for l in res.output.splitlines() if l.startswith("@@PROBE ")]
    assert line, res.describe()
    got = json.loads(line[0][len("@@PROBE "):])
    a = arches.lookup(arch)
    feats = image.features
    assert got["machine"] == a.uname
    assert got["release"] == image.kernel["release"]
    assert got["tracefs"], "tracefs is not mounted in the guest"
    assert got["btf"] == feats["btf"], "BTF in the guest does not match the kernel's config"
    assert got["kprobe_events"] == feats["kprobes"]
    if feats["kprobes"]:
        # The PMU numbers differ between kernels (6/7 on 6.1, 8/9 on 6.12): tinytrace must
        # read them from sysfs.  Here: they exist and uprobe follows kprobe.
        assert isinstance(got["kprobe_pmu"], int) and got["kprobe_pmu"] > 0
        assert got["uprobe_pmu"] == got["kprobe_pmu"] + 1
    if settings.jit is not None:
        assert got["bpf_jit_enable"] == settings.jit
    assert got["cffi"], "python3-cffi missing in the guest"
    with open(os.path.join(REPO, "setup.cfg"), "rb") as f:
        import hashlib
        assert got["setup_cfg_sha1"] == hashlib.sha1(f.read()).hexdigest(), \
            "the guest does not see this checkout through 9p"
    from tinytrace import __version__
    assert got["tinytrace_version"] == "tinytrace %s" % __version__
    report.record(arch, kprobe_pmu=got["kprobe_pmu"], jit=got["bpf_jit_enable"],
                  btf=got["btf"], python=got["python"])
    assert harness.REPO_ROOT == REPO


def test_subset(guest):
    from tests.guests import subset
    arch, settings, image = guest
    command = subset.command(REPO, image.features)
    if command is None:
        pytest.skip("no guest-safe tests in this checkout yet (%s)" % ", ".join(subset.GUEST_PATHS))
    env = subset.environment(arch, image.features)
    res = _run(guest, command, SUBSET_TIMEOUT, share=REPO, env=env)
    _fail_unless_status(res)
    summary = _pytest_summary(res.output)
    report.record(arch, subset=res.command_seconds or 0.0, subset_summary=summary)
    assert res.returncode == 0, "guest-safe tests failed in the %s guest (%s):\n%s" % (
        arch, summary, res.output[-6000:])


def _pytest_summary(output):
    for line in reversed(output.splitlines()):
        if re.search(r"\b(passed|failed|error|skipped|deselected|no tests ran)\b", line):
            return line.strip("= ").strip()
    return "no summary"


# ---------------------------------------------------------------- the zipapp, alone

@pytest.fixture(scope="session")
def pyz(tmp_path_factory):
    import subprocess
    import sys
    out = str(tmp_path_factory.mktemp("pyz") / "tinytrace.pyz")
    subprocess.run([sys.executable, os.path.join(REPO, "scripts", "make_pyz.py"), "-o", out],
                   check=True, stdout=subprocess.DEVNULL)
    return out


TOOL_CHECKS = ("runqlat", "execsnoop")
_pyz_results = {}


@pytest.fixture
def pyz_results(guest, pyz):
    """One guest run of pyz_checks.py with tinytrace.pyz copied in, and no share."""
    from tests.guests import pyz_checks
    arch = guest[0]
    if arch not in _pyz_results:
        tools = _tools(pyz)
        checks = ["version", "list"] + [t for t in TOOL_CHECKS if t in tools]
        files = {"tinytrace.pyz": pyz, "pyz_checks.py": pyz_checks.__file__.replace(".pyc", ".py")}
        cmd = ("test ! -e /mnt/host/setup.cfg || { echo 'checkout visible'; exit 9; }; "
               "python3 pyz_checks.py tinytrace.pyz " + " ".join(checks))
        env = {"TT_CHECK_TIMEOUT": "120", "TT_EXPECT_TOOLS": ",".join(tools)}
        res = _run(guest, cmd, PYZ_TIMEOUT, files=files, env=env)
        _pyz_results[arch] = (res, pyz_checks.parse_results(res.output))
        values = {"pyz_size": os.path.getsize(pyz)}
        for name, rec in _pyz_results[arch][1].items():
            key = "seconds" if name == "version" else "attach_seconds"
            if rec.get(key) is not None and name != "list":    # measured, even if it failed later
                values["pyz_" + name] = rec[key]
        report.record(arch, **values)
    return _pyz_results[arch]


def _tools(pyz):
    """The tools inside the archive (tinytrace/tools/NAME.py): --list must show every one.
    Read from the archive, not the checkout, which may have gained tools since the build."""
    import zipfile
    names = zipfile.ZipFile(pyz).namelist()
    return sorted(n[len("tinytrace/tools/"):-3] for n in names
                  if re.match(r"^tinytrace/tools/[a-z][a-z0-9_]*\.py$", n))


def _check(results, name):
    res, recs = results
    _fail_unless_status(res)
    rec = recs.get(name)
    assert rec is not None, "no result for %s:\n%s" % (name, res.output[-4000:])
    assert rec["ok"], "%s in the %s guest: %s" % (name, res.arch, rec.get("error"))
    return rec


def test_pyz_starts(pyz_results):
    rec = _check(pyz_results, "version")
    from tinytrace import __version__
    assert rec["version"] == __version__
    _check(pyz_results, "list")


@pytest.mark.parametrize("tool", TOOL_CHECKS)
def test_pyz_tool(pyz_results, pyz, tool):
    if tool not in _tools(pyz):
        pytest.skip("tools/%s.py is not written yet" % tool)
    rec = _check(pyz_results, tool)
    assert rec["events"] > 0
