"""The channel notifier: follows a swap's event stream in Redis and tells the channel.

One thread per swap. Milestones (a step done or failed, approvals, the outage, rollback) are
new replies, the important ones also sent to the channel, and the swap's report follows the
last one, whole, in as many replies as it takes. The phase, the step running (or the last done
and the next), who a waiting step waits on, pending approvals and their expiry, load progress,
ETA, backlog and the outage's clock live in one message, the swap's live card, edited in place
no more often than `min_edit_interval`. It is posted in the channel as soon as the notifier
follows the swap (its plan saved), and it is the first message of the swap's thread: the
channel sees the card, the milestones go below it. It carries its buttons (`blocks.card`: Run
next, Request approval, Refresh; Plan a swap once the swap is over), is drawn from the swap's
record as well as from the events, so it is right after a restart too, is drawn again on every
step, outage and approval event, and while the outage runs every `outage_tick` so that its
clock runs. A click on Refresh (`request_redraw`) draws it again on the next round. Only one
notifier leads across processes and dynos (a leader lease, renewed while it waits on Slack).

The channel never drops a milestone. Every message is sent until Slack takes it, in order, and
no sooner than `min_post_interval` after the previous call (Slack asks for about one message a
second per channel):

- Slack's own trouble (HTTP 5xx, 429 `ratelimited`, `service_unavailable`, ...) and the
  network's (timeouts, resets) are retried after Slack's Retry-After, else after a backoff
  doubling up to `max_backoff`.
- Trouble a person must fix (the bot not in the channel, the channel archived, the token
  revoked) is retried every `max_backoff` seconds with a warning each time: late, not lost.
- A payload Slack refuses as such (`invalid_blocks`, `msg_too_long`) is sent again as plain
  text; only a message refused even as plain text is logged and passed over.

The cursor in the stream moves after each message Slack took, past the events that message
covers and never further. So a restart repeats at most the last message: the one taken just
before the cursor could move. A post whose answer was lost (a timeout after Slack took it) is
sent again too, and shows twice. Progress edits alone are tried once: the next one carries
newer figures, and a failed edit never holds up a milestone.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from swapbot.slack import blocks
from swapbot.swap import record as swaprecord
from swapbot.swap import steps as runbook
from swapbot.swap.approvals import ApprovalRequest, Approvals, ApprovalStatus
from swapbot.swap.events import Event
from swapbot.swap.plan import Plan
from swapbot.swap.store import Checkpoint, Lease, Store, as_text

log = logging.getLogger(__name__)

PROGRESS_KINDS = {"load.progress", "backlog", "state.changed"}
# What else the progress message shows: the phase, the step running (or the last done and the
# next), the outage's clock.
STANDING_KINDS = {
    "step.started",
    "step.waiting",
    "step.done",
    "step.skipped",
    "step.failed",
    "outage.started",
    "outage.ended",
    "rollback.started",
    "rollback.done",
    "swap.done",
}
# The swap's records the progress message reads: they outlive this process and are never late.
OUTAGE_STARTED, OUTAGE_ENDED = "outage_started_at", "outage_ended_at"
# Each updates the approval message in place to show the request as it stands now.
APPROVAL_UPDATES = {
    "approval.granted",
    "approval.expired",
    "approval.withdrawn",
    "approval.denied",
}

# What a failed call can raise: SlackApiError for an answer (any HTTP status), the others when
# no answer came (slack_sdk lets URLError, timeouts and resets through as they are).
CALL_ERRORS = (SlackClientError, OSError, http.client.HTTPException)
# Slack's own trouble, said in an answer: the same call succeeds later.
TRANSIENT_ERRORS = {
    "ratelimited",
    "service_unavailable",
    "fatal_error",
    "internal_error",
    "request_timeout",
}
# Trouble a person fixes (invite the bot, unarchive the channel, renew the token).
SETUP_ERRORS = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "missing_scope",
}
RETRY, WAIT, REFUSED = "retry", "wait", "refused"


def _summary(step: str | None) -> str:
    s = runbook.BY_NAME.get(step or "")
    return s.summary if s else (step or "")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def _verdict(exc: Exception) -> tuple[str, float | None]:
    """What a failed call calls for, with Slack's Retry-After (seconds) when it gave one:
    RETRY (Slack's or the network's trouble), WAIT (a person must fix something) or REFUSED
    (Slack judged the payload: the same call can never succeed). Slack answers its verdicts on
    a payload with HTTP 200, so any other status is not one."""
    if not isinstance(exc, SlackApiError):
        return RETRY, None
    status, error = exc.response.status_code, _error(exc)
    if status == 429 or status >= 500 or error in TRANSIENT_ERRORS:
        return RETRY, _retry_after(exc.response.headers)
    if error in SETUP_ERRORS or status != 200:
        return WAIT, None
    return REFUSED, None


def _error(exc: SlackApiError) -> str:
    data = exc.response.data
    return str(data.get("error") or "") if isinstance(data, Mapping) else ""


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def _describe(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return f"HTTP {exc.response.status_code} {_error(exc) or 'no error given'}"
    return f"{type(exc).__name__}: {exc}"


class _Interrupted(Exception):
    """The round ends early, its cursor where it is: the notifier stops or lost its lease."""


class _Refused(Exception):
    """Slack refused this payload for good."""


@dataclass
class _Batch:
    """The events of one round: the milestone lines gathered and not yet said, and how far
    the stream is handled and said."""

    cursor_key: str
    lines: list[str] = field(default_factory=list)
    handled: str | None = None  # the last event handled
    seen: int = 0  # events handled
    said: int = 0  # of those, events whose messages Slack took


def thread_of(store: Store, swap_id: str) -> str | None:
    """The ts of the swap's thread in the channel, once the notifier has started it."""
    return as_text(store.redis.get(store.swap_key(swap_id, "slack", "thread")))


