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
from swapbot.swap.run import StepStopped
from swapbot.testing.services import TOKEN, wait_until
from swapbot.testing.swaps import (
    OPERATOR,
    demo_plan,
    make_engine,
    org_misses,
    run_prep,
    unsent_writes,
)

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow

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
    from swapbot.commands import plan_show, render_plan

    text = render_plan(engine, plan_show(engine))
    assert "acme-admin: stop-writes stops worker too" in text
    assert "acme-prod: stop-writes stops web, worker, clock, through the pooler" in text
    assert "policy  sessions from before the switch: terminate" in text


def test_the_plan_form_offers_every_other_app_and_marks_an_unnamed_one(shared, db_name):
    from swapbot.slack import plan_form
    from swapbot.slack.blocks import plan_form as form
    from swapbot.swap.run import PlanMismatch

    _, engine, platform = shared
    assert plan_form._other_apps(platform, "acme-prod", None) == {"acme-admin": ["web", "worker"]}
    assert plan_form._other_apps(platform, "acme-prod", "acme-admin") == {}  # swapbot's own
    with pytest.raises(PlanMismatch) as refused:
        engine.save_plan(demo_plan(db_name), OPERATOR)
    facts = form.FormFacts(app="acme-prod", old_addon="hc1", old_schema="salesforce", new_addon="hc2", swap_id="s", new_schema="s2", objects=["Account"], other_apps=plan_form._other_apps(platform, "acme-prod", None))  # fmt: skip
    placed, rest = form.place(refused.value.problems, form.Submitted(), facts)
    assert list(placed) == [form.ALSO_STOP] and rest == []
    assert "also attached to acme-admin" in placed[form.ALSO_STOP]


def test_every_writer_is_stopped_and_restored_and_every_write_reaches_salesforce(
    shared, db, db_name
):
    sandbox, engine, platform = shared
    engine.save_plan(shared_plan(db_name), OPERATOR)
    run_prep(engine, sandbox)
    role = engine.current_plan().roles[0]
    # The pool opens its sessions with the app's first writes: on a busy machine, wait for
    # them, or there would be no session from before the switch to end.
    pooled = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbouncer'"
    wait_until(lambda: db.execute(pooled).fetchone()[0] > 0, what="the pool's sessions")
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

    wait_until(lambda: not org_misses(db, last), timeout=60, what="every app write in Salesforce")
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
    assert "without one" in out.message or "still writing" in out.message, out.message
    assert platform.app("acme-admin").maintenance is False  # a reader is left running
    platform.update_formation("acme-admin", [{"type": "worker", "quantity": 0}])
    out = engine.run_step("stop-writes", OPERATOR, app="acme-prod")
    assert out.status == "done", out.message


def test_a_plan_stored_before_the_writer_fields_keeps_its_fingerprint():
    """Approvals are bound to the plan's fingerprint: an upgrade mid-swap must not void them."""
    from swapbot.swap.plan import Plan

    plan = Plan(
        swap_id="abc-1",
        app="acme-prod",
        new_schema="s2",
        mappings={"Account": ["Rating"]},
        roles=["r"],
    )
    assert plan.fingerprint({"x": 1}) == "a015d1c6dc56"  # as the plan before them printed it
    assert plan.model_copy(update={"quiet_seconds": 5.0}).fingerprint({"x": 1}) != "a015d1c6dc56"


