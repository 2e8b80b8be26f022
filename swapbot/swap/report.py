"""The swap's report: the outage and its split, each cutover step's time, the objects carried
to the new schema (and the old copies retired), the parity of the two copies, and Heroku
Connect's own diagnosis of hc1 before the swap and of hc2 after it.

Built from what the swap recorded in Redis alone (checkpoints and records), so any process can
render it at any time, and it says the same whoever asks.
"""

from __future__ import annotations

from typing import Any

from swapbot.swap import steps as runbook
from swapbot.swap.store import Store
from swapbot.swap.views import (
    Diagnosed,
    DiagnosedCheck,
    EndedSession,
    Parity,
    ParityTable,
    Report,
    ReportObjects,
    ReportOutage,
    ReportStep,
)


def report(store: Store, swap_id: str) -> Report:
    checkpoints = store.checkpoints(swap_id)
    records = store.records(swap_id)
    rows, outage_steps, waited = [], 0.0, 0.0
    for step in runbook.CUTOVER:
        cp = checkpoints.get(step.name)
        detail = (cp.detail or {}) if cp else {}
        seconds, wait = float(detail.get("seconds", 0.0)), float(detail.get("waited", 0.0))
        if step.in_outage:
            outage_steps, waited = outage_steps + seconds, waited + wait
        rows.append(
            ReportStep(
                step=step.name,
                status=cp.status if cp else "pending",
                seconds=round(seconds, 3),
                waited=round(wait, 3),
                in_outage=step.in_outage,
            )
        )
    started, ended = records.get("outage_started_at"), records.get("outage_ended_at")
    return Report(
        swap_id=swap_id,
        done=records.get("swap_done_at") is not None,
        outage=ReportOutage(
            seconds=round(ended - started, 3) if started and ended else None,
            steps_seconds=round(outage_steps, 3),
            waiting_seconds=round(waited, 3),
            own_seconds=round(outage_steps - waited, 3),
            between_steps_seconds=round(ended - started - outage_steps, 3)
            if started and ended
            else None,
        ),
        steps=rows,
        objects=_objects(records),
        parity=_parity(records.get("parity")),
        stopped=_stopped(records, (store.get_plan(swap_id) or {}).get("app") or "the app"),
        sessions_ended=[
            EndedSession.model_validate(s) for s in records.get("sessions_ended") or []
        ],
        reader_sessions=len(records.get("reader_sessions") or []),
        diagnose=_diagnosed(store, swap_id, records),
    )


# The records of HC's diagnosis, in the order they are made: hc1's, then hc2's.
DIAGNOSED = {"diagnose_old": "preflight", "diagnose_new": "verify"}


def _diagnosed(store: Store, swap_id: str, records: dict[str, Any]) -> list[Diagnosed]:
    """HC's diagnoses as the steps recorded them; each error of hc2 with its ledger item."""
    from swapbot.swap.ledger import diagnose_key
    from swapbot.swap.steps.prep import diagnosed_failures

    found = []
    for name, step in DIAGNOSED.items():
        record = records.get(name)
        if not record:
            continue
        addon = str(record.get("addon") or "?")
        failures = []
        for f in diagnosed_failures(record):
            key = diagnose_key(f) if name == "diagnose_new" and f.level == "error" else None
            done = store.confirmation(swap_id, f"ledger:{key}") if key else None
            failures.append(
                DiagnosedCheck(
                    object_name=f.object_name,
                    level=f.level,
                    rule_id=f.check.rule_id,
                    display_name=f.check.display_name,
                    message=f.check.message or "",
                    doc_url=f.check.doc_url,
                    line=f"{addon} diagnose: {f.describe()}",
                    ledger_key=key,
                    done_by=done["by"] if done else None,
                )
            )
        found.append(
            Diagnosed(
                addon=addon,
                step=step,
                at=record.get("at"),
                error=record.get("error"),
                passes=int(record.get("passes") or 0),
                skips=int(record.get("skips") or 0),
                failures=failures,
            )
        )
    return found


def _stopped(records: dict[str, Any], app: str) -> dict[str, list[str]]:
    """What stop-writes stopped: each app's writing process types and their quantities."""
    apps = {app: {"formation": records.get("formation") or []}}
    apps |= records.get("writers_before") or {}
    return {
        app: [f"{f['type']}={f['quantity']}" for f in rec.get("formation") or []]
        for app, rec in apps.items()
        if rec.get("formation")
    }


