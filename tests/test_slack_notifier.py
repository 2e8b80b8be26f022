"""The channel notifier on its own: the engine's events from Redis to the stand-in. One thread
per swap, progress edited in place no faster than allowed, posts paced, nothing lost when Slack
says 429, is down, refuses a payload or the bot is not in the channel, nor when the notifier
restarts, and only one notifier leading."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from swapbot.slack import blocks
from swapbot.slack.notifier import ApprovalMessages, ChannelNotifier
from swapbot.swap.approvals import ApprovalRequest, Approvals
from swapbot.swap.events import Event
from swapbot.swap.store import Store
from swapbot.testing.rehearsal import said
from swapbot.testing.services import REDIS_TEST_URL
from swapbot.testing.standin import Limit, Message, SlackStandIn

SWAP = "notify-1"
OPERATOR, APPROVER = "U0OPERATOR", "U0APPROVER"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def plan_of(swap_id: str) -> dict[str, Any]:
    """A small plan of one mapping, as stored."""
    return {
        "swap_id": swap_id,
        "app": "acme-prod",
        "old_addon": "hc1",
        "old_schema": "salesforce",
        "new_addon": "hc2",
        "new_schema": "salesforce2",
        "mappings": {"Account": ["Rating"]},
    }


def setup(
    redis_prefix: str,
    slack: SlackStandIn,
    clock: Callable[[], float],
    *,
    sdk_retries: bool = True,
    **options,
) -> tuple[Store, ChannelNotifier]:
    """A current swap and a notifier for it. `sdk_retries`: slack_sdk retries 429s itself, else
    the notifier sees them. Posts are not paced unless `min_post_interval` is given."""
    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)
    lease = store.acquire(SWAP, "test", 10_000)
    store.set_plan(lease, plan_of(SWAP), current=True)
    store.release(lease)
    handlers = [RateLimitErrorRetryHandler(max_retry_count=10)] if sdk_retries else []
    client = WebClient(token=slack.token, base_url=slack.api_url, retry_handlers=handlers)
    options = {"clock": clock, "min_edit_interval": 3.0, "min_post_interval": 0.0, **options}
    return store, ChannelNotifier(store, client, "C0SWAP", **options)


def publish(store: Store, kind: str, **fields) -> str:
    return store.publish(SWAP, Event(kind=kind, swap_id=SWAP, **fields).model_dump(mode="json"))


def progress(store: Store, db: int) -> None:
    publish(
        store,
        "load.progress",
        message=f"hc2 Account: {db}%",
        data={"object": "Account", "db": db, "sf": 100, "state": "INITIAL_IMPORT"},
    )


def test_progress_is_one_message_edited_no_faster_than_allowed(redis_prefix):
    clock = Clock()
    with SlackStandIn() as slack:
        store, notifier = setup(redis_prefix, slack, clock)
        for db in (10, 20, 30):
            progress(store, db)
            notifier.pump()
            clock.now += 1.0  # three looks within three seconds: one post, no edit yet
        assert slack.count("chat.update") == 0
        clock.now += 1.0
        progress(store, 40)
        notifier.pump()
        assert slack.count("chat.update") == 1
        [progress_msg] = slack.messages("C0SWAP")  # the card: the thread's first message
        assert progress_msg.thread_ts is None and "Account" in said(progress_msg)
        assert "db 40" in said(progress_msg) and len(progress_msg.edits) == 1
        assert not slack.violations  # every edit sent text and blocks


def test_nothing_is_lost_when_slack_limits_or_the_notifier_restarts(redis_prefix):
    clock = Clock()
    limits = {"chat.postMessage": Limit(burst=2, per_second=20.0, per_channel=True)}
    with SlackStandIn(limits=limits) as slack:
        store, notifier = setup(redis_prefix, slack, clock)
        for i in range(12):
            publish(store, "step.done", step=f"step-{i}", message=f"finished {i}")
            publish(store, "outage.started" if i == 5 else "notice", message=f"note {i}")
        notifier.pump()
        _, again = setup(redis_prefix, slack, clock)  # a new leader after a restart
        again.pump()
        text = slack.transcript("C0SWAP")
        for i in range(12):
            assert f"*step-{i}* done" in text, text
            assert text.count(f"*step-{i}* done") == 1  # the cursor moved: nothing said twice
        assert any(c.http_status == 429 for c in slack.calls)  # Slack did push back
        assert sum(1 for m in slack.messages("C0SWAP") if m.broadcast) == 1  # the outage


def test_only_one_notifier_leads(redis_prefix):
    with SlackStandIn() as slack:
        store, first = setup(redis_prefix, slack, Clock())
        _, second = setup(redis_prefix, slack, Clock())
        lease = store.acquire_leader("first", 5_000, role="notifier")
        assert lease is not None
        assert store.acquire_leader("second", 5_000, role="notifier") is None
        assert store.leader("notifier").runner == "first"
        assert store.acquire_leader("watcher-1", 5_000) is not None  # the watcher's own lease


class CountingRedis(redis.Redis):
    """A client that counts the commands it sends (Lua scripts included)."""

    sent = 0

    def execute_command(self, *args, **options):
        CountingRedis.sent += 1
        return super().execute_command(*args, **options)


def test_an_idle_notifier_waits_instead_of_asking_redis_all_the_time(redis_prefix):
    """Between swaps (no current swap) and during one (a stream with nothing new), the loop
    waits on each round; it once renewed its lease thousands of times a second between swaps."""
    store = Store(CountingRedis.from_url(REDIS_TEST_URL), redis_prefix)
    with SlackStandIn() as slack:
        client = WebClient(token=slack.token, base_url=slack.api_url)
        for current in (False, True):
            if current:
                setup(redis_prefix, slack, Clock())  # makes a swap current
            notifier = ChannelNotifier(store, client, "C0SWAP")
            loop = threading.Thread(target=notifier.run, kwargs={"block_ms": 200})
            CountingRedis.sent = 0
            loop.start()
            time.sleep(1.0)
            notifier.stop()
            loop.join(timeout=5)
            assert not loop.is_alive()
            # About five rounds of a few commands each; a busy loop makes thousands.
            assert CountingRedis.sent < 60, (current, CountingRedis.sent)


# -- the channel never drops a milestone ----------------------------------------------------------
# What each milestone's message says, in the order the tests publish them.
MILESTONES = (
    "*create-addon* done",
    ":rotating_light: outage started",
    "*drain* failed",
    "Approval needed: pause",
    ":tada: outage ended",
)


def request_approval(store: Store) -> ApprovalRequest:
    """A real request in Redis and its event, as the engine makes them."""
    req = Approvals(store).request(SWAP, "pause", OPERATOR, "fp-1", "live-1")
    publish(
        store,
        "approval.requested",
        step="pause",
        actor=OPERATOR,
        message=f"{OPERATOR} asks a second person to approve pause",
        data={"request_id": req.id, "fingerprint": "fp-1", "expires_at": req.expires_at},
    )
    return req


def publish_the_swap(store: Store) -> ApprovalRequest:
    """The milestones of MILESTONES after the first, with progress between them."""
    publish(store, "outage.started", message="outage started")
    progress(store, 10)
    publish(store, "step.failed", step="drain", message="hc1 still has pending changes")
    req = request_approval(store)
    progress(store, 60)
    publish(store, "outage.ended", message="outage ended", data={"seconds": 42})
    return req


def replies(slack: SlackStandIn) -> list[Message]:
    root = slack.messages("C0SWAP")[0]
    return slack.thread("C0SWAP", root.ts)


def milestones(slack: SlackStandIn) -> list[str]:
    """The milestones the swap's thread shows, in its order, once for each time it shows one."""
    if not slack.messages("C0SWAP"):
        return []
    return [name for m in replies(slack) for name in MILESTONES if name in (m.text or "")]


