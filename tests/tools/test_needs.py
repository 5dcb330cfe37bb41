"""Tools that read kernel structs need the kernel's BTF.  Without it (``TINYTRACE_TARGET=btf=0``
hides it, as on a kernel built without CONFIG_DEBUG_INFO_BTF, e.g. the armhf guest) each tool
whose ``NEEDS`` names BTF -- and each option that needs it -- stops with one line saying so
and exit code 1, before it loads anything.  The list comes from the tools' own ``NEEDS``, so
a tool that starts reading structs must declare it.
"""
import pytest

from tests.tools.util import run_tool
from tinytrace.tools import find_tool, tool_names

pytestmark = pytest.mark.bpf

BTF_TOOLS = [n for n in tool_names() if "btf" in getattr(find_tool(n), "NEEDS", ())]
# options that read structs in tools that otherwise do not
BTF_OPTIONS = [["offcputime", "-u", "1"], ["offcputime", "-k", "1"]]


def test_the_struct_readers_declare_it():
    assert {"tcpaccept", "tcplife", "tcptop", "runqlen"} <= set(BTF_TOOLS), BTF_TOOLS


@pytest.mark.parametrize("args", [[n] for n in BTF_TOOLS] + BTF_OPTIONS, ids=" ".join)
def test_without_btf_one_clear_line(args):
    rc, out, err = run_tool(args, env={"TINYTRACE_TARGET": "btf=0"})
    assert rc == 1 and "Traceback" not in err, (args, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "needs the kernel's BTF" in lines[0], (args, err)
    assert out == "", out
