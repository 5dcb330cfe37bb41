"""Markers the probe tests use (the guest plugin registers them too, inside the guests)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "kprobes: needs kprobes; in a guest whose kernel has "
                            "them a skip is a failure")
    config.addinivalue_line("markers", "btf: needs kernel BTF; in a guest whose kernel has it "
                            "a skip is a failure")
    config.addinivalue_line("markers", "guest_safe: also run this test inside the qemu "
                            "guests (tests/guests/subset.py)")
