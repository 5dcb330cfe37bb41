"""Output: histograms, tables, JSON, escaping of kernel strings, and name tables.

Modules (import the one you need; none of them imports another at start-up):

- ``escape``: ``escape(s)``, ``cstring(raw)`` -- printable forms of kernel strings.
- ``hist``: BCC's log2 and linear histograms, keyed sections, and the JSON shape shared by
  every tool's histograms (``hist_json``).
- ``bpftrace``: bpftrace's map/value/message output, text and ``-f json``.
- ``printf``: ``parse_format`` (compile-time checks with the offending column) and
  C/bpftrace printf formatting.
- ``timefmt``: ``-T`` clock column, ``-t`` elapsed seconds, bpftrace's ``time``/``strftime``.
- ``table``: fixed-width columns for snoop tools, with JSON records.
- ``jsonl``: JSON-lines helpers (one object per event or interval).

Name tables (syscalls, errno, signals, capabilities, TCP states...) live in
``tinytrace.kernel.abi``.
"""
