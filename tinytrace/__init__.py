"""tinytrace: a small BPF tracer with its own assembler and the bpftrace language.

The assembler lives in the repository's ``asm/`` folder and the tools in ``tools/``; an
installed copy has them as ``tinytrace.asm`` and ``tinytrace.tools``.  When tinytrace runs
straight from a checkout (the qemu guests do, and so does ``python -m tinytrace`` in the
repository), the repository root is added to this package's search path so that the same
names resolve to those folders.
"""

__version__ = "0.1.0"


def _extend_path_from_checkout():
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    if os.path.isdir(os.path.join(here, "asm")):
        return  # installed layout: subpackages are real folders
    if os.path.isfile(os.path.join(root, "asm", "__init__.py")) and \
            os.path.isfile(os.path.join(root, "setup.cfg")):
        __path__.append(root)  # noqa: F821  (module __path__)


_extend_path_from_checkout()
del _extend_path_from_checkout
