"""Heroku's unconfirmed behaviours as this swap meets them: what a probe found for each, what
the engine plays, and what stops the plan.

A contradicted assumption that the runbook handles changes what the engine plays (see
`swapbot.heroku.probed.Plays`); one that it cannot handle (an `Assumption.blocks` message)
stops the plan at preflight with that message.
"""

from __future__ import annotations

from pydantic import BaseModel

from swapbot.heroku.assumptions import ASSUMPTIONS
from swapbot.heroku.probed import ProbeResults, by_assumption


class AssumptionRow(BaseModel):
    key: str
    verdict: str
    seen: str
    # When it was probed, and where.
    at: str | None = None
    region: str | None = None


def rows(results: ProbeResults | None) -> list[AssumptionRow]:
    """One row per assumption: confirmed, contradicted, or unknown (not probed)."""
    keys = {a.key for a in ASSUMPTIONS}
    return [
        AssumptionRow(
            key=key,
            verdict=found.verdict,
            seen=found.observed,
            at=found.at.isoformat(timespec="seconds"),
            region=found.region,
        )
        if found
        else AssumptionRow(key=key, verdict="unknown", seen="not probed")
        for key, found in by_assumption(results)
        if key in keys
    ]


def blockers(results: ProbeResults | None) -> list[str]:
    """Why the plan cannot go on: each contradicted assumption the runbook cannot handle."""
    if results is None:
        return []
    out = [f"swapbot probe's findings: {results.problem}"] if results.problem else []
    for item in ASSUMPTIONS:
        found = results.finding(item.key)
        if item.blocks and found is not None and found.verdict == "contradicted":
            out.append(f"{item.key}: {found.observed}. {item.blocks}")
    return out
