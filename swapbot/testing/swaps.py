"""Test support for the swap engine: an engine on the sandbox and real Redis, and a scripted
'person' who does what the bot asks (opens the authorization link, confirms settings)."""

from __future__ import annotations

import threading
import time

import psycopg
import redis
import requests
from psycopg import sql

from swapbot.heroku import ConnectClient, PlatformClient, RetryPolicy
from swapbot.sandbox.scenarios import role_names
from swapbot.swap import steps as runbook
from swapbot.swap.engine import Engine
from swapbot.swap.events import Emitter, Event
from swapbot.swap.journal import Journal
from swapbot.swap.live import Live
from swapbot.swap.plan import Plan
from swapbot.swap.store import Store
from swapbot.testing.services import REDIS_TEST_URL, TOKEN

OPERATOR, APPROVER, PERSON = "U0OPERATOR", "U0APPROVER", "U0PERSON"


def run_step_job(step: str, actor: str) -> dict:
    """A job for the worker tests: run one step on an engine built from the settings, as
    `swapbot worker` builds it."""
    from swapbot import config
    from swapbot.runtime import build_engine

    outcome = build_engine(config.load_settings()).run_step(step, actor)
    return {"step": outcome.step, "status": outcome.status, "message": outcome.message}


RUN_STEP = "swapbot.testing.swaps.run_step_job"


def make_engine(sandbox, db_url: str, redis_prefix: str, **options) -> Engine:
    retry = RetryPolicy(
        max_attempts=8, base_delay=0.01, max_delay=0.05, sleep=lambda s: time.sleep(min(s, 0.05))
    )
    connect = ConnectClient(TOKEN, sandbox.central_url, retry=retry, timeout=(2, 5))
    platform = PlatformClient(TOKEN, sandbox.platform_url, retry=retry, timeout=(2, 5))
    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)

    def live_factory(plan: Plan, emitter: Emitter, dry_run: bool) -> Live:
        return Live(plan, connect, platform, db_url, emitter, dry_run=dry_run)

    defaults = {
        "poll_interval": 0.05,
        "in_flight_grace": 0.5,
        "approvers": {APPROVER},
        "lease_ttl": 10.0,
        "timeout_scale": 0.02,
        "clients": (connect, platform),
        "journal": Journal(db_url),
    }
    return Engine(store, live_factory, **{**defaults, **options})


def demo_plan(db_name: str, **changes) -> Plan:
    fields = {
        "swap_id": "acme-test",
        "app": "acme-prod",
        "old_addon": "hc1",
        "old_schema": "salesforce",
        "new_addon": "hc2",
        "new_schema": "salesforce2",
        "mappings": {"Account": ["Rating"], "Contact": ["Phone"]},
        "roles": [role_names(db_name)[0]],
        "process_types": ["web", "worker", "clock"],
        "authorizer": PERSON,
        "created_by": OPERATOR,
        "quiet_seconds": 0.5,  # the app's writers here write several times a second
    }
    return Plan(**{**fields, **changes})


FIELDS = {  # WriteLoad's and the sandbox apps' (table, column) -> the Salesforce object and field
    ("account", "billingcity"): ("Account", "BillingCity"),
    ("contact", "lastname"): ("Contact", "LastName"),
    ("case", "subject"): ("Case", "Subject"),
}


def org_misses(db, last: dict[tuple[str, str, str], str]) -> list[tuple]:
    """Of the app's last writes ((table, column, sfid) -> value), those the simulated Salesforce
    org does not hold: each as (object, sfid, field, value written, value in the org)."""
    missing = []
    for (table, column, sfid), value in last.items():
        obj, field = FIELDS[(table, column)]
        row = db.execute(
            "SELECT data ->> %s FROM _hcsandbox.sf_record WHERE object_name = %s AND sfid = %s",
            (field, obj, sfid),
        ).fetchone()
        if row is None or row[0] != value:
            missing.append((obj, sfid, field, value, row[0] if row else None))
    return missing


def unsent_writes(db, schema: str = "salesforce") -> int:
    """App writes the schema's trigger log holds that Heroku Connect has not sent yet."""
    return db.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE state IN ('NEW', 'PENDING')").format(
            sql.Identifier(schema, "_trigger_log")
        )
    ).fetchone()[0]


def archived_writes(db, *states: str, schema: str = "salesforce") -> int:
    """App writes Heroku Connect has handled and archived, in one of `states` (SUCCESS, ...)."""
    return db.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE state = ANY(%s)").format(
            sql.Identifier(schema, "_trigger_log_archive")
        ),
        (list(states),),
    ).fetchone()[0]


def role_settings(conn) -> list[tuple]:
    """Each role's settings in this database (its search_path): what the switch changes."""
    return conn.execute(
        "SELECT setrole, setconfig FROM pg_db_role_setting WHERE setdatabase = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1"
    ).fetchall()


