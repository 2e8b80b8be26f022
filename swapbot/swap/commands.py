"""The `/hcswap` subcommands, shared by every front end: parse the words, then run them.

`parse` is pure and quick: the Slack web process calls it before acknowledging, so bad input
gets its answer at once and nothing is queued. `execute` runs a parsed command on the engine;
the terminal calls it in its own process, `swapbot worker` calls it for Slack. Neither front
end holds rules of its own: what a command means is decided here and in the engine.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from pydantic import ValidationError

from swapbot.heroku import HerokuError
from swapbot.swap import steps as runbook
from swapbot.swap.plan import Plan, format_mappings, parse_apps, parse_mappings
from swapbot.swap.store import iso

if TYPE_CHECKING:
    from swapbot.swap.engine import Engine, Outcome

Kind = Literal["help", "read", "operate", "approve"]

STEP_USAGE = "<step> [APP]"
USAGE: dict[str, str] = {
    "help": "help [SUBCOMMAND]",
    "status": "status",
    "plan": (
        "plan new --swap-id ID --new-schema S --mappings 'Account:Rating;Contact:Phone' "
        "[--roles r1,r2] [--process-types web,worker] [--bot-process-types ...] "
        "[--also-stop 'acme-admin:web,worker'] [--readers acme-bi] "
        "[--stale-sessions terminate|refuse] [--quiet-seconds 10] "
        "[--old-addon hc1] [--new-addon hc2] [--old-schema salesforce] [--authorizer USER]"
        " | plan set KEY=VALUE ... | plan show"
    ),
    "history": "history",
    "report": "report",
    "next": "next [--dry-run] [--no-wait]",
    "request-approval": "request-approval pause|delete-old [NOTE ...]",
    "approve": "approve REQUEST_ID",
    "confirm": "confirm settings|objects|external-objects",
    "ledger": "ledger done KEY",
    "rollback": "rollback [--remove-addon] [--dry-run]",
    "step": f"{STEP_USAGE} [--dry-run] [--no-wait] [--break-glass REASON]",
}

HELP = """subcommands:
  status                          where the swap stands (works before any plan exists)
  plan new --swap-id ID --new-schema S --mappings 'Account:Rating;Contact:Phone' [--roles r1,r2]
           [--process-types web,worker] [--bot-process-types ...] [--old-addon hc1] [--new-addon hc2]
           [--old-schema salesforce] [--authorizer U123]
           [--also-stop 'acme-admin:web,worker'] [--readers acme-bi]   every other app on the database
           [--stale-sessions terminate|refuse] [--quiet-seconds 10]
  plan set KEY=VALUE ...          change mappings, new_schema, roles, process_types, ... before any step ran
  plan show                       the plan, its objects, risks, the predicted outage and every step
  <step> [APP]                    run one step (stop-writes needs the app's name)
  next                            run the next step of prep (never starts the cutover)
  request-approval STEP           ask a second person to approve pause or delete-old
  approve REQUEST_ID              approve a request (not your own)
  confirm settings|objects|external-objects
  ledger done KEY                 mark an item of the after-cutover ledger done
  rollback [--remove-addon]       undo everything up to the point of no return (keeps hc2 and its
                                  synced schema unless --remove-addon)
  history                         the audit trail
  report                          the outage and its split, the objects carried, the parity
options: --dry-run, --json, --no-wait, --break-glass REASON, --remove-addon (rollback)"""

# What `plan set` may change, and how the text becomes the field's value.
SETTABLE = {
    "mappings": parse_mappings,
    "new_schema": str,
    "new_addon": str,
    "roles": lambda v: [r for r in v.split(",") if r],
    "process_types": lambda v: [p for p in v.split(",") if p],
    "bot_process_types": lambda v: [p for p in v.split(",") if p],
    "authorizer": str,
    "other_writers": parse_apps,
    "readers": lambda v: [a for a in v.split(",") if a],
    "stale_sessions": str,
    "quiet_seconds": float,
}
# `plan set also-stop=...` names the field by its flag.
ALIASES = {"also_stop": "other_writers"}

FLAGS = {
    "--dry-run": "dry_run",
    "--json": "json",
    "--no-wait": "no_wait",
    "--remove-addon": "remove_addon",
}
VALUED = {"--as": "actor", "--break-glass": "break_glass"}


class UsageError(ValueError):
    """Input that is not a command. The message says what is wrong and how it should look."""


@dataclass(frozen=True)
class Command:
    name: str  # "status", "plan", "pause", ...
    args: tuple[str, ...] = ()
    dry_run: bool = False
    json: bool = False
    no_wait: bool = False
    remove_addon: bool = False  # rollback only: hc2 and its schema go too
    break_glass: str | None = None
    actor: str | None = None  # the terminal's --as; Slack knows who is typing
    plan_fields: dict[str, Any] = field(default_factory=dict)  # `plan new` / `plan set`

    @property
    def kind(self) -> Kind:
        if self.name == "help":
            return "help"
        if self.name in ("status", "history", "report") or (
            self.name == "plan" and self.action == "show"
        ):
            return "read"
        if self.name == "approve":
            return "approve"
        return "operate"

    @property
    def action(self) -> str | None:
        """`plan`'s action (new, set, show)."""
        return (self.args[0] if self.args else "show") if self.name == "plan" else None

    @property
    def long_running(self) -> bool:
        """May take minutes or hours (a step waits on Heroku Connect or a person)."""
        return self.name in runbook.BY_NAME or self.name in ("next", "rollback")

    @property
    def changes_something(self) -> bool:
        return self.kind in ("operate", "approve") and not self.dry_run

    def describe(self) -> str:
        """What will happen, in a few words, for the acknowledgement."""
        if self.kind == "read":
            return f"reading {' '.join((self.name, *self.args))}"
        if self.name in runbook.BY_NAME:
            step = runbook.BY_NAME[self.name]
            verb = "listing the calls of" if self.dry_run else "running"
            return f"{verb} step {self.name}: {step.summary}"
        if self.name == "next":
            return (
                "listing the next prep step's calls"
                if self.dry_run
                else "running the next prep step"
            )
        if self.name == "rollback":
            what = "hc2 and its schema included" if self.remove_addon else "keeping hc2"
            verb = "listing the calls of a rollback" if self.dry_run else "rolling back"
            return f"{verb} up to the point of no return, {what}"
        return " ".join((self.name, *self.args))


def usage(name: str) -> str:
    key = "step" if name in runbook.BY_NAME else name
    return f"usage: {USAGE[key]}" if key in USAGE else HELP


_CURLY = {0x201C: '"', 0x201D: '"', 0x2018: "'", 0x2019: "'"}
_QUOTING = re.compile(r"""["'\\\u201c\u201d\u2018\u2019]""")  # what shlex must read
_BLANKS = re.compile("[ \t\r\n]+")  # what shlex splits on


def split(text: str) -> list[str]:
    """Words of a command line as typed in Slack or a shell; Slack's curly quotes count as quotes.

    Most commands (`status`, `next`) hold no quote and no backslash: their words are what lies
    between blanks, as shlex would find them. shlex reads character by character in Python,
    the largest part of an ack's own work, so it reads only what needs it."""
    if not _QUOTING.search(text):
        return [word for word in _BLANKS.split(text) if word]
    text = text.translate(_CURLY)
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"could not read the command: {exc}") from None


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}\n{self.format_usage().strip()}")


