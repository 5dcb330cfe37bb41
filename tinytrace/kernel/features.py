"""What the running kernel can do, found out by trying (each answer cached per process).

``probe()`` returns the process-wide ``Features`` object.  Nothing is probed until an
attribute is read, and each probe is at most one small syscall sequence (create a tiny map,
load a few-instruction program, read a sysfs file):

=================  ===========================================================================
ringbuf            BPF_MAP_TYPE_RINGBUF (5.8)
perf_link          BPF links for perf events (BPF_LINK_CREATE + BPF_PERF_EVENT, 5.15)
kprobe_pmu         the kprobe PMU's perf type number, or None (/sys/bus/event_source/devices)
uprobe_pmu         the uprobe PMU's perf type number, or None
kprobe_retprobe_bit / uprobe_retprobe_bit   config bit that makes a return probe
btf                /sys/kernel/btf/vmlinux exists
jit                /proc/sys/net/core/bpf_jit_enable (0, 1, 2) or None when unreadable
atomics            an atomic add loads (the 32-bit ARM JIT refuses it with ENOTSUPP, 524)
atomic_fetch       atomic fetch-add (5.12)
bounded_loops      a backward jump is accepted (5.3)
probe_read_kernel  the bpf_probe_read_kernel helper exists (5.5)
probe_read_user    the bpf_probe_read_user helper exists (5.5)
percpu_maps        BPF_MAP_TYPE_PERCPU_ARRAY can be created
raw_tracepoints    BPF_PROG_TYPE_RAW_TRACEPOINT loads (4.17)
tp_btf             a tp_btf program (BTF-typed tracepoint arguments) loads on sched_switch (5.5)
task_storage       tp_btf programs can keep values in BPF_MAP_TYPE_TASK_STORAGE with
                   bpf_task_storage_get (5.11 maps, callable from tracing programs in 5.12)
callbacks          a program with a callback for bpf_for_each_map_elem loads (5.13, and a
                   JIT that calls functions: not the 32-bit ones)
=================  ===========================================================================

The two BTF probes need the id of ``btf_trace_sched_switch``, which comes from
``btf.cached`` (per kernel, so usually without opening the BTF).
"""
import errno as _errno
import os
import struct

from tinytrace.kernel import bpf


def _insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


# hand-encoded probe programs: the feature probes must not depend on the assembler
_EXIT0 = _insn(0xB7, 0, 0, 0, 0) + _insn(0x95)                      # r0 = 0; exit


def _prog_loads(prog_type, code, expected_attach_type=0, attach_btf_id=0):
    """True if the program loads; False if the kernel refuses it as unknown/unsupported."""
    from tinytrace.kernel import progs
    from tinytrace.errors import PrivilegeError
    try:
        p = progs.load(code, prog_type, "tt_probe", expected_attach_type=expected_attach_type,
                       attach_btf_id=attach_btf_id)
    except progs.VerifierError:
        return False
    except bpf.BpfError:
        return False
    except PrivilegeError:
        raise
    p.close()
    return True


def _map_creates(kind, key, value, entries):
    try:
        fd = bpf.map_create(bpf.MAP_TYPES[kind], key, value, entries)
    except bpf.BpfError:
        return False
    os.close(fd)
    return True


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _pmu_type(name):
    v = _read("/sys/bus/event_source/devices/%s/type" % name)
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def _retprobe_bit(name):
    v = _read("/sys/bus/event_source/devices/%s/format/retprobe" % name)  # "config:0"
    if v and v.startswith("config:"):
        try:
            return int(v.split(":", 1)[1].split("-")[0])
        except ValueError:
            pass
    return 0


def _probe_ringbuf():
    from tinytrace.kernel import perf
    return _map_creates("ringbuf", 0, 0, perf.page_size())


def _probe_perf_link():
    # A kernel with perf links checks the target fd (-1: EBADF); one without them does not
    # know the attach type for this program type (EINVAL).
    from tinytrace.kernel import progs
    from tinytrace.errors import PrivilegeError
    try:
        p = progs.load(_EXIT0, "tracepoint", "tt_probe")
    except (progs.VerifierError, bpf.BpfError):
        return False
    except PrivilegeError:
        raise
    try:
        fd = bpf.link_create(p.fd, -1, bpf.ATTACH_TYPES["perf_event"])
        os.close(fd)  # cannot happen with target -1, but never leak
        return True
    except bpf.BpfError as e:
        return e.errno == _errno.EBADF
    finally:
        p.close()


def _probe_atomics():
    # *(u64 *)(r10 - 8) = 0; r1 = 1; lock *(u64 *)(r10 - 8) += r1; r0 = 0; exit
    code = (_insn(0x7A, 10, 0, -8, 0) + _insn(0xB7, 1, 0, 0, 1) +
            _insn(0xDB, 10, 1, -8, 0x00) + _EXIT0)
    return _prog_loads("socket_filter", code)


def _probe_atomic_fetch():
    # as above, with BPF_FETCH: r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)
    code = (_insn(0x7A, 10, 0, -8, 0) + _insn(0xB7, 1, 0, 0, 1) +
            _insn(0xDB, 10, 1, -8, 0x01) + _EXIT0)
    return _prog_loads("socket_filter", code)


def _probe_bounded_loops():
    # r0 = 0; loop: r0 += 1; if r0 < 4 goto loop; exit
    code = (_insn(0xB7, 0, 0, 0, 0) + _insn(0x07, 0, 0, 0, 1) + _insn(0xA5, 0, 0, -2, 4) +
            _insn(0x95))
    return _prog_loads("socket_filter", code)


