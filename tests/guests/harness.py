"""Boot real Debian kernels under qemu and run a command inside them.

    from tests.guests import harness
    result = harness.run("arm64", "python3 -m tinytrace --version", share=REPO_ROOT)
    result.returncode, result.output, result.boot_seconds

or from a shell, at the repository root: ``python3 -m tests.guests arm64 'uname -a'``.

What it does (docs/guests.md has the knobs, the cache and measured timings):

1. ``prepare``: with a private apt root per architecture (``debian.py``) it resolves and
   downloads Debian's kernel (bookworm's 6.1 by default) and a small userland (python3,
   python3-cffi, busybox-static, python3-pytest and their dependencies), then builds two
   things it caches: the kernel (vmlinuz + a cpio of the virtio-9p modules) and the userland
   (one zstd-compressed cpio, the Python stdlib byte-compiled on the host).  A later run finds
   both through a small "ready" record and starts the guest without calling apt at all.
2. ``run``: writes a per-run payload (``/init``, the command, its environment, any files),
   joins payload + modules + userland into one initrd, and boots qemu (TCG) with a hard
   timeout under ``runner.py``.  The checkout (or any folder) can be shared into the guest
   with virtio-9p; the command then runs there.  The guest prints start/exit markers with a
   per-run token on its serial console and powers itself off; the command's output and exit
   status come back in a ``GuestResult``.

Failures to *get* a guest (a download, an index, installing qemu) raise ``GuestUnavailable``
naming what was missing: callers report that as a skip.  Anything that goes wrong after the
guest booted is a result with ``ok == False``.
"""
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from tests.guests import arches, debian, initramfs, runner

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CACHE = "/var/cache/tinytrace-guests"
USERLAND_SUITE = "bookworm"       # python3.11 and python3-cffi 1.15 on every architecture
DEFAULT_KERNEL_SUITE = "bookworm"
DEFAULT_PACKAGES = ("python3", "python3-cffi", "busybox-static", "python3-pytest")
SHARE_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
# Bump when the userland or kernel images are built differently: old ones get rebuilt.
BUILD_FORMAT = 3

GuestUnavailable = debian.Unavailable


def _env(name, default=None):
    v = os.environ.get("TINYTRACE_GUEST_" + name)
    return default if v is None or v == "" else v


class Settings(object):
    """Every knob, from keyword arguments first and ``TINYTRACE_GUEST_*`` variables second."""

    def __init__(self, arch, **kw):
        a = arches.lookup(arch)
        if a is None:
            raise ValueError("unknown guest architecture %r (one of: %s)"
                             % (arch, ", ".join(arches.names())))
        self.arch = a

        def pick(key, env, default, conv=str):
            v = kw.pop(key, None)
            if v is None:
                v = _env(env)
            return default if v is None else conv(v)

        self.cache = pick("cache", "CACHE", DEFAULT_CACHE)
        self.suite = pick("suite", "SUITE", DEFAULT_KERNEL_SUITE)
        self.timeout = pick("timeout", "TIMEOUT", 600.0, float)
        self.mem = pick("mem", "MEM", 2048, int)   # the subset runs 4 tracers at once
        self.smp = pick("smp", "SMP", 2, int)
        self.cpu = pick("cpu", "CPU", a.cpu)
        self.append = pick("append", "APPEND", "")
        self.qemu_args = pick("qemu_args", "QEMU_ARGS", "")
        jit = pick("jit", "JIT", a.jit if a.jit is not None else "keep")
        self.jit = None if str(jit) in ("keep", "") else int(jit)
        self.p9_cache = pick("p9_cache", "9P_CACHE", "loose")
        extra = pick("packages", "PACKAGES", "")
        self.packages = tuple(DEFAULT_PACKAGES) + tuple(
            p for p in extra.replace(",", " ").split() if p not in DEFAULT_PACKAGES)
        self.max_age = pick("max_age", "MAX_AGE", 7.0, float) * 86400
        self.refresh = bool(pick("refresh", "REFRESH", 0, int))
        self.rebuild = bool(pick("rebuild", "REBUILD", 0, int)) or self.refresh
        self.log_path = pick("log", "LOG", "")
        self.verbose = bool(pick("verbose", "VERBOSE", 0, int))
        self.progress = kw.pop("progress", None)
        if kw:
            raise TypeError("unknown settings: %s" % ", ".join(sorted(kw)))

    def say(self, message):
        line = "guests: [%s] %s" % (self.arch.name, message)
        if self.progress is not None:
            self.progress(line)
        else:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


