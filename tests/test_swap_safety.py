"""The engine's record of the swap stays true when people type steps out of order, when Heroku
answers part of the point of no return with an error, when Redis loses the swap, when a lock or
a killed session or a slow API stops a step, and when someone plans another swap mid-outage.

Each test is one observation of an adversarial run against real processes, the sandbox, real
PostgreSQL and real Redis; each failed on the engine before these rules were kept."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
import requests

from swapbot.heroku import ConnectClient
from swapbot.sandbox import scenarios
from swapbot.sandbox.scenarios import app_database_url, role_names
from swapbot.swap import steps
from swapbot.testing.services import TOKEN, wait_until
from swapbot.testing.swaps import APPROVER, OPERATOR, demo_plan, make_engine, run_prep, swap_state

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow

GLASS = "safety test"


def statuses(engine) -> dict[str, str]:
    return {name: cp.status for name, cp in engine.store.checkpoints("acme-test").items()}


def approve(engine, step: str) -> None:
    requested = engine.request_approval(step, OPERATOR)
    assert requested.ok, requested.message
    assert engine.approve(requested.data["request_id"], APPROVER).ok


def hc(sandbox, addon: str):
    connect = ConnectClient(TOKEN, sandbox.central_url)
    return connect.get_connection(connect.find_connection("acme-prod", addon))


def role_settings(db) -> list:
    return db.execute(
        "SELECT setrole, setconfig FROM pg_db_role_setting WHERE setdatabase = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1"
    ).fetchall()


def objects_world():
    return scenarios.small().model_copy(update={"unmanaged_objects": True, "name": "small-obj"})


@pytest.fixture
def prepped(sandbox_factory, db_url, db_name, redis_prefix):
    sandbox = sandbox_factory("small", org_changes_per_second=0.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    run_prep(engine, sandbox)
    return sandbox, engine


# -- 1. a later step typed early --------------------------------------------------------------
def test_a_later_step_typed_in_the_outage_is_refused_and_records_nothing(prepped):
    sandbox, engine = prepped
    assert engine.run_step("stop-writes", OPERATOR, app="acme-prod").ok
    assert engine.run_step("drain", OPERATOR).ok
    before = statuses(engine)
    out = engine.run_step("verify", OPERATOR)
    # resume-new's and resume-old's proofs ("hc2/hc1 running") hold before anything was paused:
    # they must not stand for pause, the switch or delete-old
    assert out.status == "refused" and "pause is not done yet" in out.message, out.message
    assert statuses(engine) == before
    assert {m.object_name for m in hc(sandbox, "hc1").mappings} >= {"Account", "Contact"}
    # the outage is not wedged: the swap goes on in order
    approve(engine, "pause")
    for name in ("pause", "cutover-objects", "switch"):
        assert engine.run_step(name, OPERATOR).ok, name
    assert engine.rollback(OPERATOR).status == "done"


def test_a_cutover_step_typed_in_prep_is_refused_without_side_effects(prepped, db):
    sandbox, engine = prepped
    before = statuses(engine)
    for name in ("resume-old", "delete-old", "verify", "switch"):
        out = engine.run_step(name, OPERATOR, break_glass=GLASS)
        assert out.status == "refused" and "stop-writes is not done yet" in out.message, name
    assert statuses(engine) == before  # no checkpoint written for any cutover step
    # so stop-writes really runs later (it is not "already done"), and delete-old cannot run
    # while the app is live
    out = engine.run_step("stop-writes", OPERATOR, app="acme-prod")
    assert out.status == "done", out.message
    out = engine.run_step("delete-old", OPERATOR, break_glass=GLASS)
    assert out.status == "refused" and "drain is not done yet" in out.message
    assert {m.object_name for m in hc(sandbox, "hc1").mappings} >= {"Account", "Contact"}


# -- 2. the point of no return, half passed ---------------------------------------------------
def test_after_a_partial_delete_old_rollback_is_refused_and_the_swap_goes_forward(
    sandbox_factory, db_url, db_name, redis_prefix, db
):
    """One of the two mapping DELETEs answered 503: the swap is past the point of no return.
    Rollback is refused (it used to put the search_path back and lose every write after it);
    delete-old finishes, and the app's writes after the outage reach Salesforce."""
    sandbox = sandbox_factory(
        "small", org_changes_per_second=0.0, assumptions={"delete_drops_table": False}
    )
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    run_prep(engine, sandbox)
    for step in steps.CUTOVER[: steps.CUTOVER.index(steps.get("delete-old"))]:
        assert engine.run_step(step.name, OPERATOR, app="acme-prod", break_glass=GLASS).ok
    contact = hc(sandbox, "hc1").mapping("Contact")
    faults = f"{sandbox.base_url}/_sandbox/faults"
    only = f"DELETE /connect/virginia/api/v3/mappings/{contact.id}"
    requests.post(faults, json={"rate": 1.0, "only": only, "kinds": ["503"]}, timeout=5)
    approve(engine, "delete-old")
    out = engine.run_step("delete-old", OPERATOR)
    requests.post(faults, json={"rate": 0.0}, timeout=5)
    assert out.status == "failed" and out.data["retryable"], out.message
    assert engine.store.checkpoints("acme-test")["delete-old"].status == "failed"
    assert {m.object_name for m in hc(sandbox, "hc1").mappings} & {"Account", "Contact"} == {
        "Contact"
    }
    switched = role_settings(db)

    out = engine.rollback(OPERATOR)
    assert out.status == "refused" and "point of no return" in out.message, out.message
    assert "`delete-old`" in out.message and "re-import the stored export" in out.message
    assert role_settings(db) == switched  # nothing undone
    assert statuses(engine)["delete-old"] == "failed"
    assert engine.run_step("pause", OPERATOR).status == "refused"
    from swapbot.commands import render_status, status

    doc = status(engine, "acme-prod")
    assert doc.point_of_no_return is not None and doc.point_of_no_return.step == "delete-old"
    assert "PAST THE POINT OF NO RETURN" in render_status(doc)

    # forward: delete-old goes on under the approval its first attempt used
    out = engine.run_step("delete-old", OPERATOR)
    assert out.ok, out.message
    for name in ("resume-old", "verify", "restore"):
        assert engine.run_step(name, OPERATOR).ok, name
    requested = [e for e in engine.store.history("acme-test", count=500)]
    assert [e.action for e in requested if e.step == "delete-old"].count("approval.requested") == 1
    # the app writes after the outage: through its role, into the new schema, synced by hc2
    role = role_names(db_name)[0]
    with psycopg.connect(app_database_url(db_url, role), autocommit=True) as app:
        for i in range(5):
            app.execute("UPDATE contact SET lastname = %s WHERE id = %s", (f"after-{i}", i + 1))
    wait_until(
        lambda: (
            db.execute(
                "SELECT count(*) FROM salesforce2._trigger_log_archive WHERE state = 'SUCCESS' "
                "AND table_name = 'contact'"
            ).fetchone()[0]
            >= 5
        ),
        timeout=30,
        what="the app's writes after the outage sent by hc2",
    )
    assert (
        db.execute(
            "SELECT count(*) FROM salesforce._trigger_log WHERE table_name = 'contact'"
        ).fetchone()[0]
        == 0
    )


