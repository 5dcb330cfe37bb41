"""What the kernel says about a tracer process: its BPF programs, where they are attached,
their run-time statistics, and the CPU time the process has used.

- ``bpf_stats(True)`` turns ``kernel.bpf_stats_enabled`` on and gives back the previous value
  so the caller can restore it (the harness does so in a ``finally``, on Ctrl-C too);
  ``hold_stats()`` also holds a BPF_ENABLE_STATS fd, so that someone else switching the
  sysctl off mid-run (this machine is shared) does not zero the counts.
- ``tracer_programs(pid)`` finds the programs a process holds -- program fds (``prog_id:`` in
  /proc/PID/fdinfo) and attachments (BPF_TASK_FD_QUERY on every other fd: perf events with a
  program, raw tracepoints) -- then reads each program's ``bpf_prog_info`` with
  BPF_PROG_GET_FD_BY_ID + BPF_OBJ_GET_INFO_BY_FD (tinytrace's own kernel layer):
  name, type, translated/JITed sizes, verified instructions, run_time_ns and run_cnt.
- ``task_cpu_ns(pid)``: the CPU time of every thread of a process, from schedstat
  (nanoseconds; /proc/PID/stat counts clock ticks of 10 ms, too coarse for start-up).
"""
import os
import struct

SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"

# enum bpf_cmd values tinytrace's bpf module does not name
PROG_GET_FD_BY_ID = 13
TASK_FD_QUERY = 20
ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0

# struct bpf_prog_info offsets (include/uapi/linux/bpf.h; every field is naturally aligned)
INFO_SIZE = 232
_INFO_FIELDS = {
    "type": (0, "I"), "id": (4, "I"), "jited_prog_len": (16, "I"),
    "xlated_prog_len": (20, "I"), "name": (64, "16s"), "run_time_ns": (192, "Q"),
    "run_cnt": (200, "Q"), "recursion_misses": (208, "Q"), "verified_insns": (216, "I"),
}

PROG_TYPE_NAMES = {1: "socket_filter", 2: "kprobe", 5: "tracepoint", 7: "perf_event",
                   17: "raw_tracepoint", 26: "tracing"}

# enum bpf_task_fd_type
FD_TYPES = {0: "raw_tracepoint", 1: "tracepoint", 2: "kprobe", 3: "kretprobe",
            4: "uprobe", 5: "uretprobe"}


def read_sysctl():
    with open(SYSCTL) as f:
        return f.read().strip()


def write_sysctl(value):
    with open(SYSCTL, "w") as f:
        f.write(str(value))


def bpf_stats(enable):
    """Set kernel.bpf_stats_enabled; returns the value it had before (a string)."""
    old = read_sysctl()
    write_sysctl("1" if enable else "0")
    return old


def hold_stats():
    """An fd that keeps run-time statistics on while it is open (BPF_ENABLE_STATS, 5.8+),
    or None.  The kernel counts it apart from the sysctl, so another program writing 0 to
    kernel.bpf_stats_enabled during a run cannot switch the statistics off under us."""
    bpf = _bpf()
    try:
        return bpf.call(ENABLE_STATS, bytearray(struct.pack("<I", BPF_STATS_RUN_TIME)))
    except OSError:
        return None


def parse_prog_info(buf):
    """The fields we use from a ``bpf_prog_info`` (shorter buffers: missing fields are 0)."""
    out = {}
    for name, (off, fmt) in _INFO_FIELDS.items():
        size = struct.calcsize("<" + fmt)
        if off + size <= len(buf):
            out[name] = struct.unpack_from("<" + fmt, buf, off)[0]
        else:
            out[name] = b"" if fmt.endswith("s") else 0
    out["name"] = out["name"].split(b"\0", 1)[0].decode("ascii", "replace")
    out["type_name"] = PROG_TYPE_NAMES.get(out["type"], str(out["type"]))
    out["xlated_insns"] = out["xlated_prog_len"] // 8
    return out


def parse_fdinfo_prog_id(text):
    """``prog_id`` from the text of /proc/PID/fdinfo/N of a BPF program fd, else None."""
    for line in text.splitlines():
        if line.startswith("prog_id:"):
            try:
                return int(line.split(":", 1)[1])
            except ValueError:
                return None
    return None


