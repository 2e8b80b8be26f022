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

import argparse
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
    connect,
    emit,
    lock_holders,
    parse_tables,
    require_mapped_tables,
    require_schema,
)
from swapbot.database._session import add_connection_arguments, add_swap_arguments
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
    kind, action, tree = obj.kind, obj.action, obj._tree
    if action == "refresh":
        return [obj.definition]
    if kind in ("view", "materialized_view"):
        target = qname(away, obj.name) if action == "copy" else qname(obj.schema_, obj.name)
        opts = obj._detail["reloptions"]
        with_ = f" WITH ({', '.join(opts)})" if opts else ""
        query = retarget.deparse(tree)
        word = "VIEW" if kind == "view" else "MATERIALIZED VIEW"
        if kind == "view":
            out = [f"CREATE OR REPLACE VIEW {target}{with_} AS {query}"]
            if action != "copy":
                return out
        elif action == "copy":
            out = [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {target}{with_} AS {query} WITH DATA"]
        else:
            out = [
                f"DROP MATERIALIZED VIEW IF EXISTS {target}",
                f"CREATE MATERIALIZED VIEW {target}{with_} AS {query} WITH DATA",
            ]
        return (
            out
            + [f"ALTER {word} {target} OWNER TO {quote(obj._detail['owner'])}"]
            + _acl(obj, f"TABLE {target}")
            + _comment(obj, f"{word} {target}")
        )
    if kind == "function":
        out = [retarget.deparse(tree)]
        if action != "copy":
            return out
        signature = _signature(tree)
        word = "PROCEDURE" if obj._detail.get("prokind") == "p" else "FUNCTION"
        return (
            out
            + [f"ALTER {word} {signature} OWNER TO {quote(obj._detail['owner'])}"]
            + _acl(obj, f"{word} {signature}")
            + _comment(obj, f"{word} {signature}")
        )
    if kind == "index":
        name = qname(tree.relation.schemaname, tree.idxname)
        return [retarget.deparse(tree)] + _comment(obj, f"INDEX {name}")
    if kind in ("constraint", "foreign_key"):
        table = _relation_of(tree)
        return [
            f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {quote(obj.name)}",
            retarget.deparse(tree),
        ] + _comment(obj, f"CONSTRAINT {quote(obj.name)} ON {table}")
    if kind == "default":
        return [retarget.deparse(tree)]
    if kind == "trigger":
        table = _relation_of(tree)
        return (
            [f"DROP TRIGGER IF EXISTS {quote(obj.name)} ON {table}", retarget.deparse(tree)]
            + _enable("TRIGGER", obj.name, table, obj._detail.get("enabled"))
            + _comment(obj, f"TRIGGER {quote(obj.name)} ON {table}")
        )
    if kind == "rule":
        tree.replace = True
        table = _relation_of(tree)
        return (
            [retarget.deparse(tree)]
            + _enable("RULE", obj.name, table, obj._detail.get("enabled"))
            + _comment(obj, f"RULE {quote(obj.name)} ON {table}")
        )
    if kind == "policy":
        table = _relation_of(tree)
        return [
            f"DROP POLICY IF EXISTS {quote(obj.name)} ON {table}",
            retarget.deparse(tree),
        ] + _comment(obj, f"POLICY {quote(obj.name)} ON {table}")
    if kind == "statistics":
        name = qname(*[n.sval for n in tree.defnames])
        out = [retarget.deparse(tree)]
        if obj._detail.get("stattarget", -1) >= 0:
            out.append(f"ALTER STATISTICS {name} SET STATISTICS {obj._detail['stattarget']}")
        return (
            out
            + [f"ALTER STATISTICS {name} OWNER TO {quote(obj._detail['owner'])}"]
            + _comment(obj, f"STATISTICS {name}")
        )
    if kind == "publication":
        return [retarget.deparse(tree)]
    d = obj._detail
    if kind == "grant":
        cols = f" ({quote(d['column'])})" if d["column"] else ""
        option = " WITH GRANT OPTION" if d["grantable"] else ""
        return [
            f"GRANT {', '.join(d['privileges'])}{cols} ON TABLE {_table(obj, away)}"
            f" TO {role(d['role'])}{option}"
        ]
    if kind == "comment":
        if d.get("column"):
            return [
                f"COMMENT ON COLUMN {_table(obj, away)}.{quote(d['column'])} IS {literal(d['comment'])}"
            ]
        return [f"COMMENT ON TABLE {_table(obj, away)} IS {literal(d['comment'])}"]
    if kind == "not_null":
        return [f"ALTER TABLE {_table(obj, away)} ALTER COLUMN {quote(d['column'])} SET NOT NULL"]
    if kind == "table_option":
        return [f"ALTER TABLE {_table(obj, away)} {d['clause']}"]
    if kind == "schema_grant":
        option = " WITH GRANT OPTION" if d["grantable"] else ""
        return [
            f"GRANT {', '.join(d['privileges'])} ON SCHEMA {quote(away)} TO {role(d['role'])}{option}"
        ]
    if kind == "default_privileges":
        return [
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote(d['owner'])} IN SCHEMA {quote(away)}"
            f" GRANT {', '.join(d['privileges'])} ON {d['objects']} TO {role(d['role'])}"
        ]
    raise ValueError(f"no DDL for {kind}/{action}")


