"""Approving and denying by button, through the slash command's safe path.

A click on the approval message's Approve or Deny button is a signed `block_actions` payload:
Bolt checks its signature, the web process authorizes it as `approve REQUEST_ID` or
`deny REQUEST_ID`, acknowledges it at once and queues it once (its trigger id marked seen with
the push), and the worker runs it as that command. So every rule of the engine holds: approvers
only, never the requester, bound to the plan and the live state, once, before it expires.

First what needs no processes (the message, the engine's deny, the grammar, the manifest),
then the whole front end: `swapbot serve` and `swapbot worker` with the Slack stand-in, where a
person clicks as in Slack.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block
from slack_sdk.signature import SignatureVerifier

from swapbot import commands, config
from swapbot.slack import access
from swapbot.slack import blocks as B
from swapbot.slack.app import build_app
from swapbot.slack.blocks.approvals import APPROVE_ACTION, DENY_ACTION
from swapbot.slack.notifier import ApprovalMessages
from swapbot.swap.approvals import ApprovalRequest, Approvals, ApprovalStatus, Verdict
from swapbot.swap.store import Store
from swapbot.testing.rehearsal import LocalSlack
from swapbot.testing.services import REDIS_TEST_URL
from swapbot.testing.slack_stack import (
    APPROVER,
    CHANNEL,
    OPERATOR,
    READER,
    SECOND_APPROVER,
    plan_new,
    running_stack,
    said,
    store,
)
from swapbot.testing.standin import DEFAULT_SCOPES, Message, SlackStandIn, validate_blocks
from tests.test_slack_blocks import request

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_700_000_133.0
SWAP = "slack-buttons"


# -- the message -----------------------------------------------------------------------------
def valid(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocks as slack_sdk's models and the stand-in's checks accept them."""
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()  # raises SlackObjectFormationError on a violation
        assert parsed.to_dict()
    assert validate_blocks(blocks) == []
    B.check_limits(blocks)
    return blocks


def buttons_of(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = [b for b in blocks if b["type"] == "actions"]
    assert len(found) <= 1
    return {e["action_id"]: e for b in found for e in b["elements"]}


def test_a_pending_request_has_approve_and_deny_each_behind_a_dialog():
    text, blocks = B.approval_message(request(), None, step_summary="pauses hc1 and hc2", now=NOW)
    shown = buttons_of(valid(blocks))
    assert list(shown) == [APPROVE_ACTION, DENY_ACTION]
    approve, deny = shown[APPROVE_ACTION], shown[DENY_ACTION]
    assert (approve["text"]["text"], approve["style"], approve["value"]) == (
        "Approve",
        "primary",
        "pause-1",
    )
    assert (deny["text"]["text"], deny["style"], deny["value"]) == ("Deny", "danger", "pause-1")
    for button, verb in ((approve, "approve"), (deny, "deny")):
        dialog = button["confirm"]
        assert dialog["title"]["text"] == f"{verb.title()} pause?"
        said_in_it = dialog["text"]["text"]
        assert f"You {verb} pause (request pause-1)" in said_in_it
        assert "plan fingerprint ab12cd34" in said_in_it and len(said_in_it) <= 300
        assert dialog["confirm"]["text"] == verb.title() and dialog["deny"]["text"] == "Cancel"
        assert dialog["style"] == button["style"]
    assert "pauses hc1 and hc2" in approve["confirm"]["text"]["text"]
    assert "can no longer be approved" in deny["confirm"]["text"]["text"]
    assert "or use the buttons: *Approve* or *Deny*" in json.dumps(blocks)
    assert text.endswith("react with :white_check_mark: to approve")  # notifications as before


def test_a_long_summary_is_cut_to_the_dialogs_limit():
    _, blocks = B.approval_message(request(), None, step_summary="x " * 400, now=NOW)
    dialog = buttons_of(valid(blocks))[APPROVE_ACTION]["confirm"]
    assert len(dialog["text"]["text"]) == 300 and dialog["text"]["text"].endswith("…")


@pytest.mark.parametrize(
    ("changes", "header"),
    [
        ({"status": "granted", "approver": "U0APPROVER", "granted_at": "2023-11-14T22:20:05Z"}, "Approved"),
        ({"status": "used", "approver": "U0APPROVER", "used_at": "2023-11-14T22:21:00Z"}, "Approval used"),
        ({"status": "expired", "expired_at": "2023-11-14T22:31:00Z"}, "Approval expired"),
        ({"status": "pending", "expires_epoch": NOW - 60}, "Approval expired"),
        ({"status": "superseded", "superseded_by": "pause-2"}, "Approval superseded"),
        ({"status": "denied", "denied_by": "U0APPROVER2", "denied_at": "2023-11-14T22:19:00Z"}, "Approval denied"),
    ],
)  # fmt: skip
def test_a_decided_request_shows_no_buttons(changes, header):
    text, blocks = B.approval_decided(request(**changes), None, step_summary="pauses", now=NOW)
    assert blocks[0]["text"]["text"] == f"{header}: pause"
    assert buttons_of(valid(blocks)) == {}
    assert "hcswap." not in json.dumps(blocks) and "*Deny*" not in json.dumps(blocks)


def test_a_denied_request_says_who_denied_it_and_a_withdrawn_one_has_its_buttons_back():
    denied = request(status="denied", denied_by="U0APPROVER2", denied_at="2023-11-14T22:19:00Z")
    text, _ = B.approval_decided(denied, None, step_summary="pauses", now=NOW)
    assert text.startswith("Approval denied: pause — :no_entry: denied by <@U0APPROVER2> at ")
    assert text.endswith(": it cannot be approved; ask for a new approval")
    _, again = B.approval_decided(request(), None, step_summary="pauses", now=NOW)
    assert list(buttons_of(valid(again))) == [APPROVE_ACTION, DENY_ACTION]


# -- the engine's deny -------------------------------------------------------------------------
APPROVERS = {"U_ANN", "U_BOB", "U_CAT"}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def approvals(redis_prefix, clock) -> Approvals:
    return Approvals(
        Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix, clock=clock), 900, clock
    )


