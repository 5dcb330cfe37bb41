"""The errors tinytrace shows to users, and the exit codes they map to.

Every failure a user can cause or meet ends as one of these, printed as a single line by the
command-line entry point -- never as a traceback.  Exit codes follow bpftrace: 2 for bad input
(including a missing privilege), 1 for a failure at run time.
"""


class TinytraceError(Exception):
    """Base class: a failure with a message meant for the user."""
    exit_code = 1


class UserError(TinytraceError):
    """Bad input: an option, a script, a probe name.  Exit code 2."""
    exit_code = 2


class PrivilegeError(UserError):
    """Not root and no CAP_BPF/CAP_PERFMON: say so and exit 2."""


class KernelError(TinytraceError):
    """The kernel refused or lacks something (a feature, a tracepoint).  Exit code 1."""


class SourceError(UserError):
    """An error located in a script: ``file:line:col: message`` plus the line and a caret."""

    def __init__(self, message, filename="<stdin>", line=0, col=0, source_line=None):
        self.message = message
        self.filename = filename
        self.line = line
        self.col = col
        self.source_line = source_line
        super().__init__(self.format())

    def format(self):
        head = "%s:%d:%d: error: %s" % (self.filename, self.line, self.col, self.message)
        if self.source_line is None:
            return head
        # Only control characters are made visible (as in the script itself, a backslash is
        # shown as it is), so the caret under the line still lines up with the column.
        import re
        text = re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", "?", self.source_line.rstrip("\n"))
        caret = "".join("\t" if c == "\t" else " " for c in text[:max(self.col - 1, 0)]) + "^"
        return "%s\n%s\n%s" % (head, text, caret)
