"""The progress message ("the card") the notifier edits in place in the swap's thread: what it
shows is always right. The outage's clock runs only inside the outage and then stops at its
final figure; the step is the one running now (or the last one done and the next); the phase is
shown; a notifier that restarted reads the swap's record. And every kind of message swapbot
sends, rendered at its biggest, stays within Slack's limits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from swapbot.slack import blocks as B
from swapbot.swap import steps as runbook
from swapbot.swap.events import Event
from swapbot.swap.store import Store
from swapbot.swap.views import Status
from swapbot.testing.rehearsal import said
from swapbot.testing.standin import Message, SlackStandIn
from tests.test_slack_blocks import (
    a_plan,
    at,
    many_mappings,
    request,
    status_doc,
    unchecked_plan,
    valid,
)
from tests.test_slack_notifier import SWAP, Clock, progress, publish, setup

T0 = 1_700_000_000.0


def when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def card(slack: SlackStandIn, store: Store) -> Message:
    ts = store.redis.get(store.swap_key(SWAP, "slack", "progress"))
    assert ts, "no progress message yet"
    found = slack.message("C0SWAP", ts.decode())
    assert found is not None
    return found


def head(msg: Message) -> str:
    """The card's first section, as a person reads it."""
    return msg.blocks[0]["text"]["text"]


# -- the outage's clock ----------------------------------------------------------------------
def test_the_outage_clock_stops_when_the_outage_ends(redis_prefix):
    """The issue: "outage running 35m 00s" half an hour after the outage ended. The clock is
    the outage's own (its landmarks' times), and once it ended the card shows its final figure
    and when it ended, however late it is drawn again."""
    clock = Clock()
    clock.now = T0
    with SlackStandIn() as slack:
        store, notifier = setup(redis_prefix, slack, clock)
        progress(store, 10)
        notifier.pump()
        publish(store, "outage.started", step="stop-writes", at=when(T0 + 10))
        clock.now = T0 + 100
        notifier.pump()
        assert f":rotating_light: outage running 1m 30s (since {at(T0 + 10)})" in head(
            card(slack, store)
        )
        publish(store, "outage.ended", step="restore", at=when(T0 + 322), data={"seconds": 312})
        clock.now = T0 + 330
        notifier.pump()
        clock.now = T0 + 322 + 30 * 60  # half an hour later, news of the backlog
        publish(store, "backlog", data={"rows": 0, "oldest_seconds": 0})
        notifier.pump()
        shown = head(card(slack, store))
        assert f":stopwatch: outage 5m 12s, ended {at(T0 + 322)}" in shown
        assert "outage running" not in said(card(slack, store))
        assert "*after the outage*" in shown
        assert not slack.violations


def test_the_outage_clock_runs_between_events(redis_prefix):
    """Inside the outage the card is drawn again every `outage_tick` seconds without news, so
    that its clock runs; outside it, it is left alone."""
    clock = Clock()
    clock.now = T0
    with SlackStandIn() as slack:
        store, notifier = setup(redis_prefix, slack, clock, outage_tick=10.0)
        progress(store, 10)
        publish(store, "outage.started", step="stop-writes", at=when(T0))
        notifier.pump()
        edits = len(card(slack, store).edits)
        clock.now = T0 + 5
        notifier.pump()
        assert len(card(slack, store).edits) == edits  # not yet a tick
        clock.now = T0 + 65
        notifier.pump()
        assert len(card(slack, store).edits) == edits + 1
        assert ":rotating_light: outage running 1m 05s" in head(card(slack, store))
        publish(store, "outage.ended", step="restore", at=when(T0 + 70))
        clock.now = T0 + 80
        notifier.pump()
        edits = len(card(slack, store).edits)
        clock.now = T0 + 600
        notifier.pump()
        assert len(card(slack, store).edits) == edits  # the clock stopped: nothing to redraw


# -- the step and the phase ------------------------------------------------------------------
def test_the_card_shows_the_step_running_now(redis_prefix):
    """The issue: `delete-old` shown during `restore`. Every step event redraws the card."""
    clock = Clock()
    with SlackStandIn() as slack:
        store, notifier = setup(redis_prefix, slack, clock)
        progress(store, 10)
        publish(store, "outage.started", step="stop-writes")
        publish(store, "step.started", step="delete-old", at=when(T0))
        notifier.pump()
        assert "*Step:* delete-old — running" in head(card(slack, store))
        for name in ("delete-old", "resume-old", "verify"):
            if name != "delete-old":
                publish(store, "step.started", step=name)
            publish(store, "step.done", step=name)
        publish(store, "step.started", step="restore", at=when(T0 + 60))
        clock.now += 5
        notifier.pump()
        shown = head(card(slack, store))
        assert f"*Step:* restore — running since {at(T0 + 60)}" in shown
        assert "delete-old" not in shown
        assert shown.startswith(":rotating_light: swap notify-1 · *outage*")

        # none running: the last done and the next, in the runbook's order
        publish(store, "step.done", step="restore")
        clock.now += 5
        notifier.pump()
        shown = head(card(slack, store))
        assert "*Step:* none running · last done *restore* · next *external-objects*" in shown


def test_the_card_says_rolled_back_and_done(redis_prefix):
    clock = Clock()
    with SlackStandIn() as slack:
        store, notifier = setup(redis_prefix, slack, clock)
        progress(store, 10)
        publish(store, "outage.started", step="stop-writes", at=when(T0))
        publish(store, "rollback.started", message="U0OPERATOR rolls the swap back")
        notifier.pump()
        assert "*rolling back*" in head(card(slack, store))
        publish(store, "rollback.done", message="rolled back", at=when(T0 + 200))
        clock.now += 5
        notifier.pump()
        shown = head(card(slack, store))
        assert shown.startswith(":leftwards_arrow_with_hook: swap notify-1 · *rolled back*")
        # the rollback brought the app back: the outage's clock stopped there
        assert f":stopwatch: outage 3m 20s, ended {at(T0 + 200)}" in shown
        publish(store, "step.started", step="stop-writes")  # tried again
        publish(store, "swap.done", message="every step is done")
        clock.now += 5
        notifier.pump()
        assert head(card(slack, store)).startswith(":tada: swap notify-1 · *done*")


