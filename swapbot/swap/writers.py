"""Who writes to the app's database, and which of their sessions would outlive the switch.

Stopping one app's dynos stops its writes, and restarting them gives them the new `search_path`
— unless the database is attached to other apps too (a worker app, an admin app: they keep
writing), or its sessions come through Heroku Postgres's server-side pooler (PgBouncer on the
database server keeps its server sessions, and their old path, across dyno restarts). Both
look like a successful swap while writes land where nothing syncs them.

`discover` names every attached app, the pooler attachments and the sessions of the plan's
roles, for the plan (a person names each other app as a writer to stop or a reader to leave
running) and for preflight. `stale_sessions` and `end` carry the rule that no session of an
app role may predate the switch when the app comes back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from pydantic import BaseModel, Field

from swapbot.database.searchpath import Session, sessions_of
from swapbot.swap.journal import APPLICATION_NAME

# The attachment that is DATABASE_URL, on the swapped app.
DATABASE_ATTACHMENT = "DATABASE"


class AttachedApp(BaseModel):
    """One app the database is attached to, and what of it can write."""

    app: str
    attachments: list[str]  # config var prefixes: DATABASE, DATABASE_CONNECTION_POOL, ...
    through_pooler: bool
    formation: dict[str, int] = Field(default_factory=dict)  # process type -> quantity
    one_off: list[str] = Field(default_factory=list)  # run.N, scheduler.N dynos up now
    role: str = "unnamed"  # swapped | writer | reader | unnamed (the plan does not say)


class Writers(BaseModel):
    """What `discover` found."""

    database: str | None  # the database add-on's name
    apps: list[AttachedApp]
    poolers: list[str]  # pooler attachments, "app: NAME"
    sessions: list[Session]  # of the plan's roles, now

    @property
    def unnamed(self) -> list[AttachedApp]:
        return [a for a in self.apps if a.role == "unnamed"]


def discover(platform: Any, plan: Any, conn: psycopg.Connection | None = None) -> Writers:
    """Every app attached to the swapped app's database, with its formation, one-off dynos and
    pooler attachments, and (with `conn`) the sessions of the plan's roles."""
    mine = platform.app_attachments(plan.app)
    database = next((a for a in mine if a.name == DATABASE_ATTACHMENT), None)
    attachments = platform.addon_attachments(database.addon_id or "") if database else []
    by_app: dict[str, list[Any]] = {}
    for a in attachments:
        by_app.setdefault(a.app_name or "?", []).append(a)
    by_app.setdefault(plan.app, [])
    apps = []
    for name, found in sorted(by_app.items(), key=lambda kv: (kv[0] != plan.app, kv[0])):
        formation = {f.type: f.quantity or 0 for f in platform.formation(name)}
        one_off = [
            d.name
            for d in platform.dynos(name)
            if d.type not in formation and d.state in ("up", "starting")
        ]
        apps.append(
            AttachedApp(
                app=name,
                attachments=sorted(a.name for a in found),
                through_pooler=any(a.pooler for a in found),
                formation=formation,
                one_off=one_off,
                role=_role(plan, name),
            )
        )
    poolers = [f"{a.app_name}: {a.name}" for a in attachments if a.pooler]
    sessions = role_sessions(conn, plan.roles) if conn is not None else []
    return Writers(
        database=database.addon_name if database else None,
        apps=apps,
        poolers=poolers,
        sessions=sessions,
    )


def _role(plan: Any, app: str) -> str:
    if app == plan.app:
        return "swapped"
    if app in plan.other_writers:
        return "writer"
    if app in plan.readers:
        return "reader"
    return "unnamed"


def unnamed_problem(found: Writers) -> str | None:
    """What a person must say before the plan can be saved: each other attached app is either
    a writer to stop or a reader left running on purpose."""
    if not found.unnamed:
        return None
    listed = "; ".join(
        f"{a.app} (process types {', '.join(a.formation) or 'none'})" for a in found.unnamed
    )
    example = found.unnamed[0]
    types = ",".join(example.formation) or "web"
    return (
        f"the database is also attached to {listed}: name each as a writer that stop-writes "
        f"stops too (--also-stop {example.app}:{types}) or as a reader left running on purpose "
        f"(--readers {example.app})"
    )


_SESSIONS = """
SELECT pid, usename, application_name, client_addr::text, backend_start, state
  FROM pg_catalog.pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend'
   AND pid <> pg_catalog.pg_backend_pid() AND usename = ANY(%(roles)s)
   AND coalesce(application_name, '') <> %(bot)s
   AND (%(before)s::timestamptz IS NULL OR backend_start < %(before)s)
 ORDER BY backend_start
"""


def role_sessions(
    conn: psycopg.Connection, roles: list[str], *, before: datetime | None = None
) -> list[Session]:
    """Sessions of `roles` (with `before`: only those that logged in before it), the bot's own
    left out."""
    if not roles:
        return []
    rows = conn.execute(
        _SESSIONS, {"roles": list(roles), "bot": APPLICATION_NAME, "before": before}
    ).fetchall()
    return sessions_of(rows)


