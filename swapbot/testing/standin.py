"""A local stand-in for Slack's Web API and `response_url`s, for tests and the terminal demo.

It serves the Web API methods the bot calls over real HTTP on 127.0.0.1, so the real
`slack_sdk.WebClient` (and Bolt, which uses it) talks to it unchanged: `base_url=standin.api_url`.
It keeps the channel's messages as Slack would show them, records every call, and enforces
Slack's errors and limits (https://api.slack.com/methods/chat.postMessage, https://api.slack.com/reference/block-kit/blocks) closely enough to catch real mistakes. Mistakes
Slack lets through but we never want (blocks without fallback text, a `chat.update` that wipes
the blocks, a secret or an `@channel` in a message, a method the manifest's scopes do not cover)
are answered `ok` and listed in `violations`, so a test can assert there are none.
`outage()` makes the Web API answer as Slack does while it is down.

Buttons are kept with their messages as the bot sent them (chat.postMessage, chat.update) and
checked against Block Kit's limits. `buttons()` lists a message's buttons and `block_actions()`
builds what Slack sends when a person clicks one (a `block_actions` payload with a fresh
`response_url` whose `replace_original` edits the clicked message,
https://api.slack.com/reference/interaction-payloads/block-actions); `SlackDriver.click` signs
and sends it.

Modals: `views.open` takes a trigger_id the driver sent with a command or a click, within 3
seconds and once (`invalid_trigger_id`, `expired_trigger_id`, `exchanged_trigger_id`);
`views.update` needs the view open and, when given, its current hash (`hash_conflict`). Views
are checked against Slack's limits (`validate_view`: a title of 24 characters, 100 blocks, input
blocks with their select menus of at most 100 options) and kept with whom they are open for.
`block_suggestion()` and `view_submission()` build what Slack sends when a person types in an
external select or submits the form (https://docs.slack.dev/reference/interaction-payloads);
`view_answered()` does what Slack does with the app's answer (close, errors beside the fields,
update); `SlackDriver.suggest` and `SlackDriver.submit` sign and send them.

The Home tab: `views.publish` keeps the view last published for each person (`home()`, every
version in `homes()`), checked as Slack checks a Home view (`validate_home_view`: type home, 100
blocks, no title, submit or close; over 250 kB is `view_too_large`), and answers with the view
as Slack does (https://docs.slack.dev/reference/methods/views.publish). `app_home_opened()`
builds the event Slack sends when a person opens the app's Home
(https://docs.slack.dev/reference/events/app_home_opened); `SlackDriver.open_home` signs and
sends it. `conversations.members` lists a channel's members, a page at a time.
"""

from __future__ import annotations

import copy
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from swapbot._http import QuietServer

DEFAULT_TOKEN = "xoxb-test-token"
DEFAULT_CHANNEL = "C0SWAP"
BOT_NAME = "swapbot"
# The bot scopes of manifest.yml; reported by auth.test in `x-oauth-scopes` as Slack does.
DEFAULT_SCOPES = ("commands", "chat:write", "reactions:read", "channels:read", "groups:read")

MAX_TEXT = 40_000  # chat.postMessage / postEphemeral `text`
MAX_UPDATE_TEXT = 4_000  # chat.update `text` (https://api.slack.com/methods/chat.update)
MAX_BLOCKS_TEXT = 12_000  # [U] combined block text; Slack answers msg_blocks_too_long (§8.1)
MAX_BLOCKS = 50
RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_TTL_SECONDS = 30 * 60

SECRET = re.compile(
    r"xox[abposr]-|xapp-|postgres(?:ql)?://[^\s:/@]+:[^\s@/]+@|hooks\.slack\.com", re.IGNORECASE
)
BROADCAST = re.compile(r"<!(channel|here|everyone)(?:\|[^>]*)?>")


# -- rate limits ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limit:
    """A token bucket: `burst` calls at once, refilled at `per_second`; per channel or workspace."""

    burst: float
    per_second: float
    per_channel: bool = False


TIER_3 = Limit(50, 50 / 60)
TIER_4 = Limit(100, 100 / 60)
DEFAULT_LIMITS: dict[str, Limit] = {
    # "About 1 message per second per channel, with short bursts allowed" (https://api.slack.com/docs/rate-limits).
    "chat.postMessage": Limit(5, 1.0, per_channel=True),
    "chat.update": TIER_3,
    "conversations.info": TIER_3,
    "reactions.add": TIER_3,
    "chat.postEphemeral": TIER_4,
    "users.info": TIER_4,
    "views.open": TIER_4,
    "views.update": TIER_4,
    "views.publish": TIER_4,
    "conversations.members": TIER_4,
}

# The scope each method needs; a call the granted scopes do not cover is a violation.
REQUIRED_SCOPES: dict[str, tuple[str, ...]] = {
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "conversations.info": ("channels:read", "groups:read"),
    "conversations.members": ("channels:read", "groups:read"),
    "users.info": ("users:read",),
    "reactions.add": ("reactions:write",),
}


class _Bucket:
    def __init__(self, limit: Limit, now: float):
        self.tokens, self.at = float(limit.burst), now

    def take(self, limit: Limit, now: float) -> float:
        """Spend one token; 0 when allowed, else the seconds until one is there."""
        self.tokens = min(limit.burst, self.tokens + max(0.0, now - self.at) * limit.per_second)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / max(limit.per_second, 1e-9)


# -- what is recorded ----------------------------------------------------------------------------
@dataclass
class Call:
    """One request to the stand-in; `method` is "response_url" for posts to a response URL."""

    method: str
    params: dict[str, Any]
    token_ok: bool
    http_status: int
    ok: bool
    error: str | None
    at: float


@dataclass
class Version:
    """What a message said before an edit."""

    text: str | None
    blocks: list[dict[str, Any]] | None


@dataclass
class Message:
    """A message as Slack keeps it. `source` says how it came: "api" (chat.* methods),
    "response_url", "ack" (a slash command's HTTP answer) or "user" (a person wrote it)."""

    ts: str
    channel: str
    user: str
    text: str | None
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    edits: list[Version] = field(default_factory=list)
    reactions: dict[str, list[str]] = field(default_factory=dict)
    ephemeral_to: str | None = None
    broadcast: bool = False
    source: str = "api"

    def as_api(self, bot_id: str | None = None) -> dict[str, Any]:
        """The `message` object of a chat.postMessage answer."""
        out: dict[str, Any] = {"type": "message", "user": self.user, "ts": self.ts}
        out["text"] = self.text or ""
        if bot_id:
            out["bot_id"] = bot_id
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        return out


@dataclass
class _Channel:
    id: str
    name: str
    members: set[str]
    is_private: bool = False
    is_archived: bool = False
    is_ext_shared: bool = False


@dataclass
class _User:
    id: str
    name: str
    is_bot: bool = False
    deleted: bool = False
    is_restricted: bool = False
    is_ultra_restricted: bool = False


@dataclass
class _Hook:
    id: str
    user: str
    channel: str
    created_at: float
    uses: int = 0
    last_ts: str | None = None
    message_ts: str | None = None  # an interaction's: the message whose button was clicked


class ApiError(Exception):
    """A Slack API error: answered `{"ok": false, "error": ...}` with HTTP 200, as Slack does."""

    def __init__(self, error: str, **extra: Any):
        super().__init__(error)
        self.error, self.extra = error, extra


@dataclass
class _Ctx:
    """One API call while it is handled: its params and the changes to announce afterwards."""

    method: str
    params: dict[str, Any]
    changes: list[tuple[str, Message]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    channel: str | None = None  # when the channel is not a param (a response_url post)


@dataclass
class _Reply:
    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Outage:
    until: float  # by the stand-in's clock
    reply: _Reply
    methods: frozenset[str] | None  # None: every method


Listener = Callable[[str, Message], None]


# -- Block Kit validation (https://api.slack.com/reference/block-kit/blocks) ---------------------------------------------------------
def validate_blocks(
    blocks: Any,
    *,
    most: int = MAX_BLOCKS,
    checks: dict[str, Callable[[dict[str, Any], str], list[str]]] | None = None,
) -> list[str]:
    """Why Slack would answer `invalid_blocks`, in its own message style; empty if it would not.
    A message holds at most 50 blocks, a modal 100 (`validate_view`)."""
    if not isinstance(blocks, list):
        return ["[ERROR] must be an array [json-pointer:/blocks]"]
    problems: list[str] = []
    if len(blocks) > most:
        problems.append(_problem(f"no more than {most} items allowed", "/blocks"))
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict):
            problems.append(_problem("must be an object", where))
            continue
        problems += _block_id_problems(block, where, seen_ids)
        check = (checks or _BLOCK_CHECKS).get(block.get("type"))
        if check is None:
            problems.append(_problem(f"unsupported type: {block.get('type')!r}", f"{where}/type"))
        else:
            problems += check(block, where)
    return problems