def ask(approvals: Approvals, requester: str = "U_ANN") -> ApprovalRequest:
    return approvals.request("s1", "pause", requester, "fp", "live")


def grant(approvals: Approvals, rid: str, approver: str):
    return approvals.grant("s1", rid, approver, APPROVERS, fingerprint="fp", live_digest="live")


def test_a_denied_request_can_no_longer_be_approved(approvals):
    req = ask(approvals)
    assert approvals.deny("s1", req.id, "U_ANN", APPROVERS).verdict is Verdict.OWN_STEP
    assert "cannot deny it" in approvals.deny("s1", req.id, "U_ANN", APPROVERS).reason
    assert approvals.deny("s1", req.id, "U_ZED", APPROVERS).verdict is Verdict.NOT_APPROVER
    assert approvals.deny("s1", "pause-99", "U_BOB", APPROVERS).verdict is Verdict.UNKNOWN
    assert approvals.get("s1", req.id).status is ApprovalStatus.PENDING

    denial = approvals.deny("s1", req.id, "U_BOB", APPROVERS)
    assert denial.denied and denial.verdict is Verdict.DENIED
    assert denial.request.status is ApprovalStatus.DENIED and denial.request.denied_by == "U_BOB"
    assert "can no longer be approved" in denial.reason

    refused = grant(approvals, req.id, "U_CAT")
    assert not refused.granted and refused.verdict is Verdict.ALREADY_DENIED
    assert "was denied by U_BOB" in refused.reason
    again = approvals.deny("s1", req.id, "U_CAT", APPROVERS)
    assert not again.denied and again.verdict is Verdict.ALREADY_DENIED
    assert approvals.consume("s1", "pause", fingerprint="fp", live_digest="live") is None
    assert "was denied by U_BOB" in approvals.why_not(
        "s1", "pause", fingerprint="fp", live_digest="live"
    )
    audit = [(e.actor, e.action) for e in approvals.store.history("s1", count=100)]
    assert audit == [
        ("U_ANN", "approval.requested"),
        ("U_ANN", "approval.deny-refused"),
        ("U_ANN", "approval.deny-refused"),
        ("U_ZED", "approval.deny-refused"),
        ("U_BOB", "approval.deny-refused"),
        ("U_BOB", "approval.denied"),
        ("U_CAT", "approval.refused"),
        ("U_CAT", "approval.deny-refused"),
    ]
    # asking again gives a new request, which can be approved
    fresh = ask(approvals)
    assert grant(approvals, fresh.id, "U_CAT").granted


