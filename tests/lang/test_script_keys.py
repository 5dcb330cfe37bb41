"""Maps read back through tinytrace.script.Script: keys are the values the program used
(a map keyed by one tuple reads back as that tuple, not a 1-tuple around it)."""
import pytest

from tinytrace.script import Script


@pytest.mark.bpf
def test_keys_read_back_as_written(bpf):
    s = Script('BEGIN { @w[1] = (7, "a"); @off[@w[1]] = sum(5); @two[1, "b"] = count(); '
               '@one[9] = count(); @none = count(); }', tool="keys")
    with s.start():
        assert s.read("@off") == {(7, b"a"): 5}
        assert s.read("@two") == {(1, b"b"): 1}
        assert s.read("@one") == {9: 1}
        assert s.read("@none") == {None: 1}
        assert s.read("@w") == {1: (7, b"a")}
