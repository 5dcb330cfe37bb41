"""BTF: the running kernel's vmlinux against tracefs format files and known facts, and
synthetic blobs for every kind, both byte orders, split BTF and the index cache."""
import os
import platform
import re

import pytest

from tinytrace.kernel import btf
from tests.parsers.btfgen import BtfBuilder

TRACEFS = "/sys/kernel/tracing/events"


@pytest.fixture(scope="module")
def vm():
    if not os.path.exists(btf.VMLINUX):
        pytest.skip("kernel has no BTF")
    return btf.load(btf.VMLINUX, cache=False)


def kernel_version():
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return int(m.group(1)), int(m.group(2))


def format_fields(cat, name):
    """(name, offset, size, signed, is_data_loc) of a tracepoint's own fields."""
    path = os.path.join(TRACEFS, cat, name, "format")
    if not os.path.exists(path):
        return None
    out = []
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*field:(.*);\s*offset:(\d+);\s*size:(\d+);\s*signed:(\d+);", line)
            if not m:
                continue
            decl = m.group(1).strip()
            dl = decl.startswith("__data_loc") or decl.startswith("__rel_loc")
            fname = re.sub(r"\[.*\]$", "", decl.split()[-1])
            if fname.startswith("common_"):
                continue
            out.append((fname, int(m.group(2)), int(m.group(3)), m.group(4) == "1", dl))
    return out


# --- the running kernel ---------------------------------------------------------------------

def test_known_members(vm):
    pid = vm.member("task_struct", "pid")
    assert pid is not None and pid.size == 4 and vm.type_name(pid.type_id) == "pid_t"
    assert vm.resolve(pid.type_id).name == "int" and vm.resolve(pid.type_id).signed
    comm = vm.member("task_struct", "comm")
    assert vm.type_name(comm.type_id) == "char[16]" and comm.size == 16
    assert vm.type_name(vm.member("task_struct", "mm").type_id) == "struct mm_struct *"
    assert vm.member("task_struct", "no_such_member") is None
    if kernel_version() >= (6, 14):
        assert vm.member("cfs_rq", "nr_queued") is not None
        assert vm.member("cfs_rq", "nr_running") is None
    else:
        assert vm.member("cfs_rq", "nr_running") is not None


def test_sched_switch_struct_matches_format_file(vm):
    fields = format_fields("sched", "sched_switch")
    if fields is None:
        pytest.skip("tracefs not mounted")
    st = vm.find("trace_event_raw_sched_switch", "struct")
    assert st is not None
    for name, off, size, signed, _ in fields:
        m = vm.member(st, name)
        assert (m.offset, m.size) == (off, size), name
    assert [m.name for m in st.members][:2] == ["ent", "prev_comm"]


def test_every_trace_event_struct_matches_format_files(vm):
    """Every tracepoint whose ``trace_event_raw_<name>`` struct exists: all fields agree."""
    if not os.path.isdir(TRACEFS):
        pytest.skip("tracefs not mounted")
    checked = 0
    for cat in sorted(os.listdir(TRACEFS)):
        d = os.path.join(TRACEFS, cat)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            fields = format_fields(cat, name)
            if not fields:
                continue
            st = vm.find("trace_event_raw_" + name, "struct")
            if st is None:
                continue      # events defined from a template carry the template's name
            for fname, off, size, signed, dl in fields:
                m = vm.member(st, ("__data_loc_" if dl else "") + fname)
                if m is None and dl:
                    m = vm.member(st, "__rel_loc_" + fname)
                assert m is not None, (cat, name, fname)
                assert m.offset == off, (cat, name, fname)
                if size:      # flexible arrays show size 0 in both
                    assert m.size == size, (cat, name, fname)
            checked += 1
    assert checked > 200


