"""escape(): the printable-ASCII fast path gives what the per-character rule gives."""
import random

from tinytrace.output.escape import cstring, escape


def _reference(s):
    """The rule, one character at a time: C0/C1 controls, DEL and undecodable bytes as
    \\xNN (\\n \\t \\r by name), a backslash doubled."""
    if isinstance(s, (bytes, bytearray, memoryview)):
        s = bytes(s).decode("utf-8", "surrogateescape")
    out = []
    for c in s:
        o = ord(c)
        if c in "\n\t\r\\":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}[c])
        elif o < 0x20 or 0x7F <= o <= 0x9F:
            out.append("\\x%02x" % o)
        elif 0xDC80 <= o <= 0xDCFF:
            out.append("\\x%02x" % (o - 0xDC00))
        else:
            out.append(c)
    return "".join(out)


def test_fixed_cases():
    assert escape(b"/etc/passwd") == "/etc/passwd"
    assert escape(b"a\\b") == "a\\\\b"
    assert escape(b"a\nb\tc\rd\x1b[0m") == "a\\nb\\tc\\rd\\x1b[0m"
    assert escape(b"\xff\xfe") == "\\xff\\xfe"
    assert escape("caf\u00e9 \u2028 \u00a0") == "caf\u00e9 \u2028 \u00a0"
    assert escape("x\x85y\x7f") == "x\\x85y\\x7f"
    assert escape(bytearray(b"a\x01")) == "a\\x01"
    assert escape(memoryview(b"zz\x7f")) == "zz\\x7f"
    assert cstring(b"comm\0junk") == "comm"


def test_unchanged_str_is_returned_as_is():
    s = "python3 /usr/lib/x.py"
    assert escape(s) is s


def test_random_inputs_match_the_rule():
    rnd = random.Random(7)
    for _ in range(3000):
        raw = bytes(rnd.randrange(256) for _ in range(rnd.randrange(12)))
        assert escape(raw) == _reference(raw), raw
        text = "".join(chr(rnd.choice((rnd.randrange(0x20, 0x7F), rnd.randrange(0x300),
                                       rnd.randrange(0x110000))))
                       for _ in range(rnd.randrange(8)))
        assert escape(text) == _reference(text), repr(text)
        utf8 = text.encode("utf-8", "surrogatepass")
        assert escape(utf8) == _reference(utf8), utf8
