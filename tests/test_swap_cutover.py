"""The cutover through the engine: approvals, the outage gate, the switch, the point of no
return, and rollback — against the sandbox, real PostgreSQL and real Redis."""

from __future__ import annotations

import json

import psycopg
import pytest
import requests

from swapbot.commands import plan_show, render_plan, status
from swapbot.heroku import ConnectClient, PlatformClient
from swapbot.sandbox.scenarios import app_database_url, role_names
from swapbot.sandbox.writeload import WriteLoad
from swapbot.swap import report, steps
from swapbot.testing.services import TOKEN, wait_until
from swapbot.testing.swaps import (
    APPROVER,
    OPERATOR,
    Person,
    archived_writes,
    demo_plan,
    make_engine,
    role_settings,
    swap_state,
    unsent_writes,
)

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow

CUTOVER = [s.name for s in steps.CUTOVER]


@pytest.fixture
def prepped(sandbox_factory, db_url, db_name, redis_prefix):
    """A swap whose prep is done, with the app writing through its role all along."""
    sandbox = sandbox_factory("small", writer_latency_seconds=0.5, org_changes_per_second=1.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    person = Person(engine, sandbox)
    load = WriteLoad(db_url, per_second=20, seed=3).start()
    for _ in range(len(steps.PREP)):
        out = engine.next(OPERATOR)
        assert out.ok, (out.step, out.message)
    yield sandbox, engine, load
    load.stop()
    person.stop()


def approve_ahead(engine, step):
    requested = engine.request_approval(step, OPERATOR)
    assert requested.ok, requested.message
    granted = engine.approve(requested.data["request_id"], APPROVER)
    assert granted.ok, granted.message


def schema_of(session, name: str) -> str:
    """The schema an unqualified name reaches in this session."""
    return session.execute(
        "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = to_regclass(%s)", (name,)
    ).fetchone()[0]


def app_session(db_url, db_name):
    return psycopg.connect(app_database_url(db_url, role_names(db_name)[0]), autocommit=True)


def assert_app_is_back(platform):
    """The app's formation and maintenance mode are as before the outage."""
    formation = {f.type: f.quantity for f in platform.formation("acme-prod")}
    assert formation == {"web": 2, "worker": 1, "clock": 1}
    assert platform.app("acme-prod").maintenance is False


def test_full_cutover_moves_the_app_to_the_new_schema(prepped, db, db_url, db_name):
    sandbox, engine, load = prepped
    approve_ahead(engine, "pause")
    approve_ahead(engine, "delete-old")
    assert engine.run_step("stop-writes", OPERATOR).status == "refused"  # must name the app
    load.stop()  # the app's dynos go down: its writes stop (stop-writes waits for that)
    out = engine.run_step("stop-writes", OPERATOR, app="acme-prod")
    assert out.status == "done", out.message
    for name in CUTOVER[1:]:
        out = engine.run_step(name, OPERATOR)
        assert out.ok, (name, out.status, out.message)
    connect = ConnectClient(TOKEN, sandbox.central_url)
    hc1 = connect.get_connection(connect.find_connection("acme-prod", "hc1"))
    hc2 = connect.get_connection(connect.find_connection("acme-prod", "hc2"))
    assert {m.object_name for m in hc1.mappings} == {"Opportunity", "Case", "Invoice__c"}
    assert {m.object_name for m in hc2.mappings} == {"Account", "Contact"}
    assert hc1.state in ("IDLE", "POLLING_DB_CHANGES") and hc2.state in (
        "IDLE",
        "POLLING_DB_CHANGES",
    )
    with app_session(db_url, db_name) as app:
        assert schema_of(app, "account") == "salesforce2"
        assert schema_of(app, "opportunity") == "salesforce"
        app.execute("UPDATE account SET rating = 'Hot' WHERE id = (SELECT min(id) FROM account)")
    # the new schema's trigger log took the app's write: hc2 sends it
    assert db.execute("SELECT count(*) FROM salesforce2._trigger_log").fetchone()[0] >= 1
    # every app write made before stop-writes reached the org (hc1 drained before the pause)
    assert unsent_writes(db) == 0
    assert archived_writes(db, "SUCCESS") >= load.writes > 0
    assert_app_is_back(PlatformClient(TOKEN, sandbox.platform_url))
    # no table was left behind (this sandbox drops a deleted mapping's table): nothing for people
    assert engine.ledger() == []
    # past the point of no return: no rollback, and earlier steps cannot run again
    out = engine.rollback(OPERATOR)
    assert out.status == "refused" and "no automatic way back" in out.message
    assert engine.run_step("pause", OPERATOR).status == "refused"


def test_pause_needs_a_second_person(prepped):
    _, engine, load = prepped
    load.stop()
    engine.run_step("stop-writes", OPERATOR, app="acme-prod")
    assert engine.run_step("drain", OPERATOR).ok
    out = engine.run_step("pause", OPERATOR)
    assert out.status == "refused" and "approv" in out.message
    requested = engine.request_approval("pause", OPERATOR)
    rid = requested.data["request_id"]
    own = engine.approve(rid, OPERATOR)
    assert own.status == "refused" and "cannot approve it" in own.message
    stranger = engine.approve(rid, "U0STRANGER")
    assert stranger.status == "refused" and "approver" in stranger.message
    assert engine.approve(rid, APPROVER).ok
    assert engine.run_step("pause", OPERATOR).ok
    # the approval was used once
    assert engine.store.checkpoints("acme-test")["pause"].status == "done"
    again = engine.approvals.consume("acme-test", "pause", fingerprint="x", live_digest="y")
    assert again is None


def test_break_glass_runs_without_a_second_person_and_is_audited(prepped):
    _, engine, load = prepped
    load.stop()
    engine.run_step("stop-writes", OPERATOR, app="acme-prod")
    engine.run_step("drain", OPERATOR)
    out = engine.run_step("pause", OPERATOR, break_glass="approver unreachable, incident INC-42")
    assert out.ok, out.message
    entries = [e for e in engine.store.history("acme-test", count=500) if e.action == "break-glass"]
    assert len(entries) == 1 and entries[0].actor == OPERATOR


def test_rollback_from_the_switch_restores_everything(prepped, db, db_url, db_name):
    sandbox, engine, load = prepped
    with psycopg.connect(db_url) as conn:
        before = role_settings(conn)
    approve_ahead(engine, "pause")
    load.stop()
    engine.run_step("stop-writes", OPERATOR, app="acme-prod")
    for name in ("drain", "pause", "cutover-objects", "switch"):
        out = engine.run_step(name, OPERATOR)
        assert out.ok, (name, out.message)
    with app_session(db_url, db_name) as app:
        assert schema_of(app, "account") == "salesforce2"
    dry = engine.rollback(OPERATOR, dry_run=True)
    assert dry.status == "dry-run" and dry.calls
    out = engine.rollback(OPERATOR)
    assert out.status == "done", out.message
    with psycopg.connect(db_url) as conn:
        assert role_settings(conn) == before  # the exact previous search_path settings
    with app_session(db_url, db_name) as app:
        assert schema_of(app, "account") == "salesforce"
    connect = ConnectClient(TOKEN, sandbox.central_url)
    wait_until(
        lambda: (
            connect.get_connection(connect.find_connection("acme-prod", "hc1")).state != "PAUSED"
        )
    )
    assert_app_is_back(PlatformClient(TOKEN, sandbox.platform_url))
    hc1 = connect.get_connection(connect.find_connection("acme-prod", "hc1"))
    assert {m.object_name for m in hc1.mappings} >= {"Account", "Contact"}  # nothing was deleted


def test_ledger_after_the_point_of_no_return(sandbox_factory, db_url, db_name, redis_prefix, db):
    sandbox = sandbox_factory(
        "small", org_changes_per_second=1.0, assumptions={"delete_drops_table": False}
    )
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    person = Person(engine, sandbox)
    try:
        for _ in steps.PREP:
            assert engine.next(OPERATOR).ok
        assert engine.ledger() == []  # nothing before the point of no return
        # a read-only credential granted after prep carried the grants (prep would have)
        db.execute(f"CREATE ROLE {db_name}_reports NOLOGIN")
        db.execute(f"GRANT USAGE ON SCHEMA salesforce TO {db_name}_reports")
        db.execute(f"GRANT SELECT ON salesforce.account TO {db_name}_reports")
        for name in CUTOVER:
            out = engine.run_step(name, OPERATOR, app="acme-prod", break_glass="ledger test")
            assert out.ok, (name, out.message)
    finally:
        person.stop()
    keys = {item.key: item for item in engine.ledger()}
    assert set(keys) == {"leftover:account", "leftover:contact", f"grant:{db_name}_reports:account"}
    assert all(not item.done for item in keys.values())
    assert engine.ledger_done("leftover:account", "U0DBA").ok
    assert engine.ledger_done("nope", "U0DBA").status == "refused"
    done = {item.key: item.done_by for item in engine.ledger()}
    assert done["leftover:account"] == "U0DBA" and done["leftover:contact"] is None


def fail_diagnose(sandbox, addon: str, *checks: dict) -> None:
    """Make the sandbox's HC diagnose fail these checks of the add-on (none: every check as is)."""
    url = f"{sandbox.base_url}/_sandbox/connections/{addon}/diagnose"
    requests.post(url, json={"fail": list(checks)}, timeout=5).raise_for_status()


def mapping_state(level: str, object_name: str, message: str) -> dict:
    return {"rule_id": "MAPPING_STATE", "display_name": "Mapping State", "level": level,
            "object_name": object_name, "message": message}  # fmt: skip


def test_hcs_diagnose_of_hc1_is_a_risk_and_an_error_of_hc2s_blocks_in_the_ledger(
    sandbox_factory, db_url, db_name, redis_prefix
):
    sandbox = sandbox_factory("small", org_changes_per_second=1.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    person = Person(engine, sandbox)
    fail_diagnose(sandbox, "hc1", mapping_state("warnings", "Account", "hc1 is behind."))
    hc1_risk = "hc1 diagnose: Account: Mapping State (warning) — hc1 is behind."
    hc2_error = "hc2 diagnose: Contact: Mapping State — hc2 stopped syncing."
    try:
        for _ in steps.PREP:
            out = engine.next(OPERATOR)
            assert out.ok, (out.step, out.message)
        shown = plan_show(engine)
        assert hc1_risk in shown.risks  # a risk: prep went on
        assert f"  risk    {hc1_risk}" in render_plan(engine, shown).splitlines()
        fail_diagnose(
            sandbox,
            "hc2",
            mapping_state("warnings", "Account", "hc2 is slow."),
            mapping_state("errors", "Contact", "hc2 stopped syncing."),
        )
        with engine.emitter.capture() as events:
            for name in CUTOVER:
                out = engine.run_step(name, OPERATOR, app="acme-prod", break_glass="diagnose test")
                # HC's errors on hc2 never keep the app down: verify's own checks proved it
                assert out.ok, (name, out.message)
                if name == "verify":
                    assert hc2_error in out.message and "blocking item" in out.message
    finally:
        person.stop()
    told = report.report(engine.store, "acme-test")
    before, after = told.diagnose
    assert (before.addon, before.step, after.addon, after.step) == (
        "hc1", "preflight", "hc2", "verify",
    )  # fmt: skip
    assert hc1_risk in [f.line for f in before.failures]
    hc2_warning = "hc2 diagnose: Account: Mapping State (warning) — hc2 is slow."
    lines = {f.line: f for f in after.failures}
    assert lines[hc2_warning].ledger_key is None  # a warning: nothing for people
    assert lines[hc2_error].ledger_key == "diagnose:contact:mapping_state"
    text = report.render(told)
    assert text.index("HC diagnose") < text.index(f"    {hc1_risk}") < text.index(hc2_warning)
    assert "open, blocking" in text
    assert json.loads(told.model_dump_json())["diagnose"][1]["failures"]  # as --json prints it

    # every step is done, but the swap is not: the error waits in the ledger for a person
    assert not [e for e in events if e.kind == "swap.done"]
    assert any("ledger items are marked done" in e.message for e in events)
    (item,) = engine.ledger()
    assert item.key == "diagnose:contact:mapping_state" and item.blocking and not item.done
    assert hc2_error in item.what
    assert item.owner == engine.current_plan().authorizer  # who works in HC's dashboard
    fail_diagnose(sandbox, "hc2")  # fixed in Heroku Connect; the ledger still asks a person
    with engine.emitter.capture() as events:
        assert engine.ledger_done(item.key, "U0DBA").ok
    assert [e.kind for e in events].count("swap.done") == 1
    (row,) = status(engine).ledger
    assert (row.key, row.blocking, row.done_by) == (item.key, True, "U0DBA")
    assert report.report(engine.store, "acme-test").done


@pytest.mark.slow
def test_rollback_from_every_step_before_the_point_of_no_return(
    sandbox_factory, db_url, db_name, redis_prefix
):
    """One swap: prep, then the cutover up to each step in turn and a rollback, each time
    finding the database and the sandbox as they were before the swap (hc2 aside), then `next`
    to redo what the rollback undid of prep. Past delete-old, rollback refuses."""
    sandbox = sandbox_factory("small", org_changes_per_second=1.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    person = Person(engine, sandbox)
    try:
        pristine = swap_state(db_url, db_name, sandbox)

        def prep() -> None:
            for _ in range(len(steps.PREP) + 1):
                out = engine.next(OPERATOR)
                if out.status == "refused" and "prep is done" in out.message:
                    return
                assert out.ok, (out.step, out.message)

        prep()
        ponr = CUTOVER.index("delete-old")
        for last in CUTOVER[:ponr]:
            approve_ahead(engine, "pause")
            for name in CUTOVER[: CUTOVER.index(last) + 1]:
                out = engine.run_step(
                    name, OPERATOR, app="acme-prod" if name == "stop-writes" else None
                )
                assert out.ok, (last, name, out.message)
            out = engine.rollback(OPERATOR)
            assert out.status == "done", (last, out.message)
            assert swap_state(db_url, db_name, sandbox) == pristine, f"rollback after {last}"
            prep()
        approve_ahead(engine, "pause")
        approve_ahead(engine, "delete-old")
        for name in CUTOVER[: ponr + 1]:
            assert engine.run_step(name, OPERATOR, app="acme-prod").ok, name
        refused = engine.rollback(OPERATOR)
        assert refused.status == "refused" and "no automatic way back" in refused.message
    finally:
        person.stop()
