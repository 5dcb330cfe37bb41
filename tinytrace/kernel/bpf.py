"""The bpf() syscall: one function per command, with ``union bpf_attr`` packed by ``struct``.

Every attribute block is passed with the exact size we filled in: the kernel zero-fills the
rest of its own ``bpf_attr`` and accepts a block smaller than its own, so one packing works
from 4.x to today without knowing the running kernel's struct size.

Hot paths (map lookups in a loop, reading counters every interval) use ``Prepared``: an
attribute block in C memory, built once, whose syscall arguments are pre-cast, so a call is
a single cffi call with no packing and no allocation.

Errors: EPERM (and EACCES where we lack privileges) become a one-line ``PrivilegeError``;
everything else is a ``BpfError`` (an ``OSError`` naming the command).
"""
import os
import struct

from tinytrace.kernel.libc import ffi, lib

# enum bpf_cmd
MAP_CREATE = 0
MAP_LOOKUP_ELEM = 1
MAP_UPDATE_ELEM = 2
MAP_DELETE_ELEM = 3
MAP_GET_NEXT_KEY = 4
PROG_LOAD = 5
OBJ_PIN = 6
OBJ_GET = 7
PROG_ATTACH = 8
PROG_DETACH = 9
PROG_TEST_RUN = 10
OBJ_GET_INFO_BY_FD = 15
RAW_TRACEPOINT_OPEN = 17
BTF_LOAD = 18
MAP_LOOKUP_AND_DELETE_ELEM = 21
MAP_FREEZE = 22
MAP_LOOKUP_BATCH = 24
MAP_LOOKUP_AND_DELETE_BATCH = 25
MAP_UPDATE_BATCH = 26
MAP_DELETE_BATCH = 27
LINK_CREATE = 28
LINK_DETACH = 34
ITER_CREATE = 33

COMMAND_NAMES = {
    0: "BPF_MAP_CREATE", 1: "BPF_MAP_LOOKUP_ELEM", 2: "BPF_MAP_UPDATE_ELEM",
    3: "BPF_MAP_DELETE_ELEM", 4: "BPF_MAP_GET_NEXT_KEY", 5: "BPF_PROG_LOAD", 6: "BPF_OBJ_PIN",
    7: "BPF_OBJ_GET", 8: "BPF_PROG_ATTACH", 9: "BPF_PROG_DETACH", 10: "BPF_PROG_TEST_RUN",
    15: "BPF_OBJ_GET_INFO_BY_FD", 17: "BPF_RAW_TRACEPOINT_OPEN", 18: "BPF_BTF_LOAD",
    21: "BPF_MAP_LOOKUP_AND_DELETE_ELEM", 22: "BPF_MAP_FREEZE", 24: "BPF_MAP_LOOKUP_BATCH",
    25: "BPF_MAP_LOOKUP_AND_DELETE_BATCH", 26: "BPF_MAP_UPDATE_BATCH",
    27: "BPF_MAP_DELETE_BATCH", 28: "BPF_LINK_CREATE", 34: "BPF_LINK_DETACH",
}

# enum bpf_map_type
MAP_TYPES = {
    "hash": 1, "array": 2, "prog_array": 3, "perf_event_array": 4, "percpu_hash": 5,
    "percpu_array": 6, "stack_trace": 7, "cgroup_array": 8, "lru_hash": 9,
    "lru_percpu_hash": 10, "lpm_trie": 11, "array_of_maps": 12, "hash_of_maps": 13,
    "queue": 22, "stack": 23, "sk_storage": 24, "ringbuf": 27, "inode_storage": 28,
    "task_storage": 29, "bloom_filter": 30, "user_ringbuf": 31, "cgrp_storage": 32,
}

# enum bpf_prog_type
PROG_TYPES = {
    "socket_filter": 1, "kprobe": 2, "sched_cls": 3, "sched_act": 4, "tracepoint": 5,
    "xdp": 6, "perf_event": 7, "cgroup_skb": 8, "cgroup_sock": 9, "raw_tracepoint": 17,
    "raw_tracepoint_writable": 24, "tracing": 26, "ext": 28, "lsm": 29, "syscall": 31,
}

