"""delete-old with unmanaged objects left in the old schema: the copies prep made in the new
schema serve the app, so delete-old first retires the old ones (recording their SQL), which
lets Heroku Connect drop the old tables where deleting a mapping does that."""

from __future__ import annotations

import psycopg
import pytest
import requests

from swapbot.heroku import ConnectClient
from swapbot.sandbox import scenarios
from swapbot.sandbox.scenarios import app_database_url, role_names
from swapbot.swap import steps
from swapbot.swap.journal import JournalError
from swapbot.testing.services import TOKEN
from swapbot.testing.swaps import OPERATOR, Person, demo_plan, make_engine

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow

OLD_VIEW = "salesforce.account_contacts"
GLASS = "retire test"


def objects_scenario() -> scenarios.Scenario:
    """The small demo with the demo's unmanaged objects (views, functions, a trigger, an FK)."""
    return scenarios.small().model_copy(update={"unmanaged_objects": True, "name": "small-obj"})


def prepped(sandbox_factory, db_url, db_name, redis_prefix, *, drops: bool):
    sandbox = sandbox_factory(
        objects_scenario(),
        org_changes_per_second=0.0,
        assumptions={"delete_drops_table": drops},
    )
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    person = Person(engine, sandbox)
    for _ in steps.PREP:
        out = engine.next(OPERATOR)
        assert out.ok, (out.step, out.message)
    person.stop()
    return sandbox, engine


def run_through(engine, last: str) -> None:
    for step in steps.CUTOVER:
        out = engine.run_step(step.name, OPERATOR, app="acme-prod", break_glass=GLASS)
        assert out.ok, (step.name, out.status, out.message)
        if step.name == last:
            return


def view_facts(db, name: str):
    """What makes the view the same view: its definition, owner and grants."""
    return db.execute(
        "SELECT pg_get_viewdef(c.oid), pg_get_userbyid(c.relowner), c.relacl::text "
        "FROM pg_class c WHERE c.oid = to_regclass(%s)",
        (name,),
    ).fetchone()


def exists(db, name: str) -> bool:
    return db.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


@pytest.mark.parametrize("drops", [True, False], ids=["hc-drops-table", "hc-keeps-table"])
def test_delete_old_retires_the_old_copies_and_lets_hc_drop_the_tables(
    sandbox_factory, db_url, db_name, redis_prefix, db, drops
):
    sandbox, engine = prepped(sandbox_factory, db_url, db_name, redis_prefix, drops=drops)
    before = view_facts(db, OLD_VIEW)
    run_through(engine, "resume-new")
    dry = engine.run_step("delete-old", OPERATOR, dry_run=True)
    assert dry.status == "dry-run", dry.message
    assert f"    DROP VIEW IF EXISTS {OLD_VIEW}" in dry.calls
    assert dry.calls.index(f"    DROP VIEW IF EXISTS {OLD_VIEW}") < min(
        i for i, c in enumerate(dry.calls) if c.startswith("DELETE /mappings/")
    )
    assert exists(db, OLD_VIEW)  # the dry run changed nothing
    run_through(engine, "external-objects")

    connect = ConnectClient(TOKEN, sandbox.central_url)
    hc1 = connect.get_connection(connect.find_connection("acme-prod", "hc1"))
    assert {m.object_name for m in hc1.mappings} == {"Opportunity", "Case", "Invoice__c"}
    assert not exists(db, OLD_VIEW)
    # where HC drops a deleted mapping's table, it could: nothing depended on it any more
    assert exists(db, "salesforce.account") is not drops
    # the app reads the copy in the new schema, and the re-pointed objects outside it
    app = app_database_url(db_url, role_names(db_name)[0])
    with psycopg.connect(app, autocommit=True) as session:
        session.execute("SELECT count(*) FROM account_contacts").fetchone()
        assert (
            session.execute(
                "SELECT relnamespace::regnamespace::text FROM pg_class "
                "WHERE oid = to_regclass('account_contacts')"
            ).fetchone()[0]
            == "salesforce2"
        )
    db.execute("SELECT count(*) FROM reporting.open_opportunities").fetchone()  # re-pointed
    # the retired view's SQL is kept, and the ledger shows it with that SQL
    record = engine.store.get_record("acme-test", "retired")
    assert [r["identity"] for r in record] == [f"view {OLD_VIEW}"]
    assert record[0]["copy"] == "salesforce2.account_contacts"
    assert record[0]["create"][0].startswith(f"CREATE OR REPLACE VIEW {OLD_VIEW} AS")
    items = {item.key: item for item in engine.ledger()}
    assert f"retired:{OLD_VIEW}" in items
    assert record[0]["create"][0] in items[f"retired:{OLD_VIEW}"].what
    assert engine.ledger_done(f"retired:{OLD_VIEW}", "U0DBA").ok
    # as recorded, it would come back exactly as it was (checked here in a scratch transaction)
    if not drops:
        with psycopg.connect(db_url) as scratch:
            for statement in record[0]["create"]:
                scratch.execute(statement)
            assert view_facts(scratch, OLD_VIEW) == before
            scratch.rollback()


