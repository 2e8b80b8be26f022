"""The probe's findings as a table for people: one row per assumption, probed or not."""

from __future__ import annotations

from swapbot.heroku.probed import ProbeResults, by_assumption

WIDTH = 96


def rows(results: ProbeResults | None) -> list[tuple[str, str, str]]:
    """(key, verdict, what was seen) for every assumption, then any other finding."""
    return [
        (key, f.verdict, f.observed) if f else (key, "unknown", "not probed")
        for key, f in by_assumption(results)
    ]


def table(results: ProbeResults | None) -> str:
    head = "assumption"
    width = max(len(head), *(len(key) for key, _, _ in rows(results)))
    lines = [f"{head:{width}}  {'verdict':12}  seen", f"{'-' * width}  {'-' * 12}  {'-' * 4}"]
    for key, verdict, seen in rows(results):
        lines.append(f"{key:{width}}  {verdict:12}  {_cut(seen, WIDTH - width)}")
    return "\n".join(lines)


def checks_table() -> str:
    from swapbot.probe import READ_CHECKS
    from swapbot.probe.scratch import SCRATCH_CHECKS

    checks = [*READ_CHECKS, *SCRATCH_CHECKS]
    width = max(len(c.key) for c in checks)
    return "\n".join(f"{c.key:{width}}  {c.kind:6}  {c.does}" for c in checks)


def _cut(text: str, room: int) -> str:
    room = max(room, 24)
    return text if len(text) <= room else text[: room - 1] + "…"
