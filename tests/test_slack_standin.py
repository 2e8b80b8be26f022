"""The Slack stand-in and driver, over real HTTP on 127.0.0.1 with the real slack_sdk and Bolt."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from swapbot.testing.driver import SlackDriver
from swapbot.testing.standin import (
    Limit,
    SlackStandIn,
    validate_blocks,
    validate_options,
    validate_view,
)

SECRET = "test-signing-secret"
OPERATOR, APPROVER, READER = "U0OPERATOR", "U0APPROVER", "U0READER"
CHANNEL = "C0SWAP"
# slack_sdk warns when blocks come without text; the tests that do it on purpose silence it.
NO_TEXT_WARNING = "ignore:The top-level `text` argument is missing"


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


CONFIRM = {"title": plain("Sure?"), "text": plain("It cannot be undone."),
           "confirm": plain("Yes"), "deny": plain("Cancel"), "style": "danger"}  # fmt: skip


def button(action_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": plain(action_id.title()),
            "value": f"{action_id}-1", **extra}  # fmt: skip


def actions(*buttons: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "actions", "elements": list(buttons), **extra}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    with SlackStandIn() as s:
        yield s


@pytest.fixture
def client(standin: SlackStandIn) -> WebClient:
    return WebClient(token=standin.token, base_url=standin.api_url)


def slack_error(call, **kwargs: Any) -> str:
    with pytest.raises(SlackApiError) as caught:
        call(**kwargs)
    return caught.value.response["error"]


# -- identity and auth -----------------------------------------------------------------------------
def test_auth_test_reports_the_bot_and_its_scopes(client: WebClient) -> None:
    answer = client.auth_test()
    assert answer["user_id"] == "U0SWAPBOT" and answer["bot_id"] == "B0SWAPBOT"
    assert answer["team_id"] == "T0SWAPBOT"
    assert answer.headers["x-oauth-scopes"] == (
        "commands,chat:write,reactions:read,channels:read,groups:read"
    )


def test_missing_or_wrong_token_is_refused(standin: SlackStandIn) -> None:
    assert slack_error(WebClient(base_url=standin.api_url).auth_test) == "not_authed"
    wrong = WebClient(token="xoxb-wrong", base_url=standin.api_url)
    assert slack_error(wrong.chat_postMessage, channel=CHANNEL, text="hi") == "invalid_auth"
    assert standin.calls[-1].token_ok is False
    assert standin.messages() == []


def test_form_body_with_token_param_and_blocks_as_json_string(standin: SlackStandIn) -> None:
    form = {
        "token": standin.token,
        "channel": CHANNEL,
        "text": "fallback",
        "blocks": json.dumps([section("*hi*")]),
    }
    answer = requests.post(standin.api_url + "chat.postMessage", data=form, timeout=5).json()
    assert answer["ok"] is True
    assert standin.message(CHANNEL, answer["ts"]).blocks == [section("*hi*")]
    assert "token" not in standin.calls[-1].params and standin.calls[-1].token_ok


def test_unknown_method_is_answered_and_recorded(client: WebClient, standin: SlackStandIn) -> None:
    assert slack_error(client.api_call, api_method="chat.delete") == "unknown_method"
    assert standin.count("chat.delete") == 1 and standin.calls[-1].http_status == 200


# -- posting, threads and updates ----------------------------------------------------------------
def test_post_and_thread(client: WebClient, standin: SlackStandIn) -> None:
    parent = client.chat_postMessage(channel=CHANNEL, text="swap started")
    reply = client.chat_postMessage(channel=CHANNEL, text="step 1", thread_ts=parent["ts"])
    loud = client.chat_postMessage(
        channel=CHANNEL, text="done", thread_ts=reply["ts"], reply_broadcast=True
    )
    assert parent["channel"] == CHANNEL and parent["message"]["text"] == "swap started"
    assert float(parent["ts"]) < float(reply["ts"]) < float(loud["ts"])
    assert [m.text for m in standin.thread(CHANNEL, parent["ts"])] == ["step 1", "done"]
    thread = standin.messages(CHANNEL, thread_ts=parent["ts"])
    assert [m.ts for m in thread] == [parent["ts"], reply["ts"], loud["ts"]]
    assert standin.message(CHANNEL, loud["ts"]).thread_ts == parent["ts"]  # reply to a reply
    assert standin.message(CHANNEL, loud["ts"]).broadcast is True
    assert standin.count("chat.postMessage") == 3


def test_update_keeps_the_edit_history(client: WebClient, standin: SlackStandIn) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="v1", blocks=[section("one")])["ts"]
    client.chat_update(channel=CHANNEL, ts=ts, text="v2", blocks=[section("two")])
    client.chat_update(channel=CHANNEL, ts=ts, text="v3", blocks=[section("three")])
    msg = standin.message(CHANNEL, ts)
    assert (msg.text, msg.blocks) == ("v3", [section("three")])
    assert [v.text for v in msg.edits] == ["v1", "v2"]
    assert msg.edits[0].blocks == [section("one")]
    assert standin.violations == []


def test_post_ephemeral(client: WebClient, standin: SlackStandIn) -> None:
    answer = client.chat_postEphemeral(channel=CHANNEL, user=READER, text="only you")
    (shown,) = standin.ephemerals(READER)
    assert shown.ts == answer["message_ts"] and shown.text == "only you"
    assert standin.ephemerals(OPERATOR) == []
    assert slack_error(client.chat_update, channel=CHANNEL, ts=shown.ts, text="x") == (
        "message_not_found"
    )


def test_conversations_and_users_info(client: WebClient, standin: SlackStandIn) -> None:
    channel = client.conversations_info(channel=CHANNEL)["channel"]
    assert channel["name"] == "swaps" and channel["is_member"] is True
    assert channel["is_ext_shared"] is False and channel["is_archived"] is False
    standin.remove_member(CHANNEL, standin.bot_user_id)
    assert client.conversations_info(channel=CHANNEL)["channel"]["is_member"] is False
    user = client.users_info(user=APPROVER)["user"]
    assert (user["name"], user["is_bot"], user["deleted"], user["team_id"]) == (
        "arjun",
        False,
        False,
        "T0SWAPBOT",
    )
    assert client.users_info(user="U0SWAPBOT")["user"]["is_bot"] is True
    assert slack_error(client.users_info, user="U0NOBODY") == "user_not_found"
    assert slack_error(client.conversations_info, channel="C0NOPE") == "channel_not_found"


def test_private_channel_the_bot_is_not_in_does_not_exist_for_it() -> None:
    channels = {"G0SECRET": {"name": "secret", "members": {OPERATOR}, "is_private": True}}
    with SlackStandIn(channels=channels) as s:
        client = WebClient(token=s.token, base_url=s.api_url)
        assert slack_error(client.conversations_info, channel="G0SECRET") == "channel_not_found"
        assert slack_error(client.chat_postMessage, channel="G0SECRET", text="x") == (
            "channel_not_found"
        )


def test_reactions_add(standin: SlackStandIn) -> None:
    with SlackStandIn(scopes=("chat:write", "reactions:write")) as s:
        client = WebClient(token=s.token, base_url=s.api_url)
        ts = client.chat_postMessage(channel=CHANNEL, text="approve?")["ts"]
        client.reactions_add(channel=CHANNEL, timestamp=ts, name="eyes")
        assert s.message(CHANNEL, ts).reactions == {"eyes": [s.bot_user_id]}
        assert slack_error(client.reactions_add, channel=CHANNEL, timestamp=ts, name="eyes") == (
            "already_reacted"
        )
        assert slack_error(client.reactions_add, channel=CHANNEL, timestamp="1.2", name="x") == (
            "message_not_found"
        )
        assert s.violations == []


# -- errors, one family at a time ---------------------------------------------------------------
@pytest.fixture
def busy() -> Iterator[SlackStandIn]:
    """A workspace with an archived channel and a channel the bot is not in."""
    everyone = {OPERATOR, APPROVER, "U0SWAPBOT"}
    channels = {
        CHANNEL: {"name": "swaps", "members": everyone},
        "C0OLD": {"name": "old", "members": everyone, "is_archived": True},
        "C0ELSE": {"name": "elsewhere", "members": {OPERATOR}},
    }
    with SlackStandIn(channels=channels) as s:
        yield s


@pytest.mark.filterwarnings(NO_TEXT_WARNING)
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"channel": "C0NOPE", "text": "x"}, "channel_not_found"),
        ({"channel": "C0ELSE", "text": "x"}, "not_in_channel"),
        ({"channel": "C0OLD", "text": "x"}, "is_archived"),
        ({"channel": CHANNEL, "text": ""}, "no_text"),
        ({"channel": CHANNEL, "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": CHANNEL, "text": "x", "thread_ts": "123.456"}, "thread_not_found"),
        (
            {"channel": CHANNEL, "text": "x", "blocks": [section("y" * 3000)] * 5},
            "msg_blocks_too_long",
        ),
    ],
)
def test_post_message_errors(busy: SlackStandIn, kwargs: dict[str, Any], error: str) -> None:
    client = WebClient(token=busy.token, base_url=busy.api_url)
    assert slack_error(client.chat_postMessage, **kwargs) == error
    assert busy.calls[-1].error == error and busy.calls[-1].http_status == 200
    assert busy.messages(kwargs["channel"]) == []


@pytest.mark.filterwarnings(NO_TEXT_WARNING)
def test_update_errors(client: WebClient, standin: SlackStandIn) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="mine")["ts"]
    theirs = standin.post_as(OPERATOR, CHANNEL, "hello bot").ts
    update = client.chat_update
    assert slack_error(update, channel=CHANNEL, ts="1.000001", text="x") == "message_not_found"
    assert slack_error(update, channel=CHANNEL, ts=theirs, text="x") == "cant_update_message"
    assert slack_error(update, channel="C0NOPE", ts=ts, text="x") == "channel_not_found"
    assert slack_error(update, channel=CHANNEL, ts=ts, text="x" * 4001) == "msg_too_long"
    assert slack_error(update, channel=CHANNEL, ts=ts, text="") == "no_text"
    bad = [{"type": "header", "text": {"type": "mrkdwn", "text": "Swap"}}]
    assert slack_error(update, channel=CHANNEL, ts=ts, text="x", blocks=bad) == "invalid_blocks"
    assert standin.message(CHANNEL, ts).edits == []


def test_post_ephemeral_errors(busy: SlackStandIn) -> None:
    client = WebClient(token=busy.token, base_url=busy.api_url)
    post = client.chat_postEphemeral
    assert slack_error(post, channel=CHANNEL, user=READER, text="x") == "user_not_in_channel"
    assert slack_error(post, channel="C0ELSE", user=OPERATOR, text="x") == "not_in_channel"
    assert slack_error(post, channel="C0NOPE", user=OPERATOR, text="x") == "channel_not_found"


# -- Block Kit validation --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("blocks", "reason"),
    [
        ([section(f"{i}") for i in range(51)], "no more than 50 items"),
        ([section("x" * 3001)], "/blocks/0/text/text"),
        ([section("a", block_id="b1"), section("b", block_id="b1")], "duplicate block_id"),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "Hi"}}], "/blocks/0/text"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "H" * 151}}], "151"),
        ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}], "fields"),
        ([{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}], "elements"),
        ([{"type": "actions", "elements": [{"type": "button"}] * 26}], "elements"),
        ([{"type": "section", "text": {"type": "mrkdwn", "text": ""}}], "non-empty"),
        ([{"type": "section", "text": {"type": "html", "text": "x"}}], "text object"),
        ([{"type": "table"}], "unsupported type"),
        ([section("x", block_id="b" * 256)], "block_id"),
        ([actions(button("go", text={"type": "mrkdwn", "text": "Go"}))], "/elements/0/text"),
        ([actions(button("go", text={"type": "plain_text", "text": "G" * 76}))], "76"),
        ([actions(button("go"), button("go"))], "duplicate action_id"),
        ([actions(button("go", style="warning"))], "/elements/0/style"),
        ([actions(button("go", value="v" * 2001))], "/elements/0/value"),
        ([actions(button("go", confirm={**CONFIRM, "text": plain("t" * 301)}))], "confirm/text"),
        ([actions(button("go", confirm={**CONFIRM, "deny": plain("n" * 31)}))], "confirm/deny"),
        ([actions(button("go", confirm={**CONFIRM, "title": None}))], "confirm/title"),
    ],
)
def test_invalid_blocks_are_refused_with_a_reason(
    client: WebClient, blocks: list[dict[str, Any]], reason: str
) -> None:
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel=CHANNEL, text="fallback", blocks=blocks)
    answer = caught.value.response
    assert answer["error"] == "invalid_blocks"
    assert any(reason in m for m in answer["response_metadata"]["messages"]), answer.data


def test_a_full_status_message_is_valid() -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Swap acme-prod"}},
        section("▓▓▓▓░░░░ 50%", block_id="progress"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Step*"}] * 10},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "step 3/6"}]},
        {"type": "divider"},
        actions(button("open", confirm=CONFIRM), button("close", style="danger")),
        {"type": "markdown", "text": "**done**"},
    ]
    assert validate_blocks(blocks) == []


# -- strict checks ---------------------------------------------------------------------------------
@pytest.mark.filterwarnings(NO_TEXT_WARNING)
def test_blocks_without_text_is_a_violation(client: WebClient, standin: SlackStandIn) -> None:
    client.chat_postMessage(channel=CHANNEL, blocks=[section("hi")])
    (violation,) = standin.violations
    assert "chat.postMessage" in violation and CHANNEL in violation and "text" in violation


def test_update_with_text_only_wipes_blocks(client: WebClient, standin: SlackStandIn) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="v1", blocks=[section("one")])["ts"]
    client.chat_update(channel=CHANNEL, ts=ts, text="v2")
    assert standin.message(CHANNEL, ts).blocks is None
    (violation,) = standin.violations
    assert violation.startswith(f"chat.update {CHANNEL}:") and "wipes the blocks" in violation


@pytest.mark.parametrize(
    "text",
    [
        "token xoxb-1234-abcd",
        "app token xapp-1-A0",
        "db postgres://swap:hunter2@db.example.com/x",
        "hook https://hooks.slack.com/services/T/B/X",
        "attention <!channel>",
        "<!here> look",
    ],
)
def test_secrets_and_broadcasts_are_violations(
    client: WebClient, standin: SlackStandIn, text: str
) -> None:
    assert client.chat_postMessage(channel=CHANNEL, text=text)["ok"]
    assert len(standin.violations) == 1
    assert "hunter2" not in standin.violations[0]


def test_secret_inside_blocks_is_a_violation(client: WebClient, standin: SlackStandIn) -> None:
    client.chat_postMessage(channel=CHANNEL, text="ok", blocks=[section("key xoxp-99")])
    assert "secret" in standin.clear_violations()[0]
    assert standin.violations == []


def test_methods_outside_the_granted_scopes_are_violations(
    client: WebClient, standin: SlackStandIn
) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="x")["ts"]
    client.reactions_add(channel=CHANNEL, timestamp=ts, name="eyes")
    client.users_info(user=APPROVER)
    assert [v.split(":", 1)[0] for v in standin.violations] == [
        f"reactions.add {CHANNEL}",
        "users.info -",
    ]


# -- rate limits -----------------------------------------------------------------------------------
def test_post_message_bucket_is_per_channel_and_refills() -> None:
    clock = FakeClock()
    channels = {
        "C0A": {"name": "a", "members": {"U0SWAPBOT"}},
        "C0B": {"name": "b", "members": {"U0SWAPBOT"}},
    }
    with SlackStandIn(channels=channels, clock=clock) as s:
        client = WebClient(token=s.token, base_url=s.api_url)
        for i in range(5):
            client.chat_postMessage(channel="C0A", text=f"{i}")
        with pytest.raises(SlackApiError) as caught:
            client.chat_postMessage(channel="C0A", text="one too many")
        assert caught.value.response.status_code == 429
        assert caught.value.response["error"] == "ratelimited"
        assert caught.value.response.headers["retry-after"] == "1"
        client.chat_postMessage(channel="C0B", text="other channel")
        clock.now += 1.0
        client.chat_postMessage(channel="C0A", text="after a second")
        assert [c.http_status for c in s.calls_to("chat.postMessage")].count(429) == 1
        assert len(s.messages("C0A")) == 6


def test_tier_3_update_limit_and_retry_after() -> None:
    clock = FakeClock()
    with SlackStandIn(clock=clock, limits={"chat.update": Limit(2, 2 / 60)}) as s:
        client = WebClient(token=s.token, base_url=s.api_url)
        ts = client.chat_postMessage(channel=CHANNEL, text="v0")["ts"]
        client.chat_update(channel=CHANNEL, ts=ts, text="v1")
        client.chat_update(channel=CHANNEL, ts=ts, text="v2")
        reply = requests.post(
            s.api_url + "chat.update",
            json={"channel": CHANNEL, "ts": ts, "text": "v3"},
            headers={"Authorization": f"Bearer {s.token}"},
            timeout=5,
        )
        assert reply.status_code == 429 and reply.json() == {"ok": False, "error": "ratelimited"}
        assert reply.headers["Retry-After"] == "30"
        assert s.calls[-1].error == "ratelimited" and s.calls[-1].http_status == 429
        assert s.message(CHANNEL, ts).text == "v2"


def test_rate_limits_can_be_switched_off() -> None:
    with SlackStandIn(rate_limits=False) as s:
        client = WebClient(token=s.token, base_url=s.api_url)
        for i in range(8):
            client.chat_postMessage(channel=CHANNEL, text=f"{i}")
        assert len(s.messages()) == 8


def test_sdk_rate_limit_retry_handler_recovers() -> None:
    with SlackStandIn(limits={"chat.postMessage": Limit(1, 1.0, per_channel=True)}) as s:
        client = WebClient(token=s.token, base_url=s.api_url)
        client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
        client.chat_postMessage(channel=CHANNEL, text="first")
        assert client.chat_postMessage(channel=CHANNEL, text="second")["ok"]
        assert [c.http_status for c in s.calls] == [200, 429, 200]


# -- outages --------------------------------------------------------------------------------------
def test_an_outage_answers_as_slack_does_when_it_is_down() -> None:
    """What slack_sdk raises then: SlackApiError with the HTTP status, Slack's error (or the
    SDK's words for a body that is not JSON) and the headers, Retry-After among them."""
    clock = FakeClock()
    with SlackStandIn(clock=clock) as s:
        client = WebClient(token=s.token, base_url=s.api_url, retry_handlers=[])
        s.outage(60, methods=["chat.postMessage"], retry_after=5)
        with pytest.raises(SlackApiError) as caught:
            client.chat_postMessage(channel=CHANNEL, text="during")
        assert caught.value.response.status_code == 503
        assert caught.value.response["error"] == "service_unavailable"
        assert caught.value.response.headers["Retry-After"] == "5"
        assert client.auth_test()["ok"]  # the other methods answer
        s.outage(60, status=502, error=None)  # every method, an empty body as from a proxy
        with pytest.raises(SlackApiError) as caught:
            client.auth_test()
        assert caught.value.response.status_code == 502
        assert caught.value.response["error"].startswith("Received a response in a non-JSON")
        clock.now += 60
        assert client.chat_postMessage(channel=CHANNEL, text="after")["ok"]
        assert [(c.method, c.http_status, c.ok) for c in s.calls] == [
            ("chat.postMessage", 503, False),
            ("auth.test", 200, True),
            ("auth.test", 502, False),
            ("chat.postMessage", 200, True),
        ]
        assert [m.text for m in s.messages()] == ["after"]


