"""The apps on the sandbox's database, writing as their dynos do: while an app's writer dynos
are up, they make app writes through unqualified table names, as the app's role.

How a write reaches the database decides which schema it lands in after a `search_path`
switch, so both ways Heroku apps connect are played:

- **a session per dyno**: opened when the dyno comes up (again after a restart), closed when it
  stops. It gets the role's `search_path` at login, so a restart after the switch moves it.
- **server-side connection pooling** (Heroku Postgres's PgBouncer, `pg:connection-pooling`):
  a few long-lived server sessions shared by every writer dyno of the app. They outlive dyno
  restarts and keep the `search_path` they logged in with until they are ended
  (`pg_terminate_backend`), when the pooler opens fresh ones.

Scenarios declare the writers (`Scenario.writers`); the sandbox starts them with its clock.
Each committed write is logged with the schema it landed in, so tests can check where every
write went and that Salesforce got it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

import psycopg

from swapbot.sandbox import state
from swapbot.sandbox.scenarios import WriterSpec, app_database_url, role_names
from swapbot.sandbox.writeload import write_one

log = logging.getLogger(__name__)

POOLER_APPLICATION_NAME = "pgbouncer"


@dataclass(frozen=True)
class Write:
    app: str
    via: str  # the dyno (web.1) or "pool"
    table: str
    column: str
    sfid: str
    value: str
    schema: str  # where the unqualified name took it
    at: float  # time.time() once committed


class _Writer:
    """One app's sessions: per dyno (keyed by the dyno and its boot), or the pooler's."""

    def __init__(self, spec: WriterSpec, url: str, rng: random.Random):
        self.spec, self.url, self.rng = spec, url, rng
        self.sessions: dict[tuple[str, ...], psycopg.Connection] = {}
        self.turn = 0

    def routes(self, up: list[dict]) -> list[tuple[str, tuple[str, ...]]]:
        """(via, session key) for each way a write can go now; none while no writer dyno is up.
        A dyno's session goes when the dyno stops or restarts; the pooler's stay."""
        dynos = {("dyno", str(d["id"]), str(d["ready_at"])): f"{d['type']}.{d['num']}" for d in up}
        for key in [k for k in self.sessions if k[0] == "dyno" and k not in dynos]:
            self.sessions.pop(key).close()
        if not up:
            return []
        if self.spec.pooled:
            return [("pool", ("pool", str(i))) for i in range(self.spec.pool_size)]
        return [(via, key) for key, via in dynos.items()]

    def session(self, via: str, key: tuple[str, ...]) -> psycopg.Connection:
        conn = self.sessions.get(key)
        if conn is None or conn.closed:
            name = POOLER_APPLICATION_NAME if via == "pool" else f"{self.spec.app} {via}"
            conn = psycopg.connect(self.url, autocommit=True, application_name=name)
            self.sessions[key] = conn
        return conn

    def close(self) -> None:
        for conn in self.sessions.values():
            conn.close()
        self.sessions.clear()


class Traffic:
    """Every writer of a sandbox, each on a thread of its own."""

    def __init__(self, database_url: str, pool, specs: list[WriterSpec], seed: int | None = None):
        with psycopg.connect(database_url) as conn:
            dbname = conn.info.dbname
        self.url = app_database_url(database_url, role_names(dbname)[0])
        self.pool = pool  # the sandbox's own connections, to read the dynos
        self.specs = specs
        self.rng = random.Random(seed)
        self.log: list[Write] = []
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(s,), name=f"traffic-{s.app}", daemon=True)
            for s in specs
        ]

    def start(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def writes(self, app: str | None = None) -> list[Write]:
        with self._lock:
            return [w for w in self.log if app is None or w.app == app]

    def _up(self, spec: WriterSpec) -> list[dict]:
        with self.pool.connection() as conn:
            return state.rows(
                conn,
                "SELECT id, type, num, ready_at FROM _hcsandbox.dyno WHERE app = %s AND "
                "type = ANY(%s) AND state = 'up' AND stop_at IS NULL ORDER BY type, num",
                (spec.app, spec.process_types),
            )

    def _run(self, spec: WriterSpec) -> None:
        writer = _Writer(spec, self.url, random.Random(self.rng.random()))
        try:
            while not self._stop.wait(1.0 / spec.per_second):
                try:
                    self._tick(writer)
                except psycopg.Error as exc:
                    with self._lock:
                        self.errors += 1
                    log.warning("%s: app write failed: %s", spec.app, exc)
        finally:
            writer.close()

    def _tick(self, writer: _Writer) -> None:
        routes = writer.routes(self._up(writer.spec))
        if not routes:
            return  # no writer dyno up: the app is not writing
        if writer.spec.pooled:  # a warm pool: every server session is open before it is used
            for pool_via, pool_key in routes:
                writer.session(pool_via, pool_key)
        via, key = routes[writer.turn % len(routes)]
        writer.turn += 1
        conn = writer.session(via, key)
        try:
            row = write_one(conn, writer.rng)
        except psycopg.OperationalError:
            conn.close()  # ended (pg_terminate_backend): the pooler or the dyno logs in again
            raise
        if row is not None:
            table, column, sfid, value, schema = row
            with self._lock:
                self.log.append(
                    Write(writer.spec.app, via, table, column, sfid, value, schema, time.time())
                )