# enum bpf_attach_type (the ones a tracer uses)
ATTACH_TYPES = {
    "trace_raw_tp": 23, "trace_fentry": 24, "trace_fexit": 25, "modify_return": 26,
    "lsm_mac": 27, "trace_iter": 28, "perf_event": 41, "trace_kprobe_multi": 42,
    "trace_uprobe_multi": 48,
}

# map_update flags
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2

# map_flags
BPF_F_NO_PREALLOC = 1 << 0

# file_flags of BPF_OBJ_GET (and map_flags)
BPF_F_RDONLY = 1 << 3
BPF_F_WRONLY = 1 << 4

# prog_test_run flags
BPF_F_TEST_RUN_ON_CPU = 1 << 0

BPF_OBJ_NAME_LEN = 16

ENOTSUPP = 524  # the kernel-internal "not supported" some paths leak to user space


class BpfError(OSError):
    """A bpf() command failed; ``errno`` holds the kernel's answer."""

    def __init__(self, cmd, err, detail=""):
        self.cmd = cmd
        name = COMMAND_NAMES.get(cmd, "command %d" % cmd)
        reason = "not supported by this kernel (ENOTSUPP)" if err == ENOTSUPP else \
            os.strerror(err)
        super().__init__(err, "bpf(%s)%s: %s" % (name, detail, reason))

    def __str__(self):
        return self.strerror


_nr = None
_long = ffi.typeof("long")
_cast = ffi.cast
_syscall = lib.syscall


def _nr_long():
    global _nr
    if _nr is None:
        from tinytrace.kernel import arch
        _nr = _cast(_long, arch.syscall_nr("bpf"))
    return _nr


def fail(cmd, err, detail=""):
    """The exception for ``cmd`` failing with ``err``: PrivilegeError or BpfError."""
    import errno as E
    if err == E.EPERM or err == E.EACCES and not _privileged():
        from tinytrace import privileges
        return privileges.error("bpf(%s)" % COMMAND_NAMES.get(cmd, cmd), err)
    return BpfError(cmd, err, detail)


_priv = None


def _privileged():
    global _priv
    if _priv is None:
        from tinytrace import privileges
        _priv = os.geteuid() == 0 or privileges.can_trace()
    return _priv


def call(cmd, attr, privilege_errors=True):
    """bpf(cmd, attr, len(attr)).  ``attr`` is a bytearray; commands that write results back
    (batch counts, test-run results, object info) update it in place.  Returns the result."""
    buf = ffi.from_buffer(attr)
    r = _syscall(_nr_long(), _cast(_long, cmd), _cast(_long, buf), _cast(_long, len(attr)))
    if r < 0:
        err = ffi.errno
        if privilege_errors:
            raise fail(cmd, err)
        raise BpfError(cmd, err)
    return r


class Prepared(object):
    """A reusable attribute block in C memory for one command, with pre-cast arguments."""

    __slots__ = ("cmd", "mem", "view", "_args")

    def __init__(self, cmd, size):
        self.cmd = cmd
        self.mem = ffi.new("char[]", size)
        self.view = ffi.buffer(self.mem)  # writable; use struct.pack_into on it
        self._args = (_nr_long(), _cast(_long, cmd), _cast(_long, self.mem), _cast(_long, size))

    def __call__(self):
        r = _syscall(*self._args)
        if r < 0:
            raise fail(self.cmd, ffi.errno)
        return r

    def try_call(self):
        """The result, or ``-errno`` instead of raising (for ENOENT-style answers)."""
        r = _syscall(*self._args)
        if r < 0:
            return -ffi.errno
        return r