def test_tcp_states_match_inet_sock_set_state_format(vm):
    path = os.path.join(TRACEFS, "sock", "inet_sock_set_state", "format")
    if not os.path.exists(path):
        pytest.skip("no sock:inet_sock_set_state")
    text = open(path).read()
    pairs = re.findall(r'\{ (\d+), "(TCP_[A-Z0-9_]+)" \}', text)
    assert len(pairs) >= 11
    for value, name in pairs:
        v, enum = vm.enum_value(name)
        assert v == int(value), name
        assert enum.kind == btf.KIND_ENUM
    assert vm.enum_value("TCP_ESTABLISHED")[0] == 1
    assert vm.enum_value("NO_SUCH_ENUMERATOR_XYZ") is None


def test_named_enum_values(vm):
    vals = vm.enum_values("bpf_prog_type")
    assert vals["BPF_PROG_TYPE_UNSPEC"] == 0 and vals["BPF_PROG_TYPE_TRACEPOINT"] == 5
    assert vals["BPF_PROG_TYPE_RAW_TRACEPOINT"] == 17 and vals["BPF_PROG_TYPE_TRACING"] == 26


def test_tp_btf_sched_switch(vm):
    tp = vm.tracepoint("sched:sched_switch")
    assert tp is not None
    td = vm.type(tp.btf_id)
    assert td.kind == btf.KIND_TYPEDEF and td.name == "btf_trace_sched_switch"
    assert [vm.type_name(p.type_id) for p in tp.params] == [
        "bool", "struct task_struct *", "struct task_struct *", "unsigned int"]
    first = tp.proto.params[0]
    assert vm.type_name(first.type_id) == "void *"
    assert vm.tracepoint("no_such_tracepoint") is None
    assert "btf_trace_sched_switch" in vm.names_with_prefix("btf_trace_sched_", "typedef")


def test_function_prototype(vm):
    f = vm.func("vfs_read")
    assert f is not None and f.kind == btf.KIND_FUNC
    ps = f.params
    assert [p.name for p in ps] == ["file", "buf", "count", "pos"]
    assert vm.type_name(f) == "ssize_t vfs_read(struct file *file, char *buf, size_t count, " \
                              "loff_t *pos)"
    assert vm.type_name(vm.func_proto("vfs_read")) == \
        "ssize_t (struct file *file, char *buf, size_t count, loff_t *pos)"


def test_anonymous_members_and_paths(vm):
    # sock_common keeps skc_daddr inside an anonymous union/struct pair.
    m = vm.member("sock_common", "skc_daddr")
    assert m is not None and "" in m.path and m.path[-1] == "skc_daddr"
    # dotted path through a named struct member
    d = vm.member("sock", "__sk_common.skc_dport")
    assert d is not None
    assert d.bit_offset == vm.member("sock", "__sk_common").bit_offset + \
        vm.member("sock_common", "skc_dport").bit_offset
    assert vm.member("sock", "__sk_common.no_such") is None


def test_bitfields(vm):
    st = vm.find("task_struct", "struct")
    bits = [m for m in st.members if m.is_bitfield]
    assert bits, "task_struct has bitfields (sched_reset_on_fork ...)"
    m = vm.member("task_struct", bits[0].name)
    assert m.bitfield_size == bits[0].bitfield_size and m.bit_offset == bits[0].bit_offset


def test_sizes_and_names(vm):
    assert vm.ptr_size == 8 if platform.machine() in ("x86_64", "aarch64") else True
    assert vm.size_of(vm.find("u64", "typedef")) == 8
    assert vm.type_name(vm.find("u64", "typedef")) == "u64"
    assert vm.size_of(vm.find("list_head", "struct")) == 2 * vm.ptr_size
    assert vm.find_struct("struct list_head").name == "list_head"
    assert vm.find("task_struct").kind == btf.KIND_STRUCT
    with pytest.raises(btf.BtfError):
        vm.members("no_such_struct_xyz")


def test_whole_file_decodes(vm):
    """Decode every type once: the layouts are consistent and sizes resolve."""
    counts = {}
    for tid in range(1, vm.last_id + 1):
        t = vm.type(tid)
        counts[t.kind] = counts.get(t.kind, 0) + 1
        if t.kind in (btf.KIND_STRUCT, btf.KIND_UNION):
            for m in t.members:
                assert m.bit_offset + m.bitfield_size <= t.size * 8 or t.size == 0, (t, m)
        elif t.kind in (btf.KIND_ENUM, btf.KIND_ENUM64):
            assert len(t.values) == t.vlen
        elif t.kind == btf.KIND_FUNC:
            assert t.type.kind == btf.KIND_FUNC_PROTO
    assert counts[btf.KIND_STRUCT] > 5000 and counts[btf.KIND_FUNC] > 10000
    assert sum(counts.values()) == vm.nr_types


