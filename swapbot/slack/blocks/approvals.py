"""The approval request: asking a second person to react or click, and the same message once
decided.

A pending request carries two buttons, Approve and Deny, each behind a confirmation dialog that
names the step, the request and the plan fingerprint. A click is the command it stands for
(`approve REQUEST_ID`, `deny REQUEST_ID`; the button's value is the request id) and goes through
the same checks (`swapbot.slack.app`, `swapbot.slack.clicks`). Once decided, the message has no
buttons: Block Kit has no disabled button, so a decided message leaves the actions block out
(https://docs.slack.dev/reference/block-kit/block-elements/button-element).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from swapbot.slack.blocks.kit import (
    Block,
    Rendered,
    _context,
    _fields,
    _finish,
    _header,
    _section,
)
from swapbot.slack.blocks.text import (
    _NAME,
    _clean,
    _clock,
    _code,
    _cut,
    _float,
    _minutes_left,
    _now,
    _plan_move,
    mention,
)
from swapbot.swap.approvals import ApprovalRequest
from swapbot.swap.plan import Plan

DEFAULT_EMOJI = "white_check_mark"

# The buttons' action ids, and the subcommand each one stands for.
APPROVE_ACTION = "hcswap.approve"
DENY_ACTION = "hcswap.deny"
ACTIONS = {APPROVE_ACTION: "approve", DENY_ACTION: "deny"}

# Slack's limits on a button and its confirmation dialog
# (https://docs.slack.dev/reference/block-kit/composition-objects/confirmation-dialog-object).
_BUTTON_TEXT, _BUTTON_VALUE = 75, 2000
_CONFIRM_TITLE, _CONFIRM_TEXT, _CONFIRM_LABEL = 100, 300, 30

_DECIDED_TITLES = {
    "pending": "Approval needed",
    "granted": "Approved",
    "used": "Approval used",
    "expired": "Approval expired",
    "superseded": "Approval superseded",
    "denied": "Approval denied",
}


def approval_message(
    request: ApprovalRequest,
    plan: Plan | None,
    *,
    step_summary: str,
    emoji: str = DEFAULT_EMOJI,
    now: float | None = None,
    decided: bool = False,
) -> Rendered:
    """The request for a second person's reaction or click: step, plan fingerprint, what will
    happen, who asked, until when, how to approve, and the Approve and Deny buttons. With
    `decided`, the same message once decided, from the request's status: granted, used,
    expired, superseded or denied (a pending request past its expiry shows as expired), without
    buttons; a request pending again (an approval withdrawn) has its buttons back."""
    return _approval(request, plan, step_summary, emoji, _now(now), decided=decided)


# The message as edited once the request is decided (what the notifier sends with chat.update).
approval_decided = functools.partial(approval_message, decided=True)


def _emoji_name(emoji: object) -> str:
    name = str(emoji or "").strip(":")
    return name if re.fullmatch(r"[a-z0-9_+\-']{1,64}", name) else DEFAULT_EMOJI


def _approval(
    req: ApprovalRequest,
    plan: Plan | None,
    step_summary: str,
    emoji: str,
    now: float,
    *,
    decided: bool,
) -> Rendered:
    raw_step = req.step or "?"
    step = _clean(raw_step, _NAME)
    expires = _float(req.expires_epoch)
    state = str(req.status) if decided else "pending"
    if decided and state in ("pending", "granted") and expires is not None and expires <= now:
        state = "expired"
    title = _DECIDED_TITLES.get(state, "Approval")

    what = f"*{step}* — {_clean(step_summary, 1500, oneline=False)}"
    if req.note:
        what += f"\n*Note:* {_clean(req.note)}"
    fields = [
        f"*Plan fingerprint*\n{_code(req.fingerprint or '?', 40)}",
        f"*Asked by*\n{mention(req.requester)}",
        f"*Valid until*\n{_clock(expires, seconds=False)} ({_minutes_left(expires, now)})",
        f"*Request*\n{_code(req.id or '?')}",
    ]
    if req.swap_id:
        fields.append(f"*Swap*\n{_clean(req.swap_id, _NAME)}")
    if plan is not None:
        fields.append(f"*Change*\n{_plan_move(plan)}")
    name = _emoji_name(emoji)
    outcome = _decision_line(req, state, expires, now, name)
    blocks = [
        _header(f"{title}: {raw_step}"),
        _section(what),
        _fields(fields),
        _section(outcome),
    ]
    if state == "pending":
        blocks.append(_buttons(req, step_summary))
    blocks.append(_context(f"updated {_clock(now)}"))
    if state == "pending":
        fallback = (
            f"Approval needed: {step} (plan {_clean(req.fingerprint, 40)}, asked by "
            f"{mention(req.requester)}) — react with :{name}: to approve"
        )
    else:
        fallback = f"{title}: {step} — {outcome}"
    return _finish("approval", fallback, blocks, now)


def _decision_line(
    req: ApprovalRequest, state: str, expires: float | None, now: float, emoji: str
) -> str:
    approver = mention(req.approver) if req.approver else None
    approved = f"approved by {approver} at {_clock(req.granted_at, seconds=False)}"
    if state == "pending":
        return (
            f"React with :{emoji}: to approve (not the requester; approvers only), "
            "or use the buttons: *Approve* or *Deny*"
        )
    if state == "granted":
        return (
            f":white_check_mark: {approved} — usable until "
            f"{_clock(expires, seconds=False)} ({_minutes_left(expires, now)})"
        )
    if state == "used":
        used = _clock(req.used_at, seconds=False)
        return f":white_check_mark: {approved}, used at {used}"
    if state == "expired":
        at = _clock(req.expired_at or expires, seconds=False)
        if approver:
            return f":hourglass: {approved}, but expired unused at {at}: ask for a new approval"
        return f":hourglass: expired at {at} without a second person's approval"
    if state == "superseded":
        newer = req.superseded_by
        by = f" by {_code(newer)}" if newer else ""
        return f":arrows_counterclockwise: superseded{by}: react on the newer request"
    if state == "denied":
        who = mention(req.denied_by) if req.denied_by else "an approver"
        at = _clock(req.denied_at, seconds=False)
        return f":no_entry: denied by {who} at {at}: it cannot be approved; ask for a new approval"
    return f"status: {_clean(state, 20)}"


# -- the buttons -----------------------------------------------------------------------------
def _plain(text: str, limit: int) -> dict[str, Any]:
    """A plain_text object: shown as it is (no mrkdwn, no mentions), so it is not escaped."""
    return {"type": "plain_text", "text": _cut(" ".join(text.split()), limit) or "?", "emoji": True}


def _buttons(req: ApprovalRequest, step_summary: str) -> Block:
    """Approve and Deny, each behind a dialog that says what is decided: the step, the request
    and the plan fingerprint it is bound to."""
    step = req.step or "?"
    rid = req.id or "?"
    bound = f"{step} (request {rid}) under plan fingerprint {req.fingerprint or '?'}"
    summary = " ".join(str(step_summary or "").split())
    approve = (
        f"You approve {bound}: {summary}. A step may use it once, before it expires, and only "
        "while the plan and the live state stay as they are now."
    )
    deny = (
        f"You deny {bound}. It can no longer be approved, and {step} cannot run until "
        "someone asks for a new approval."
    )
    return {
        "type": "actions",
        "elements": [
            _button(APPROVE_ACTION, "Approve", "primary", rid, f"Approve {step}?", approve),
            _button(DENY_ACTION, "Deny", "danger", rid, f"Deny {step}?", deny),
        ],
    }


def _button(action_id: str, label: str, style: str, value: str, title: str, text: str) -> Block:
    return {
        "type": "button",
        "action_id": action_id,
        "text": _plain(label, _BUTTON_TEXT),
        "style": style,
        "value": _cut(value, _BUTTON_VALUE),
        "confirm": {
            "title": _plain(title, _CONFIRM_TITLE),
            "text": _plain(text, _CONFIRM_TEXT),
            "confirm": _plain(label, _CONFIRM_LABEL),
            "deny": _plain("Cancel", _CONFIRM_LABEL),
            "style": style,
        },
    }
