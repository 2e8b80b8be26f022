"""The job queue (rq) and the watcher, against the sandbox and real Redis."""

from __future__ import annotations

import json

import pytest
import redis
from rq import SimpleWorker

from swapbot import config, jobs
from swapbot.swap.watcher import Watcher
from swapbot.testing.services import REDIS_TEST_URL, TOKEN, wait_until
from swapbot.testing.swaps import OPERATOR, RUN_STEP, demo_plan, make_engine

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow


def settings_env(
    monkeypatch, sandbox, db_url, redis_prefix, redis_url: str = REDIS_TEST_URL
) -> config.Settings:
    env = {
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "SWAPBOT_REDIS_PREFIX": redis_prefix,
        "HEROKU_API_TOKEN": TOKEN,
        "HEROKU_APP_NAME": "acme-prod",
        "HEROKU_API_URL": sandbox.platform_url,
        "HEROKU_CONNECT_CENTRAL_URL": sandbox.central_url,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return config.load_settings()


def test_a_queued_step_runs_in_the_worker_once_even_if_enqueued_twice(
    monkeypatch, sandbox, db_url, db_name, redis_prefix
):
    settings = settings_env(monkeypatch, sandbox, db_url, redis_prefix)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    q = jobs.queue(settings)
    q.empty()
    first = jobs.submit(q, settings, RUN_STEP, "preflight", OPERATOR, key="slack-trigger-123")
    again = jobs.submit(q, settings, RUN_STEP, "preflight", OPERATOR, key="slack-trigger-123")
    assert first.id == again.id and len(q) == 1
    SimpleWorker([q], connection=redis.Redis.from_url(REDIS_TEST_URL)).work(burst=True)
    first.refresh()
    assert first.return_value()["status"] == "done", first.return_value()
    assert engine.store.checkpoints("acme-test")["preflight"].status == "done"


def test_the_watcher_reports_state_changes_and_load_progress(
    sandbox_factory, db_url, db_name, redis_prefix
):
    sandbox = sandbox_factory("small", clock=False, load_rows_per_second=0.2)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    watcher = Watcher(engine, "acme-prod", interval=0.1)
    assert watcher.tick(now=100.0) == []  # the first look only remembers
    connect, _ = engine.clients
    hc1 = connect.find_connection("acme-prod", "hc1")
    mapping = connect.get_connection(hc1).mapping("Case")
    connect.reload_mapping(hc1, mapping.id)
    changes = watcher.tick(now=101.0)
    assert any(
        c["kind"] == "state.changed" and "DATA_SYNCED -> RELOAD_TABLE" in c["message"]
        for c in changes
    )
    import time

    time.sleep(0.05)
    sandbox.sim.step(1.0)  # the reload empties the table and loads 20 rows (0.2 a second, x100)
    watcher.tick(now=102.0)
    sandbox.sim.step(1.0)  # 20 more
    changes = watcher.tick(now=103.0)
    progress = [c for c in changes if c["kind"] == "load.progress" and c["object"] == "Case"]
    assert progress and progress[0]["db"] == 40 and progress[0]["rows_per_second"] == 20.0
    assert progress[0]["eta_seconds"] is not None


def test_only_one_watcher_leads(sandbox, db_url, db_name, redis_prefix):
    import threading

    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    a = Watcher(engine, "acme-prod", interval=0.1, runner="worker.1")
    b = Watcher(engine, "acme-prod", interval=0.1, runner="worker.2")
    threads = [threading.Thread(target=w.run, daemon=True) for w in (a, b)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: a.leading or b.leading, timeout=5)
        for _ in range(5):
            assert not (a.leading and b.leading)
            wait_until(lambda: True, timeout=0.1)
        leader = a if a.leading else b
        leader.stop()
        other = b if leader is a else a
        wait_until(lambda: other.leading, timeout=5, what="the other watcher to take over")
    finally:
        a.stop()
        b.stop()
        for t in threads:
            t.join(timeout=5)


def test_the_watcher_reports_the_write_backlog_when_it_moves(
    sandbox_factory, db_url, db_name, redis_prefix, db
):
    sandbox = sandbox_factory("small", clock=False)  # nothing drains the trigger log
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    watcher = Watcher(engine, "acme-prod", interval=0.1)
    assert watcher.tick(now=100.0) == []
    db.execute("UPDATE salesforce.account SET name = name || '!' WHERE id IN (1, 2)")
    changes = [c for c in watcher.tick(now=101.0) if c["kind"] == "backlog"]
    assert changes and changes[0]["rows"] == 2, changes
    assert [c for c in watcher.tick(now=102.0) if c["kind"] == "backlog"] == []  # unchanged


def test_the_watcher_says_once_when_a_step_was_left_running_by_a_dead_runner(
    sandbox, db_url, db_name, redis_prefix
):
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    watcher = Watcher(engine, "acme-prod", interval=0.1)
    lease = engine.store.acquire("acme-test", "runner-that-dies", 10_000)
    engine.store.checkpoint(lease, "preflight", status="running", attempt=1)
    assert [c for c in watcher.tick() if c["kind"] == "notice"] == []  # its runner holds it
    engine.store.release(lease)  # as if the lease ran out after a kill -9
    notes = [c for c in watcher.tick() if c["kind"] == "notice"]
    assert len(notes) == 1 and "preflight was interrupted" in notes[0]["message"]
    assert [c for c in watcher.tick() if c["kind"] == "notice"] == []  # said once


def test_a_dry_run_rollback_is_not_published_to_the_event_stream(
    sandbox, db_url, db_name, redis_prefix
):
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    assert engine.run_step("preflight", OPERATOR).status == "done"
    published = len(engine.store.read_events("acme-test"))
    with engine.emitter.capture() as seen:
        assert engine.rollback(OPERATOR, dry_run=True).status == "dry-run"
    assert any(e.kind == "rollback.started" for e in seen)  # the person who asked sees it
    assert len(engine.store.read_events("acme-test")) == published  # the channel does not


def test_the_intake_turns_pushed_requests_into_jobs_once_and_survives_a_dead_taker(
    monkeypatch, sandbox, db_url, redis_prefix
):
    settings = settings_env(monkeypatch, sandbox, db_url, redis_prefix)
    conn = redis.Redis.from_url(REDIS_TEST_URL)
    intake = jobs.Intake(settings, conn)
    waiting, taking = jobs.intake_keys(settings)
    jobs.push(conn, settings, RUN_STEP, "preflight", OPERATOR, key="t-1")
    jobs.push(conn, settings, RUN_STEP, "preflight", OPERATOR, key="t-1")
    first, again = intake.take(), intake.take()
    assert first.id == again.id  # Slack's retry of the same request: one job
    assert intake.take() is None and conn.llen(taking) == 0
    assert len(jobs.queue(settings, conn, jobs.INTERACTIVE)) == 1
    # a worker died between taking a request and queueing it: the next one puts it back
    jobs.push(conn, settings, RUN_STEP, "configure", OPERATOR, key="t-2")
    conn.lmove(waiting, taking, "RIGHT", "LEFT")
    assert intake.take() is None
    assert jobs.Intake(settings, conn).recover() == 1
    assert intake.take() is not None and conn.llen(taking) == 0
    conn.lpush(waiting, "not json")  # a broken request is logged and dropped, never retried
    assert intake.take() is None and conn.llen(waiting) == conn.llen(taking) == 0


def test_the_web_processs_handoff_pushes_on_its_threads_connection_and_reconnects(
    monkeypatch, sandbox, db_url, redis_prefix
):
    settings = settings_env(monkeypatch, sandbox, db_url, redis_prefix)
    conn = redis.Redis.from_url(REDIS_TEST_URL)
    handoff = jobs.Handoff(redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=2))
    waiting, _ = jobs.intake_keys(settings)
    jobs.push(handoff, settings, RUN_STEP, "preflight", OPERATOR, key="a")
    mine = handoff._local.conn
    jobs.push(handoff, settings, RUN_STEP, "preflight", OPERATOR, key="b")
    assert handoff._local.conn is mine  # one connection per thread, kept
    assert conn.llen(waiting) == 2

    # Redis drops the connection (a restart, an idle timeout): the next push reconnects once.
    mine.send_command("CLIENT", "ID")
    assert conn.client_kill_filter(_id=mine.read_response()) == 1
    jobs.push(handoff, settings, RUN_STEP, "configure", OPERATOR, key="c")
    assert handoff._local.conn is not mine and conn.llen(waiting) == 3
    first = json.loads(conn.lindex(waiting, 0))
    assert first["args"] == ["configure", OPERATOR] and first["key"] == "c"

    # Redis unreachable: the push fails (the ack says so), after one fresh attempt.
    dead = jobs.Handoff(redis.Redis(port=1, socket_connect_timeout=0.5))
    with pytest.raises(redis.exceptions.ConnectionError):
        jobs.push(dead, settings, RUN_STEP, "x", OPERATOR, key="d")
    assert conn.llen(waiting) == 3


