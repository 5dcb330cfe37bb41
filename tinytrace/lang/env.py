"""What a compilation needs from the command line and the machine, fetched lazily.

``Env`` holds the options that change the meaning of a program (positional parameters,
``--unsafe``, ``cpid``, ``-p``'s ``pid``), the run-time settings (``settings``: map sizes,
string size, stack mode... see ``tinytrace.lang.config``) and answers the providers'
questions about the machine: which tracepoints exist and what their records look like
(from tracefs, through ``tinytrace.kernel.tracefs``), the kernel's BTF.  Tests substitute
a subclass with canned answers.

Embedding: ``Env(config={"max_map_keys": 65536, "lru_maps": "@start"})`` sets what a
script's ``config = { ... }`` block sets (the block itself still wins over it);
``Env(environ=os.environ)`` lets BPFTRACE_* variables override both (the command line).
``Env(maps={"@allowed": kernel_map})`` (or ``env.bind_map``) makes a script map an existing
kernel map -- one pinned by another program, say (``tinytrace.kernel.maps.Map``, e.g. from
``Map.open_pinned``): the program looks it up (``has_key(@allowed, cgroup)``) and may
update it, but the compiler does not create it and the runtime neither creates nor closes it;
its key and value types are unsigned integers of its key and value sizes.
"""
import os

from tinytrace.lang.config import DEFAULT_STRLEN, MAX_STRLEN, Settings
from tinytrace.lang.types import (ArrayT, IntT, PtrT, RecordField, RecordT, StrT, INT8,
                                  UINT8)


# Map kinds a program reads and writes with map_lookup_elem/map_update_elem.
BINDABLE_KINDS = frozenset(("hash", "lru_hash", "percpu_hash", "lru_percpu_hash", "array",
                            "percpu_array"))


def strlen_from_environ(environ=None):
    """bpftrace's BPFTRACE_STRLEN (or BPFTRACE_MAX_STRLEN): the size of str() buffers."""
    environ = os.environ if environ is None else environ
    from tinytrace.errors import UserError
    for var in ("BPFTRACE_STRLEN", "BPFTRACE_MAX_STRLEN"):
        text = environ.get(var)
        if text:
            if not text.isdigit() or not 1 <= int(text) <= MAX_STRLEN:
                raise UserError("%s must be a number from 1 to %d, not '%s'"
                                % (var, MAX_STRLEN, text))
            return int(text)
    return DEFAULT_STRLEN


