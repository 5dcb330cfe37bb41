"""The per-event fast paths agree with the general ones: events decoded with one struct
unpack (``decode.Decoders.record``) give what the per-type decoders give, and compiled
printf formats (``Format.compile``) print what ``format_spec`` prints, value by value."""
import struct

import pytest

from tinytrace.lang.decode import Context, Decoders
from tinytrace.lang.types import (INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64,
                                  ArrayT, OpaqueT, PtrT, StrT, TupleT)
from tinytrace.output.printf import Format, format_spec

LAYOUTS = [
    [UINT64, UINT32, INT32, StrT(16), INT64, StrT(64), UINT8, INT16],
    [UINT64, StrT(5), INT8, PtrT(None), ArrayT(UINT8, 4), UINT16, StrT(3)],
    [UINT64, OpaqueT("probe", 8), INT32, TupleT([INT8, StrT(4)]), StrT(8)],
    [UINT64],
]


def _fill(layout):
    buf = bytearray(layout.size)
    for i, (off, t) in enumerate(zip(layout.offsets, layout.elems)):
        if isinstance(t, StrT):
            text = (b"s%d-abcdefghijklmnopqrstuvwxyz" % i)[:t.size]
            buf[off:off + len(text)] = text
            if len(text) < t.size:
                buf[off + len(text) + 1:off + t.size] = b"\xff" * (t.size - len(text) - 1)
        elif t.size in (1, 2, 4, 8) and not isinstance(t, (TupleT, ArrayT)):
            code = {1: "b", 2: "h", 4: "i", 8: "q"}[t.size]
            struct.pack_into("=" + code, buf, off, -(i + 3))
        else:
            for k in range(t.size):
                buf[off + k] = (k * 7 + i) & 0xFF
    return bytes(buf)


@pytest.mark.parametrize("elems", LAYOUTS, ids=[str(i) for i in range(len(LAYOUTS))])
def test_record_decoder_matches_per_type_decoders(elems):
    layout = TupleT(elems)
    dec = Decoders(Context({5: "tracepoint:a:b"}))
    data = _fill(layout)
    want = [dec.get(t)(data, o) for o, t in zip(layout.offsets[1:], layout.elems[1:])]
    assert dec.record(layout)(data) == want
    assert dec.record(layout)(memoryview(data)) == want


SPECS = ["%d", "%i", "%u", "%x", "%s", "%5d", "%-8s", "%.2s", "%lu", "%hhd", "%c", "%p",
         "%08x", "%+d", "%X", "%ld"]
VALUES = [0, 1, -1, 42, (1 << 63) - 1, -(1 << 63), (1 << 64) - 1, 1 << 63, 255,
          b"", b"abc", b"a\\b", b"tab\there", b"\xc3\xa9t\xc3\xa9", b"\xff\xfe", b"nul\0x",
          "text", True]


@pytest.mark.parametrize("escape", [False, True])
@pytest.mark.parametrize("text", SPECS)
def test_compiled_format_matches_format_spec(text, escape):
    f = Format("<" + text + ">")
    spec = f.specs[0]
    for v in VALUES:
        try:
            want = "<" + format_spec(spec, v, escape) + ">"
        except (TypeError, ValueError):
            with pytest.raises((TypeError, ValueError)):
                f.format([v], escape=escape)
            continue
        assert f.format([v], escape=escape) == want, (text, v)


def test_compiled_format_checks_the_argument_count():
    f = Format("%d %s\n")
    assert f.format([1, b"x"]) == "1 x\n"
    with pytest.raises(ValueError):
        f.format([1])
    assert Format("plain\n").format([]) == "plain\n"
