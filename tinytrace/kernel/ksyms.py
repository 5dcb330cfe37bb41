"""Kernel symbols from ``/proc/kallsyms``: address -> ``name+offset`` for kernel stacks and
``ksym()``, name -> address for probes.

The file has ~120k-200k lines and is read only on first use.  Decoding every line into
Python objects would cost more than the kernel takes to produce the text, so the text is
kept as one bytes object and searched in place:

* vmlinux's own symbols come first and are sorted by address (the kernel's build sorts
  them), so an address is found by binary search straight over the text's bytes;
* the lines after them (modules, ftrace trampolines, BPF programs; each tagged
  ``\\t[module]``) are not sorted, are comparatively few, and go into sorted arrays;
* a name is found with one ``bytes.find`` for ``" name\\n"`` (or ``" name\\t"``).

When ``kptr_restrict`` hides addresses every line reads 0; ``hidden`` says so.  On x86 the
first lines are per-CPU variables at small addresses (0 and up) -- those do not mean hidden.
"""
from tinytrace.errors import KernelError

KALLSYMS = "/proc/kallsyms"


class KsymsError(KernelError):
    """/proc/kallsyms cannot be read, or its addresses are hidden."""


class KernelSymbols(object):
    """The symbols of the running kernel (or of ``data``, a kallsyms text, for tests)."""

    def __init__(self, path=KALLSYMS, data=None):
        self.path = path
        self._data = data
        self._loaded = False
        self._memo = {}

    # -- loading --------------------------------------------------------------------------

    def _load(self):
        if self._loaded:
            return
        data = self._data
        if data is None:
            data = _read_all(self.path)
        if data and not data.endswith(b"\n"):
            data += b"\n"
        self._data = data
        self._width = data.find(b" ") if data else 0
        # Split: vmlinux's sorted part, then the tagged tail.
        tag = data.find(b"\t[")
        core_end = len(data) if tag < 0 else data.rfind(b"\n", 0, tag) + 1
        self._core_end = core_end
        self._core_lines = None
        self._build_tail(core_end)
        self._hidden = self._compute_hidden()
        self._loaded = True

    def _build_tail(self, start):
        """Sorted (address, line start) arrays over the lines after vmlinux's."""
        from array import array
        data = self._data
        addrs, starts = [], []
        pos, end = start, len(data)
        w = self._width
        while pos < end:
            nl = data.find(b"\n", pos)
            if nl < 0:
                nl = end
            if nl > pos + w:
                try:
                    addrs.append(int(data[pos:pos + w], 16))
                    starts.append(pos)
                except ValueError:
                    pass
            pos = nl + 1
        order = sorted(range(len(addrs)), key=addrs.__getitem__)
        self._tail_addrs = array("Q", [addrs[i] for i in order])
        self._tail_starts = array("Q", [starts[i] for i in order])

    def _compute_hidden(self):
        data = self._data
        if not data:
            return True
        last_core = data.rfind(b"\n", 0, self._core_end - 1) + 1 if self._core_end else 0
        top = self._addr_at(last_core) if self._core_end else 0
        if self._tail_addrs:
            top = max(top, self._tail_addrs[-1])
        return top == 0

    # -- line access ------------------------------------------------------------------------

    def _addr_at(self, line_start):
        return int(self._data[line_start:line_start + self._width], 16)

    def _line_at(self, line_start):
        """``(address, type letter, name, module or None)`` of the line starting there."""
        data = self._data
        nl = data.find(b"\n", line_start)
        line = data[line_start:nl if nl >= 0 else len(data)].decode("utf-8", "surrogateescape")
        parts = line.split(None, 2)
        module = None
        name = parts[2] if len(parts) > 2 else ""
        if "\t" in name:
            name, _, rest = name.partition("\t")
            module = rest.strip().strip("[]") or None
        return int(parts[0], 16), parts[1] if len(parts) > 1 else "?", name, module

    def _core_floor(self, addr):
        """Start of the last vmlinux line whose address is <= addr, or -1: a binary search
        over the bytes of the sorted part, landing on line starts."""
        data = self._data
        lo, hi = 0, self._core_end
        if hi == 0 or self._addr_at(0) > addr:
            return -1
        # Invariant: line ``lo`` has address <= addr; every line starting at >= hi has a
        # greater address.  Each round moves one bound to a line start strictly between.
        while True:
            mid = (lo + hi) // 2
            nl = data.find(b"\n", mid, hi)
            ls = nl + 1
            if nl < 0 or ls >= hi:
                nl = data.rfind(b"\n", lo, mid)
                ls = nl + 1
                if nl < 0 or ls <= lo:
                    return lo
            if self._addr_at(ls) <= addr:
                lo = ls
            else:
                hi = ls

    # -- public API -------------------------------------------------------------------------------

    @property
    def hidden(self):
        """True when every address reads 0 (kptr_restrict, or no CAP_SYSLOG)."""
        self._load()
        return self._hidden

    def __len__(self):
        self._load()
        return self._data.count(b"\n")

    def resolve(self, addr):
        """``(name, offset, module)`` of the symbol at or before ``addr`` (module is None
        for vmlinux), or None when no symbol precedes it or addresses are hidden."""
        hit = self._memo.get(addr)
        if hit is not None or addr in self._memo:
            return hit
        self._load()
        res = None
        if not self._hidden:
            best = None
            ls = self._core_floor(addr)
            if ls >= 0:
                best = (self._addr_at(ls), ls)
            import bisect
            i = bisect.bisect_right(self._tail_addrs, addr) - 1
            if i >= 0 and (best is None or self._tail_addrs[i] > best[0]):
                best = (self._tail_addrs[i], self._tail_starts[i])
            if best is not None:
                ls = self._prefer(best[1], best[0])
                a, _, name, module = self._line_at(ls)
                if a:
                    res = (name, addr - a, module)
        if len(self._memo) < 65536:
            self._memo[addr] = res
        return res

    def _prefer(self, ls, addr):
        """Among lines at the same address, prefer a global text symbol (``T``) over the
        others, then the first listed."""
        data = self._data
        first = ls
        # walk back over lines of the same address (aliases such as _text/_stext)
        while first > 0:
            prev = data.rfind(b"\n", 0, first - 1) + 1
            if prev == first or self._addr_at(prev) != addr:
                break
            first = prev
        best = None
        pos = first
        for _ in range(32):
            if pos >= len(data) or self._addr_at(pos) != addr:
                break
            w = self._width
            t = data[pos + w + 1:pos + w + 2]
            if best is None or (t == b"T" and data[best + w + 1:best + w + 2] != b"T"):
                best = pos
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            pos = nl + 1
        return best if best is not None else ls

    def symbolize(self, addr, offset=True, module=False, hex_offset=False):
        """``"name+26"`` (bpftrace's decimal offset; ``hex_offset`` gives BCC's
        ``"name+0x1a"``), ``"name"`` without ``offset``, with ``" [module]"`` (``module``);
        a hex address when nothing resolves."""
        r = self.resolve(addr)
        if r is None:
            return "0x%x" % addr
        name, off, mod = r
        s = name
        if offset and off:
            s += ("+0x%x" if hex_offset else "+%d") % off
        if module and mod:
            s += " [%s]" % mod
        return s

    def lookup_all(self, name):
        """Every ``(address, type letter, module)`` of symbol ``name``."""
        self._load()
        data = self._data
        raw = name.encode("utf-8", "surrogateescape")
        out = []
        for pat in (b" " + raw + b"\n", b" " + raw + b"\t"):
            at = data.find(pat)
            while at >= 0:
                ls = data.rfind(b"\n", 0, at) + 1
                # the match must be the name field: "ADDR T name"
                if at == ls + self._width + 2:
                    a, t, n, mod = self._line_at(ls)
                    if n == name:
                        out.append((a, t, mod))
                at = data.find(pat, at + 1)
        return out

    def lookup(self, name, module=None):
        """The address of symbol ``name`` (a text symbol if there are several; in
        ``module`` when given), or None."""
        best = None
        for a, t, mod in self.lookup_all(name):
            if module is not None and mod != module:
                continue
            rank = 0 if t in "Tt" else 1
            if best is None or rank < best[0]:
                best = (rank, a)
        if best is None:
            return None
        if self.hidden:
            raise KsymsError("kernel addresses are hidden (kernel.kptr_restrict=%s); run "
                             "as root or set kernel.kptr_restrict=0" % _kptr_restrict())
        return best[1]

    def module_of(self, addr):
        r = self.resolve(addr)
        return r[2] if r else None

    def names(self, types="Tt"):
        """Every symbol name of the given type letters (for glob matching).  Slow path:
        decodes every line."""
        self._load()
        out = []
        w = self._width
        for line in self._data.split(b"\n"):
            if len(line) > w + 3 and chr(line[w + 1]) in types:
                name = line[w + 3:].split(b"\t", 1)[0]
                out.append(name.decode("utf-8", "surrogateescape"))
        return out


def _read_all(path):
    import os
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise KsymsError("cannot read %s: %s" % (path, e.strerror or e))
    chunks = []
    try:
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _kptr_restrict():
    try:
        with open("/proc/sys/kernel/kptr_restrict") as f:
            return f.read().strip()
    except OSError:
        return "?"


_kernel = None


def kallsyms():
    """The running kernel's symbols, shared by the whole process (read on first use)."""
    global _kernel
    if _kernel is None:
        _kernel = KernelSymbols()
    return _kernel


def reload():
    """Forget the loaded symbols (after modules or BPF programs came or went)."""
    global _kernel
    _kernel = None