class Env:
    def __init__(self, params=(), strlen=None, unsafe=False, cpid=None, pid=None,
                 config=None, environ=None, maps=None):
        self.params = list(params)
        cfg = dict(config or {})
        if strlen is not None:
            cfg["max_strlen"] = strlen
        self.settings = Settings(cfg, environ)
        self.unsafe = unsafe
        self.cpid = cpid            # None without -c; the child's pid once it exists
        self.pid = pid              # -p PID (uprobes and USDT attach to that process)
        # source locations of printf calls whose ring buffer records do not wake the
        # reader (``tinytrace.script.Script(deferred=...)``; codegen ``send``)
        self.deferred_wakeup = frozenset()
        self._tracepoints = None
        self._records = {}
        self._btf = False
        self.bound_maps = {}        # script map name (no "@") -> kernel Map, see bind_map
        for name, kernel_map in (maps or {}).items():
            self.bind_map(name, kernel_map)

    def bind_map(self, name, kernel_map):
        """Make the script's map ``name`` (``"@allowed"`` or ``"allowed"``) the existing
        ``kernel_map`` (anything with ``fd``, ``kind``, ``key_size``, ``value_size`` and
        ``max_entries``, as ``tinytrace.kernel.maps.Map``), which the caller owns.  Keys
        and values must be integers of 1, 2, 4 or 8 bytes (else ValueError), and the kind
        one a program can look up."""
        bare = name[1:] if name.startswith("@") else name
        if not bare or not all(c.isalnum() or c == "_" for c in bare) or bare[0].isdigit():
            raise ValueError("bind_map: %r is not a map name" % name)
        for what, size in (("key", kernel_map.key_size), ("value", kernel_map.value_size)):
            if size not in (1, 2, 4, 8):
                raise ValueError("bind_map: @%s: %s of %d bytes; only 1, 2, 4 or 8-byte "
                                 "integers are supported" % (bare, what, size))
        if kernel_map.kind not in BINDABLE_KINDS:
            raise ValueError("bind_map: @%s: a %s map cannot be looked up by a program "
                             "(kinds: %s)" % (bare, kernel_map.kind,
                                              ", ".join(sorted(BINDABLE_KINDS))))
        self.bound_maps[bare] = kernel_map

    @property
    def strlen(self):
        """The size of ``str()`` buffers (BPFTRACE_STRLEN, config max_strlen)."""
        return self.settings.max_strlen

    @property
    def target_pid(self):
        """The one process probes on programs are limited to: ``-p``, or ``-c``'s child."""
        return self.pid if self.pid is not None else (self.cpid or None)

    # -- BTF --------------------------------------------------------------------------------
    def btf(self):
        """The kernel's BTF (``tinytrace.kernel.btf``), or None without it (or with
        ``TINYTRACE_TARGET=btf=0``, which makes this kernel look like one without BTF)."""
        if self._btf is False and _target_disables("btf"):
            self._btf = None
        if self._btf is False:
            try:
                from tinytrace.kernel import btf
                self._btf = btf.vmlinux()
            except Exception:
                self._btf = None
        return self._btf

    def enum_value(self, name):
        """The value of kernel enum constant ``name`` (``TCP_ESTABLISHED``), or None."""
        b = self.btf()
        if b is None or not name or name[0].isdigit():
            return None
        try:
            hit = b.enum_value(name)
        except Exception:
            return None
        return hit[0] if hit is not None else None

    def task_type(self):
        """``struct task_struct *`` (the type of ``curtask``) when BTF describes it."""
        b = self.btf()
        if b is None:
            return None
        from tinytrace.lang import btftypes
        st = btftypes.find_struct(b, "task_struct")
        return PtrT(st, False) if st is not None else None

    # -- dynamic probes and hardware events ------------------------------------------------
    def kprobes_unavailable(self, probe):
        """None when this kernel can make kprobes, else the one-line reason (with the
        tracepoints that may stand in for ``probe``)."""
        from tinytrace.kernel import kprobes
        if kprobes.method() is None:
            return kprobes.unavailable_message(probe)
        return None

    def kernel_functions(self, pattern):
        """Sorted ``(name, module)`` of the probeable kernel functions matching pattern."""
        from tinytrace.kernel import kprobes
        return kprobes.matching_functions(pattern)

    def kernel_function_names(self):
        """Every traceable kernel function name (a set), or None when unknown."""
        from tinytrace.kernel import kprobes
        try:
            return set(n for n, _ in kprobes.available_functions())
        except Exception:
            return None

    def kernel_symbol(self, name):
        """The address of kernel text symbol ``name`` (/proc/kallsyms), or None."""
        from tinytrace.kernel import ksyms
        try:
            for a, t, _ in ksyms.kallsyms().lookup_all(name):
                if t in "Tt":
                    return a or None
        except Exception:
            return None
        return None

    def kernel_address(self, name):
        """The address of kernel symbol ``name`` (any kind), None when there is none, or
        the reason as text when addresses are hidden."""
        from tinytrace.kernel import ksyms
        try:
            return ksyms.kallsyms().lookup(name)
        except ksyms.KsymsError as e:
            return str(e)
        except Exception:
            return None

    def fentry_unavailable(self, func, retprobe=False):
        """None when a BPF trampoline (kfunc/kretfunc) can be attached to kernel function
        ``func`` here, else the one-line reason."""
        b = self.btf()
        f = b.func(func) if b is not None else None
        if f is None:
            return "the kernel's BTF does not describe %s" % func
        from tinytrace.lang.probes.kfunc import check_fentry
        return check_fentry(f.id, retprobe)

    def uprobes_unavailable(self):
        from tinytrace.kernel import uprobes
        if uprobes.method() is None:
            return ("this kernel cannot make uprobes (CONFIG_UPROBE_EVENTS is off): uprobe, "
                    "uretprobe and usdt probes are not available")
        return None

    def hardware_unavailable(self, event, probe):
        from tinytrace.kernel import hwevents
        try:
            hwevents.check(event, probe)
        except hwevents.HardwareUnavailable as e:
            return str(e)
        return None

    # -- tracepoints ------------------------------------------------------------------------
    def tracepoints(self):
        """{category: sorted [names]} of every tracepoint."""
        if self._tracepoints is None:
            from tinytrace.kernel import tracefs
            events = {}
            for cat, name in tracefs.all_events():
                events.setdefault(cat, []).append(name)
            for names in events.values():
                names.sort()
            self._tracepoints = events
        return self._tracepoints

    def tracepoint_format(self, cat, name):
        from tinytrace.kernel import tracefs
        return tracefs.event_format(cat, name)

    def tracepoint_record(self, cat, name):
        """The record of tracepoint cat:name as a ``RecordT`` (``args``)."""
        key = (cat, name)
        rec = self._records.get(key)
        if rec is None:
            fmt = self.tracepoint_format(cat, name)
            rec = record_from_format(fmt, user_pointers=(cat == "syscalls"))
            self._records[key] = rec
        return rec

    def tracepoint_id(self, cat, name):
        return self.tracepoint_format(cat, name).id


