"""The lexer: program text -> tokens, on demand.

Probe headers need their own rule: ``uprobe:/bin/bash:readline`` or ``t:syscalls:sys_enter_*``
are one word each, while ``/`` inside a block is division.  So the lexer is pulled by the
parser: ``next()`` reads an ordinary token, ``attach_point()`` reads a whole probe name at the
current position.  Preprocessor lines are handled here too: a leading ``#!`` line and
``#include`` lines are skipped, ``#define NAME tokens`` and ``#define NAME(a, b) tokens``
define macros, ``#undef NAME`` forgets one, and ``#if``/``#ifdef``/``#ifndef``/``#elif``/
``#else``/``#endif`` keep or drop the lines between them (``#if`` evaluates a C integer
constant expression after macro expansion, with ``defined NAME``; other names are 0).

Macros are expanded as the C preprocessor does in the common cases, token by token as the
parser pulls them: a function-like macro's arguments are split at top-level commas, macro-
expanded on their own, then put in place of the parameters, and the result is scanned again
for more macros.  Each token carries the names of the macros it came from (``hide``), so a
macro is never expanded inside its own expansion.  A function-like macro's name without a
``(`` after it is a plain name.  ``#`` and ``##`` are refused.  Tokens of a macro's body are
located at the place the macro was used; argument tokens keep their own place in the
script, so errors point at what the user wrote.
"""
import operator

from tinytrace.lang.source import LangError

# Longest first: the scanner takes the first operator that matches.
_OPERATORS = (
    "<<=", ">>=",
    "->", "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "==", "!=", "<=", ">=",
    "&&", "||", "<<", ">>",
    "+", "-", "*", "/", "%", "&", "|", "^", "!", "~", "<", ">", "=", "?", ":", ";", ",", ".",
    "(", ")", "[", "]", "{", "}",
)
_OP_START = {}
for _op in _OPERATORS:
    _OP_START.setdefault(_op[0], []).append(_op)
del _op

_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v", "e": "\x1b"}
U64_MAX = (1 << 64) - 1
MAX_EXPANDED = 200000   # tokens produced by macro expansion in one program
_NO_HIDE = frozenset()


def _byte_char(v):
    """A ``\\xNN`` / octal escape is one byte, as in C: bytes past ASCII are kept as
    surrogates, so encoding the string (UTF-8, surrogateescape) gives that byte back."""
    return chr(v) if v < 0x80 else chr(0xDC00 + v)


class Token:
    """One token.  ``kind`` is one of: ident, int, str, var ($x), map (@x, @), param ($1),
    nparams ($#), op (value is the operator text), attach (a probe name), eof."""

    __slots__ = ("kind", "value", "loc", "cols", "hide")

    def __init__(self, kind, value, loc, cols=None, hide=_NO_HIDE):
        self.kind = kind
        self.value = value
        self.loc = loc
        self.cols = cols  # strings: source column of each character of the value
        self.hide = hide  # macros this token came from: not expanded again in it

    def is_op(self, text):
        return self.kind == "op" and self.value == text

    def describe(self):
        if self.kind == "eof":
            return "end of input"
        if self.kind == "op":
            return "'%s'" % self.value
        if self.kind == "str":
            return "string literal"
        if self.kind == "int":
            return "number %d" % self.value
        if self.kind == "var":
            return "'$%s'" % self.value
        if self.kind == "map":
            return "'@%s'" % self.value
        if self.kind == "param":
            return "'$%d'" % self.value
        if self.kind == "nparams":
            return "'$#'"
        return "'%s'" % self.value

    def __repr__(self):
        return "Token(%s, %r, %r)" % (self.kind, self.value, self.loc)


class Macro:
    """``#define NAME body`` (``params`` None) or ``#define NAME(params) body``."""
    __slots__ = ("name", "params", "body", "loc", "tokens")

    def __init__(self, name, params, body, loc):
        self.name, self.params, self.body, self.loc = name, params, body, loc
        self.tokens = None      # the body's tokens, scanned at the first use


