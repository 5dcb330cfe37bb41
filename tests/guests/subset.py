"""The part of the test suite that runs inside the qemu guests -- defined here and nowhere else.

A guest runs, from the shared checkout:

- every test under ``GUEST_PATHS`` (the assembler, the language, the kernel layer: map and
  program load, tracepoint attach, kprobes where the guest has them, and the runqlat and
  execsnoop tool tests under a workload);
- any other test marked ``@pytest.mark.guest_safe`` (files are picked on the host by a
  cheap text search for that word, so nothing else is imported in the slow guest);
- except tests marked ``@pytest.mark.host_only``.

Paths that do not exist yet are left out, so the subset grows as tests land.

In the guest this module is also a pytest plugin (``-p tests.guests.subset``): it registers
the markers, deselects what is not in the subset, and turns a skip into a failure when a test
marked ``kprobes`` and/or ``btf`` skips on a guest whose kernel has every feature it is
marked with -- a probe type that should work there must not hide behind a skip.  ``TINYTRACE_REQUIRE_BPF=1`` does the
same for plain BPF.

Emulated Python is 20-30x slower than the host: tests here check behaviour, never timing.
"""
import os

GUEST_PATHS = (
    "tests/asm",
    "tests/lang",
    "tests/kernel",
    "tests/tools/test_runqlat.py",
    "tests/tools/test_execsnoop.py",
)
# Folders searched for files that mention guest_safe.
OPT_IN_ROOT = "tests"
NEVER = ("tests/guests",)

MARKERS = (
    "guest_safe: also run this test inside the qemu guests (tests/guests/subset.py)",
    "host_only: never run this test inside the qemu guests",
    "kprobes: needs kprobes; in a guest whose kernel has them a skip is a failure",
    "btf: needs kernel BTF; in a guest whose kernel has it a skip is a failure",
)
FEATURE_MARKERS = ("kprobes", "btf")


def _has_tests(path):
    if os.path.isfile(path):
        return os.path.basename(path).startswith("test_") and path.endswith(".py")
    for _, _, files in os.walk(path):
        if any(f.startswith("test_") and f.endswith(".py") for f in files):
            return True
    return False


def _under(rel, prefixes):
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in prefixes)


def paths(root):
    """The test paths (relative to ``root``) a guest collects, existing ones only."""
    chosen = [p for p in GUEST_PATHS if _has_tests(os.path.join(root, p))]
    top = os.path.join(root, OPT_IN_ROOT)
    for dirpath, dirnames, files in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for f in sorted(files):
            if not (f.startswith("test_") and f.endswith(".py")):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
            if _under(rel, chosen) or _under(rel, NEVER):
                continue
            try:
                with open(os.path.join(dirpath, f), encoding="utf-8", errors="replace") as fh:
                    if "guest_safe" in fh.read():
                        chosen.append(rel)
            except OSError:
                pass
    return chosen


# A test that runs longer than this in a guest is stopped, with every thread's stack printed,
# rather than eating the whole run's timeout without saying which test hung.
TEST_TIMEOUT = 240


def environment(arch, features):
    """Variables the guest's pytest runs with."""
    have = [f for f in FEATURE_MARKERS if features.get(f)]
    return {"TINYTRACE_REQUIRE_BPF": "1", "TINYTRACE_GUEST": arch,
            "TINYTRACE_GUEST_FEATURES": ",".join(have), "PYTHONUNBUFFERED": "1",
            "TINYTRACE_GUEST_TEST_TIMEOUT": os.environ.get("TINYTRACE_GUEST_TEST_TIMEOUT",
                                                           str(TEST_TIMEOUT))}


def command(root, features=None, extra=None):
    """The shell command that runs the subset in a guest whose cwd is ``root`` shared."""
    import shlex
    chosen = paths(root)
    if not chosen:
        return None
    argv = ["python3", "-m", "pytest", "-q", "-rfEs", "--color=no", "-p", "no:cacheprovider",
            "-p", "tests.guests.subset"] + chosen
    if extra:
        argv += shlex.split(extra)
    return " ".join(shlex.quote(a) for a in argv)


# ---------------------------------------------------------------- the pytest plugin

def pytest_configure(config):
    for m in MARKERS:
        config.addinivalue_line("markers", m)


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        rel = os.path.relpath(str(getattr(item, "path", None) or item.fspath),
                              str(config.rootdir)).replace(os.sep, "/")
        wanted = _under(rel, GUEST_PATHS) or item.get_closest_marker("guest_safe") is not None
        if item.get_closest_marker("host_only") is not None or _under(rel, NEVER):
            wanted = False
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _guest_features():
    return set(f for f in os.environ.get("TINYTRACE_GUEST_FEATURES", "").split(",") if f)


# The real stderr, kept before pytest starts capturing (this module is imported with -p,
# earlier than that): the hang report must reach the console, not a capture buffer.
_STDERR = os.dup(2) if os.environ.get("TINYTRACE_GUEST_TEST_TIMEOUT") else None

try:
    import pytest

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        rep = outcome.get_result()
        if not rep.skipped or hasattr(rep, "wasxfail") or not os.environ.get("TINYTRACE_GUEST"):
            return
        have = _guest_features()
        # a test marked with several features may skip where any one of them is missing
        # (tcptop's kprobe test needs kprobes *and* BTF: armhf has only the first)
        marked = [f for f in FEATURE_MARKERS if item.get_closest_marker(f) is not None]
        if any(f not in have for f in marked):
            return
        if marked:
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else rep.longrepr
            rep.outcome = "failed"
            rep.longrepr = ("this %s guest's kernel has %s, but the test skipped: %s"
                            % (os.environ.get("TINYTRACE_GUEST"), " and ".join(marked), reason))
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        try:
            limit = float(os.environ.get("TINYTRACE_GUEST_TEST_TIMEOUT") or 0)
        except ValueError:
            limit = 0
        if limit <= 0:
            yield
            return
        import faulthandler
        import signal
        import sys
        import threading

        main = threading.main_thread().ident
        out = _STDERR if _STDERR is not None else sys.stderr.fileno()

        def expire():
            os.write(out, ("\n%s: still running after %gs in this guest: stopping the run; "
                           "every thread's stack follows\n" % (item.nodeid, limit)).encode())
            faulthandler.dump_traceback(file=out, all_threads=True)
            # In the main thread, so that a blocking call there is interrupted too;
            # pytest then stops and prints its summary.
            signal.pthread_kill(main, signal.SIGINT)
            faulthandler.dump_traceback_later(30, exit=True, file=out)   # if even that fails

        timer = threading.Timer(limit, expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
except ImportError:     # imported by the harness on a host without pytest
    pass
