"""Moving references from one schema to another by editing parse trees, never by text search.

Catalog definitions are read with `search_path = pg_catalog`, so every reference to a user
relation, type or function is schema-qualified. `Renames` says which qualified names move
(a changed table `OLD.account` -> `NEW.account`, a view copied into NEW, ...); `rewrite`
walks a pglast tree and changes exactly those `RangeVar`, `TypeName`, `FuncCall` and
three-part `ColumnRef` nodes, leaving every other reference (an unchanged table in OLD, a
table in public) where it was. The tree is printed back with pglast's `RawStream`.

Bodies of plpgsql and non-atomic SQL functions are text that PostgreSQL resolves at run time.
`scan_body` reads them with PostgreSQL's own lexer (pglast's scanner): comments and string
literals are single tokens, so only a real `OLD . name` token sequence is moved, and anything
that could build SQL from strings (`EXECUTE`) is reported instead of rewritten.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError, scan
from pglast.stream import RawStream, maybe_double_quote_name
from pglast.visitors import Ancestor

Name = tuple[str, str]  # (schema, name), unquoted


@lru_cache(maxsize=16384)
def quote(name: str) -> str:
    """An identifier as PostgreSQL needs it written (quoted only when it must be)."""
    return maybe_double_quote_name(name)


def qname(schema: str, name: str) -> str:
    return f"{quote(schema)}.{quote(name)}"


def role(name: str) -> str:
    """A role as GRANT wants it: PUBLIC is a keyword, not a name."""
    return "PUBLIC" if name == "PUBLIC" else quote(name)


def literal(text: str) -> str:
    """A string constant (comments are the only free text the DDL carries)."""
    escaped = text.replace("'", "''")
    if "\\" in text:
        return "E'" + escaped.replace("\\", "\\\\") + "'"
    return f"'{escaped}'"


@dataclass
class Renames:
    """Qualified names that move. Relations cover their row types too."""

    relations: dict[Name, Name] = field(default_factory=dict)
    functions: dict[Name, Name] = field(default_factory=dict)
    # names() and schemas(), kept while no source is added: sources are only ever added
    # (a scan asks for them once per function body, with thousands of tables moving).
    _sources: tuple = field(default=(), init=False, repr=False, compare=False)

    def inverse(self) -> Renames:
        return Renames(
            {v: k for k, v in self.relations.items()}, {v: k for k, v in self.functions.items()}
        )

    def _derived(self) -> tuple:
        size = (len(self.relations), len(self.functions))
        if not self._sources or self._sources[0] != size:
            sources = (*self.relations, *self.functions)
            self._sources = (
                size,
                frozenset(n for _, n in sources),
                frozenset(s for s, _ in sources),
            )
        return self._sources

    def names(self) -> frozenset[str]:
        """Every unqualified name that could start a moved reference (for cheap pre-filters)."""
        return self._derived()[1]

    def schemas(self) -> frozenset[str]:
        """Every schema a moved reference starts from."""
        return self._derived()[2]


def _names(nodes) -> tuple[str, ...] | None:
    if not nodes or not all(isinstance(n, ast.String) for n in nodes):
        return None
    return tuple(n.sval for n in nodes)


def name_nodes(*names: str) -> tuple[ast.String, ...]:
    return tuple(ast.String(sval=n) for n in names)


class _Rewriter:
    """Edits a tree in place; collects the old names it moved (`hits`).

    A plain stack walk over each node's slots: pglast's generic Visitor keeps ancestors for
    every node, which costs more than the whole rewrite on large inventories.
    """

    def __init__(self, renames: Renames):
        self.renames = renames
        self.hits: set[Name] = set()

    def __call__(self, root) -> None:
        handlers, slots_of, stack = _HANDLERS, _SLOTS, [root]
        push, extend = stack.append, stack.extend
        while stack:
            node = stack.pop()
            cls = type(node)
            if cls is tuple:
                extend(node)
                continue
            if not isinstance(node, ast.Node):
                continue  # a value of a slot that can hold nodes, and holds something else
            handler = handlers.get(cls)
            if handler is not None:
                handler(self, node)
            slots = slots_of.get(cls)
            for attr in _slots(cls) if slots is None else slots:
                value = getattr(node, attr)
                if value is not None:
                    push(value)

    def _relation(self, key: Name) -> Name | None:
        target = self.renames.relations.get(key)
        if target is not None:
            self.hits.add(key)
        return target

    def range_var(self, node: ast.RangeVar) -> None:
        if node.schemaname:
            target = self._relation((node.schemaname, node.relname))
            if target:
                node.schemaname, node.relname = target

    def type_name(self, node: ast.TypeName) -> None:
        names = _names(node.names)
        if names and len(names) == 2:
            target = self._relation(names)
            if target:
                node.names = name_nodes(*target)

    def column_ref(self, node: ast.ColumnRef) -> None:
        names = _names(node.fields[:2]) if node.fields and len(node.fields) >= 3 else None
        if names:
            target = self._relation(names)
            if target:
                node.fields = name_nodes(*target) + tuple(node.fields[2:])

    def func_call(self, node) -> None:
        names = _names(node.funcname)
        if names and len(names) == 2:
            target = self.renames.functions.get(names)
            if target is not None:
                self.hits.add(names)
                node.funcname = name_nodes(*target)


# The node types the rewrite changes. Plain functions, not bound methods: a rewriter holding
# its own methods would be a reference cycle, left for the cyclic collector to free.
_HANDLERS = {
    ast.RangeVar: _Rewriter.range_var,
    ast.TypeName: _Rewriter.type_name,
    ast.ColumnRef: _Rewriter.column_ref,
    ast.FuncCall: _Rewriter.func_call,
    ast.CreateTrigStmt: _Rewriter.func_call,
}

_SLOTS: dict[type, tuple[str, ...]] = {}
_CONTAINERS = (tuple, list)


def _slots(cls: type) -> tuple[str, ...]:
    """The attributes of a node class that can hold nodes, in declaration order.

    A slot whose declared types are all scalars (flags, locations, names, enums) never holds
    a node: walking a tree skips it.
    """
    slots = _SLOTS.get(cls)
    if slots is None:
        declared = cls.__slots__
        if isinstance(declared, dict):
            slots = tuple(name for name, info in declared.items() if _may_hold_nodes(info))
        else:
            slots = tuple(declared)
        _SLOTS[cls] = slots
    return slots


def _may_hold_nodes(info) -> bool:
    types = info.py_type if isinstance(info.py_type, tuple) else (info.py_type,)
    return any(t in _CONTAINERS or issubclass(t, ast.Node) for t in types)


def parse(text: str) -> list[ast.Node]:
    """The statements of `text` (RawStmt wrappers removed)."""
    return [raw.stmt for raw in parse_sql(text)]


def parse_one(text: str) -> ast.Node:
    statements = parse(text)
    if len(statements) != 1:
        raise ValueError(f"expected one statement, got {len(statements)}")
    return statements[0]


def rewrite(node: ast.Node, renames: Renames) -> set[Name]:
    """Move the references `renames` names, in place; return the old names that were hit."""
    visitor = _Rewriter(renames)
    visitor(node)
    return visitor.hits


def deparse(node: ast.Node) -> str:
    """What `RawStream()(node)` prints, with the printers' ancestors set by a plain walk."""
    _populate_ancestors((node,))
    stream = _Stream()
    stream.print_node(node)
    return stream.getvalue()


