"""Events: what the engine and the watcher report, for front ends to render.

The engine never formats messages. It emits typed events to subscribers — the terminal printer,
the Slack notifier, the Redis event stream — each a plain callable. Tests capture events with
`capture()` instead of scraping output.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

Kind = Literal[
    "step.started",
    "step.done",
    "step.skipped",  # already done, seen on the live system
    "step.failed",
    "step.waiting",  # waiting on Heroku Connect or on a person
    "step.undone",
    "approval.requested",
    "approval.granted",
    "approval.refused",
    "approval.expired",
    "approval.withdrawn",  # its approver took a grant back before it was used
    "approval.denied",  # an approver said no: the request can no longer be approved
    "outage.started",
    "outage.ended",
    "point_of_no_return",  # the first irreversible call is about to leave: no rollback now
    "load.progress",
    "state.changed",
    "backlog",
    "rollback.started",
    "rollback.done",
    "swap.done",
    "reminder",  # someone holds the swap up: approvers before an expiry, a person asked long ago
    "call",  # an API call or SQL statement (dry runs list these)
    "notice",
]


def now() -> datetime:
    return datetime.now(UTC)


class Payload(BaseModel):
    """What front ends read of an event's `data`, typed. Every field is optional: each kind
    fills its own (below), and `data` may carry more (kept, as `model_extra`)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    # load.progress, state.changed: one mapping of one add-on
    addon: str | None = None
    object: str | None = None
    state: str | None = None
    db: int | None = None
    sf: int | None = None
    rows_per_second: float | None = None
    eta_seconds: float | None = None
    # backlog: hc1's writes not yet sent
    rows: int | None = None
    oldest_seconds: float | None = None
    # step.waiting: who is asked, and where they go
    person: str | None = None
    link: str | None = None
    link_label: str | None = None
    # approval.*: the request (`request` where the approvals' own records publish it)
    request_id: str | None = None
    request: str | None = None
    # step.done: the step passed the point of no return
    point_of_no_return: bool = False
    # outage.ended: how long the outage lasted
    seconds: float | None = None
    # reminder: whom it nudges (Slack ids where the plan names them), and when a request expires
    people: list[str] | None = None
    expires_epoch: float | None = None


class Event(BaseModel):
    kind: Kind
    swap_id: str
    step: str | None = None
    actor: str | None = None
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=now)

    @cached_property
    def payload(self) -> Payload:
        """`data` as front ends read it. Data a field cannot take (a check's own figures under
        a name the payload uses otherwise) gives an empty payload, logged: the event is still
        told, by its kind and message."""
        try:
            return Payload.model_validate(self.data)
        except ValidationError as exc:
            log.warning(
                "event %s of swap %s: data not as expected: %s", self.kind, self.swap_id, exc
            )
            return Payload()


Subscriber = Callable[[Event], None]


class Emitter:
    """Fan an event out to every subscriber; a failing subscriber never stops the engine."""

    def __init__(self, *subscribers: Subscriber):
        self._subscribers: list[Subscriber] = list(subscribers)
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def emit(self, event: Event) -> Event:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber failed on %s", event.kind)
        return event

    @contextmanager
    def capture(self) -> Iterator[list[Event]]:
        """Collect the events emitted inside the block (for tests and reports)."""
        seen: list[Event] = []
        unsubscribe = self.subscribe(seen.append)
        try:
            yield seen
        finally:
            unsubscribe()
