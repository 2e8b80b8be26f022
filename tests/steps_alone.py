"""Steps run one by one on a `Run` built without the engine, Redis or the journal: the plan, the
live system (the sandbox over HTTP, the real database) and records kept in a dict
(`DictRecords`). What a step starts from is set up directly: records written into the dict, the
sandbox moved through its own APIs (the Platform and Connect APIs, `/_sandbox` for what a person
does), never by running the earlier steps or the engine.

Shared by tests/test_steps_prep.py and tests/test_steps_cutover.py.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import requests

from swapbot.heroku import (
    ConnectClient,
    Connection,
    ConnectionRef,
    PlatformClient,
    RetryPolicy,
)
from swapbot.heroku._models import SYNCED_STATES
from swapbot.heroku.probed import ProbeResults
from swapbot.sandbox import scenarios
from swapbot.sandbox.hcschema import hc_session
from swapbot.sandbox.scenarios import app_database_url, role_names
from swapbot.swap import steps as runbook
from swapbot.swap.events import Emitter, Event
from swapbot.swap.live import Live
from swapbot.swap.run import DictRecords, Run
from swapbot.swap.steps import Check
from swapbot.swap.store import Lease
from swapbot.testing.services import NEXT, TOKEN, wait_until
from swapbot.testing.swaps import OPERATOR, demo_plan
from tests.db_fixture import catalog_definitions, normalize_views

LEASE = Lease(
    resource="swap:acme-test", swap_id="acme-test", runner="alone", fence=1, token="alone",
    ttl_ms=10_000, acquired_at="2026-12-07T00:00:00Z", lock_key="alone",
)  # fmt: skip
RUNNING = ("IDLE", "POLLING_DB_CHANGES")
HC2_STAGES = ("created", "configured", "authorized", "imported", "synced")


def with_objects(sandbox_factory: Any, db_url: str, db_name: str) -> Alone:
    """Where the object steps start: the small world with the demo's objects Heroku Connect
    does not manage (an index, views, functions, a trigger, a foreign key, a materialized view,
    grants), hc2 loaded, and views stored as PostgreSQL reads them back (so that a catalog
    taken before a round trip compares equal to one taken after it)."""
    world = scenarios.small().model_copy(
        update={"name": "small-objects", "unmanaged_objects": True}
    )
    alone = Alone(sandbox_factory(world), db_url, db_name)
    alone.add_hc2("synced")
    with psycopg.connect(db_url, autocommit=True) as conn:
        normalize_views(conn)
    return alone


def untested(phase: tuple[runbook.Step, ...], namespace: dict[str, Any]) -> list[str]:
    """The steps of a phase with no test named after them (`test_<step>_...`) in a module."""
    tests = [name for name in namespace if name.startswith("test_")]
    return [
        s.name
        for s in phase
        if not any(t.startswith(f"test_{s.name.replace('-', '_')}_") for t in tests)
    ]


class Alone:
    """One plan on one sandbox: makes a `Run` for any step, all sharing one `DictRecords` and
    one list of events, and reads the live system the steps act on."""

    def __init__(self, sandbox: Any, db_url: str, db_name: str, **plan_changes: Any):
        retry = RetryPolicy(
            max_attempts=8, base_delay=0.01, max_delay=0.05,
            sleep=lambda s: time.sleep(min(s, 0.05)),
        )  # fmt: skip
        self.sandbox, self.db_url, self.db_name = sandbox, db_url, db_name
        self.connect = ConnectClient(TOKEN, sandbox.central_url, retry=retry, timeout=(2, 5))
        self.platform = PlatformClient(TOKEN, sandbox.platform_url, retry=retry, timeout=(2, 5))
        self.plan = demo_plan(db_name, **plan_changes)
        self.confirmed: set[str] = set()  # what a person confirmed (`confirm <word>`)
        self.records = DictRecords(lambda what: what in self.confirmed)
        self.events: list[Event] = []
        self.emitter = Emitter(self.events.append)
        self._refs: dict[str, ConnectionRef] = {}
        # What `swapbot probe` found, as the engine would pass it to the live system.
        self.probe: ProbeResults | None = None

    # -- runs ---------------------------------------------------------------------------------
    def run(self, step: str) -> Run:
        live = Live(
            self.plan, self.connect, self.platform, self.db_url, self.emitter, probe=self.probe
        )
        return Run(self.plan, live, LEASE, OPERATOR, step, records=self.records, emit=self._emit)

    def _emit(self, kind: Any, swap_id: str, *, step=None, actor=None, message="", **data) -> Event:
        event = Event(
            kind=kind, swap_id=swap_id, step=step, actor=actor, message=message, data=data
        )
        return self.emitter.emit(event)

    def check(self, step: str) -> Check:
        return runbook.get(step).check(self.run(step))

    def act(self, step: str) -> None:
        act = runbook.get(step).act
        assert act is not None, f"{step} has no act"
        act(self.run(step))

    def undo(self, step: str) -> None:
        undo = runbook.get(step).undo
        assert undo is not None, f"{step} has no undo"
        undo(self.run(step))

    def wait(self, step: str, timeout: float = 20.0) -> Check:
        return wait_until(lambda: self.check(step), timeout=timeout, what=f"{step}'s check")

    def do(self, step: str, timeout: float = 20.0) -> Check:
        """What the engine does with a step, without it: check, act (again on every look for a
        step that repeats its act), then wait for the check to pass."""
        s = runbook.get(step)
        seen = self.check(step)
        assert not seen, f"{step} is done before it ran: {seen.seen}"
        self.act(step)
        if not s.repeat_act:
            return self.wait(step, timeout)

        def again() -> Check:
            done = self.check(step)
            if not done:
                self.act(step)
            return done

        return wait_until(again, timeout=timeout, what=f"{step} to be done")

    def asked(self, step: str) -> list[Event]:
        """What the step asked a person to do."""
        return [e for e in self.events if e.kind == "step.waiting" and e.step == step]

    def remember(self, **values: Any) -> None:
        """Records an earlier step would have left (what the engine keeps in Redis)."""
        self.records.values.update(values)

    # -- the live system ------------------------------------------------------------------------
    def ref(self, addon: str) -> ConnectionRef:
        if addon not in self._refs:
            self._refs[addon] = self.connect.find_connection(self.plan.app, addon)
        return self._refs[addon]

    def hc(self, addon: str) -> Connection:
        return self.connect.get_connection(self.ref(addon))

    def state(self, addon: str) -> str:
        return self.hc(addon).state or ""

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run SQL as the database's owner; the rows it returns, if any."""
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def as_hc(self, sql: str, params: Any = None) -> None:
        """Write as Heroku Connect itself: nothing lands in a trigger log."""
        with psycopg.connect(self.db_url, autocommit=True) as conn, hc_session(conn):
            conn.execute(sql, params)

    def catalog(self) -> dict[str, str]:
        """Every user object's definition (tests/db_fixture.py): equal snapshots, same catalog."""
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            return catalog_definitions(conn)

    def schemas(self) -> set[str]:
        return {r[0] for r in self.query("SELECT nspname FROM pg_namespace")}

    def columns(self, schema: str, table: str) -> set[str]:
        rows = self.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            (schema, table),
        )
        return {r[0] for r in rows}

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT count(*) FROM {table}")[0][0])

    def app_session(self) -> psycopg.Connection:
        """A fresh session as the app's role: it gets the role's search_path at login."""
        return psycopg.connect(
            app_database_url(self.db_url, role_names(self.db_name)[0]), autocommit=True
        )

    def reaches(self, table: str) -> str:
        """The schema the app's bare table name reaches in a fresh session of its role."""
        with self.app_session() as app:
            row = app.execute(
                "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = to_regclass(%s)",
                (table,),
            ).fetchone()
        return row[0] if row else ""

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The sandbox's `/_sandbox` controls: what a person does in a browser or the dashboard."""
        resp = requests.request(
            method, f"{self.sandbox.base_url}/_sandbox{path}", json=body, timeout=5
        )
        assert resp.ok, (method, path, resp.status_code, resp.text)
        return resp.json()

    def requests_to(self, method: str, path_part: str) -> list[dict[str, Any]]:
        """The API calls the sandbox answered (its request log) whose path contains `path_part`."""
        log = self.admin("GET", "/requests")
        return [r for r in log if r["method"] == method and path_part in r["path"]]

    def wait_state(self, addon: str, states: tuple[str, ...], timeout: float = 20.0) -> str:
        return wait_until(
            lambda: (s := self.state(addon)) in states and s,
            timeout=timeout,
            what=f"{addon} to be {' or '.join(states)}",
        )

    def pause(self, addon: str) -> None:
        self.connect.pause(self.ref(addon))
        self.wait_state(addon, ("PAUSED",))

    def resume(self, addon: str) -> None:
        self.connect.resume(self.ref(addon))

    # -- starting points, set up directly -------------------------------------------------------
    def export(self) -> dict[str, Any]:
        """hc1's configuration, stored as the export step stores it."""
        doc = self.connect.export_config(self.ref(self.plan.old_addon))
        self.remember(export=doc.payload())
        return doc.payload()

    def add_hc2(self, upto: str = "synced", *, with_fields: bool = True) -> None:
        """hc2 as far as `upto`: created, configured (on the new schema), authorized, imported
        (hc1's moved mappings, with the plan's new fields unless `with_fields` is false), synced
        (their loads done)."""
        p, stages = self.plan, HC2_STAGES[: HC2_STAGES.index(upto) + 1]
        self.platform.create_addon(p.app, plan="herokuconnect:enterprise", name=p.new_addon)
        wait_until(
            lambda: self.platform.get_addon(p.app, p.new_addon).state == "provisioned",
            what="hc2 provisioned",
        )
        ref = self.ref(p.new_addon)
        if "configured" in stages:
            self.connect.configure(ref, db_key="DATABASE_URL", schema_name=p.new_schema)
        if "authorized" in stages:
            requests.get(
                self.connect.authorize_url(ref, next_url=NEXT), timeout=5
            ).raise_for_status()
            self.wait_state(p.new_addon, RUNNING)
        if "imported" in stages:
            self.import_to_hc2(with_fields=with_fields)
        if "synced" in stages:
            wait_until(self._hc2_synced, what="hc2's mappings loaded")

    def import_to_hc2(self, *, with_fields: bool = True) -> None:
        """hc1's moved mappings imported into hc2 (their loads start)."""
        p = self.plan
        doc = self.connect.export_config(self.ref(p.old_addon)).filtered(p.objects)
        self.connect.import_config(
            self.ref(p.new_addon), doc.with_added_fields(p.mappings) if with_fields else doc
        )
        wait_until(
            lambda: len(self.hc(p.new_addon).mappings) == len(p.objects), what="hc2's mappings"
        )

    def grant_new_schema(self) -> None:
        """What prepare-objects carries for the app's role: its rights on the new schema (a
        schema it may not use is skipped when names resolve)."""
        role, new = role_names(self.db_name)[0], self.plan.new_schema
        for what in ("SCHEMA", "ALL TABLES IN SCHEMA", "ALL SEQUENCES IN SCHEMA"):
            self.query(
                f'GRANT {"USAGE" if what == "SCHEMA" else "ALL"} ON {what} {new} TO "{role}"'
            )

    def _hc2_synced(self) -> bool:
        c = self.hc(self.plan.new_addon)
        states = {m.object_name: m.state for m in c.mappings}
        return c.state in RUNNING and all(states.get(o) in SYNCED_STATES for o in self.plan.objects)
