"""Work the web process hands to `swapbot worker` over Redis (rq), so an ack never waits on it.

A job names what to run, never how: the worker builds its own engine from the settings and runs
the same methods the terminal front end calls. The engine's lease still decides who acts, so a
job delivered twice, or run by two workers, cannot run a step twice.
"""

from __future__ import annotations

import hashlib
from typing import Any

from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job

from swapbot import config

QUEUE = "swapbot"


def queue(settings: config.Settings) -> Queue:
    return Queue(QUEUE, connection=config.redis_client(settings))


def enqueue(
    settings: config.Settings, action: str, *, actor: str, key: str | None = None, **kwargs: Any
):
    """Queue an engine action. `key` (e.g. Slack's trigger id) makes a retried request a no-op."""
    job_id = None
    if key:
        digest = hashlib.sha256(f"{settings.swapbot_redis_prefix}{action}:{key}".encode())
        job_id = "swapbot-" + digest.hexdigest()[:24]
    q = queue(settings)
    try:
        return q.enqueue_call(
            run_action,
            args=(action, actor),
            kwargs=kwargs,
            job_id=job_id,
            unique=bool(job_id),
            result_ttl=86_400,
            failure_ttl=86_400,
            timeout=6 * 3600,  # wait-sync may watch a load for hours
            description=f"{action} by {actor}",
        )
    except DuplicateJobError:  # the same request again (a Slack retry): the first job stands
        return Job.fetch(job_id, connection=q.connection)


def run_action(action: str, actor: str, **kwargs: Any) -> dict[str, Any]:
    """Run one engine action in the worker; the result is what the front end reports back."""
    from swapbot.swap.runtime import build_engine

    settings = config.load_settings()
    engine = build_engine(settings, approvers=set(settings.swapbot_approvers))
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