def test_only_a_pending_live_request_can_be_denied(approvals, clock):
    granted = ask(approvals)
    assert grant(approvals, granted.id, "U_BOB").granted
    refused = approvals.deny("s1", granted.id, "U_CAT", APPROVERS)
    assert refused.verdict is Verdict.ALREADY_GRANTED  # its approver withdraws it instead
    assert approvals.get("s1", granted.id).status is ApprovalStatus.GRANTED

    late = approvals.request("s1", "delete-old", "U_ANN", "fp", "live")
    clock.now += 901
    assert approvals.deny("s1", late.id, "U_BOB", APPROVERS).verdict is Verdict.EXPIRED
    assert approvals.get("s1", late.id).status is ApprovalStatus.EXPIRED  # recorded, once


# -- the command, its rules, the manifest ------------------------------------------------------
SETTINGS = config.load_settings(
    {
        "SWAPBOT_CHANNEL": "C0SWAP",
        "SWAPBOT_OPERATORS": "U0OPERATOR",
        "SWAPBOT_APPROVERS": "U0APPROVER,U0OPERATOR",
    }
)


def test_deny_is_a_command_of_approvers():
    cmd = commands.parse("deny pause-2")
    assert (cmd.name, cmd.args, cmd.kind, cmd.changes_something) == (
        "deny",
        ("pause-2",),
        "approve",
        True,
    )
    for bad in ("deny", "deny a b"):
        with pytest.raises(commands.UsageError, match="usage: deny REQUEST_ID"):
            commands.parse(bad)
    assert "deny REQUEST_ID" in commands.HELP
    assert access.refusal(cmd, "U0APPROVER", "C0SWAP", SETTINGS) is None
    assert "Only approvers may deny" in access.refusal(cmd, "U0READER", "C0SWAP", SETTINGS)
    assert "run only in" in access.refusal(cmd, "U0APPROVER", "C0OTHER", SETTINGS)


