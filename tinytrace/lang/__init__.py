"""The tinytrace language: bpftrace's language, parsed and compiled in Python onto tinytrace.asm."""
