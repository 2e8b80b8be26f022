"""The cutover phase's steps, each run alone on a `Run` built without the engine or Redis
(tests/steps_alone.py): set up what it starts from directly, act against the sandbox and the
real database, see the live system show the change (the step's check, and the live system read
on its own: the catalog, sessions of the app's role, the sandbox's APIs), and where the step has
an undo, undo and see the system back."""

from __future__ import annotations

import datetime as dt
import time

import psycopg
import pytest

from swapbot.database import ddl
from swapbot.heroku import HerokuError
from swapbot.swap import steps as runbook
from swapbot.swap.run import StepStopped
from swapbot.swap.steps.base import sf_polls
from swapbot.swap.steps.cutover import DIAGNOSE_REUSE_SECONDS
from swapbot.testing.services import wait_until
from tests.steps_alone import RUNNING, Alone, untested, with_objects

APP = "acme-prod"
WRITERS = {"web": 2, "worker": 1, "clock": 1}  # the scenario's formation: the app's writers


@pytest.fixture
def alone(sandbox, db_url, db_name):
    return Alone(sandbox, db_url, db_name)


def formation(alone: Alone) -> dict[str, int]:
    return {f.type: f.quantity or 0 for f in alone.platform.formation(APP)}


def up(alone: Alone) -> int:
    return len([d for d in alone.platform.dynos(APP) if d.state == "up"])


def app_write(alone: Alone) -> None:
    """The app updates an account through its role's search_path (HC's trigger logs it)."""
    with alone.app_session() as app:
        app.execute("UPDATE account SET billingcity = 'x' WHERE id = (SELECT min(id) FROM account)")


def pending(alone: Alone) -> int:
    return alone.count("salesforce._trigger_log WHERE state IN ('NEW', 'PENDING')")


def apply_ddl(alone: Alone, *phases: ddl.PhaseName) -> None:
    """The objects' DDL of these phases applied and recorded, as the object steps leave it."""
    p = alone.plan
    with psycopg.connect(alone.db_url, autocommit=True) as conn:
        for phase in phases:
            done = ddl.apply(conn, p.old_schema, p.new_schema, p.tables, phase)
            alone.remember(**{f"ddl:{phase}": done.model_dump(mode="json") | {"applied": True}})


# -- stop-writes -------------------------------------------------------------------------------
def test_stop_writes_stops_the_app_waits_for_quiet_and_its_undo_brings_it_back(alone):
    assert formation(alone) == WRITERS
    alone.act("stop-writes")
    assert alone.platform.app(APP).maintenance is True
    assert formation(alone) == dict.fromkeys(WRITERS, 0)
    wait_until(lambda: not alone.platform.dynos(APP), what="the app's dynos to stop")
    assert alone.records.values["maintenance_before"] is False
    assert "outage.started" in [e.kind for e in alone.events]

    # a writer nobody named (a console) holds a write open: the step waits, and says so
    with alone.app_session() as console, console.transaction():
        console.execute("UPDATE account SET name = 'x' WHERE id = (SELECT min(id) FROM account)")
        seen = alone.check("stop-writes")
        assert not seen and "still writing" in seen.seen
    alone.wait("stop-writes")

    alone.undo("stop-writes")
    assert formation(alone) == WRITERS
    assert alone.platform.app(APP).maintenance is False
    wait_until(lambda: up(alone) == sum(WRITERS.values()), what="the app's dynos back up")
    assert not alone.check("stop-writes")


# -- drain -------------------------------------------------------------------------------------
def test_drain_waits_until_hc1_has_sent_every_app_write(alone):
    alone.pause("hc1")
    app_write(alone)
    seen = alone.check("drain")
    assert not seen and seen.data["pending"] == 1 == pending(alone)

    alone.resume("hc1")
    assert alone.wait("drain").data["pending"] == 0 == pending(alone)
    assert alone.count("salesforce._trigger_log_archive WHERE state = 'SUCCESS'") == 1
    assert alone.state("hc1") == "IDLE"


# -- pause -------------------------------------------------------------------------------------
def test_pause_pauses_both_connections_and_its_undo_resumes_them(alone):
    alone.add_hc2("authorized")
    alone.do("pause")
    assert (alone.state("hc1"), alone.state("hc2")) == ("PAUSED", "PAUSED")

    alone.undo("pause")
    alone.wait_state("hc1", RUNNING)
    alone.wait_state("hc2", RUNNING)
    assert not alone.check("pause")


@pytest.mark.parametrize("status", [400, 409, 422])
def test_pause_takes_any_refusal_outside_idle_as_not_now(sandbox_factory, db_url, db_name, status):
    """HC's docs say a connection pauses only from IDLE, not what it answers otherwise: each
    answer the sandbox can play is "not now", and the next look pauses it."""
    sandbox = sandbox_factory(
        "small", writer_latency_seconds=10_000, assumptions={"pause_refused_status": status}
    )
    alone = Alone(sandbox, db_url, db_name)
    alone.add_hc2("authorized")
    app_write(alone)  # a write hc1 is slow to send keeps it busy, not IDLE
    alone.wait_state("hc1", ("POLLING_DB_CHANGES",))

    alone.act("pause")  # refused for hc1: not an error
    refused = [r for r in alone.requests_to("POST", "/actions/pause") if r["status"] >= 400]
    assert [r["status"] for r in refused] == [status]
    assert alone.state("hc1") == "POLLING_DB_CHANGES" and not alone.check("pause")

    sandbox.options.writer_latency_seconds = 0.0
    alone.do("pause")
    assert (alone.state("hc1"), alone.state("hc2")) == ("PAUSED", "PAUSED")


