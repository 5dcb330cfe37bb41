"""User-space symbols: which function of which file a process's address belongs to.

An address is looked up in ``/proc/PID/maps`` to find the mapping and its file; the file
offset (``addr - start + pgoff``) is turned into the file's own virtual address through its
``PT_LOAD`` segments, which takes care of PIE and shared-library load bias without computing
a bias at all; the ELF file's symbols do the rest.

Files are reached through ``/proc/PID/root`` (another mount namespace) or, for files deleted
since they were mapped, ``/proc/PID/map_files``.  Parsed files are shared between processes
(``tinytrace.kernel.elf.open`` caches by device, inode, size and mtime).  A stripped file
gets its symbols from a separate debug file when one is installed
(``/usr/lib/debug/.build-id/xx/yyyy.debug`` or ``.gnu_debuglink``) or from the xz-compressed
``.gnu_debugdata`` section some distributions add.  ``[vdso]`` is read from the process's
memory.  JIT code in anonymous memory is named from ``/tmp/perf-PID.map`` when the runtime
writes one.
"""
import bisect
import os

from tinytrace.errors import UserError

DEBUG_ROOT = "/usr/lib/debug"


class Mapping(object):
    """One line of /proc/PID/maps."""
    __slots__ = ("start", "end", "perms", "offset", "dev", "inode", "path", "deleted")

    def __init__(self, start, end, perms, offset, dev, inode, path):
        self.start, self.end, self.perms, self.offset = start, end, perms, offset
        self.dev, self.inode = dev, inode
        self.deleted = path.endswith(" (deleted)")
        self.path = path[:-10] if self.deleted else path

    @property
    def executable(self):
        return "x" in self.perms

    @property
    def is_file(self):
        return self.inode != 0 and self.path.startswith("/")

    def file_offset(self, addr):
        return addr - self.start + self.offset

    def __repr__(self):
        return "Mapping(%#x-%#x %s %#x %s%s)" % (self.start, self.end, self.perms, self.offset,
                                                 self.path, " (deleted)" if self.deleted else "")


def parse_maps(text):
    """Mappings from the text of a maps file (bytes or str), in address order."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        try:
            lo, hi = parts[0].split("-")
            m = Mapping(int(lo, 16), int(hi, 16), parts[1], int(parts[2], 16), parts[3],
                        int(parts[4]), parts[5] if len(parts) > 5 else "")
        except ValueError:
            continue
        out.append(m)
    out.sort(key=lambda m: m.start)
    return out


class ProcMaps(object):
    """The mappings of process ``pid`` (read at construction; ``refresh()`` re-reads)."""

    def __init__(self, pid, text=None):
        self.pid = pid
        self._text = text
        self.refresh()

    def refresh(self):
        text = self._text
        self._text = None
        if text is None:
            try:
                with open("/proc/%d/maps" % self.pid, "rb") as f:
                    text = f.read()
            except OSError as e:
                raise UserError("cannot read the memory map of PID %s: %s" % (
                    self.pid, e.strerror or e))
        self.mappings = parse_maps(text)
        self._starts = [m.start for m in self.mappings]

    def find(self, addr):
        """The mapping holding ``addr``, or None."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.mappings[i].end:
            return self.mappings[i]
        return None

    def mappings_of(self, path):
        """Mappings of the file at ``path`` (matched by device and inode when the path can
        be stat'ed, else by name)."""
        ident = None
        try:
            st = os.stat(path)
            ident = st.st_ino
        except OSError:
            pass
        out = []
        for m in self.mappings:
            if not m.is_file:
                continue
            if ident is not None and m.inode == ident and (
                    _dev_matches(m.dev, st.st_dev)):
                out.append(m)
            elif m.path == path:
                out.append(m)
        return out

    def address_of_file_offset(self, path, offset):
        """The address at which byte ``offset`` of file ``path`` is mapped, or None."""
        for m in self.mappings_of(path):
            if m.offset <= offset < m.offset + (m.end - m.start):
                return m.start + offset - m.offset
        return None


def _dev_matches(text, st_dev):
    try:
        major, minor = (int(x, 16) for x in text.split(":"))
    except ValueError:
        return True
    return os.major(st_dev) == major and os.minor(st_dev) == minor


class UserSymbol(object):
    """The answer for one address: ``name`` (None when unknown) and ``offset`` into it,
    ``module`` (the file's path as the process sees it, ``[vdso]``, ``[perf-map]`` ...) and
    ``file_offset`` of the address in that module."""
    __slots__ = ("addr", "name", "offset", "module", "file_offset")

    def __init__(self, addr, name, offset, module, file_offset):
        self.addr, self.name, self.offset = addr, name, offset
        self.module, self.file_offset = module, file_offset

    def __repr__(self):
        return "UserSymbol(%#x, %r, %r, %r)" % (self.addr, self.name, self.offset, self.module)


