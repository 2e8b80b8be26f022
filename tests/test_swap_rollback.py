"""`rollback --remove-addon`: from every step of prep (and from inside the cutover) the database
and the sandbox are given back exactly as they were before the swap, hc2 and its schema
included; what someone built on hc2's schema stops it before anything is removed."""

from __future__ import annotations

from types import SimpleNamespace

import psycopg
import pytest
import requests

from swapbot.commands import UsageError, parse
from swapbot.swap import steps
from swapbot.testing.swaps import OPERATOR, Person, demo_plan, make_engine, swap_state
from tests.test_swap_cutover import approve_ahead

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow

PREP = [s.name for s in steps.PREP]


def run_prep_until(engine, last: str) -> None:
    """`next` until step `last` is done (each `next` runs one step)."""
    for _ in range(len(PREP) + 1):
        out = engine.next(OPERATOR)
        assert out.ok, (out.step, out.message)
        if out.step == last:
            return
    raise AssertionError(f"{last} never ran")


def unsafe_calls(sandbox) -> list[str]:
    """Every request the sandbox took that could change something."""
    log = requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()
    return [f"{r['method']} {r['path']}" for r in log if r["method"] != "GET"]


@pytest.fixture
def swap(sandbox_factory, db_url, db_name, redis_prefix):
    """A planned swap on the `small` scenario with a person doing what the bot asks, and a
    `state()` of the whole database and sandbox; `pristine` is that state before the swap."""
    sandbox = sandbox_factory("small", org_changes_per_second=1.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    person = Person(engine, sandbox)

    def state() -> dict:
        return swap_state(db_url, db_name, sandbox, whole=True)

    try:
        yield SimpleNamespace(sandbox=sandbox, engine=engine, state=state, pristine=state())
    finally:
        person.stop()


@pytest.mark.slow
def test_rollback_remove_addon_from_every_prep_step(swap):
    """One swap: prep up to each step in turn, then `rollback --remove-addon`, each time finding
    the whole database and sandbox as before the swap; then prep again from the start."""
    engine, pristine = swap.engine, swap.pristine
    assert ("hc2", "herokuconnect", "provisioned") not in pristine["addons"]
    for last in PREP:
        run_prep_until(engine, last)
        out = engine.rollback(OPERATOR, remove_addon=True)
        assert out.status == "done", (last, out.message)
        assert swap.state() == pristine, last
        checkpoints = engine.store.checkpoints(engine.current_plan().swap_id)
        assert not any(cp.status == "done" for cp in checkpoints.values()), last
        if PREP.index(last) >= PREP.index("create-addon"):
            assert any("DELETE /apps/acme-prod/addons/hc2" in c for c in out.calls), last
    # A prep run after all those rollbacks still completes: nothing was left half-undone.
    run_prep_until(engine, PREP[-1])


def test_rollback_remove_addon_from_inside_the_cutover(swap):
    engine, pristine = swap.engine, swap.pristine
    run_prep_until(engine, PREP[-1])
    approve_ahead(engine, "pause")
    for name in ("stop-writes", "drain", "pause", "cutover-objects", "switch"):
        out = engine.run_step(name, OPERATOR, app="acme-prod")
        assert out.ok, (name, out.message)

    kept = engine.rollback(OPERATOR)  # the plain rollback keeps hc2, and says how not to
    assert kept.status == "done" and "rollback --remove-addon" in kept.message
    assert ("hc2", "herokuconnect", "provisioned") in swap.state()["addons"]

    out = engine.rollback(OPERATOR, remove_addon=True)
    assert out.status == "done", out.message
    assert swap.state() == pristine


def test_something_built_on_the_new_schema_stops_the_removal(swap, db_url):
    sandbox, engine, pristine = swap.sandbox, swap.engine, swap.pristine
    run_prep_until(engine, "wait-sync")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE VIEW public.report_accounts AS SELECT * FROM salesforce2.account")

    # The dry run already says so, and changes nothing.
    before = unsafe_calls(sandbox)
    dry = engine.rollback(OPERATOR, dry_run=True, remove_addon=True)
    assert dry.status == "failed" and "view public.report_accounts" in dry.message
    assert unsafe_calls(sandbox) == before

    refused = engine.rollback(OPERATOR, remove_addon=True)
    assert refused.status == "failed"
    assert "view public.report_accounts" in refused.message
    assert "hc2 was not removed" in refused.message
    state = swap.state()
    assert ("hc2", "herokuconnect", "provisioned") in state["addons"]
    assert ("salesforce2", "account", "r") in {r[:3] for r in state["relations"]}
    assert unsafe_calls(sandbox) == before  # nothing was removed

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP VIEW public.report_accounts")
    dry = engine.rollback(OPERATOR, dry_run=True, remove_addon=True)
    assert any("DELETE /apps/acme-prod/addons/hc2" in c for c in dry.calls), dry.calls
    assert any("DROP SCHEMA salesforce2 CASCADE" in c for c in dry.calls), dry.calls
    assert unsafe_calls(sandbox) == before

    out = engine.rollback(OPERATOR, remove_addon=True)
    assert out.status == "done", out.message
    assert swap.state() == pristine
    again = engine.rollback(OPERATOR, remove_addon=True)  # nothing left to remove
    assert again.status == "done" and again.calls == [], again.calls


def test_remove_addon_goes_with_rollback_only():
    assert parse("rollback --remove-addon").remove_addon
    assert not parse("rollback").remove_addon
    for text in ("status --remove-addon", "pause --remove-addon", "--remove-addon"):
        try:
            parse(text)
        except UsageError as exc:
            assert "--remove-addon goes with rollback only" in str(exc)
        else:
            raise AssertionError(f"{text!r} was accepted")
