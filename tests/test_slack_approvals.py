"""Reaction approvals from Slack, the cases a whole swap does not meet: the wrong emoji, a
reaction on another message, an expired request, a plan whose live facts changed, and a bot
that is not in the channel. Each is refused to the person, privately, and changes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from swapbot.heroku import ConnectClient
from swapbot.sandbox.scenarios import role_names
from swapbot.slack.rehearsal import LocalSlack
from tests.conftest import TOKEN
from tests.slack_support import (
    APPROVER,
    CHANNEL,
    OPERATOR,
    running_stack,
    said,
    store,
    told,
)

SWAP = "slack-approvals"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalSlack]:
    with running_stack(tmp_path_factory.mktemp("logs")) as local:
        driver = local.driver()
        role = role_names(local.db_name)[0]
        _, reply = local.ask(
            driver,
            OPERATOR,
            f"plan new --swap-id {SWAP} --new-schema salesforce2 --mappings Account:Rating "
            f"--roles {role} --process-types web",
        )
        assert "saved" in (reply.text or ""), reply.text
        yield local


@pytest.fixture
def driver(stack):
    return stack.driver()


def granted(stack: LocalSlack) -> int:
    return [e.action for e in store(stack).history(SWAP, count=1000)].count("approval.granted")


def request(stack: LocalSlack, driver, step: str = "pause"):
    before = {m.ts for m in stack.slack.messages(CHANNEL)}
    stack.ask(driver, OPERATOR, f"request-approval {step}")

    def new_request():
        for m in stack.slack.messages(CHANNEL):
            if m.ts not in before and (m.text or "").startswith(f"Approval needed: {step} "):
                return m
        return None

    return stack.slack.wait_for(new_request, timeout=20)


def test_other_emoji_are_not_approvals_and_other_messages_are_not_requests(stack, driver):
    msg = request(stack, driver)
    n = len(stack.replies(APPROVER))
    driver.react(APPROVER, CHANNEL, msg.ts, reaction="tada")  # not the approval emoji: ignored
    root = next(m for m in stack.slack.messages(CHANNEL) if "Heroku Connect swap" in (m.text or ""))
    driver.react(APPROVER, CHANNEL, root.ts)  # the right emoji on the thread's first message
    assert "does not ask for an approval" in told(stack, APPROVER, n)
    human = stack.slack.post_as(OPERATOR, CHANNEL, "shipping it")
    driver.react(APPROVER, CHANNEL, human.ts)  # a colleague's message: none of the bot's business
    driver.react(APPROVER, CHANNEL, msg.ts, reaction="white_check_mark::skin-tone-4")
    stack.slack.wait_for(lambda: "approved by" in (stack.slack.message(CHANNEL, msg.ts).text or ""))
    assert len(stack.replies(APPROVER)) == n + 1  # only the refusal on the root message
    assert granted(stack) == 1


def test_an_expired_request_is_refused(stack, driver):
    msg = request(stack, driver, "delete-old")
    req_id = store(stack).redis.hget(
        store(stack).swap_key(SWAP, "slack", "approvals"), "delete-old-2"
    )
    assert req_id is not None  # the notifier remembers which message asks for which request
    key = store(stack).swap_key(SWAP, "approval", "delete-old-2")
    store(stack).redis.hset(key, "expires_epoch", "1000.0")  # its time ran out long ago
    n, before = len(stack.replies(APPROVER)), granted(stack)
    driver.react(APPROVER, CHANNEL, msg.ts)
    assert "expired" in told(stack, APPROVER, n)
    assert granted(stack) == before


def test_a_request_whose_live_facts_changed_is_refused(stack, driver):
    msg = request(stack, driver)
    connect = ConnectClient(TOKEN, stack.sandbox.central_url)
    hc1 = connect.find_connection("acme-prod", "hc1")
    account = connect.get_connection(hc1).mapping("Account")
    config = connect.get_mapping(hc1, account.id).config
    connect.update_mapping(hc1, account.id, config)  # someone edits hc1's mapping: a new revision
    n, before = len(stack.replies(APPROVER)), granted(stack)
    driver.react(APPROVER, CHANNEL, msg.ts)
    assert "changed" in told(stack, APPROVER, n)
    assert granted(stack) == before


def test_without_the_bot_in_the_channel_reactions_never_arrive_and_status_says_so(stack, driver):
    msg = request(stack, driver)
    stack.slack.remove_member(CHANNEL, "U0SWAPBOT")
    store(stack).redis.delete(
        store(stack).key("slack", "in-channel", CHANNEL)
    )  # asked a minute ago
    try:
        assert driver.react(APPROVER, CHANNEL, msg.ts) is None  # Slack does not deliver it
        _, reply = stack.ask(driver, OPERATOR, "status")
        assert "/invite" in (reply.text or "") + str(reply.blocks)
    finally:
        stack.slack.add_member(CHANNEL, "U0SWAPBOT")


def test_the_other_subcommands_answer_from_slack(stack, driver):
    def answer(user: str, text: str) -> str:
        _, reply = stack.ask(driver, user, text)
        return said(reply)

    shown = answer(OPERATOR, "plan show")
    assert "fingerprint" in shown and "predicted" in shown and "preflight" in shown
    assert "saved" in answer(OPERATOR, "plan set roles=" + role_names(stack.db_name)[0])
    assert "would make" in answer(OPERATOR, "preflight --dry-run")
    n = len(stack.acks(OPERATOR))
    driver.command(OPERATOR, "help history")  # help is answered in the ack itself
    assert "usage: history" in said(stack.acks(OPERATOR)[n])
    request(stack, driver)
    asked = store(stack).redis.hkeys(store(stack).swap_key(SWAP, "slack", "approvals"))
    latest = max((k.decode() for k in asked if k.startswith(b"pause-")), key=lambda k: int(k[6:]))
    assert "cannot approve it" in answer(OPERATOR, f"approve {latest}")  # not one's own
    assert "approved pause" in answer(APPROVER, f"approve {latest}")  # by command, as well
    assert "refused" in answer(OPERATOR, "ledger done old-tables")  # nothing is past delete-old
    assert "plan.saved" in answer(OPERATOR, "history")


def test_rollback_from_slack_reports_to_the_channel_and_a_dry_run_does_not(stack, driver):
    def answer(text: str) -> str:
        _, reply = stack.ask(driver, OPERATOR, text)
        return said(reply)

    assert "done" in answer("preflight")
    assert "would make" in answer("rollback --dry-run")
    time.sleep(1.0)  # the notifier would have posted by now
    assert "rollback started" not in stack.slack.transcript(CHANNEL)
    assert "rolled back" in answer("rollback")
    stack.slack.wait_for(lambda: "rollback done" in stack.slack.transcript(CHANNEL), timeout=20)
    broadcast = [m.text or "" for m in stack.slack.messages(CHANNEL) if m.broadcast]
    assert any("rollback started" in t for t in broadcast)
