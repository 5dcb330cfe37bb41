"""bench/runqlat_variants.py: (with BPF and BTF) every variant loads and attaches, the
shipped tool in both of its versions."""
import pytest

from bench import runqlat_variants as rv


@pytest.mark.bpf
@pytest.mark.parametrize("variant", rv.ORDER)
def test_each_variant_loads_and_attaches(variant):
    from tinytrace.kernel import btf, features
    from tinytrace.session import Session
    if not btf.available() or not features.probe().atomics:
        pytest.skip("needs BTF and BPF atomics")
    errors = {}
    with Session() as s:
        names, counter = rv.build(s, variant, errors)
        assert errors == {}
        if variant in ("shipped", "shipped-script"):
            assert names is None
        else:
            assert set(names) == {"sched_switch", "sched_wakeup", "sched_wakeup_new"}
        assert counter() >= 0
