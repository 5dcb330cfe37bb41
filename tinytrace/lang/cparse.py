"""The parser of C definitions in a script: ``struct``/``union`` definitions and ``typedef``s
before the probes, as bpftrace accepts them (its scripts carry the layouts of structs a
system has no BTF for).

Only declarations that describe memory are read: integer types, pointers (function pointers
too, as plain pointers), fixed arrays, bitfields, nested and anonymous structs and unions,
enums (4-byte ints whose constants the program uses by name) and typedefs of those.  A
struct tag or an enumerator defined inside another struct is visible everywhere, as in C.
Layouts are computed later (``tinytrace.lang.clayout``), when the target is known.
"""
from tinytrace.lang import ast
from tinytrace.lang.source import LangError

INT_WORDS = frozenset(("unsigned", "signed", "char", "short", "int", "long"))
QUALIFIERS = frozenset(("const", "volatile", "restrict", "__restrict", "__volatile__",
                        "__const"))
TAGS = frozenset(("struct", "union", "enum"))
STARTS = frozenset(("struct", "union", "typedef", "enum"))


def definition(p, first):
    """Parse the definition that starts with attach token ``first`` (``struct``, ``union``,
    ``typedef`` or ``enum``) into ``p.cdefs``; stops right after its ``;``."""
    word = first.value
    if word == "enum":
        from tinytrace.lang.lexer import Token
        ctype = _ctype(p, Token("ident", word, first.loc))
        if p.peek().kind == "ident":
            raise LangError("declaring variables with an enum definition is not supported; "
                            "end the definition with ';'", p.peek().loc)
        _end(p, "after the definition of enum %s" % (ctype.name or "<anonymous>"))
        return
    if word == "typedef":
        ctype = _ctype(p, p.next())
        decl = _declarator(p, typedef=True)
        if decl.name is None:
            raise LangError("expected the new type's name after typedef %s" % ctype.text(),
                            decl.loc)
        _end(p, "after the typedef of %s" % decl.name)
        p.cdefs.append(ast.CTypedef(ctype, decl, first.loc))
        p.typedefs.add(decl.name)
        return
    name = p.next()
    if name.kind != "ident":
        raise LangError("expected a name after '%s', found %s" % (word, name.describe()),
                        name.loc)
    if p.at_op(";"):
        p.next()
        p.cdefs.append(ast.CStruct(word, name.value, None, first.loc))   # declared only
        return
    if not p.at_op("{"):
        raise LangError("expected '{' or ';' after '%s %s', found %s"
                        % (word, name.value, p.peek().describe()), p.peek().loc)
    members = _members(p, word, name.value)
    if p.peek().kind == "ident":
        raise LangError("declaring variables with a struct definition is not supported; "
                        "end the definition with ';'", p.peek().loc)
    _end(p, "after the definition of %s %s" % (word, name.value))
    p.cdefs.append(ast.CStruct(word, name.value, members, first.loc))


def _end(p, context):
    tok = p.peek()
    if not tok.is_op(";"):
        raise LangError("expected ';' %s, found %s" % (context, tok.describe()), tok.loc)
    p.next()


def _skip_qualifiers(p):
    while p.peek().kind == "ident" and p.peek().value in QUALIFIERS:
        p.next()


def _ctype(p, tok):
    """The type that starts with ``tok`` (already taken)."""
    while tok.kind == "ident" and tok.value in QUALIFIERS:
        tok = p.next()
    if tok.kind != "ident":
        raise LangError("expected a type, found %s" % tok.describe(), tok.loc)
    if tok.value in TAGS:
        name = None
        if p.peek().kind == "ident":
            name = p.next().value
        body = None
        if p.at_op("{") and tok.value == "enum":
            body = _enum_body(p, name, tok)
            return ast.CType(tok.loc, tag="enum", name=name,
                             body=body if name is None else None)
        if p.at_op("{"):
            members = _members(p, tok.value, name)
            body = ast.CStruct(tok.value, name, members, tok.loc)
            if name is not None:     # a tag defined in place is visible everywhere (C)
                p.cdefs.append(body)
                body = None
        elif name is None:
            raise LangError("expected a name or '{' after '%s', found %s"
                            % (tok.value, p.peek().describe()), p.peek().loc)
        _skip_qualifiers(p)
        return ast.CType(tok.loc, tag=tok.value, name=name, body=body)
    words = [tok.value]
    if tok.value in INT_WORDS:
        while True:
            nxt = p.peek()
            if nxt.kind == "ident" and nxt.value in QUALIFIERS:
                p.next()
            elif nxt.kind == "ident" and nxt.value in INT_WORDS:
                words.append(p.next().value)
            else:
                break
    else:
        _skip_qualifiers(p)
    return ast.CType(tok.loc, words=words)


