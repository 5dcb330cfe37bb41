"""python3 -m tests.guests ARCH 'COMMAND' -- run one command in a qemu guest (see docs/guests.md).

Exit status: the guest command's own; 125 when no status came back (timeout, the guest died);
77 when the guest could not be built (a download failed: the message names the package);
2 for bad usage.
"""
import argparse
import os
import signal
import sys

USAGE_EXAMPLES = """\
examples:
  python3 -m tests.guests arm64 'python3 -m tinytrace runqlat 1 1'
  python3 -m tests.guests armhf 'cat /proc/sys/net/core/bpf_jit_enable; uname -a'
  python3 -m tests.guests x86_64 --suite trixie 'uname -r'
  python3 -m tests.guests arm64 --no-share --file tinytrace.pyz 'python3 tinytrace.pyz --list'
  python3 -m tests.guests armhf --build          download and build only (warms the cache)
  python3 -m tests.guests arm64 --subset         the guest-safe part of the test suite
"""

EXIT_NO_STATUS = 125
EXIT_UNAVAILABLE = 77


def _escape(line):
    # Guest output may hold terminal escapes; show control characters as \xNN.
    return "".join(c if c == "\t" or (" " <= c and c != "\x7f") else "\\x%02x" % ord(c)
                   for c in line)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, not argparse's usage block: the usage is one -h away.
        sys.stderr.write("%s: %s (-h for help)\n" % (self.prog, message))
        sys.exit(2)


def main(argv=None):
    from tests.guests import arches
    p = _Parser(
        prog="python3 -m tests.guests", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Boot a Debian kernel under qemu and run a shell command in it as root.",
        epilog=USAGE_EXAMPLES)
    p.add_argument("arch", help="one of: %s" % ", ".join(arches.names()))
    p.add_argument("command", nargs="?", help="shell command to run in the guest")
    p.add_argument("--suite", help="Debian suite of the kernel: bookworm (6.1, default), "
                   "trixie or bookworm-backports (6.12), sid")
    p.add_argument("--timeout", type=float, help="hard limit for the whole qemu run, seconds "
                   "(default 600)")
    p.add_argument("--jit", choices=("0", "1", "2", "keep"),
                   help="net.core.bpf_jit_enable in the guest (default: 1 on armhf, else keep)")
    p.add_argument("--share", metavar="DIR", help="folder to share at /mnt/host "
                   "(default: the repository root)")
    p.add_argument("--no-share", action="store_true", help="share nothing; run in /tt/work")
    p.add_argument("--file", action="append", default=[], metavar="PATH",
                   help="copy PATH into the guest's /tt/work (repeatable)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="environment variable for the command (repeatable)")
    p.add_argument("--build", action="store_true", help="only download and build, then exit")
    p.add_argument("--subset", action="store_true",
                   help="run the guest-safe test subset (tests/guests/subset.py)")
    p.add_argument("--refresh", action="store_true", help="apt-get update and rebuild")
    p.add_argument("--rebuild", action="store_true", help="rebuild the images")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also print the guest's console (kernel messages, boot)")
    args = p.parse_intermixed_args(argv)

    if arches.lookup(args.arch) is None:
        p.error("unknown architecture %r (one of: %s)" % (args.arch, ", ".join(arches.names())))
    if not args.build and not args.subset and not args.command:
        p.error("give a COMMAND (or --build, or --subset)")
    env = {}
    for item in args.env:
        name, eq, value = item.partition("=")
        if not eq or not name:
            p.error("--env wants NAME=VALUE, got %r" % item)
        env[name] = value
    for f in args.file:
        if not os.path.isfile(f):
            p.error("--file %s: no such file" % f)

    # SIGTERM/SIGHUP end us through `finally` blocks, so the guest goes down with us.
    def _exit_on(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, _exit_on)
    signal.signal(signal.SIGHUP, _exit_on)

    from tests.guests import harness
    kw = dict(suite=args.suite, timeout=args.timeout, jit=args.jit,
              refresh=1 if args.refresh else None, rebuild=1 if args.rebuild else None,
              verbose=1 if args.verbose else None)
    try:
        settings = harness.Settings(args.arch, **kw)
        image = harness.prepare(args.arch, settings=settings)
        if args.build:
            k = image.kernel
            print("%s: kernel %s (%s %s), features %s" % (
                settings.arch.name, k["release"], k["package"], k["version"],
                ", ".join(n for n, v in sorted(k["features"].items()) if v)))
            print("  vmlinuz  %s\n  modules  %s\n  userland %s"
                  % (image.vmlinuz, image.modules, image.userland))
            return 0
        share = None if args.no_share else (args.share or harness.REPO_ROOT)
        command = args.command
        if args.subset:
            from tests.guests import subset
            command = subset.command(harness.REPO_ROOT, image.features, extra=args.command)
            env.update(subset.environment(settings.arch.name, image.features))
            share = harness.REPO_ROOT
        files = {os.path.basename(f): f for f in args.file}

        def echo(line):
            sys.stdout.write(_escape(line) + "\n")
            sys.stdout.flush()
        result = harness.run(args.arch, command, share=share, files=files, env=env,
                             echo=echo, image=image, settings=settings)
    except harness.GuestUnavailable as e:
        sys.stderr.write("guests: %s: guest unavailable: %s\n" % (args.arch, e))
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        sys.stderr.write("guests: interrupted; the guest was stopped\n")
        return 130
    for w in result.warnings:
        sys.stderr.write("guests: guest warning: %s\n" % w)
    if result.returncode is None:
        sys.stderr.write("guests: %s: %s (console log: %s)\n"
                         % (args.arch, result.error, result.log_path))
        return EXIT_NO_STATUS
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
