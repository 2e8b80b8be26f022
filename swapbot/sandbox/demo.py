"""`swapbot demo`: the whole swap rehearsed against the sandbox's demo scenario, in the terminal.

It starts the sandbox on a fresh database with the app writing all along, then drives the
swap engine — the same code the Slack front end uses — through prep, a second person approving
by name, the cutover and verification, and prints the final report. People's parts (opening the
Salesforce link, confirming settings, approving) are played by scripted users and shown as such.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid

import psycopg
import requests
from psycopg import sql

from swapbot.config import Settings, redis_client
from swapbot.heroku import ConnectClient, PlatformClient, RetryPolicy
from swapbot.sandbox import scenarios
from swapbot.sandbox.server import Sandbox
from swapbot.sandbox.writeload import WriteLoad
from swapbot.swap import steps as runbook
from swapbot.swap.engine import Engine
from swapbot.swap.events import Emitter, Event
from swapbot.swap.live import Live
from swapbot.swap.plan import Plan, format_mappings
from swapbot.swap.store import Store

DEMO_TOKEN = "demo-" + uuid.uuid4().hex  # the sandbox accepts any non-empty bearer token
OPERATOR, APPROVER, AUTHORIZER = "U0OPERATOR", "U0APPROVER", "U0AUTHORIZER"
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


class Channel:
    """Prints the engine's events the way the swap's channel thread will show them."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, event: Event) -> None:
        t = f"{time.monotonic() - self.started:6.1f}s"
        step = f"[{event.step}] " if event.step else ""
        if event.kind == "call":
            say(f"{t}   · {event.message}")
        elif event.kind == "load.progress":
            rows = ", ".join(
                f"{o} {p['db']}/{p['sf']}" for o, p in event.data.get("progress", {}).items()
            )
            say(f"{t}   … {rows or event.message}")
        elif event.kind in ("step.started",):
            say(f"{t} ▶ {step}{event.message}")
        elif event.kind in ("step.done", "step.skipped", "step.undone"):
            mark = {"step.done": "✔", "step.skipped": "✔ already done:", "step.undone": "↺"}[
                event.kind
            ]
            say(f"{t} {mark} {step}{event.message}")
        elif event.kind == "step.failed":
            say(f"{t} ✖ {step}{event.message}")
        elif event.kind == "step.waiting" and event.data.get("person"):
            say(f"{t} ? {step}asks {event.data['person']}: {event.message}")
        elif event.kind.startswith(("approval.", "outage.", "rollback.")) or event.kind == "notice":
            who = f"{event.actor}: " if event.actor else ""
            say(f"{t} ★ {event.kind} {step}{who}{event.message}")


class People:
    """The other people in the channel: they do what the bot asks, a moment later."""

    def __init__(self, engine: Engine):
        self.engine = engine
        engine.emitter.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.kind == "step.waiting" and event.data.get("person"):
            threading.Thread(target=self._act, args=(event,), daemon=True).start()
        elif event.kind == "approval.requested":
            threading.Thread(target=self._approve, args=(event,), daemon=True).start()

    def _act(self, event: Event) -> None:
        time.sleep(0.5)
        if event.step == "authorize" and event.data.get("link"):
            say(
                f"         ({AUTHORIZER} opens the link and logs in to Salesforce as the integration user)"
            )
            requests.get(
                event.data["link"], params={"username": "integration-hc2@acme.example"}, timeout=10
            )
        elif event.step == "settings":
            say(
                f"         ({AUTHORIZER} checks hc1's notification settings on hc2 in the dashboard)"
            )
            self.engine.confirm("settings", AUTHORIZER)
        elif event.step == "prepare-objects":
            self.engine.confirm("objects", AUTHORIZER)

    def _approve(self, event: Event) -> None:
        time.sleep(0.5)
        say(f"         ({APPROVER} reacts to the approval request for {event.step})")
        self.engine.approve(event.data["request_id"], APPROVER)


def build_engine(sandbox: Sandbox, database_url: str, emitter: Emitter, speed: float) -> Engine:
    retry = RetryPolicy(max_attempts=8, base_delay=0.05, max_delay=0.5)
    connect = ConnectClient(DEMO_TOKEN, sandbox.central_url, retry=retry)
    platform = PlatformClient(DEMO_TOKEN, sandbox.platform_url, retry=retry)
    settings = Settings(swapbot_redis_prefix=f"swapbot-demo:{uuid.uuid4().hex[:8]}:")
    store = Store(redis_client(settings), settings.swapbot_redis_prefix)

    def live(plan: Plan, events: Emitter, dry_run: bool) -> Live:
        return Live(plan, connect, platform, database_url, events, dry_run=dry_run)

    return Engine(
        store,
        live,
        emitter=emitter,
        poll_interval=0.25,
        in_flight_grace=2.0,
        approvers={APPROVER},
        timeout_scale=max(0.05, 2.0 / speed),
    )