def blocks_text_length(value: Any) -> int:
    """Characters of text in a message's blocks, the measure of `msg_blocks_too_long`."""
    if isinstance(value, list):
        return sum(blocks_text_length(v) for v in value)
    if isinstance(value, dict):
        return sum(
            len(v) if k == "text" and isinstance(v, str) else blocks_text_length(v)
            for k, v in value.items()
        )
    return 0


def _problem(what: str, where: str) -> str:
    return f"[ERROR] {what} [json-pointer:{where}]"


def _block_id_problems(block: dict[str, Any], where: str, seen: set[str]) -> list[str]:
    block_id = block.get("block_id")
    if block_id is None:
        return []
    if not isinstance(block_id, str) or not 1 <= len(block_id) <= 255:
        return [_problem("must be a string of 1 to 255 characters", f"{where}/block_id")]
    if block_id in seen:
        return [_problem(f"duplicate block_id {block_id!r}", f"{where}/block_id")]
    seen.add(block_id)
    return []


def _text_object(
    obj: Any, where: str, *, max_len: int, plain_only: bool = False, min_len: int = 1
) -> list[str]:
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [_problem(f"must be a text object of type {' or '.join(kinds)}", where)]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [_problem("text must be a non-empty string", f"{where}/text")]
    if not min_len <= len(text) <= max_len:
        return [_problem(f"must be less than {max_len + 1} characters", f"{where}/text")]
    return []


def _elements(block: dict[str, Any], where: str, *, most: int) -> tuple[list[Any], list[str]]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        return [], [_problem("must have at least 1 element", f"{where}/elements")]
    if len(elements) > most:
        return elements, [_problem(f"no more than {most} items allowed", f"{where}/elements")]
    return elements, []


def _check_section(block: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    if "text" not in block and "fields" not in block:
        problems.append(_problem("must provide text or fields", where))
    if "text" in block:
        problems += _text_object(block["text"], f"{where}/text", max_len=3000)
    fields = block.get("fields")
    if fields is not None:
        if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
            problems.append(_problem("must have 1 to 10 items", f"{where}/fields"))
        else:
            for j, item in enumerate(fields):
                problems += _text_object(item, f"{where}/fields/{j}", max_len=2000)
    return problems


def _check_header(block: dict[str, Any], where: str) -> list[str]:
    return _text_object(block.get("text"), f"{where}/text", max_len=150, plain_only=True)


def _check_context(block: dict[str, Any], where: str) -> list[str]:
    elements, problems = _elements(block, where, most=10)
    for j, element in enumerate(elements):
        if isinstance(element, dict) and element.get("type") == "image":
            continue
        problems += _text_object(element, f"{where}/elements/{j}", max_len=3000)
    return problems


def _check_actions(block: dict[str, Any], where: str) -> list[str]:
    elements, problems = _elements(block, where, most=25)
    action_ids: set[str] = set()
    for j, element in enumerate(elements):
        at = f"{where}/elements/{j}"
        if not isinstance(element, dict):
            problems.append(_problem("must be an object", at))
            continue
        action_id = element.get("action_id")
        if action_id is not None:
            if not isinstance(action_id, str) or not 1 <= len(action_id) <= 255:
                problems.append(
                    _problem("must be a string of 1 to 255 characters", f"{at}/action_id")
                )
            elif action_id in action_ids:
                problems.append(_problem(f"duplicate action_id {action_id!r}", f"{at}/action_id"))
            else:
                action_ids.add(action_id)
        if element.get("type") == "button":
            problems += _check_button(element, at)
    return problems


def _check_button(button: dict[str, Any], where: str) -> list[str]:
    """https://api.slack.com/reference/block-kit/block-elements#button"""
    problems = _text_object(button.get("text"), f"{where}/text", max_len=75, plain_only=True)
    value = button.get("value")
    if value is not None and (not isinstance(value, str) or len(value) > 2000):
        problems.append(_problem("must be a string of at most 2000 characters", f"{where}/value"))
    if button.get("style") not in (None, "primary", "danger"):
        problems.append(_problem("must be primary or danger", f"{where}/style"))
    confirm = button.get("confirm")
    if confirm is not None:
        problems += _check_confirm(confirm, f"{where}/confirm")
    return problems


def _check_confirm(confirm: Any, where: str) -> list[str]:
    """https://api.slack.com/reference/block-kit/composition-objects#confirm"""
    if not isinstance(confirm, dict):
        return [_problem("must be an object", where)]
    problems = _text_object(confirm.get("title"), f"{where}/title", max_len=100, plain_only=True)
    problems += _text_object(confirm.get("text"), f"{where}/text", max_len=300)
    for key in ("confirm", "deny"):
        problems += _text_object(confirm.get(key), f"{where}/{key}", max_len=30, plain_only=True)
    if confirm.get("style") not in (None, "primary", "danger"):
        problems.append(_problem("must be primary or danger", f"{where}/style"))
    return problems


def _check_rich_text(block: dict[str, Any], where: str) -> list[str]:
    return _elements(block, where, most=100)[1]


def _check_markdown(block: dict[str, Any], where: str) -> list[str]:
    text = block.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_BLOCKS_TEXT:
        return [_problem("must be a string of 1 to 12000 characters", f"{where}/text")]
    return []


def _check_image(block: dict[str, Any], where: str) -> list[str]:
    problems = []
    if not block.get("image_url") and not block.get("slack_file"):
        problems.append(_problem("must provide image_url or slack_file", where))
    if not isinstance(block.get("alt_text"), str) or not block["alt_text"]:
        problems.append(_problem("alt_text must be a non-empty string", f"{where}/alt_text"))
    return problems


def _check_divider(block: dict[str, Any], where: str) -> list[str]:
    return []


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "section": _check_section,
    "header": _check_header,
    "context": _check_context,
    "divider": _check_divider,
    "actions": _check_actions,
    "rich_text": _check_rich_text,
    "markdown": _check_markdown,
    "image": _check_image,
}


# -- modals (https://docs.slack.dev/reference/views/modal-views) --------------------------------
MAX_VIEW_BLOCKS = 100
MAX_VIEW_TITLE = 24  # title, submit and close
MAX_PRIVATE_METADATA = 3000
MAX_CALLBACK_ID = 255
MAX_OPTIONS = 100  # a static select's options; an external select's answer
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
TRIGGER_TTL_SECONDS = 3.0  # a trigger_id opens a view within 3 seconds, once
INPUT_ELEMENTS = (
    "plain_text_input",
    "static_select",
    "multi_static_select",
    "external_select",
    "multi_external_select",
    "users_select",
    "multi_users_select",
    "checkboxes",
    "radio_buttons",
    "number_input",
)
MAX_RADIO_OPTIONS = 10


def validate_view(view: Any) -> list[str]:
    """Why Slack would refuse a modal in views.open / views.update (`invalid_arguments`): its
    title, buttons, metadata, and blocks (input blocks and select menus included)."""
    if not isinstance(view, dict):
        return [_problem("must be an object", "/view")]
    problems: list[str] = []
    if view.get("type") != "modal":
        problems.append(_problem("must be modal", "/view/type"))
    problems += _text_object(
        view.get("title"), "/view/title", max_len=MAX_VIEW_TITLE, plain_only=True
    )
    for key in ("submit", "close"):
        if key in view:
            problems += _text_object(
                view[key], f"/view/{key}", max_len=MAX_VIEW_TITLE, plain_only=True
            )
    problems += _view_strings(view)
    blocks = view.get("blocks")
    has_input = isinstance(blocks, list) and any(
        isinstance(b, dict) and b.get("type") == "input" for b in blocks
    )
    if has_input and "submit" not in view:
        problems.append(_problem("a view with input blocks needs a submit button", "/view/submit"))
    return problems + validate_blocks(blocks, most=MAX_VIEW_BLOCKS, checks=_VIEW_CHECKS)


MAX_VIEW_BYTES = 250_000  # views.publish answers view_too_large past 250 kB


def validate_home_view(view: Any) -> list[str]:
    """Why Slack would refuse a Home tab in views.publish (`invalid_arguments`): type home, at
    most 100 blocks, none of a modal's title, submit or close
    (https://docs.slack.dev/reference/views/home-tab-views), metadata and blocks as a modal's."""
    if not isinstance(view, dict):
        return [_problem("must be an object", "/view")]
    problems: list[str] = []
    if view.get("type") != "home":
        problems.append(_problem("must be home", "/view/type"))
    for key in ("title", "submit", "close"):
        if view.get(key) is not None:
            problems.append(_problem("a Home tab has none", f"/view/{key}"))
    problems += _view_strings(view)
    return problems + validate_blocks(view.get("blocks"), most=MAX_VIEW_BLOCKS, checks=_VIEW_CHECKS)