def run_prep(engine: Engine, sandbox) -> None:
    """Every prep step, one `next` at a time, with a person doing what the bot asks."""
    from swapbot.swap import steps

    person = Person(engine, sandbox)
    try:
        for _ in steps.PREP:
            out = engine.next(OPERATOR)
            assert out.ok, (out.step, out.message)
    finally:
        person.stop()


class Person:
    """Does what the bot asks a person to do, as soon as it is asked (in a thread)."""

    def __init__(self, engine: Engine, sandbox):
        self.engine, self.sandbox = engine, sandbox
        self.asked: list[Event] = []
        self._unsubscribe = engine.emitter.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.kind != "step.waiting" or event.data.get("person") is None:
            return
        self.asked.append(event)
        threading.Thread(target=self._act, args=(event,), daemon=True).start()

    def _act(self, event: Event) -> None:
        if event.step == "authorize" and event.data.get("link"):
            requests.get(
                event.data["link"], params={"username": "integration-hc2@acme.example"}, timeout=5
            )
        elif runbook.get(event.step).confirms:
            self.engine.confirm(runbook.get(event.step).confirms, PERSON)
        elif event.step == "abort":
            for obj in self.engine.current_plan().mappings:
                requests.post(
                    f"{self.sandbox.base_url}/_sandbox/connections/hc2/mappings/{obj}/abort",
                    timeout=5,
                )

    def stop(self) -> None:
        self._unsubscribe()


# What a whole `swap_state` lists of the catalog, the sandbox's own schema aside: the schemas
# and relations with their grants, and the functions.
_OURS = sql.SQL(
    "n.nspname NOT LIKE 'pg\\_%%' AND n.nspname NOT IN ('information_schema', '_hcsandbox')"
)
_CATALOG = {
    "schemas": "SELECT n.nspname, n.nspacl::text FROM pg_namespace n WHERE {} ORDER BY 1",
    "relations": "SELECT n.nspname, c.relname, c.relkind, c.relacl::text FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {} ORDER BY 1, 2",
    "functions": "SELECT p.oid::regprocedure::text FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {} ORDER BY 1",
}


def swap_state(db_url: str, db_name: str, sandbox, *, whole: bool = False) -> dict:
    """What a rollback must give back: the role settings (search_path), the old schema's
    objects and their grants, what the app's role may do in the new schema, hc1's connection
    and mappings, the formation and maintenance. A plain rollback keeps hc2; with `whole`
    (after `rollback --remove-addon`), also the app's add-ons, the connections Heroku Connect
    lists, the config var names, and every schema with every relation, function and grant in
    it (the sandbox's own schema aside)."""
    from swapbot.heroku import PlatformClient
    from swapbot.testing.services import wait_until

    connect = ConnectClient(TOKEN, sandbox.central_url)
    platform = PlatformClient(TOKEN, sandbox.platform_url)

    def hc1():
        c = connect.get_connection(connect.find_connection("acme-prod", "hc1"))
        # IDLE and POLLING_DB_CHANGES are one running connection seen at two moments
        state = "PAUSED" if c.state == "PAUSED" else "running"
        return state, sorted((m.object_name, m.state) for m in c.mappings)

    seen = wait_until(lambda: (lambda c: c if c[0] == "running" else None)(hc1()), what="hc1")
    role = role_names(db_name)[0]
    with psycopg.connect(db_url) as conn:
        settings = role_settings(conn)
        old_objects = conn.execute(
            "SELECT c.relname, c.relkind, c.relacl::text FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'salesforce' ORDER BY 1"
        ).fetchall()
        new_schema_rights = conn.execute(
            "SELECT to_regnamespace('salesforce2') IS NOT NULL AND "
            "has_schema_privilege(%s, 'salesforce2', 'USAGE')",
            (role,),
        ).fetchone()[0]
    state = {
        "role_settings": settings,
        "old_schema": old_objects,
        "app_role_uses_new_schema": new_schema_rights,
        "hc1": seen,
        "formation": {f.type: f.quantity for f in platform.formation("acme-prod")},
        "maintenance": platform.app("acme-prod").maintenance,
    }
    if not whole:
        return state
    with psycopg.connect(db_url) as conn:
        catalog = {
            what: conn.execute(sql.SQL(query).format(_OURS)).fetchall()
            for what, query in _CATALOG.items()
        }
    return {
        **state,
        "addons": sorted(
            (a.name, a.service_name, a.state) for a in platform.list_addons("acme-prod")
        ),
        "connections": sorted(r.resource_name or "" for r in connect.discover("acme-prod")),
        "config_vars": sorted(platform.config_vars("acme-prod")),
        **catalog,
    }