# -- response_url --------------------------------------------------------------------------------
def test_response_url_posts_are_recorded(standin: SlackStandIn) -> None:
    hook = WebhookClient(standin.response_url(OPERATOR, CHANNEL))
    assert hook.send(text="just you").body == "ok"
    assert hook.send(text="everyone", response_type="in_channel").status_code == 200
    (mine,) = standin.ephemerals(OPERATOR)
    assert mine.text == "just you" and mine.source == "response_url"
    public = standin.messages()[-1]
    assert public.text == "everyone" and public.ephemeral_to is None
    assert standin.count("response_url") == 2


def test_response_url_allows_five_posts(standin: SlackStandIn) -> None:
    hook = WebhookClient(standin.response_url(OPERATOR))
    statuses = [hook.send(text=f"{i}").status_code for i in range(6)]
    assert statuses == [200] * 5 + [404]
    assert standin.calls[-1].error == "used_url"
    assert len(standin.ephemerals(OPERATOR)) == 5
    other = WebhookClient(standin.response_url(OPERATOR))
    assert other.send(text="a fresh URL works").status_code == 200


def test_response_url_expires_after_30_minutes() -> None:
    clock = FakeClock()
    with SlackStandIn(clock=clock) as s:
        hook = WebhookClient(s.response_url(OPERATOR))
        clock.now += 30 * 60 + 1
        reply = hook.send(text="late")
        assert (reply.status_code, reply.body) == (404, "expired_url")
        unknown = WebhookClient(s.url + "hooks/nope").send(text="x")
        assert unknown.status_code == 404


