"""Fetching Debian packages for another architecture with a private apt root.

Each (architecture, suite) pair gets a folder that apt treats as its whole world: its own
sources.list, package lists and an empty dpkg status.  The host's dpkg database and its
architectures are never touched (no ``dpkg --add-architecture``), nothing is installed and
nothing runs as another architecture: packages are only resolved and downloaded here, then
unpacked with ``dpkg-deb -x`` by the image builder.
"""
import os
import re
import shutil
import subprocess
import time
import urllib.parse

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"

# Pulled in only through dpkg's pre-dependencies; the guest never runs dpkg.
NOT_NEEDED = frozenset(["dpkg", "tar", "libacl1", "libselinux1", "libpcre2-8-0", "libmd0",
                        "libzstd1", "debianutils", "base-files", "init-system-helpers",
                        "usrmerge"])


class Unavailable(Exception):
    """A package or index could not be had: the guest cannot be built (a skip, not a failure)."""


class Deb(object):
    """One package as apt would download it."""

    def __init__(self, uri, filename, size, digest):
        self.uri = uri
        self.filename = filename
        self.size = int(size)
        self.digest = digest
        name, version, _ = filename[:-4].split("_", 2)
        self.name = name
        self.version = urllib.parse.unquote(version)

    def __repr__(self):
        return "Deb(%s %s)" % (self.name, self.version)


def parse_print_uris(text):
    """The ``'URI' FILE SIZE HASH`` lines of ``apt-get --print-uris`` as Debs."""
    debs = []
    for line in text.splitlines():
        m = re.match(r"^'([^']+)'\s+(\S+\.deb)\s+(\d+)\s+(\S*)", line)
        if m:
            debs.append(Deb(*m.groups()))
    return debs


def apt_errors(text, limit=3):
    lines = [l.strip() for l in text.splitlines() if l.startswith(("E:", "Err:"))]
    return "; ".join(lines[:limit])


def _sources(suite, mirror, security):
    lines = ["deb [signed-by=%s] %s %s main" % (KEYRING, mirror, suite)]
    if not re.search(r"-backports$|^(sid|unstable|experimental)$", suite):
        lines.append("deb [signed-by=%s] %s %s-updates main" % (KEYRING, mirror, suite))
        lines.append("deb [signed-by=%s] %s %s-security main" % (KEYRING, security, suite))
    return "\n".join(lines) + "\n"


