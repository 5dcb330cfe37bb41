"""memleak: outstanding memory allocations (allocated, not yet freed) summed by stack trace,
like BCC's memleak -- kernel allocators by default, a process's libc allocator with -p/-c.

Kernel mode attaches to the allocator tracepoints: ``kmem:kmalloc`` and
``kmem:kmem_cache_alloc`` (``ptr``, ``bytes_alloc``; since 6.1 they also stand for the
``_node`` variants, which older kernels trace separately and which are used where they
exist), ``kmem:mm_page_alloc`` (``pfn``, ``PAGE_SIZE << order``), and the frees
``kmem:kfree``, ``kmem:kmem_cache_free``, ``kmem:mm_page_free`` and
``kmem:mm_page_free_batched`` (BCC does not watch the batched page frees and reports those
pages as outstanding).  ``--percpu`` watches ``percpu:percpu_alloc_percpu`` /
``percpu_free_percpu`` instead.

User mode (``-p PID`` or ``-c COMMAND``) places uprobes on the allocator functions of libc
(or ``-O OBJ``): malloc, calloc, realloc, posix_memalign, aligned_alloc, valloc, memalign,
pvalloc and mmap at entry (the size, by thread) and return (the address), free and munmap at
entry.  posix_memalign's address is read from its ``memptr`` argument at return.  Where the
kernel has uprobe_multi links (6.6+) each program is attached with one link, which also
detaches at once.

Every allocation goes into a hash in the kernel keyed by address: size, time and the stack
id (kernel stack, or the user stack at the allocator's return, as BCC takes it); a free
deletes it.  Each interval Python reads the hash, drops allocations younger than ``-o`` ms,
sums the rest by stack and prints the top ``-T`` stacks in BCC's layout.  With
``--combined-only`` the per-stack sums are kept in the kernel instead, and only they are
read: per-CPU signed sums (added up when read), so no atomic instructions are needed --
the 32-bit ARM JIT has none.  The allocation hash is sized to the machine (BCC's 1,000,000 entries,
fewer where 1/32 of the RAM cannot hold them); when it is full, allocations go untracked
and the report says how many.  An allocation whose stack could not be stored (a collision
in the stack map, or the map full) is still outstanding: it is counted in an entry "stack
information lost" where BCC leaves it out.

The programs are built with the assembler (``tinytrace.asm``), not the language: the
language has no uprobes yet, and this tool needs a hash much larger than its other maps
and per-stack counters that go down as well as up.  A future version may move
onto the language's ``uprobe:``/``uretprobe:``/``kstack``/``ustack``.

User stacks are walked through frame pointers: code built without them (most distribution
libraries) gives short stacks.
"""

SUMMARY = "outstanding (not yet freed) allocations by stack: kernel allocators or a process's libc"
PROBES = ("tracepoint:kmem:kmalloc", "tracepoint:kmem:kfree",
          "tracepoint:kmem:kmem_cache_alloc", "tracepoint:kmem:kmem_cache_free",
          "tracepoint:kmem:mm_page_alloc", "tracepoint:kmem:mm_page_free",
          "tracepoint:kmem:mm_page_free_batched",
          "tracepoint:percpu:percpu_alloc_percpu", "tracepoint:percpu:percpu_free_percpu",
          "uprobe:libc:malloc", "uretprobe:libc:malloc", "uprobe:libc:calloc",
          "uretprobe:libc:calloc", "uprobe:libc:realloc", "uretprobe:libc:realloc",
          "uprobe:libc:posix_memalign", "uretprobe:libc:posix_memalign",
          "uprobe:libc:aligned_alloc", "uretprobe:libc:aligned_alloc", "uprobe:libc:valloc",
          "uretprobe:libc:valloc", "uprobe:libc:memalign", "uretprobe:libc:memalign",
          "uprobe:libc:pvalloc", "uretprobe:libc:pvalloc", "uprobe:libc:mmap",
          "uretprobe:libc:mmap", "uprobe:libc:free", "uprobe:libc:munmap")
NEEDS = ("uprobes for -p/-c",)

DESCRIPTION = """\
Trace outstanding memory allocations that weren't freed.
Supports both user-mode allocations made with libc functions and kernel-mode
allocations made with kmalloc/kmem_cache_alloc/get_free_pages and corresponding
memory release functions.

Kernel mode uses the kmem tracepoints (kmalloc, kmem_cache_alloc, mm_page_alloc and
their frees, mm_page_free_batched included); user mode uprobes and uretprobes on the
allocator functions of libc (-O)."""

EXAMPLES = """\
    tinytrace memleak -p $(pidof allocs)
            Trace allocations and display a summary of "leaked" (outstanding)
            allocations every 5 seconds
    tinytrace memleak -p $(pidof allocs) -t
            Trace allocations and display each individual allocator function call
    tinytrace memleak -ap $(pidof allocs) 10
            Trace allocations and display allocated addresses, sizes, and stacks
            every 10 seconds for outstanding allocations
    tinytrace memleak -c "./allocs"
            Run the specified command and trace its allocations
    tinytrace memleak
            Trace allocations in kernel mode and display a summary of outstanding
            allocations every 5 seconds
    tinytrace memleak -o 60000
            Trace allocations in kernel mode and display a summary of outstanding
            allocations that are at least one minute (60 seconds) old
    tinytrace memleak -s 5
            Trace roughly every 5th allocation, to reduce overhead
    tinytrace memleak --sort count
            Trace allocations in kernel mode and display a summary of outstanding
            allocations that are sorted in count order
    tinytrace memleak --json -p 181 10 3
            Three 10-second reports of PID 181 as JSON lines
"""

