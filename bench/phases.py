"""Where tinytrace's start-up time goes: runs one tinytrace command in-process with timers
around the parts of start-up, and reports them when the "attached" line is printed.

    python3 bench/phases.py --report FILE --marker REGEX [--profile|--steady] -- ARGS...

Timers are *exclusive* (time in a nested timed call counts only for the inner part) and
wall-clock.  A meta-path hook wraps functions as their modules load, so nothing is imported
earlier than the tool itself would import it:

    import      every import statement and importlib.import_module (module bodies)
    options     argument parsing (argparse, the language's option parser)
    metadata    tracefs formats and ids, BTF (tinytrace.kernel.tracefs / .btf functions)
    features    kernel feature probes (tinytrace.kernel.features.probe)
    compile     the language compiler (tinytrace.lang.compiler.compile_program)
    assemble    the assembler's link step (tinytrace.asm.link)
    maps        map creation (Session.map, maps.Map.create)
    load        program loading, i.e. the verifier (Session.load, progs.load)
    attach      attaching (Session.tracepoint, raw_tracepoint, tp_btf, perf_event, ...,
                and the functions of tinytrace.kernel.attach)
    buffers     event buffers (Session.output, Session.reader)
    other       the rest of main() up to the marker line: tool code, including the code that
                builds a tool's programs with the assembler's builders

With ``--steady`` the profiler runs instead from the marker line until the command ends
(the harness runs the case's workload in between): where user-space time goes per event.
The report is then written again at exit, with ``steady_profile``.

With ``--profile`` the same run is also under cProfile (which slows Python code down, so the
phase times of that run are not the ones to quote) and the report carries the top functions
and the self time per source area.  The report is JSON, written as soon as the marker line
is printed; the harness then sends SIGINT and the command ends normally.
"""
import os
import sys
import time

T_START = time.monotonic()
_perf = time.perf_counter

TOTALS = {}
_STACK = []
STATE = {"marked": False, "t_main": None, "report": None, "marker": None, "prof": None,
         "root": None, "steady": None, "rep": None}

ATTACH_METHODS = ("tracepoint", "raw_tracepoint", "tp_btf", "perf_event", "profile",
                  "uprobe", "uretprobe", "usdt", "kprobe", "kretprobe", "per_cpu")


def _wrap(fn, phase):
    if getattr(fn, "_bench_phase", None):
        return fn

    def timed(*a, **k):
        _STACK.append([phase, 0.0])
        t = _perf()
        try:
            return fn(*a, **k)
        finally:
            el = _perf() - t
            _, child = _STACK.pop()
            TOTALS[phase] = TOTALS.get(phase, 0.0) + el - child
            if _STACK:
                _STACK[-1][1] += el
    timed._bench_phase = phase
    timed.__name__ = getattr(fn, "__name__", "timed")
    timed.__doc__ = getattr(fn, "__doc__", None)
    timed.__wrapped__ = fn
    return timed


def _wrap_module_functions(mod, phase):
    import types
    for name, value in list(vars(mod).items()):
        if isinstance(value, types.FunctionType) and value.__module__ == mod.__name__ and \
                not name.startswith("__"):
            setattr(mod, name, _wrap(value, phase))


