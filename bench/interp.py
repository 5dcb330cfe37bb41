"""The Python that runs tinytrace in the benchmarks.

A development machine's interpreter often carries ``.pth`` files that import things at
every start-up (this one's site-packages has one that imports certifi: ~17 ms and ~5 MB
per process).  A user's board does not, and those milliseconds are not tinytrace's.  So by
default the harness runs tinytrace on a *clean* virtual environment of the same interpreter
-- no system site-packages, so no foreign ``.pth`` -- holding only cffi (and pycparser, which
pip installs with it), copied file by file from the interpreter's own installation.  The
cost of the machine's ``site`` step is measured too and reported next to the results.
"""
import json
import os
import shutil
import subprocess

_LIST_DISTS = r"""
import json, os, sys
from importlib import metadata
out = {}
for name in ("cffi", "pycparser"):
    try:
        d = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        continue
    root = os.path.abspath(str(d.locate_file("")))
    files = []
    for f in d.files or ():
        p = os.path.abspath(str(d.locate_file(f)))
        if p.startswith(root + os.sep) and os.path.isfile(p):
            files.append(os.path.relpath(p, root))
    out[name] = {"root": root, "files": files, "version": d.version}
print(json.dumps({"version": sys.version.split()[0], "dists": out}))
"""


def _venv_python(dest):
    return os.path.join(dest, "bin", "python3")


def _site_packages(python):
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    out = subprocess.run([python, "-c", code], stdout=subprocess.PIPE, check=True)
    return out.stdout.decode().strip()


def clean_venv(base_python, dest):
    """A venv of ``base_python`` at ``dest`` with cffi and pycparser only; reused when it
    matches.  Returns its python path."""
    info = json.loads(subprocess.run([base_python, "-c", _LIST_DISTS], stdout=subprocess.PIPE,
                                     check=True).stdout.decode())
    if "cffi" not in info["dists"]:
        raise RuntimeError("%s has no cffi installed (pip install cffi)" % base_python)
    stamp = os.path.join(dest, "ttbench.json")
    want = {"base": os.path.realpath(base_python), "version": info["version"],
            "cffi": info["dists"]["cffi"]["version"]}
    if os.path.exists(stamp):
        try:
            with open(stamp) as f:
                if json.load(f) == want and os.path.exists(_venv_python(dest)):
                    return _venv_python(dest)
        except (OSError, ValueError):
            pass
        shutil.rmtree(dest, ignore_errors=True)
    subprocess.run([base_python, "-m", "venv", "--without-pip", dest], check=True)
    py = _venv_python(dest)
    site = _site_packages(py)
    for dist in info["dists"].values():
        for rel in dist["files"]:
            if rel.endswith(".pyc"):
                continue
            src = os.path.join(dist["root"], rel)
            dst = os.path.join(site, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
    subprocess.run([py, "-m", "compileall", "-q", site], stdout=subprocess.DEVNULL, check=False)
    subprocess.run([py, "-c", "import cffi, _cffi_backend"], check=True)
    with open(stamp, "w") as f:
        json.dump(want, f)
    return py


def site_cost(python):
    """(site import µs, [.pth files that run code]) for ``python``'s normal start-up."""
    from bench import parse
    r = subprocess.run([python, "-X", "importtime", "-c", "pass"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    us = None
    for _, cum, depth, mod in parse.parse_importtime(r.stderr.decode("utf-8", "replace")):
        if mod == "site" and depth == 0:
            us = cum
    r = subprocess.run([python, "-c", "import site, sys; print('\\n'.join(site.getsitepackages()"
                                      " if hasattr(site, 'getsitepackages') else []))"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    pths = []
    for d in r.stdout.decode().split():
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            if not n.endswith(".pth"):
                continue
            try:
                with open(os.path.join(d, n)) as f:
                    if any(line.startswith(("import ", "import\t")) for line in f):
                        pths.append(os.path.join(d, n))
            except OSError:
                continue
    return us, pths


def default_venv_dir(base_python):
    import hashlib
    h = hashlib.sha1(os.path.realpath(base_python).encode()).hexdigest()[:10]
    return "/tmp/ttbench-venv-%d-%s" % (os.getuid(), h)