def test_response_url_replace_original_and_violations(standin: SlackStandIn) -> None:
    hook = WebhookClient(standin.response_url(OPERATOR))
    hook.send(text="working…")
    hook.send(text="done", blocks=[section("*done*")], replace_original=True)
    (shown,) = standin.ephemerals(OPERATOR)
    assert shown.text == "done" and [v.text for v in shown.edits] == ["working…"]
    hook.send(blocks=[section("no fallback")])
    (violation,) = standin.violations
    assert violation.startswith(f"response_url {CHANNEL}:")


# -- transcript and change feed -------------------------------------------------------------------
def test_transcript_reads_like_the_channel(client: WebClient, standin: SlackStandIn) -> None:
    seen: list[tuple[str, str]] = []
    standin.on_change(lambda kind, msg: seen.append((kind, msg.ts)))
    head = {"type": "header", "text": {"type": "plain_text", "text": "Swap acme"}}
    ts = client.chat_postMessage(channel=CHANNEL, text="swap", blocks=[head, section("prep")])["ts"]
    client.chat_postMessage(channel=CHANNEL, text="prep done", thread_ts=ts)
    client.chat_update(channel=CHANNEL, ts=ts, text="swap", blocks=[head, section("cutover")])
    client.chat_postEphemeral(channel=CHANNEL, user=OPERATOR, text="you asked for it")
    standin.add_reaction(CHANNEL, ts, APPROVER, "white_check_mark")
    assert standin.transcript().splitlines() == [
        "swapbot (edited): SWAP ACME",
        "    cutover",
        "    :white_check_mark: arjun",
        "    swapbot: prep done",
        "swapbot (only visible to olivia): you asked for it",
    ]
    assert [kind for kind, _ in seen] == ["post", "post", "update", "ephemeral", "reaction"]