def _patch(name, mod):
    if name == "tinytrace.session":
        S = mod.Session
        for meth, phase in (("map", "maps"), ("load", "load"), ("output", "buffers"),
                            ("reader", "buffers")):
            if hasattr(S, meth):
                setattr(S, meth, _wrap(getattr(S, meth), phase))
        for meth in ATTACH_METHODS:
            if hasattr(S, meth):
                setattr(S, meth, _wrap(getattr(S, meth), "attach"))
    elif name in ("tinytrace.asm", "tinytrace.asm.link"):
        if callable(getattr(mod, "link", None)) and not isinstance(mod.link, type(sys)):
            mod.link = _wrap(mod.link, "assemble")
    elif name == "tinytrace.lang.compiler":
        if hasattr(mod, "compile_program"):
            mod.compile_program = _wrap(mod.compile_program, "compile")
    elif name in ("tinytrace.kernel.tracefs", "tinytrace.kernel.btf"):
        _wrap_module_functions(mod, "metadata")
    elif name == "tinytrace.kernel.features":
        if hasattr(mod, "probe"):
            mod.probe = _wrap(mod.probe, "features")
    elif name == "tinytrace.kernel.attach":
        _wrap_module_functions(mod, "attach")
    elif name == "tinytrace.kernel.progs":
        if hasattr(mod, "load"):
            mod.load = _wrap(mod.load, "load")
    elif name == "tinytrace.kernel.maps":
        M = getattr(mod, "Map", None)
        create = getattr(M, "create", None)
        if create is not None and hasattr(create, "__func__"):
            M.create = classmethod(_wrap(create.__func__, "maps"))
    elif name == "tinytrace.lang.command":
        if hasattr(mod, "parse_args"):
            mod.parse_args = _wrap(mod.parse_args, "options")
    elif name == "argparse":
        P = mod.ArgumentParser
        P.parse_args = _wrap(P.parse_args, "options")


PATCHED = ("tinytrace.session", "tinytrace.asm", "tinytrace.asm.link",
           "tinytrace.kernel.attach", "tinytrace.kernel.progs", "tinytrace.kernel.maps",
           "tinytrace.lang.compiler", "tinytrace.kernel.tracefs", "tinytrace.kernel.btf",
           "tinytrace.kernel.features", "tinytrace.lang.command", "argparse")


class _Hook(object):
    """A meta-path finder that lets the normal finders find the module, then patches it
    right after its body ran."""

    def find_spec(self, name, path, target=None):
        if name not in PATCHED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        orig = getattr(loader, "exec_module", None)
        if orig is None:
            return spec

        def exec_module(module, _orig=orig, _name=name):
            _orig(module)
            _patch(_name, module)
        loader.exec_module = exec_module
        return spec


class _MarkedStdout(object):
    """sys.stdout, watching for the marker line."""

    def __init__(self, stream):
        self._stream = stream
        self._line = ""

    def write(self, text):
        # the report is written before the marker line goes out: once the harness reads
        # the line, the report exists (it stops the command right after)
        if not STATE["marked"]:
            self._line += text
            while "\n" in self._line:
                line, self._line = self._line.split("\n", 1)
                if STATE["marker"].search(line):
                    _marked()
                    break
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _marked():
    t = time.monotonic()
    STATE["marked"] = True
    prof = STATE["prof"]
    if prof is not None:
        prof.disable()
    main_s = t - STATE["t_main"]
    phases = dict(TOTALS)
    phases["other"] = max(0.0, main_s - sum(phases.values()))
    rep = {"t_start": T_START, "t_main": STATE["t_main"], "t_marker": t,
           "main_to_marker_s": main_s, "phases_s": phases}
    if prof is not None:
        rep["profile"] = profile_summary(prof, STATE["root"])
    STATE["rep"] = rep
    _write(rep)
    _unwrap_imports()
    if STATE["steady"] is not None:
        STATE["steady"].enable()


def _unwrap_imports():
    """Start-up is over: imports (some tools import inside per-event code) run unwrapped."""
    import builtins
    import importlib
    for mod, name in ((builtins, "__import__"), (importlib, "import_module")):
        fn = getattr(mod, name)
        if getattr(fn, "_bench_phase", None):
            setattr(mod, name, fn.__wrapped__)


def _write(rep):
    import json
    tmp = STATE["report"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rep, f)
    os.replace(tmp, STATE["report"])


def _steady_done():
    prof = STATE["steady"]
    if prof is None or STATE["rep"] is None:
        return
    prof.disable()
    rep = dict(STATE["rep"])
    rep["steady_profile"] = profile_summary(prof, STATE["root"])
    _write(rep)


