"""The App Home tab: a reader who opens swapbot's Home tab sees the current swap's card (the
channel's own), the last few swaps in a line each, and the latest done swap's report; anyone
else, a short tab saying they are not one of swapbot's readers.

The web process only verifies and hands the `app_home_opened` event off, once per event id
(503 when Redis would not take it); the worker reads Redis and calls views.publish. Here the
Bolt app is served over real HTTP, signed events come from the driver, the job runs as the
worker would run it (the intake makes it an rq job), against the real Redis and the Slack
stand-in. First the views alone, then the whole way.
"""

from __future__ import annotations

import json
import re
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import redis
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from swapbot import config, jobs
from swapbot.slack import home, work
from swapbot.slack.app import build_app
from swapbot.slack.blocks import home as H
from swapbot.slack.notifier import ChannelNotifier
from swapbot.swap import record as swaprecord
from swapbot.swap import report
from swapbot.swap.events import Event
from swapbot.swap.store import Store
from swapbot.testing.driver import SlackDriver
from swapbot.testing.services import REDIS_TEST_URL
from swapbot.testing.slack_stack import APPROVER, CHANNEL, OPERATOR, READER, standin
from swapbot.testing.standin import SlackStandIn, validate_blocks, validate_home_view
from tests.test_slack_buttons import SECRET, web_settings
from tests.test_slack_notifier import plan_of

OUTSIDER = "U0OUTSIDER"  # in the workspace, not in the swap channel
SWAP, DONE = "home-now", "home-before"
NOW = 1_700_000_000.0


