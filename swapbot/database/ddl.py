"""DDL for each phase of a swap, generated from the inventory, and applied in one transaction.

- `prep` creates in NEW what can exist before the outage: indexes, constraints, statistics,
  policies, grants, comments, and copies (same names) of the views, materialized views and
  functions that live in OLD. Nothing the app reads changes: NEW is not on its path yet.
- `cutover` runs inside the outage: triggers, rules and foreign keys on the new tables, and
  every dependent outside OLD that is bound to an old table is re-pointed in place (CREATE OR
  REPLACE keeps its OID, grants and callers; a materialized view is dropped and created again).
- `rollback` undoes exactly that, from the live catalog: the same scan run from NEW finds what
  prep and cutover made (copies and attached objects are dropped, re-pointed objects get their
  old definitions back), so it needs no saved state and is safe to run twice.

`--apply` regenerates the phase inside its own transaction (one snapshot), refuses while NEW's
tables are missing or lack a column the DDL needs, sets a short `lock_timeout`, and retries the
whole transaction when a lock is not granted in time. It never writes a row to a mapped table:
every statement is checked to be DDL before it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import psycopg
from pglast import ast, enums
from psycopg import errors
from pydantic import BaseModel, Field

from swapbot.database import retarget
from swapbot.database._common import (
    LockWaited,
    UserError,
    check_identifier,
    lock_holders,
    name_array,
    parse_tables,
    require_mapped_tables,
)
from swapbot.database.inventory import DbObject, catalog_snapshot, fetch, scan
from swapbot.database.retarget import literal, qname, quote, role

PhaseName = Literal["prep", "cutover", "rollback"]


class Step(BaseModel):
    """The statements for one object, in order, with what a reviewer should know."""

    identity: str
    kind: str
    phase: str
    action: str
    target: str | None = None
    sql: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)


class Plan(BaseModel):
    phase: PhaseName
    schema_: str = Field(alias="schema")
    new_schema: str
    tables: list[str]
    steps: list[Step]
    manual: list[Step] = Field(default_factory=list)  # objects a person must handle
    problems: list[str] = Field(default_factory=list)  # what --apply would refuse on
    notes: list[str] = Field(default_factory=list)
    applied: bool = False
    attempts: int = 0

    model_config = {"populate_by_name": True, "serialize_by_alias": True}

    @property
    def statements(self) -> list[str]:
        return [s for step in self.steps for s in step.sql]


# --- statements per object ---------------------------------------------------------------------


def _comment(obj: DbObject, what: str) -> list[str]:
    text = obj._detail.get("comment")
    return [f"COMMENT ON {what} IS {literal(text)}"] if text is not None else []


def _acl(obj: DbObject, on: str) -> list[str]:
    """Grants and revokes that make a new object's ACL equal the original's."""
    out = []
    for g in obj._detail.get("acl", []):
        if g["op"] == "grant":
            option = " WITH GRANT OPTION" if g["grantable"] else ""
            out.append(f"GRANT {g['privilege']} ON {on} TO {role(g['role'])}{option}")
        else:
            out.append(f"REVOKE {g['privilege']} ON {on} FROM {role(g['role'])}")
    return out


def _signature(tree: ast.CreateFunctionStmt) -> str:
    """`schema.name(argtypes)` of a CREATE FUNCTION tree, as ALTER/GRANT/DROP want it."""
    args = [
        retarget.deparse(p.argType)
        for p in tree.parameters or ()
        if p.mode
        not in (
            enums.FunctionParameterMode.FUNC_PARAM_OUT,
            enums.FunctionParameterMode.FUNC_PARAM_TABLE,
        )
    ]
    names = [n.sval for n in tree.funcname]
    return f"{qname(names[-2], names[-1])}({', '.join(args)})"


def _table(obj: DbObject, schema: str) -> str:
    return qname(schema, obj._detail["relname"])


def _enable(word: str, name: str, table: str, state: str | None) -> list[str]:
    clause = {"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}.get(state or "O")
    return [f"ALTER TABLE {table} {clause} {word} {quote(name)}"] if clause else []


def _relation_of(tree) -> str:
    rv = tree.relation if hasattr(tree, "relation") else tree.table
    return qname(rv.schemaname, rv.relname)


def forward_sql(obj: DbObject, away: str) -> list[str]:
    """The statements that carry `obj` (classified by a scan towards `away`)."""
    if obj.action == "refresh":
        return [obj.definition]
    build = _FORWARD.get(obj.kind)
    if build is None:
        raise ValueError(f"no DDL for {obj.kind}/{obj.action}")
    return build(obj, away)


def _relation_sql(obj: DbObject, away: str) -> list[str]:
    """A view or materialized view: copied into NEW, replaced or recreated in place."""
    view, copy = obj.kind == "view", obj.action == "copy"
    target = qname(away, obj.name) if copy else qname(obj.schema_, obj.name)
    opts = obj._detail["reloptions"]
    with_ = f" WITH ({', '.join(opts)})" if opts else ""
    query = retarget.deparse(obj._tree)
    word = "VIEW" if view else "MATERIALIZED VIEW"
    if view:
        out = [f"CREATE OR REPLACE VIEW {target}{with_} AS {query}"]
        if not copy:
            return out
    elif copy:
        out = [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {target}{with_} AS {query} WITH DATA"]
    else:
        out = [
            f"DROP MATERIALIZED VIEW IF EXISTS {target}",
            f"CREATE MATERIALIZED VIEW {target}{with_} AS {query} WITH DATA",
        ]
    return out + _belongings(obj, word, target, grants_on=f"TABLE {target}")


def _function_sql(obj: DbObject, away: str) -> list[str]:
    out = [retarget.deparse(obj._tree)]
    if obj.action != "copy":
        return out
    word = "PROCEDURE" if obj._detail.get("prokind") == "p" else "FUNCTION"
    return out + _belongings(obj, word, _signature(obj._tree))


def _belongings(obj: DbObject, word: str, name: str, grants_on: str | None = None) -> list[str]:
    """What a view or function has besides its definition: its owner, the privileges on it
    (`grants_on`, by default `word name`) and its comment, as the statements that set them."""
    return (
        [f"ALTER {word} {name} OWNER TO {quote(obj._detail['owner'])}"]
        + _acl(obj, grants_on or f"{word} {name}")
        + _comment(obj, f"{word} {name}")
    )


def _index_sql(obj: DbObject, away: str) -> list[str]:
    tree = obj._tree
    name = qname(tree.relation.schemaname, tree.idxname)
    return [retarget.deparse(tree)] + _comment(obj, f"INDEX {name}")


def _constraint_sql(obj: DbObject, away: str) -> list[str]:
    table = _relation_of(obj._tree)
    return [
        f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {quote(obj.name)}",
        retarget.deparse(obj._tree),
    ] + _comment(obj, f"CONSTRAINT {quote(obj.name)} ON {table}")


def _deparsed_sql(obj: DbObject, away: str) -> list[str]:
    return [retarget.deparse(obj._tree)]


def _trigger_sql(obj: DbObject, away: str) -> list[str]:
    table = _relation_of(obj._tree)
    return (
        [f"DROP TRIGGER IF EXISTS {quote(obj.name)} ON {table}", retarget.deparse(obj._tree)]
        + _enable("TRIGGER", obj.name, table, obj._detail.get("enabled"))
        + _comment(obj, f"TRIGGER {quote(obj.name)} ON {table}")
    )


def _rule_sql(obj: DbObject, away: str) -> list[str]:
    tree = obj._tree
    tree.replace = True
    table = _relation_of(tree)
    return (
        [retarget.deparse(tree)]
        + _enable("RULE", obj.name, table, obj._detail.get("enabled"))
        + _comment(obj, f"RULE {quote(obj.name)} ON {table}")
    )


def _policy_sql(obj: DbObject, away: str) -> list[str]:
    table = _relation_of(obj._tree)
    return [
        f"DROP POLICY IF EXISTS {quote(obj.name)} ON {table}",
        retarget.deparse(obj._tree),
    ] + _comment(obj, f"POLICY {quote(obj.name)} ON {table}")


def _statistics_sql(obj: DbObject, away: str) -> list[str]:
    tree, d = obj._tree, obj._detail
    name = qname(*[n.sval for n in tree.defnames])
    out = [retarget.deparse(tree)]
    if d.get("stattarget", -1) >= 0:
        out.append(f"ALTER STATISTICS {name} SET STATISTICS {d['stattarget']}")
    return (
        out
        + [f"ALTER STATISTICS {name} OWNER TO {quote(d['owner'])}"]
        + _comment(obj, f"STATISTICS {name}")
    )


def _privileges(d: dict, on: str, *, revoke: bool = False) -> str:
    """GRANT the privileges `d` records (on its column, if any) ON `on` to its role, or the
    REVOKE that takes them back."""
    what = ", ".join(d["privileges"]) + (f" ({quote(d['column'])})" if d.get("column") else "")
    if revoke:
        return f"REVOKE {what} ON {on} FROM {role(d['role'])}"
    option = " WITH GRANT OPTION" if d.get("grantable") else ""
    return f"GRANT {what} ON {on} TO {role(d['role'])}{option}"


def _grant_sql(obj: DbObject, away: str) -> list[str]:
    return [_privileges(obj._detail, f"TABLE {_table(obj, away)}")]


def _comment_sql(obj: DbObject, away: str) -> list[str]:
    d = obj._detail
    if d.get("column"):
        return [
            f"COMMENT ON COLUMN {_table(obj, away)}.{quote(d['column'])} IS {literal(d['comment'])}"
        ]
    return [f"COMMENT ON TABLE {_table(obj, away)} IS {literal(d['comment'])}"]


def _not_null_sql(obj: DbObject, away: str) -> list[str]:
    column = quote(obj._detail["column"])
    return [f"ALTER TABLE {_table(obj, away)} ALTER COLUMN {column} SET NOT NULL"]


def _table_option_sql(obj: DbObject, away: str) -> list[str]:
    return [f"ALTER TABLE {_table(obj, away)} {obj._detail['clause']}"]


def _schema_grant_sql(obj: DbObject, away: str) -> list[str]:
    return [_privileges(obj._detail, f"SCHEMA {quote(away)}")]


def _default_privileges(obj: DbObject, schema: str, *, revoke: bool = False) -> list[str]:
    d = obj._detail
    return [
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote(d['owner'])} IN SCHEMA {quote(schema)} "
        + _privileges(d, d["objects"], revoke=revoke)
    ]


def _default_privileges_sql(obj: DbObject, away: str) -> list[str]:
    return _default_privileges(obj, away)


_FORWARD: dict[str, Callable[[DbObject, str], list[str]]] = {
    "view": _relation_sql,
    "materialized_view": _relation_sql,
    "function": _function_sql,
    "index": _index_sql,
    "constraint": _constraint_sql,
    "foreign_key": _constraint_sql,
    "default": _deparsed_sql,
    "trigger": _trigger_sql,
    "rule": _rule_sql,
    "policy": _policy_sql,
    "statistics": _statistics_sql,
    "publication": _deparsed_sql,
    "grant": _grant_sql,
    "comment": _comment_sql,
    "not_null": _not_null_sql,
    "table_option": _table_option_sql,
    "schema_grant": _schema_grant_sql,
    "default_privileges": _default_privileges_sql,
}

# How the rollback removes what is named by kind alone: {home} is NEW's name of it, {own} its
# name in its own schema, {table} the relation it is on, {name} its bare name.
_DROP_TEMPLATES = {
    "view": "DROP VIEW IF EXISTS {home}",
    "materialized_view": "DROP MATERIALIZED VIEW IF EXISTS {home}",
    "index": "DROP INDEX IF EXISTS {own}",
    "statistics": "DROP STATISTICS IF EXISTS {own}",
    "constraint": "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}",
    "foreign_key": "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}",
    "trigger": "DROP TRIGGER IF EXISTS {name} ON {table}",
    "rule": "DROP RULE IF EXISTS {name} ON {table}",
    "policy": "DROP POLICY IF EXISTS {name} ON {table}",
    "default": "ALTER TABLE {table} ALTER COLUMN {name} DROP DEFAULT",
    "publication": "ALTER PUBLICATION {name} DROP TABLE {table}",
}

# What undoes each table option prep set.
_UNDO_OPTION = {
    "row_security": "DISABLE ROW LEVEL SECURITY",
    "force_row_security": "NO FORCE ROW LEVEL SECURITY",
    "replica_identity": "REPLICA IDENTITY DEFAULT",
}


def drop_sql(obj: DbObject, home: str) -> list[str]:
    """The statements that remove `obj`, found in NEW (`home`) by the rollback scan."""
    template = _DROP_TEMPLATES.get(obj.kind)
    if template is not None:
        return [
            template.format(
                home=qname(home, obj.name),
                own=qname(obj.schema_, obj.name),
                table=obj.table,
                name=quote(obj.name),
            )
        ]
    drop = _DROP.get(obj.kind)
    if drop is None:
        raise ValueError(f"no rollback for {obj.kind}")
    return drop(obj, home)


def _drop_function(obj: DbObject, home: str) -> list[str]:
    d = obj._detail
    word = "PROCEDURE" if d.get("prokind") == "p" else "FUNCTION"
    return [f"DROP {word} IF EXISTS {qname(home, obj.name)}({d['args']})"]


def _revoke_grant(obj: DbObject, home: str) -> list[str]:
    return [_privileges(obj._detail, f"TABLE {obj.table}", revoke=True)]


def _drop_comment(obj: DbObject, home: str) -> list[str]:
    if obj._detail.get("column"):
        return [f"COMMENT ON COLUMN {obj.table}.{quote(obj._detail['column'])} IS NULL"]
    return [f"COMMENT ON TABLE {obj.table} IS NULL"]


def _drop_not_null(obj: DbObject, home: str) -> list[str]:
    column = quote(obj._detail["column"])
    return [f"ALTER TABLE {obj.table} ALTER COLUMN {column} DROP NOT NULL"]


def _reset_option(obj: DbObject, home: str) -> list[str]:
    d = obj._detail
    undo = _UNDO_OPTION.get(d["option"])
    if d["option"] == "storage":
        keys = [o.split("=", 1)[0] for o in d["reloptions"] or ()]
        undo = f"RESET ({', '.join(keys)})"
    return [f"ALTER TABLE {obj.table} {undo}"]


def _revoke_schema_grant(obj: DbObject, home: str) -> list[str]:
    return [_privileges(obj._detail, f"SCHEMA {quote(home)}", revoke=True)]


def _revoke_default_privileges(obj: DbObject, home: str) -> list[str]:
    return _default_privileges(obj, home, revoke=True)


_DROP: dict[str, Callable[[DbObject, str], list[str]]] = {
    "function": _drop_function,
    "grant": _revoke_grant,
    "comment": _drop_comment,
    "not_null": _drop_not_null,
    "table_option": _reset_option,
    "schema_grant": _revoke_schema_grant,
    "default_privileges": _revoke_default_privileges,
}


def _step(obj: DbObject, phase: str, action: str, sql: list[str]) -> Step:
    return Step(
        identity=obj.identity,
        kind=obj.kind,
        phase=phase,
        action=action,
        target=obj.target,
        sql=sql,
        flags=list(obj.flags),
    )


def _manual(obj: DbObject) -> Step:
    step = _step(obj, "manual", "review", [])
    step.flags.insert(0, obj.reason)
    return step


# --- plans --------------------------------------------------------------------------------------


def _validate(conn: psycopg.Connection, old: str, new: str, tables: list[str]) -> list[str]:
    check_identifier(old, "schema")
    check_identifier(new, "new schema")
    if old == new:
        raise UserError("--new-schema must differ from --schema")
    tables = parse_tables(tables)
    require_mapped_tables(conn, old, tables)
    return tables


def plan(
    conn: psycopg.Connection,
    old: str,
    new: str,
    tables: list[str],
    phase: PhaseName,
    *,
    keep: frozenset[str] = frozenset(),
) -> Plan:
    """The SQL of one phase, from the catalog as it is now (reads only).

    `keep`: identities of objects NEW held before prep (the engine records them); a rollback
    leaves them alone, since the swap did not make them.
    """
    tables = _validate(conn, old, new, tables)
    if phase not in ("prep", "cutover", "rollback"):
        raise UserError(f"unknown phase {phase!r}: prep, cutover or rollback")
    with catalog_snapshot(conn):
        forward, _, renames = scan(conn, old, tables, new)
        state = _new_state(conn, new, tables, _names_in_new(forward, renames))
        out = Plan(phase=phase, schema_=old, new_schema=new, tables=tables, steps=[])
        if phase == "rollback":
            _rollback(conn, out, forward, state)
            kept = [st for st in out.steps if st.action == "drop" and st.identity in keep]
            out.steps = [st for st in out.steps if st not in kept]
            out.notes += [f"{st.identity}: was in {new} before the swap, left alone" for st in kept]
        else:
            _forward(out, forward, state)
            out.problems = _problems(conn, out, forward, state, renames)
    return out


def _forward(out: Plan, forward: list[DbObject], state: dict) -> None:
    for obj in forward:
        if obj.phase == "manual":
            out.manual.append(_manual(obj))
            continue
        if obj.phase != out.phase:
            continue
        if obj.kind == "publication" and (obj.name, obj._key[2]) in state["published"]:
            out.notes.append(
                f"{obj.identity}: {qname(out.new_schema, obj._key[2])} already published"
            )
            continue
        out.steps.append(_step(obj, obj.phase, obj.action, forward_sql(obj, out.new_schema)))


def _rollback(conn: psycopg.Connection, out: Plan, forward: list[DbObject], state: dict) -> None:
    """Undo prep and cutover: restore what was re-pointed, then drop what was created."""
    if not state["tables"]:
        out.notes.append(f"schema {out.new_schema} has none of the tables: nothing to roll back")
        return
    present = [t for t in out.tables if t in state["tables"]]
    carried = {o._key for o in forward if o.phase in ("prep", "cutover")}
    carried |= {_loose(o._key) for o in forward if o.kind == "function"}
    found, _, _ = scan(conn, out.new_schema, present, out.schema_, forward=False)
    restores, drops = [], []
    for obj in found:
        if obj.action in ("replace", "recreate") and obj.phase == "cutover":
            restores.append(_step(obj, "rollback", "restore", forward_sql(obj, out.schema_)))
        elif obj.action in ("copy", "attach") and obj.phase in ("prep", "cutover"):
            key = _loose(obj._key) if obj.kind == "function" else obj._key
            if key in carried:
                drops.append((obj, _step(obj, "rollback", "drop", drop_sql(obj, out.new_schema))))
            else:
                out.notes.append(
                    f"{obj.identity}: not made by the swap (no counterpart in OLD), left alone"
                )
        elif obj.phase == "manual":
            out.manual.append(_manual(obj))
    # Cutover's objects go first, then prep's, each newest first.
    drops.sort(key=lambda p: (p[0].phase != "cutover", -p[0].depth))
    out.steps = restores + [s for _, s in drops]


def _loose(key: tuple) -> tuple:
    """A function's key without its argument types, which moving a row type changes."""
    return key[:2]


