"""The Bolt app behind `/hcswap`: verify, authorize, acknowledge, enqueue — nothing else.

Listeners stay plain functions (bolt-python's shape). Bolt's middleware checks signatures and
ignores the bot's own events. Work runs in `swapbot worker` (`swapbot.slack.work`), never on
Bolt's small listener pool or beside the acks: the web process must answer within Slack's 3
seconds whatever the swap is doing.

An event is handed off and marked seen in one Redis operation (`jobs.push_once`): Slack's
retries of an event already handed off are acknowledged and dropped, and an event whose handoff
failed is answered 503 and left unmarked, so that Slack's retry is taken.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError
from slack_bolt import App, BoltResponse

from swapbot import commands, config, jobs
from swapbot.slack import access, blocks
from swapbot.slack.client import web_client
from swapbot.swap.store import Store

log = logging.getLogger(__name__)

COMMAND = "/hcswap"
EVENT_SEEN_TTL = 3600  # Slack retries for about 6 minutes; keep event ids well beyond that

# Slack's escaping of command text (should_escape: true): entities and <…|label> sequences.
_ENTITY = {"&amp;": "&", "&lt;": "<", "&gt;": ">"}
_SEQUENCE = re.compile(r"<([@#!]?)([^<>|]*)(?:\|([^<>]*))?>")


def unescape(text: str) -> str:
    """Command text as the person typed it: `<@U1|olivia>` becomes U1, links their address."""

    def plain(m: re.Match[str]) -> str:
        sigil, target, label = m.group(1), m.group(2), m.group(3)
        if sigil in ("@", "#"):
            return target
        if sigil == "!":
            return label or target
        return target

    if "<" not in text and "&" not in text:  # nothing escaped: most commands
        return text
    text = _SEQUENCE.sub(plain, text)
    for entity, char in _ENTITY.items():
        text = text.replace(entity, char)
    return text


def _ephemeral(rendered: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    text, blks = rendered
    return {"text": text, "blocks": blks, "response_type": "ephemeral"}


def build_app(
    settings: config.Settings,
    *,
    redis: Any = None,
    token_verification_enabled: bool = True,
    **app_options: Any,
) -> App:
    """The Bolt app for both HTTP (`swapbot serve`) and Socket Mode (`swapbot socket`)."""
    conn = redis or config.redis_client(settings, socket_timeout=2, socket_connect_timeout=2)
    store = Store(conn, settings.swapbot_redis_prefix)
    handoff = jobs.Handoff(conn)  # the one write an ack makes
    app = App(
        token=config.secret(settings.slack_bot_token) or None,
        signing_secret=config.secret(settings.slack_signing_secret) or None,
        client=web_client(settings),
        token_verification_enabled=token_verification_enabled,
        logger=logging.getLogger("swapbot.slack.bolt"),
        # Our listeners only parse, check and enqueue (about a millisecond), so they run in the
        # request's own thread and the answer leaves as soon as they return. Bolt's default
        # hands them to a 5-thread pool and polls for the ack every 10 ms: a floor under every
        # ack, and a queue when more than five arrive at once.
        process_before_response=True,
        **app_options,
    )

    @app.command(COMMAND)
    def hcswap(ack: Callable[..., None], command: dict[str, Any]) -> None:
        ack(**answer(settings, handoff, command))

    def hand_off(event: dict[str, Any], body: dict[str, Any], func: str) -> BoltResponse | None:
        """Queue an approval emoji's `reaction_added`/`reaction_removed` for the worker; 503
        when Redis would not take it, so that Slack delivers it again."""
        item = event.get("item") or {}
        name = str(event.get("reaction", "")).split("::", 1)[0]  # +1::skin-tone-3 -> +1
        if item.get("type") != "message" or name != settings.swapbot_approval_emoji:
            return None
        event_id = body.get("event_id")
        reaction = {
            "user": event.get("user"),
            "channel": item.get("channel"),
            "ts": item.get("ts"),
            "item_user": event.get("item_user"),
            "event_id": event_id,
            "event_time": float(body.get("event_time") or event.get("event_ts") or 0) or None,
        }
        # The delivery is the key, not what the reaction means: Slack's retries of one event
        # are one job, while a reaction removed and added again is a new event and a new job
        # (the approval itself is granted at most once whatever arrives).
        about = f"{event.get('type')} by {reaction['user']}"
        try:
            if event_id:
                marker = store.key("dedupe", "slack-event", str(event_id))
                jobs.push_once(
                    handoff,
                    settings,
                    marker,
                    EVENT_SEEN_TTL,
                    func,
                    reaction,
                    key=event_id,
                    description=about,
                )
            else:  # never from Slack; nothing to deduplicate on
                jobs.push(handoff, settings, func, reaction, description=about)
        except RedisError as exc:
            log.error(
                "event %s not handed off (%s): left for Slack to deliver again", event_id, exc
            )
            return BoltResponse(status=503, body="")
        return None

    @app.event("reaction_added")
    def reaction_added(event: dict[str, Any], body: dict[str, Any]) -> BoltResponse | None:
        return hand_off(event, body, "swapbot.slack.work.handle_reaction")

    @app.event("reaction_removed")
    def reaction_removed(event: dict[str, Any], body: dict[str, Any]) -> BoltResponse | None:
        return hand_off(event, body, "swapbot.slack.work.handle_reaction_removed")

    return app


def answer(settings: config.Settings, redis: Any, command: dict[str, Any]) -> dict[str, Any]:
    """The acknowledgement of one `/hcswap`: a usage line, a refusal, or "working on it".
    `redis` is where the request is pushed: a `jobs.Handoff`, or a redis-py client."""
    user, channel = command.get("user_id", ""), command.get("channel_id", "")
    text = unescape(command.get("text") or "")
    try:
        cmd = commands.parse(text)
        if cmd.name == "plan" and cmd.action == "new":
            commands.new_plan(cmd, app=settings.heroku_app_name, actor=user)  # pure checks now
    except commands.UsageError as exc:
        return _ephemeral(blocks.usage(str(exc)))
    reason = access.refusal(cmd, user, channel, settings)
    if reason:
        return _ephemeral(blocks.refusal(reason))
    if cmd.kind == "help":
        return _ephemeral(blocks.usage(commands.usage(cmd.args[0]) if cmd.args else commands.HELP))
    try:
        jobs.push(
            redis,
            settings,
            "swapbot.slack.work.run_command",
            text,
            user,
            channel,
            command.get("response_url"),
            time.time(),
            kind=jobs.STEPS if cmd.long_running else jobs.INTERACTIVE,
            key=command.get("trigger_id"),
            description=f"/hcswap {cmd.name} by {user}",
        )
    except RedisError:
        log.error("Redis unreachable: /hcswap %s from %s not queued", cmd.name, user)
        return {
            "text": "swapbot cannot reach its Redis right now, so nothing was queued and "
            "nothing changed. Try again in a minute.",
            "response_type": "ephemeral",
        }
    # Text alone goes back as a plain body: ephemeral, Slack's default for an answer.
    return {"text": f":hourglass_flowing_sand: Working on it: {blocks.escape(cmd.describe())}."}