def _members(p, kind, name):
    """``{ member; ... }`` -> [(CType, CDeclarator or None)]."""
    open_ = p.next()
    out = []
    while True:
        tok = p.next()
        if tok.is_op("}"):
            return out
        if tok.is_op(";"):
            continue
        if tok.kind == "eof":
            raise LangError("missing '}' to close %s %s opened at %d:%d"
                            % (kind, name or "", open_.loc[0], open_.loc[1]), tok.loc)
        ctype = _ctype(p, tok)
        if p.at_op(";"):
            if ctype.tag == "enum":
                p.next()                      # only defines the enum (or declares its tag)
                continue
            if ctype.body is not None:
                p.next()
                out.append((ctype, None))     # anonymous struct/union: members flattened
                continue
            if ctype.tag in ("struct", "union") and ctype.name is not None:
                p.next()                      # only declares the tag (C allows it)
                continue
            raise LangError("expected a member name after %s" % ctype.text(), p.peek().loc)
        while True:
            out.append((ctype, _declarator(p)))
            if p.accept_op(","):
                continue
            tok = p.peek()
            if not tok.is_op(";"):
                raise LangError("expected ';' after the member, found %s" % tok.describe(),
                                tok.loc)
            p.next()
            break


# An enum is a 4-byte int: unsigned when no value is negative (gcc's choice), else signed.
ENUM_MIN, INT_MAX, UINT_MAX = -(1 << 31), (1 << 31) - 1, (1 << 32) - 1


def _enum_body(p, name, kw):
    """``{ A, B = 5, C = B + 1 }`` of ``enum NAME`` (``kw`` is the ``enum`` token): the
    values are computed here, so later enumerators (and array sizes) can use them."""
    open_ = p.next()
    if name is not None:
        old = p.enums.get(name)
        if old is not None:
            raise LangError("redefinition of enum %s (first defined at %d:%d)"
                            % (name, old.loc[0], old.loc[1]), kw.loc)
    what = "enum %s" % (name or "<anonymous>")
    items = []
    value = -1
    low = high = 0
    while True:
        tok = p.next()
        if tok.is_op("}"):
            break
        if tok.kind == "eof":
            raise LangError("missing '}' to close %s opened at %d:%d"
                            % (what, open_.loc[0], open_.loc[1]), tok.loc)
        if tok.kind != "ident":
            raise LangError("expected an enumerator name in %s, found %s"
                            % (what, tok.describe()), tok.loc)
        old = p.enumerators.get(tok.value)
        if old is not None:
            raise LangError("duplicate enumerator '%s' (first defined at %d:%d)"
                            % (tok.value, old[1][0], old[1][1]), tok.loc)
        if p.accept_op("="):
            value = _const(p, p.ternary())
        else:
            value += 1
        low, high = min(low, value), max(high, value)
        if value < ENUM_MIN or value > UINT_MAX or (low < 0 and high > INT_MAX):
            raise LangError("enumerator %s = %d is out of range: an enum is a 4-byte int "
                            "(%d..%d, or up to %d when no value is negative)"
                            % (tok.value, value, ENUM_MIN, INT_MAX, UINT_MAX), tok.loc)
        p.enumerators[tok.value] = (value, tok.loc)
        items.append((tok.value, value, tok.loc))
        if not p.accept_op(",") and not p.at_op("}"):
            raise LangError("expected ',' or '}' after enumerator %s, found %s"
                            % (tok.value, p.peek().describe()), p.peek().loc)
    if not items:
        raise LangError("%s has no enumerators" % what, open_.loc)
    enum = ast.CEnum(name, items, kw.loc)
    p.cdefs.append(enum)
    if name is not None:
        p.enums[name] = enum
    return enum


def _c_div(a, b, loc, op):
    if b == 0:
        raise LangError("division by zero in an enumerator's value", loc)
    q = abs(a) // abs(b)
    q = q if (a < 0) == (b < 0) else -q
    return q if op == "/" else a - q * b


