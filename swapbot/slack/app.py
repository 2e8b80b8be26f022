"""The Bolt app behind `/hcswap` and its buttons: verify, authorize, acknowledge, enqueue —
nothing else.

Listeners stay plain functions (bolt-python's shape). Bolt's middleware checks signatures and
ignores the bot's own events. Work runs in `swapbot worker` (`swapbot.slack.work`), never on
Bolt's small listener pool or beside the acks: the web process must answer within Slack's 3
seconds whatever the swap is doing.

An event is handed off and marked seen in one Redis operation (`swapbot.slack.handoff`):
Slack's retries of an event already handed off are acknowledged and dropped, and an event whose
handoff failed is answered 503 and left unmarked, so that Slack's retry is taken.

A click on one of swapbot's buttons (`block_actions`) takes the slash command's path: Bolt
checks its signature, it is authorized as the command it stands for (Approve as
`approve REQUEST_ID`, Deny as `deny REQUEST_ID`; the swap card's Run next as the step it names,
Request approval as `request-approval STEP`, Refresh as `status`), acknowledged at once and
queued once (its `trigger_id` marked seen in the same Redis operation, so the same click sent
twice is one job), on the steps queue when the command runs long like a step.
The worker runs it as that command (`swapbot.slack.clicks`). A click refused here, or one Redis
would not take, is acknowledged (an empty 200) and answered privately through its
`response_url` (https://api.slack.com/interactivity/handling#message_responses), a call handed
to a small pool of its own as the listener returns: the acknowledgement never waits on it, and
the two may reach Slack in either order. Slack does not send a click again, so there is nothing
to gain by answering it with an error.

`/hcswap plan new` with no arguments opens the plan as a form (`swapbot.slack.plan_form`): it is
authorized as `plan new`, acknowledged empty, and the modal is opened with its trigger_id right
after; the worker fills it. The Plan a swap button (on `status` with no plan, and on a card
whose swap is over) does the same with the click's trigger_id. The form's field search (`block_suggestion`) is answered here from
what the worker cached in Redis, and its submission (`view_submission`) is checked on its own
here and saved by the worker as the equivalent `plan new`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from redis.exceptions import RedisError
from slack_bolt import App, BoltResponse
from slack_sdk import WebClient

from swapbot import commands, config, jobs
from swapbot.slack import access, blocks, home, plan_form
from swapbot.slack.blocks import card
from swapbot.slack.blocks import plan_form as form
from swapbot.slack.blocks.approvals import ACTIONS
from swapbot.slack.blocks.text import epoch
from swapbot.slack.client import views_client, web_client, webhook
from swapbot.slack.handoff import queue_event
from swapbot.swap import steps as runbook
from swapbot.swap.store import Store

log = logging.getLogger(__name__)

COMMAND = "/hcswap"
CLICK_SEEN_TTL = 3600  # a click's response_url lives 30 minutes; its trigger_id is kept longer

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

    modals = _form_listeners(app, settings, handoff, store)
    opener = views_client(settings)  # one short try: a trigger_id lives 3 seconds

    @app.command(COMMAND)
    def hcswap(ack: Callable[..., None], command: dict[str, Any]) -> None:
        if plan_form.is_form_request(command.get("text") or ""):
            _open_form(ack, opener, modals, settings, handoff, store, command)
        else:
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
        return queue_event(handoff, settings, store, body, func, reaction, about)

    @app.event("reaction_added")
    def reaction_added(event: dict[str, Any], body: dict[str, Any]) -> BoltResponse | None:
        return hand_off(event, body, "swapbot.slack.work.handle_reaction")

    @app.event("reaction_removed")
    def reaction_removed(event: dict[str, Any], body: dict[str, Any]) -> BoltResponse | None:
        return hand_off(event, body, "swapbot.slack.work.handle_reaction_removed")

    # Answers to refused clicks leave on a thread of their own, handed over as the listener
    # returns: the ack never waits on a call to Slack (either may reach Slack first).
    answers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="swapbot-click-answer")

    def clicked(ack: Callable[..., None], body: dict[str, Any]) -> None:
        ack()  # an empty 200: the click is taken, and nothing changes on the message
        said = click(settings, handoff, store, body)
        url = body.get("response_url")
        if said is not None and url:
            answers.submit(_answer_click, str(url), said)

    for action_id in (*ACTIONS, *card.CARD_ACTIONS):
        app.action(action_id)(clicked)
    app.action(re.compile(r"^" + re.escape(card.REQUEST_ACTION) + r":[a-z-]+\Z"))(clicked)  # ahead

    @app.action(card.PLAN_ACTION)
    def plan_clicked(ack: Callable[..., None], body: dict[str, Any]) -> None:
        ack()
        asked = _form_click(body)
        reason = plan_form.refusal(settings, asked["user_id"], asked["channel_id"])
        if reason:
            if asked["response_url"]:
                answers.submit(
                    _answer_click, asked["response_url"], _private(blocks.refusal(reason))
                )
            return
        modals.submit(plan_form.open_form, opener, settings, handoff, store, asked)

    home.register(app, settings, handoff, store)
    return app


def _form_click(body: dict[str, Any]) -> dict[str, Any]:
    """A click on Plan a swap as the `plan new` command it stands for: who, where, and the
    click's trigger_id, which opens the modal as the command's would."""
    user, channel = _who_where(body)
    return {
        "user_id": user,
        "channel_id": channel,
        "trigger_id": str(body.get("trigger_id") or ""),
        "response_url": str(body.get("response_url") or ""),
    }


def _who_where(body: dict[str, Any]) -> tuple[str, str]:
    """Who clicked, and in which channel (the message's), from a `block_actions` payload."""
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
    return str((body.get("user") or {}).get("id") or ""), str(channel)


def _form_listeners(
    app: App, settings: config.Settings, handoff: jobs.Handoff, store: Store
) -> ThreadPoolExecutor:
    """The plan form's listeners: its searches (`block_suggestion`) and its submission
    (`view_submission`). Returns the pool the modals are opened on."""

    def options(ack: Callable[..., None], body: dict[str, Any]) -> None:
        ack(options=plan_form.suggest(store, body))

    for action_id in (form.FIELDS_ACTION, form.OBJECTS_ACTION):  # both searched alike
        app.options(action_id)(options)

    @app.view(form.CALLBACK_ID)
    def plan_submitted(ack: Callable[..., None], body: dict[str, Any]) -> None:
        ack(**plan_form.submitted(settings, handoff, store, body))

    # Modals open off the ack's thread: views.open is a call to Slack, and the ack never waits
    # on one. It still goes at once, well within the trigger_id's 3 seconds, with a client of
    # its own (`views_client`: a 2.5 s timeout, no retries), so a slow Slack holds a thread
    # no longer than the trigger_id could be used.
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="swapbot-modal")


