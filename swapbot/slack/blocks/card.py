"""The buttons of the swap's live card (the progress message the notifier edits in place).

- **Run next: STEP** runs the step the runbook runs next, as `/hcswap STEP` would (stop-writes
  with the plan's app). Its value is the step and the plan fingerprint the card was drawn for,
  so that a click on a card gone stale (the step is no longer next, the plan changed) is
  refused. Inside the outage, for `pause` and for `delete-old` it is a danger button whose
  dialog says what the step does (and, for delete-old, that there is no way back after it);
  a prep step has a plain confirmation.
- **Request approval for STEP** instead, when the next step needs a second person's approval
  and none is granted or pending (`request-approval STEP`); its value is the step and the plan
  fingerprint, as Run next's, so that a click on a stale card (the step has run, the plan
  changed, a request is pending or granted by now) asks for nothing. Once prep is done, the
  card also offers it for each later step of the cutover that needs an approval and has none
  (asked ahead of the outage, a ready approver adds no time to it); each such button's
  action_id names its step, as Slack wants the action_ids of one block distinct.
- **Refresh** draws the card again now (anyone who may read the swap's status).
- **Plan a swap** once the swap is done or rolled back (and on `status` when there is no plan):
  it opens the plan as a form (`swapbot.slack.plan_form`), for operators, as `/hcswap plan new`
  does.

A card shows no step button while a step runs or waits, nor while an approval is pending
(the approval message has its own buttons), and only Plan a swap once the swap is done or
rolled back. A click is authorized and queued as the command it stands for
(`swapbot.slack.app.click`) and run by the worker (`swapbot.slack.clicks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swapbot.slack.blocks.approvals import (
    _BUTTON_TEXT,
    _BUTTON_VALUE,
    _CONFIRM_LABEL,
    _CONFIRM_TEXT,
    _CONFIRM_TITLE,
    _plain,
)
from swapbot.slack.blocks.kit import Block
from swapbot.slack.blocks.text import _cut
from swapbot.swap import steps as runbook

NEXT_ACTION = "hcswap.next"
REQUEST_ACTION = "hcswap.request_approval"
REFRESH_ACTION = "hcswap.refresh"
CARD_ACTIONS = (NEXT_ACTION, REQUEST_ACTION, REFRESH_ACTION)
PLAN_ACTION = "hcswap.plan_form"  # opens a modal: answered by the web process, not queued

# Phases in which nothing of the swap is left to click.
_OVER = ("done", "rolled back", "rolling back")
_ENDED = ("done", "rolled back")


def next_value(step: str, fingerprint: str) -> str:
    """The value of a step's button (Run next, Request approval): the step and the plan
    fingerprint the card was drawn for."""
    return f"{step} {fingerprint}"


def parse_next_value(value: str) -> tuple[str, str]:
    """(step, fingerprint) of a step button's value (`next_value`); either may be empty."""
    step, _, fingerprint = (value or "").strip().partition(" ")
    return step, fingerprint.strip()


def request_action(step: str) -> str:
    """The action_id of Request approval for a later step than the next (`REQUEST_ACTION` is
    the next step's): one per step, since a block's action_ids must differ."""
    return f"{REQUEST_ACTION}:{step}"


def is_request(action_id: str) -> bool:
    """Whether `action_id` is one of the Request approval buttons."""
    return action_id == REQUEST_ACTION or action_id.startswith(REQUEST_ACTION + ":")


def card_actions(view: Mapping[str, Any]) -> Block | None:
    """The card's actions block for what `view` (the notifier's view of the swap) says, or
    None when there is nothing to click (a rollback runs)."""
    if view.get("phase") in _ENDED:
        return {"type": "actions", "elements": [plan_button()]}
    if view.get("phase") in _OVER:
        return None
    elements = [b for b in (_step_button(view),) if b is not None]
    elements += _ahead_buttons(view)
    elements.append(_refresh_button(str(view.get("swap_id") or "")))
    return {"type": "actions", "elements": elements}


def _step_button(view: Mapping[str, Any]) -> Block | None:
    """Run next, or Request approval, or None (a step runs, an approval is pending, no plan)."""
    if view.get("step"):
        return None  # a step runs or waits: its job holds the swap
    step = runbook.BY_NAME.get(str(view.get("next") or ""))
    fingerprint = str(view.get("fingerprint") or "")
    if step is None or not fingerprint:
        return None
    if step.approval and view.get("next_approval") != "granted":
        if view.get("next_approval") == "pending":
            return None  # asked already: the approval message has its buttons
        return _request_button(REQUEST_ACTION, step.name, fingerprint)
    return _run_button(step, fingerprint)


def _ahead_buttons(view: Mapping[str, Any]) -> list[Block]:
    """Request approval for each later step that needs one and has none (granted or pending),
    while no step runs."""
    fingerprint = str(view.get("fingerprint") or "")
    if view.get("step") or not fingerprint:
        return []
    ahead = view.get("ahead") or {}
    return [
        _request_button(request_action(step), step, fingerprint)
        for step, state in ahead.items()
        if state == "none"
    ]


def _request_button(action_id: str, step: str, fingerprint: str) -> Block:
    button: Block = {
        "type": "button",
        "action_id": action_id,
        "text": _plain(f"Request approval for {step}", _BUTTON_TEXT),
        "value": _cut(next_value(step, fingerprint), _BUTTON_VALUE),
    }
    if action_id == REQUEST_ACTION:
        button["style"] = "primary"  # the next step waits on it
    return button


def _run_button(step: runbook.Step, fingerprint: str) -> Block:
    grave = step.in_outage or step.approval or step.point_of_no_return
    summary = " ".join(step.summary.split())
    if step.point_of_no_return:
        text = (
            f"{step.name}: {summary}. This is the point of no return: once it has run there is "
            "no rollback, only forward."
        )
    elif step.starts_outage:
        text = f"{step.name}: {summary}. This starts the outage: the app stops writing."
    elif step.in_outage:
        text = f"{step.name}: {summary}. The outage is running."
    else:
        text = f"{step.name}: {summary}."
    confirm: dict[str, Any] = {
        "title": _plain(f"Run {step.name}?", _CONFIRM_TITLE),
        "text": _plain(text, _CONFIRM_TEXT),
        "confirm": _plain(f"Run {step.name}", _CONFIRM_LABEL),
        "deny": _plain("Cancel", _CONFIRM_LABEL),
    }
    if grave:
        confirm["style"] = "danger"
    return {
        "type": "button",
        "action_id": NEXT_ACTION,
        "text": _plain(f"Run next: {step.name}", _BUTTON_TEXT),
        "style": "danger" if grave else "primary",
        "value": _cut(next_value(step.name, fingerprint), _BUTTON_VALUE),
        "confirm": confirm,
    }


def plan_button() -> Block:
    """Opens the plan as a form: the next swap's."""
    return {
        "type": "button",
        "action_id": PLAN_ACTION,
        "text": _plain("Plan a swap", _BUTTON_TEXT),
        "value": "plan new",
    }


def _refresh_button(swap_id: str) -> Block:
    return {
        "type": "button",
        "action_id": REFRESH_ACTION,
        "text": _plain("Refresh", _BUTTON_TEXT),
        "value": _cut(swap_id or "card", _BUTTON_VALUE),
    }