def sanitize_name(name):
    """Object names: at most 15 bytes of [A-Za-z0-9_.]; other characters become '_'."""
    if not name:
        return b""
    if isinstance(name, str):
        name = name.encode("ascii", "replace")
    out = bytes(c if (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c in b"_.") else 95
                for c in name)
    return out[:BPF_OBJ_NAME_LEN - 1]


def map_create(map_type, key_size, value_size, max_entries, flags=0, name=b"",
               inner_map_fd=0, numa_node=0, map_extra=0, btf_fd=0, btf_key_type_id=0,
               btf_value_type_id=0):
    """BPF_MAP_CREATE; returns the new map fd.  A name the kernel refuses (pre-4.15 kernels
    know no names) is dropped and the call retried.  ``btf_fd`` (a loaded BTF object, see
    ``btf_load``) with the ids of the key and value types describes the map's layout, which
    some map types require (task/inode/sk storage: an ``int`` key)."""
    name = sanitize_name(name)
    attr = bytearray(struct.pack("<7I16s", map_type, key_size, value_size, max_entries,
                                 flags, inner_map_fd, numa_node, name))
    if map_extra or btf_fd:
        # map_ifindex @44, btf_fd @48, btf_key_type_id @52, btf_value_type_id @56,
        # btf_vmlinux_value_type_id @60, map_extra @64
        attr += struct.pack("<5IQ", 0, btf_fd, btf_key_type_id, btf_value_type_id, 0,
                            map_extra)
    try:
        return call(MAP_CREATE, attr)
    except BpfError as e:
        import errno as E
        if e.errno != E.EINVAL or not name:
            raise
    attr[28:44] = bytes(16)
    return call(MAP_CREATE, attr)


def btf_load(data, log_level=0):
    """BPF_BTF_LOAD: hand a BTF blob (types for maps and programs) to the kernel; returns
    its fd.  A refusal raises ``BpfError`` ending with the last line of the kernel's BTF log
    (the blob is tried again with a log to get it: the first try allocates nothing)."""
    data = bytes(data)
    blob = ffi.new("char[]", data)
    baddr = int(ffi.cast("uintptr_t", blob))
    for level in ((log_level,) if log_level else (0, 1)):
        size = 1 << 16 if level else 0
        log = ffi.new("char[]", size) if size else None
        laddr = int(ffi.cast("uintptr_t", log)) if size else 0
        attr = bytearray(struct.pack("<QQIII", baddr, laddr, len(data), size, level))
        try:
            return call(BTF_LOAD, attr)
        except BpfError as e:
            if not level:
                continue
            text = ffi.string(log).decode("utf-8", "replace").strip()
            lines = [ln for ln in text.splitlines() if ln.strip()]
            detail = " (%s)" % lines[-1].strip()[:200] if lines else ""
            raise BpfError(BTF_LOAD, e.errno, detail)
    raise AssertionError("unreachable")


def obj_get_info(fd, size):
    """BPF_OBJ_GET_INFO_BY_FD into a ``size``-byte info struct; returns the bytes filled in
    (the kernel may shorten info_len to what it knows)."""
    info, addr = _cbuf(size)
    attr = bytearray(struct.pack("<IIQ", fd, size, addr))
    call(OBJ_GET_INFO_BY_FD, attr)
    n = struct.unpack_from("<I", attr, 4)[0]
    return bytes(ffi.buffer(info, min(n, size)))


def obj_pin(fd, path):
    """BPF_OBJ_PIN: give the object behind ``fd`` a name ``path`` in a bpffs mount, so it
    outlives this process (until the file is removed)."""
    keep = ffi.new("char[]", os.fsencode(path))
    attr = bytearray(struct.pack("<QII", int(ffi.cast("uintptr_t", keep)), fd, 0))
    call(OBJ_PIN, attr)
    del keep


