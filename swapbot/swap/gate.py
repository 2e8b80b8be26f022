"""The approval gate: a step that needs a second person runs only under an approval bound to
the plan's fingerprint and to the live state it was given for, used once.

The requests themselves live in `swapbot.swap.approvals`; this is the engine's side: asking,
granting or denying, and taking an approval when the step runs (or going on under the one an
interrupted attempt already used).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import psycopg

from swapbot.database._common import redact
from swapbot.heroku import HerokuError
from swapbot.swap import record as swaprecord
from swapbot.swap import steps as runbook
from swapbot.swap.events import Kind
from swapbot.swap.live import Live
from swapbot.swap.outcome import Outcome
from swapbot.swap.plan import Plan
from swapbot.swap.record import interrupted
from swapbot.swap.run import Run, StepStopped
from swapbot.swap.store import Checkpoint

if TYPE_CHECKING:
    from swapbot.swap.engine import Engine


def live_facts(live: Live) -> dict[str, Any]:
    """What the plan rests on: connection ids and the moved mappings' config revisions."""
    old = live.old()
    new = live.new()
    return {
        "old": old.id,
        "new": new.id if new else None,
        "old_revisions": {
            o: (m.config.revision if m and m.config else None)
            for o in live.plan.objects
            for m in [old.mapping(o)]
        },
    }


def live_digest(live: Live) -> str:
    """The live state an approval is bound to: hc2's moved mappings and their revisions."""
    new = live.new()
    facts = sorted(
        (m.object_name or "", m.id, m.config.revision if m.config else None)
        for m in (new.mappings if new else [])
        if m.object_name in live.plan.mappings
    )
    return hashlib.sha256(json.dumps(facts, default=str).encode()).hexdigest()[:12]


def conditions(engine: Engine, plan: Plan) -> tuple[str, str]:
    """The plan fingerprint and live digest an approval is bound to. Raises StepStopped
    when Heroku Connect cannot be read: no approval is asked or given blind."""
    live = engine.live_factory(plan, engine.emitter, True)
    try:
        return plan.fingerprint(live_facts(live)), live_digest(live)
    except (HerokuError, psycopg.Error) as exc:
        raise StepStopped(
            "could not read the live state an approval is bound to "
            f"({redact(f'{type(exc).__name__}: {exc}')}); nothing was recorded, try again"
        ) from None


def request_approval(engine: Engine, step_name: str, actor: str, note: str = "") -> Outcome:
    plan = engine.current_plan()
    if plan is None:
        return Outcome(step_name, "refused", "there is no plan yet")
    step = runbook.BY_NAME.get(step_name)
    if step is None or not step.approval:
        needing = ", ".join(runbook.APPROVED)
        return Outcome(step_name, "refused", f"only these steps need an approval: {needing}")
    try:
        fingerprint, digest = conditions(engine, plan)
    except StepStopped as exc:
        return Outcome(step_name, "failed", str(exc), data={"retryable": True})
    req = engine.approvals.request(plan.swap_id, step_name, actor, fingerprint, digest, note=note)
    engine.emit(
        "approval.requested",
        plan.swap_id,
        step=step_name,
        actor=actor,
        message=f"{actor} asks a second person to approve {step_name}",
        request_id=req.id,
        fingerprint=fingerprint,
        expires_at=req.expires_at,
    )
    return Outcome(step_name, "done", f"approval {req.id} requested", data={"request_id": req.id})


def approve(engine: Engine, request_id: str, actor: str, *, at: float | None = None) -> Outcome:
    """`actor` approves a request; `at` is when they did (a Slack reaction's event time)."""
    plan = engine.current_plan()
    if plan is None:
        return Outcome("approve", "refused", "there is no plan yet")
    try:
        fingerprint, digest = conditions(engine, plan)
    except StepStopped as exc:
        return Outcome("approve", "failed", str(exc), data={"retryable": True})
    decision = engine.approvals.grant(
        plan.swap_id,
        request_id,
        actor,
        engine.approvers,
        fingerprint=fingerprint,
        live_digest=digest,
        at=at,
    )
    step = decision.request.step if decision.request else None
    kind: Kind = "approval.granted" if decision.granted else "approval.refused"
    engine.emit(
        kind,
        plan.swap_id,
        step=step,
        actor=actor,
        message=decision.reason,
        request_id=request_id,
    )
    return Outcome(
        "approve",
        "done" if decision.granted else "refused",
        decision.reason,
        data={"verdict": decision.verdict.value, "request_id": request_id, "step": step},
    )