def _is_char(f):
    """char arrays are strings; u8/__u8 arrays (addresses, hashes) are integer arrays."""
    base = f.element_type.replace("const", " ").replace("unsigned", " ").replace(
        "signed", " ").split()
    return base == ["char"]


def field_type(f, user_pointers):
    """The language type of one tracefs ``Field``."""
    if f.data_loc or f.rel_loc:
        if f.is_string:
            return StrT(DEFAULT_STRLEN)
        return None  # dynamic arrays of other types: not readable yet
    if f.array_len is not None:
        if _is_char(f):
            return StrT(f.array_len or f.size)
        esize = f.element_size or 1
        if f.array_len == 0 or esize not in (1, 2, 4, 8):
            return ArrayT(UINT8, f.size)
        return ArrayT(IntT(esize * 8, f.signed), f.array_len)
    if f.is_pointer:
        text = f.element_type
        stars = text.count("*")
        base = text.replace("const", " ").replace("*", " ").split()
        base = " ".join(base)
        pointee = INT8 if base == "char" else (UINT8 if base in ("unsigned char", "u8") else
                                               None)
        for _ in range(stars - 1):
            pointee = PtrT(pointee, user_pointers)
        return PtrT(pointee, user_pointers)
    if f.size in (1, 2, 4, 8):
        return IntT(f.size * 8, f.signed)
    return ArrayT(UINT8, f.size)


def record_from_format(fmt, user_pointers=False):
    fields = []
    for f in list(fmt.common_fields) + list(fmt.fields):
        ty = field_type(f, user_pointers)
        if ty is None:
            continue
        loc = "rel" if f.rel_loc else ("data" if f.data_loc else None)
        fields.append(RecordField(f.name, f.offset, ty, loc, f.size))
    return RecordT("%s:%s" % (fmt.category, fmt.name), fields, fmt.size)


def _target_disables(feature):
    import os
    for item in os.environ.get("TINYTRACE_TARGET", "").split(","):
        name, _, value = item.strip().partition("=")
        if name == feature and value.strip() in ("0", "no", "off", "false"):
            return True
    return False
