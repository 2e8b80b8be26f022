"""The prep phase's steps, each run alone on a `Run` built without the engine or Redis
(tests/steps_alone.py): set up what it starts from directly, act against the sandbox and the
real database, see the live system show the change (the step's check, and the live system read
on its own: the catalog, the sandbox's APIs), and where the step has an undo, undo and see the
system back."""

from __future__ import annotations

import pytest
import requests

from swapbot.database.system_grants import SYSTEM_RELATIONS
from swapbot.swap import steps as runbook
from swapbot.swap.run import StepStopped
from swapbot.testing.services import wait_until
from tests.steps_alone import RUNNING, Alone, untested, with_objects


@pytest.fixture
def alone(sandbox, db_url, db_name):
    return Alone(sandbox, db_url, db_name)


def addons(alone: Alone) -> dict[str, str]:
    return {a.name: a.state or "" for a in alone.platform.list_addons("acme-prod")}


def has_the_new_fields(alone: Alone) -> bool:
    """hc2's mappings sync the plan's new fields, and their columns are in the new schema."""
    mappings = {m.object_name: m for m in alone.hc("hc2").mappings}
    return all(
        obj in mappings
        and field in mappings[obj].config.fields
        and field.lower() in alone.columns("salesforce2", obj.lower())
        for obj, fields in alone.plan.mappings.items()
        for field in fields
    )


# -- preflight ---------------------------------------------------------------------------------
def test_preflight_reads_the_database_and_fails_while_the_new_schema_exists(alone):
    alone.query("CREATE SCHEMA salesforce2")
    alone.act("preflight")
    seen = alone.check("preflight")
    assert not seen and seen.data == {"failed": ["new_schema"]}

    alone.query("DROP SCHEMA salesforce2")
    catalog = alone.catalog()
    alone.act("preflight")
    assert alone.check("preflight")
    assert alone.catalog() == catalog  # it only reads
    live = {f.type: f.quantity for f in alone.platform.formation("acme-prod")}
    writers = {a["app"]: a for a in alone.records.values["writers"]["apps"]}
    assert writers["acme-prod"]["formation"] == live == {"web": 2, "worker": 1, "clock": 1}


def test_preflight_runs_hcs_diagnose_on_hc1_and_keeps_its_failures_as_risks(alone):
    """hc1's own failed checks are risks, not blockers: the swap exists to change its mappings."""
    failing = [
        {"rule_id": "MAPPING_STATE", "level": "errors", "object_name": "Account",
         "display_name": "Mapping State", "message": "The mapping is in state BAD_CONFIG."},
        {"rule_id": "SHOULD_HAVE_LOG_DRAIN", "level": "warnings", "object_name": None,
         "display_name": "Configured Logging", "message": "App does not have logging configured."},
    ]  # fmt: skip
    alone.admin("POST", "/connections/hc1/diagnose", {"fail": failing})
    alone.act("preflight")
    seen = alone.check("preflight")
    assert seen, seen.seen  # passed all the same
    risks = [
        "hc1 diagnose: Account: Mapping State — The mapping is in state BAD_CONFIG.",
        "hc1 diagnose: connection: Configured Logging (warning) — App does not have logging "
        "configured.",
    ]
    assert set(risks) <= set(seen.data["risks"]) and risks[0] in seen.seen
    record = alone.records.values["diagnose_old"]
    assert record["addon"] == "hc1" and record["error"] is None and record["passes"] > 0
    failed = {(f["object_name"], f["level"], f["check"]["rule_id"]) for f in record["failures"]}
    assert {("Account", "error", "MAPPING_STATE"), (None, "warning", "SHOULD_HAVE_LOG_DRAIN")} <= (
        failed
    )
    hc1 = alone.ref("hc1").id
    assert len(alone.requests_to("POST", f"/connections/{hc1}/validations")) == 1