def _plan_new_parser() -> _Parser:
    p = _Parser(prog="plan new", add_help=False)
    p.add_argument("--swap-id", required=True)
    p.add_argument("--app")
    p.add_argument("--old-addon", default="hc1")
    p.add_argument("--old-schema", default="salesforce")
    p.add_argument("--new-addon", default="hc2")
    p.add_argument("--new-schema", required=True)
    p.add_argument("--mappings", required=True)
    p.add_argument("--roles")
    p.add_argument("--process-types")
    p.add_argument("--bot-process-types")
    p.add_argument("--authorizer")
    p.add_argument("--also-stop", default="")
    p.add_argument("--readers", default="")
    p.add_argument("--stale-sessions", choices=("terminate", "refuse"), default="terminate")
    p.add_argument("--quiet-seconds", type=float, default=10.0)
    return p


def _words(value: str | None) -> list[str]:
    return [w for w in (value or "").split(",") if w]


def _lift_flags(words: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Options may stand anywhere (`status --json`): take them out of the words."""
    rest: list[str] = []
    opts: dict[str, Any] = {}
    i = 0
    while i < len(words):
        word = words[i]
        name, eq, value = word.partition("=")
        if word in FLAGS:
            opts[FLAGS[word]] = True
        elif name in VALUED and eq:
            opts[VALUED[name]] = value
        elif word in VALUED:
            if i + 1 >= len(words):
                raise UsageError(f"{word} needs a value")
            opts[VALUED[word]] = words[i + 1]
            i += 1
        else:
            rest.append(word)
        i += 1
    if "break_glass" in opts and not opts["break_glass"].strip():
        raise UsageError("--break-glass needs a reason")
    return rest, opts


def parse(words: list[str] | str) -> Command:
    """Turn the words after `/hcswap` into a Command, or raise UsageError saying why not."""
    if isinstance(words, str):
        words = split(words)
    rest, opts = _lift_flags(list(words))
    if opts.get("remove_addon") and rest[:1] != ["rollback"]:
        raise UsageError(f"--remove-addon goes with rollback only\n{usage('rollback')}")
    if not rest:
        return Command("help", **opts)
    name, args = rest[0], tuple(rest[1:])
    if name == "help":
        if len(args) > 1:
            raise UsageError(usage("help"))
        return Command("help", args, **opts)
    if name in ("status", "history", "report", "next", "rollback"):
        if args:
            raise UsageError(f"{name} takes no arguments\n{usage(name)}")
        return Command(name, (), **opts)
    if name == "plan":
        return _parse_plan(args, opts)
    if name == "request-approval":
        needing = [s.name for s in runbook.STEPS if s.approval]
        if not args or args[0] not in needing:
            raise UsageError(f"only these steps need an approval: {', '.join(needing)}")
        return Command(name, args, **opts)
    if name in ("approve", "confirm") or name == "ledger":
        return _parse_fixed(name, args, opts)
    if name in runbook.BY_NAME:
        if len(args) > 1:
            raise UsageError(f"{name} takes at most the app's name\n{usage(name)}")
        return Command(name, args, **opts)
    raise UsageError(f"unknown or malformed subcommand {' '.join(rest)!r}\n\n{HELP}")


def _parse_fixed(name: str, args: tuple[str, ...], opts: dict[str, Any]) -> Command:
    if name == "approve" and len(args) != 1:
        raise UsageError(usage(name))
    if name == "confirm" and len(args) != 1:
        raise UsageError(usage(name))
    if name == "ledger" and (len(args) != 2 or args[0] != "done"):
        raise UsageError(usage(name))
    return Command(name, args, **opts)


def _parse_plan(args: tuple[str, ...], opts: dict[str, Any]) -> Command:
    action = args[0] if args else "show"
    if action == "show":
        if len(args) > 1:
            raise UsageError("plan show takes no arguments")
        return Command("plan", ("show",), **opts)
    if action == "new":
        ns = _plan_new_parser().parse_args(list(args[1:]))
        fields = {
            "swap_id": ns.swap_id,
            "app": ns.app,
            "old_addon": ns.old_addon,
            "old_schema": ns.old_schema,
            "new_addon": ns.new_addon,
            "new_schema": ns.new_schema,
            "mappings": _checked(parse_mappings, ns.mappings, "mappings"),
            "roles": _words(ns.roles),
            "process_types": _words(ns.process_types),
            "bot_process_types": _words(ns.bot_process_types),
            "authorizer": ns.authorizer,
            "other_writers": _checked(parse_apps, ns.also_stop, "also-stop"),
            "readers": _words(ns.readers),
            "stale_sessions": ns.stale_sessions,
            "quiet_seconds": ns.quiet_seconds,
        }
        return Command("plan", ("new",), plan_fields=fields, **opts)
    if action == "set":
        changes: dict[str, Any] = {}
        for pair in args[1:]:
            key, sep, value = pair.partition("=")
            key = key.replace("-", "_")
            key = ALIASES.get(key, key)
            if not sep or key not in SETTABLE:
                raise UsageError(
                    f"plan set: expected KEY=VALUE with KEY one of {', '.join(SETTABLE)}"
                )
            changes[key] = _checked(SETTABLE[key], value, key)
        if not changes:
            raise UsageError("plan set: nothing to change")
        return Command("plan", ("set", *args[1:]), plan_fields=changes, **opts)
    raise UsageError(f"plan: unknown action {action!r}; use new, set or show")


def _checked(convert: Any, value: str, what: str) -> Any:
    try:
        return convert(value)
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        err["msg"].removeprefix("Value error, ") for err in exc.errors(include_input=False)
    )


def new_plan(cmd: Command, *, app: str | None, actor: str) -> Plan:
    """The Plan a `plan new` command describes (pure: the live checks come when it is saved)."""
    fields = dict(cmd.plan_fields)
    fields["app"] = fields.get("app") or app or ""
    try:
        return Plan(**fields, created_by=actor)
    except ValidationError as exc:
        raise UsageError(f"plan new: {_validation_message(exc)}") from None


# -- running --------------------------------------------------------------------------------
@dataclass
class Reply:
    """What a command came to: a status for exit codes, a document for --json and Block Kit,
    and text for a terminal or a code block."""

    command: Command
    status: str  # done, skipped, dry-run, waiting, refused, failed; "ok" for reads
    message: str = ""
    document: Any = None
    text: str = ""
    calls: list[str] = field(default_factory=list)
    swap_id: str | None = None

    EXIT = {"ok": 0, "done": 0, "skipped": 0, "dry-run": 0, "waiting": 3, "refused": 2, "failed": 1}

    @property
    def exit_code(self) -> int:
        return self.EXIT.get(self.status, 1)


def execute(engine: Engine, cmd: Command, actor: str | None, *, app: str | None = None) -> Reply:
    """Run one command on the engine. `actor` may be None only for reads."""
    from swapbot.swap.engine import StepStopped

    if cmd.kind == "help":
        text = usage(cmd.args[0]) if cmd.args else HELP
        return Reply(cmd, "ok", text=text, document={"help": text})
    if cmd.kind != "read" and not actor:
        return Reply(cmd, "refused", "say who you are (it goes into the audit trail)")
    plan = engine.current_plan()
    swap_id = plan.swap_id if plan else None
    try:
        if cmd.kind == "read":
            reply = _read(engine, cmd, app)
            reply.swap_id = swap_id
            return reply
        if cmd.name == "plan":
            saved = _save_plan(engine, cmd, actor or "", app)
            return Reply(
                cmd,
                "done",
                f"plan {saved.swap_id} saved (fingerprint {saved.fingerprint()})",
                document={
                    "plan": saved.model_dump(mode="json"),
                    "fingerprint": saved.fingerprint(),
                },
                swap_id=saved.swap_id,
            )
        outcome = _operate(engine, cmd, actor or "")
    except (UsageError, StepStopped) as exc:
        return Reply(cmd, "refused", str(exc), swap_id=swap_id)
    return Reply(
        cmd,
        outcome.status,
        outcome.message,
        document={
            "step": outcome.step,
            "status": outcome.status,
            "message": outcome.message,
            "calls": outcome.calls,
        },
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
        raise UsageError(f"plan set: {_validation_message(exc)}") from None
    return engine.save_plan(updated, actor)


def _read(engine: Engine, cmd: Command, app: str | None) -> Reply:
    if cmd.name == "status":
        doc = status(engine, app)
        return Reply(cmd, "ok", document=doc, text=render_status(doc))
    if cmd.name == "history":
        plan = engine.current_plan()
        rows = (
            [e.model_dump(mode="json") for e in engine.store.history(plan.swap_id, count=500)]
            if plan
            else []
        )
        text = "\n".join(
            f"{e['at']}  {e['actor']:12} {e['action']:18} {e.get('step') or ''}" for e in rows
        )
        return Reply(cmd, "ok", document=rows, text=text or "no history yet")
    if cmd.name == "report":
        from swapbot.swap import report

        plan = engine.current_plan()
        if plan is None:
            return Reply(cmd, "ok", document=None, text="no plan yet: nothing to report")
        doc = report.report(engine.store, plan.swap_id)
        return Reply(cmd, "ok", document=doc, text=report.render(doc))
    doc = plan_show(engine)
    return Reply(cmd, "ok", document=doc, text=render_plan(engine, doc))


# -- status and plan show ---------------------------------------------------------------------
def status(engine: Engine, app: str | None = None) -> dict[str, Any]:
    """Where things stand: the app's connections, and with a plan its steps, approvals, clock."""
    from swapbot.swap import overview
    from swapbot.swap.engine import forward_path, manual_way_back

    plan = engine.current_plan()
    app = plan.app if plan else app
    doc: dict[str, Any] = {"app": app}
    if app and engine.clients is not None:
        doc["connections"] = overview.connections(*engine.clients, app)
    if plan is None:
        return doc | {"plan": None, "message": "no plan yet: create one with `plan new`"}
    store = engine.store
    checkpoints = store.checkpoints(plan.swap_id)
    steps = [
        {
            "name": s.name,
            "phase": s.phase,
            "status": (checkpoints[s.name].status if s.name in checkpoints else "pending"),
            "approval": s.approval,
            "point_of_no_return": s.point_of_no_return,
        }
        for s in runbook.STEPS
    ]
    current = next((s["name"] for s in steps if s["status"] not in ("done", "skipped")), None)
    started = store.get_record(plan.swap_id, "outage_started_at")
    standing = engine.standing(plan.swap_id)
    ponr = standing.point_of_no_return
    restore = checkpoints.get("restore")
    holder = store.holder(plan.swap_id)
    return doc | {
        "plan": plan.model_dump(mode="json"),
        "fingerprint": plan.fingerprint(),
        "steps": steps,
        "current_step": current,
        "approvals": [r.model_dump(mode="json") for r in engine.approvals.pending(plan.swap_id)],
        "ledger": [i.model_dump() | {"done": i.done} for i in engine.ledger()],
        "outage": {
            "started_epoch": started,
            "ended_epoch": restore.finished_epoch
            if restore is not None and restore.status in ("done", "skipped")
            else None,
        }
        if started
        else None,
        "holder": holder.model_dump(mode="json") if holder else None,
        "backlog": write_backlog(engine, plan),
        "in_progress": standing.in_progress,
        "point_of_no_return": (
            ponr | {"forward": forward_path(checkpoints), "way_back": manual_way_back(plan)}
            if ponr
            else None
        ),
    }


def write_backlog(engine: Engine, plan: Plan) -> dict[str, Any] | None:
    """hc1's writes not yet sent to Salesforce (its trigger log), or None when unreadable."""
    from swapbot.database import backlog
    from swapbot.database._common import UserError

    try:
        with engine.live_factory(plan, engine.emitter, True).db(autocommit=True) as conn:
            b = backlog.backlog(conn, plan.old_schema)
    except (UserError, psycopg.Error) as exc:
        return {"rows": None, "error": str(exc)}
    return {"rows": b.pending_all_tables, "oldest_seconds": b.oldest_pending_age_seconds}


def render_status(doc: dict[str, Any]) -> str:
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
    ponr = doc.get("point_of_no_return")
    if ponr:
        lines.append(
            f"  PAST THE POINT OF NO RETURN since {iso(ponr['at'])} ({ponr['step']}: "
            f"{ponr['what']}): no rollback. Go forward: {ponr['forward']}"
        )
    for item in doc.get("ledger", []):
        mark = f"done by {item['done_by']}" if item["done"] else f"open, owner {item['owner']}"
        lines.append(f"  ledger {item['key']}: {item['what']} ({mark})")
    for a in doc["approvals"]:
        lines.append(f"  approval {a['id']} for {a['step']} by {a['requester']}: {a['status']}")
    return head + "\n".join(lines)


def plan_show(engine: Engine) -> dict[str, Any]:
    plan = engine.current_plan()
    if plan is None:
        return {"plan": None, "message": "no plan yet: create one with `plan new`"}
    return {
        "plan": plan.model_dump(mode="json"),
        "fingerprint": plan.fingerprint(),
        "steps": [s.name for s in runbook.STEPS],
    } | _plan_facts(engine, plan)


def render_plan(engine: Engine, doc: dict[str, Any]) -> str:
    if doc["plan"] is None:
        return doc["message"]
    lines = [render_status(status(engine)), f"  fingerprint {doc['fingerprint']}"]
    lines += [f"  object  {o['phase']:8} {o['kind']:18} {o['identity']}" for o in doc["objects"]]
    lines += _writer_lines(doc.get("writers"), doc["plan"])
    lines += [f"  risk    {risk}" for risk in doc["risks"]]
    lines += [
        f"  outage  {p['step']:12} {p['seconds']:8.1f}s  {p['source']}: {p['basis']}"
        for p in doc["outage"]["parts"]
    ]
    lines.append(f"  outage  predicted {doc['outage']['seconds']:.0f}s in all")
    return "\n".join(lines)


def _writer_lines(found: dict[str, Any] | None, plan: dict[str, Any]) -> list[str]:
    """Who writes to the database and what stop-writes does about each, and the session policy."""
    if not found:
        return []
    what = {
        "swapped": "stop-writes stops {types}",
        "writer": "stop-writes stops {types} too",
        "reader": "left running (a reader)",
        "unnamed": "NOT NAMED: a writer to stop, or a reader?",
        "bot": "swapbot itself, never stopped",
    }
    lines = []
    for a in found["apps"]:
        types = (
            plan["process_types"] if a["role"] == "swapped" else plan["other_writers"].get(a["app"])
        )
        pooled = ", through the pooler" if a["through_pooler"] else ""
        one_off = f"; one-off dynos up: {', '.join(a['one_off'])}" if a["one_off"] else ""
        lines.append(
            f"  writer  {a['app']}: {what[a['role']].format(types=', '.join(types or []))}"
            f"{pooled}{one_off}"
        )
    for s in found["sessions"]:
        lines.append(
            f"  session {s['role']} {s['application_name'] or '-'} from "
            f"{s['client_addr'] or 'local'} since {s['backend_start']}"
        )
    lines.append(
        f"  policy  sessions from before the switch: {plan['stale_sessions']} "
        f"(before the app comes back); quiet before drain: {plan['quiet_seconds']:g}s"
    )
    return lines


def _plan_facts(engine: Engine, plan: Plan) -> dict[str, Any]:
    """What `plan show` adds: the objects to carry with their phase, preflight's risks, the outage."""
    from swapbot.database import inventory
    from swapbot.database._common import UserError

    facts: dict[str, Any] = {"objects": [], "risks": [], "outage": {"parts": [], "seconds": 0.0}}
    live = engine.live_factory(plan, engine.emitter, True)
    try:
        from swapbot.swap import writers

        with live.db(autocommit=True) as conn:
            found = writers.discover(live.platform, plan, conn, own_app=engine.own_app)
            facts["writers"] = found.model_dump(mode="json")
    except (HerokuError, psycopg.Error) as exc:
        facts["risks"].append(f"writers: {exc}")
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