# `IN (SELECT unnest(...))`, not `= ANY(...)`: the planner estimates the latter element by
# element, and with thousands of names planning took longer than running the query.
_Q_NEW_TABLES = """
SELECT c.relname::text AS relname, c.oid::int AS oid,
       EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid
               AND t.tgname = left('hc_' || c.relname || '_logtrigger', 63)) AS mapped,
       ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid
             AND a.attnum > 0 AND NOT a.attisdropped) AS columns
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname IN (SELECT unnest(%s::name[])) AND c.relkind IN ('r', 'p')
"""

_Q_NEW_RELATIONS = """
SELECT c.relname::text AS relname, c.relkind::text AS relkind, t.relname::text AS on
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_class t ON t.oid = i.indrelid
WHERE n.nspname = %s AND c.relname IN (SELECT unnest(%s::name[]))
"""

_Q_NEW_FUNCTIONS = """
SELECT p.proname::text AS proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %s AND p.proname IN (SELECT unnest(%s::name[]))
"""

_Q_PUBLISHED = """
SELECT p.pubname::text AS pubname, c.relname::text AS relname
FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s
"""


def _names_in_new(forward: list[DbObject], renames) -> list[str]:
    """The names a phase looks for in NEW: what it copies or attaches, and every target."""
    names = {o.name for o in forward if o.action in ("copy", "attach")}
    names.update(name for _, name in renames.relations.values())
    names.update(name for _, name in renames.functions.values())
    return sorted(names)


