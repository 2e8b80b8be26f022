"""What `swapbot worker` does for Slack: run a queued `/hcswap` command or approval reaction on
the engine, and answer the person who asked.

The commands are the terminal's (`swapbot.commands`); this module only renders their
replies for Slack and delivers them. What happens to the swap reaches the channel through the
engine's events and the notifier, whichever process ran the step.

No job raises to rq without having answered: whatever fails (Heroku answering 503, Redis,
PostgreSQL, a bug) is logged with its traceback and told to the person in one line, secrets
masked — a failed command also to the swap's thread, a failed reaction with what to do next.

An answer is whole: a long one (a report, a dry run's calls) goes in as many messages as it
takes. It goes through the command's response_url while Slack honours it (30 minutes, five
messages); otherwise as ephemeral messages, which Slack does not promise to deliver and which
are gone on a reload, so the answer to a command that changes something then also goes to the
swap's thread (https://docs.slack.dev/reference/methods/chat.postEphemeral). `answer` does
this for a typed command and for a click (`swapbot.slack.clicks`) alike; the plan form's save,
which has no response_url, is answered in its modal (`run_command(told=…)`), and privately
only when the modal is gone.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from swapbot import commands, config
from swapbot.logs import SecretFilter, secrets_of
from swapbot.slack import blocks
from swapbot.slack.client import membership, web_client, webhook
from swapbot.slack.notifier import ApprovalMessages, thread_of
from swapbot.swap.approvals import Verdict
from swapbot.swap.engine import Engine
from swapbot.swap.outcome import Interrupted
from swapbot.swap.store import Store
from swapbot.swap.views import Status

log = logging.getLogger(__name__)

RESPONSE_URL_LIFETIME = 29 * 60  # Slack honours a response_url for 30 minutes


_built: dict[tuple[int, str], tuple[WebClient, Engine]] = {}


def context() -> tuple[config.Settings, WebClient, Engine]:
    """The settings, and the Slack client and engine built from them once per process: each
    job then reuses their connections (Redis, Heroku's APIs) instead of opening its own. A job
    used to open a Redis connection of its own, which over TLS to Heroku Redis is a handshake
    per status. Keyed by the process and the settings: a forked work-horse never shares its
    parent's sockets, and changed settings get a new engine."""
    from swapbot.runtime import build_engine

    settings = config.load_settings()
    key = (os.getpid(), config.fingerprint(settings))
    if key not in _built:
        _built.clear()  # at most one: the settings of this process, now
        _built[key] = (web_client(settings), build_engine(settings))
    return (settings, *_built[key])


def run_command(
    text: str,
    user: str,
    channel: str,
    response_url: str | None,
    queued_at: float | None = None,
    *,
    thread_fallback: bool = True,
    told: Told | None = None,
) -> dict[str, Any]:
    """Run one `/hcswap` command for `user` and answer them; returns what was answered.
    Never raises: whatever fails is answered, logged and noted in the swap's thread.
    `thread_fallback=False` (the plan form's save): an answer that could not go through the
    response_url is not copied to the swap's thread, and a refusal is noted there only when
    the swap's thread exists. `told` (the plan form's save) answers first, in its own way
    (in the form): when it says it did, nothing else is said."""
    asked = Asked(user, channel, response_url, queued_at or time.time(), text)
    settings: config.Settings | None = None
    client: WebClient | None = None
    engine: Engine | None = None
    cmd: commands.Command | None = None
    try:
        cmd = commands.parse(text)  # parsed once already before the ack: this cannot fail now
        settings, client, engine = context()
        if cmd.name == "status":
            snapshot = status_snapshot(engine, settings)
            reply = commands.Reply(cmd, "ok", document=snapshot)
            doc = snapshot.model_copy(
                update={
                    "bot_in_channel": in_channel(engine.store, client, settings.swapbot_channel)
                }
            )
            # Slack shows a summary; every mapping is in the terminal's JSON (a one-off dyno).
            pages = [blocks.status_message(doc, detail_hint=blocks.DETAIL_HINT)]
        else:
            reply = commands.execute(engine, cmd, user, app=settings.heroku_app_name)
            pages = None
    except (Exception, Interrupted) as exc:  # a stop outside the engine is answered too
        log.exception("/hcswap %s by %s failed", text, user)
        reason = why(exc, settings)
        message = _FAILED.format(why=reason)
        if client is None:
            settings, client = answerer()
        failed = commands.Reply(cmd, "failed", message) if cmd is not None else None
        if not (told and client and failed and _told(told, client, engine, failed)):
            rendered = blocks.reply(
                {"command": asked.label, "status": "failed", "message": message, "people": [user]}
            )
            since = time.time() - asked.since
            deliver_or_log(client, response_url, channel, user, rendered, since)
        if engine is not None and cmd is not None and cmd.changes_something:
            notice(engine, None, cmd, user, f"{asked.subject} by {user}: failed: {reason}")
        return {"status": "failed", "message": "failed: " + message}
    if told is None or not _told(told, client, engine, reply):
        answer(client, engine, settings, asked, cmd, reply, pages, thread_fallback=thread_fallback)
    return {"status": reply.status, "message": reply.message}


def _told(told: Told, client: WebClient, engine: Engine | None, reply: commands.Reply) -> bool:
    """`told(…)`, False (answered as any other reply) when it fails: a job never raises."""
    try:
        return told(client, engine, reply)
    except Exception:
        log.exception("the answer could not be given its own way; answering as usual")
        return False


# Answers a command's reply in a way of its own (the plan form: in the modal), with the engine
# when there is one; False when it could not, and the reply is then answered as any other.
Told = Callable[[WebClient, Engine | None, commands.Reply], bool]


@dataclass(frozen=True)
class Asked:
    """Who asked for a command, where, and how to answer them: a typed `/hcswap` or a click."""

    user: str
    channel: str
    response_url: str | None
    since: float  # when they asked: Slack honours the response_url for 30 minutes from it
    text: str  # the command's words, e.g. "pause" or "approve pause-3"
    clicked: bool = False  # a button's click, not a typed command

    @property
    def label(self) -> str:
        """The command as its answer names it: "/hcswap pause", or a button's "Approve pause-3"."""
        return self.text[:1].upper() + self.text[1:] if self.clicked else f"/hcswap {self.text}"

    @property
    def subject(self) -> str:
        """The command as the thread names it; what was typed is code, so it never pings."""
        if self.clicked:
            return f"{self.label} button"
        return f"`/hcswap {_typed(self.text)}`"

    @property
    def how(self) -> str:
        """How they asked, for the note above a copy of the answer in the thread."""
        if self.clicked:
            return f"who clicked *{blocks.escape(self.label)}*"
        return f"who typed `/hcswap {blocks.escape(_typed(self.text))}`"


def _typed(text: str) -> str:
    return text[:200].replace("`", "'")  # a backtick would end the code


def answer(
    client: WebClient | None,
    engine: Engine,
    settings: config.Settings,
    asked: Asked,
    cmd: commands.Command,
    reply: commands.Reply,
    pages: list[Rendered] | None = None,
    *,
    thread_fallback: bool = True,
    note_refusal: bool = True,
) -> str | None:
    """Answer a command that ran (typed or clicked), whole: `pages`, or its reply rendered with
    `reply_pages`, through the response_url while Slack honours it, else as ephemeral messages.
    A command that changes something and was not answered by the response_url (too late, or
    refused) is also answered in the swap's thread (`thread_fallback`), and a refusal or a
    failure is noted there (`note_refusal`) unless the thread has the whole answer already;
    without `thread_fallback`, only when the swap's thread exists. How it was delivered, or
    None (logged) when it could not be."""
    if pages is None:
        pages = blocks.reply_pages(
            {
                "command": asked.label,
                "status": reply.status,
                "message": reply.message,
                "calls": reply.calls,
                "text": reply.text if cmd.answers_with_text else "",
                "people": [asked.user],
            }
        )
    fresh = time.time() - asked.since
    how = deliver_or_log(client, asked.response_url, asked.channel, asked.user, pages, fresh)
    in_thread = False
    if client is not None and thread_fallback and cmd.changes_something and how != BY_RESPONSE_URL:
        # A step's or a rollback's answer that came too late for the response_url (30
        # minutes), or that it refused, went as ephemeral messages: Slack does not promise to
        # deliver those, and they are gone on a reload. The swap's thread keeps it.
        in_thread = to_thread(client, engine.store, settings, reply.swap_id, asked, pages)
    told = note_refusal and cmd.changes_something and reply.status in ("refused", "failed")
    # The thread hears of refusals too: the team sees who tried what, and why it stopped (not
    # when it has the whole answer already; without the fallback, only into a thread).
    if (
        told
        and reply.swap_id
        and not in_thread
        and (thread_fallback or _has_thread(engine.store, reply.swap_id))
    ):
        line = f"{asked.subject} by {asked.user}: {reply.status}: {reply.message}"
        notice(engine, reply.swap_id, cmd, asked.user, line)
    return how


def _has_thread(store: Store, swap_id: str) -> bool:
    try:
        return thread_of(store, swap_id) is not None
    except Exception as exc:  # Redis: the refusal stays the person's alone
        log.warning("could not look for the thread of %s: %s", swap_id, exc)
        return False


_FAILED = "{why}; nothing else was done; `/hcswap status` shows where the swap stands"


def why(exc: BaseException, settings: config.Settings | None) -> str:
    """What failed, for a person: one line, secrets masked as in the logs, not too long."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return _masked(f"{type(exc).__name__}: {first}" if first else type(exc).__name__, settings)


def _masked(text: str, settings: config.Settings | None) -> str:
    text = SecretFilter(secrets_of(settings) if settings else []).mask(" ".join(text.split()))
    return text if len(text) <= 300 else text[:299] + "…"


def answerer() -> tuple[config.Settings | None, WebClient | None]:
    """Settings and a Slack client to say that a job failed when `context` itself failed."""
    try:
        settings = config.load_settings()
    except Exception:
        log.exception("no settings: cannot answer")
        return None, None
    try:
        return settings, web_client(settings)
    except Exception:
        log.exception("no Slack client: cannot answer")
        return settings, None


Rendered = tuple[str, list[dict[str, Any]]]
BY_RESPONSE_URL, EPHEMERAL = "response_url", "ephemeral"


def deliver_or_log(
    client: WebClient | None,
    response_url: str | None,
    channel: str,
    user: str,
    rendered: Rendered | list[Rendered],
    fresh: float,
) -> str | None:
    """Answer (`deliver`); how it went (BY_RESPONSE_URL or EPHEMERAL), or None (logged) when
    it could not."""
    if client is None:
        log.error("could not answer %s: no Slack client", user)
        return None
    try:
        return deliver(client, response_url, channel, user, rendered, fresh=fresh)
    except Exception:
        log.exception("could not answer %s", user)
        return None


def to_thread(
    client: WebClient,
    store: Store,
    settings: config.Settings,
    swap_id: str | None,
    asked: Asked,
    pages: list[Rendered],
) -> bool:
    """Post a command's answer in its swap's thread (the channel itself before the thread is
    started), naming the person who asked; False (logged) if it could not."""
    channel = settings.swapbot_channel
    swap_id = swap_id or store.current_swap()
    if not channel or not swap_id:
        return False
    mention = blocks.mention(asked.user)
    note = f"For {mention}, {asked.how}: the answer is here too, as a private one may not arrive"
    try:
        thread = thread_of(store, swap_id)
        for part, (fallback, blks) in enumerate(pages):
            if part == 0:
                fallback = blocks._cut_mrkdwn(f"{mention}: {fallback}", blocks.MAX_FALLBACK)
                blks = [_note_block(note), *blks]
            client.chat_postMessage(channel=channel, thread_ts=thread, text=fallback, blocks=blks)
        return True
    except Exception as exc:  # Slack's errors, or its connection's: said in the log instead
        log.warning("could not post the answer to %s in the thread: %s", asked.user, exc)
        return False


def _note_block(text: str) -> dict[str, Any]:
    return {
        "type": "context",
        "block_id": "answer-for",
        "elements": [{"type": "mrkdwn", "text": text, "verbatim": True}],
    }


def notice(
    engine: Engine, swap_id: str | None, cmd: commands.Command, user: str, message: str
) -> None:
    """Tell the swap's thread (the current swap's, without `swap_id`) what became of a command."""
    try:
        swap_id = swap_id or engine.store.current_swap()
        if swap_id:
            step = cmd.name if cmd.name != "plan" else None
            engine.emit("notice", swap_id, step=step, actor=user, message=message)
    except Exception:
        log.exception("could not tell the thread: %s", message)


STATUS_TTL_MS = 2000  # twenty people asking at once cost one look at Heroku Connect


def snapshot_key(store: Store) -> str:
    """Where the latest `status` document is kept, for `STATUS_TTL_MS`."""
    return store.key("status", "snapshot")


def status_snapshot(engine: Engine, settings: config.Settings) -> Status:
    """`status`'s document, at most two seconds old: a look at 300 mappings costs the API
    and the worker far more than rendering it again. A snapshot this version cannot read
    (one written by an older release during a deploy) is looked at again."""
    key = snapshot_key(engine.store)
    cached = engine.store.redis.get(key)
    if cached is not None:
        try:
            return Status.model_validate_json(cached)
        except ValidationError:
            log.warning("status snapshot unreadable: looking again")
    doc = commands.status(engine, settings.heroku_app_name)
    engine.store.redis.set(key, doc.model_dump_json(), px=STATUS_TTL_MS)
    return doc


MEMBERSHIP_TTL = 60  # seconds; conversations.info allows about 50 calls a minute


def in_channel(store: Store, client: WebClient, channel: str | None) -> bool | None:
    """Is the bot in the swap channel, as Slack said within the last minute? (`status` asks
    often; Slack's limit on the question is low.) Unknown answers are not kept."""
    key = store.key("slack", "in-channel", channel or "-")
    cached = store.redis.get(key)
    if cached is not None:
        return cached == b"1"
    member = membership(client, channel)[0]
    if member is not None:
        store.redis.set(key, "1" if member else "0", ex=MEMBERSHIP_TTL)
    return member


def handle_reaction(reaction: dict[str, Any]) -> dict[str, Any]:
    """An approval emoji was added to a message: approve the request it asks for, or say why not.
    Never raises: an approval that could not be recorded is said to the approver."""
    user, channel, ts = reaction["user"], reaction["channel"], reaction["ts"]
    settings: config.Settings | None = None
    client: WebClient | None = None
    request_id: str | None = None
    try:
        settings, client, engine = context()
        found = ApprovalMessages(engine.store).request_for(channel, ts)
        if found is None:
            if reaction.get("item_user") and reaction["item_user"] != _bot_user(client):
                return {"status": "ignored", "message": "a reaction on someone else's message"}
            reason = (
                "That message does not ask for an approval. React on the approval request itself."
            )
            _tell(client, channel, user, reason, thread_ts=ts)
            return {"status": "refused", "message": reason}
        swap_id, request_id = found
        plan = engine.current_plan()
        if plan is None or plan.swap_id != swap_id:
            reason = f"That approval belongs to swap {swap_id}, which is not the current swap."
            _tell(client, channel, user, reason, thread_ts=ts)
            return {"status": "refused", "message": reason}
        outcome = engine.approve(request_id, user, at=reaction.get("event_time"))
    except Exception as exc:
        log.exception("the reaction of %s on %s %s was not recorded", user, channel, ts)
        if client is None:
            settings, client = answerer()
        return _not_recorded(client, reaction, request_id, why(exc, settings))
    if outcome.status == "failed":  # the engine caught what failed: the same answer
        return _not_recorded(client, reaction, request_id, _masked(outcome.message, settings))
    if outcome.status != "done":
        _tell(client, channel, user, f"Your approval was not taken: {outcome.message}", ts)
    return {"status": outcome.status, "message": outcome.message}


def _not_recorded(
    client: WebClient | None, reaction: dict[str, Any], request_id: str | None, why: str
) -> dict[str, Any]:
    what = request_id or "that request"
    text = (
        f"Your approval of {what} could not be recorded: {why}; "
        "remove the reaction and add it again."
    )
    if client is not None:
        _tell(client, reaction["channel"], reaction["user"], text, thread_ts=reaction["ts"])
    return {"status": "failed", "message": text}


def handle_reaction_removed(reaction: dict[str, Any]) -> dict[str, Any]:
    """An approval emoji was removed from a message: if it was the approval of the person who
    granted it, and no step has used it yet, withdraw it (the request waits for a second person
    again). Anyone else's removed reaction changes nothing. Never raises."""
    user, channel, ts = reaction["user"], reaction["channel"], reaction["ts"]
    settings: config.Settings | None = None
    client: WebClient | None = None
    request_id: str | None = None
    try:
        settings, client, engine = context()
        found = ApprovalMessages(engine.store).request_for(channel, ts)
        if found is None:
            return {"status": "ignored", "message": "not an approval request"}
        swap_id, request_id = found
        result = engine.approvals.withdraw(swap_id, request_id, user)
        if result.withdrawn:
            step = result.request.step if result.request else None
            engine.emit(
                "approval.withdrawn",
                swap_id,
                step=step,
                actor=user,
                message=result.reason,
                request_id=request_id,
            )
            return {"status": "done", "message": result.reason}
    except Exception as exc:
        log.exception("the removed reaction of %s on %s %s was not recorded", user, channel, ts)
        if client is None:
            settings, client = answerer()
        what = request_id or "that request"
        text = (
            f"Your withdrawal of the approval of {what} could not be recorded: "
            f"{why(exc, settings)}; the approval still stands. Add the reaction and remove it "
            "again to withdraw it."
        )
        if client is not None:
            _tell(client, channel, user, text, thread_ts=ts)
        return {"status": "failed", "message": text}
    if result.verdict is Verdict.ALREADY_USED:
        text = f"Your approval was not withdrawn: {result.reason}."
        _tell(client, channel, user, text, thread_ts=ts)
        return {"status": "refused", "message": result.reason}
    return {"status": "ignored", "message": result.reason}


def _bot_user(client: WebClient) -> str | None:
    try:
        return client.auth_test().get("user_id")
    except (SlackApiError, SlackClientError):
        return None


def _tell(client: WebClient, channel: str, user: str, text: str, thread_ts: str | None) -> None:
    rendered = blocks.refusal(text, people=[user])
    try:
        client.chat_postEphemeral(
            channel=channel, user=user, text=rendered[0], blocks=rendered[1], thread_ts=thread_ts
        )
    except Exception as exc:  # Slack's errors, or its connection's: said in the log instead
        log.warning("could not tell %s: %s", user, exc)


RESPONSE_URL_USES = 5  # Slack takes at most five answers through one response_url


def deliver(
    client: WebClient,
    response_url: str | None,
    channel: str,
    user: str,
    rendered: Rendered | list[Rendered],
    *,
    fresh: float = 0.0,
) -> str:
    """Answer the person who typed the command, every message of it (`rendered` is one or a
    list, e.g. a long report's parts): through its response_url while Slack honours it (and
    for at most five messages), the rest as ephemeral messages in the channel. Returns
    BY_RESPONSE_URL when all went through the response_url, else EPHEMERAL."""
    pages = rendered if isinstance(rendered, list) else [rendered]
    sent = 0
    if response_url and fresh < RESPONSE_URL_LIFETIME:
        sent = _by_response_url(response_url, pages[:RESPONSE_URL_USES])
    for text, blks in pages[sent:]:
        client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blks)
    return BY_RESPONSE_URL if sent == len(pages) else EPHEMERAL


def _by_response_url(response_url: str, pages: list[Rendered]) -> int:
    """Send `pages` through the response_url, in order, until one is not taken; how many were."""
    hook = webhook(response_url)
    for sent, (text, blks) in enumerate(pages):
        try:
            resp = hook.send(
                text=text, blocks=blks, response_type="ephemeral", replace_original=False
            )
        except SlackClientError as exc:
            log.warning("response_url failed (%s); answering in the channel", exc)
            return sent
        if resp.status_code != 200:
            log.warning("response_url answered %s; answering in the channel", resp.status_code)
            return sent
    return len(pages)
