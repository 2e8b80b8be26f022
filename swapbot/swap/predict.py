"""The outage, predicted before it starts, and put beside what happened after it.

Each part says where its figure comes from: `measured` (from this database or this swap's own
records) or `assumed` (a documented default, to be replaced by a measurement).
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
    parts.append(
        Part(
            step="stop-writes",
            seconds=DYNO_STOP_SECONDS,
            source="assumed",
            basis="SIGTERM to SIGKILL window",
        )
    )
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
    records = engine.store.checkpoints(plan.swap_id)
    for step, default in (
        ("pause", PAUSE_SECONDS),
        ("resume-new", RESUME_SECONDS),
        ("resume-old", RESUME_SECONDS),
    ):
        cp = records.get(step)
        waited = (cp.detail or {}).get("waited") if cp else None
        if waited is not None:
            parts.append(
                Part(
                    step=step, seconds=float(waited), source="measured", basis="this swap's own run"
                )
            )
        else:
            parts.append(
                Part(step=step, seconds=default, source="assumed", basis="no published figure")
            )
    new = live.new()
    polls = [
        float((m.config.sf_polling_seconds if m.config else None) or 600)
        for m in (new.mappings if new else [])
        if m.object_name in plan.mappings
    ]
    parts.append(
        Part(
            step="verify",
            seconds=max(polls) if polls else 600.0,
            source="measured" if polls else "assumed",
            basis="one Salesforce polling interval of hc2's moved mappings",
        )
    )
    parts.append(
        Part(step="restore", seconds=DYNO_BOOT_SECONDS, source="assumed", basis="dyno boot")
    )
    return Prediction(parts=parts)


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