def test_preflight_tells_a_diagnose_heroku_connect_cannot_run_as_a_risk(alone):
    alone.admin("POST", "/faults", {"rate": 1.0, "kinds": ["503"], "only": "/validations"})
    alone.act("preflight")  # no crash
    alone.admin("POST", "/faults", {"rate": 0.0})
    seen = alone.check("preflight")
    assert seen and seen.data["risks"][0].startswith("HC diagnose on hc1 unavailable: ")
    assert alone.records.values["diagnose_old"]["failures"] == []


# -- create-addon ------------------------------------------------------------------------------
def test_create_addon_provisions_hc2_and_its_undo_removes_it_with_its_schema(alone):
    landed = runbook.get("create-addon").landed
    assert landed is not None and not landed(alone.run("create-addon"))
    alone.do("create-addon")
    assert landed(alone.run("create-addon"))
    assert addons(alone) == {
        "postgresql-acme-prod-12345": "provisioned",
        "hc1": "provisioned",
        "hc2": "provisioned",
    }
    assert alone.state("hc2") == "NEW"

    # configured since, and someone built on its schema: the undo refuses, changing nothing
    alone.connect.configure(alone.ref("hc2"), db_key="DATABASE_URL", schema_name="salesforce2")
    alone.query("CREATE VIEW public.mine AS SELECT * FROM salesforce2._trigger_log")
    with pytest.raises(StepStopped, match="public.mine"):
        alone.undo("create-addon")
    assert "hc2" in addons(alone) and "salesforce2" in alone.schemas()

    alone.query("DROP VIEW public.mine")
    alone.undo("create-addon")
    assert "hc2" not in addons(alone)
    assert "salesforce2" not in alone.schemas()
    assert not alone.check("create-addon")


# -- configure ---------------------------------------------------------------------------------
def test_configure_points_hc2_at_the_database_and_creates_the_new_schema(alone):
    alone.add_hc2("created")
    assert "salesforce2" not in alone.schemas()
    alone.do("configure")
    hc2 = alone.hc("hc2")
    assert (hc2.schema_name, hc2.db_key, hc2.state) == (
        "salesforce2",
        "DATABASE_URL",
        "NEED_AUTHENTICATION",
    )
    tables = alone.query("SELECT tablename FROM pg_tables WHERE schemaname = 'salesforce2'")
    assert {"_trigger_log", "_trigger_log_archive", "_hcmeta"} <= {t for (t,) in tables}


# -- authorize ---------------------------------------------------------------------------------
def test_authorize_asks_a_person_for_the_salesforce_login_and_sees_it_done(alone):
    alone.add_hc2("configured")
    alone.act("authorize")
    (asked,) = alone.asked("authorize")
    assert asked.data["person"] == alone.plan.authorizer
    assert not alone.check("authorize")  # asking is not doing
    login = {"username": "integration-hc2@acme.example"}
    answer = requests.get(asked.data["link"], params=login, timeout=5)
    # once logged in, HC sends the person to Heroku's page of the app (no page of swapbot's own
    # is known to this run; `swapbot serve` gives its /hc/authorized page when one is)
    assert answer.json()["next"] == f"https://dashboard.heroku.com/apps/{alone.plan.app}/resources"
    assert "integration-hc2@acme.example" in alone.wait("authorize").seen
    hc2 = alone.hc("hc2")
    assert hc2.state in RUNNING and (hc2.sf_info or {})["username"] == login["username"]


# -- export ------------------------------------------------------------------------------------
def test_export_stores_hc1s_configuration_as_hc1_serves_it(alone):
    alone.do("export")
    stored = alone.records.values["export"]["mappings"]
    live = {m.object_name: m.config for m in alone.hc("hc1").mappings}
    assert {m["object_name"] for m in stored} == set(live) >= {"Account", "Contact"}
    assert all(set(m["config"]["fields"]) == set(live[m["object_name"]].fields) for m in stored)
    assert alone.requests_to("GET", "/actions/export")


