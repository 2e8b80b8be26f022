"""`swapbot hcswap <subcommand> [args] --as USER`: the terminal front end over the engine.

The same rules as in Slack: steps in order, approvals by a second person, the cutover only when
named. Events print as they happen; `--json` prints one document at the end instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import ValidationError

from swapbot import config
from swapbot.swap import steps as runbook
from swapbot.swap.engine import Engine, Outcome
from swapbot.swap.events import Emitter, Event
from swapbot.swap.plan import Plan, format_mappings, parse_mappings

EXIT = {"done": 0, "skipped": 0, "dry-run": 0, "waiting": 3, "refused": 2, "failed": 1}

HELP = """subcommands:
  status                          where the swap stands (works before any plan exists)
  plan new --swap-id ID --new-schema S --mappings 'Account:Rating;Contact:Phone' [--roles r1,r2]
           [--process-types web,worker] [--bot-process-types ...] [--old-addon hc1] [--new-addon hc2]
           [--old-schema salesforce] [--authorizer U123]
  plan set KEY=VALUE ...          change mappings, new_schema, roles, process_types, ... before any step ran
  plan show                       the plan, its objects, risks, the predicted outage and every step
  <step> [APP]                    run one step (stop-writes needs the app's name)
  next                            run the next step of prep (never starts the cutover)
  request-approval STEP           ask a second person to approve pause or delete-old
  approve REQUEST_ID              approve a request (not your own)
  confirm settings|objects|external-objects
  ledger done KEY                 mark an item of the after-cutover ledger done
  rollback                        undo everything up to the point of no return
  history                         the audit trail
options: --as USER (required to change anything), --dry-run, --json, --no-wait, --break-glass REASON"""


def _printer(event: Event) -> None:
    if event.kind == "call":
        prefix = "  would call" if event.data.get("dry_run") else "  call"
        print(f"{prefix}: {event.message}", flush=True)
        for statement in event.data.get("sql", []):
            print(f"      {statement}", flush=True)
    elif event.kind in ("load.progress",):
        print(f"  … {event.message}", flush=True)
    else:
        step = f"[{event.step}] " if event.step else ""
        extra = f" ({event.data['link']})" if event.data.get("link") else ""
        print(f"{event.kind:18} {step}{event.message}{extra}", flush=True)


def _plan_from_args(args: argparse.Namespace, settings: config.Settings) -> Plan:
    return Plan(
        swap_id=args.swap_id,
        app=args.app or settings.heroku_app_name or "",
        old_addon=args.old_addon,
        old_schema=args.old_schema,
        new_addon=args.new_addon,
        new_schema=args.new_schema,
        mappings=parse_mappings(args.mappings or ""),
        roles=[r for r in (args.roles or "").split(",") if r],
        process_types=[p for p in (args.process_types or "").split(",") if p],
        bot_process_types=[p for p in (args.bot_process_types or "").split(",") if p],
        authorizer=args.authorizer,
        created_by=args.actor,
    )


def _status(engine: Engine, app: str | None = None) -> dict[str, Any]:
    from swapbot.swap import overview

    plan = engine.current_plan()
    app = plan.app if plan else app
    doc: dict[str, Any] = {}
    if app and engine.clients is not None:
        doc["connections"] = overview.connections(*engine.clients, app)
    if plan is None:
        return doc | {"plan": None, "message": "no plan yet: create one with `plan new`"}
    checkpoints = engine.store.checkpoints(plan.swap_id)
    return doc | {
        "plan": plan.model_dump(mode="json"),
        "steps": [
            {
                "name": s.name,
                "phase": s.phase,
                "status": (checkpoints[s.name].status if s.name in checkpoints else "pending"),
                "approval": s.approval,
                "point_of_no_return": s.point_of_no_return,
            }
            for s in runbook.STEPS
        ],
        "approvals": [r.model_dump(mode="json") for r in engine.approvals.pending(plan.swap_id)],
        "ledger": [i.model_dump() | {"done": i.done} for i in engine.ledger()],
    }


def _render_status(doc: dict[str, Any]) -> str:
    from swapbot.swap import overview

    head = overview.render(doc["connections"]) + "\n" if "connections" in doc else ""
    if doc["plan"] is None:
        return head + doc["message"]
    plan = doc["plan"]
    lines = [
        f"swap {plan['swap_id']}: {plan['app']} {plan['old_addon']}/{plan['old_schema']} -> "
        f"{plan['new_addon']}/{plan['new_schema']}  ({format_mappings(plan['mappings'])})"
    ]
    for s in doc["steps"]:
        marks = ("  approval" if s["approval"] else "") + (
            "  POINT OF NO RETURN" if s["point_of_no_return"] else ""
        )
        lines.append(f"  {s['phase']:8} {s['name']:18} {s['status']:8}{marks}")
    for item in doc.get("ledger", []):
        mark = f"done by {item['done_by']}" if item["done"] else f"open, owner {item['owner']}"
        lines.append(f"  ledger {item['key']}: {item['what']} ({mark})")
    for a in doc["approvals"]:
        lines.append(f"  approval {a['id']} for {a['step']} by {a['requester']}: {a['status']}")
    return head + "\n".join(lines)


FLAGS = {"--dry-run": "dry_run", "--json": "json", "--no-wait": "no_wait"}
VALUED = {"--as": "actor", "--break-glass": "break_glass"}


def _lift_flags(args: argparse.Namespace) -> None:
    """Options may come after the subcommand (`hcswap status --json`): take them out of `rest`."""
    rest, i = [], 0
    while i < len(args.rest):
        word = args.rest[i]
        name, eq, value = word.partition("=")
        if word in FLAGS:
            setattr(args, FLAGS[word], True)
        elif name in VALUED and eq:
            setattr(args, VALUED[name], value)
        elif word in VALUED and i + 1 < len(args.rest):
            setattr(args, VALUED[word], args.rest[i + 1])
            i += 1
        else:
            rest.append(word)
        i += 1
    args.rest = rest


def run(args: argparse.Namespace) -> int:
    _lift_flags(args)
    if args.subcommand in (None, "help"):
        print(HELP)
        return 0
    try:
        settings = config.load_settings()
    except config.SettingsError as exc:
        print(f"hcswap: {exc}", file=sys.stderr)
        return 2
    from swapbot.swap.runtime import MissingSettings, build_engine

    emitter = Emitter()
    if not args.json:
        emitter.subscribe(_printer)
    try:
        engine = build_engine(settings, emitter, approvers=set(settings.swapbot_approvers))
    except MissingSettings as exc:
        print(f"hcswap: {exc}", file=sys.stderr)
        return 2
    if not settings.slack_bot_token:
        print("(Slack settings are not set: channel notifications are off)", file=sys.stderr)
    sub, rest = args.subcommand, args.rest
    read_only = sub in ("status", "history") or (sub == "plan" and rest[:1] == ["show"])
    if not read_only and not args.actor:
        print(
            "hcswap: say who you are with --as USER (it goes into the audit trail)", file=sys.stderr
        )
        return 2
    outcome: Outcome | None = None
    document: Any = None
    if sub == "status":
        document = _status(engine, settings.heroku_app_name)
        if not args.json:
            print(_render_status(document))
    elif sub == "history":
        plan = engine.current_plan()
        document = (
            [e.model_dump(mode="json") for e in engine.store.history(plan.swap_id, count=500)]
            if plan
            else []
        )
        if not args.json:
            for e in document:
                print(f"{e['at']}  {e['actor']:12} {e['action']:18} {e.get('step') or ''}")
    elif sub == "plan":
        return _plan_command(engine, args, settings)
    elif sub == "next":
        outcome = engine.next(args.actor, dry_run=args.dry_run, wait=not args.no_wait)
    elif sub == "rollback":
        outcome = engine.rollback(args.actor, dry_run=args.dry_run)
    elif sub == "request-approval" and len(rest) == 1:
        outcome = engine.request_approval(rest[0], args.actor)
    elif sub == "approve" and len(rest) == 1:
        outcome = engine.approve(rest[0], args.actor)
    elif sub == "ledger" and len(rest) == 2 and rest[0] == "done":
        outcome = engine.ledger_done(rest[1], args.actor)
    elif sub == "confirm" and len(rest) == 1:
        outcome = engine.confirm(rest[0], args.actor)
    elif sub in runbook.BY_NAME and len(rest) <= 1:
        outcome = engine.run_step(
            sub,
            args.actor,
            dry_run=args.dry_run,
            wait=not args.no_wait,
            break_glass=args.break_glass,
            app=rest[0] if rest else None,
        )
    else:
        print(
            f"hcswap: unknown or malformed subcommand {' '.join([sub, *rest])!r}\n\n{HELP}",
            file=sys.stderr,
        )
        return 2
    if outcome is not None:
        document = {
            "step": outcome.step,
            "status": outcome.status,
            "message": outcome.message,
            "calls": outcome.calls,
        }
        if not args.json:
            print(f"{outcome.step}: {outcome.status} — {outcome.message}")
    if args.json:
        json.dump(document, sys.stdout, indent=2, default=str)
        print()
    return EXIT.get(outcome.status, 1) if outcome is not None else 0


def _plan_facts(engine: Engine, plan: Plan) -> dict[str, Any]:
    """What `plan show` adds: the objects to carry with their phase, preflight's risks, the outage."""
    from swapbot.database import inventory
    from swapbot.database._common import UserError

    facts: dict[str, Any] = {"objects": [], "risks": [], "outage": {"parts": [], "seconds": 0.0}}
    live = engine.live_factory(plan, engine.emitter, True)
    try:
        with live.db(autocommit=True) as conn:
            inv = inventory.inventory(conn, plan.old_schema, plan.tables, plan.new_schema)
        facts["objects"] = [
            {"phase": o.phase, "kind": o.kind, "identity": o.identity, "reason": o.reason}
            for o in inv.objects
        ]
    except UserError as exc:
        facts["risks"].append(f"inventory: {exc}")
    report = engine.store.get_record(plan.swap_id, "preflight")
    if report:
        facts["risks"] += [
            f"{c['name']}: {c['status']}: {c.get('summary', '')}"
            for c in report["checks"]
            if c["status"] != "pass"
        ]
    else:
        facts["risks"].append("preflight has not run yet")
    try:
        prediction = engine.predict()
        facts["outage"] = {
            "parts": [p.model_dump() for p in prediction.parts],
            "seconds": prediction.seconds,
        }
    except Exception as exc:  # a prediction is advice: never let it break `plan show`
        facts["risks"].append(f"outage prediction unavailable: {exc}")
    return facts


def _plan_command(engine: Engine, args: argparse.Namespace, settings: config.Settings) -> int:
    action = args.rest[0] if args.rest else "show"
    if action == "show":
        plan = engine.current_plan()
        if plan is None:
            print("no plan yet: create one with `plan new`")
            return 0
        doc = {
            "plan": plan.model_dump(mode="json"),
            "fingerprint": plan.fingerprint(),
            "steps": [s.name for s in runbook.STEPS],
        } | _plan_facts(engine, plan)
        if args.json:
            print(json.dumps(doc, indent=2, default=str))
        else:
            print(_render_status(_status(engine)))
            print(f"  fingerprint {doc['fingerprint']}")
            for obj in doc["objects"]:
                print(f"  object  {obj['phase']:8} {obj['kind']:18} {obj['identity']}")
            for risk in doc["risks"]:
                print(f"  risk    {risk}")
            for part in doc["outage"]["parts"]:
                print(
                    f"  outage  {part['step']:12} {part['seconds']:8.1f}s  {part['source']}: {part['basis']}"
                )
            print(f"  outage  predicted {doc['outage']['seconds']:.0f}s in all")
        return 0
    if action == "new":
        parser = argparse.ArgumentParser(prog="hcswap plan new")
        parser.add_argument("--swap-id", required=True)
        parser.add_argument("--app")
        parser.add_argument("--old-addon", default="hc1")
        parser.add_argument("--old-schema", default="salesforce")
        parser.add_argument("--new-addon", default="hc2")
        parser.add_argument("--new-schema", required=True)
        parser.add_argument("--mappings", required=True)
        parser.add_argument("--roles")
        parser.add_argument("--process-types")
        parser.add_argument("--bot-process-types")
        parser.add_argument("--authorizer")
        try:
            fields = parser.parse_args(args.rest[1:])
        except SystemExit:
            return 2
        fields.actor = args.actor
        try:
            plan = _plan_from_args(fields, settings)
        except ValidationError as exc:
            for err in exc.errors(include_input=False):
                print(
                    f"hcswap plan new: {err['msg'].removeprefix('Value error, ')}", file=sys.stderr
                )
            return 2
        from swapbot.swap.engine import StepStopped

        try:
            engine.save_plan(plan, args.actor)
        except StepStopped as exc:
            print(f"hcswap plan new: {exc}", file=sys.stderr)
            return 2
        print(f"plan {plan.swap_id} saved (fingerprint {plan.fingerprint()})")
        return 0
    if action == "set":
        return _plan_set(engine, args)
    print(f"hcswap plan: unknown action {action!r}; use new, set or show", file=sys.stderr)
    return 2


# What `plan set` may change, and how the text becomes the field's value.
SETTABLE = {
    "mappings": parse_mappings,
    "new_schema": str,
    "new_addon": str,
    "roles": lambda v: [r for r in v.split(",") if r],
    "process_types": lambda v: [p for p in v.split(",") if p],
    "bot_process_types": lambda v: [p for p in v.split(",") if p],
    "authorizer": str,
}


def _plan_set(engine: Engine, args: argparse.Namespace) -> int:
    """`plan set key=value ...`: change a saved plan before any step has run (checked again)."""
    from swapbot.swap.engine import StepStopped

    plan = engine.current_plan()
    if plan is None:
        print("hcswap plan set: there is no plan yet: create one with `plan new`", file=sys.stderr)
        return 2
    changes: dict[str, Any] = {}
    for pair in args.rest[1:]:
        key, sep, value = pair.partition("=")
        key = key.replace("-", "_")
        if not sep or key not in SETTABLE:
            print(
                f"hcswap plan set: expected KEY=VALUE with KEY one of {', '.join(SETTABLE)}",
                file=sys.stderr,
            )
            return 2
        changes[key] = SETTABLE[key](value)
    if not changes:
        print("hcswap plan set: nothing to change", file=sys.stderr)
        return 2
    try:
        updated = Plan.model_validate(plan.model_dump() | changes)
    except ValidationError as exc:
        for err in exc.errors(include_input=False):
            print(f"hcswap plan set: {err['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    try:
        engine.save_plan(updated, args.actor)
    except StepStopped as exc:
        print(f"hcswap plan set: {exc}", file=sys.stderr)
        return 2
    print(f"plan {updated.swap_id} saved (fingerprint {updated.fingerprint()})")
    return 0


def _worker(args: argparse.Namespace) -> int:
    """`swapbot worker`: runs queued engine actions (rq) and, beside them, the watcher."""
    import threading

    from rq import Worker

    from swapbot.swap import jobs
    from swapbot.swap.runtime import MissingSettings, build_engine
    from swapbot.swap.watcher import Watcher

    try:
        settings = config.load_settings()
        engine = build_engine(settings, approvers=set(settings.swapbot_approvers))
    except (config.SettingsError, MissingSettings) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    watcher = None
    if settings.heroku_app_name:
        watcher = Watcher(engine, settings.heroku_app_name, interval=args.watch_interval)
        threading.Thread(target=watcher.run, name="watcher", daemon=True).start()
    worker = Worker([jobs.queue(settings)], connection=config.redis_client(settings))
    try:
        worker.work(burst=args.burst)
    finally:
        if watcher:
            watcher.stop()
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("worker", help="run queued swap steps (rq) and the watcher")
    w.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    w.add_argument("--watch-interval", type=float, default=30.0, help="seconds between looks (30)")
    w.set_defaults(func=_worker)

    p = sub.add_parser("hcswap", help="run the swap from the terminal (the same rules as in Slack)")
    p.add_argument(
        "subcommand", nargs="?", help="status, plan, a step, next, approve, rollback, history, help"
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.add_argument("--as", dest="actor", help="who you are (a Slack user id or a name)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the calls a step would make; change nothing"
    )
    p.add_argument("--json", action="store_true", help="one JSON document instead of a report")
    p.add_argument(
        "--no-wait", action="store_true", help="do not wait for Heroku Connect or people"
    )
    p.add_argument("--break-glass", metavar="REASON", help="act without a second person (audited)")
    p.set_defaults(func=run)
