"""One Slack event handed to the worker, once: what the web process does with a reaction or
the Home tab's `app_home_opened`.

The event is queued and marked seen in one Redis operation (`jobs.push_once`), keyed by its
event_id: Slack's retries of an event already handed off are acknowledged and dropped, and an
event whose handoff failed is answered 503 and left unmarked, so that Slack's retry is taken
(https://docs.slack.dev/apis/events-api/#retries).
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from slack_bolt import BoltResponse

from swapbot import config, jobs
from swapbot.swap.store import Store

log = logging.getLogger(__name__)

EVENT_SEEN_TTL = 3600  # Slack retries for about 6 minutes; keep event ids well beyond that


def queue_event(
    handoff: Any,
    settings: config.Settings,
    store: Store,
    body: dict[str, Any],
    func: str,
    arg: Any,
    about: str,
) -> BoltResponse | None:
    """Queue `func(arg)` for the worker once per delivery of the event in `body`; None (an
    empty 200) when queued or queued before, a 503 when Redis would not take it. `handoff` is
    a `jobs.Handoff` or a redis-py client."""
    event_id = body.get("event_id")
    try:
        if event_id:
            marker = store.key("dedupe", "slack-event", str(event_id))
            jobs.push_once(
                handoff,
                settings,
                marker,
                EVENT_SEEN_TTL,
                func,
                arg,
                key=str(event_id),
                description=about,
            )
        else:  # never from Slack; nothing to deduplicate on
            jobs.push(handoff, settings, func, arg, description=about)
    except RedisError as exc:
        log.error("event %s not handed off (%s): left for Slack to deliver again", event_id, exc)
        return BoltResponse(status=503, body="")
    return None