def test_export_stops_when_hc1_lacks_a_moved_mapping(sandbox, db_url, db_name):
    alone = Alone(sandbox, db_url, db_name, mappings={"Lead": ["Rating"]})
    with pytest.raises(StepStopped, match="has no mapping for Lead"):
        alone.act("export")
    assert not alone.check("export")


# -- import ------------------------------------------------------------------------------------
def test_import_maps_the_moved_objects_on_hc2_with_the_new_fields(alone):
    alone.add_hc2("authorized")
    alone.export()
    landed = runbook.get("import").landed
    assert landed is not None and not landed(alone.run("import"))
    alone.do("import")
    assert landed(alone.run("import"))
    assert {m.object_name for m in alone.hc("hc2").mappings} == {"Account", "Contact"}
    wait_until(lambda: has_the_new_fields(alone), what="the new fields on hc2 and in salesforce2")
    # the shortcut: the first loads took the new fields, so abort, add-columns and reload are done
    assert alone.check("abort") and alone.check("add-columns") and alone.check("reload")


# -- abort, add-columns, reload: the long way, when the import did not take the new fields -----
def test_abort_asks_a_person_and_sees_the_loads_stopped(sandbox_factory, db_url, db_name):
    sandbox = sandbox_factory(load_rows_per_second=1.0)  # loads that last until someone aborts
    alone = Alone(sandbox, db_url, db_name)
    alone.add_hc2("imported", with_fields=False)
    seen = alone.check("abort")
    assert not seen and "still loading without the new fields" in seen.seen

    alone.act("abort")
    (asked,) = alone.asked("abort")
    assert "Account" in asked.message and "Contact" in asked.message
    assert not alone.check("abort")
    for obj in alone.plan.objects:
        alone.admin("POST", f"/connections/hc2/mappings/{obj}/abort")
    alone.wait("abort")
    states = {m.object_name: m.state for m in alone.hc("hc2").mappings}
    assert states == {"Account": "ABORTED", "Contact": "ABORTED"}


def test_add_columns_adds_the_new_fields_to_hc2s_mappings(alone):
    alone.add_hc2("synced", with_fields=False)
    seen = alone.check("add-columns")
    assert not seen and "Rating" in seen.seen
    assert not has_the_new_fields(alone)
    alone.do("add-columns")
    wait_until(lambda: has_the_new_fields(alone), what="the new fields on hc2 and in salesforce2")


def test_reload_loads_the_aborted_mappings_again(alone):
    alone.add_hc2("synced")
    alone.admin("POST", "/connections/hc2/mappings/Account/state", {"state": "ABORTED"})
    alone.as_hc("DELETE FROM salesforce2.account")  # what the aborted load left: nothing
    seen = alone.check("reload")
    assert not seen and "Account" in seen.seen
    alone.do("reload")
    wait_until(
        lambda: alone.count("salesforce2.account") == alone.count("salesforce.account") > 0,
        what="salesforce2.account loaded again",
    )
    assert alone.requests_to("POST", "/actions/reload")


# -- settings ----------------------------------------------------------------------------------
def test_settings_asks_a_person_to_match_hc1_and_to_confirm_the_notifications(alone):
    alone.add_hc2("authorized")
    alone.admin("POST", "/connections/hc2/settings", {"poll_db_no_merge": False})
    seen = alone.check("settings")
    assert not seen and "poll_db_no_merge" in seen.seen
    alone.act("settings")
    (asked,) = alone.asked("settings")
    assert "Ordered Writes" in asked.message and "confirm settings" in asked.message

    alone.admin("POST", "/connections/hc2/settings", {"poll_db_no_merge": True})
    seen = alone.check("settings")
    assert not seen and "confirmation" in seen.seen  # they match now; nobody has confirmed
    alone.confirmed.add("settings")
    assert alone.check("settings")
    assert alone.admin("GET", "/connections/hc2/settings")["poll_db_no_merge"] is True