# user-mode allocators: name -> (entry kind, size argument(s)); entry kinds:
#   "size"    size = arg[n]
#   "calloc"  size = arg0 * arg1
#   "realloc" free(arg0), then size = arg1
#   "memptr"  posix_memalign: *arg0 receives the address, size = arg2
ALLOCATORS = (
    ("malloc", "size", 0, True),
    ("calloc", "calloc", 0, True),
    ("realloc", "realloc", 1, True),
    ("mmap", "size", 1, False),
    ("posix_memalign", "memptr", 2, True),
    ("valloc", "size", 0, False),
    ("memalign", "size", 1, True),
    ("pvalloc", "size", 0, False),
    ("aligned_alloc", "size", 1, False),
)
FREES = (("free", True), ("munmap", False))       # (name, required)

STACK_DEPTH = 127          # PERF_MAX_STACK_DEPTH, BCC's BPF_STACK_TRACE depth
STACK_ENTRIES = 10240      # BCC's stack_traces size
COMBINED_ENTRIES = 10240   # BCC's combined_allocs size
INFLIGHT_ENTRIES = 10240   # sizes/memptrs by thread
MAX_ALLOCS = 1000000       # BCC's allocs size
ALLOC_VALUE = 24           # u64 size, u64 timestamp (ns), s64 stack id
TRACE_EVENT = 48           # u32 kind, pid, tid, pad; u64 size, addr; char comm[16]
EV_ALLOC, EV_FREE = 1, 2
STAT_FULL, STAT_LOST = 0, 1
BPF_F_USER_STACK = 1 << 8


def parse_args(argv):
    from tinytrace import toolkit
    p = toolkit.ArgumentParser("memleak", DESCRIPTION, EXAMPLES)
    p.add_argument("-p", "--pid", type=toolkit.positive_int,
                   help="the PID to trace; if not specified, trace kernel allocs")
    p.add_argument("-t", "--trace", action="store_true",
                   help="print trace messages for each alloc/free call")
    p.add_argument("interval", nargs="?", type=toolkit.positive_int, default=5,
                   help="interval in seconds to print outstanding allocations")
    p.add_argument("count", nargs="?", type=toolkit.positive_int,
                   help="number of times to print the report before exiting")
    p.add_argument("-a", "--show-allocs", action="store_true",
                   help="show allocation addresses and sizes as well as call stacks")
    p.add_argument("-o", "--older", type=toolkit.nonneg_int, default=500,
                   help="prune allocations younger than this age in milliseconds")
    p.add_argument("-c", "--command", help="execute and trace the specified command")
    p.add_argument("--combined-only", action="store_true",
                   help="show combined allocation statistics only")
    p.add_argument("--wa-missing-free", action="store_true",
                   help="Workaround to alleviate misjudgments when free is missing")
    p.add_argument("-s", "--sample-rate", type=toolkit.positive_int, default=1,
                   help="sample every N-th allocation to decrease the overhead")
    p.add_argument("-T", "--top", type=toolkit.positive_int, default=10,
                   help="display only this many top allocating stacks (by size)")
    p.add_argument("-z", "--min-size", type=toolkit.nonneg_int,
                   help="capture only allocations larger than this size")
    p.add_argument("-Z", "--max-size", type=toolkit.nonneg_int,
                   help="capture only allocations smaller than this size")
    p.add_argument("-O", "--obj", default="c",
                   help="attach to allocator functions in the specified object")
    p.add_argument("--percpu", action="store_true", help="trace percpu allocations")
    p.add_argument("--sort", choices=("size", "count"), default="size",
                   help="report sorted in given key; available key list: size, count")
    p.add_argument("--symbols-prefix",
                   help="memory allocator symbols prefix")
    toolkit.add_json(p)
    opts = p.parse_args(argv)
    if opts.min_size is not None and opts.max_size is not None and \
            opts.min_size > opts.max_size:
        p.error("min_size (-z) can't be greater than max_size (-Z)")
    if opts.pid and opts.command:
        p.error("-p and -c cannot be combined")
    if opts.command is not None and not opts.command.strip():
        p.error("argument -c/--command: empty command")
    if opts.percpu and (opts.pid or opts.command):
        p.error("--percpu traces kernel allocations; it cannot be combined with -p or -c")
    return opts


