"""The ``tinytrace`` command.

``tinytrace TOOL [options]`` runs one of the tools in ``tinytrace.tools``; anything else is a
bpftrace-language invocation (``-e PROGRAM``, a script file, ``-l``, ``-d`` ...), handled by
``tinytrace.lang.command``.  This module stays tiny so that start-up imports almost nothing.
"""
import sys

USAGE = """\
usage: tinytrace TOOL [TOOL OPTIONS]          run a tool (tinytrace --list shows them)
       tinytrace [options] -e 'PROGRAM'        run a bpftrace-language one-liner
       tinytrace [options] FILE [ARGS...]      run a bpftrace-language script
       tinytrace -l [PATTERN]                  list probes

examples:
  tinytrace runqlat 1 3          three 1-second histograms of run-queue latency
  tinytrace execsnoop            one line per exec() until Ctrl-C
  tinytrace -e 'tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }'
  tinytrace --list               the tools, what they trace and what they need

tinytrace TOOL -h shows a tool's options; tinytrace -h -e shows the language options.
"""


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    from tinytrace.errors import TinytraceError
    try:
        return _dispatch(argv)
    except TinytraceError as e:
        _fail(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and friends: stop quietly, like other tools.
        try:
            sys.stdout = None
        except Exception:
            pass
        return 0


def _fail(message):
    sys.stderr.write("tinytrace: %s\n" % message if "\n" not in message else message + "\n")
    sys.stderr.flush()


def _dispatch(argv):
    if not argv or argv[0] in ("-h", "--help") and len(argv) == 1:
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    first = argv[0]
    if first == "--version":
        from tinytrace import __version__
        print("tinytrace %s" % __version__)
        return 0
    if first == "--list":
        from tinytrace.tools import print_tool_list
        return print_tool_list(json_output="--json" in argv[1:])
    if not first.startswith("-"):
        from tinytrace.tools import find_tool
        tool = find_tool(first)
        if tool is not None:
            return tool.main(argv[1:])
    from tinytrace.lang.command import main as lang_main
    return lang_main(argv)