def valid(view: dict[str, Any]) -> dict[str, Any]:
    """A Home view as slack_sdk's models, the stand-in's checks and Slack's limits take it."""
    model = View(**{k: view[k] for k in ("type", "blocks", "callback_id") if k in view})
    model.validate_json()  # raises SlackObjectFormationError on a violation
    assert model.to_dict()
    for block in view["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()
    assert validate_home_view(view) == []
    assert validate_blocks(view["blocks"], most=100) == []
    H.check_view(view)
    assert len(view["blocks"]) <= 100 and len(json.dumps(view)) <= 250_000
    return view


def shown(view: dict[str, Any]) -> str:
    """Everything the view's blocks say, as one text."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(view["blocks"])
    return "\n".join(found)


def headers(view: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"]


def under(view: dict[str, Any], header: str) -> dict[str, Any]:
    """The first section under the header `header`."""
    blocks = view["blocks"]
    at = next(
        i for i, b in enumerate(blocks) if b["type"] == "header" and b["text"]["text"] == header
    )
    return next(b for b in blocks[at + 1 :] if b["type"] == "section")


# -- the swaps in Redis ------------------------------------------------------------------------
def make_swap(
    store: Store,
    swap_id: str,
    *,
    current: bool,
    records: dict[str, Any],
    at: float | None = None,
) -> None:
    """A swap with its plan saved (its last activity `at`), three prep steps done, `records`."""
    lease = store.acquire(swap_id, "test", 10_000)
    assert lease is not None
    store.set_plan(lease, plan_of(swap_id), current=current)
    with store.transition(lease) as tx:
        for name, value in records.items():
            tx.put_record(name, value)
        for step in ("preflight", "create-addon", "configure"):
            tx.checkpoint(step, status="done")
    store.release(lease)
    store.audit(swap_id, OPERATOR, "plan saved", at=at)


def publish(store: Store, swap_id: str, kind: str, **fields: Any) -> None:
    event = Event(kind=kind, swap_id=swap_id, **fields).model_dump(mode="json")
    store.publish(swap_id, event)


def mid_outage(store: Store, started: float) -> None:
    """The current swap inside its outage: stop-writes done, drain running, a load synced."""
    make_swap(store, SWAP, current=True, records={"outage_started_at": started})
    publish(
        store,
        SWAP,
        "load.progress",
        message="hc2 Account: 100%",
        data={"object": "Account", "db": 100, "sf": 100, "state": "DATA_SYNCED"},
    )
    lease = store.acquire(SWAP, "test", 10_000)
    store.checkpoint(lease, "stop-writes", status="done")
    store.checkpoint(lease, "drain", status="running")
    store.release(lease)
    publish(store, SWAP, "outage.started", step="stop-writes")
    publish(store, SWAP, "step.started", step="drain")


def parity(tables: int) -> dict[str, Any]:
    return {
        "equal": True,
        "compared_at": NOW - 2000,
        "tables": [
            {
                "table": f"table_{i:04d}__c",
                "rows_old": 1_000_000 + i,
                "rows_new": 1_000_000 + i,
                "differing_rows": 0,
            }
            for i in range(tables)
        ],
    }


def done_swap(store: Store, *, tables: int, current: bool = False) -> None:
    """A swap that is done: its outage of 5m 12s, and parity over `tables` tables."""
    make_swap(
        store,
        DONE,
        current=current,
        records={
            "outage_started_at": NOW - 1000,
            "outage_ended_at": NOW - 1000 + 312,
            swaprecord.FINISHED: NOW - 600,
            "parity": parity(tables),
        },
    )


# -- the views alone ---------------------------------------------------------------------------
def test_a_300_table_report_is_shown_whole_in_sections_within_the_limits(redis_prefix):
    facts = H.HomeFacts(
        channel=CHANNEL,
        card=None,
        swaps=[H.SwapLine(DONE, "acme-prod", "done", NOW - 1000, NOW - 688, NOW - 600)],
        report=H.ReportText(DONE, NOW - 600, report_text(redis_prefix, tables=300)),
    )
    view = valid(H.home_view(facts, now=NOW))
    text = shown(view)
    assert f"Report of swap {DONE}" in headers(view)
    code = [b for b in view["blocks"] if b["type"] == "section" and "```" in b["text"]["text"]]
    assert len(code) > 1  # chunked: a section holds at most 3000 characters
    assert all(len(b["text"]["text"]) <= 3000 for b in code)
    for i in range(300):
        assert f"table_{i:04d}__c" in text  # whole: nothing left out
    assert "more lines not shown" not in text


def test_a_report_too_big_for_the_tab_stops_within_100_blocks_and_says_what_is_left(
    redis_prefix,
):
    text = report_text(redis_prefix, tables=6000)
    facts = H.HomeFacts(CHANNEL, None, [], H.ReportText(DONE, NOW, text))
    view = valid(H.home_view(facts, now=NOW))
    assert len(view["blocks"]) <= 100
    assert "more lines not shown here: the swap's thread in <#C0SWAP> has the report whole" in (
        shown(view)
    )


def report_text(redis_prefix: str, *, tables: int) -> str:
    """The report `swapbot.swap.report` renders for a done swap with `tables` tables."""
    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)
    done_swap(store, tables=tables)
    return report.render(report.report(store, DONE))


def test_the_stranger_and_the_failed_tabs_say_little_and_name_the_channel():
    stranger = valid(H.stranger_view(CHANNEL, now=NOW))
    assert "You are not one of swapbot's readers" in shown(stranger)
    assert "<#C0SWAP>" in shown(stranger)
    unsure = valid(H.stranger_view(CHANNEL, checked=False, now=NOW))
    assert "could not check just now" in shown(unsure)
    failed = valid(H.failed_view("RedisError: <!channel> went away", now=NOW))
    assert "could not draw this tab: RedisError: &lt;!channel&gt; went away" in shown(failed)


# -- the whole way: a signed event, the handoff, the job, views.publish ------------------------
class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Home:
    settings: config.Settings
    store: Store
    slack: SlackStandIn
    driver: SlackDriver
    conn: redis.Redis

    def queued(self) -> list[dict[str, Any]]:
        intake = jobs.intake_keys(self.settings)[0]
        return [json.loads(raw) for raw in self.conn.lrange(intake, 0, -1)]

    def run_jobs(self) -> list[dict[str, Any]]:
        """What the worker does with the requests queued: each an rq job, run here."""
        intake, done = jobs.Intake(self.settings, self.conn), []
        while (job := intake.take()) is not None:
            done.append(job.perform())
        return done

    def open(self, user: str, **kw: Any) -> dict[str, Any] | None:
        """`user` opens the Home tab; the view published for them once the job ran."""
        response = self.driver.open_home(user, **kw)
        assert response.status == 200, response.body
        self.run_jobs()
        return self.slack.home(user)


@pytest.fixture
def h(redis_prefix, monkeypatch) -> Iterator[Home]:
    slack = standin()
    settings = web_settings(slack, redis_prefix)
    conn = redis.Redis.from_url(REDIS_TEST_URL)
    store = Store(conn, redis_prefix)
    client = WebClient(token=slack.token, base_url=slack.api_url)
    # The worker's context: the stand-in's client and this test's Redis (the tab reads no more).
    monkeypatch.setattr(work, "context", lambda: (settings, client, types.SimpleNamespace(store=store)))  # fmt: skip
    app = build_app(settings, token_verification_enabled=False)  # with the Home listener
    server = make_server(
        "127.0.0.1", 0, SlackRequestHandler(app), server_class=_Server, handler_class=_Quiet
    )
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    driver = SlackDriver(f"http://127.0.0.1:{server.server_port}/slack/events", SECRET, slack)
    try:
        yield Home(settings, store, slack, driver, conn)
    finally:
        server.shutdown()
        server.server_close()
        slack.stop()


def published(h: Home) -> dict[str, Any]:
    """The view of the last views.publish call, as swapbot sent it (a JSON string)."""
    params = h.slack.calls_to("views.publish")[-1].params
    return json.loads(params["view"]) if isinstance(params["view"], str) else params["view"]


def test_with_no_swap_a_reader_is_told_so(h):
    view = h.open(OPERATOR)
    assert view is not None and headers(view)[:3] == ["swapbot", "Current swap", "Recent swaps"]
    assert "No swap is in progress" in shown(view) and "No swap yet." in shown(view)
    assert not any(b["type"] == "actions" for b in view["blocks"])  # nothing to click here
    valid(published(h))
    assert h.slack.violations == []


def test_mid_outage_the_tab_shows_the_channels_card_and_its_clock(h):
    started = time.time() - 90
    mid_outage(h.store, started)
    view = h.open(OPERATOR)
    assert view is not None
    text = shown(view)
    assert f":rotating_light: swap {SWAP} · *outage*" in text
    # the clock runs from the outage's start: 90 s ago, and a moment for the job
    assert re.search(rf"outage running 1m \d\ds \(since <!date\^{int(started)}\^", text)
    assert "*Step:* drain — running" in text and "1 of 1 loads in sync" in text
    assert re.search(rf"`{SWAP}` · acme-prod · in progress · outage running 1m \d\ds", text)
    assert not any(b["type"] == "actions" for b in view["blocks"])  # the card without buttons
    valid(published(h))

    # the same card as the channel's: drawn by the notifier from the same swap at the same time
    client = WebClient(token=h.slack.token, base_url=h.slack.api_url)
    at = time.time()
    notifier = ChannelNotifier(h.store, client, CHANNEL, clock=lambda: at, min_post_interval=0)
    notifier.pump()
    channel_card = h.slack.message(
        CHANNEL, h.conn.get(h.store.swap_key(SWAP, "slack", "progress")).decode()
    )
    drawn = home.draw(h.store, client, h.settings, OPERATOR, now=at)
    assert under(drawn, "Current swap")["text"]["text"] == channel_card.blocks[0]["text"]["text"]


def test_after_a_done_swap_its_report_is_shown_chunked_within_100_blocks(h):
    done_swap(h.store, tables=300, current=True)
    view = h.open(APPROVER)
    assert view is not None
    text = shown(view)
    assert f"Report of swap {DONE}" in headers(view)
    assert f"`{DONE}` · acme-prod · done <!date^{int(NOW - 600)}^" in text
    assert "outage 5m 12s" in text
    assert f"swap {DONE}: done" in text and "table_0299__c" in text
    sections = [b for b in view["blocks"] if "```" in (b.get("text") or {}).get("text", "")]
    assert len(sections) > 1 and len(view["blocks"]) <= 100
    assert not any(b["type"] == "actions" for b in view["blocks"])  # no Plan a swap either
    valid(published(h))
    assert h.slack.violations == []


def test_the_last_five_swaps_are_listed_the_current_one_first(h):
    done_swap(h.store, tables=3)  # its plan saved at the time of the call: the oldest here
    for i in range(5):
        make_swap(h.store, f"home-old-{i}", current=False, records={}, at=time.time() + i)
    mid_outage(h.store, time.time() - 30)  # the current swap, listed first however old
    view = h.open(OPERATOR)
    assert view is not None
    listing = under(view, "Recent swaps")["text"]["text"].splitlines()
    assert len(listing) == 5 and f"`{SWAP}`" in listing[0] and "in progress" in listing[0]
    assert "`home-old-4`" in listing[1] and "left unfinished" in listing[1]
    assert f"`{DONE}`" not in "\n".join(listing)  # the oldest activity falls off the list
    assert f"Report of swap {DONE}" in headers(view)  # its report still shown: the latest done


def test_a_channel_member_reads_and_a_stranger_is_told_they_are_not_a_reader(h):
    mid_outage(h.store, time.time() - 60)
    reader = h.open(READER)  # neither operator nor approver: a member of the swap channel
    assert reader is not None and f"swap {SWAP}" in shown(reader)
    asked = h.slack.count("conversations.members")
    assert asked >= 1
    h.open(READER)
    assert h.slack.count("conversations.members") == asked  # Slack's answer kept a minute

    stranger = h.open(OUTSIDER)
    assert stranger is not None
    assert "You are not one of swapbot's readers" in shown(stranger)
    assert SWAP not in json.dumps(stranger)  # nothing of the swap
    valid(published(h))

    before = h.slack.count("conversations.members")
    h.open(OPERATOR)  # an operator reads anywhere: no need to ask Slack
    assert h.slack.count("conversations.members") == before
    assert h.slack.violations == []


def test_the_event_is_handed_off_once_when_slack_retries_it(h):
    first = h.driver.open_home(OPERATOR, event_id="Ev0HOME1")
    again = h.driver.redeliver("Ev0HOME1", retry_num=1)
    assert (first.status, again.status) == (200, 200)
    (request,) = h.queued()
    assert request["func"] == "swapbot.slack.home.publish_home" == home.PUBLISH
    assert (request["args"], request["key"]) == ([OPERATOR], "Ev0HOME1")
    assert [r["status"] for r in h.run_jobs()] == ["done"]
    assert h.slack.count("views.publish") == 1 and len(h.slack.homes(OPERATOR)) == 1


def test_an_event_redis_would_not_take_is_answered_503_and_its_retry_is_taken(h):
    intake = jobs.intake_keys(h.settings)[0]
    h.conn.set(intake, "not a list")  # the push fails (WRONGTYPE): nothing may be marked
    assert h.driver.open_home(OPERATOR, event_id="Ev0HOME2").status == 503
    assert not h.conn.exists(h.store.key("dedupe", "slack-event", "Ev0HOME2"))
    h.conn.delete(intake)
    assert h.driver.redeliver("Ev0HOME2", retry_num=1).status == 200
    assert [r["key"] for r in h.queued()] == ["Ev0HOME2"]


def test_the_messages_tab_is_left_alone(h):
    assert h.open(OPERATOR, tab="messages") is None
    assert h.queued() == [] and h.slack.count("views.publish") == 0


def test_a_tab_that_cannot_be_drawn_says_why_in_one_line(h, monkeypatch):
    def broken(*_: Any) -> None:
        raise redis.exceptions.ConnectionError("Redis went away at redis://:hunter2@host:6379")

    monkeypatch.setattr(home, "facts", broken)
    view = h.open(OPERATOR)
    assert view is not None and "could not draw this tab: ConnectionError" in shown(view)
    assert "hunter2" not in json.dumps(view)
    valid(view)
