"""`swapbot demo`: the whole swap rehearsed against the sandbox's demo scenario, in the terminal,
as the Slack channel sees it.

It starts the sandbox on a fresh database with the app writing all along, a local stand-in for
Slack, and swapbot itself (`swapbot serve` and `swapbot worker`, as on Heroku). Scripted people
type `/hcswap` commands (signed as Slack signs them), open the Salesforce link, confirm what
only a person can, approve (pause with the request's Approve button, delete-old by reacting
with an emoji) and run the cutover by clicking "Run next" on the swap's live card; the terminal
shows the channel's conversation as it happens, the card at the start of the outage and at
the end, then the final report.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from swapbot.config import Settings, load_settings, redis_client
from swapbot.runtime import build_engine
from swapbot.sandbox import scenarios
from swapbot.sandbox.options import SandboxOptions
from swapbot.sandbox.server import Sandbox
from swapbot.slack.blocks.approvals import APPROVE_ACTION
from swapbot.swap import steps as runbook
from swapbot.swap.engine import Engine
from swapbot.swap.plan import Plan, format_mappings
from swapbot.testing.rehearsal import CHANNEL, Colleague, LocalSlack, environment, forget, said
from swapbot.testing.script import ScriptStopped, Team, WholeSwap
from swapbot.testing.standin import Message, SlackStandIn, render_blocks

DEMO_TOKEN = "demo-" + uuid.uuid4().hex  # the sandbox accepts any non-empty bearer token
OPERATOR, APPROVER, AUTHORIZER = "U0OPERATOR", "U0APPROVER", "U0AUTHORIZER"
USERS = {OPERATOR: {"name": "olivia"}, APPROVER: {"name": "arjun"}, AUTHORIZER: {"name": "bea"}}
NEW_FIELDS = {
    "Account": ["NumberOfEmployees", "Rating"],
    "Contact": ["Phone", "Preferred_Channel__c"],
}


def recreate_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def say(text: str = "") -> None:
    print(text, flush=True)


class ChannelPrinter:
    """Prints the Slack channel as it happens: what people type, what the bot answers them,
    the swap's thread (replies indented), edits of the approval and progress messages, and
    reactions. It reads the stand-in, so it shows exactly what Slack would have shown."""

    def __init__(self, slack: SlackStandIn) -> None:
        self.slack = slack
        self.started = time.monotonic()

    def clock(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"

    def typed(self, user: str, text: str) -> None:
        say(f"{self.clock()} {self.slack.user_name(user)}: /hcswap {text}")

    def reacted(self, user: str, what: str) -> None:
        say(f"{self.clock()} ⟶ {self.slack.user_name(user)} reacts :white_check_mark: to {what}")

    def clicked(self, user: str, label: str, on: str = "") -> None:
        where = f" {on}" if on else ""
        say(f"{self.clock()} ⟶ {self.slack.user_name(user)} clicks “{label}”{where}")

    def card(self, title: str, message: Message) -> None:
        """The swap's live card as the channel shows it now, whole."""
        say(f"\n== {title}")
        for line in render_blocks(message.blocks or []) or [message.text or ""]:
            say(f"   | {line}")

    def __call__(self, kind: str, message: Message) -> None:
        if message.source == "ack" and "Working on it" in (message.text or ""):
            return  # every command is acknowledged this way; the answer follows
        lines = render_blocks(message.blocks) if message.blocks else []
        lines = lines or (message.text or "").splitlines() or [""]
        who = self.slack.user_name(message.user)
        if message.ephemeral_to:
            who += f" (only to {self.slack.user_name(message.ephemeral_to)})"
        indent = "    ↳ " if message.thread_ts else ""
        if kind == "reaction":
            for name, users in message.reactions.items():
                reactors = ", ".join(self.slack.user_name(u) for u in users)
                say(f"{self.clock()} {indent}:{name}: by {reactors} on “{lines[0][:60]}”")
            return
        if kind == "update":
            say(f"{self.clock()} {indent}(edited) {lines[0]}")
            for line in lines[1:6]:
                say(f"         {indent}   {line}")
            return
        broadcast = " (also sent to the channel)" if message.broadcast else ""
        say(f"{self.clock()} {indent}{who}{broadcast}: {lines[0]}")
        for line in lines[1:12]:
            say(f"         {indent}   {line}")
        if len(lines) > 12:
            say(f"         {indent}   … {len(lines) - 12} more lines")