def deny(engine: Engine, request_id: str, actor: str) -> Outcome:
    """An approver other than the requester denies a pending request: it can no longer be
    approved. No live state is read: saying no is safe whatever Heroku Connect shows."""
    plan = engine.current_plan()
    if plan is None:
        return Outcome("deny", "refused", "there is no plan yet")
    denial = engine.approvals.deny(plan.swap_id, request_id, actor, engine.approvers)
    step = denial.request.step if denial.request else None
    if denial.denied:
        # Front ends show the request as it now stands (the Slack notifier edits the approval
        # message: denied, its buttons gone).
        engine.emit(
            "approval.denied",
            plan.swap_id,
            step=step,
            actor=actor,
            message=denial.reason,
            request_id=request_id,
            verdict=denial.verdict.value,
        )
    return Outcome(
        "deny",
        "done" if denial.denied else "refused",
        denial.reason,
        data={"verdict": denial.verdict.value, "request_id": request_id, "step": step},
    )


def resumes_approved(
    engine: Engine, run: Run, step: runbook.Step, previous: Checkpoint | None
) -> bool:
    """An approval used by an attempt that never finished (its runner died, or it failed in
    doubt) covers the resumed attempt: it is the same single use, so nobody is asked twice
    for one pause. Past the point of no return, delete-old goes on under the approval
    recorded at the mark, whatever hc1 looks like now (its own DELETEs changed it)."""
    mark = run.recall(swaprecord.POINT_OF_NO_RETURN)
    if mark and step.point_of_no_return:
        run.approval = mark.get("approval")
        _say_resumed(engine, run, step, mark.get("approval") or "its first attempt's", mark)
        return True
    used = [
        (r, r.used_epoch)
        for r in engine.approvals.requests(run.plan.swap_id, step.name)
        if r.status == "used" and r.used_epoch is not None
    ]
    if not used:
        return False
    last, used_epoch = used[-1]
    # Spent if an attempt finished (done, undone, or failed for a reason that was not a
    # stop in the middle) after it was used.
    spent = previous is not None and (
        previous.status == "pending"
        or (not interrupted(previous) and (previous.finished_epoch or 0) >= used_epoch)
    )
    if spent:
        return False
    plan_now = run.plan.fingerprint(live_facts(run.live))
    if last.fingerprint != plan_now:
        return False
    run.approval = last.id
    _say_resumed(engine, run, step, last.id, {"approver": last.approver})
    return True


def _say_resumed(
    engine: Engine, run: Run, step: runbook.Step, approval: str, detail: dict[str, Any]
) -> None:
    engine.store.audit(
        run.plan.swap_id,
        run.actor,
        "approval.resumed",
        step=step.name,
        detail={"request": approval, **{k: v for k, v in detail.items() if k != "at"}},
    )
    who = f"{detail['approver']}'s approval {approval}" if detail.get("approver") else approval
    engine.emit(
        "notice",
        run.plan.swap_id,
        step=step.name,
        actor=run.actor,
        message=f"{step.name} resumes under {who}, used by the attempt that was interrupted",
    )


def take_approval(engine: Engine, run: Run, step: runbook.Step) -> str | None:
    plan = run.plan
    if run.break_glass:
        engine.store.audit(
            plan.swap_id,
            run.actor,
            "break-glass",
            step=step.name,
            detail={"reason": run.break_glass},
        )
        engine.emit(
            "notice",
            plan.swap_id,
            step=step.name,
            actor=run.actor,
            message=f"BREAK GLASS: {run.actor} runs {step.name} without a second person: {run.break_glass}",
        )
        run.approval = f"break-glass: {run.break_glass}"
        return None
    fingerprint = plan.fingerprint(live_facts(run.live))
    digest = live_digest(run.live)
    taken = engine.approvals.consume(
        plan.swap_id, step.name, fingerprint=fingerprint, live_digest=digest, actor=run.actor
    )
    if taken is None:
        return engine.approvals.why_not(
            plan.swap_id, step.name, fingerprint=fingerprint, live_digest=digest
        )
    run.approval = taken.id
    return None
