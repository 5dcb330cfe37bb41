"""Program text, source locations and the one exception every compiler pass raises.

A location is a ``(line, col)`` pair, both 1-based, pointing into the text the user wrote
(positional parameters and ``#define`` expansions keep the location of the place they were
used).  Passes raise ``LangError(message, loc)``; the driver turns it into a
``tinytrace.errors.SourceError`` with the file name, the source line and a caret, which the
command line prints as one ``file:line:col: error: ...`` block and exit code 2.
"""
from tinytrace.errors import SourceError


class LangError(Exception):
    """An error in a program, located at ``loc`` (a ``(line, col)`` pair or None)."""

    def __init__(self, message, loc=None):
        super().__init__(message)
        self.message = message
        self.loc = loc


def _visible(text, tab=" "):
    """``text`` with control characters made visible (so a message stays one line)."""
    out = []
    for c in text:
        if c == "\t":
            out.append(tab)
        elif c == "\n":
            out.append("\\n")
        elif c < " " or c == "\x7f":
            out.append("\\x%02x" % ord(c))
        else:
            out.append(c)
    return "".join(out)


class ScriptError(SourceError):
    """A ``SourceError`` that shows the source line as the user wrote it: only control
    characters are made visible (a tab becomes one space, so the caret keeps its column;
    backslashes are not doubled), and the message is kept on one line."""

    def format(self):
        head = "%s:%d:%d: error: %s" % (self.filename, self.line, self.col,
                                         _visible(self.message, "\\t"))
        if self.source_line is None:
            return head
        text = _visible(self.source_line.rstrip("\n"))
        caret = " " * max(self.col - 1, 0) + "^"
        return "%s\n%s\n%s" % (head, text, caret)


class Source:
    """The text of one program and the name it is reported under."""

    __slots__ = ("text", "filename", "_lines")

    def __init__(self, text, filename="stdin"):
        self.text = text
        self.filename = filename
        self._lines = None

    def line(self, n):
        """Line ``n`` (1-based) without its newline, or None past the end."""
        if self._lines is None:
            self._lines = self.text.split("\n")
        if 1 <= n <= len(self._lines):
            return self._lines[n - 1]
        return None

    def error(self, message, loc=None):
        """A ``SourceError`` for ``message`` at ``loc``, with the line and a caret."""
        if loc is None:
            loc = (1, 1)
        line, col = loc
        return ScriptError(message, self.filename, line, col, self.line(line))

    def convert(self, err):
        """Turn a ``LangError`` into the ``SourceError`` the user sees."""
        return self.error(err.message, err.loc)