class _Stream(RawStream):
    """RawStream, with its three context managers as plain objects rather than generators.

    The printers enter one for nearly every node (`contextlib.contextmanager` costs a generator
    and a wrapper each time): a fifth of printing. Same output (tests/test_db_fastpaths.py).
    """

    def push_indent(self, amount=0, relative=True):
        return _NOTHING  # RawStream does not indent

    def push_expr_context(self, ctx):
        return _ExprContext(self, ctx)

    def expression(self, need_parens):
        return _Parens(self) if need_parens else _NOTHING


class _Nothing:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None


_NOTHING = _Nothing()


class _ExprContext:
    """The expression context set for a block, and put back after it (even on error)."""

    __slots__ = ("stream", "ctx", "previous")

    def __init__(self, stream: RawStream, ctx):
        self.stream, self.ctx = stream, ctx

    def __enter__(self) -> None:
        self.previous, self.stream.expr_context = self.stream.expr_context, self.ctx

    def __exit__(self, *exc) -> None:
        self.stream.expr_context = self.previous


class _Parens:
    """( … ) around a block; like RawStream's, no closing one when the block raised."""

    __slots__ = ("stream",)

    def __init__(self, stream: RawStream):
        self.stream = stream

    def __enter__(self) -> None:
        self.stream.write("(")

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.stream.write(")")


