"""runqlat: run-queue (scheduler) latency as a histogram, like BCC's runqlat.

A task's run-queue latency is the time from becoming runnable (woken up, or preempted while
still runnable) to running on a CPU.  Three tracepoints measure it:

- ``sched:sched_wakeup`` and ``sched:sched_wakeup_new``: the woken task becomes runnable now;
- ``sched:sched_switch``: ``prev`` leaves the CPU -- if it is still runnable (preempted) it
  starts waiting now -- and ``next`` starts running: its wait ends.

Two implementations, the same options and output:

- **task storage** (Linux 6.4+ with BTF, tp_btf and task local storage for tracing
  programs, ``features.task_storage``): tp_btf programs get the tracepoints' task
  pointers, and each task's enqueue time lives in the task itself
  (``BPF_MAP_TYPE_TASK_STORAGE``, zeroed instead of deleted).  There is no pid-keyed hash to
  update, look up and delete -- each a hash and a bucket lock per event -- which halves the
  cost of both programs (``python3 -m bench.runqlat_variants``; sched_switch ~155 ns against
  ~300 ns).  The task pointers also give the thread group: ``-p`` filters by process and
  ``-P`` keys by process in the kernel, as BCC does.  These programs are written with
  ``tinytrace.asm`` because the language has no task storage.  A preempted ``prev`` is
  runnable: the tracepoint's ``preempt`` argument, or a ``prev_state`` of 0 (TASK_RUNNING).
  tp_btf programs are also never skipped because another BPF program is running on the
  CPU (classic tracepoint programs are, e.g. a wakeup from an interrupt that came during
  another tool's program; ``toolkit.report_skipped`` reports those runs).
- **tracepoint script** (the fallback: no BTF -- e.g. armhf boards --, kernels before 6.4,
  or ``TINYTRACE_TARGET=task_storage=0``): a script in tinytrace's language (``SCRIPT``), start
  times in a hash by thread ID, latencies in a ``hist()``.  The classic tracepoints carry
  thread IDs only, so ``-p`` filters a thread ID and ``-P`` folds threads into processes
  from /proc when the histograms are printed.  ``prev_state`` is tested on its low byte:
  a preempted task is reported with TASK_REPORT_MAX (256) set, yet it is still runnable.

Latencies are counted per CPU (no update is lost, no atomics needed) and printed in BCC's
log2 layout.

``--pidnss`` keys the histograms by PID namespace, as BCC does: the namespace's inode number
(``readlink /proc/PID/ns/pid`` shows ``pid:[N]``), read from
``task->nsproxy->pid_ns_for_children->ns.inum`` through BTF (without BTF it says so and
exits).  That is the task's own namespace, except for a process that called
unshare(CLONE_NEWPID) itself (its children's namespace).  BCC reads it from ``prev``, the
task leaving the CPU -- on an idle CPU the idle task, so most waits land in the initial
namespace; here it is the task whose wait ended (``next``).  The task-storage version reads
it from ``next``'s task pointer; the tracepoint script has only ``next``'s thread ID, so it
notes each thread's namespace when the thread leaves a CPU (a hash by thread ID, LRU), and
leaves out the waits of threads it has not seen leave a CPU since it started.
"""

import sys

SUMMARY = "run-queue (scheduler) latency as a histogram"
PROBES = ("tracepoint:sched:sched_wakeup", "tracepoint:sched:sched_wakeup_new",
          "tracepoint:sched:sched_switch")
NEEDS = ()

EXAMPLES = """\
    tinytrace runqlat            # summarize run queue latency as a histogram
    tinytrace runqlat 1 10       # print 1 second summaries, 10 times
    tinytrace runqlat -mT 1      # 1s summaries, milliseconds, and timestamps
    tinytrace runqlat -P         # show each PID separately
    tinytrace runqlat -L         # show each TID separately
    tinytrace runqlat -p 185     # trace PID 185 only
    tinytrace runqlat --pidnss   # show each PID namespace separately (needs BTF)
    tinytrace runqlat --json 1 5 # five 1-second histograms as JSON lines
"""


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("runqlat", "Summarize run queue (scheduler) latency as a histogram",
                               EXAMPLES)
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-m", "--milliseconds", action="store_true", help="millisecond histogram")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-P", "--pids", action="store_true", help="print a histogram per process ID")
    g.add_argument("-L", "--tids", action="store_true", help="print a histogram per thread ID")
    g.add_argument("--pidnss", action="store_true",
                   help="print a histogram per PID namespace (needs BTF)")
    p.add_argument("-p", "--pid", type=toolkit.positive_int,
                   help="trace this PID only (a thread ID on kernels without BTF task "
                        "storage)")
    toolkit.add_json(p)
    p.add_argument("interval", nargs="?", type=toolkit.positive_int, default=None,
                   help="output interval, in seconds")
    p.add_argument("count", nargs="?", type=toolkit.positive_int, default=None,
                   help="number of outputs")
    return p.parse_args(argv)