def _new_state(conn: psycopg.Connection, new: str, tables: list[str], names: list[str]) -> dict:
    """What NEW holds now: its tables (mapped or not, with columns), and its relations and
    functions of `names` (NEW holds thousands, HC's own among them: only these are asked)."""
    exists = bool(fetch(conn, "SELECT 1 AS x FROM pg_namespace WHERE nspname = %s", (new,)))
    in_new = name_array(names)
    if not exists:
        return {
            "exists": False,
            "tables": {},
            "relations": {},
            "functions": set(),
            "published": set(),
        }
    return {
        "exists": True,
        "tables": {r["relname"]: r for r in fetch(conn, _Q_NEW_TABLES, (new, name_array(tables)))},
        "relations": {r["relname"]: r for r in fetch(conn, _Q_NEW_RELATIONS, (new, in_new))},
        "functions": {r["proname"] for r in fetch(conn, _Q_NEW_FUNCTIONS, (new, in_new))},
        "published": {(r["pubname"], r["relname"]) for r in fetch(conn, _Q_PUBLISHED, (new,))},
    }


def _problems(
    conn: psycopg.Connection, out: Plan, forward: list[DbObject], state: dict, renames
) -> list[str]:
    """Why this phase cannot be applied yet (empty when it can)."""
    if not state["exists"]:
        return [
            f"schema {out.new_schema} does not exist yet: hc2's initial load has not created it"
        ]
    in_phase = [o for o in forward if o.phase == out.phase]
    problems = _table_problems(out, state) + _column_problems(out.new_schema, in_phase, state)
    problems += _occupied(out.new_schema, in_phase, state["relations"])
    if out.phase == "cutover":
        problems += _prep_missing(out, state, renames)
    return problems