# ---------------------------------------------------------------- host tools

def ensure_host_tools(s):
    """qemu for this architecture and zstd; installed with apt-get when missing (as root)."""
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise GuestUnavailable("%s is missing: the guest harness needs a Debian-like host"
                                   % tool)
    need = []
    if shutil.which(s.arch.qemu) is None:
        need.append(s.arch.qemu_package)
    if shutil.which("zstd") is None:
        need.append("zstd")
    if not os.path.exists(debian.KEYRING):
        need.append("debian-archive-keyring")
    if not need:
        return
    if os.geteuid() != 0:
        raise GuestUnavailable("missing %s (apt-get install --no-install-recommends %s)"
                               % (", ".join(need), " ".join(need)))
    s.say("installing %s on the host" % " ".join(need))
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
           "-o", "DPkg::Lock::Timeout=300"] + need
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    out = ""
    for attempt in range(2):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, env=env)
        out = p.stdout
        if p.returncode == 0:
            return
        if attempt == 0:   # stale host package lists are the usual reason
            subprocess.run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    raise GuestUnavailable("cannot install %s on the host: %s"
                           % (" ".join(need), debian.apt_errors(out) or out[-300:]))


# ---------------------------------------------------------------- images

class Image(object):
    """A bootable guest: kernel, its 9p modules, the userland archive, and what they hold."""

    def __init__(self, record):
        self.record = record
        self.arch = arches.lookup(record["arch"])
        self.suite = record["suite"]
        self.kernel = record["kernel"]          # package, version, release, features
        self.vmlinuz = record["vmlinuz"]
        self.modules = record["modules"]
        self.userland = record["userland"]
        self.packages = record["packages"]      # [name, version] of the userland
        self.from_cache = True                  # False when this call built or fetched it

    def exists(self):
        return all(os.path.isfile(p) for p in (self.vmlinuz, self.modules, self.userland))

    @property
    def features(self):
        return self.kernel["features"]


def _ready_path(s):
    key = hashlib.sha1(" ".join(sorted(s.packages)).encode()).hexdigest()[:10]
    return os.path.join(s.cache, "ready", "%s-%s-%s.json" % (s.arch.name, s.suite, key))


def _load_ready(path):
    try:
        with open(path) as f:
            rec = json.load(f)
        img = Image(rec)
        if rec.get("format") == BUILD_FORMAT and img.exists():
            return img
    except (OSError, ValueError, KeyError):
        pass
    return None


def _write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".%d.tmp" % os.getpid()
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


class _Lock(object):
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def prepare(arch, **kw):
    """Download and build what ``arch`` needs (or find it in the cache); returns an Image.

    Raises GuestUnavailable when a package, an index or a host tool cannot be had.
    """
    s = kw.pop("settings", None) or Settings(arch, **kw)
    ready = _ready_path(s)
    if not s.rebuild:
        img = _load_ready(ready)
        if img is not None and time.time() - os.stat(ready).st_mtime < s.max_age:
            if shutil.which(s.arch.qemu) is not None:
                return img
    ensure_host_tools(s)
    with _Lock(os.path.join(s.cache, ".lock-" + s.arch.debian)):
        stale = _load_ready(ready)
        if stale is not None and not s.rebuild and \
                time.time() - os.stat(ready).st_mtime < s.max_age:
            return stale            # another process built it while we waited
        try:
            img = _build(s)
        except GuestUnavailable as e:
            if stale is None or s.rebuild:
                raise
            s.say("cannot refresh (%s); using the cached build" % e)
            return stale
        _write_json(ready, img.record)
        _collect_garbage(s)
        return img


