"""Running a compiled program: maps, loading, attaching, events, and the printout at exit.

Order of a run, as bpftrace does it: create the maps, load every program (a verifier
rejection is reported at the source line that produced the failing instruction), attach
every probe, print "Attaching N probes...", run BEGIN, let the ``-c`` command go, then read
events until ``exit()``, Ctrl-C, the end of the command / ``-p`` process, or SIGTERM.
Then the probes are detached, END runs, the last events are read, and every map is printed
(sorted by name) after two newlines.  Everything the kernel hands back is owned by one
``tinytrace.session.Session`` and released on the way out, whatever happens.

Embedding (``tinytrace.script`` runs tools' scripts through a subclass): the phases are
the methods ``_create_maps(session)``, ``_load(session)``, ``_open_events(session)``,
``_attach(session)``, ``_run_special("start"|"exit")``, ``_stop()``, ``_drain()``,
``_detach()``; events go through ``_handler(spec)`` / ``_args(spec)``; maps are read with
``_user_spec(name)``, ``maps``, ``decoders()`` and ``tinytrace.lang.mapread.read_map``;
``reader``, ``done``, ``lost`` and ``comp.events`` are state.  They stay stable.
"""
import os
import struct
import sys

from tinytrace.errors import KernelError, UserError

POLL_MS = 200

_EVENT_ID = struct.Struct("=Q").unpack_from   # the u64 every event record starts with


def run(o, env, src, prog):
    """Compile, load, attach and trace; returns the exit code."""
    child = None
    if o.command is not None:
        child = HeldChild(o.command)
        env.cpid = child.pid
    try:
        from tinytrace.lang import compiler
        comp = compiler.compile_program(src, prog, env)
        out = _open_output(o.output)
        try:
            return Runtime(comp, o, out).run(child)
        finally:
            if out is not sys.stdout:
                out.close()
    finally:
        if child is not None:
            child.finish()


def _open_output(path):
    if path is None:
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise UserError("cannot write %s: %s" % (path, e.strerror))


class HeldChild:
    """The ``-c`` command: forked at once, held before exec until the probes are attached
    (so its first system calls are traced), then released."""

    def __init__(self, command):
        import shlex
        import shutil
        try:
            args = shlex.split(command)
        except ValueError as e:
            raise UserError("-c: %s" % e)
        if not args:
            raise UserError("-c needs a command")
        if shutil.which(args[0]) is None:
            raise UserError("-c: command not found: %s" % args[0])
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: wait for the go, then exec
            try:
                os.close(w)
                go = os.read(r, 1)
                if go == b"x":
                    os.execvp(args[0], args)
            except OSError as e:
                os.write(2, ("tinytrace: cannot run %s: %s\n" % (args[0], e.strerror)).encode())
            finally:
                os._exit(127)
        os.close(r)
        self.pid = pid
        self._go = w
        self.status = None

    def release(self):
        if self._go is not None:
            os.write(self._go, b"x")
            os.close(self._go)
            self._go = None

    def exited(self):
        if self.status is not None:
            return True
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.status = status
        return True

    def finish(self):
        """Reap the child; one that was never released (or still runs) is killed."""
        if self.status is not None:
            return
        if self._go is not None:
            os.close(self._go)
            self._go = None
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                import signal
                os.kill(self.pid, signal.SIGKILL)
                pid, status = os.waitpid(self.pid, 0)
            self.status = status
        except ChildProcessError:
            pass


