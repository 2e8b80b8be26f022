"""Two-person approvals against the real Redis, with an injected clock (no waiting 15 minutes)."""

from __future__ import annotations

import threading

import pytest
import redis

from swapbot.swap.approvals import Approvals, ApprovalStatus, Verdict
from swapbot.swap.store import Store

REDIS_URL = "redis://127.0.0.1:6379/0"
T0 = 1_700_000_000.0
APPROVERS = {"U_ANN", "U_BOB", "U_CAT"}
FP, LIVE = "plan-fp-1", "live-digest-1"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(redis_prefix, clock) -> Store:
    return Store(redis.Redis.from_url(REDIS_URL), redis_prefix, clock=clock)


@pytest.fixture
def approvals(store, clock) -> Approvals:
    return Approvals(store, ttl_s=900, clock=clock)


def ask(approvals: Approvals, step: str = "pause", requester: str = "U_ANN", **kw):
    return approvals.request("s1", step, requester, kw.pop("fp", FP), kw.pop("live", LIVE), **kw)


def grant(approvals: Approvals, request_id: str, approver: str = "U_BOB", **kw):
    return approvals.grant(
        "s1",
        request_id,
        approver,
        kw.pop("approvers", APPROVERS),
        fingerprint=kw.pop("fp", FP),
        live_digest=kw.pop("live", LIVE),
    )


def use(approvals: Approvals, step: str = "pause", **kw):
    return approvals.consume(
        "s1", step, fingerprint=kw.pop("fp", FP), live_digest=kw.pop("live", LIVE), **kw
    )


def actions(store: Store) -> list[tuple[str, str, str | None]]:
    return [(e.actor, e.action, e.step) for e in store.history("s1", count=1000)]


# -- the happy path ------------------------------------------------------------------------------
def test_request_grant_consume(approvals, store, clock):
    req = ask(approvals, note="cutover at 22:00")
    assert req.id == "pause-1" and req.status is ApprovalStatus.PENDING
    assert req.requested_at == "2023-11-14T22:13:20.000Z"
    assert req.expires_at == "2023-11-14T22:28:20.000Z" and req.expires_epoch == T0 + 900
    assert approvals.pending("s1") == [req]

    clock.advance(60)
    decision = grant(approvals, req.id)
    assert decision.granted and decision.verdict is Verdict.GRANTED
    assert "U_BOB approved pause" in decision.reason
    assert decision.request.status is ApprovalStatus.GRANTED
    assert decision.request.approver == "U_BOB"
    # The grant is good for the TTL from when it was given.
    assert decision.request.expires_epoch == T0 + 60 + 900
    assert approvals.pending("s1") == []

    clock.advance(5)
    used = use(approvals, actor="U_ANN")
    assert used.id == req.id and used.status is ApprovalStatus.USED and used.used_by == "U_ANN"
    assert used.used_epoch == T0 + 65 and used.used_at == "2023-11-14T22:14:25.000Z"
    assert actions(store) == [
        ("U_ANN", "approval.requested", "pause"),
        ("U_BOB", "approval.granted", "pause"),
        ("U_ANN", "approval.used", "pause"),
    ]


def test_an_approval_is_used_once(approvals):
    req = ask(approvals)
    grant(approvals, req.id)
    assert use(approvals) is not None
    assert use(approvals) is None
    assert "was used" in approvals.why_not("s1", "pause", fingerprint=FP, live_digest=LIVE)
    again = grant(approvals, req.id, "U_CAT")
    assert again.verdict is Verdict.ALREADY_USED and not again.granted


def test_approval_requested_ahead_stays_bound_to_its_conditions(approvals, clock):
    req = ask(approvals, step="delete-old")
    clock.advance(600)
    assert grant(approvals, req.id).granted
    clock.advance(800)  # 1400 s after the request, 800 s after the grant: still good
    assert use(approvals, "pause") is None  # another step
    assert use(approvals, "delete-old", fp="plan-fp-2") is None
    assert use(approvals, "delete-old", live="live-digest-2") is None
    assert use(approvals, "delete-old").id == req.id


