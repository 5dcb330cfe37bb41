"""The child side of every workload process.

A workload child runs a generator function ``fn(cfg)`` named "module:function".  Everything
up to its first ``yield`` is set-up (interpreter start-up, imports, files, sockets); the
yielded value is the *ready* report.  Then the child blocks on its control pipe: each byte
from the parent ("go") runs the generator to its next ``yield``, whose value goes back as the
next report.  End of file on the control pipe closes the generator (its ``finally`` blocks
run) and the process exits 0.  An exception prints a traceback on stderr and exits 1.

Reports are single JSON lines on a dedicated pipe, so nothing the workload prints can be
mistaken for one.  Between two reports the child makes only the system calls of its work,
plus one read(2) of the go byte and the write(2) of the report.
"""
import importlib
import json
import os
import sys
import traceback


def _send(fd, payload):
    data = (json.dumps(payload, sort_keys=True) + "\n").encode()
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _wait_go(fd):
    while True:
        try:
            return os.read(fd, 1) != b""
        except InterruptedError:
            continue


def main(argv):
    spec = json.loads(argv[1])
    ctl, rep = spec["ctl"], spec["rep"]
    from tests.workloads import _util
    _util.die_with_parent()
    if spec.get("comm"):
        _util.set_comm(spec["comm"])
    module, _, func = spec["target"].partition(":")
    gen = getattr(importlib.import_module(module), func)(spec.get("cfg") or {})
    try:
        payload = next(gen)
        while True:
            _send(rep, payload)
            if not _wait_go(ctl):
                gen.close()
                break
            payload = next(gen)
    except StopIteration:
        _send(rep, {"__end__": True})
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


BOOT = ("import sys; sys.path.insert(0, %r); "
        "from tests.workloads._child import main; main(sys.argv)")
