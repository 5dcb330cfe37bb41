"""tracefs: where it is, the tracepoints it lists, and their ``format`` files as typed fields.

Finding it: a ``tracefs`` entry in /proc/mounts (usually /sys/kernel/tracing), else the
``tracing`` folder of a mounted debugfs, else -- when we are root -- mounting tracefs on
/sys/kernel/tracing ourselves.  Without it and without root the error says what to run.

Format files are parsed into ``Field`` objects using the kernel's own ``offset``, ``size`` and
``signed`` values, never sizes derived from the C type name: the declared type can be wrong
(``int dfd`` is 8 bytes in sys_enter_openat).  ``__data_loc`` fields are u32 words holding
``(length << 16) | offset`` of a variable part, with the offset counted from the start of the
record; ``__rel_loc`` ones (5.18+) count it from the end of the field itself.

Writing (kprobe_events and friends) goes through ``write()``, which opens with
O_WRONLY|O_APPEND: Python's "a" mode seeks to the end after opening, which tracefs refuses
with EINVAL, and "w" truncates, which for kprobe_events would delete every probe.
"""
import os

from tinytrace.errors import KernelError, PrivilegeError, UserError

DEFAULT = "/sys/kernel/tracing"
DEBUGFS_DEFAULT = "/sys/kernel/debug/tracing"


class EventNotFound(UserError):
    """A tracepoint that this kernel does not have."""


_root = None


def _mounts():
    """(mountpoint, fstype) pairs from /proc/mounts, octal escapes decoded."""
    out = []
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    out.append((_unescape(parts[1]), parts[2]))
    except OSError:
        pass
    return out


