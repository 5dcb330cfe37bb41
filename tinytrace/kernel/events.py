"""Event readers: a perf buffer (per-CPU rings behind a perf_event_array) and a BPF ring
buffer (one shared ring).  Both wait with epoll and never spin.

API (both): ``Reader(map, on_event, on_lost=None, ...)``; ``poll(timeout_ms)`` waits for
events (``None``/negative: forever, 0: don't wait), hands each record's payload to
``on_event(data)`` as ``bytes``, and returns how many it delivered; ``drain()`` reads
whatever is there without waiting (``drain(recheck_lost=False)``: without reading the lost
counter more often than ``poll()`` does); ``lost`` is the running total of lost records and
``on_lost(count)`` hears about each new loss; ``fileno()`` is the epoll fd, for callers that
wait on several things; ``close()`` frees rings, events and fds.

Perf buffer.  Each CPU gets a PERF_COUNT_SW_BPF_OUTPUT event (its fd stored in the map at
the CPU's index) and a mapping of 1 metadata page + 2^n data pages.  The kernel appends
records and publishes ``data_head``; we read head, copy the whole [tail, head) span in one or
two slices (two when it wraps past the end of the ring), publish ``data_tail`` right away so
the kernel can reuse the space while we dispatch, and then walk the copy:
PERF_RECORD_SAMPLE carries ``u32 size`` + raw payload (the kernel pads it so that the record
stays 8-byte aligned, so ``data`` may end in up to 7 zero bytes beyond what the program
wrote), PERF_RECORD_LOST carries the number of records the kernel had to drop.

Ring buffer (Linux 5.8).  One consumer page (read/write) holds ``consumer_pos``; the
producer page (read-only) holds ``producer_pos`` and is followed by the data area mapped
twice in a row, so a record that wraps is still contiguous.  Each record starts with an
8-byte header: ``u32 len`` whose bit 31 means "still being written" (stop there) and bit 30
"discarded" (skip it), then the payload, padded to 8 bytes.  The kernel does not count
records it could not reserve; a program that wants losses reported increments a counter
(``lost_counter=(map, key)``: a u64 in an array or hash map) that the reader watches.

Signals: a signal that arrives just before epoll_wait() starts would not interrupt it, and
a blocking ``poll()`` would sleep through Ctrl-C.  ``set_signal_wakeup(fd)`` (called by
``tinytrace.session.Session``, which points ``signal.set_wakeup_fd`` at a pipe) names an fd
the C-level signal handler writes to; every reader watches it, so epoll returns and the
Python-level handler runs (raising KeyboardInterrupt or the session's Terminated).

Memory ordering: the head/producer position is read, then ``libc.fence()`` (a no-op on
x86/s390x, a real barrier elsewhere), then the data; and the data is copied out before the
fence that precedes publishing the new tail/consumer position.
"""
import os
import select
import struct
import time

from tinytrace.kernel import libc, perf
from tinytrace.kernel.libc import ffi

_SAMPLE_HDR = struct.Struct("<IHHI")   # type, misc, size, raw size (for SAMPLE)
_U64 = struct.Struct("<Q")

RINGBUF_BUSY = 1 << 31
RINGBUF_DISCARD = 1 << 30
RINGBUF_HDR = 8


class _Ring(object):
    """One CPU's perf ring."""

    __slots__ = ("cpu", "fd", "base", "length", "meta", "data", "size", "mask")

    def __init__(self, cpu, fd, base, length, page, size):
        self.cpu = cpu
        self.fd = fd
        self.base = base
        self.length = length
        self.meta = ffi.cast("uint64_t *", base + 1024)  # [0] data_head, [1] data_tail
        self.data = ffi.buffer(base + page, size)
        self.size = size
        self.mask = size - 1


_wakeup_fd = -1


def set_signal_wakeup(fd):
    """Make every reader's poll() also wake when ``fd`` becomes readable (-1: none)."""
    global _wakeup_fd
    _wakeup_fd = fd


def _drain_fd(fd):
    try:
        while os.read(fd, 512):
            pass
    except OSError:   # EAGAIN (empty, non-blocking) or closed
        pass