# -- 3. failures that went unanswered ---------------------------------------------------------
@pytest.fixture
def paused(sandbox_factory, db_url, db_name, redis_prefix):
    """The demo's objects (cutover-objects has DDL to run), the outage up to pause."""
    sandbox = sandbox_factory(objects_world(), org_changes_per_second=0.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    run_prep(engine, sandbox)
    for name in ("stop-writes", "drain", "pause"):
        assert engine.run_step(name, OPERATOR, app="acme-prod", break_glass=GLASS).ok
    return engine


def test_a_lock_held_on_a_new_table_fails_the_step_with_who_holds_it(paused, db_url):
    engine = paused
    holder = psycopg.connect(db_url, application_name="late-report")
    holder.execute(
        "UPDATE salesforce2.account SET name = name WHERE false"
    )  # a row lock's table lock
    with engine.emitter.capture() as events:
        out = engine.run_step("cutover-objects", OPERATOR)
    assert out.status == "failed" and out.data["retryable"], out.message
    assert "waiting on a lock held by role postgres late-report" in out.message
    assert f"pid {holder.info.backend_pid}" in out.message
    cp = engine.store.checkpoints("acme-test")["cutover-objects"]
    assert cp.status == "failed" and "late-report" in cp.error
    assert [e.kind for e in events if e.kind == "step.failed"] == ["step.failed"]
    holder.rollback()
    holder.close()
    assert engine.run_step("cutover-objects", OPERATOR).ok


def test_a_killed_database_session_fails_the_step_with_an_answer(paused, db_url, db):
    engine = paused
    holder = psycopg.connect(db_url)
    holder.execute("UPDATE salesforce2.account SET name = name WHERE false")

    def kill_the_waiting_bot() -> None:  # the step's DDL waits on the lock: end its session
        pid = wait_until(
            lambda: db.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'swapbot' "
                "AND wait_event_type = 'Lock'"
            ).fetchone(),
            what="the step waiting on the lock",
        )[0]
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))

    killer = threading.Thread(target=kill_the_waiting_bot)
    killer.start()
    out = engine.run_step("cutover-objects", OPERATOR)
    killer.join()
    holder.rollback()
    holder.close()
    assert out.status == "failed", out.message
    assert "terminating connection" in out.message and "run `cutover-objects` again" in out.message
    assert engine.store.checkpoints("acme-test")["cutover-objects"].status == "failed"
    assert engine.store.holder("acme-test") is None  # the lease is not left behind
    assert engine.run_step("cutover-objects", OPERATOR).ok


