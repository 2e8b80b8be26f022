"""Talk to a Bolt app over real HTTP the way Slack does: signed slash commands, reaction
and App Home events (with Slack's retries), button clicks (`block_actions`), modals (a form
opened by a command's trigger_id, its external selects' `block_suggestion`s and its
`view_submission`) and the URL-verification challenge.

It pairs with `SlackStandIn`: commands carry a response URL from the stand-in, and a reaction is
first put on the stand-in's message, then delivered as an event, only if the bot is in the
channel (https://api.slack.com/interactivity/slash-commands), so a test sees what a person in the workspace would see.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import requests
from slack_sdk.signature import SignatureVerifier

from swapbot.testing.standin import DEFAULT_CHANNEL, Message, SlackStandIn

VERIFICATION_TOKEN = "legacy-verification-token"  # deprecated by Slack, sent anyway; never checked
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass
class DriverResponse:
    """What the app answered. `event_id`/`envelope` are set for delivered events."""

    status: int
    body: str
    headers: dict[str, str]
    elapsed: float
    event_id: str | None = None
    envelope: dict[str, Any] | None = field(default=None, repr=False)

    def json(self) -> Any:
        return json.loads(self.body)


class SlackDriver:
    """Sends what Slack sends to the Bolt app at `app_url`, e.g. http://127.0.0.1:P/slack/events."""

    def __init__(
        self,
        app_url: str,
        signing_secret: str,
        standin: SlackStandIn,
        *,
        team_id: str | None = None,
        api_app_id: str = "A0SWAPBOT",
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ):
        self.app_url, self.standin = app_url, standin
        self.verifier = SignatureVerifier(signing_secret)
        self.team_id = team_id or standin.team_id
        self.api_app_id, self.clock, self.timeout = api_app_id, clock, timeout
        # Raw bodies of delivered events by event_id: a retry resends exactly these bytes.
        self.deliveries: dict[str, str] = {}
        # Raw bodies of clicks by trigger_id, for sending the same click again.
        self.clicks: dict[str, str] = {}
        self._triggers = itertools.count(1)

    # -- slash commands --------------------------------------------------------------------------
    def command(
        self,
        user: str,
        text: str,
        *,
        channel: str = DEFAULT_CHANNEL,
        command: str = "/hcswap",
        trigger_id: str | None = None,
        timestamp: str | int | None = None,
        signature: str | None = None,
        retry_num: int | None = None,
        unsigned: bool = False,
    ) -> DriverResponse:
        """`user` types `command text` in `channel`: Slack POSTs the form to the app, then shows
        the app's answer (the `ack` body) to the user, recorded on the stand-in."""
        response = self._post(
            self.command_form(user, text, channel=channel, command=command, trigger_id=trigger_id),
            FORM,
            timestamp=timestamp,
            signature=signature,
            unsigned=unsigned,
            extra=_retry_headers(retry_num, "http_timeout"),
        )
        self._show_ack(user, channel, response)
        return response

    def command_form(
        self,
        user: str,
        text: str,
        *,
        channel: str = DEFAULT_CHANNEL,
        command: str = "/hcswap",
        trigger_id: str | None = None,
    ) -> str:
        """The form body Slack sends for a slash command (sign it with `signed_headers`)."""
        form = {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "team_domain": self.standin.team_domain,
            "channel_id": channel,
            "channel_name": self.standin.channel_name(channel),
            "user_id": user,
            "user_name": self.standin.user_name(user),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": self.standin.response_url(user, channel),
            "trigger_id": trigger_id or self._trigger_id(),
        }
        self.standin.issue_trigger(form["trigger_id"], user, channel)
        return urlencode(form)

    def _show_ack(self, user: str, channel: str, response: DriverResponse) -> None:
        if response.status != 200 or not response.body.strip():
            return
        ctype = next((v for k, v in response.headers.items() if k.lower() == "content-type"), "")
        payload = response.json() if ctype.startswith(JSON) else {"text": response.body}
        self.standin.record_ack(user, channel, payload)

    def _trigger_id(self) -> str:
        return f"{next(self._triggers)}.{int(self.clock())}.{secrets.token_hex(16)}"

    # -- events ------------------------------------------------------------------------------------
    def react(
        self,
        user: str,
        channel: str,
        ts: str,
        reaction: str = "white_check_mark",
        *,
        event_id: str | None = None,
        event_time: int | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        timestamp: str | int | None = None,
        signature: str | None = None,
    ) -> DriverResponse | None:
        """`user` reacts to message `ts`. The reaction is shown on the stand-in's message; the
        `reaction_added` event goes to the app only if the bot is in the channel (else None)."""
        message = self.standin.add_reaction(channel, ts, user, reaction)
        raw = self._reaction_event(
            "reaction_added", message, user, reaction, event_id=event_id, event_time=event_time
        )
        if raw is None:
            return None
        return self._deliver(
            raw,
            retry_num=retry_num,
            retry_reason=retry_reason,
            timestamp=timestamp,
            signature=signature,
        )

    def unreact(
        self, user: str, channel: str, ts: str, reaction: str = "white_check_mark"
    ) -> DriverResponse | None:
        """`user` takes their reaction off message `ts`: the stand-in shows it gone, and the
        `reaction_removed` event goes to the app only if the bot is in the channel (else None)."""
        message = self.standin.remove_reaction(channel, ts, user, reaction)
        raw = self._reaction_event("reaction_removed", message, user, reaction)
        if raw is None:
            return None
        return self._deliver(raw, retry_num=None, retry_reason="http_timeout")

    def open_home(
        self,
        user: str,
        *,
        tab: str = "home",
        event_id: str | None = None,
        retry_num: int | None = None,
    ) -> DriverResponse:
        """`user` opens the app's Home on `tab` ("home" or "messages"): Slack sends the signed
        `app_home_opened` event (built by `SlackStandIn.app_home_opened`), kept for
        `redeliver`."""
        now = self.clock()
        event = self.standin.app_home_opened(user, tab=tab)
        envelope = self._envelope(event, event_id=event_id, event_time=None, now=now)
        raw = json.dumps(envelope)
        self.deliveries[envelope["event_id"]] = raw
        return self._deliver(raw, retry_num=retry_num, retry_reason="http_timeout")

    def _reaction_event(
        self,
        kind: str,
        message: Message,
        user: str,
        reaction: str,
        *,
        event_id: str | None = None,
        event_time: int | None = None,
    ) -> str | None:
        """The body of a reaction event on `message`, kept for redelivery; None when the bot is
        not in the channel, where Slack sends the app nothing."""
        channel = message.channel
        if not self.standin.is_member(channel, self.standin.bot_user_id):
            return None
        now = self.clock()
        event: dict[str, Any] = {
            "type": kind,
            "user": user,
            "reaction": reaction,
            "item": {"type": "message", "channel": channel, "ts": message.ts},
            "event_ts": f"{now:.6f}",
        }
        if message.source != "response_url":  # Slack leaves item_user out for webhook posts
            event["item_user"] = message.user
        envelope = self._envelope(event, event_id=event_id, event_time=event_time, now=now)
        raw = json.dumps(envelope)
        self.deliveries[envelope["event_id"]] = raw
        return raw

    def _envelope(
        self, event: dict[str, Any], *, event_id: str | None, event_time: int | None, now: float
    ) -> dict[str, Any]:
        return {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or "Ev" + secrets.token_hex(5).upper(),
            "event_time": int(now) if event_time is None else event_time,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.standin.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + secrets.token_hex(16),
        }

    def redeliver(
        self,
        envelope_or_event_id: dict[str, Any] | str,
        retry_num: int = 1,
        retry_reason: str = "http_timeout",
    ) -> DriverResponse:
        """Slack's retry of an event: the same body, signed afresh, with the retry headers."""
        if isinstance(envelope_or_event_id, dict):
            raw = self.deliveries.get(envelope_or_event_id["event_id"])
            raw = raw or json.dumps(envelope_or_event_id)
        else:
            raw = self.deliveries[envelope_or_event_id]
        return self._deliver(raw, retry_num=retry_num, retry_reason=retry_reason)

    def _deliver(
        self,
        raw: str,
        *,
        retry_num: int | None,
        retry_reason: str,
        timestamp: str | int | None = None,
        signature: str | None = None,
    ) -> DriverResponse:
        extra = _retry_headers(retry_num, retry_reason)
        response = self._post(raw, JSON, timestamp=timestamp, signature=signature, extra=extra)
        response.envelope = json.loads(raw)
        response.event_id = response.envelope["event_id"]
        return response

    # -- clicks ------------------------------------------------------------------------------------
    def click(
        self,
        user: str,
        message: Message,
        action_id: str,
        *,
        confirmed: bool = True,
        trigger_id: str | None = None,
        timestamp: str | int | None = None,
        signature: str | None = None,
        unsigned: bool = False,
    ) -> DriverResponse | None:
        """`user` clicks the button `action_id` of `message` (as the stand-in shows it now) and
        confirms its dialog: Slack POSTs a signed form whose `payload` field is the
        `block_actions` JSON (https://api.slack.com/interactivity/handling#payloads). With
        `confirmed=False` they cancel the dialog, and Slack sends nothing (None)."""
        payload = self.standin.block_actions(
            user,
            message.channel,
            message.ts,
            action_id,
            trigger_id=trigger_id or self._trigger_id(),
            api_app_id=self.api_app_id,
            token=VERIFICATION_TOKEN,
        )
        if not confirmed:
            return None
        self.standin.issue_trigger(payload["trigger_id"], user, message.channel)
        body = urlencode({"payload": json.dumps(payload)})
        self.clicks[payload["trigger_id"]] = body
        response = self._post(
            body, FORM, timestamp=timestamp, signature=signature, unsigned=unsigned
        )
        response.envelope = payload
        return response

    def click_again(self, trigger_id: str) -> DriverResponse:
        """The same click sent again, byte for byte and signed afresh (a retry by a proxy, or a
        replay): the app must treat it as the one click it is."""
        body = self.clicks[trigger_id]
        response = self._post(body, FORM)
        response.envelope = json.loads(_form_payload(body))
        return response

    # -- modals ------------------------------------------------------------------------------------
    def open_plan_form(
        self, user: str, *, channel: str = DEFAULT_CHANNEL, timeout: float = 5.0
    ) -> tuple[DriverResponse, dict[str, Any] | None]:
        """`user` types `/hcswap plan new` with no arguments: the app's acknowledgement and the
        modal it opened with the command's trigger_id (as views.open left it: a first view the
        worker then fills), or None when the acknowledgement said something (a refusal) or
        nothing opened within `timeout` seconds."""
        trigger_id = self._trigger_id()
        response = self.command(user, "plan new", channel=channel, trigger_id=trigger_id)
        if response.status != 200 or response.body.strip():
            return response, None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.standin.views(user, trigger_id=trigger_id)
            if found:
                return response, self.standin.view(found[0].view["id"])
            time.sleep(0.02)
        return response, None

    def suggest(
        self,
        user: str,
        view: dict[str, Any] | str,
        action_id: str,
        text: str,
        *,
        values: dict[str, Any] | None = None,
    ) -> DriverResponse:
        """`user` types `text` in the external select `action_id` of an open modal (with the
        form's other inputs set to `values`): Slack POSTs a signed `block_suggestion` form and
        shows the options the app answers, which may then be chosen in `submit`. The answer's
        problems, if any, are in the stand-in's violations."""
        view_id = view if isinstance(view, str) else str(view["id"])
        payload = self.standin.block_suggestion(
            user,
            view_id,
            action_id,
            text,
            api_app_id=self.api_app_id,
            token=VERIFICATION_TOKEN,
            values=values,
        )
        response = self._post(urlencode({"payload": json.dumps(payload)}), FORM)
        response.envelope = payload
        if response.status == 200 and response.body.strip():
            self.standin.offer(view_id, action_id, response.json())
        return response

    def submit(
        self, user: str, view: dict[str, Any] | str, values: dict[str, Any]
    ) -> DriverResponse:
        """`user` fills the open modal with `values` (block id -> a string for a text input or
        a users_select, a list of option values for a multi select; untouched inputs keep
        their initial values) and clicks its submit button: Slack POSTs a signed
        `view_submission` form, then closes the modal, shows the errors beside the fields, or
        replaces it, as the app answered. ValueError if Slack would not submit it."""
        view_id = view if isinstance(view, str) else str(view["id"])
        payload = self.standin.view_submission(
            user,
            view_id,
            values,
            api_app_id=self.api_app_id,
            token=VERIFICATION_TOKEN,
            trigger_id=self._trigger_id(),
        )
        response = self._post(urlencode({"payload": json.dumps(payload)}), FORM)
        response.envelope = payload
        body = response.body.strip()
        answer = response.json() if body.startswith("{") else None
        self.standin.view_answered(view_id, response.status, answer)
        return response

    def url_verification(self, challenge: str | None = None) -> DriverResponse:
        """The challenge Slack sends when the request URL is set; the app must echo it."""
        body = {
            "token": VERIFICATION_TOKEN,
            "challenge": challenge or secrets.token_urlsafe(24),
            "type": "url_verification",
        }
        return self._post(json.dumps(body), JSON)

    # -- the wire ----------------------------------------------------------------------------------
    def signed_headers(self, body: str, timestamp: str | int | None = None) -> dict[str, str]:
        """The two headers Slack signs a request with (https://api.slack.com/authentication/verifying-requests-from-slack)."""
        stamp = str(int(self.clock()) if timestamp is None else timestamp)
        signature = self.verifier.generate_signature(timestamp=stamp, body=body)
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature or ""}

    def _post(
        self,
        body: str,
        content_type: str,
        *,
        timestamp: str | int | None = None,
        signature: str | None = None,
        unsigned: bool = False,
        extra: dict[str, str] | None = None,
    ) -> DriverResponse:
        headers = {"Content-Type": content_type, "User-Agent": "Slackbot 1.0 (+swapbot driver)"}
        if not unsigned:
            headers.update(self.signed_headers(body, timestamp))
            if signature is not None:
                headers["X-Slack-Signature"] = signature
        headers.update(extra or {})
        started = time.perf_counter()
        # A plain requests.post per call, so tests may send from several threads at once.
        reply = requests.post(
            self.app_url, data=body.encode("utf-8"), headers=headers, timeout=self.timeout
        )
        return DriverResponse(
            status=reply.status_code,
            body=reply.text,
            headers=dict(reply.headers),
            elapsed=time.perf_counter() - started,
        )


def _form_payload(body: str) -> str:
    return parse_qs(body)["payload"][0]


def _retry_headers(retry_num: int | None, reason: str) -> dict[str, str]:
    if retry_num is None:
        return {}
    return {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": reason}
