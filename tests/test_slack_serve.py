"""`swapbot serve` and `swapbot worker` as Slack sees them: signed requests over real HTTP, the
Slack stand-in recording what the bot says, the sandbox and real Redis and PostgreSQL behind.

The stack starts once for this module; tests that change nothing come first, then the swap.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import requests

from swapbot.sandbox.scenarios import role_names
from swapbot.testing.rehearsal import Colleague, LocalSlack
from swapbot.testing.script import Team, WholeSwap
from swapbot.testing.services import REDIS_TEST_URL
from swapbot.testing.slack_stack import (
    APPROVER,
    CHANNEL,
    OPERATOR,
    READER,
    SECOND_APPROVER,
    running_stack,
    said,
    store,
    told,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalSlack]:
    with running_stack(tmp_path_factory.mktemp("logs")) as local:
        yield local


@pytest.fixture(scope="module")
def driver(stack):
    return stack.driver()


def swap_keys(stack: LocalSlack) -> set[bytes]:
    prefix = stack.env["SWAPBOT_REDIS_PREFIX"]
    client = redis.Redis.from_url(REDIS_TEST_URL)
    return {k for k in client.scan_iter(match=prefix + "swap*")}


# -- before any plan: reads, help, refusals, signatures --------------------------------------
def test_healthz_reports_redis_and_the_database(stack):
    r = requests.get(f"{stack.url}/healthz", timeout=5)
    assert r.status_code == 200
    doc = r.json()
    assert doc["redis"]["ok"] and doc["database"]["ok"]
    assert requests.get(f"{stack.url}/", timeout=5).status_code == 404


def test_status_is_acknowledged_at_once_and_answered_with_block_kit(stack, driver):
    ack, reply = stack.ask(driver, READER, "status")
    assert ack is not None and "Working on it" in said(ack)
    assert reply.blocks and len(reply.blocks) <= 50
    text = stack.slack.transcript(CHANNEL) + str(reply.blocks)
    assert "DATA_SYNCED" in text and "Account" in text
    assert not stack.slack.violations


def test_help_and_bad_input_are_answered_in_the_ack_and_queue_nothing(stack, driver):
    before = swap_keys(stack)
    n = len(stack.replies(OPERATOR))
    r = driver.command(READER, "help")
    assert r.status == 200 and "plan new" in said(stack.acks(READER)[-1])
    for text, message in [
        ("launch the rockets", "unknown or malformed subcommand"),
        ("approve", "usage: approve REQUEST_ID"),
        ("plan new --swap-id 'bad id!' --new-schema s2 --mappings Account", "swap id"),
        ("plan new --swap-id ok-id --new-schema salesforce --mappings Account", "differ"),
        ("pause --break-glass", "needs a value"),
    ]:
        r = driver.command(OPERATOR, text)
        assert r.status == 200
        assert message in said(stack.acks(OPERATOR)[-1]), text
    time.sleep(0.5)
    assert len(stack.replies(OPERATOR)) == n  # nothing was queued, so nothing answered
    assert swap_keys(stack) == before


@pytest.mark.parametrize(
    ("user", "text", "channel", "why"),
    [
        (READER, "preflight", CHANNEL, "Only operators may run"),
        (OPERATOR, "preflight", "C0OTHER", "run only in"),
        (READER, "approve pause-1", CHANNEL, "Only approvers may approve"),
        ("U0OUTSIDER", "history", "C0OTHER", "shared in"),
        (OPERATOR, "status --as U0APPROVER", CHANNEL, "is for the terminal"),
    ],
)
def test_people_who_may_not_are_refused_politely(stack, driver, user, text, channel, why):
    before = swap_keys(stack)
    r = driver.command(user, text, channel=channel)
    assert r.status == 200
    ack = stack.acks(user)[-1]
    assert why in said(ack)
    assert swap_keys(stack) == before


def test_forged_missing_and_stale_signatures_get_401_and_are_never_processed(stack, driver):
    n = len(stack.slack.ephemerals(OPERATOR))
    assert driver.command(OPERATOR, "status", signature="v0=" + "0" * 64).status == 401
    assert driver.command(OPERATOR, "status", unsigned=True).status == 401
    stale = int(time.time()) - 6 * 60
    assert driver.command(OPERATOR, "status", timestamp=stale).status == 401
    time.sleep(1.0)
    assert len(stack.slack.ephemerals(OPERATOR)) == n


def test_a_retried_command_runs_once(stack, driver):
    before = len(stack.replies(READER))
    trigger = f"retry-{uuid.uuid4().hex}"
    assert driver.command(READER, "history", trigger_id=trigger).status == 200
    assert driver.command(READER, "history", trigger_id=trigger, retry_num=1).status == 200
    stack.slack.wait_for(lambda: len(stack.replies(READER)) > before, timeout=20)
    time.sleep(1.5)
    assert len(stack.replies(READER)) == before + 1


# -- the swap, from Slack alone ----------------------------------------------------------------
class SwapWithTrouble(WholeSwap):
    """The whole swap as `make demo` runs it, with trouble at the approvals: people who may
    not approve, Slack's retries, and serve restarting as a reaction arrives."""

    def when_to_ask(self, step):
        return "ahead" if step.name == "pause" else "just-before"

    def reacted(self, step, msg):
        stack, driver, slack = self.local, self.driver, self.local.slack
        if step == "pause":
            assert msg.broadcast and "plan " in msg.text and f"<@{OPERATOR}>" in msg.text
            for who, why in [(OPERATOR, "cannot approve it"), (READER, "not one of the approvers")]:
                n = len(stack.replies(who))
                driver.react(who, CHANNEL, msg.ts)
                assert why in told(stack, who, n)
            n = len(stack.replies(APPROVER))
            granted = driver.react(APPROVER, CHANNEL, msg.ts)
            slack.wait_for(lambda: "approved by" in (slack.message(CHANNEL, msg.ts).text or ""), 20)
            driver.redeliver(granted.event_id, retry_num=1)  # Slack's retry of the same event
            time.sleep(1.0)
            assert len(stack.replies(APPROVER)) == n  # one reaction, one approval, no complaint
            audit = [e.action for e in store(stack).history("slack-swap", count=1000)]
            assert audit.count("approval.granted") == 1
            self.pause_request = msg
            return
        # pause's approval, used since, cannot be given again
        n = len(stack.replies(SECOND_APPROVER))
        driver.react(SECOND_APPROVER, CHANNEL, self.pause_request.ts)
        assert "already approved and used" in told(stack, SECOND_APPROVER, n)
        # delete-old's: the first reaction arrives while serve restarts, a second approver
        # reacts at the same moment as Slack's retry
        stack.kill("serve")
        with contextlib.suppress(requests.ConnectionError):  # Slack cannot deliver it; it retries
            driver.react(APPROVER, CHANNEL, msg.ts)
        event_id = list(driver.deliveries)[-1]
        stack.start_serve()
        both = [
            threading.Thread(target=driver.redeliver, args=(event_id,), kwargs={"retry_num": 1}),
            threading.Thread(target=driver.react, args=(SECOND_APPROVER, CHANNEL, msg.ts)),
        ]
        for t in both:
            t.start()
        for t in both:
            t.join()
        slack.wait_for(lambda: "approved by" in (slack.message(CHANNEL, msg.ts).text or ""), 20)
        time.sleep(1.0)
        audit = [e.action for e in store(stack).history("slack-swap", count=1000)]
        assert audit.count("approval.granted") == 2  # pause's and delete-old's, once each


