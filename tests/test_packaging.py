"""The installed package must hold every subpackage the checkout has.

setup.cfg lists packages by hand (asm/ and tools/ are mapped into tinytrace), so a new
subpackage that is not listed would work from the checkout and break after `pip install`.
"""
import configparser
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _listed():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    return set(p.strip() for p in cfg["options"]["packages"].split() if p.strip())


def _present():
    found = set()
    roots = {"tinytrace": "tinytrace", "tinytrace.asm": "asm", "tinytrace.tools": "tools"}
    for pkg, folder in roots.items():
        base = os.path.join(REPO, folder)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            if "__init__.py" in filenames:
                rel = os.path.relpath(dirpath, base)
                found.add(pkg if rel == "." else pkg + "." + rel.replace(os.sep, "."))
    return found


def test_every_subpackage_is_listed_in_setup_cfg():
    missing = _present() - _listed()
    assert not missing, "add to setup.cfg [options] packages: %s" % sorted(missing)


def _tools():
    names = set()
    for f in os.listdir(os.path.join(REPO, "tools")):
        if f.endswith(".py") and not f.startswith("_"):
            names.add(f[:-3])
    return names


def test_every_tool_is_in_the_readme_and_docs_tools():
    """README's tool table and docs/tools.md name every tool in tools/, and nothing else."""
    import re
    with open(os.path.join(REPO, "README.md")) as f:
        readme = set(re.findall(r"^\| (\w+) \|", f.read(), re.M)) - {"tool"}
    with open(os.path.join(REPO, "docs", "tools.md")) as f:
        documented = set(re.findall(r"^## (\w+)\s*$", f.read(), re.M))
    tools = _tools()
    assert readme == tools, (sorted(tools - readme), sorted(readme - tools))
    assert tools <= documented, sorted(tools - documented)