@dataclass(frozen=True)
class DemoOptions:
    """What `swapbot demo` takes from its command line."""

    sandbox: SandboxOptions
    admin_url: str
    database: str = "swapbot_demo"
    write_load: float = 5.0  # the app's writes a second, through its dynos
    rollback_at: str | None = None  # rehearse a rollback just before this cutover step
    assume: list[tuple[str, bool]] = field(default_factory=list)


def run_demo(args: DemoOptions) -> int:
    scenario = scenarios.get("demo")
    if args.write_load > 0:  # the app writes through its web and worker dynos, while they run
        writer = scenarios.WriterSpec(
            app=scenario.app, process_types=["web", "worker"], per_second=args.write_load
        )
        scenario = scenario.model_copy(update={"writers": [writer]})
    say(f"== preparing database {args.database} with scenario '{scenario.name}'")
    url = recreate_database(args.admin_url, args.database)
    started = time.monotonic()
    scenarios.load(url, scenario)
    say(
        f"   {sum(o.records for o in scenario.objects):,} Salesforce records loaded "
        f"in {time.monotonic() - started:.1f}s"
    )
    if args.assume:
        say("   assuming: " + ", ".join(f"{k}={v}" for k, v in args.assume))
    prefix = f"swapbot-demo:{uuid.uuid4().hex[:8]}:"
    with Sandbox(url, args.sandbox) as sandbox, SlackStandIn(users=USERS) as slack:
        env = environment(
            database_url=url,
            redis_url=os.environ.get("SWAPBOT_DEMO_REDIS_URL", "redis://127.0.0.1:6379/0"),
            redis_prefix=prefix,
            heroku_token=DEMO_TOKEN,
            app=scenario.app,
            sandbox=sandbox,
            slack=slack,
            operators=[OPERATOR],
            approvers=[APPROVER, AUTHORIZER],
            SWAPBOT_POLL_SECONDS="0.25",
            SWAPBOT_TIMEOUT_SCALE=str(max(0.05, 2.0 / sandbox.options.speed)),
        )
        local = LocalSlack(env, slack, Path(tempfile.mkdtemp(prefix="swapbot-demo-")))
        try:
            say(f"== sandbox at {sandbox.base_url} (speed x{sandbox.options.speed:g})")
            say(f"== Slack stand-in at {slack.url}; swapbot serve and swapbot worker starting")
            local.start_serve()
            local.start_worker()
            return _rehearse(local, sandbox, url, scenario, args)
        finally:
            local.stop()
            if sandbox.traffic is not None:
                by = Counter(w.schema for w in sandbox.traffic.writes())
                where = ", ".join(f"{n} into {schema}" for schema, n in sorted(by.items()))
                say(
                    f"\n   the app made {sum(by.values())} writes through its dynos ({where}; "
                    f"{sandbox.traffic.errors} failed)"
                )
            say(f"   (logs of serve and worker: {local.logs})")
            _forget(env, prefix)


def _forget(env: dict[str, str], prefix: str) -> None:
    """The rehearsal's Redis keys go with it; the database stays as the procedure leaves it."""
    forget(redis_client(Settings(redis_url=env["REDIS_URL"])), prefix)


class _RolledBack(Exception):
    """The demo rehearsed a rollback instead of the rest of the cutover."""

    def __init__(self, answer: str):
        self.answer = answer