def check_pidns_btf():
    """--pidnss reads task_struct.nsproxy and what it points to: that needs BTF."""
    from tinytrace import toolkit
    if not toolkit.has_btf():
        from tinytrace.errors import KernelError
        from tinytrace.kernel import btf
        raise KernelError("runqlat --pidnss reads the task's PID namespace (task_struct."
                          "nsproxy), which needs the kernel's BTF (%s); this kernel has none "
                          "(CONFIG_DEBUG_INFO_BTF)" % btf.VMLINUX)


def keyed(opts):
    """Histograms per section: -P, -L or --pidnss."""
    return opts.pids or opts.tids or opts.pidnss


# -- the script ---------------------------------------------------------------------------

# --pidnss: each thread's PID namespace, noted as it leaves a CPU (curtask is prev then)
NOTE_NS = """
	if (args->prev_pid != 0) {
		@ns[args->prev_pid] = curtask->nsproxy->pid_ns_for_children->ns.inum;
	}"""

SCRIPT = r"""
tracepoint:sched:sched_wakeup,
tracepoint:sched:sched_wakeup_new
/args->pid != 0%(wakee)s/
{
	@start[args->pid] = nsecs;
}

tracepoint:sched:sched_switch
{
	$now = nsecs;%(note_ns)s
	// prev leaves the CPU: still runnable (preempted) means it waits from now on.
	// prev_state's low byte: a preempted task also has TASK_REPORT_MAX (256) set.
	if ((args->prev_state & 0xff) == 0 && args->prev_pid != 0%(prev)s) {
		@start[args->prev_pid] = $now;
	}
	$ts = @start[args->next_pid];
	if ($ts != 0%(key_known)s) {
		@dist%(key)s = hist(($now - $ts) / %(div)d);
		delete(@start[args->next_pid]);
	}
}
"""


def script_text(opts):
    """The script for these options: -p adds a filter, -P/-L a key, -m the divisor."""
    pid = opts.pid
    key = "[args->next_pid]" if (opts.pids or opts.tids) else ""
    if opts.pidnss:
        key = "[@ns[args->next_pid]]"
    return SCRIPT % {
        "wakee": " && args->pid == %d" % pid if pid else "",
        "prev": " && args->prev_pid == %d" % pid if pid else "",
        "note_ns": NOTE_NS if opts.pidnss else "",
        "key_known": " && @ns[args->next_pid] != 0" if opts.pidnss else "",
        "key": key,
        "div": 1000000 if opts.milliseconds else 1000,
    }


def script_config(opts):
    """--pidnss: @ns (thread -> namespace) is never emptied: an LRU hash, so threads that
    are gone make room for new ones."""
    return {"lru_maps": "@ns"} if opts.pidnss else None


# A task's storage is created inside sched_wakeup/sched_switch, with a runqueue lock held.
# Before Linux 6.4 the kernel allocated it with kmalloc(GFP_ATOMIC), which may wake kswapd
# -- a wake-up that needs a runqueue lock, possibly the one held: the CPU deadlocks.  From
# 6.4 task storage comes from BPF's own preallocated caches (bpf_mem_alloc).  Seen here: a
# Debian 6.1 x86_64 guest froze, both CPUs and no message, while runqlat's task-storage
# version ran late in a test run with its RAM filling up (twice in about ten runs).
TASK_STORAGE_FROM = (6, 4)


def use_task_storage():
    """Whether this kernel runs the task-storage version (see the module docstring and
    ``TASK_STORAGE_FROM``)."""
    from tinytrace import toolkit
    if toolkit.target_disables("btf") or toolkit.target_disables("task_storage"):
        return False
    from tinytrace.kernel import bpf, features
    if tuple(bpf.kernel_version()[:2]) < TASK_STORAGE_FROM:
        return False
    try:
        return bool(features.probe().task_storage)
    except Exception:     # no bpf() at all: the script path reports that clearly
        return False