def drop_sql(obj: DbObject, home: str) -> list[str]:
    """The statements that remove `obj`, found in NEW (`home`) by the rollback scan."""
    kind, d = obj.kind, obj._detail
    if kind == "view":
        return [f"DROP VIEW IF EXISTS {qname(home, obj.name)}"]
    if kind == "materialized_view":
        return [f"DROP MATERIALIZED VIEW IF EXISTS {qname(home, obj.name)}"]
    if kind == "function":
        word = "PROCEDURE" if d.get("prokind") == "p" else "FUNCTION"
        return [f"DROP {word} IF EXISTS {qname(home, obj.name)}({d['args']})"]
    if kind == "index":
        return [f"DROP INDEX IF EXISTS {qname(obj.schema_, obj.name)}"]
    if kind == "statistics":
        return [f"DROP STATISTICS IF EXISTS {qname(obj.schema_, obj.name)}"]
    table = obj.table
    if kind in ("constraint", "foreign_key"):
        return [f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {quote(obj.name)}"]
    if kind == "trigger":
        return [f"DROP TRIGGER IF EXISTS {quote(obj.name)} ON {table}"]
    if kind == "rule":
        return [f"DROP RULE IF EXISTS {quote(obj.name)} ON {table}"]
    if kind == "policy":
        return [f"DROP POLICY IF EXISTS {quote(obj.name)} ON {table}"]
    if kind == "default":
        return [f"ALTER TABLE {table} ALTER COLUMN {quote(obj.name)} DROP DEFAULT"]
    if kind == "publication":
        return [f"ALTER PUBLICATION {quote(obj.name)} DROP TABLE {table}"]
    if kind == "grant":
        cols = f" ({quote(d['column'])})" if d["column"] else ""
        return [
            f"REVOKE {', '.join(d['privileges'])}{cols} ON TABLE {table} FROM {role(d['role'])}"
        ]
    if kind == "comment":
        if d.get("column"):
            return [f"COMMENT ON COLUMN {table}.{quote(d['column'])} IS NULL"]
        return [f"COMMENT ON TABLE {table} IS NULL"]
    if kind == "not_null":
        return [f"ALTER TABLE {table} ALTER COLUMN {quote(d['column'])} DROP NOT NULL"]
    if kind == "table_option":
        undo = {
            "row_security": "DISABLE ROW LEVEL SECURITY",
            "force_row_security": "NO FORCE ROW LEVEL SECURITY",
            "replica_identity": "REPLICA IDENTITY DEFAULT",
        }.get(d["option"])
        if d["option"] == "storage":
            keys = [o.split("=", 1)[0] for o in d["reloptions"] or ()]
            undo = f"RESET ({', '.join(keys)})"
        return [f"ALTER TABLE {table} {undo}"]
    if kind == "schema_grant":
        return [
            f"REVOKE {', '.join(d['privileges'])} ON SCHEMA {quote(home)} FROM {role(d['role'])}"
        ]
    if kind == "default_privileges":
        return [
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote(d['owner'])} IN SCHEMA {quote(home)}"
            f" REVOKE {', '.join(d['privileges'])} ON {d['objects']} FROM {role(d['role'])}"
        ]
    raise ValueError(f"no rollback for {kind}")


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
        state = _new_state(conn, new, tables)
        forward, _, renames = scan(conn, old, tables, new)
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


_Q_NEW_TABLES = """
SELECT c.relname::text AS relname, c.oid::int AS oid,
       EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid
               AND t.tgname = left('hc_' || c.relname || '_logtrigger', 63)) AS mapped,
       ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid
             AND a.attnum > 0 AND NOT a.attisdropped) AS columns
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')
"""

_Q_NEW_RELATIONS = """
SELECT c.relname::text AS relname, c.relkind::text AS relkind, t.relname::text AS on
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_class t ON t.oid = i.indrelid
WHERE n.nspname = %s
"""

_Q_NEW_FUNCTIONS = """
SELECT p.proname::text AS proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %s
"""

_Q_PUBLISHED = """
SELECT p.pubname::text AS pubname, c.relname::text AS relname
FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s
"""


def _new_state(conn: psycopg.Connection, new: str, tables: list[str]) -> dict:
    """What NEW holds now: its tables (mapped or not, with columns), relations, functions."""
    exists = bool(fetch(conn, "SELECT 1 AS x FROM pg_namespace WHERE nspname = %s", (new,)))
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
        "tables": {r["relname"]: r for r in fetch(conn, _Q_NEW_TABLES, (new, tables))},
        "relations": {r["relname"]: r for r in fetch(conn, _Q_NEW_RELATIONS, (new,))},
        "functions": {r["proname"] for r in fetch(conn, _Q_NEW_FUNCTIONS, (new,))},
        "published": {(r["pubname"], r["relname"]) for r in fetch(conn, _Q_PUBLISHED, (new,))},
    }