def _table_problems(out: Plan, state: dict) -> list[str]:
    """NEW's tables must exist and be Heroku Connect mappings."""
    problems = []
    for t in out.tables:
        row = state["tables"].get(t)
        if row is None:
            problems.append(
                f"{qname(out.new_schema, t)} does not exist yet: hc2's load has not created it"
            )
        elif not row["mapped"]:
            problems.append(
                f"{qname(out.new_schema, t)} exists but is not a Heroku Connect mapping"
                " (no HC trigger)"
            )
    return problems


def _column_problems(new: str, in_phase: list[DbObject], state: dict) -> list[str]:
    """Columns the phase's objects need that NEW's tables lack."""
    problems = []
    for obj in in_phase:
        for col in obj.columns:
            table, column = col.split(".", 1)
            row = state["tables"].get(table)
            if row is not None and column not in row["columns"]:
                problems.append(
                    f"{qname(new, table)} lacks column {quote(column)}, needed by {obj.identity}"
                )
    return problems


def _occupied(new: str, in_phase: list[DbObject], relations: dict) -> list[str]:
    """Names in NEW that a copy or index needs, taken by something else."""
    problems = []
    for obj in in_phase:
        have = relations.get(obj.name) if obj.action in ("copy", "attach") else None
        if have is None:
            continue
        copy = obj.kind in _RELKINDS and obj.action == "copy"
        if copy and have["relkind"] != _RELKINDS[obj.kind]:
            problems.append(f"{qname(new, obj.name)} already exists and is not a {obj.kind}")
        wanted = obj._detail.get("target_rel")
        if obj.kind == "index" and (have["relkind"] not in ("i", "I") or have["on"] != wanted):
            problems.append(
                f"{qname(new, obj.name)} already exists and is not an index on {qname(new, wanted)}"
            )
    return problems


