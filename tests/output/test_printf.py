"""printf formatting and format-string checking.

Integer, string, pointer and float conversions follow C (the expected strings are what
glibc's printf writes for the same specifier; during development 20000 random specifiers
with explicit length modifiers were compared with libc's snprintf: no difference).
bpftrace facts: ``%r`` keeps printable ASCII and writes other bytes as ``\\xNN``, ``%rx``
writes every byte so, ``%rh`` writes hex pairs separated by spaces (bpftrace 0.17 printed
``ab\\x01\\xffc\\" ~|\\x61\\x62\\x01\\xff\\x63|61 62 01 ff 63`` for those three);
``%c`` of 322 printed ``B``; argument-count messages read
``printf: Too many arguments for format string (24 supplied, 19 expected)``.
"""
import pytest

from tinytrace.output.printf import Format, FormatError, format_printf, parse_format


@pytest.mark.parametrize("fmt,arg,out", [
    ("%d", -5, "-5"),
    ("%i", 42, "42"),
    ("%u", -5, "18446744073709551611"),
    ("%x", -5, "fffffffffffffffb"),
    ("%X", 255, "FF"),
    ("%o", 8, "10"),
    ("%5d", 42, "   42"),
    ("%-5d|", 42, "42   |"),
    ("%05d", 42, "00042"),
    ("%+d", 42, "+42"),
    ("% d", 42, " 42"),
    ("%#x", 255, "0xff"),
    ("%#X", 255, "0XFF"),
    ("%#x", 0, "0"),
    ("%#o", 8, "010"),
    ("%#o", 0, "0"),
    ("%.3d", 5, "005"),
    ("%08.3d", 5, "     005"),
    ("%-08d|", 5, "5       |"),
    ("%.0d", 0, ""),
    ("%+.0d", 0, "+"),
    ("%hhd", 300, "44"),
    ("%hhu", -5, "251"),
    ("%hd", 70000, "4464"),
    ("%hu", -5, "65531"),
    ("%ld", -5, "-5"),
    ("%lu", -5, "18446744073709551611"),
    ("%lld", 2 ** 40 + 7, "1099511627783"),
    ("%d", 2 ** 40 + 7, "1099511627783"),
    ("%llx", -1, "ffffffffffffffff"),
    ("%zu", -5, "18446744073709551611"),
    ("%ju", 7, "7"),
    ("%d", 2 ** 63, "-9223372036854775808"),
    ("%u", 2 ** 64 - 1, "18446744073709551615"),
    ("%c", 65, "A"),
    ("%c", 322, "B"),
    ("%3c|", 65, "  A|"),
    ("%-3c|", 65, "A  |"),
    ("%s", "str", "str"),
    ("%10s", "abc", "       abc"),
    ("%-10s|", "abc", "abc       |"),
    ("%.2s", "abcdef", "ab"),
    ("%8.3s|", "abcdef", "     abc|"),
    ("%s", b"bash\0garbage", "bash"),
    ("%s", 12, "12"),
    ("%s", (1, "two"), "(1, two)"),
    ("%p", 0x1234, "0x1234"),
    ("%p", -5, "0xfffffffffffffffb"),
    ("%p", 0, "(nil)"),
    ("%10p|", 0x10, "      0x10|"),
    ("%e", 1.5, "1.500000e+00"),
    ("%.2f", 3.14159, "3.14"),
    ("%g", 0.0001, "0.0001"),
    ("%r", b"ab\x01\xffc\\\" ~", 'ab\\x01\\xffc\\" ~'),
    ("%rx", b"ab\x01\xffc", "\\x61\\x62\\x01\\xff\\x63"),
    ("%rh", b"ab\x01\xffc", "61 62 01 ff 63"),
    ("%%d %d", 1, "%d 1"),
])
def test_conversions(fmt, arg, out):
    assert format_printf(fmt, [arg]) == out


def test_several_args_and_literals():
    assert format_printf("%-6d %-16s %s\n", [1234, "bash", "/etc/passwd"]) == \
        "1234   bash             /etc/passwd\n"
    assert format_printf("no specs 100%%\n", []) == "no specs 100%\n"


