"""The `/hcswap` grammar: words in, a `Command` out (or a UsageError that says what is wrong).

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
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from pydantic import ValidationError

from swapbot.swap import steps as runbook
from swapbot.swap.plan import Plan, parse_apps, parse_mappings

if TYPE_CHECKING:
    pass

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
    "probe": "probe [ADDON]",
    "next": "next [--dry-run] [--no-wait]",
    "request-approval": f"request-approval {'|'.join(runbook.APPROVED)} [NOTE ...]",
    "approve": "approve REQUEST_ID",
    "deny": "deny REQUEST_ID",
    "confirm": f"confirm {'|'.join(runbook.CONFIRMABLE)}",
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
  request-approval STEP           ask a second person to approve {approved}
  approve REQUEST_ID              approve a request (not your own)
  deny REQUEST_ID                 deny a request (not your own): it can no longer be approved
  confirm {confirmable}
  ledger done KEY                 mark an item of the after-cutover ledger done
  rollback [--remove-addon]       undo everything up to the point of no return (keeps hc2 and its
                                  synced schema unless --remove-addon)
  history                         the audit trail
  probe [ADDON]                   check Heroku's unconfirmed behaviours on the app's connection
                                  (only reads; default: the plan's old add-on; operators)
  report                          the outage and its split, the objects carried, the parity
options: --dry-run, --json, --no-wait, --break-glass REASON, --remove-addon (rollback)""".format(
    approved=" or ".join(runbook.APPROVED), confirmable="|".join(runbook.CONFIRMABLE)
)

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
        if self.name in ("approve", "deny"):
            return "approve"
        return "operate"

    @property
    def action(self) -> str | None:
        """`plan`'s action (new, set, show)."""
        return (self.args[0] if self.args else "show") if self.name == "plan" else None

    @property
    def long_running(self) -> bool:
        """May take minutes or hours (a step waits on Heroku Connect or a person)."""
        return self.name in runbook.BY_NAME or self.name in ("next", "rollback", "probe")

    @property
    def answers_with_text(self) -> bool:
        """Its answer is a text to show whole (a read, help, the probe's table)."""
        return self.kind in ("read", "help") or self.name == "probe"

    @property
    def changes_something(self) -> bool:
        return self.kind in ("operate", "approve") and not self.dry_run

    def describe(self) -> str:
        """What will happen, in a few words, for the acknowledgement."""
        if self.name == "probe":
            return "probing Heroku Connect with read-only checks (a minute or two)"
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

    def error(self, message: str) -> NoReturn:
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
        if not args or args[0] not in runbook.APPROVED:
            raise UsageError(f"only these steps need an approval: {', '.join(runbook.APPROVED)}")
        return Command(name, args, **opts)
    if name in ("approve", "deny", "confirm", "ledger", "probe"):
        return _parse_fixed(name, args, opts)
    if name in runbook.BY_NAME:
        if len(args) > 1:
            raise UsageError(f"{name} takes at most the app's name\n{usage(name)}")
        return Command(name, args, **opts)
    raise UsageError(f"unknown or malformed subcommand {' '.join(rest)!r}\n\n{HELP}")


def _parse_fixed(name: str, args: tuple[str, ...], opts: dict[str, Any]) -> Command:
    if name == "probe" and len(args) > 1:
        raise UsageError(f"probe takes at most the add-on's name\n{usage(name)}")
    if name in ("approve", "deny") and len(args) != 1:
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


def validation_message(exc: ValidationError) -> str:
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
        raise UsageError(f"plan new: {validation_message(exc)}") from None