_RELKINDS = {"view": "v", "materialized_view": "m"}


def _prep_missing(out: Plan, state: dict, renames) -> list[str]:
    """The cutover re-targets to NEW's copies: prep must have made them."""
    missing = [
        qname(*target)
        for source, target in renames.relations.items()
        if source[1] not in out.tables and target[1] not in state["relations"]
    ] + [
        qname(*target)
        for target in renames.functions.values()
        if target[1] not in state["functions"]
    ]
    if not missing:
        return []
    return [f"run prep first: {', '.join(sorted(missing))} missing in {out.new_schema}"]


# --- applying -----------------------------------------------------------------------------------

_RETRYABLE = (errors.LockNotAvailable, errors.DeadlockDetected, errors.SerializationFailure)
_WRITES = (
    ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt, ast.CopyStmt,
    ast.TruncateStmt, ast.DoStmt, ast.CallStmt, ast.SelectStmt, ast.ExecuteStmt,
)  # fmt: skip


def guard(statement: str) -> None:
    """Refuse anything but DDL: the bot never writes rows (HC would send them to Salesforce)."""
    for node in retarget.parse(statement):
        if isinstance(node, _WRITES):
            raise UserError(f"refusing to run a statement that is not DDL: {statement[:80]}")


def apply(
    conn: psycopg.Connection,
    old: str,
    new: str,
    tables: list[str],
    phase: PhaseName,
    *,
    lock_timeout_ms: int = 2000,
    attempts: int = 5,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    keep: frozenset[str] = frozenset(),
) -> Plan:
    """Generate and run one phase in one transaction; retry when a lock is not granted in time.

    Raises UserError (and changes nothing) when the phase is not ready or a statement fails.
    """
    tables = _validate(conn, old, new, tables)
    for attempt in range(1, attempts + 1):
        current = "(planning)"
        try:
            with conn.transaction():
                # Reading a definition locks what it names too (a rule's action, a view's
                # tables): the short lock_timeout covers planning as well as the DDL.
                conn.execute(
                    "SELECT pg_catalog.set_config('lock_timeout', %s, true)",
                    (f"{int(lock_timeout_ms)}ms",),
                )
                result = plan(conn, old, new, tables, phase, keep=keep)
                if result.problems:
                    raise UserError(f"{phase} not applied: " + "; ".join(result.problems))
                conn.execute(
                    "SELECT pg_catalog.set_config('search_path', 'pg_catalog', true),"
                    " pg_catalog.set_config('check_function_bodies', 'off', true)"
                )
                for step in result.steps:
                    current = step.identity
                    for statement in step.sql:
                        guard(statement)
                        conn.execute(statement)
            result.applied, result.attempts = True, attempt
            return result
        except _RETRYABLE as exc:
            if attempt == attempts:
                raise _lock_waited(
                    conn,
                    [old, new],
                    f"{phase}: could not take the locks for {current} in {attempts} attempts"
                    f" ({exc.diag.message_primary}); nothing was applied",
                ) from None
            sleep(backoff * 2 ** (attempt - 1))
        except psycopg.Error as exc:
            raise UserError(
                f"{phase} failed at {current}: {exc.diag.message_primary or exc};"
                " the transaction was rolled back, nothing was applied"
            ) from None
    raise AssertionError("unreachable")