def format_symbol(sym, offset=True, module=False, hex_offset=False):
    """The text for one resolved address, bpftrace style: ``name+123`` (decimal offset;
    ``hex_offset`` gives BCC's ``name+0x7b``), `` (module)`` appended with ``module``.  An
    unresolved address prints as hex, with ``(module+0xfileoffset)`` when the mapping is
    known, ``([stack])``-style for named anonymous memory, ``([unknown])`` otherwise."""
    if sym.name is not None:
        s = sym.name
        if offset and sym.offset:
            s += ("+0x%x" if hex_offset else "+%d") % sym.offset
        if module and sym.module:
            s += " (%s)" % sym.module
        return s
    s = "0x%x" % sym.addr
    if module:
        if sym.module and sym.file_offset is not None:
            s += " (%s+0x%x)" % (sym.module, sym.file_offset)
        elif sym.module:
            s += " (%s)" % sym.module          # [stack], [heap], [anon:...]
        else:
            s += " ([unknown])"
    return s


class UserSymbols(object):
    """Symbolizer for one process.  Keep one per PID while tracing: the maps are re-read
    only when an address falls outside every known mapping (a library loaded since)."""

    def __init__(self, pid, maps_text=None):
        self.pid = pid
        try:
            self.maps = ProcMaps(pid, maps_text)
            self.exited = False
        except UserError:
            # Gone already (short-lived processes often are by the time their stacks are
            # printed): every address prints as hex, as other tracers do.
            self.maps = ProcMaps(pid, text="")
            self.exited = True
        self.identity = _identity(pid)
        self._ns_same = None
        self._vdso = None
        self._perf_map = None
        self._memo = {}

    def resolve(self, addr):
        """A ``UserSymbol`` for ``addr`` (never None; ``.name`` is None when unknown)."""
        hit = self._memo.get(addr)
        if hit is not None:
            return hit
        m = self.maps.find(addr)
        if m is None:
            try:
                self.maps.refresh()
            except UserError:
                pass
            m = self.maps.find(addr)
        res = self._resolve_in(addr, m)
        if len(self._memo) < 100000:
            self._memo[addr] = res
        return res

    def symbolize(self, addr, offset=True, module=False, hex_offset=False):
        return format_symbol(self.resolve(addr), offset, module, hex_offset)

    def _resolve_in(self, addr, m):
        if m is None:
            return UserSymbol(addr, None, None, None, None)
        if m.path == "[vdso]":
            img = self._vdso_image(m)
            if img is not None:
                hit = _symbolize_elf([img], img.offset_to_vaddr(addr - m.start))
                if hit:
                    return UserSymbol(addr, hit[0], hit[1], "[vdso]", addr - m.start)
            return UserSymbol(addr, None, None, "[vdso]", addr - m.start)
        if m.is_file and m.path not in ("/dev/zero",) and not m.path.startswith("/memfd:"):
            foff = m.file_offset(addr)
            sources = self._sources(m)
            if sources:
                # The mapped file itself (last source) knows its segments; debug files
                # share its addresses but have no file image.
                vaddr = sources[-1].offset_to_vaddr(foff)
                if vaddr is not None:
                    hit = _symbolize_elf(sources, vaddr)
                    if hit:
                        return UserSymbol(addr, hit[0], hit[1], m.path, foff)
            if sources:
                return UserSymbol(addr, None, None, m.path, foff)
        # Anonymous (or shared-anonymous, memfd) memory: JIT code named by the runtime.
        hit = self._perf_map_lookup(addr)
        if hit:
            return UserSymbol(addr, hit[0], hit[1], "[perf-map]", None)
        return UserSymbol(addr, None, None, m.path or None, None)

    # -- files -------------------------------------------------------------------------------

    def file_path(self, m):
        """A path through which mapping ``m``'s file can be opened from here."""
        if not m.deleted:
            if self._same_ns():
                p = m.path
            else:
                p = "/proc/%d/root%s" % (self.pid, m.path)
            try:
                st = os.stat(p)
                if st.st_ino == m.inode:
                    return p
            except OSError:
                pass
        # Deleted, replaced, or unreachable by name: the kernel's own handle on it.
        return "/proc/%d/map_files/%x-%x" % (self.pid, m.start, m.end)

    def _same_ns(self):
        if self._ns_same is None:
            try:
                self._ns_same = os.stat("/proc/%d/ns/mnt" % self.pid).st_ino == \
                    os.stat("/proc/self/ns/mnt").st_ino
            except OSError:
                self._ns_same = True
        return self._ns_same

    def _sources(self, m):
        from tinytrace.kernel import elf
        try:
            f = elf.open(self.file_path(m))
        except (elf.ElfError, OSError):
            return []
        return symbol_sources(f)

    def _vdso_image(self, m):
        if self._vdso is None:
            self._vdso = False
            from tinytrace.kernel import elf
            data = _read_memory(self.pid, m.start, m.end - m.start)
            if data:
                img = _vdso_cache.get(data)
                if img is None:
                    try:
                        img = elf.ElfFile(data=data, name="[vdso]")
                        _vdso_cache[data] = img
                    except elf.ElfError:
                        img = None
                self._vdso = img or False
        return self._vdso or None

    def _perf_map_lookup(self, addr):
        if self._perf_map is None:
            self._perf_map = _load_perf_map(self.pid)
        starts, ends, names = self._perf_map
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < ends[i]:
            return names[i], addr - starts[i]
        return None