def _alloc_table_size():
    """BCC's 1,000,000 entries, or what 1/32 of the RAM holds (~80 bytes an entry)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    kib = int(line.split()[1])
                    return max(16384, min(MAX_ALLOCS, kib * 1024 // 32 // 80))
    except (OSError, ValueError, IndexError):
        pass
    return 262144


# -- BPF programs -------------------------------------------------------------------------

class Gen(object):
    """Builds one program: unique labels, and the bookkeeping blocks every allocator and
    free probe shares.  Registers: r6 = context, r7 = address, r8 = size, r9 = stack id.
    Stack: fp-8 address key, fp-32 allocation value (size, ts, stack id), fp-40 stack key,
    fp-56 combined value, fp-64 thread key, fp-112 trace event."""

    def __init__(self, opts, user, trace_ringbuf):
        from tinytrace import asm
        self.a = asm
        self.opts = opts
        self.user = user
        self.ringbuf = trace_ringbuf
        self.n = 0

    def label(self, what):
        self.n += 1
        return "%s_%d" % (what, self.n)

    def _ptr(self, reg, off):
        a = self.a
        return [a.Mov.Reg(reg, a.R10), a.Add.Imm(reg, off)]

    def _const(self, reg, value):
        a = self.a
        if -(1 << 31) <= value < (1 << 31):
            return [a.Mov.Imm(reg, value)]
        return [a.LoadImm64(reg, value)]

    def filters(self, size_reg, out):
        """Size filters and sampling, as BCC applies them when an allocation starts."""
        a = self.a
        o = self.opts
        code = []
        if o.min_size is not None:
            code += self._const(a.R1, o.min_size) + [a.JLt.Reg(size_reg, a.R1, out)]
        if o.max_size is not None:
            code += self._const(a.R1, o.max_size) + [a.JGt.Reg(size_reg, a.R1, out)]
        if o.sample_rate > 1:
            code += [a.Call("get_prandom_u32"), a.Mov.Reg32(a.R0, a.R0),
                     a.Mod.Imm32(a.R0, o.sample_rate), a.JNe.Imm(a.R0, 0, out)]
        return code

    def _bump(self, off, imm=None, reg=None):
        """*(u64 *)(r0 + off) += imm (or reg), on this CPU's copy of a per-CPU value (no
        atomics: the 32-bit ARM JIT has none, and nothing else writes this CPU's copy
        meanwhile)."""
        a = self.a
        add = a.Add.Imm(a.R1, imm) if reg is None else a.Add.Reg(a.R1, reg)
        return [a.LoadMem(a.R1, a.R0, off, a.DW), add, a.StoreMem(a.R0, off, a.R1, a.DW)]

    def stat(self, index):
        """stats[index] += 1 (a per-CPU counter)."""
        a = self.a
        done = self.label("stat")
        return [a.StoreImm(a.R10, -4, index, a.W), a.LoadMapPtr(a.R1, "stats")] + \
            self._ptr(a.R2, -4) + [a.Call("map_lookup_elem"), a.JEq.Imm(a.R0, 0, done)] + \
            self._bump(0, imm=1) + [a.Label(done)]

    def trace_event(self, kind):
        """Send (kind, pid, tid, r8 size, r7 address, comm) to the trace output (-t)."""
        a = self.a
        ev = -112
        code = [a.StoreImm(a.R10, ev, kind, a.W), a.Call("get_current_pid_tgid"),
                a.StoreMem(a.R10, ev + 8, a.R0, a.W), a.Rsh.Imm(a.R0, 32),
                a.StoreMem(a.R10, ev + 4, a.R0, a.W), a.StoreImm(a.R10, ev + 12, 0, a.W),
                a.StoreMem(a.R10, ev + 16, a.R8, a.DW), a.StoreMem(a.R10, ev + 24, a.R7, a.DW),
                a.StoreImm(a.R10, ev + 32, 0, a.DW), a.StoreImm(a.R10, ev + 40, 0, a.DW)]
        code += self._ptr(a.R1, ev + 32) + [a.Mov.Imm(a.R2, 16), a.Call("get_current_comm")]
        if self.ringbuf:
            done = self.label("sent")
            code += [a.LoadMapPtr(a.R1, "events")] + self._ptr(a.R2, ev) + [
                a.Mov.Imm(a.R3, TRACE_EVENT), a.Mov.Imm(a.R4, 0), a.Call("ringbuf_output"),
                a.JEq.Imm(a.R0, 0, done)] + self.stat(STAT_LOST) + [a.Label(done)]
        else:
            code += [a.Mov.Reg(a.R1, a.R6), a.LoadMapPtr(a.R2, "events"),
                     a.LoadImm64(a.R3, 0xffffffff)] + self._ptr(a.R4, ev) + [
                a.Mov.Imm(a.R5, TRACE_EVENT), a.Call("perf_event_output")]
        return code

    def _lost_key(self):
        """Allocations whose stack could not be stored (a stack map collision or a full
        map: get_stackid's error) are summed under one key, -1."""
        a = self.a
        ok = self.label("sid")
        return [a.JSGe.Imm(a.R9, 0, ok), a.Mov.Imm(a.R9, -1), a.Label(ok)]

    def combined_add(self):
        """combined[r9] += (r8, 1) on this CPU, creating the entry (BCC's
        update_statistics_add; per-CPU signed sums, added up when read)."""
        a = self.a
        have, skip = self.label("have"), self.label("nocomb")
        look = [a.LoadMapPtr(a.R1, "combined")] + self._ptr(a.R2, -40) + \
            [a.Call("map_lookup_elem")]
        return self._lost_key() + [a.StoreMem(a.R10, -40, a.R9, a.DW)] + look + [
            a.JNe.Imm(a.R0, 0, have),
            a.StoreImm(a.R10, -56, 0, a.DW), a.StoreImm(a.R10, -48, 0, a.DW),
            a.LoadMapPtr(a.R1, "combined")] + self._ptr(a.R2, -40) + self._ptr(a.R3, -56) + [
            a.Mov.Imm(a.R4, 1), a.Call("map_update_elem")] + look + [
            a.JEq.Imm(a.R0, 0, skip),
            a.Label(have)] + self._bump(0, reg=a.R8) + self._bump(8, imm=1) + [a.Label(skip)]

    def combined_del(self):
        """combined[r9] -= (r8, 1) on this CPU (the sum over the CPUs is what counts; an
        entry whose allocations are all freed stays, at zero)."""
        a = self.a
        skip = self.label("nodel")
        return self._lost_key() + [a.StoreMem(a.R10, -40, a.R9, a.DW),
                a.LoadMapPtr(a.R1, "combined")] + self._ptr(a.R2, -40) + [
            a.Call("map_lookup_elem"), a.JEq.Imm(a.R0, 0, skip),
            a.Mov.Reg(a.R2, a.R8), a.Neg(a.R2)] + self._bump(0, reg=a.R2) + \
            self._bump(8, imm=-1) + [a.Label(skip)]

    def free(self, out, trace=True):
        """The allocation at r7 is gone: delete it (and its share of the stack's sums)."""
        a = self.a
        code = [a.StoreMem(a.R10, -8, a.R7, a.DW), a.LoadMapPtr(a.R1, "allocs")] + \
            self._ptr(a.R2, -8) + [
            a.Call("map_lookup_elem"), a.JEq.Imm(a.R0, 0, out),
            a.LoadMem(a.R8, a.R0, 0, a.DW), a.LoadMem(a.R9, a.R0, 16, a.DW),
            a.LoadMapPtr(a.R1, "allocs")] + self._ptr(a.R2, -8) + [a.Call("map_delete_elem")]
        if self.opts.combined_only:
            code += self.combined_del()
        if trace and self.opts.trace:
            code += self.trace_event(EV_FREE)
        return code

    def record(self, out):
        """Keep the allocation of r8 bytes at r7 (skipped when r7 is 0 or -1)."""
        a = self.a
        stored = self.label("stored")
        code = [a.JEq.Imm(a.R7, 0, out), a.JEq.Imm(a.R7, -1, out)]
        if self.opts.wa_missing_free and self.opts.combined_only:
            # an address handed out again without a free we saw: take the old one off first
            keep_size = [a.StoreMem(a.R10, -64, a.R8, a.DW)]
            after = self.label("wa")
            code += keep_size + self.free(after, trace=False) + [
                a.Label(after), a.LoadMem(a.R8, a.R10, -64, a.DW)]
        code += [a.StoreMem(a.R10, -32, a.R8, a.DW), a.Call("ktime_get_ns"),
                 a.StoreMem(a.R10, -24, a.R0, a.DW),
                 a.Mov.Reg(a.R1, a.R6), a.LoadMapPtr(a.R2, "stacks"),
                 a.Mov.Imm(a.R3, BPF_F_USER_STACK if self.user else 0),
                 a.Call("get_stackid"), a.Mov.Reg(a.R9, a.R0),
                 a.StoreMem(a.R10, -16, a.R0, a.DW), a.StoreMem(a.R10, -8, a.R7, a.DW),
                 a.LoadMapPtr(a.R1, "allocs")] + self._ptr(a.R2, -8) + self._ptr(a.R3, -32) + [
            a.Mov.Imm(a.R4, 0), a.Call("map_update_elem"), a.JEq.Imm(a.R0, 0, stored)]
        code += self.stat(STAT_FULL) + [a.Ja(out), a.Label(stored)]
        if self.opts.combined_only:
            code += self.combined_add()
        if self.opts.trace:
            code += self.trace_event(EV_ALLOC)
        return code

    def finish(self, code):
        a = self.a
        return [a.Mov.Reg(a.R6, a.R1)] + code + [a.Label("out"), a.Mov.Imm(a.R0, 0), a.Exit()]

    # -- kernel mode: tracepoints --------------------------------------------------------

    def _field(self, reg, fmt, name):
        a = self.a
        f = fmt.field(name)
        size = {1: a.B, 2: a.H, 4: a.W, 8: a.DW}[f.size]
        return [a.LoadMem(reg, a.R6, f.offset, size)]

    def tp_alloc(self, fmt, addr_field, size_field=None, page_order=None):
        a = self.a
        code = self._field(a.R7, fmt, addr_field)
        if page_order is not None:
            code += self._field(a.R1, fmt, page_order) + [
                a.Mov.Imm(a.R8, _page_size()), a.Lsh.Reg(a.R8, a.R1)]
        else:
            code += self._field(a.R8, fmt, size_field)
        code += self.filters(a.R8, "out") + self.record("out")
        return self.finish(code)

    def tp_free(self, fmt, addr_field):
        a = self.a
        return self.finish(self._field(a.R7, fmt, addr_field) + self.free("out"))

    # -- user mode: uprobes ----------------------------------------------------------------

    def _arg(self, reg, regs, n):
        a = self.a
        loc = regs.arg(n)
        if loc.kind != "reg":
            raise ValueError("argument %d is not in a register on this architecture" % n)
        size = {4: a.W, 8: a.DW}[loc.size]
        return [a.LoadMem(reg, a.R6, loc.offset, size)]

    def _tid_key(self):
        a = self.a
        return [a.Call("get_current_pid_tgid"), a.StoreMem(a.R10, -64, a.R0, a.W)]

    def u_entry(self, regs, kind, arg):
        a = self.a
        code = []
        if kind == "realloc":
            code += self._arg(a.R7, regs, 0)
            skip = self.label("nofree")
            code += [a.JEq.Imm(a.R7, 0, skip)] + self.free(skip) + [a.Label(skip)]
        if kind == "calloc":
            code += self._arg(a.R8, regs, 0) + self._arg(a.R1, regs, 1) + \
                [a.Mul.Reg(a.R8, a.R1)]
        else:
            code += self._arg(a.R8, regs, arg)
        code += self.filters(a.R8, "out") + self._tid_key()
        if kind == "memptr":
            code += self._arg(a.R1, regs, 0) + [
                a.StoreMem(a.R10, -72, a.R1, a.DW), a.LoadMapPtr(a.R1, "memptrs")] + \
                self._ptr(a.R2, -64) + self._ptr(a.R3, -72) + [
                a.Mov.Imm(a.R4, 0), a.Call("map_update_elem")]
        code += [a.StoreMem(a.R10, -72, a.R8, a.DW), a.LoadMapPtr(a.R1, "sizes")] + \
            self._ptr(a.R2, -64) + self._ptr(a.R3, -72) + [
            a.Mov.Imm(a.R4, 0), a.Call("map_update_elem")]
        return self.finish(code)

    def u_return(self, regs, memptr):
        a = self.a
        code = self._tid_key()
        if memptr:
            # posix_memalign: the address is in *memptr, valid when it returned 0
            code += [a.LoadMapPtr(a.R1, "memptrs")] + self._ptr(a.R2, -64) + [
                a.Call("map_lookup_elem"), a.JEq.Imm(a.R0, 0, "out"),
                a.LoadMem(a.R7, a.R0, 0, a.DW),
                a.LoadMapPtr(a.R1, "memptrs")] + self._ptr(a.R2, -64) + [
                a.Call("map_delete_elem")]
        code += [a.LoadMapPtr(a.R1, "sizes")] + self._ptr(a.R2, -64) + [
            a.Call("map_lookup_elem"), a.JEq.Imm(a.R0, 0, "out"),
            a.LoadMem(a.R8, a.R0, 0, a.DW),
            a.LoadMapPtr(a.R1, "sizes")] + self._ptr(a.R2, -64) + [a.Call("map_delete_elem")]
        ret = regs.retval_loc()
        if memptr:
            low = ret.offset + (ret.size - 4 if ret.size > 4 and not _little() else 0)
            code += [a.LoadMem(a.R1, a.R6, low, a.W), a.JNe.Imm32(a.R1, 0, "out")]
            code += self._ptr(a.R1, -8) + [a.Mov.Imm(a.R2, 8), a.Mov.Reg(a.R3, a.R7),
                                           a.Call("probe_read_user"),
                                           a.JNe.Imm(a.R0, 0, "out"),
                                           a.LoadMem(a.R7, a.R10, -8, a.DW)]
        else:
            code += [a.LoadMem(a.R7, a.R6, ret.offset, {4: a.W, 8: a.DW}[ret.size])]
        code += self.record("out")
        return self.finish(code)

    def u_free(self, regs):
        a = self.a
        return self.finish(self._arg(a.R7, regs, 0) + self.free("out"))


def _page_size():
    import os
    return os.sysconf("SC_PAGE_SIZE")


# -- attaching ----------------------------------------------------------------------------

def kernel_probes(opts):
    """[(category, event, kind, fields)] of the allocator tracepoints this kernel has."""
    from tinytrace.errors import KernelError
    from tinytrace.kernel import tracefs
    if opts.percpu:
        want = [("percpu", "percpu_alloc_percpu", "alloc", ("ptr", "size", None)),
                ("percpu", "percpu_free_percpu", "free", ("ptr",))]
    else:
        want = [("kmem", "kmalloc", "alloc", ("ptr", "bytes_alloc", None)),
                ("kmem", "kmalloc_node", "alloc", ("ptr", "bytes_alloc", None)),
                ("kmem", "kmem_cache_alloc", "alloc", ("ptr", "bytes_alloc", None)),
                ("kmem", "kmem_cache_alloc_node", "alloc", ("ptr", "bytes_alloc", None)),
                ("kmem", "kfree", "free", ("ptr",)),
                ("kmem", "kmem_cache_free", "free", ("ptr",)),
                ("kmem", "mm_page_alloc", "alloc", ("pfn", None, "order")),
                ("kmem", "mm_page_free", "free", ("pfn",)),
                ("kmem", "mm_page_free_batched", "free", ("pfn",))]
    have = [w for w in want if tracefs.exists(w[0], w[1])]
    if not any(w[2] == "alloc" for w in have):
        raise KernelError("no %s allocation tracepoints on this kernel" % (
            "percpu" if opts.percpu else "kmem"))
    return have


class Tracer(object):
    """Maps, programs and probes for one run, in ``session``."""

    def __init__(self, opts, session, pid=None, on_trace=None):
        self.opts = opts
        self.session = session
        self.pid = pid
        self.user = pid is not None
        self.table_size = _alloc_table_size()
        s = session
        self.maps = {
            "allocs": s.map("hash", 8, ALLOC_VALUE, self.table_size, name="memleak_allocs"),
            "stacks": s.map("stack_trace", 4, 8 * STACK_DEPTH, STACK_ENTRIES,
                            name="memleak_stacks"),
            "stats": s.map("percpu_array", 4, 8, 4, name="memleak_stats"),
        }
        if opts.combined_only:
            self.maps["combined"] = s.map("percpu_hash", 8, 16, COMBINED_ENTRIES,
                                          name="memleak_comb")
        if self.user:
            self.maps["sizes"] = s.map("hash", 4, 8, INFLIGHT_ENTRIES, name="memleak_sizes")
            self.maps["memptrs"] = s.map("hash", 4, 8, INFLIGHT_ENTRIES, name="memleak_memptr")
        self.reader = None
        self.ringbuf = False
        if opts.trace:
            self._open_trace(on_trace)
        self.attached = []
        self.skipped = []

    def _open_trace(self, on_trace):
        from tinytrace.kernel import features
        s = self.session
        from tinytrace import toolkit
        self.ringbuf = bool(features.probe().ringbuf) and not toolkit.target_disables("ringbuf")
        if self.ringbuf:
            m = s.map("ringbuf", 0, 0, 1 << 20, name="memleak_events")
            self.reader = s.reader(m, on_trace, None,
                                   lost_counter=(self.maps["stats"], STAT_LOST))
        else:
            self.reader = s.output(on_trace, None, ringbuf=False, name="memleak_events")
            m = self.reader.map
        self.maps["events"] = m

    def _gen(self):
        return Gen(self.opts, self.user, self.ringbuf)

    def _load(self, insns, prog_type, name, **kw):
        from tinytrace.asm import link
        return self.session.load(link(insns, self.maps), prog_type, name, source=insns, **kw)

    def attach_kernel(self):
        from tinytrace.kernel import tracefs
        for cat, event, kind, fields in kernel_probes(self.opts):
            fmt = tracefs.event_format(cat, event)
            g = self._gen()
            if kind == "alloc":
                addr, size, order = fields
                insns = g.tp_alloc(fmt, addr, size, order)
            else:
                insns = g.tp_free(fmt, fields[0])
            prog = self._load(insns, "tracepoint", "ml_" + event)
            self.session.tracepoint(prog, cat, event)
            self.attached.append("%s:%s" % (cat, event))

    def attach_user(self, path):
        from tinytrace.kernel import elf, regs, uprobes
        from tinytrace.errors import UserError
        f = elf.open(path)
        rt = regs.user(f.arch)
        prefix = self.opts.symbols_prefix or ""
        multi = uprobes.multi_supported()
        eat = {"expected_attach_type": "trace_uprobe_multi"} if multi else {}

        def offset(func):
            try:
                return uprobes.symbol_offset(path, prefix + func)
            except UserError:
                return None

        def attach(prog, funcs, retprobe):
            offs, seen = [], set()
            for fn in funcs:
                o = offset(fn)
                if o is not None and o not in seen:     # aliases (memalign, aligned_alloc)
                    seen.add(o)
                    offs.append((fn, o))
            if not offs:
                return
            if multi:
                link = uprobes.attach_multi(prog, path, [o for _, o in offs], retprobe=retprobe,
                                            pid=self.pid, names=[fn for fn, _ in offs])
                self.session.add(link)
            else:
                for fn, o in offs:
                    self.session.add(uprobes.attach(prog, path, o, retprobe=retprobe,
                                                    pid=self.pid))
            self.attached.extend(("uretprobe:" if retprobe else "uprobe:") + fn
                                 for fn, _ in offs)

        found = dict((name, offset(name)) for name, _, _, _ in ALLOCATORS)
        found.update((name, offset(name)) for name, _ in FREES)
        missing = [name for name, _, _, required in ALLOCATORS if required and
                   found[name] is None] + [n for n, req in FREES if req and found[n] is None]
        if missing:
            raise UserError("%s has no %s: not a C library with the allocator functions "
                            "(see -O and --symbols-prefix)" % (path, ", ".join(
                                prefix + m for m in missing)))
        self.skipped = [prefix + n for n in found if found[n] is None]
        # entry programs, one per kind of argument list
        groups = {}
        for name, kind, arg, _ in ALLOCATORS:
            if found[name] is not None:
                groups.setdefault((kind, arg), []).append(name)
        for (kind, arg), funcs in sorted(groups.items()):
            prog = self._load(self._gen().u_entry(rt, kind, arg), "kprobe",
                              "ml_%s" % funcs[0], **eat)
            attach(prog, funcs, False)
        plain = [n for n, kind, _, _ in ALLOCATORS if found[n] is not None and kind != "memptr"]
        prog = self._load(self._gen().u_return(rt, False), "kprobe", "ml_ret", **eat)
        attach(prog, plain, True)
        if found["posix_memalign"] is not None:
            prog = self._load(self._gen().u_return(rt, True), "kprobe", "ml_ret_memptr", **eat)
            attach(prog, ["posix_memalign"], True)
        frees = [n for n, _ in FREES if found[n] is not None]
        prog = self._load(self._gen().u_free(rt), "kprobe", "ml_free", **eat)
        attach(prog, frees, False)

    # -- reading ----------------------------------------------------------------------------

    def stat(self, index):
        import struct
        v = self.maps["stats"].lookup(index)
        return sum(struct.unpack("=Q", x)[0] for x in v) if v is not None else 0

    def outstanding(self):
        """[(address, size, timestamp ns, stack id)] of every tracked allocation."""
        import struct
        unpack = struct.Struct("=QQq").unpack
        out = []
        for k, v in self.maps["allocs"].items():
            size, ts, sid = unpack(v)
            out.append((int.from_bytes(k, "little" if _little() else "big"), size, ts, sid))
        return out

    def combined(self):
        """{stack id: (total size, count)} (--combined-only)."""
        import struct
        out = {}
        unpack = struct.Struct("=qq").unpack
        for k, per_cpu in self.maps["combined"].items():
            sid = int.from_bytes(k, "little" if _little() else "big", signed=True)
            size = count = 0
            for v in per_cpu:
                s, c = unpack(v)
                size += s
                count += c
            if count > 0:
                out[sid] = (size, count)
        return out


def _little():
    import sys
    return sys.byteorder == "little"


# -- reports ------------------------------------------------------------------------------

class Symbols(object):
    """Frames of a stack id, named once per stack: ``0x...\\tsym+0xoff [module]``."""

    def __init__(self, tracer, pid):
        from tinytrace.kernel.stacks import StackTable
        self.table = StackTable(tracer.maps["stacks"])
        self.pid = pid
        self.cache = {}

    def frames(self, sid):
        """[(address, "name+0xoff [module]")], or None when the stack is gone."""
        hit = self.cache.get(sid)
        if hit is not None:
            return hit
        if self.pid is None:
            frames = self.table.kernel(sid)
        else:
            frames = self.table.user(sid, self.pid)
        if frames is None:
            return None
        hit = [(f.addr, _frame_text(f)) for f in frames]
        self.cache[sid] = hit
        return hit


def _frame_text(f):
    """BCC's ``sym(addr, pid, show_module=True, show_offset=True)``: "name+0xoff [module]";
    an address in no file ([stack], [anon]...) with no name is just "[unknown]"."""
    if not f.kernel and f.name is None and (f.module or "[").startswith("["):
        return "[unknown]"
    return f.bcc(show_offset=True, show_module=True)


def summarize(opts, tracer, syms, now_ns):
    """The report's rows: [(bytes, allocations, stack id)] in BCC's order (ascending by the
    sort key, the top -T kept) and the allocations shown with -a."""
    shown = []
    if opts.combined_only:
        per = tracer.combined()
    else:
        per = {}
        min_age = opts.older * 1000000
        allocs = sorted(tracer.outstanding(), key=lambda a: a[1])
        for addr, size, ts, sid in allocs:
            if now_ns - min_age < ts:
                continue
            if sid < 0:
                sid = -1            # the stack was lost: still outstanding (BCC drops it)
            total, count = per.get(sid, (0, 0))
            per[sid] = (total + size, count + 1)
            if opts.show_allocs:
                shown.append((addr, size))
    rows = [(size, count, sid) for sid, (size, count) in per.items()]
    key = (lambda r: (r[0], r[1])) if opts.sort == "size" else (lambda r: (r[1], r[0]))
    rows.sort(key=key)
    return rows[-opts.top:], shown


def report(opts, tracer, syms, out):
    import time
    from tinytrace import toolkit
    rows, shown = summarize(opts, tracer, syms, time.monotonic_ns())
    full = tracer.stat(STAT_FULL)
    if opts.json:
        from tinytrace.output import jsonl
        stacks = []
        for size, count, sid in reversed(rows):
            frames = syms.frames(sid)
            stacks.append({"bytes": size, "allocations": count,
                           "stack": [s for _, s in frames] if frames is not None else None})
        rec = {"time": toolkit.hhmmss(), "top": opts.top, "stacks": stacks}
        if opts.show_allocs:
            rec["allocs"] = [{"addr": "0x%x" % addr, "size": size} for addr, size in shown]
        if full:
            rec["untracked"] = full
        jsonl.write(rec, out)
        return
    lines = ["[%s] Top %d stacks with outstanding allocations:" % (toolkit.hhmmss(), opts.top)]
    for addr, size in shown:
        lines.append("\taddr = %x size = %s" % (addr, size))
    for size, count, sid in rows:
        frames = syms.frames(sid)
        if frames is None:
            text = "stack information lost"
        elif opts.combined_only:
            text = "\n\t\t".join(s for _, s in frames)
        else:
            text = "\n\t\t".join("0x%016x\t%s" % (a, s) for a, s in frames)
        lines.append("\t%d bytes in %d allocations from stack\n\t\t%s" % (size, count, text))
    out.write("\n".join(lines) + "\n")
    out.flush()
    if full:
        import sys
        sys.stderr.write("memleak: %d allocations not tracked: the table of %d entries is "
                         "full\n" % (full, tracer.table_size))


class TracePrinter(object):
    """-t: one line per allocation and per free of a tracked allocation."""

    def __init__(self, opts, out):
        import struct
        self.opts = opts
        self.out = out
        self.fmt = struct.Struct("=IIIIQQ16s")

    def event(self, data):
        kind, pid, tid, _, size, addr, comm = self.fmt.unpack_from(data, 0)
        comm = comm.split(b"\0", 1)[0]
        if self.opts.json:
            from tinytrace.output import jsonl
            jsonl.write({"event": "alloc" if kind == EV_ALLOC else "free", "pid": pid,
                         "tid": tid, "comm": jsonl.text(comm), "size": size,
                         "addr": "0x%x" % addr}, self.out)
            return
        from tinytrace.output.escape import escape
        if kind == EV_ALLOC:
            msg = "alloc exited, size = %d, result = %x" % (size, addr)
        else:
            msg = "free entered, address = %x, size = %d" % (addr, size)
        self.out.write("%-16s %-7d %-7d %s\n" % (escape(comm), pid, tid, msg))
        self.out.flush()


# -- -c COMMAND -----------------------------------------------------------------------------

class Command(object):
    """The command of -c, forked now and held before exec() until the probes are attached
    (BCC starts it first and misses what it allocates meanwhile)."""

    def __init__(self, text):
        import os
        import shlex
        import shutil
        from tinytrace.errors import UserError
        try:
            argv = shlex.split(text)
        except ValueError as e:
            raise UserError("-c: %s" % e)
        prog = argv[0] if "/" in argv[0] else shutil.which(argv[0])
        if prog is None or not os.access(prog, os.X_OK) or os.path.isdir(prog):
            raise UserError("-c: cannot run %s: no such program" % argv[0])
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:                                   # the child: wait, then exec
            try:
                os.close(w)
                os.read(r, 1)
                os.close(r)
                os.execv(prog, argv)
            except BaseException:
                pass
            os._exit(127)
        os.close(r)
        self._gate = w
        self.pid = pid

    def release(self):
        import os
        if self._gate is not None:
            try:
                os.write(self._gate, b"x")
            finally:
                os.close(self._gate)
                self._gate = None

    def close(self):
        """At exit: a child never released is killed (it would exec untraced); a finished
        one is reaped."""
        import os
        import signal
        if self._gate is not None:
            os.close(self._gate)
            self._gate = None
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            return
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except OSError:
            pass


def _libc_path(opts, pid):
    from tinytrace.kernel import uprobes
    return uprobes.resolve(opts.obj if opts.obj != "c" else "libc", pid)


def main(argv):
    import sys
    from tinytrace import toolkit
    from tinytrace.session import Session
    opts = parse_args(argv)
    toolkit.require_privileges()
    command = None
    pid = opts.pid
    with Session() as session:
        if opts.command is not None:
            command = Command(opts.command)
            toolkit.info(opts, "Executing '%s' and tracing the resulting process."
                         % opts.command)
            session.on_close(command.close)
            pid = command.pid
        printer = TracePrinter(opts, sys.stdout) if opts.trace else None
        tracer = Tracer(opts, session, pid, printer.event if printer else None)
        if pid is None:
            tracer.attach_kernel()
        else:
            tracer.attach_user(_libc_path(opts, None if command else pid))
        syms = Symbols(tracer, pid)
        lost = toolkit.LostReporter()
        with toolkit.Stopper() as stopper:
            if pid is None:
                toolkit.announce(opts, "Attaching to kernel allocators, Ctrl+C to quit.")
            else:
                toolkit.announce(opts, "Attaching to pid %d, Ctrl+C to quit." % pid)
            if command is not None:
                command.release()       # the probes are in place: let it exec
            if opts.trace:
                tracer.reader.on_lost = lost.report
                stopper.follow(tracer.reader)
                return 0

            def one_report(last):
                report(opts, tracer, syms, sys.stdout)

            toolkit.intervals(opts.interval, opts.count, one_report, stopper)
    return 0