def test_vmlinux_singleton_and_cache(tmp_path, monkeypatch):
    if not os.path.exists(btf.VMLINUX):
        pytest.skip("kernel has no BTF")
    monkeypatch.setenv("TINYTRACE_CACHE_DIR", str(tmp_path))
    plain = btf.load(btf.VMLINUX, cache=False)
    a = btf.load(btf.VMLINUX)
    files = os.listdir(str(tmp_path))
    assert len(files) == 1 and files[0].startswith("btf-index-")

    def no_scan(self):
        raise AssertionError("scanned although a cache exists")
    monkeypatch.setattr(btf.Btf, "_scan", no_scan)
    b = btf.load(btf.VMLINUX)
    assert b.member("task_struct", "pid").bit_offset == a.member("task_struct", "pid").bit_offset
    assert list(b._offs) == list(a._offs)
    # The cached name index gives the same answers as the byte search.
    assert b._sorted is not None and plain._sorted is None
    import random
    rnd = random.Random(3)
    names = [plain.type(t).name for t in rnd.sample(range(1, plain.last_id + 1), 400)]
    for n in [x for x in names if x] + ["task_struct", "int", "no_such_type_xyz", "a"]:
        assert b.ids_named(n) == plain.ids_named(n), n


def test_corrupt_or_unwritable_cache_is_ignored(tmp_path, monkeypatch):
    if not os.path.exists(btf.VMLINUX):
        pytest.skip("kernel has no BTF")
    monkeypatch.setenv("TINYTRACE_CACHE_DIR", str(tmp_path))
    btf.load(btf.VMLINUX)
    (name,) = os.listdir(str(tmp_path))
    with open(os.path.join(str(tmp_path), name), "r+b") as f:
        f.truncate(200)
    assert btf.load(btf.VMLINUX).member("task_struct", "pid") is not None
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("TINYTRACE_CACHE_DIR", str(blocked / "sub"))
    assert btf.load(btf.VMLINUX).member("task_struct", "pid") is not None


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(btf.BtfError, match="CONFIG_DEBUG_INFO_BTF"):
        btf.load(str(tmp_path / "vmlinux"), cache=False)


# --- synthetic blobs --------------------------------------------------------------------------

