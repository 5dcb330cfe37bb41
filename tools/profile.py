"""profile: sample stack traces at a timed interval and count them, like BCC's profile.

A software cpu-clock perf event on every CPU (``profile:hz:F``, or ``software:cpu-clock:N``
for ``-c``: every N nanoseconds of CPU time) runs the script, which counts samples in the
kernel keyed by process ID, thread name, kernel stack and user stack (two stack-map ids).
At the end Python symbolizes the stacks (/proc/kallsyms; ELF symbols of the process's
mappings while it lives) and prints BCC's multi-line or folded (``-f``) layout, least
frequent first.

Differences from BCC: a stack that could not be taken (stack map full, hash collision)
prints as an empty stack, not "[Missed ... Stack]" (the language does not expose the
error); the stack map (kernel and user stacks share it) holds ``--stack-storage-size``
stacks and the counts map ``--hash-storage-size`` keys, 4096 each unless asked (BCC's
defaults are 16384 and 40960: kept small here for small boards, a stack entry preallocates
about 1 KiB); ``-C`` filters samples in the script instead of opening the perf event on one
CPU only.  Stacks whose frames
symbolize the same (different offsets in the same functions) are merged into one row.
With ``-f`` the "Sampling..." line goes to stderr, so stdout holds only folded stacks.
User stacks are walked with frame pointers: binaries built without them give short user
stacks.

``--cgroupmap MAPPATH`` / ``--mntnsmap MAPPATH`` (BCC's container filters, one or the
other) keep only tasks whose cgroup v2 id, or mount namespace id (read through the
kernel's BTF), is a key of the hash map pinned at MAPPATH by whoever manages the
containers (``toolkit.container_filter``): one more test in the sample's predicate.
"""

SUMMARY = "CPU stack samples at a timed interval, counted"
PROBES = ("profile:hz:49", "software:cpu-clock")     # -F frequency; -c period
NEEDS = ()

EXAMPLES = """\
    tinytrace profile             # profile stack traces at 49 Hertz until Ctrl-C
    tinytrace profile -F 99       # profile stack traces at 99 Hertz
    tinytrace profile -c 1000000  # profile stack traces every 1 in a million events
    tinytrace profile 5           # profile at 49 Hertz for 5 seconds only
    tinytrace profile -f 5        # output in folded format for flame graphs
    tinytrace profile -p 185      # only profile process with PID 185
    tinytrace profile -L 185      # only profile thread with TID 185
    tinytrace profile -U          # only show user space stacks (no kernel)
    tinytrace profile -K          # only show kernel space stacks (no user)
    tinytrace profile --stack-storage-size 16384 --hash-storage-size 40960
                                  # BCC's map sizes: room for more distinct stacks
    tinytrace profile --json 5    # one JSON object per stack after 5 seconds
"""


def _id_list(text):
    """An argparse type: one or more comma-separated positive IDs."""
    import argparse
    from tinytrace import toolkit
    try:
        return [toolkit.positive_int(t) for t in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError("invalid ID list: %r" % text)


def parse_args(argv):
    from tinytrace import toolkit
    from tinytrace.lang.config import DEFAULT_MAP_KEYS
    from tinytrace.tooldata import add_stack_storage, storage_size
    p = toolkit.ArgumentParser("profile", "Profile CPU stack traces at a timed interval",
                               EXAMPLES)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-p", "--pid", type=_id_list,
                   help="profile process with one or more comma separated PIDs only")
    g.add_argument("-L", "--tid", type=_id_list,
                   help="profile thread with one or more comma separated TIDs only")
    s = p.add_mutually_exclusive_group()
    s.add_argument("-U", "--user-stacks-only", action="store_true",
                   help="show stacks from user space only (no kernel space stacks)")
    s.add_argument("-K", "--kernel-stacks-only", action="store_true",
                   help="show stacks from kernel space only (no user space stacks)")
    f = p.add_mutually_exclusive_group()
    f.add_argument("-F", "--frequency", type=toolkit.positive_int,
                   help="sample frequency, Hertz")
    f.add_argument("-c", "--count", type=toolkit.positive_int,
                   help="sample period, number of events")
    p.add_argument("-d", "--delimited", action="store_true",
                   help="insert delimiter between kernel/user stacks")
    p.add_argument("-a", "--annotations", action="store_true",
                   help="add _[k] annotations to kernel frames")
    p.add_argument("-I", "--include-idle", action="store_true",
                   help="include CPU idle stacks")
    p.add_argument("-f", "--folded", action="store_true",
                   help="output folded format, one line per stack (for flame graphs)")
    p.add_argument("-C", "--cpu", type=toolkit.cpu_number, help="cpu number to run profile on")
    add_stack_storage(p)
    toolkit.add_container_filters(p)
    p.add_argument("--hash-storage-size", type=storage_size, metavar="N",
                   help="the number of hash keys that can be stored and displayed "
                   "(default %d; BCC's is 40960)" % DEFAULT_MAP_KEYS)
    toolkit.add_json(p)
    p.add_argument("duration", nargs="?", type=toolkit.positive_int, default=None,
                   help="duration of trace, in seconds")
    opts = p.parse_args(argv)
    if opts.json and opts.folded:
        p.error("argument --json: not allowed with -f/--folded")
    if opts.frequency is None and opts.count is None:
        opts.frequency = 49
    return opts