def test_the_bots_own_app_is_never_a_writer_and_other_credentials_must_be_switched_too(
    sandbox_factory, db, db_url, db_name, redis_prefix
):
    sandbox = sandbox_factory("shared-db", org_changes_per_second=0.0)
    mine = make_engine(sandbox, db_url, redis_prefix, own_app="acme-admin")
    with pytest.raises(StepStopped) as refused:
        mine.save_plan(shared_plan(db_name), OPERATOR)
    assert "acme-admin is swapbot's own app: it is never stopped" in str(refused.value)
    mine.save_plan(demo_plan(db_name), OPERATOR)  # not asked about: it is swapbot itself
    from swapbot.commands import plan_show, render_plan

    assert "acme-admin: swapbot itself, never stopped" in render_plan(mine, plan_show(mine))
    # a writer attached with a credential of its own keeps its path unless its role switches
    db.execute(
        "UPDATE _hcsandbox.attachment SET namespace = 'credential:reporting' "
        "WHERE app = 'acme-admin'"
    )
    other = make_engine(sandbox, db_url, redis_prefix + "other:")
    with pytest.raises(StepStopped) as refused:
        other.save_plan(shared_plan(db_name, swap_id="acme-other"), OPERATOR)
    assert "acme-admin reaches the database as credential reporting" in str(refused.value)


def test_a_write_that_reached_an_old_table_after_the_drain_stops_delete_old(shared, db, db_url):
    sandbox, engine, platform = shared
    engine.save_plan(shared_plan(db_url.rsplit("/", 1)[1]), OPERATOR)
    run_prep(engine, sandbox)
    for name in ("stop-writes", "drain", "pause", "cutover-objects", "switch", "resume-new"):
        assert engine.run_step(name, OPERATOR, app="acme-prod", break_glass=GLASS).ok, name
    # a writer nobody named, whose write the quiet interval missed, into the old table
    db.execute("UPDATE salesforce.account SET billingcity = 'late' WHERE id = 1")
    out = engine.run_step("delete-old", OPERATOR, break_glass=GLASS)
    assert out.status == "failed", out.message
    assert "1 app write(s) reached salesforce's moved tables after the drain" in out.message
    assert not engine.standing("acme-test").point_of_no_return  # nothing deleted
    assert engine.rollback(OPERATOR).status == "done"  # hc1 resumes and sends it
    wait_until(lambda: unsent_writes(db) == 0, timeout=30, what="hc1 to send the late write")


def test_a_switch_not_proven_through_the_pooler_is_not_done(shared, db_name):
    sandbox, engine, platform = shared
    engine.save_plan(shared_plan(db_name), OPERATOR)
    run_prep(engine, sandbox)
    for name in ("stop-writes", "drain", "pause", "cutover-objects"):
        assert engine.run_step(name, OPERATOR, app="acme-prod", break_glass=GLASS).ok, name
    pool = platform.config_vars("acme-prod")["DATABASE_CONNECTION_POOL_URL"].get_secret_value()
    broken = "postgresql://app:S3CRETpw@127.0.0.1:1/nowhere"
    platform._transport.request(  # the config var as an operator might mistype it
        "PATCH",
        f"{sandbox.platform_url}/apps/acme-prod/config-vars",
        json={"DATABASE_CONNECTION_POOL_URL": broken},
    )
    out = engine.run_step("switch", OPERATOR, wait=False)
    assert out.status == "waiting" and "no session through it" in out.message, out.message
    assert "S3CRET" not in out.message
    assert not engine.run_step("resume-new", OPERATOR).ok  # switch is not done
    platform._transport.request(
        "PATCH",
        f"{sandbox.platform_url}/apps/acme-prod/config-vars",
        json={"DATABASE_CONNECTION_POOL_URL": pool},
    )
    out = engine.run_step("switch", OPERATOR)
    assert out.ok and "through the pooler" in out.message, out.message


def test_a_database_wide_switch_counts_every_role_s_sessions(db, db_url, db_name):
    """With no roles named (the database's own setting switched), every role's sessions count."""
    import psycopg

    from swapbot.sandbox import scenarios
    from swapbot.sandbox.scenarios import app_database_url, role_names
    from swapbot.swap import writers

    scenarios.load(db_url, scenarios.get("small"))
    plan = demo_plan(db_name, roles=[], set_database_search_path=True)
    assert writers.app_roles(plan) is None
    with psycopg.connect(app_database_url(db_url, role_names(db_name)[0])) as app:
        app.execute("SELECT 1")
        found = writers.role_sessions(db, writers.app_roles(plan))
        assert app.info.backend_pid in {s.pid for s in found}
