"""A workload whose system calls the language tests can predict exactly.

    python3 workload.py DIR ACTION [ARG] ACTION [ARG] ...

Actions (in order):
  open N        open DIR/marker N times (read-only) and close it again
  read K        read K bytes of DIR/data in one read() (the file holds 64 KiB)
  reads K,K,..  one read() of each size
  write TEXT    write TEXT (escapes like \\x01 allowed) to DIR/out in one write()
  exec ARGS     run DIR/ttmarker (a copy of /bin/true) with ARGS (comma separated), wait
  sleep MS      sleep MS milliseconds
  spin MS       burn CPU for MS milliseconds (in user space)
  kspin MS      burn CPU for MS milliseconds mostly in the kernel (reads of /dev/zero), so
                that timer samples land in kernel code and kernel stacks are never empty
  touch PAGES   fault in PAGES fresh pages of anonymous memory
  parallel K,N  K child processes at once, each opening DIR/marker N times
  tcp4 / tcp6   connect to a listening socket on 127.0.0.1 / ::1 and close both ends
  nanosleep NS  clock_nanosleep(CLOCK_MONOTONIC, 0, {NS / 1e9, NS % 1e9}, NULL) through libc
  record X      write one C struct (``RECORD`` below, x = X) to DIR/out in one write(): its
                ``next`` points to a second one (x = 2X), so programs can follow pointers
  rename N      N times: name the thread 'ttlongname12345' then 'tt' (prctl PR_SET_NAME;
                the task_rename record's newcomm keeps stale bytes after a short name's NUL)
"""
import mmap
import os
import sys
import time

# The struct ``record`` writes, as a script declares it:
RECORD = ("struct tt_rec { int x; long y; char name[16]; struct tt_rec *next; "
          "unsigned int a:3, b:5; union { int s; unsigned char c[4]; }; };")


def _record_type():
    import ctypes

    class U(ctypes.Union):
        _fields_ = [("s", ctypes.c_int), ("c", ctypes.c_ubyte * 4)]

    class Rec(ctypes.Structure):
        pass
    Rec._anonymous_ = ("u",)
    Rec._fields_ = [("x", ctypes.c_int), ("y", ctypes.c_long), ("name", ctypes.c_char * 16),
                    ("next", ctypes.POINTER(Rec)), ("a", ctypes.c_uint, 3),
                    ("b", ctypes.c_uint, 5), ("u", U)]
    return Rec


def _mark(d, what):
    """DIR/workload.started.PID, DIR/workload.done.PID: a failing test says how far its
    workload got (a run with empty maps either missed the events or never saw them
    happen).  Empty files: a write() here would be seen by the programs that trace the
    workload's writes."""
    os.close(os.open(os.path.join(d, "workload.%s.%d" % (what, os.getpid())),
                     os.O_WRONLY | os.O_CREAT, 0o600))


def main(argv):
    d = argv[1]
    _mark(d, "started")
    status = _act(d, argv)
    if status == 0:
        _mark(d, "done")
    return status


def _act(d, argv):
    i = 2
    while i < len(argv):
        action = argv[i]
        arg = argv[i + 1] if i + 1 < len(argv) else ""
        i += 2
        if action == "open":
            for _ in range(int(arg)):
                fd = os.open(os.path.join(d, "marker"), os.O_RDONLY)
                os.close(fd)
        elif action in ("read", "reads"):
            fd = os.open(os.path.join(d, "data"), os.O_RDONLY)
            for k in arg.split(","):
                os.lseek(fd, 0, 0)
                os.read(fd, int(k))
            os.close(fd)
        elif action == "write":
            data = arg.encode("latin-1").decode("unicode_escape").encode("latin-1")
            fd = os.open(os.path.join(d, "out"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, data)
            os.close(fd)
        elif action == "exec":
            args = [os.path.join(d, "ttmarker")] + [a for a in arg.split(",") if a]
            pid = os.fork()
            if pid == 0:
                try:
                    os.execv(args[0], args)
                finally:
                    os._exit(127)
            os.waitpid(pid, 0)
        elif action == "sleep":
            time.sleep(int(arg) / 1000.0)
        elif action == "spin":
            end = time.monotonic() + int(arg) / 1000.0
            n = 0
            while time.monotonic() < end:
                n += 1
        elif action == "kspin":
            end = time.monotonic() + int(arg) / 1000.0
            buf = bytearray(1 << 20)
            with open("/dev/zero", "rb", buffering=0) as zero:
                while time.monotonic() < end:
                    zero.readinto(buf)
        elif action == "parallel":
            k, n = (int(x) for x in arg.split(","))
            r, w = os.pipe()
            kids = []
            for _ in range(k):
                pid = os.fork()
                if pid == 0:
                    os.close(w)
                    os.read(r, 1)          # all start together
                    for _ in range(n):
                        os.close(os.open(os.path.join(d, "marker"), os.O_RDONLY))
                    os._exit(0)
                kids.append(pid)
            os.close(r)
            os.close(w)                    # EOF releases every child at once
            for pid in kids:
                os.waitpid(pid, 0)
        elif action in ("tcp4", "tcp6"):
            import socket
            fam = socket.AF_INET if action == "tcp4" else socket.AF_INET6
            host = "127.0.0.1" if action == "tcp4" else "::1"
            srv = socket.socket(fam, socket.SOCK_STREAM)
            srv.bind((host, 0))
            srv.listen(1)
            cli = socket.create_connection(srv.getsockname()[:2])
            conn, _ = srv.accept()
            cli.close()
            conn.close()
            srv.close()
            i -= 1                         # no argument
        elif action == "rename":
            import ctypes
            prctl = ctypes.CDLL(None, use_errno=True).prctl
            for _ in range(int(arg)):
                for name in (b"ttlongname12345", b"tt"):
                    prctl(15, ctypes.c_char_p(name), 0, 0, 0)    # PR_SET_NAME
        elif action == "nanosleep":
            import ctypes
            ns = int(arg)
            ts = (ctypes.c_long * 2)(ns // 1000000000, ns % 1000000000)
            ctypes.CDLL(None).clock_nanosleep(1, 0, ts, None)
        elif action == "record":
            import ctypes
            Rec = _record_type()
            x = int(arg)
            second = Rec(x=2 * x, y=-2 * x, name=b"second", a=2, b=17, s=-3)
            first = Rec(x=x, y=-x, name=b"first", next=ctypes.pointer(second), a=5, b=30,
                        s=0x1234)
            fd = os.open(os.path.join(d, "out"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.write(fd, ctypes.byref(first), ctypes.sizeof(first))
            os.close(fd)
        elif action == "touch":
            pages = int(arg)
            m = mmap.mmap(-1, pages * mmap.PAGESIZE)
            for p in range(pages):
                m[p * mmap.PAGESIZE] = 1
            m.close()
        else:
            sys.stderr.write("workload: unknown action %r\n" % action)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