def reply_saying(slack: SlackStandIn, what: str) -> Message:
    [found] = [m for m in replies(slack) if what in (m.text or "")]
    return found


@pytest.mark.slow
def test_a_minute_of_slack_outage_loses_no_milestone(redis_prefix):
    """The issue's test: Slack answers 503 for 60 s while the swap goes on. Afterwards every
    milestone is in the thread in the order published, none twice, and the approval request
    is remembered for its reactions."""
    with SlackStandIn() as slack:
        store, notifier = setup(
            redis_prefix,
            slack,
            time.time,
            sdk_retries=False,
            min_post_interval=1.0,
            max_backoff=5.0,
        )
        loop = threading.Thread(target=notifier.run, kwargs={"block_ms": 200}, daemon=True)
        loop.start()
        try:
            publish(store, "step.done", step="create-addon", message="hc2 created")
            slack.wait_for(lambda: milestones(slack) == list(MILESTONES[:1]))
            down_at = time.monotonic()  # the stand-in's clock
            slack.outage(60)
            req = publish_the_swap(store)
            slack.wait_for(
                lambda: (
                    ":tada: outage ended" in milestones(slack)
                    and "db 60" in said(slack.messages("C0SWAP")[0])  # the card
                ),
                timeout=90,
            )
        finally:
            notifier.stop()
            loop.join(timeout=5)
        assert not loop.is_alive()
        assert milestones(slack) == list(MILESTONES)  # all, in order, none twice
        for name in MILESTONES[1:]:
            assert reply_saying(slack, name).broadcast, name
        asking = reply_saying(slack, "Approval needed: pause")
        assert ApprovalMessages(store).request_for("C0SWAP", asking.ts) == (SWAP, req.id)
        down = [c for c in slack.calls if c.http_status == 503]
        assert 5 <= len(down) <= 25, len(down)  # it kept trying, backing off
        taken = [c for c in slack.calls if c.ok and c.at > down_at]
        assert taken and min(c.at for c in taken) >= down_at + 60
        assert not slack.violations


