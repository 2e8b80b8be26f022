"""The channel notifier on its own: the engine's events from Redis to the stand-in. One thread
per swap, progress edited in place no faster than allowed, nothing lost when Slack says 429 or
the notifier restarts, and only one notifier leading."""

from __future__ import annotations

import threading
import time

import redis
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from swapbot.slack.notifier import ChannelNotifier
from swapbot.slack.rehearsal import said
from swapbot.slack.standin import Limit, SlackStandIn
from swapbot.swap.events import Event
from swapbot.swap.store import Store
from tests.conftest import REDIS_TEST_URL

SWAP = "notify-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def setup(redis_prefix: str, slack: SlackStandIn, clock: Clock) -> tuple[Store, ChannelNotifier]:
    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)
    plan = {
        "swap_id": SWAP,
        "app": "acme-prod",
        "old_addon": "hc1",
        "old_schema": "salesforce",
        "new_addon": "hc2",
        "new_schema": "salesforce2",
        "mappings": {"Account": ["Rating"]},
    }
    lease = store.acquire(SWAP, "test", 10_000)
    store.set_plan(lease, plan, current=True)
    store.release(lease)
    client = WebClient(
        token=slack.token,
        base_url=slack.api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=10)],
    )
    return store, ChannelNotifier(store, client, "C0SWAP", clock=clock, min_edit_interval=3.0)


def publish(store: Store, kind: str, **fields) -> None:
    store.publish(SWAP, Event(kind=kind, swap_id=SWAP, **fields).model_dump(mode="json"))


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
        thread = slack.messages("C0SWAP")
        root = thread[0]
        [progress_msg] = [m for m in slack.thread("C0SWAP", root.ts) if "Account" in said(m)]
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