def test_wait_for_returns_the_value_or_explains(standin: SlackStandIn) -> None:
    assert standin.wait_for(lambda: 42) == 42
    with pytest.raises(AssertionError, match="still"):
        standin.wait_for(lambda: standin.messages(), timeout=0.05)


# -- the driver, against a server that records what it receives -----------------------------------
class Recorder:
    """A tiny HTTP app that keeps each raw request and answers 200 with `answer`."""

    def __init__(self, answer: str = "") -> None:
        self.answer, self.requests = answer, []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                recorder.requests.append((self.path, dict(self.headers), body.decode()))
                raw = recorder.answer.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/slack/events"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


@pytest.fixture
def driver(recorder: Recorder, standin: SlackStandIn) -> SlackDriver:
    return SlackDriver(recorder.url, SECRET, standin)


def is_signed(headers: dict[str, str], body: str) -> bool:
    return SignatureVerifier(SECRET).is_valid_request(body, headers)


def test_command_is_a_signed_form(
    driver: SlackDriver, recorder: Recorder, standin: SlackStandIn
) -> None:
    recorder.answer = "on it"
    reply = driver.command(OPERATOR, "plan show")
    assert (reply.status, reply.body) == (200, "on it") and reply.elapsed < 5
    path, headers, body = recorder.requests[0]
    assert path == "/slack/events" and is_signed(headers, body)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(body).items()}
    assert form["command"] == "/hcswap" and form["text"] == "plan show"
    assert (form["user_id"], form["user_name"]) == (OPERATOR, "olivia")
    assert (form["channel_id"], form["channel_name"], form["team_id"]) == (
        CHANNEL,
        "swaps",
        "T0SWAPBOT",
    )
    assert form["api_app_id"] == "A0SWAPBOT"
    assert form["response_url"].startswith(standin.url + "hooks/")
    driver.command(OPERATOR, "plan show")
    second = {k: v[0] for k, v in parse_qs(recorder.requests[1][2]).items()}
    assert second["trigger_id"] != form["trigger_id"]
    assert second["response_url"] != form["response_url"]
    assert [m.text for m in standin.ephemerals(OPERATOR)] == ["on it", "on it"]