# -- cutover-objects ---------------------------------------------------------------------------
def test_cutover_objects_moves_triggers_and_foreign_keys_and_its_undo_moves_them_back(
    sandbox_factory, db_url, db_name
):
    alone = with_objects(sandbox_factory, db_url, db_name)
    before = alone.catalog()
    seen = alone.check("cutover-objects")
    assert not seen and "run prep first" in seen.seen
    apply_ddl(alone, "prep")  # what prepare-objects leaves

    alone.do("cutover-objects")
    after = alone.catalog()
    assert "trigger contact_touch on table salesforce2.contact" in set(after) - set(before)
    fkey = after["constraint app_order_account_sfid_fkey on table public.app_order"]
    assert "REFERENCES salesforce2.account(sfid)" in fkey

    alone.undo("cutover-objects")  # (prepare-objects' undo too: it takes both phases back)
    assert alone.catalog() == before
    assert not alone.check("cutover-objects")


# -- switch ------------------------------------------------------------------------------------
def role_settings(alone: Alone) -> list[tuple]:
    return alone.query(
        "SELECT setrole, setconfig FROM pg_db_role_setting WHERE setdatabase = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1"
    )


def test_switch_points_the_app_at_the_new_schema_and_its_undo_points_it_back(alone):
    alone.add_hc2("synced")
    alone.grant_new_schema()
    settings = role_settings(alone)
    assert (alone.reaches("account"), alone.reaches("opportunity")) == ("salesforce", "salesforce")

    alone.do("switch")
    assert (alone.reaches("account"), alone.reaches("opportunity")) == ("salesforce2", "salesforce")
    assert role_settings(alone) != settings

    alone.undo("switch")
    assert (alone.reaches("account"), alone.reaches("contact")) == ("salesforce", "salesforce")
    assert role_settings(alone) == settings
    assert alone.records.values["path_restored_at"]
    assert not alone.check("switch")


# -- resume-new, resume-old --------------------------------------------------------------------
def test_resume_new_runs_hc2_again_and_keeps_its_last_polls(alone):
    alone.add_hc2("authorized")
    alone.pause("hc2")
    alone.do("resume-new")
    assert alone.state("hc2") in RUNNING
    assert set(alone.records.values["polls_at_resume"]) == {"Account", "Contact"}


def test_resume_old_runs_hc1_again(alone):
    alone.pause("hc1")
    alone.do("resume-old")
    assert alone.state("hc1") in RUNNING


# -- delete-old --------------------------------------------------------------------------------
def test_delete_old_deletes_the_moved_mappings_from_hc1_past_the_point_of_no_return(alone):
    with pytest.raises(StepStopped, match="no stored export"):
        alone.act("delete-old")
    alone.export()
    alone.pause("hc1")  # a write that reached OLD after the drain: hc1 would never send it
    app_write(alone)
    with pytest.raises(StepStopped, match="1 app write"):
        alone.act("delete-old")
    assert {"Account", "Contact"} <= {m.object_name for m in alone.hc("hc1").mappings}
    assert alone.records.values.get("point_of_no_return") is None
    alone.resume("hc1")
    wait_until(lambda: pending(alone) == 0, what="hc1 to send the write")

    alone.do("delete-old")
    moved = {m.object_name for m in alone.hc("hc1").mappings}
    assert moved == {"Opportunity", "Case", "Invoice__c"}
    assert alone.query("SELECT to_regclass('salesforce.account')") == [(None,)]  # HC dropped it
    assert alone.records.values["point_of_no_return"]["step"] == "delete-old"
    assert "point_of_no_return" in [e.kind for e in alone.events]


def test_delete_old_undo_puts_back_what_it_retired_when_it_deleted_nothing(
    sandbox_factory, db_url, db_name
):
    alone = with_objects(sandbox_factory, db_url, db_name)
    alone.export()
    apply_ddl(alone, "prep", "cutover")  # what prepare-objects and cutover-objects leave
    copies = alone.catalog()
    # Heroku Connect refuses every mapping DELETE: delete-old has retired OLD's copies first
    alone.admin("POST", "/faults", {"rate": 1.0, "kinds": ["503"], "only": "DELETE /connect"})
    with pytest.raises(HerokuError):
        alone.act("delete-old")
    retired = {r["identity"] for r in alone.records.values["retired"]}
    assert retired and set(copies) - set(alone.catalog())
    alone.admin("POST", "/faults", {"rate": 0.0})

    alone.undo("delete-old")
    assert alone.catalog() == copies
    assert {"Account", "Contact"} <= {m.object_name for m in alone.hc("hc1").mappings}


