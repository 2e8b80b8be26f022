"""Every job `swapbot worker` runs for Slack answers, whatever it raises: in process, with the
Slack stand-in and real Redis, and an engine that fails the way Heroku, PostgreSQL or Redis
do. (tests/test_slack_approvals.py does the same through real processes.)"""

from __future__ import annotations

import time
import types
from typing import Any

import psycopg
import pytest
import redis

from swapbot import commands, config
from swapbot.heroku import ServerError
from swapbot.slack import blocks, work
from swapbot.slack.notifier import ApprovalMessages
from swapbot.swap.approvals import Approvals
from swapbot.swap.events import Event
from swapbot.swap.store import Store
from swapbot.swap.views import Status
from swapbot.testing.rehearsal import said
from swapbot.testing.services import REDIS_TEST_URL
from swapbot.testing.slack_stack import APPROVER, CHANNEL, OPERATOR, standin
from swapbot.testing.standin import SlackStandIn

DB_URL = "postgresql://swapbot:hunter2-pw@db.internal:5432/prod"
SWAP = "work-failures"


class FailingEngine:
    """What `work` uses of an engine; `approve` raises `error`."""

    def __init__(self, store: Store, error: Exception):
        self.store, self.error = store, error
        self.approvals = Approvals(store)
        self.emitted: list[tuple[str, str, dict[str, Any]]] = []

    def current_plan(self) -> Any:
        return types.SimpleNamespace(swap_id=SWAP)

    def approve(self, request_id: str, actor: str, *, at: float | None = None) -> Any:
        raise self.error

    def emit(self, kind: str, swap_id: str, **kw: Any) -> None:
        self.emitted.append((kind, swap_id, kw))


@pytest.fixture
def slack() -> SlackStandIn:
    s = standin()
    yield s
    s.stop()


@pytest.fixture
def setting_env(monkeypatch, slack, redis_prefix) -> config.Settings:
    for key, value in {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.api_url,
        "SWAPBOT_CHANNEL": CHANNEL,
        "REDIS_URL": REDIS_TEST_URL,
        "SWAPBOT_REDIS_PREFIX": redis_prefix,
        "DATABASE_URL": DB_URL,
        "HEROKU_API_TOKEN": "hrku-secret-token-99",
    }.items():
        monkeypatch.setenv(key, value)
    return config.load_settings()


def with_engine(monkeypatch, settings, slack, engine) -> None:
    client = work.web_client(settings)
    monkeypatch.setattr(work, "context", lambda: (settings, client, engine))


def approval_message(slack: SlackStandIn, store: Store) -> tuple[str, str]:
    msg = slack.post_as("U0SWAPBOT", CHANNEL, "Approval needed: pause")
    req = Approvals(store).request(SWAP, "pause", OPERATOR, "fp", "live")
    ApprovalMessages(store).remember(SWAP, req.id, CHANNEL, msg.ts)
    return req.id, msg.ts


def private(slack: SlackStandIn, user: str) -> list[str]:
    return [said(m) for m in slack.ephemerals(user)]


@pytest.mark.parametrize(
    "error",
    [
        ServerError(503, "unavailable", "Service temporarily unavailable.", "GET", "/connections"),
        psycopg.OperationalError(f'connection to "{DB_URL}" failed: timeout\nDETAIL: more'),
        redis.exceptions.ConnectionError("Connection refused"),
        KeyError("a bug"),
    ],
    ids=["heroku-503", "postgres", "redis", "bug"],
)
def test_a_reaction_whose_job_raised_is_answered_to_the_approver(
    monkeypatch, slack, setting_env, redis_prefix, error
):
    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)
    rid, ts = approval_message(slack, store)
    with_engine(monkeypatch, setting_env, slack, FailingEngine(store, error))
    result = work.handle_reaction(
        {"user": APPROVER, "channel": CHANNEL, "ts": ts, "item_user": "U0SWAPBOT"}
    )
    assert result["status"] == "failed"
    [answer] = private(slack, APPROVER)
    assert f"approval of {rid} could not be recorded: {type(error).__name__}" in answer
    assert "remove the reaction and add it again" in answer
    assert "hunter2-pw" not in answer and DB_URL not in answer and "more" not in answer