def _open_form(
    ack: Callable[..., None],
    client: WebClient,
    modals: ThreadPoolExecutor,
    settings: config.Settings,
    handoff: jobs.Handoff,
    store: Store,
    command: dict[str, Any],
) -> None:
    """`plan new` without arguments: refused as `plan new` would be, else acknowledged empty
    (the modal is the answer) and the modal opened right after."""
    user, channel = str(command.get("user_id", "")), str(command.get("channel_id", ""))
    reason = plan_form.refusal(settings, user, channel)
    if reason:
        ack(**_ephemeral(blocks.refusal(reason)))
        return
    ack()
    modals.submit(plan_form.open_form, client, settings, handoff, store, command)


def click(
    settings: config.Settings, redis: Any, store: Store, body: dict[str, Any]
) -> dict[str, Any] | None:
    """Authorize one click on a swapbot button as the command it stands for and queue it, once:
    None when queued (or already queued: the same click again), else the private answer to send
    to its response_url (a refusal, or Redis out of reach)."""
    user, channel = _who_where(body)
    container = body.get("container") or {}
    action = (body.get("actions") or [{}])[0]
    action_id = str(action.get("action_id") or "")
    try:
        text, extra = _click_command(action_id, str(action.get("value") or ""))
        cmd = commands.parse(text)
    except commands.UsageError as exc:
        return _private(blocks.usage(str(exc)))
    reason = access.refusal(cmd, user, channel, settings)
    if reason:
        return _private(blocks.refusal(reason))
    action_ts = str(action.get("action_ts") or "")
    # Slack makes a trigger_id per interaction; without one, the click is who, what and when.
    key = str(body.get("trigger_id") or f"{action_ts}:{user}:{action_id}")
    request = {
        "text": text,
        "user": user,
        "channel": channel,
        "ts": (body.get("message") or {}).get("ts") or container.get("message_ts"),
        "response_url": body.get("response_url"),
        "action_ts": epoch(action_ts),
        **extra,
    }
    try:
        jobs.push_once(
            redis,
            settings,
            store.key("dedupe", "slack-click", key),
            CLICK_SEEN_TTL,
            "swapbot.slack.clicks.handle_click",
            request,
            # A step's click runs as long as the typed step would: on the steps queue.
            kind=jobs.STEPS if cmd.long_running else jobs.INTERACTIVE,
            key=key,
            description=f"{cmd.name} button by {user}",
        )
    except RedisError:
        log.error("Redis unreachable: the %s button of %s not queued", cmd.name, user)
        return {
            "text": "swapbot cannot reach its Redis right now, so your click was not taken and "
            "nothing changed. Click again in a minute.",
            "response_type": "ephemeral",
            "replace_original": False,
        }
    return None


def _click_command(action_id: str, value: str) -> tuple[str, dict[str, Any]]:
    """The command a button stands for, authorized as such, and what the worker needs beside
    it: Approve and Deny are `approve`/`deny REQUEST_ID`; the card's Run next is the step it
    names, Request approval `request-approval STEP` (both values also carry the plan
    fingerprint, which the worker checks against the live plan), Refresh a read (`status`).
    UsageError for a button that names no such command."""
    if action_id in ACTIONS:
        return f"{ACTIONS[action_id]} {value}".strip(), {}
    if action_id == card.NEXT_ACTION:
        step, fingerprint = card.parse_next_value(value)
        if step not in runbook.BY_NAME:
            raise commands.UsageError(f"that button names no step of the runbook ({step!r})")
        return step, {"card": {"action": "next", "step": step, "fingerprint": fingerprint}}
    if card.is_request(action_id):
        step, fingerprint = card.parse_next_value(value)
        if step not in runbook.APPROVED:
            raise commands.UsageError(f"that button names no step that needs approval ({step!r})")
        on_card = {"action": "request-approval", "step": step, "fingerprint": fingerprint}
        return f"request-approval {step}", {"card": on_card}
    if action_id == card.REFRESH_ACTION:
        return "status", {"card": {"action": "refresh"}}
    raise commands.UsageError(f"unknown button {action_id!r}")


def _private(rendered: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """An answer to a click that only the person who clicked sees, beside the message."""
    return _ephemeral(rendered) | {"replace_original": False}


def _answer_click(response_url: str, said: dict[str, Any]) -> None:
    """Send a click's private answer (a refusal) to its response_url; a failure is logged (the
    URL never: it is a bearer capability)."""
    try:
        resp = webhook(response_url).send_dict(said)
        if resp.status_code != 200:
            log.warning("a click's answer was not taken: HTTP %s", resp.status_code)
    except Exception as exc:
        log.warning("could not answer a click: %s", type(exc).__name__)


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