class Runqlat(object):
    """The running tool: ``start()`` (a context manager), then ``take()``.  ``kind`` is
    "task-storage" or "script" (``SCRIPT`` in the language)."""

    def __init__(self, opts, task_storage=None):
        self.opts = opts
        if task_storage is None:
            task_storage = use_task_storage()
        self.kind = "task-storage" if task_storage else "script"
        self.script = None
        self._impl = None
        self.fallback_reason = None
        if not task_storage:
            self._use_script()

    def _use_script(self):
        from tinytrace.script import Script
        self.kind = "script"
        self.script = Script(script_text(self.opts), tool="runqlat",
                             config=script_config(self.opts))
        self._impl = _ScriptSide(self.opts, self.script)

    def start(self, session=None):
        if self.kind == "task-storage":
            from tinytrace.errors import KernelError
            from tinytrace.kernel.btf import BtfError
            impl = _TaskStorage(self.opts)
            try:
                impl.start(session)
                self._impl = impl
                return self
            except (KernelError, BtfError, OSError) as e:
                # the probe said yes but this kernel refused a program: the script works
                # everywhere, so say why and use it
                from tinytrace.errors import PrivilegeError
                if isinstance(e, PrivilegeError):
                    raise
                self.fallback_reason = str(e).strip().splitlines()[-1]
                self._use_script()
        self._impl.start(session)
        return self

    def __enter__(self):
        if self._impl is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self):
        if self._impl is not None:
            self._impl.stop()

    def take(self):
        """The histograms since the last call, and reset them: {section key: {slot: count}}
        (one section, key None, without -P/-L)."""
        out = self._impl.take()
        if None not in out and not keyed(self.opts):
            out[None] = {}
        return out


class _ScriptSide(object):
    """The fallback: ``SCRIPT`` in the language."""

    def __init__(self, opts, script):
        self.opts = opts
        self.script = script

    def start(self, session=None):
        self.script.start(session)

    def stop(self):
        self.script.stop()

    def take(self):
        from tinytrace.script import log2_slots
        dist = self.script.read("@dist")
        self.script.clear("@dist")
        out = {}
        for key, buckets in dist.items():
            slots = log2_slots(buckets)
            if slots or key is None:
                out[key] = slots
        if self.opts.pids:
            out = _group_by_process(out)
        return out


# -- the task-storage version ---------------------------------------------------------------

MAX_SLOTS = 64          # log2 slots: a u64 of microseconds needs at most 55
KEYED_ENTRIES = 10240   # (id, slot) pairs with -P/-L
BPF_NOEXIST = 1
STORAGE_CREATE = 1      # BPF_LOCAL_STORAGE_GET_F_CREATE


def _tp_btf_id(b, name):
    tp = b.tracepoint(name)
    return tp.btf_id if tp is not None else None


def _switch_nparams(b):
    tp = b.tracepoint("sched_switch")
    return len(tp.params) if tp is not None else None


def _task_state(b):
    """[offset, size] of the task's state (``__state`` since 5.14, ``state`` before)."""
    m = b.member("task_struct", "__state") or b.member("task_struct", "state")
    return [m.offset, m.size] if m is not None else None


def _pidns_path(b):
    """Offsets of task_struct.nsproxy, nsproxy.pid_ns_for_children and, in the
    pid_namespace, ns.inum: how --pidnss walks from a task to its namespace number."""
    task = b.member("task_struct", "nsproxy")
    proxy = b.member("nsproxy", "pid_ns_for_children")
    ns = b.member("pid_namespace", "ns")
    inum = b.member("ns_common", "inum")
    if None in (task, proxy, ns, inum):
        return None
    return [task.offset, proxy.offset, ns.offset + inum.offset]


