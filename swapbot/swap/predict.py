"""The outage, predicted before it starts, and put beside what happened after it.

Each part says where its figure comes from: `measured` (from this database, from the prep step
`measure`, which pauses and resumes hc2 once while it serves nothing, or from this swap's own run
of the step) or `assumed` (a documented default below, used until there is a measurement).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from swapbot.swap.engine import Engine
    from swapbot.swap.live import Live
    from swapbot.swap.plan import Plan

# Heroku sends SIGTERM, then SIGKILL 30 s later: a dyno is gone within that (reference §8.3).
DYNO_STOP_SECONDS = 30.0
DYNO_BOOT_SECONDS = 60.0  # a typical web dyno boot; measure yours with `heroku ps` timings
PAUSE_SECONDS = 30.0  # HC finishes pending work first; no published figure (reference §3.3)
RESUME_SECONDS = 30.0
PREP_STEP = "measure"  # the prep step that times hc2's pause, resume and first poll


class Part(BaseModel):
    step: str
    seconds: float
    source: str  # measured | assumed
    basis: str


class Prediction(BaseModel):
    parts: list[Part]

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.parts)


def predict(engine: Engine, plan: Plan, live: Live) -> Prediction:
    from swapbot.database import backlog

    parts: list[Part] = []
    records = engine.store.checkpoints(plan.swap_id)
    # Then no app write for the plan's quiet interval before the drain starts.
    stop = DYNO_STOP_SECONDS + plan.quiet_seconds
    parts.append(_dynos("stop-writes", records.get("stop-writes"), stop, "stop"))
    with live.db(autocommit=True) as conn:
        b = backlog.backlog(conn, plan.old_schema)
    rate = b.peak_per_minute or b.throughput_per_minute
    if b.drain_seconds is not None and rate:
        parts.append(
            Part(
                step="drain",
                seconds=b.drain_seconds,
                source="measured",
                basis=f"{b.pending_all_tables} pending at {rate:.0f} writes/min",
            )
        )
    else:
        parts.append(
            Part(
                step="drain",
                seconds=0.0,
                source="measured",
                basis="no write throughput measured yet",
            )
        )
    measured = engine.store.get_record(plan.swap_id, "measure") or {}
    for step, key, default in (
        ("pause", "paused_after", PAUSE_SECONDS),
        ("resume-new", "resumed_after", RESUME_SECONDS),
        ("resume-old", "resumed_after", RESUME_SECONDS),
    ):
        parts.append(_heroku_wait(step, records.get(step), measured.get(key), default))
    parts.append(_verify(plan, live, measured))
    parts.append(_dynos("restore", records.get("restore"), DYNO_BOOT_SECONDS, "boot"))
    return Prediction(parts=parts)


def _dynos(step: str, cp: Any, default: float, what: str) -> Part:
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


def _heroku_wait(step: str, cp: Any, in_prep: float | None, default: float) -> Part:
    """A wait on Heroku Connect: this swap's own run of the step, else prep's timing of hc2,
    else the documented default."""
    waited = (cp.detail or {}).get("waited") if cp else None
    if waited is not None:
        return Part(step=step, seconds=float(waited), source="measured", basis="this swap's run")
    if in_prep is not None:
        what = "paused" if step == "pause" else "ran again after a resume"
        basis = f"{PREP_STEP}: hc2 {what} in prep"
        if step == "pause":
            # hc2 had nothing to write; hc1 pauses only once it has (drain sees to that).
            basis += " (hc1 pauses only from IDLE, once drain emptied its trigger log)"
        return Part(step=step, seconds=float(in_prep), source="measured", basis=basis)
    return Part(
        step=step, seconds=default, source="assumed", basis=f"no measurement yet ({PREP_STEP})"
    )


def _verify(plan: Plan, live: Live, measured: dict[str, Any]) -> Part:
    """verify passes once hc2 has polled Salesforce after resume-new: as soon as it runs again
    if prep saw it poll at once, else within one polling interval of its moved mappings."""
    first, resumed = measured.get("first_poll_after"), measured.get("resumed_after")
    if first is not None and resumed is not None:
        return Part(
            step="verify",
            seconds=max(0.0, float(first) - float(resumed)),
            source="measured",
            basis=f"{PREP_STEP}: hc2's first Salesforce poll after it ran again",
        )
    new = live.new()
    polls = [
        float((m.config.sf_polling_seconds if m.config else None) or 600)
        for m in (new.mappings if new else [])
        if m.object_name in plan.mappings
    ]
    return Part(
        step="verify",
        seconds=max(polls) if polls else 600.0,
        source="measured" if polls else "assumed",
        basis="at most one Salesforce polling interval of hc2's moved mappings",
    )


def beside(prediction: Prediction, checkpoints: dict[str, Any]) -> list[dict[str, Any]]:
    """Each predicted part next to the step's recorded time."""
    rows = []
    for part in prediction.parts:
        cp = checkpoints.get(part.step)
        actual = float((cp.detail or {}).get("seconds", 0.0)) if cp else None
        rows.append(
            {"step": part.step, "predicted": part.seconds, "source": part.source, "actual": actual}
        )
    return rows
