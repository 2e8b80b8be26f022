"""Every writer stopped, every stale session gone: a swap on a database that a second app writes
to, whose first app writes through Heroku Postgres's server-side pool (the `shared-db`
scenario: the sandbox's apps write through their dynos, tests/test_sandbox_traffic.py).

The plan must name the second app; stop-writes stops both and waits for a quiet database;
the pooled sessions from before the switch are ended before the app comes back (or, if the plan
says so, maintenance stays on until a person ends them); and every write reaches Salesforce."""

from __future__ import annotations

import pytest

from swapbot.heroku import PlatformClient
from swapbot.swap import steps
from swapbot.swap.engine import StepStopped
from tests.conftest import TOKEN, wait_until
from tests.swap_support import FIELDS, OPERATOR, demo_plan, make_engine, run_prep

GLASS = "writers test"


@pytest.fixture
def shared(sandbox_factory, db_url, redis_prefix):
    sandbox = sandbox_factory("shared-db", org_changes_per_second=0.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    return sandbox, engine, PlatformClient(TOKEN, sandbox.platform_url)


def shared_plan(db_name, **changes):
    return demo_plan(db_name, other_writers={"acme-admin": ["worker"]}, **changes)


def test_the_plan_must_name_every_other_app_on_the_database(shared, db_name):
    _, engine, _ = shared
    with pytest.raises(StepStopped) as refused:
        engine.save_plan(demo_plan(db_name), OPERATOR)
    assert "also attached to acme-admin (process types web, worker)" in str(refused.value)
    assert "--also-stop acme-admin:web,worker" in str(refused.value)
    with pytest.raises(StepStopped) as refused:
        engine.save_plan(demo_plan(db_name, other_writers={"acme-admin": ["cron"]}), OPERATOR)
    assert "acme-admin has no process type cron" in str(refused.value)
    with pytest.raises(StepStopped) as refused:
        engine.save_plan(demo_plan(db_name, readers=["acme-admin", "acme-bi"]), OPERATOR)
    assert "acme-bi is not attached" in str(refused.value)
    assert engine.current_plan() is None  # nothing was saved
    engine.save_plan(demo_plan(db_name, readers=["acme-admin"]), OPERATOR)  # on purpose
    engine.save_plan(shared_plan(db_name), OPERATOR)
    from swapbot.swap.commands import plan_show, render_plan

    text = render_plan(engine, plan_show(engine))
    assert "acme-admin: stop-writes stops worker too" in text
    assert "acme-prod: stop-writes stops web, worker, clock, through the pooler" in text
    assert "policy  sessions from before the switch: terminate" in text


def test_every_writer_is_stopped_and_restored_and_every_write_reaches_salesforce(
    shared, db, db_name
):
    sandbox, engine, platform = shared
    engine.save_plan(shared_plan(db_name), OPERATOR)
    run_prep(engine, sandbox)
    role = engine.current_plan().roles[0]
    for step in steps.CUTOVER:
        app = "acme-prod" if step.name == "stop-writes" else None
        out = engine.run_step(step.name, OPERATOR, app=app, break_glass=GLASS)
        assert out.ok, (step.name, out.message)
        if step.name == "stop-writes":  # both apps stopped, and nothing writes any more
            assert platform.app("acme-admin").maintenance is True
            assert not [d for d in platform.dynos("acme-admin") if d.type == "worker"]
            stopped_at = len(sandbox.traffic.writes())
        if step.name == "switch":
            switched = engine.store.get_record("acme-test", "search_path")["switched_at"]
    # both apps as they were
    assert platform.app("acme-admin").maintenance is False
    assert {f.type: f.quantity for f in platform.formation("acme-admin")} == {"web": 1, "worker": 1}
    # the pool's sessions from before the switch were ended before the app came back
    ended = engine.store.get_record("acme-test", "sessions_ended")
    assert ended and {s["application_name"] for s in ended} == {"pgbouncer"}
    assert not db.execute(
        "SELECT pid FROM pg_stat_activity WHERE usename = %s AND backend_start < %s",
        (role, switched),
    ).fetchall()
    # no app write from the end of stop-writes to the start of restore (the outage proper)
    checkpoints = engine.store.checkpoints("acme-test")
    quiet_from = checkpoints["stop-writes"].finished_epoch
    quiet_until = checkpoints["restore"].started_epoch
    assert not [w for w in sandbox.traffic.writes() if quiet_from < w.at < quiet_until]
    # after the outage, both apps' writes to the moved tables land in the new schema
    wait_until(lambda: len(sandbox.traffic.writes()) > stopped_at + 20, timeout=30, what="writes")
    after = [w for w in sandbox.traffic.writes()[stopped_at:] if w.table in ("account", "contact")]
    assert after and {w.schema for w in after} == {"salesforce2"}, {w.schema for w in after}
    assert {w.app for w in after} == {"acme-prod", "acme-admin"}
    # and every write reached Salesforce: each record holds the last value the apps wrote
    sandbox.traffic.stop()
    last = {(w.table, w.column, w.sfid): w.value for w in sandbox.traffic.writes()}

    def synced():
        for (table, column, sfid), value in last.items():
            obj, field = FIELDS[(table, column)]
            row = db.execute(
                "SELECT data ->> %s FROM _hcsandbox.sf_record WHERE object_name = %s AND sfid = %s",
                (field, obj, sfid),
            ).fetchone()
            if row is None or row[0] != value:
                return None
        return True

    wait_until(synced, timeout=60, what="every app write in Salesforce")
    from swapbot.swap import report

    text = report.render(report.report(engine.store, "acme-test"))
    assert "acme-admin: worker=1" in text and "sessions ended" in text


def test_with_the_plan_refusing_to_end_sessions_maintenance_stays_on(shared, db, db_name):
    sandbox, engine, platform = shared
    engine.save_plan(shared_plan(db_name, stale_sessions="refuse"), OPERATOR)
    run_prep(engine, sandbox)
    for step in steps.CUTOVER[: steps.CUTOVER.index(steps.get("restore"))]:
        out = engine.run_step(step.name, OPERATOR, app="acme-prod", break_glass=GLASS)
        assert out.ok, (step.name, out.message)
    out = engine.run_step("restore", OPERATOR)
    assert out.status == "failed", out.message
    assert "keep the old one" in out.message and "pgbouncer" in out.message
    assert "pg_terminate_backend" in out.message
    assert platform.app("acme-prod").maintenance is True  # nothing came back
    assert platform.app("acme-admin").maintenance is True
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
        "'pgbouncer'"
    )
    assert engine.run_step("restore", OPERATOR).ok
    assert platform.app("acme-prod").maintenance is False


def test_a_writer_wrongly_named_a_reader_keeps_stop_writes_waiting(shared, db_name):
    """The list a person confirms can be wrong: acme-admin named a reader still writes, and
    stop-writes does not let the drain start while it does; it says who."""
    sandbox, engine, platform = shared
    engine.save_plan(demo_plan(db_name, readers=["acme-admin"]), OPERATOR)
    run_prep(engine, sandbox)
    out = engine.run_step("stop-writes", OPERATOR, app="acme-prod")
    assert out.status == "waiting", out.message
    assert "waiting for" in out.message and "without one" in out.message, out.message
    assert platform.app("acme-admin").maintenance is False  # a reader is left running
    platform.update_formation("acme-admin", [{"type": "worker", "quantity": 0}])
    out = engine.run_step("stop-writes", OPERATOR, app="acme-prod")
    assert out.status == "done", out.message
