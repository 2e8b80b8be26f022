"""`plan show`'s view: the plan, the objects to carry and when, who writes, risks, the outage."""

from __future__ import annotations

from pydantic import Field

from swapbot.swap.assumed import AssumptionRow
from swapbot.swap.plan import Plan
from swapbot.swap.predict import Part
from swapbot.swap.views import View
from swapbot.swap.writers import Writers


class PlannedObject(View):
    phase: str
    kind: str
    identity: str
    reason: str = ""


class OutagePrediction(View):
    parts: list[Part] = Field(default_factory=list)
    seconds: float = 0.0


class PlanShow(View):
    """`plan show`: the plan, the objects to carry and when, who writes, risks, the outage."""

    plan: Plan | None = None
    message: str = ""
    fingerprint: str | None = None
    steps: list[str] = Field(default_factory=list)
    objects: list[PlannedObject] = Field(default_factory=list)
    writers: Writers | None = None
    risks: list[str] = Field(default_factory=list)
    # Heroku's unconfirmed behaviours: what `swapbot probe` found for each (swapbot.swap.assumed),
    # and the contradicted ones the runbook cannot handle, which stop the plan at preflight.
    assumptions: list[AssumptionRow] = Field(default_factory=list)
    blocked: list[str] = Field(default_factory=list)
    outage: OutagePrediction = Field(default_factory=OutagePrediction)
