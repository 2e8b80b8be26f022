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
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from pydantic import BaseModel, Field

from swapbot.database.searchpath import Session, sessions_of
from swapbot.swap.journal import APPLICATION_NAME

if TYPE_CHECKING:
    from swapbot.heroku import AddonAttachment, PlatformClient
    from swapbot.swap.plan import Plan

# The attachment that is DATABASE_URL, on the swapped app.
DATABASE_ATTACHMENT = "DATABASE"


class AttachedApp(BaseModel):
    """One app the database is attached to, and what of it can write."""

    app: str
    attachments: list[str]  # config var prefixes: DATABASE, DATABASE_CONNECTION_POOL, ...
    through_pooler: bool
    credentials: list[str] = Field(default_factory=list)  # non-default credentials it uses
    formation: dict[str, int] = Field(default_factory=dict)  # process type -> quantity
    one_off: list[str] = Field(default_factory=list)  # run.N, scheduler.N dynos up now
    unreadable: str | None = None  # why its formation could not be read (a 403)
    role: str = "unnamed"  # swapped | writer | reader | bot | unnamed (the plan does not say)


class Writers(BaseModel):
    """What `discover` found."""

    database: str | None  # the database add-on's name
    apps: list[AttachedApp]
    poolers: list[str]  # pooler attachments, "app: NAME"
    sessions: list[Session]  # of the plan's roles, now

    @property
    def unnamed(self) -> list[AttachedApp]:
        return [a for a in self.apps if a.role == "unnamed"]


def discover(
    platform: PlatformClient,
    plan: Plan,
    conn: psycopg.Connection | None = None,
    *,
    own_app: str | None = None,
) -> Writers:
    """Every app attached to the swapped app's database, with its formation, one-off dynos,
    pooler attachments and credentials, and (with `conn`) the sessions of the app's roles.
    `own_app` is swapbot's own Heroku app: attached too, never stopped."""
    from swapbot.heroku import HerokuError

    database, attachments = attached(platform, plan.app)
    by_app: dict[str, list[AddonAttachment]] = {}
    for a in attachments:
        by_app.setdefault(a.app_name or "?", []).append(a)
    by_app.setdefault(plan.app, [])
    apps = []
    for name, found in sorted(by_app.items(), key=lambda kv: (kv[0] != plan.app, kv[0])):
        app = AttachedApp(
            app=name,
            attachments=sorted(a.name for a in found),
            through_pooler=any(a.pooler for a in found),
            credentials=sorted({c for a in found if (c := _credential(a.namespace))}),
            role="bot" if name == own_app else _role(plan, name),
        )
        try:  # a reader's formation may be out of the token's reach: that is no reason to stop
            app.formation = {f.type: f.quantity or 0 for f in platform.formation(name)}
            app.one_off = [
                d.name
                for d in platform.dynos(name)
                if d.type not in app.formation and d.state in ("up", "starting")
            ]
        except HerokuError as exc:
            app.unreadable = f"{type(exc).__name__}: {exc}"
        apps.append(app)
    poolers = [f"{a.app_name}: {a.name}" for a in attachments if a.pooler]
    sessions = role_sessions(conn, app_roles(plan)) if conn is not None else []
    return Writers(
        database=database,
        apps=apps,
        poolers=poolers,
        sessions=sessions,
    )


def attached(platform: PlatformClient, app: str) -> tuple[str | None, list[AddonAttachment]]:
    """The database add-on behind `app`'s DATABASE_URL (None when it has none) and every
    attachment of it, in every app."""
    database = next(
        (a for a in platform.app_attachments(app) if a.name == DATABASE_ATTACHMENT), None
    )
    if database is None:
        return None, []
    return database.addon_name, platform.addon_attachments(database.addon_id or "")


def _credential(namespace: str | None) -> str | None:
    """The credential an attachment connects as (`credential:NAME`), None for the default."""
    kind, _, name = (namespace or "").partition(":")
    return name if kind == "credential" and name else None


def app_roles(plan: Plan) -> list[str] | None:
    """The roles whose sessions the switch moves: the plan's, or every role (None) when it
    switches the database's own setting (or names no role)."""
    return None if plan.set_database_search_path or not plan.roles else list(plan.roles)


def _role(plan: Plan, app: str) -> str:
    if app == plan.app:
        return "swapped"
    if app in plan.other_writers:
        return "writer"
    if app in plan.readers:
        return "reader"
    return "unnamed"


