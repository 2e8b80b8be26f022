"""Objects Heroku Connect does not manage (swapbot.database.ddl): carried to the new schema
in prep and in the cutover, and taken back by a rollback."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from swapbot.swap.run import Run

if TYPE_CHECKING:
    from swapbot.database.ddl import PhaseName
    from swapbot.database.ddl import Plan as DdlPlan


from swapbot.swap.steps.base import Check


def _ddl_plan(run: Run, phase: PhaseName) -> DdlPlan:
    from swapbot.database import ddl

    with run.live.db(autocommit=True) as conn:
        return ddl.plan(conn, run.plan.old_schema, run.plan.new_schema, run.plan.tables, phase)


def objects_check(phase: PhaseName) -> Callable[[Run], Check]:
    """Done when this swap applied the phase's DDL (grants re-plan forever: GRANT is idempotent,
    so an empty plan cannot be the proof) and a person handled what the bot could not."""

    def check(run: Run) -> Check:
        record = run.recall(f"ddl:{phase}")
        if not record or not record.get("applied"):
            plan = _ddl_plan(run, phase)
            if plan.problems:
                return Check(
                    False, "not ready: " + "; ".join(plan.problems), {"problems": plan.problems}
                )
            if not plan.steps and not plan.manual:
                return Check(True, f"no {phase} objects to carry")
            return Check(False, f"{len(plan.steps)} object(s) to carry to {run.plan.new_schema}")
        manual = [f"{m['kind']} {m['identity']}" for m in record.get("manual", [])]
        if manual and not run.confirmed("objects"):
            return Check(False, "objects for a person: " + "; ".join(manual), {"manual": manual})
        done = len(record.get("steps", []))
        return Check(
            True,
            f"{done} {phase} object(s) carried"
            + (f"; {len(manual)} by a person" if manual else ""),
        )

    return check


def objects_act(phase: PhaseName) -> Callable[[Run], None]:
    def act(run: Run) -> None:
        from swapbot.database import ddl, system_grants

        plan = _ddl_plan(run, phase)
        if plan.problems:
            raise run.stop(f"the {phase} DDL cannot run yet: " + "; ".join(plan.problems))

        if phase == "prep" and run.recall("ddl:preexisting") is None:
            # What NEW already holds that a rollback would take for the swap's own: keep it.
            before = _ddl_plan(run, "rollback")
            run.remember(
                "ddl:preexisting", [st.identity for st in before.steps if st.action == "drop"]
            )
            with run.live.db(autocommit=True) as conn:
                acl = system_grants.snapshot(conn, run.plan.new_schema, run.plan.tables)
            run.remember("ddl:new-schema-before", acl)  # grants and comments, for an exact rollback

        def apply() -> None:
            p = run.plan
            with run.live.db(autocommit=True) as conn:
                done = ddl.apply(conn, p.old_schema, p.new_schema, p.tables, phase)
                grants = (
                    system_grants.carry(conn, p.old_schema, p.new_schema) if phase == "prep" else []
                )
            run.remember(f"ddl:{phase}", done.model_dump(mode="json") | {"system_grants": grants})

        run.live.change(
            f"apply {phase} DDL: {len(plan.statements)} statement(s)", apply, sql=plan.statements
        )
        if plan.manual:
            items = "; ".join(
                f"{m.kind} {m.identity}: {', '.join(m.flags) or m.action}" for m in plan.manual
            )
            run.ask(
                f"objects the bot cannot carry safely need a person: {items}. Handle them, then `confirm objects`",
                person=run.plan.authorizer,
            )

    return act


def objects_undo(run: Run) -> None:
    """Put back re-pointed definitions, drop the copies made in NEW (ddl's rollback phase), and
    leave NEW's grants and comments exactly as they were before prep."""
    from swapbot.database import ddl, system_grants

    keep = frozenset(run.recall("ddl:preexisting") or [])
    before = run.recall("ddl:new-schema-before")
    with run.live.db(autocommit=True) as conn:
        plan = ddl.plan(
            conn, run.plan.old_schema, run.plan.new_schema, run.plan.tables, "rollback", keep=keep
        )
    if not plan.steps and not before:
        return

    def apply() -> None:
        p = run.plan
        with run.live.db(autocommit=True) as conn:
            ddl.apply(conn, p.old_schema, p.new_schema, p.tables, "rollback", keep=keep)
            if before:
                system_grants.restore(conn, before)

    run.live.change(
        f"apply rollback DDL: {len(plan.statements)} statement(s), then NEW's grants as before prep",
        apply,
        sql=plan.statements,
    )
    run.remember("ddl:new-schema-before", None)  # restored: a second undo finds nothing to do
    # The records prove the phases applied; they no longer are, so prep's check must see it
    # (`next` carries the objects again before a new cutover can start).
    run.remember("ddl:prep", None)
    run.remember("ddl:cutover", None)
