"""An Env with canned tracepoints, kernel functions and feature answers, so that front-end
tests run without tracefs and give the same answers on every kernel (kprobes are there,
hardware counters are not).  ``FakeEnv(kprobes=False)`` is a kernel without kprobes."""
from tinytrace.kernel.tracefs import parse_format
from tinytrace.lang.env import Env

_COMMON = """\
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;
"""

FORMATS = {
    ("syscalls", "sys_enter_openat"): (782, """\
	field:int __syscall_nr;	offset:8;	size:4;	signed:1;
	field:int dfd;	offset:16;	size:8;	signed:0;
	field:const char * filename;	offset:24;	size:8;	signed:0;
	field:int flags;	offset:32;	size:8;	signed:0;
	field:umode_t mode;	offset:40;	size:8;	signed:0;
"""),
    ("syscalls", "sys_enter_read"): (842, """\
	field:int __syscall_nr;	offset:8;	size:4;	signed:1;
	field:unsigned int fd;	offset:16;	size:8;	signed:0;
	field:char * buf;	offset:24;	size:8;	signed:0;
	field:size_t count;	offset:32;	size:8;	signed:0;
"""),
    ("syscalls", "sys_exit_read"): (841, """\
	field:int __syscall_nr;	offset:8;	size:4;	signed:1;
	field:long ret;	offset:16;	size:8;	signed:1;
"""),
    ("syscalls", "sys_exit_openat"): (781, """\
	field:int __syscall_nr;	offset:8;	size:4;	signed:1;
	field:long ret;	offset:16;	size:8;	signed:1;
"""),
    ("syscalls", "sys_enter_execve"): (862, """\
	field:int __syscall_nr;	offset:8;	size:4;	signed:1;
	field:const char * filename;	offset:16;	size:8;	signed:0;
	field:const char *const * argv;	offset:24;	size:8;	signed:0;
	field:const char *const * envp;	offset:32;	size:8;	signed:0;
"""),
    ("sched", "sched_switch"): (372, """\
	field:char prev_comm[16];	offset:8;	size:16;	signed:0;
	field:pid_t prev_pid;	offset:24;	size:4;	signed:1;
	field:int prev_prio;	offset:28;	size:4;	signed:1;
	field:long prev_state;	offset:32;	size:8;	signed:1;
	field:char next_comm[16];	offset:40;	size:16;	signed:0;
	field:pid_t next_pid;	offset:56;	size:4;	signed:1;
	field:int next_prio;	offset:60;	size:4;	signed:1;
"""),
    ("sched", "sched_wakeup"): (374, """\
	field:char comm[16];	offset:8;	size:16;	signed:0;
	field:pid_t pid;	offset:24;	size:4;	signed:1;
	field:int prio;	offset:28;	size:4;	signed:1;
	field:int target_cpu;	offset:32;	size:4;	signed:1;
"""),
    ("sched", "sched_process_exec"): (365, """\
	field:__data_loc char[] filename;	offset:8;	size:4;	signed:0;
	field:pid_t pid;	offset:12;	size:4;	signed:1;
	field:pid_t old_pid;	offset:16;	size:4;	signed:1;
"""),
    ("raw_syscalls", "sys_enter"): (21, """\
	field:long id;	offset:8;	size:8;	signed:1;
	field:unsigned long args[6];	offset:16;	size:48;	signed:0;
"""),
}


def format_text(cat, name):
    eid, body = FORMATS[(cat, name)]
    return "name: %s\nID: %d\nformat:\n%s\n%s\nprint fmt: \"\"\n" % (name, eid, _COMMON, body)


KERNEL_FUNCTIONS = [
    ("do_sys_openat2", None), ("vfs_read", None), ("vfs_readv", None), ("vfs_write", None),
    ("vfs_writev", None), ("tcp_sendmsg", None), ("tcp_recvmsg", None),
    ("ext4_file_open", "ext4"), ("ext4_sync_file", "ext4"),
]


class FakeEnv(Env):
    def __init__(self, *args, **kw):
        self.has_kprobes = kw.pop("kprobes", True)
        Env.__init__(self, *args, **kw)

    def kprobes_unavailable(self, probe):
        if self.has_kprobes:
            return None
        return "%s: this kernel was built without CONFIG_KPROBES; try a tracepoint: " \
            "tracepoint:syscalls:sys_enter_read" % probe

    def kernel_functions(self, pattern):
        from tinytrace.kernel import kprobes
        return kprobes.matching_functions(pattern, KERNEL_FUNCTIONS, ())

    def kernel_function_names(self):
        return set(n for n, _ in KERNEL_FUNCTIONS)

    def kernel_symbol(self, name):
        return None

    def uprobes_unavailable(self):
        return None

    def fentry_unavailable(self, func, retprobe=False):
        return None

    def hardware_unavailable(self, event, probe):
        return "%s: this machine exposes no hardware performance counters" % probe

    def tracepoints(self):
        out = {}
        for cat, name in FORMATS:
            out.setdefault(cat, []).append(name)
        for v in out.values():
            v.sort()
        return out

    def tracepoint_format(self, cat, name):
        return parse_format(format_text(cat, name), cat)