def build_all_kinds(endian):
    b = BtfBuilder(endian)
    i32 = b.int_("int", 4, signed=True)                               # 1
    u32 = b.int_("unsigned int", 4)                                   # 2
    ch = b.int_("char", 1, signed=True, char=True)                    # 3
    u64 = b.int_("long unsigned int", 8)                              # 4
    boo = b.int_("_Bool", 1, boolean=True)                            # 5
    pch = b.ptr(ch)                                                   # 6
    arr = b.array(ch, u32, 16)                                        # 7
    td = b.typedef("pid_t", i32)                                      # 8
    cst = b.const(ch)                                                 # 9
    pcst = b.ptr(cst)                                                 # 10
    vol = b.volatile(i32)                                             # 11
    tag = b.type_tag("user", ch)                                      # 12
    ptag = b.ptr(tag)                                                 # 13
    inner = b.struct("", 8, [("lo", u32, 0), ("hi", u32, 32)])        # 14 anonymous
    union = b.struct("", 8, [("whole", u64, 0), ("", inner, 0)], union=True)   # 15
    flt = b.float_("double", 8)                                       # 16
    st = b.struct("task", 48, [("pid", td, 0), ("flags", u32, 32, 3), ("mode", u32, 35, 5),
                               ("comm", arr, 64), ("", union, 192), ("name", pcst, 256),
                               ("load", flt, 320)])                    # 17
    en = b.enum("state", 4, [("RUNNING", 0), ("SLEEPING", 1), ("DEAD", -1 & 0xffffffff)])  # 18
    sen = b.enum("sdir", 4, [("DOWN", -1), ("UP", 1)], signed=True)   # 19
    e64 = b.enum64("big", 8, [("BIG_MASK", 0xfffff << 32), ("NEG", -5)], signed=True)  # 20
    fwd = b.fwd("later", union=True)                                  # 21
    proto = b.func_proto(i32, [("t", b.ptr(st)), ("n", u32), ("", 0)])  # 22 (ptr), 23 proto
    fn = b.func("do_work", proto)                                     # 24
    var = b.var("counter", u64)                                       # 25
    sec = b.datasec(".data", 8, [(var, 0, 8)])                        # 26
    dtag = b.decl_tag("noinline", fn, -1)                             # 27
    fp_proto = b.func_proto(0, [("", i32)])                           # 28
    fptr = b.ptr(fp_proto)                                            # 29
    tp_proto = b.func_proto(0, [("", b.ptr(0)), ("prev", b.ptr(st)), ("cpu", u32)])  # 30,31,32
    tp_ptr = b.ptr(tp_proto)                                          # 33
    tp_td = b.typedef("btf_trace_demo", tp_ptr)                       # 34
    parr = b.ptr(arr)                                                 # 35
    rst = b.restrict(pch)                                             # 36
    old = b.int_("", 4, bits=3, offset=2)                             # 37 old-style bitfield int
    oldst = b.struct("old_bits", 4, [("a", old, 0), ("b", u32, 0)], kind_flag=0)  # 38
    cptr = b.const(pch)                                               # 39
    ids = dict(i32=i32, u32=u32, ch=ch, u64=u64, boo=boo, pch=pch, arr=arr, td=td, cst=cst,
               pcst=pcst, vol=vol, tag=tag, ptag=ptag, inner=inner, union=union, flt=flt,
               st=st, en=en, sen=sen, e64=e64, fwd=fwd, proto=proto, fn=fn, var=var, sec=sec,
               dtag=dtag, fptr=fptr, tp_td=tp_td, parr=parr, rst=rst, oldst=oldst, cptr=cptr)
    return b, ids


