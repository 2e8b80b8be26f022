"""A steady stream of app writes, made as the app's role through unqualified table names.

It keeps `_trigger_log` from ever being empty, as on a busy production app, and it goes through
the role's `search_path` exactly as the app does, so it follows a `search_path` switch.
"""

from __future__ import annotations

import logging
import random
import threading

import psycopg
from psycopg import sql

from swapbot.sandbox.scenarios import app_database_url, role_names

log = logging.getLogger(__name__)

# Read-write demo tables and a text column the app edits on each of them.
TARGETS = {"account": "billingcity", "contact": "lastname", "case": "subject"}


class WriteLoad:
    def __init__(self, database_url: str, per_second: float, seed: int | None = None):
        with psycopg.connect(database_url) as conn:
            dbname = conn.info.dbname
        self.url = app_database_url(database_url, role_names(dbname)[0])
        self.per_second = per_second
        self.rng = random.Random(seed)
        self.writes = 0
        self.errors = 0
        # Each write that committed, in order: (table, column, sfid, value it set). Tests check
        # that the org ends up holding each record's last value.
        self.log: list[tuple[str, str, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-write-load", daemon=True)

    def start(self) -> WriteLoad:
        self._thread.start()
        return self

    def is_running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = 1.0 / self.per_second
        conn = None
        while not self._stop.wait(interval):
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True)
                row = self._write(conn)
                self.writes += 1
                if row is not None:
                    self.log.append(row)
            except psycopg.Error as exc:
                self.errors += 1
                log.warning("app write failed: %s", exc.diag.message_primary or exc)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _write(self, conn: psycopg.Connection) -> tuple[str, str, str, str] | None:
        row = write_one(conn, self.rng)
        return row[:4] if row else None


def write_one(
    conn: psycopg.Connection, rng: random.Random
) -> tuple[str, str, str, str, str] | None:
    """One app write: (table, column, sfid, value it set, schema it landed in), or None."""
    table, column = rng.choice(list(TARGETS.items()))
    # Unqualified on purpose: the role's search_path decides which schema this reaches.
    row = conn.execute(
        sql.SQL(
            "UPDATE {t} SET {c} = left({c}, 20) || ' #' || %s WHERE id = (SELECT id FROM {t} "
            "WHERE sfid IS NOT NULL ORDER BY id OFFSET floor(random() * 50) LIMIT 1) "
            "RETURNING sfid, {c}, (SELECT relnamespace::regnamespace::text FROM pg_class "
            "WHERE oid = {t}.tableoid)"
        ).format(t=sql.Identifier(table), c=sql.Identifier(column)),
        (rng.randint(1, 10**6),),
    ).fetchone()
    return (table, column, row[0], row[1], row[2]) if row else None