def parse_schedstat(text):
    """/proc/PID/task/TID/schedstat: 'run_ns wait_ns timeslices' -> run_ns."""
    parts = text.split()
    return int(parts[0]) if parts else 0


def task_cpu_ns(pid):
    """CPU time (ns) used so far by the live threads of ``pid``; None if it is gone."""
    total = 0
    base = "/proc/%d/task" % pid
    try:
        tids = os.listdir(base)
    except OSError:
        return None
    for tid in tids:
        try:
            with open("%s/%s/schedstat" % (base, tid)) as f:
                total += parse_schedstat(f.read())
        except OSError:
            continue
    return total


def vm_hwm_kb(pid):
    """VmHWM (peak RSS of the current image) of ``pid`` in kB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _bpf():
    from tinytrace.kernel import bpf
    return bpf


def prog_info_by_id(prog_id):
    """``bpf_prog_info`` fields of program ``prog_id``, or None if it is gone."""
    bpf = _bpf()
    attr = bytearray(struct.pack("<III", prog_id, 0, 0))
    try:
        fd = bpf.call(PROG_GET_FD_BY_ID, attr)
    except OSError:
        return None
    try:
        info = parse_prog_info(bpf.obj_get_info(fd, INFO_SIZE))
    finally:
        os.close(fd)
    return info


def task_fd_query(pid, fd):
    """(prog_id, attach type name, target name) of an attachment fd of ``pid``, or None."""
    bpf = _bpf()
    from tinytrace.kernel.libc import ffi
    name = ffi.new("char[]", 256)
    addr = int(ffi.cast("uintptr_t", name))
    attr = bytearray(struct.pack("<IIIIQIIQQ", pid, fd, 0, 256, addr, 0, 0, 0, 0))
    try:
        bpf.call(TASK_FD_QUERY, attr, privilege_errors=False)
    except OSError:
        return None
    buf_len, = struct.unpack_from("<I", attr, 12)
    prog_id, fd_type = struct.unpack_from("<II", attr, 24)
    target = ffi.string(name, min(buf_len, 255)).decode("ascii", "replace")
    return prog_id, FD_TYPES.get(fd_type, str(fd_type)), target


def tracer_programs(pid):
    """{prog_id: info} for every BPF program ``pid`` holds or has attached; ``info`` gains
    ``attach``: a sorted list of 'type:target' strings (empty for programs held but not
    attached, e.g. BEGIN)."""
    base = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(base)
    except OSError:
        return {}
    ids = {}
    for name in fds:
        try:
            link = os.readlink("%s/%s" % (base, name))
        except OSError:
            continue
        if not link.startswith("anon_inode:"):
            continue
        fd = int(name)
        if "bpf-prog" in link:
            try:
                with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
                    pid_text = f.read()
            except OSError:
                continue
            prog_id = parse_fdinfo_prog_id(pid_text)
            if prog_id is not None:
                ids.setdefault(prog_id, set())
            continue
        if "bpf-map" in link:
            continue
        q = task_fd_query(pid, fd)
        if q is not None and q[0]:
            ids.setdefault(q[0], set()).add("%s:%s" % (q[1], q[2]))
    out = {}
    for prog_id, attach in ids.items():
        info = prog_info_by_id(prog_id)
        if info is None:
            continue
        info["attach"] = sorted(attach)
        out[prog_id] = info
    return out


def program_deltas(before, after):
    """Per program (by id): run_cnt / run_time_ns differences between two snapshots of
    ``tracer_programs``; programs missing from ``before`` count from zero."""
    rows = []
    for prog_id, a in sorted(after.items()):
        b = before.get(prog_id, {})
        cnt = a["run_cnt"] - b.get("run_cnt", 0)
        ns = a["run_time_ns"] - b.get("run_time_ns", 0)
        rows.append({
            "id": prog_id, "name": a["name"], "type": a["type_name"],
            "attach": a.get("attach", []), "xlated_insns": a["xlated_insns"],
            "jited_bytes": a["jited_prog_len"], "verified_insns": a["verified_insns"],
            "run_cnt": cnt, "run_time_ns": ns,
            "ns_per_event": (ns / cnt) if cnt > 0 else None,
        })
    return rows
