"""The tinytrace language: bpftrace's language, parsed and compiled in Python onto
tinytrace.asm -- no LLVM, no clang, no headers.

Passes over one tree (``ast``), each in its own module:

====================  =====================================================================
``lexer``/``parser``  text -> tree; probe names are read whole (``uprobe:/bin/sh:main``);
                      ``cparse`` reads the script's C struct definitions, ``clayout``
                      lays them out for the traced kernel
``sema``              names and types: providers resolve probes (``probes/``), map and
                      variable types are joined across the program, builtins and calls
                      (``sema_calls``) are checked; errors are ``file:line:col`` + caret
``codegen*``          tree -> BPF over virtual registers (``ir``): scalars in registers,
                      everything else written in place; per-CPU aggregations; events
``regalloc``          linear scan with fixed ranges for the call ABI, spills to the stack
``compiler``          the driver: check, generate, allocate, check the 512-byte stack, ``-d``
``runtime``           maps, load, attach, BEGIN/END, the event loop, the printout at exit
``decode``/``mapread`` kernel bytes -> values for ``tinytrace.output``
``command``           the command line (``tinytrace -e ...``); ``listing`` is ``-l``
====================  =====================================================================

Each kind of probe is a provider module in ``probes/`` with the same hooks (parse, expand,
builtin types, grouping, attach, list).  ``tinytrace.script`` runs a tool's script through
the runtime.
"""
