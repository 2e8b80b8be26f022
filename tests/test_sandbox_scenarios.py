"""Scenarios are data: the registered ones load, and tests can add their own."""

from __future__ import annotations

import pytest

from swapbot.heroku import ConnectClient
from swapbot.sandbox import scenarios
from swapbot.testing.services import TOKEN


def test_unknown_scenario_names_the_known_ones():
    with pytest.raises(KeyError, match="demo"):
        scenarios.get("nope")


def test_many_mappings_scenario_serves_300_mappings(sandbox_factory, db):
    sb = sandbox_factory(scenarios.many_mappings(300, records=2), clock=False)
    connect = ConnectClient(TOKEN, sb.central_url)
    c = connect.get_connection(connect.find_connection("acme-prod", "hc1"))
    assert len(c.mappings) == 300
    assert {m.state for m in c.mappings} == {"DATA_SYNCED"}
    assert all(m.counts.db == m.counts.sf == 2 for m in c.mappings)
    assert (
        len(
            db.execute(
                "SELECT DISTINCT key_prefix FROM (SELECT spec->>'key_prefix' AS key_prefix FROM _hcsandbox.sf_object) o"
            ).fetchall()
        )
        == 300
    )


def test_trigger_log_scenario_fills_live_log_and_archive(db_url, db):
    scenarios.load(db_url, scenarios.big_trigger_log(live=2_000, archive=10_000))
    live = dict(
        db.execute("SELECT state, count(*) FROM salesforce._trigger_log GROUP BY 1").fetchall()
    )
    assert sum(live.values()) == 2_000 and live["NEW"] > 0 and live["FAILED"] > 0
    assert (
        db.execute("SELECT count(*) FROM salesforce._trigger_log_archive").fetchone()[0] == 10_000
    )
    overlap = db.execute(
        "SELECT count(*) FROM salesforce._trigger_log l JOIN salesforce._trigger_log_archive a USING (id)"
    ).fetchone()[0]
    assert overlap == 0


def test_demo_scenario_plants_the_unmanaged_objects(db_url, db, db_name):
    scenarios.load(db_url, scenarios.get("demo"))
    views = {
        r[0]
        for r in db.execute(
            "SELECT schemaname || '.' || viewname FROM pg_views WHERE schemaname <> 'pg_catalog' AND schemaname <> 'information_schema'"
        )
    }
    assert {"salesforce.account_contacts", "reporting.open_opportunities"} <= views
    setting = db.execute(
        "SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
        "JOIN pg_database d ON d.oid = s.setdatabase WHERE r.rolname = %s AND d.datname = %s",
        (f"{db_name}_app", db_name),
    ).fetchone()[0]
    assert setting == ["search_path=salesforce, public"]
    counts = dict(
        db.execute("SELECT object_name, count(*) FROM _hcsandbox.sf_record GROUP BY 1").fetchall()
    )
    assert counts == {
        "Account": 10_000,
        "Contact": 15_000,
        "Opportunity": 8_000,
        "Case": 5_000,
        "Invoice__c": 3_000,
    }


def test_register_a_scenario_of_your_own(sandbox_factory):
    @scenarios.register("tiny-test")
    def tiny():
        return scenarios.small().model_copy(update={"name": "tiny-test", "app": "tiny-app"})

    try:
        sb = sandbox_factory("tiny-test", clock=False)
        connect = ConnectClient(TOKEN, sb.central_url)
        assert connect.find_connection("tiny-app", "hc1").app_name == "tiny-app"
    finally:
        scenarios.SCENARIOS.pop("tiny-test")


def test_loading_again_drops_a_removed_addons_schema(db_url, db):
    """An add-on removed without its schema (assumption remove-addon-keeps-schema) leaves a
    schema no connection names; loading a scenario again still starts clean."""
    scenarios.load(db_url, scenarios.get("small"))
    db.execute("CREATE SCHEMA salesforce9; CREATE TABLE salesforce9._hcmeta (id int)")
    db.execute("CREATE SCHEMA app_reports; CREATE TABLE app_reports.t (id int)")
    scenarios.load(db_url, scenarios.get("small"))
    found = {r[0] for r in db.execute("SELECT nspname FROM pg_namespace").fetchall()}
    assert "salesforce9" not in found
    assert "app_reports" in found  # not a connection's: kept
