"""`swapbot demo`: start the sandbox with the demo scenario and show what the bot sees through
its own Heroku clients, then stand up `hc2` and watch its first load, the prep half of a swap.

Until the swap engine exists this drives the clients directly; the engine will take over the
same steps with checks, approvals and a resumable state.
"""

from __future__ import annotations

import argparse
import time
import uuid

import psycopg
import requests
from psycopg import sql

from swapbot.heroku import ConnectClient, ExportDocument, PlatformClient, RetryPolicy
from swapbot.sandbox import scenarios
from swapbot.sandbox.server import Sandbox
from swapbot.sandbox.writeload import WriteLoad

DEMO_TOKEN = "demo-" + uuid.uuid4().hex  # the sandbox accepts any non-empty bearer token
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


def show_connection(connect: ConnectClient, ref) -> None:
    c = connect.get_connection(ref)
    say(
        f"  {c.resource_name}: state {c.state}, schema {c.schema_name}, api {(c.sf_info or {}).get('api_version')}"
    )
    say(
        f"    {'mapping':14} {'access':10} {'state':14} {'db':>7} {'sf':>7} {'pending':>7} {'errors':>6}"
    )
    for m in c.mappings:
        n = m.counts
        say(
            f"    {m.object_name:14} {m.config.access:10} {m.state:14} {n.db:>7} {n.sf:>7} {n.pending:>7} {n.errors:>6}"
        )


def wait_for(what: str, check, timeout: float = 60.0, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise SystemExit(f"demo: timed out waiting for {what}")


def run_demo(args: argparse.Namespace) -> int:
    from swapbot.sandbox.cli import _options

    scenario = scenarios.get("demo")
    say(f"== preparing database {args.database} with scenario '{scenario.name}'")
    url = recreate_database(args.admin_url, args.database)
    started = time.monotonic()
    scenarios.load(url, scenario)
    say(
        f"   loaded {sum(o.records for o in scenario.objects):,} Salesforce records in {time.monotonic() - started:.1f}s"
    )
    options = _options(args)
    with Sandbox(url, options) as sandbox:
        load = (
            WriteLoad(url, args.write_load, seed=args.seed).start() if args.write_load > 0 else None
        )
        try:
            _walk(sandbox, scenario, args)
        finally:
            if load:
                load.stop()
                say(f"\n   app write load: {load.writes} writes, {load.errors} failed")
    return 0


def _walk(sandbox: Sandbox, scenario: scenarios.Scenario, args: argparse.Namespace) -> None:
    retry = RetryPolicy(max_attempts=6)
    connect = ConnectClient(DEMO_TOKEN, sandbox.central_url, retry=retry)
    platform = PlatformClient(DEMO_TOKEN, sandbox.platform_url, retry=retry)
    app = scenario.app
    say(
        f"== sandbox at {sandbox.base_url} (speed x{sandbox.options.speed:g}, faults {sandbox.options.faults:g})"
    )

    say(f"\n== what the bot sees of {app} through the Platform API")
    info = platform.app(app)
    say(f"  app {info.name}: maintenance {'on' if info.maintenance else 'off'}")
    say(
        "  formation: "
        + ", ".join(f"{f.type}={f.quantity}:{f.size}" for f in platform.formation(app))
    )
    for a in platform.list_addons(app):
        say(f"  add-on {a.name:30} {a.plan_name or '':32} {a.state}")

    say("\n== Heroku Connect: discovery (links the token's user first, as the CLI does)")
    hc1 = connect.find_connection(app, "hc1")
    show_connection(connect, hc1)
    say(f"  write errors (24h): {connect.errors(hc1).count}")

    say(
        "\n== prep: create hc2, point it at a new schema, authorize, import two mappings with new fields"
    )
    plan = next(a.plan_name for a in platform.list_addons(app) if a.name == "hc1")
    platform.create_addon(app, plan=plan, name="hc2")
    wait_for("hc2 to provision", lambda: platform.get_addon(app, "hc2").state == "provisioned")
    hc2 = connect.find_connection(app, "hc2")
    connect.configure(hc2, db_key="DATABASE_URL", schema_name="salesforce2")
    say(f"  hc2 configured: {connect.get_connection(hc2).state}")
    link = connect.authorize_url(hc2, environment="production")
    say(
        "  a person opens the Salesforce authorization link and logs in as the integration user ..."
    )
    requests.get(
        link, params={"username": "integration-hc2@acme.example"}, timeout=10
    ).raise_for_status()
    wait_for("hc2 to be authorized", lambda: connect.get_connection(hc2).state == "IDLE")
    exported = connect.export_config(hc1)
    doc: ExportDocument = exported.filtered(list(NEW_FIELDS)).with_added_fields(NEW_FIELDS)
    connect.import_config(hc2, doc)
    say("  imported: " + "; ".join(f"{o} + {', '.join(fs)}" for o, fs in NEW_FIELDS.items()))

    say(f"\n== watching hc2's initial load for up to {args.seconds:g}s")
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        c = connect.get_connection(hc2)
        line = ", ".join(
            f"{m.object_name} {m.state} {m.counts.db}/{m.counts.sf}" for m in c.mappings
        )
        say(f"  {c.state:22} {line or '(import running)'}")
        if c.mappings and all(m.state == "DATA_SYNCED" for m in c.mappings):
            break
        time.sleep(1.0)
    say("")
    show_connection(connect, hc2)
    show_connection(connect, hc1)
    say("\n(the swap engine and Slack front end will run the cutover from here)")