def _problems(
    conn: psycopg.Connection, out: Plan, forward: list[DbObject], state: dict, renames
) -> list[str]:
    """Why this phase cannot be applied yet (empty when it can)."""
    new = out.new_schema
    if not state["exists"]:
        return [f"schema {new} does not exist yet: hc2's initial load has not created it"]
    problems = []
    for t in out.tables:
        row = state["tables"].get(t)
        if row is None:
            problems.append(f"{qname(new, t)} does not exist yet: hc2's load has not created it")
        elif not row["mapped"]:
            problems.append(
                f"{qname(new, t)} exists but is not a Heroku Connect mapping (no HC trigger)"
            )
    for step_obj in (o for o in forward if o.phase == out.phase):
        for col in step_obj.columns:
            table, column = col.split(".", 1)
            row = state["tables"].get(table)
            if row is not None and column not in row["columns"]:
                problems.append(
                    f"{qname(new, table)} lacks column {quote(column)}, needed by {step_obj.identity}"
                )
    relations = state["relations"]
    for obj in forward:
        if obj.phase != out.phase or obj.action not in ("copy", "attach"):
            continue
        if obj.kind in ("view", "materialized_view") and obj.action == "copy":
            have = relations.get(obj.name)
            if have and have["relkind"] != {"view": "v", "materialized_view": "m"}[obj.kind]:
                problems.append(f"{qname(new, obj.name)} already exists and is not a {obj.kind}")
        if obj.kind == "index":
            have = relations.get(obj.name)
            wanted = obj._detail.get("target_rel")
            if have is not None and (have["relkind"] not in ("i", "I") or have["on"] != wanted):
                problems.append(
                    f"{qname(new, obj.name)} already exists and is not an index on {qname(new, wanted)}"
                )
    if out.phase == "cutover":
        missing = [
            qname(*target)
            for source, target in renames.relations.items()
            if source[1] not in out.tables and target[1] not in relations
        ] + [
            qname(*target)
            for target in renames.functions.values()
            if target[1] not in state["functions"]
        ]
        if missing:
            problems.append(f"run prep first: {', '.join(sorted(missing))} missing in {new}")
    return problems


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
        signature = f"{name}({d['args']})"
        out = [obj.definition, f"ALTER {word} {signature} OWNER TO {quote(d['owner'])}"]
        return out + _acl(obj, f"{word} {signature}") + _comment(obj, f"{word} {signature}")
    opts = d["reloptions"]
    with_ = f" WITH ({', '.join(opts)})" if opts else ""
    query = (d["query"] or "").strip().rstrip(";")
    if obj.kind == "view":
        word, out = "VIEW", [f"CREATE OR REPLACE VIEW {name}{with_} AS {query}"]
    else:
        word = "MATERIALIZED VIEW"
        out = [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name}{with_} AS {query} WITH DATA"]
    out += [f"ALTER {word} {name} OWNER TO {quote(d['owner'])}"]
    out += _acl(obj, f"TABLE {name}") + _comment(obj, f"{word} {name}")
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
        state = _new_state(conn, new, tables)
        forward, _, _ = scan(conn, old, tables, new)
        chosen = [
            o
            for o in forward
            if o.schema_ == old and o.action == "copy" and o.kind in _RETIRED_KINDS and o.oid
        ]
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


def _command(args: argparse.Namespace) -> int:
    tables = parse_tables(args.tables)
    check_identifier(args.schema, "schema")
    check_identifier(args.new_schema, "new schema")
    with connect(args.database_url, autocommit=True) as conn:
        require_schema(conn, args.schema)
        if args.apply:
            result = apply(
                conn, args.schema, args.new_schema, tables, args.phase,
                lock_timeout_ms=args.lock_timeout, attempts=args.attempts,
            )  # fmt: skip
        else:
            result = plan(conn, args.schema, args.new_schema, tables, args.phase)
    emit(result.model_dump(mode="json"), render(result), args.json)
    return 0


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def add_command(db_sub) -> argparse.ArgumentParser:
    p = db_sub.add_parser(
        "ddl",
        help="SQL for prep, cutover or rollback, re-targeted from OLD to NEW (--apply runs it)",
        description=__doc__.split("\n\n")[0],
    )
    add_connection_arguments(p)
    add_swap_arguments(p)
    p.add_argument("--phase", required=True, choices=["prep", "cutover", "rollback"])
    p.add_argument("--apply", action="store_true", help="run the phase in one transaction")
    p.add_argument("--lock-timeout", type=_at_least_one, default=2000, help="ms per lock (2000)")
    p.add_argument("--attempts", type=_at_least_one, default=5, help="tries when a lock times out")
    p.set_defaults(func=_command)
    return p
