"""tracepoint:CATEGORY:NAME (alias t:), wildcards allowed in both words.

``args`` is the tracepoint's record as its tracefs format file describes it; the program
reads fields straight from the context (no copy of the record).  Targets whose used fields
have the same layout share one program, so ``t:syscalls:sys_enter_*`` with no ``args``
loads a single program attached to every match.  ``probe`` is computed at run time from
the record's ``common_type`` (the event id), so it never splits programs either.
"""
from tinytrace.lang.probes.base import Provider, Target, has_wildcard, wildcard_match
from tinytrace.lang.source import LangError
from tinytrace.lang.suggest import hint


class Tracepoint(Provider):
    prog_type = "tracepoint"
    ctx_is_record = True

    def parse(self, parts, loc):
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise LangError("a tracepoint is written tracepoint:CATEGORY:NAME "
                            "(e.g. tracepoint:sched:sched_switch)", loc)
        return tuple(parts)

    def expand(self, spec, env, loc):
        cat, name = spec
        events = env.tracepoints()  # {category: [names]}
        cats = wildcard_match(events, cat)
        found = []
        for c in cats:
            for n in wildcard_match(events[c], name):
                found.append((c, n))
        if not found:
            raise LangError(self._unknown(cat, name, events), loc)
        return [Target(self, "tracepoint:%s:%s" % cn, cn) for cn in found]

    @staticmethod
    def _unknown(cat, name, events):
        if not events:
            return "no tracepoints found (is tracefs mounted at /sys/kernel/tracing?)"
        if not has_wildcard(cat) and cat not in events:
            if not has_wildcard(name):
                full = ["%s:%s" % (c, n) for c in events for n in events[c] if n == name]
                if full:
                    return "unknown tracepoint category '%s'; did you mean 'tracepoint:%s'?" \
                        % (cat, full[0])
            return "unknown tracepoint category '%s'%s" % (cat, hint(cat, events))
        if has_wildcard(name):
            return "no tracepoint matches tracepoint:%s:%s" % (cat, name)
        cands = []
        for c in wildcard_match(events, cat):
            cands.extend(events[c])
        return "unknown tracepoint tracepoint:%s:%s%s" % (cat, name, hint(name, cands))

    def builtin_names(self):
        return ("args",)

    def builtin_type(self, name, target, env):
        if name == "args":
            return env.tracepoint_record(*target.parts)
        return None

    def cookies_ok(self, comp):
        return comp.target.cookies

    def record(self, target, env):
        return env.tracepoint_record(*target.parts)

    def event_id(self, target, env):
        return env.tracepoint_id(*target.parts)

    def group_key(self, target, used):
        fields = used.get("args")
        if not fields:
            return ()
        rec = target.info
        if "*" in fields:
            return (target.name,)
        return tuple((f, rec.fields[f].offset, rec.fields[f].ty, rec.fields[f].data_loc)
                     for f in sorted(fields))

    def attach(self, session, prog, targets, env, cookies=None):
        """One perf event per tracepoint; with ``cookies`` ({target name: cookie}) each
        gets a BPF link carrying its cookie (the program reads it as ``probe``)."""
        from tinytrace.kernel import attach
        links = []
        try:
            for t in targets:
                if cookies:
                    links.append(_attach_with_cookie(prog, t, cookies[t.name]))
                else:
                    links.append(attach.tracepoint(prog, t.parts[0], t.parts[1]))
        except BaseException:
            for a in links:
                a.close()
            raise
        return links

    def list(self, pattern, env):
        import fnmatch
        out = []
        events = env.tracepoints()
        for c in sorted(events):
            for n in events[c]:
                full = "tracepoint:%s:%s" % (c, n)
                if fnmatch.fnmatchcase(full, pattern):
                    out.append(full)
        return out


def _attach_with_cookie(prog, target, cookie):
    import os
    from tinytrace.kernel import bpf, perf, tracefs
    from tinytrace.kernel.attach import PerfAttachment
    cat, name = target.parts
    fd = perf.perf_event_open(perf.tracepoint(tracefs.event_id(cat, name)), pid=-1, cpu=0)
    try:
        link = bpf.link_create(prog.fileno(), fd, bpf.ATTACH_TYPES["perf_event"],
                               cookie=cookie)
    except BaseException:
        os.close(fd)
        raise
    try:
        perf.enable(fd)
    except BaseException:
        os.close(link)
        os.close(fd)
        raise
    return PerfAttachment(fd, link, target.name, 0)
