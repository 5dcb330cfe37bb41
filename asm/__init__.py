"""tinytrace.asm: the BPF assembler (being written; see docs/DEVELOPING.md for the contract)."""