@pytest.mark.parametrize("endian", ["<", ">"])
def test_all_kinds(endian):
    b, ids = build_all_kinds(endian)
    x = btf.Btf(b.build(), name="test")
    assert x.endian == endian and x.last_id == ids["cptr"]
    tn = x.type_name
    assert tn(ids["pch"]) == "char *"
    assert tn(ids["arr"]) == "char[16]"
    assert tn(ids["arr"], "comm") == "char comm[16]"
    assert tn(ids["pcst"]) == "const char *"
    assert tn(ids["cptr"]) == "char *const"
    assert tn(ids["vol"]) == "volatile int"
    assert tn(ids["ptag"]) == "char *"
    assert tn(ids["rst"]) == "char *restrict"
    assert tn(ids["fptr"]) == "void (*)(int)"
    assert tn(ids["parr"]) == "char (*)[16]"
    assert tn(ids["fwd"]) == "union later"
    assert tn(ids["st"]) == "struct task"
    assert tn(ids["en"]) == "enum state"
    assert tn(ids["proto"]) == "int (struct task *t, unsigned int n, ...)"
    assert tn(ids["fn"]) == "int do_work(struct task *t, unsigned int n, ...)"
    assert tn(ids["var"]) == "long unsigned int counter"
    assert tn(0) == "void"
    # sizes
    assert x.size_of(ids["st"]) == 48 and x.size_of(ids["arr"]) == 16
    assert x.size_of(ids["pch"]) == 8           # from "long unsigned int"
    assert x.size_of(ids["td"]) == 4 and x.size_of(ids["vol"]) == 4
    assert x.size_of(ids["flt"]) == 8 and x.size_of(ids["e64"]) == 8
    with pytest.raises(btf.BtfError):
        x.size_of(ids["fn"])
    # ints
    assert x.type(ids["i32"]).signed and not x.type(ids["u32"]).signed
    assert x.type(ids["ch"]).int_encoding == (btf.INT_SIGNED | btf.INT_CHAR, 0, 8)
    assert x.type(ids["boo"]).int_encoding[0] == btf.INT_BOOL
    # members, bitfields, anonymous
    assert x.member("task", "pid").offset == 0
    fl = x.member("task", "flags")
    assert (fl.bit_offset, fl.bitfield_size, fl.is_bitfield) == (32, 3, True)
    assert x.member("task", "mode").bit_offset == 35
    hi = x.member("task", "hi")
    assert hi.path == ["", "", "hi"] and hi.bit_offset == 192 + 32 and hi.offset == 28
    assert x.member("task", "whole").path == ["", "whole"]
    assert x.member("task", "comm").size == 16
    assert x.member("old_bits", "a").bitfield_size == 3
    assert x.member("old_bits", "a").bit_offset == 2
    assert x.member("old_bits", "b").bitfield_size == 0
    # enums
    assert x.enum_values("state") == {"RUNNING": 0, "SLEEPING": 1, "DEAD": 0xffffffff}
    assert x.enum_values("sdir") == {"DOWN": -1, "UP": 1}
    assert x.enum_value("BIG_MASK")[0] == 0xfffff << 32
    assert x.enum_value("NEG")[0] == -5
    assert x.enum_value("SLEEPING")[1].name == "state"
    assert x.type(ids["sen"]).signed and not x.type(ids["en"]).signed
    # functions, vars, datasec, tags
    f = x.func("do_work")
    assert f.linkage == 1 and [p.name for p in f.params] == ["t", "n", ""]
    assert f.params[2].type_id == 0
    assert x.type(ids["var"]).linkage == 1
    assert x.type(ids["sec"]).datasec_vars == [(ids["var"], 0, 8)]
    assert tn(ids["sec"]) == "SEC(.data)"
    dt = x.type(ids["dtag"])
    assert dt.component_idx == -1 and dt.type_id == ids["fn"]
    # lookups
    assert x.find("task").id == ids["st"]
    assert x.find("later").kind == btf.KIND_FWD
    assert x.find("do_work", "func").id == ids["fn"]
    assert x.find("noinline") is not None and x.find("noinline").kind == btf.KIND_DECL_TAG
    assert x.find("nothing") is None
    tp = x.tracepoint("demo")
    assert tp.btf_id == ids["tp_td"] and [p.name for p in tp.params] == ["prev", "cpu"]
    assert x.resolve(ids["td"]).name == "int"
    assert x.resolve(ids["tag"]).name == "char"


def test_names_that_are_suffixes_of_other_names():
    b = BtfBuilder()
    u = b.int_("unsigned int", 4)
    b.struct("ppid", 4, [("x", u, 0)])
    b.struct("pid", 4, [("y", u, 0)])
    x = btf.Btf(b.build())
    assert x.find("pid").members[0].name == "y"
    assert x.find("ppid").members[0].name == "x"
    assert x.find("id") is None


def test_shared_suffix_strings_still_found():
    """A producer may point a name into the tail of a longer string."""
    b = BtfBuilder()
    u = b.int_("unsigned int", 4)
    b.struct("task_pid", 4, [("x", u, 0)])
    pid_off = b.s("task_pid") + len("task_")
    import struct as st
    info = (4 << 24) | 1
    b.types.append(st.pack("<III", pid_off, info, 4) + st.pack("<III", b.s("y"), u, 0))
    x = btf.Btf(b.build())
    assert x.find("pid", "struct").members[0].name == "y"


