"""BEGIN and END: programs run once, at start (after every other probe is attached) and at
exit (before the maps are printed).  They are raw-tracepoint programs that are never
attached; the runtime runs them with BPF_PROG_TEST_RUN."""
from tinytrace.lang.probes.base import Provider


class _Special(Provider):
    prog_type = "raw_tracepoint"
    run_at = None

    def list(self, pattern, env):
        import fnmatch
        return [self.name] if fnmatch.fnmatchcase(self.name, pattern) else []

    def attach(self, session, prog, targets, env, cookies=None):
        return []  # nothing to attach: the runtime runs the program itself


class Begin(_Special):
    run_at = "start"


class End(_Special):
    run_at = "exit"
