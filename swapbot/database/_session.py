"""Sessions for the reading commands: a connection that cannot write, one consistent snapshot
with settings that keep a query cheap and short."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.pq import TransactionStatus

from swapbot.database._common import connect

# Small catalog and index lookups gain nothing from JIT compilation or parallel workers, and
# each costs milliseconds to start; a reader must never queue behind HC's DDL for long.
CHEAP = {"jit": "off", "max_parallel_workers_per_gather": "0", "lock_timeout": "5s"}


def connect_read_only(url: str) -> psycopg.Connection:
    """An autocommit connection on which every statement that would write is refused."""
    conn = connect(url, autocommit=True)
    conn.execute("SET default_transaction_read_only = on")
    return conn


@contextmanager
def snapshot(conn: psycopg.Connection, settings: dict[str, str] | None = None) -> Iterator[None]:
    """Run the block in one REPEATABLE READ, READ ONLY transaction with `settings` local to it.

    Inside a transaction the caller already holds, the block joins it (a savepoint) and the
    settings are put back afterwards, so the caller's session is left as it was.
    """
    own = conn.info.transaction_status == TransactionStatus.IDLE
    with conn.transaction():
        if own:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        previous = {}
        for name, value in (settings or {}).items():
            row = conn.execute(
                "SELECT current_setting(%s), set_config(%s, %s, true)", (name, name, value)
            ).fetchone()
            previous[name] = row[0] if row else None
        yield
        if not own:
            for name, value in previous.items():
                conn.execute("SELECT set_config(%s, %s, true)", (name, value))
