"""Work the web process hands to `swapbot worker` over Redis (rq), so an ack never waits on it.

A job names what to run, never how: the worker builds its own engine from the settings and runs
the same code the terminal front end calls. The engine's lease still decides who acts, so a
job delivered twice, or run by two workers, cannot run a step twice; a `key` (Slack's trigger
id, or what a reaction means) makes the same request queued twice one job.

Two queues: `steps` for work that may take hours (a step, `next`, `rollback`) and
`interactive` for everything a person waits on (status, plans, approvals, reactions), so that
a long step never makes `status` wait. rq's own keys always start with `rq:`; the queues' names
carry SWAPBOT_REDIS_PREFIX, so two swapbots sharing one Redis never take each other's jobs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job

from swapbot import config

JOB_TIMEOUT = 6 * 3600  # wait-sync may watch a load for hours
RESULT_TTL = 86_400  # a finished job's id is remembered this long: retries within it are no-ops


STEPS, INTERACTIVE = "steps", "interactive"


def queue_name(settings: config.Settings, kind: str = STEPS) -> str:
    return f"{settings.swapbot_redis_prefix}{kind}"


def queue(settings: config.Settings, connection: Any = None, kind: str = STEPS) -> Queue:
    return Queue(queue_name(settings, kind), connection=connection or config.redis_client(settings))


def job_id(settings: config.Settings, what: str, key: str) -> str:
    digest = hashlib.sha256(f"{settings.swapbot_redis_prefix}{what}:{key}".encode())
    return "swapbot-" + digest.hexdigest()[:24]


def submit(
    q: Queue,
    settings: config.Settings,
    func: Callable[..., Any] | str,
    *args: Any,
    key: str | None = None,
    description: str = "",
    **kwargs: Any,
) -> Job:
    """Queue `func(*args, **kwargs)` for a worker; the same `key` queued again is the same job.

    `func` may be a dotted path, so that the web process need not import what the worker runs."""
    name = func if isinstance(func, str) else f"{func.__module__}.{func.__qualname__}"
    jid = job_id(settings, name, key) if key else None
    try:
        return q.enqueue_call(
            func,
            args=args,
            kwargs=kwargs,
            job_id=jid,
            unique=bool(jid),
            result_ttl=RESULT_TTL,
            failure_ttl=RESULT_TTL,
            timeout=JOB_TIMEOUT,
            description=description or name,
        )
    except DuplicateJobError:  # the same request again (a Slack retry): the first job stands
        return Job.fetch(jid, connection=q.connection)


def enqueue(
    settings: config.Settings, action: str, *, actor: str, key: str | None = None, **kwargs: Any
) -> Job:
    """Queue an engine action (a step, `next` or `rollback`) by name."""
    return submit(
        queue(settings),
        settings,
        run_action,
        action,
        actor,
        key=f"{action}:{key}" if key else None,
        description=f"{action} by {actor}",
        **kwargs,
    )


def run_action(action: str, actor: str, **kwargs: Any) -> dict[str, Any]:
    """Run one engine action in the worker; the result is what the front end reports back."""
    from swapbot.swap.runtime import build_engine

    settings = config.load_settings()
    engine = build_engine(settings)
    if action == "next":
        outcome = engine.next(actor, dry_run=kwargs.get("dry_run", False))
    elif action == "rollback":
        outcome = engine.rollback(actor, dry_run=kwargs.get("dry_run", False))
    else:
        outcome = engine.run_step(
            action,
            actor,
            dry_run=kwargs.get("dry_run", False),
            break_glass=kwargs.get("break_glass"),
            app=kwargs.get("app"),
        )
    return {
        "step": outcome.step,
        "status": outcome.status,
        "message": outcome.message,
        "calls": outcome.calls,
    }