def test_command_signature_can_be_forged_or_left_out(
    driver: SlackDriver, recorder: Recorder
) -> None:
    driver.command(OPERATOR, "help", signature="v0=forged")
    driver.command(OPERATOR, "help", unsigned=True)
    driver.command(OPERATOR, "help", timestamp=int(time.time()) - 600)
    driver.command(OPERATOR, "help", trigger_id="t-1", retry_num=1)
    forged, unsigned, stale, fixed = recorder.requests
    assert forged[1]["X-Slack-Signature"] == "v0=forged" and not is_signed(forged[1], forged[2])
    assert "X-Slack-Signature" not in unsigned[1]
    assert not is_signed(stale[1], stale[2])
    assert "trigger_id=t-1" in fixed[2] and fixed[1]["X-Slack-Retry-Num"] == "1"


def test_react_sends_a_signed_reaction_added_event(
    driver: SlackDriver, recorder: Recorder, standin: SlackStandIn, client: WebClient
) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="approve?")["ts"]
    reply = driver.react(APPROVER, CHANNEL, ts)
    assert reply is not None and reply.status == 200
    assert standin.message(CHANNEL, ts).reactions == {"white_check_mark": [APPROVER]}
    _, headers, body = recorder.requests[0]
    assert is_signed(headers, body) and headers["Content-Type"] == "application/json"
    assert "X-Slack-Retry-Num" not in headers
    envelope = json.loads(body)
    assert envelope["type"] == "event_callback" and envelope["event_id"] == reply.event_id
    assert envelope["team_id"] == "T0SWAPBOT" and envelope["api_app_id"] == "A0SWAPBOT"
    assert envelope["authorizations"][0]["user_id"] == "U0SWAPBOT"
    event = envelope["event"]
    assert event["type"] == "reaction_added" and event["user"] == APPROVER
    assert event["reaction"] == "white_check_mark" and event["item_user"] == "U0SWAPBOT"
    assert event["item"] == {"type": "message", "channel": CHANNEL, "ts": ts}