# -- refusals, each with its reason --------------------------------------------------------------
def test_refused_unknown_request(approvals, store):
    d = grant(approvals, "pause-99")
    assert not d.granted and d.verdict is Verdict.UNKNOWN and "pause-99" in d.reason
    assert d.request is None
    assert actions(store) == [("U_BOB", "approval.refused", None)]


def test_refused_requester_approving_own_step(approvals, store):
    req = ask(approvals, requester="U_ANN")
    d = grant(approvals, req.id, "U_ANN")
    assert not d.granted and d.verdict is Verdict.OWN_STEP
    assert "second person" in d.reason
    assert approvals.get("s1", req.id).status is ApprovalStatus.PENDING
    entry = store.history("s1")[-1]
    assert (entry.actor, entry.action, entry.detail["verdict"]) == (
        "U_ANN",
        "approval.refused",
        "own-step",
    )


def test_refused_not_an_approver(approvals):
    req = ask(approvals)
    d = grant(approvals, req.id, "U_MALLORY")
    assert not d.granted and d.verdict is Verdict.NOT_APPROVER and "U_MALLORY" in d.reason
    assert grant(approvals, req.id, "U_BOB", approvers=set()).verdict is Verdict.NOT_APPROVER
    assert approvals.get("s1", req.id).status is ApprovalStatus.PENDING


def test_refused_expired(approvals, store, clock):
    req = ask(approvals)
    clock.advance(900)
    d = grant(approvals, req.id)
    assert not d.granted and d.verdict is Verdict.EXPIRED and "expired at 22:28:20" in d.reason
    assert approvals.get("s1", req.id).status is ApprovalStatus.EXPIRED
    assert actions(store)[-2:] == [
        ("swapbot", "approval.expired", "pause"),
        ("U_BOB", "approval.refused", "pause"),
    ]
    assert grant(approvals, req.id, "U_CAT").verdict is Verdict.EXPIRED
    assert [a for _, a, _ in actions(store)].count("approval.expired") == 1


def test_refused_already_granted(approvals):
    req = ask(approvals)
    assert grant(approvals, req.id, "U_BOB").granted
    d = grant(approvals, req.id, "U_CAT")
    assert not d.granted and d.verdict is Verdict.ALREADY_GRANTED and "U_BOB" in d.reason
    assert grant(approvals, req.id, "U_BOB").verdict is Verdict.ALREADY_GRANTED  # Slack retry


def test_refused_superseded(approvals, store):
    old = ask(approvals)
    new = ask(approvals, requester="U_CAT")
    assert new.id == "pause-2"
    assert approvals.get("s1", old.id).status is ApprovalStatus.SUPERSEDED
    assert approvals.get("s1", old.id).superseded_by == new.id
    assert approvals.pending("s1") == [new]
    d = grant(approvals, old.id)
    assert not d.granted and d.verdict is Verdict.SUPERSEDED and "pause-2" in d.reason
    assert ("U_CAT", "approval.superseded", "pause") in actions(store)
    assert grant(approvals, new.id).granted


def test_a_new_request_supersedes_only_pending_requests_of_its_step(approvals):
    pause = ask(approvals)
    delete = ask(approvals, step="delete-old")
    granted = ask(approvals, step="delete-old", requester="U_CAT")
    assert approvals.get("s1", delete.id).status is ApprovalStatus.SUPERSEDED
    assert grant(approvals, granted.id).granted
    ask(approvals, step="delete-old")
    assert approvals.get("s1", pause.id).status is ApprovalStatus.PENDING
    assert approvals.get("s1", granted.id).status is ApprovalStatus.GRANTED


def test_refused_plan_changed(approvals):
    req = ask(approvals)
    d = grant(approvals, req.id, fp="plan-fp-2")
    assert not d.granted and d.verdict is Verdict.PLAN_CHANGED and "plan changed" in d.reason
    assert approvals.get("s1", req.id).status is ApprovalStatus.PENDING


def test_refused_live_state_changed(approvals):
    req = ask(approvals)
    d = grant(approvals, req.id, live="live-digest-2")
    assert not d.granted and d.verdict is Verdict.LIVE_CHANGED and "live state" in d.reason


