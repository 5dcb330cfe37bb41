"""The kernel interface: bpf() and perf_event_open() through cffi, maps, programs, attach,
event readers, tracefs.  Knows nothing of the language or the tools above it.

Modules (import the one you need; nothing is imported here, to keep start-up cheap):

- ``arch``      machine name, syscall numbers, ioctl encoding, CPU lists
- ``libc``      syscall/ioctl/mmap/mount via the generated cffi module ``_libc``; ``OwnedFd``
- ``bpf``       one function per bpf() command; ``Prepared`` attribute blocks; errors
- ``maps``      ``Map``: create, lookup, update, delete, keys, items (batched), clear
- ``progs``     ``load()`` -> ``Program``; ``VerifierError`` with the failing instruction
- ``perf``      perf_event_open, ``Attr`` builders (tracepoint, software, kprobe/uprobe PMU)
- ``attach``    tracepoint, raw_tracepoint, tp_btf, perf_event, per-CPU sampling
- ``events``    ``PerfBuffer`` / ``RingBuffer`` readers, ``open_output()``
- ``tracefs``   finding/mounting tracefs, tracepoint formats, event listing, safe writes
- ``features``  lazily probed kernel capabilities (``features.probe()``)

Resource ownership across all of them is ``tinytrace.session.Session``.
"""
