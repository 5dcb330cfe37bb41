"""The command line of the language: ``tinytrace [options] -e PROGRAM | FILE [ARGS...]``.

``main(argv) -> int`` is called by ``tinytrace.cli`` for anything that is not a tool name.
Exit codes: 0 success, 1 failure at run time, 2 bad input (options, the program itself).
Importing this module is cheap: the compiler and the kernel layer are imported only when a
program is compiled, and ``-l`` needs only tracefs.
"""
import os
import sys

HELP = """\
usage: tinytrace [options] -e 'PROGRAM' [ARGS...]
       tinytrace [options] FILE [ARGS...]        (FILE '-' reads the program from stdin)
       tinytrace -l [PATTERN]                     list probes (with -v: tracepoint fields)

Runs a program in the bpftrace language, compiled to BPF without LLVM.

options:
  -e PROGRAM     the program text
  -l [PATTERN]   list probes matching PATTERN (e.g. 'tracepoint:sched:*', 't:*sleep*')
  -d             print the BPF assembly of each probe's program and exit (loads nothing)
  -c CMD         run CMD (held until the probes are attached), trace until it exits;
                 its pid is the builtin cpid
  -p PID         trace until process PID exits
  -f FORMAT      output format: text (default) or json
  -o FILE        write the output to FILE instead of stdout
  -q             quiet: do not print "Attaching N probes..."
  -v             verbose: the verifier's full log when a program is rejected; with -l,
                 the fields of each tracepoint
  --unsafe       allow functions with side effects (signal, system)
  -h, --help     this help
  -V, --version  the version

ARGS are the positional parameters $1, $2 ... ($# is their number); use str($1) for text.
-p and -c also limit uprobes and usdt probes to that process.

probes: tracepoint rawtracepoint kprobe kretprobe kfunc kretfunc uprobe uretprobe usdt
        profile interval software hardware BEGIN END   (docs/language.md)
settings: config = { max_map_keys = N; max_strlen = N; stack_mode = perf; ... } before the
  first probe, or BPFTRACE_MAX_MAP_KEYS, BPFTRACE_STRLEN, BPFTRACE_STACK_MODE,
  BPFTRACE_PERF_RB_PAGES (the environment wins)

examples:
  tinytrace -l 'tracepoint:sched:*'
  tinytrace -e 'tracepoint:syscalls:sys_enter_openat { printf("%s %s\\n", comm, str(args->filename)); }'
  tinytrace -e 'tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }'
  tinytrace -e 'tracepoint:syscalls:sys_exit_read /args->ret > 0/ { @bytes = hist(args->ret); }'
  tinytrace -e 'profile:hz:99 { @[kstack] = count(); }'
  tinytrace -e 'uretprobe:/bin/bash:readline { printf("%s\\n", str(retval)); }'
  tinytrace -e 'kretprobe:vfs_read { @ = hist(retval); }'
  tinytrace -p 1234 -e 'usdt::python:function__return { @[str(arg1)] = count(); }'
  tinytrace -e 'interval:s:1 { print(@); clear(@); } t:sched:sched_switch { @ = count(); }'
  tinytrace -c 'ls /' -e 'tracepoint:syscalls:sys_enter_* /pid == cpid/ { @[probe] = count(); }'
  tinytrace script.bt 10          # $1 is 10
  tinytrace -d -e 'BEGIN { printf("hello\\n"); exit(); }'
"""

_ARG_OPTS = frozenset("ecpfo")
_FLAG_OPTS = frozenset("ldqvhV")


class Options:
    def __init__(self):
        self.program = None       # -e text
        self.script = None        # file name (or '-')
        self.params = []
        self.list = False
        self.list_pattern = None
        self.dump = False
        self.command = None
        self.pid = None
        self.format = "text"
        self.output = None
        self.quiet = False
        self.verbose = False
        self.unsafe = False
        self.help = False
        self.version = False


def _usage_error(message):
    from tinytrace.errors import UserError
    return UserError(message + " (tinytrace --help shows the options)")