# -- wait-sync ---------------------------------------------------------------------------------
def test_wait_sync_waits_for_hc2s_loads_and_stops_on_a_mapping_in_error(alone):
    alone.add_hc2("authorized")
    seen = alone.check("wait-sync")
    assert not seen and "Account missing" in seen.seen
    alone.import_to_hc2()
    progress = alone.wait("wait-sync").data["progress"]
    assert progress["Account"]["db"] == alone.count("salesforce2.account") > 0
    assert progress["Contact"]["db"] == alone.count("salesforce2.contact") > 0

    alone.admin("POST", "/connections/hc2/mappings/Contact/state", {"state": "SYSTEM_ERROR"})
    with pytest.raises(StepStopped, match="Contact is in SYSTEM_ERROR"):
        alone.check("wait-sync")


# -- parity ------------------------------------------------------------------------------------
def test_parity_compares_the_two_copies_as_they_are(alone):
    alone.add_hc2("synced")
    alone.do("parity")
    assert alone.records.values["parity"]["equal"] is True

    # a row of the new copy changed behind Heroku Connect's back: comparing again sees it
    alone.as_hc(
        "UPDATE salesforce2.account SET name = 'changed' "
        "WHERE id = (SELECT min(id) FROM salesforce2.account)"
    )
    alone.act("parity")
    record = alone.records.values["parity"]
    assert record["equal"] is False
    assert sum(t["differing_rows"] for t in record["tables"]) == 1


# -- measure -----------------------------------------------------------------------------------
def test_measure_pauses_and_resumes_hc2_once_and_its_undo_resumes_it(alone):
    alone.add_hc2("synced")
    measure = alone.do("measure").data["measure"]
    assert measure["paused_after"] >= 0 and measure["resumed_after"] >= 0
    assert alone.state("hc2") in RUNNING
    hc2 = alone.ref("hc2").id
    assert len(alone.requests_to("POST", f"/connections/{hc2}/actions/resume")) == 1
    assert alone.requests_to("POST", f"/connections/{hc2}/actions/pause")

    alone.pause("hc2")  # a rollback while the measurement had hc2 paused
    alone.undo("measure")
    alone.wait_state("hc2", RUNNING)


# -- prepare-objects ---------------------------------------------------------------------------
def test_prepare_objects_carries_the_objects_to_the_new_schema_and_its_undo_takes_them_back(
    sandbox_factory, db_url, db_name
):
    alone = with_objects(sandbox_factory, db_url, db_name)
    before = alone.catalog()
    alone.do("prepare-objects")  # (it checks first: not done yet)
    added = set(alone.catalog()) - set(before)
    assert {
        "relation salesforce2.account_billingcity_idx",
        "relation salesforce2.account_contacts",
    } <= added
    assert can_update(alone, "salesforce2.contact")

    alone.undo("prepare-objects")
    assert not_hcs(alone.catalog()) == not_hcs(before)
    assert not can_update(alone, "salesforce2.contact")
    assert not alone.check("prepare-objects")


def can_update(alone: Alone, table: str) -> bool:
    """The app's role may write to the table (prep carries its grants to the new schema)."""
    query = "SELECT has_table_privilege(%s, %s, 'UPDATE')"
    return bool(alone.query(query, (alone.plan.roles[0], table))[0][0])


def not_hcs(catalog: dict[str, str]) -> dict[str, str]:
    """The catalog but for Heroku Connect's own tables in the new schema: the grants prep
    carried onto them stay after the undo (it restores the moved tables' and the schema's)."""
    own = {f"relation salesforce2.{r}" for r in SYSTEM_RELATIONS}
    return {k: v for k, v in catalog.items() if k not in own}


# -- the phase ---------------------------------------------------------------------------------
def test_every_prep_step_has_a_test_of_its_own_here():
    assert untested(runbook.PREP, globals()) == []