_vdso_cache = {}


def _symbolize_elf(sources, vaddr):
    for f in sources:
        hit = f.symbolize(vaddr)
        if hit:
            return hit
    return None


def symbol_sources(f):
    """The ELF files to ask for ``f``'s symbols, best first: a debug file with a full
    symbol table when ``f`` is stripped, the MiniDebugInfo image, then ``f`` itself."""
    cached = getattr(f, "_symbol_sources", None)
    if cached is not None:
        return cached
    out = []
    if not f.has_symtab:
        dbg = _debug_file(f)
        if dbg is not None:
            out.append(dbg)
        mini = _minidebuginfo(f)
        if mini is not None:
            out.append(mini)
    out.append(f)
    f._symbol_sources = out
    return out


def _debug_file(f):
    from tinytrace.kernel import elf
    cands = []
    bid = f.build_id
    if bid and len(bid) > 2:
        cands.append(os.path.join(DEBUG_ROOT, ".build-id", bid[:2], bid[2:] + ".debug"))
    link = f.debuglink
    if link and f.path:
        d = os.path.dirname(os.path.realpath(f.path))
        cands += [os.path.join(d, link[0]), os.path.join(d, ".debug", link[0]),
                  DEBUG_ROOT + os.path.join(d, link[0])]
    for p in cands:
        if os.path.isfile(p) and p != f.path:
            try:
                d = elf.open(p)
            except elf.ElfError:
                continue
            if d.has_symtab and (not bid or d.build_id in (None, bid)):
                return d
    return None


def _minidebuginfo(f):
    sec = f.section(".gnu_debugdata")
    if sec is None:
        return None
    try:
        import lzma
        from tinytrace.kernel import elf
        return elf.ElfFile(data=lzma.decompress(f.section_data(sec)),
                           name=(f.path or "") + "[.gnu_debugdata]")
    except Exception:
        return None


def _read_memory(pid, addr, size):
    try:
        fd = os.open("/proc/%d/mem" % pid, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.pread(fd, size, addr)
    except OSError:
        return None
    finally:
        os.close(fd)


def _ns_pid(pid):
    """The PID a process has inside its own PID namespace (perf maps are named by it)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return pid


def _load_perf_map(pid):
    """(starts, ends, names) from /tmp/perf-PID.map (via the process's root)."""
    nspid = _ns_pid(pid)
    rows = []
    for path in ("/proc/%d/root/tmp/perf-%d.map" % (pid, nspid), "/tmp/perf-%d.map" % pid):
        try:
            with open(path, "rb") as f:
                for line in f:
                    parts = line.rstrip(b"\n").split(b" ", 2)
                    if len(parts) == 3:
                        try:
                            a, n = int(parts[0], 16), int(parts[1], 16)
                        except ValueError:
                            continue
                        rows.append((a, a + n, parts[2].decode("utf-8", "replace")))
            break
        except OSError:
            continue
    rows.sort()
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def _identity(pid):
    """What tells a process apart from a later one with the same PID, or from itself before
    an exec: its start time and the executable's inode."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
        start = stat[stat.rfind(b")") + 2:].split()[19]
    except (OSError, IndexError):
        return None
    try:
        ino = os.stat("/proc/%d/exe" % pid).st_ino
    except OSError:
        ino = None
    return start, ino


_per_pid = {}
_CHECK_EVERY = 1.0


def for_pid(pid):
    """A shared ``UserSymbols`` per PID (maps re-read on demand).  At most once a second it
    checks that the PID still names the same process image (not a reused PID, not an exec
    since) and starts afresh when it does not."""
    import time
    now = time.monotonic()
    hit = _per_pid.get(pid)
    if hit is not None:
        s, checked = hit
        if now - checked < _CHECK_EVERY:
            return s
        if s.exited or _identity(pid) == s.identity:
            _per_pid[pid] = (s, now)
            return s
    if len(_per_pid) > 256:
        _per_pid.clear()
    s = UserSymbols(pid)
    _per_pid[pid] = (s, now)
    return s


def forget(pid):
    """Drop the symbolizer of a process that has exited."""
    _per_pid.pop(pid, None)
