"""The App Home tab: when a person opens swapbot's Home tab, the worker publishes what
`/hcswap status` would show them there (`views.publish`): the current swap's card, the last few
swaps in a line each, and the report of the most recent swap that is done.

Slack sends `app_home_opened` each time someone opens the app's Home
(https://docs.slack.dev/reference/events/app_home_opened); only its Home tab is drawn (`tab`
"home"), never the Messages tab. The web process only verifies and hands off (`register`): the
event is queued once, keyed and marked seen by its event_id in one Redis operation
(`swapbot.slack.handoff`), so Slack's retries are dropped, and answered 503 when Redis would not
take it, so that Slack delivers it again. The worker reads Redis and publishes (`publish_home`).

Who sees what is `/hcswap status`'s rule (`swapbot.slack.access`): operators and approvers
always, anyone else while they are a member of the swap channel, as Slack says
(`conversations.members`, under the channels:read / groups:read scopes swapbot already has; the
answer kept a minute). Everyone else gets a short tab saying they are not one of its readers.

The card is the channel's own: drawn from the notifier's view of the swap (its last events read
back, then the swap's record over them) by the same renderer. The Home tab has no buttons: see
`swapbot.slack.blocks.home`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient

from swapbot import commands, config, jobs
from swapbot.slack import access, notifier
from swapbot.slack.blocks import home as view
from swapbot.slack.blocks.text import epoch
from swapbot.slack.handoff import queue_event
from swapbot.swap import record as swaprecord
from swapbot.swap import report
from swapbot.swap.approvals import Approvals
from swapbot.swap.events import Event
from swapbot.swap.store import Store, as_text

log = logging.getLogger(__name__)

PUBLISH = "swapbot.slack.home.publish_home"
RECENT = 5  # swaps listed
# The card reads back this many of the swap's last events (its loads, backlog and who a step
# waits on); the steps and the outage come from the swap's record whatever the events say.
EVENTS_READ = 2000
MEMBERSHIP_TTL = 60  # seconds a member's answer is kept: each look is a call to Slack
_MEMBER_PAGES = 50  # of 200 members each: swap channels are far smaller
_STATUS = commands.parse("status")  # what a reader may read
_CARD_KINDS = notifier.PROGRESS_KINDS | notifier.STANDING_KINDS


# -- the web process ---------------------------------------------------------------------------
def register(app: App, settings: config.Settings, handoff: jobs.Handoff, store: Store) -> None:
    """Add the `app_home_opened` listener to the Bolt app (`swapbot.slack.app.build_app`)."""

    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], body: dict[str, Any]) -> BoltResponse | None:
        return hand_off(settings, handoff, store, event, body)


def hand_off(
    settings: config.Settings,
    handoff: Any,
    store: Store,
    event: dict[str, Any],
    body: dict[str, Any],
) -> BoltResponse | None:
    """Queue the drawing of one person's Home tab, once per event; 503 when Redis would not
    take it, so that Slack delivers it again. `handoff` is a `jobs.Handoff` or a redis-py
    client."""
    user = str(event.get("user") or "")
    if event.get("tab") != "home" or not user:
        return None  # the Messages tab, or no one to draw it for
    return queue_event(handoff, settings, store, body, PUBLISH, user, f"Home tab of {user}")


# -- the worker ----------------------------------------------------------------------------------
def publish_home(user: str) -> dict[str, Any]:
    """The job: draw `user`'s Home tab and publish it. Never raises: a tab that could not be
    drawn says why in one line (secrets masked); one Slack would not take is logged."""
    from swapbot.slack import work  # the worker's context; the web process never needs it

    settings: config.Settings | None = None
    client: WebClient | None = None
    try:
        settings, client, engine = work.context()
        drawn, status = draw(engine.store, client, settings, user), "done"
    except Exception as exc:
        log.exception("the Home tab of %s could not be drawn", user)
        if client is None:
            settings, client = work.answerer()
        drawn, status = view.failed_view(work.why(exc, settings)), "failed"
    if client is None:
        return {"status": "failed", "message": "no Slack client: the Home tab was not published"}
    try:
        client.views_publish(user_id=user, view=drawn)
    except notifier.CALL_ERRORS as exc:  # Slack's refusal, or no answer at all
        log.warning("could not publish the Home tab of %s: %s", user, exc)
        return {"status": "failed", "message": f"views.publish: {type(exc).__name__}"}
    return {"status": status, "message": f"Home tab of {user} published"}


def draw(
    store: Store,
    client: WebClient,
    settings: config.Settings,
    user: str,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """The Home view for `user`: theirs as a reader, or the short one for anyone else."""
    now = time.time() if now is None else now
    channel = settings.swapbot_channel
    reader = may_read(store, client, settings, user)
    if reader is not True:
        return view.stranger_view(channel, checked=reader is False, now=now)
    return view.home_view(facts(store, channel, now), now=now)


def may_read(store: Store, client: WebClient, settings: config.Settings, user: str) -> bool | None:
    """Whether `user` may read the swap's status, as `/hcswap status` would answer them:
    operators and approvers anywhere, anyone else in the swap channel. None when Slack could
    not say whether they are in it."""
    if access.refusal(_STATUS, user, "", settings) is None:  # read from anywhere ("")
        return True
    channel = settings.swapbot_channel
    if not channel:
        return False
    member = member_of(store, client, channel, user)
    if member is None:
        return None
    return member and access.refusal(_STATUS, user, channel, settings) is None


def member_of(store: Store, client: WebClient, channel: str, user: str) -> bool | None:
    """Is `user` a member of `channel`, as Slack said within the last minute? None (not kept)
    when Slack did not say."""
    key = store.key("slack", "home-member", channel, user)
    cached = store.redis.get(key)
    if cached is not None:
        return as_text(cached) == "1"
    try:
        member = any(user in page for page in _member_pages(client, channel))
    except notifier.CALL_ERRORS as exc:
        log.warning("could not list the members of %s: %s", channel, exc)
        return None
    store.redis.set(key, "1" if member else "0", ex=MEMBERSHIP_TTL)
    return member


def _member_pages(client: WebClient, channel: str) -> Iterator[list[str]]:
    """The channel's member ids, a page at a time (`conversations.members` is paginated)."""
    cursor = ""
    for _ in range(_MEMBER_PAGES):
        found = client.conversations_members(channel=channel, limit=200, cursor=cursor or None)
        yield [str(m) for m in found.get("members") or []]
        cursor = str((found.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor:
            return


# -- what the tab shows, from Redis ------------------------------------------------------------
def facts(store: Store, channel: str | None, now: float) -> view.HomeFacts:
    """The current swap's card, the last `RECENT` swaps, and the report of the latest done."""
    current = store.current_swap()
    lines = swap_lines(store, current)
    done = [s for s in lines if s.state == "done"]
    latest = max(done, key=lambda s: s.ended_at or 0.0, default=None)
    text = None
    if latest is not None:
        told = report.render(report.report(store, latest.swap_id))
        text = view.ReportText(latest.swap_id, latest.ended_at, told)
    card = (current, card_view(store, current, now)) if current else None
    return view.HomeFacts(channel=channel, card=card, swaps=lines[:RECENT], report=text)


def card_view(store: Store, swap_id: str, now: float) -> dict[str, Any]:
    """The view the notifier draws the swap's card from (`notifier.standing`, `card_facts`),
    from the swap's last events and its record, without buttons."""
    p = notifier.fresh_progress()
    for event in _last_events(store, swap_id):
        if event.kind in _CARD_KINDS:
            notifier.note_progress(p, event)
    card = notifier.standing(store, swap_id, p)
    card.update(notifier.card_facts(store, Approvals(store), swap_id, card, now, buttons=False))
    return card


def _last_events(store: Store, swap_id: str) -> list[Event]:
    """The swap's last `EVENTS_READ` events, oldest first; one that cannot be read is passed
    over, as the notifier does."""
    rows = store.redis.xrevrange(store.swap_key(swap_id, "events"), count=EVENTS_READ) or []
    found = []
    for _, fields in reversed(rows):
        raw = (fields or {}).get(b"event") or (fields or {}).get("event") or ""
        try:
            found.append(Event.model_validate(json.loads(raw)))
        except ValueError:  # pydantic's ValidationError is one too
            log.warning("passing over an unreadable event of swap %s", swap_id)
    return found


def swap_lines(store: Store, current: str | None) -> list[view.SwapLine]:
    """Every swap Redis has a plan of, the current one first, then the latest active first."""
    found = store.planned_swaps() | ({current} if current else set())
    active = {s: _last_active(store, s) for s in found}
    ordered = sorted(found, key=lambda s: (s == current, active[s]), reverse=True)
    return [_swap_line(store, s, s == current) for s in ordered]


def _last_active(store: Store, swap_id: str) -> float:
    """When the swap's audit trail last moved: its last entry's time, as the engine wrote it."""
    last = store.tail(swap_id, 1)
    return (epoch(last[0].at) or 0.0) if last else 0.0


_LANDMARKS = [
    notifier.OUTAGE_STARTED,
    notifier.OUTAGE_ENDED,
    swaprecord.FINISHED,
    swaprecord.ROLLED_BACK,
]


def _swap_line(store: Store, swap_id: str, current: bool) -> view.SwapLine:
    plan = store.get_plan(swap_id) or {}
    records = store.some_records(swap_id, _LANDMARKS)
    started, ended, done, rolled_back = (_epoch(records.get(name)) for name in _LANDMARKS)
    if done is not None:
        state, at = "done", done
    elif rolled_back is not None:
        state, at = "rolled back", rolled_back
        # The rollback ended the outage (its undo of stop-writes), as the card says too.
        ended = ended if ended is not None or started is None else rolled_back
    else:
        state, at = ("in progress" if current else "left unfinished"), None
    return view.SwapLine(
        swap_id=swap_id,
        app=str(plan.get("app") or "") or None,
        state=state,
        outage_started=started,
        outage_ended=ended,
        ended_at=at,
    )


def _epoch(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