class ApprovalMessages:
    """Which Slack message asks for which approval, both ways (the notifier writes, the worker
    reads when a reaction arrives)."""

    def __init__(self, store: Store):
        self.store = store

    def _by_message(self, channel: str, ts: str) -> str:
        return self.store.key("slack", "approval-message", channel, ts)

    def remember(self, swap_id: str, request_id: str, channel: str, ts: str) -> None:
        r = self.store.redis
        with r.pipeline(transaction=True) as pipe:
            pipe.set(self._by_message(channel, ts), json.dumps([swap_id, request_id]))
            pipe.hset(self.store.swap_key(swap_id, "slack", "approvals"), request_id, ts)
            pipe.execute()

    def request_for(self, channel: str, ts: str) -> tuple[str, str] | None:
        raw = as_text(self.store.redis.get(self._by_message(channel, ts)))
        if not raw:
            return None
        swap_id, request_id = json.loads(raw)
        return str(swap_id), str(request_id)

    def message_for(self, swap_id: str, request_id: str) -> str | None:
        return as_text(
            self.store.redis.hget(self.store.swap_key(swap_id, "slack", "approvals"), request_id)
        )


class ChannelNotifier:
    """Tells `channel` what the current swap's events say (see the module's docstring).
    `clock` dates the messages and times the edits and the pace; the waits themselves are in
    real time, so with a clock that stands still each call waits `min_post_interval`."""

    def __init__(
        self,
        store: Store,
        client: WebClient,
        channel: str,
        *,
        approval_emoji: str = "white_check_mark",
        min_edit_interval: float = 3.0,
        min_post_interval: float = 1.0,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.time,
        runner: str = "notifier",
        outage_tick: float = 15.0,
    ):
        self.store, self.client, self.channel = store, client, channel
        self.approvals = Approvals(store)
        self.messages = ApprovalMessages(store)
        self.emoji = approval_emoji
        self.min_edit_interval = min_edit_interval
        self.min_post_interval = min_post_interval
        self.max_backoff = max_backoff
        self.clock = clock
        self.runner = runner
        self.outage_tick = outage_tick
        self._outage_open: dict[str, bool] = {}  # the outage runs: its clock is kept running
        self._progress: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self._last_edit: dict[str, float] = {}
        self._not_before = 0.0  # by `clock`: no call to Slack before then (pace, Retry-After)
        self._lease: Lease | None = None
        self._renewed = 0.0  # time.monotonic() of the last renewal: the lease is in real time
        self._stop = threading.Event()

    # -- the loop ---------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self, *, block_ms: int = 500, lease_ttl_ms: int = 15_000) -> None:
        while not self._stop.is_set():
            if not self._lead(lease_ttl_ms):
                self._stop.wait(1.0)
                continue
            try:
                self.pump(block_ms=block_ms)
            except Exception:
                log.exception("notifier round failed")
                self._stop.wait(1.0)
        if self._lease is not None:
            self.store.release(self._lease)
            self._lease = None

    def _lead(self, ttl_ms: int) -> bool:
        """Hold the leader lease: renew ours, or take it if nobody holds it."""
        if self._lease is None or not self.store.renew(self._lease, ttl_ms):
            self._lease = self.store.acquire_leader(self.runner, ttl_ms, role="notifier")
        self._renewed = time.monotonic()
        return self._lease is not None

    def _keep_lease(self) -> None:
        """Renew the lease once a third of it has passed; losing it ends the round."""
        lease = self._lease
        if lease is None or time.monotonic() - self._renewed < lease.ttl_ms / 3000:
            return
        if not self.store.renew(lease):
            self._lease = None
            raise _Interrupted("the notifier lost its leader lease")
        self._renewed = time.monotonic()

    def _wait(self, seconds: float) -> None:
        """Sleep `seconds`, keeping the lease; `stop()` or a lost lease ends the round."""
        end = time.monotonic() + seconds
        while True:
            if self._stop.is_set():
                raise _Interrupted("the notifier is stopping")
            self._keep_lease()
            left = end - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, self._lease.ttl_ms / 3000 if self._lease else left))

    def pump(self, *, block_ms: int | None = None) -> int:
        """Deliver what the current swap's stream holds past our cursor; returns how many
        events Slack has taken the messages of (all read, unless the round ended early).

        When another swap became current (a rollback, then a new plan), the one the channel
        was following is finished first: its milestones still waiting are posted, not dropped.
        """
        swap_id = self.store.current_swap()
        following_key = self.store.key("slack", "following")
        following = as_text(self.store.redis.get(following_key))
        said = 0
        if following and following != swap_id:
            taken, drained = self._pump_swap(following, block_ms=None)
            said += taken
            if not drained:
                return said
        if swap_id is None:
            # Nothing to read from, so wait as the read would have: without it, `run` between
            # swaps renewed its lease and asked for the swap thousands of times a second.
            if block_ms:
                self._stop.wait(block_ms / 1000)
            return said
        if following != swap_id:
            self.store.redis.set(following_key, swap_id)
        return said + self._pump_swap(swap_id, block_ms=block_ms)[0]

    def _pump_swap(self, swap_id: str, *, block_ms: int | None) -> tuple[int, bool]:
        """One round on one swap's stream: (events whose messages Slack took, whether the
        stream is now said to its end)."""
        batch = _Batch(self.store.swap_key(swap_id, "slack", "cursor"))
        cursor = as_text(self.store.redis.get(batch.cursor_key)) or "0-0"
        read = 0
        try:
            for published in self.store.read_events(swap_id, cursor, block_ms=block_ms, count=200):
                read += 1
                self._handle_one(swap_id, published, batch)
                batch.handled, batch.seen = published.id, batch.seen + 1
                self._commit(batch)
            self._say(swap_id, batch)
            self._flush_progress(swap_id)
        except _Interrupted as why:
            log.info("notifier round ended early: %s", why)
            return batch.said, False
        return batch.said, read < 200

    def _handle_one(self, swap_id: str, published: Any, batch: _Batch) -> None:
        """Handle one event; one that cannot be rendered (a bug, a record gone) is logged and
        passed over rather than holding up every milestone after it. Redis trouble is not: the
        round ends and the event is taken again."""
        try:
            self._handle(swap_id, Event.model_validate(published.event), batch)
        except (_Interrupted, redis.RedisError):
            raise
        except Exception:
            log.exception(
                "passing over event %s of swap %s: it cannot be told", published.id, swap_id
            )

    def _commit(self, batch: _Batch) -> None:
        """Move the cursor past the events handled, once Slack took all they said."""
        if batch.lines or batch.handled is None or batch.said == batch.seen:
            return
        self.store.redis.set(batch.cursor_key, batch.handled)
        batch.said = batch.seen

    # -- events -----------------------------------------------------------------------------
    def _handle(self, swap_id: str, event: Event, batch: _Batch) -> None:
        kind = event.kind
        if kind == "call":
            return  # a dry run's listing goes to the requester, not the channel
        if kind in PROGRESS_KINDS or kind in STANDING_KINDS:
            self._note_progress(swap_id, event)
            if kind in PROGRESS_KINDS:
                return
        if kind == "step.started":
            step = runbook.BY_NAME.get(event.step or "")
            if step is None or not step.in_outage:
                return  # prep steps report when done; inside the outage every start counts
        if kind == "approval.requested" or kind in APPROVAL_UPDATES:
            self._dirty.add(swap_id)  # the card lists the pending ones and offers the rest
        if kind == "approval.requested":
            self._say(swap_id, batch)
            if self._post_approval(swap_id, event):
                return  # else an unknown request: the milestone line says what it can
        if kind in APPROVAL_UPDATES:
            self._say(swap_id, batch)
            self._update_approval(swap_id, event)
        line = blocks.milestone(event, self._people(swap_id, event))
        if blocks.is_broadcast(event):
            self._say(swap_id, batch)
            self._post(swap_id, line, broadcast=True)
        else:
            batch.lines.append(line)
        if kind == "swap.done":
            self._say(swap_id, batch)
            self._post_report(swap_id)

    def _people(self, swap_id: str, event: Event) -> list[str]:
        """Who an approval's milestone may name beyond its actor: the request's requester and
        approver (its message names them; the event carries only the actor)."""
        if not event.kind.startswith("approval."):
            return []
        req = self._request(swap_id, event)
        return [p for p in (req.requester, req.approver) if p] if req else []

    def _post_report(self, swap_id: str) -> None:
        """The swap's report, whole: in as many replies as it takes. A restart in the middle
        goes on from the first part Slack had not taken."""
        from swapbot.swap import report

        pages = blocks.reply_pages(
            {
                "command": "report",
                "status": "done",
                "message": f"the report of swap {swap_id}",
                "calls": [],
                "text": report.render(report.report(self.store, swap_id)),
            }
        )
        key = self.store.swap_key(swap_id, "slack", "report-parts")
        taken = int(as_text(self.store.redis.get(key)) or 0)
        for part, (text, blks) in enumerate(pages[taken:], taken + 1):
            self._post(swap_id, text, blks=blks)
            self.store.redis.set(key, part)

    def _say(self, swap_id: str, batch: _Batch) -> None:
        """Post the ordinary milestones gathered so far as one reply (kind to rate limits), or
        several when they are longer than a section: cut only between lines
        (`blocks.split_mrkdwn`), never inside a link, a mention or a code block."""
        if not batch.lines:
            return
        for chunk in blocks.chunks("\n".join(batch.lines), blocks.MAX_SECTION_TEXT):
            self._post(swap_id, chunk)
        batch.lines.clear()
        self._commit(batch)

    # -- sending ----------------------------------------------------------------------------
    def _post(
        self,
        swap_id: str,
        text: str,
        *,
        broadcast: bool = False,
        blks: list[dict[str, Any]] | None = None,
    ) -> str | None:
        """Post a reply in the swap's thread; its ts, or None if Slack refused it for good."""
        resp = self._deliver(
            "chat_postMessage",
            text,
            blks or [_section(text)],
            channel=self.channel,
            thread_ts=self._thread(swap_id),
            reply_broadcast=broadcast,
        )
        return str(resp["ts"]) if resp else None

    def _thread(self, swap_id: str) -> str | None:
        """The ts of the swap's thread, started if need be. It starts with the swap's live
        card: the channel sees the card, and the milestones go in the thread below it."""
        ts = thread_of(self.store, swap_id)
        if ts:
            return ts
        try:
            text, blks = self._draw(swap_id)
        except redis.RedisError:
            raise  # the round ends; the next one starts the thread
        except Exception:  # a bug in the card must not cost the milestone its thread
            log.exception("the card of swap %s cannot be drawn: the thread starts without", swap_id)
            text = f"Heroku Connect swap {blocks.escape(swap_id)}: milestones in this thread"
            blks = [_section(text)]
        resp = self._deliver("chat_postMessage", text, blks, channel=self.channel)
        if resp is None:
            return None  # then the replies go to the channel itself
        ts = str(resp["ts"])
        with self.store.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.store.swap_key(swap_id, "slack", "thread"), ts)
            pipe.set(self.store.swap_key(swap_id, "slack", "progress"), ts)
            pipe.execute()
        # Left dirty, with no edit counted: started by a milestone in the middle of a round,
        # the card is drawn again with the rest of the round's news as the round ends.
        return ts

    def _draw(self, swap_id: str) -> tuple[str, list[dict[str, Any]]]:
        """The swap's card as it stands now (`blocks.progress_message`)."""
        p = self._progress.setdefault(swap_id, fresh_progress())
        now = self.clock()
        view = self._standing(swap_id, p)
        view.update(self._card(swap_id, view, now))
        self._outage_open[swap_id] = view.get("phase") == "outage"
        return blocks.progress_message(swap_id, view, now=now)

    def _deliver(self, method: str, text: str, blks: list[dict[str, Any]], **params: Any) -> Any:
        """Send `text` and its blocks until Slack takes them. A payload Slack refuses goes again
        as plain text; one refused even so is logged and passed over (None)."""
        try:
            return self._send(method, text=text, blocks=blks, **params)
        except _Refused as exc:
            refused = exc
        # Cut where no mrkdwn entity breaks (blocks' own cut, not public yet).
        plain = blocks._cut_mrkdwn(text, blocks.MAX_FALLBACK)
        if plain:
            log.warning("Slack refused a message (%s): sending it as plain text", refused)
            try:
                return self._send(method, text=plain, **params)
            except _Refused as exc:
                refused = exc
        log.error(
            "Slack refused a message even as plain text (%s), passed over: %.300r", refused, text
        )
        return None

    def _send(self, method: str, **params: Any) -> Any:
        """Call `method` until Slack takes it. Raises _Refused when Slack refuses the payload,
        _Interrupted when the notifier stops or loses its lease meanwhile."""
        tries = 0
        while True:
            try:
                return self._call(method, **params)
            except CALL_ERRORS as exc:
                kind, retry_after = _verdict(exc)
                if kind == REFUSED:
                    raise _Refused(_describe(exc)) from exc
                tries += 1
                delay = self._backoff(kind, retry_after, tries)
                self._hold_off(delay)
                if kind == WAIT:
                    log.warning(
                        "Slack says %s to %s in %s: someone must fix it (invite the bot, "
                        "unarchive the channel, check the token); trying again in %.0f s",
                        _describe(exc),
                        method,
                        self.channel,
                        delay,
                    )
                else:
                    log.warning(
                        "Slack did not take %s (%s), try %d; again in %.1f s",
                        method,
                        _describe(exc),
                        tries,
                        delay,
                    )

    def _backoff(self, kind: str, retry_after: float | None, tries: int) -> float:
        if kind == WAIT:
            return self.max_backoff
        if retry_after is not None:
            return retry_after
        return min(self.max_backoff, 2.0 ** (tries - 1))

    def _call(self, method: str, **params: Any) -> Any:
        """One call to Slack, no sooner than its turn (the pace per channel, a Retry-After)."""
        self._wait(self._not_before - self.clock())
        try:
            return getattr(self.client, method)(**params)
        finally:
            self._hold_off(self.min_post_interval)

    def _hold_off(self, seconds: float) -> None:
        self._not_before = max(self._not_before, self.clock() + seconds)

    # -- approvals --------------------------------------------------------------------------
    def _post_approval(self, swap_id: str, event: Event) -> bool:
        """Post the request for a reaction; False if there is no such request."""
        req = self._request(swap_id, event)
        if req is None:
            return False
        text, blks = self._render_approval(swap_id, req, blocks.approval_message)
        ts = self._post(swap_id, text, broadcast=True, blks=blks)
        if ts is not None:
            self.messages.remember(swap_id, req.id, self.channel, ts)
        return True

    def _update_approval(self, swap_id: str, event: Event) -> None:
        """Show the request as it stands: decided, or pending again (an approval withdrawn)."""
        req = self._request(swap_id, event)
        ts = self.messages.message_for(swap_id, req.id) if req else None
        if req is None or ts is None:
            return
        pending = req.status is ApprovalStatus.PENDING
        render = blocks.approval_message if pending else blocks.approval_decided
        text, blks = self._render_approval(swap_id, req, render)
        self._deliver("chat_update", text, blks, channel=self.channel, ts=ts)

    def _request(self, swap_id: str, event: Event) -> ApprovalRequest | None:
        p = event.payload
        request_id = p.request_id or p.request
        return self.approvals.get(swap_id, request_id) if request_id else None

    def _render_approval(
        self, swap_id: str, req: ApprovalRequest, render: Callable[..., blocks.Rendered]
    ) -> blocks.Rendered:
        saved = self.store.get_plan(swap_id)
        return render(
            req,
            Plan.model_validate(saved) if saved else None,
            step_summary=_summary(req.step),
            emoji=self.emoji,
            now=self.clock(),
        )

    # -- the progress message -----------------------------------------------------------------
    def _note_progress(self, swap_id: str, event: Event) -> None:
        note_progress(self._progress.setdefault(swap_id, fresh_progress()), event)
        self._dirty.add(swap_id)

    def _flush_progress(self, swap_id: str) -> None:
        """Edit the progress message (the swap's live card), one try: if Slack does not take
        it, the next try (after `min_edit_interval`) carries the newest figures. During the
        outage it is edited every `outage_tick` seconds even without news, so that its clock
        runs. It is posted on the first round that follows the swap (its plan saved) as the
        first message of the swap's thread, in the channel itself, and drawn again at once
        when someone clicks its Refresh button (`request_redraw`)."""
        p = self._progress.get(swap_id)
        if p is None:  # a swap new to this notifier (a plan saved, a restart): draw its card
            p = self._progress.setdefault(swap_id, fresh_progress())
            self._dirty.add(swap_id)
        now = self.clock()
        last = self._last_edit.get(swap_id, 0.0)
        ticking = self._outage_open.get(swap_id, False) and now - last >= self.outage_tick
        asked = bool(self.store.redis.delete(redraw_key(self.store, swap_id)))
        if not (swap_id in self._dirty or ticking or asked):
            return
        if now - last < self.min_edit_interval and not asked:
            return  # the next round carries the newest figures
        key = self.store.swap_key(swap_id, "slack", "progress")
        ts = as_text(self.store.redis.get(key))
        if not ts and thread_of(self.store, swap_id) is None:
            if self._thread(swap_id):  # the card starts the thread, drawn as the round ends
                self._last_edit[swap_id] = now
                self._dirty.discard(swap_id)
            return
        self._last_edit[swap_id] = now
        text, blks = self._draw(swap_id)
        params = {"channel": self.channel, "text": text, "blocks": blks}
        try:
            if ts:
                self._call("chat_update", ts=ts, **params)
            else:  # a thread started before its card was (a swap followed by an older swapbot)
                resp = self._call("chat_postMessage", thread_ts=self._thread(swap_id), **params)
                self.store.redis.set(key, resp["ts"])
        except CALL_ERRORS as exc:
            retry_after = _verdict(exc)[1]
            if retry_after is not None:
                self._hold_off(retry_after)  # Slack's Retry-After holds every call
            log.warning("could not update the progress message: %s", _describe(exc))
            return
        self._dirty.discard(swap_id)

    def _card(self, swap_id: str, view: Mapping[str, Any], now: float) -> dict[str, Any]:
        return card_facts(self.store, self.approvals, swap_id, view, now)

    def _standing(self, swap_id: str, p: dict[str, Any]) -> dict[str, Any]:
        return standing(self.store, swap_id, p)