_BINOPS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "<<": lambda a, b: a << b, ">>": lambda a, b: a >> b, "&": lambda a, b: a & b,
    "|": lambda a, b: a | b, "^": lambda a, b: a ^ b,
    "==": lambda a, b: int(a == b), "!=": lambda a, b: int(a != b),
    "<": lambda a, b: int(a < b), "<=": lambda a, b: int(a <= b),
    ">": lambda a, b: int(a > b), ">=": lambda a, b: int(a >= b),
    "&&": lambda a, b: int(bool(a and b)), "||": lambda a, b: int(bool(a or b)),
}


def _const(p, e):
    """The value of a constant expression: numbers, earlier enumerators, C's operators."""
    if isinstance(e, ast.Int):
        return e.value
    if isinstance(e, ast.Builtin):
        hit = p.enumerators.get(e.name)
        if hit is None:
            raise LangError("'%s' is not a constant: an enumerator's value is built from "
                            "numbers and enumerators defined before it" % e.name, e.loc)
        return hit[0]
    if isinstance(e, ast.Unop) and e.op in ("-", "~", "!"):
        v = _const(p, e.operand)
        return -v if e.op == "-" else ~v if e.op == "~" else int(not v)
    if isinstance(e, ast.Binop):
        a, b = _const(p, e.left), _const(p, e.right)
        if e.op in ("/", "%"):
            return _c_div(a, b, e.loc, e.op)
        if e.op in ("<<", ">>") and not 0 <= b < 64:
            raise LangError("shift by %d in an enumerator's value" % b, e.loc)
        return _BINOPS[e.op](a, b)
    if isinstance(e, ast.Ternary):
        return _const(p, e.then) if _const(p, e.cond) else _const(p, e.orelse)
    raise LangError("an enumerator's value must be a constant expression (numbers, "
                    "enumerators and operators)", e.loc)


def _int(p, what):
    tok = p.next()
    if tok.kind == "ident" and tok.value in p.enumerators:
        return p.enumerators[tok.value][0]
    if tok.kind != "int":
        raise LangError("%s must be a number, found %s" % (what, tok.describe()), tok.loc)
    return tok.value


def _declarator(p, typedef=False):
    stars = 0
    while True:
        if p.accept_op("*"):
            stars += 1
        elif p.peek().kind == "ident" and p.peek().value in QUALIFIERS:
            p.next()
        else:
            break
    tok = p.peek()
    func = False
    if tok.is_op("(") and p.at_op("*", 1):
        p.next()
        p.next()
        name = p.next()
        if name.kind != "ident":
            raise LangError("expected a name in the function pointer, found %s"
                            % name.describe(), name.loc)
        if not p.at_op(")"):
            raise LangError("only plain function pointers (type (*name)(args)) are supported"
                            ", found %s" % p.peek().describe(), p.peek().loc)
        p.next()
        if not p.at_op("("):
            raise LangError("expected '(' and the function's parameters, found %s"
                            % p.peek().describe(), p.peek().loc)
        depth = 0
        while True:
            t = p.next()
            if t.is_op("("):
                depth += 1
            elif t.is_op(")"):
                depth -= 1
                if depth == 0:
                    break
            elif t.kind == "eof" or t.is_op(";") or t.is_op("{") or t.is_op("}"):
                raise LangError("expected ')' to close the function's parameters, found %s"
                                % t.describe(), t.loc)
        return ast.CDeclarator(name.value, name.loc, stars=1, func=True)
    if tok.kind == "ident":
        p.next()
        name, loc = tok.value, tok.loc
    elif tok.is_op(":") and not typedef:
        name, loc = None, tok.loc
    else:
        raise LangError("expected a %s name, found %s"
                        % ("type" if typedef else "member", tok.describe()), tok.loc)
    dims = []
    while p.at_op("["):
        open_ = p.next()
        if p.at_op("]"):
            raise LangError("arrays without a size (flexible array members) are not "
                            "supported; give the size", open_.loc)
        n = _int(p, "an array size")
        if n == 0:
            raise LangError("an array needs at least one element", open_.loc)
        if not p.at_op("]"):
            raise LangError("expected ']' after the array size, found %s"
                            % p.peek().describe(), p.peek().loc)
        p.next()
        dims.append(n)
    bits = None
    if not typedef and p.at_op(":"):
        p.next()
        bits = _int(p, "a bitfield width")
        if name is not None and bits == 0:
            raise LangError("a named bitfield cannot be 0 bits wide", loc)
        if dims:
            raise LangError("an array cannot be a bitfield", loc)
    return ast.CDeclarator(name, loc, stars=stars, dims=dims, bits=bits, func=func)