def manifest_list(text: str, key: str) -> list[str]:
    """The items of a YAML list under `key:` (the manifest's lists are plain `- item` lines)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{key}:")
    items = []
    for line in lines[start + 1 :]:
        if not line.strip().startswith("- "):
            break
        items.append(line.strip()[2:].strip())
    return items


def test_the_manifest_turns_interactivity_on_without_a_new_scope():
    text = (ROOT / "manifest.yml").read_text()
    interactivity = re.search(
        r"^  interactivity:\n    is_enabled: true\n    request_url: (\S+)\n", text, re.M
    )
    assert interactivity, "settings.interactivity must be enabled, with the request URL"
    assert interactivity.group(1) == "https://YOUR-SWAPBOT-APP.herokuapp.com/slack/events"
    # buttons need no scope of their own: the bot's scopes are still what swapbot calls need
    assert tuple(manifest_list(text, "bot")) == DEFAULT_SCOPES
    socket_mode = (ROOT / "docs" / "slack-socket-mode.md").read_text()
    assert "  interactivity:\n    is_enabled: true\n" in socket_mode
    for manifest in (text, socket_mode):  # the Home tab, in both ways of running the app
        assert "  app_home:\n    home_tab_enabled: true\n" in manifest
        assert "      - app_home_opened\n" in manifest


# -- the acknowledgement, in process ----------------------------------------------------------
SECRET = "buttons-signing-secret-5e4d"


def web_settings(slack: SlackStandIn, prefix: str) -> config.Settings:
    return config.load_settings(
        {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "SWAPBOT_CHANNEL": CHANNEL,
            "SWAPBOT_OPERATORS": OPERATOR,
            "SWAPBOT_APPROVERS": f"{OPERATOR},{APPROVER}",
            "REDIS_URL": REDIS_TEST_URL,
            "SWAPBOT_REDIS_PREFIX": prefix,
        }
    )


def posted_request(slack: SlackStandIn) -> Message:
    text, blocks = B.approval_message(request(), None, step_summary="pauses", now=time.time())
    client = WebClient(token=slack.token, base_url=slack.api_url)
    return slack.message(
        CHANNEL, client.chat_postMessage(channel=CHANNEL, text=text, blocks=blocks)["ts"]
    )


def dispatch_click(
    app,
    slack: SlackStandIn,
    user: str,
    msg: Message,
    trigger_id: str,
    action_id: str = APPROVE_ACTION,
):
    """`user` clicks the button `action_id` of `msg`: the signed request, dispatched in
    process to the Bolt `app`."""
    payload = slack.block_actions(
        user, CHANNEL, msg.ts, action_id, trigger_id=trigger_id, api_app_id="A0", token="t"
    )
    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)
    headers = {
        "content-type": ["application/x-www-form-urlencoded"],
        "x-slack-request-timestamp": [stamp],
        "x-slack-signature": [signature],
    }
    return app.dispatch(BoltRequest(body=body, headers=headers))


def test_a_click_is_queued_once_and_one_redis_would_not_take_is_answered(redis_prefix):
    with SlackStandIn(
        channels={CHANNEL: {"name": "swaps", "members": {APPROVER, "U0SWAPBOT"}}}
    ) as slack:
        settings = web_settings(slack, redis_prefix)
        msg = posted_request(slack)
        app = build_app(settings)
        for _ in range(2):  # the same click twice: one request handed to the worker
            response = dispatch_click(app, slack, APPROVER, msg, "t-once")
            assert (response.status, response.body) == (200, "")
        (queued,) = redis.Redis.from_url(REDIS_TEST_URL).lrange(redis_prefix + "intake", 0, -1)
        request_ = json.loads(queued)
        assert (
            request_["func"] == "swapbot.slack.clicks.handle_click" and request_["key"] == "t-once"
        )
        (click,) = request_["args"]
        assert (click["text"], click["user"], click["channel"], click["ts"]) == (
            "approve pause-1",
            APPROVER,
            CHANNEL,
            msg.ts,
        )

        # Redis out of reach: acknowledged all the same (Slack sends no click twice), and the
        # person is told privately, beside the message, to click again
        away = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
        response = dispatch_click(build_app(settings, redis=away), slack, APPROVER, msg, "t-away")
        assert response.status == 200
        told = slack.wait_for(lambda: slack.ephemerals(APPROVER))
        assert "cannot reach its Redis" in told[0].text and "Click again" in told[0].text
        answer = slack.calls_to("response_url")[-1].params
        assert (answer["response_type"], answer["replace_original"]) == ("ephemeral", False)
        assert slack.message(CHANNEL, msg.ts).blocks == msg.blocks  # the request unchanged


# -- the whole front end ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalSlack]:
    with running_stack(tmp_path_factory.mktemp("logs")) as local:
        plan_new(local, local.driver(), SWAP, "--mappings Account:Rating --process-types web")
        yield local


@pytest.fixture
def driver(stack):
    return stack.driver()


def ask_in_slack(stack: LocalSlack, driver, step: str = "pause") -> Message:
    """The operator asks for an approval: the new approval message, once the notifier has
    remembered which request it asks for."""
    before = {m.ts for m in stack.slack.messages(CHANNEL)}
    stack.ask(driver, OPERATOR, f"request-approval {step}")

    def new_request() -> Message | None:
        for m in stack.slack.messages(CHANNEL):
            asks = m.ts not in before and (m.text or "").startswith(f"Approval needed: {step} ")
            if asks and ApprovalMessages(store(stack)).request_for(CHANNEL, m.ts):
                return m
        return None

    return stack.slack.wait_for(new_request, timeout=20)


def request_id(stack: LocalSlack, msg: Message) -> str:
    found = ApprovalMessages(store(stack)).request_for(CHANNEL, msg.ts)
    assert found is not None and found[0] == SWAP
    return found[1]


def status_of(stack: LocalSlack, rid: str) -> ApprovalStatus:
    return Approvals(store(stack)).get(SWAP, rid).status


def audit(stack: LocalSlack, rid: str | None = None) -> list[tuple[str, str]]:
    """(actor, action) of the swap's audit trail, or of one request's entries."""
    return [
        (e.actor, e.action)
        for e in store(stack).history(SWAP, count=10_000)
        if rid is None or (e.detail or {}).get("request") == rid
    ]


def without_buttons(stack: LocalSlack, msg: Message, saying: str) -> Message:
    """The approval message once edited to say `saying`, with no buttons left."""

    def edited() -> Message | None:
        now = stack.slack.message(CHANNEL, msg.ts)
        shown = json.dumps(now.blocks or [])
        if saying in shown and not stack.buttons(now):
            return now
        return None

    return stack.slack.wait_for(edited, timeout=20)


def click_seen(stack: LocalSlack, trigger_id: str) -> bool:
    """Whether the web process queued the click with this trigger id (and marked it seen)."""
    s = store(stack)
    return bool(s.redis.exists(s.key("dedupe", "slack-click", trigger_id)))


@pytest.mark.slow
def test_the_posted_request_has_both_buttons_and_slack_would_take_it(stack, driver):
    msg = ask_in_slack(stack, driver)
    rid = request_id(stack, msg)
    shown = stack.buttons(msg)
    assert set(shown) == {APPROVE_ACTION, DENY_ACTION}
    assert {b["value"] for b in shown.values()} == {rid}
    fingerprint = Approvals(store(stack)).get(SWAP, rid).fingerprint
    for button in shown.values():
        assert f"under plan fingerprint {fingerprint}" in button["confirm"]["text"]["text"]
    valid(msg.blocks)
    assert stack.slack.violations == []


@pytest.mark.slow
def test_an_approvers_click_approves_and_the_message_loses_its_buttons(stack, driver):
    msg = ask_in_slack(stack, driver)
    rid = request_id(stack, msg)
    response, reply = stack.click(driver, APPROVER, msg, APPROVE_ACTION)
    assert (response.status, response.body) == (200, "")  # acknowledged, nothing replaced
    assert click_seen(stack, response.envelope["trigger_id"])
    assert f"Approve {rid}" in said(reply) and "approved pause" in said(reply)
    assert reply.ephemeral_to == APPROVER and reply.source == "response_url"
    valid(reply.blocks)
    answer = stack.slack.calls_to("response_url")[-1].params
    assert (answer["response_type"], answer["replace_original"]) == ("ephemeral", False)
    assert status_of(stack, rid) is ApprovalStatus.GRANTED
    assert Approvals(store(stack)).get(SWAP, rid).approver == APPROVER
    decided = without_buttons(stack, msg, "approved by")
    valid(decided.blocks)
    assert decided.text.startswith("Approved: pause")
    with pytest.raises(LookupError, match="no button"):  # nothing left to click
        driver.click(SECOND_APPROVER, decided, APPROVE_ACTION)


@pytest.mark.slow
def test_the_requesters_click_is_refused_privately_and_changes_nothing(stack, driver):
    msg = ask_in_slack(stack, driver)
    rid = request_id(stack, msg)
    for action, why in ((APPROVE_ACTION, "cannot approve it"), (DENY_ACTION, "cannot deny it")):
        _, reply = stack.click(driver, OPERATOR, msg, action)
        assert why in said(reply) and "refused" in said(reply)
        assert reply.ephemeral_to == OPERATOR
        valid(reply.blocks)
    assert status_of(stack, rid) is ApprovalStatus.PENDING
    assert [a for _, a in audit(stack, rid)] == [
        "approval.requested",
        "approval.refused",
        "approval.deny-refused",
    ]
    assert set(stack.buttons(stack.slack.message(CHANNEL, msg.ts))) == {APPROVE_ACTION, DENY_ACTION}


@pytest.mark.slow
def test_a_non_approvers_click_is_refused_at_once_and_queues_nothing(stack, driver):
    msg = ask_in_slack(stack, driver)
    rid = request_id(stack, msg)
    for action, why in ((APPROVE_ACTION, "Only approvers may approve"), (DENY_ACTION, "Only approvers may deny")):  # fmt: skip
        response, reply = stack.click(driver, READER, msg, action)
        assert why in said(reply) and reply.ephemeral_to == READER
        valid(reply.blocks)
        assert not click_seen(stack, response.envelope["trigger_id"])  # nothing queued
        answer = stack.slack.calls_to("response_url")[-1].params
        assert (answer["response_type"], answer["replace_original"]) == ("ephemeral", False)
    # nothing was queued (the marker is set with the push, in one operation): nothing can run
    assert status_of(stack, rid) is ApprovalStatus.PENDING
    assert audit(stack, rid) == [(OPERATOR, "approval.requested")]


@pytest.mark.slow
def test_the_same_click_sent_twice_is_one_job_and_one_approval(stack, driver):
    msg = ask_in_slack(stack, driver)
    rid = request_id(stack, msg)
    n = len(stack.replies(SECOND_APPROVER))
    first = driver.click(SECOND_APPROVER, msg, APPROVE_ACTION)
    again = driver.click_again(first.envelope["trigger_id"])
    assert first.status == again.status == 200 and again.envelope == first.envelope
    stack.slack.wait_for(lambda: status_of(stack, rid) is ApprovalStatus.GRANTED, timeout=20)
    stack.slack.wait_for(lambda: len(stack.replies(SECOND_APPROVER)) > n, timeout=20)
    # A barrier: a later job on the same (interactive) queue, which runs one job at a time. A
    # second job of the click, queued before it, would have answered before it is answered.
    _, barrier = stack.ask(driver, SECOND_APPROVER, "status")
    assert stack.slack.uses(first.envelope["response_url"]) == 1
    assert stack.replies(SECOND_APPROVER)[n + 1 :] == [barrier]
    assert audit(stack, rid) == [
        (OPERATOR, "approval.requested"),
        (SECOND_APPROVER, "approval.granted"),
    ]


@pytest.mark.slow
def test_a_click_on_an_expired_request_is_refused_and_its_buttons_go(stack, driver):
    msg = ask_in_slack(stack, driver, "delete-old")
    rid = request_id(stack, msg)
    store(stack).redis.hset(store(stack).swap_key(SWAP, "approval", rid), "expires_epoch", "1000.0")
    _, reply = stack.click(driver, APPROVER, msg, APPROVE_ACTION)
    assert "expired" in said(reply) and "refused" in said(reply)
    assert status_of(stack, rid) is ApprovalStatus.EXPIRED
    decided = without_buttons(stack, msg, "expired")
    assert decided.text.startswith("Approval expired: delete-old")
    assert (APPROVER, "approval.granted") not in audit(stack, rid)


@pytest.mark.slow
def test_deny_makes_the_request_unapprovable_by_button_reaction_or_command(stack, driver):
    msg = ask_in_slack(stack, driver)
    rid = request_id(stack, msg)
    _, reply = stack.click(driver, SECOND_APPROVER, msg, DENY_ACTION)
    assert f"Deny {rid}" in said(reply) and "can no longer be approved" in said(reply)
    assert status_of(stack, rid) is ApprovalStatus.DENIED
    decided = without_buttons(stack, msg, "denied by")
    assert decided.text.startswith("Approval denied: pause")
    valid(decided.blocks)
    # the thread hears of it, and the request cannot be approved any more
    stack.slack.wait_for(lambda: f"denied pause ({rid})" in stack.slack.transcript(CHANNEL), 20)
    _, answer = stack.ask(driver, APPROVER, f"approve {rid}")
    assert "was denied by" in said(answer)
    n = len(stack.replies(APPROVER))
    driver.react(APPROVER, CHANNEL, msg.ts)
    stack.slack.wait_for(lambda: len(stack.replies(APPROVER)) > n, timeout=20)
    assert "was denied by" in said(stack.replies(APPROVER)[n])
    assert status_of(stack, rid) is ApprovalStatus.DENIED
    assert (SECOND_APPROVER, "approval.denied") in audit(stack, rid)
    assert not [a for a in audit(stack, rid) if a[1] == "approval.granted"]

    # typed, the same: a new request, denied with /hcswap deny, loses its buttons too
    other = ask_in_slack(stack, driver)
    _, typed = stack.ask(driver, APPROVER, f"deny {request_id(stack, other)}")
    assert "can no longer be approved" in said(typed)
    without_buttons(stack, other, "denied by")


@pytest.mark.slow
def test_a_forged_or_stale_click_is_401_and_changes_nothing(stack, driver):
    msg = ask_in_slack(stack, driver)
    rid = request_id(stack, msg)
    n = len(stack.slack.ephemerals(APPROVER))
    stale = int(time.time()) - 6 * 60
    assert driver.click(APPROVER, msg, APPROVE_ACTION, signature="v0=" + "0" * 64).status == 401
    assert driver.click(APPROVER, msg, APPROVE_ACTION, unsigned=True).status == 401
    assert driver.click(APPROVER, msg, APPROVE_ACTION, timestamp=stale).status == 401
    assert driver.click(APPROVER, msg, APPROVE_ACTION, confirmed=False) is None  # cancelled
    time.sleep(1.5)
    assert len(stack.slack.ephemerals(APPROVER)) == n
    assert status_of(stack, rid) is ApprovalStatus.PENDING
    assert audit(stack, rid) == [(OPERATOR, "approval.requested")]