def parse_args(argv):
    """Options from ``argv``; ``UserError`` (exit 2) naming the bad option."""
    o = Options()
    positional = []
    i = 0
    n = len(argv)
    while i < n:
        arg = argv[i]
        i += 1
        if positional and not o.list:
            positional.append(arg)  # after the script: all parameters
            continue
        if arg == "--":
            positional.extend(argv[i:])
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name == "help":
                o.help = True
            elif name == "version":
                o.version = True
            elif name == "unsafe":
                o.unsafe = True
            elif name in ("format", "output", "pid", "program"):
                if not eq:
                    if i >= n:
                        raise _usage_error("--%s needs a value" % name)
                    value = argv[i]
                    i += 1
                _set_arg(o, {"format": "f", "output": "o", "pid": "p", "program": "e"}[name],
                         value)
            else:
                raise _usage_error("unknown option --%s" % name)
            continue
        if arg.startswith("-") and len(arg) > 1 and not _is_number(arg):
            j = 1
            while j < len(arg):
                c = arg[j]
                j += 1
                if c in _FLAG_OPTS:
                    _set_flag(o, c)
                elif c in _ARG_OPTS:
                    value = arg[j:]
                    if not value:
                        if i >= n:
                            raise _usage_error("option -%s needs a value" % c)
                        value = argv[i]
                        i += 1
                    _set_arg(o, c, value)
                    break
                else:
                    raise _usage_error("unknown option -%s" % c)
            continue
        positional.append(arg)
    if o.list:
        if len(positional) > 1:
            raise _usage_error("-l takes one pattern")
        o.list_pattern = positional[0] if positional else None
        return o
    if o.program is None and positional:
        o.script = positional.pop(0)
    o.params = positional
    return o


def _is_number(text):
    return text[1:].isdigit() and text[0] == "-"


def _set_flag(o, c):
    if c == "l":
        o.list = True
    elif c == "d":
        o.dump = True
    elif c == "q":
        o.quiet = True
    elif c == "v":
        o.verbose = True
    elif c == "h":
        o.help = True
    elif c == "V":
        o.version = True


def _set_arg(o, c, value):
    if c == "e":
        if o.program is not None:
            raise _usage_error("-e may be given only once")
        o.program = value
    elif c == "c":
        if not value.strip():
            raise _usage_error("-c needs a command")
        o.command = value
    elif c == "p":
        if not value.isdigit() or int(value) <= 0:
            raise _usage_error("-p needs a process id, not '%s'" % value)
        o.pid = int(value)
    elif c == "f":
        if value not in ("text", "json"):
            raise _usage_error("-f must be text or json, not '%s'" % value)
        o.format = value
    elif c == "o":
        o.output = value


def read_program(o):
    """(text, filename) of the program to run."""
    from tinytrace.errors import UserError
    if o.program is not None:
        return o.program, "stdin"
    if o.script is None:
        raise _usage_error("no program: give -e 'PROGRAM' or a script file")
    if o.script == "-":
        return sys.stdin.read(), "stdin"
    try:
        with open(o.script, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError("cannot read %s: %s" % (o.script, e.strerror))
    try:
        return data.decode("utf-8"), o.script
    except UnicodeDecodeError as e:
        raise UserError("%s is not UTF-8 text (byte %d)" % (o.script, e.start))


def make_env(o, cpid=None):
    from tinytrace.lang.env import Env
    return Env(params=o.params, unsafe=o.unsafe, cpid=cpid, pid=o.pid, environ=os.environ)


def main(argv):
    o = parse_args(list(argv))
    if o.help:
        sys.stdout.write(HELP)
        return 0
    if o.version:
        from tinytrace import __version__
        sys.stdout.write("tinytrace %s\n" % __version__)
        return 0
    if o.list:
        from tinytrace.lang import listing
        return listing.main(o.list_pattern, o.verbose, make_env(o))
    if o.command is not None and o.pid is not None:
        raise _usage_error("-c and -p cannot be used together")
    if o.pid is not None and not os.path.exists("/proc/%d" % o.pid):
        from tinytrace.errors import UserError
        raise UserError("-p %d: no such process" % o.pid)
    text, filename = read_program(o)
    try:
        return _run(o, text, filename)
    except (AssertionError, AttributeError, KeyError, IndexError, TypeError, ValueError,
            NameError) as e:
        # A bug of ours, never the user's: one line, not a traceback (unless asked for).
        if os.environ.get("TINYTRACE_DEBUG"):
            raise
        from tinytrace.errors import TinytraceError
        if isinstance(e, TinytraceError):
            raise
        from tinytrace.errors import KernelError
        raise KernelError("internal compiler error (%s: %s); please report it with the "
                          "program (TINYTRACE_DEBUG=1 shows where)" % (type(e).__name__, e))


def _run(o, text, filename):
    from tinytrace.lang import compiler
    # cpid is a placeholder until the command is started (after the checks pass)
    env = make_env(o, cpid=0 if o.command is not None else None)
    src, prog = compiler.check(text, filename, env)
    if o.dump:
        return compiler.dump(src, prog, env, sys.stdout)
    try:
        from tinytrace.lang import runtime
    except ImportError:
        from tinytrace.errors import KernelError
        raise KernelError("the program is valid, but this build cannot run programs yet "
                          "(no code generator)")
    return runtime.run(o, env, src, prog)
