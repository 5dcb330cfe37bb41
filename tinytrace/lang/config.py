"""Run-time settings: map sizes, stack maps, output buffers, string size, stack mode.

Three places set them, the later winning (as in bpftrace, where the environment overrides
a script's ``config`` block):

1. ``Env(config={...})``: what an embedding program asks for (``tinytrace.script.Script``
   passes a tool's wishes this way);
2. the script's own block, before the first probe::

       config = { max_map_keys = 100000; stack_mode = perf; lru_maps = "@start" }

3. environment variables (only for the command line: ``Env(environ=os.environ)``).

========================  ============================  ========================================
setting                   environment                   meaning
========================  ============================  ========================================
``max_map_keys``          BPFTRACE_MAX_MAP_KEYS,        entries of each keyed map (default 4096)
                          BPFTRACE_MAP_KEYS_MAX
``max_strlen``            BPFTRACE_MAX_STRLEN,          bytes of a ``str()`` buffer (default 64)
                          BPFTRACE_STRLEN
``stack_mode``            BPFTRACE_STACK_MODE           default mode of ``kstack``/``ustack``:
                                                        bpftrace, perf or raw
``perf_rb_pages``         BPFTRACE_PERF_RB_PAGES        output buffer: pages per CPU (perf
                                                        buffer); the ring buffer gets pages x
                                                        CPUs, rounded up to a power of two
                                                        (default: 1 MiB ring / 64 pages)
``stack_map_keys``        TINYTRACE_STACK_MAP_KEYS      stacks each stack map holds (default:
                                                        max_map_keys); a full map loses stacks
``lru_maps``              TINYTRACE_LRU_MAPS            1: every keyed map that is not an
                                                        aggregation is an LRU hash (the oldest
                                                        entry makes room instead of an update
                                                        failing); or the names, ``"@start @ts"``
========================  ============================  ========================================

``lru_maps`` is for in-flight maps (``@start[tid] = nsecs`` deleted at the matching exit):
when exits are missed they fill up, and a full plain hash refuses new keys.
"""
import os

DEFAULT_MAP_KEYS = 4096
DEFAULT_STRLEN = 64
MAX_STRLEN = 1024
MAX_MAP_KEYS = 1 << 26
STACK_MODES = ("bpftrace", "perf", "raw")

# name -> (kind, environment variables, limits)
SETTINGS = {
    "max_map_keys": ("int", ("BPFTRACE_MAX_MAP_KEYS", "BPFTRACE_MAP_KEYS_MAX"),
                     (1, MAX_MAP_KEYS)),
    "max_strlen": ("int", ("BPFTRACE_MAX_STRLEN", "BPFTRACE_STRLEN"), (1, MAX_STRLEN)),
    "stack_mode": ("mode", ("BPFTRACE_STACK_MODE",), None),
    "perf_rb_pages": ("int", ("BPFTRACE_PERF_RB_PAGES",), (1, 1 << 16)),
    "stack_map_keys": ("int", ("TINYTRACE_STACK_MAP_KEYS",), (1, MAX_MAP_KEYS)),
    "lru_maps": ("lru", ("TINYTRACE_LRU_MAPS",), None),
}


class ConfigError(ValueError):
    """A bad setting: ``message`` says which and why."""


def check(name, value):
    """The value of setting ``name`` from ``value`` (an int or a text), or ConfigError."""
    spec = SETTINGS.get(name)
    if spec is None:
        from tinytrace.lang.suggest import hint
        raise ConfigError("unknown config setting '%s'%s (known: %s)" % (
            name, hint(name, list(SETTINGS)), ", ".join(sorted(SETTINGS))))
    kind, _, limits = spec
    if kind == "int":
        if isinstance(value, str):
            text = value.strip()
            if not text.isdigit():
                raise ConfigError("%s must be a whole number, not '%s'" % (name, value))
            value = int(text)
        lo, hi = limits
        if not lo <= value <= hi:
            raise ConfigError("%s must be from %d to %d, not %d" % (name, lo, hi, value))
        return value
    if kind == "mode":
        text = str(value).strip()
        if text not in STACK_MODES:
            raise ConfigError("%s must be one of %s, not '%s'" % (
                name, ", ".join(STACK_MODES), value))
        return text
    # lru: 0/1, or the names of maps
    if isinstance(value, int):
        if value not in (0, 1):
            raise ConfigError("lru_maps is 1 (every keyed map), 0, or map names such as "
                              "\"@start @ts\"")
        return bool(value)
    text = str(value).replace(",", " ").split()
    if text in (["0"], ["1"]):
        return text == ["1"]
    names = set()
    for t in text:
        if not t.startswith("@"):
            raise ConfigError("lru_maps names maps as @name, not '%s'" % t)
        names.add(t[1:])
    return frozenset(names)


class Settings(object):
    """The settings of one compilation (see the module docstring); attributes by name."""

    def __init__(self, config=None, environ=None):
        self.max_map_keys = DEFAULT_MAP_KEYS
        self.max_strlen = DEFAULT_STRLEN
        self.stack_mode = "bpftrace"
        self.perf_rb_pages = None
        self.stack_map_keys = None
        self.lru_maps = False
        self._from_env = set()
        for name, value in (config or {}).items():
            setattr(self, name, check(name, value))
        if environ is not None:
            for name, (_, variables, _) in SETTINGS.items():
                for var in variables:
                    text = environ.get(var)
                    if text:
                        try:
                            setattr(self, name, check(name, text))
                        except ConfigError as e:
                            from tinytrace.errors import UserError
                            raise UserError("%s: %s" % (var, e))
                        self._from_env.add(name)
                        break

    def apply(self, name, value):
        """A script's ``config`` block entry (the environment keeps precedence)."""
        value = check(name, value)
        if name not in self._from_env:
            setattr(self, name, value)

    def is_lru(self, map_name):
        lru = self.lru_maps
        if isinstance(lru, frozenset):
            return map_name in lru
        return bool(lru)

    def stack_entries(self):
        return self.stack_map_keys or self.max_map_keys

    def ringbuf_bytes(self):
        """The ring buffer's size: 1 MiB, or perf_rb_pages pages per CPU, a power of two."""
        if self.perf_rb_pages is None:
            return 1 << 20
        page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        try:
            from tinytrace.kernel import arch
            ncpu = len(arch.online_cpus())
        except Exception:
            ncpu = 1
        want = self.perf_rb_pages * page * max(ncpu, 1)
        size = page
        while size < want:
            size <<= 1
        return size

    def perf_pages(self):
        """Pages per CPU of a perf buffer (a power of two)."""
        n = self.perf_rb_pages or 64
        p = 1
        while p < n:
            p <<= 1
        return p