def test_split_btf():
    base = BtfBuilder()
    i32 = base.int_("int", 4, signed=True)
    base.int_("long unsigned int", 8)
    st = base.struct("sk", 8, [("family", i32, 0)])
    vm = btf.Btf(base.build(), name="vmlinux")
    mod = BtfBuilder(base=base)
    ms = mod.struct("nf_conn", 16, [("sk", mod.ptr(st), 0), ("status", i32, 64)])
    mod.enum("ct_state", 4, [("CT_NEW", 2)])
    m = btf.Btf(mod.build(), base=vm, name="nf_conntrack")
    assert m.first_id == vm.last_id + 1
    assert m.find("nf_conn").id == ms
    assert m.type_name(m.member("nf_conn", "sk").type_id) == "struct sk *"
    assert m.member("nf_conn", "status").offset == 8
    assert m.find("sk").id == st                      # found through the base
    assert m.enum_value("CT_NEW")[0] == 2
    assert m.string(0) == "" and m.string(base.s("sk")) == "sk"
    assert m.string(mod.s("nf_conn")) == "nf_conn" and mod.s("nf_conn") >= len(base.strings)
    assert m.type(i32).name == "int"


def test_unknown_kind_error_and_layout_section():
    b = BtfBuilder()
    u = b.int_("unsigned int", 4)
    b.raw(25, "future", 2, 0, b"\0" * 4 + b"\0" * 16)    # kind 25: 4 fixed + 2 x 8 bytes
    b.struct("after", 4, [("v", u, 0)])
    with pytest.raises(btf.BtfError, match="unsupported BTF kind 25"):
        btf.Btf(b.build())
    layout = [(0, 0)] * 25 + [(4, 8)]
    x = btf.Btf(b.build(layout=layout))
    assert x.find("after").members[0].name == "v"
    assert x.type(2).kind == 25


def test_bad_blobs():
    with pytest.raises(btf.BtfError, match="not BTF"):
        btf.Btf(b"\0" * 64)
    b = BtfBuilder()
    b.int_("int", 4)
    blob = b.build()
    with pytest.raises(btf.BtfError):
        btf.Btf(blob[:30])


def test_enumerator_named_by_a_string_tail_among_many():
    import struct as st
    b = BtfBuilder()
    b.int_("int", 4, signed=True)
    names = ["MODE_%d_ON" % i for i in range(12)]
    b.enum("modes", 4, [(n, i) for i, n in enumerate(names)])
    tail = b.s("MODE_3_ON") + len("MODE_3_")
    b.types.append(st.pack("<III", b.s("sw"), (6 << 24) | 1, 4) + st.pack("<II", tail, 77))
    x = btf.Btf(b.build())
    v, t = x.enum_value("ON")
    assert v == 77 and t.name == "sw"
    assert x.enum_value("MODE_3_ON")[0] == 3


def test_split_btf_over_the_running_kernel(vm, tmp_path):
    """A module-style blob on top of the real vmlinux: its ids and strings continue the
    kernel's, and it may point at kernel types and at kernel strings."""
    mod = BtfBuilder()
    mod.types, mod.strings = [], bytearray()
    mod.first_id = vm.last_id + 1
    mod.str_base = vm._slen
    mod._str_index = {"": 0, "pid": vm._string_offsets("pid")[0]}
    task = vm.find("task_struct", "struct").id
    int_id = vm.find("int", "int").id
    # member "pid" names a vmlinux string, so the struct's name is this blob's string 0
    first = mod.struct("first_in_blob", 4, [("pid", int_id, 0)])
    ptr = mod.ptr(task)
    st = mod.struct("my_mod_state", 16, [("owner", ptr, 0), ("pid", int_id, 64)])
    p = tmp_path / "my_mod"
    p.write_bytes(mod.build())
    m = btf.load(str(p), base=vm, cache=False)
    assert m.first_id == vm.last_id + 1 and m.find("my_mod_state").id == st
    assert m.type_name(m.member("my_mod_state", "owner").type_id) == "struct task_struct *"
    assert m.member("my_mod_state", "pid").offset == 8          # name from vmlinux strings
    assert m.find("task_struct").id == task
    assert m.find("first_in_blob").id == first and mod.s("first_in_blob") == mod.str_base


