"""Verify a cutover from the live database: names resolve to NEW, data still arrives there,
HC's triggers are in place, nothing is left bound to an old table, and every carried object
exists in its new form.

Reads only. Reading a mapped table is safe (only writes are captured by HC's triggers).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import psycopg
from psycopg import errors, sql
from pydantic import BaseModel, Field

from swapbot.database import retarget
from swapbot.database._common import (
    UserError,
    check_identifier,
    check_lines,
    parse_tables,
    require_mapped_tables,
    require_schema,
)
from swapbot.database.hc_layout import log_trigger_name, mapped_tables, status_trigger_name
from swapbot.database.inventory import DbObject, catalog_snapshot, scan
from swapbot.database.retarget import qname, quote

Status = Literal["pass", "warn", "fail"]


class Check(BaseModel):
    name: str
    status: Status
    detail: str
    items: list[str] = Field(default_factory=list)


class Verification(BaseModel):
    model_config = {"populate_by_name": True, "serialize_by_alias": True}

    schema_: str = Field(alias="schema")
    new_schema: str
    tables: list[str]
    since: dt.datetime
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)


# --- the search_path a role's new sessions get ---------------------------------------------------

_Q_ROLE_SETTINGS = """
SELECT s.setdatabase <> 0 AS in_database, s.setrole <> 0 AS for_role, s.setconfig
FROM pg_catalog.pg_db_role_setting s
WHERE s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
  AND s.setrole IN (0, coalesce((SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s), 0))
