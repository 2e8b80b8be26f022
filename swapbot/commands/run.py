"""Running a parsed `/hcswap` command on the engine, and the documents reads answer with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from swapbot.commands.grammar import (
    HELP,
    Command,
    UsageError,
    new_plan,
    usage,
    validation_message,
)
from swapbot.heroku import HerokuError
from swapbot.swap import steps as runbook
from swapbot.swap.plan import Plan, format_mappings
from swapbot.swap.store import AuditEntry, Checkpoint, iso
from swapbot.swap.views import (
    Backlog,
    CommandOutcome,
    Help,
    LedgerRow,
    Outage,
    PastNoReturn,
    SavedPlan,
    Status,
    StepRow,
)

if TYPE_CHECKING:
    from typing import TypeAlias

    from swapbot.heroku.probed import ProbeResults
    from swapbot.swap.engine import Engine, Outcome
    from swapbot.swap.views import Report
    from swapbot.swap.views.plan import PlanShow
    from swapbot.swap.writers import Writers

    # Every document a command answers with (`history`: the audit entries themselves).
    Document: TypeAlias = (
        Status
        | PlanShow
        | Report
        | CommandOutcome
        | SavedPlan
        | Help
        | ProbeResults
        | list[AuditEntry]
    )


# -- running --------------------------------------------------------------------------------
@dataclass
class Reply:
    """What a command came to: a status for exit codes, a document for --json and Block Kit,
    and text for a terminal or a code block."""

    command: Command
    status: str  # done, skipped, dry-run, waiting, refused, failed; "ok" for reads
    message: str = ""
    document: Document | None = None
    text: str = ""
    calls: list[str] = field(default_factory=list)
    swap_id: str | None = None
    problems: list[str] = field(default_factory=list)  # a refused plan's, one by one

    EXIT = {"ok": 0, "done": 0, "skipped": 0, "dry-run": 0, "waiting": 3, "refused": 2, "failed": 1}

    @property
    def exit_code(self) -> int:
        return self.EXIT.get(self.status, 1)

    def json_document(self) -> Any:
        """The document as plain JSON values, for `--json`."""
        return to_jsonable_python(self.document, by_alias=True)


def execute(engine: Engine, cmd: Command, actor: str | None, *, app: str | None = None) -> Reply:
    """Run one command on the engine. `actor` may be None only for reads."""
    from swapbot.swap.run import PlanMismatch, StepStopped

    if cmd.kind == "help":
        text = usage(cmd.args[0]) if cmd.args else HELP
        return Reply(cmd, "ok", text=text, document=Help(help=text))
    if cmd.kind != "read" and not actor:
        return Reply(cmd, "refused", "say who you are (it goes into the audit trail)")
    plan = engine.current_plan()
    swap_id = plan.swap_id if plan else None
    try:
        if cmd.kind == "read":
            reply = _read(engine, cmd, app)
            reply.swap_id = swap_id
            return reply
        if cmd.name == "probe":  # only reads Heroku, but links the user and sets what is played
            reply = _probe(engine, cmd, app)
            reply.swap_id = swap_id
            return reply
        if cmd.name == "plan":
            saved = _save_plan(engine, cmd, actor or "", app)
            return Reply(
                cmd,
                "done",
                f"plan {saved.swap_id} saved (fingerprint {saved.fingerprint()})",
                document=SavedPlan(plan=saved, fingerprint=saved.fingerprint()),
                swap_id=saved.swap_id,
            )
        outcome = _operate(engine, cmd, actor or "")
    except (UsageError, StepStopped) as exc:
        problems = exc.problems if isinstance(exc, PlanMismatch) else []  # one by one
        return Reply(cmd, "refused", str(exc), swap_id=swap_id, problems=problems)
    return Reply(
        cmd,
        outcome.status,
        outcome.message,
        document=CommandOutcome(
            step=outcome.step,
            status=outcome.status,
            message=outcome.message,
            calls=list(outcome.calls),
        ),
        text=f"{outcome.step}: {outcome.status} — {outcome.message}",
        calls=list(outcome.calls),
        swap_id=swap_id,
    )


def _operate(engine: Engine, cmd: Command, actor: str) -> Outcome:
    wait = not cmd.no_wait
    if cmd.name == "next":
        return engine.next(actor, dry_run=cmd.dry_run, wait=wait)
    if cmd.name == "rollback":
        return engine.rollback(actor, dry_run=cmd.dry_run, remove_addon=cmd.remove_addon)
    if cmd.name == "request-approval":
        return engine.request_approval(cmd.args[0], actor, note=" ".join(cmd.args[1:]))
    if cmd.name == "approve":
        return engine.approve(cmd.args[0], actor)
    if cmd.name == "deny":
        return engine.deny(cmd.args[0], actor)
    if cmd.name == "ledger":
        return engine.ledger_done(cmd.args[1], actor)
    if cmd.name == "confirm":
        return engine.confirm(cmd.args[0], actor)
    return engine.run_step(
        cmd.name,
        actor,
        dry_run=cmd.dry_run,
        wait=wait,
        break_glass=cmd.break_glass,
        app=cmd.args[0] if cmd.args else None,
    )


def _save_plan(engine: Engine, cmd: Command, actor: str, app: str | None) -> Plan:
    if cmd.action == "new":
        plan = new_plan(cmd, app=app, actor=actor)
        return engine.save_plan(plan, actor)
    current = engine.current_plan()
    if current is None:
        raise UsageError("plan set: there is no plan yet: create one with `plan new`")
    try:
        updated = Plan.model_validate(current.model_dump() | cmd.plan_fields)
    except ValidationError as exc:
        raise UsageError(f"plan set: {validation_message(exc)}") from None
    return engine.save_plan(updated, actor)


def _read(engine: Engine, cmd: Command, app: str | None) -> Reply:
    if cmd.name == "status":
        now = status(engine, app)
        return Reply(cmd, "ok", document=now, text=render_status(now))
    if cmd.name == "history":
        plan = engine.current_plan()
        rows = engine.store.history(plan.swap_id, count=500) if plan else []
        text = "\n".join(f"{e.at}  {e.actor:12} {e.action:18} {e.step or ''}" for e in rows)
        return Reply(cmd, "ok", document=rows, text=text or "no history yet")
    if cmd.name == "report":
        from swapbot.swap import report

        plan = engine.current_plan()
        if plan is None:
            return Reply(cmd, "ok", document=None, text="no plan yet: nothing to report")
        told = report.report(engine.store, plan.swap_id)
        return Reply(cmd, "ok", document=told, text=report.render(told))
    shown = plan_show(engine)
    return Reply(cmd, "ok", document=shown, text=render_plan(engine, shown))


def _probe(engine: Engine, cmd: Command, app: str | None) -> Reply:
    """The probe's read-only checks on the app's connection; what they found is kept beside
    the deploy's probe file (the engine reads both) and answered as a table."""
    from swapbot import probe
    from swapbot.heroku.probed import RECORD, ProbeResults
    from swapbot.probe import render

    plan = engine.current_plan()
    app = plan.app if plan and plan.app else app
    addon = cmd.args[0] if cmd.args else (plan.old_addon if plan else None)
    if not app or engine.clients is None:
        return Reply(cmd, "refused", "no app to probe: set HEROKU_APP_NAME or make a plan")
    connect, platform = engine.clients
    found = probe.read_only(connect, platform, app=app, addon=addon)
    saved = engine.store.get_global(RECORD)
    kept = ProbeResults.model_validate(saved).merged(found) if saved else found
    engine.store.put_global(RECORD, kept.model_dump(mode="json"))
    text = render.table(found)
    return Reply(cmd, "ok", f"probed {app} ({addon or 'its one connection'})", found, text)