def test_a_read_slower_than_the_lease_does_not_lose_the_swap(
    sandbox_factory, db_url, db_name, redis_prefix
):
    """The lease lasts 1 s here and one Heroku Connect read takes 3 s: the heartbeat keeps
    the lease, no other runner gets in meanwhile, and the step finishes and records itself."""
    sandbox = sandbox_factory("small", org_changes_per_second=0.0)
    engine = make_engine(sandbox, db_url, redis_prefix, lease_ttl=1.0)
    other = make_engine(sandbox, db_url, redis_prefix, lease_ttl=1.0, runner="dyno-b")
    engine.save_plan(demo_plan(db_name), OPERATOR)
    assert engine.run_step("preflight", OPERATOR).ok
    faults = f"{sandbox.base_url}/_sandbox/faults"
    requests.post(
        faults,
        json={
            "rate": 1.0,
            "only": "GET /platform/apps/acme-prod/addons",
            "kinds": ["slow"],
            "slow_seconds": 3,
        },
        timeout=5,
    )
    result = {}
    runner = threading.Thread(
        target=lambda: result.update(out=engine.run_step("create-addon", OPERATOR, wait=False))
    )
    runner.start()
    time.sleep(1.8)  # past the lease's TTL, inside the slow read
    assert other.run_step("create-addon", OPERATOR).status == "refused"
    runner.join(timeout=60)
    requests.post(faults, json={"rate": 0.0}, timeout=5)
    out = result["out"]
    assert out.status in ("done", "waiting"), out.message
    assert engine.store.checkpoints("acme-test")["create-addon"].status in ("done", "waiting")


# -- 5. one swap per app ------------------------------------------------------------------------
def test_another_swap_cannot_be_planned_while_one_is_in_the_outage(prepped, db_name):
    sandbox, engine = prepped
    for name in ("stop-writes", "drain", "pause"):
        assert engine.run_step(name, OPERATOR, app="acme-prod", break_glass=GLASS).ok
    other = demo_plan(db_name, swap_id="acme-other", new_schema="salesforce3")
    with pytest.raises(Exception) as refused:
        engine.save_plan(other, OPERATOR)
    message = str(refused.value)
    assert "swap acme-test is in progress" in message and "roll it back" in message, message
    assert engine.current_plan().swap_id == "acme-test"
    out = engine.rollback(OPERATOR)
    assert out.status == "done" and "0 change" not in out.message, out.message
    engine.save_plan(other, OPERATOR)  # rolled back: another swap may be planned now
    assert engine.current_plan().swap_id == "acme-other"


