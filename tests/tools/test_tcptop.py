"""tcptop under the loopback TCP workload.

The client sends ``sent`` bytes and receives ``received`` on each connection, the server the
reverse.  tcptop counts what the send/receive calls moved, so per process and connection its
byte counts must be exactly those (KB in the text layout, bytes in JSON).  A long interval
ended by Ctrl-C gives one report holding the whole workload.

The tool takes the sock:sock_send_length/sock_recv_length tracepoints where the kernel has
them (this development VM) and BCC's kprobes on tcp_sendmsg/tcp_cleanup_rbuf elsewhere (the
qemu guests' 6.1): the kprobe test at the end runs there (``guest_safe``, ``kprobes``).  The
workload's sends and receives are blocking calls that move all that was asked for, so the
byte counts are exact with both.
"""
import json
import os

import pytest

from tests.tools.util import ToolRun, run_tool
from tests.workloads import tcp_sessions

pytestmark = pytest.mark.bpf

READY = "Tracing... Output every"
STARTUP = 240 if os.environ.get("TINYTRACE_GUEST") else 30     # emulated Python is slow


def _run(args, env=None):
    with tcp_sessions() as w:
        run = ToolRun(["tcptop"] + [a.replace("CLIENT", str(w.pid))
                                    .replace("SERVER", str(w.server.pid)) for a in args],
                      ready=READY, env=env)
        try:
            run.started(STARTUP)
            rec = w.go()
        finally:
            rc = run.stop()
    assert rc == 0, run.stderr
    assert "Traceback" not in run.stderr
    return rec, run


def test_client_connections_with_their_bytes():
    rec, run = _run(["-C", "-p", "CLIENT", "60"])
    lines = run.stdout.splitlines()
    assert lines[0] == "Tracing... Output every 60 secs. Hit Ctrl-C to end"
    assert "loadavg:" in run.stdout
    heads = [l.split() for l in lines if l.startswith("PID")]
    assert heads == [["PID", "COMM", "LADDR", "RADDR", "RX_KB", "TX_KB"],
                     ["PID", "COMM", "LADDR6", "RADDR6", "RX_KB", "TX_KB"]], run.stdout
    rows = [l.split() for l in lines if l.split() and l.split()[0] == str(rec.pid)]
    want = []
    for s in rec.sessions:
        want.append([str(rec.pid), rec.comm,
                     "%s:%d" % (s["client"]["addr"], s["client"]["port"]),
                     "%s:%d" % (s["server"]["addr"], s["server"]["port"]),
                     str(s["received"] // 1024), str(s["sent"] // 1024)])
    assert rows == want, run.stdout


def test_json_exact_bytes_both_sides():
    _check_exact_bytes(*_run(["--json", "-S", "60"]))


def _check_exact_bytes(rec, run):
    assert READY in run.stderr
    objs = [json.loads(l) for l in run.stdout.splitlines()]
    assert len(objs) == 1, run.stdout
    assert "loadavg" not in objs[0]
    conns = {(c["pid"], c["lport"]): c for c in objs[0]["connections"]}
    for s in rec.sessions:
        c = conns[(rec.pid, s["client"]["port"])]
        assert (c["comm"], c["ip"], c["laddr"], c["raddr"], c["rport"]) == (
            rec.comm, s["family"], s["client"]["addr"], s["server"]["addr"],
            s["server"]["port"]), c
        assert (c["tx_bytes"], c["rx_bytes"]) == (s["sent"], s["received"]), c
        v = conns[(rec.server.pid, s["server"]["port"])]
        assert (v["comm"], v["rport"]) == (rec.server.comm, s["client"]["port"]), v
        assert (v["tx_bytes"], v["rx_bytes"]) == (s["received"], s["sent"]), v


def test_maxrows_keeps_the_busiest_per_family():
    rec, run = _run(["--json", "-r", "1", "-p", "SERVER", "60"])
    conns = json.loads(run.stdout.splitlines()[0])["connections"]
    assert sorted(c["ip"] for c in conns) == [4, 6], conns
    assert all(c["pid"] == rec.server.pid for c in conns)


@pytest.mark.parametrize("option,family", [("-4", 4), ("-6", 6)])
def test_one_family_only(option, family):
    rec, run = _run(["--json", option, "-p", "CLIENT", "60"])
    conns = json.loads(run.stdout.splitlines()[0])["connections"]
    want = sorted(s["client"]["port"] for s in rec.sessions if s["family"] == family)
    assert want and sorted(c["lport"] for c in conns) == want, run.stdout
    assert all(c["ip"] == family for c in conns), conns


def test_interval_and_count_end_by_themselves():
    # this test process does no TCP meanwhile: two reports with a blank line each
    rc, out, err = run_tool(["tcptop", "-C", "-S", "-p", str(os.getpid()), "1", "2"],
                            timeout=60)
    assert rc == 0, err
    assert out.splitlines()[1:] == ["", ""], out


def test_bad_options_are_one_line_exit_2():
    for args in (["0"], ["-p", "x"], ["1", "2", "3"], ["-r", "-1"]):
        rc, out, err = run_tool(["tcptop"] + args)
        assert rc == 2, (args, err)
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and "Traceback" not in err, (args, err)


def _variant():
    from tinytrace.tools import tcptop
    return tcptop.variant()


def test_help_has_examples_and_says_which_probes():
    rc, out, err = run_tool(["tcptop", "-h"])
    assert rc == 0
    assert "examples:" in out and "tcptop -C" in out
    want = {"tracepoint": "This kernel: tracepoints sock:sock_send_length",
            "kprobe": "This kernel: kprobes on tcp_sendmsg"}.get(_variant(), "neither")
    assert want in " ".join(out.split()), out


@pytest.mark.guest_safe
@pytest.mark.kprobes
@pytest.mark.btf
def test_kprobes_exact_bytes():
    """BCC's kprobes (on a kernel with the tracepoints too: TINYTRACE_TARGET=sock_length=0):
    the same exact bytes per process and connection, both sides, both families."""
    from tinytrace import toolkit
    if not toolkit.has_kprobes():
        pytest.skip("this kernel has no kprobes")
    if not toolkit.has_btf():
        pytest.skip("tcptop reads sockets through BTF: this kernel has none")
    _check_exact_bytes(*_run(["--json", "-S", "600"],
                             env={"TINYTRACE_TARGET": "sock_length=0"}))