class AptRoot(object):
    """A private apt tree for one Debian architecture and suite, under ``path``."""

    def __init__(self, path, debian_arch, suite, log, mirror=None, security=None):
        self.path = path
        self.arch = debian_arch
        self.suite = suite
        self.log = log
        self.mirror = mirror or os.environ.get("TINYTRACE_GUEST_MIRROR") or DEFAULT_MIRROR
        self.security = (security or os.environ.get("TINYTRACE_GUEST_SECURITY_MIRROR")
                         or DEFAULT_SECURITY)

    def options(self):
        r = self.path
        return ["-o", "Dir=" + r,
                "-o", "Dir::State::status=" + os.path.join(r, "var/lib/dpkg/status"),
                "-o", "Dir::Etc::SourceParts=" + os.path.join(r, "etc/apt/sources.list.d"),
                "-o", "APT::Architecture=" + self.arch,
                "-o", "APT::Architectures::=" + self.arch,
                "-o", "APT::Install-Recommends=0",
                "-o", "Debug::NoLocking=1",
                "-o", "APT::Sandbox::User=root",
                "-o", "Acquire::Retries=3"]

    def _setup(self):
        r = self.path
        for d in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d",
                  "etc/apt/sources.list.d", "var/lib/apt/lists/partial",
                  "var/cache/apt/archives/partial", "var/lib/dpkg"):
            os.makedirs(os.path.join(r, d), exist_ok=True)
        status = os.path.join(r, "var/lib/dpkg/status")
        if not os.path.exists(status):
            open(status, "w").close()
        with open(os.path.join(r, "etc/apt/sources.list"), "w") as f:
            f.write(_sources(self.suite, self.mirror, self.security))

    def _apt(self, tool, args, cwd=None):
        return subprocess.run([tool] + self.options() + list(args), cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True,
                              env=dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive"))

    def lists(self):
        d = os.path.join(self.path, "var/lib/apt/lists")
        try:
            return [f for f in os.listdir(d) if "_Packages" in f]
        except OSError:
            return []

    def lists_age(self):
        """Seconds since the last successful ``apt-get update``, or None if never."""
        try:
            return time.time() - os.stat(os.path.join(self.path, "updated")).st_mtime
        except OSError:
            return None

    def update(self, tries=3):
        """``apt-get update``; carries on with what it got when a mirror index stays broken
        (this happens: an armhf index whose size does not match its InRelease)."""
        self._setup()
        self.log("apt-get update (%s %s)" % (self.arch, self.suite))
        out = ""
        for attempt in range(tries):
            p = self._apt("apt-get", ["-q", "update"])
            out = p.stdout
            with open(os.path.join(self.path, "update.log"), "w") as f:
                f.write(out)
            if p.returncode == 0 and not apt_errors(out):
                break
            if attempt + 1 < tries:
                self.log("apt-get update had errors (try %d), retrying: %s"
                         % (attempt + 1, apt_errors(out, 1)))
                time.sleep(3)
        else:
            if not self.lists():
                raise Unavailable("apt-get update (%s %s) failed: %s"
                                  % (self.arch, self.suite, apt_errors(out) or out[-300:]))
            self.log("apt-get update still has errors, going on with the indexes it got: %s"
                     % apt_errors(out, 2))
        open(os.path.join(self.path, "updated"), "w").close()

    def ensure_lists(self, refresh=False, max_age=None):
        self._setup()
        age = self.lists_age()
        if refresh or not self.lists() or age is None or (max_age and age > max_age):
            self.update()

    def resolve(self, packages):
        """The dependency closure of ``packages`` (as against an empty system), as Debs."""
        p = self._apt("apt-get", ["install", "-d", "-y", "--print-uris"] + list(packages))
        debs = parse_print_uris(p.stdout)
        if p.returncode != 0 or not debs:
            raise Unavailable("cannot resolve %s for %s (%s): %s"
                              % (" ".join(packages), self.arch, self.suite,
                                 apt_errors(p.stdout) or p.stdout[-300:]))
        return debs

    def locate(self, packages):
        """Debs for exactly these packages (no dependencies)."""
        p = self._apt("apt-get", ["download", "--print-uris"] + list(packages))
        debs = parse_print_uris(p.stdout)
        if p.returncode != 0 or len(debs) != len(packages):
            raise Unavailable("cannot find %s for %s (%s): %s"
                              % (" ".join(packages), self.arch, self.suite,
                                 apt_errors(p.stdout) or p.stdout[-300:]))
        return debs

    def depends_of(self, package, prefix):
        """The first dependency of ``package`` whose name starts with ``prefix``
        (e.g. the versioned kernel behind linux-image-arm64)."""
        p = self._apt("apt-cache", ["depends", package])
        for line in p.stdout.splitlines():
            m = re.match(r"^\s*Depends:\s*(\S+)", line)
            if m and m.group(1).startswith(prefix):
                return m.group(1)
        raise Unavailable("%s is not in %s for %s: %s"
                          % (package, self.suite, self.arch,
                             apt_errors(p.stdout) or "see %s/update.log" % self.path))

    def download(self, debs, into):
        """Make sure every Deb is in folder ``into`` (same size); fetch the missing ones."""
        os.makedirs(into, exist_ok=True)
        missing = []
        for d in debs:
            path = os.path.join(into, d.filename)
            if os.path.exists(path) and os.path.getsize(path) == d.size:
                continue
            missing.append(d)
        if not missing:
            return [os.path.join(into, d.filename) for d in debs]
        mb = sum(d.size for d in missing) / 1e6
        self.log("downloading %d packages (%.1f MB) for %s" % (len(missing), mb, self.arch))
        tmp = os.path.join(into, ".partial-%d" % os.getpid())
        os.makedirs(tmp, exist_ok=True)
        try:
            p = self._apt("apt-get", ["-q", "download"]
                          + ["%s=%s" % (d.name, d.version) for d in missing], cwd=tmp)
            got = set(os.listdir(tmp))
            failed = []
            for d in missing:
                name = d.filename if d.filename in got else _fuzzy(got, d)
                if name is None:
                    failed.append(d)
                    continue
                os.replace(os.path.join(tmp, name), os.path.join(into, d.filename))
            if failed:
                raise Unavailable("cannot download %s for %s: %s"
                                  % (", ".join("%s %s" % (d.name, d.version) for d in failed),
                                     self.arch, apt_errors(p.stdout) or p.stdout[-300:]))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return [os.path.join(into, d.filename) for d in debs]


def _fuzzy(names, deb):
    """apt may spell the epoch's colon differently in the file name."""
    want = urllib.parse.unquote(deb.filename)
    for n in names:
        if urllib.parse.unquote(n) == want:
            return n
    return None
