"""The cutover itself: point the app's unqualified table names at the new schema by changing the
`search_path` its sessions get at login, prove it from fresh sessions, and put it back exactly.

Settings live in `pg_db_role_setting` at three levels, applied at login in this order of
precedence: role in database (`ALTER ROLE r IN DATABASE d SET`), role (`ALTER ROLE r SET`),
database (`ALTER DATABASE d SET`), then the server's default. `switch` writes the first level
for each role (and the database level with `--database`), after recording exactly what was
there, "not set" included; `restore` writes back the recorded values so the catalog row is
byte-for-byte what it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus
from pydantic import BaseModel, ValidationError

from swapbot.database._common import (
    UserError,
    check_identifier,
    parse_tables,
    require_mapped_tables,
)
from swapbot.database.hc_layout import mapped_tables

Level = Literal["role_in_database", "role", "database"]
ProofMethod = Literal["login", "computed path, set role", "computed path"]
# Where Heroku put extensions between August 2022 and August 2023; HC's triggers need hstore and
# get_xmlbinary() on the path of every session that writes to a mapped table.
HEROKU_EXT = "heroku_ext"
# Relation kinds a name in FROM can resolve to.
RELKINDS = ["r", "p", "v", "m", "f"]


class Setting(BaseModel):
    """One level of `pg_db_role_setting` as stored: the whole row and its search_path entry."""

    level: Level
    role: str | None
    database: str | None
    search_path: str | None  # the raw stored value; None: not set at this level
    setconfig: list[str] | None  # the whole row; None: no row


class RoleView(BaseModel):
    role: str
    effective_path: str
    source: str  # the level the effective path comes from, or "server default"
    resolves: dict[str, str | None]  # changed table -> schema its unqualified name reaches


class Report(BaseModel):
    database: str
    old_schema: str
    new_schema: str
    tables: list[str]
    server_default: str
    server_default_source: str
    settings: list[Setting]
    roles: list[RoleView]


class LevelRecord(BaseModel):
    level: Literal["role_in_database", "database"]
    role: str | None
    database: str
    previous: str | None  # raw search_path before the first switch; None: it was not set
    previous_setconfig: list[str] | None  # the whole row before; None: there was no row
    applied: str | None = None  # the value the switch stored


class Proof(BaseModel):
    role: str
    method: ProofMethod
    search_path: str
    resolves: dict[str, str | None]  # table -> schema, as a fresh session sees it
    expected: dict[str, str]
    helpers: dict[str, bool]  # get_xmlbinary() and hstore reachable unqualified
    ok: bool
    error: str | None = None


class Session(BaseModel):
    pid: int
    role: str | None
    application_name: str | None
    client_addr: str | None
    backend_start: datetime
    state: str | None


class SwitchRecord(BaseModel):
    database: str
    old_schema: str
    new_schema: str
    tables: list[str]
    roles: list[str]
    include_database: bool
    levels: list[LevelRecord]
    switched_at: datetime | None = None
    proofs: list[Proof] = []
    pre_switch_sessions: list[Session] = []
    notes: list[str] = []

    @property
    def proven(self) -> bool:
        return bool(self.proofs) and all(p.ok for p in self.proofs)


class RestoredLevel(BaseModel):
    level: str
    role: str | None
    restored: str | None  # None: the setting was removed, as before the switch
    setconfig: list[str] | None
    identical: bool  # the row is byte-for-byte what was recorded before the switch


class RestoreResult(BaseModel):
    database: str
    levels: list[RestoredLevel]

    @property
    def identical(self) -> bool:
        return all(level.identical for level in self.levels)


# -- search_path text ---------------------------------------------------------------------
def parse_path(text: str) -> list[str]:
    """Split a search_path value as PostgreSQL does (SplitIdentifierString): comma-separated,
    double-quoted names kept verbatim ("" is a quote), unquoted names lower-cased."""
    out: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            if out:
                raise ValueError(f"search_path ends with a comma: {text!r}")
            return out
        if text[i] == '"':
            name, i = [], i + 1
            while True:
                end = text.find('"', i)
                if end < 0:
                    raise ValueError(f"unterminated quote in search_path {text!r}")
                name.append(text[i:end])
                if end + 1 < n and text[end + 1] == '"':
                    name.append('"')
                    i = end + 2
                    continue
                i = end + 1
                break
            item = "".join(name)
        else:
            start = i
            while i < n and text[i] != "," and not text[i].isspace():
                i += 1
            item = text[start:i].lower()
        out.append(item[:63])
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return out
        if text[i] != ",":
            raise ValueError(f"unexpected character in search_path {text!r}")
        i += 1


def _entry(setconfig: list[str] | None) -> str | None:
    for item in setconfig or []:
        name, _, value = item.partition("=")
        if name == "search_path":
            return value
    return None


# -- reading the settings -------------------------------------------------------------------
def current_database(conn: psycopg.Connection) -> str:
    return conn.execute("SELECT current_database()").fetchone()[0]


def read_settings(conn: psycopg.Connection, roles: list[str]) -> list[Setting]:
    """The database level, then role-in-database and role for each role, as stored."""
    dbname = current_database(conn)
    rows = conn.execute(
        """
        SELECT CASE WHEN s.setrole = 0 THEN 'database'
                    WHEN s.setdatabase = 0 THEN 'role' ELSE 'role_in_database' END,
               r.rolname, d.datname, s.setconfig
        FROM pg_catalog.pg_db_role_setting s
        LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
        LEFT JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
        WHERE (s.setdatabase = (SELECT oid FROM pg_catalog.pg_database
                                WHERE datname = current_database()) OR s.setdatabase = 0)
          AND (s.setrole = 0 OR r.rolname = ANY(%s))
          -- ALTER ROLE ALL SET (no role, no database) is not the database level; swapbot
          -- never writes it (a superuser setting, not available on Heroku)
          AND NOT (s.setrole = 0 AND s.setdatabase = 0)
        """,
        (roles,),
    ).fetchall()
    stored = {(level, role): setconfig for level, role, _, setconfig in rows}
    wanted: list[tuple[Level, str | None]] = [("database", None)]
    for role in roles:
        wanted += [("role_in_database", role), ("role", role)]
    out = []
    for level, role in wanted:
        setconfig = stored.get((level, role))
        out.append(
            Setting(
                level=level,
                role=role,
                database=None if level == "role" else dbname,
                search_path=_entry(setconfig),
                setconfig=setconfig,
            )
        )
    return out


def server_default(conn: psycopg.Connection) -> tuple[str, str]:
    """The search_path a session gets when no level sets one, and how we know it."""
    boot, reset, source = conn.execute(
        "SELECT boot_val, reset_val, source FROM pg_catalog.pg_settings WHERE name = 'search_path'"
    ).fetchone()
    if source in ("default", "configuration file", "command line", "environment variable"):
        return reset, f"server ({source})"
    readable = conn.execute(
        "SELECT pg_catalog.pg_has_role(current_user, 'pg_read_all_settings', 'MEMBER')"
    ).fetchone()[0]
    if readable:
        row = conn.execute(
            "SELECT setting FROM pg_catalog.pg_file_settings"
            " WHERE name = 'search_path' AND applied ORDER BY seqno DESC LIMIT 1"
        ).fetchone()
        if row:
            return row[0], "server (configuration file)"
    return boot, "PostgreSQL's built-in default (postgresql.conf not readable)"


def effective_path(settings: list[Setting], role: str, default: tuple[str, str]) -> tuple[str, str]:
    """The path `role` gets at login, by PostgreSQL's precedence, and the level it comes from."""
    by_level = {(s.level, s.role): s.search_path for s in settings}
    for level, who in (("role_in_database", role), ("role", role), ("database", None)):
        value = by_level.get((level, who))
        if value is not None:
            return value, level
    return default


