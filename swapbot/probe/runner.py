"""Run probe checks one after another and collect their findings.

A check that raises is not the end of the probe: its finding says "unknown" with the error, and
the next check runs. Nothing is retried here beyond what the clients retry on their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from swapbot.heroku import HerokuError
from swapbot.probe.checks import Context, ProbeCheck
from swapbot.probe.results import Finding, ProbeResults

logger = logging.getLogger("swapbot.probe")


def run_checks(
    ctx: Context,
    checks: Iterable[ProbeCheck],
    *,
    results: ProbeResults | None = None,
    told: Callable[[Finding], None] | None = None,
) -> ProbeResults:
    results = results or ProbeResults(app=ctx.app, addon=ctx.addon)
    for check in checks:
        finding = run_one(ctx, check)
        results.findings[check.key] = finding
        if results.region is None and finding.region:
            results.region = finding.region
        if told is not None:
            told(finding)
    return results


def run_one(ctx: Context, check: ProbeCheck) -> Finding:
    mark = ctx.recorder.mark()
    try:
        seen = check.run(ctx)
        verdict, observed, variant = seen.verdict, seen.observed, seen.variant
    except Exception as exc:  # one check's surprise must not lose the others' findings
        logger.info("probe %s: %s", check.key, exc, exc_info=not isinstance(exc, HerokuError))
        verdict, observed, variant = "unknown", f"could not check: {exc}", None
    return Finding(
        key=check.key,
        kind=check.kind,
        verdict=verdict,
        observed=observed,
        variant=variant,
        evidence=ctx.recorder.since(mark),
        region=_region(ctx),
    )


def _region(ctx: Context) -> str | None:
    ref = ctx.found_ref
    return None if ref is None else (ref.region or ref.region_url)
