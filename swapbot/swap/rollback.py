"""Rollback: undo, in reverse, every step done so far, as far back as the swap's record can
prove, and never past the point of no return; and the way forward or back by hand from there.

Called through `Engine.rollback`; it runs under the same lease, heartbeat and records as a step.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from swapbot.swap import record as swaprecord
from swapbot.swap import steps as runbook
from swapbot.swap.live import Live
from swapbot.swap.outcome import Interrupted, Outcome, calls_of, failure
from swapbot.swap.plan import Plan
from swapbot.swap.record import is_done
from swapbot.swap.run import Run, StepStopped
from swapbot.swap.store import Checkpoint, Lease, iso

if TYPE_CHECKING:
    from swapbot.swap.engine import Engine


def rollback(
    engine: Engine, actor: str, *, dry_run: bool = False, remove_addon: bool = False
) -> Outcome:
    """Undo, in reverse, every step done so far, up to the point of no return. hc2 and its
    synced copy stay (the cutover can be tried again at once) unless `remove_addon`: then
    hc2 and its schema go too, and the swap starts again from preflight."""
    plan = engine.current_plan()
    if plan is None:
        return Outcome("rollback", "refused", "there is no plan yet")
    live = engine.live_factory(plan, engine.emitter, dry_run)
    try:
        lease = None if dry_run else engine.take_lease(plan.swap_id)
    except StepStopped as exc:
        return Outcome("rollback", "refused", str(exc))
    calls: list[str] = []
    try:
        with engine.heartbeat(lease):
            if lease is not None:
                engine.reconcile(lease)
            refused = refusal(engine, engine.new_run(plan, live, lease, actor, "rollback"))
            if refused:
                return Outcome("rollback", "refused", refused)
            calls = _undo(engine, plan, live, lease, actor, dry_run, remove_addon)
        if dry_run:
            return Outcome("rollback", "dry-run", f"would make {len(calls)} change(s)", calls=calls)
        kept = (
            ""
            if remove_addon
            else f"; {plan.new_addon} and {plan.new_schema} are kept (synced, ready for "
            "another cutover): `rollback --remove-addon` removes them too"
        )
        return Outcome(
            "rollback", "done", f"rolled back with {len(calls)} change(s){kept}", calls=calls
        )
    except Interrupted as exc:
        message = f"interrupted: {exc}; run `rollback` again: it undoes what is left"
        engine.emit("step.failed", plan.swap_id, step="rollback", actor=actor, message=message)
        return Outcome("rollback", "failed", message, calls=calls, data={"retryable": True})
    except Exception as exc:
        told = failure(exc, "rollback")
        engine.emit(
            "step.failed",
            plan.swap_id,
            step="rollback",
            actor=actor,
            message=told["message"],
        )
        return Outcome(
            "rollback",
            "failed",
            told["message"],
            calls=calls,
            data={"retryable": bool(told.get("retryable") or told.get("resumable"))},
        )
    finally:
        if lease is not None:
            engine.release(lease)


def refusal(engine: Engine, run: Run) -> str | None:
    """Rollback goes back only as far as the swap's record can prove: never past the point
    of no return, never without the records its undos need, never over a change the
    record does not show (Redis and the journal both lost it)."""
    plan = run.plan
    mark = run.recall(swaprecord.POINT_OF_NO_RETURN)
    checkpoints = engine.store.checkpoints(plan.swap_id)
    if mark:
        return (
            f"the swap passed the point of no return at {passed_at(mark)}: {mark.get('step')} "
            f"began deleting {mark.get('what')} from {plan.old_addon}, so there is no "
            "automatic way back. Go forward: "
            + forward_path(checkpoints)
            + ". The manual way back: "
            + manual_way_back(plan)
        )
    # Only a done step must have its records: they are written (journal first) before the
    # step changes anything, so an unfinished step without them changed nothing.
    missing = [
        f"{step.name} needs the record `{name}`"
        for step in runbook.STEPS
        if step.undo is not None and is_done(checkpoints.get(step.name))
        for name in missing_records(run, step)
    ]
    missing += unrecorded_changes(run, engine.store.checkpoints(plan.swap_id))
    if missing:
        return (
            "rollback changed nothing: it cannot prove what to put back ("
            + "; ".join(missing)
            + "). Redis and the journal have lost that part of the swap's record. Put it "
            "back by hand: " + manual_way_back(plan)
        )
    return None


def _undo(
    engine: Engine,
    plan: Plan,
    live: Live,
    lease: Lease | None,
    actor: str,
    dry_run: bool,
    remove_addon: bool,
) -> list[str]:
    done = engine.store.checkpoints(plan.swap_id)
    engine.emit(
        "rollback.started",
        plan.swap_id,
        actor=actor,
        message=f"{actor} rolls the swap back",
        dry_run=dry_run,
    )
    if not dry_run:
        engine.store.audit(plan.swap_id, actor, "rollback.started")
    with engine.emitter.capture() as events:
        for step in reversed(runbook.STEPS):
            cp = done.get(step.name)
            if step.undo is None or cp is None or cp.status == "pending":
                continue
            if step.undo_removes_hc2 and not remove_addon:
                continue
            # An undone step is skipped, except hc2's removal: it may have stopped
            # half-way, and it checks the live system before each change.
            if cp.status == "undone" and not step.undo_removes_hc2:
                continue
            run = engine.new_run(plan, live, lease, actor, step.name)
            if not is_done(cp) and missing_records(run, step):
                continue  # it stopped before it recorded, so before it changed anything
            step.undo(run)
            if lease is not None:
                engine.record.checkpoint(lease, step.name, status="undone")
                engine.store.audit(plan.swap_id, actor, "step.undone", step=step.name)
            engine.emit(
                "step.undone",
                plan.swap_id,
                step=step.name,
                actor=actor,
                message=step.summary,
                dry_run=dry_run,
            )
    calls = calls_of(events)
    if lease is None:
        return calls
    # Steps without an undo are reset so the swap can be run again: the cutover's
    # always; prep's only with hc2 gone (else they still hold: hc2 stays, synced).
    for step in runbook.STEPS:
        reset = step.phase == "cutover" or remove_addon
        if reset and step.undo is None and is_done(done.get(step.name)):
            engine.record.checkpoint(lease, step.name, status="undone")
    if remove_addon:
        engine.record.forget_prep(lease)
    engine.record.put(lease, swaprecord.ROLLED_BACK, time.time())
    engine.store.audit(
        plan.swap_id,
        actor,
        "rollback.done",
        detail={"calls": calls, "remove_addon": remove_addon},
    )
    engine.emit("rollback.done", plan.swap_id, actor=actor, message="rolled back", calls=calls)
    return calls


# -- the way on from the point of no return -------------------------------------------------
def forward_path(checkpoints: dict[str, Checkpoint]) -> str:
    """The steps left from the point of no return on, in order, as a person would type them."""
    ponr = next(i for i, s in enumerate(runbook.STEPS) if s.point_of_no_return)
    left = [s.name for s in runbook.STEPS[ponr:] if not is_done(checkpoints.get(s.name))]
    if not left:
        return "every step is done"
    first = runbook.get(left[0])
    note = (
        " (it goes on under the approval its first attempt used)"
        if first.point_of_no_return
        else ""
    )
    return "run " + ", then ".join(f"`{name}`" for name in left) + note


def manual_way_back(plan: Plan) -> str:
    return (
        f"re-import the stored export of {plan.old_addon} (record `export` of swap "
        f"{plan.swap_id}, kept in Redis and in Postgres, table swapbot.entry) into "
        f"{plan.old_addon} and let it load, then put the roles' "
        "search_path back from the record `search_path` (`swapbot db search-path restore`), "
        "and the formation and maintenance from the records `formation` and "
        "`maintenance_before`"
    )


def passed_at(mark: dict[str, Any]) -> str:
    """When the swap passed the point of no return, from its mark."""
    return iso(float(mark.get("at") or 0))


# -- what rollback must be able to prove ---------------------------------------------------
def missing_records(run: Run, step: runbook.Step) -> list[str]:
    return [name for name in step.undo_needs if run.recall(name) is None]


def unrecorded_changes(run: Run, checkpoints: dict[str, Checkpoint]) -> list[str]:
    """Cutover changes the live system shows and the swap's record does not (Redis and the
    journal both lost them): a rollback that ignored them would say "done" and leave them."""
    plan, found = run.plan, []
    if run.recall("search_path") is None:
        with run.live.db(autocommit=True) as conn:
            rows = conn.execute(
                "SELECT coalesce(r.rolname, 'the database'), s.setconfig "
                "FROM pg_catalog.pg_db_role_setting s LEFT JOIN pg_catalog.pg_roles r "
                "ON r.oid = s.setrole WHERE s.setdatabase IN (0, (SELECT oid FROM "
                "pg_catalog.pg_database WHERE datname = current_database()))"
            ).fetchall()
        for who, config in rows:
            paths = [c for c in config or [] if c.startswith("search_path=")]
            if any(plan.new_schema in p for p in paths):
                found.append(f"the search_path of {who} names {plan.new_schema}")
    if run.recall("formation") is None and run.live.platform.app(plan.app).maintenance:
        found.append(f"{plan.app} is in maintenance mode")
    old = run.live.connection(plan.old_addon)
    if old is not None and old.state == "PAUSED" and not checkpoints.get("pause"):
        found.append(f"{plan.old_addon} is paused")
    return found