def redraw_key(store: Store, swap_id: str) -> str:
    """Set (by a click on the card's Refresh button) until the notifier draws the card again."""
    return store.swap_key(swap_id, "slack", "redraw")


def request_redraw(store: Store, swap_id: str, ttl_s: int = 300) -> None:
    """Ask the leading notifier to draw the swap's card again on its next round."""
    store.redis.set(redraw_key(store, swap_id), "1", ex=ttl_s)


def card_of(store: Store, swap_id: str) -> str | None:
    """The ts of the swap's live card (its progress message), once posted."""
    return as_text(store.redis.get(store.swap_key(swap_id, "slack", "progress")))


def next_step(checkpoints: Mapping[str, Checkpoint]) -> str | None:
    """The step the runbook runs next: the first one neither done nor skipped."""
    return _steps_of(checkpoints)["next"]  # type: ignore[no-any-return]


# -- what the progress message shows, from the events and from the swap's record --------------
def note_progress(p: dict[str, Any], event: Event) -> None:
    """Fold one event of the progress or standing kinds into `p`, what the card shows of the
    events (loads, backlog, the steps, the outage's clock): the notifier as it follows the
    stream, the Home tab (`swapbot.slack.home`) as it reads it back."""
    data, kind = event.payload, event.kind
    if kind == "load.progress" and data.object:
        sf = data.sf or 0
        p["loads"][data.object] = {
            "state": data.state or "loading",
            "db": data.db or 0,
            "sf": sf,
            "progress": round(100.0 * (data.db or 0) / sf, 1) if sf else None,
            "rate": data.rows_per_second,
            "eta_seconds": data.eta_seconds,
        }
    elif kind == "backlog":
        p["backlog"] = {"rows": data.rows, "oldest_seconds": data.oldest_seconds}
    elif kind == "state.changed":
        p["last_change"] = event.message
        load = p["loads"].get(data.object or "")
        if load is not None and data.state:
            # e.g. RELOAD_TABLE -> DATA_SYNCED: the load is over, its last figures stand
            load.update(state=data.state, progress=None, rate=None, eta_seconds=None)
            load.update({k: v for k, v in (("db", data.db), ("sf", data.sf)) if v is not None})
    else:
        _note_standing(p, event)