def area(filename, root, func=""):
    """The source area a profiled function belongs to (None: charge it to its callers)."""
    f = filename.replace("\\", "/")
    if f.startswith("<frozen importlib") or func == "<module>":
        return "imports (module bodies, import machinery)"
    if f == "~" or f.startswith("<"):
        return None  # built-in / frozen: charged to the caller
    r = root.rstrip("/") + "/"
    if f.startswith(r):
        rel = f[len(r):]
        if rel.startswith("bench/"):
            return "benchmark timers (overhead)"
        for prefix, name in (("asm/", "assembler (asm/)"), ("tools/", "tools (tools/)"),
                             ("tinytrace/lang/", "language (tinytrace/lang/)"),
                             ("tinytrace/kernel/", "kernel layer (tinytrace/kernel/)"),
                             ("tinytrace/output/", "output (tinytrace/output/)")):
            if rel.startswith(prefix):
                return name
        return "tinytrace (other)"
    if "/site-packages/cffi" in f or "_cffi" in f:
        return "cffi"
    return "Python stdlib"


def profile_summary(prof, root, top=25):
    import pstats
    st = pstats.Stats(prof)
    raw = st.stats  # {(file, line, func): (cc, nc, tt, ct, callers)}

    def label(key):
        f, line, fn = key
        if f.startswith(root):
            f = f[len(root):].lstrip("/")
        return "%s:%d(%s)" % (f, line, fn) if line else "%s(%s)" % (f, fn)

    by_tt = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    by_ct = sorted(raw.items(), key=lambda kv: -kv[1][3])[:top]
    areas = {}

    def charge(key, amount, depth=0):
        a = area(key[0], root, key[2])
        if a is None and depth < 4:
            callers = raw.get(key, (0, 0, 0, 0, {}))[4]
            total = sum(v[2] for v in callers.values()) or 0.0
            if callers and total > 0:
                for ck, cv in callers.items():
                    charge(ck, amount * cv[2] / total, depth + 1)
                return
            if callers:
                share = amount / len(callers)
                for ck in callers:
                    charge(ck, share, depth + 1)
                return
        a = a or "Python stdlib"
        areas[a] = areas.get(a, 0.0) + amount

    for key, (cc, nc, tt, ct, callers) in raw.items():
        if tt:
            charge(key, tt)
    return {
        "top_self": [(label(k), v[2], v[1]) for k, v in by_tt],
        "top_cumulative": [(label(k), v[3], v[1]) for k, v in by_ct],
        "areas_s": areas,
        "total_s": sum(v[2] for v in raw.values()),
    }


def main(argv):
    import re
    args = list(argv)
    profile = steady = False
    report = marker = None
    while args and args[0] != "--":
        opt = args.pop(0)
        if opt == "--profile":
            profile = True
        elif opt == "--steady":
            steady = True
        elif opt == "--report" and args:
            report = args.pop(0)
        elif opt == "--marker" and args:
            marker = args.pop(0)
        else:
            sys.stderr.write("phases.py: unknown option %s\n" % opt)
            return 2
    if not args or report is None or marker is None:
        sys.stderr.write("phases.py: usage: phases.py --report FILE --marker REGEX "
                         "[--profile|--steady] -- ARGS...\n")
        return 2
    args.pop(0)
    root = os.getcwd()
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, root)
    STATE.update(report=report, marker=re.compile(marker), root=root)
    sys.meta_path.insert(0, _Hook())
    import builtins
    import importlib
    builtins.__import__ = _wrap(builtins.__import__, "import")
    importlib.import_module = _wrap(importlib.import_module, "import")
    sys.stdout = _MarkedStdout(sys.stdout)
    sys.argv = ["tinytrace"] + args
    if profile or steady:
        import cProfile
        # start-up: wall clock (it is what the user waits for); steady state: CPU time, so
        # that waiting for events in poll() does not count
        STATE["prof" if profile else "steady"] = cProfile.Profile(
            time.perf_counter if profile else time.process_time)
    STATE["t_main"] = time.monotonic()
    if STATE["prof"] is not None:
        STATE["prof"].enable()
    from tinytrace.cli import main as tt_main
    try:
        return tt_main(args)
    finally:
        _steady_done()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