def test_granted_approval_is_void_once_conditions_change(approvals):
    req = ask(approvals)
    assert grant(approvals, req.id).granted
    assert use(approvals, fp="plan-fp-2") is None
    why = approvals.why_not("s1", "pause", fingerprint="plan-fp-2", live_digest=LIVE)
    assert "plan changed" in why
    why = approvals.why_not("s1", "pause", fingerprint=FP, live_digest="live-digest-2")
    assert "live state changed" in why
    assert approvals.get("s1", req.id).status is ApprovalStatus.GRANTED  # back to the same: usable
    assert use(approvals) is not None


# -- expiry --------------------------------------------------------------------------------------
def test_granted_approval_expires(approvals, store, clock):
    req = ask(approvals)
    grant(approvals, req.id)
    clock.advance(900)
    assert use(approvals) is None
    assert approvals.get("s1", req.id).status is ApprovalStatus.EXPIRED
    assert "expired" in approvals.why_not("s1", "pause", fingerprint=FP, live_digest=LIVE)
    assert actions(store)[-1] == ("swapbot", "approval.expired", "pause")


def test_expire_due_marks_and_audits_each_once(approvals, store, clock):
    first = ask(approvals)
    second = ask(approvals, step="delete-old")
    clock.advance(300)
    third = ask(approvals, step="verify")
    grant(approvals, second.id)  # granted at +300: good until +1200
    clock.advance(600)  # +900
    assert approvals.pending("s1") == [third]
    assert [r.id for r in approvals.expire_due("s1")] == [first.id]
    assert approvals.expire_due("s1") == []
    clock.advance(300)  # +1200
    expired = approvals.expire_due("s1")
    assert sorted(r.id for r in expired) == sorted([second.id, third.id])
    assert all(r.status is ApprovalStatus.EXPIRED for r in expired)
    assert approvals.expire_due("s1") == []
    expiries = [(a, s) for a, action, s in actions(store) if action == "approval.expired"]
    assert expiries == [("swapbot", "pause"), ("swapbot", "delete-old"), ("swapbot", "verify")]
    assert approvals.pending("s1") == []


def test_ttl_is_configurable(store, clock):
    short = Approvals(store, ttl_s=60, clock=clock)
    req = short.request("s1", "pause", "U_ANN", FP, LIVE)
    assert req.expires_epoch == T0 + 60
    clock.advance(61)
    d = short.grant("s1", req.id, "U_BOB", APPROVERS, fingerprint=FP, live_digest=LIVE)
    assert d.verdict is Verdict.EXPIRED
    assert short.get("s1", req.id).status is ApprovalStatus.EXPIRED


# -- races ---------------------------------------------------------------------------------------
def after_first_read(monkeypatch, method: str, parties: int) -> None:
    """Hold each thread after its first read of `Approvals.<method>` until every thread has read:
    the worst interleaving, where everyone saw the request before anyone changed it."""
    real = getattr(Approvals, method)
    everyone_read = threading.Barrier(parties, timeout=10)
    seen = threading.local()

    def read_then_wait(self, *args, **kwargs):
        found = real(self, *args, **kwargs)
        if threading.current_thread() is not threading.main_thread() and not hasattr(seen, "done"):
            seen.done = True
            everyone_read.wait()
        return found

    monkeypatch.setattr(Approvals, method, read_then_wait)