def standing(store: Store, swap_id: str, p: dict[str, Any]) -> dict[str, Any]:
    """What the progress message shows: what the events said, and over it what the swap's
    record says now (its checkpoints and landmarks outlive a restart of this process and
    are never behind)."""
    view = dict(p)
    names = [OUTAGE_STARTED, OUTAGE_ENDED, swaprecord.FINISHED, swaprecord.ROLLED_BACK]
    records = store.some_records(swap_id, names)
    checkpoints = store.checkpoints(swap_id)
    if checkpoints:
        view.update(_steps_of(checkpoints))
    elif not any(view.get(k) for k in ("step", "next", "last_done")):
        view["next"] = runbook.STEPS[0].name  # a plan just saved: nothing has run yet
    for field_, name in (
        ("outage_started_epoch", OUTAGE_STARTED),
        ("outage_ended_epoch", OUTAGE_ENDED),
        ("done_epoch", swaprecord.FINISHED),
        ("rolled_back_epoch", swaprecord.ROLLED_BACK),
    ):
        if isinstance(records.get(name), int | float):
            view[field_] = float(records[name])
    view["phase"] = _phase(view)
    if view["phase"] in ("rolled back", "rolling back", "done"):
        view["step"] = None
    started, ended = view.get("outage_started_epoch"), view.get("outage_ended_epoch")
    if started is not None and ended is None and view["phase"] == "rolled back":
        # The rollback ended the outage (its undo of stop-writes brought the app back).
        view["outage_ended_epoch"] = view.get("rolled_back_epoch")
    return view


