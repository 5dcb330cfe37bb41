"""Find a named type's id in /sys/kernel/btf/vmlinux -- just enough for the tp_btf test, so
the kernel-layer tests do not depend on tinytrace's own BTF parser."""
import struct

# extra bytes after the 12-byte btf_type header, by kind: fixed, per-vlen item
_EXTRA = {1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0),
          8: (0, 0), 9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8), 14: (4, 0),
          15: (0, 12), 16: (0, 0), 17: (4, 0), 18: (0, 0), 19: (0, 12)}


def find_type_id(name, kind, path="/sys/kernel/btf/vmlinux"):
    with open(path, "rb") as f:
        data = f.read()
    magic, _, _, hdr_len, type_off, type_len, str_off, str_len = \
        struct.unpack_from("<HBBIIIII", data, 0)
    assert magic == 0xEB9F
    types = hdr_len + type_off
    strings = hdr_len + str_off
    want = name.encode()
    off, end, tid = types, types + type_len, 1
    while off < end:
        name_off, info, _ = struct.unpack_from("<III", data, off)
        k = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        if k == kind:
            s = strings + name_off
            if data[s:s + len(want) + 1] == want + b"\0":
                return tid
        fixed, per = _EXTRA[k]
        off += 12 + fixed + per * vlen
        tid += 1
    return None


TYPEDEF = 8
