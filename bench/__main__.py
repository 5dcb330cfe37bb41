"""``python3 -m bench``: the benchmarks against bpftrace (see bench/harness.py, --help)."""
import sys

from bench.harness import main

sys.exit(main())