def _collect_garbage(s):
    """Delete images and .debs of this architecture that no ready record uses any more
    (older kernels and package versions), so the cache does not grow with every update."""
    used = set()
    for rec_path in os.listdir(os.path.join(s.cache, "ready")):
        try:
            with open(os.path.join(s.cache, "ready", rec_path)) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            return              # unreadable record: better keep everything
        used.update([rec.get("userland"), os.path.dirname(rec.get("vmlinuz", ""))])
        used.update(os.path.join(s.cache, "debs", d) for d in rec.get("debs", ()))
    deb = s.arch.debian
    candidates = [os.path.join(s.cache, "kernels", deb, d)
                  for d in _listdir(os.path.join(s.cache, "kernels", deb))]
    candidates += [os.path.join(s.cache, "userland", f)
                   for f in _listdir(os.path.join(s.cache, "userland"))
                   if f.startswith(deb + "-") and f.endswith(".cpio.zst")]
    candidates += [os.path.join(s.cache, "debs", deb, f)
                   for f in _listdir(os.path.join(s.cache, "debs", deb)) if f.endswith(".deb")]
    for path in candidates:
        if path not in used:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _fetch(root, s, what):
    """Run ``what(root)``; if that fails on package lists older than this call, refresh
    them once and try again (a security update may have replaced a package)."""
    root.ensure_lists(refresh=s.refresh, max_age=s.max_age)
    fresh = (root.lists_age() or 0) < 600
    try:
        return what(root)
    except GuestUnavailable:
        if fresh:
            raise
        s.say("retrying after apt-get update")
        root.update()
        return what(root)


def _build(s):
    t0 = time.monotonic()
    a = s.arch
    debs_dir = os.path.join(s.cache, "debs", a.debian)
    uroot = debian.AptRoot(os.path.join(s.cache, "apt", "%s-%s" % (a.debian, USERLAND_SUITE)),
                           a.debian, USERLAND_SUITE, s.say)

    def userland_debs(root):
        closure = [d for d in root.resolve(s.packages) if d.name not in debian.NOT_NEEDED]
        return closure, root.download(closure, debs_dir)

    closure, upaths = _fetch(uroot, s, userland_debs)

    if s.suite == USERLAND_SUITE:
        kroot = uroot
    else:
        kroot = debian.AptRoot(os.path.join(s.cache, "apt", "%s-%s" % (a.debian, s.suite)),
                               a.debian, s.suite, s.say)

    def kernel_deb(root):
        pkg = root.depends_of(a.kernel_meta, "linux-image-")
        deb = root.locate([pkg])[0]
        return deb, root.download([deb], debs_dir)[0]

    kdeb, kpath = _fetch(kroot, s, kernel_deb)

    ukey = hashlib.sha1(("%d\n" % BUILD_FORMAT + "\n".join(sorted(d.filename for d in closure)))
                        .encode()).hexdigest()[:12]
    userland = os.path.join(s.cache, "userland", "%s-%s.cpio.zst" % (a.debian, ukey))
    if s.rebuild or not os.path.isfile(userland):
        build_userland(s, upaths, userland)
    kdir = os.path.join(s.cache, "kernels", a.debian,
                        "%s-%d" % (kdeb.filename[:-len(".deb")], BUILD_FORMAT))
    kinfo_path = os.path.join(kdir, "kernel.json")
    if s.rebuild or not os.path.isfile(kinfo_path):
        build_kernel(s, kpath, kdir)
    with open(kinfo_path) as f:
        kinfo = json.load(f)
    s.say("ready in %.1fs: kernel %s %s, userland of %d packages"
          % (time.monotonic() - t0, kinfo["package"], kinfo["version"], len(closure)))
    img = Image({
        "format": BUILD_FORMAT, "arch": a.name, "suite": s.suite, "kernel": kinfo,
        "vmlinuz": os.path.join(kdir, "vmlinuz"), "modules": os.path.join(kdir, "mods.cpio"),
        "userland": userland,
        "packages": sorted([d.name, d.version] for d in closure),
        "debs": sorted(os.path.join(a.debian, d.filename) for d in closure + [kdeb]),
    })
    img.from_cache = False
    return img


