"""What `swapbot worker` does with a click on one of swapbot's buttons: run the command the
button stands for, exactly as if it had been typed, and answer the person who clicked.

The web process (`swapbot.slack.app.click`) has already checked the click as that command
(`access.refusal`) and queued it once. Here it runs through `swapbot.commands.execute`, so every
rule of the engine applies as to `/hcswap approve REQUEST_ID` or `/hcswap deny REQUEST_ID`:
approvers only, never the requester, bound to the plan fingerprint and the live state, once,
before the request expires. The answer goes to the person privately (the click's
`response_url`, else an ephemeral message in the channel). The approval message itself is edited
where every approval edits it: the engine's event (`approval.granted`, `approval.withdrawn` for
a denial) reaches the notifier, which shows the request as it now stands, without buttons once
decided. A click that was refused because the request is decided already (expired, used,
denied, superseded) emits no such event, so it edits the message itself: its buttons go.

The swap card's buttons (`swapbot.slack.blocks.card`) come this way too. Run next runs the step
its button names, only while the card is current: the plan's fingerprint is the one the card
was drawn for and the step is still the next by the checkpoints (else it is refused, nothing
run). Request approval is `request-approval STEP`, under the same check (or, asked ahead,
only while that step is still to come), and only while no request for that step is pending or
granted (a new one would supersede it and ping the
approvers twice). Refresh asks the notifier to draw the card again; the card itself changes,
so nothing is answered. A click's answer goes as a typed command's does (`work.answer`): whole,
privately, and for a command that changes something also in the swap's thread when it came
too late for the click's response_url (30 minutes: a long step).

Like every job of `swapbot.slack.work`, a click never raises to rq without an answer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk import WebClient

from swapbot import commands, config
from swapbot.slack import blocks, work
from swapbot.slack.notifier import ApprovalMessages, next_step, request_redraw
from swapbot.swap import steps as runbook
from swapbot.swap.approvals import ApprovalStatus
from swapbot.swap.engine import Engine
from swapbot.swap.outcome import Interrupted
from swapbot.swap.plan import Plan

log = logging.getLogger(__name__)


def handle_click(click: dict[str, Any]) -> dict[str, Any]:
    """Run the command of one click (`text`, e.g. "approve pause-3") for `user` and answer
    them as a typed command's answer goes (`work.answer`); returns what was answered. Never
    raises. A click on the swap's card (`card`) is checked against the live plan, checkpoints
    and approvals first (a stale Run next or Request approval runs nothing); its Refresh only
    asks the notifier to draw the card again, and answers nothing."""
    user, channel, ts, text = click["user"], click["channel"], click.get("ts"), click["text"]
    since = click.get("action_ts") or time.time()
    asked = work.Asked(user, channel, click.get("response_url"), since, text, clicked=True)
    on_card = click.get("card") or {}
    settings: config.Settings | None = None
    client: WebClient | None = None
    engine: Engine | None = None
    cmd: commands.Command | None = None
    try:
        settings, client, engine = work.context()
        if on_card.get("action") == "refresh":
            return _refresh(engine)
        cmd = commands.parse(text)  # parsed once already before the ack: this cannot fail now
        if on_card:
            why = _stale_card(engine, on_card)
            cmd = _with_app(engine, cmd)
        else:
            why = _not_this_message(engine, cmd, channel, ts)
        if why:
            reply = commands.Reply(cmd, "refused", why, swap_id=engine.store.current_swap())
        else:
            reply = commands.execute(engine, cmd, user, app=settings.heroku_app_name)
    except (Exception, Interrupted) as exc:  # as a typed command's job: answered, logged
        log.exception("the click %r of %s was not recorded", text, user)
        if client is None:
            settings, client = work.answerer()
        message = (
            f"{work.why(exc, settings)}; nothing changed. Click again, or type `/hcswap {text}`"
        )
        rendered = blocks.reply(
            {"command": asked.label, "status": "failed", "message": message, "people": [user]}
        )
        fresh = time.time() - since
        work.deliver_or_log(client, asked.response_url, channel, user, rendered, fresh)
        if engine is not None and cmd is not None:
            work.notice(engine, None, cmd, user, f"{asked.subject} by {user}: failed: {message}")
        return {"status": "failed", "message": message}
    # An approval refused says so in the thread already (`approval.refused`); a denial, a stale
    # card, or a check that could not be made, is told there as a typed command's would be.
    quiet = cmd.name == "approve" and reply.status == "refused"
    work.answer(client, engine, settings, asked, cmd, reply, note_refusal=not quiet)
    if reply.status in ("refused", "failed"):
        _drop_buttons_if_decided(engine, client, settings, channel, ts)
    return {"status": reply.status, "message": reply.message}


def _refresh(engine: Engine) -> dict[str, Any]:
    """The card's Refresh: the notifier draws the current swap's card again on its next round
    (it alone edits the card, so two writers never race). The redrawn card is the answer."""
    swap_id = engine.store.current_swap()
    if swap_id is None:
        return {"status": "ok", "message": "no current swap: no card to draw"}
    request_redraw(engine.store, swap_id)
    return {"status": "ok", "message": f"the card of swap {swap_id} is drawn again"}


def _stale_card(engine: Engine, on_card: dict[str, Any]) -> str | None:
    """Why a Run-next or Request-approval click cannot do what its button names, or None: the
    card it was clicked on was drawn for another plan, or that step is no longer the next one,
    or (Request approval) a request for it is pending or granted already: a new one would
    supersede it and ping the approvers twice."""
    action = on_card.get("action")
    if action not in ("next", "request-approval"):
        return None
    step, fingerprint = str(on_card.get("step") or ""), str(on_card.get("fingerprint") or "")
    plan = engine.current_plan()
    if plan is None:
        return "There is no plan any more, so that card is stale: nothing ran."
    if fingerprint != plan.fingerprint():
        return (
            f"That card was drawn for another plan (fingerprint {fingerprint or '?'}; the plan "
            f"is now {plan.fingerprint()}): nothing ran. Look at the card as it is now."
        )
    upcoming = next_step(engine.store.checkpoints(plan.swap_id))
    if action == "request-approval" and _not_yet(step, upcoming):
        return _asked_already(engine, plan.swap_id, step)  # asked ahead: it has not run yet
    if upcoming != step:
        now = f"the next step is {upcoming}" if upcoming else "every step is done"
        return (
            f"That card is stale: {step} is no longer the next step ({now}), so nothing ran. "
            "Look at the card as it is now."
        )
    if action == "request-approval":
        return _asked_already(engine, plan.swap_id, step)
    return None


def _not_yet(step: str, upcoming: str | None) -> bool:
    """Whether `step` comes after the next step of the runbook (it has not run)."""
    return upcoming is not None and step in {s.name for s in runbook.after(upcoming)}


def _asked_already(engine: Engine, swap_id: str, step: str) -> str | None:
    """Why no new approval of `step` is asked for: one is pending or granted, or None."""
    now = time.time()
    live = [
        r
        for r in engine.approvals.requests(swap_id, step)
        if r.status in (ApprovalStatus.PENDING, ApprovalStatus.GRANTED) and r.expires_epoch > now
    ]
    if not live:
        return None
    req = live[-1]
    said = "granted" if req.status is ApprovalStatus.GRANTED else "pending"
    return (
        f"That card is stale: the approval {req.id} of {step} is {said} already, so no new "
        "request was made (it would supersede that one). Look at the card as it is now."
    )


def _with_app(engine: Engine, cmd: commands.Command) -> commands.Command:
    """The step that starts the outage is typed with the app's name; its button gives the
    plan's app, as the person would have typed it."""
    if cmd.name != runbook.OUTAGE_START or cmd.args:
        return cmd
    plan = engine.current_plan()
    return commands.parse(f"{cmd.name} {plan.app}") if plan and plan.app else cmd