def _lock_waited(conn: psycopg.Connection, schemas: list[str], message: str) -> LockWaited:
    holders = lock_holders(conn, schemas)
    if holders:
        message += "; waiting on a lock held by " + "; ".join(holders)
    return LockWaited(message)


# --- retiring OLD's copies before delete-old ---------------------------------------------------

_RETIRED_KINDS = ("view", "materialized_view", "function")
_ATTACHED_KINDS = ("index", "trigger", "rule", "statistics", "policy")

# What else still depends on the old tables in a way that stops `DROP TABLE` (RESTRICT): normal
# dependencies on a table or its row type, except what goes with the tables themselves (their
# own constraints, rules, triggers, defaults and indexes) and what `retired` already covers.
_Q_BLOCKERS = """
WITH t AS (
    SELECT c.oid, c.reltype FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %(old)s AND c.relname = ANY(%(tables)s)
)
SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS what
FROM pg_catalog.pg_depend d
LEFT JOIN pg_catalog.pg_rewrite r
       ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND r.oid = d.objid
WHERE d.deptype = 'n'
  AND ((d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid IN (SELECT oid FROM t))
    OR (d.refclassid = 'pg_catalog.pg_type'::regclass AND d.refobjid IN (SELECT reltype FROM t)))
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend a
      WHERE a.classid = d.classid AND a.objid = d.objid AND a.deptype IN ('a', 'i')
        AND a.refclassid = 'pg_catalog.pg_class'::regclass AND a.refobjid IN (SELECT oid FROM t))
  AND (r.oid IS NULL OR r.ev_class NOT IN (SELECT oid FROM t))
  AND NOT (r.oid IS NOT NULL AND r.ev_class = ANY(%(retired)s::oid[]))
  AND NOT (d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = ANY(%(retired)s::oid[]))
ORDER BY 1
"""