def test_delete_old_stops_before_deleting_anything_while_something_else_needs_an_old_table(
    sandbox_factory, db_url, db_name, redis_prefix, db
):
    sandbox, engine = prepped(sandbox_factory, db_url, db_name, redis_prefix, drops=True)
    run_through(engine, "resume-new")
    # made after the cutover re-pointed everything: nothing carried it to the new schema
    db.execute("CREATE VIEW public.late_report AS SELECT count(*) AS n FROM salesforce.account")
    out = engine.run_step("delete-old", OPERATOR, break_glass=GLASS)
    assert out.status == "failed"
    assert "deleted nothing" in out.message and "late_report" in out.message
    connect = ConnectClient(TOKEN, sandbox.central_url)
    hc1 = connect.get_connection(connect.find_connection("acme-prod", "hc1"))
    assert {"Account", "Contact"} <= {m.object_name for m in hc1.mappings}
    assert exists(db, OLD_VIEW)  # nothing retired either
    db.execute("DROP VIEW public.late_report")
    out = engine.run_step("delete-old", OPERATOR, break_glass=GLASS)
    assert out.ok, out.message
    assert not exists(db, OLD_VIEW) and not exists(db, "salesforce.account")


def test_rollback_of_an_unfinished_delete_old_recreates_what_it_retired(
    sandbox_factory, db_url, db_name, redis_prefix, db
):
    """delete-old retired the old copies, then could not record the point of no return (the
    journal's write failed): no DELETE left, so rollback may still put everything back."""
    sandbox, engine = prepped(sandbox_factory, db_url, db_name, redis_prefix, drops=True)
    before = view_facts(db, OLD_VIEW)
    run_through(engine, "resume-new")
    put = engine.record.put

    def journal_fails_at_the_mark(lease, name, value):
        if name == "point_of_no_return":
            raise JournalError("the swap's durable record in Postgres: connection lost")
        put(lease, name, value)

    engine.record.put = journal_fails_at_the_mark
    out = engine.run_step("delete-old", OPERATOR, break_glass=GLASS)
    engine.record.put = put
    assert out.status == "failed" and "JournalError" in out.message, out.message
    assert not exists(db, OLD_VIEW)  # retired before the point of no return
    log = requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()
    assert not [r for r in log if r["method"] == "DELETE"]  # no mark, no DELETE
    out = engine.rollback(OPERATOR)
    assert out.status == "done", out.message
    assert view_facts(db, OLD_VIEW) == before
    assert engine.store.get_record("acme-test", "retired") is None
    with psycopg.connect(app_database_url(db_url, role_names(db_name)[0])) as session:
        assert (
            session.execute(
                "SELECT relnamespace::regnamespace::text FROM pg_class "
                "WHERE oid = to_regclass('account_contacts')"
            ).fetchone()[0]
            == "salesforce"
        )
