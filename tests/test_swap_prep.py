"""The engine runs prep against the sandbox, real PostgreSQL and real Redis."""

from __future__ import annotations

import pytest
import requests

from swapbot.heroku import ConnectClient
from swapbot.swap import steps
from swapbot.testing.services import TOKEN
from swapbot.testing.swaps import OPERATOR, Person, demo_plan, make_engine

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow

PREP = [s.name for s in steps.PREP]


@pytest.fixture
def world(sandbox_factory, db_url, db_name, redis_prefix):
    sandbox = sandbox_factory("small")
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    person = Person(engine, sandbox)
    yield sandbox, engine, person
    person.stop()


def run_prep(engine):
    outcomes = []
    for _ in range(len(PREP) + 1):
        out = engine.next(OPERATOR)
        outcomes.append(out)
        if not out.ok or out.step == "next":
            break
    return outcomes


def test_prep_runs_every_step_in_order_and_stops_before_the_cutover(world, db):
    sandbox, engine, person = world
    outcomes = run_prep(engine)
    assert [o.step for o in outcomes[: len(PREP)]] == PREP, [
        (o.step, o.status, o.message) for o in outcomes
    ]
    assert all(o.ok for o in outcomes[: len(PREP)]), [
        (o.step, o.status, o.message) for o in outcomes if not o.ok
    ]
    last = outcomes[-1]
    assert (
        last.status == "refused" and "stop-writes" in last.message
    )  # the cutover never starts by itself
    # the shortcut: the fields went in with the import, so abort, add-columns and reload were already done
    statuses = {o.step: o.status for o in outcomes}
    assert statuses["abort"] == statuses["add-columns"] == statuses["reload"] == "skipped"
    # the person was asked for what only a person can do
    assert {e.step for e in person.asked} == {"authorize", "settings"}
    # hc2 holds the moved mappings with the new columns, in sync
    connect = ConnectClient(TOKEN, sandbox.central_url)
    hc2 = connect.get_connection(connect.find_connection("acme-prod", "hc2"))
    assert hc2.schema_name == "salesforce2"
    assert {m.object_name: m.state for m in hc2.mappings} == {
        "Account": "DATA_SYNCED",
        "Contact": "DATA_SYNCED",
    }
    assert db.execute("SELECT count(rating) FROM salesforce2.account").fetchone()[0] == 100
    assert db.execute("SELECT count(phone) FROM salesforce2.contact").fetchone()[0] == 150
    # every step is in the audit trail
    actions = [(e.action, e.step) for e in engine.store.history("acme-test", count=200)]
    assert ("plan.saved", None) in actions
    assert {s for a, s in actions if a in ("step.done", "step.skipped")} >= set(PREP)


def sent_once(sandbox) -> bool:
    """Nothing unsafe was sent twice: one add-on created, one import."""
    log = requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()
    creates = [
        r
        for r in log
        if r["method"] == "POST" and r["path"].endswith("/addons") and r["status"] < 500
    ]
    imports = [r for r in log if r["path"].endswith("/actions/import") and r["status"] < 500]
    return len(creates) == 1 and len(imports) == 1


def test_after_redis_loses_the_swap_the_engine_rebuilds_it_from_the_journal(world):
    sandbox, engine, _ = world
    run_prep(engine)
    before = {n: cp.status for n, cp in engine.store.checkpoints("acme-test").items()}
    records = engine.store.records("acme-test")
    engine.store.forget("acme-test")  # Redis lost the swap's state
    with engine.emitter.capture() as events:
        out = engine.run_step("wait-sync", OPERATOR)  # no plan saved again: the journal has it
    assert out.status == "skipped" and "already done" in out.message, out.message
    assert {n: cp.status for n, cp in engine.store.checkpoints("acme-test").items()} == before
    assert engine.store.records("acme-test") == records  # the export, the reports, the DDL
    assert engine.store.confirmation("acme-test", "settings") is not None  # a person's word
    assert any("rebuilt from the journal" in e.message for e in events)
    assert "swap.restored" in [e.action for e in engine.store.history("acme-test")]
    assert sent_once(sandbox)


def test_without_the_journal_prep_steps_are_proven_by_their_own_checks(
    sandbox_factory, db_url, db_name, redis_prefix
):
    """The journal is what makes Redis loss harmless; without it (a swap recorded before it
    existed), each prep step must prove itself on the live system: no later step stands for an
    earlier one, and what only the record held (a person's word, the export) is asked again."""
    sandbox = sandbox_factory("small")
    engine = make_engine(sandbox, db_url, redis_prefix, journal=None)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    person = Person(engine, sandbox)
    try:
        run_prep(engine)
        engine.store.forget("acme-test")
        assert engine.next(OPERATOR).message.startswith("there is no plan yet")
        engine.save_plan(demo_plan(db_name), OPERATOR)  # the operator saves the same plan again
        out = engine.run_step("wait-sync", OPERATOR)
        # hc2's import proves the import, not the export it was fed from
        assert out.status == "refused" and "export is not done yet" in out.message, out.message
        assert engine.store.checkpoints("acme-test") == {}  # a refusal writes nothing
        assert engine.run_step("export", OPERATOR).ok  # it reads hc1 again
        out = engine.run_step("wait-sync", OPERATOR)
        assert out.status == "refused" and "settings is not done yet" in out.message, out.message
        engine.confirm("settings", "U0PERSON")
        assert engine.run_step("wait-sync", OPERATOR).ok
    finally:
        person.stop()
    rebuilt = [
        e.step for e in engine.store.history("acme-test", count=200) if e.action == "step.rebuilt"
    ]
    assert {"preflight", "create-addon", "configure", "authorize"} <= set(rebuilt)
    assert sent_once(sandbox)


