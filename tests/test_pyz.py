"""tinytrace.pyz (scripts/make_pyz.py): one file that runs without the checkout.

The same archive is copied alone into the qemu guests by tests/guests/test_matrix.py; here it
runs on the host, from a folder where the checkout is not importable.
"""
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.guests import pyz_checks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKE = os.path.join(REPO, "scripts", "make_pyz.py")
PY39 = os.path.expanduser("~/.pyenv/versions/3.9.18/bin/python")


def _make(out, *extra):
    p = subprocess.run([sys.executable, MAKE, "-o", out] + list(extra), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def pyz(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("pyz") / "tinytrace.pyz")
    assert "wrote %s" % out in _make(out)
    return out


def _run(python, args, cwd):
    # -I: neither the current folder nor PYTHONPATH can lend it the checkout.
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return subprocess.run([python, "-I"] + args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)


def _repo_files(folder):
    out = []
    for d, dirs, files in os.walk(os.path.join(REPO, folder)):
        dirs[:] = [x for x in dirs if x != "__pycache__" and not x.startswith(".")]
        out += [os.path.relpath(os.path.join(d, f), os.path.join(REPO, folder)).replace(os.sep, "/")
                for f in files if not f.endswith((".pyc", "~")) and not f.startswith(".")]
    return out


def test_layout_is_the_installed_one(pyz):
    with open(pyz, "rb") as f:
        assert f.readline() == b"#!/usr/bin/env python3\n"
    assert os.access(pyz, os.X_OK)
    names = zipfile.ZipFile(pyz).namelist()
    assert names[0] == "__main__.py"
    want = set(["tinytrace/" + f for f in _repo_files("tinytrace")]
               + ["tinytrace/asm/" + f for f in _repo_files("asm")]
               + ["tinytrace/tools/" + f for f in _repo_files("tools")])
    assert set(names) - {"__main__.py"} == want
    assert not [n for n in names if n.endswith((".so", ".pyc", ".pyd")) or "__pycache__" in n]
    assert not [n for n in names if n.startswith(("tests/", "asm/", "tools/", "scripts/"))]


def test_build_is_reproducible(pyz, tmp_path):
    again = str(tmp_path / "again.pyz")
    _make(again)
    with open(pyz, "rb") as a, open(again, "rb") as b:
        assert a.read() == b.read()


@pytest.mark.parametrize("python", [sys.executable, PY39])
def test_version_and_list_match_the_checkout(pyz, tmp_path, python):
    if not os.path.exists(python):
        pytest.skip("no %s here" % python)
    for args in (["--version"], ["--list"]):
        from_pyz = _run(python, [pyz] + args, str(tmp_path))
        from_repo = subprocess.run([python, "-m", "tinytrace"] + args, cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   universal_newlines=True)
        assert from_pyz.returncode == 0, from_pyz.stderr
        assert from_pyz.stdout == from_repo.stdout
        assert from_pyz.stderr == ""


IMPORT_ALL = """\
import importlib, json, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import tinytrace
where = {}
if len(sys.argv) > 2:
    names = json.loads(sys.argv[2])
else:
    # Walk the archive; a checkout's tinytrace.__path__ also holds the repository root,
    # so walking it would list the whole tree.
    names = []
    for pkg in ("tinytrace", "tinytrace.asm", "tinytrace.tools"):
        mod = importlib.import_module(pkg)
        names += [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".")
                  if not m.name.endswith(".__main__")]    # that one runs the command line
failed = {}
for name in sorted(set(names)):
    try:
        where[name] = importlib.import_module(name).__file__
    except Exception as e:
        failed[name] = "%s: %s" % (type(e).__name__, e)
print(json.dumps({"names": sorted(set(names)), "failed": failed, "where": where}))
"""


def test_every_module_imports_from_the_archive_as_from_the_checkout(pyz, tmp_path):
    """Modules that read their own folder with os (not the import system) break in a zip."""
    import json
    script = str(tmp_path / "import_all.py")
    with open(script, "w") as f:
        f.write(IMPORT_ALL)
    p = _run(sys.executable, [script, pyz], str(tmp_path))
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert "tinytrace.asm" in got["names"] and "tinytrace.tools" not in got["failed"]
    p = _run(sys.executable, [script, REPO, json.dumps(got["names"])], str(tmp_path))
    assert p.returncode == 0, p.stderr
    repo = json.loads(p.stdout)
    assert got["failed"] == repo["failed"]
    for name, where in got["where"].items():
        assert where.startswith(os.path.join(pyz, "")), (name, where)
        assert repo["where"][name].startswith(os.path.join(REPO, "")), name


def test_bytecode_variant_runs_on_its_python_and_others(tmp_path):
    out = str(tmp_path / "tinytrace-pyc.pyz")
    _make(out, "--pyc")
    names = zipfile.ZipFile(out).namelist()
    assert "tinytrace/cli.pyc" in names and "tinytrace/cli.py" in names
    pythons = [sys.executable] + ([PY39] if os.path.exists(PY39) else [])
    for python in pythons:      # 3.9 finds a foreign magic number and compiles the source
        p = _run(python, [out, "--version"], str(tmp_path))
        assert p.returncode == 0 and p.stdout.startswith("tinytrace "), p.stderr


def test_bad_option_is_one_line(tmp_path):
    p = subprocess.run([sys.executable, MAKE, "--no-such-option"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "--no-such-option" in p.stderr


@pytest.mark.bpf
@pytest.mark.parametrize("tool", ["runqlat", "execsnoop"])
def test_tool_from_the_archive_under_a_workload(pyz, tmp_path, tool):
    if not os.path.isfile(os.path.join(REPO, "tools", tool + ".py")):
        pytest.skip("tools/%s.py is not written yet" % tool)
    copy = str(tmp_path / "tinytrace.pyz")
    shutil.copy(pyz, copy)
    rec = pyz_checks.CHECKS[tool](sys.executable, copy)
    assert rec["events"] > 0
