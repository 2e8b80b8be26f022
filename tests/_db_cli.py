"""Helpers for the `swapbot db` tests: run the command line for real, and snapshot what a
command must leave unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from swapbot.sandbox import hcschema
from swapbot.testing.services import create_database, drop_database
from tests import db_fixture

UNREACHABLE_URL = "postgresql://nobody@127.0.0.1:1/nothing"


def run_db(*args: str) -> subprocess.CompletedProcess:
    """`python -m swapbot.cli db ARGS` in a child process, as a person would run it."""
    return subprocess.run(
        [sys.executable, "-m", "swapbot.cli", "db", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def swap_args(command: str, db_url: str, old: str, new: str, tables: str, *extra: str) -> list[str]:
    """`COMMAND --database-url URL --schema OLD --new-schema NEW --tables T EXTRA...`."""
    return [command, "--database-url", db_url, "--schema", old, "--new-schema", new,
            "--tables", tables, *extra]  # fmt: skip


@contextmanager
def fixture_database(*extra: str) -> Iterator[tuple[str, str, psycopg.Connection]]:
    """A database of its own built by tests/db_fixture.py, then each of `extra` run in it:
    (name, url, connection). Dropped after, with the roles named after it."""
    name = f"swapbot_t_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            db_fixture.build(conn)
            for statement in extra:
                conn.execute(statement)
            yield name, url, conn
    finally:
        drop_database(name)


def run_json(*args: str) -> tuple[int, Any]:
    done = run_db(*args, "--json")
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def role_settings(conn: psycopg.Connection) -> list[tuple]:
    """This database's rows of pg_db_role_setting, and the role-wide rows of its own roles
    (named after it), exactly as stored. Other tests' roles, running side by side, are theirs."""
    return conn.execute(
        r"""
        SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting
        WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
           OR (setdatabase = 0 AND setrole IN (
                SELECT oid FROM pg_roles
                WHERE rolname LIKE replace(current_database(), '_', '\_') || '\_%'))
        ORDER BY setdatabase, setrole
        """
    ).fetchall()


def catalog_state(conn: psycopg.Connection) -> tuple:
    """What a refused command must not have touched: schemas, relations, role settings, and the
    rows of every trigger log (a write to a mapped table would land there)."""
    schemas = conn.execute(
        "SELECT array_agg(nspname ORDER BY nspname) FROM pg_namespace"
    ).fetchone()
    relations = conn.execute("SELECT count(*) FROM pg_class").fetchone()
    logs = [
        conn.execute(f'SELECT count(*) FROM "{schema}"._trigger_log').fetchone()[0]
        for (schema,) in conn.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = '_trigger_log' ORDER BY 1"
        ).fetchall()
    ]
    return schemas, relations, logs, role_settings(conn)


ACCOUNT = {"name": "varchar(255)", "systemmodstamp": "timestamp"}


def new_schema(
    conn: psycopg.Connection,
    schema: str,
    tables: dict[str, dict[str, str]],
    *,
    grant_to: str | None = None,
) -> None:
    """A schema as hc2's load would leave it: HC's system tables and the given mapped tables."""
    hcschema.create_system_tables(conn, schema)
    for table, columns in tables.items():
        hcschema.create_mapped_table(
            conn, schema, table, columns, access="read_write", indexes={"id": True}
        )
    if grant_to:
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{grant_to}"')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{grant_to}"')
