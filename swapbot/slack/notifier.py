"""The channel notifier: follows a swap's event stream in Redis and tells the channel.

One thread per swap. Milestones (a step done or failed, approvals, the outage, rollback) are
new replies, the important ones also sent to the channel; load progress, ETA and backlog live
in one progress message edited in place, no more often than `min_edit_interval`. Only one
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
from swapbot.swap import steps as runbook
from swapbot.swap.approvals import ApprovalRequest, Approvals, ApprovalStatus
from swapbot.swap.events import Event
from swapbot.swap.plan import Plan
from swapbot.swap.store import Lease, Store, as_text

log = logging.getLogger(__name__)

PROGRESS_KINDS = {"load.progress", "backlog", "state.changed"}
# Each updates the approval message in place to show the request as it stands now.
APPROVAL_UPDATES = {"approval.granted", "approval.expired", "approval.withdrawn"}

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
        if kind in PROGRESS_KINDS or kind in ("step.started", "outage.started"):
            self._note_progress(swap_id, event)
            if kind in PROGRESS_KINDS:
                return
        if kind == "step.started":
            step = runbook.BY_NAME.get(event.step or "")
            if step is None or not step.in_outage:
                return  # prep steps report when done; inside the outage every start counts
        if kind == "approval.requested":
            self._say(swap_id, batch)
            if self._post_approval(swap_id, event):
                return  # else an unknown request: the milestone line says what it can
        if kind in APPROVAL_UPDATES:
            self._say(swap_id, batch)
            self._update_approval(swap_id, event)
        line = blocks.milestone(event)
        if blocks.is_broadcast(event):
            self._say(swap_id, batch)
            self._post(swap_id, line, broadcast=True)
        else:
            batch.lines.append(line)
        if kind == "swap.done":
            self._say(swap_id, batch)
            self._post_report(swap_id)

    def _post_report(self, swap_id: str) -> None:
        from swapbot.swap import report

        text, blks = blocks.reply(
            {
                "command": "report",
                "status": "done",
                "message": f"the report of swap {swap_id}",
                "calls": [],
                "text": report.render(report.report(self.store, swap_id)),
            }
        )
        self._post(swap_id, text, blks=blks)

    def _say(self, swap_id: str, batch: _Batch) -> None:
        """Post the ordinary milestones gathered so far as one reply (kind to rate limits)."""
        if not batch.lines:
            return
        text = "\n".join(batch.lines)
        while text:
            chunk, text = text[:3000], text[3000:]
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
        key = self.store.swap_key(swap_id, "slack", "thread")
        ts = as_text(self.store.redis.get(key))
        if ts:
            return ts
        plan = self.store.get_plan(swap_id) or {}
        n = len(plan.get("mappings") or {})
        text = (
            f":arrows_counterclockwise: *Heroku Connect swap `{blocks.escape(swap_id)}`* — "
            f"{blocks.escape(plan.get('app', ''))}: "
            f"{blocks.escape(plan.get('old_addon', ''))}/{blocks.escape(plan.get('old_schema', ''))}"
            f" → {blocks.escape(plan.get('new_addon', ''))}/"
            f"{blocks.escape(plan.get('new_schema', ''))}, {n} mapping{'s' if n != 1 else ''}. "
            "Progress and milestones follow in this thread."
        )
        blks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
        resp = self._deliver("chat_postMessage", text, blks, channel=self.channel)
        if resp is None:
            return None  # then the replies go to the channel itself
        ts = str(resp["ts"])
        self.store.redis.set(key, ts)
        return ts

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
        p = self._progress.setdefault(
            swap_id, {"step": None, "loads": {}, "backlog": None, "outage_started_epoch": None}
        )
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
        elif kind == "step.started":
            p["step"] = event.step
        elif kind == "outage.started":
            p["outage_started_epoch"] = self.clock()
        elif kind == "state.changed":
            p["last_change"] = event.message
            load = p["loads"].get(data.object or "")
            if load is not None and data.state:
                # e.g. RELOAD_TABLE -> DATA_SYNCED: the load is over, its last figures stand
                load.update(state=data.state, progress=None, rate=None, eta_seconds=None)
                load.update({k: v for k, v in (("db", data.db), ("sf", data.sf)) if v is not None})
        p["updated_epoch"] = self.clock()
        if kind in PROGRESS_KINDS and (p["loads"] or p["backlog"]):
            self._dirty.add(swap_id)  # a progress message only once there is progress to show

    def _flush_progress(self, swap_id: str) -> None:
        """Edit the progress message, one try: if Slack does not take it, the next try (after
        `min_edit_interval`) carries the newest figures."""
        if swap_id not in self._dirty:
            return
        now = self.clock()
        if now - self._last_edit.get(swap_id, 0.0) < self.min_edit_interval:
            return  # the next round carries the newest figures
        self._last_edit[swap_id] = now
        text, blks = blocks.progress_message(swap_id, self._progress[swap_id], now=now)
        key = self.store.swap_key(swap_id, "slack", "progress")
        ts = as_text(self.store.redis.get(key))
        params = {"channel": self.channel, "text": text, "blocks": blks}
        try:
            if ts:
                self._call("chat_update", ts=ts, **params)
            else:
                resp = self._call("chat_postMessage", thread_ts=self._thread(swap_id), **params)
                self.store.redis.set(key, resp["ts"])
        except CALL_ERRORS as exc:
            retry_after = _verdict(exc)[1]
            if retry_after is not None:
                self._hold_off(retry_after)  # Slack's Retry-After holds every call
            log.warning("could not update the progress message: %s", _describe(exc))
            return
        self._dirty.discard(swap_id)
