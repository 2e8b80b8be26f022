"""The outage, predicted before it starts, and put beside what happened after it.

Each part says where its figure comes from: `measured` (from this database, from the prep step
`measure`, which pauses and resumes hc2 once while it serves nothing, or from this swap's own run
of the step) or `assumed` (a documented default below, used until there is a measurement).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from swapbot.swap import steps as runbook

if TYPE_CHECKING:
    from swapbot.swap.engine import Engine
    from swapbot.swap.live import Live
    from swapbot.swap.plan import Plan
    from swapbot.swap.store import Checkpoint

# Heroku sends SIGTERM, then SIGKILL 30 s later: a dyno is gone within that
# (https://devcenter.heroku.com/articles/dynos#graceful-shutdown-with-sigterm).
DYNO_STOP_SECONDS = 30.0
DYNO_BOOT_SECONDS = 60.0  # a typical web dyno boot; measure yours with `heroku ps` timings
PAUSE_SECONDS = 30.0  # HC finishes pending work before it pauses; no published figure
RESUME_SECONDS = 30.0
PREP_STEP = "measure"  # the prep step that times hc2's pause, resume and first poll
# verify's wait when no prep run timed hc2's first poll but a probe saw polls come at once.
PROBED_FIRST_POLL_SECONDS = 15.0
DEFAULTS = {"paused_after": PAUSE_SECONDS, "resumed_after": RESUME_SECONDS}


class Part(BaseModel):
    step: str
    seconds: float
    source: str  # measured | probed | assumed
    basis: str


class Prediction(BaseModel):
    parts: list[Part]

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.parts)


@dataclass(frozen=True)
class _Inputs:
    plan: Plan
    live: Live
    checkpoints: dict[str, Checkpoint]
    measured: dict[str, Any]  # the measure step's record


def predict(engine: Engine, plan: Plan, live: Live) -> Prediction:
    """One part per outage step the runbook says to count (`Step.estimate`), in its order."""
    inputs = _Inputs(
        plan,
        live,
        engine.store.checkpoints(plan.swap_id),
        engine.store.get_record(plan.swap_id, PREP_STEP) or {},
    )
    parts = [
        _ESTIMATORS[step.estimate.kind](step, inputs)
        for step in runbook.CUTOVER
        if step.estimate is not None and step.estimate.kind != "bot"
    ]
    return Prediction(parts=parts)


def _stop(step: runbook.Step, i: _Inputs) -> Part:
    # Then no app write for the plan's quiet interval before the drain starts.
    seconds = DYNO_STOP_SECONDS + i.plan.quiet_seconds
    return _dynos(step.name, i.checkpoints.get(step.name), seconds, "stop")


def _boot(step: runbook.Step, i: _Inputs) -> Part:
    return _dynos(step.name, i.checkpoints.get(step.name), DYNO_BOOT_SECONDS, "boot")


def _drain(step: runbook.Step, i: _Inputs) -> Part:
    from swapbot.database import backlog

    with i.live.db(autocommit=True) as conn:
        b = backlog.backlog(conn, i.plan.old_schema)
    rate = b.peak_per_minute or b.throughput_per_minute
    if b.drain_seconds is not None and rate:
        basis = f"{b.pending_all_tables} pending at {rate:.0f} writes/min"
        return Part(step=step.name, seconds=b.drain_seconds, source="measured", basis=basis)
    basis = "no write throughput measured yet"
    return Part(step=step.name, seconds=0.0, source="measured", basis=basis)


def _heroku(step: runbook.Step, i: _Inputs) -> Part:
    key = step.estimate.measured if step.estimate else None
    assert key is not None, f"{step.name}: a heroku estimate names its measurement"
    return _heroku_wait(step.name, i.checkpoints.get(step.name), i.measured.get(key), key)


def _first_poll(step: runbook.Step, i: _Inputs) -> Part:
    return _verify(step.name, i.plan, i.live, i.measured)


_ESTIMATORS: dict[str, Callable[[runbook.Step, _Inputs], Part]] = {
    "dynos-stop": _stop,
    "drain": _drain,
    "heroku": _heroku,
    "first-poll": _first_poll,
    "dynos-boot": _boot,
}


def _dynos(step: str, cp: Checkpoint | None, default: float, what: str) -> Part:
    """Dynos stopping or booting: this swap's own run if it has one (a rehearsal, or a run
    before a rollback). Nothing safe times them in prep: restarting the app's dynos to see
    would be an outage of its own."""
    waited = (cp.detail or {}).get("waited") if cp else None
    if waited is not None:
        return Part(step=step, seconds=float(waited), source="measured", basis="this swap's run")
    basis = (
        "SIGTERM to SIGKILL window, then the plan's quiet interval"
        if what == "stop"
        else "a typical web dyno boot"
    )
    return Part(step=step, seconds=default, source="assumed", basis=basis)


def _heroku_wait(step: str, cp: Checkpoint | None, in_prep: float | None, key: str) -> Part:
    """A wait on Heroku Connect: this swap's own run of the step, else prep's timing of hc2,
    else the documented default."""
    waited = (cp.detail or {}).get("waited") if cp else None
    if waited is not None:
        return Part(step=step, seconds=float(waited), source="measured", basis="this swap's run")
    if in_prep is not None:
        pauses = key == "paused_after"
        what = "paused" if pauses else "ran again after a resume"
        basis = f"{PREP_STEP}: hc2 {what} in prep"
        if pauses:
            # hc2 had nothing to write; hc1 pauses only once it has (drain sees to that).
            basis += " (hc1 pauses only from IDLE, once drain emptied its trigger log)"
        return Part(step=step, seconds=float(in_prep), source="measured", basis=basis)
    return Part(
        step=step,
        seconds=DEFAULTS[key],
        source="assumed",
        basis=f"no measurement yet ({PREP_STEP})",
    )


def _verify(step: str, plan: Plan, live: Live, measured: dict[str, Any]) -> Part:
    """verify passes once hc2 has polled Salesforce after resume-new: as soon as it runs again
    if prep saw it poll at once, else within one polling interval of its moved mappings."""
    first, resumed = measured.get("first_poll_after"), measured.get("resumed_after")
    if first is not None and resumed is not None:
        return Part(
            step=step,
            seconds=max(0.0, float(first) - float(resumed)),
            source="measured",
            basis=f"{PREP_STEP}: hc2's first Salesforce poll after it ran again",
        )
    if live.plays.resume_polls_at_once:
        return Part(
            step=step,
            seconds=PROBED_FIRST_POLL_SECONDS,
            source="probed",
            basis="swapbot probe saw a resumed connection poll Salesforce at once",
        )
    new = live.new()
    polls = [
        float((m.config.sf_polling_seconds if m.config else None) or 600)
        for m in (new.mappings if new else [])
        if m.object_name in plan.mappings
    ]
    return Part(
        step=step,
        seconds=max(polls) if polls else 600.0,
        source="measured" if polls else "assumed",
        basis="at most one Salesforce polling interval of hc2's moved mappings",
    )


def beside(prediction: Prediction, checkpoints: dict[str, Checkpoint]) -> list[dict[str, Any]]:
    """Each predicted part next to the step's recorded time."""
    rows = []
    for part in prediction.parts:
        cp = checkpoints.get(part.step)
        actual = float((cp.detail or {}).get("seconds", 0.0)) if cp else None
        rows.append(
            {"step": part.step, "predicted": part.seconds, "source": part.source, "actual": actual}
        )
    return rows