def card_facts(
    store: Store,
    approvals: Approvals,
    swap_id: str,
    view: Mapping[str, Any],
    now: float,
    *,
    buttons: bool = True,
) -> dict[str, Any]:
    """What the card shows beside the progress: the plan's fingerprint (its buttons carry
    it), the pending approvals with their expiry, whether the next step's approval is
    granted, pending or not asked for, and once prep is done the same of each later step that
    needs one (`ahead`: asked for before the outage, a ready approver adds no time to it);
    `buttons=False` for a card drawn where nothing can be clicked (the Home tab)."""
    plan = _plan_of(store, swap_id)
    requests = approvals.requests(swap_id)
    pending = [r for r in requests if r.status is ApprovalStatus.PENDING and r.expires_epoch > now]
    return {
        "swap_id": swap_id,
        "fingerprint": plan.fingerprint() if plan else None,
        "change": _change(plan) if plan else None,
        "approvals": pending,
        "next_approval": _approval_state(requests, view.get("next"), now),
        "ahead": {
            step: _approval_state(requests, step, now)
            for step in _later_approvals(view.get("next"))
        },
        "buttons": buttons,
    }


def _plan_of(store: Store, swap_id: str) -> Plan | None:
    """The swap's plan; None when there is none or it cannot be read (the card is drawn
    without it rather than not at all)."""
    saved = store.get_plan(swap_id)
    try:
        return Plan.model_validate(saved) if saved else None
    except ValueError as exc:  # pydantic's ValidationError is one
        log.warning("the plan of swap %s cannot be read: %s", swap_id, type(exc).__name__)
        return None