# -- verify ------------------------------------------------------------------------------------
def hc2_resumed(alone: Alone) -> None:
    """Where verify starts, but for the switch: hc2 loaded and resumed by resume-new."""
    alone.add_hc2("synced")
    alone.grant_new_schema()
    alone.remember(outage_started_at=time.time())
    alone.pause("hc2")  # what resume-new does: keep hc2's last polls, resume it
    alone.remember(polls_at_resume=sf_polls(alone.run("verify"), "hc2"))
    alone.resume("hc2")


def switch_by_hand(alone: Alone) -> None:
    role, db = alone.plan.roles[0], alone.db_name
    path = "salesforce2, salesforce, public"
    alone.query(f'ALTER ROLE "{role}" IN DATABASE "{db}" SET search_path = {path}')


def test_verify_passes_once_the_names_resolve_to_the_new_schema_and_hc2_has_polled(alone):
    hc2_resumed(alone)
    seen = alone.check("verify")
    assert not seen and "resolution" in seen.seen  # the app's role still reaches salesforce

    switch_by_hand(alone)
    assert "data arriving" in alone.wait("verify").seen
    assert alone.reaches("account") == "salesforce2"
    assert alone.records.values["diagnose_new"]["addon"] == "hc2"  # recorded for the report


def test_verify_records_hcs_diagnose_of_hc2_and_never_keeps_the_app_down_for_it(alone):
    hc2_resumed(alone)
    failed = {"rule_id": "MAPPING_STATE", "object_name": "Account", "display_name": "Mapping State",
              "message": "The mapping is in state BAD_CONFIG."}  # fmt: skip
    alone.admin("POST", "/connections/hc2/diagnose", {"fail": [failed | {"level": "errors"}]})
    seen = alone.check("verify")
    assert not seen and "hc2 diagnose" not in seen.seen  # asked only once the rest passes
    hc2 = alone.ref("hc2").id
    assert alone.requests_to("POST", f"/connections/{hc2}/validations") == []

    switch_by_hand(alone)
    named = "hc2 diagnose: Account: Mapping State — The mapping is in state BAD_CONFIG."
    # an error: verify passes (its own checks proved the switch), the error goes to the ledger
    seen = wait_until(lambda: alone.check("verify"), what="verify to pass")
    assert named in seen.seen and "blocking item of the ledger" in seen.seen
    levels = {(f["object_name"], f["level"]) for f in seen.data["diagnose"]["failures"]}
    assert ("Account", "error") in levels
    assert alone.check("verify")  # looked at again soon after: the same answer,
    assert len(alone.requests_to("POST", f"/connections/{hc2}/validations")) == 1  # not asked

    # a warning is recorded and told
    alone.admin("POST", "/connections/hc2/diagnose", {"fail": [failed | {"level": "warnings"}]})
    alone.records.values["diagnose_new"]["at"] -= DIAGNOSE_REUSE_SECONDS  # HC is asked again
    seen = alone.check("verify")
    assert seen and "hc2 diagnose: Account: Mapping State (warning) — The mapping" in seen.seen
    assert "blocking" not in seen.seen
    levels = {(f["object_name"], f["level"]) for f in seen.data["diagnose"]["failures"]}
    assert ("Account", "warning") in levels and seen.data["diagnose"] == (
        alone.records.values["diagnose_new"]
    )


# -- restore -----------------------------------------------------------------------------------
def test_restore_brings_back_the_recorded_formation_and_ends_sessions_from_before_the_switch(
    alone,
):
    recorded = [
        {"type": f.type, "quantity": f.quantity, "size": f.size}
        for f in alone.platform.formation(APP)
    ]
    alone.platform.set_maintenance(APP, True)  # as stop-writes leaves the app
    alone.platform.update_formation(APP, [{"type": t, "quantity": 0} for t in WRITERS])
    with pytest.raises(StepStopped, match="heroku ps:scale"):
        alone.act("restore")  # nothing recorded what to scale back to: it does not guess
    assert formation(alone) == dict.fromkeys(WRITERS, 0)

    alone.remember(formation=recorded, maintenance_before=False)
    with alone.app_session() as stale:  # logged in before the switch: it keeps the old path
        alone.remember(search_path={"switched_at": dt.datetime.now(dt.UTC).isoformat()})
        assert not alone.check("restore")

        alone.do("restore")
        assert formation(alone) == WRITERS
        assert alone.platform.app(APP).maintenance is False
        assert up(alone) == sum(WRITERS.values())
        pid = stale.info.backend_pid
        assert alone.query("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)) == []
        assert [s["pid"] for s in alone.records.values["sessions_ended"]] == [pid]


# -- external-objects --------------------------------------------------------------------------
def test_external_objects_has_nothing_to_re_point_when_hc1_serves_none(alone):
    assert (alone.hc("hc1").model_extra or {}).get("odata") is None
    assert alone.check("external-objects")
    assert alone.asked("external-objects") == []


# -- the phase ---------------------------------------------------------------------------------
def test_every_cutover_step_has_a_test_of_its_own_here():
    assert untested(runbook.CUTOVER, globals()) == []
