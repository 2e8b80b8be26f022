"""The swap's durable record, in the app's own Postgres beside the data it protects.

Redis holds the fast state (leases, queues, the event stream, approvals). Everything the way
back depends on is also written here: the plan, every step's checkpoint, the records (hc1's
export, the role settings before the switch, the formation and maintenance flag before
stop-writes, the new schema's grants before prep, the point of no return) and what people
confirmed. A record is written here before Redis (it must be durable before the change it
describes is made); a checkpoint after Redis, which decides under the lease who may write. If Redis loses the swap (a failover, an eviction, an
operator's FLUSHALL), the engine rebuilds it from here; Heroku Connect never touches the
`swapbot` schema, and it is backed up with the database.

    swapbot.swap   one row per swap: its plan and whether it is the database's active swap
    swapbot.entry  (swap, kind, name) -> value: kind is step | record | confirmation

Writes carry the fencing token of the lease that made them; an entry is only replaced by a
write whose token is at least as large, so a runner that lost its lease cannot overwrite what
the runner after it wrote (confirmations are not lease-guarded and always write). The largest
token seen here is the floor of the next lease's (`max_fence`): a Redis that lost its counter
never hands out a token this journal would refuse.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

SCHEMA = "swapbot"
APPLICATION_NAME = "swapbot"  # the bot's own sessions, told apart in pg_stat_activity

EntryKind = Literal["step", "record", "confirmation"]
SwapState = Literal["active", "replaced"]

_DDL = """
CREATE SCHEMA IF NOT EXISTS swapbot;
COMMENT ON SCHEMA swapbot IS 'swapbot: the durable record of Heroku Connect swaps (never synced)';
CREATE TABLE IF NOT EXISTS swapbot.swap (
    swap_id  text PRIMARY KEY,
    app      text NOT NULL,
    plan     jsonb NOT NULL,
    state    text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'replaced')),
    saved_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- One active swap per database: a second can only become active by replacing the first.
CREATE UNIQUE INDEX IF NOT EXISTS swap_one_active ON swapbot.swap (state) WHERE state = 'active';
CREATE TABLE IF NOT EXISTS swapbot.entry (
    swap_id    text NOT NULL REFERENCES swapbot.swap ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('step', 'record', 'confirmation')),
    name       text NOT NULL,
    value      jsonb,
    fence      bigint NOT NULL DEFAULT 0,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (swap_id, kind, name)
);
"""

_PUT = """
INSERT INTO swapbot.entry AS e (swap_id, kind, name, value, fence)
VALUES (%(swap_id)s, %(kind)s, %(name)s, %(value)s, coalesce(%(fence)s, 0))
ON CONFLICT (swap_id, kind, name) DO UPDATE
   SET value = excluded.value, fence = greatest(e.fence, excluded.fence),
       written_at = clock_timestamp()
 WHERE %(fence)s IS NULL OR e.fence <= excluded.fence
"""


class JournalError(Exception):
    """The durable record could not be read or written; the message says where and why."""


class JournalRefused(JournalError):
    """The active swap may not be replaced (it is in progress); the message says why."""


class JournalFenced(JournalError):
    """A write with a smaller fence than the entry's: a newer runner holds the swap."""


class JournalSwap(BaseModel):
    """One swap as the journal holds it."""

    swap_id: str
    app: str
    plan: dict[str, Any]
    state: SwapState
    steps: dict[str, dict[str, Any]] = Field(default_factory=dict)
    records: dict[str, Any] = Field(default_factory=dict)
    confirmations: dict[str, Any] = Field(default_factory=dict)
    fences: dict[str, int] = Field(default_factory=dict)  # "kind:name" -> fence of its last write


