"""The whole swap under API faults, with Redis losing its state mid-way, and with two runners."""

from __future__ import annotations

import threading

import requests

from tests.swap_driver import drive
from tests.swap_support import OPERATOR, Person, demo_plan, make_engine


def unsafe_sent(sandbox) -> dict[str, int]:
    log = requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()
    processed = [r for r in log if r["status"] < 500 and r["fault"] in (None, "slow")]
    return {
        suffix: len([r for r in processed if r["method"] == "POST" and r["path"].endswith(suffix)])
        for suffix in ("/apps/acme-prod/addons", "/actions/import")
    }


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
    sandbox = sandbox_factory("small", org_changes_per_second=1.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    plan = demo_plan(db_name)
    engine.save_plan(plan, OPERATOR)
    person = Person(engine, sandbox)
    try:
        for name in ("preflight", "create-addon", "configure", "authorize", "export", "import"):
            assert engine.run_step(name, OPERATOR).ok
        engine.store.forget(plan.swap_id)  # Redis lost everything about the swap
        assert engine.next(OPERATOR).message.startswith("there is no plan yet")
        engine.save_plan(plan, OPERATOR)  # the operator saves the plan again
        # earlier steps are proven live; the steps from abort on run (or find themselves done)
        later = ("abort", "add-columns", "reload", "settings", "wait-sync", "parity", "measure")
        for name in (*later, "prepare-objects"):
            assert engine.run_step(name, OPERATOR).ok, name
        engine.run_step("stop-writes", OPERATOR, app=plan.app)
        engine.run_step("drain", OPERATOR)
        engine.run_step("pause", OPERATOR, break_glass="test")
        engine.store.forget(plan.swap_id)  # ... and again inside the outage
        engine.save_plan(plan, OPERATOR)
        for name in ("cutover-objects", "switch", "resume-new"):
            out = engine.run_step(name, OPERATOR, break_glass="test")
            assert out.ok, (name, out.message)
        # steps that were done before the loss are proven from the live system, not repeated
        statuses = {n: cp.status for n, cp in engine.store.checkpoints(plan.swap_id).items()}
        assert statuses["stop-writes"] == statuses["pause"] == "done"
        for name in ("delete-old", "resume-old", "verify"):
            assert engine.run_step(name, OPERATOR, break_glass="test").ok, name
        # what only Redis knew cannot be rebuilt: the bot stops and says what to do by hand
        out = engine.run_step("restore", OPERATOR)
        assert out.status == "failed" and "heroku ps:scale" in out.message
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