def test_cache_directories(monkeypatch, tmp_path):
    monkeypatch.delenv("TINYTRACE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/nonexistent/xdg")
    assert btf._cache_dirs() == ["/nonexistent/xdg/tinytrace",
                                 "/tmp/tinytrace-%d" % os.geteuid()]
    monkeypatch.setenv("TINYTRACE_CACHE_DIR", str(tmp_path))
    assert btf._cache_dirs() == [str(tmp_path)]
    d = tmp_path / "private"
    d.mkdir(mode=0o700)
    assert btf._private_enough(str(d))
    os.chmod(str(d), 0o777)
    assert not btf._private_enough(str(d))
    f = tmp_path / "plain"
    f.write_text("x")
    assert not btf._private_enough(str(f))


def test_cache_written_to_the_first_directory_that_works(monkeypatch, tmp_path):
    if not os.path.exists(btf.VMLINUX):
        pytest.skip("kernel has no BTF")
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    good = tmp_path / "good"
    monkeypatch.setattr(btf, "_cache_dirs", lambda: [str(blocked / "sub"), str(good)])
    btf.load(btf.VMLINUX)
    (name,) = os.listdir(str(good))
    assert name.startswith("btf-index-") and (os.stat(str(good / name)).st_mode & 0o077) == 0

    def no_scan(self):
        raise AssertionError("scanned although a cache exists")
    monkeypatch.setattr(btf.Btf, "_scan", no_scan)
    assert btf.load(btf.VMLINUX).find("task_struct") is not None


# --- facts remembered per kernel, and blobs written for the kernel ------------------------------

def test_facts_are_computed_once_per_kernel(tmp_path, monkeypatch):
    if not os.path.exists(btf.VMLINUX) or not btf._kernel_build_id():
        pytest.skip("kernel has no BTF or no build id")
    monkeypatch.setenv("TINYTRACE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(btf, "_facts", None)
    calls = []

    def tgid(b):
        calls.append(1)
        return b.member("task_struct", "tgid").offset
    off = btf.cached("task_struct.tgid", tgid)
    assert off == btf.vmlinux().member("task_struct", "tgid").offset and calls == [1]
    assert btf.cached("task_struct.tgid", tgid) == off and calls == [1]
    assert btf.cached("none", lambda b: None) is None
    assert btf.cached("list", lambda b: [3, 1, 2]) == [3, 1, 2]
    (name,) = [n for n in os.listdir(str(tmp_path)) if n.startswith("btf-facts-")]

    # a new process (a fresh _Facts) reads them back without BTF
    def no_btf(*a, **k):
        raise AssertionError("BTF opened although the facts are cached")
    monkeypatch.setattr(btf, "_facts", None)
    monkeypatch.setattr(btf, "vmlinux", no_btf)
    assert btf.cached("task_struct.tgid", tgid) == off and calls == [1]
    assert btf.cached("none", tgid) is None and btf.cached("list", tgid) == [3, 1, 2]

    # written for another kernel, or damaged: not used
    path = tmp_path / name
    text = path.read_text()
    path.write_text(text.replace("|", "|other", 1))
    monkeypatch.setattr(btf, "_facts", None)
    with pytest.raises(AssertionError, match="BTF opened"):
        btf.cached("task_struct.tgid", tgid)
    path.write_text(text.replace("\t%d" % off, "\tgarbage"))
    monkeypatch.setattr(btf, "_facts", None)
    with pytest.raises(AssertionError, match="BTF opened"):
        btf.cached("task_struct.tgid", tgid)
    with pytest.raises(TypeError):
        btf._fact_text("text")


def test_writer_blob_reads_back():
    w = btf.Writer()
    i32 = w.int("int", 4, signed=True)
    u8 = w.int("unsigned char", 1)
    arr = w.array(u8, 12, i32)
    p = w.ptr(arr)
    st = w.struct("val", 24, [("n", i32, 0), ("bytes", arr, 4), ("p", p, 16)])
    b = btf.Btf(w.encode())
    assert b.type(i32).signed and b.size_of(i32) == 4 and not b.type(u8).signed
    assert b.type_name(arr) == "unsigned char[12]"
    assert b.size_of(st) == 24
    assert [(m.name, m.offset) for m in b.members("val")] == [("n", 0), ("bytes", 4),
                                                              ("p", 16)]
    assert b.type_name(b.member("val", "p").type_id) == "unsigned char (*)[12]"