# Never read by a headless test guest: docs, translations, GUI and packaging leftovers.
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
        "usr/share/lintian", "usr/share/bug", "usr/share/menu", "usr/share/pixmaps",
        "usr/share/applications", "usr/share/binfmts", "usr/share/readline", "etc/cron.daily",
        "usr/lib/*/gconv")       # glibc's iconv tables (8 MB): Python has its own codecs
TRIM_STDLIB = ("ensurepip", "idlelib", "tkinter", "turtledemo", "lib2to3", "pydoc_data",
               "test", "config-*")


def _extract(debs, dest):
    for deb in debs:
        p = subprocess.run(["dpkg-deb", "-x", deb, dest], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        if p.returncode != 0:
            raise GuestUnavailable("cannot unpack %s: %s" % (os.path.basename(deb),
                                                              p.stdout.strip()[-200:]))


def _compress(tree_writer, out_path):
    """Stream a cpio archive through ``zstd`` into ``out_path`` (atomically)."""
    tmp = out_path + ".%d.tmp" % os.getpid()
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(tmp, "wb") as out:
        z = subprocess.Popen(["zstd", "-q", "-T0", "-6", "-c"], stdin=subprocess.PIPE, stdout=out)
        try:
            w = initramfs.CpioWriter(z.stdin)
            tree_writer(w)
            w.finish()
        finally:
            z.stdin.close()
            rc = z.wait()
    if rc != 0:
        os.unlink(tmp)
        raise RuntimeError("zstd failed with status %d" % rc)
    os.replace(tmp, out_path)


def _guest_python(root):
    """'3.11' for the python3.11 found in the unpacked userland, or None."""
    lib = os.path.join(root, "usr", "lib")
    for name in sorted(os.listdir(lib)):
        if name.startswith("python3.") and os.path.isfile(os.path.join(lib, name, "os.py")):
            return name[len("python"):]
    return None


def _compile_stdlib(s, root):
    """Byte-compile the guest's Python on the host: bytecode does not depend on the CPU, and
    emulated Python would otherwise compile every module it imports on every boot."""
    ver = _guest_python(root)
    if ver is None:
        return
    if "%d.%d" % sys.version_info[:2] == ver:
        py = sys.executable
    else:
        py = shutil.which("python" + ver)
    if py is None:
        s.say("no host python%s: the guest compiles its stdlib at run time (slower)" % ver)
        return
    dirs = [os.path.join(root, "usr/lib/python" + ver), os.path.join(root, "usr/lib/python3")]
    subprocess.run([py, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash",
                    "-s", root, "-p", "/"] + [d for d in dirs if os.path.isdir(d)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def build_userland(s, debs, out_path):
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="userland-", dir=_build_dir(s))
    try:
        _extract(debs, work)
        import glob
        for pat in TRIM:
            for p in glob.glob(os.path.join(work, pat)):
                shutil.rmtree(p, ignore_errors=True)
        ver = _guest_python(work)
        if ver:
            for pat in TRIM_STDLIB:
                for p in glob.glob(os.path.join(work, "usr/lib/python" + ver, pat)):
                    shutil.rmtree(p, ignore_errors=True)
        for dirpath, dirnames, _ in os.walk(work):
            if "__pycache__" in dirnames:
                shutil.rmtree(os.path.join(dirpath, "__pycache__"))
                dirnames.remove("__pycache__")
        # A merged-/usr suite ships no /bin, /lib: give the guest the usual links.
        for top in ("bin", "sbin", "lib", "lib64"):
            if not os.path.lexists(os.path.join(work, top)) and \
                    os.path.isdir(os.path.join(work, "usr", top)):
                os.symlink("usr/" + top, os.path.join(work, top))
        _compile_stdlib(s, work)
        for d in ("proc", "sys", "dev", "tmp", "run", "root", "mnt/host", "etc", "sbin",
                  "usr/sbin", "usr/bin", "usr/local/bin"):
            os.makedirs(os.path.join(work, d), exist_ok=True)
        os.chmod(os.path.join(work, "tmp"), 0o1777)
        etc = {"passwd": "root:x:0:0:root:/root:/bin/sh\n", "group": "root:x:0:\n",
               "hosts": "127.0.0.1 localhost\n::1 localhost\n",
               "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
               "hostname": "tinytrace-guest\n"}
        for name, text in etc.items():
            with open(os.path.join(work, "etc", name), "w") as f:
                f.write(text)
        size = sum(os.lstat(os.path.join(d, f)).st_size
                   for d, _, fs in os.walk(work) for f in fs)
        _compress(lambda w: w.add_tree(work), out_path)
        s.say("userland built in %.1fs: %.1f MB unpacked, %.1f MB zstd"
              % (time.monotonic() - t0, size / 1e6, os.path.getsize(out_path) / 1e6))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _kernel_features(config_text):
    conf = {}
    for line in config_text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            conf[k[len("CONFIG_"):]] = v
    yes = lambda k: conf.get(k) == "y"   # noqa: E731
    return {"btf": yes("DEBUG_INFO_BTF"), "kprobes": yes("KPROBES") and yes("KPROBE_EVENTS"),
            "uprobes": yes("UPROBE_EVENTS"), "bpf_jit": yes("BPF_JIT"),
            "jit_always_on": yes("BPF_JIT_ALWAYS_ON"), "bpf_events": yes("BPF_EVENTS")}


def build_kernel(s, deb, out_dir):
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="kernel-", dir=_build_dir(s))
    tmp_out = out_dir + ".%d.tmp" % os.getpid()
    try:
        _extract([deb], work)
        boot = os.path.join(work, "boot")
        vmlinuz = [f for f in os.listdir(boot) if f.startswith("vmlinuz-")]
        config = [f for f in os.listdir(boot) if f.startswith("config-")]
        if not vmlinuz:
            raise GuestUnavailable("%s has no boot/vmlinuz-*" % os.path.basename(deb))
        release = vmlinuz[0][len("vmlinuz-"):]
        config_text = ""
        if config:
            with open(os.path.join(boot, config[0])) as f:
                config_text = f.read()
        shutil.rmtree(tmp_out, ignore_errors=True)
        os.makedirs(tmp_out)
        shutil.copyfile(os.path.join(boot, vmlinuz[0]), os.path.join(tmp_out, "vmlinuz"))
        with open(os.path.join(tmp_out, "config"), "w") as f:
            f.write(config_text)
        mods = initramfs.resolve_modules(SHARE_MODULES, initramfs.module_index(work),
                                         initramfs.builtin_modules(work))
        with open(os.path.join(tmp_out, "mods.cpio"), "wb") as f:
            w = initramfs.CpioWriter(f)
            w.add_dir("tt")
            w.add_dir("tt/mod")
            for name, blob in mods:
                w.add_file("tt/mod/%s.ko" % name, blob)
            w.add_file("tt/mod/order", "".join(n + "\n" for n, _ in mods).encode())
            w.finish()
        name, version, _ = os.path.basename(deb)[:-4].split("_", 2)
        info = {"package": name, "version": debian.urllib.parse.unquote(version),
                "release": release, "features": _kernel_features(config_text),
                "modules": [n for n, _ in mods]}
        with open(os.path.join(tmp_out, "kernel.json"), "w") as f:
            json.dump(info, f, indent=1, sort_keys=True)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(tmp_out, out_dir)
        s.say("kernel %s unpacked in %.1fs (9p modules: %s)"
              % (release, time.monotonic() - t0, " ".join(info["modules"]) or "built in"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(tmp_out, ignore_errors=True)


def _build_dir(s):
    d = os.path.join(s.cache, "build")
    os.makedirs(d, exist_ok=True)
    return d


# ---------------------------------------------------------------- running

class GuestResult(object):
    """What came back from one guest run."""

    def __init__(self, arch, image):
        self.arch = arch
        self.image = image
        self.returncode = None       # the guest command's status; None if none came back
        self.output = ""             # the command's output (stdout and stderr, as printed)
        self.console = []            # every console line
        self.warnings = []
        self.error = None            # why no status came back (or a guest-side error)
        self.timed_out = False
        self.qemu_status = None
        self.boot_seconds = None     # host clock, qemu start -> command start
        self.command_seconds = None  # host clock, command start -> command end
        self.total_seconds = None    # host clock, qemu start -> qemu gone
        self.guest_uptime = None     # the guest's own uptime when the command started
        self.log_path = None

    @property
    def ok(self):
        return self.returncode == 0

    def describe(self, tail=40):
        """A few lines for an assertion message: status, timings, the console's tail."""
        head = "%s guest (kernel %s): " % (self.arch, self.image.kernel["release"])
        if self.returncode is not None:
            head += "command exited %d" % self.returncode
        else:
            head += self.error or "no exit status came back"
        lines = [head, "console log: %s" % self.log_path, "--- last console lines ---"]
        return "\n".join(lines + self.console[-tail:])


def _quote_env(env):
    return "".join("%s=%s\n" % (k, shlex.quote(str(v))) for k, v in sorted(env.items()))


def build_payload(token, command, env, files, share, jit, p9_cache, arch_name):
    """The per-run cpio: /init, /tt/env, /tt/run and /tt/work/<files>."""
    import io
    buf = io.BytesIO()
    w = initramfs.CpioWriter(buf)
    w.add_file("init", initramfs.INIT_SCRIPT.encode(), 0o755)
    for d in ("tt", "tt/work", "mnt", "mnt/host"):
        w.add_dir(d)
    genv = {"TT_TOKEN": token, "TT_ARCH": arch_name, "TT_SHARE": "1" if share else "",
            "TT_JIT": "" if jit is None else str(jit), "TT_9P_CACHE": p9_cache}
    genv.update(env or {})
    w.add_file("tt/env", _quote_env(genv).encode())
    w.add_file("tt/run", (command.rstrip("\n") + "\n").encode())
    for name, src in sorted((files or {}).items()):
        if "/" in name or name in ("", ".", ".."):
            raise ValueError("guest file names are plain names: %r" % name)
        if isinstance(src, bytes):
            data, mode = src, 0o644
        else:
            with open(src, "rb") as f:
                data = f.read()
            mode = os.stat(src).st_mode & 0o777
        w.add_file("tt/work/" + name, data, mode)
    w.finish()
    return buf.getvalue()


def qemu_argv(s, image, initrd, pidfile, share):
    a = s.arch
    # panic=-1 with -no-reboot: a guest kernel that panics ends qemu at once. Soft lockups
    # only warn (no softlockup_panic): under TCG a vCPU thread starved by the host for a few
    # seconds looks like a lockup to the guest, and one such stall panicked an x86_64 guest
    # in CI; a truly wedged guest still ends at the hard timeout. watchdog_thresh=60 (the
    # maximum) makes the watchdog report only stalls of two minutes or more.
    append = ("console=%s quiet loglevel=3 panic=-1 watchdog_thresh=60 rdinit=/init"
              % a.console)
    if s.append:
        append += " " + s.append
    argv = [a.qemu, "-M", a.machine, "-accel", "tcg,thread=multi", "-cpu", s.cpu,
            "-m", str(s.mem), "-smp", str(s.smp), "-nodefaults", "-display", "none",
            "-no-reboot", "-serial", "stdio", "-monitor", "none",
            "-kernel", image.vmlinuz, "-initrd", initrd, "-append", append, "-pidfile", pidfile]
    if share:
        argv += ["-fsdev", "local,id=tt0,path=%s,security_model=none"
                 % os.path.abspath(share).replace(",", ",,"),
                 "-device", "virtio-9p-pci,fsdev=tt0,mount_tag=ttshare"]
    return argv + shlex.split(s.qemu_args)


def run(arch, command, share=None, files=None, env=None, echo=None, image=None, **kw):
    """Boot ``arch``, run the shell ``command`` as root, return a GuestResult.

    share: a host folder mounted read-write (9p) at /mnt/host, where the command runs;
           without it the command runs in /tt/work.
    files: {name: host path or bytes} copied into /tt/work (the guest's RAM, no share needed).
    env:   extra environment variables for the command.
    echo:  called with each line of the command's output as it arrives (None: quiet).
    Other keywords are Settings (timeout, suite, jit, mem, smp, cpu, append, cache ...).
    Raises GuestUnavailable if the guest cannot be built.
    """
    s = kw.pop("settings", None)
    if s is None:
        s = Settings(arch, **kw)
    elif kw:                       # a shared Settings, with this run's own changes
        import copy
        s = copy.copy(s)
        for k, v in kw.items():
            if not hasattr(s, k) or k in ("arch", "cache", "suite", "packages"):
                raise TypeError("cannot override setting %r for one run" % k)
            setattr(s, k, v)
    if image is None:
        image = prepare(arch, settings=s)
    if share is not None and not os.path.isdir(share):
        raise ValueError("share %r is not a folder" % share)
    token = os.urandom(6).hex()
    res = GuestResult(s.arch.name, image)
    _remove_orphans()
    work = tempfile.mkdtemp(prefix="tt-guest-%s-%d-" % (s.arch.name, os.getpid()))
    try:
        initrd = os.path.join(work, "initrd")
        pidfile = os.path.join(work, "qemu.pid")
        with open(initrd, "wb") as out:
            out.write(build_payload(token, command, env, files, share, s.jit, s.p9_cache,
                                    s.arch.name))
            for part in (image.modules, image.userland):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        log_path = s.log_path or os.path.join(s.cache, "logs", "%s-last.log" % s.arch.name)
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        res.log_path = log_path
        argv = qemu_argv(s, image, initrd, pidfile, share)
        marker = "@@TT:%s:" % token
        out_lines = []
        state = {"in": False}
        t0 = time.monotonic()
        with open(log_path, "w", buffering=1) as log:      # line-buffered: tail -f works
            log.write("# %s\n" % " ".join(shlex.quote(x) for x in argv))

            def on_line(line):
                log.write(line + "\n")
                res.console.append(line)
                if marker not in line:
                    if state["in"]:
                        out_lines.append(line)
                        if echo:
                            echo(line)
                    elif s.verbose and echo:
                        echo(line)
                    return
                before, _, what = line.partition(marker)
                if before and state["in"]:
                    out_lines.append(before)
                    if echo:
                        echo(before)
                now = time.monotonic()
                if what.startswith("BEGIN"):
                    state["in"] = True
                    res.boot_seconds = now - t0
                    res.guest_uptime = _float(what.split()[1:2])
                elif what.startswith("EXIT="):
                    state["in"] = False
                    res.returncode = int(what[5:].split()[0])
                    res.command_seconds = now - t0 - (res.boot_seconds or 0)
                elif what.startswith("ERROR"):
                    res.error = "guest: " + what[5:].strip()
                elif what.startswith("WARN"):
                    res.warnings.append(what[4:].strip())

            s.say("booting %s (%s), timeout %gs" % (image.kernel["release"], s.cpu, s.timeout))
            br = runner.run_bounded(argv, s.timeout, on_line, pidfile=pidfile)
        res.total_seconds = br.seconds
        res.qemu_status = br.returncode
        res.timed_out = br.timed_out
        res.output = "\n".join(out_lines) + ("\n" if out_lines else "")
        panic = [l for l in res.console if "Kernel panic - not syncing" in l]
        if res.returncode is None and res.error is None and panic:
            res.error = "the guest kernel panicked: " + panic[0].split("]", 1)[-1].strip()
        if res.returncode is None and res.error is None:
            if br.timed_out:
                res.error = "timed out after %gs" % s.timeout
            else:
                res.error = "qemu exited with status %s before the command finished" \
                    % br.returncode
        s.say("%s in %.1fs (boot %s, command %s)"
              % ("exit %s" % res.returncode if res.returncode is not None else res.error,
                 res.total_seconds, _fmt(res.boot_seconds), _fmt(res.command_seconds)))
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _remove_orphans():
    """Remove the run folders (an initrd each) of harnesses that were killed outright."""
    top = tempfile.gettempdir()
    for name in os.listdir(top):
        parts = name.split("-")
        if len(parts) != 5 or parts[:2] != ["tt", "guest"] or not parts[3].isdigit():
            continue
        if not os.path.exists("/proc/%s" % parts[3]):
            shutil.rmtree(os.path.join(top, name), ignore_errors=True)


def _float(v):
    try:
        return float(v[0])
    except (IndexError, ValueError):
        return None


def _fmt(v):
    return "-" if v is None else "%.1fs" % v