def _change(plan: Plan) -> str:
    """What the swap changes, in a line: "acme-prod: hc1/salesforce → hc2/salesforce2, 2
    mappings"."""
    n = len(plan.mappings)
    return (
        f"{plan.app}: {plan.old_addon}/{plan.old_schema} → {plan.new_addon}/{plan.new_schema}, "
        f"{n} mapping{'s' if n != 1 else ''}"
    )


def _later_approvals(next_step: object) -> list[str]:
    """The steps after the cutover's `next_step` that need an approval, in runbook order;
    none during prep (an approval lasts minutes: asked hours early, it would expire)."""
    if next_step not in {s.name for s in runbook.CUTOVER}:
        return []
    return [s.name for s in runbook.after(str(next_step)) if s.approval]


def fresh_progress() -> dict[str, Any]:
    """What the card knows of a swap before any event."""
    return {"step": None, "loads": {}, "backlog": None}


def _approval_state(requests: list[ApprovalRequest], step: object, now: float) -> str | None:
    """The approval of `step` as the card's buttons need it: granted, pending, none (not asked
    for, or only requests that are over), or None when the step needs no approval."""
    found = runbook.BY_NAME.get(str(step or ""))
    if found is None or not found.approval:
        return None
    live = [r for r in requests if r.step == found.name and r.expires_epoch > now]
    if any(r.status is ApprovalStatus.GRANTED for r in live):
        return "granted"
    if any(r.status is ApprovalStatus.PENDING for r in live):
        return "pending"
    return "none"


