"""Reminders reach the swap's thread when they fall due, and not before: the watcher, the
engine and the notifier together, with Slack's stand-in.

The watcher's own timing is tests/test_swap_reminders.py; here a watcher looks at chosen times
and the notifier delivers what it emitted, as the running bot does each round.
"""

from __future__ import annotations

from slack_sdk import WebClient

from swapbot.slack.notifier import ChannelNotifier
from swapbot.swap.watcher import ASKED, EXPIRY_NUDGE_SECONDS, PERSON_NUDGE_SECONDS, Watcher
from swapbot.testing.rehearsal import said
from swapbot.testing.standin import SlackStandIn
from swapbot.testing.swaps import APPROVER, OPERATOR, PERSON, demo_plan, make_engine

CHANNEL = "C0SWAP"


def nudges(slack: SlackStandIn, root: str) -> list[str]:
    return [said(m) for m in slack.thread(CHANNEL, root) if said(m).startswith(":bell:")]


def test_reminders_reach_the_thread_when_due_and_mention_whom_they_nudge(
    sandbox, db_url, db_name, redis_prefix
):
    engine = make_engine(sandbox, db_url, redis_prefix, approval_ttl=3600)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    members = {OPERATOR, APPROVER, PERSON, "U0SWAPBOT"}
    with SlackStandIn(channels={CHANNEL: {"name": "swaps", "members": members}}) as slack:
        client = WebClient(token=slack.token, base_url=slack.api_url)
        notifier = ChannelNotifier(engine.store, client, CHANNEL, min_post_interval=0.0)
        notifier.pump()
        root = engine.store.redis.get(engine.store.swap_key("acme-test", "slack", "thread"))
        assert root, "the swap's thread was started"
        root = root.decode()

        # An approval asked for: nothing until five minutes before it expires, then once.
        assert engine.request_approval("pause", OPERATOR).ok
        (req,) = engine.approvals.pending("acme-test")
        watcher = Watcher(engine, "acme-prod")
        watcher.tick(now=req.expires_epoch - EXPIRY_NUDGE_SECONDS - 60)
        notifier.pump()
        assert nudges(slack, root) == []
        watcher.tick(now=req.expires_epoch - EXPIRY_NUDGE_SECONDS + 60)
        watcher.tick(now=req.expires_epoch - 30)
        notifier.pump()
        (nudge,) = nudges(slack, root)
        assert f"<@{APPROVER}>" in nudge and f"<!date^{int(req.expires_epoch)}^" in nudge

        # The person a step asked: nudged after ten minutes, then every ten minutes.
        for step in ("preflight", "create-addon", "configure"):
            assert engine.run_step(step, OPERATOR).ok
        assert engine.run_step("authorize", OPERATOR, wait=False).status == "waiting"
        asked = engine.store.get_record("acme-test", f"{ASKED}authorize")
        watcher.tick(now=asked["at"] + PERSON_NUDGE_SECONDS - 10)
        notifier.pump()
        assert len(nudges(slack, root)) == 1
        watcher.tick(now=asked["at"] + PERSON_NUDGE_SECONDS + 10)
        notifier.pump()
        person = nudges(slack, root)[1:]
        assert len(person) == 1 and f"<@{PERSON}>" in person[0] and "authorize" in person[0]
        watcher.tick(now=asked["at"] + 2 * PERSON_NUDGE_SECONDS + 10)
        notifier.pump()
        assert len(nudges(slack, root)) == 3
        assert not slack.violations