def obj_get(path, flags=0):
    """BPF_OBJ_GET: a new fd for the object pinned at ``path`` (a file in a bpffs mount).
    ``flags``: BPF_F_RDONLY/BPF_F_WRONLY for maps (0: read and write).  A missing path is
    ENOENT; a file outside bpffs is refused by the kernel (EACCES/EPERM/EINVAL)."""
    keep = ffi.new("char[]", os.fsencode(path))
    attr = bytearray(struct.pack("<QII", int(ffi.cast("uintptr_t", keep)), 0, flags))
    fd = call(OBJ_GET, attr, privilege_errors=False)
    del keep
    return fd


def raw_tracepoint_open(name, prog_fd):
    """BPF_RAW_TRACEPOINT_OPEN: ``name`` (str) for raw tracepoints, None for tp_btf programs
    (their target was given at load time).  Returns the fd that keeps the attachment."""
    if name is None:
        keep, addr = None, 0
    else:
        keep = ffi.new("char[]", name.encode())
        addr = int(ffi.cast("uintptr_t", keep))
    attr = bytearray(struct.pack("<QII", addr, prog_fd, 0))
    fd = call(RAW_TRACEPOINT_OPEN, attr)
    del keep
    return fd


def link_create(prog_fd, target_fd, attach_type, flags=0, cookie=None, target_btf_id=0):
    """BPF_LINK_CREATE; returns the link fd.  ``cookie`` is the perf-event bpf_cookie."""
    attr = bytearray(struct.pack("<IIII", prog_fd, target_fd & 0xFFFFFFFF, attach_type, flags))
    if cookie is not None:
        attr += struct.pack("<Q", cookie)
    elif target_btf_id:
        attr += struct.pack("<I", target_btf_id)
    return call(LINK_CREATE, attr)


def iter_create(link_fd):
    """BPF_ITER_CREATE: a new fd whose read() runs the iterator link's program."""
    return call(ITER_CREATE, bytearray(struct.pack("<II", link_fd, 0)))


def prog_test_run(prog_fd, ctx_in=b"", data_in=b"", repeat=0, flags=0, cpu=0):
    """BPF_PROG_TEST_RUN; returns (retval, duration_ns).  ``repeat`` 0 means once (raw
    tracepoint programs insist on 0)."""
    keep = []

    def ptr(b):
        if not b:
            return 0
        c = ffi.new("char[]", bytes(b))
        keep.append(c)
        return int(ffi.cast("uintptr_t", c))

    attr = bytearray(struct.pack("<IIIIQQIIIIQQII", prog_fd, 0, len(data_in), 0, ptr(data_in),
                                 0, repeat, 0, len(ctx_in), 0, ptr(ctx_in), 0, flags, cpu))
    call(PROG_TEST_RUN, attr)
    retval, = struct.unpack_from("<I", attr, 4)
    duration, = struct.unpack_from("<I", attr, 36)
    return retval, duration


def _cbuf(size):
    b = ffi.new("char[]", max(size, 1))
    return b, int(ffi.cast("uintptr_t", b))


_kver = None


def kernel_version():
    """The running kernel's (major, minor, patch) from ``uname -r`` (cached)."""
    global _kver
    if _kver is None:
        _kver = parse_release(os.uname().release)
    return _kver


def parse_release(release):
    nums = []
    for part in release.split(".")[:3]:
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        nums.append(int(digits))
        if len(digits) != len(part):
            break
    while len(nums) < 3:
        nums.append(0)
    return tuple(nums)


def kernel_version_code():
    """KERNEL_VERSION(a, b, c) of the running kernel, as kprobe programs want it pre-5.0."""
    a, b, c = kernel_version()
    return (a << 16) + (b << 8) + min(c, 255)


_memlock_done = False


def raise_memlock():
    """Lift RLIMIT_MEMLOCK where the kernel still charges BPF memory to it (before 5.11).
    Done once per process; silently keeps the old limit if we may not raise it."""
    global _memlock_done
    if _memlock_done:
        return
    _memlock_done = True
    if kernel_version() >= (5, 11, 0):
        return
    import resource
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK,
                           (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        try:
            soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))
        except (ValueError, OSError):
            pass