def resolve(
    conn: psycopg.Connection, names: list[str], path: str, role: str | None = None
) -> dict[str, str | None]:
    """The schema each unqualified relation name reaches with `path` as `role` (default: the
    current user): schemas that do not exist or lack USAGE for the role are skipped, and
    pg_catalog is searched first unless the path places it, as PostgreSQL does."""
    who = role or conn.execute("SELECT current_user").fetchone()[0]
    schemas = [who if s == "$user" else s for s in parse_path(path)]
    if "pg_catalog" not in schemas:
        schemas.insert(0, "pg_catalog")
    rows = conn.execute(
        """
        SELECT DISTINCT ON (c.relname) c.relname, n.nspname
        FROM unnest(%(schemas)s::text[]) WITH ORDINALITY AS p(nspname, ord)
        JOIN pg_catalog.pg_namespace n ON n.nspname = p.nspname
        JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid
        WHERE c.relname = ANY(%(names)s) AND c.relkind::text = ANY(%(kinds)s)
          AND pg_catalog.has_schema_privilege(%(who)s, n.oid, 'USAGE')
        ORDER BY c.relname, p.ord
        """,
        {"schemas": schemas, "names": names, "kinds": RELKINDS, "who": who},
    ).fetchall()
    found = dict(rows)
    return {name: found.get(name) for name in names}


