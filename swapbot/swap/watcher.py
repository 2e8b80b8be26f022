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
from swapbot.swap import steps as runbook
from swapbot.swap.approvals import ApprovalStatus
from swapbot.swap.engine import Engine
from swapbot.swap.events import Kind
from swapbot.swap.plan import Plan
from swapbot.swap.record import is_done
from swapbot.swap.run import ASKED
from swapbot.swap.views import Backlog, Connection

log = logging.getLogger(__name__)

# Approvers are nudged this long before a pending request expires.
EXPIRY_NUDGE_SECONDS = 300.0
# A person a step asked is nudged again after this long, and again each time it passes.
PERSON_NUDGE_SECONDS = 600.0
# How long the watcher remembers it told a reminder (longer than any swap's wait).
REMINDER_MEMORY_SECONDS = 7 * 86_400


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
        changes += self._expired(plan)
        changes += self._reminders(plan, now)
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

    def _expired(self, plan: Plan) -> list[dict[str, Any]]:
        """Requests past their expiry are marked expired now, not only when someone next tries
        them, so that front ends show them expired (the Slack message loses its buttons)."""
        return [
            self._emit(
                "approval.expired",
                plan.swap_id,
                f"the approval {r.id} of {r.step} expired unused",
                step=r.step,
                request_id=r.id,
            )
            for r in self.engine.approvals.expire_due(plan.swap_id)
        ]

    def _reminders(self, plan: Plan, now: float) -> list[dict[str, Any]]:
        """Nudge whoever holds the swap up, once each: approvers before a request expires and
        when the cutover's next step waits on their approval; a person asked more than
        PERSON_NUDGE_SECONDS ago, again every PERSON_NUDGE_SECONDS."""
        found = self._expiring(plan, now) + self._approval_awaited(plan)
        return found + self._asked_long_ago(plan, now)

    def _first(self, key: str) -> bool:
        return self.engine.store.first_time(f"remind:{key}", REMINDER_MEMORY_SECONDS)

    def _expiring(self, plan: Plan, now: float) -> list[dict[str, Any]]:
        found = []
        approvers = sorted(self.engine.approvers)
        for r in self.engine.approvals.pending(plan.swap_id):
            left = r.expires_epoch - now
            if left > EXPIRY_NUDGE_SECONDS or not self._first(f"{plan.swap_id}:expiry:{r.id}"):
                continue
            message = (
                f"the approval {r.id} of {r.step} expires in {left / 60:.0f} min: an approver, "
                f"not {r.requester}, can approve it now"
            )
            found.append(
                self._emit(
                    "reminder",
                    plan.swap_id,
                    message,
                    step=r.step,
                    request_id=r.id,
                    people=approvers,
                    expires_epoch=r.expires_epoch,
                )
            )
        return found

    def _approval_awaited(self, plan: Plan) -> list[dict[str, Any]]:
        """Inside the outage, the next step needs an approval nobody has given yet."""
        store = self.engine.store
        if store.get_record(plan.swap_id, "outage_started_at") is None:
            return []
        checkpoints = store.checkpoints(plan.swap_id)
        step = next((s for s in runbook.CUTOVER if not is_done(checkpoints.get(s.name))), None)
        if step is None or not step.approval:
            return []
        asked = self.engine.approvals.requests(plan.swap_id, step.name)
        if any(r.status in (ApprovalStatus.GRANTED, ApprovalStatus.USED) for r in asked):
            return []
        if not self._first(f"{plan.swap_id}:awaited:{step.name}"):
            return []
        pending = [r.id for r in asked if r.status is ApprovalStatus.PENDING]
        message = f"the outage is running and {step.name} waits on an approval: " + (
            f"an approver can approve {pending[-1]} now"
            if pending
            else f"`request-approval {step.name}`, then an approver approves it"
        )
        approvers = sorted(self.engine.approvers)
        return [self._emit("reminder", plan.swap_id, message, step=step.name, people=approvers)]

    def _asked_long_ago(self, plan: Plan, now: float) -> list[dict[str, Any]]:
        store = self.engine.store
        found = []
        for name, cp in store.checkpoints(plan.swap_id).items():
            asked = (
                store.get_record(plan.swap_id, f"{ASKED}{name}") if cp.status == "waiting" else None
            )
            if not asked:
                continue
            waited = now - float(asked.get("at") or now)
            rounds = int(waited // PERSON_NUDGE_SECONDS)
            if rounds < 1 or not self._first(f"{plan.swap_id}:asked:{name}:{cp.attempt}:{rounds}"):
                continue
            person = asked.get("person") or plan.authorizer or plan.created_by
            message = f"{name} has waited {waited / 60:.0f} min on a person: " + (
                runbook.get(name).person or "see the step's request above"
            )
            found.append(
                self._emit(
                    "reminder",
                    plan.swap_id,
                    message,
                    step=name,
                    people=[person] if person else [],
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