# -- status and plan show ---------------------------------------------------------------------
NO_PLAN = "no plan yet: create one with `plan new`"


def status(engine: Engine, app: str | None = None) -> Status:
    """Where things stand: the app's connections, and with a plan its steps, approvals, clock."""
    from swapbot.swap import overview

    plan = engine.current_plan()
    app = plan.app if plan else app
    connections = None
    if app and engine.clients is not None:
        connections = overview.connections(*engine.clients, app)
    if plan is None:
        return Status(app=app, connections=connections, message=NO_PLAN)
    store = engine.store
    checkpoints = store.checkpoints(plan.swap_id)
    steps = [
        StepRow(
            name=s.name,
            phase=s.phase,
            status=checkpoints[s.name].status if s.name in checkpoints else "pending",
            approval=s.approval,
            point_of_no_return=s.point_of_no_return,
        )
        for s in runbook.STEPS
    ]
    standing = engine.standing(plan.swap_id)
    return Status(
        app=app,
        connections=connections,
        plan=plan,
        fingerprint=plan.fingerprint(),
        steps=steps,
        current_step=next((s.name for s in steps if s.status not in ("done", "skipped")), None),
        approvals=engine.approvals.pending(plan.swap_id),
        ledger=[LedgerRow(**i.model_dump(), done=i.done) for i in engine.ledger()],
        outage=_outage(engine, plan, checkpoints),
        holder=store.holder(plan.swap_id),
        backlog=_write_backlog(engine, plan),
        in_progress=standing.in_progress,
        point_of_no_return=_past_no_return(standing.point_of_no_return, checkpoints, plan),
    )