# -- validation ---------------------------------------------------------------------------
def parse_roles(text: str | list[str] | None) -> list[str]:
    items = (text.split(",") if isinstance(text, str) else list(text or [])) if text else []
    out: list[str] = []
    for item in (i.strip() for i in items):
        if item and item not in out:
            out.append(check_identifier(item, "role"))
    return out


def require_roles(conn: psycopg.Connection, roles: list[str]) -> None:
    found = {
        r[0]
        for r in conn.execute(
            "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%s)", (roles,)
        )
    }
    missing = [r for r in roles if r not in found]
    if missing:
        raise UserError(f"no such role: {', '.join(missing)}")


def _validate(
    conn: psycopg.Connection, old: str, new: str, tables: list[str], roles: list[str]
) -> None:
    check_identifier(old, "schema")
    check_identifier(new, "new schema")
    if old == new:
        raise UserError("--schema and --new-schema must differ")
    require_roles(conn, roles)
    require_mapped_tables(conn, old, tables)


# -- show ---------------------------------------------------------------------------------
def show(
    conn: psycopg.Connection, roles: list[str], old: str, new: str, tables: list[str]
) -> Report:
    """Each level's setting, and where each changed table's name leads for each role."""
    roles, tables = parse_roles(roles), parse_tables(tables)
    _validate(conn, old, new, tables, roles)
    settings = read_settings(conn, roles)
    default = server_default(conn)
    views = []
    for role in roles:
        path, source = effective_path(settings, role, default)
        views.append(
            RoleView(
                role=role,
                effective_path=path,
                source=source,
                resolves=resolve(conn, tables, path, role),
            )
        )
    return Report(
        database=current_database(conn),
        old_schema=old,
        new_schema=new,
        tables=tables,
        server_default=default[0],
        server_default_source=default[1],
        settings=settings,
        roles=views,
    )


# -- switch -------------------------------------------------------------------------------
def helper_locations(conn: psycopg.Connection) -> dict[str, list[str]]:
    """The schemas holding hstore and get_xmlbinary(), which HC's triggers call unqualified."""
    rows = conn.execute(
        """
        SELECT 'hstore', n.nspname FROM pg_catalog.pg_extension e
        JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'hstore'
        UNION ALL
        SELECT 'get_xmlbinary()', n.nspname FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE p.proname = 'get_xmlbinary' AND p.pronargs = 0
        ORDER BY 1, 2
        """
    ).fetchall()
    where: dict[str, list[str]] = {"hstore": [], "get_xmlbinary()": []}
    for name, schema in rows:
        where[name].append(schema)
    return where


def target_path(old: str, new: str, previous: str, helpers: list[str]) -> list[str]:
    """NEW, OLD, public and any other schema holding HC's helpers (heroku_ext), then whatever
    else the previous path reached, so a schema the app relied on stays reachable."""
    wanted = [new, old, "public", *helpers]
    try:
        rest = parse_path(previous)
    except ValueError:
        rest = []
    return list(dict.fromkeys(wanted + rest))


def _already_switched(value: str | None, old: str, new: str) -> bool:
    try:
        return value is not None and parse_path(value)[:2] == [new, old]
    except ValueError:
        return False


def _level_target(level: LevelRecord) -> sql.Composable:
    if level.level == "database":
        return sql.SQL("ALTER DATABASE {}").format(sql.Identifier(level.database))
    return sql.SQL("ALTER ROLE {} IN DATABASE {}").format(
        sql.Identifier(level.role), sql.Identifier(level.database)
    )


def _lock(conn: psycopg.Connection) -> None:
    # Two switches or restores at once would record each other's values as "previous".
    conn.execute(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('swapbot.search_path'))"
    )