class Retired(BaseModel):
    """An object of OLD that prep copied to NEW, dropped before delete-old, with what recreates
    it exactly as it was (a rollback before delete-old is done uses it; the ledger shows it)."""

    identity: str
    kind: str
    schema_: str = Field(alias="schema")
    name: str
    args: str | None = None  # a function's identity arguments
    copy_: str = Field(alias="copy")  # the object in NEW that serves in its place
    depth: int
    drop: list[str]
    create: list[str]

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class Retirement(BaseModel):
    objects: list[Retired] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)  # why delete-old must not go on

    @property
    def statements(self) -> list[str]:
        return [st for r in sorted(self.objects, key=lambda r: -r.depth) for st in r.drop]


def _original_sql(obj: DbObject, attached: list[DbObject]) -> list[str]:
    """The statements that create `obj` in OLD as it was before the swap (not re-targeted)."""
    d = obj._detail
    name = qname(obj.schema_, obj.name)
    if obj.kind == "function":
        word = "PROCEDURE" if d.get("prokind") == "p" else "FUNCTION"
        return [obj.definition] + _belongings(obj, word, f"{name}({d['args']})")
    opts = d["reloptions"]
    with_ = f" WITH ({', '.join(opts)})" if opts else ""
    query = (d["query"] or "").strip().rstrip(";")
    if obj.kind == "view":
        word, out = "VIEW", [f"CREATE OR REPLACE VIEW {name}{with_} AS {query}"]
    else:
        word = "MATERIALIZED VIEW"
        out = [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name}{with_} AS {query} WITH DATA"]
    out += _belongings(obj, word, name, grants_on=f"TABLE {name}")
    # Its indexes, triggers and rules go with it when it is dropped: keep them too.
    return out + [a.definition for a in attached if a.definition.upper().startswith("CREATE")]


def retirement(
    conn: psycopg.Connection, old: str, new: str, tables: list[str], *, copies: bool = True
) -> Retirement:
    """What delete-old retires first: views, materialized views and functions of OLD that are
    bound to the moved tables and whose copies prep made in NEW (the app reads those now). Left
    in place they would stop Heroku Connect from dropping the old tables, or, where it keeps
    them, read tables nobody syncs any more. Anything else still bound to the old tables is a
    problem for a person: the bot does not drop what it did not copy. Reads only.

    `copies=False` (prep copied nothing) skips the inventory scan, which the outage would wait
    on, and only looks for what still depends on the old tables."""
    tables = _validate(conn, old, new, tables)
    with catalog_snapshot(conn):
        out = Retirement()
        if not copies:
            params = {"old": old, "tables": tables, "retired": []}
            out.problems = [
                f"{r['what']} still depends on a table of {old}"
                for r in fetch(conn, _Q_BLOCKERS, params)
            ]
            return out
        forward, _, _ = scan(conn, old, tables, new)
        chosen = [
            o
            for o in forward
            if o.schema_ == old and o.action == "copy" and o.kind in _RETIRED_KINDS and o.oid
        ]
        state = _new_state(conn, new, tables, sorted({o.name for o in chosen}))
        for obj in chosen:
            if obj.kind == "function":
                present = obj.name in state["functions"]
            else:
                present = obj.name in state["relations"]
            if not present:
                out.problems.append(f"{obj.identity} has no copy {obj.target} in {new}: run prep")
                continue
            name = qname(old, obj.name)
            attached = [a for a in forward if a.table == name and a.kind in _ATTACHED_KINDS]
            out.objects.append(
                Retired(
                    identity=obj.identity,
                    kind=obj.kind,
                    schema_=old,
                    name=obj.name,
                    args=obj._detail.get("args") if obj.kind == "function" else None,
                    copy_=obj.target or "",
                    depth=obj.depth,
                    drop=drop_sql(obj, old),
                    create=_original_sql(obj, attached),
                )
            )
        retired = [o.oid for o in chosen]
        params = {"old": old, "tables": tables, "retired": retired}
        for r in fetch(conn, _Q_BLOCKERS, params):
            out.problems.append(f"{r['what']} still depends on a table of {old}")
    return out