def test_redelivery_resends_the_same_envelope_with_retry_headers(
    driver: SlackDriver, recorder: Recorder, client: WebClient
) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="approve?")["ts"]
    first = driver.react(APPROVER, CHANNEL, ts, event_id="Ev0FIXED", retry_num=None)
    driver.redeliver(first.event_id, retry_num=2)
    driver.redeliver(first.envelope, retry_num=3, retry_reason="http_error")
    (_, _, original), (_, again, body2), (_, third, body3) = recorder.requests
    assert original == body2 == body3 and json.loads(body2)["event_id"] == "Ev0FIXED"
    assert (again["X-Slack-Retry-Num"], again["X-Slack-Retry-Reason"]) == ("2", "http_timeout")
    assert (third["X-Slack-Retry-Num"], third["X-Slack-Retry-Reason"]) == ("3", "http_error")
    assert is_signed(again, body2)


def test_no_event_for_a_channel_the_bot_is_not_in(
    driver: SlackDriver, recorder: Recorder, standin: SlackStandIn, client: WebClient
) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="approve?")["ts"]
    standin.remove_member(CHANNEL, standin.bot_user_id)
    assert driver.react(APPROVER, CHANNEL, ts) is None
    assert recorder.requests == []
    assert standin.message(CHANNEL, ts).reactions == {"white_check_mark": [APPROVER]}


def test_url_verification(driver: SlackDriver, recorder: Recorder) -> None:
    driver.url_verification("chal-123")
    _, headers, body = recorder.requests[0]
    assert json.loads(body) == {
        "token": json.loads(body)["token"],
        "challenge": "chal-123",
        "type": "url_verification",
    }
    assert is_signed(headers, body)


def test_click_sends_a_signed_block_actions_form(
    driver: SlackDriver, recorder: Recorder, standin: SlackStandIn, client: WebClient
) -> None:
    blocks = [section("approve?"), actions(button("yes", style="primary"), block_id="acts")]
    root = client.chat_postMessage(channel=CHANNEL, text="root")["ts"]
    posted = client.chat_postMessage(
        channel=CHANNEL, text="approve?", blocks=blocks, thread_ts=root
    )
    ts = posted["ts"]
    client.chat_update(channel=CHANNEL, ts=ts, text="approve? (edited)", blocks=blocks)
    message = standin.message(CHANNEL, ts)
    assert [b["action_id"] for b in standin.buttons(CHANNEL, ts)] == ["yes"]  # kept by the edit
    assert standin.buttons(CHANNEL, ts)[0]["block_id"] == "acts"

    reply = driver.click(APPROVER, message, "yes", trigger_id="tr-1")
    assert reply is not None and reply.status == 200
    path, headers, body = recorder.requests[0]
    assert path == "/slack/events" and is_signed(headers, body)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    (raw,) = parse_qs(body)["payload"]
    payload = json.loads(raw)
    assert payload == reply.envelope
    assert payload["type"] == "block_actions" and payload["trigger_id"] == "tr-1"
    assert payload["user"]["id"] == APPROVER and payload["user"]["username"] == "arjun"
    assert payload["channel"] == {"id": CHANNEL, "name": "swaps"}
    assert payload["team"]["id"] == "T0SWAPBOT" and payload["api_app_id"] == "A0SWAPBOT"
    assert payload["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": CHANNEL,
        "is_ephemeral": False,
        "thread_ts": root,
    }
    assert payload["message"]["ts"] == ts and payload["message"]["bot_id"] == "B0SWAPBOT"
    assert payload["message"]["blocks"] == blocks and payload["message"]["thread_ts"] == root
    (action,) = payload["actions"]
    assert action["type"] == "button" and action["action_id"] == "yes"
    assert (action["block_id"], action["value"], action["style"]) == ("acts", "yes-1", "primary")
    assert abs(float(action["action_ts"]) - time.time()) < 5
    assert payload["response_url"].startswith(standin.url + "hooks/")

    # the same click again: the same bytes, signed afresh; a cancelled dialog sends nothing
    driver.click_again("tr-1")
    assert recorder.requests[1][2] == body and is_signed(recorder.requests[1][1], body)
    assert driver.click(APPROVER, message, "yes", confirmed=False) is None
    assert len(recorder.requests) == 2
    with pytest.raises(LookupError, match="no button 'no'"):
        driver.click(APPROVER, message, "no")


def test_a_clicks_response_url_answers_privately_or_edits_the_message_clicked(
    driver: SlackDriver, standin: SlackStandIn, client: WebClient
) -> None:
    blocks = [section("approve?"), actions(button("yes"))]
    ts = client.chat_postMessage(channel=CHANNEL, text="approve?", blocks=blocks)["ts"]
    url = driver.click(APPROVER, standin.message(CHANNEL, ts), "yes").envelope["response_url"]
    hook = WebhookClient(url)
    hook.send(text="only you", response_type="ephemeral", replace_original=False)
    (mine,) = standin.ephemerals(APPROVER)
    assert mine.text == "only you" and standin.message(CHANNEL, ts).blocks == blocks
    hook.send(text="decided", blocks=[section("decided")], replace_original=True)
    clicked = standin.message(CHANNEL, ts)
    assert clicked.text == "decided" and standin.buttons(CHANNEL, ts) == []
    assert clicked.edits[-1].blocks == blocks