def test_retry_after_is_honoured_and_posts_are_paced(redis_prefix):
    with SlackStandIn() as slack:
        store, notifier = setup(
            redis_prefix, slack, time.time, sdk_retries=False, min_post_interval=1.0
        )
        slack.outage(1.0, status=429, error="ratelimited", retry_after=3)
        for kind in ("outage.started", "step.failed", "outage.ended"):
            publish(store, kind, step="drain", message=kind)
        notifier.pump()
        calls = slack.calls_to("chat.postMessage")
        # the swap's card (the thread's root), then three broadcasts; the card is then edited
        assert [c.http_status for c in calls] == [429] + [200] * 4
        assert calls[1].at - calls[0].at >= 2.99  # not before Retry-After, though the 429s stopped
        gaps = [b.at - a.at for a, b in zip(calls[1:], calls[2:], strict=False)]
        assert min(gaps) >= 0.99, gaps  # one post a second
        texts = [m.text for m in replies(slack)]
        assert texts[-1].startswith(":tada: outage ended")
        assert slack.messages("C0SWAP")[0].text.startswith("swap notify-1 · after the outage")


# slack_sdk warns of blocks without text: the second message has none on purpose.
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_a_payload_slack_refuses_goes_as_plain_text_and_holds_up_nothing(
    redis_prefix, monkeypatch, caplog
):
    invalid = [{"type": "no-such-block"}]
    monkeypatch.setattr(
        blocks, "approval_message", lambda *a, **k: ("Approval needed: pause", invalid)
    )
    with SlackStandIn() as slack:
        store, notifier = setup(redis_prefix, slack, Clock())
        req = request_approval(store)
        publish(store, "outage.ended", message="outage ended")
        notifier.pump()
        asking = reply_saying(slack, "Approval needed: pause")
        assert asking.blocks is None and asking.broadcast  # as plain text, still to the channel
        assert ApprovalMessages(store).request_for("C0SWAP", asking.ts) == (SWAP, req.id)
        assert milestones(slack)[-2:] == ["Approval needed: pause", ":tada: outage ended"]
        assert [c.error for c in slack.calls if not c.ok] == ["invalid_blocks"]

        # Without text to fall back on, the message is logged and passed over; the next is not.
        monkeypatch.setattr(blocks, "approval_message", lambda *a, **k: ("", invalid))
        request_approval(store)
        publish(store, "step.done", step="create-addon", message="again")
        notifier.pump()
        assert milestones(slack)[-1] == "*create-addon* done"
        assert any(
            r.levelno == logging.ERROR and "passed over" in r.getMessage() for r in caplog.records
        )
        assert not slack.violations


def test_the_notifier_waits_for_the_bot_to_be_invited_and_stops_at_once(redis_prefix, caplog):
    """Not in the channel: it retries, warning each time, renewing its lease through the waits;
    once invited, the milestone arrives. Stopped while Slack is down, it stops at once, its
    cursor on the last milestone Slack took."""
    caplog.set_level(logging.WARNING, logger="swapbot.slack.notifier")
    with SlackStandIn() as slack:
        slack.remove_member("C0SWAP", slack.bot_user_id)
        store, notifier = setup(redis_prefix, slack, time.time, sdk_retries=False, max_backoff=1.0)
        loop = threading.Thread(
            target=notifier.run, kwargs={"block_ms": 200, "lease_ttl_ms": 900}, daemon=True
        )
        loop.start()
        try:
            started = publish(store, "outage.started", message="outage started")
            leader = slack.wait_for(lambda: store.leader("notifier"))
            slack.wait_for(lambda: sum(c.error == "not_in_channel" for c in slack.calls) >= 3)

            def warned():  # the warning follows the refused call, a moment later
                found = [r for r in caplog.records if "not_in_channel" in r.getMessage()]
                return found if len(found) >= 3 else None

            assert all(r.levelno == logging.WARNING for r in slack.wait_for(warned))
            assert store.leader("notifier").fence == leader.fence  # never lapsed (0.9 s TTL)

            slack.add_member("C0SWAP", slack.bot_user_id)
            slack.wait_for(lambda: ":rotating_light: outage started" in milestones(slack))

            slack.outage(60)
            publish(store, "outage.ended", message="outage ended")
            slack.wait_for(lambda: any(c.http_status == 503 for c in slack.calls))
        finally:
            asked = time.monotonic()
            notifier.stop()
            loop.join(timeout=5)
        assert not loop.is_alive() and time.monotonic() - asked < 1.0
        assert milestones(slack) == [":rotating_light: outage started"]
        cursor = store.redis.get(store.swap_key(SWAP, "slack", "cursor"))
        assert cursor.decode() == started  # the outage's end waits for the next leader
        assert store.leader("notifier") is None  # released on the way out