def _name(item: dict[str, Any]) -> str:
    """An object as the DDL plan names it (its identity already says what kind it is)."""
    return str(item.get("identity") or item.get("kind") or "?")


def _objects(records: dict[str, Any]) -> ReportObjects:
    def listed(phase: str, key: str) -> list[str]:
        return [_name(item) for item in (records.get(f"ddl:{phase}") or {}).get(key, [])]

    return ReportObjects(
        prep=listed("prep", "steps"),
        cutover=listed("cutover", "steps"),
        by_a_person=listed("prep", "manual") + listed("cutover", "manual"),
        retired=[_name(r) for r in records.get("retired") or []],
    )


def _parity(record: dict[str, Any] | None) -> Parity | None:
    if not record:
        return None
    return Parity(
        equal=record.get("equal"),
        compared_at=record.get("compared_at"),
        tables=[
            ParityTable(
                table=t["table"],
                rows_old=t["rows_old"],
                rows_new=t["rows_new"],
                differing_rows=t["differing_rows"],
                new_columns=t.get("only_in_new", []),
            )
            for t in record.get("tables", [])
        ],
    )


def render(doc: Report) -> str:
    o = doc.outage
    total = f"{o.seconds:.1f}s" if o.seconds is not None else "not over yet"
    lines = [f"swap {doc.swap_id}: {'done' if doc.done else 'in progress'}"]
    lines.append(
        f"outage {total}: its steps took {o.steps_seconds:.1f}s — waiting on Heroku Connect "
        f"and dynos {o.waiting_seconds:.1f}s, the bot's own {o.own_seconds:.1f}s"
    )
    if o.between_steps_seconds is not None:
        lines.append(
            f"  and {o.between_steps_seconds:.1f}s between steps (people reading the channel "
            "and typing the next command)"
        )
    for row in doc.steps:
        mark = "outage" if row.in_outage else ""
        lines.append(
            f"  {row.step:18} {row.status:8} {row.seconds:7.1f}s  "
            f"waiting {row.waited:6.1f}s  {mark}"
        )
    for label, items in (
        ("carried in prep", doc.objects.prep),
        ("carried in the cutover", doc.objects.cutover),
        ("handled by a person", doc.objects.by_a_person),
        ("old copies retired", doc.objects.retired),
    ):
        lines.append(f"objects {label}: {len(items)}")
        lines += [f"  {item}" for item in items[:50]]
        if len(items) > 50:
            lines.append(f"  … {len(items) - 50} more")
    if doc.stopped:
        lines.append("stopped at stop-writes, restored at restore:")
        lines += [f"  {app}: {', '.join(types)}" for app, types in doc.stopped.items()]
    ended = doc.sessions_ended
    lines.append(f"sessions ended (logged in before the search_path changed): {len(ended)}")
    lines += [f"  pid {s.pid} {s.role} {s.application_name or '-'} at {s.when}" for s in ended[:20]]
    if doc.reader_sessions:
        lines.append(
            f"read-only sessions from before the switch (left running, see the ledger): "
            f"{doc.reader_sessions}"
        )
    lines += _parity_lines(doc.parity)
    lines += _diagnose_lines(doc.diagnose)
    return "\n".join(lines)


def _diagnose_lines(found: list[Diagnosed]) -> list[str]:
    if not found:
        return ["HC diagnose: not run"]
    lines = ["HC diagnose (Heroku Connect's own checks; hc1 before the swap, hc2 after):"]
    for d in found:
        if d.error:
            lines.append(f"  {d.addon} at {d.step}: unavailable: {d.error}")
            continue
        lines.append(
            f"  {d.addon} at {d.step}: {len(d.failures)} failed, {d.passes} passed, "
            f"{d.skips} skipped"
        )
        for f in d.failures:
            mark = ""
            if f.ledger_key:
                state = f"done by {f.done_by}" if f.done_by else "open, blocking"
                mark = f"  [ledger {f.ledger_key}: {state}]"
            lines.append(f"    {f.line}{mark}")
    return lines


def _parity_lines(p: Parity | None) -> list[str]:
    if p is None:
        return ["parity: not compared"]
    lines = [
        f"parity (end of prep, the app still writing): {'equal' if p.equal else 'differences'}"
    ]
    for t in p.tables:
        added = f"; new columns {', '.join(t.new_columns)}" if t.new_columns else ""
        lines.append(
            f"  {t.table:24} rows {t.rows_old:,} / {t.rows_new:,}; {t.differing_rows} differ{added}"
        )
    return lines
