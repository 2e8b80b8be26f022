"""Preflight: every database requirement of a swap, checked and reported as pass / warn / fail
with the number behind it. Reads only; run it days before the outage and again on the day."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Literal

import psycopg
from psycopg import sql
from pydantic import BaseModel, computed_field

from swapbot.database import backlog as backlog_mod
from swapbot.database import searchpath
from swapbot.database._common import (
    UserError,
    check_identifier,
    check_lines,
    parse_tables,
    require_mapped_tables,
    schema_exists,
)

Status = Literal["pass", "warn", "fail"]
ORDER: dict[str, int] = {"pass": 0, "warn": 1, "fail": 2}

# PostgreSQL 14 brought SQL-standard function bodies (BEGIN ATOMIC), which inventory and ddl
# handle; Heroku no longer offers anything older than 14 for new databases.
MIN_VERSION, GOOD_VERSION = 12, 14
# Assumption, not documented by Heroku: one HC add-on keeps up to this many sessions open (its
# writer, its pollers and the initial load's bulk sessions). A second add-on needs as many free.
HC_CONNECTIONS = 10
# The new tables are a fresh copy of the changed ones plus the added columns; this margin covers
# the columns and the trigger log of the new schema.
NEW_COPY_FACTOR = 1.2
GIB = 1024**3
# A drain longer than this makes the outage noticeably longer: flag it.
DRAIN_WARN_SECONDS = 300


class Check(BaseModel):
    name: str
    status: Status
    value: float | None  # the number the verdict rests on (unit says what it counts)
    unit: str
    summary: str
    details: list[str] = []


class Preflight(BaseModel):
    database: str
    old_schema: str
    new_schema: str
    tables: list[str]
    roles: list[str]
    checked_at: datetime
    checks: list[Check]

    @computed_field
    @property
    def status(self) -> Status:
        return max((c.status for c in self.checks), key=ORDER.__getitem__, default="pass")


def _pretty_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


# -- the checks ---------------------------------------------------------------------------
def check_version(conn: psycopg.Connection) -> Check:
    num = int(conn.execute("SELECT current_setting('server_version_num')").fetchone()[0])
    major = num // 10000
    text = conn.execute("SELECT current_setting('server_version')").fetchone()[0]
    if major >= GOOD_VERSION:
        status: Status = "pass"
        summary = f"PostgreSQL {text}"
    elif major >= MIN_VERSION:
        status, summary = "warn", f"PostgreSQL {text}: no BEGIN ATOMIC functions before 14"
    else:
        status, summary = "fail", f"PostgreSQL {text}: swapbot needs {MIN_VERSION} or later"
    return Check(name="postgres_version", status=status, value=major, unit="major", summary=summary)


def check_connections(conn: psycopg.Connection) -> Check:
    max_conn, reserved, in_use = conn.execute(
        """
        SELECT current_setting('max_connections')::int,
               current_setting('superuser_reserved_connections')::int
                 + coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0),
               (SELECT count(*) FROM pg_catalog.pg_stat_activity
                WHERE backend_type = 'client backend')
        """
    ).fetchone()
    free = max_conn - reserved - in_use
    details = [
        f"max_connections {max_conn}, reserved {reserved}, in use {in_use} (all databases)",
        f"assumed: one Heroku Connect add-on holds up to {HC_CONNECTIONS} connections",
    ]
    if free >= 2 * HC_CONNECTIONS:
        status: Status = "pass"
    elif free >= HC_CONNECTIONS:
        status = "warn"
    else:
        status = "fail"
    return Check(
        name="connections",
        status=status,
        value=free,
        unit="free connections",
        summary=f"{free} connections free; a second add-on needs about {HC_CONNECTIONS}",
        details=details,
    )


def check_disk(
    conn: psycopg.Connection, schema: str, tables: list[str], limit_gb: float | None
) -> Check:
    db_size, changed = conn.execute(
        """
        SELECT pg_catalog.pg_database_size(current_database()),
               coalesce(sum(pg_catalog.pg_total_relation_size(c.oid)), 0)::bigint
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')
        """,
        (schema, tables),
    ).fetchone()
    need = int(changed * NEW_COPY_FACTOR)
    details = [
        f"database {_pretty_bytes(db_size)}; changed tables {_pretty_bytes(changed)}"
        " (heap, indexes and TOAST)",
        f"the new copy needs about {_pretty_bytes(need)} ({NEW_COPY_FACTOR:g} x the changed"
        " tables, for the added columns and the new schema's trigger log)",
    ]
    if limit_gb is None:
        return Check(
            name="disk",
            status="warn",
            value=need,
            unit="bytes needed",
            summary=f"needs about {_pretty_bytes(need)} more; the plan's disk limit is unknown"
            " (pass --disk-limit-gb)",
            details=details,
        )
    limit = limit_gb * GIB
    room = limit - db_size - need
    if room < 0:
        status: Status = "fail"
    elif db_size + need > 0.9 * limit:
        status = "warn"
    else:
        status = "pass"
    return Check(
        name="disk",
        status=status,
        value=room,
        unit="bytes left after the copy",
        summary=f"{_pretty_bytes(room)} of {limit_gb:g} GB left after the copy"
        if room >= 0
        else f"short by {_pretty_bytes(-room)} of the {limit_gb:g} GB limit",
        details=details,
    )


def check_helpers(conn: psycopg.Connection) -> Check:
    where = searchpath.helper_locations(conn)
    details = [f"{name} in {', '.join(s) or '(missing)'}" for name, s in where.items()]
    missing = [name for name, s in where.items() if not s]
    elsewhere = sorted({s for found in where.values() for s in found} - {"public"})
    if missing:
        status: Status = "fail"
        summary = f"missing: {', '.join(missing)}; HC's triggers cannot run"
    elif elsewhere == [searchpath.HEROKU_EXT]:
        status = "warn"
        summary = "HC's helpers live in heroku_ext: every path the swap sets includes it"
    elif elsewhere:
        status = "warn"
        summary = (
            f"HC's helpers live in {', '.join(elsewhere)}: the app's path must keep that schema"
        )
    else:
        status, summary = "pass", "hstore and get_xmlbinary() live in public"
    return Check(
        name="hc_helpers",
        status=status,
        value=len(elsewhere),
        unit="schemas other than public",
        summary=summary,
        details=details,
    )


def default_roles(conn: psycopg.Connection) -> list[str]:
    """Login roles that set their own search_path for this database (the app's, typically);
    the current user when none does."""
    rows = conn.execute(
        """
        SELECT DISTINCT r.rolname FROM pg_catalog.pg_db_role_setting s
        JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
        WHERE r.rolcanlogin AND NOT r.rolsuper
          AND s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database
                                    WHERE datname = current_database()))
          AND EXISTS (SELECT 1 FROM unnest(s.setconfig) c WHERE c LIKE 'search\\_path=%')
        ORDER BY 1
        """
    ).fetchall()
    return [r[0] for r in rows] or [conn.execute("SELECT current_user").fetchone()[0]]


def check_search_path(
    conn: psycopg.Connection, schema: str, tables: list[str], roles: list[str]
) -> Check:
    settings = searchpath.read_settings(conn, roles)
    default = searchpath.server_default(conn)
    details, reaching = [], 0
    db_level = next(s.search_path for s in settings if s.level == "database")
    details.append(f"database level: {db_level if db_level is not None else '(not set)'}")
    for role in roles:
        path, source = searchpath.effective_path(settings, role, default)
        resolves = searchpath.resolve(conn, tables, path, role)
        wrong = {t: s for t, s in resolves.items() if s != schema}
        if not wrong:
            reaching += 1
        details.append(
            f"{role}: {path} [from {source}]"
            + (
                ""
                if not wrong
                else "; " + ", ".join(f"{t} -> {s or 'nothing'}" for t, s in wrong.items())
            )
        )
    status: Status = "pass" if reaching == len(roles) else "fail"
    summary = (
        f"{reaching} of {len(roles)} roles reach the changed tables in {schema} unqualified"
        if status == "pass"
        else f"{len(roles) - reaching} of {len(roles)} roles do not reach every changed table"
        f" in {schema} by its bare name: the switch cannot move them"
    )
    return Check(
        name="search_path",
        status=status,
        value=reaching,
        unit="roles that reach the tables",
        summary=summary,
        details=details,
    )


def reference_pattern(schema: str, tables: list[str]) -> str:
    """A regular expression (POSIX ARE and Python alike) for `schema.table`, quoted or not."""
    names = "|".join(re.escape(t) for t in tables)
    s = re.escape(schema)
    return rf'(^|[^a-z0-9_$"])("{s}"|{s})\s*\.\s*("({names})"|({names})([^a-z0-9_$]|$))'


def check_references(conn: psycopg.Connection, schema: str, tables: list[str]) -> Check:
    """Views bound to the changed tables, functions naming them with OLD's name or pinning OLD
    on their own search_path: none of them follows the switch by itself."""
    views = conn.execute(
        """
        SELECT DISTINCT format('%%I.%%I', vn.nspname, v.relname),
               CASE v.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
        JOIN pg_catalog.pg_class v ON v.oid = w.ev_class
        JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
        JOIN pg_catalog.pg_class t ON t.oid = d.refobjid AND d.refclassid = 'pg_class'::regclass
        JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
        WHERE tn.nspname = %s AND t.relname = ANY(%s) AND v.oid <> t.oid
        ORDER BY 1
        """,
        (schema, tables),
    ).fetchall()
    functions = conn.execute(
        """
        SELECT name, CASE WHEN bound THEN 'BEGIN ATOMIC body bound to the old table'
                          WHEN names THEN 'body names ' || %(schema)s || ' explicitly'
                          ELSE 'pins search_path: ' || config END
        FROM (
          SELECT format('%%I.%%I(%%s)', n.nspname, p.proname,
                        pg_catalog.pg_get_function_identity_arguments(p.oid)) AS name,
                 p.prosqlbody IS NOT NULL AND EXISTS (
                   SELECT 1 FROM pg_catalog.pg_depend d
                   JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
                   JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
                   WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                     AND d.refclassid = 'pg_class'::regclass
                     AND tn.nspname = %(schema)s AND t.relname = ANY(%(tables)s)) AS bound,
                 p.prosrc ~* %(pattern)s AS names,
                 EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c ~* %(pinned)s) AS pinned,
                 array_to_string(p.proconfig, ' ') AS config
          FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
            -- HC functions write to their own trigger log, never name a mapped table
            AND NOT (n.nspname = %(schema)s
                     AND (p.proname LIKE 'hc\\_%%' OR p.proname = 'tlog_notify_trigger'))
        ) f
        WHERE bound OR names OR pinned
        ORDER BY 1
        """,
        {
            "schema": schema,
            "tables": tables,
            "pattern": reference_pattern(schema, tables),
            "pinned": rf"^search_path=(.*[^a-z0-9_$])?{re.escape(schema)}([^a-z0-9_$]|$)",
        },
    ).fetchall()
    details = [f"{kind} {name} is bound to the old table by OID" for name, kind in views]
    details += [f"function {name}: {why}" for name, why in functions]
    return _findings(
        "explicit_references",
        "views and functions",
        details,
        found=f"{len(details)} views and functions will keep reading {schema} after the switch"
        " unless recreated (see `swapbot db inventory`)",
        none=f"no view or function is bound to or names {schema}'s changed tables",
    )


def _findings(name: str, unit: str, details: list[str], *, found: str, none: str) -> Check:
    """A check that warns about what it found (one detail each), and passes on nothing."""
    return Check(
        name=name,
        status="warn" if details else "pass",
        value=len(details),
        unit=unit,
        summary=found if details else none,
        details=details,
    )


def check_statements(conn: psycopg.Connection, schema: str, tables: list[str]) -> Check:
    """Queries seen by pg_stat_statements that name OLD's changed tables or set search_path."""
    row = conn.execute(
        "SELECT n.nspname FROM pg_catalog.pg_extension e"
        " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'pg_stat_statements'"
    ).fetchone()
    if row is None:
        return _statements_unread(
            schema, "pg_stat_statements is not installed: the app's queries cannot be checked here"
        )
    view = sql.Identifier(row[0], "pg_stat_statements")
    try:
        with conn.transaction():
            rows = conn.execute(
                sql.SQL(
                    "SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 200),"
                    " query ~* %(pattern)s"
                    " FROM {} WHERE dbid = (SELECT oid FROM pg_catalog.pg_database"
                    "   WHERE datname = current_database())"
                    " AND (query ~* %(pattern)s OR query ~* 'set\\s+(session\\s+|local\\s+)?"
                    "search_path') ORDER BY calls DESC LIMIT 50"
                ).format(view),
                {"pattern": reference_pattern(schema, tables)},
            ).fetchall()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0]
        return _statements_unread(
            schema, f"pg_stat_statements is installed but cannot be read ({reason})"
        )
    naming = [(calls, q) for calls, q, names in rows if names]
    setting = [(calls, q) for calls, q, names in rows if not names]
    details = [f"{calls} calls: {q}" for calls, q in naming]
    details += [f"{calls} calls (sets search_path itself): {q}" for calls, q in setting]
    return _findings(
        "app_queries",
        "statements",
        details,
        found=f"{len(naming)} statements name {schema}'s changed tables and {len(setting)} set"
        " search_path: the app's would not follow the switch (HC's own name the schema too;"
        " judge each)",
        none=f"no recorded statement names {schema}'s changed tables or sets search_path",
    )