def test_a_restarted_notifier_reads_the_swap_record(redis_prefix):
    """A notifier that restarted knows no event before its cursor: the card comes from the
    swap's checkpoints and landmarks (the outage's start and end), not from an empty memory."""
    clock = Clock()
    with SlackStandIn() as slack:
        store, notifier = setup(redis_prefix, slack, clock)
        lease = store.acquire(SWAP, "runner", 10_000)
        for step in runbook.STEPS:
            if step.name == "verify":
                break
            store.checkpoint(lease, step.name, status="done")
        store.checkpoint(lease, "verify", status="running")
        store.put_record(lease, "outage_started_at", T0)
        store.release(lease)
        progress(store, 10)
        clock.now = T0 + 75
        notifier.pump()
        shown = head(card(slack, store))
        assert shown.startswith(":rotating_light: swap notify-1 · *outage*")
        assert "*Step:* verify — running" in shown
        assert f"outage running 1m 15s (since {at(T0)})" in shown

        lease = store.acquire(SWAP, "runner", 10_000)
        store.checkpoint(lease, "verify", status="done")
        store.checkpoint(lease, "restore", status="failed", error="dynos did not boot")
        store.put_record(lease, "outage_ended_at", T0 + 90)
        store.release(lease)
        progress(store, 20)
        clock.now = T0 + 3600
        notifier.pump()
        shown = head(card(slack, store))
        assert "next *restore* (failed: run it again)" in shown
        assert "last done *verify*" in shown
        assert f":stopwatch: outage 1m 30s, ended {at(T0 + 90)}" in shown


# -- every message at its biggest --------------------------------------------------------------
LONG = "Very_Long_Custom_Object_Name_With_Many_Words__c" * 2  # cut to 60 characters


def biggest_status() -> Status:
    mappings = [
        {"object": f"{LONG}{i}", "state": "SYNC_ERROR" if i % 7 else "DATA_SYNCED", "errors": i}
        for i in range(300)
    ]
    plan = unchecked_plan(mappings={f"{LONG}{i}": ["Field__c"] * 20 for i in range(300)})
    return status_doc(
        plan=plan,
        connections=[
            {"addon": "hc1", "state": "IDLE", "mappings": mappings},
            {"addon": "hc2", "state": "IDLE", "mappings": mappings},
        ],
        approvals=[request(id=f"pause-{i}", step="pause", note=LONG * 10) for i in range(30)],
        ledger=[{"key": f"k{i}", "what": LONG * 5, "owner": "U0OWNER"} for i in range(30)],
    )


def biggest_progress() -> dict[str, Any]:
    loads = {m["object"]: m for m in many_mappings(300, LONG)}
    return {
        "phase": "outage",
        "step": "wait-sync",
        "step_since": T0,
        "loads": loads,
        "backlog": {"rows": 10**9, "oldest_seconds": 86_400 * 3},
        "outage_started_epoch": T0,
    }


def biggest_event(kind: str) -> Event:
    return Event.model_validate(
        {
            "kind": kind,
            "swap_id": "s" * 200,
            "step": LONG,
            "actor": "U0OPERATOR",
            "message": ("U0APPROVER approved <https://x.test|this> & that " * 200),
            "data": {"link": "https://x.test/" + "a" * 1900, "person": "U0PERSON", "seconds": 1},
        }
    )


MESSAGES = {
    "status card": lambda: [B.status_message(biggest_status(), now=T0)],
    "progress card": lambda: [B.progress_message("s" * 300, biggest_progress(), now=T0)],
    "approval request": lambda: [
        B.approval_message(request(note=LONG * 30), a_plan(), step_summary=LONG * 30, now=T0)
    ],
    "approval decided": lambda: [
        B.approval_decided(
            request(status="granted", approver="U0APPROVER", granted_at="2023-11-14T22:20:05Z"),
            a_plan(),
            step_summary=LONG * 30,
            now=T0,
        )
    ],
    "milestones": lambda: [
        B.milestone_message(biggest_event(kind), now=T0)
        for kind in ("step.waiting", "approval.granted", "outage.ended", "notice", "reminder")
    ],
    "reply": lambda: [
        B.reply({"command": "/hcswap " + LONG, "message": LONG * 100, "text": LONG * 5000})
    ],
    "reply, whole": lambda: B.reply_pages(
        {"command": "/hcswap report", "calls": [LONG] * 300, "text": "\n".join([LONG] * 3000)}
    ),
    "refusal": lambda: [B.refusal(LONG * 100, people=["U0OPERATOR"])],
    "usage": lambda: [B.usage("\n".join([LONG] * 1000))],
}


@pytest.mark.parametrize("kind", MESSAGES)
def test_every_message_at_its_biggest_is_within_slack_limits(kind):
    """300 mappings, names longer than allowed, the longest texts: each message passes our
    limits (50 blocks, 3,000 characters a section, the combined text) and slack_sdk's
    models, and its text is within Slack's 40,000 characters."""
    rendered = MESSAGES[kind]()
    assert rendered
    for text, blks in rendered:
        valid((text, blks))
        assert len(blks) <= B.MAX_BLOCKS
        assert len(text) <= 40_000
        assert sum(len(t) for t in B._texts(blks)) <= B.MAX_TOTAL_TEXT