def _epoch_of(event: Event) -> float:
    return event.at.timestamp()


def _note_standing(p: dict[str, Any], event: Event) -> None:
    """Follow the phase, the steps and the outage's clock as the events tell them."""
    kind, step, at = event.kind, event.step, _epoch_of(event)
    if kind in ("step.started", "step.done", "step.skipped", "step.failed"):
        p.pop("waiting_on", None)
    if kind == "step.started":
        p.update(step=step, step_state="running", step_since=at)
        p.pop("rolled_back_epoch", None)  # acting again: the swap is in progress
        p.pop("mark", None)
    elif kind == "step.waiting":
        p.update(step=step, step_state="waiting")
        if event.payload.person:
            p["waiting_on"] = event.payload.person
    elif kind in ("step.done", "step.skipped") and step in runbook.BY_NAME:
        p["last_done"] = step
        p.update(_after(step))
        if p.get("step") == step:
            p["step"] = None
    elif kind == "step.failed" and step in runbook.BY_NAME:
        p.update(step=None, next=step, next_state="failed")
    elif kind == "step.failed" and p.get("mark") == "rollback.started":
        p.pop("mark")  # the rollback failed: the swap stands where its record says
    elif kind == "outage.started":
        p.update(outage_started_epoch=at, outage_ended_epoch=None)
    elif kind == "outage.ended":
        p["outage_ended_epoch"] = at
    elif kind in ("rollback.started", "rollback.done", "swap.done"):
        p.update(step=None, mark=kind)
        if kind == "rollback.done":
            p["rolled_back_epoch"] = at
        elif kind == "swap.done":
            p["done_epoch"] = at