def _statements_unread(schema: str, why: str) -> Check:
    return Check(
        name="app_queries",
        status="warn",
        value=None,
        unit="statements",
        summary=f"{why}; search the app's code for '{schema}.' and 'search_path'",
    )


def check_backlog(conn: psycopg.Connection, schema: str, tables: list[str]) -> Check:
    b = backlog_mod.backlog(conn, schema)
    mine = sum(p.rows for p in b.pending_by_table if p.table in tables)
    details = [
        f"pending: {b.pending_all_tables} rows ({mine} in the changed tables), oldest "
        + (backlog_mod.duration(b.oldest_pending_age_seconds) if b.oldest_pending_at else "none"),
        f"captured in the last {b.window_minutes} min: {b.created_per_minute:.1f}/min"
        f" ({b.to_send_per_minute:.1f}/min to send)",
        "HC throughput: "
        + (
            f"{max(b.throughput_per_minute or 0, b.peak_per_minute or 0):.1f}/min"
            if b.throughput_per_minute or b.peak_per_minute
            else "unknown"
        ),
        f"failures in the last day: {b.failures_last_day}",
        *b.notes,
    ]
    drain = b.drain_seconds
    problems = []
    if drain is None:
        problems.append("no drain estimate")
    elif drain > DRAIN_WARN_SECONDS:
        problems.append(f"the drain would take {backlog_mod.duration(drain)}")
    if b.failures_last_day:
        problems.append(f"{b.failures_last_day} failed writes in the last day")
    return Check(
        name="backlog",
        status="warn" if problems else "pass",
        value=drain,
        unit="seconds to drain",
        summary=(
            "; ".join(problems)
            if problems
            else f"{b.pending_all_tables} pending; drain about {backlog_mod.duration(drain)}"
        ),
        details=details,
    )