def _has_hash(body):
    """Whether a macro body has a ``#`` outside string literals."""
    quote = False
    i = 0
    while i < len(body):
        c = body[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == '"':
                quote = False
        elif c == '"':
            quote = True
        elif body.startswith("//", i):
            return False
        elif body.startswith("/*", i):
            end = body.find("*/", i + 2)
            if end < 0:
                return False
            i = end + 1
        elif c == "#":
            return True
        i += 1
    return False


def _copy(t, loc, hide, body=False):
    """Token ``t`` of an expansion at ``loc``; a string of a macro body loses its columns
    (they were columns of the definition)."""
    return Token(t.kind, t.value, loc, None if body else t.cols, hide)


_CONDITIONALS = frozenset(("if", "ifdef", "ifndef", "elif", "else", "endif"))


class _Cond:
    """One open ``#if`` group: ``outer`` whether the text around it is kept, ``taken``
    whether one of its branches was, ``active`` whether the current branch is."""
    __slots__ = ("directive", "loc", "outer", "taken", "active", "seen_else")

    def __init__(self, directive, loc, outer):
        self.directive, self.loc, self.outer = directive, loc, outer
        self.taken = self.active = self.seen_else = False

    def take(self, yes):
        self.active = bool(yes) and self.outer
        self.taken = self.taken or self.active


def _macro_name(rest, directive, loc):
    name = rest.split("//", 1)[0].split("/*", 1)[0].strip()
    if not name or name[0] in _DIGITS or not all(c in _IDENT_CHARS for c in name):
        raise LangError("#%s needs a macro name" % directive, loc)
    return name


class _CondExpr:
    """A C integer constant expression of ``#if`` over expanded tokens: names left after
    expansion are 0, arithmetic is on unbounded integers (division truncates toward 0).
    As in C, the operand ``&&``, ``||`` or ``?:`` does not take is not evaluated: a division
    by zero there is no error (``defined(N) && 100 / N``)."""

    _BINARY = (("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="),
               ("<", ">", "<=", ">="), ("<<", ">>"), ("+", "-"), ("*", "/", "%"))
    _OPS = {"|": operator.or_, "^": operator.xor, "&": operator.and_,
            "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
            "<=": operator.le, ">=": operator.ge, "+": operator.add, "-": operator.sub,
            "*": operator.mul, ">>": operator.rshift,
            "<<": lambda a, b: a << min(b, 64)}

    def __init__(self, toks, directive, loc):
        self.toks, self.i, self.directive, self.loc = toks, 0, directive, loc
        self.skipped = 0     # > 0 inside an operand that is not evaluated

    def _fail(self, what):
        raise LangError("#%s: %s" % (self.directive, what), self.loc)

    def _peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def value(self):
        v = self._ternary()
        if self._peek() is not None:
            self._fail("unexpected %s in the expression" % self._peek().describe())
        return v

    def _operand(self, parse, taken):
        """``parse()`` an operand; evaluated only when ``taken``."""
        if taken:
            return parse()
        self.skipped += 1
        try:
            return parse()
        finally:
            self.skipped -= 1

    def _ternary(self):
        cond = self._binary(0)
        t = self._peek()
        if t is not None and t.is_op("?"):
            self.i += 1
            a = self._operand(self._ternary, cond)
            t = self._peek()
            if t is None or not t.is_op(":"):
                self._fail("expected ':' in '?:'")
            self.i += 1
            b = self._operand(self._ternary, not cond)
            return a if cond else b
        return cond

    def _binary(self, level):
        if level == len(self._BINARY):
            return self._unary()
        left = self._binary(level + 1)
        while True:
            t = self._peek()
            if t is None or t.kind != "op" or t.value not in self._BINARY[level]:
                return left
            self.i += 1
            if t.value in ("&&", "||"):
                taken = bool(left) if t.value == "&&" else not left
                right = self._operand(lambda: self._binary(level + 1), taken)
                left = int(bool(right)) if taken else int(t.value == "||")
            else:
                left = self._apply(t.value, left, self._binary(level + 1))

    def _apply(self, op, a, b):
        if op in ("/", "%"):
            if b == 0:
                if self.skipped:
                    return 0
                self._fail("division by zero")
            q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
            return q if op == "/" else a - q * b
        if op in ("<<", ">>") and b < 0:
            if self.skipped:
                return 0
            self._fail("negative shift count")
        return int(self._OPS[op](a, b))

    def _unary(self):
        t = self._peek()
        if t is None:
            self._fail("the expression ends too early")
        self.i += 1
        if t.kind == "op" and t.value in ("!", "~", "-", "+"):
            v = self._unary()
            return {"!": int(not v), "~": ~v, "-": -v, "+": v}[t.value]
        if t.is_op("("):
            v = self._ternary()
            t = self._peek()
            if t is None or not t.is_op(")"):
                self._fail("missing ')'")
            self.i += 1
            return v
        if t.kind == "int":
            return t.value
        if t.kind == "ident":
            return 0
        self._fail("unexpected %s in the expression" % t.describe())


class Lexer:
    def __init__(self, text):
        self.text = text
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self.macros = {}          # name -> Macro
        self.pending = []         # tokens from a macro expansion (or looked ahead), next first
        self._budget = [0]        # tokens expanded so far (shared with argument lexers)
        self.conds = []           # open #if groups, innermost last (see _Cond)
        if text.startswith("#!"):
            self._skip_line()

    # -- positions -------------------------------------------------------------------------
    def loc(self, pos=None):
        if pos is None:
            pos = self.pos
        return (self.line, pos - self.line_start + 1)

    def _newline(self, pos):
        self.line += 1
        self.line_start = pos + 1

    def _skip_line(self):
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end

    def _skip_dropped_line(self):
        """To the end of a line of a dropped group, as C reads it: a ``/* */`` comment
        may run over lines (a ``#endif`` inside it is no directive), a string literal
        hides comment openers."""
        text = self.text
        n = len(text)
        i = self.pos
        while i < n and text[i] != "\n":
            c = text[i]
            if c == '"' or c == "'":
                i += 1
                while i < n and text[i] != c and text[i] != "\n":
                    i += 2 if text[i] == "\\" and text[i + 1:i + 2] != "\n" else 1
                if i < n and text[i] == c:
                    i += 1
            elif text.startswith("//", i):
                end = text.find("\n", i)
                i = n if end < 0 else end
            elif text.startswith("/*", i):
                end = text.find("*/", i + 2)
                if end < 0:
                    self.pos = i
                    raise LangError("unterminated comment", self.loc())
                for j in range(i, end):
                    if text[j] == "\n":
                        self._newline(j)
                i = end + 2
            else:
                i += 1
        self.pos = min(i, n)

    def _at_line_start(self, pos):
        i = pos - 1
        while i >= 0 and self.text[i] in " \t":
            i -= 1
        return i < 0 or self.text[i] == "\n"

    # -- blanks, comments, preprocessor lines ----------------------------------------------
    def skip_blanks(self):
        text = self.text
        n = len(text)
        while self.pos < n:
            c = text[self.pos]
            if self.conds and not self.conds[-1].active:
                # a group #if dropped: only its conditional directives count
                if c == "#" and self._at_line_start(self.pos):
                    self._preprocessor_line()
                elif c == "\n":
                    self._newline(self.pos)
                    self.pos += 1
                else:
                    self._skip_dropped_line()
                continue
            if c == "\n":
                self._newline(self.pos)
                self.pos += 1
            elif c in " \t\r\f\v":
                self.pos += 1
            elif c == "/" and text.startswith("//", self.pos):
                self._skip_line()
            elif c == "/" and text.startswith("/*", self.pos):
                start = self.loc()
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise LangError("unterminated comment", start)
                for i in range(self.pos, end):
                    if text[i] == "\n":
                        self._newline(i)
                self.pos = end + 2
            elif c == "#" and self._at_line_start(self.pos):
                self._preprocessor_line()
            else:
                return
        if self.conds:
            raise LangError("#%s without #endif" % self.conds[-1].directive,
                            self.conds[-1].loc)

    def _preprocessor_line(self):
        start = self.loc()
        end = self.text.find("\n", self.pos)
        if end < 0:
            end = len(self.text)
        line = self.text[self.pos + 1:end]
        # A backslash-newline continues the line.
        while line.endswith("\\") and end < len(self.text):
            nxt = self.text.find("\n", end + 1)
            if nxt < 0:
                nxt = len(self.text)
            self._newline(end)
            line = line[:-1] + " " + self.text[end + 1:nxt]
            end = nxt
        # A comment opened on the line and closed on a later one is one blank, as in C.
        while line.rfind("/*") > line.rfind("*/") and end < len(self.text):
            close = self.text.find("*/", end)
            if close < 0:
                break       # unterminated: the directive's own reading says so
            nxt = self.text.find("\n", close)
            if nxt < 0:
                nxt = len(self.text)
            for j in range(end, close):
                if self.text[j] == "\n":
                    self._newline(j)
            line = line[:line.rfind("/*")] + " " + self.text[close + 2:nxt]
            end = nxt
        self.pos = end
        words = line.strip().split(None, 1)
        directive = words[0] if words else ""
        rest = words[1] if len(words) > 1 else ""
        if directive in _CONDITIONALS:
            self._conditional(directive, rest, start)
            return
        if self.conds and not self.conds[-1].active:
            return  # other directives of a dropped group are not looked at, as in C
        if directive == "error":
            raise LangError("#error %s" % rest.strip() if rest.strip() else "#error", start)
        if directive == "include":
            return  # struct layouts come from tracefs/BTF, never from headers
        if directive == "define":
            self._define(words[1] if len(words) > 1 else "", start)
            return
        if directive == "undef":
            name = words[1].strip() if len(words) > 1 else ""
            if not name or not all(c in _IDENT_CHARS for c in name) or name[0] in _DIGITS:
                raise LangError("#undef needs a macro name", start)
            self.macros.pop(name, None)
            return
        raise LangError("unsupported preprocessor directive '#%s'" % directive, start)

    def _conditional(self, directive, rest, start):
        conds = self.conds
        outer = not conds or conds[-1].active
        if directive in ("if", "ifdef", "ifndef"):
            c = _Cond(directive, start, outer)
            if outer:
                if directive == "if":
                    c.take(self._condition(rest, directive, start))
                else:
                    c.take((_macro_name(rest, directive, start) in self.macros)
                           == (directive == "ifdef"))
            conds.append(c)
            return
        if not conds:
            raise LangError("#%s without #if" % directive, start)
        c = conds[-1]
        if directive == "endif":
            conds.pop()
            return
        if c.seen_else:
            raise LangError("#%s after #else" % directive, start)
        if directive == "else":
            c.seen_else = True
            c.take(not c.taken)
        else:   # elif
            c.take(not c.taken and c.outer and self._condition(rest, directive, start))

    def _condition(self, text, directive, start):
        """The value of ``#if text``: true when the C integer expression is not 0."""
        raw = Lexer(text)
        toks = []
        while True:
            try:
                t = raw._next_raw()
            except LangError as e:
                raise LangError("#%s: %s" % (directive, e.message), start)
            if t.kind == "eof":
                break
            toks.append(t)
        # ``defined NAME`` and ``defined(NAME)`` are decided before any macro expands
        out = []
        i = 0
        while i < len(toks):
            t = toks[i]
            if t.kind == "ident" and t.value == "defined":
                j = i + 1
                paren = j < len(toks) and toks[j].is_op("(")
                if paren:
                    j += 1
                if j >= len(toks) or toks[j].kind != "ident" or \
                        (paren and (j + 1 >= len(toks) or not toks[j + 1].is_op(")"))):
                    raise LangError("#%s: 'defined' needs a macro name" % directive, start)
                out.append(Token("int", int(toks[j].value in self.macros), t.loc))
                i = j + (2 if paren else 1)
                continue
            out.append(t)
            i += 1
        sub = Lexer("")
        sub.macros = self.macros
        sub._budget = self._budget
        sub.pending = out
        expanded = []
        try:
            while True:
                t = sub.next()
                if t.kind == "eof":
                    break
                expanded.append(t)
        except LangError as e:
            raise LangError("#%s: %s" % (directive, e.message), start)
        if not expanded:
            raise LangError("#%s needs an expression" % directive, start)
        return _CondExpr(expanded, directive, start).value() != 0

    def _define(self, rest, start):
        name_end = 0
        while name_end < len(rest) and rest[name_end] in _IDENT_CHARS:
            name_end += 1
        name = rest[:name_end]
        if not name or rest[0] in _DIGITS:
            raise LangError("#define needs a name", start)
        params = None
        body = rest[name_end:]
        if body.startswith("("):
            close = body.find(")")
            if close < 0:
                raise LangError("missing ')' after the parameters of macro %s" % name, start)
            params = [w.strip() for w in body[1:close].split(",")]
            if params == [""]:
                params = []
            for w in params:
                if w == "..." or w.endswith("..."):
                    raise LangError("variadic macros are not supported (#define %s(...))"
                                    % name, start)
                if not w or w[0] in _DIGITS or not all(c in _IDENT_CHARS for c in w):
                    raise LangError("macro %s: expected a parameter name, found '%s'"
                                    % (name, w), start)
                if params.count(w) > 1:
                    raise LangError("macro %s: duplicate parameter '%s'" % (name, w), start)
            body = body[close + 1:]
        body = body.strip()
        if _has_hash(body):
            raise LangError("the # and ## operators are not supported in macros (#define %s)"
                            % name, start)
        self.macros[name] = Macro(name, params, body, start)

    # -- tokens -----------------------------------------------------------------------------
    def next(self):
        while True:
            tok = self._next_raw()
            if tok.kind == "ident" and tok.value in self.macros and \
                    tok.value not in tok.hide and self._expand(tok):
                continue
            return tok

    def _next_raw(self):
        if self.pending:
            return self.pending.pop(0)
        self.skip_blanks()
        return self._scan()

    def _expand(self, tok):
        """Replace macro ``tok`` (and its arguments) by its expansion, put first in
        ``pending``.  False when a function-like macro's name has no ``(`` after it."""
        macro = self.macros[tok.value]
        hide = tok.hide | frozenset((tok.value,))
        body = self._body(macro, tok)
        if macro.params is None:
            out = [_copy(t, tok.loc, hide, body=True) for t in body]
        else:
            nxt = self._next_raw()
            if not nxt.is_op("("):
                self.pending.insert(0, nxt)
                return False
            args = self._arguments(tok, macro)
            index = dict((p, i) for i, p in enumerate(macro.params))
            expanded = [None] * len(args)
            out = []
            for t in body:
                i = index.get(t.value) if t.kind == "ident" else None
                if i is None:
                    out.append(_copy(t, tok.loc, hide, body=True))
                    continue
                if expanded[i] is None:
                    expanded[i] = self._expand_list(args[i])
                out.extend(_copy(a, a.loc, a.hide | hide) for a in expanded[i])
        self._budget[0] += len(out)
        if self._budget[0] > MAX_EXPANDED:
            raise LangError("macro %s: expansion too large (more than %d tokens)"
                            % (tok.value, MAX_EXPANDED), tok.loc)
        self.pending[0:0] = out
        return True

    def _body(self, macro, tok):
        if macro.tokens is None:
            sub = Lexer(macro.body)
            toks = []
            while True:
                try:
                    t = sub._next_raw()
                except LangError as e:
                    raise LangError("in macro %s: %s" % (macro.name, e.message), tok.loc)
                if t.kind == "eof":
                    break
                toks.append(t)
            macro.tokens = toks
        return macro.tokens

    def _arguments(self, tok, macro):
        """The argument token lists of a use of ``macro`` (its ``(`` taken)."""
        args = [[]]
        depth = 0
        while True:
            t = self._next_raw()
            if t.kind == "eof":
                raise LangError("unterminated argument list of macro %s: missing ')'"
                                % macro.name, tok.loc)
            if t.is_op("("):
                depth += 1
            elif t.is_op(")"):
                if depth == 0:
                    break
                depth -= 1
            elif t.is_op(",") and depth == 0:
                args.append([])
                continue
            args[-1].append(t)
        if not macro.params and args == [[]]:
            args = []
        if len(args) != len(macro.params):
            n = len(macro.params)
            raise LangError("macro %s takes %d argument%s, %d given"
                            % (macro.name, n, "" if n == 1 else "s", len(args)), tok.loc)
        return args

    def _expand_list(self, toks):
        """``toks`` with every macro in them expanded (a macro argument, before it is put
        in place of its parameter)."""
        sub = Lexer("")
        sub.macros = self.macros
        sub._budget = self._budget
        sub.pending = list(toks)
        out = []
        while True:
            t = sub.next()
            if t.kind == "eof":
                return out
            out.append(t)

    def _scan(self):
        text = self.text
        pos = self.pos
        loc = self.loc()
        if pos >= len(text):
            return Token("eof", None, loc)
        c = text[pos]
        if c in _IDENT_START:
            end = pos + 1
            while end < len(text) and text[end] in _IDENT_CHARS:
                end += 1
            self.pos = end
            return Token("ident", text[pos:end], loc)
        if c in _DIGITS:
            return self._number(loc)
        if c == '"':
            value, cols = self._string(loc)
            return Token("str", value, loc, cols)
        if c == "$":
            end = pos + 1
            if end < len(text) and text[end] == "#":
                self.pos = end + 1
                return Token("nparams", None, loc)
            if end < len(text) and text[end] in _DIGITS:
                while end < len(text) and text[end] in _DIGITS:
                    end += 1
                self.pos = end
                return Token("param", int(text[pos + 1:end]), loc)
            if end < len(text) and text[end] in _IDENT_START:
                while end < len(text) and text[end] in _IDENT_CHARS:
                    end += 1
                self.pos = end
                return Token("var", text[pos + 1:end], loc)
            raise LangError("'$' must be followed by a variable name or a parameter number", loc)
        if c == "@":
            end = pos + 1
            while end < len(text) and text[end] in _IDENT_CHARS:
                end += 1
            self.pos = end
            return Token("map", text[pos + 1:end], loc)
        for op in _OP_START.get(c, ()):
            if text.startswith(op, pos):
                self.pos = pos + len(op)
                return Token("op", op, loc)
        if c == "'":
            raise LangError("character literals are not supported; use a string (\"...\") or "
                            "a number", loc)
        raise LangError("unexpected character %r" % c, loc)

    def _number(self, loc):
        text = self.text
        pos = self.pos
        end = pos
        while end < len(text) and (text[end] in _IDENT_CHARS):
            end += 1
        word = text[pos:end]
        self.pos = end
        clean = word.replace("_", "")
        try:
            low = clean.lower()
            if low.startswith("0x"):
                value = int(clean[2:], 16)
            elif low.startswith("0b"):
                value = int(clean[2:], 2)
            elif "e" in low and low.split("e")[0].isdigit() and low.split("e")[1].isdigit():
                base, exp = low.split("e")
                value = int(base) * 10 ** int(exp)
            elif len(clean) > 1 and clean[0] == "0" and clean.isdigit():
                value = int(clean, 8)
            else:
                value = int(clean, 10)
        except ValueError:
            raise LangError("invalid number '%s'" % word, loc)
        if value > U64_MAX:
            raise LangError("number '%s' does not fit in 64 bits" % word, loc)
        return Token("int", value, loc)

    def _string(self, loc):
        text = self.text
        pos = self.pos + 1
        out = []
        cols = []
        col0 = loc[1] - self.pos  # column of text[i] is col0 + i
        while True:
            if pos >= len(text) or text[pos] == "\n":
                raise LangError("unterminated string", loc)
            c = text[pos]
            cols.extend([col0 + pos] * (len(out) + 1 - len(cols)))
            if c == '"':
                self.pos = pos + 1
                return "".join(out), cols
            if c != "\\":
                out.append(c)
                pos += 1
                continue
            if pos + 1 >= len(text):
                raise LangError("unterminated string", loc)
            e = text[pos + 1]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                pos += 2
            elif e == "x":
                digits = ""
                i = pos + 2
                while i < len(text) and len(digits) < 2 and text[i] in _HEX:
                    digits += text[i]
                    i += 1
                if not digits:
                    raise LangError("\\x needs hex digits", (loc[0], loc[1] + pos - self.pos))
                out.append(_byte_char(int(digits, 16)))
                pos = i
            elif e in "01234567":
                digits = ""
                i = pos + 1
                while i < len(text) and len(digits) < 3 and text[i] in "01234567":
                    digits += text[i]
                    i += 1
                out.append(_byte_char(int(digits, 8) & 0xFF))
                pos = i
            else:
                raise LangError("unknown escape sequence '\\%s' in string" % e,
                                (loc[0], loc[1] + pos - self.pos))

    # -- probe names ------------------------------------------------------------------------
    def attach_point(self):
        """Read a probe name (``provider:a:b``, ``BEGIN``...) as one 'attach' token.

        A ``/`` belongs to the name when it starts or continues a path component (after a
        ``:`` or inside a component that began with ``/`` or ``.``); otherwise it ends the
        name, because it opens a predicate.  Quoted parts are kept as written.
        """
        assert not self.pending
        self.skip_blanks()
        text = self.text
        start = self.pos
        loc = self.loc()
        if start >= len(text):
            return Token("eof", None, loc)
        c = text[start]
        if not (c in _IDENT_CHARS or c in "*?\""):
            return self._scan()
        pos = start
        seg_start = start
        while pos < len(text):
            c = text[pos]
            if c in " \t\r\n,{;":
                break
            if c == '"':
                end = text.find('"', pos + 1)
                if end < 0 or "\n" in text[pos:end]:
                    raise LangError("unterminated string in probe name", self.loc(pos))
                pos = end + 1
                continue
            if c == "/":
                if text.startswith("//", pos) or text.startswith("/*", pos):
                    break
                seg = text[seg_start:pos]
                if not (pos == seg_start or seg[:1] in ("/", ".")):
                    break
            if c == ":":
                seg_start = pos + 1
            pos += 1
        self.pos = pos
        return Token("attach", text[start:pos], loc)