def _outage(engine: Engine, plan: Plan, checkpoints: dict[str, Checkpoint]) -> Outage | None:
    started = engine.store.get_record(plan.swap_id, "outage_started_at")
    if not started:
        return None
    restore = checkpoints.get(runbook.OUTAGE_END)
    ended = restore.finished_epoch if restore and restore.status in ("done", "skipped") else None
    return Outage(started_epoch=started, ended_epoch=ended)


def _past_no_return(
    mark: dict[str, Any] | None, checkpoints: dict[str, Checkpoint], plan: Plan
) -> PastNoReturn | None:
    from swapbot.swap.rollback import forward_path, manual_way_back

    if not mark:
        return None
    return PastNoReturn(**mark, forward=forward_path(checkpoints), way_back=manual_way_back(plan))


def render_status(doc: Status) -> str:
    from swapbot.swap import overview

    head = overview.render(doc.connections) + "\n" if doc.connections is not None else ""
    plan = doc.plan
    if plan is None:
        return head + doc.message
    lines = [
        f"swap {plan.swap_id}: {plan.app} {plan.old_addon}/{plan.old_schema} -> "
        f"{plan.new_addon}/{plan.new_schema}  ({format_mappings(plan.mappings)})"
    ]
    for s in doc.steps:
        marks = ("  approval" if s.approval else "") + (
            "  POINT OF NO RETURN" if s.point_of_no_return else ""
        )
        lines.append(f"  {s.phase:8} {s.name:18} {s.status:8}{marks}")
    ponr = doc.point_of_no_return
    if ponr:
        lines.append(
            f"  PAST THE POINT OF NO RETURN since {iso(ponr.at or 0)} ({ponr.step}: "
            f"{ponr.what}): no rollback. Go forward: {ponr.forward}"
        )
    for item in doc.ledger:
        mark = f"done by {item.done_by}" if item.done else f"open, owner {item.owner}"
        lines.append(f"  ledger {item.key}: {item.what} ({mark})")
    for a in doc.approvals:
        lines.append(f"  approval {a.id} for {a.step} by {a.requester}: {a.status}")
    return head + "\n".join(lines)


def plan_show(engine: Engine) -> PlanShow:
    from swapbot.swap.views.plan import PlanShow

    plan = engine.current_plan()
    if plan is None:
        return PlanShow(message=NO_PLAN)
    return _plan_facts(engine, plan)


def render_plan(engine: Engine, doc: PlanShow) -> str:
    if doc.plan is None:
        return doc.message
    lines = [render_status(status(engine)), f"  fingerprint {doc.fingerprint}"]
    lines += [f"  object  {o.phase:8} {o.kind:18} {o.identity}" for o in doc.objects]
    lines += _writer_lines(doc.writers, doc.plan)
    lines += [f"  risk    {risk}" for risk in doc.risks]
    lines += [f"  BLOCKED {why}" for why in doc.blocked]
    lines += _assumption_lines(doc)
    lines += [
        f"  outage  {p.step:12} {p.seconds:8.1f}s  {p.source}: {p.basis}" for p in doc.outage.parts
    ]
    lines.append(f"  outage  predicted {doc.outage.seconds:.0f}s in all")
    return "\n".join(lines)