def _after(step: str) -> dict[str, Any]:
    """The step the runbook runs after `step`, as the next."""
    later = runbook.after(step)
    return {"next": later[0].name if later else None, "next_state": None}


def _steps_of(checkpoints: Mapping[str, Checkpoint]) -> dict[str, Any]:
    """From the checkpoints: the step running (or waiting) now, the last one done in the
    runbook's order, and the first one not done, with its state (failed, undone, …)."""
    found: dict[str, Any] = {"step": None, "last_done": None, "next": None, "next_state": None}
    for step in runbook.STEPS:
        cp = checkpoints.get(step.name)
        status = cp.status.value if cp else "pending"
        if status in ("done", "skipped"):
            found["last_done"] = step.name
            continue
        if status in ("running", "waiting") and found["step"] is None and cp is not None:
            found.update(step=step.name, step_state=status, step_since=cp.started_epoch)
        if found["next"] is None:
            found.update(next=step.name, next_state=status)
    return found


def _phase(view: Mapping[str, Any]) -> str:
    """prep, outage, after the outage, done, rolling back or rolled back."""
    mark = view.get("mark")
    if view.get("done_epoch") is not None or mark == "swap.done":
        return "done"
    if mark == "rollback.started":
        return "rolling back"
    if view.get("rolled_back_epoch") is not None:
        return "rolled back"
    if view.get("outage_started_epoch") is None:
        return "prep"
    return "outage" if view.get("outage_ended_epoch") is None else "after the outage"
