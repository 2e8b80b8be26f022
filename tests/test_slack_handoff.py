"""The web process's handoff of Slack events, in process against the real Redis: an event is
marked seen in the same Redis operation that queues it (one round trip), or not at all; and
what a failed job tells a person carries no secret."""

from __future__ import annotations

import json
import time

import pytest
import redis
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from swapbot import config, jobs
from swapbot.slack import work
from swapbot.slack.app import build_app
from swapbot.slack.handoff import EVENT_SEEN_TTL
from swapbot.testing.services import REDIS_TEST_URL
from swapbot.testing.standin import SlackStandIn

SECRET = "handoff-signing-secret-7a6b"


@pytest.fixture
def slack():
    with SlackStandIn() as standin:
        yield standin


def settings_for(slack: SlackStandIn, prefix: str, **extra: str) -> config.Settings:
    return config.load_settings(
        {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "SWAPBOT_CHANNEL": "C0SWAP",
            "SWAPBOT_OPERATORS": "U0OPERATOR",
            "SWAPBOT_APPROVERS": "U0APPROVER",
            "REDIS_URL": REDIS_TEST_URL,
            "SWAPBOT_REDIS_PREFIX": prefix,
            **extra,
        }
    )


def reaction_event(kind: str = "reaction_added", reaction: str = "white_check_mark", **kw) -> str:
    envelope = {
        "type": "event_callback",
        "team_id": "T0SWAPBOT",
        "api_app_id": "A0SWAPBOT",
        "event_id": kw.get("event_id", "Ev0HANDOFF1"),
        "event_time": int(time.time()),
        "event": {
            "type": kind,
            "user": "U0APPROVER",
            "reaction": reaction,
            "item": {"type": "message", "channel": "C0SWAP", "ts": "1700000000.000100"},
            "item_user": "U0SWAPBOT",
            "event_ts": f"{time.time():.6f}",
        },
    }
    return json.dumps(envelope)


def deliver(app, raw: str, retry_num: int | None = None):
    stamp = str(int(time.time()))
    headers = {
        "content-type": ["application/json"],
        "x-slack-request-timestamp": [stamp],
        "x-slack-signature": [
            SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=raw)
        ],
    }
    if retry_num is not None:
        headers["x-slack-retry-num"] = [str(retry_num)]
        headers["x-slack-retry-reason"] = ["http_timeout"]
    return app.dispatch(BoltRequest(body=raw, headers=headers))


def test_an_event_is_marked_seen_only_with_its_handoff(slack, redis_prefix):
    settings = settings_for(slack, redis_prefix)
    conn = redis.Redis.from_url(REDIS_TEST_URL)
    app = build_app(settings, token_verification_enabled=False)
    intake, _ = jobs.intake_keys(settings)
    marker = f"{redis_prefix}dedupe:slack-event:Ev0HANDOFF1"

    conn.set(intake, "not a list")  # the push fails (WRONGTYPE): nothing may be marked
    assert deliver(app, reaction_event()).status == 503  # Slack will deliver it again
    assert not conn.exists(marker)
    conn.delete(intake)

    assert deliver(app, reaction_event(), retry_num=1).status == 200  # Slack's retry is taken
    assert conn.llen(intake) == 1 and 0 < conn.ttl(marker) <= EVENT_SEEN_TTL
    request = json.loads(conn.lindex(intake, 0))
    assert request["func"] == "swapbot.slack.work.handle_reaction"
    assert request["key"] == "Ev0HANDOFF1"  # the delivery is the job's key, not the reaction
    assert request["args"][0]["user"] == "U0APPROVER"
    assert deliver(app, reaction_event(), retry_num=2).status == 200  # handed off: dropped
    assert conn.llen(intake) == 1

    # the same reaction removed, then added again: two new events, two new jobs
    removed = reaction_event("reaction_removed", event_id="Ev0HANDOFF2")
    assert deliver(app, removed).status == 200
    assert deliver(app, reaction_event(event_id="Ev0HANDOFF3")).status == 200
    queued = [json.loads(raw) for raw in conn.lrange(intake, 0, -1)]
    assert [(r["func"].rsplit(".", 1)[1], r["key"]) for r in queued] == [
        ("handle_reaction", "Ev0HANDOFF3"),
        ("handle_reaction_removed", "Ev0HANDOFF2"),
        ("handle_reaction", "Ev0HANDOFF1"),
    ]
    # another emoji, added or removed: nothing queued, nothing marked
    assert deliver(app, reaction_event(reaction="tada", event_id="Ev0TADA")).status == 200
    assert (
        deliver(app, reaction_event("reaction_removed", "tada", event_id="Ev0TADA2")).status == 200
    )
    assert conn.llen(intake) == 3 and not conn.exists(f"{redis_prefix}dedupe:slack-event:Ev0TADA")