def retire(
    conn: psycopg.Connection,
    old: str,
    new: str,
    tables: list[str],
    *,
    lock_timeout_ms: int = 2000,
) -> Retirement:
    """Drop what `retirement` chose, in one transaction, never with CASCADE: if anything else
    depends on a retired object, nothing is dropped and the error says what."""
    try:
        with conn.transaction():
            conn.execute(
                "SELECT pg_catalog.set_config('lock_timeout', %s, true)",
                (f"{int(lock_timeout_ms)}ms",),
            )
            found = retirement(conn, old, new, tables)
            if found.problems:
                raise UserError("not retired: " + "; ".join(found.problems))
            for statement in found.statements:
                guard(statement)
                conn.execute(statement)
    except _RETRYABLE as exc:  # the transaction is over: who held the lock can be read now
        raise _lock_waited(
            conn,
            [old, new],
            f"retiring {old}'s copies: {exc.diag.message_primary}; nothing was dropped",
        ) from None
    except psycopg.Error as exc:
        raise UserError(
            f"retiring {old}'s copies failed: {exc.diag.message_primary or exc}"
            + (f" ({exc.diag.message_detail})" if exc.diag.message_detail else "")
            + "; nothing was dropped"
        ) from None
    return found


def recreate(conn: psycopg.Connection, retired: list[Retired]) -> list[str]:
    """Create retired objects again as they were (rollback before delete-old is done), those
    not back yet, in dependency order, in one transaction. Returns the statements run."""
    run: list[str] = []
    with conn.transaction():
        conn.execute(
            "SELECT pg_catalog.set_config('search_path', 'pg_catalog', true),"
            " pg_catalog.set_config('check_function_bodies', 'off', true)"
        )
        for r in sorted(retired, key=lambda r: r.depth):
            if _exists(conn, r):
                continue
            for statement in r.create:
                guard(statement)
                conn.execute(statement)
                run.append(statement)
    return run


def _exists(conn: psycopg.Connection, r: Retired) -> bool:
    """Whether a retired object is back."""
    if r.kind == "function":
        return bool(
            conn.execute(
                "SELECT 1 FROM pg_catalog.pg_proc p"
                " JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = %s AND p.proname = %s"
                " AND pg_catalog.pg_get_function_identity_arguments(p.oid) = %s",
                (r.schema_, r.name, r.args or ""),
            ).fetchone()
        )
    return bool(
        conn.execute(
            "SELECT 1 FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s",
            (r.schema_, r.name),
        ).fetchone()
    )


# --- command line ------------------------------------------------------------------------------


def render(p: Plan) -> str:
    lines = [
        f"-- swapbot ddl: phase {p.phase}, {p.schema_} -> {p.new_schema}, tables {', '.join(p.tables)}",
        f"-- {len(p.steps)} objects, {len(p.statements)} statements"
        + (f", applied (attempt {p.attempts})" if p.applied else ""),
    ]
    for problem in p.problems:
        lines.append(f"-- NOT READY: {problem}")
    for note in p.notes:
        lines.append(f"-- note: {note}")
    for step in p.steps:
        lines.append("")
        lines.append(
            f"-- {step.action}: {step.identity}" + (f" -> {step.target}" if step.target else "")
        )
        for flag in step.flags:
            lines.append(f"-- REVIEW: {flag}")
        lines += [f"{s};" for s in step.sql]
    if p.manual:
        lines.append("")
        lines.append(f"-- For a person ({len(p.manual)}), no SQL generated:")
        for step in p.manual:
            lines.append(f"-- MANUAL: {step.identity}")
            for flag in step.flags:
                lines.append(f"--   {flag}")
    return "\n".join(lines)