def _assumption_lines(doc: PlanShow) -> list[str]:
    """Heroku's unconfirmed behaviours: a count, then each one a probe confirmed or not."""
    rows = doc.assumptions
    if not rows:
        return []
    counts = {
        v: sum(r.verdict == v for r in rows) for v in ("confirmed", "contradicted", "unknown")
    }
    lines = [
        "  assumed "
        + ", ".join(f"{n} {v}" for v, n in counts.items())
        + " (swapbot probe; docs/heroku-assumptions.md)"
    ]
    width = max(len(r.key) for r in rows)
    lines += [f"  assumed {r.key:{width}}  {r.verdict:12}  {r.seen}" for r in rows]
    return lines


_ROLES = {
    "swapped": "stop-writes stops {types}",
    "writer": "stop-writes stops {types} too",
    "reader": "left running (a reader)",
    "unnamed": "NOT NAMED: a writer to stop, or a reader?",
    "bot": "swapbot itself, never stopped",
}


def _writer_lines(found: Writers | None, plan: Plan) -> list[str]:
    """Who writes to the database and what stop-writes does about each, and the session policy."""
    if not found:
        return []
    lines = []
    for a in found.apps:
        types = plan.process_types if a.role == "swapped" else plan.other_writers.get(a.app)
        pooled = ", through the pooler" if a.through_pooler else ""
        one_off = f"; one-off dynos up: {', '.join(a.one_off)}" if a.one_off else ""
        lines.append(
            f"  writer  {a.app}: {_ROLES[a.role].format(types=', '.join(types or []))}"
            f"{pooled}{one_off}"
        )
    for s in found.sessions:
        lines.append(
            f"  session {s.role} {s.application_name or '-'} from "
            f"{s.client_addr or 'local'} since {to_jsonable_python(s.backend_start)}"
        )
    lines.append(
        f"  policy  sessions from before the switch: {plan.stale_sessions} "
        f"(before the app comes back); quiet before drain: {plan.quiet_seconds:g}s"
    )
    return lines


def _plan_facts(engine: Engine, plan: Plan) -> PlanShow:
    """What `plan show` adds: the objects to carry with their phase, preflight's risks, the outage."""
    from swapbot.database import inventory
    from swapbot.database._common import UserError
    from swapbot.swap import assumed, writers
    from swapbot.swap.steps.prep import diagnose_lines
    from swapbot.swap.views.plan import OutagePrediction, PlannedObject, PlanShow

    found, objects, risks = None, [], []
    live = engine.live_factory(plan, engine.emitter, True)
    try:
        with live.db(autocommit=True) as conn:
            found = writers.discover(live.platform, plan, conn, own_app=engine.own_app)
    except (HerokuError, psycopg.Error) as exc:
        risks.append(f"writers: {exc}")
    try:
        with live.db(autocommit=True) as conn:
            inv = inventory.inventory(conn, plan.old_schema, plan.tables, plan.new_schema)
        objects = [
            PlannedObject(phase=o.phase, kind=o.kind, identity=o.identity, reason=o.reason)
            for o in inv.objects
        ]
    except UserError as exc:
        risks.append(f"inventory: {exc}")
    report = engine.store.get_record(plan.swap_id, "preflight")
    if report:
        risks += [
            f"{c['name']}: {c['status']}: {c.get('summary', '')}"
            for c in report["checks"]
            if c["status"] != "pass"
        ]
        # HC's own checks of hc1 that failed at preflight (or why it could not run them)
        risks += diagnose_lines(engine.store.get_record(plan.swap_id, "diagnose_old"))
    else:
        risks.append("preflight has not run yet")
    outage = OutagePrediction()
    try:
        prediction = engine.predict()
        if prediction is not None:
            outage = OutagePrediction(parts=prediction.parts, seconds=prediction.seconds)
    except Exception as exc:  # a prediction is advice: never let it break `plan show`
        risks.append(f"outage prediction unavailable: {exc}")
    return PlanShow(
        plan=plan,
        fingerprint=plan.fingerprint(),
        steps=[s.name for s in runbook.STEPS],
        objects=objects,
        writers=found,
        risks=risks,
        assumptions=assumed.rows(live.probe),
        blocked=assumed.blockers(live.probe),
        outage=outage,
    )


def _write_backlog(engine: Engine, plan: Plan) -> Backlog:
    # Imported here: the web process parses commands and never needs the database toolkit.
    from swapbot.swap.watcher import write_backlog

    return write_backlog(engine, plan)