def run_all(target, args_list) -> None:
    threads = [threading.Thread(target=target, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_ten_people_approving_at_once_give_one_grant(approvals, store, monkeypatch):
    req = ask(approvals)
    people = [f"U_P{n}" for n in range(10)]
    decisions = []
    after_first_read(monkeypatch, "get", len(people))
    run_all(
        lambda p: decisions.append(grant(approvals, req.id, p, approvers=set(people))),
        [(p,) for p in people],
    )
    assert sum(d.granted for d in decisions) == 1
    losers = [d.verdict for d in decisions if not d.granted]
    assert losers == [Verdict.ALREADY_GRANTED] * 9
    grants = [e for e in store.history("s1") if e.action == "approval.granted"]
    assert len(grants) == 1
    assert approvals.get("s1", req.id).approver == grants[0].actor


def test_slack_delivering_the_same_reaction_twice_grants_once(approvals, monkeypatch):
    req = ask(approvals)
    decisions = []
    after_first_read(monkeypatch, "get", 2)
    run_all(lambda: decisions.append(grant(approvals, req.id, "U_BOB")), [(), ()])
    assert sorted(d.verdict for d in decisions) == [Verdict.ALREADY_GRANTED, Verdict.GRANTED]


def test_runners_consuming_at_once_use_it_once(approvals, monkeypatch):
    req = ask(approvals)
    grant(approvals, req.id)
    taken = []
    after_first_read(monkeypatch, "requests", 8)
    run_all(lambda: taken.append(use(approvals)), [()] * 8)
    assert [r.id for r in taken if r is not None] == [req.id]


# -- why not -------------------------------------------------------------------------------------
def test_why_not_explains_each_case(approvals, clock):
    def why() -> str:
        return approvals.why_not("s1", "pause", fingerprint=FP, live_digest=LIVE)

    assert "none was requested" in why()
    req = ask(approvals)
    assert f"{req.id} by U_ANN is waiting for a second person" in why()
    clock.advance(901)
    assert "expired" in why()


def test_every_action_is_audited_with_actor_and_time(approvals, store, clock):
    req = ask(approvals)
    clock.advance(1)
    grant(approvals, req.id, "U_ANN")
    clock.advance(1)
    grant(approvals, req.id, "U_BOB")
    clock.advance(1)
    use(approvals, actor="U_ANN")
    entries = store.history("s1")
    assert [(e.actor, e.action) for e in entries] == [
        ("U_ANN", "approval.requested"),
        ("U_ANN", "approval.refused"),
        ("U_BOB", "approval.granted"),
        ("U_ANN", "approval.used"),
    ]
    assert [e.at[-6:] for e in entries] == ["0.000Z", "1.000Z", "2.000Z", "3.000Z"]
    assert all(e.detail["request"] == req.id for e in entries)
    assert entries[0].detail["fingerprint"] == FP and entries[0].detail["live_digest"] == LIVE


# -- withdrawal ----------------------------------------------------------------------------------
def test_its_approver_withdraws_an_unused_approval_and_may_grant_it_again(approvals, store, clock):
    req = ask(approvals)
    clock.advance(60)
    assert grant(approvals, req.id, "U_BOB").granted
    clock.advance(30)
    for someone in ("U_CAT", "U_ANN"):  # not theirs to take back: nothing changes, nothing audited
        w = approvals.withdraw("s1", req.id, someone)
        assert not w.withdrawn and w.verdict is Verdict.NOT_GRANTER and "U_BOB" in w.reason
    assert approvals.get("s1", req.id).status is ApprovalStatus.GRANTED

    w = approvals.withdraw("s1", req.id, "U_BOB")
    assert w.withdrawn and w.verdict is Verdict.WITHDRAWN and "withdrew" in w.reason
    back = approvals.get("s1", req.id)
    assert back.status is ApprovalStatus.PENDING
    assert back.approver is None and back.granted_at is None  # cleared, not left behind
    assert back.expires_epoch == T0 + 60 + 900  # the grant's window, not a new one
    assert approvals.pending("s1") == [back]
    assert use(approvals) is None  # nothing granted to use
    again = approvals.withdraw("s1", req.id, "U_BOB")  # Slack's retry, or a second removal
    assert not again.withdrawn and again.verdict is Verdict.NOT_GRANTER

    clock.advance(10)
    assert grant(approvals, req.id, "U_CAT").granted  # anyone may approve it again
    assert use(approvals).approver == "U_CAT"
    assert actions(store) == [
        ("U_ANN", "approval.requested", "pause"),
        ("U_BOB", "approval.granted", "pause"),
        ("U_BOB", "approval.withdrawn", "pause"),
        ("U_CAT", "approval.granted", "pause"),
        ("swapbot", "approval.used", "pause"),
    ]


def test_a_used_or_expired_approval_cannot_be_withdrawn(approvals, store, clock):
    req = ask(approvals)
    grant(approvals, req.id, "U_BOB")
    assert use(approvals) is not None
    w = approvals.withdraw("s1", req.id, "U_BOB")
    assert (
        not w.withdrawn and w.verdict is Verdict.ALREADY_USED and "cannot be withdrawn" in w.reason
    )
    assert approvals.get("s1", req.id).status is ApprovalStatus.USED

    late = ask(approvals, "delete-old")
    grant(approvals, late.id, "U_CAT")
    clock.advance(901)
    w = approvals.withdraw("s1", late.id, "U_CAT")
    assert not w.withdrawn and w.verdict is Verdict.EXPIRED
    assert approvals.get("s1", late.id).status is ApprovalStatus.EXPIRED  # recorded as it is
    assert approvals.withdraw("s1", "pause-99", "U_BOB").verdict is Verdict.UNKNOWN
    refused = [e for e in store.history("s1") if e.action == "approval.withdraw-refused"]
    assert [(e.actor, e.detail["verdict"]) for e in refused] == [
        ("U_BOB", "already-used"),
        ("U_CAT", "expired"),
    ]


def test_a_withdrawal_racing_a_step_leaves_it_used(approvals, monkeypatch):
    req = ask(approvals)
    grant(approvals, req.id, "U_BOB")
    results: list = []
    after_first_read(monkeypatch, "get", 2)
    monkeypatch.setattr(Approvals, "requests", lambda self, *a: [Approvals.get(self, "s1", req.id)])
    run_all(
        lambda f: results.append(f()),
        [(lambda: approvals.withdraw("s1", req.id, "U_BOB"),), (lambda: use(approvals),)],
    )
    final = approvals.get("s1", req.id)
    withdrawn = [r for r in results if getattr(r, "withdrawn", False)]
    used = [r for r in results if getattr(r, "status", None) is ApprovalStatus.USED]
    assert len(withdrawn) + len(used) == 1  # one of the two, never both
    assert final.status is (ApprovalStatus.USED if used else ApprovalStatus.PENDING)


def test_a_withdrawal_checks_the_approver_in_the_same_step_as_the_move(approvals, monkeypatch):
    """Withdraw read the request granted by U_BOB; meanwhile it was withdrawn and granted by
    U_CAT. The move must not take U_CAT's approval back."""
    req = ask(approvals)
    grant(approvals, req.id, "U_BOB")
    seen = approvals.get("s1", req.id)
    approvals.withdraw("s1", req.id, "U_BOB")
    grant(approvals, req.id, "U_CAT")
    real_get, stale = Approvals.get, [seen]
    monkeypatch.setattr(
        Approvals, "get", lambda self, *args: stale.pop() if stale else real_get(self, *args)
    )
    w = approvals.withdraw("s1", req.id, "U_BOB")  # its first read is the stale one
    assert not stale and not w.withdrawn and w.verdict is Verdict.NOT_GRANTER
    assert approvals.get("s1", req.id).approver == "U_CAT"


def test_a_denial_is_told_as_a_denial(sandbox, db_url, db_name, redis_prefix):
    """Not as a withdrawal: the thread says who said no, and the message loses its buttons."""
    from swapbot.slack.blocks.milestones import _milestone_line
    from swapbot.slack.notifier import APPROVAL_UPDATES
    from swapbot.testing.swaps import APPROVER, OPERATOR, demo_plan, make_engine

    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    assert engine.request_approval("pause", OPERATOR).ok
    (req,) = engine.approvals.pending("acme-test")
    with engine.emitter.capture() as events:
        assert engine.deny(req.id, APPROVER).ok
    (told,) = [e for e in events if e.kind.startswith("approval.")]
    assert told.kind == "approval.denied" and told.kind in APPROVAL_UPDATES
    line = _milestone_line(told)
    assert (
        line.startswith(":no_entry: approval of") and "denied" in line and "withdrawn" not in line
    )
