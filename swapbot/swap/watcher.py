"""The watcher: polls Heroku Connect and the write backlog, and turns what changed into events.

Only one watcher leads at a time across processes and dynos (a leader lease in Redis); the
others wait to take over. It reads only, at an interval that keeps well inside the API's rate
limits (two deep reads a minute at the default 30 s), and never formats messages: front ends
render its events.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg

from swapbot.database import backlog
from swapbot.database._common import UserError
from swapbot.swap import overview
from swapbot.swap.engine import Engine
from swapbot.swap.events import Kind
from swapbot.swap.plan import Plan
from swapbot.swap.views import Backlog, Connection

log = logging.getLogger(__name__)


def write_backlog(engine: Engine, plan: Plan) -> Backlog:
    """hc1's writes not yet sent to Salesforce (its trigger log); `rows` None when unreadable."""
    try:
        with engine.live_factory(plan, engine.emitter, True).db(autocommit=True) as conn:
            b = backlog.backlog(conn, plan.old_schema)
    except (UserError, psycopg.Error) as exc:
        return Backlog(rows=None, error=str(exc))
    return Backlog(rows=b.pending_all_tables, oldest_seconds=b.oldest_pending_age_seconds)


class Watcher:
    def __init__(
        self, engine: Engine, app: str, *, interval: float = 30.0, runner: str | None = None
    ):
        self.engine, self.app, self.interval = engine, app, interval
        self.runner = runner or engine.runner
        self._last: dict[str, tuple[Connection, float]] = {}  # add-on -> last look, when
        self._last_backlog: int | None = None
        self._stop = threading.Event()
        self.leading = False

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        lease = None
        while not self._stop.is_set():
            if lease is None or not self.engine.store.renew(lease, int(self.interval * 3000)):
                lease = self.engine.store.acquire_leader(self.runner, int(self.interval * 3000))
            self.leading = lease is not None
            if self.leading:
                try:
                    self.tick()
                except Exception:
                    log.exception("watcher tick failed")
            self._stop.wait(self.interval)
        if lease is not None:
            self.engine.store.release(lease)

    def tick(self, now: float | None = None) -> list[dict[str, Any]]:
        """One look at the live system; emits and returns what changed since the last look."""
        plan = self.engine.current_plan()
        if plan is None or self.engine.clients is None:
            return []
        now = time.time() if now is None else now
        changes = []
        for conn in overview.connections(*self.engine.clients, self.app):
            changes += self._changes(plan.swap_id, conn, self._last.get(conn.addon), now)
            self._last[conn.addon] = (conn, now)
        changes += self._backlog(plan)
        changes += self._interrupted(plan)
        return changes

    def _changes(
        self, swap_id: str, conn: Connection, last: tuple[Connection, float] | None, now: float
    ) -> list[dict[str, Any]]:
        """What changed on one add-on since the last look (the first look only remembers)."""
        key = conn.addon
        changes = []
        before, at = last if last is not None else (None, now)
        if before is not None and before.state != conn.state:
            message = f"{key}: {before.state} -> {conn.state}"
            changes.append(self._emit("state.changed", swap_id, message, addon=key))
        old_maps = {m.object: m for m in before.mappings} if before is not None else {}
        for m in conn.mappings:
            prev = old_maps.get(m.object)
            counts = {"object": m.object, "state": m.state, "db": m.db, "sf": m.sf}
            if prev and prev.state != m.state:
                message = f"{key} {m.object}: {prev.state} -> {m.state}"
                changes.append(self._emit("state.changed", swap_id, message, addon=key, **counts))
            if m.progress is not None:
                rate = eta = None
                if prev and now > at:
                    rate = max(0.0, (m.db - prev.db) / (now - at))
                    eta = (m.sf - m.db) / rate if rate else None
                message = f"{key} {m.object}: {m.progress}%"
                changes.append(
                    self._emit(
                        "load.progress",
                        swap_id,
                        message,
                        addon=key,
                        **counts,
                        rows_per_second=rate,
                        eta_seconds=eta,
                    )
                )
            if m.errors and (not prev or m.errors != prev.errors):
                message = f"{key} {m.object}: {m.errors} write error(s)"
                changes.append(self._emit("notice", swap_id, message, addon=key))
        return changes

    def _interrupted(self, plan: Plan) -> list[dict[str, Any]]:
        """A step left `running` with nobody holding the swap: its runner died (a restart, a
        deploy). Say so once, and how to resume it; the watcher never acts on its own."""
        store = self.engine.store
        if store.holder(plan.swap_id) is not None:
            return []
        found = []
        for name, cp in store.checkpoints(plan.swap_id).items():
            if cp.status != "running":
                continue
            if not store.first_time(f"interrupted:{plan.swap_id}:{name}:{cp.attempt}", 86_400):
                continue
            found.append(
                self._emit(
                    "notice",
                    plan.swap_id,
                    f"{name} was interrupted: the process running it stopped, and nothing runs "
                    f"it now. Run `{name}` again to resume it; it looks at the live system first.",
                    step=name,
                )
            )
        return found

    def _backlog(self, plan: Plan) -> list[dict[str, Any]]:
        """hc1's unsent writes, reported when the figure moves (the drain is watched by it)."""
        now = write_backlog(self.engine, plan)
        if now.rows is None or now.rows == self._last_backlog:
            return []
        first, self._last_backlog = self._last_backlog is None, now.rows
        if first:
            return []  # like the connections: the first look only remembers
        return [
            self._emit(
                "backlog",
                plan.swap_id,
                f"{now.rows} write(s) waiting in {plan.old_schema}._trigger_log",
                **now.model_dump(),
            )
        ]

    def _emit(self, kind: Kind, swap_id: str, message: str, **data: Any) -> dict[str, Any]:
        self.engine.emit(kind, swap_id, message=message, **data)
        return {"kind": kind, "message": message, **data}