def switch(
    conn: psycopg.Connection,
    roles: list[str],
    old: str,
    new: str,
    tables: list[str],
    *,
    database: bool = False,
    previous: SwitchRecord | None = None,
    save: Callable[[SwitchRecord], None] | None = None,
    logins: dict[str, str] | None = None,
) -> SwitchRecord:
    """Point the roles' (and with `database`, every role's) new sessions at NEW, then prove it.

    `previous` is the record of an earlier switch of the same swap: its "previous" values are
    kept, so a second switch never records the switched value as the one to restore. `save`
    receives the record before the change commits (if it raises, nothing changes): keep it
    where a restart finds it. `logins` maps a role to a URL that logs in as it, for the proof.
    """
    roles, tables = parse_roles(roles), parse_tables(tables)
    if not roles and not database:
        raise UserError("nothing to switch: give --roles, --database or both")
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise UserError("switch needs a connection outside a transaction (it commits)")
    _validate(conn, old, new, tables, roles)
    require_mapped_tables(conn, new, tables)
    dbname = current_database(conn)
    if previous is not None and (previous.database, previous.old_schema, previous.new_schema) != (
        dbname,
        old,
        new,
    ):
        raise UserError(
            f"the recorded switch is of {previous.database}: {previous.old_schema} -> "
            f"{previous.new_schema}, not of {dbname}: {old} -> {new}"
        )
    recorded = {(lv.level, lv.role): lv for lv in (previous.levels if previous else [])}
    helpers = sorted({s for found in helper_locations(conn).values() for s in found})

    with conn.transaction():
        _lock(conn)
        settings = read_settings(conn, roles)
        stored = {(s.level, s.role): s for s in settings}
        default = server_default(conn)
        touched: list[tuple[Level, str | None]] = [("role_in_database", r) for r in roles]
        if database:
            touched.append(("database", None))
        levels, notes = [], []
        for level, role in touched:
            before = recorded.get((level, role))
            if before is None:
                now = stored[(level, role)]
                before = LevelRecord(
                    level=level,
                    role=role,
                    database=dbname,
                    previous=now.search_path,
                    previous_setconfig=now.setconfig,
                )
                if _already_switched(now.search_path, old, new):
                    notes.append(
                        f"{_where(level, role)} already had {now.search_path} and no earlier "
                        "record was given: restore would keep the switched path"
                    )
            start = (
                before.previous
                if before.previous is not None
                else (effective_path(settings, role, default)[0] if role else default[0])
            )
            path = target_path(old, new, start, helpers)
            conn.execute(
                sql.SQL("{} SET search_path = {}").format(
                    _level_target(before), sql.SQL(", ").join(map(sql.Identifier, path))
                )
            )
            levels.append(before.model_copy())
        after = {(s.level, s.role): s for s in read_settings(conn, roles)}
        for lv in levels:
            lv.applied = after[(lv.level, lv.role)].search_path
        record = SwitchRecord(
            database=dbname,
            old_schema=old,
            new_schema=new,
            tables=tables,
            roles=roles,
            include_database=database or bool(previous and previous.include_database),
            levels=levels
            + [
                lv for key, lv in recorded.items() if key not in {(x.level, x.role) for x in levels}
            ],
            notes=notes,
        )
        if save:
            save(record)
    record.switched_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    record.proofs = prove(conn, record, logins=logins)
    record.pre_switch_sessions = sessions_before(
        conn, record.switched_at, None if database else roles
    )
    if save:
        save(record)
    return record


# -- proof --------------------------------------------------------------------------------
_PROBE = """
SELECT pg_catalog.current_setting('search_path'),
       pg_catalog.to_regprocedure('get_xmlbinary()') IS NOT NULL,
       pg_catalog.to_regtype('hstore') IS NOT NULL
"""
_RESOLVE = """
SELECT t.name, n.nspname
FROM unnest(%s::text[]) AS t(name)
LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(t.name))
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
"""


def _admin_conninfo(conn: psycopg.Connection) -> str:
    """Where `conn` logs in, with its password: for a fresh session as the same user."""
    extra = {"password": conn.info.password} if conn.info.password else {}
    return make_conninfo(conn.info.dsn, connect_timeout="5", **extra)


def _probe(session: psycopg.Connection, names: list[str]) -> tuple[str, dict, dict]:
    path, xmlbinary, hstore = session.execute(_PROBE).fetchone()
    resolves = dict(session.execute(_RESOLVE, (names,)).fetchall())
    return path, resolves, {"get_xmlbinary()": xmlbinary, "hstore": hstore}


def _login(
    conn: psycopg.Connection, role: str, logins: dict[str, str]
) -> psycopg.Connection | None:
    """A fresh session logged in as `role`, if one can be opened without a password we lack."""
    url = logins.get(role) or make_conninfo(conn.info.dsn, user=role, connect_timeout="5")
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.Error:
        return None