def _unescape(text):
    """/proc/mounts writes space, tab, newline and backslash as octal escapes (\\040)."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and len(text[i + 1:i + 4]) == 3 and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(c)
            i += 1
    return "".join(out)


def find():
    """The tracefs folder if it is mounted (or reachable through debugfs), else None."""
    mounts = _mounts()
    tracefs = [mp for mp, fs in mounts if fs == "tracefs"]
    # the canonical place first, then any other tracefs mount
    for mp in sorted(tracefs, key=lambda p: (p != DEFAULT, p != DEBUGFS_DEFAULT, p)):
        if os.path.isdir(os.path.join(mp, "events")):
            return mp
    for mp in tracefs:
        if os.path.isdir(mp) and not os.access(mp, os.R_OK | os.X_OK):
            return mp   # mounted but closed to us: reading it will say "run as root"
    for mp, fs in mounts:
        if fs == "debugfs":
            p = os.path.join(mp, "tracing")
            if os.path.isdir(os.path.join(p, "events")):  # may automount tracefs here
                return p
    for p in (DEFAULT, DEBUGFS_DEFAULT):
        if os.path.isdir(os.path.join(p, "events")):
            return p
    return None


def root():
    """The tracefs folder, mounting tracefs on /sys/kernel/tracing when it is absent and we
    are root.  Cached for the process."""
    global _root
    if _root is not None:
        return _root
    path = find()
    if path is None:
        path = _mount()
    _root = path
    return path


def _mount():
    if os.geteuid() != 0:
        raise PrivilegeError("tracefs is not mounted and only root may mount it: run tinytrace "
                             "as root, or `mount -t tracefs nodev %s` first" % DEFAULT)
    if not os.path.isdir(DEFAULT):
        raise KernelError("tracefs is not available: %s does not exist (is the kernel built "
                          "with CONFIG_FTRACE / CONFIG_TRACING?)" % DEFAULT)
    from tinytrace.kernel import libc
    try:
        libc.mount("nodev", DEFAULT, "tracefs")
    except OSError as e:
        raise KernelError("cannot mount tracefs on %s: %s (try `mount -t tracefs nodev %s`)"
                          % (DEFAULT, e.strerror, DEFAULT))
    if not os.path.isdir(os.path.join(DEFAULT, "events")):
        raise KernelError("tracefs mounted on %s has no events/ folder" % DEFAULT)
    return DEFAULT


def path(*parts):
    return os.path.join(root(), *parts)


def _read(p, what):
    try:
        with open(p) as f:
            return f.read()
    except FileNotFoundError:
        raise
    except PermissionError:
        raise PrivilegeError("cannot read %s (%s): run tinytrace as root" % (p, what))


def write(relpath, text):
    """Append ``text`` to a tracefs file (relative to the root, or absolute)."""
    p = relpath if os.path.isabs(relpath) else path(relpath)
    data = text.encode() if isinstance(text, str) else text
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def exists(category, name):
    return os.path.isdir(path("events", category, name))


def event_id(category, name):
    """The numeric id of tracepoint ``category:name`` (for PERF_TYPE_TRACEPOINT)."""
    p = path("events", category, name, "id")
    try:
        return int(_read(p, "tracepoint id").strip())
    except FileNotFoundError:
        raise EventNotFound("tracepoint %s:%s not found (no %s)"
                            % (category, name, os.path.dirname(p)))


# -- formats --------------------------------------------------------------------------------

class Field(object):
    """One field of a tracepoint record.

    name, type (the declared C type, e.g. ``const char *``, ``__data_loc char[]``),
    offset, size, signed (from the format file), array_len (int for ``x[N]`` fields, None
    otherwise; 0 for the ``[]`` of a __data_loc), data_loc / rel_loc (variable-length data
    reached through a u32 locator), element_type (the type without array/locator parts).
    """

    __slots__ = ("name", "type", "offset", "size", "signed", "array_len", "data_loc",
                 "rel_loc", "element_type")

    def __init__(self, name, type, offset, size, signed, array_len=None, data_loc=False,
                 rel_loc=False, element_type=None):
        self.name = name
        self.type = type
        self.offset = offset
        self.size = size
        self.signed = signed
        self.array_len = array_len
        self.data_loc = data_loc
        self.rel_loc = rel_loc
        self.element_type = element_type if element_type is not None else type

    @property
    def common(self):
        return self.name.startswith("common_")

    @property
    def is_pointer(self):
        return self.element_type.rstrip().endswith("*")

    @property
    def is_string(self):
        """A char array or a __data_loc/__rel_loc char[]: printable as a string."""
        base = self.element_type.replace("const ", "").replace("unsigned ", "").strip()
        return base in ("char", "u8", "__u8", "s8", "signed char") and (
            self.array_len is not None or self.data_loc or self.rel_loc)

    @property
    def element_size(self):
        if self.data_loc or self.rel_loc:
            return None
        if self.array_len:
            return self.size // self.array_len
        return self.size

    def __repr__(self):
        extra = ""
        if self.array_len is not None:
            extra = "[%d]" % self.array_len
        if self.data_loc:
            extra += " data_loc"
        if self.rel_loc:
            extra += " rel_loc"
        return "<Field %s %s%s @%d size %d %s>" % (self.type, self.name, extra, self.offset,
                                                   self.size, "signed" if self.signed else
                                                   "unsigned")

    def __eq__(self, other):
        return isinstance(other, Field) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__)

    def __hash__(self):
        return hash((self.name, self.offset, self.size))


class EventFormat(object):
    """A parsed ``format`` file: category, name, id, common_fields, fields (the event's own,
    in order), print_fmt (raw text), size (bytes up to the end of the last fixed field)."""

    def __init__(self, category, name, id, common_fields, fields, print_fmt):
        self.category = category
        self.name = name
        self.id = id
        self.common_fields = common_fields
        self.fields = fields
        self.print_fmt = print_fmt
        allf = common_fields + fields
        self.size = max((f.offset + f.size for f in allf), default=0)

    def field(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        for f in self.common_fields:
            if f.name == name:
                return f
        return None

    def __iter__(self):
        return iter(self.fields)

    def __repr__(self):
        return "<EventFormat %s:%s id=%s %d fields>" % (self.category, self.name, self.id,
                                                        len(self.fields))


_patterns = None


def _re():
    """Format-line patterns, compiled on first use (``re`` is not needed to find tracefs or
    read an event id)."""
    global _patterns
    if _patterns is None:
        import re
        _patterns = (
            re.compile(r"^\s*field:(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);"
                       r"(?:\s*signed:(?P<signed>-?\d+);)?"),
            re.compile(r"^(?P<base>.*?)\s*\[(?P<len>[^\]]*)\]\s*$"),
            re.compile(r"^(?P<type>.*?)\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*$"),
        )
    return _patterns


def _decl(decl):
    """'const char * filename' -> (type, name, array_len_text or None)."""
    _, array_re, name_re = _re()
    decl = decl.strip()
    arr = None
    m = array_re.match(decl)
    if m and not m.group("base").endswith(("__data_loc", "__rel_loc")):
        decl, arr = m.group("base"), m.group("len").strip()
    m = name_re.match(decl)
    if not m:
        return decl, "", arr
    return m.group("type").strip(), m.group("name"), arr


def parse_field(line):
    """A ``Field`` from one ``field:...`` line, or None for other lines."""
    m = _re()[0].match(line)
    if not m:
        return None
    offset, size = int(m.group("off")), int(m.group("size"))
    signed = m.group("signed") == "1"
    ctype, name, arr = _decl(m.group("decl"))
    data_loc = rel_loc = False
    element = ctype
    array_len = None
    for kw in ("__data_loc", "__rel_loc"):
        if ctype.startswith(kw):
            data_loc = kw == "__data_loc"
            rel_loc = kw == "__rel_loc"
            element = ctype[len(kw):].strip()
            if element.endswith("[]"):
                element = element[:-2].strip()
            array_len = 0
    if arr is not None:
        if arr.isdigit():
            array_len = int(arr)
        elif arr == "":
            array_len = 0
        else:
            # a symbolic length (e.g. TASK_COMM_LEN): derive it from the element's size
            esize = _scalar_size(element)
            array_len = size // esize if esize else None
    return Field(name, ctype, offset, size, signed, array_len, data_loc, rel_loc, element)


_SCALARS = {"char": 1, "signed char": 1, "unsigned char": 1, "u8": 1, "s8": 1, "__u8": 1,
            "__s8": 1, "bool": 1, "short": 2, "unsigned short": 2, "u16": 2, "s16": 2,
            "__u16": 2, "__s16": 2, "int": 4, "unsigned int": 4, "u32": 4, "s32": 4,
            "__u32": 4, "__s32": 4, "u64": 8, "s64": 8, "__u64": 8, "__s64": 8,
            "unsigned long long": 8, "long long": 8}


def _scalar_size(ctype):
    return _SCALARS.get(ctype.replace("const ", "").strip())


def parse_format(text, category=""):
    """An ``EventFormat`` from the text of a ``format`` file."""
    name = ""
    eid = None
    common, fields = [], []
    print_fmt = ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("name:"):
            name = s[5:].strip()
        elif s.startswith("ID:"):
            try:
                eid = int(s[3:].strip())
            except ValueError:
                eid = None
        elif s.startswith("print fmt:"):
            print_fmt = s[len("print fmt:"):].strip()
        elif s.startswith("field:"):
            f = parse_field(s)
            if f is not None:
                (common if f.common else fields).append(f)
    return EventFormat(category, name, eid, common, fields, print_fmt)


_formats = {}


def event_format(category, name):
    """The parsed format of tracepoint ``category:name`` (cached per process)."""
    key = (category, name)
    fmt = _formats.get(key)
    if fmt is None:
        p = path("events", category, name, "format")
        try:
            text = _read(p, "tracepoint format")
        except FileNotFoundError:
            raise EventNotFound("tracepoint %s:%s not found (no %s)"
                                % (category, name, os.path.dirname(p)))
        fmt = parse_format(text, category)
        _formats[key] = fmt
    return fmt


# -- listing --------------------------------------------------------------------------------

def all_events():
    """Every tracepoint as (category, name), from available_events (or the events/ tree)."""
    try:
        text = _read(path("available_events"), "event list")
        out = []
        for line in text.splitlines():
            cat, sep, name = line.strip().partition(":")
            if sep:
                out.append((cat, name))
        return out
    except (FileNotFoundError, PrivilegeError):
        pass
    out = []
    base = path("events")
    try:
        cats = sorted(os.listdir(base))
    except OSError:
        return out
    for cat in cats:
        d = os.path.join(base, cat)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if os.path.isfile(os.path.join(d, name, "id")):
                out.append((cat, name))
    return out


def events(pattern="*"):
    """Sorted (category, name) pairs matching a glob.  ``cat:name`` patterns match both
    parts ('sched:sched_*', '*:*open*'); a pattern without ':' matches the event name in
    any category."""
    from fnmatch import fnmatchcase
    if ":" in pattern:
        cpat, _, npat = pattern.partition(":")
        got = [(c, n) for c, n in all_events() if fnmatchcase(c, cpat) and fnmatchcase(n, npat)]
    else:
        got = [(c, n) for c, n in all_events() if fnmatchcase(n, pattern)]
    return sorted(set(got))