def _not_this_message(
    engine: Engine, cmd: commands.Command, channel: str, ts: str | None
) -> str | None:
    """Why the clicked message cannot decide the request its button names, or None: a button
    of an earlier swap's request (request ids restart with each swap) decides nothing now."""
    found = ApprovalMessages(engine.store).request_for(channel, ts) if ts else None
    if found is None:
        return None  # not remembered: the request id alone, as typed
    swap_id, request_id = found
    if request_id != (cmd.args[0] if cmd.args else None):
        return f"That button does not belong to request {request_id}; nothing changed."
    plan = engine.current_plan()
    if plan is None or plan.swap_id != swap_id:
        return f"That approval belongs to swap {swap_id}, which is not the current swap."
    return None


def _drop_buttons_if_decided(
    engine: Engine,
    client: WebClient,
    settings: config.Settings,
    channel: str,
    ts: str | None,
) -> None:
    """Show a request that is no longer pending as decided, without its buttons. Best effort:
    a failure is logged, the person has had their answer."""
    try:
        found = ApprovalMessages(engine.store).request_for(channel, ts) if ts else None
        if found is None or ts is None:
            return
        swap_id, request_id = found
        req = engine.approvals.get(swap_id, request_id)
        now = time.time()
        if req is None or (req.status is ApprovalStatus.PENDING and req.expires_epoch > now):
            return  # still open: its buttons stay
        saved = engine.store.get_plan(swap_id)
        step = runbook.BY_NAME.get(req.step)
        text, blks = blocks.approval_decided(
            req,
            Plan.model_validate(saved) if saved else None,
            step_summary=step.summary if step else req.step,
            emoji=settings.swapbot_approval_emoji,
            now=now,
        )
        client.chat_update(channel=channel, ts=ts, text=text, blocks=blks)
    except Exception as exc:
        log.warning("could not show approval message %s as decided: %s", ts, exc)