# -- 6. Redis losing the swap mid-outage -----------------------------------------------------
def test_redis_lost_after_the_switch_rollback_still_puts_everything_back(
    sandbox_factory, db_url, db_name, redis_prefix
):
    sandbox = sandbox_factory("small", org_changes_per_second=0.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    before = swap_state(db_url, db_name, sandbox)
    run_prep(engine, sandbox)
    for name in ("stop-writes", "drain", "pause", "cutover-objects", "switch"):
        assert engine.run_step(name, OPERATOR, app="acme-prod", break_glass=GLASS).ok
    engine.store.forget("acme-test")  # Redis lost the swap in the outage
    out = engine.rollback(OPERATOR)
    assert out.status == "done", out.message
    assert swap_state(db_url, db_name, sandbox) == before


def test_without_the_journal_a_rollback_refuses_what_it_cannot_prove(
    sandbox_factory, db_url, db_name, redis_prefix, db
):
    """Redis lost the swap and there is no journal (a swap recorded before it existed): the
    engine neither goes on through the outage nor "rolls back" with no changes; it says what the
    live system shows and how to put it back by hand."""
    sandbox = sandbox_factory("small", org_changes_per_second=0.0)
    engine = make_engine(sandbox, db_url, redis_prefix, journal=None)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    run_prep(engine, sandbox)
    for name in ("stop-writes", "drain", "pause", "cutover-objects", "switch"):
        assert engine.run_step(name, OPERATOR, app="acme-prod", break_glass=GLASS).ok
    switched = role_settings(db)
    engine.store.forget("acme-test")
    engine.save_plan(demo_plan(db_name), OPERATOR)
    out = engine.run_step("resume-new", OPERATOR)
    assert out.status == "refused"
    out = engine.rollback(OPERATOR)
    assert out.status == "refused" and "cannot prove" in out.message, out.message
    assert "search_path of" in out.message and "maintenance" in out.message
    assert "hc1 is paused" in out.message
    assert role_settings(db) == switched  # nothing changed
    assert hc(sandbox, "hc1").state == "PAUSED"


# -- the journal and Redis agree after a loss --------------------------------------------------
def test_after_redis_loss_the_journal_takes_new_writes_and_never_undoes_progress(
    sandbox_factory, db_url, db_name, redis_prefix
):
    """Redis's fence counter goes with the swap; the journal's fences must not turn its later
    writes away, nor copy an older state back over newer progress."""
    sandbox = sandbox_factory("small", org_changes_per_second=0.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    run_prep(engine, sandbox)
    for name in ("stop-writes", "drain", "pause", "cutover-objects", "switch"):
        assert engine.run_step(name, OPERATOR, app="acme-prod", break_glass=GLASS).ok
    engine.store.forget("acme-test")
    assert engine.rollback(OPERATOR).status == "done"
    undone = statuses(engine)
    assert undone["switch"] == undone["stop-writes"] == "undone"
    journal = engine.journal.load("acme-test")
    assert {journal.steps[n]["status"] for n in ("stop-writes", "pause", "switch")} == {"undone"}
    assert engine.run_step("prepare-objects", OPERATOR).ok  # its copies went with the rollback
    out = engine.run_step("stop-writes", OPERATOR, app="acme-prod")
    assert out.status == "done", out.message  # run again, not "already done"
    assert statuses(engine)["switch"] == "undone"


def test_a_command_that_fails_before_its_step_starts_records_nothing(prepped):
    sandbox, engine = prepped
    before = statuses(engine)
    faults = f"{sandbox.base_url}/_sandbox/faults"
    requests.post(faults, json={"rate": 1.0, "only": "GET /", "kinds": ["503"]}, timeout=5)
    try:
        out = engine.run_step("stop-writes", OPERATOR, app="acme-prod")
    finally:
        requests.post(faults, json={"rate": 0.0}, timeout=5)
    assert out.status == "failed", out.message
    assert statuses(engine) == before  # no stop-writes checkpoint: nothing of it happened
    assert not engine.standing("acme-test").point_of_no_return
    assert engine.rollback(OPERATOR).status == "done"


def test_a_confirmation_is_the_same_in_redis_and_the_journal(prepped):
    _, engine = prepped
    engine.confirm("external-objects", "U0PERSON")
    with engine.emitter.capture() as events:
        engine.run_step("preflight", OPERATOR)
    assert not [e for e in events if "behind the journal" in e.message]


def test_without_postgres_for_the_journal_commands_answer_and_change_nothing(
    sandbox_factory, db_url, db_name, redis_prefix
):
    from swapbot.swap.journal import Journal
    from swapbot.swap.run import StepStopped

    sandbox = sandbox_factory("small", org_changes_per_second=0.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    away = Journal("postgresql://nobody@127.0.0.1:1/nowhere", connect_timeout=2)
    cut_off = make_engine(sandbox, db_url, redis_prefix, journal=away)
    out = cut_off.confirm("settings", "U0PERSON")
    assert out.status == "failed" and "durable record" in out.message
    assert engine.store.confirmation("acme-test", "settings") is None
    out = cut_off.run_step("preflight", OPERATOR)
    assert out.status == "refused" and "nothing was done" in out.message, out.message
    with pytest.raises(StepStopped) as refused:
        cut_off.save_plan(demo_plan(db_name, swap_id="acme-other"), OPERATOR, check=False)
    assert "durable record" in str(refused.value)
    assert engine.current_plan().swap_id == "acme-test"