def _computed(
    conn: psycopg.Connection, role: str, names: list[str]
) -> tuple[ProofMethod, str, dict, dict]:
    """A fresh session as the current user, with the path `role` would get at login and, when
    membership allows, SET ROLE (so its schema privileges apply too)."""
    with psycopg.connect(_admin_conninfo(conn), autocommit=True) as session:
        path = effective_path(read_settings(session, [role]), role, server_default(session))[0]
        can_set = session.execute(
            "SELECT pg_catalog.pg_has_role(current_user, %s, 'MEMBER')", (role,)
        ).fetchone()[0]
        with session.transaction(force_rollback=True):
            if can_set:
                session.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            session.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (path,))
            seen, resolves, helpers = _probe(session, names)
    return ("computed path, set role" if can_set else "computed path"), seen, resolves, helpers


def prove(
    conn: psycopg.Connection, record: SwitchRecord, *, logins: dict[str, str] | None = None
) -> list[Proof]:
    """From a fresh session as each role: changed tables reach NEW, OLD's other mappings OLD,
    and HC's helpers resolve unqualified.

    Logs in as the role when it can (`logins`, or the same server without a password, as trust
    authentication allows locally); otherwise computes the role's path (see `_computed`).
    """
    logins = dict(logins or {})
    me = conn.execute("SELECT current_user").fetchone()[0]
    logins.setdefault(me, _admin_conninfo(conn))
    others = [t for t in mapped_tables(conn, record.old_schema) if t not in record.tables]
    expected = {t: record.new_schema for t in record.tables}
    expected |= {t: record.old_schema for t in others}
    names = list(expected)
    proofs = []
    for role in record.roles or ([me] if record.include_database else []):
        error = None
        try:
            session = _login(conn, role, logins)
            if session is not None:
                with session:
                    method: ProofMethod = "login"
                    path, resolves, helpers = _probe(session, names)
            else:
                method, path, resolves, helpers = _computed(conn, role, names)
        except psycopg.Error as exc:
            method, path, resolves, helpers = "login", "", {}, {}
            error = str(exc).strip().splitlines()[0]
        reached = all(resolves.get(t) == s for t, s in expected.items())
        proofs.append(
            Proof(
                role=role,
                method=method,
                search_path=path,
                resolves=resolves,
                expected=expected,
                helpers=helpers,
                ok=error is None and reached and all(helpers.values()),
                error=error,
            )
        )
    return proofs


def sessions_before(
    conn: psycopg.Connection, moment: datetime, roles: list[str] | None
) -> list[Session]:
    """Sessions (of `roles`, or of every role) that logged in before `moment`: they keep the
    path they got at login, and pooled ones will keep it until they reconnect. Sessions named
    as this one is (the bot's own, when it names its sessions) are left out."""
    rows = conn.execute(
        """
        SELECT pid, usename, application_name, client_addr::text, backend_start, state
        FROM pg_catalog.pg_stat_activity
        WHERE datname = current_database() AND backend_type = 'client backend'
          AND pid <> pg_catalog.pg_backend_pid() AND backend_start < %s
          AND (%s::text[] IS NULL OR usename = ANY(%s::text[]))
          AND (pg_catalog.current_setting('application_name') = ''
               OR coalesce(application_name, '') <> pg_catalog.current_setting('application_name'))
        ORDER BY backend_start
        """,
        (moment, roles, roles),
    ).fetchall()
    return sessions_of(rows)


def sessions_of(rows: list[tuple]) -> list[Session]:
    """pg_stat_activity rows (pid, usename, application_name, client_addr, backend_start,
    state) as Sessions."""
    return [
        Session(
            pid=r[0],
            role=r[1],
            application_name=r[2],
            client_addr=r[3],
            backend_start=r[4],
            state=r[5],
        )
        for r in rows
    ]


