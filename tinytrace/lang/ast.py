"""The syntax tree: one class per construct, shared by every pass.

The parser builds it; semantic analysis fills in ``ty`` on expressions (and resolves
names: ``Var.info``, ``MapRef.info``, ``Probe.points[i].targets``); code generation reads
it.  Every node has ``loc`` = ``(line, col)`` of its first character in the user's text.
"""


class Node:
    __slots__ = ("loc",)
    fields = ()

    def children(self):
        for name in self.fields:
            value = getattr(self, name)
            if isinstance(value, Node):
                yield value
            elif isinstance(value, list):
                for v in value:
                    if isinstance(v, Node):
                        yield v

    def __repr__(self):
        parts = ", ".join("%s=%r" % (f, getattr(self, f)) for f in self.fields)
        return "%s(%s)" % (type(self).__name__, parts)


# -- program structure ---------------------------------------------------------------------

class Program(Node):
    __slots__ = ("probes", "maps", "config", "cdefs", "enumerators")
    fields = ("probes",)

    def __init__(self, probes, loc=(1, 1)):
        self.probes = probes
        self.loc = loc
        self.maps = {}  # name -> MapInfo, filled by sema
        self.config = []  # [(name, value, loc)] of the ``config = { }`` block
        self.cdefs = []   # CStruct / CEnum / CTypedef definitions before the probes, in order
        self.enumerators = {}   # name -> (value, loc) of the script's enum constants


# -- C definitions (``struct NAME { ... };``, ``typedef``) ---------------------------------------

class CType(Node):
    """A C type as written in a definition: ``words`` of an integer type or a typedef name
    (``("unsigned", "long")``, ``("tt_t",)``, ``("void",)``), or ``tag`` (struct, union,
    enum) with ``name`` and, when defined in place, ``body`` (a ``CStruct``)."""
    __slots__ = ("words", "tag", "name", "body")
    fields = ()

    def __init__(self, loc, words=(), tag=None, name=None, body=None):
        self.loc = loc
        self.words = tuple(words)
        self.tag = tag
        self.name = name
        self.body = body

    def text(self):
        if self.tag:
            return "%s %s" % (self.tag, self.name or "<anonymous>")
        return " ".join(self.words)


class CDeclarator(Node):
    """One declared name: ``stars`` pointers, array ``dims`` (outermost first), a bitfield
    width (``bits``, None when not a bitfield) or ``func`` for a function pointer
    ``(*name)(...)``.  ``name`` is None for an unnamed bitfield."""
    __slots__ = ("name", "stars", "dims", "bits", "func")
    fields = ()

    def __init__(self, name, loc, stars=0, dims=(), bits=None, func=False):
        self.name = name
        self.loc = loc
        self.stars = stars
        self.dims = tuple(dims)
        self.bits = bits
        self.func = func


class CStruct(Node):
    """``struct NAME { members };`` (``kind`` struct or union).  ``members`` are
    (CType, CDeclarator) pairs; an anonymous struct/union member has a declarator of None.
    ``members`` is None for a declaration without a body (``struct NAME;``)."""
    __slots__ = ("kind", "name", "members")
    fields = ()

    def __init__(self, kind, name, members, loc):
        self.kind = kind
        self.name = name
        self.members = members
        self.loc = loc


class CEnum(Node):
    """``enum NAME { A, B = 5, C };`` (``name`` None when anonymous).  ``enumerators`` are
    (name, value, loc) with the values already computed by the parser (an enumerator's
    value may use earlier ones); ``signed`` is whether one is negative (the enum is then an
    ``int``, else an ``unsigned int``, as gcc makes it).  ``enumerators`` is None for a
    declaration without a body (``enum NAME;``)."""
    __slots__ = ("name", "enumerators", "signed")
    fields = ()

    def __init__(self, name, enumerators, loc):
        self.name = name
        self.enumerators = enumerators
        self.loc = loc
        self.signed = bool(enumerators) and any(v < 0 for _, v, _ in enumerators)


class CTypedef(Node):
    """``typedef TYPE DECLARATOR;``"""
    __slots__ = ("ctype", "decl")
    fields = ()

    def __init__(self, ctype, decl, loc):
        self.ctype = ctype
        self.decl = decl
        self.loc = loc