"""


def _path_of(setconfig: list[str] | None) -> str | None:
    for entry in setconfig or ():
        if entry.startswith("search_path="):
            return entry.split("=", 1)[1]
    return None


def server_default_path(conn: psycopg.Connection) -> str:
    """The search_path a session gets when no role or database setting applies."""
    from swapbot.database.searchpath import server_default

    return server_default(conn)[0]


def effective_path(conn: psycopg.Connection, role: str | None) -> tuple[str, str]:
    """(path, where it comes from) for a new session of `role` in this database.

    Precedence as PostgreSQL applies it at login: role in this database, then the role, then
    this database, then all roles (`ALTER ROLE ALL`), then the server's default.
    """
    found: dict[tuple[bool, bool], str] = {}
    for in_database, for_role, setconfig in conn.execute(_Q_ROLE_SETTINGS, (role or "",)):
        path = _path_of(setconfig)
        if path is not None:
            found[(in_database, for_role)] = path
    order = [
        ((True, True), "role in database"),
        ((False, True), "role"),
        ((True, False), "database"),
        ((False, False), "all roles"),
    ]
    for key, source in order:
        if key in found:
            return found[key], source
    return server_default_path(conn), "server default"


def resolve(
    conn: psycopg.Connection, role: str | None, path: str, names: list[str]
) -> tuple[dict[str, int | None], bool]:
    """How unqualified `names` resolve with `path`, as `role` when we may become it.

    Returns ({name: oid or None}, whether it ran as the role). Schemas the role may not use
    are skipped by PostgreSQL's lookup, so running as the role matters.
    """
    as_role = False
    out: dict[str, int | None] = {}
    with conn.transaction(force_rollback=True):
        if role:
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                as_role = True
            except (errors.InsufficientPrivilege, errors.InvalidParameterValue):
                as_role = False
        if role and not as_role:
            path = path.replace('"$user"', quote(role)).replace("$user", quote(role))
        conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (path,))
        for name in names:
            row = conn.execute(
                "SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(%s))::oid::int", (name,)
            ).fetchone()
            out[name] = row[0] if row else None
    return out, as_role


# --- checks -----------------------------------------------------------------------------------


def _oids(conn: psycopg.Connection, schema: str, tables: list[str]) -> dict[str, int]:
    rows = conn.execute(
        "SELECT c.relname::text, c.oid::int FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = ANY(%s)",
        (schema, tables),
    ).fetchall()
    return dict(rows)


def check_resolution(
    conn: psycopg.Connection, old: str, new: str, tables: list[str], role: str | None
) -> Check:
    others = [t for t in mapped_tables(conn, old) if t not in tables]
    new_oids, old_oids = _oids(conn, new, tables), _oids(conn, old, others)
    path, source = effective_path(conn, role)
    resolved, as_role = resolve(conn, role, path, tables + others)
    who = f"role {role}" if role else "a role without its own setting"
    bad = [
        f"{t} resolves to {_where(conn, resolved[t])}, not {qname(new, t)}"
        for t in tables
        if resolved.get(t) is None or resolved[t] != new_oids.get(t)
    ]
    strays = [
        f"{t} resolves to {_where(conn, resolved[t])}, not {qname(old, t)}"
        for t in others
        if resolved.get(t) != old_oids.get(t)
    ]
    detail = f"{who}: search_path {path!r} (from {source})"
    if role and not as_role:
        detail += "; resolved with the path only (cannot SET ROLE, privileges not checked)"
    if bad:
        return Check(
            name=f"resolution:{role or 'default'}", status="fail", detail=detail, items=bad + strays
        )
    if strays:
        return Check(
            name=f"resolution:{role or 'default'}", status="warn", detail=detail, items=strays
        )
    return Check(
        name=f"resolution:{role or 'default'}",
        status="pass",
        detail=f"{detail}; {', '.join(tables)} resolve to {new}"
        + (f", the other {len(others)} mappings to {old}" if others else ""),
    )


def _where(conn: psycopg.Connection, oid: int | None) -> str:
    if oid is None:
        return "nothing"
    row = conn.execute(
        "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s",
        (oid,),
    ).fetchone()
    return qname(*row) if row else f"oid {oid}"


def check_columns(
    conn: psycopg.Connection, old: str, new: str, tables: list[str], wanted: list[str]
) -> Check:
    rows = conn.execute(
        "SELECT n.nspname::text, c.relname::text, a.attname::text FROM pg_catalog.pg_attribute a"
        " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = ANY(%s) AND c.relname = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped",
        ([old, new], tables),
    ).fetchall()
    have = {(s, t, c) for s, t, c in rows}
    missing = [w for w in wanted if (new, *w.split(".", 1)) not in have]
    lost = sorted(f"{t}.{c}" for s, t, c in have if s == old and (new, t, c) not in have)
    if missing:
        return Check(
            name="columns", status="fail", detail=f"{new} lacks requested columns", items=missing
        )
    if lost:
        return Check(
            name="columns",
            status="warn",
            detail=f"columns of {old} that {new} does not have (queries naming them will fail)",
            items=lost,
        )
    return Check(
        name="columns",
        status="pass",
        detail=f"{new} has {', '.join(wanted) if wanted else 'every column of ' + old}",
    )


def check_arriving(
    conn: psycopg.Connection, new: str, tables: list[str], since: dt.datetime
) -> Check:
    stale, fresh = [], []
    with conn.transaction():
        conn.execute("SET LOCAL timezone = 'UTC'")
        for t in tables:
            latest = conn.execute(
                sql.SQL("SELECT max(systemmodstamp) FROM {}").format(sql.Identifier(new, t))
            ).fetchone()[0]
            if latest is not None and latest.tzinfo is not None:
                latest = latest.astimezone(dt.UTC).replace(tzinfo=None)
            (fresh if latest is not None and latest > since else stale).append(
                f"{t}: latest systemmodstamp {latest or 'none'}"
            )
    if stale:
        return Check(
            name="arriving",
            status="fail",
            detail=f"no row in {new} changed in Salesforce after {since.isoformat()}",
            items=stale,
        )
    return Check(
        name="arriving", status="pass", detail=f"rows still arriving in {new}", items=fresh
    )


def check_hc_triggers(conn: psycopg.Connection, new: str, tables: list[str]) -> Check:
    rows = conn.execute(
        "SELECT c.relname::text, t.tgname::text, t.tgenabled::text FROM pg_catalog.pg_trigger t"
        " JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = ANY(%s)",
        (new, tables),
    ).fetchall()
    have = {(t, g): e for t, g, e in rows}
    problems = []
    for t in tables:
        for name in (log_trigger_name(t), status_trigger_name(t)):
            state = have.get((t, name))
            if state is None:
                problems.append(f"{qname(new, t)} has no trigger {name}")
            elif state == "D":
                problems.append(f"trigger {name} on {qname(new, t)} is disabled")
    if problems:
        return Check(
            name="hc_triggers", status="fail", detail="Heroku Connect's triggers", items=problems
        )
    return Check(
        name="hc_triggers",
        status="pass",
        detail=f"HC's log and status triggers on every table of {new}",
    )


def check_dependents(forward: list[DbObject], old: str) -> Check:
    """Nothing outside the originals in OLD may still be bound to an old table."""
    bound = [f"{o.identity}: {o.reason}" for o in forward if o.action in ("replace", "recreate")]
    manual = [f"{o.identity}: {o.reason}" for o in forward if o.phase == "manual"]
    if bound:
        return Check(
            name="dependents",
            status="fail",
            detail=f"still bound to the old tables of {old} (run the cutover DDL)",
            items=bound + manual,
        )
    if manual:
        return Check(
            name="dependents",
            status="warn",
            detail="objects flagged for a person still depend on the old tables",
            items=manual,
        )
    return Check(name="dependents", status="pass", detail="no dependent left bound to an old table")


def _normal(tree) -> str:
    for flag in ("if_not_exists", "replace"):
        if hasattr(tree, flag):
            setattr(tree, flag, False)
    return retarget.deparse(tree)


def _relations(tree) -> set:
    from pglast import ast
    from pglast.visitors import Visitor

    seen: set = set()

    class Collect(Visitor):
        def visit_RangeVar(self, ancestors, node):
            seen.add((node.schemaname, node.relname))

        def visit_FuncCall(self, ancestors, node):
            seen.add(tuple(n.sval for n in node.funcname if isinstance(n, ast.String)))

    Collect()(tree)
    return seen


def _matches(expected: DbObject, actual: DbObject) -> tuple[bool, str]:
    """Whether NEW's object is the expected re-targeted form of OLD's."""
    if expected._tree is not None:
        try:
            got = retarget.parse_one(
                actual._detail["query"]
                if expected.kind in ("view", "materialized_view")
                else actual.definition
            )
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return False, f"cannot parse {actual.identity}: {exc}"
        want = expected._tree
        if _normal(want) == _normal(got):
            return True, ""
        # A view's text is not always a fixed point (PostgreSQL moves casts when it parses
        # what it printed): for views, the same references count as the same definition.
        if expected.kind in ("view", "materialized_view") and _relations(want) == _relations(got):
            return True, "equivalent (PostgreSQL normalized the text)"
        return False, f"{actual.identity} differs from the expected definition"
    d, a = expected._detail, actual._detail
    if expected.kind in ("grant", "schema_grant"):
        missing = set(d["privileges"]) - set(a["privileges"])
        return (not missing, f"missing {', '.join(sorted(missing))}" if missing else "")
    if expected.kind == "comment":
        same = d["comment"] == a["comment"]
        return same, "" if same else "comment differs"
    if expected.kind == "default_privileges":
        missing = set(d["privileges"]) - set(a["privileges"])
        return (not missing, f"missing {', '.join(sorted(missing))}" if missing else "")
    return True, ""


def check_carried(
    forward: list[DbObject], found: list[DbObject], present: set[tuple[str, str]]
) -> Check:
    """Each carried object's counterpart in NEW, compared with the re-targeted original.

    `found` is what the scan from NEW's tables reached; `present` holds (kind, name) of every
    view, materialized view and function in NEW, to tell "missing" from "not re-targeted".
    """
    by_key = {}
    for o in found:
        by_key.setdefault(o._key, o)
        if o.kind == "function":
            by_key.setdefault(o._key[:2], o)
    missing, differ, notes = [], [], []
    expected = [
        o for o in forward if o.phase in ("prep", "cutover") and o.action in ("copy", "attach")
    ]
    for o in expected:
        key = o._key[:2] if o.kind == "function" else o._key
        actual = by_key.get(key)
        if actual is None:
            if o.action == "copy" and (o.kind, o.name) in present:
                differ.append(f"{o.identity}: {o.target} exists but does not read the new tables")
            else:
                missing.append(f"{o.identity} -> {o.target}")
            continue
        ok, note = _matches(o, actual)
        if not ok:
            differ.append(f"{o.identity}: {note}")
        elif note:
            notes.append(f"{o.identity}: {note}")
    if missing or differ:
        return Check(
            name="carried",
            status="fail",
            detail=f"{len(missing)} missing, {len(differ)} different in the new schema",
            items=[f"missing: {m}" for m in missing] + differ,
        )
    return Check(
        name="carried",
        status="pass",
        detail=f"all {len(expected)} carried objects exist in their new form",
        items=notes,
    )


# --- entry point ---------------------------------------------------------------------------------


def parse_since(text: str | dt.datetime) -> dt.datetime:
    """An ISO timestamp as naive UTC (HC's systemmodstamp is UTC without a zone)."""
    if isinstance(text, dt.datetime):
        value = text
    else:
        try:
            value = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            raise UserError(
                f"--since {text!r} is not an ISO timestamp (e.g. 2024-06-01T12:00:00Z)"
            ) from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def parse_columns(text: str | list[str] | None) -> list[str]:
    items = text.split(",") if isinstance(text, str) else list(text or [])
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        table, _, column = item.partition(".")
        if not column:
            raise UserError(f"--columns wants table.column, not {item!r}")
        out.append(f"{check_identifier(table, 'table')}.{check_identifier(column, 'column')}")
    return out


def verify(
    conn: psycopg.Connection,
    old: str,
    new: str,
    tables: list[str],
    since: str | dt.datetime,
    *,
    roles: list[str] | None = None,
    columns: list[str] | None = None,
) -> Verification:
    check_identifier(old, "schema")
    check_identifier(new, "new schema")
    tables = parse_tables(tables)
    moment = parse_since(since)
    columns = parse_columns(columns)
    for role in roles or []:
        if not conn.execute(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (role,)
        ).fetchone():
            raise UserError(f"role {role} does not exist")
    require_mapped_tables(conn, old, tables)
    require_schema(conn, new)
    for t in columns:
        if t.split(".")[0] not in tables:
            raise UserError(f"--columns names {t}, but {t.split('.')[0]} is not among --tables")
    checks = [check_resolution(conn, old, new, tables, r) for r in (roles or [None])]
    checks.append(check_columns(conn, old, new, tables, columns))
    present = set(_oids(conn, new, tables))
    if present != set(tables):
        missing = sorted(set(tables) - present)
        checks.append(
            Check(name="tables", status="fail", detail=f"missing in {new}", items=missing)
        )
        return Verification(schema_=old, new_schema=new, tables=tables, since=moment, checks=checks)
    checks.append(check_arriving(conn, new, tables, moment))
    checks.append(check_hc_triggers(conn, new, tables))
    with catalog_snapshot(conn):
        forward, _, _ = scan(conn, old, tables, new)
        found, _, _ = scan(conn, new, tables, old, forward=False)
    checks.append(check_dependents(forward, old))
    present = {
        (kind, name)
        for kind, name in conn.execute(
            "SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'materialized_view' END, c.relname::text"
            " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %(new)s AND c.relkind IN ('v', 'm')"
            " UNION ALL SELECT 'function', p.proname::text FROM pg_catalog.pg_proc p"
            " JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(new)s",
            {"new": new},
        )
    }
    checks.append(check_carried(forward, found, present))
    return Verification(schema_=old, new_schema=new, tables=tables, since=moment, checks=checks)


def render(v: Verification) -> str:
    lines = [
        f"verify {v.schema_} -> {v.new_schema} ({', '.join(v.tables)}), since {v.since.isoformat()}:"
        f" {'OK' if v.ok else 'FAILED'}"
    ]
    for c in v.checks:
        lines += check_lines(c.status, c.name, c.detail, c.items, bullet="- ")
    return "\n".join(lines)
