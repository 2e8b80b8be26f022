"""The swap store against the real Redis: leases with fencing, guarded writes, audit, events."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from swapbot.swap.store import (
    EVENTS_MAXLEN,
    LeaseLost,
    StepStatus,
    Store,
    StoreError,
    Transition,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)


@pytest.fixture
def store(client, redis_prefix) -> Store:
    return Store(client, redis_prefix)


# -- leases ------------------------------------------------------------------------------------
def test_acquire_is_exclusive_and_holder_says_who_and_since(store):
    lease = store.acquire("s1", "worker.1:abc", 10_000)
    assert lease is not None and lease.runner == "worker.1:abc"
    assert store.acquire("s1", "worker.2", 10_000) is None
    info = store.holder("s1")
    assert info.runner == "worker.1:abc"  # a colon in the runner's name survives
    assert info.fence == lease.fence
    assert info.since == lease.acquired_at and info.since.endswith("Z")
    assert 0 < info.ttl_ms <= 10_000
    assert store.acquire("s2", "worker.2", 10_000) is not None  # another swap is another lock


def test_fencing_token_increases_with_each_lease(store):
    fences = []
    for _ in range(3):
        lease = store.acquire("s1", "w", 10_000)
        fences.append(lease.fence)
        assert store.release(lease)
    assert fences == sorted(fences) and len(set(fences)) == 3
    assert store.holder("s1") is None


def test_renew_and_release_only_by_the_holder(store, client):
    lease = store.acquire("s1", "a", 200)
    assert store.renew(lease, 10_000)
    assert client.pttl(lease.lock_key) > 5_000
    impostor = lease.model_copy(update={"token": f"{lease.fence + 1}:0:b", "runner": "b"})
    assert not store.renew(impostor)
    assert not store.release(impostor)
    assert store.holder("s1").runner == "a"
    assert store.release(lease)
    assert not store.release(lease)  # twice is harmless
    assert not store.renew(lease)


def test_two_runners_at_once_exactly_one_wins(store):
    barrier = threading.Barrier(10)
    won = []

    def race(n: int) -> None:
        barrier.wait()
        lease = store.acquire("s1", f"runner-{n}", 10_000)
        if lease is not None:
            won.append(lease)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert store.holder("s1").runner == won[0].runner


def test_ttl_expiry_lets_another_runner_in(store):
    old = store.acquire("s1", "a", 50)
    assert store.acquire("s1", "b", 10_000) is None
    time.sleep(0.08)
    new = store.acquire("s1", "b", 10_000)
    assert new is not None and new.fence > old.fence
    assert not store.renew(old)  # expired leases cannot come back


def test_a_lost_lease_writes_nothing(store):
    """Runner A pauses past its TTL; B takes over; A wakes up and tries to write."""
    a = store.acquire("s1", "a", 50)
    store.set_plan(a, {"app": "acme", "v": 1}, current=True)
    store.checkpoint(a, "create-addon", status="running", attempt=1)
    store.put_record(a, "formation", {"web": 2})
    time.sleep(0.08)
    b = store.acquire("s1", "b", 10_000)
    store.checkpoint(b, "create-addon", status="done", detail={"seen": "provisioned"})
    before = (store.checkpoints("s1"), store.records("s1"), store.get_plan("s1"))

    with pytest.raises(LeaseLost) as lost:
        store.checkpoint(a, "create-addon", status="failed", error="stale")
    assert lost.value.holder.runner == "b" and "lost its lease" in str(lost.value)
    with pytest.raises(LeaseLost):
        store.put_record(a, "formation", {"web": 0})
    with pytest.raises(LeaseLost):
        store.set_plan(a, {"app": "acme", "v": 2})
    with pytest.raises(LeaseLost), store.transition(a) as tx:
        tx.audit("a", "step.done", step="create-addon")
        tx.publish({"kind": "step.done"})

    assert (store.checkpoints("s1"), store.records("s1"), store.get_plan("s1")) == before
    assert store.checkpoints("s1")["create-addon"].runner == "b"
    assert [e.actor for e in store.history("s1")] == []
    assert store.read_events("s1") == []
    assert not store.release(a)
    assert store.holder("s1").runner == "b"


def test_a_lease_lost_between_check_and_commit_writes_nothing(store, client, monkeypatch):
    """The worst moment: the lock changes hands after the holder checked it, before EXEC."""
    a = store.acquire("s1", "a", 10_000)
    real = Transition._merged_checkpoints
    taken = []

    def pause_then_lose(self, pipe, steps_key):
        if not taken:
            client.delete(a.lock_key)  # A's TTL ran out while it was paused here
            taken.append(store.acquire("s1", "b", 10_000))
        return real(self, pipe, steps_key)

    monkeypatch.setattr(Transition, "_merged_checkpoints", pause_then_lose)
    with pytest.raises(LeaseLost):
        store.checkpoint(a, "pause", status="done")
    assert taken[0] is not None and store.checkpoints("s1") == {}


def test_a_released_lease_cannot_write(store):
    lease = store.acquire("s1", "a", 10_000)
    store.release(lease)
    with pytest.raises(LeaseLost):
        store.checkpoint(lease, "preflight", status="running")
    assert store.checkpoints("s1") == {}


def test_renewing_during_writes_is_not_a_lost_lease(store):
    """A heartbeat touching the lock aborts a WATCHed transaction; the write must still land."""
    lease = store.acquire("s1", "a", 10_000)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.is_set():  # far more often than a real heartbeat, to make collisions
            store.renew(lease)
            time.sleep(0.0002)

    beat = threading.Thread(target=heartbeat)
    beat.start()
    try:
        for n in range(200):
            store.put_record(lease, f"r{n}", n)
    finally:
        stop.set()
        beat.join()
    assert len(store.records("s1")) == 200


def test_watcher_leader_lease(store):
    lead = store.acquire_leader("watcher-1", 10_000)
    assert lead is not None and lead.swap_id is None
    assert store.acquire_leader("watcher-2", 10_000) is None
    assert store.leader().runner == "watcher-1"
    assert store.acquire("s1", "w", 10_000) is not None  # separate from any swap lock
    with pytest.raises(StoreError), store.transition(lead):
        pass
    assert store.renew(lead)
    assert store.release(lead)
    assert store.leader() is None
    second = store.acquire_leader("watcher-2", 10_000)
    assert second.fence > lead.fence


# -- state -------------------------------------------------------------------------------------
def test_checkpoint_updates_merge_and_stamp_times(client, redis_prefix):
    now = [1_700_000_000.0]
    store = Store(client, redis_prefix, clock=lambda: now[0])
    lease = store.acquire("s1", "w1", 10_000)
    assert store.checkpoints("s1") == {}
    cp = store.checkpoint(lease, "drain", status="running", attempt=1)
    assert cp.status is StepStatus.RUNNING and cp.runner == "w1" and cp.fence == lease.fence
    assert cp.started_at == "2023-11-14T22:13:20.000Z" and cp.started_epoch == now[0]
    now[0] += 12.5
    store.checkpoint(lease, "drain", status="waiting", detail={"pending": 40})
    store.checkpoint(lease, "drain", status="done", detail={"seconds": 12.5})
    done = store.get_checkpoint("s1", "drain")
    assert done.status == "done" and done.attempt == 1  # attempt kept from the running write
    assert done.started_epoch == 1_700_000_000.0 and done.finished_epoch == 1_700_000_012.5
    assert done.detail == {"seconds": 12.5}
    failed = store.checkpoint(lease, "pause", status="failed", error="HC said 500")
    again = store.checkpoint(lease, "pause", status="running", attempt=2)
    assert failed.error == "HC said 500" and again.error is None and again.finished_at is None
    assert set(store.checkpoints("s1")) == {"drain", "pause"}
    assert store.get_checkpoint("s1", "switch") is None
    with pytest.raises(TypeError):
        store.checkpoint(lease, "drain", stauts="done")
    with pytest.raises(ValueError):
        store.checkpoint(lease, "drain", status="finished")


def test_plan_records_and_current_round_trip(store):
    assert store.current_swap() is None and store.get_plan("s1") is None
    lease = store.acquire("s1", "w", 10_000)
    plan = {"app": "acme", "mappings": ["Account", "Contact"], "window": {"minutes": 10}}
    store.set_plan(lease, plan)
    assert store.current_swap() is None
    store.set_plan(lease, plan, current=True)
    assert store.get_plan("s1") == plan and store.current_swap() == "s1"
    store.put_record(lease, "formation", {"web": 2, "worker": 1})
    store.put_record(lease, "search_path", {"role": "app", "previous": None})
    assert store.get_record("s1", "formation") == {"web": 2, "worker": 1}
    assert store.get_record("s1", "search_path") == {"role": "app", "previous": None}
    assert store.get_record("s1", "export") is None
    assert set(store.records("s1")) == {"formation", "search_path"}
    with store.transition(lease) as tx:
        tx.clear_current()
    assert store.current_swap() is None


def test_one_transition_is_all_or_nothing(store):
    lease = store.acquire("s1", "w", 10_000)
    with pytest.raises(RuntimeError), store.transition(lease) as tx:
        tx.checkpoint("stop-writes", status="done")
        tx.put_record("formation", {"web": 2})
        raise RuntimeError("the step blew up before the transition ended")
    assert store.checkpoints("s1") == {} and store.records("s1") == {}
    with store.transition(lease) as tx:
        tx.checkpoint("stop-writes", status="done")
        tx.put_record("formation", {"web": 2})
        tx.audit("U1", "step.done", step="stop-writes")
        tx.publish({"kind": "step.done", "step": "stop-writes"})
    assert store.checkpoints("s1")["stop-writes"].status == "done"
    assert store.get_record("s1", "formation") == {"web": 2}
    assert [e.action for e in store.history("s1")] == ["step.done"]
    assert [e.event["step"] for e in store.read_events("s1")] == ["stop-writes"]


def test_swap_ids_are_checked(store):
    with pytest.raises(StoreError):
        store.acquire("a b*", "w", 1000)
    with pytest.raises(StoreError):
        store.get_plan("")


# -- audit and events --------------------------------------------------------------------------
def test_audit_history_keeps_order_and_content(client, redis_prefix):
    store = Store(client, redis_prefix, clock=lambda: 1_700_000_000.25)
    ids = [
        store.audit("s1", "U1", "plan.saved", detail={"fingerprint": "abc"}),
        store.audit("s1", "U2", "approval.granted", step="pause", detail={"request": "pause-1"}),
        store.audit("s1", "swapbot", "step.done", step="pause"),
    ]
    entries = store.history("s1")
    assert [e.id for e in entries] == ids
    assert [(e.actor, e.action, e.step) for e in entries] == [
        ("U1", "plan.saved", None),
        ("U2", "approval.granted", "pause"),
        ("swapbot", "step.done", "pause"),
    ]
    assert entries[0].detail == {"fingerprint": "abc"} and entries[2].detail == {}
    assert entries[0].at == "2023-11-14T22:13:20.250Z"
    assert [e.id for e in store.history("s1", after=ids[0])] == ids[1:]
    assert [e.id for e in store.history("s1", count=2)] == ids[:2]
    assert [e.id for e in store.tail("s1", 2)] == ids[1:]
    assert store.history("s2") == []


def test_events_are_capped_and_readable_after_an_id(store, client):
    first = store.publish("s1", {"kind": "step.started", "step": "drain"})
    second = store.publish("s1", {"kind": "backlog", "data": {"pending": 12}})
    assert [e.id for e in store.read_events("s1")] == [first, second]
    assert store.read_events("s1", first)[0].event == {"kind": "backlog", "data": {"pending": 12}}
    assert store.read_events("s1", second) == []
    assert store.read_events("s1", second, block_ms=20) == []  # waits, then nothing

    got = []
    reader = threading.Thread(
        target=lambda: got.extend(store.read_events("s1", "$", block_ms=5000))
    )
    reader.start()
    time.sleep(0.05)
    third = store.publish("s1", {"kind": "step.done"})
    reader.join(timeout=5)
    assert [e.id for e in got] == [third]

    key = store.swap_key("s1", "events")
    with client.pipeline(transaction=False) as pipe:
        for _ in range(EVENTS_MAXLEN + 500):
            pipe.xadd(key, {"event": "{}"}, maxlen=EVENTS_MAXLEN, approximate=True)
        pipe.execute()
    store.publish("s1", {"kind": "notice"})
    assert client.xlen(key) < EVENTS_MAXLEN + 200  # "~": trimmed by whole nodes
    assert store.read_events("s1", first, count=5)[0].id != second  # the oldest went


def test_audit_is_not_capped(store, client):
    key = store.swap_key("s1", "audit")
    with client.pipeline(transaction=False) as pipe:
        for _ in range(EVENTS_MAXLEN + 200):
            pipe.xadd(key, {"action": "x"})
        pipe.execute()
    store.audit("s1", "U1", "note")
    assert client.xlen(key) == EVENTS_MAXLEN + 201


def test_responses_decoded_or_not(redis_prefix):
    store = Store(redis.Redis.from_url(REDIS_URL, decode_responses=True), redis_prefix)
    lease = store.acquire("s1", "w", 10_000)
    store.checkpoint(lease, "drain", status="done")
    store.put_record(lease, "formation", {"web": 1})
    store.audit("s1", "U1", "x", step="drain")
    store.publish("s1", {"kind": "notice"})
    assert store.holder("s1").runner == "w"
    assert store.checkpoints("s1")["drain"].status == "done"
    assert store.records("s1") == {"formation": {"web": 1}}
    assert store.history("s1")[0].step == "drain"
    assert store.read_events("s1")[0].event == {"kind": "notice"}


# -- dedupe and forget -------------------------------------------------------------------------
def test_first_time_dedupes_until_the_ttl(store, client):
    assert store.first_time("Ev123", 60)
    assert not store.first_time("Ev123", 60)
    assert store.first_time("Ev124", 60)
    assert 0 < client.ttl(store.key("dedupe", "Ev123")) <= 60


def test_forget_removes_only_that_swap(store, client, redis_prefix):
    lease = store.acquire("s1", "w", 10_000)
    store.set_plan(lease, {"app": "acme"}, current=True)
    store.checkpoint(lease, "preflight", status="done")
    store.put_record(lease, "export", {"mappings": []})
    store.audit("s1", "U1", "plan.saved")
    store.publish("s1", {"kind": "notice"})
    other = store.acquire("s1x", "w", 10_000)  # a swap id that s1's key pattern must not catch
    store.put_record(other, "formation", {"web": 1})
    store.first_time("Ev1", 60)

    assert store.forget("s1") >= 7
    assert list(client.scan_iter(match=redis_prefix + "swap:s1:*")) == []
    assert store.current_swap() is None
    assert store.holder("s1") is None and store.get_plan("s1") is None
    assert store.records("s1x") == {"formation": {"web": 1}}
    assert not store.first_time("Ev1", 60)
    assert store.acquire("s1", "w", 10_000).fence == 1  # Redis "lost" it: the counter restarts