def test_jobs_in_one_worker_process_share_an_engine_and_its_redis_connection(
    monkeypatch, sandbox, db_url, redis_prefix, private_redis_url
):
    """Each job used to build its own engine: one new Redis connection per status (over TLS to
    Heroku Redis, a handshake each time). A forked process or new settings get their own."""
    from swapbot.slack import work
    from swapbot.testing.slack_stack import CHANNEL, READER, standin

    settings_env(monkeypatch, sandbox, db_url, redis_prefix, private_redis_url)
    slack = standin()
    try:
        for key, value in {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_URL": slack.api_url,
            "SWAPBOT_CHANNEL": CHANNEL,
        }.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(work, "_built", {})
        server = redis.Redis.from_url(private_redis_url)
        work.run_command("status", READER, CHANNEL, None)
        opened = server.info("stats")["total_connections_received"]
        for _ in range(5):
            assert work.run_command("status", READER, CHANNEL, None)["status"] == "ok"
        assert server.info("stats")["total_connections_received"] == opened
        assert len(slack.messages(CHANNEL)) == 6  # every status was answered

        _, _, engine = work.context()
        monkeypatch.setenv("SWAPBOT_APPROVAL_MINUTES", "7")
        assert work.context()[2] is not engine  # new settings, new engine
        changed = work.context()[2]
        monkeypatch.setattr(work.os, "getpid", lambda: -1)
        assert work.context()[2] is not changed  # a forked child builds its own
    finally:
        slack.stop()