def _view_strings(view: dict[str, Any]) -> list[str]:
    """A view's private_metadata and callback_id, as Slack takes them (modal or Home tab)."""
    problems = []
    metadata = view.get("private_metadata", "")
    if not isinstance(metadata, str) or len(metadata) > MAX_PRIVATE_METADATA:
        problems.append(
            _problem("must be a string of at most 3000 characters", "/view/private_metadata")
        )
    callback_id = view.get("callback_id", "")
    if not isinstance(callback_id, str) or len(callback_id) > MAX_CALLBACK_ID:
        problems.append(_problem("must be a string of at most 255 characters", "/view/callback_id"))
    return problems


def validate_options(answer: Any) -> list[str]:
    """Why Slack would not show an external select's options (the app's `block_suggestion`
    answer): at most 100 options, each text at most 75 characters, each value at most 150."""
    if not isinstance(answer, dict) or not isinstance(answer.get("options", []), list):
        return [_problem("must be an object with a list of options", "/options")]
    found = answer.get("options", [])
    problems = (
        []
        if len(found) <= MAX_OPTIONS
        else [_problem("no more than 100 items allowed", "/options")]
    )
    for j, item in enumerate(found):
        problems += _check_option(item, f"/options/{j}")
    return problems


def _check_option(item: Any, where: str) -> list[str]:
    if not isinstance(item, dict):
        return [_problem("must be an object", where)]
    problems = _text_object(item.get("text"), f"{where}/text", max_len=MAX_OPTION_TEXT)
    value = item.get("value")
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_OPTION_VALUE:
        problems.append(_problem("must be a string of 1 to 150 characters", f"{where}/value"))
    return problems


def _check_input(block: dict[str, Any], where: str) -> list[str]:
    problems = _text_object(block.get("label"), f"{where}/label", max_len=2000, plain_only=True)
    if "hint" in block:
        problems += _text_object(block["hint"], f"{where}/hint", max_len=2000, plain_only=True)
    element = block.get("element")
    if not isinstance(element, dict) or element.get("type") not in INPUT_ELEMENTS:
        return [*problems, _problem("must be an input element", f"{where}/element")]
    at = f"{where}/element"
    action_id = element.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or not 1 <= len(action_id) <= 255):
        problems.append(_problem("must be a string of 1 to 255 characters", f"{at}/action_id"))
    if "placeholder" in element:
        problems += _text_object(
            element["placeholder"], f"{at}/placeholder", max_len=150, plain_only=True
        )
    kind = element["type"]
    if kind in ("static_select", "multi_static_select"):
        problems += _check_static_options(element, at)
    if kind == "radio_buttons":
        problems += _check_static_options(element, at, most=MAX_RADIO_OPTIONS)
    if kind == "number_input":
        problems += _check_number_input(element, at)
    if kind == "plain_text_input":
        most = element.get("max_length", 3000)
        value = element.get("initial_value")
        if value is not None and (not isinstance(value, str) or len(value) > most):
            problems.append(
                _problem("must be at most max_length characters", f"{at}/initial_value")
            )
    most_items = element.get("max_selected_items", 1)
    if kind.startswith("multi_") and (not isinstance(most_items, int) or most_items < 1):
        problems.append(_problem("must be at least 1", f"{at}/max_selected_items"))
    return problems


def _check_number_input(element: dict[str, Any], at: str) -> list[str]:
    """https://docs.slack.dev/reference/block-kit/block-elements/number-input-element: a
    required is_decimal_allowed; values (initial, min, max) are strings of numbers."""
    if not isinstance(element.get("is_decimal_allowed"), bool):
        return [_problem("is required and must be a boolean", f"{at}/is_decimal_allowed")]
    problems = []
    for key in ("initial_value", "min_value", "max_value"):
        if key not in element:
            continue
        value = element[key]
        try:
            number = float(value) if isinstance(value, str) else None
        except ValueError:
            number = None
        whole = number is not None and (element["is_decimal_allowed"] or number.is_integer())
        if not whole:
            problems.append(_problem("must be a string of a number", f"{at}/{key}"))
    return problems


def _check_static_options(
    element: dict[str, Any], at: str, *, most: int = MAX_OPTIONS
) -> list[str]:
    found = element.get("options")
    if not isinstance(found, list) or not 1 <= len(found) <= most:
        return [_problem(f"must have 1 to {most} items", f"{at}/options")]
    problems: list[str] = []
    for j, item in enumerate(found):
        problems += _check_option(item, f"{at}/options/{j}")
    values = {o.get("value") for o in found if isinstance(o, dict)}
    initial = element.get("initial_options") or (
        [element["initial_option"]] if element.get("initial_option") else []
    )
    for j, item in enumerate(initial):
        if not isinstance(item, dict) or item.get("value") not in values:
            problems.append(_problem("must be one of the options", f"{at}/initial_options/{j}"))
    return problems


_VIEW_CHECKS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    **_BLOCK_CHECKS,
    "input": _check_input,
}


@dataclass
class _Trigger:
    user: str
    channel: str | None
    issued_at: float
    used: bool = False


@dataclass
class OpenView:
    """A modal as Slack keeps it: the view (as views.open answers it), whom it is open for,
    the trigger that opened it, whether it is still open, and the errors shown beside its
    fields after a submission."""

    view: dict[str, Any]
    user: str
    trigger_id: str
    open: bool = True
    errors: dict[str, str] = field(default_factory=dict)
    offered: dict[str, set[str]] = field(default_factory=dict)  # external selects: action -> values