def problems(found: Writers, plan: Plan) -> list[str]:
    """What a person must settle before the plan can be saved: each other attached app named
    a writer to stop or a reader left running on purpose; every writer readable, reaching the
    database as one of the plan's roles; swapbot's own app never stopped."""
    out = [p for p in [unnamed_problem(found)] if p]
    attached = {a.app: a for a in found.apps}
    for app in [*plan.other_writers, *plan.readers]:
        if app not in attached:
            out.append(f"{app} is not attached to {found.database}")
    roles = set(app_roles(plan) or [])
    for a in found.apps:
        if a.role == "bot" and a.app in plan.other_writers:
            out.append(f"{a.app} is swapbot's own app: it is never stopped (name it a reader)")
        if a.role not in ("swapped", "writer"):
            continue
        if a.unreadable:
            out.append(f"cannot read {a.app}'s formation ({a.unreadable}): it writes")
        unknown = [t for t in plan.other_writers.get(a.app, []) if t not in a.formation]
        if unknown and not a.unreadable:
            out.append(f"{a.app} has no process type {', '.join(unknown)}")
        foreign = [c for c in a.credentials if roles and c not in roles]
        if foreign:
            out.append(
                f"{a.app} reaches the database as credential {', '.join(foreign)}, which the "
                f"plan's roles do not include: its sessions would keep the old search_path "
                f"(add it to --roles)"
            )
    return out


def unnamed_problem(found: Writers) -> str | None:
    """Each other attached app must be named: a writer to stop or a reader left running."""
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
   AND pid <> pg_catalog.pg_backend_pid()
   AND (%(roles)s::text[] IS NULL OR usename = ANY(%(roles)s::text[]))
   AND coalesce(application_name, '') <> %(bot)s
   AND (%(before)s::timestamptz IS NULL OR backend_start < %(before)s)
 ORDER BY backend_start
"""


def role_sessions(
    conn: psycopg.Connection, roles: list[str] | None, *, before: datetime | None = None
) -> list[Session]:
    """Sessions of `roles` (None: of every role), with `before` only those that logged in
    before it, the bot's own left out."""
    params = {"roles": None if roles is None else list(roles), "bot": APPLICATION_NAME}
    rows = conn.execute(_SESSIONS, params | {"before": before}).fetchall()
    return sessions_of(rows)


def end(conn: psycopg.Connection, sessions: list[Session]) -> list[int]:
    """End the sessions (a pooler then opens fresh ones, which get the new path); returns the
    pids that were ended (a session gone meanwhile is not)."""
    ended = []
    for s in sessions:
        # With a timeout it returns once the session is gone, so that a fresh session made
        # right after (the proof through the pooler) cannot land on it.
        row = conn.execute("SELECT pg_catalog.pg_terminate_backend(%s, 5000)", (s.pid,)).fetchone()
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
   AND (%(roles)s::text[] IS NULL OR a.usename = ANY(%(roles)s::text[]))
   AND a.pid <> pg_catalog.pg_backend_pid()
   AND coalesce(a.application_name, '') <> %(bot)s
"""
_LAST_WRITE = """
SELECT extract(epoch FROM now() - greatest(
         (SELECT max(created_at) FROM {schema}._trigger_log),
         (SELECT max(created_at) FROM {schema}._trigger_log_archive)))
"""


def quiet(
    conn: psycopg.Connection, schema: str, roles: list[str] | None, seconds: float
) -> tuple[bool, str]:
    """No app write for `seconds`: Heroku Connect's trigger log has no row that new, and no
    session of an app role holds a write lock on a table of `schema` (an open transaction's
    writes reach the trigger log only when it commits). Otherwise, who is still writing."""
    open_writes = sessions_of(
        conn.execute(
            _OPEN_WRITES,
            {
                "schema": schema,
                "roles": None if roles is None else list(roles),
                "bot": APPLICATION_NAME,
            },
        ).fetchall()
    )
    row = conn.execute(sql.SQL(_LAST_WRITE).format(schema=sql.Identifier(schema))).fetchone()
    age = float(row[0]) if row and row[0] is not None else None
    if open_writes:
        return False, f"still writing (a write running or not committed): {describe(open_writes)}"
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
    """From a fresh session on `url` (the pooler's): which schema each bare table name reaches.
    Raises PoolerUnreachable, whose message never carries the URL or the driver's text (a
    malformed URL's error quotes its password)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as session:
            rows = session.execute(
                "SELECT t, (SELECT relnamespace::regnamespace::text FROM pg_catalog.pg_class "
                "WHERE oid = pg_catalog.to_regclass(pg_catalog.quote_ident(t))) "
                "FROM unnest(%s::text[]) AS t",
                (list(tables),),
            ).fetchall()
    except psycopg.Error as exc:
        raise PoolerUnreachable(type(exc).__name__) from None
    return {t: schema for t, schema in rows}


class PoolerUnreachable(Exception):
    """No session could be opened or used through the pooler (the error's kind only)."""
