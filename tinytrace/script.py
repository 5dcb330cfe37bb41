"""A bpftrace-language script run under a tool's control.

A tool is a script in the language plus Python for its options and its output.  The tool
writes the script text (options become constants and predicates in the text), and then
drives it instead of letting the language runtime print at exit::

    from tinytrace.script import Script
    script = Script(TEXT, tool="runqlat")          # compiled now: errors point into TEXT
    script.on_printf(handle)                       # handle(values, index) per printf event
    with script.start():                           # maps, load, attach, BEGIN
        ...                                        # script.follow(stopper), script.read("@m")
    # leaving the block: probes off, END, last events delivered, everything closed

- ``on_printf(callback)``: instead of formatting, every ``printf`` event hands its decoded
  arguments to ``callback(values, index)`` (``index`` numbers the script's printf calls in
  source order), so the tool can print its own columns or JSON.  Without a callback the
  text is printed as bpftrace would.
- ``read(name)`` decodes a map now: ``{key: value}`` with keys as ints, bytes or tuples, and
  aggregation values as Python values (hist/lhist: the bucket list of bpftrace's indexes;
  avg/stats: ``(count, total)``).  ``clear(name)`` empties it (BCC's ``dist.clear()``).
- ``log2_slots(buckets)`` turns a bpftrace ``hist()`` bucket list into BCC's log2 slots, so
  tools print BCC's histograms (``tinytrace.output.hist``) from ``hist()`` maps.
- ``exited``: the script called ``exit()``.
- ``lost``: events lost so far, also after ``stop()``.  The script prints nothing about
  losses itself (a tool's stdout may be JSON): the tool reports them, e.g. with
  ``toolkit.LostReporter``, or passes ``on_lost(callback)``.
- ``Script(text, deferred=(i, ...))``: the records of these printf calls (by their
  ``on_printf`` index) do not wake the reader; they are read with the next record that
  does (every other record of the script then forces a wakeup).  For events that print
  nothing by themselves -- execsnoop's arguments, printed at the exec's return -- so the
  reader wakes once per line instead of once per record.  Ring buffer only (a perf buffer
  wakes the reader per record); the reader still drains at least every second.
- ``Script(text, strlen=N)``: the size of ``str()`` buffers (bpftrace's BPFTRACE_STRLEN),
  for tools that print long paths; ``config={...}`` what a script's ``config = {}`` block
  sets (``max_map_keys``, ``lru_maps``, ... see ``tinytrace.lang.config``); ``pid=`` the
  process uprobes and USDT probes attach to (the language's ``-p``); ``maps={"@name":
  kernel_map}`` makes script maps existing kernel maps the tool opened (a pinned map,
  ``tinytrace.kernel.maps.Map.open_pinned``): the script tests them (``has_key(@name,
  cgroup)``) without creating them; the tool keeps them open while the script runs and
  closes them (see ``tinytrace.lang.env.Env.bind_map``).
"""
import sys


class _Options(object):
    """The runtime's view of the command line, for a tool's run."""
    format = "text"
    verbose = False
    quiet = True
    pid = None
    output = None
    command = None


class Script(object):
    def __init__(self, text, tool="script", params=(), out=None, strlen=None, config=None,
                 pid=None, maps=None, deferred=()):
        from tinytrace.lang import compiler
        from tinytrace.lang.env import Env
        self.tool = tool
        self.env = Env(params=[str(p) for p in params], strlen=strlen, config=config, pid=pid,
                       maps=maps)
        self.source, self.program = compiler.check(text, "<%s>" % tool, self.env)
        if deferred:
            locs = _printf_locs(self.program)
            self.env.deferred_wakeup = frozenset(locs[i] for i in deferred)
        self.out = out if out is not None else sys.stdout
        self._printf = None
        self._lost_cb = None
        self._lost_final = 0
        self._comp = None
        self._rt = None
        self._session = None

    # -- set-up -----------------------------------------------------------------------------
    def on_printf(self, callback):
        self._printf = callback
        return self

    def on_lost(self, callback):
        """``callback(n)`` for every batch of ``n`` lost events, as the reader notices them."""
        self._lost_cb = callback
        return self

    def start(self, session=None):
        """Load and attach everything (in ``session``, or a session of its own); returns self
        as a context manager whose exit stops the probes and releases what it owns."""
        from tinytrace.lang import compiler
        from tinytrace.session import Session
        self._comp = compiler.compile_program(self.source, self.program, self.env)
        self._own_session = session is None
        self._session = session if session is not None else Session()
        self._rt = _ToolRuntime(self._comp, _Options(), self.out, self._printf, self._lost_cb)
        try:
            self._rt.begin(self._session)
        except BaseException:
            if self._own_session:
                self._session.close()
            raise
        return self

    def __enter__(self):
        if self._rt is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self):
        """Probes off, END, the last events delivered; then release (own session only)."""
        if self._rt is None:
            return
        rt = self._rt
        try:
            rt.end()
        finally:
            self._lost_final = rt.lost
            self._rt = None
            if self._own_session:
                self._session.close()

    # -- while running ----------------------------------------------------------------------
    def fileno(self):
        """An fd that becomes readable when events wait (for select/poll), or None."""
        return self._rt.reader.fileno() if self._rt.reader is not None else None

    def drain(self):
        self._rt._drain()

    def follow(self, stopper, until=None, timeout=None, after=None):
        """Deliver events until Ctrl-C (``stopper``, a ``toolkit.Stopper``), ``exit()``,
        ``until()`` (checked after each batch of events, and at least every second) or
        ``timeout`` seconds (BCC's -d duration); then deliver what is still buffered.
        ``after()`` runs after each batch of events (a tool that collects the lines of a
        batch writes them there), before the next wait.
        Returns True when the run ended by itself (exit(), until() or the timeout)."""
        import time
        rt = self._rt
        deadline = None if timeout is None else time.monotonic() + timeout
        while not rt.done:
            wait = 1.0
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
                wait = min(wait, 1.0)
            if rt.reader is None:
                if not stopper.sleep(wait):
                    break
            elif not stopper.wait_readable(rt.reader.fileno(), wait):
                break
            else:
                try:
                    rt.reader.drain(recheck_lost=False)
                finally:
                    rt._flush()
                    if after is not None:
                        after()
            if until is not None and until():
                break
        if rt.reader is not None:
            rt._drain()
        return not stopper.stopped

    @property
    def exited(self):
        return self._rt is not None and self._rt.done

    @property
    def lost(self):
        return self._rt.lost if self._rt is not None else self._lost_final

    def read(self, name):
        """The map ``name`` (``"@usecs"`` or ``"usecs"``; ``"@"`` for the unnamed map) as a
        dict of decoded keys to values."""
        from tinytrace.lang.mapread import read_map
        spec = self._rt._user_spec(_bare(name))
        entries, _, _ = read_map(self._rt.maps[spec.name], spec, self._rt.decoders())
        return dict((_hashable(k), v) for k, v in entries)

    def entries(self, name):
        """The map ``name`` as a list of (decoded key, value) pairs, one per kernel key.
        Unlike ``read``, keys that decode the same stay apart: two failed stack ids (a lost
        stack, EEXIST, and an absent one, EFAULT) both decode as an empty stack, and a dict
        would keep only one of their counts."""
        from tinytrace.lang.mapread import read_map
        spec = self._rt._user_spec(_bare(name))
        entries, _, _ = read_map(self._rt.maps[spec.name], spec, self._rt.decoders())
        return [(_hashable(k), v) for k, v in entries]

    def clear(self, name):
        self._rt._clear(_bare(name))

    def kernel_map(self, name):
        """The kernel-layer ``Map`` behind ``name`` (for tools that read raw values)."""
        return self._rt.maps[self._rt._user_spec(_bare(name)).name]