def test_a_withdrawn_approval_shows_the_request_pending_again(redis_prefix):
    with SlackStandIn() as slack:
        store, notifier = setup(redis_prefix, slack, Clock())
        req = request_approval(store)
        notifier.pump()
        ts = ApprovalMessages(store).message_for(SWAP, req.id)
        approvals = Approvals(store)
        approvals.grant(
            SWAP, req.id, APPROVER, [APPROVER], fingerprint="fp-1", live_digest="live-1"
        )
        publish(
            store, "approval.granted", step="pause", actor=APPROVER, data={"request_id": req.id}
        )
        notifier.pump()
        assert slack.message("C0SWAP", ts).text.startswith("Approved: pause")
        # The approver took the reaction back: the request is pending again.
        assert approvals.withdraw(SWAP, req.id, APPROVER).withdrawn
        publish(
            store, "approval.withdrawn", step="pause", actor=APPROVER, data={"request_id": req.id}
        )
        notifier.pump()
        msg = slack.message("C0SWAP", ts)
        assert msg.text.startswith("Approval needed: pause") and len(msg.edits) == 2
        assert "React with :white_check_mark: to approve" in said(msg)
        assert not slack.violations


def test_a_swap_replaced_while_slack_was_down_still_gets_its_milestones_first(redis_prefix):
    """Rolled back and replaced by another plan while Slack was down: the first swap's
    milestones are posted (in its own thread) before the new swap's, none dropped."""
    with SlackStandIn() as slack:
        store, notifier = setup(redis_prefix, slack, time.time, sdk_retries=False, max_backoff=0.2)
        publish(store, "step.started", step="stop-writes", message="first swap")
        notifier.pump()  # the channel follows the first swap
        slack.outage(60, methods=["chat.postMessage"])
        publish(store, "rollback.done", message="first swap rolled back")
        other = {"swap_id": "notify-2", "app": "acme-prod", "mappings": {"Contact": []}}
        lease = store.acquire("notify-2", "test", 10_000)
        store.set_plan(lease, other, current=True)
        store.release(lease)
        store.publish(
            "notify-2",
            Event(kind="outage.started", swap_id="notify-2", message="second").model_dump(
                mode="json"
            ),
        )
        loop = threading.Thread(target=notifier.run, kwargs={"block_ms": 100}, daemon=True)
        loop.start()
        try:
            time.sleep(0.5)
            slack.outage(0)
            slack.wait_for(
                lambda: [m for m in slack.messages("C0SWAP") if "second" in (m.text or "")],
                timeout=20,
            )
        finally:
            notifier.stop()
            loop.join(timeout=10)
        texts = [m.text or "" for m in slack.messages("C0SWAP")]
        first = next(i for i, t in enumerate(texts) if "rolled back" in t)
        second = next(i for i, t in enumerate(texts) if "second" in t)
        assert first < second, texts


def test_an_approval_milestone_names_its_people_as_mentions(redis_prefix):
    """The engine's message names the approver and the requester by id; the event carries
    only the approver (its actor): the request's record names the requester."""
    with SlackStandIn() as slack:
        store, notifier = setup(redis_prefix, slack, Clock())
        req = Approvals(store).request(SWAP, "pause", "U1", "fp-1", "live-1")
        publish(
            store,
            "approval.refused",
            step="pause",
            actor="U2",
            message=f"U2 cannot approve {req.id} for U1 now",
            data={"request_id": req.id},
        )
        notifier.pump()
        [line] = [m.text for m in replies(slack) if "refused" in (m.text or "")]
        assert line == (
            f":no_entry: approval of *pause* refused (<@U2>) — <@U2> cannot approve {req.id} "
            "for <@U1> now"
        )