# -- the stand-in -------------------------------------------------------------------------------
class SlackStandIn:
    """One workspace with its channels, users and messages, served on 127.0.0.1."""

    team_domain = "swapbot-test"

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        team_id: str = "T0SWAPBOT",
        bot_user_id: str = "U0SWAPBOT",
        bot_id: str = "B0SWAPBOT",
        channels: dict[str, dict[str, Any]] | None = None,
        users: dict[str, dict[str, Any]] | None = None,
        rate_limits: bool = True,
        limits: dict[str, Limit] | None = None,
        scopes: tuple[str, ...] | list[str] = DEFAULT_SCOPES,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.token, self.team_id = token, team_id
        self.bot_user_id, self.bot_id = bot_user_id, bot_id
        self.rate_limits = rate_limits
        self.limits = {**DEFAULT_LIMITS, **(limits or {})}
        self.scopes = tuple(scopes)
        self.clock, self.wall_clock = clock, wall_clock
        self._users = self._make_users(users)
        self._channels = self._make_channels(channels)
        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._violations: list[str] = []
        self._messages: dict[str, list[Message]] = {cid: [] for cid in self._channels}
        self._by_ts: dict[tuple[str, str], Message] = {}
        self._hooks: dict[str, _Hook] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._views: dict[str, OpenView] = {}
        self._homes: dict[str, list[dict[str, Any]]] = {}  # user -> every Home view published
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._listeners: list[Listener] = []
        self._last_ts_micros = 0
        self._outage: _Outage | None = None
        self._thread: threading.Thread | None = None
        self.httpd = QuietServer(("127.0.0.1", 0), _handler_for(self))
        self.httpd.daemon_threads = True
        self._methods: dict[str, Callable[[_Ctx], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "conversations.info": self._conversations_info,
            "users.info": self._users_info,
            "reactions.add": self._reactions_add,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "conversations.members": self._conversations_members,
        }

    def _make_users(self, users: dict[str, dict[str, Any]] | None) -> dict[str, _User]:
        given = users or {
            "U0OPERATOR": {"name": "olivia"},
            "U0APPROVER": {"name": "arjun"},
            "U0READER": {"name": "rita"},
        }
        made = {uid: _User(id=uid, **spec) for uid, spec in given.items()}
        made.setdefault(self.bot_user_id, _User(id=self.bot_user_id, name=BOT_NAME, is_bot=True))
        return made

    def _make_channels(self, channels: dict[str, dict[str, Any]] | None) -> dict[str, _Channel]:
        if channels is None:
            channels = {DEFAULT_CHANNEL: {"name": "swaps", "members": set(self._users)}}
        made = {}
        for cid, spec in channels.items():
            spec = {**spec, "members": set(spec.get("members", ()))}
            made[cid] = _Channel(id=cid, **spec)
        return made

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def api_url(self) -> str:
        """What `WebClient(base_url=...)` takes."""
        return self.url + "api/"

    def start(self) -> SlackStandIn:
        # A short poll interval keeps stop() (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.02,), name="slack-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the workspace -----------------------------------------------------------------------------
    def add_member(self, channel: str, user: str) -> None:
        with self._lock:
            self._channels[channel].members.add(user)

    def remove_member(self, channel: str, user: str) -> None:
        with self._lock:
            self._channels[channel].members.discard(user)

    def is_member(self, channel: str, user: str) -> bool:
        with self._lock:
            found = self._channels.get(channel)
            return found is not None and user in found.members

    def user_name(self, user: str) -> str:
        found = self._users.get(user)
        return found.name if found else user

    def channel_name(self, channel: str) -> str:
        found = self._channels.get(channel)
        return found.name if found else channel

    def on_change(self, callback: Listener) -> None:
        """Call `callback(kind, message)` after each change, outside the lock. Kinds: post,
        update, ephemeral, response (a response_url post or a command's ack) and reaction."""
        with self._lock:
            self._listeners.append(callback)

    def post_as(
        self, user: str, channel: str, text: str, *, thread_ts: str | None = None
    ) -> Message:
        """A person writes in the channel (for tests of messages the bot did not write)."""
        with self._lock:
            msg = self._store(
                Message(ts="", channel=channel, user=user, text=text, source="user"),
                thread_ts=thread_ts,
            )
            snapshot = copy.deepcopy(msg)
        self._announce([("post", msg)])
        return snapshot

    def add_reaction(self, channel: str, ts: str, user: str, name: str) -> Message:
        """A person reacts to a message (what SlackDriver.react does before it sends the event)."""
        return self._set_reaction(channel, ts, user, name, on=True)

    def remove_reaction(self, channel: str, ts: str, user: str, name: str) -> Message:
        """A person takes their reaction off a message (before a `reaction_removed` event)."""
        return self._set_reaction(channel, ts, user, name, on=False)

    def _set_reaction(self, channel: str, ts: str, user: str, name: str, *, on: bool) -> Message:
        """Puts `user`'s reaction `name` on a message, or takes it off: the message after."""
        with self._lock:
            msg = self._by_ts.get((channel, ts))
            if msg is None or msg.ephemeral_to:
                doing = "react to" if on else "remove a reaction from"
                raise LookupError(f"no message {ts} in {channel} to {doing}")
            users = msg.reactions.setdefault(name, [])
            if on and user not in users:
                users.append(user)
            elif not on and user in users:
                users.remove(user)
            if not users:
                del msg.reactions[name]
            snapshot = copy.deepcopy(msg)
        self._announce([("reaction", msg)])
        return snapshot

    def record_ack(self, user: str, channel: str, payload: dict[str, Any]) -> Message | None:
        """Show a slash command's HTTP answer as Slack does (https://api.slack.com/interactivity/slash-commands): to `user` only,
        or to the channel with `response_type: in_channel`. None for an empty answer."""
        ctx = _Ctx("command ack", payload, channel=channel)
        text, blocks = payload.get("text") or None, payload.get("blocks") or None
        if not text and not blocks:
            return None
        in_channel = payload.get("response_type") == "in_channel"
        msg = Message(ts="", channel=channel, user=self.bot_user_id, text=text, blocks=blocks)
        msg.ephemeral_to, msg.source = (None if in_channel else user), "ack"
        with self._lock:
            for problem in validate_blocks(blocks) if blocks else []:
                self._violate(ctx, f"invalid_blocks: {problem}")
            self._strict(ctx, text, blocks)
            self._store(msg)
            ctx.changes.append(("response", msg))
            snapshot = copy.deepcopy(msg)
        self._announce(ctx.changes)
        return snapshot

    def outage(
        self,
        seconds: float,
        *,
        status: int = 503,
        methods: Iterable[str] | None = None,
        error: str | None = "service_unavailable",
        retry_after: int | None = None,
    ) -> None:
        """Slack is down for `seconds` from now (0 ends it): Web API calls, all or the named
        `methods`, answer HTTP `status` with `{"ok": false, "error": error}`, or with an empty
        body when `error` is None (as a proxy in front of Slack might), and with a
        `Retry-After` header when given. They are recorded, and change nothing else."""
        body: dict[str, Any] | str = {"ok": False, "error": error} if error is not None else ""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        only = frozenset(methods) if methods is not None else None
        with self._lock:
            self._outage = _Outage(self.clock() + seconds, _Reply(status, body, headers), only)

    def response_url(
        self, user: str, channel: str = DEFAULT_CHANNEL, *, message_ts: str | None = None
    ) -> str:
        """A fresh response URL for one interaction by `user` in `channel`; for a click,
        `message_ts` is the message clicked (what `replace_original` edits)."""
        hook = _Hook(secrets.token_hex(12), user, channel, self.clock(), message_ts=message_ts)
        with self._lock:
            self._hooks[hook.id] = hook
        return f"{self.url}hooks/{hook.id}"

    def uses(self, response_url: str) -> int:
        """How many messages a response URL has taken (Slack takes five at most)."""
        hook = self._hooks.get(response_url.rstrip("/").rsplit("/", 1)[-1])
        return hook.uses if hook else 0

    # -- buttons -----------------------------------------------------------------------------------
    def buttons(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The buttons of a message as it is now, each with its actions block's `block_id`."""
        with self._lock:
            msg = self._by_ts.get((channel, ts))
            blocks = copy.deepcopy(msg.blocks) if msg and msg.blocks else []
        return [
            {**element, "block_id": block.get("block_id")}
            for block in blocks
            if block.get("type") == "actions"
            for element in block.get("elements", [])
            if isinstance(element, dict) and element.get("type") == "button"
        ]

    def block_actions(
        self,
        user: str,
        channel: str,
        ts: str,
        action_id: str,
        *,
        trigger_id: str,
        api_app_id: str,
        token: str,
        action_ts: float | None = None,
    ) -> dict[str, Any]:
        """What Slack sends when `user` clicks the button `action_id` of message `ts` (after
        its confirmation dialog, if it has one): a `block_actions` payload with a fresh
        response URL (https://api.slack.com/reference/interaction-payloads/block-actions).
        LookupError if that person cannot see such a button."""
        with self._lock:
            msg = self._by_ts.get((channel, ts))
            if msg is None or (msg.ephemeral_to and msg.ephemeral_to != user):
                raise LookupError(f"{user} sees no message {ts} in {channel}")
            message = msg.as_api(self.bot_id if msg.user == self.bot_user_id else None)
            thread_ts, ephemeral = msg.thread_ts, bool(msg.ephemeral_to)
        button = next(
            (b for b in self.buttons(channel, ts) if b.get("action_id") == action_id), None
        )
        if button is None:
            raise LookupError(f"message {ts} in {channel} has no button {action_id!r}")
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": ephemeral,
        }
        if thread_ts:
            container["thread_ts"] = thread_ts
        action = {
            "type": "button",
            "action_id": action_id,
            "block_id": button.get("block_id"),
            "text": button.get("text"),
            "action_ts": f"{self.wall_clock() if action_ts is None else action_ts:.6f}",
        }
        action.update({k: button[k] for k in ("value", "style") if k in button})
        return {
            "type": "block_actions",
            "user": {
                "id": user,
                "username": self.user_name(user),
                "name": self.user_name(user),
                "team_id": self.team_id,
            },  # fmt: skip
            "api_app_id": api_app_id,
            "token": token,
            "container": container,
            "trigger_id": trigger_id,
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": self.channel_name(channel)},
            "message": message | {"team": self.team_id},
            "state": {"values": {}},
            "response_url": self.response_url(user, channel, message_ts=ts),
            "actions": [action],
        }

    # -- modals ------------------------------------------------------------------------------------
    def issue_trigger(self, trigger_id: str, user: str, channel: str | None = None) -> None:
        """A trigger_id Slack sent with a command or a click of `user`: views.open takes it
        within 3 seconds, once (https://docs.slack.dev/reference/methods/views.open)."""
        with self._lock:
            self._triggers[trigger_id] = _Trigger(user, channel, self.clock())

    def view(self, view_id: str) -> dict[str, Any] | None:
        """A copy of a view as it is now (open or closed), None if there is no such view."""
        with self._lock:
            found = self._views.get(view_id)
            return copy.deepcopy(found.view) if found else None

    def opened(self, view_id: str) -> OpenView | None:
        """A copy of a view with whom it is open for, whether it still is, and its errors."""
        with self._lock:
            return copy.deepcopy(self._views.get(view_id))

    def close_view(self, view_id: str) -> None:
        """The person closes the modal (Cancel, or Escape): views.update answers not_found."""
        with self._lock:
            found = self._views.get(view_id)
            if found is not None:
                found.open = False

    def views(self, user: str | None = None, *, trigger_id: str | None = None) -> list[OpenView]:
        """Copies of the views opened (for `user`, by `trigger_id`), oldest first."""
        with self._lock:
            return [
                copy.deepcopy(v)
                for v in self._views.values()
                if (user is None or v.user == user)
                and (trigger_id is None or v.trigger_id == trigger_id)
            ]

    def _open_view(self, view_id: str, user: str) -> OpenView:
        found = self._views.get(view_id)
        if found is None or not found.open:
            raise LookupError(f"no open view {view_id}")
        if found.user != user:
            raise LookupError(f"view {view_id} is open for {found.user}, not {user}")
        return found

    def _payload_user(self, user: str) -> dict[str, Any]:
        name = self.user_name(user)
        return {"id": user, "username": name, "name": name, "team_id": self.team_id}

    def block_suggestion(
        self,
        user: str,
        view_id: str,
        action_id: str,
        value: str,
        *,
        api_app_id: str,
        token: str,
        values: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """What Slack sends when `user` types `value` in the external select `action_id` of an
        open modal (https://docs.slack.dev/reference/interaction-payloads/block_suggestion-payload):
        the view with its state (`values` as in `view_submission`). LookupError if the view
        has no such select."""
        with self._lock:
            found = self._open_view(view_id, user)
            block = _block_of(found.view, action_id)
            if block is None or "external_select" not in str(block["element"].get("type")):
                raise LookupError(f"view {view_id} has no external select {action_id!r}")
            view = self._with_state(found, values or {}, required=False)
        return {
            "type": "block_suggestion",
            "user": self._payload_user(user),
            "container": {"type": "view", "view_id": view_id},
            "api_app_id": api_app_id,
            "token": token,
            "action_id": action_id,
            "block_id": block.get("block_id"),
            "value": value,
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "view": view,
        }

    def offer(self, view_id: str, action_id: str, answer: dict[str, Any]) -> list[str]:
        """Show the app's answer to a `block_suggestion` (its options may be chosen from then
        on); the problems Slack would have with it, also listed in `violations`."""
        problems = validate_options(answer)
        with self._lock:
            found = self._views.get(view_id)
            if found is not None:
                offered = found.offered.setdefault(action_id, set())
                offered |= {
                    str(o.get("value")) for o in answer.get("options") or [] if isinstance(o, dict)
                }
            ctx = _Ctx("block_suggestion", {"view_id": view_id})
            for problem in problems:
                self._violate(ctx, f"options: {problem}")
        return problems

    def view_submission(
        self,
        user: str,
        view_id: str,
        values: dict[str, Any],
        *,
        api_app_id: str,
        token: str,
        trigger_id: str,
    ) -> dict[str, Any]:
        """What Slack sends when `user` submits an open modal, having set `values` (block id ->
        a string for a text input or a users_select, a list of option values for a multi
        select): every input's state, untouched ones at their initial value
        (https://docs.slack.dev/reference/interaction-payloads/view-interactions-payload).
        ValueError when Slack would not submit (a required input left empty), LookupError for a
        value the form does not offer."""
        with self._lock:
            found = self._open_view(view_id, user)
            view = self._with_state(found, values, required=True)
        return {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": self._payload_user(user),
            "api_app_id": api_app_id,
            "token": token,
            "trigger_id": trigger_id,
            "view": view,
            "response_urls": [],
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def view_answered(self, view_id: str, status: int, answer: dict[str, Any] | None) -> None:
        """What Slack does with the app's answer to a submission: an empty 200 or `clear`
        closes the modal, `errors` shows them beside the fields (keys must be input blocks),
        `update` replaces it. Anything else leaves it open (Slack shows the person an error)."""
        with self._lock:
            found = self._views.get(view_id)
            if found is None or status != 200:
                return
            ctx = _Ctx("view_submission", {"view_id": view_id})
            action = (answer or {}).get("response_action")
            if action in (None, "clear"):
                found.open, found.errors = False, {}
            elif action == "errors":
                errors = dict((answer or {}).get("errors") or {})
                inputs = {
                    b.get("block_id")
                    for b in found.view.get("blocks", [])
                    if b.get("type") == "input"
                }
                for block_id in errors:
                    if block_id not in inputs:
                        self._violate(ctx, f"an error for {block_id!r}, which is no input block")
                found.errors = errors
            elif action == "update":
                self._replace_view(ctx, found, dict((answer or {}).get("view") or {}))
            else:
                self._violate(ctx, f"unknown response_action {action!r}")

    def _with_state(
        self, found: OpenView, values: dict[str, Any], *, required: bool
    ) -> dict[str, Any]:
        """The view with `state.values` as Slack would send it."""
        view = copy.deepcopy(found.view)
        inputs = {
            b["block_id"]: b
            for b in view.get("blocks", [])
            if b.get("type") == "input" and b.get("block_id")
        }
        unknown = set(values) - set(inputs)
        if unknown:
            raise LookupError(f"the view has no input {', '.join(sorted(unknown))}")
        state: dict[str, Any] = {}
        for block_id, block in inputs.items():
            element = block["element"]
            given = values.get(block_id)
            value = _element_state(
                element, given, found.offered.get(str(element.get("action_id")), set())
            )
            if required and not block.get("optional") and _empty(value):
                raise ValueError(f"Slack would not submit: {block_id!r} is required")
            state[block_id] = {str(element.get("action_id")): value}
        view["state"] = {"values": state}
        return view

    def _replace_view(self, ctx: _Ctx, found: OpenView, view: dict[str, Any]) -> None:
        problems = validate_view(view)
        if problems:
            raise ApiError("invalid_arguments", response_metadata={"messages": problems})
        old = found.view
        found.view = {
            **{
                k: old[k]
                for k in (
                    "id",
                    "team_id",
                    "app_id",
                    "bot_id",
                    "root_view_id",
                    "app_installed_team_id",
                )
            },
            "type": "modal",
            "callback_id": view.get("callback_id", ""),
            "private_metadata": view.get("private_metadata", ""),
            "external_id": view.get("external_id", ""),
            "title": view.get("title"),
            "blocks": view.get("blocks", []),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "clear_on_close": bool(view.get("clear_on_close")),
            "notify_on_close": bool(view.get("notify_on_close")),
            "previous_view_id": None,
            "state": {"values": {}},
            "hash": f"{int(self.wall_clock())}.{secrets.token_hex(4)}",
        }
        found.errors, found.offered = {}, {}

    def _views_open(self, ctx: _Ctx) -> dict[str, Any]:
        trigger_id = str(ctx.params.get("trigger_id") or "")
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise ApiError("invalid_trigger_id")
        if trigger.used:
            raise ApiError("exchanged_trigger_id")
        if self.clock() - trigger.issued_at > TRIGGER_TTL_SECONDS:
            raise ApiError("expired_trigger_id")
        view = ctx.params.get("view")
        if isinstance(view, str):
            view = _json_of(view, dict, ApiError("invalid_arguments"))
        view_id = "V" + secrets.token_hex(5).upper()
        found = OpenView(
            view={
                "id": view_id,
                "team_id": self.team_id,
                "app_id": "A0SWAPBOT",
                "bot_id": self.bot_id,
                "root_view_id": view_id,
                "app_installed_team_id": self.team_id,
            },
            user=trigger.user,
            trigger_id=trigger_id,
        )
        self._replace_view(ctx, found, view if isinstance(view, dict) else {})
        trigger.used = True
        self._views[view_id] = found
        return {"view": copy.deepcopy(found.view)}

    def _views_update(self, ctx: _Ctx) -> dict[str, Any]:
        found = self._views.get(str(ctx.params.get("view_id") or ""))
        if found is None or not found.open:
            raise ApiError("not_found")
        given = ctx.params.get("hash")
        if given and given != found.view["hash"]:
            raise ApiError("hash_conflict")
        view = ctx.params.get("view")
        if isinstance(view, str):
            view = _json_of(view, dict, ApiError("invalid_arguments"))
        self._replace_view(ctx, found, view if isinstance(view, dict) else {})
        return {"view": copy.deepcopy(found.view)}

    # -- the Home tab ------------------------------------------------------------------------------
    def home(self, user: str) -> dict[str, Any] | None:
        """A copy of the Home view last published for `user`, None before any."""
        with self._lock:
            found = self._homes.get(user)
            return copy.deepcopy(found[-1]) if found else None

    def homes(self, user: str) -> list[dict[str, Any]]:
        """Copies of every Home view published for `user`, oldest first."""
        with self._lock:
            return copy.deepcopy(self._homes.get(user, []))

    def app_home_opened(self, user: str, *, tab: str = "home") -> dict[str, Any]:
        """The event Slack sends when `user` opens the app's Home, on its Home tab ("home") or
        its Messages tab ("messages"): with the Home view last published for them, if any
        (https://docs.slack.dev/reference/events/app_home_opened)."""
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user,
            "channel": "D" + user.lstrip("UW"),  # the person's DM with the app
            "tab": tab,
            "event_ts": f"{self.wall_clock():.6f}",
        }
        published = self.home(user)
        if tab == "home" and published is not None:
            event["view"] = published
        return event

    def _views_publish(self, ctx: _Ctx) -> dict[str, Any]:
        user = str(ctx.params.get("user_id") or "")
        if user not in self._users or self._users[user].is_bot:
            raise ApiError(
                "invalid_arguments", response_metadata={"messages": ["invalid `user_id`"]}
            )
        raw = ctx.params.get("view")
        view = _json_of(raw, dict, ApiError("invalid_arguments")) if isinstance(raw, str) else raw
        if len(json.dumps(view)) > MAX_VIEW_BYTES:
            raise ApiError("view_too_large")
        problems = validate_home_view(view)
        if problems:
            raise ApiError("invalid_arguments", response_metadata={"messages": problems})
        published = self._homes.setdefault(user, [])
        given = ctx.params.get("hash")
        if given and published and given != published[-1]["hash"]:
            raise ApiError("hash_conflict")
        view_id = published[-1]["id"] if published else "V" + secrets.token_hex(5).upper()
        published.append(
            {
                "id": view_id,
                "team_id": self.team_id,
                "type": "home",
                "close": None,
                "submit": None,
                "blocks": view.get("blocks", []),
                "private_metadata": view.get("private_metadata", ""),
                "callback_id": view.get("callback_id", ""),
                "state": {"values": {}},
                "hash": f"{int(self.wall_clock())}.{secrets.token_hex(4)}",
                "clear_on_close": False,
                "notify_on_close": False,
                "root_view_id": view_id,
                "previous_view_id": None,
                "app_id": "A0SWAPBOT",
                "external_id": view.get("external_id", ""),
                "app_installed_team_id": self.team_id,
                "bot_id": self.bot_id,
            }
        )
        return {"view": copy.deepcopy(published[-1])}

    def _conversations_members(self, ctx: _Ctx) -> dict[str, Any]:
        """A page of the channel's member ids: `limit` (100 by default, under 1000) from
        `cursor` on (https://docs.slack.dev/reference/methods/conversations.members)."""
        channel = self._channel(ctx.params.get("channel"))
        try:
            limit = int(ctx.params.get("limit") or 100)
        except ValueError:
            raise ApiError("invalid_limit") from None
        try:
            start = int(str(ctx.params.get("cursor") or "0").removeprefix("members:"))
        except ValueError:
            raise ApiError("invalid_cursor") from None
        if not 0 < limit < 1000:
            raise ApiError("invalid_limit")
        members = sorted(channel.members)
        page = members[start : start + limit]
        more = start + limit < len(members)
        cursor = f"members:{start + limit}" if more else ""
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    # -- inspection ------------------------------------------------------------------------------
    @property
    def calls(self) -> list[Call]:
        """A copy of every call so far, oldest first."""
        with self._lock:
            return list(self._calls)

    @property
    def violations(self) -> list[str]:
        """A copy of the strict-check findings so far (see the module docstring)."""
        with self._lock:
            return list(self._violations)

    def clear_violations(self) -> list[str]:
        with self._lock:
            found, self._violations = self._violations, []
            return found

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def count(self, method: str) -> int:
        return len(self.calls_to(method))

    def messages(
        self, channel: str = DEFAULT_CHANNEL, *, thread_ts: str | None = None
    ) -> list[Message]:
        """Copies of the channel's messages as they are now, oldest first, thread replies and
        ephemerals included; with `thread_ts`, that thread only, its parent first."""
        with self._lock:
            found = self._messages.get(channel, [])
            if thread_ts is not None:
                found = [m for m in found if thread_ts in (m.ts, m.thread_ts)]
            return copy.deepcopy(found)

    def message(self, channel: str, ts: str) -> Message | None:
        with self._lock:
            return copy.deepcopy(self._by_ts.get((channel, ts)))

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """The replies in a thread, without its parent."""
        return [m for m in self.messages(channel, thread_ts=thread_ts) if m.ts != thread_ts]

    def ephemerals(self, user: str) -> list[Message]:
        """Everything shown only to `user`, in every channel, oldest first."""
        with self._lock:
            found = [m for ms in self._messages.values() for m in ms if m.ephemeral_to == user]
            return copy.deepcopy(sorted(found, key=lambda m: _ts_key(m.ts)))

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02
    ) -> Any:
        """The first truthy value of `predicate()`; AssertionError once `timeout` has passed."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(self._wait_failure(predicate, value, timeout))
            time.sleep(interval)

    def _wait_failure(self, predicate: Callable[[], Any], value: Any, timeout: float) -> str:
        name = getattr(predicate, "__qualname__", repr(predicate))
        recent = "\n".join(
            f"  {c.method} -> {c.http_status} {'ok' if c.ok else c.error}" for c in self.calls[-10:]
        )
        return (
            f"{name} still {value!r} after {timeout}s; last calls:\n{recent or '  (none)'}\n"
            f"transcript:\n{self.transcript() or '  (empty)'}"
        )

    def transcript(self, channel: str = DEFAULT_CHANNEL) -> str:
        """The channel as a reader would see it: one entry per message at its latest version,
        thread replies indented, ephemerals marked, reactions listed below."""
        lines: list[str] = []
        messages = self.messages(channel)
        replies: dict[str, list[Message]] = {}
        for msg in messages:
            if msg.thread_ts:
                replies.setdefault(msg.thread_ts, []).append(msg)
        for msg in messages:
            if msg.thread_ts:
                continue
            lines += self._render(msg, indent="")
            for reply in replies.get(msg.ts, []):
                lines += self._render(reply, indent="    ")
        return "\n".join(lines)

    def _render(self, msg: Message, *, indent: str) -> list[str]:
        head = f"{indent}{self.user_name(msg.user)}"
        if msg.ephemeral_to:
            head += f" (only visible to {self.user_name(msg.ephemeral_to)})"
        if msg.broadcast:
            head += " (also sent to the channel)"
        if msg.edits:
            head += " (edited)"
        body = render_blocks(msg.blocks) if msg.blocks else (msg.text or "").splitlines()
        lines = [f"{head}: {body[0] if body else ''}"]
        lines += [f"{indent}    {line}" for line in body[1:]]
        for name, users in msg.reactions.items():
            who = ", ".join(self.user_name(u) for u in users)
            lines.append(f"{indent}    :{name}: {who}")
        return lines

    # -- HTTP entry points (called from the server's threads) -----------------------------------
    def _handle_http(
        self, verb: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> _Reply:
        parts = urlsplit(raw_path)
        if parts.path.startswith("/api/"):
            return self._api(parts.path[len("/api/") :], parts.query, headers, body)
        if parts.path.startswith("/hooks/") and verb == "POST":
            return self._hook_post(parts.path[len("/hooks/") :], body)
        return _Reply(404, "not found")

    def _api(self, method: str, query: str, headers: dict[str, str], body: bytes) -> _Reply:
        try:
            params = {**dict(parse_qsl(query)), **_decode_body(headers, body)}
        except ValueError as exc:
            params, decode_error = {}, str(exc)
        else:
            decode_error = None
        token = _bearer(headers) or str(params.pop("token", "") or "")
        ctx = _Ctx(method, params)
        with self._lock:
            reply = self._answer(ctx, token, decode_error)
            self._record(ctx, reply, token_ok=token == self.token)
        self._announce(ctx.changes)
        return reply

    def _answer(self, ctx: _Ctx, token: str, decode_error: str | None) -> _Reply:
        down = self._down(ctx.method)
        if down is not None:
            return down
        handler = self._methods.get(ctx.method)
        try:
            if handler is None:
                raise ApiError("unknown_method")
            if decode_error:
                raise ApiError(decode_error)
            if not token:
                raise ApiError("not_authed")
            if token != self.token:
                raise ApiError("invalid_auth")
            wait = self._spend(ctx)
            if wait:
                return _Reply(
                    429,
                    {"ok": False, "error": "ratelimited"},
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )
            self._check_scope(ctx)
            payload = handler(ctx)
        except ApiError as exc:
            return _Reply(200, {"ok": False, "error": exc.error, **exc.extra})
        return _Reply(200, {"ok": True, **payload}, ctx.headers)

    def _down(self, method: str) -> _Reply | None:
        """The answer of an outage under way for `method`, if any."""
        outage = self._outage
        if outage is None or self.clock() >= outage.until:
            return None
        if outage.methods is not None and method not in outage.methods:
            return None
        return copy.deepcopy(outage.reply)

    def _spend(self, ctx: _Ctx) -> float:
        limit = self.limits.get(ctx.method)
        if not self.rate_limits or limit is None:
            return 0.0
        key = (ctx.method, str(ctx.params.get("channel", "")) if limit.per_channel else "")
        now = self.clock()
        bucket = self._buckets.setdefault(key, _Bucket(limit, now))
        return bucket.take(limit, now)

    def _check_scope(self, ctx: _Ctx) -> None:
        needed = REQUIRED_SCOPES.get(ctx.method, ())
        if needed and not set(needed) & set(self.scopes):
            self._violate(
                ctx, f"needs scope {' or '.join(needed)}, not granted (Slack: missing_scope)"
            )

    def _record(self, ctx: _Ctx, reply: _Reply, *, token_ok: bool) -> None:
        if isinstance(reply.body, dict):
            ok, error = bool(reply.body.get("ok")), reply.body.get("error")
        else:  # a response_url answers in plain text: "ok" or the reason
            ok, error = reply.status == 200, None if reply.status == 200 else reply.body
        self._calls.append(
            Call(
                method=ctx.method,
                params=ctx.params,
                token_ok=token_ok,
                http_status=reply.status,
                ok=ok,
                error=error,
                at=self.clock(),
            )
        )

    def _announce(self, changes: list[tuple[str, Message]]) -> None:
        if not changes:
            return
        with self._lock:
            listeners = list(self._listeners)
            snapshots = [(kind, copy.deepcopy(msg)) for kind, msg in changes]
        for kind, msg in snapshots:
            for listener in listeners:
                listener(kind, msg)

    def _violate(self, ctx: _Ctx, problem: str) -> None:
        channel = ctx.channel or ctx.params.get("channel") or "-"
        self._violations.append(f"{ctx.method} {channel}: {problem}")

    # -- storage ---------------------------------------------------------------------------------
    def _next_ts(self) -> str:
        micros = max(int(self.wall_clock() * 1_000_000), self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _store(self, msg: Message, *, thread_ts: str | None = None) -> Message:
        msg.ts = self._next_ts()
        msg.thread_ts = thread_ts
        self._messages.setdefault(msg.channel, []).append(msg)
        self._by_ts[(msg.channel, msg.ts)] = msg
        return msg

    # -- channel and content checks shared by the methods ------------------------------------------
    def _channel(self, channel_id: Any) -> _Channel:
        """The channel as the bot can see it: private channels it is not in do not exist."""
        found = self._channels.get(str(channel_id or ""))
        if found is None or (found.is_private and self.bot_user_id not in found.members):
            raise ApiError("channel_not_found")
        return found

    def _postable(self, channel_id: Any) -> _Channel:
        channel = self._channel(channel_id)
        if channel.is_archived:
            raise ApiError("is_archived")
        if self.bot_user_id not in channel.members:
            raise ApiError("not_in_channel")
        return channel

    def _content(self, ctx: _Ctx, *, max_text: int) -> tuple[str | None, list[dict] | None]:
        text = ctx.params.get("text") or None
        blocks = _blocks_param(ctx.params.get("blocks"))
        if not text and not blocks:
            raise ApiError("no_text")
        if text and len(str(text)) > max_text:
            raise ApiError("msg_too_long")
        if blocks is not None:
            problems = validate_blocks(blocks)
            if problems:
                raise ApiError("invalid_blocks", response_metadata={"messages": problems})
            if blocks_text_length(blocks) > MAX_BLOCKS_TEXT:
                raise ApiError("msg_blocks_too_long")
        return (str(text) if text else None), blocks

    def _strict(self, ctx: _Ctx, text: str | None, blocks: list[dict] | None) -> None:
        if blocks and not text:
            self._violate(ctx, "blocks without top-level text (no notification/screen-reader text)")
        for s in _strings([text, blocks]):
            if SECRET.search(s):
                self._violate(ctx, f"looks like a secret: {_redact(s)!r}")
            if mention := BROADCAST.search(s):
                self._violate(ctx, f"unescaped broadcast mention: {mention.group(0)}")

    def _thread_parent(self, channel: str, thread_ts: Any) -> str | None:
        if not thread_ts:
            return None
        parent = self._by_ts.get((channel, str(thread_ts)))
        if parent is None or parent.ephemeral_to:
            raise ApiError("thread_not_found")
        # A reply to a reply lands in the parent's thread, as in Slack.
        return parent.thread_ts or parent.ts

    # -- Web API methods -------------------------------------------------------------------------
    def _auth_test(self, ctx: _Ctx) -> dict[str, Any]:
        ctx.headers["x-oauth-scopes"] = ",".join(self.scopes)
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": "Swapbot Test",
            "team_id": self.team_id,
            "user": self.user_name(self.bot_user_id),
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, ctx: _Ctx) -> dict[str, Any]:
        channel = self._postable(ctx.params.get("channel"))
        text, blocks = self._content(ctx, max_text=MAX_TEXT)
        thread_ts = self._thread_parent(channel.id, ctx.params.get("thread_ts"))
        msg = Message(ts="", channel=channel.id, user=self.bot_user_id, text=text, blocks=blocks)
        msg.broadcast = bool(thread_ts) and _flag(ctx.params.get("reply_broadcast"))
        self._store(msg, thread_ts=thread_ts)
        self._strict(ctx, text, blocks)
        ctx.changes.append(("post", msg))
        return {"channel": channel.id, "ts": msg.ts, "message": msg.as_api(self.bot_id)}

    def _update(self, ctx: _Ctx) -> dict[str, Any]:
        channel = self._channel(ctx.params.get("channel"))
        msg = self._by_ts.get((channel.id, str(ctx.params.get("ts") or "")))
        if msg is None or msg.ephemeral_to:
            raise ApiError("message_not_found")
        if msg.user != self.bot_user_id or msg.source != "api":
            raise ApiError("cant_update_message")
        text, blocks = self._content(ctx, max_text=MAX_UPDATE_TEXT)
        if blocks is None and msg.blocks:
            self._violate(ctx, f"text without blocks wipes the blocks of message {msg.ts}")
        msg.edits.append(Version(msg.text, msg.blocks))
        # Sending text alone removes the blocks (https://api.slack.com/methods/chat.update); blocks alone keep the text [U].
        msg.text, msg.blocks = text or msg.text, blocks
        self._strict(ctx, text, blocks)
        ctx.changes.append(("update", msg))
        return {
            "channel": channel.id,
            "ts": msg.ts,
            "text": msg.text or "",
            "message": msg.as_api(),
        }

    def _post_ephemeral(self, ctx: _Ctx) -> dict[str, Any]:
        channel = self._postable(ctx.params.get("channel"))
        user = str(ctx.params.get("user") or "")
        if user not in channel.members:
            raise ApiError("user_not_in_channel")
        text, blocks = self._content(ctx, max_text=MAX_TEXT)
        thread_ts = self._thread_parent(channel.id, ctx.params.get("thread_ts"))
        msg = Message(ts="", channel=channel.id, user=self.bot_user_id, text=text, blocks=blocks)
        msg.ephemeral_to = user
        self._store(msg, thread_ts=thread_ts)
        self._strict(ctx, text, blocks)
        ctx.changes.append(("ephemeral", msg))
        return {"message_ts": msg.ts}

    def _conversations_info(self, ctx: _Ctx) -> dict[str, Any]:
        channel = self._channel(ctx.params.get("channel"))
        return {
            "channel": {
                "id": channel.id,
                "name": channel.name,
                "is_channel": not channel.is_private,
                "is_group": False,
                "is_im": False,
                "is_member": self.bot_user_id in channel.members,
                "is_private": channel.is_private,
                "is_archived": channel.is_archived,
                "is_ext_shared": channel.is_ext_shared,
                "is_shared": channel.is_ext_shared,
                "is_org_shared": False,
            }
        }

    def _users_info(self, ctx: _Ctx) -> dict[str, Any]:
        user = self._users.get(str(ctx.params.get("user") or ""))
        if user is None:
            raise ApiError("user_not_found")
        return {
            "user": {
                "id": user.id,
                "team_id": self.team_id,
                "name": user.name,
                "real_name": user.name.title(),
                "is_bot": user.is_bot,
                "deleted": user.deleted,
                "is_restricted": user.is_restricted,
                "is_ultra_restricted": user.is_ultra_restricted,
                "is_admin": False,
                "is_owner": False,
                "profile": {"display_name": user.name, "real_name": user.name.title()},
            }
        }

    def _reactions_add(self, ctx: _Ctx) -> dict[str, Any]:
        channel = self._channel(ctx.params.get("channel"))
        msg = self._by_ts.get((channel.id, str(ctx.params.get("timestamp") or "")))
        if msg is None or msg.ephemeral_to:
            raise ApiError("message_not_found")
        name = str(ctx.params.get("name") or "").strip(":")
        if not name:
            raise ApiError("invalid_name")
        users = msg.reactions.setdefault(name, [])
        if self.bot_user_id in users:
            raise ApiError("already_reacted")
        users.append(self.bot_user_id)
        ctx.changes.append(("reaction", msg))
        return {}

    # -- response_url ------------------------------------------------------------------------------
    def _hook_post(self, hook_id: str, body: bytes) -> _Reply:
        try:
            params = json.loads(body or b"{}")
            if not isinstance(params, dict):
                raise ValueError("not an object")
        except ValueError:
            params = {}
            bad_json = True
        else:
            bad_json = False
        ctx = _Ctx("response_url", params)
        with self._lock:
            hook = self._hooks.get(hook_id)
            ctx.channel = hook.channel if hook else None
            reply = self._hook_answer(ctx, hook, bad_json)
            self._record(ctx, reply, token_ok=True)
        self._announce(ctx.changes)
        return reply

    def _hook_answer(self, ctx: _Ctx, hook: _Hook | None, bad_json: bool) -> _Reply:
        # [U] Slack's exact answers: 404 with a plain-text reason for an unknown, expired or
        # spent URL, 400 for a payload it cannot use, and "ok" on success.
        if hook is None:
            return _Reply(404, "no_service")
        if self.clock() - hook.created_at > RESPONSE_URL_TTL_SECONDS:
            return _Reply(404, "expired_url")
        if hook.uses >= RESPONSE_URL_MAX_USES:
            return _Reply(404, "used_url")
        if bad_json:
            return _Reply(400, "invalid_payload")
        try:
            text, blocks = self._content(ctx, max_text=MAX_TEXT)
            thread_ts = self._thread_parent(hook.channel, ctx.params.get("thread_ts"))
        except ApiError as exc:
            return _Reply(400, exc.error)
        hook.uses += 1
        self._hook_message(ctx, hook, text, blocks, thread_ts)
        self._strict(ctx, text, blocks)
        return _Reply(200, "ok")

    def _hook_message(
        self,
        ctx: _Ctx,
        hook: _Hook,
        text: str | None,
        blocks: list[dict] | None,
        thread_ts: str | None,
    ) -> None:
        # An interaction's URL edits the message clicked; a command's, its own last response.
        previous = self._by_ts.get((hook.channel, hook.message_ts or hook.last_ts or ""))
        if _flag(ctx.params.get("delete_original")) and previous:
            self._messages[hook.channel].remove(previous)
            del self._by_ts[(hook.channel, previous.ts)]
            return
        if _flag(ctx.params.get("replace_original")) and previous:
            # [U] replaces this URL's own earlier response; never the user's command itself.
            previous.edits.append(Version(previous.text, previous.blocks))
            previous.text, previous.blocks = text, blocks
            ctx.changes.append(("response", previous))
            return
        in_channel = ctx.params.get("response_type") == "in_channel"
        msg = Message(
            ts="",
            channel=hook.channel,
            user=self.bot_user_id,
            text=text,
            blocks=blocks,
            ephemeral_to=None if in_channel else hook.user,
            source="response_url",
        )
        self._store(msg, thread_ts=thread_ts if in_channel else None)
        hook.last_ts = msg.ts
        ctx.changes.append(("response", msg))


# -- helpers ------------------------------------------------------------------------------------
def render_blocks(blocks: list[dict[str, Any]]) -> list[str]:
    """Block Kit as plain lines, roughly as Slack lays it out."""
    lines: list[str] = []
    for block in blocks:
        lines += _RENDERERS.get(block.get("type"), lambda b: [])(block)
    return lines


def _obj_text(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else ""


def _render_section(block: dict[str, Any]) -> list[str]:
    lines = _obj_text(block.get("text")).splitlines()
    fields = [_obj_text(f).replace("\n", " ") for f in block.get("fields", [])]
    lines += ["  ".join(fields[i : i + 2]) for i in range(0, len(fields), 2)]
    return lines


def _render_context(block: dict[str, Any]) -> list[str]:
    parts = [_obj_text(e) or f"[{e.get('alt_text', 'image')}]" for e in block.get("elements", [])]
    return [" · ".join(parts)]


def _render_actions(block: dict[str, Any]) -> list[str]:
    return [
        " ".join(
            f"[{_obj_text(e.get('text')) or e.get('type')}]" for e in block.get("elements", [])
        )
    ]


def _render_rich_text(block: dict[str, Any]) -> list[str]:
    return "".join(s for s in _strings(block.get("elements", []))).splitlines() or [""]


_RENDERERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "header": lambda b: [_obj_text(b.get("text")).upper()],
    "section": _render_section,
    "context": _render_context,
    "divider": lambda b: ["-" * 20],
    "actions": _render_actions,
    "markdown": lambda b: str(b.get("text", "")).splitlines(),
    "rich_text": _render_rich_text,
    "image": lambda b: [f"[image: {b.get('alt_text', '')}]"],
}


def _strings(value: Any) -> Iterator[str]:
    """Every string value inside `value`, however nested (keys and type names excluded)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in ("type", "style", "block_id", "action_id"):
                yield from _strings(item)


def _block_of(view: dict[str, Any], action_id: str) -> dict[str, Any] | None:
    """The input block whose element is `action_id`."""
    for block in view.get("blocks", []):
        element = block.get("element") if isinstance(block, dict) else None
        if (
            block.get("type") == "input"
            and isinstance(element, dict)
            and element.get("action_id") == action_id
        ):
            return block
    return None


def _element_state(element: dict[str, Any], given: Any, offered: set[str]) -> dict[str, Any]:
    """One input's value as `view.state.values` shows it: what was `given`, else its initial."""
    kind = str(element.get("type"))
    if kind in ("plain_text_input", "number_input"):  # a number comes as its text
        value = given if given is not None else element.get("initial_value")
        return {"type": kind, "value": str(value) if value not in (None, "") else None}
    if kind in ("users_select", "multi_users_select"):
        key = "selected_users" if kind.startswith("multi_") else "selected_user"
        default = element.get("initial_users" if kind.startswith("multi_") else "initial_user")
        return {"type": kind, key: given if given is not None else default}
    multi = kind.startswith("multi_")
    if given is None:
        chosen = element.get("initial_options") or (
            [element["initial_option"]] if element.get("initial_option") else []
        )
    else:
        chosen = [_chosen_option(element, str(v), offered) for v in (given if multi else [given])]
    if multi:
        return {"type": kind, "selected_options": chosen}
    return {"type": kind, "selected_option": chosen[0] if chosen else None}


def _chosen_option(element: dict[str, Any], value: str, offered: set[str]) -> dict[str, Any]:
    if "external_select" in str(element.get("type")):
        if value not in offered:
            raise LookupError(f"{value!r} was never offered by {element.get('action_id')!r}")
        return {
            "text": {"type": "plain_text", "text": value[:MAX_OPTION_TEXT], "emoji": True},
            "value": value,
        }
    for item in element.get("options") or []:
        if item.get("value") == value:
            return copy.deepcopy(item)
    raise LookupError(f"{value!r} is not an option of {element.get('action_id')!r}")


def _empty(state: dict[str, Any]) -> bool:
    return not any(v for k, v in state.items() if k != "type")


def _redact(text: str) -> str:
    """Enough of a secret to say what it is, never the secret itself."""
    match = SECRET.search(text)
    return match.group(0)[:8] + "…" if match else ""


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _blocks_param(value: Any) -> list[dict[str, Any]] | None:
    """`blocks` as a list: JSON bodies carry a list, form bodies a JSON string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return _json_of(value, list, ApiError("invalid_blocks_format"))
    if not isinstance(value, list):
        raise ApiError("invalid_blocks_format")
    return value


def _json_of(text: str | bytes, kind: type, error: Exception) -> Any:
    """`text` read as JSON, which must be a `kind` (list, dict): else `error` is raised."""
    try:
        value = json.loads(text)
    except ValueError:
        raise error from None
    if not isinstance(value, kind):
        raise error
    return value


def _bearer(headers: dict[str, str]) -> str:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _decode_body(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """Params of a JSON or form-encoded body; ValueError carries Slack's error for a bad one."""
    if not body:
        return {}
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        return _json_of(body, dict, ValueError("invalid_json"))
    if content_type in ("application/x-www-form-urlencoded", ""):
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    raise ValueError("invalid_post_type")


def _handler_for(standin: SlackStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self, verb: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = standin._handle_http(verb, self.path, headers, body)
            if isinstance(reply.body, dict):
                raw, content_type = json.dumps(reply.body).encode(), "application/json"
            else:
                raw, content_type = reply.body.encode(), "text/plain"
            self.send_response(reply.status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:  # the tests' output stays quiet
            pass

    return Handler