_set_ancestors = ast.Node.ancestors.__set__


def _populate_ancestors(root: tuple) -> None:
    """Set each node's `ancestors` as `pglast.visitors.populate_ancestors` does.

    Same breadth-first order and the same `Ancestor` chains, without its generic Visitor
    (a generator step and a method lookup per node), which took half of printing a tree.
    """
    todo = deque([(Ancestor(), root)])
    while todo:
        ancestors, node = todo.popleft()
        if isinstance(node, ast.Node):
            _enter(todo, ancestors, node)
            continue
        for index, item in enumerate(node):
            position = Ancestor(ancestors, node, index)
            if isinstance(item, ast.Node):
                _enter(todo, position, item)
            elif isinstance(item, tuple):
                for sub_index, value in enumerate(item):
                    if isinstance(value, (tuple, ast.Node)):
                        todo.append((Ancestor(position, item, sub_index), value))


def _enter(todo: deque, ancestors: Ancestor, node: ast.Node) -> None:
    _set_ancestors(node, ancestors)
    for attr in _slots(type(node)):
        value = getattr(node, attr)
        if isinstance(value, (tuple, ast.Node)):
            todo.append((Ancestor(ancestors, node, attr), value))


# --- function bodies resolved at run time ------------------------------------------------------

_WORD = re.compile(r"[a-z_][a-z0-9_$]*")
_IDENT_KINDS = {"UNRESERVED_KEYWORD", "COL_NAME_KEYWORD", "TYPE_FUNC_NAME_KEYWORD"}


def _ident(text: str, token) -> str | None:
    """The identifier a token spells, or None when it is not one."""
    if token.name != "IDENT" and token.kind not in _IDENT_KINDS:
        return None
    raw = text[token.start : token.end + 1]
    if raw.startswith('"'):
        return raw[1:-1].replace('""', '"')
    if raw.startswith(("U&", "u&")):
        return None
    return raw.lower()


def _string_value(raw: str) -> str:
    """Contents of a string-constant token (enough to look for names in it)."""
    if raw.startswith("$"):
        tag_end = raw.index("$", 1) + 1
        return raw[tag_end:-tag_end]
    if raw[:1] in "eEnNbBxX" and raw[1:2] == "'":
        raw = raw[1:]
    return raw[1:-1].replace("''", "'")


def _spell(name: str, quoted: bool) -> str:
    return '"' + name.replace('"', '""') + '"' if quoted else quote(name)


@dataclass
class BodyScan:
    """What a function body (plpgsql or non-atomic SQL) says about the moved names."""

    qualified: set[Name] = field(default_factory=set)  # OLD.t written out
    unqualified: set[str] = field(default_factory=set)  # t alone: resolved by search_path
    strings_qualified: set[str] = field(default_factory=set)  # 'OLD.t' inside a string literal
    strings_loose: bool = False  # a string literal mentions a moved name or `OLD.` at all
    dynamic: bool = False  # EXECUTE: the body builds SQL from strings
    error: str | None = None  # the lexer could not read it
    rewritten: str | None = None  # the body with qualified references moved, if any


def scan_body(body: str, renames: Renames, *, language: str) -> BodyScan:
    """Find (and move) references in a body PostgreSQL resolves when the function runs."""
    try:
        tokens = scan(body)
    except ParseError as exc:
        return BodyScan(error=str(exc))
    scanner = _BodyScanner(body, tokens, renames, language)
    for i, tok in enumerate(tokens):
        scanner.token(i, tok)
    return scanner.finish()


_DOT, _PAREN = "ASCII_46", "ASCII_40"


