"""The channel notifier: follows a swap's event stream in Redis and tells the channel.

One thread per swap. Milestones (a step done or failed, approvals, the outage, rollback) are
new replies, the important ones also sent to the channel; load progress, ETA and backlog live
in one progress message edited in place, no more often than Slack's rate limits allow. Only
one notifier leads across processes and dynos (a leader lease), and it moves its cursor in
the stream only after Slack took the message: a restart repeats at most the last message,
and loses none.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from swapbot.slack import blocks
from swapbot.swap import steps as runbook
from swapbot.swap.approvals import Approvals
from swapbot.swap.store import Store, as_text

log = logging.getLogger(__name__)

PROGRESS_KINDS = {"load.progress", "backlog", "state.changed"}
MAX_TRIES = 3  # a message Slack refuses this many times is logged and passed over


def _summary(step: str | None) -> str:
    s = runbook.BY_NAME.get(step or "")
    return s.summary if s else (step or "")


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
        return tuple(json.loads(raw)) if raw else None  # type: ignore[return-value]

    def message_for(self, swap_id: str, request_id: str) -> str | None:
        return as_text(
            self.store.redis.hget(self.store.swap_key(swap_id, "slack", "approvals"), request_id)
        )


class ChannelNotifier:
    def __init__(
        self,
        store: Store,
        client: WebClient,
        channel: str,
        *,
        approval_emoji: str = "white_check_mark",
        min_edit_interval: float = 3.0,
        clock: Callable[[], float] = time.time,
        runner: str = "notifier",
    ):
        self.store, self.client, self.channel = store, client, channel
        self.approvals = Approvals(store)
        self.messages = ApprovalMessages(store)
        self.emoji = approval_emoji
        self.min_edit_interval = min_edit_interval
        self.clock = clock
        self.runner = runner
        self._progress: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self._last_edit: dict[str, float] = {}
        self._tries: dict[str, int] = {}
        self._stop = threading.Event()

    # -- the loop ---------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self, *, block_ms: int = 500, lease_ttl_ms: int = 15_000) -> None:
        lease = None
        while not self._stop.is_set():
            if lease is None or not self.store.renew(lease, lease_ttl_ms):
                lease = self.store.acquire_leader(self.runner, lease_ttl_ms, role="notifier")
            if lease is None:
                self._stop.wait(1.0)
                continue
            try:
                self.pump(block_ms=block_ms)
            except Exception:
                log.exception("notifier round failed")
                self._stop.wait(1.0)
        if lease is not None:
            self.store.release(lease)

    def pump(self, *, block_ms: int | None = None) -> int:
        """Deliver what the current swap's stream holds past our cursor; returns how many."""
        swap_id = self.store.current_swap()
        if swap_id is None:
            # Nothing to read from, so wait as the read would have: without it, `run` between
            # swaps renewed its lease and asked for the swap thousands of times a second.
            if block_ms:
                self._stop.wait(block_ms / 1000)
            return 0
        cursor_key = self.store.swap_key(swap_id, "slack", "cursor")
        cursor = as_text(self.store.redis.get(cursor_key)) or "0-0"
        delivered, last = 0, None
        lines: list[str] = []
        for published in self.store.read_events(swap_id, cursor, block_ms=block_ms, count=200):
            try:
                self._handle(swap_id, published.event, lines)
            except (SlackApiError, SlackClientError) as exc:
                tries = self._tries[published.id] = self._tries.get(published.id, 0) + 1
                log.warning("Slack refused event %s (try %d): %s", published.id, tries, exc)
                if tries < MAX_TRIES:
                    break  # try again next round, from this event
                log.error("passing over event %s after %d tries", published.id, tries)
            last = published.id
            delivered += 1
        self._say(swap_id, lines)  # if Slack refuses, the cursor stays: nothing is lost
        if last is not None:
            self.store.redis.set(cursor_key, last)
        self._flush_progress(swap_id)
        return delivered

    # -- events -----------------------------------------------------------------------------
    def _handle(self, swap_id: str, event: dict[str, Any], lines: list[str]) -> None:
        kind = event.get("kind")
        if kind == "call":
            return  # a dry run's listing goes to the requester, not the channel
        if kind in PROGRESS_KINDS or kind in ("step.started", "outage.started"):
            self._note_progress(swap_id, event)
            if kind in PROGRESS_KINDS:
                return
        if kind == "step.started":
            step = runbook.BY_NAME.get(event.get("step") or "")
            if step is None or not step.in_outage:
                return  # prep steps report when done; inside the outage every start counts
        if kind == "approval.requested":
            self._say(swap_id, lines)
            self._post_approval(swap_id, event)
            return
        if kind in ("approval.granted", "approval.expired"):
            self._say(swap_id, lines)
            self._update_approval(swap_id, event)
        line = blocks.milestone(event)
        if blocks.is_broadcast(event):
            self._say(swap_id, lines)
            self._post(swap_id, line, broadcast=True)
        else:
            lines.append(line)
        if kind == "swap.done":
            self._say(swap_id, lines)
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
        self._post(swap_id, text, blocks=blks)

    def _say(self, swap_id: str, lines: list[str]) -> None:
        """Post the ordinary milestones gathered so far as one reply (kind to rate limits)."""
        if not lines:
            return
        text = "\n".join(lines)
        del lines[:]
        while text:
            chunk, text = text[:3000], text[3000:]
            self._post(swap_id, chunk)

    def _post(self, swap_id: str, text: str, *, broadcast: bool = False, **kwargs: Any) -> str:
        thread = self._thread(swap_id)
        blks = kwargs.pop("blocks", None) or [
            {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
        ]
        resp = self.client.chat_postMessage(
            channel=self.channel,
            thread_ts=thread,
            reply_broadcast=broadcast,
            text=text,
            blocks=blks,
            **kwargs,
        )
        return resp["ts"]

    def _thread(self, swap_id: str) -> str:
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
        resp = self.client.chat_postMessage(
            channel=self.channel,
            text=text,
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        )
        self.store.redis.set(key, resp["ts"])
        return resp["ts"]

    # -- approvals --------------------------------------------------------------------------
    def _post_approval(self, swap_id: str, event: dict[str, Any]) -> None:
        req = self._request(swap_id, event)
        if req is None:
            return
        text, blks = self._render_approval(swap_id, req, blocks.approval_message)
        ts = self._post(swap_id, text, broadcast=True, blocks=blks)
        self.messages.remember(swap_id, req.id, self.channel, ts)

    def _update_approval(self, swap_id: str, event: dict[str, Any]) -> None:
        req = self._request(swap_id, event)
        ts = self.messages.message_for(swap_id, req.id) if req else None
        if req is None or ts is None:
            return
        text, blks = self._render_approval(swap_id, req, blocks.approval_decided)
        self.client.chat_update(channel=self.channel, ts=ts, text=text, blocks=blks)

    def _request(self, swap_id: str, event: dict[str, Any]) -> Any:
        data = event.get("data") or {}
        request_id = data.get("request_id") or data.get("request")
        return self.approvals.get(swap_id, request_id) if request_id else None

    def _render_approval(self, swap_id: str, req: Any, render: Callable[..., Any]) -> Any:
        return render(
            req.model_dump(mode="json"),
            self.store.get_plan(swap_id),
            step_summary=_summary(req.step),
            emoji=self.emoji,
            now=self.clock(),
        )

    # -- the progress message -----------------------------------------------------------------
    def _note_progress(self, swap_id: str, event: dict[str, Any]) -> None:
        p = self._progress.setdefault(
            swap_id, {"step": None, "loads": {}, "backlog": None, "outage_started_epoch": None}
        )
        data = event.get("data") or {}
        kind = event.get("kind")
        if kind == "load.progress" and data.get("object"):
            sf = data.get("sf") or 0
            p["loads"][data["object"]] = {
                "state": data.get("state") or "loading",
                "db": data.get("db") or 0,
                "sf": sf,
                "progress": round(100.0 * (data.get("db") or 0) / sf, 1) if sf else None,
                "rate": data.get("rows_per_second"),
                "eta_seconds": data.get("eta_seconds"),
            }
        elif kind == "backlog":
            p["backlog"] = {"rows": data.get("rows"), "oldest_seconds": data.get("oldest_seconds")}
        elif kind == "step.started":
            p["step"] = event.get("step")
        elif kind == "outage.started":
            p["outage_started_epoch"] = self.clock()
        elif kind == "state.changed":
            p["last_change"] = event.get("message")
            load = p["loads"].get(data.get("object"))
            if load is not None and data.get("state"):
                # e.g. RELOAD_TABLE -> DATA_SYNCED: the load is over, its last figures stand
                load.update(state=data["state"], progress=None, rate=None, eta_seconds=None)
                load.update({k: data[k] for k in ("db", "sf") if data.get(k) is not None})
        p["updated_epoch"] = self.clock()
        if kind in PROGRESS_KINDS and (p["loads"] or p["backlog"]):
            self._dirty.add(swap_id)  # a progress message only once there is progress to show

    def _flush_progress(self, swap_id: str) -> None:
        if swap_id not in self._dirty:
            return
        now = self.clock()
        if now - self._last_edit.get(swap_id, 0.0) < self.min_edit_interval:
            return  # the next round carries the newest figures
        text, blks = blocks.progress_message(swap_id, self._progress[swap_id], now=now)
        key = self.store.swap_key(swap_id, "slack", "progress")
        ts = as_text(self.store.redis.get(key))
        try:
            if ts:
                self.client.chat_update(channel=self.channel, ts=ts, text=text, blocks=blks)
            else:
                ts = self._post(swap_id, text, blocks=blks)
                self.store.redis.set(key, ts)
        except (SlackApiError, SlackClientError) as exc:
            log.warning("could not update the progress message: %s", exc)
            return
        self._last_edit[swap_id] = now
        self._dirty.discard(swap_id)
