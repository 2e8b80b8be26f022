"""What every database command shares: connecting with a clear error, validating identifiers,
and printing a report as text or as one JSON document."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg import sql

# Plain identifiers only: lower-case, as Heroku Connect names its schemas and tables. Anything
# with quotes, semicolons, spaces or upper case is refused before it gets near SQL.
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_$]{0,62}$")


class UserError(Exception):
    """Bad input or an unusable database: the message is for the person, and nothing changed."""


class LockWaited(UserError):
    """A statement waited too long for a lock another session holds; nothing was applied, and
    running it again once that session is done will work. The message names the holders."""


# Sessions holding locks on relations of the given schemas, other than this one: who keeps a
# DDL statement waiting. Read after the DDL gave up, so its own locks are gone.
_Q_LOCK_HOLDERS = """
SELECT a.pid, a.usename, coalesce(nullif(a.application_name, ''), '-') AS app, a.state,
       upper(substring(ltrim(coalesce(a.query, '')) FROM '^[A-Za-z]+')) AS command,
       string_agg(DISTINCT n.nspname || '.' || c.relname, ', ') AS relations
  FROM pg_catalog.pg_locks l
  JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
  JOIN pg_catalog.pg_class c ON c.oid = l.relation
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE l.granted AND l.pid <> pg_catalog.pg_backend_pid() AND n.nspname = ANY(%s)
 GROUP BY a.pid, a.usename, a.application_name, a.state, a.query
 ORDER BY a.pid
 LIMIT 5
"""


def lock_holders(conn: psycopg.Connection, schemas: list[str]) -> list[str]:
    """Who holds locks in `schemas`: "role app (pid N, state) on s.t, last statement UPDATE",
    for a person. The statement's text is left out: it may carry data or a secret, and the
    message goes to the channel."""
    try:
        rows = conn.execute(_Q_LOCK_HOLDERS, (schemas,)).fetchall()
    except psycopg.Error:
        return []
    return [
        f"role {role} {app} (pid {pid}, {state or 'unknown state'}) on {relations}, "
        f"last statement {command or '?'}"
        for pid, role, app, state, command, relations in rows
    ]


def check_identifier(name: str, what: str = "identifier") -> str:
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise UserError(
            f"{what} {name!r} is not a plain lower-case identifier "
            "(letters, digits and _ only; no quotes, spaces or semicolons)"
        )
    return name


def parse_tables(text: str | Iterable[str]) -> list[str]:
    """`a,b` (or a list) into validated table names, keeping order, without duplicates."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if item and item not in out:
            out.append(check_identifier(item, "table"))
    if not out:
        raise UserError("no tables given: pass --tables a,b")
    return out


def oid_array(oids: Iterable[int]) -> str:
    """OIDs as one array literal, for `%s::oid[]`. psycopg dumps a list item by item, in Python:
    a scan of a thousand tables sends tens of thousands of OIDs and names, and dumping them as
    lists took a twentieth of its time."""
    return "{" + ",".join(map(str, oids)) + "}"


def name_array(names: Iterable[str]) -> str:
    """Names as one array literal, for `%s::name[]`, each quoted (see `oid_array`)."""
    quoted = ('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names)
    return "{" + ",".join(quoted) + "}"


def redact(url: str) -> str:
    """A connection string without its password (URL, `?password=` or key=value form)."""
    url = re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
    url = re.sub(r"([?&]password=)[^&\s]*", r"\1***", url, flags=re.IGNORECASE)
    return re.sub(r"(\bpassword\s*=\s*)('[^']*'|\S+)", r"\1***", url, flags=re.IGNORECASE)


def connect(url: str, **kwargs: Any) -> psycopg.Connection:
    """Open a connection, turning failures into a UserError that names the host, not the password."""
    try:
        return psycopg.connect(url, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        # libpq puts the reason first ("... failed: Connection refused") and hints after it.
        reason = lines[0].split(": ", 1)[-1] if lines else "connection failed"
        raise UserError(f"cannot reach the database at {redact(url)}: {redact(reason)}") from None
    except psycopg.ProgrammingError as exc:
        raise UserError(f"not a usable database URL ({redact(url)}): {redact(str(exc))}") from None


def schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        is not None
    )


def require_schema(conn: psycopg.Connection, schema: str) -> None:
    if not schema_exists(conn, check_identifier(schema, "schema")):
        raise UserError(f"schema {schema} does not exist in this database")


def require_mapped_tables(conn: psycopg.Connection, schema: str, tables: list[str]) -> None:
    """Every table must exist in `schema` and carry Heroku Connect's log trigger (be a mapping)."""
    require_schema(conn, schema)
    found = {
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_trigger t ON t.tgrelid = c.oid "
            "WHERE n.nspname = %s AND c.relname IN (SELECT unnest(%s::name[]))"
            " AND t.tgname = 'hc_' || c.relname || '_logtrigger'",
            (schema, name_array(tables)),
        )
    }
    missing = [t for t in tables if t not in found]
    if missing:
        raise UserError(f"not Heroku Connect mappings in schema {schema}: {', '.join(missing)}")


def qualified(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def check_lines(
    status: str, name: str, text: str, items: Iterable[str], bullet: str = ""
) -> list[str]:
    """One check of a report (preflight, verify): `[STATUS] name: text`, its items under it."""
    return [f"  [{status.upper():4}] {name}: {text}", *(f"         {bullet}{i}" for i in items)]


def emit(result: Any, render: Callable[[Any], str], as_json: bool, **extra: Any) -> None:
    """Print a command's result (a pydantic model): one JSON document for machines, with
    `extra` fields, or the readable report `render` makes. Only the one asked for is built."""
    if as_json:
        json.dump(result.model_dump(mode="json") | extra, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(result).rstrip("\n") + "\n")
