"""Steps run one by one on a `Run` built without the engine, Redis or the journal: the plan,
the live system (the sandbox over HTTP, the real database) and records kept in a dict."""

from __future__ import annotations

import pytest

from swapbot.swap import steps as runbook
from swapbot.swap.events import Emitter, Event
from swapbot.swap.live import Live
from swapbot.swap.run import DictRecords, Run, StepStopped
from swapbot.swap.store import Lease
from swapbot.testing.services import wait_until
from swapbot.testing.swaps import demo_plan

LEASE = Lease(
    resource="swap:acme-test", swap_id="acme-test", runner="alone", fence=1, token="alone",
    ttl_ms=10_000, acquired_at="2026-12-07T00:00:00Z", lock_key="alone",
)  # fmt: skip


@pytest.fixture
def alone(sandbox, clients, db_url, db_name):
    """A Run factory for one plan, sharing one dict of records and one list of events."""
    connect, platform = clients
    plan = demo_plan(db_name)
    records, events = DictRecords(), []
    emitter = Emitter()
    emitter.subscribe(events.append)

    def emit(kind: str, swap_id: str, *, step=None, actor=None, message="", **data) -> Event:
        event = Event(
            kind=kind, swap_id=swap_id, step=step, actor=actor, message=message, data=data
        )
        return emitter.emit(event)

    def run(step: str) -> Run:
        live = Live(plan, connect, platform, db_url, emitter)
        return Run(plan, live, LEASE, "U0OPERATOR", step, records=records, emit=emit)

    run.records, run.events, run.platform = records, events, platform  # type: ignore[attr-defined]
    return run


def _do(run: Run, timeout: float = 30.0) -> None:
    """Check, act, then wait for the check to pass: what the engine does, without it."""
    step = runbook.get(run.step)
    assert not step.check(run), f"{step.name} is done before it ran"
    assert step.act is not None
    step.act(run)
    wait_until(lambda: step.check(run), timeout=timeout, what=f"{step.name} to be done")


def test_prep_steps_read_and_record_without_the_engine(alone):
    _do(alone("preflight"))
    assert alone.records.values["preflight"]["status"] in ("ok", "warn")
    assert "writers" in alone.records.values
    assert runbook.get("preflight").check(alone("preflight"))

    _do(alone("export"))
    assert "Account" in {m["object_name"] for m in alone.records.values["export"]["mappings"]}
    assert runbook.get("export").check(alone("export"))


def test_export_stops_when_hc1_lacks_a_moved_mapping(alone, sandbox, clients, db_url, db_name):
    connect, platform = clients
    plan = demo_plan(db_name, mappings={"Lead": ["Rating"]})
    run = Run(
        plan,
        Live(plan, connect, platform, db_url, Emitter()),
        LEASE,
        "U0OPERATOR",
        "export",
        records=DictRecords(),
        emit=lambda *a, **k: None,
    )
    with pytest.raises(StepStopped, match="has no mapping for Lead"):
        runbook.get("export").act(run)


def test_cutover_steps_stop_and_restore_the_app_without_the_engine(alone):
    _do(alone("preflight"))
    before = {p.type: p.quantity for p in alone.platform.formation("acme-prod")}
    assert any(before.values())

    run = alone("stop-writes")
    _do(run)
    assert alone.platform.app("acme-prod").maintenance is True
    assert runbook.get("stop-writes").check(alone("stop-writes"))
    assert alone.records.values["formation"]  # what restore and rollback need
    assert "outage.started" in [e.kind for e in alone.events]

    _do(alone("restore"))
    after = {p.type: p.quantity for p in alone.platform.formation("acme-prod")}
    assert after == before
    assert alone.platform.app("acme-prod").maintenance is False
    assert runbook.get("restore").check(alone("restore"))