# -- the script ---------------------------------------------------------------------------

SCRIPT = r"""
%(probe)s
%(filter)s{
	@samples[pid, comm, %(kstack)s, %(ustack)s] = count();
}
"""


def script_text(opts, container=""):
    """``container``: the --cgroupmap/--mntnsmap test (``toolkit.container_filter``)."""
    if opts.frequency is not None:
        probe = "profile:hz:%d" % opts.frequency
    else:
        probe = "software:cpu-clock:%d" % opts.count
    conds = []
    if not opts.include_idle:
        conds.append("pid != 0")
    if opts.pid:
        conds.append("(%s)" % " || ".join("pid == %d" % p for p in opts.pid))
    if opts.tid:
        conds.append("(%s)" % " || ".join("tid == %d" % t for t in opts.tid))
    if opts.cpu is not None:
        conds.append("cpu == %d" % opts.cpu)
    if container:
        conds.append(container)
    return SCRIPT % {
        "probe": probe,
        "filter": "/%s/\n" % " && ".join(conds) if conds else "",
        "kstack": "0" if opts.user_stacks_only else "kstack(raw)",
        "ustack": "0" if opts.kernel_stacks_only else "ustack(raw)",
    }


def script_config(opts):
    """Map sizes: --stack-storage-size (the stack map) and --hash-storage-size (@samples,
    the script's only keyed map, so max_map_keys sizes just that one)."""
    from tinytrace.tooldata import stack_config
    config = {}
    if opts.hash_storage_size:
        config["max_map_keys"] = opts.hash_storage_size
    return stack_config(opts, config)


def collect(opts, samples):
    """[(count, (pid, comm), kernel frames, user frames)], least frequent first; frames
    innermost first, symbolized.  Stacks that differ only in offsets within the same
    functions print the same, so they are merged into one row (BCC prints one row per
    stack id, i.e. several identical-looking rows)."""
    from tinytrace.tooldata import stack_rows
    return stack_rows(samples, lambda key: ((key[0], key[1]), key[0], key[2], key[3]))


def report(opts, rows, out):
    from tinytrace.tooldata import print_stacks
    print_stacks(opts, rows, out, comm_pid=lambda ident: (ident[1], ident[0]),
                 json_fields=lambda ident: _json_ident(ident), value_key="count",
                 annotate=opts.annotations)


def _json_ident(ident):
    from tinytrace.output import jsonl
    return {"pid": ident[0], "comm": jsonl.text(ident[1])}


def announcement(opts):
    if opts.pid:
        who = "PID %s" % ",".join(map(str, opts.pid))
    elif opts.tid:
        who = "TID %s" % ",".join(map(str, opts.tid))
    else:
        who = "all threads"
    stacks = "user" if opts.user_stacks_only else "kernel" if opts.kernel_stacks_only \
        else "user + kernel"
    rate = "%d Hertz" % opts.frequency if opts.frequency is not None \
        else "%d events" % opts.count
    text = "Sampling at %s of %s by %s stack" % (rate, who, stacks)
    if opts.cpu is not None:
        text += " on CPU#%d" % opts.cpu
    if opts.duration:
        return text + " for %d secs." % opts.duration
    return text + "... Hit Ctrl-C to end."


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.script import Script
    from tinytrace.tooldata import sample_stacks
    opts = parse_args(argv)
    toolkit.require_privileges()
    container, maps = toolkit.container_filter(opts)
    script = Script(script_text(opts, container), tool="profile", config=script_config(opts),
                    maps=maps)
    samples = sample_stacks(opts, script, announcement(opts), "@samples")
    report(opts, collect(opts, samples), sys.stdout)
    return 0
