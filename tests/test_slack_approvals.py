"""Reaction approvals from Slack, the cases a whole swap does not meet: the wrong emoji, a
reaction on another message, an expired request, a plan whose live facts changed, and a bot
that is not in the channel. Each is refused to the person, privately, and changes nothing.
Then what must never be lost: a reaction whose handoff failed is taken on Slack's retry, a
reaction whose job failed is answered, removing the reaction withdraws an unused approval, and
a command whose job failed is answered."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import requests

from swapbot.heroku import ConnectClient
from swapbot.sandbox.scenarios import role_names
from swapbot.slack.notifier import ApprovalMessages
from swapbot.swap.approvals import Approvals, ApprovalStatus
from swapbot.testing.rehearsal import LocalSlack
from swapbot.testing.services import TOKEN, wait_until
from swapbot.testing.slack_stack import (
    APPROVER,
    CHANNEL,
    OPERATOR,
    SECOND_APPROVER,
    plan_new,
    running_stack,
    said,
    store,
    told,
)

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow

SWAP = "slack-approvals"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalSlack]:
    with running_stack(tmp_path_factory.mktemp("logs")) as local:
        plan_new(local, local.driver(), SWAP, "--mappings Account:Rating --process-types web")
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


def refusal(stack: LocalSlack, driver, msg) -> str:
    """The approver reacts to `msg` with the approval emoji and is refused: what they are told
    privately. No approval is granted."""
    n, before = len(stack.replies(APPROVER)), granted(stack)
    driver.react(APPROVER, CHANNEL, msg.ts)
    answer = told(stack, APPROVER, n)
    assert granted(stack) == before
    return answer


def test_other_emoji_are_not_approvals_and_other_messages_are_not_requests(stack, driver):
    msg = request(stack, driver)
    n = len(stack.replies(APPROVER))
    driver.react(APPROVER, CHANNEL, msg.ts, reaction="tada")  # not the approval emoji: ignored
    root = store(stack).redis.get(store(stack).swap_key(SWAP, "slack", "thread")).decode()
    driver.react(APPROVER, CHANNEL, root)  # the right emoji on the thread's first: the card
    assert "does not ask for an approval" in told(stack, APPROVER, n)
    human = stack.slack.post_as(OPERATOR, CHANNEL, "shipping it")
    driver.react(APPROVER, CHANNEL, human.ts)  # a colleague's message: none of the bot's business
    driver.react(APPROVER, CHANNEL, msg.ts, reaction="white_check_mark::skin-tone-4")
    stack.slack.wait_for(lambda: "approved by" in (stack.slack.message(CHANNEL, msg.ts).text or ""))
    assert len(stack.replies(APPROVER)) == n + 1  # only the refusal on the root message
    assert granted(stack) == 1


def test_an_expired_request_is_refused(stack, driver):
    msg = request(stack, driver, "delete-old")
    approvals = store(stack).swap_key(SWAP, "slack", "approvals")
    # the notifier remembers which message asks for which request (just after posting it)
    wait_until(
        lambda: store(stack).redis.hget(approvals, "delete-old-2"), what="the request's message"
    )
    key = store(stack).swap_key(SWAP, "approval", "delete-old-2")
    store(stack).redis.hset(key, "expires_epoch", "1000.0")  # its time ran out long ago
    assert "expired" in refusal(stack, driver, msg)


def test_a_request_whose_live_facts_changed_is_refused(stack, driver):
    msg = request(stack, driver)
    connect = ConnectClient(TOKEN, stack.sandbox.central_url)
    hc1 = connect.find_connection("acme-prod", "hc1")
    account = connect.get_connection(hc1).mapping("Account")
    config = connect.get_mapping(hc1, account.id).config
    # someone edits hc1's mapping: a new revision
    connect.update_mapping(hc1, account.id, "Account", config)
    assert "changed" in refusal(stack, driver, msg)


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
    probed = answer(OPERATOR, "probe")  # the probe's read-only checks, its table in the answer
    assert "counts-field-name" in probed and "confirmed" in probed and "not probed" in probed


# -- approvals are never lost, and every failure answers -------------------------------------
def request_id(stack: LocalSlack, msg) -> str:
    found = ApprovalMessages(store(stack)).request_for(CHANNEL, msg.ts)
    assert found is not None and found[0] == SWAP
    return found[1]


def status_of(stack: LocalSlack, rid: str) -> ApprovalStatus:
    return Approvals(store(stack)).get(SWAP, rid).status


def faults(stack: LocalSlack, **body) -> None:
    r = requests.post(f"{stack.sandbox.base_url}/_sandbox/faults", json=body, timeout=5)
    r.raise_for_status()


def test_a_reaction_whose_handoff_failed_is_taken_on_slacks_retry(stack, driver):
    """serve used to mark the event id seen before pushing it: when the push failed, Slack's
    retry was acknowledged and dropped, and the approval lost."""
    msg = request(stack, driver)
    rid, before, n = request_id(stack, msg), granted(stack), len(stack.replies(APPROVER))
    r = store(stack).redis
    intake = stack.env["SWAPBOT_REDIS_PREFIX"] + "intake"
    r.delete(intake)
    r.set(intake, "not a list")  # LPUSH fails (WRONGTYPE), as a failover or a dying dyno might
    try:
        first = driver.react(APPROVER, CHANNEL, msg.ts)
        assert first.status >= 500  # not handed off: Slack must deliver it again
    finally:
        r.delete(intake)
    retry = driver.redeliver(first.event_id, retry_num=1)
    assert retry.status == 200
    stack.slack.wait_for(lambda: status_of(stack, rid) is ApprovalStatus.GRANTED, timeout=20)
    assert driver.redeliver(first.event_id, retry_num=2).status == 200  # handed off: dropped
    time.sleep(1.5)
    assert granted(stack) == before + 1
    assert len(stack.replies(APPROVER)) == n  # no complaint: one reaction, one approval


def test_a_reaction_whose_job_failed_is_answered_and_can_be_made_again(stack, driver):
    """With Heroku Connect answering 503 the approval cannot be checked: the approver is told so,
    and removing and adding the reaction again (a new event) approves once Heroku answers."""
    msg = request(stack, driver)
    rid, before, n = request_id(stack, msg), granted(stack), len(stack.replies(APPROVER))
    faults(stack, rate=1.0, kinds=["503"], only="GET /")
    try:
        assert driver.react(APPROVER, CHANNEL, msg.ts).status == 200
        answer = told(stack, APPROVER, n, timeout=90)
    finally:
        faults(stack, rate=0.0)
    assert f"approval of {rid} could not be recorded" in answer, answer
    assert "503" in answer and "remove the reaction and add it again" in answer, answer
    assert TOKEN not in answer and stack.env["DATABASE_URL"] not in answer
    assert status_of(stack, rid) is ApprovalStatus.PENDING and granted(stack) == before

    assert driver.unreact(APPROVER, CHANNEL, msg.ts).status == 200
    assert driver.react(APPROVER, CHANNEL, msg.ts).status == 200
    stack.slack.wait_for(lambda: status_of(stack, rid) is ApprovalStatus.GRANTED, timeout=30)
    time.sleep(1.0)
    assert granted(stack) == before + 1
    assert len(stack.replies(APPROVER)) == n + 1  # only the answer to the failed attempt


def test_removing_the_reaction_withdraws_an_approval_not_yet_used(stack, driver):
    msg = request(stack, driver)
    rid = request_id(stack, msg)
    n = len(stack.replies(APPROVER))
    driver.react(APPROVER, CHANNEL, msg.ts)
    stack.slack.wait_for(lambda: status_of(stack, rid) is ApprovalStatus.GRANTED, timeout=20)
    events = len(store(stack).read_events(SWAP, count=100_000))

    # someone else's reaction removed, or another emoji: nothing changes
    m = len(stack.replies(SECOND_APPROVER))
    driver.react(SECOND_APPROVER, CHANNEL, msg.ts)
    assert "already approved by" in told(stack, SECOND_APPROVER, m)
    m += 1
    assert driver.unreact(SECOND_APPROVER, CHANNEL, msg.ts).status == 200
    driver.react(APPROVER, CHANNEL, msg.ts, reaction="tada")
    assert driver.unreact(APPROVER, CHANNEL, msg.ts, reaction="tada").status == 200
    time.sleep(1.5)
    assert status_of(stack, rid) is ApprovalStatus.GRANTED
    assert len(stack.replies(SECOND_APPROVER)) == m

    # the approver takes theirs back: pending again, audited, and the thread learns of it
    assert driver.unreact(APPROVER, CHANNEL, msg.ts).status == 200
    stack.slack.wait_for(lambda: status_of(stack, rid) is ApprovalStatus.PENDING, timeout=20)
    assert Approvals(store(stack)).get(SWAP, rid).approver is None
    audit = [(e.actor, e.action) for e in store(stack).history(SWAP, count=1000)]
    assert audit[-1] == (APPROVER, "approval.withdrawn")
    published = [p.event for p in store(stack).read_events(SWAP, count=100_000)[events:]]
    withdrawn = [e for e in published if e["kind"] == "approval.withdrawn"]
    assert len(withdrawn) == 1 and withdrawn[0]["data"]["request_id"] == rid
    assert withdrawn[0]["actor"] == APPROVER
    assert len(stack.replies(APPROVER)) == n  # nothing to say to them

    # granted again, then used by a step: removing the reaction now changes nothing, and says so
    driver.react(APPROVER, CHANNEL, msg.ts)
    stack.slack.wait_for(lambda: status_of(stack, rid) is ApprovalStatus.GRANTED, timeout=20)
    req = Approvals(store(stack)).get(SWAP, rid)
    used = Approvals(store(stack)).consume(
        SWAP, "pause", fingerprint=req.fingerprint, live_digest=req.live_digest, actor=OPERATOR
    )
    assert used is not None and used.id == rid
    n = len(stack.replies(APPROVER))
    assert driver.unreact(APPROVER, CHANNEL, msg.ts).status == 200
    assert "cannot be withdrawn" in told(stack, APPROVER, n)
    assert status_of(stack, rid) is ApprovalStatus.USED


def test_a_command_whose_job_failed_is_answered_and_the_thread_told(stack, driver):
    """Whatever a command's job raises is answered to the person who asked, and noted in the
    thread; before, the job failed in rq and nobody heard of it."""
    r = store(stack).redis
    seq = store(stack).swap_key(SWAP, "approvals", "seq")
    counter = r.get(seq)
    r.delete(seq)
    r.hset(seq, "broken", "1")  # the next request's INCR fails with WRONGTYPE
    try:
        _, reply = stack.ask(driver, OPERATOR, "request-approval pause", timeout=30)
    finally:
        r.delete(seq)
        r.set(seq, counter)
    shown = said(reply)
    assert "failed" in shown and "WRONGTYPE" in shown, shown
    assert "nothing else was done" in shown and "/hcswap status" in shown, shown
    assert stack.env["REDIS_URL"] not in shown
    # the person named as a mention, or by id (before mentions were rendered)
    failed = re.compile(rf"request-approval pause`? by (<@)?{OPERATOR}>?: failed")
    stack.slack.wait_for(lambda: failed.search(stack.slack.transcript(CHANNEL)), timeout=20)
    _, reply = stack.ask(driver, OPERATOR, "request-approval pause")  # repaired: it works again
    assert "requested" in said(reply), said(reply)


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
