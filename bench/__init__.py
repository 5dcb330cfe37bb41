"""Benchmarks of tinytrace against bpftrace: ``python3 -m bench`` (as root, from the
repository root).  Not installed with tinytrace; see docs/benchmarks.md for the results."""
