"""What the compiler and the runtime agree on: the maps a program needs and the events it
sends to user space, with their byte layouts.

Maps
----
User maps (``@name``) are named ``m.NAME`` in the assembly (``m.`` for ``@``).  Their kind
follows the value:

- aggregations (count, sum, avg, min, max, stats, hist, lhist) are per-CPU, so concurrent
  CPUs never contend or lose updates: a ``percpu_array`` of one element for a map without
  keys (its lookup never misses and is inlined by the verifier), a ``percpu_hash``
  otherwise.  User space adds the CPUs up when it prints.
- plain values (``@x[k] = v``) are a ``hash``.
- a map bound to an existing kernel map (``Env.bind_map``) keeps that map's kind and sizes,
  and its spec's ``existing`` is that map: the runtime uses it instead of creating one.

Value layouts of aggregations, in u64 words per CPU: count ``[n]``; sum ``[sum, n]``;
min/max ``[value, set]``; avg/stats ``[n, total]``; hist/lhist ``[bucket counts...]``.

Internal maps: ``out`` (ring buffer or perf event array for events), ``scratch`` (a
per-CPU array of one element holding big temporaries), ``zero`` (an array whose one value
is all zeroes, to initialise big per-CPU values), ``lost`` (per-CPU count of events the
output channel had no room for), ``stacksN`` (stack traces of N frames: one map per depth,
so that ``kstack(3)`` counts stacks that agree in their first three frames together).

Events
------
Every event starts with a u64 event id (its index in ``Compiled.events``), followed by its
arguments laid out as a tuple (``TupleT``) of their types.
"""
from tinytrace.lang.types import (UINT32, UINT64, AggT, TupleT)

DEFAULT_MAP_ENTRIES = 4096
STACK_MAP_ENTRIES = 4096
MAX_STACK_DEPTH = 127
RINGBUF_SIZE = 1 << 20
_max_stack = []


def stack_depth(depth):
    """The frames a stack map keeps for ``kstack(depth)``: at most what the kernel walks
    (``kernel.perf_event_max_stack``, 127 by default; a stack map with longer values
    cannot be created)."""
    if not _max_stack:
        try:
            with open("/proc/sys/kernel/perf_event_max_stack") as f:
                _max_stack.append(int(f.read().split()[0]))
        except (OSError, ValueError, IndexError):
            _max_stack.append(MAX_STACK_DEPTH)
    return max(1, min(depth, _max_stack[0]))


def stack_map_name(depth):
    """The assembly's name of the stack map for ``kstack(depth)`` (``stacks127``)."""
    return "stacks%d" % stack_depth(depth)


def asm_name(map_name):
    return "m." + map_name


class MapSpec:
    """One BPF map to create: ``name`` is the assembly's name for it (``m.x``, ``out``...),
    ``info`` the sema ``MapInfo`` for user maps."""

    __slots__ = ("name", "kind", "key_size", "value_size", "max_entries", "info", "key_ty",
                 "value_ty", "kernel_name", "existing")

    def __init__(self, name, kind, key_size, value_size, max_entries, info=None, key_ty=None,
                 value_ty=None, kernel_name=None, existing=None):
        self.name = name
        self.kind = kind
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.info = info
        self.key_ty = key_ty
        self.value_ty = value_ty
        self.kernel_name = kernel_name or name
        self.existing = existing    # a kernel map made elsewhere (Env.bind_map): not created

    @property
    def percpu(self):
        return self.kind.startswith("percpu")

    @property
    def agg(self):
        return self.value_ty if isinstance(self.value_ty, AggT) else None

    def __repr__(self):
        return "MapSpec(%s %s key=%d value=%d n=%d)" % (self.name, self.kind, self.key_size,
                                                       self.value_size, self.max_entries)


def user_map_spec(info, max_entries=DEFAULT_MAP_ENTRIES, lru=False):
    """The MapSpec of a sema ``MapInfo``; ``lru``: a keyed map that is not an aggregation
    is an LRU hash (config ``lru_maps``)."""
    value = info.value
    name = asm_name(info.name)
    kname = "tt_" + (info.name or "at")
    bound = getattr(info, "bound", None)
    if bound is not None:
        return MapSpec(name, bound.kind, bound.key_size, bound.value_size, bound.max_entries,
                       info, info.key, value, getattr(bound, "name", "") or kname,
                       existing=bound)
    if info.keyless:
        key_ty = UINT32
        if isinstance(value, AggT):
            kind = "percpu_array"
            entries = 1
        else:
            kind = "hash"
            entries = 1
    else:
        key_ty = info.key
        kind = "percpu_hash" if isinstance(value, AggT) else ("lru_hash" if lru else "hash")
        entries = max_entries
    return MapSpec(name, kind, max(key_ty.size, 1), max(value.size, 1), entries, info,
                   key_ty, value, kname)


class EventSpec:
    """One kind of event: ``kind`` (printf, print_value, print_map, clear, zero, exit,
    time, cat, system, join), ``layout`` (TupleT whose first element is the u64 id),
    ``data`` (kind-specific: the Format, the map name...)."""

    __slots__ = ("id", "kind", "layout", "data", "loc", "run_at")

    def __init__(self, id, kind, arg_types=(), data=None, loc=None, run_at=None):
        self.run_at = run_at    # "start"/"exit": sent by BEGIN/END; None: by a probe
        self.id = id
        self.kind = kind
        self.layout = TupleT([UINT64] + list(arg_types))
        self.data = data
        self.loc = loc

    @property
    def size(self):
        return self.layout.size

    def __repr__(self):
        return "EventSpec(%d %s %s)" % (self.id, self.kind, self.layout.describe())