class DemoSwap(WholeSwap):
    """The whole swap, narrated: what people type and do, as the channel shows it."""

    def __init__(self, local, driver, printer: ChannelPrinter, engine: Engine, **kw):
        super().__init__(local, driver, Team(OPERATOR, APPROVER, AUTHORIZER), **kw)
        self.printer, self.engine = printer, engine
        self.prediction: Any = None
        self.rollback_at: str | None = None

    def typed(self, user: str, text: str) -> None:
        self.printer.typed(user, text)

    def stage(self, title: str) -> None:
        say(f"\n== {title}")

    def outage_next(self) -> None:
        self.prediction = self.engine.predict()
        say(
            f"\n== predicted outage {self.prediction.seconds:.0f}s (HC's waits as prep"
            " measured them at the sandbox's speed; dyno times assumed, at Heroku's nominal"
            " values; see plan show)"
        )

    def clicked(self, user: str, label: str) -> None:
        self.printer.clicked(user, label, "on the swap's card")

    def reacted(self, step: str, message: Message) -> None:
        """pause is approved with the request's Approve button, delete-old with a reaction."""
        time.sleep(0.3)
        if step == "pause":
            self.printer.clicked(APPROVER, "Approve", f"on the approval request for {step}")
            _, reply = self.local.click(self.driver, APPROVER, message, APPROVE_ACTION)
            if "approved" not in said(reply):
                raise ScriptStopped(f"Approve {step}: {said(reply)[:2000]}")
            return
        self.printer.reacted(APPROVER, f"the approval request for {step}")
        super().reacted(step, message)

    def after(self, step: runbook.Step) -> None:
        if step.name == runbook.OUTAGE_START:
            following = runbook.CUTOVER[1].name
            shown = self.card(showing=f"Run next: {following}")
            self.printer.card("the swap's card, the outage begun", shown)

    def before(self, step: runbook.Step) -> None:
        if step.name == self.rollback_at:
            say(f"\n== rehearsing a rollback at {self.rollback_at}")
            raise _RolledBack(self.ask("rollback"))


def _rehearse(
    local: LocalSlack,
    sandbox: Sandbox,
    url: str,
    scenario: scenarios.Scenario,
    args: DemoOptions,
) -> int:
    printer = ChannelPrinter(local.slack)
    local.slack.on_change(printer)
    driver = local.driver()
    Colleague(local, driver, AUTHORIZER, narrate=lambda text: say(f"{printer.clock()} {text}"))
    engine = build_engine(load_settings(local.env))
    swap = DemoSwap(
        local,
        driver,
        printer,
        engine,
        swap_id="acme-demo",
        mappings=format_mappings(NEW_FIELDS),
        role=scenarios.role_names(url.rsplit("/", 1)[-1])[0],
        app=scenario.app,
        timeout=300,
        by_button=True,
    )
    swap.rollback_at = args.rollback_at
    say("\n== the channel, as Slack shows it (the app keeps writing)")
    swap.ask("status")
    try:
        swap.run()
    except _RolledBack as rolled:
        _settle(local)
        return 0 if " done" in rolled.answer else _stopped("rollback", rolled.answer)
    except ScriptStopped as exc:
        return _stopped("the swap stopped", str(exc))
    _settle(local)
    printer.card("the swap's card at the end", swap.card(saying="*done*"))
    plan = engine.current_plan()
    _report(engine, plan)
    from swapbot.swap.predict import beside

    say("\n   predicted beside what the sandbox took (at its speed):")
    for row in beside(swap.prediction, engine.store.checkpoints(plan.swap_id)):
        actual = f"{row['actual']:.1f}s" if row["actual"] is not None else "-"
        say(
            f"   {row['step']:12} predicted {row['predicted']:7.1f}s ({row['source']})  took {actual}"
        )
    if local.slack.violations:
        say("\n   Slack would have refused or warned about:")
        for problem in local.slack.violations:
            say(f"   - {problem}")
        return 1
    return 0


def _settle(local: LocalSlack, timeout: float = 20.0) -> None:
    """Let the notifier tell the channel the last milestones before the report."""
    with contextlib.suppress(AssertionError):
        local.slack.wait_for(
            lambda: any(
                end in local.slack.transcript(CHANNEL) for end in ("swap done", "rollback done")
            ),
            timeout=timeout,
            interval=0.2,
        )


def _stopped(what: str, answer: str) -> int:
    say(f"{what}: {answer.splitlines()[0] if answer else ''}")
    return 1


def _report(engine: Engine, plan: Plan) -> None:
    from swapbot.swap import report

    say("\n== report (also posted in the swap's thread; `/hcswap report` shows it again)")
    for line in report.render(report.report(engine.store, plan.swap_id)).splitlines():
        say(f"   {line}")
    say("   (real seconds in the sandbox at its speed; bench/cutover.py measures the split)")