def test_a_reaction_answers_even_when_the_worker_cannot_build_its_engine(
    monkeypatch, slack, setting_env
):
    def broken() -> Any:
        raise psycopg.OperationalError(f"could not connect to {DB_URL}")

    monkeypatch.setattr(work, "context", broken)
    ts = slack.post_as("U0SWAPBOT", CHANNEL, "Approval needed: pause").ts
    result = work.handle_reaction({"user": APPROVER, "channel": CHANNEL, "ts": ts})
    assert result["status"] == "failed"
    [answer] = private(slack, APPROVER)
    assert "approval of that request could not be recorded: OperationalError" in answer
    assert "hunter2-pw" not in answer


def test_a_withdrawal_that_failed_is_answered(monkeypatch, slack, setting_env, redis_prefix):
    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)
    rid, ts = approval_message(slack, store)
    engine = FailingEngine(store, RuntimeError("x"))

    def withdraw(*_a: Any) -> Any:
        raise redis.exceptions.TimeoutError("Timeout reading from redis")

    monkeypatch.setattr(engine.approvals, "withdraw", withdraw)
    with_engine(monkeypatch, setting_env, slack, engine)
    result = work.handle_reaction_removed({"user": APPROVER, "channel": CHANNEL, "ts": ts})
    assert result["status"] == "failed" and engine.emitted == []
    [answer] = private(slack, APPROVER)
    assert f"withdrawal of the approval of {rid} could not be recorded" in answer
    assert "the approval still stands" in answer


def test_a_command_whose_job_raised_is_answered_and_told_to_the_thread(
    monkeypatch, slack, setting_env, redis_prefix
):
    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)
    store.redis.set(store.key("swap", "current"), SWAP)
    engine = FailingEngine(store, RuntimeError("x"))
    with_engine(monkeypatch, setting_env, slack, engine)

    def execute(*_a: Any, **_kw: Any) -> Any:
        raise psycopg.OperationalError(f"server closed the connection to {DB_URL}\nmore")

    monkeypatch.setattr(work.commands, "execute", execute)
    result = work.run_command("pause", OPERATOR, CHANNEL, None)
    assert result["status"] == "failed"
    assert result["message"].startswith("failed: OperationalError: server closed")
    [answer] = private(slack, OPERATOR)
    assert "/hcswap pause failed" in answer and "nothing else was done" in answer
    assert "`/hcswap status` shows where the swap stands" in answer
    assert "hunter2-pw" not in answer and DB_URL not in answer
    [(kind, swap_id, notice)] = engine.emitted
    assert (kind, swap_id, notice["step"], notice["actor"]) == ("notice", SWAP, "pause", OPERATOR)
    # what was typed is code in the thread: never a mention
    assert notice["message"].startswith(f"`/hcswap pause` by {OPERATOR}: failed: OperationalError")
    assert "hunter2-pw" not in notice["message"]

    # a read that fails is answered too, without troubling the thread
    monkeypatch.setattr(work, "status_snapshot", lambda *_a: (_ for _ in ()).throw(KeyError("k")))
    assert work.run_command("status", OPERATOR, CHANNEL, None)["status"] == "failed"
    assert "/hcswap status failed" in private(slack, OPERATOR)[-1]
    assert len(engine.emitted) == 1


def test_a_status_snapshot_this_version_cannot_read_is_looked_at_again(monkeypatch, redis_prefix):
    """`status` keeps its view in Redis for two seconds as JSON; one written by another release
    (a deploy in between) that no longer validates is not shown: the bot looks again."""
    store = Store(redis.Redis.from_url(REDIS_TEST_URL), prefix=redis_prefix)
    engine: Any = types.SimpleNamespace(store=store)
    settings: Any = types.SimpleNamespace(heroku_app_name="acme-prod")
    looks: list[str | None] = []

    def look(_engine: Any, app: str | None) -> Status:
        looks.append(app)
        return Status(app=app, message=f"look {len(looks)}")

    monkeypatch.setattr(work.commands, "status", look)
    store.redis.set(work.snapshot_key(store), '{"app": 3, "steps": "not a list"}', px=60_000)
    assert work.status_snapshot(engine, settings).message == "look 1"
    assert work.status_snapshot(engine, settings).message == "look 1"  # the new snapshot
    assert looks == ["acme-prod"]