class _Reader(object):
    """Shared bits: callbacks, epoll, lost counting, close."""

    def __init__(self, map, on_event, on_lost):
        self.map = map
        self.on_event = on_event
        self.on_lost = on_lost
        self.lost = 0
        self._ep = select.epoll()
        self._pending = []   # records copied out but not yet delivered (a callback raised)
        self._owns_map = False
        self._fence = libc.get_fence()
        self._watched = -1   # the signal wakeup fd registered in our epoll set

    def fileno(self):
        return self._ep.fileno()

    def _count_lost(self, n):
        if n:
            self.lost += n
            if self.on_lost is not None:
                self.on_lost(n)

    def _deliver_pending(self):
        pend, self._pending = self._pending, []
        on_event = self.on_event
        for i, data in enumerate(pend):
            try:
                on_event(data)
            except BaseException:
                self._pending = pend[i + 1:] + self._pending
                raise
        return len(pend)

    def poll(self, timeout_ms=None):
        """Wait up to ``timeout_ms`` for records and deliver them; returns the count."""
        n = self._deliver_pending() if self._pending else 0
        if n:
            timeout_ms = 0
        t = -1 if timeout_ms is None or timeout_ms < 0 else timeout_ms / 1000.0
        if self._watched != _wakeup_fd:
            self._watch(_wakeup_fd)
        ready = self._ep.poll(t)
        if ready:
            fds = [fd for fd, _ in ready]
            if self._watched >= 0 and self._watched in fds:
                _drain_fd(self._watched)   # a signal: its Python handler runs right after this
                fds.remove(self._watched)
            if fds:
                n += self._read_ready(fds)
        n += self._after_poll()
        return n

    def _watch(self, fd):
        if self._watched >= 0:
            try:
                self._ep.unregister(self._watched)
            except (OSError, ValueError):
                pass
        self._watched = -1
        if fd >= 0:
            try:
                self._ep.register(fd, select.EPOLLIN)
                self._watched = fd
            except (OSError, ValueError):
                pass

    def drain(self, recheck_lost=True):
        """Deliver everything available now, without waiting.  ``recheck_lost=False``: a
        ring buffer's lost counter (a map lookup, one bpf() call) is read at most every
        ``LOST_CHECK_INTERVAL``, as ``poll()`` does -- for a caller that drains after each
        wakeup and drains once more, with the default, at the end."""
        n = self._deliver_pending() if self._pending else 0
        n += self._read_all()
        n += self._after_poll(force=recheck_lost)
        return n

    def _after_poll(self, force=False):
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class PerfBuffer(_Reader):
    """Reads a perf_event_array map.  ``pages`` (a power of two) data pages per CPU."""

    def __init__(self, map, on_event, on_lost=None, pages=64, cpus=None):
        if pages <= 0 or pages & (pages - 1):
            raise ValueError("perf buffer pages must be a power of two, not %r" % pages)
        if map.kind != "perf_event_array":
            raise ValueError("PerfBuffer needs a perf_event_array map, not %s" % map.kind)
        _Reader.__init__(self, map, on_event, on_lost)
        self._rings = []
        self._by_fd = {}
        self.pages = pages
        self._torn = struct.calcsize("P") < 8
        if cpus is None:
            from tinytrace.kernel import arch
            cpus = arch.online_cpus()
        page = perf.page_size()
        size = pages * page
        length = size + page
        try:
            for cpu in cpus:
                if cpu >= map.max_entries:
                    continue
                fd = perf.perf_event_open(perf.bpf_output(), pid=-1, cpu=cpu)
                try:
                    base = libc.mmap(length, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED,
                                     fd)
                except OSError as e:
                    os.close(fd)
                    from tinytrace.errors import KernelError
                    raise KernelError("cannot map the perf buffer of CPU %d (%d pages): %s"
                                      % (cpu, pages, e.strerror))
                ring = _Ring(cpu, fd, base, length, page, size)
                self._rings.append(ring)
                self._by_fd[fd] = ring
                map.update(cpu, fd)
                perf.enable(fd)
                self._ep.register(fd, select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    def _read_ready(self, fds):
        n = 0
        by_fd = self._by_fd
        for fd in fds:
            ring = by_fd.get(fd)
            if ring is not None:
                n += self._drain_ring(ring)
        return n

    def _read_all(self):
        n = 0
        for ring in self._rings:
            n += self._drain_ring(ring)
        return n

    def _drain_ring(self, ring):
        meta = ring.meta
        head = meta[0]
        if self._torn:
            # a 32-bit process reads the u64 head in two halves: read until it is stable
            again = meta[0]
            while again != head:
                head, again = again, meta[0]
        tail = meta[1]
        if head == tail:
            return 0
        self._fence()              # the data written before head was published
        size = ring.size
        start = tail & ring.mask
        end = start + (head - tail)
        data = ring.data
        if end <= size:
            chunk = data[start:end]
        else:
            chunk = data[start:size] + data[0:end - size]
        self._fence()              # our copy is complete before the kernel may overwrite it
        meta[1] = head
        return self._dispatch(chunk)

    def _dispatch(self, chunk):
        on_event = self.on_event
        unpack = _SAMPLE_HDR.unpack_from
        off = 0
        n = 0
        total = len(chunk)
        lost = 0
        try:
            while off + 12 <= total:
                rtype, _, rsize, raw = unpack(chunk, off)
                if rsize == 0:      # cannot happen with a sane kernel; never loop forever
                    break
                if rtype == 9:      # PERF_RECORD_SAMPLE (PERF_SAMPLE_RAW only)
                    a = off + 12
                    off += rsize
                    on_event(chunk[a:a + raw])
                    n += 1
                    continue
                if rtype == 2:      # PERF_RECORD_LOST: u64 id, u64 lost
                    lost += _U64.unpack_from(chunk, off + 16)[0]
                off += rsize
        except BaseException:
            # keep what is left for the next poll(); losses found so far still count
            self._stash(chunk, off)
            self._count_lost(lost)
            raise
        self._count_lost(lost)
        return n

    def _stash(self, chunk, off):
        """After a callback raised: queue the payloads of the records from ``off`` on (the
        record whose callback raised was already stepped over)."""
        unpack = _SAMPLE_HDR.unpack_from
        total = len(chunk)
        while off + 12 <= total:
            rtype, _, rsize, raw = unpack(chunk, off)
            if rsize == 0:
                break
            if rtype == 9:
                self._pending.append(chunk[off + 12:off + 12 + raw])
            elif rtype == 2:
                self._count_lost(_U64.unpack_from(chunk, off + 16)[0])
            off += rsize

    def close(self):
        rings, self._rings = getattr(self, "_rings", []), []
        for ring in rings:
            try:
                self._ep.unregister(ring.fd)
            except (OSError, ValueError):
                pass
            try:
                perf.disable(ring.fd)
            except OSError:
                pass
            try:
                self.map.delete(ring.cpu)
            except Exception:
                pass
            try:
                libc.munmap(ring.base, ring.length)
            except OSError:
                pass
            ring.data = None
            os.close(ring.fd)
        self._by_fd = {}
        ep = getattr(self, "_ep", None)
        if ep is not None and not ep.closed:
            ep.close()
        if getattr(self, "_owns_map", False) and self.map is not None:
            self.map.close()


class RingBuffer(_Reader):
    """Reads a ringbuf map.  ``lost_counter=(map, key)`` names a u64 counter the BPF program
    bumps when bpf_ringbuf_output/reserve fails; its increases are reported as lost."""

    LOST_CHECK_INTERVAL = 0.1  # seconds between reads of the lost counter

    def __init__(self, map, on_event, on_lost=None, lost_counter=None):
        if map.kind != "ringbuf":
            raise ValueError("RingBuffer needs a ringbuf map, not %s" % map.kind)
        _Reader.__init__(self, map, on_event, on_lost)
        self._cons = self._prod = None
        page = perf.page_size()
        self.size = map.max_entries
        self._mask = self.size - 1
        self._page = page
        self._lost_counter = lost_counter
        from tinytrace.kernel import arch
        self._ordered = arch.strongly_ordered()
        self._lost_seen = 0
        self._lost_checked = 0.0
        try:
            self._cons = libc.mmap(page, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED,
                                   map.fileno(), 0)
            self._prod_len = page + 2 * self.size
            self._prod = libc.mmap(self._prod_len, libc.PROT_READ, libc.MAP_SHARED,
                                   map.fileno(), page)
        except OSError as e:
            self.close()
            from tinytrace.errors import KernelError
            raise KernelError("cannot map the BPF ring buffer (%d bytes): %s"
                              % (self.size, e.strerror))
        from tinytrace.kernel import arch
        # consumer_pos/producer_pos are the kernel's unsigned long
        pos_type = "uint64_t *" if arch.kernel_long_size() == 8 else "uint32_t *"
        self._posmask = (1 << 64) - 1 if pos_type == "uint64_t *" else (1 << 32) - 1
        self._torn = pos_type == "uint64_t *" and struct.calcsize("P") < 8
        self._cons_pos = ffi.cast(pos_type, self._cons)
        self._prod_pos = ffi.cast(pos_type, self._prod)
        self._hdr = ffi.cast("uint32_t *", self._prod + page)
        self._data = ffi.buffer(self._prod + page, 2 * self.size)
        self._ep.register(map.fileno(), select.EPOLLIN)
        if lost_counter is not None:
            self._lost_seen = self._read_lost_counter()

    def _read_ready(self, fds):
        return self._drain_ring()

    def _read_all(self):
        return self._drain_ring()

    def _drain_ring(self):
        cons_pos = self._cons_pos
        cons = cons_pos[0]
        prod_pos = self._prod_pos
        prod = prod_pos[0]
        if self._torn:
            again = prod_pos[0]
            while again != prod:
                prod, again = again, prod_pos[0]
        # positions only grow, modulo 2^bits of the kernel's unsigned long: work with the
        # distance, so a 32-bit kernel's wrap-around at 4 GiB is harmless
        avail = (prod - cons) & self._posmask
        if not avail:
            return 0
        fence = self._fence
        fence()                    # producer position before the headers it covers
        hdr = self._hdr
        mask = self._mask
        data = self._data
        c = cons
        prod = cons + avail        # unwrapped end; only ``& mask`` of positions is used below
        if self._ordered:
            # TSO: each header load already precedes the payload loads after it
            payloads = []
            append = payloads.append
            while c < prod:
                off = c & mask
                h = hdr[off >> 2]
                if h & RINGBUF_BUSY:
                    break
                ln = h & 0x3FFFFFFF
                if not h & RINGBUF_DISCARD:
                    append(data[off + RINGBUF_HDR:off + RINGBUF_HDR + ln])
                c += (ln + RINGBUF_HDR + 7) & ~7
        else:
            spans = []
            while c < prod:
                off = c & mask
                h = hdr[off >> 2]
                if h & RINGBUF_BUSY:
                    break
                ln = h & 0x3FFFFFFF
                if not h & RINGBUF_DISCARD:
                    spans.append((off + RINGBUF_HDR, ln))
                c += (ln + RINGBUF_HDR + 7) & ~7
            fence()                # headers seen committed before their payloads are read
            payloads = [data[o:o + ln] for o, ln in spans]
        if c == cons:
            return 0
        fence()                    # payloads copied before the space is handed back
        cons_pos[0] = c & self._posmask
        on_event = self.on_event
        i = 0
        try:
            for p in payloads:
                on_event(p)
                i += 1
        except BaseException:
            self._pending.extend(payloads[i + 1:])
            raise
        return len(payloads)

    def _read_lost_counter(self):
        m, key = self._lost_counter
        v = m.lookup(key)
        if v is None:
            return 0
        if isinstance(v, list):
            return sum(_U64.unpack_from(x)[0] for x in v)
        return _U64.unpack_from(v)[0]

    def _after_poll(self, force=False):
        if self._lost_counter is None:
            return 0
        now = time.monotonic()
        if not force and now - self._lost_checked < self.LOST_CHECK_INTERVAL:
            return 0
        self._lost_checked = now
        v = self._read_lost_counter()
        if v > self._lost_seen:
            d = v - self._lost_seen
            self._lost_seen = v
            self._count_lost(d)
        return 0

    def close(self):
        ep = getattr(self, "_ep", None)
        if ep is not None and not ep.closed:
            ep.close()
        self._data = None
        if getattr(self, "_prod", None) is not None:
            try:
                libc.munmap(self._prod, self._prod_len)
            except OSError:
                pass
            self._prod = None
        if getattr(self, "_cons", None) is not None:
            try:
                libc.munmap(self._cons, self._page)
            except OSError:
                pass
            self._cons = None
        if getattr(self, "_owns_map", False) and self.map is not None:
            self.map.close()


def reader(map, on_event, on_lost=None, **options):
    """A PerfBuffer or RingBuffer for ``map``, by its kind."""
    if map.kind == "ringbuf":
        return RingBuffer(map, on_event, on_lost, **options)
    if map.kind == "perf_event_array":
        return PerfBuffer(map, on_event, on_lost, **options)
    raise ValueError("no event reader for %s maps" % map.kind)


def open_output(on_event, on_lost=None, size=1 << 20, pages=None, name="tt_output",
                ringbuf=None):
    """Create the output map the kernel supports best and a reader on it: a ringbuf of
    ``size`` bytes when the kernel has ring buffers (``features.probe().ringbuf``), else a
    perf_event_array with ``pages`` pages per CPU (default: ``size`` spread over the CPUs).
    The reader owns the map (``reader.map``; closing the reader closes it)."""
    from tinytrace.kernel import features, maps
    if ringbuf is None:
        ringbuf = features.probe().ringbuf
    if ringbuf:
        page = perf.page_size()
        rsize = page
        while rsize < size:
            rsize <<= 1
        m = maps.Map.create("ringbuf", 0, 0, rsize, name=name)
        try:
            r = RingBuffer(m, on_event, on_lost)
        except BaseException:
            m.close()
            raise
    else:
        from tinytrace.kernel import arch
        if pages is None:
            per_cpu = max(size // max(len(arch.online_cpus()), 1) // perf.page_size(), 1)
            pages = 1
            while pages < per_cpu:
                pages <<= 1
        m = maps.Map.create("perf_event_array", 4, 4, 0, name=name)
        try:
            r = PerfBuffer(m, on_event, on_lost, pages=pages)
        except BaseException:
            m.close()
            raise
    r._owns_map = True
    return r