def run_demo(args: argparse.Namespace) -> int:
    from swapbot.sandbox.cli import _options

    scenario = scenarios.get("demo")
    say(f"== preparing database {args.database} with scenario '{scenario.name}'")
    url = recreate_database(args.admin_url, args.database)
    started = time.monotonic()
    scenarios.load(url, scenario)
    say(
        f"   {sum(o.records for o in scenario.objects):,} Salesforce records loaded in {time.monotonic() - started:.1f}s"
    )
    if not args.assume:
        # The demo's old schema keeps views on the moved tables; with the variant where deleting
        # a mapping drops its table, the sandbox refuses that delete (see docs/runbook.md).
        args.assume = [("delete_drops_table", False)]
    say("   assuming: " + ", ".join(f"{k}={v}" for k, v in args.assume))
    with Sandbox(url, _options(args)) as sandbox:
        load = (
            WriteLoad(url, args.write_load, seed=args.seed).start() if args.write_load > 0 else None
        )
        try:
            return _rehearse(sandbox, url, scenario, args, load)
        finally:
            if load:
                load.stop()
                say(f"\n   the app made {load.writes} writes ({load.errors} failed)")


def _rehearse(
    sandbox: Sandbox, url: str, scenario: scenarios.Scenario, args, load: WriteLoad | None
) -> int:
    channel = Channel()
    emitter = Emitter(channel)
    engine = build_engine(sandbox, url, emitter, sandbox.options.speed)
    People(engine)
    dbname = url.rsplit("/", 1)[-1]
    plan = Plan(
        swap_id="acme-demo",
        app=scenario.app,
        old_addon="hc1",
        old_schema="salesforce",
        new_addon="hc2",
        new_schema="salesforce2",
        mappings=NEW_FIELDS,
        roles=[scenarios.role_names(dbname)[0]],
        process_types=["web", "worker", "clock"],
        authorizer=AUTHORIZER,
        created_by=OPERATOR,
    )
    say(
        f"== sandbox at {sandbox.base_url} (speed x{sandbox.options.speed:g}); the app writes all along"
    )
    engine.save_plan(plan, OPERATOR)
    say(
        f"== plan {plan.swap_id}: move {format_mappings(plan.mappings)} from hc1/salesforce to hc2/salesforce2"
    )

    say("\n== prep (the app keeps running)")
    for _ in range(len(runbook.PREP)):
        out = engine.next(OPERATOR)
        if not out.ok:
            say(f"prep stopped at {out.step}: {out.status}: {out.message}")
            return 1
    say("\n== approvals asked ahead of the outage, so a ready approver adds no time to it")
    for step in ("pause", "delete-old"):
        engine.request_approval(step, OPERATOR)
    time.sleep(1.5)

    prediction = engine.predict()
    say(f"\n== predicted outage {prediction.seconds:.0f}s (nominal Heroku times; see plan show)")
    stop_at = args.rollback_at
    say("\n== cutover (the outage)")
    for step in runbook.CUTOVER:
        if stop_at and step.name == stop_at:
            say(f"\n== rehearsing a rollback at {stop_at}")
            out = engine.rollback(OPERATOR)
            say(f"rollback: {out.status}: {out.message}")
            return 0 if out.ok else 1
        out = engine.run_step(
            step.name, OPERATOR, app=plan.app if step.name == runbook.OUTAGE_START else None
        )
        if step.name == runbook.OUTAGE_START and load is not None:
            load.stop()  # the app's dynos are down: its writes stop
        if not out.ok:
            say(f"cutover stopped at {step.name}: {out.status}: {out.message}")
            return 1
    _report(engine, plan)
    from swapbot.swap.predict import beside

    say("\n   predicted (nominal) beside what the sandbox took (at its speed):")
    for row in beside(prediction, engine.store.checkpoints(plan.swap_id)):
        actual = f"{row['actual']:.1f}s" if row["actual"] is not None else "-"
        say(
            f"   {row['step']:12} predicted {row['predicted']:7.1f}s ({row['source']})  took {actual}"
        )
    return 0


def _report(engine: Engine, plan: Plan) -> None:
    checkpoints = engine.store.checkpoints(plan.swap_id)
    say("\n== report")
    outage = waited = 0.0
    for step in runbook.CUTOVER:
        cp = checkpoints.get(step.name)
        detail = (cp.detail or {}) if cp else {}
        seconds, wait = float(detail.get("seconds", 0.0)), float(detail.get("waited", 0.0))
        if step.in_outage:
            outage, waited = outage + seconds, waited + wait
        say(f"   {step.name:18} {cp.status if cp else '-':8} {seconds:6.1f}s  waiting {wait:5.1f}s")
    say(
        f"   outage steps {outage:.1f}s: waiting on Heroku Connect and dynos {waited:.1f}s, the bot's own {outage - waited:.1f}s"
    )
    say("   (real seconds in the sandbox at its speed; bench/cutover.py measures the split)")