class AttachPoint(Node):
    """One probe name as written (``text``), after positional-parameter substitution.

    Sema sets ``provider`` (a provider object), ``spec`` (what the provider parsed) and
    ``targets`` (the concrete attach targets, after wildcard expansion)."""
    __slots__ = ("text", "provider", "spec", "targets")
    fields = ()

    def __init__(self, text, loc):
        self.text = text
        self.loc = loc
        self.provider = None
        self.spec = None
        self.targets = None

    def __repr__(self):
        return "AttachPoint(%r)" % self.text


class Probe(Node):
    __slots__ = ("points", "pred", "body", "index", "vars", "used", "groups")
    fields = ("pred", "body")

    def __init__(self, points, pred, body, loc):
        self.points = points
        self.pred = pred
        self.body = body
        self.loc = loc
        self.index = 0
        self.vars = {}    # name -> VarInfo, filled by sema
        self.used = {}    # provider builtins read (and "probe"), filled by sema
        self.groups = []  # (attach point, [targets]) sharing one program, filled by sema


# -- statements ----------------------------------------------------------------------------

class Block(Node):
    __slots__ = ("stmts",)
    fields = ("stmts",)

    def __init__(self, stmts, loc):
        self.stmts = stmts
        self.loc = loc


class ExprStmt(Node):
    __slots__ = ("expr",)
    fields = ("expr",)

    def __init__(self, expr, loc):
        self.expr = expr
        self.loc = loc


class Assign(Node):
    """``target op value``; ``op`` is ``=`` or a compound operator such as ``+=``."""
    __slots__ = ("target", "op", "value")
    fields = ("target", "value")

    def __init__(self, target, op, value, loc):
        self.target = target
        self.op = op
        self.value = value
        self.loc = loc


class If(Node):
    __slots__ = ("cond", "then", "orelse")
    fields = ("cond", "then", "orelse")

    def __init__(self, cond, then, orelse, loc):
        self.cond = cond
        self.then = then
        self.orelse = orelse  # Block, If (else if) or None
        self.loc = loc


class Unroll(Node):
    __slots__ = ("count", "body", "times")
    fields = ("count", "body")

    def __init__(self, count, body, loc):
        self.count = count
        self.body = body
        self.loc = loc
        self.times = 0


class While(Node):
    __slots__ = ("cond", "body")
    fields = ("cond", "body")

    def __init__(self, cond, body, loc):
        self.cond = cond
        self.body = body
        self.loc = loc


class For(Node):
    """``for ($kv : @map) { body }``: the body runs once per element of the map, with
    ``$kv`` the tuple (key, value); the kernel walks the map (``bpf_for_each_map_elem``)
    and calls the body as a function.  ``for ($i : start..end)`` (``map`` None, ``start``
    and ``end`` set): the body runs for $i = start to end - 1 (``bpf_loop``)."""
    __slots__ = ("var", "map", "start", "end", "body")
    fields = ("var", "map", "start", "end", "body")

    def __init__(self, var, map_, body, loc, range_=None):
        self.var = var
        self.map = map_
        self.start, self.end = range_ if range_ is not None else (None, None)
        self.body = body
        self.loc = loc


class Jump(Node):
    """``return``, ``break`` or ``continue``."""
    __slots__ = ("kind",)
    fields = ()

    def __init__(self, kind, loc):
        self.kind = kind
        self.loc = loc

    def __repr__(self):
        return "Jump(%s)" % self.kind


# -- expressions ---------------------------------------------------------------------------

class Expr(Node):
    __slots__ = ("ty",)


class Int(Expr):
    __slots__ = ("value",)
    fields = ("value",)

    def __init__(self, value, loc):
        self.value = value
        self.loc = loc
        self.ty = None


class Str(Expr):
    __slots__ = ("value", "cols")
    fields = ("value",)

    def __init__(self, value, loc):
        self.value = value  # str; encoded as UTF-8 when it reaches BPF or the output
        self.loc = loc
        self.ty = None
        self.cols = None  # source column of each character (for errors inside the string)

    def loc_of(self, index):
        """The source location of character ``index`` of the value."""
        if self.cols and 0 <= index < len(self.cols):
            return (self.loc[0], self.cols[index])
        return self.loc