def end(conn: psycopg.Connection, sessions: list[Session]) -> list[int]:
    """End the sessions (a pooler then opens fresh ones, which get the new path); returns the
    pids that were ended (a session gone meanwhile is not)."""
    ended = []
    for s in sessions:
        row = conn.execute("SELECT pg_catalog.pg_terminate_backend(%s)", (s.pid,)).fetchone()
        if row and row[0]:
            ended.append(s.pid)
    return ended


def describe(sessions: list[Session], limit: int = 8) -> str:
    """Sessions for a person: role, where from, since when."""
    shown = [
        f"pid {s.pid} {s.role} {s.application_name or '-'} from {s.client_addr or 'local'} "
        f"since {s.backend_start:%H:%M:%S}"
        for s in sessions[:limit]
    ]
    more = f" and {len(sessions) - limit} more" if len(sessions) > limit else ""
    return "; ".join(shown) + more


# -- stop-writes: quiet before drain -------------------------------------------------------------
_OPEN_WRITES = """
SELECT DISTINCT a.pid, a.usename, a.application_name, a.client_addr::text, a.backend_start,
       a.state
  FROM pg_catalog.pg_locks l
  JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
  JOIN pg_catalog.pg_class c ON c.oid = l.relation
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE l.granted AND l.mode = 'RowExclusiveLock' AND n.nspname = %(schema)s
   AND a.usename = ANY(%(roles)s) AND a.pid <> pg_catalog.pg_backend_pid()
   AND coalesce(a.application_name, '') <> %(bot)s
"""
_LAST_WRITE = """
SELECT extract(epoch FROM now() - greatest(
         (SELECT max(created_at) FROM {schema}._trigger_log),
         (SELECT max(created_at) FROM {schema}._trigger_log_archive)))
"""


def quiet(
    conn: psycopg.Connection, schema: str, roles: list[str], seconds: float
) -> tuple[bool, str]:
    """No app write for `seconds`: Heroku Connect's trigger log has no row that new, and no
    session of an app role holds a write lock on a table of `schema` (an open transaction's
    writes reach the trigger log only when it commits). Otherwise, who is still writing."""
    open_writes = sessions_of(
        conn.execute(
            _OPEN_WRITES, {"schema": schema, "roles": list(roles), "bot": APPLICATION_NAME}
        ).fetchall()
    )
    row = conn.execute(sql.SQL(_LAST_WRITE).format(schema=sql.Identifier(schema))).fetchone()
    age = float(row[0]) if row and row[0] is not None else None
    if open_writes:
        return False, f"still writing, in open transactions: {describe(open_writes)}"
    if age is not None and age < seconds:
        writing = [s for s in role_sessions(conn, roles) if s.state == "active"]
        who = f"; sessions of the app's roles busy now: {describe(writing)}" if writing else ""
        return False, (
            f"the last app write reached {schema}._trigger_log {age:.1f}s ago; waiting for "
            f"{seconds:g}s without one{who}"
        )
    return True, f"no app write for {seconds:g}s"


# -- switch: readers and the pooler ---------------------------------------------------------------
_READERS = """
SELECT DISTINCT a.pid, a.usename, a.application_name, a.client_addr::text, a.backend_start,
       a.state
  FROM pg_catalog.pg_stat_activity a
 WHERE a.datname = current_database() AND a.backend_type = 'client backend'
   AND a.pid <> pg_catalog.pg_backend_pid() AND a.usename <> ALL(%(roles)s)
   AND a.usename <> current_user AND coalesce(a.application_name, '') <> %(bot)s
   AND a.backend_start < %(before)s
   AND EXISTS (SELECT 1 FROM unnest(%(tables)s::text[]) t
                WHERE pg_catalog.has_table_privilege(a.usename,
                        pg_catalog.format('%%I.%%I', %(schema)s::text, t), 'SELECT'))
 ORDER BY a.backend_start
"""


def reader_sessions(
    conn: psycopg.Connection,
    schema: str,
    tables: list[str],
    roles: list[str],
    before: datetime,
) -> list[Session]:
    """Sessions of other roles that can read a moved table and logged in before `before`:
    read-only credentials, dataclips. They read the old copy until they reconnect."""
    params = {
        "roles": list(roles),
        "bot": APPLICATION_NAME,
        "before": before,
        "tables": list(tables),
        "schema": schema,
    }
    return sessions_of(conn.execute(_READERS, params).fetchall())


def resolves_through(url: str, tables: list[str]) -> dict[str, str | None]:
    """From a fresh session on `url` (the pooler's): which schema each bare table name reaches."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as session:
        rows = session.execute(
            "SELECT t, (SELECT relnamespace::regnamespace::text FROM pg_catalog.pg_class "
            "WHERE oid = pg_catalog.to_regclass(pg_catalog.quote_ident(t))) "
            "FROM unnest(%s::text[]) AS t",
            (list(tables),),
        ).fetchall()
    return {t: schema for t, schema in rows}