def test_the_handoff_is_one_round_trip_and_survives_a_flushed_script_cache(redis_prefix):
    conn = redis.Redis.from_url(REDIS_TEST_URL)
    handoff = jobs.Handoff(redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=2))
    intake = f"{redis_prefix}intake"
    assert handoff.lpush_once(f"{redis_prefix}m1", 60, intake, "one")
    mine = handoff._local.conn
    sent: list[int] = []
    real = mine.send_packed_command
    mine.send_packed_command = lambda *a, **kw: (sent.append(1), real(*a, **kw))[1]
    assert handoff.lpush_once(f"{redis_prefix}m2", 60, intake, "two")
    assert not handoff.lpush_once(f"{redis_prefix}m2", 60, intake, "two again")
    assert len(sent) == 2 and handoff._local.conn is mine  # one command each, same connection
    assert conn.lrange(intake, 0, -1) == [b"two", b"one"]

    # Redis restarted or failed over without the script: EVAL loads it again
    sent.clear()
    jobs_sha = jobs._PUSH_ONCE_SHA
    try:
        jobs._PUSH_ONCE_SHA = "0" * 40  # a script Redis has never seen
        assert handoff.lpush_once(f"{redis_prefix}m3", 60, intake, "three")
    finally:
        jobs._PUSH_ONCE_SHA = jobs_sha
    assert len(sent) == 2 and conn.llen(intake) == 3

    # a redis-py client does the same through its registered script
    settings = config.load_settings(
        {"REDIS_URL": REDIS_TEST_URL, "SWAPBOT_REDIS_PREFIX": redis_prefix}
    )
    assert jobs.push_once(conn, settings, f"{redis_prefix}m4", 60, "f", key="k")
    assert not jobs.push_once(conn, settings, f"{redis_prefix}m4", 60, "f", key="k")
    assert conn.llen(jobs.intake_keys(settings)[0]) == 4

    # Redis unreachable: it raises (the listener answers 503) after one fresh attempt
    dead = jobs.Handoff(redis.Redis(port=1, socket_connect_timeout=0.5))
    with pytest.raises(redis.exceptions.ConnectionError):
        dead.lpush_once(f"{redis_prefix}m5", 60, intake, "five")


def test_what_a_failed_job_says_carries_no_secret(slack, redis_prefix):
    db = "postgresql://swapbot:hunter2-pw@db.internal:5432/prod"
    settings = settings_for(slack, redis_prefix, DATABASE_URL=db, HEROKU_API_TOKEN="hrku-secret-99")
    error = RuntimeError(
        f'connection to "{db}" failed: FATAL: no token hrku-secret-99\n'
        "DETAIL: second line with xoxb-1-2-3"
    )
    said = work.why(error, settings)
    assert said.startswith("RuntimeError: connection to ")
    assert "\n" not in said and "second line" not in said  # one line
    for leaked in ("hunter2-pw", db, "hrku-secret-99"):
        assert leaked not in said, said
    assert len(work.why(RuntimeError("x" * 5000), settings)) <= 300