class Journal:
    """The `swapbot` schema of one database, over one connection kept for the process."""

    def __init__(self, database_url: str, *, connect_timeout: int = 10):
        self.database_url = database_url
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self._ready = False

    def __del__(self) -> None:
        # The connection lives as long as the journal: one dropped (a test's engine, settings
        # that changed) takes its session with it instead of leaving it to the collector.
        conn = getattr(self, "_conn", None)
        if conn is not None and not conn.closed:
            conn.close()

    # -- the connection -----------------------------------------------------------------------
    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection]:
        """The journal's connection, opened (and the schema made) on first use; a connection
        that broke is dropped so that the next call opens a fresh one."""
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(
                        self.database_url,
                        autocommit=True,
                        connect_timeout=self.connect_timeout,
                        application_name=APPLICATION_NAME,
                    )
                if not self._ready:
                    self._conn.execute(_DDL)
                    self._ready = True
                yield self._conn
            except psycopg.OperationalError as exc:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                raise JournalError(
                    f"the swap's durable record in Postgres: {_first_line(exc)}"
                ) from None
            except psycopg.Error as exc:
                raise JournalError(
                    f"the swap's durable record in Postgres: {_first_line(exc)}"
                ) from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    # -- writes -------------------------------------------------------------------------------
    def save_swap(
        self,
        plan: dict[str, Any],
        refuse: Callable[[JournalSwap], str | None] = lambda _: None,
    ) -> None:
        """Make `plan`'s swap the database's active one, replacing whichever was (its entries
        stay), unless `refuse` says why the active one may not be replaced: it is judged here,
        with the active row locked, so two savers cannot both pass."""
        swap_id = plan["swap_id"]
        with self._session() as conn, conn.transaction():
            row = conn.execute(
                "SELECT swap_id FROM swapbot.swap WHERE state = 'active' FOR UPDATE"
            ).fetchone()
            if row and row[0] != swap_id:
                active = self._load(conn, row[0])  # (found: its row is locked above)
                why = refuse(active) if active is not None else None
                if why:
                    raise JournalRefused(why)
            conn.execute(
                "UPDATE swapbot.swap SET state = 'replaced' WHERE state = 'active' AND swap_id <> %s",
                (swap_id,),
            )
            conn.execute(
                "INSERT INTO swapbot.swap (swap_id, app, plan, state) VALUES (%s, %s, %s, 'active') "
                "ON CONFLICT (swap_id) DO UPDATE SET app = excluded.app, plan = excluded.plan, "
                "state = 'active', saved_at = clock_timestamp()",
                (swap_id, plan["app"], Jsonb(plan)),
            )

    def put(
        self, swap_id: str, kind: EntryKind, name: str, value: Any, *, fence: int | None
    ) -> None:
        """Write one entry; JournalFenced when a write with a larger fence got there first."""
        params = {
            "swap_id": swap_id,
            "kind": kind,
            "name": name,
            "value": Jsonb(value) if value is not None else None,
            "fence": fence,
        }
        with self._session() as conn:
            written = conn.execute(_PUT, params).rowcount == 1
        if not written:
            raise JournalFenced(
                f"the journal holds a newer {kind} `{name}` of swap {swap_id} than this runner's "
                f"(fence {fence}): another runner holds the swap"
            )

    def clear(self, swap_id: str, kind: EntryKind) -> None:
        with self._session() as conn:
            conn.execute(
                "DELETE FROM swapbot.entry WHERE swap_id = %s AND kind = %s", (swap_id, kind)
            )

    # -- reads --------------------------------------------------------------------------------
    def active(self) -> JournalSwap | None:
        """The database's active swap, with everything recorded for it."""
        with self._session() as conn:
            row = conn.execute("SELECT swap_id FROM swapbot.swap WHERE state = 'active'").fetchone()
        return self.load(row[0]) if row else None

    def max_fence(self, swap_id: str) -> int:
        """The largest fence any write of the swap carried (0 for none)."""
        with self._session() as conn:
            row = conn.execute(
                "SELECT coalesce(max(fence), 0) FROM swapbot.entry WHERE swap_id = %s", (swap_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    def load(self, swap_id: str) -> JournalSwap | None:
        with self._session() as conn:
            return self._load(conn, swap_id)

    @staticmethod
    def _load(conn: psycopg.Connection, swap_id: str) -> JournalSwap | None:
        head = conn.execute(
            "SELECT app, plan, state FROM swapbot.swap WHERE swap_id = %s", (swap_id,)
        ).fetchone()
        if head is None:
            return None
        rows = conn.execute(
            "SELECT kind, name, value, fence FROM swapbot.entry WHERE swap_id = %s", (swap_id,)
        ).fetchall()
        found = JournalSwap(swap_id=swap_id, app=head[0], plan=head[1], state=head[2])
        kinds = {"step": found.steps, "record": found.records, "confirmation": found.confirmations}
        for kind, name, value, fence in rows:
            kinds[kind][name] = value
            found.fences[f"{kind}:{name}"] = fence
        return found


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def dumps(value: Any) -> str:
    """How a value is compared between Redis and the journal (the same JSON both ways)."""
    return json.dumps(value, sort_keys=True, default=str)