def _probe_helper(helper_id):
    # r1 = r10; r1 += -8; r2 = 8; r3 = 0; call helper; r0 = 0; exit
    code = (_insn(0xBF, 1, 10) + _insn(0x07, 1, 0, 0, -8) + _insn(0xB7, 2, 0, 0, 8) +
            _insn(0xB7, 3, 0, 0, 0) + _insn(0x85, 0, 0, 0, helper_id) + _EXIT0)
    return _prog_loads("tracepoint", code)


def _sched_switch_btf_id():
    """The id of ``btf_trace_sched_switch`` (remembered per kernel), or None."""
    from tinytrace.kernel import btf
    if not btf.available():
        return None

    def find(b):
        tp = b.tracepoint("sched_switch")
        return tp.btf_id if tp is not None else None
    try:
        return btf.cached("tp_btf:sched_switch", find)
    except btf.BtfError:
        return None


def _probe_tp_btf():
    tid = _sched_switch_btf_id()
    if tid is None:
        return False
    return _prog_loads("tracing", _EXIT0, "trace_raw_tp", tid)


def _probe_task_storage():
    tid = _sched_switch_btf_id()
    if tid is None:
        return False
    from tinytrace.kernel import maps
    from tinytrace.errors import PrivilegeError
    try:
        m = maps.Map.create("task_storage", 4, 8, 0)
    except PrivilegeError:
        raise
    except bpf.BpfError:
        return False
    try:
        # r2 = ctx[2] (next: a task pointer); r1 = map; r3 = 0; r4 = 0;
        # call bpf_task_storage_get; r0 = 0; exit
        code = (_insn(0x79, 2, 1, 16, 0) + _insn(0x18, 1, 1, 0, m.fd) + _insn(0) +
                _insn(0xB7, 3, 0, 0, 0) + _insn(0xB7, 4, 0, 0, 0) + _insn(0x85, 0, 0, 0, 156) +
                _EXIT0)
        return _prog_loads("tracing", code, "trace_raw_tp", tid)
    finally:
        m.close()


def _probe_jit():
    v = _read("/proc/sys/net/core/bpf_jit_enable")
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def _probe_callbacks():
    """bpf_for_each_map_elem with a callback loads: Linux 5.13, BTF func_info, and a JIT that
    compiles calls between a program's functions (the 32-bit ones do not: "callbacks are
    not allowed in non-JITed programs")."""
    from tinytrace.kernel import progs
    from tinytrace.errors import PrivilegeError
    try:
        fd = bpf.map_create(bpf.MAP_TYPES["array"], 4, 8, 1)
    except bpf.BpfError:
        return False
    try:
        # r1 = map; r2 = func +6 (slot 9); r3 = 0; r4 = 0; call for_each_map_elem;
        # r0 = 0; exit; slot 9: r0 = 0; exit
        code = (_insn(0x18, 1, 1, 0, fd) + _insn(0) + _insn(0x18, 2, 4, 0, 6) + _insn(0) +
                _insn(0xB7, 3) + _insn(0xB7, 4) + _insn(0x85, 0, 0, 0, 164) + _EXIT0 +
                _EXIT0)
        try:
            p = progs.load(code, "tracepoint", "tt_probe", functions=[(0, "main"), (9, "cb")])
        except (progs.VerifierError, bpf.BpfError):
            return False
        except PrivilegeError:
            raise
        p.close()
        return True
    finally:
        os.close(fd)


_PROBES = {
    "ringbuf": _probe_ringbuf,
    "perf_link": _probe_perf_link,
    "kprobe_pmu": lambda: _pmu_type("kprobe"),
    "uprobe_pmu": lambda: _pmu_type("uprobe"),
    "kprobe_retprobe_bit": lambda: _retprobe_bit("kprobe"),
    "uprobe_retprobe_bit": lambda: _retprobe_bit("uprobe"),
    "btf": lambda: os.path.exists("/sys/kernel/btf/vmlinux"),
    "jit": _probe_jit,
    "atomics": _probe_atomics,
    "atomic_fetch": _probe_atomic_fetch,
    "bounded_loops": _probe_bounded_loops,
    "probe_read_kernel": lambda: _probe_helper(113),
    "probe_read_user": lambda: _probe_helper(112),
    "percpu_maps": lambda: _map_creates("percpu_array", 4, 8, 1),
    "raw_tracepoints": lambda: _prog_loads("raw_tracepoint", _EXIT0),
    "tp_btf": _probe_tp_btf,
    "task_storage": _probe_task_storage,
    "callbacks": _probe_callbacks,
}

NAMES = tuple(_PROBES)


class Features(object):
    """Lazily probed kernel features; read an attribute to probe it (once per process).
    ``override(name, value)`` pins an answer (tests, or a user forcing a fallback)."""

    def __init__(self):
        self._known = {}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        known = self.__dict__.get("_known")
        if known is not None and name in known:
            return known[name]
        fn = _PROBES.get(name)
        if fn is None:
            raise AttributeError("no kernel feature probe named %r" % name)
        value = fn()
        self._known[name] = value
        return value

    def override(self, name, value):
        if name not in _PROBES:
            raise KeyError(name)
        self._known[name] = value

    def forget(self, name=None):
        if name is None:
            self._known.clear()
        else:
            self._known.pop(name, None)

    def known(self):
        """The features probed so far, as a dict."""
        return dict(self._known)

    def all(self):
        """Probe everything (for ``tinytrace --info``-style reports); returns a dict."""
        return {n: getattr(self, n) for n in NAMES}


_features = None


def probe():
    """The process-wide ``Features`` (cached)."""
    global _features
    if _features is None:
        _features = Features()
    return _features
