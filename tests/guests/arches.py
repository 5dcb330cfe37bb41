"""The guest architectures: which Debian packages and which qemu machine each one uses.

One row per architecture the matrix boots.  The values are facts about Debian's kernels and
qemu's machine models; the harness (``harness.py``) reads nothing else to know how an
architecture differs.
"""


class Arch(object):
    """How to fetch and boot one architecture."""

    def __init__(self, name, debian, kernel_meta, qemu, qemu_package, machine, cpu, console,
                 uname, jit=None):
        self.name = name                  # our name: x86_64, arm64, armhf
        self.debian = debian              # Debian's architecture name
        self.kernel_meta = kernel_meta    # metapackage that depends on the current kernel
        self.qemu = qemu                  # qemu binary
        self.qemu_package = qemu_package  # Debian package that has that binary
        self.machine = machine            # qemu -M value
        self.cpu = cpu                    # qemu -cpu value
        self.console = console            # serial console device for console=
        self.uname = uname                # what `uname -m` says in the guest
        self.jit = jit                    # net.core.bpf_jit_enable to set at boot (None: leave)

    def __repr__(self):
        return "Arch(%s)" % self.name


ARCHES = {
    # SeaBIOS makes this the slowest to boot (about 2 s before the kernel runs).
    "x86_64": Arch("x86_64", "amd64", "linux-image-amd64", "qemu-system-x86_64",
                   "qemu-system-x86", "pc", "max", "ttyS0", "x86_64"),
    # cortex-a57, not max: emulating pointer authentication makes `max` about 4x slower.
    "arm64": Arch("arm64", "arm64", "linux-image-arm64", "qemu-system-aarch64",
                  "qemu-system-arm", "virt", "cortex-a57", "ttyAMA0", "aarch64"),
    # Debian's armmp-lpae kernel: no BTF, and its JIT is off by default.  The matrix turns
    # the JIT on because a JIT that cannot do atomic adds (errno 524) is what boards meet.
    "armhf": Arch("armhf", "armhf", "linux-image-armmp-lpae", "qemu-system-arm",
                  "qemu-system-arm", "virt,highmem=off", "cortex-a15", "ttyAMA0", "armv7l",
                  jit=1),
}

ALIASES = {"amd64": "x86_64", "x86-64": "x86_64", "aarch64": "arm64", "arm": "armhf",
           "armv7": "armhf", "armv7l": "armhf", "armmp": "armhf"}


def lookup(name):
    """The Arch called ``name`` (aliases accepted), or None."""
    name = (name or "").strip().lower()
    return ARCHES.get(ALIASES.get(name, name))


def names():
    return list(ARCHES)