class PosParam(Expr):
    """``$N`` (``index`` >= 1) or ``$#`` (``index`` == 0)."""
    __slots__ = ("index",)
    fields = ("index",)

    def __init__(self, index, loc):
        self.index = index
        self.loc = loc
        self.ty = None


class Builtin(Expr):
    """A bare identifier: ``pid``, ``comm``, ``args``, ``arg0``, ``retval``..."""
    __slots__ = ("name",)
    fields = ("name",)

    def __init__(self, name, loc):
        self.name = name
        self.loc = loc
        self.ty = None


class Var(Expr):
    __slots__ = ("name", "info")
    fields = ("name",)

    def __init__(self, name, loc):
        self.name = name
        self.loc = loc
        self.ty = None
        self.info = None


class MapRef(Expr):
    """``@name`` or ``@name[k1, k2, ...]`` (``keys`` empty for a map without keys)."""
    __slots__ = ("name", "keys", "info", "key_ty")
    fields = ("keys",)

    def __init__(self, name, keys, loc):
        self.name = name
        self.keys = keys
        self.loc = loc
        self.ty = None
        self.info = None
        self.key_ty = None

    @property
    def display(self):
        return "@" + self.name


class Call(Expr):
    __slots__ = ("name", "args", "info")
    fields = ("args",)

    def __init__(self, name, args, loc):
        self.name = name
        self.args = args
        self.loc = loc
        self.ty = None
        self.info = None  # set by sema for calls that need per-call data (format ids ...)


class Binop(Expr):
    __slots__ = ("op", "left", "right", "opty")
    fields = ("left", "right")

    def __init__(self, op, left, right, loc):
        self.op = op
        self.left = left
        self.right = right
        self.loc = loc
        self.ty = None
        self.opty = None  # the type both operands are converted to


class Unop(Expr):
    """``-x``, ``!x``, ``~x``, ``*p`` (deref), ``&x``."""
    __slots__ = ("op", "operand")
    fields = ("operand",)

    def __init__(self, op, operand, loc):
        self.op = op
        self.operand = operand
        self.loc = loc
        self.ty = None


class IncDec(Expr):
    """``x++``, ``x--``, ``++x``, ``--x`` on a variable or map element."""
    __slots__ = ("op", "target", "prefix")
    fields = ("target",)

    def __init__(self, op, target, prefix, loc):
        self.op = op
        self.target = target
        self.prefix = prefix
        self.loc = loc
        self.ty = None


class Ternary(Expr):
    __slots__ = ("cond", "then", "orelse")
    fields = ("cond", "then", "orelse")

    def __init__(self, cond, then, orelse, loc):
        self.cond = cond
        self.then = then
        self.orelse = orelse
        self.loc = loc
        self.ty = None


class Field(Expr):
    """``e->name`` (``arrow``) or ``e.name``; for tuples ``name`` is the index as a string."""
    __slots__ = ("expr", "name", "arrow", "field")
    fields = ("expr",)

    def __init__(self, expr, name, arrow, loc):
        self.expr = expr
        self.name = name
        self.arrow = arrow
        self.loc = loc
        self.ty = None
        self.field = None


class Index(Expr):
    __slots__ = ("expr", "index")
    fields = ("expr", "index")

    def __init__(self, expr, index, loc):
        self.expr = expr
        self.index = index
        self.loc = loc
        self.ty = None


class Cast(Expr):
    """``(typename) expr``; ``typename`` is the text, e.g. ``uint32`` or ``struct foo *``."""
    __slots__ = ("typename", "expr")
    fields = ("expr",)

    def __init__(self, typename, expr, loc):
        self.typename = typename
        self.expr = expr
        self.loc = loc
        self.ty = None


class Tuple(Expr):
    __slots__ = ("elems",)
    fields = ("elems",)

    def __init__(self, elems, loc):
        self.elems = elems
        self.loc = loc
        self.ty = None


def walk(node):
    """Every node under ``node`` (itself included), parents before children."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        kids = list(n.children())
        kids.reverse()
        stack.extend(kids)