@pytest.mark.slow
def test_a_whole_swap_run_from_slack(stack, driver):
    slack = stack.slack
    Colleague(stack, driver, SECOND_APPROVER)
    SwapWithTrouble(
        stack,
        driver,
        Team(OPERATOR, APPROVER, SECOND_APPROVER),
        swap_id="slack-swap",
        mappings="Account:Rating;Contact:Phone",
        role=role_names(stack.db_name)[0],
    ).run()
    checkpoints = store(stack).checkpoints("slack-swap")
    assert all(checkpoints[s].status in ("done", "skipped") for s in checkpoints), checkpoints

    # what the channel saw (the notifier follows the events a moment later)
    slack.wait_for(lambda: "swap done" in slack.transcript(CHANNEL), 20)
    said_in_channel = slack.transcript(CHANNEL)
    for expected in (
        "outage started",
        "outage ended",
        "*delete-old* done",
        "approved by <@U0APPROVER>",
    ):
        assert expected in said_in_channel, said_in_channel
    # the report: the outage and its split, the objects carried, the parity of the two copies
    slack.wait_for(lambda: "parity (end of prep" in slack.transcript(CHANNEL), 20)
    _, reply = stack.ask(driver, READER, "report")
    shown = said(reply)
    for expected in ("between steps", "the bot's own", "objects carried in prep", "account"):
        assert expected in shown, shown
    assert "parity (end of prep, the app still writing)" in shown
    broadcast = [m.text for m in slack.messages(CHANNEL) if m.broadcast]
    assert any("outage started" in (t or "") for t in broadcast)
    assert not slack.violations, slack.violations