def check_new_schema(conn: psycopg.Connection, new: str) -> Check:
    exists = schema_exists(conn, new)
    return Check(
        name="new_schema",
        status="fail" if exists else "pass",
        value=int(exists),
        unit="exists",
        summary=f"schema {new} already exists: pick another name or find out who made it"
        if exists
        else f"schema {new} is free for hc2",
    )


def _guarded(conn: psycopg.Connection, name: str, check: Callable[[], Check]) -> Check:
    """Run one check in its own savepoint: an error is reported, and the others still run."""
    try:
        with conn.transaction():
            return check()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check(
            name=name, status="warn", value=None, unit="", summary=f"could not check: {reason}"
        )


def preflight(
    conn: psycopg.Connection,
    old: str,
    new: str,
    tables: list[str],
    *,
    roles: list[str] | None = None,
    disk_limit_gb: float | None = None,
) -> Preflight:
    """Check every database requirement of swapping `tables` from `old` to `new`."""
    check_identifier(old, "schema")
    check_identifier(new, "new schema")
    if old == new:
        raise UserError("--schema and --new-schema must differ")
    tables = parse_tables(tables)
    roles = searchpath.parse_roles(roles) if roles else []
    if disk_limit_gb is not None and disk_limit_gb <= 0:
        raise UserError("--disk-limit-gb must be a positive number")
    require_mapped_tables(conn, old, tables)
    backlog_mod.require_hc_schema(conn, old)
    if roles:
        searchpath.require_roles(conn, roles)
    else:
        roles = default_roles(conn)
    checks = [
        ("postgres_version", lambda: check_version(conn)),
        ("connections", lambda: check_connections(conn)),
        ("disk", lambda: check_disk(conn, old, tables, disk_limit_gb)),
        ("hc_helpers", lambda: check_helpers(conn)),
        ("search_path", lambda: check_search_path(conn, old, tables, roles)),
        ("explicit_references", lambda: check_references(conn, old, tables)),
        ("app_queries", lambda: check_statements(conn, old, tables)),
        ("backlog", lambda: check_backlog(conn, old, tables)),
        ("new_schema", lambda: check_new_schema(conn, new)),
    ]
    return Preflight(
        database=conn.execute("SELECT current_database()").fetchone()[0],
        old_schema=old,
        new_schema=new,
        tables=tables,
        roles=roles,
        checked_at=conn.execute("SELECT now()").fetchone()[0],
        checks=[_guarded(conn, name, check) for name, check in checks],
    )


def render(p: Preflight) -> str:
    lines = [
        f"preflight of {p.database}: {p.old_schema} -> {p.new_schema} for {', '.join(p.tables)}"
        f" (roles {', '.join(p.roles)}): {p.status.upper()}"
    ]
    for c in p.checks:
        lines += check_lines(c.status, c.name, c.summary, c.details)
    return "\n".join(lines)
