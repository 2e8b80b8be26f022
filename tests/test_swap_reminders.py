"""The watcher nudges whoever holds the swap up, once each time: approvers five minutes before a
request expires and when the outage's next step waits on their approval; a person a step asked
ten minutes ago, and every ten minutes after."""

from __future__ import annotations

import time

from swapbot.swap.watcher import ASKED, EXPIRY_NUDGE_SECONDS, PERSON_NUDGE_SECONDS, Watcher
from swapbot.testing.swaps import APPROVER, OPERATOR, demo_plan, make_engine


def reminders(changes):
    return [c for c in changes if c["kind"] == "reminder"]


def test_approvers_are_nudged_once_before_a_request_expires(sandbox, db_url, db_name, redis_prefix):
    engine = make_engine(sandbox, db_url, redis_prefix, approval_ttl=3600)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    out = engine.request_approval("pause", OPERATOR)
    assert out.ok, out.message
    (req,) = engine.approvals.pending("acme-test")
    watcher = Watcher(engine, "acme-prod")
    assert reminders(watcher.tick(now=req.expires_epoch - EXPIRY_NUDGE_SECONDS - 60)) == []
    (nudge,) = reminders(watcher.tick(now=req.expires_epoch - EXPIRY_NUDGE_SECONDS + 60))
    assert nudge["people"] == [APPROVER] and nudge["request_id"] == req.id
    assert nudge["expires_epoch"] == req.expires_epoch and "expires in 4 min" in nudge["message"]
    assert reminders(watcher.tick(now=req.expires_epoch - 30)) == []  # once


def test_a_person_asked_long_ago_is_nudged_again_every_ten_minutes(
    sandbox, db_url, db_name, redis_prefix
):
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    for step in ("preflight", "create-addon", "configure"):
        assert engine.run_step(step, OPERATOR).ok
    out = engine.run_step("authorize", OPERATOR, wait=False)
    assert out.status == "waiting", out.message
    asked = engine.store.get_record("acme-test", f"{ASKED}authorize")
    person = engine.current_plan().authorizer
    assert asked["person"] == person and abs(asked["at"] - time.time()) < 60
    watcher = Watcher(engine, "acme-prod")
    assert reminders(watcher.tick(now=asked["at"] + PERSON_NUDGE_SECONDS - 10)) == []
    (nudge,) = reminders(watcher.tick(now=asked["at"] + PERSON_NUDGE_SECONDS + 10))
    assert nudge["people"] == [person] and nudge["step"] == "authorize"
    assert "waited 10 min" in nudge["message"]
    assert reminders(watcher.tick(now=asked["at"] + PERSON_NUDGE_SECONDS + 20)) == []
    assert len(reminders(watcher.tick(now=asked["at"] + 2 * PERSON_NUDGE_SECONDS + 10))) == 1


def test_approvers_are_nudged_when_the_outages_next_step_waits_on_them(
    sandbox, db_url, db_name, redis_prefix
):
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    watcher = Watcher(engine, "acme-prod")
    lease = engine.take_lease("acme-test")
    try:
        for step in ("stop-writes", "drain"):  # as if the outage's first steps were done
            engine.store.checkpoint(lease, step, status="done")
        assert reminders(watcher.tick()) == []  # not inside the outage yet: no hurry
        engine.store.put_record(lease, "outage_started_at", time.time())
    finally:
        engine.release(lease)
    (nudge,) = reminders(watcher.tick())
    assert nudge["step"] == "pause" and nudge["people"] == [APPROVER]
    assert reminders(watcher.tick()) == []  # once


def test_a_request_that_expires_unused_is_told_expired_once(sandbox, db_url, db_name, redis_prefix):
    """Not only when someone next tries it: the channel's message loses its buttons at once."""
    engine = make_engine(sandbox, db_url, redis_prefix, approval_ttl=0.5)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    assert engine.request_approval("pause", OPERATOR).ok
    (req,) = engine.approvals.pending("acme-test")
    watcher = Watcher(engine, "acme-prod")
    assert [c for c in watcher.tick() if c["kind"] == "approval.expired"] == []
    time.sleep(0.6)
    (told,) = [c for c in watcher.tick() if c["kind"] == "approval.expired"]
    assert told["request_id"] == req.id and told["step"] == "pause"
    assert engine.approvals.get("acme-test", req.id).status == "expired"
    assert [c for c in watcher.tick() if c["kind"] == "approval.expired"] == []