# -- end to end with a real Bolt app ---------------------------------------------------------------
class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def test_driver_and_standin_with_a_real_bolt_app(standin: SlackStandIn) -> None:
    app = App(
        signing_secret=SECRET, client=WebClient(token=standin.token, base_url=standin.api_url)
    )
    reactions: list[tuple[str, Any]] = []

    @app.command("/hcswap")
    def hcswap(ack, respond, say, command) -> None:
        ack(f"got `{command['text']}`")
        respond(text="working on it")
        say(text="status: prep", blocks=[section("*prep*")])

    @app.event("reaction_added")
    def reaction_added(event, req) -> None:
        reactions.append((event["user"], req.headers.get("x-slack-retry-num")))

    clicks: list[tuple[str, str]] = []

    @app.action("yes")
    def yes(ack, body, action) -> None:
        ack()
        clicks.append((body["user"]["id"], action["value"]))

    server = make_server(
        "127.0.0.1",
        0,
        SlackRequestHandler(app),
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        driver = SlackDriver(f"http://127.0.0.1:{server.server_port}/slack/events", SECRET, standin)
        assert driver.command(OPERATOR, "plan", signature="v0=bad").status == 401
        assert driver.command(OPERATOR, "plan").status == 200
        status = standin.wait_for(lambda: [m for m in standin.messages() if not m.ephemeral_to])
        standin.wait_for(lambda: len(standin.ephemerals(OPERATOR)) == 2)
        # The ack's answer and respond() race, in Slack too: compare without order.
        assert sorted(m.text for m in standin.ephemerals(OPERATOR)) == [
            "got `plan`",
            "working on it",
        ]
        first = driver.react(APPROVER, CHANNEL, status[0].ts)
        driver.redeliver(first.event_id)
        standin.wait_for(lambda: len(reactions) == 2)
        assert reactions == [(APPROVER, None), (APPROVER, ["1"])]
        asking = WebClient(token=standin.token, base_url=standin.api_url).chat_postMessage(
            channel=CHANNEL, text="yes?", blocks=[actions(button("yes"))]
        )
        clicked = standin.message(CHANNEL, asking["ts"])
        assert driver.click(APPROVER, clicked, "yes", signature="v0=bad").status == 401
        assert driver.click(APPROVER, clicked, "yes").status == 200
        assert clicks == [(APPROVER, "yes-1")]
        assert standin.count("auth.test") == 1 and standin.violations == []
    finally:
        server.shutdown()
        server.server_close()


# -- modals -----------------------------------------------------------------------------------------
def modal(*blocks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    view = {"type": "modal", "callback_id": "form", "title": plain("A form"),
            "submit": plain("Save"), "private_metadata": "C0SWAP", "blocks": list(blocks)}  # fmt: skip
    return view | extra


def text_input(block_id: str, value: str = "", *, optional: bool = False) -> dict[str, Any]:
    element = {"type": "plain_text_input", "action_id": block_id}
    if value:
        element["initial_value"] = value
    return {"type": "input", "block_id": block_id, "label": plain(block_id), "element": element,
            "optional": optional}  # fmt: skip


def picker(block_id: str, *values: str, external: bool = False) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "multi_external_select" if external else "multi_static_select",
                               "action_id": f"{block_id}-pick", "placeholder": plain("Choose")}  # fmt: skip
    if not external:
        element["options"] = [{"text": plain(v), "value": v} for v in values]
    return {"type": "input", "block_id": block_id, "label": plain(block_id), "element": element,
            "optional": True}  # fmt: skip


def test_views_open_takes_a_trigger_within_3_seconds_once() -> None:
    clock = FakeClock()
    with SlackStandIn(clock=clock) as standin:
        client = WebClient(token=standin.token, base_url=standin.api_url)
        view = modal(text_input("name", "x"))
        assert (
            slack_error(client.views_open, trigger_id="never-sent", view=view)
            == "invalid_trigger_id"
        )
        standin.issue_trigger("t1", OPERATOR, CHANNEL)
        opened = client.views_open(trigger_id="t1", view=view)["view"]
        assert opened["id"].startswith("V") and opened["hash"] and opened["callback_id"] == "form"
        assert opened["state"] == {"values": {}} and opened["root_view_id"] == opened["id"]
        assert slack_error(client.views_open, trigger_id="t1", view=view) == "exchanged_trigger_id"
        standin.issue_trigger("t2", OPERATOR, CHANNEL)
        clock.now += 3.5
        assert slack_error(client.views_open, trigger_id="t2", view=view) == "expired_trigger_id"
        (kept,) = standin.views(OPERATOR)
        assert kept.open and kept.trigger_id == "t1" and standin.view(opened["id"]) == opened


def test_views_update_needs_the_current_hash_and_an_open_view(
    standin: SlackStandIn, client: WebClient
) -> None:
    standin.issue_trigger("t1", OPERATOR)
    first = client.views_open(trigger_id="t1", view=modal(text_input("name")))["view"]
    second = client.views_update(view_id=first["id"], hash=first["hash"], view=modal(text_input("name", "filled")))["view"]  # fmt: skip
    assert second["id"] == first["id"] and second["hash"] != first["hash"]
    assert second["blocks"][0]["element"]["initial_value"] == "filled"
    stale = {"view_id": first["id"], "hash": first["hash"], "view": modal(text_input("n"))}
    assert slack_error(client.views_update, **stale) == "hash_conflict"
    assert slack_error(client.views_update, view_id="VNOPE", view=modal()) == "not_found"
    standin.view_answered(first["id"], 200, {"response_action": "clear"})
    assert not standin.opened(first["id"]).open
    assert slack_error(client.views_update, view_id=first["id"], view=modal()) == "not_found"


@pytest.mark.parametrize(
    ("view", "problem"),
    [
        (modal(title=plain("A title longer than 24 chars")), "/view/title/text"),
        (modal(*[text_input(f"b{i}") for i in range(101)]), "no more than 100 items"),
        (modal(text_input("x"), submit=None) | {"submit": plain("x" * 25)}, "/view/submit/text"),
        ({k: v for k, v in modal(text_input("x")).items() if k != "submit"}, "needs a submit"),
        (modal(private_metadata="m" * 3001), "/view/private_metadata"),
        (modal(picker("p", *[f"v{i}" for i in range(101)])), "must have 1 to 100 items"),
        (modal(picker("p", "x" * 151)), "must be a string of 1 to 150 characters"),
        (modal(picker("p", "a") | {"element": {**picker("p", "a")["element"], "initial_options": [{"text": plain("b"), "value": "b"}]}}), "must be one of the options"),
    ],
)  # fmt: skip
def test_a_view_past_slacks_limits_is_refused(
    standin: SlackStandIn, client: WebClient, view, problem
) -> None:
    standin.issue_trigger("t1", OPERATOR)
    with pytest.raises(SlackApiError) as caught:
        client.views_open(trigger_id="t1", view=view)
    assert caught.value.response["error"] == "invalid_arguments"
    assert any(problem in m for m in caught.value.response["response_metadata"]["messages"])
    assert validate_view(view) != []


def test_suggestions_and_submissions_are_signed_forms_with_slacks_payloads(
    driver: SlackDriver, recorder: Recorder, standin: SlackStandIn, client: WebClient
) -> None:
    standin.issue_trigger("t1", OPERATOR, CHANNEL)
    view = modal(
        text_input("name", "first"),
        picker("colour", "red", "blue"),
        picker("fields", external=True),
    )
    opened = client.views_open(trigger_id="t1", view=view)["view"]
    recorder.answer = json.dumps(
        {"options": [{"text": plain("Account.Rating"), "value": "Account.Rating"}]}
    )
    asked = driver.suggest(OPERATOR, opened, "fields-pick", "rat", values={"colour": ["blue"]})
    path, headers, body = recorder.requests[-1]
    assert asked.status == 200 and is_signed(headers, body)
    payload = json.loads(parse_qs(body)["payload"][0])
    assert (payload["type"], payload["action_id"], payload["block_id"], payload["value"]) == (
        "block_suggestion", "fields-pick", "fields", "rat")  # fmt: skip
    assert payload["user"]["id"] == OPERATOR and payload["container"] == {
        "type": "view",
        "view_id": opened["id"],
    }
    assert (
        payload["view"]["state"]["values"]["colour"]["colour-pick"]["selected_options"][0]["value"]
        == "blue"
    )
    with pytest.raises(LookupError, match="no external select"):
        driver.suggest(OPERATOR, opened, "colour-pick", "r")
    with pytest.raises(LookupError, match="never offered"):
        standin.view_submission(OPERATOR, opened["id"], {"fields": ["Contact.Phone"]}, api_app_id="A", token="t", trigger_id="x")  # fmt: skip
    with pytest.raises(ValueError, match="'name' is required"):
        driver.submit(OPERATOR, opened, {"name": ""})

    recorder.answer = json.dumps({"response_action": "errors", "errors": {"name": "Not that name"}})
    driver.submit(OPERATOR, opened, {"fields": ["Account.Rating"]})
    payload = json.loads(parse_qs(recorder.requests[-1][2])["payload"][0])
    assert payload["type"] == "view_submission" and payload["view"]["callback_id"] == "form"
    assert payload["view"]["private_metadata"] == "C0SWAP" and payload["response_urls"] == []
    values = payload["view"]["state"]["values"]
    assert values["name"]["name"] == {"type": "plain_text_input", "value": "first"}  # untouched
    assert values["colour"]["colour-pick"] == {
        "type": "multi_static_select",
        "selected_options": [],
    }
    assert values["fields"]["fields-pick"]["selected_options"][0]["value"] == "Account.Rating"
    assert standin.opened(opened["id"]).errors == {"name": "Not that name"}
    assert standin.opened(opened["id"]).open

    recorder.answer = json.dumps({"response_action": "errors", "errors": {"nope": "x"}})
    driver.submit(OPERATOR, opened, {"name": "second"})
    assert any("no input block" in v for v in standin.violations)
    recorder.answer = ""
    driver.submit(OPERATOR, opened, {"name": "second"})
    assert not standin.opened(opened["id"]).open
    with pytest.raises(LookupError, match="no open view"):
        driver.submit(OPERATOR, opened, {"name": "again"})
    recorder.answer = json.dumps({"options": [{"text": plain("x" * 80), "value": "x"}]})
    assert validate_options(json.loads(recorder.answer)) != []