def test_steps_refuse_to_run_out_of_order(world):
    _, engine, _ = world
    out = engine.run_step("import", OPERATOR)
    assert out.status == "refused"
    assert "preflight is not done yet" in out.message
    assert engine.run_step("preflight", OPERATOR).ok
    out = engine.run_step("import", OPERATOR)
    assert out.status == "refused" and "create-addon is not done yet" in out.message
    assert engine.store.checkpoints("acme-test").get("import") is None


def test_unknown_step_and_missing_plan(world, db_url, redis_prefix):
    sandbox, engine, _ = world
    assert "unknown step" in engine.run_step("launch-missiles", OPERATOR).message
    # A swapbot with no swap anywhere: not in its Redis, not in a journal
    fresh = make_engine(sandbox, db_url, redis_prefix + "fresh:", journal=None)
    out = fresh.next(OPERATOR)
    assert out.status == "refused" and "plan new" in out.message


def test_dry_run_lists_calls_and_changes_nothing(world, db):
    sandbox, engine, _ = world
    engine.run_step("preflight", OPERATOR)
    before = requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()
    writes_before = [r for r in before if r["method"] != "GET"]
    out = engine.run_step("create-addon", OPERATOR, dry_run=True)
    assert out.status == "dry-run"
    assert out.calls == ["POST /apps/acme-prod/addons plan=herokuconnect:enterprise name=hc2"]
    after = requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()
    assert [r for r in after if r["method"] != "GET"] == writes_before
    assert engine.store.checkpoints("acme-test").get("create-addon") is None


def test_a_second_runner_is_refused_while_one_holds_the_swap(world, db_url, redis_prefix):
    sandbox, engine, _ = world
    lease = engine.store.acquire("acme-test", "other-dyno:web.1", 10_000)
    assert lease is not None
    out = engine.run_step("preflight", OPERATOR)
    assert out.status == "refused" and "other-dyno:web.1" in out.message
    engine.store.release(lease)
    assert engine.run_step("preflight", OPERATOR).ok


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mappings": {"Pricebook2": []}}, "hc1 has no mapping for Pricebook2"),
        ({"mappings": {"Account": ["No_Such_Field__c"]}}, "Account has no field No_Such_Field__c"),
        ({"new_schema": "reporting"}, "schema reporting already exists"),
        ({"roles": ["nobody_here"]}, "role nobody_here does not exist"),
        ({"old_schema": "sales"}, "hc1 syncs schema salesforce, not sales"),
    ],
)
def test_a_plan_is_checked_against_the_live_system_when_saved(
    sandbox_factory, db_url, db_name, redis_prefix, db, changes, message
):
    from swapbot.swap.run import StepStopped

    sandbox = sandbox_factory("small", clock=False)
    db.execute("CREATE SCHEMA reporting")
    engine = make_engine(sandbox, db_url, redis_prefix)
    with pytest.raises(StepStopped, match=message):
        engine.save_plan(demo_plan(db_name, **changes), OPERATOR)
    assert engine.current_plan() is None  # nothing was saved


def test_dry_run_of_next_lists_the_sql_and_changes_nothing(world, db):
    sandbox, engine, _ = world
    for _ in range(len(PREP) - 1):  # everything up to prepare-objects
        assert engine.next(OPERATOR).ok
    catalog = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'salesforce2'"
    grants = "SELECT count(*) FROM information_schema.role_table_grants WHERE table_schema = 'salesforce2'"
    before = (db.execute(catalog).fetchone(), db.execute(grants).fetchone())
    log_before = requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()
    out = engine.next(OPERATOR, dry_run=True)
    assert out.step == "prepare-objects" and out.status == "dry-run"
    assert out.calls[0].startswith("apply prep DDL")
    assert any(c.strip().startswith("GRANT") and "salesforce2" in c for c in out.calls), out.calls
    assert (db.execute(catalog).fetchone(), db.execute(grants).fetchone()) == before
    log_after = requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()
    assert [r for r in log_after if r["method"] != "GET"] == [
        r for r in log_before if r["method"] != "GET"
    ]
    assert engine.store.checkpoints("acme-test").get("prepare-objects") is None


def test_rollback_keeps_what_the_new_schema_held_before_the_swap(world, db, db_name):
    _, engine, _ = world
    for _ in range(len(PREP) - 1):  # up to prepare-objects
        assert engine.next(OPERATOR).ok
    app_role = f"{db_name}_app"
    # someone granted the app role on the new schema and indexed a table before prep
    db.execute(f'GRANT USAGE ON SCHEMA salesforce2 TO "{app_role}"')
    db.execute(f'GRANT SELECT ON salesforce2.account TO "{app_role}"')
    db.execute("CREATE INDEX account_name_before_idx ON salesforce2.account (name)")
    assert engine.next(OPERATOR).ok  # prepare-objects carries grants and objects
    contact_grants = f"SELECT count(*) FROM information_schema.role_table_grants WHERE table_schema = 'salesforce2' AND table_name = 'contact' AND grantee = '{app_role}'"
    assert db.execute(contact_grants).fetchone()[0] > 0
    out = engine.rollback(OPERATOR)
    assert out.status == "done", out.message
    assert db.execute(contact_grants).fetchone()[0] == 0  # what the swap made is gone
    assert db.execute("SELECT to_regclass('salesforce2.account_name_before_idx')").fetchone()[0]
    assert db.execute(
        f"SELECT has_table_privilege('{app_role}', 'salesforce2.account', 'SELECT')"
    ).fetchone()[0]  # what was there before is kept