def _printf_locs(program):
    """The source locations of the printf calls, in source order: a printf's index in
    ``on_printf`` is its place in this list."""
    from tinytrace.lang import ast
    return sorted(set(n.loc for n in ast.walk(program)
                      if isinstance(n, ast.Call) and n.name == "printf"))


def _hashable(key):
    """Map keys as dict keys: arrays (decoded as lists) become tuples, at any depth."""
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    if isinstance(key, tuple):
        return tuple(_hashable(k) for k in key)
    return key


def _bare(name):
    return name[1:] if name.startswith("@") else name


def log2_slots(buckets):
    """BCC's log2 slots ({slot: count}) from a bpftrace ``hist()`` bucket list.

    bpftrace: index 0 holds negative values, 1 holds 0, 2 holds 1, and index k >= 3 holds
    [2**(k-2), 2**(k-1)).  BCC: slot 1 holds 0 and 1, slot k >= 2 holds [2**(k-1), 2**k).
    Negative values have no BCC slot and are dropped (the tools never record them)."""
    slots = {}
    if not buckets:
        return slots
    items = buckets.items() if isinstance(buckets, dict) else enumerate(buckets)
    for idx, n in items:
        if not n or idx == 0:
            continue
        slot = 1 if idx <= 2 else idx - 1
        slots[slot] = slots.get(slot, 0) + n
    return slots


def _runtime_base():
    from tinytrace.lang.runtime import Runtime
    return Runtime


class _ToolRuntime(object):
    """Built on first use: a subclass of the language runtime whose phases a tool calls one
    by one, and whose printf events go to the tool."""

    def __new__(cls, comp, options, out, printf, lost_cb=None):
        base = _runtime_base()

        class ToolRuntime(base):
            def __init__(self, comp, options, out, printf, lost_cb):
                base.__init__(self, comp, options, out)
                self._tool_printf = printf
                self._tool_lost = lost_cb

            def _on_lost(self, n):
                # counted, never printed: the tool decides how (its stdout may be JSON)
                self.lost += n
                if self._tool_lost is not None:
                    self._tool_lost(n)

            def begin(self, session):
                self.session = session
                self._create_maps(session)
                self._load(session)
                self._open_events(session)
                self._attach(session)
                self._run_special("start")

            def end(self):
                try:
                    self._stop()
                    self._run_special("exit")
                    self._drain()
                finally:
                    self._detach()

            def _handler(self, spec):
                if spec.kind == "printf" and self._tool_printf is not None:
                    args = self._args(spec)
                    cb = self._tool_printf
                    index = self._printf_index(spec)
                    return lambda data: cb(args(data), index)
                return base._handler(self, spec)

            def _printf_index(self, spec):
                # The number of the printf call in source order: a block shared by several
                # probes may be compiled more than once, giving one spec per copy.
                if not hasattr(self, "_printf_order"):
                    locs = sorted(set(s.loc for s in self.comp.events
                                      if s.kind == "printf" and s.loc is not None))
                    self._printf_order = dict((loc, i) for i, loc in enumerate(locs))
                return self._printf_order.get(spec.loc, -1)

        return ToolRuntime(comp, options, out, printf, lost_cb)