def kernel_facts():
    """What the programs need from BTF: tp_btf ids, task_struct offsets, how sched_switch
    hands over prev's state.  Remembered per kernel (``btf.cached``): a later run does not
    open the BTF."""
    from tinytrace.kernel import btf
    c = btf.cached
    facts = {
        "pid": c("task_struct.pid", lambda b: b.member("task_struct", "pid").offset),
        "tgid": c("task_struct.tgid", lambda b: b.member("task_struct", "tgid").offset),
        "nparams": c("tp_btf:sched_switch:nparams", _switch_nparams),
        "state": None,
    }
    for ev in ("sched_switch", "sched_wakeup", "sched_wakeup_new"):
        facts[ev] = c("tp_btf:" + ev, lambda b, ev=ev: _tp_btf_id(b, ev))
        if facts[ev] is None:
            raise btf.BtfError("no tp_btf view of %s in this kernel's BTF" % ev)
    if facts["nparams"] is None or facts["nparams"] < 3:
        raise btf.BtfError("sched_switch has an unexpected prototype in this kernel's BTF")
    facts["pidns"] = c("task_struct.nsproxy->pid_ns_for_children->ns.inum", _pidns_path)
    if facts["nparams"] < 4:      # (preempt, prev, next): before 5.18, no prev_state
        facts["state"] = c("task_struct.state", _task_state)
        if facts["state"] is None:
            raise btf.BtfError("no task_struct state member in this kernel's BTF")
    return facts


def _log2_slot(a, reg, tmp):
    """reg = BCC's slot for the value in reg: 1 + floor(log2(reg)), 1 for 0 (six tests)."""
    out = [a.Mov.Imm(tmp, 1)]
    for shift in (32, 16, 8, 4, 2, 1):
        skip = "slot_%d" % shift
        out += [a.Mov.Reg(a.R0, reg), a.Rsh.Imm(a.R0, shift), a.JEq.Imm(a.R0, 0, skip),
                a.Mov.Reg(reg, a.R0), a.Add.Imm(tmp, shift), a.Label(skip)]
    return out + [a.Mov.Reg(reg, tmp)]


def _storage_get(a, task_reg, create):
    return [a.LoadMapPtr(a.R1, "start"), a.Mov.Reg(a.R2, task_reg), a.Mov.Imm(a.R3, 0),
            a.Mov.Imm(a.R4, STORAGE_CREATE if create else 0), a.Call("task_storage_get")]


def _enqueue(a, opts, facts, task_reg, skip):
    """The task in ``task_reg`` starts waiting now (unless it is the idle task, or -p
    filters it out): its storage, created on first use, gets the time."""
    out = [a.LoadMem(a.R1, task_reg, facts["pid"], a.W), a.JEq.Imm32(a.R1, 0, skip)]
    if opts.pid:
        out += [a.LoadMem(a.R1, task_reg, facts["tgid"], a.W),
                a.JNe.Imm32(a.R1, opts.pid, skip)]
    out += _storage_get(a, task_reg, True)
    out += [a.JEq.Imm(a.R0, 0, skip), a.Mov.Reg(a.R9, a.R0), a.Call("ktime_get_ns"),
            a.StoreMem(a.R9, 0, a.R0, a.DW)]
    return out


def wakeup_program(a, opts, facts):
    """sched_wakeup / sched_wakeup_new (tp_btf: ``struct task_struct *p``)."""
    return ([a.LoadMem(a.R6, a.R1, 0, a.DW)] + _enqueue(a, opts, facts, a.R6, "out") +
            [a.Label("out"), a.Mov.Imm(a.R0, 0), a.Exit()])


