"""The parser: tokens -> ``tinytrace.lang.ast`` tree.

Recursive descent with one function per precedence level (C's levels, as bpftrace uses
them).  Assignments are statements, not expressions.  Inside a predicate ``/.../`` a bare
``/`` closes the predicate; division there needs parentheses, as in bpftrace.
"""
import re

from tinytrace.lang import ast
from tinytrace.lang.lexer import Lexer
from tinytrace.lang.source import LangError

_BINARY_LEVELS = (
    ("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="),
    ("<<", ">>"), ("+", "-"), ("*", "/", "%"),
)
_ASSIGN_OPS = frozenset(("=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="))
# Type names a parenthesised cast may start with.
CAST_TYPES = frozenset((
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "int", "uint", "bool", "char", "short", "long", "unsigned", "signed",
    "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "string", "inet", "buffer",
))
_STRUCT_WORDS = frozenset(("struct", "union", "enum"))
_PARAM_RE = re.compile(r"\$(#|\d+)")


def parse(text, params=()):
    """Parse ``text`` into an ``ast.Program``; ``params`` are the positional parameters
    (strings), substituted where ``$N`` appears in probe names."""
    return Parser(text, params).program()


class Parser:
    def __init__(self, text, params=()):
        self.lexer = Lexer(text)
        self.params = list(params)
        self.buf = []
        self.in_pred = 0  # > 0 while parsing a predicate outside brackets
        self.cdefs = []       # C struct/union definitions and typedefs (``cparse``)
        self.typedefs = set()  # names they define: casts and sizeof() accept them
        self.enums = {}        # enum tag -> ast.CEnum
        self.enumerators = {}  # enum constant -> (value, loc)

    # -- token plumbing ---------------------------------------------------------------------
    def peek(self, n=0):
        while len(self.buf) <= n:
            self.buf.append(self.lexer.next())
        return self.buf[n]

    def next(self):
        tok = self.peek()
        self.buf.pop(0)
        return tok

    def at_op(self, text, n=0):
        return self.peek(n).is_op(text)

    def accept_op(self, text):
        if self.at_op(text):
            return self.next()
        return None

    def expect_op(self, text, context=None):
        tok = self.peek()
        if tok.is_op(text):
            return self.next()
        what = "expected '%s'" % text
        if context:
            what += " " + context
        raise LangError("%s, found %s" % (what, tok.describe()), tok.loc)

    def at_ident(self, word, n=0):
        tok = self.peek(n)
        return tok.kind == "ident" and tok.value == word

    # -- program and probes -----------------------------------------------------------------
    def program(self):
        probes = []
        config = []
        while True:
            assert not self.buf
            tok = self.lexer.attach_point()
            if tok.kind == "eof":
                break
            if tok.kind == "attach" and tok.value == "config" and self.at_op("="):
                if probes:
                    raise LangError("the config block must come before the first probe",
                                    tok.loc)
                if config:
                    raise LangError("only one config block is allowed", tok.loc)
                config = self.config_block()
                continue
            if tok.kind == "attach" and tok.value in ("struct", "union", "typedef", "enum"):
                if probes:
                    raise LangError("C definitions (%s) must come before the first probe"
                                    % tok.value, tok.loc)
                from tinytrace.lang import cparse
                cparse.definition(self, tok)
                continue
            probes.append(self.probe(tok))
        if not probes:
            raise LangError("the program has no probes", (1, 1))
        for i, p in enumerate(probes):
            p.index = i
        prog = ast.Program(probes)
        prog.config = config
        prog.cdefs = self.cdefs
        prog.enumerators = self.enumerators
        return prog

    def config_block(self):
        """``config = { name = value; ... }``: [(name, value, loc)] (values are ints or
        text: a number, a word such as ``perf``, or a string literal)."""
        self.expect_op("=")
        open_ = self.expect_op("{", "after 'config ='")
        out = []
        while True:
            tok = self.next()
            if tok.is_op("}"):
                break
            if tok.is_op(";"):
                continue
            if tok.kind == "eof":
                raise LangError("missing '}' to close the config block opened at %d:%d"
                                % open_.loc, tok.loc)
            if tok.kind != "ident":
                raise LangError("expected a setting name in the config block, found %s"
                                % tok.describe(), tok.loc)
            self.expect_op("=", "after '%s'" % tok.value)
            val = self.next()
            if val.kind in ("int", "str", "ident"):
                value = val.value
            else:
                raise LangError("expected a number, a word or a string as the value of %s, "
                                "found %s" % (tok.value, val.describe()), val.loc)
            out.append((tok.value, value, tok.loc))
            nxt = self.peek()
            if not (nxt.is_op(";") or nxt.is_op("}")):
                raise LangError("expected ';' or '}' after the value of %s, found %s"
                                % (tok.value, nxt.describe()), nxt.loc)
        return out

    def probe(self, first):
        if first.kind != "attach":
            raise LangError("expected a probe (such as tracepoint:CATEGORY:NAME or BEGIN), "
                            "found %s" % first.describe(), first.loc)
        self._reject_definitions(first)
        points = [self.attach_point(first)]
        while self.accept_op(","):
            assert not self.buf
            tok = self.lexer.attach_point()
            if tok.kind != "attach":
                raise LangError("expected a probe after ',', found %s" % tok.describe(),
                                tok.loc)
            points.append(self.attach_point(tok))
        pred = None
        if self.at_op("/"):
            slash = self.next()
            self.in_pred += 1
            try:
                pred = self.expr()
            finally:
                self.in_pred -= 1
            tok = self.peek()
            if not tok.is_op("/"):
                raise LangError("expected '/' to close the predicate that starts at %d:%d, "
                                "found %s" % (slash.loc[0], slash.loc[1], tok.describe()),
                                tok.loc)
            self.next()
        tok = self.peek()
        if not tok.is_op("{"):
            raise LangError("expected '{' after the probe name, found %s" % tok.describe(),
                            tok.loc)
        body = self.block()
        return ast.Probe(points, pred, body, first.loc)

    def _reject_definitions(self, tok):
        word = tok.value
        if word in ("import", "macro", "fn"):
            raise LangError("'%s' is not supported" % word, tok.loc)

    def attach_point(self, tok):
        text = tok.value
        if "$" in text:
            def sub(m):
                if m.group(1) == "#":
                    return str(len(self.params))
                n = int(m.group(1))
                if n < 1 or n > len(self.params):
                    raise LangError("probe name uses $%d but %d positional parameter%s given"
                                    % (n, len(self.params),
                                       " was" if len(self.params) == 1 else "s were"), tok.loc)
                return self.params[n - 1]
            text = _PARAM_RE.sub(sub, text)
        return ast.AttachPoint(text, tok.loc)

    # -- statements -------------------------------------------------------------------------
    def block(self):
        open_ = self.expect_op("{")
        saved, self.in_pred = self.in_pred, 0
        stmts = []
        try:
            while True:
                tok = self.peek()
                if tok.is_op("}"):
                    self.next()
                    break
                if tok.kind == "eof":
                    raise LangError("missing '}' to close the block opened at %d:%d"
                                    % open_.loc, tok.loc)
                if tok.is_op(";"):
                    self.next()
                    continue
                stmt = self.statement()
                stmts.append(stmt)
                if isinstance(stmt, (ast.If, ast.Unroll, ast.While, ast.For, ast.Block)):
                    continue
                tok = self.peek()
                if tok.is_op(";"):
                    self.next()
                elif not tok.is_op("}"):
                    raise LangError("expected ';' or '}' after the statement, found %s"
                                    % tok.describe(), tok.loc)
        finally:
            self.in_pred = saved
        return ast.Block(stmts, open_.loc)

    def statement(self):
        tok = self.peek()
        if tok.kind == "ident":
            word = tok.value
            if word == "if":
                return self.if_stmt()
            if word == "unroll":
                self.next()
                self.expect_op("(", "after 'unroll'")
                count = self.expr()
                self.expect_op(")", "to close 'unroll ('")
                return ast.Unroll(count, self.block(), tok.loc)
            if word == "while":
                self.next()
                self.expect_op("(", "after 'while'")
                cond = self.expr()
                self.expect_op(")", "to close 'while ('")
                return ast.While(cond, self.block(), tok.loc)
            if word in ("return", "break", "continue"):
                self.next()
                if word == "return" and not (self.at_op(";") or self.at_op("}")):
                    raise LangError("'return' takes no value in a probe", self.peek().loc)
                return ast.Jump(word, tok.loc)
            if word == "for":
                return self.for_stmt()
            if word == "else":
                raise LangError("'else' without a matching 'if'", tok.loc)
            if word == "let":
                self.next()
                var = self.peek()
                if var.kind != "var":
                    raise LangError("expected a variable ($name) after 'let', found %s"
                                    % var.describe(), var.loc)
                if not self.at_op("=", 1):
                    raise LangError("'let' needs an initial value: let $%s = ..." % var.value,
                                    self.peek(1).loc)
        if tok.is_op("{"):
            return self.block()
        expr = self.expr()
        op = self.peek()
        if op.kind == "op" and op.value in _ASSIGN_OPS:
            self.next()
            if not isinstance(expr, (ast.Var, ast.MapRef)):
                raise LangError("the left side of '%s' must be a variable ($x) or a map (@m)"
                                % op.value, expr.loc)
            value = self.expr()
            return ast.Assign(expr, op.value, value, expr.loc)
        return ast.ExprStmt(expr, expr.loc)

    def for_stmt(self):
        tok = self.next()
        self.expect_op("(", "after 'for'")
        var = self.peek()
        if var.kind != "var":
            raise LangError("expected a variable ($name) after 'for (', found %s"
                            % var.describe(), var.loc)
        self.next()
        if not self.accept_op(":"):
            raise LangError("expected ':' after 'for (%s', found %s (loops are written "
                            "for ($kv : @map) { ... })" % ("$" + var.value,
                                                           self.peek().describe()),
                            self.peek().loc)
        target = self.peek()
        if target.kind != "map":
            start = self.binary(0)
            dot = self.peek()
            if not (dot.is_op(".") and self.at_op(".", 1)):
                raise LangError("'for' loops over a map (@name) or a range (start..end): "
                                "expected '..' after the start, found %s" % dot.describe(),
                                dot.loc)
            self.next()
            self.next()
            end = self.binary(0)
            self.expect_op(")", "to close 'for ('")
            body = self.block()
            return ast.For(ast.Var(var.value, var.loc), None, body, tok.loc,
                           (start, end))
        self.next()
        if self.at_op("["):
            raise LangError("'for' loops over a whole map: write @%s, without keys"
                            % target.value, self.peek().loc)
        self.expect_op(")", "to close 'for ('")
        body = self.block()
        return ast.For(ast.Var(var.value, var.loc), ast.MapRef(target.value, [], target.loc),
                       body, tok.loc)

    def if_stmt(self):
        tok = self.next()
        self.expect_op("(", "after 'if'")
        cond = self.expr()
        self.expect_op(")", "to close 'if ('")
        then = self.block()
        orelse = None
        if self.at_ident("else"):
            self.next()
            if self.at_ident("if"):
                orelse = self.if_stmt()
            else:
                orelse = self.block()
        return ast.If(cond, then, orelse, tok.loc)

    # -- expressions ------------------------------------------------------------------------
    def expr(self):
        return self.ternary()

    def ternary(self):
        cond = self.binary(0)
        if self.at_op("?"):
            q = self.next()
            saved, self.in_pred = self.in_pred, 0
            try:
                then = self.expr()
            finally:
                self.in_pred = saved
            self.expect_op(":", "in the conditional expression")
            orelse = self.ternary()
            return ast.Ternary(cond, then, orelse, q.loc)
        return cond

    def binary(self, level):
        if level == len(_BINARY_LEVELS):
            return self.unary()
        ops = _BINARY_LEVELS[level]
        left = self.binary(level + 1)
        while True:
            tok = self.peek()
            if tok.kind != "op" or tok.value not in ops:
                return left
            if tok.value == "/" and self.in_pred:
                return left
            self.next()
            right = self.binary(level + 1)
            left = ast.Binop(tok.value, left, right, tok.loc)

    def unary(self):
        tok = self.peek()
        if tok.kind == "op":
            if tok.value in ("!", "~", "-", "*", "&", "+"):
                self.next()
                operand = self.unary()
                if tok.value == "+":
                    return operand
                if tok.value == "-" and isinstance(operand, ast.Int) and operand.value > 0:
                    return ast.Int(-operand.value, tok.loc)
                return ast.Unop(tok.value, operand, tok.loc)
            if tok.value in ("++", "--"):
                self.next()
                target = self.unary()
                self._check_incdec_target(target, tok)
                return ast.IncDec(tok.value, target, True, tok.loc)
            if tok.value == "(" and self._at_cast():
                return self.cast()
        return self.postfix()

    def _at_cast(self):
        t1 = self.peek(1)
        if t1.kind != "ident":
            return False
        if t1.value in _STRUCT_WORDS:
            return True
        if t1.value in self.typedefs:
            t2 = self.peek(2)
            return t2.is_op(")") or t2.is_op("*")
        if t1.value not in CAST_TYPES:
            return False
        t2 = self.peek(2)
        return t2.is_op(")") or t2.is_op("*") or t2.is_op("[") or \
            (t2.kind == "ident" and t2.value in CAST_TYPES)

    def cast(self):
        open_ = self.next()
        words = []
        while True:
            tok = self.peek()
            if tok.is_op(")"):
                self.next()
                break
            if tok.kind == "ident":
                words.append(tok.value)
            elif tok.is_op("*"):
                words.append("*")
            elif tok.is_op("[") or tok.is_op("]") or tok.kind == "int":
                words.append(str(tok.value))
            else:
                raise LangError("expected ')' to close the cast, found %s" % tok.describe(),
                                tok.loc)
            self.next()
        typename = " ".join(words).replace(" [ ", "[").replace(" ]", "]").replace(" *", "*")
        operand = self.unary()
        return ast.Cast(typename, operand, open_.loc)

    def _check_incdec_target(self, target, tok):
        if not isinstance(target, (ast.Var, ast.MapRef)):
            raise LangError("'%s' needs a variable ($x) or a map (@m)" % tok.value, tok.loc)

    def postfix(self):
        expr = self.primary()
        while True:
            tok = self.peek()
            if tok.kind != "op":
                return expr
            if tok.value == "[":
                self.next()
                saved, self.in_pred = self.in_pred, 0
                try:
                    index = self.expr()
                finally:
                    self.in_pred = saved
                self.expect_op("]", "to close the index")
                expr = ast.Index(expr, index, tok.loc)
            elif tok.value in (".", "->"):
                if tok.value == "." and self.at_op(".", 1):
                    return expr         # ``a..b``: a range (for loops)
                self.next()
                name = self.peek()
                if name.kind == "ident":
                    self.next()
                    expr = ast.Field(expr, name.value, tok.value == "->", name.loc)
                elif name.kind == "int" and tok.value == ".":
                    self.next()
                    expr = ast.Field(expr, str(name.value), False, name.loc)
                else:
                    raise LangError("expected a field name after '%s', found %s"
                                    % (tok.value, name.describe()), name.loc)
            elif tok.value in ("++", "--"):
                self.next()
                self._check_incdec_target(expr, tok)
                expr = ast.IncDec(tok.value, expr, False, tok.loc)
            else:
                return expr

    def primary(self):
        tok = self.next()
        kind = tok.kind
        if kind == "int":
            return ast.Int(tok.value, tok.loc)
        if kind == "str":
            node = ast.Str(tok.value, tok.loc)
            node.cols = tok.cols
            return node
        if kind == "param":
            if tok.value == 0:
                raise LangError("positional parameters start at $1", tok.loc)
            return ast.PosParam(tok.value, tok.loc)
        if kind == "nparams":
            return ast.PosParam(0, tok.loc)
        if kind == "var":
            return ast.Var(tok.value, tok.loc)
        if kind == "map":
            keys = []
            if self.at_op("["):
                open_ = self.next()
                saved, self.in_pred = self.in_pred, 0
                try:
                    if self.at_op("]"):
                        raise LangError("empty map key: write @%s or @%s[key]"
                                        % (tok.value, tok.value), self.peek().loc)
                    keys.append(self.expr())
                    while self.accept_op(","):
                        keys.append(self.expr())
                finally:
                    self.in_pred = saved
                if not self.at_op("]"):
                    raise LangError("expected ']' to close the key of @%s opened at %d:%d, "
                                    "found %s" % (tok.value, open_.loc[0], open_.loc[1],
                                                  self.peek().describe()), self.peek().loc)
                self.next()
            return ast.MapRef(tok.value, keys, tok.loc)
        if kind == "ident":
            if tok.value in ("if", "else", "while", "unroll", "return", "break", "continue",
                             "for", "let"):
                raise LangError("'%s' cannot be used in an expression" % tok.value, tok.loc)
            if self.at_op("("):
                return self.call(tok)
            return ast.Builtin(tok.value, tok.loc)
        if tok.is_op("("):
            saved, self.in_pred = self.in_pred, 0
            try:
                if self.at_op(")"):
                    raise LangError("empty parentheses", self.peek().loc)
                first = self.expr()
                if self.at_op(","):
                    elems = [first]
                    while self.accept_op(","):
                        if self.at_op(")"):
                            break
                        elems.append(self.expr())
                    self.expect_op(")", "to close the tuple")
                    return ast.Tuple(elems, tok.loc)
                self.expect_op(")", "to close '('")
                return first
            finally:
                self.in_pred = saved
        if kind == "eof":
            raise LangError("unexpected end of input in an expression", tok.loc)
        raise LangError("expected an expression, found %s" % tok.describe(), tok.loc)

    def call(self, name):
        if name.value == "offsetof" and self.peek(1).kind == "ident" and \
                self.peek(1).value in ("struct", "union"):
            return self.offsetof(name)
        if name.value == "sizeof" and self.peek(1).kind == "ident" and (
                self.peek(1).value in _STRUCT_WORDS and self.peek(2).kind == "ident"
                and self.peek(3).is_op(")") or
                self.peek(1).value in self.typedefs and self.peek(2).is_op(")")):
            # a type, not an expression
            self.next()
            first = self.next()
            words = [first.value]
            if words[0] in _STRUCT_WORDS:
                words.append(self.next().value)
            self.next()
            return ast.Call(name.value, [ast.Builtin(" ".join(words), first.loc)], name.loc)
        self.expect_op("(")
        args = []
        saved, self.in_pred = self.in_pred, 0
        try:
            if not self.at_op(")"):
                args.append(self.expr())
                while self.accept_op(","):
                    args.append(self.expr())
            if not self.at_op(")"):
                raise LangError("expected ',' or ')' in the arguments of %s(), found %s"
                                % (name.value, self.peek().describe()), self.peek().loc)
            self.next()
        finally:
            self.in_pred = saved
        return ast.Call(name.value, args, name.loc)

    def offsetof(self, name):
        """``offsetof(struct NAME, a.b)``: a type and a member path, not expressions."""
        self.expect_op("(")
        kw = self.next()
        tname = self.next()
        if tname.kind != "ident":
            raise LangError("expected a struct name after '%s', found %s"
                            % (kw.value, tname.describe()), tname.loc)
        what = ast.Builtin("%s %s" % (kw.value, tname.value), kw.loc)
        self.expect_op(",", "after the type in offsetof()")
        first = self.next()
        if first.kind != "ident":
            raise LangError("expected a member name, found %s" % first.describe(), first.loc)
        parts = [first.value]
        while self.accept_op("."):
            t = self.next()
            if t.kind != "ident":
                raise LangError("expected a member name after '.', found %s"
                                % t.describe(), t.loc)
            parts.append(t.value)
        self.expect_op(")", "to close offsetof(")
        path = ast.Str(".".join(parts), first.loc)
        return ast.Call(name.value, [what, path], name.loc)
