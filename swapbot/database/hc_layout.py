"""What Heroku Connect names in its schema (https://devcenter.heroku.com/articles/managing-heroku-connect-mappings), for the code that reads it.

The sandbox builds that layout from these names; the database toolkit and the engine recognise
HC's own objects by them. Production code depends on this module, never on the sandbox.
"""

from __future__ import annotations

import psycopg

from swapbot.database._common import check_identifier

MAX_IDENTIFIER = 63  # PostgreSQL truncates longer identifiers; do the same so lookups match


def _derived(*parts: str) -> str:
    return "".join(parts)[:MAX_IDENTIFIER]


def logger_function_name(table: str) -> str:
    return _derived("hc_", table, "_logger")


def status_function_name(table: str) -> str:
    return _derived("hc_", table, "_status")


def log_trigger_name(table: str) -> str:
    return _derived("hc_", table, "_logtrigger")


def status_trigger_name(table: str) -> str:
    return _derived("hc_", table, "_status_trigger")


def index_name(table: str, column: str, *, unique: bool) -> str:
    return _derived("hcu_idx_" if unique else "hc_idx_", table, "_", column)


def mapped_tables(conn: psycopg.Connection, schema: str) -> list[str]:
    """Tables in ``schema`` that carry HC's log trigger, sorted by name."""
    rows = conn.execute(
        """
        SELECT c.relname
        FROM pg_catalog.pg_trigger t
        JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s
          AND c.relkind IN ('r', 'p')
          AND NOT t.tgisinternal
          AND t.tgname = left('hc_' || c.relname || '_logtrigger', 63)
        ORDER BY c.relname
        """,
        (check_identifier(schema, "schema"),),
    ).fetchall()
    return [name for (name,) in rows]
