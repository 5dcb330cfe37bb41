"""Builtin variables available in every probe, and the names of the language's functions.

Provider-specific builtins (``args``, ``argN``, ``retval``, ``func``) live with their
providers in ``tinytrace.lang.probes``; this table holds the rest.
"""
from tinytrace.lang.types import (COMM_T, PROBE, UINT32, UINT64, USERNAME, stack_type)

DEFAULT_STACK_DEPTH = 127

BUILTINS = {
    "pid": UINT32,        # process (thread group) id
    "tid": UINT32,        # thread id
    "uid": UINT32,
    "gid": UINT32,
    "cpu": UINT32,
    "comm": COMM_T,
    "nsecs": UINT64,      # CLOCK_MONOTONIC nanoseconds (ktime_get_ns)
    "elapsed": UINT64,    # nanoseconds since tinytrace started
    "cgroup": UINT64,     # cgroup v2 id of the current task
    "rand": UINT32,
    "curtask": UINT64,    # address of the current task_struct
    "cpid": UINT32,       # pid of the -c command
    "probe": PROBE,
    "username": USERNAME,
    "jiffies": UINT64,
    "numaid": UINT32,
    "kstack": stack_type(False, DEFAULT_STACK_DEPTH, "bpftrace"),
    "ustack": stack_type(True, DEFAULT_STACK_DEPTH, "bpftrace"),
}

# Every function the language knows, for "did you mean" (checked in sema_calls).
FUNCTIONS = (
    "printf", "print", "exit", "clear", "zero", "delete", "time", "strftime", "cat",
    "system", "signal", "join", "count", "sum", "avg", "min", "max", "stats", "hist",
    "lhist", "str", "buf", "ntop", "strncmp", "strcontains", "kstack", "ustack", "ksym",
    "usym", "has_key", "bswap", "sizeof", "cgroupid", "uptr", "kptr", "len", "kaddr",
    "uaddr", "macaddr", "offsetof", "path",
)
AGGREGATIONS = frozenset(("count", "sum", "avg", "min", "max", "stats", "hist", "lhist"))
