"""oomkill: out-of-memory kills, one line per kill, like BCC's oomkill.

``oom:mark_victim`` fires inside the OOM killer as it marks the task it chose, in the
context of the task whose allocation ran out of memory: "triggered by" is the current
process (helpers), the victim is in the tracepoint's fields (pid, comm, its memory in kB,
uid, oom_score_adj).  The load averages are read from /proc/loadavg in user space when the
event is printed, as BCC does.

Difference from BCC: BCC's kprobe on oom_kill_process() reads ``oom_control.totalpages``
(the memory the OOM killer weighed the victim against: the machine's, or the cgroup's
limit); that is not in the tracepoint, so the pages shown are the victim's resident set
(anonymous + file + shared memory) when it was chosen -- marked "pages RSS" in the output.
A kprobe-based variant (kernels with kprobes) could print totalpages again; that is future
work.  Older kernels have only ``pid`` in oom:mark_victim: the victim's name then
comes from /proc (if it still exists) and the pages are not shown.
"""

SUMMARY = "OOM kills: the triggering process, the victim, its RSS and the load averages"
PROBES = ("tracepoint:oom:mark_victim",)
NEEDS = ()

EXAMPLES = """\
    tinytrace oomkill             # trace OOM kills until Ctrl-C
    tinytrace oomkill --json      # one JSON object per kill
"""

RSS_FIELDS = ("anon_rss", "file_rss", "shmem_rss")


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser(
        "oomkill", "Trace the kernel out-of-memory killer (tracepoint oom:mark_victim). "
        "The pages shown are the victim's RSS: the OOM killer's total pages are not "
        "available from the tracepoint.", EXAMPLES)
    toolkit.add_json(p)
    return p.parse_args(argv)


def victim_fields():
    """The optional fields of oom:mark_victim this kernel has (besides pid)."""
    from tinytrace.kernel import tracefs
    names = {f.name for f in tracefs.event_format("oom", "mark_victim").fields}
    return [n for n in ("comm", "total_vm") + RSS_FIELDS + ("uid", "oom_score_adj")
            if n in names]


def script_text(fields):
    fmt = ["%u", "%s", "%d"]
    args = ["pid", "comm", "args->pid"]
    for name in fields:
        fmt.append("%s" if name == "comm" else "%d")
        args.append("args->%s" % name)
    return ('tracepoint:oom:mark_victim\n{\n\tprintf("%s\\n", %s);\n}\n'
            % (" ".join(fmt), ", ".join(args)))


class Printer(object):
    def __init__(self, opts, fields, out):
        import resource
        self.opts = opts
        self.fields = fields
        self.out = out
        self.page_kb = resource.getpagesize() // 1024

    def header(self):
        """BCC's oomkill prints no header: one line per kill."""

    def event(self, values, index):
        from tinytrace import toolkit
        from tinytrace.output.escape import escape
        trig_pid, trig_comm, victim_pid = values[:3]
        extra = dict(zip(self.fields, values[3:]))
        victim_comm = extra.pop("comm", None)
        if victim_comm is None:
            victim_comm = toolkit.process_comm(victim_pid, raw=True)
        pages = None
        if all(f in extra for f in RSS_FIELDS):
            pages = sum(extra[f] for f in RSS_FIELDS) // self.page_kb
        loadavg = toolkit.loadavg() or "?"
        if self.opts.json:
            from tinytrace.output import jsonl
            rec = {"time": toolkit.hhmmss(), "trigger_pid": trig_pid,
                   "trigger_comm": jsonl.text(trig_comm), "victim_pid": victim_pid,
                   "victim_comm": jsonl.text(victim_comm) if victim_comm is not None
                   else None,
                   "rss_pages": pages}
            for name, value in extra.items():
                rec[name + "_kb" if name in RSS_FIELDS or name == "total_vm" else name] = value
            rec["loadavg"] = loadavg
            jsonl.write(rec, self.out)
            return
        line = '%s Triggered by PID %d ("%s"), OOM kill of PID %d ("%s")' % (
            toolkit.hhmmss(), trig_pid, escape(trig_comm), victim_pid,
            escape(victim_comm) if victim_comm is not None else "?")
        if pages is not None:
            line += ", %d pages RSS" % pages
        self.out.write(line + ", loadavg: %s\n" % loadavg)
        self.out.flush()


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.errors import KernelError
    from tinytrace.kernel import tracefs
    from tinytrace.script import Script
    opts = parse_args(argv)
    toolkit.require_privileges()
    if not tracefs.exists("oom", "mark_victim"):
        raise KernelError("this kernel has no oom:mark_victim tracepoint")
    fields = victim_fields()
    script = Script(script_text(fields), tool="oomkill")
    return toolkit.snoop(opts, script, Printer(opts, fields, sys.stdout),
                         "Tracing OOM kills (pages shown: the victim's RSS)... Ctrl-C to stop.",
                         always=True)
