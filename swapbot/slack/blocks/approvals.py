"""The approval request: asking a second person to react, and the same message once decided."""

from __future__ import annotations

import functools
import re

from swapbot.slack.blocks.kit import Rendered, _context, _fields, _finish, _header, _section
from swapbot.slack.blocks.text import (
    _NAME,
    _clean,
    _clock,
    _code,
    _float,
    _minutes_left,
    _now,
    _plan_move,
    mention,
)
from swapbot.swap.approvals import ApprovalRequest
from swapbot.swap.plan import Plan

DEFAULT_EMOJI = "white_check_mark"

_DECIDED_TITLES = {
    "pending": "Approval needed",
    "granted": "Approved",
    "used": "Approval used",
    "expired": "Approval expired",
    "superseded": "Approval superseded",
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
    """The request for a second person's reaction: step, plan fingerprint, what will happen,
    who asked, until when, and how to approve. With `decided`, the same message once decided,
    from the request's status: granted, used, expired or superseded (a pending request past
    its expiry shows as expired)."""
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
        _context(f"updated {_clock(now)}"),
    ]
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
        return f"React with :{emoji}: to approve (not the requester; approvers only)"
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
    return f"status: {_clean(state, 20)}"
