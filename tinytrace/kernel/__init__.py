"""The kernel interface: bpf() and perf_event_open() through cffi, maps, programs, attach,
event readers, tracefs.  Knows nothing of the language or the tools above it."""