class _BodyScanner:
    """One pass over a body's tokens, filling a BodyScan."""

    def __init__(self, body: str, tokens: list, renames: Renames, language: str):
        self.body, self.tokens, self.renames = body, tokens, renames
        self.plpgsql = language == "plpgsql"
        self.watched, self.schemas = renames.names(), renames.schemas()
        self.result = BodyScan()
        self.edits: list[tuple[int, int, str]] = []

    def _name(self, i: int) -> str | None:
        return self.tokens[i].name if 0 <= i < len(self.tokens) else None

    def token(self, i: int, tok) -> None:
        if tok.name == "EXECUTE" and self.plpgsql:
            self.result.dynamic = True
        if tok.name == "SCONST":
            self.string(self.body[tok.start : tok.end + 1])
            return
        ident = _ident(self.body, tok)
        if ident is None:
            return
        after, before = self._name(i + 1), self._name(i - 1)
        if ident in self.schemas and after == _DOT and i + 2 < len(self.tokens) and before != _DOT:
            self.qualified(i, ident)
        elif ident in self.watched and before != _DOT and after not in (_DOT, _PAREN):
            self.result.unqualified.add(ident)

    def string(self, raw: str) -> None:
        """A string literal: does it mention a moved name (it may be run as SQL)?"""
        value = _string_value(raw)
        lowered = value.lower()
        prefixed = any(f"{s}." in lowered for s in self.schemas)
        if prefixed or set(_WORD.findall(lowered)) & self.watched:
            self.result.strings_loose = True
        if not (prefixed or any(f'{s}."' in value for s in self.schemas)):
            return  # no `schema.` in it: none of the checks below can match
        for schema, name in (*self.renames.relations, *self.renames.functions):
            if f"{schema}.{name}" in lowered or f'{schema}."{name}"' in value:
                self.result.strings_qualified.add(qname(schema, name))

    def qualified(self, i: int, schema: str) -> None:
        """`schema . name` at token i: moved if `renames` says so."""
        tokens = self.tokens
        name = _ident(self.body, tokens[i + 2])
        if name is None:
            return
        key = (schema, name)
        call = self._name(i + 3) == _PAREN
        target = self.renames.functions.get(key) if call else self.renames.relations.get(key)
        if target is None:
            return
        self.result.qualified.add(key)
        # Only the parts that change are rewritten, spelled as they were (quoted or not), so
        # moving there and back gives the original text.
        for part, old, new in ((tokens[i], key[0], target[0]), (tokens[i + 2], key[1], target[1])):
            if old != new:
                was_quoted = self.body[part.start] == '"'
                self.edits.append((part.start, part.end + 1, _spell(new, was_quoted)))

    def finish(self) -> BodyScan:
        if self.edits:
            out, last = [], 0
            for start, end, text in self.edits:
                out += [self.body[last:start], text]
                last = end
            out.append(self.body[last:])
            self.result.rewritten = "".join(out)
        return self.result


# --- search_path settings ----------------------------------------------------------------------


def path_with(schemas: list[str], new: str, before: str) -> list[str]:
    """`schemas` with `new` inserted right before `before` (once)."""
    out = [s for s in schemas if s != new]
    index = out.index(before) if before in out else len(out)
    return out[:index] + [new] + out[index:]


def path_without(schemas: list[str], drop: str) -> list[str]:
    return [s for s in schemas if s != drop]


def set_function_path(stmt: ast.CreateFunctionStmt, schemas: list[str]) -> None:
    """Replace the `SET search_path` clause of a CREATE FUNCTION tree."""
    args = tuple(ast.A_Const(val=ast.String(sval=s)) for s in schemas)
    for option in stmt.options or ():
        if option.defname == "set" and option.arg.name == "search_path":
            option.arg.args = args
            return
    setting = ast.VariableSetStmt(
        kind=enums.VariableSetKind.VAR_SET_VALUE, name="search_path", args=args
    )
    stmt.options = (*(stmt.options or ()), ast.DefElem(defname="set", arg=setting))


def function_body(stmt: ast.CreateFunctionStmt) -> str | None:
    """The text body of a CREATE FUNCTION tree (None for BEGIN ATOMIC or C functions)."""
    for option in stmt.options or ():
        if option.defname == "as":
            parts = option.arg
            if isinstance(parts, tuple) and len(parts) == 1 and isinstance(parts[0], ast.String):
                return parts[0].sval
    return None


def set_function_body(stmt: ast.CreateFunctionStmt, body: str) -> None:
    for option in stmt.options or ():
        if option.defname == "as":
            option.arg = (ast.String(sval=body),)
            return
    raise ValueError("function has no text body")


def function_path(stmt: ast.CreateFunctionStmt) -> list[str] | None:
    """The schemas of the function's own `SET search_path`, or None when it has none."""
    for option in stmt.options or ():
        if option.defname == "set" and option.arg.name == "search_path":
            return [
                a.val.sval if isinstance(a.val, ast.String) else str(a.val)
                for a in option.arg.args or ()
            ]
    return None
