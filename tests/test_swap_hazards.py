"""The whole swap under API faults, with Redis losing its state mid-way, and with two runners."""

from __future__ import annotations

import threading

import pytest
import requests

from swapbot.testing.swaps import OPERATOR, Person, demo_plan, make_engine
from tests.swap_driver import drive

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow


def unsafe_sent(sandbox) -> dict[str, int]:
    log = requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()
    processed = [r for r in log if r["status"] < 500 and r["fault"] in (None, "slow")]
    return {
        suffix: len([r for r in processed if r["method"] == "POST" and r["path"].endswith(suffix)])
        for suffix in ("/apps/acme-prod/addons", "/actions/import")
    }


@pytest.mark.slow
def test_the_swap_completes_with_a_third_of_api_calls_failing(
    sandbox_factory, db_url, db_name, redis_prefix
):
    sandbox = sandbox_factory("small", faults=0.3, slow_seconds=0.3, org_changes_per_second=1.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    person = Person(engine, sandbox)
    try:
        assert drive(engine) == 0
    finally:
        person.stop()
    assert unsafe_sent(sandbox) == {"/apps/acme-prod/addons": 1, "/actions/import": 1}


def test_redis_losing_the_swap_mid_prep_and_mid_cutover(
    sandbox_factory, db_url, db_name, redis_prefix
):
    """Redis loses everything twice; each time the engine rebuilds the swap from the journal in
    Postgres on its next command, and the swap goes on with nothing repeated and nothing the
    way back needs missing: the export is there at delete-old, the formation at restore."""
    sandbox = sandbox_factory("small", org_changes_per_second=1.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    plan = demo_plan(db_name)
    engine.save_plan(plan, OPERATOR)
    person = Person(engine, sandbox)
    try:
        for name in ("preflight", "create-addon", "configure", "authorize", "export", "import"):
            assert engine.run_step(name, OPERATOR).ok
        export = engine.store.get_record(plan.swap_id, "export")
        engine.store.forget(plan.swap_id)  # Redis lost everything about the swap
        later = ("abort", "add-columns", "reload", "settings", "wait-sync", "parity", "measure")
        for name in (*later, "prepare-objects"):
            assert engine.run_step(name, OPERATOR).ok, name
        assert engine.run_step("stop-writes", OPERATOR, app=plan.app).ok
        assert engine.run_step("drain", OPERATOR).ok
        assert engine.run_step("pause", OPERATOR, break_glass="test").ok
        formation = engine.store.get_record(plan.swap_id, "formation")
        engine.store.forget(plan.swap_id)  # ... and again inside the outage
        engine.save_plan(plan, OPERATOR)  # an operator saving the same plan again changes nothing
        for name in ("cutover-objects", "switch", "resume-new", "delete-old"):
            out = engine.run_step(name, OPERATOR, break_glass="test")
            assert out.ok, (name, out.message)
        # the steps done before the loss came back from the journal, not from guesses
        statuses = {n: cp.status for n, cp in engine.store.checkpoints(plan.swap_id).items()}
        assert statuses["stop-writes"] == statuses["pause"] == "done"
        history = engine.store.history(plan.swap_id, count=500)
        assert not [e for e in history if e.action == "step.rebuilt"]
        assert "swap.restored" in [e.action for e in history]  # (the first went with Redis)
        # what the way back needs was there when the point of no return was passed
        assert engine.store.get_record(plan.swap_id, "export") == export
        for name in ("resume-old", "verify", "restore"):
            assert engine.run_step(name, OPERATOR).ok, name
        assert engine.store.get_record(plan.swap_id, "formation") == formation
    finally:
        person.stop()
    assert unsafe_sent(sandbox) == {"/apps/acme-prod/addons": 1, "/actions/import": 1}


def test_two_runners_at_once_one_acts_the_other_says_who(
    sandbox_factory, db_url, db_name, redis_prefix
):
    sandbox = sandbox_factory("small")
    first = make_engine(sandbox, db_url, redis_prefix, runner="dyno-a")
    second = make_engine(sandbox, db_url, redis_prefix, runner="dyno-b")
    first.save_plan(demo_plan(db_name), OPERATOR)
    first.run_step("preflight", OPERATOR)
    results = {}
    barrier = threading.Barrier(2)

    def run(engine, key):
        barrier.wait()
        results[key] = engine.run_step("create-addon", OPERATOR)

    threads = [threading.Thread(target=run, args=(e, k)) for e, k in ((first, "a"), (second, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = sorted((o.status, o.message) for o in results.values())
    assert [s for s, _ in outcomes] == ["done", "refused"], outcomes
    assert "is being run by dyno-" in outcomes[1][1]
    assert unsafe_sent(sandbox)["/apps/acme-prod/addons"] == 1