def switch_program(a, opts, facts):
    """sched_switch (tp_btf: ``bool preempt, prev, next[, unsigned int prev_state]``)."""
    prog = [a.Mov.Reg(a.R6, a.R1), a.LoadMem(a.R7, a.R6, 8, a.DW),     # r7 = prev
            # prev still runnable: preempted, or its state is TASK_RUNNING (0)
            a.LoadMem(a.R1, a.R6, 0, a.DW), a.JNe.Imm32(a.R1, 0, "enqueue")]
    if facts["state"] is None:
        prog += [a.LoadMem(a.R1, a.R6, 24, a.DW), a.JNe.Imm32(a.R1, 0, "next")]
    else:
        off, size = facts["state"]
        prog += [a.LoadMem(a.R1, a.R7, off, a.DW if size == 8 else a.W),
                 a.JNe.Imm(a.R1, 0, "next")]
    prog += [a.Label("enqueue")] + _enqueue(a, opts, facts, a.R7, "next")
    # next starts running: its wait, if it was waiting, ends
    prog += [a.Label("next"), a.LoadMem(a.R7, a.R6, 16, a.DW)] + _storage_get(a, a.R7, False)
    prog += [a.JEq.Imm(a.R0, 0, "out"),
             a.LoadMem(a.R8, a.R0, 0, a.DW), a.JEq.Imm(a.R8, 0, "out"),
             a.StoreImm(a.R0, 0, 0, a.DW),                          # not waiting any more
             a.Call("ktime_get_ns"), a.Sub.Reg(a.R0, a.R8), a.JSLt.Imm(a.R0, 0, "out"),
             a.Div.Imm(a.R0, 1000000 if opts.milliseconds else 1000), a.Mov.Reg(a.R9, a.R0)]
    prog += _log2_slot(a, a.R9, a.R8)
    if keyed(opts):
        # key: (id, slot) in a per-CPU hash; the id is next's process, thread or PID
        # namespace (next: a trusted task pointer, its members are read directly)
        if opts.pidnss:
            if facts.get("pidns") is None:
                from tinytrace.kernel import btf
                raise btf.BtfError("no task_struct.nsproxy->pid_ns_for_children->ns.inum "
                                   "in this kernel's BTF")
            proxy, pidns, inum = facts["pidns"]
            prog += [a.LoadMem(a.R1, a.R7, proxy, a.DW), a.JEq.Imm(a.R1, 0, "out"),
                     a.LoadMem(a.R1, a.R1, pidns, a.DW), a.JEq.Imm(a.R1, 0, "out"),
                     a.LoadMem(a.R1, a.R1, inum, a.W)]
        else:
            prog += [a.LoadMem(a.R1, a.R7, facts["tgid"] if opts.pids else facts["pid"],
                               a.W)]
        prog += [a.StoreMem(a.R10, -8, a.R1, a.W), a.StoreMem(a.R10, -4, a.R9, a.W),
                 a.LoadMapPtr(a.R1, "dist"), a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -8),
                 a.Call("map_lookup_elem"), a.JNe.Imm(a.R0, 0, "count"),
                 a.StoreImm(a.R10, -16, 1, a.DW),
                 a.LoadMapPtr(a.R1, "dist"), a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -8),
                 a.Mov.Reg(a.R3, a.R10), a.Add.Imm(a.R3, -16), a.Mov.Imm(a.R4, BPF_NOEXIST),
                 a.Call("map_update_elem"), a.JEq.Imm(a.R0, 0, "out"),
                 # created meanwhile on another CPU: count in ours
                 a.LoadMapPtr(a.R1, "dist"), a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -8),
                 a.Call("map_lookup_elem"), a.JEq.Imm(a.R0, 0, "out")]
    else:
        prog += [a.StoreMem(a.R10, -4, a.R9, a.W),
                 a.LoadMapPtr(a.R1, "dist"), a.Mov.Reg(a.R2, a.R10), a.Add.Imm(a.R2, -4),
                 a.Call("map_lookup_elem"), a.JEq.Imm(a.R0, 0, "out")]
    # this CPU's counter: the switch never nests with itself on a CPU, so no atomics
    prog += [a.Label("count"), a.LoadMem(a.R1, a.R0, 0, a.DW), a.Add.Imm(a.R1, 1),
             a.StoreMem(a.R0, 0, a.R1, a.DW),
             a.Label("out"), a.Mov.Imm(a.R0, 0), a.Exit()]
    return prog


class _TaskStorage(object):
    """The task-storage version: two tp_btf programs (three attachments), the start times
    in task storage, the histogram in a per-CPU array (or hash keyed by id and slot)."""

    def __init__(self, opts):
        self.opts = opts
        self.session = None
        self._own_session = False
        self.dist = None

    def start(self, session=None):
        from tinytrace import asm as a
        from tinytrace.session import Session
        facts = kernel_facts()
        self._own_session = session is None
        self.session = session if session is not None else Session()
        s = self.session
        try:
            start = s.add(_task_storage_map())
            if keyed(self.opts):
                self.dist = s.map("percpu_hash", 8, 8, KEYED_ENTRIES, name="runqlat_dist",
                                  flags=_keyed_flags())
            else:
                self.dist = s.map("percpu_array", 4, 8, MAX_SLOTS, name="runqlat_dist")
            maps = {"start": start, "dist": self.dist}
            progs = []
            for pname, insns, events in (
                    ("runqlat_switch", switch_program(a, self.opts, facts), ("sched_switch",)),
                    ("runqlat_wakeup", wakeup_program(a, self.opts, facts),
                     ("sched_wakeup", "sched_wakeup_new"))):
                code = a.link(insns, maps)
                for ev in events:
                    p = s.load(code, "tracing", pname, expected_attach_type="trace_raw_tp",
                               attach_btf_id=facts[ev], source=insns)
                    progs.append((p, ev))
            for p, ev in progs:
                s.tp_btf(p, ev)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        session, self.session = self.session, None
        if session is not None and self._own_session:
            session.close()

    def take(self):
        dist = self.dist
        out = {}
        if keyed(self.opts):
            rows = dist.items()
            dist.clear()
            for k, per_cpu in rows:
                ident = int.from_bytes(k[:4], sys.byteorder)
                slot = int.from_bytes(k[4:8], sys.byteorder)
                n = sum(int.from_bytes(v, sys.byteorder) for v in per_cpu)
                if n:
                    d = out.setdefault(ident, {})
                    d[slot] = d.get(slot, 0) + n
            return out
        rows = dist.items()
        dist.clear()
        slots = {}
        for k, per_cpu in rows:
            n = sum(int.from_bytes(v, sys.byteorder) for v in per_cpu)
            if n:
                slots[int.from_bytes(k, sys.byteorder)] = n
        out[None] = slots
        return out