def test_compiled_formats_match_one_spec_at_a_time():
    # formats of 2+ specifiers are compiled into one generated function: literal '%' and
    # every argument count must come out as format_spec gives them, one by one
    from tinytrace.output.printf import Format, format_spec
    args = [-5, b"comm\x01\0tail", 255, "x%sy", 7, 3, b"\xff/p", 0, 1 << 63]
    fmt = "%d 100%% %s|%x %%d %s %-4u% d %.3s%p %d%%\n"
    f = Format(fmt)
    for escape in (False, True):
        want = f.fragments[0] + "".join(
            format_spec(sp, a, escape) + frag
            for sp, a, frag in zip(f.specs, args, f.fragments[1:]))
        assert f.format(args, escape=escape) == want
    # the inline short paths and their fallbacks: out-of-range and non-int values,
    # bytes with NUL or control characters, str
    f = Format("%d|%u|%s|%s|%s|%u|%d\n")
    args = [1 << 63, -1, b"plain", b"tab\there\0junk", "str\x1b", 1 << 64, b"\x01\x02"]
    for escape in (False, True):
        want = "".join(format_spec(sp, a, escape) + frag
                       for sp, a, frag in zip(f.specs, args, f.fragments[1:]))
        assert f.format(args, escape=escape) == want
    assert f.format(args) == ("-9223372036854775808|18446744073709551615|plain|tab\there|"
                              "str\x1b|0|513\n")
    for n in range(1, 12):
        f = Format(" ".join(["%d"] * n) + "%%")
        assert f.format(list(range(n))) == " ".join(map(str, range(n))) + "%"
        for wrong in (n - 1, n + 1):
            try:
                f.format(list(range(wrong)))
            except ValueError as e:
                assert str(e) == f.check_args(wrong)
            else:
                raise AssertionError("no error for %d arguments" % wrong)


def test_escape_flag_for_kernel_strings():
    assert format_printf("%s|", ["a\tb\x1b[2J"]) == "a\tb\x1b[2J|"
    assert format_printf("%s|", ["a\tb\x1b[2J"], escape=True) == "a\\tb\\x1b[2J|"
    # the width counts what is shown
    assert format_printf("%-8s|", [b"a\nb"], escape=True) == "a\\nb    |"
    assert format_printf("%c", [10], escape=True) == "\\n"
    # the format text itself is never escaped
    assert format_printf("\t%s\n", ["x"], escape=True) == "\tx\n"


def test_non_utf8_bytes_survive():
    out = format_printf("%s", [b"\xff\xfe"])
    assert out.encode("utf-8", "surrogateescape") == b"\xff\xfe"
    assert format_printf("%s", [b"\xff"], escape=True) == "\\xff"
    # precision counts bytes and does not split a UTF-8 character
    assert format_printf("%.2s", ["h\u00e9llo"]) == "h"
    assert format_printf("%.3s", ["h\u00e9llo"]) == "h\u00e9"


def test_parse_format_specs():
    specs = parse_format("pid %-8d comm %.16s ptr %p buf %rx %lu%%\n")
    assert [s.conv for s in specs] == ["d", "s", "p", "rx", "u"]
    assert [s.kind for s in specs] == ["int", "str", "ptr", "buf", "int"]
    first = specs[0]
    assert (first.text, first.offset, first.flags, first.width, first.precision, first.length) == \
        ("%-8d", 4, "-", 8, None, "")
    assert specs[1].precision == 16
    assert specs[4].length == "l"
    assert parse_format("%rh%c%e") == parse_format("%rh%c%e")
    assert [s.kind for s in parse_format("%rh%c%e")] == ["buf", "char", "float"]
    assert parse_format("100%%") == []


@pytest.mark.parametrize("fmt,offset,text,message", [
    ("abc %k def", 4, "%k", "unknown format specifier '%k'"),
    ("x=%5.2q", 2, "%5.2q", "unknown format specifier '%5.2q'"),
    ("tail %", 5, "%", "incomplete format specifier '%' at the end of the format"),
    ("tail %-08l", 5, "%-08l", "incomplete format specifier '%-08l' at the end of the format"),
    ("%*d", 0, "%*", "'*' width is not supported in printf formats"),
    ("ok %d bad %.*d", 10, "%.*", "'*' precision is not supported in printf formats"),
    ("%lllld", 0, "%lllld", "invalid length modifier 'llll' in '%lllld'"),
    ("%hlx", 0, "%hlx", "invalid length modifier 'hl' in '%hlx'"),
    ("%Lf", 0, "%Lf", "invalid length modifier 'L' in '%Lf'"),
    ("%lr", 0, "%lr", "length modifier 'l' does not apply to %r"),
    ("%hf", 0, "%hf", "length modifier 'h' does not apply to %f"),
])
def test_parse_errors_point_at_the_specifier(fmt, offset, text, message):
    with pytest.raises(FormatError) as ei:
        parse_format(fmt)
    err = ei.value
    assert err.offset == offset
    assert err.column == offset + 1
    assert err.text == text
    assert err.length == len(text)
    assert str(err) == message


def test_argument_count_messages():
    f = Format("%d %s\n")
    assert f.check_args(2) is None
    assert f.check_args(1) == \
        "printf: Not enough arguments for format string (1 supplied, 2 expected)"
    assert f.check_args(3) == \
        "printf: Too many arguments for format string (3 supplied, 2 expected)"
    with pytest.raises(ValueError):
        f.format([1])


def test_bad_argument_types():
    with pytest.raises(TypeError):
        format_printf("%d", ["not a number"])
