"""What a command on the engine came to, and how a failure is told to the person who asked."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis

from swapbot.database._common import LockWaited, UserError, redact
from swapbot.heroku import HerokuError, RateLimited, ServerError, TransportError
from swapbot.swap.events import Event
from swapbot.swap.journal import JournalError
from swapbot.swap.run import StepStopped
from swapbot.swap.store import LeaseLost, StoreError

log = logging.getLogger(__name__)

# Whether a change landed is unknown after these: the step is in doubt, and its next attempt
# looks at the live system before acting again.
IN_DOUBT = (ServerError, RateLimited, TransportError, psycopg.OperationalError)


class Interrupted(BaseException):
    """Raised into a running step (from a signal handler) when its process must stop now: a
    SIGTERM from a deploy or a restart, or the death of the worker that started it. A
    BaseException, so that no `except Exception` on the way swallows it. The engine records
    the step as failed with this message, releases the swap's lease at once and answers."""


@dataclass
class Outcome:
    step: str
    status: str  # done | skipped | waiting | failed | refused | dry-run
    message: str
    calls: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("done", "skipped", "dry-run")


def failure(exc: Exception, step: str) -> dict[str, Any]:
    """An exception as what the person who asked is told: what failed, and what to do next.
    `resumable`: the step may have acted (its next attempt looks at the live system first)."""
    again = f"run `{step}` again: it looks at the live system before it acts"
    text = redact(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, StepStopped):
        return {"message": str(exc)}
    if isinstance(exc, LockWaited):
        return {
            "message": f"{exc}. When that session is done (or ended), {again}",
            "retryable": True,
        }
    if isinstance(exc, IN_DOUBT):
        return {
            "message": f"{text}: no answer, so whether the change landed is unknown; {again}",
            "resumable": True,
        }
    if isinstance(exc, LeaseLost):
        return {"message": f"{exc}: this runner stopped; {again}", "resumable": True}
    if isinstance(exc, JournalError | StoreError | redis.RedisError):
        return {"message": f"{text}; the step stopped there; {again}", "resumable": True}
    if isinstance(exc, HerokuError | psycopg.Error | UserError):
        return {"message": f"{text}; {again} once that is fixed"}
    log.exception("unexpected error in %s", step)
    return {"message": f"unexpected error: {text}; the step stopped there; {again}"}


def calls_of(events: list[Event]) -> list[str]:
    """Each change a step made (or would make), followed by the SQL statements it runs."""
    out: list[str] = []
    for e in events:
        if e.kind == "call":
            out.append(e.message)
            out.extend(f"    {statement}" for statement in e.data.get("sql", []))
    return out