def _keyed_flags():
    """Preallocating 10240 per-CPU values costs milliseconds at start (~4 ms on 2 CPUs);
    from Linux 6.1 tracing programs may update hash maps that allocate as they go
    (BPF_F_NO_PREALLOC), before that they must use preallocated ones."""
    from tinytrace.kernel import bpf
    return bpf.BPF_F_NO_PREALLOC if bpf.kernel_version() >= (6, 1, 0) else 0


def _task_storage_map():
    from tinytrace.kernel.maps import Map
    return Map.create("task_storage", 4, 8, 0, name="runqlat_start")


def _tgid(tid):
    try:
        with open("/proc/%d/status" % tid) as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return tid


def _group_by_process(by_tid):
    """The tracepoints name threads; -P wants processes: fold each thread into its thread
    group (read from /proc while it lives; a thread already gone keeps its own ID)."""
    out = {}
    for tid, slots in by_tid.items():
        dest = out.setdefault(_tgid(tid), {})
        for slot, n in slots.items():
            dest[slot] = dest.get(slot, 0) + n
    return out


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid, "rb") as f:
            return f.read().rstrip(b"\n")
    except OSError:
        return None


def _section_label(pid):
    from tinytrace.output.escape import escape
    comm = _comm(pid)
    return "%d %s" % (pid, escape(comm)) if comm is not None else "%d" % pid


def _section_name(opts):
    return "pidns" if opts.pidnss else "pid" if opts.pids else "tid"


def report(opts, hists, out):
    from tinytrace import toolkit
    from tinytrace.output import hist as H
    unit = "msecs" if opts.milliseconds else "usecs"
    if opts.json:
        from tinytrace.output import jsonl
        section = _section_name(opts)
        rec_hists = []
        for key in sorted(hists, key=lambda k: (k is not None, k)):
            h = H.hist_json(hists[key], unit)
            if key is not None:
                h["key"] = {section: key}
            rec_hists.append(h)
        jsonl.write(jsonl.interval_record(time=toolkit.hhmmss(), hists=rec_hists), out)
        return
    out.write("\n")
    if opts.timestamp:
        out.write("%-8s\n" % toolkit.hhmmss())
    if keyed(opts):
        label = _section_name(opts)
        fmt = str if opts.pidnss else _section_label
        for key in sorted(hists):
            out.write(H.log2_sections_text({key: hists[key]}, unit, section_header=label,
                                           section_fmt=fmt))
    else:
        out.write(H.log2_hist_text(hists.get(None, {}), unit))
    out.flush()


def main(argv):
    from tinytrace import toolkit
    opts = parse_args(argv)
    toolkit.require_privileges()
    if opts.pidnss:
        check_pidns_btf()
    rq = Runqlat(opts)
    with toolkit.Stopper() as stopper, rq.start():
        if rq.fallback_reason:
            sys.stderr.write("runqlat: the task-storage version was refused (%s); using "
                             "the tracepoint version\n" % rq.fallback_reason)
        toolkit.announce(opts, "Tracing run queue latency... Hit Ctrl-C to end.")
        interval = opts.interval if opts.interval is not None else 99999999

        def one_report(last):
            report(opts, rq.take(), sys.stdout)

        toolkit.intervals(interval, opts.count, one_report, stopper)
    return 0
