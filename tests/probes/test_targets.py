"""Locating uprobe targets in files: symbol and address offsets, refusals for addresses
outside code, 32-bit ARM Thumb code (which ARM uprobes cannot probe), all without a kernel."""
import pytest

from tinytrace.kernel import elf, uprobes

from tests.parsers.elfgen import SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, PT_LOAD, ElfBuilder

pytestmark = pytest.mark.guest_safe


def _arm_file(tmp_path, entry):
    b = ElfBuilder(bits=32, machine=elf.EM_ARM, etype=2, entry=entry)
    b.add_section(".text", b"\0" * 256, addr=0x10000, flags=SHF_ALLOC | SHF_EXECINSTR)
    b.add_section(".data", b"\0" * 64, addr=0x20000, flags=SHF_ALLOC | SHF_WRITE)
    b.add_segment(PT_LOAD, 5, 0x10000, section=".text")
    b.add_segment(PT_LOAD, 6, 0x20000, section=".data")
    b.add_symbol("thumb_fn", 0x10011, 16, section=".text")
    b.add_symbol("arm_fn", 0x10040, 32, section=".text")
    p = tmp_path / ("arm-%x" % entry)
    p.write_bytes(b.build())
    return str(p)


def test_thumb_code_is_refused(tmp_path):
    path = _arm_file(tmp_path, entry=0x10041)
    text = elf.open(path).section(".text").offset
    assert uprobes.symbol_offset(path, "arm_fn") == text + 0x40
    assert uprobes.symbol_offset(path, "arm_fn", 8) == text + 0x48
    with pytest.raises(uprobes.UprobeError) as e:
        uprobes.symbol_offset(path, "thumb_fn")
    assert "thumb_fn is Thumb code" in str(e.value) and "\n" not in str(e.value)
    assert uprobes.is_thumb(path, 0x10014)           # inside thumb_fn
    assert not uprobes.is_thumb(path, 0x10044)       # inside arm_fn
    assert uprobes.is_thumb(path, 0x10080)           # no symbol: the entry point's mode
    assert not uprobes.is_thumb(_arm_file(tmp_path, entry=0x10040), 0x10080)


def test_offsets_past_a_function_and_outside_code(tmp_path):
    path = _arm_file(tmp_path, entry=0x10040)
    with pytest.raises(uprobes.UprobeError) as e:
        uprobes.symbol_offset(path, "arm_fn", 32)
    assert "past the end of arm_fn (32 bytes)" in str(e.value)
    with pytest.raises(uprobes.UprobeError) as e:
        uprobes.address_offset(path, 0x20010)
    assert "not in an executable segment" in str(e.value)
    with pytest.raises(uprobes.UprobeError) as e:
        uprobes.address_offset(path, 0x90000)
    assert "in no loaded segment" in str(e.value)
    assert uprobes.address_offset(path, 0x10044) == uprobes.symbol_offset(path, "arm_fn", 4)
    assert uprobes.matching_functions(path, "*_fn") == ["arm_fn", "thumb_fn"]


def test_other_architectures_have_no_thumb(tmp_path):
    b = ElfBuilder(bits=64, machine=elf.EM_AARCH64, etype=2, entry=0x10001)
    b.add_section(".text", b"\0" * 64, addr=0x10000, flags=SHF_ALLOC | SHF_EXECINSTR)
    b.add_segment(PT_LOAD, 5, 0x10000, section=".text")
    b.add_symbol("odd", 0x10001, 8, section=".text")
    p = tmp_path / "a64"
    p.write_bytes(b.build())
    assert not uprobes.is_thumb(str(p), 0x10002)