# -- restore ------------------------------------------------------------------------------
def restore(conn: psycopg.Connection, record: SwitchRecord) -> RestoreResult:
    """Put back every level the switch touched exactly as recorded, removing what was not set."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise UserError("restore needs a connection outside a transaction (it commits)")
    dbname = current_database(conn)
    if record.database != dbname:
        raise UserError(f"the record is of database {record.database}, not {dbname}")
    roles = [lv.role for lv in record.levels if lv.role]
    require_roles(conn, roles)
    with conn.transaction():
        _lock(conn)
        mine = conn.execute("SELECT pg_catalog.current_setting('search_path')").fetchone()[0]
        for lv in record.levels:
            if lv.previous is None:
                conn.execute(sql.SQL("{} RESET search_path").format(_level_target(lv)))
            else:
                # FROM CURRENT stores the session's value verbatim: the recorded text, byte for
                # byte, where SET ... = would re-quote it.
                conn.execute(
                    "SELECT pg_catalog.set_config('search_path', %s, true)", (lv.previous,)
                )
                conn.execute(sql.SQL("{} SET search_path FROM CURRENT").format(_level_target(lv)))
        conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (mine,))
        after = {(s.level, s.role): s for s in read_settings(conn, roles)}
    levels = []
    for lv in record.levels:
        now = after[(lv.level, lv.role)]
        levels.append(
            RestoredLevel(
                level=lv.level,
                role=lv.role,
                restored=now.search_path,
                setconfig=now.setconfig,
                identical=now.setconfig == lv.previous_setconfig,
            )
        )
    return RestoreResult(database=dbname, levels=levels)


# -- command line -------------------------------------------------------------------------
def _where(level: str, role: str | None) -> str:
    return {"role_in_database": f"role {role} in database", "role": f"role {role}"}.get(
        level, "database"
    )


def _show_value(value: str | None) -> str:
    return "(not set)" if value is None else value


def render_report(r: Report) -> str:
    lines = [
        f"search_path in database {r.database}",
        f"  server default: {r.server_default}  [{r.server_default_source}]",
    ]
    lines += [f"  {_where(s.level, s.role)}: {_show_value(s.search_path)}" for s in r.settings]
    for v in r.roles:
        lines.append(f"  {v.role} logs in with: {v.effective_path}  [from {v.source}]")
        lines += [
            f"    {t} -> {s + '.' + t if s else '(does not resolve)'}"
            for t, s in v.resolves.items()
        ]
    return "\n".join(lines)


def render_switch(rec: SwitchRecord) -> str:
    lines = [f"switched search_path in {rec.database}: {rec.new_schema} before {rec.old_schema}"]
    lines += [
        f"  {_where(lv.level, lv.role)}: {_show_value(lv.previous)} -> {lv.applied}"
        for lv in rec.levels
    ]
    for p in rec.proofs:
        verdict = "ok" if p.ok else "FAILED"
        lines.append(f"  proof as {p.role} ({p.method}): {verdict}; search_path {p.search_path}")
        if p.error:
            lines.append(f"    error: {p.error}")
        lines += [
            f"    {t} -> {p.resolves.get(t)} (expected {s})"
            for t, s in p.expected.items()
            if p.resolves.get(t) != s
        ]
        lines += [f"    {h} not reachable unqualified" for h, ok in p.helpers.items() if not ok]
    lines += [f"  note: {n}" for n in rec.notes]
    if rec.pre_switch_sessions:
        lines.append(
            f"  {len(rec.pre_switch_sessions)} sessions started before the switch keep the old"
            " path until they reconnect (restart the app's processes):"
        )
        lines += [
            f"    pid {s.pid} {s.role} {s.application_name or ''} since {s.backend_start}"
            for s in rec.pre_switch_sessions
        ]
    else:
        lines.append("  no session of those roles started before the switch")
    return "\n".join(lines)


def render_restore(r: RestoreResult) -> str:
    lines = [f"restored search_path in {r.database}"]
    lines += [
        f"  {_where(lv.level, lv.role)}: {_show_value(lv.restored)}"
        + ("" if lv.identical else "  (row differs from the one recorded before the switch)")
        for lv in r.levels
    ]
    return "\n".join(lines)


def load_record(path: str | None) -> SwitchRecord | None:
    if not path or not Path(path).exists():
        return None
    try:
        return SwitchRecord.model_validate_json(Path(path).read_text())
    except (ValidationError, ValueError) as exc:
        raise UserError(f"state file {path} is not a switch record: {exc}") from None


def save_record(path: str, record: SwitchRecord) -> None:
    """Write atomically: a restart finds the old record or the new one, never half of one."""
    target = Path(path)
    if not (target.parent or Path(".")).is_dir():
        raise UserError(f"--state-file {path}: the directory {target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
    with os.fdopen(fd, "w") as out:
        json.dump(record.model_dump(mode="json"), out, indent=2)
    os.replace(tmp, target)