class Runtime:
    def __init__(self, comp, options, out):
        self.comp = comp
        self.o = options
        self.out = out
        self.json = options.format == "json"
        self.maps = {}
        self.loaded = []           # (ProgramCode, Program)
        self.attachments = []
        self.reader = None
        self.done = False
        # Set by exit(): the events still in the buffer, and those the probes send until
        # they are stopped, are dropped, as bpftrace drops them (exit() in a probe that
        # fires again before user space stops it must not print twice).
        self._exited = False
        self._end_only = False      # END runs after an exit(): only its events count
        self.exit_code = 0
        self.lost = 0
        self._handlers = None
        self._decoders = None
        # Text waiting to be written: the events of one read of the buffer are written
        # with one write() and flushed when the read is done (``_flush``), never held
        # across a wait.
        self._outbuf = []

    # -- set-up -----------------------------------------------------------------------------
    def run(self, child):
        from tinytrace.session import Session, Terminated
        with Session() as s:
            self.session = s
            self._create_maps(s)
            self._load(s)
            self._open_events(s)
            self._attach(s)
            try:
                # a Ctrl-C may land as soon as the line is out (whoever waits for it)
                self._write(self._attached_text(self.comp.attach_count))
                self._flush()
                self._run_special("start")
                if child is not None:
                    child.release()
                self._iterate()
                self._loop(child)
            except (KeyboardInterrupt, Terminated):
                pass   # Ctrl-C or SIGTERM: stop, run END and print, as bpftrace does
            finally:
                self._flush()   # what the events wrote, also when the loop failed
            self._stop()
            self._run_special("exit")
            self._drain()
            self._print_all_maps()
            self._detach()
        return self.exit_code

    def _create_maps(self, s):
        for spec in self.comp.all_maps():
            if spec.existing is not None:   # bound by the embedding, which owns it
                self.maps[spec.name] = spec.existing
                continue
            try:
                self.maps[spec.name] = s.map(spec.kind, spec.key_size, spec.value_size,
                                             spec.max_entries, name=spec.kernel_name)
            except OSError as e:
                raise KernelError("cannot create map %s (%s, %d entries): %s" % (
                    spec.name, spec.kind, spec.max_entries, e.strerror or e))

    def _load(self, s):
        from tinytrace.asm import link
        from tinytrace.kernel import progs
        for p in self.comp.programs:
            code = link(p.code, self.maps)
            try:
                opts = p.load_opts
                if p.functions:
                    opts = dict(opts, functions=p.functions)
                prog = s.load(code, p.prog_type, p.name, **opts)
            except progs.VerifierError as e:
                raise self._verifier_error(p, e)
            self.loaded.append((p, prog))

    def _verifier_error(self, p, e):
        src = self.comp.source
        loc = p.loc_of_slot(e.index) if e.index is not None else None
        names = ", ".join(t.name for t in p.targets[:3])
        lines = []
        if loc is not None:
            lines.append("%s:%d:%d: error: the BPF verifier rejected the program of %s"
                         % (src.filename, loc[0], loc[1], names))
            text = src.line(loc[0])
            if text is not None:
                from tinytrace.lang.source import _visible
                lines.append(_visible(text))
                lines.append(" " * (loc[1] - 1) + "^")
        else:
            lines.append("%s: error: the BPF verifier rejected the program of %s"
                         % (src.filename, names))
        if e.index is not None:
            lines.append("  at insn %d: %s" % (e.index, e.insn_text or "?"))
        lines.append("  reason: %s" % (e.reason or "(the verifier gave none)"))
        if self.o.verbose and e.log:
            lines.append("verifier log:")
            lines.append(e.log.rstrip("\n"))
        elif not self.o.verbose:
            lines.append("  (-v shows the verifier's whole log)")
        return KernelError("\n".join(lines))

    def _open_events(self, s):
        from tinytrace.kernel import events
        outmap = self.maps.get("out")
        if outmap is None:
            return
        if outmap.kind == "ringbuf":
            lost = self.maps.get("lost")
            self.reader = s.add(events.RingBuffer(
                outmap, self._on_event, self._on_lost,
                lost_counter=(lost, 0) if lost is not None else None))
        else:
            self.reader = s.add(events.PerfBuffer(
                outmap, self._on_event, self._on_lost,
                pages=self.comp.env.settings.perf_pages()))

    def _attach(self, s):
        for p, prog in self.loaded:
            if p.run_at is not None:
                continue
            try:
                got = p.provider.attach(s, prog, p.targets, self.comp.env,
                                        cookies=p.cookies)
            except OSError as e:
                raise KernelError("cannot attach %s: %s" % (
                    p.targets[0].name, e.strerror or e))
            for a in got:
                self.attachments.append(s.add(a))

    def _iterate(self):
        """iter probes: read each iterator once (its program runs per object), then the
        run is over, as in bpftrace."""
        iterators = [a for a in self.attachments if getattr(a, "kind", "") == "iter"]
        for a in iterators:
            a.run()
            self._drain()
        if iterators:
            self.done = True

    def _stop(self):
        """Stop the probes firing before END runs and the maps are printed.  Perf events
        are only disabled here (fast); closing them is slow (see ``_detach``) and happens
        after the output is complete.  Other attachments are closed at once."""
        from tinytrace.kernel import perf
        keep = []
        for a in self.attachments:
            members = list(a) if hasattr(a, "members") else [a]
            if all(hasattr(m, "link_fd") for m in members):
                for m in members:
                    try:
                        perf.disable(m.fileno())
                    except (OSError, ValueError):
                        pass
                keep.append(a)
            else:
                self.session.release(a)
                _close_quietly(a)
        self.attachments = keep

    def _detach(self):
        """Detach every probe.  Each detach waits for an RCU grace period in the kernel
        (tens of milliseconds), so many are closed at once from a few threads: their
        waits overlap (``t:syscalls:sys_enter_*`` detaches in well under a second instead
        of half a minute)."""
        attachments, self.attachments = self.attachments, []
        for a in attachments:
            self.session.release(a)
        _close_all(attachments)

    def _run_special(self, when):
        if when == "exit":
            # What the probes sent before they stopped, in order (after an exit(): dropped;
            # the loop may have ended with the -c command before reading it), then END's
            # own output, which is printed.  A probe already running on another CPU when
            # they were stopped may still send after this (seen in slow qemu guests): after
            # an exit() that is dropped too, and its own exit() must not hide END's output.
            self._drain()
            if self._exited:
                self._end_only = True
            self._exited = False
        for p, prog in self.loaded:
            if p.run_at == when:
                prog.test_run(ctx=bytes(8))
                self._drain()

    # -- the loop ---------------------------------------------------------------------------
    def _loop(self, child):
        pid = self.o.pid
        while not self.done:
            if self.reader is not None:
                self.reader.poll(POLL_MS)
            else:
                import time
                time.sleep(POLL_MS / 1000.0)
            self._flush()
            if child is not None and child.exited():
                break
            if pid is not None and not _alive(pid):
                break

    def _drain(self):
        try:
            if self.reader is not None:
                self.reader.drain()
        finally:
            self._flush()

    def _on_lost(self, n):
        from tinytrace.output import bpftrace as bt
        self.lost += n
        self._write(bt.lost_events_json(n) if self.json else bt.lost_events_text(n))

    def _on_event(self, data):
        if self._exited:
            return
        handlers = self._handlers
        if handlers is None:
            handlers = self._prepare_handlers()
        try:
            eid = _EVENT_ID(data)[0]
        except struct.error:        # shorter than an id: no event of ours
            return
        if eid < len(handlers):
            if self._end_only and self.comp.events[eid].run_at != "exit":
                return
            handlers[eid](data)

    # -- events -----------------------------------------------------------------------------
    def decoders(self):
        if self._decoders is None:
            from tinytrace.lang.decode import Context, Decoders
            from tinytrace.lang.layout import stack_map_name
            stacks = dict((d, self.maps[stack_map_name(d)]) for d in self.comp.stack_depths)
            self._decoders = Decoders(Context(self.comp.probe_names, stacks,
                                              self.comp.func_names))
        return self._decoders

    def _prepare_handlers(self):
        self._handlers = [self._handler(spec) for spec in self.comp.events]
        return self._handlers

    def _args(self, spec):
        """``f(data) -> [values]`` of one event kind's arguments (``decode.Decoders.record``:
        one struct unpack for the integers and strings)."""
        return self.decoders().record(spec.layout)

    def _handler(self, spec):
        from tinytrace.output import bpftrace as bt
        kind = spec.kind
        args = self._args(spec)
        js = self.json
        if kind in ("printf", "cat", "system"):
            text_of = spec.data.compile(escape=not js)
            if kind == "printf" and not js:
                put = self._outbuf.append

                def printf_text(data):
                    put(text_of(args(data)))
                return printf_text

            def printf(data):
                text = text_of(args(data))
                if kind == "printf":
                    self._write(bt.printf_json(text))
                elif kind == "cat":
                    self._cat(text)
                else:
                    self._system(text)
            return printf
        if kind == "print_value":
            return lambda data: self._write(
                bt.value_json(args(data)[0]) if js else bt.value_text(args(data)[0]))
        if kind == "print_map":
            d = spec.data
            return lambda data: self._print_map(d["map"], d["top"], d["div"])
        if kind == "clear":
            name = spec.data["map"]
            return lambda data: self._clear(name)
        if kind == "zero":
            name = spec.data["map"]
            return lambda data: self._zero(name)
        if kind == "exit":
            def exit_(data):
                self.done = True
                self._exited = True
                self.exit_code = args(data)[0] & 0xFF
            return exit_
        if kind == "time":
            fmt = spec.data["format"]

            def time_(data):
                from tinytrace.output.timefmt import bpftrace_time
                text = bpftrace_time(fmt)
                self._write(bt.message_json("time", text) if js else text)
            return time_
        if kind == "join":
            sep = spec.data["sep"]

            def join(data):
                vals = args(data)
                n = vals[0]
                parts = [v.decode("utf-8", "surrogateescape") for v in vals[1:1 + n]]
                text = sep.join(parts)
                if js:
                    self._write(bt.message_json("join", text))
                else:
                    from tinytrace.output.escape import escape
                    self._write(escape(text) + "\n")
            return join
        raise AssertionError(kind)

    def _write(self, text):
        self._outbuf.append(text)

    def _flush(self):
        """Write what the events produced since the last flush (one write) and flush."""
        buf = self._outbuf
        if buf:
            text = "".join(buf)
            del buf[:]
            self.out.write(text)
        self.out.flush()

    def _cat(self, path):
        from tinytrace.output import bpftrace as bt
        try:
            with open(path, "rb") as f:
                data = f.read(1 << 20)
            text = data.decode("utf-8", "surrogateescape")
        except OSError as e:
            sys.stderr.write("tinytrace: cat: cannot read %s: %s\n" % (path, e.strerror))
            return
        self._write(bt.message_json("cat", text) if self.json else text)

    def _system(self, command):
        import subprocess
        from tinytrace.output import bpftrace as bt
        self._flush()
        r = subprocess.run(command, shell=True, stdout=subprocess.PIPE)
        text = r.stdout.decode("utf-8", "surrogateescape")
        self._write(bt.message_json("syscall", text) if self.json else text)

    # -- maps -------------------------------------------------------------------------------
    def _user_spec(self, name):
        from tinytrace.lang.layout import asm_name
        return self.comp.maps[asm_name(name)]

    def _clear(self, name):
        self.maps[self._user_spec(name).name].clear()

    def _zero(self, name):
        spec = self._user_spec(name)
        m = self.maps[spec.name]
        zero = bytes(spec.value_size)
        for k in list(m.keys()):
            try:
                m.update(k, zero)
            except OSError:
                pass

    def _print_all_maps(self):
        from tinytrace.output import bpftrace as bt
        self._write(bt.EXIT_PREAMBLE)
        for name in sorted(self.comp.program.maps):
            self._print_map(name, 0, 1)
        self._flush()
        self._notes()

    def _notes(self):
        """Once per run, on stderr: runs of the probes the kernel skipped, and user stacks
        cut short by missing frame pointers."""
        skipped = self._skipped_runs()
        if skipped:
            sys.stderr.write("tinytrace: the kernel skipped %d runs of the probes (another "
                             "BPF program was running on the same CPU): up to %d events "
                             "are missing from the output\n" % (skipped, skipped))
        if self._decoders is None or self._decoders.ctx._short is None:
            return
        note = self._decoders.ctx._short.note()
        if note:
            sys.stderr.write("tinytrace: %s\n" % note)

    def _skipped_runs(self):
        """The kernel's count of skipped runs over this script's programs (BEGIN/END and
        the like are run by us, never skipped)."""
        total = 0
        for _, prog in self.loaded:
            try:
                total += prog.recursion_misses()
            except (OSError, ValueError):
                pass
        return total

    def _print_map(self, name, top, div):
        from tinytrace.lang.mapread import read_map
        from tinytrace.output import bpftrace as bt
        spec = self._user_spec(name)
        entries, kind, extra = read_map(self.maps[spec.name], spec, self.decoders(),
                                        for_print=True)
        display = "@" + name
        if self.json:
            text = bt.map_json(display, entries, kind, top=top, div=div,
                               keyed=not spec.info.keyless, **extra)
        else:
            text = bt.map_text(display, entries, kind, top=top, div=div, **extra)
        self._write(text)

    def _attached_text(self, n):
        if self.o.quiet:
            return ""
        from tinytrace.output import bpftrace as bt
        return bt.attached_probes_json(n) if self.json else bt.attached_probes_text(n)


def _close_all(objects):
    if len(objects) <= 2:
        for a in objects:
            _close_quietly(a)
        return
    import threading
    work = list(objects)
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not work:
                    return
                a = work.pop()
            _close_quietly(a)

    threads = [threading.Thread(target=worker) for _ in range(min(64, len(work)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _close_quietly(obj):
    try:
        obj.close()
    except Exception:
        pass


def _alive(pid):
    """Whether process ``pid`` still runs (a zombie has finished)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")