# -- a step's answer that outlives its response_url ----------------------------------------------
def long_step(monkeypatch, slack, setting_env, redis_prefix) -> tuple[Store, str]:
    """A current swap whose thread exists, and a rollback that answers at length."""
    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)
    store.redis.set(store.key("swap", "current"), SWAP)
    root = slack.post_as("U0SWAPBOT", CHANNEL, "swap work-failures: progress follows")
    store.redis.set(store.swap_key(SWAP, "slack", "thread"), root.ts)
    with_engine(monkeypatch, setting_env, slack, FailingEngine(store, RuntimeError("x")))
    calls = [f"PATCH /apps/acme-prod/formation web={i}" for i in range(600)]

    def execute(_engine: Any, cmd: Any, _user: Any, **_kw: Any) -> Any:
        message = "rolled back with 600 change(s)"
        return commands.Reply(cmd, "done", message, calls=calls, swap_id=SWAP)

    monkeypatch.setattr(work.commands, "execute", execute)
    return store, root.ts


def test_a_step_answered_after_30_minutes_also_lands_in_the_thread(
    monkeypatch, slack, setting_env, redis_prefix
):
    """The issue: a step that outlives its response_url (30 minutes) was answered only with
    ephemeral messages, which Slack does not promise to deliver and which are gone on a reload.
    The whole answer also goes to the swap's thread, naming the person who asked."""
    _, thread = long_step(monkeypatch, slack, setting_env, redis_prefix)
    url = slack.response_url(OPERATOR, CHANNEL)
    result = work.run_command("rollback", OPERATOR, CHANNEL, url, queued_at=time.time() - 31 * 60)
    assert result["status"] == "done"
    answers = private(slack, OPERATOR)
    assert answers and "rolled back with 600 change(s)" in answers[0]
    posted = slack.thread(CHANNEL, thread)
    assert len(posted) == len(answers) > 1  # every part of it
    assert posted[0].text.startswith(f"<@{OPERATOR}>: /hcswap rollback done")
    assert f"For <@{OPERATOR}>, who typed `/hcswap rollback`" in said(posted[0])
    shown = "\n".join(t for m in posted for t in blocks._texts(m.blocks))
    for i in range(600):
        assert f"formation web={i}\n" in shown, i
    assert not slack.violations


def test_an_answer_through_the_response_url_stays_private(
    monkeypatch, slack, setting_env, redis_prefix
):
    _, thread = long_step(monkeypatch, slack, setting_env, redis_prefix)
    url = slack.response_url(OPERATOR, CHANNEL)
    assert work.run_command("rollback", OPERATOR, CHANNEL, url)["status"] == "done"
    assert slack.thread(CHANNEL, thread) == []
    parts = [m for m in slack.messages(CHANNEL) if m.source == "response_url"]
    assert len(parts) > 1 and all(m.ephemeral_to == OPERATOR for m in parts)


def test_a_command_noted_in_the_thread_is_code_so_what_was_typed_pings_no_one(
    monkeypatch, slack, setting_env, redis_prefix
):
    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)
    store.redis.set(store.key("swap", "current"), SWAP)
    engine = FailingEngine(store, RuntimeError("x"))
    with_engine(monkeypatch, setting_env, slack, engine)

    def execute(_engine: Any, cmd: Any, _user: Any, **_kw: Any) -> Any:
        return commands.Reply(cmd, "refused", "there is no plan yet", swap_id=SWAP)

    monkeypatch.setattr(work.commands, "execute", execute)
    url = slack.response_url(OPERATOR, CHANNEL)  # answered there: the thread gets a notice
    work.run_command("request-approval pause ask UABCDEFGH12 `now`", OPERATOR, CHANNEL, url)
    [(kind, swap_id, notice)] = engine.emitted
    line = blocks.milestone(Event(kind="notice", swap_id=SWAP, **notice))
    assert "UABCDEFGH12" in line and "<@UABCDEFGH12>" not in line
    assert f"by <@{OPERATOR}>: refused: there is no plan yet" in line
    assert "`/hcswap request-approval pause ask UABCDEFGH12 'now'`" in line
