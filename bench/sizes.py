"""What each tracer needs on disk.

- tinytrace: the files ``pip install .`` puts in site-packages -- the packages listed in
  setup.cfg, laid out as installed (asm/ -> tinytrace/asm, tools/ -> tinytrace/tools),
  byte-compiled for the running Python -- measured by building that tree in a temporary
  directory; plus cffi (its installed files, from its dist-info RECORD) and pycparser, which
  pip installs with cffi although tinytrace's ABI-mode module never imports it at run time.
  The single-file zipapp (tinytrace.pyz) is reported too when present.
- bpftrace: ``dpkg-query``'s Installed-Size of the package and of its installed dependency
  closure, and the part of that closure a machine with python3 does not already have.
"""
import os
import shutil
import subprocess
import sys
import tempfile

from bench import parse


def tree_bytes(path):
    """(apparent bytes, allocated bytes) of the regular files under ``path``."""
    apparent = allocated = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


def _setup_cfg_layout(root):
    """[(package, source dir)] and package_data patterns from setup.cfg."""
    import configparser
    cp = configparser.ConfigParser()
    cp.read(os.path.join(root, "setup.cfg"))
    pkgs = [p.strip() for p in cp.get("options", "packages").split() if p.strip()]
    dirs = {}
    if cp.has_option("options", "package_dir"):
        for line in cp.get("options", "package_dir").splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                dirs[k.strip()] = v.strip()
    data = {}
    if cp.has_section("options.package_data"):
        for k, v in cp.items("options.package_data"):
            data[k.strip()] = [x.strip() for x in v.split(",") if x.strip()]
    out = []
    for p in pkgs:
        src = None
        for prefix in sorted(dirs, key=len, reverse=True):
            if p == prefix or p.startswith(prefix + "."):
                src = os.path.join(dirs[prefix], *p[len(prefix):].split(".")[1:])
                break
        if src is None:
            src = os.path.join(*p.split("."))
        out.append((p, os.path.join(root, src)))
    return out, data


def tinytrace_installed(root, python=None):
    """Bytes of tinytrace as installed (sources + .pyc for ``python``)."""
    import fnmatch
    pkgs, data = _setup_cfg_layout(root)
    tmp = tempfile.mkdtemp(prefix="ttbench-size-")
    try:
        for pkg, src in pkgs:
            dest = os.path.join(tmp, *pkg.split("."))
            os.makedirs(dest, exist_ok=True)
            patterns = ["*.py"] + data.get(pkg, [])
            for name in os.listdir(src):
                full = os.path.join(src, name)
                if os.path.isfile(full) and any(fnmatch.fnmatch(name, pt) for pt in patterns):
                    shutil.copy2(full, os.path.join(dest, name))
        src_bytes = tree_bytes(tmp)
        subprocess.run([python or sys.executable, "-m", "compileall", "-q", tmp],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        total = tree_bytes(tmp)
        nfiles = sum(len(f) for _, _, f in os.walk(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"source_bytes": src_bytes[0], "installed_bytes": total[0],
            "installed_allocated_bytes": total[1], "files": nfiles}


def distribution_bytes(name):
    """Bytes of an installed distribution's files (from its RECORD), or None."""
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - 3.8 and older
        return None
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    total = 0
    for f in dist.files or ():
        try:
            total += os.path.getsize(str(dist.locate_file(f)))
        except OSError:
            pass
    return {"version": dist.version, "bytes": total}


def dpkg_packages():
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=" + parse.DPKG_FORMAT],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    except OSError:
        return {}
    return parse.parse_dpkg(out.stdout.decode("utf-8", "replace"))


def measure(root, python=None):
    """Everything for the size figure, as a JSON-able dict."""
    res = {"tinytrace": tinytrace_installed(root, python)}
    pyz = os.path.join(root, "tinytrace.pyz")
    if os.path.isfile(pyz):
        res["tinytrace_pyz_bytes"] = os.path.getsize(pyz)
    for dist in ("cffi", "pycparser"):
        res[dist] = distribution_bytes(dist)
    pkgs = dpkg_packages()
    if "bpftrace" in pkgs:
        bt = parse.dependency_closure(pkgs, "bpftrace")
        py = parse.dependency_closure(pkgs, "python3") if "python3" in pkgs else set()
        extra = bt - py
        res["bpftrace"] = {
            "package_kb": pkgs["bpftrace"]["size_kb"],
            "closure_kb": parse.closure_size_kb(pkgs, bt),
            "closure_packages": len(bt),
            "beyond_python3_kb": parse.closure_size_kb(pkgs, extra),
            "beyond_python3_packages": len(extra),
            "largest": sorted(((n, pkgs[n]["size_kb"]) for n in bt),
                              key=lambda x: -x[1])[:8],
        }
        if py:
            res["python3_closure_kb"] = parse.closure_size_kb(pkgs, py)
            res["python3_closure_packages"] = len(py)
    return res
