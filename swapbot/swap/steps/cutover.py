"""The cutover steps: inside the outage, from stop-writes to external-objects."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from swapbot.heroku import (
    Connection,
    ConnectionNotFound,
    Formation,
)
from swapbot.swap.run import Run

if TYPE_CHECKING:
    from datetime import datetime

    import psycopg

    from swapbot.database.searchpath import Session
    from swapbot.database.verify import Check as VerifyCheck


from swapbot.swap.steps.base import (
    PAUSE_REFUSED,
    Check,
    _new,
    polled_since,
    resume,
    sf_polls,
)
from swapbot.swap.steps.prep import diagnose, diagnose_lines, wait_sync_check


# -- cutover --------------------------------------------------------------------------------
def _formation(run: Run) -> dict[str, Formation]:
    return {f.type: f for f in run.live.platform.formation(run.plan.app)}


def _stopped_apps(run: Run) -> dict[str, list[str]]:
    """Every app stop-writes stops, with its writing process types: the swapped app's and every
    other writer the plan names (the database is attached to them too)."""
    return {run.plan.app: run.plan.process_types, **run.plan.other_writers}


def _app_stopped(run: Run, app: str, types: list[str]) -> tuple[bool, str]:
    maintenance = bool(run.live.platform.app(app).maintenance)
    formation = {f.type: f for f in run.live.platform.formation(app)}
    up = [d.name for d in run.live.platform.dynos(app) if d.type in types]
    scaled = all((formation[t].quantity or 0) == 0 for t in types if t in formation)
    seen = f"{app}: maintenance {'on' if maintenance else 'off'}; " + (
        "no dynos of " + ", ".join(types) if not up else "still running: " + ", ".join(up)
    )
    return maintenance and scaled and not up, seen


def stop_writes_check(run: Run) -> Check:
    """Every writing app is in maintenance with its writers at 0 and none up, and then the
    database shows no app write for the plan's quiet interval: a writer nobody named (a
    one-off dyno, a console, another app) keeps the step waiting, named."""
    from swapbot.swap import writers

    found = [_app_stopped(run, app, types) for app, types in _stopped_apps(run).items()]
    seen = "; ".join(text for _, text in found)
    if not all(ok for ok, _ in found):
        return Check(False, seen)
    with run.live.db(autocommit=True) as conn:
        ok, text = writers.quiet(
            conn, run.plan.old_schema, writers.app_roles(run.plan), run.plan.quiet_seconds
        )
    return Check(ok, f"{seen}; {text}")


def stop_writes_act(run: Run) -> None:
    if run.recall("formation") is None:  # a resumed attempt must not record the scaled-down state
        swapped = run.live.platform.app(run.plan.app)
        before = [
            {"type": f.type, "quantity": f.quantity, "size": f.size}
            for f in _formation(run).values()
            if f.type in run.plan.process_types
        ]
        others = {
            other: {
                "formation": [
                    {"type": f.type, "quantity": f.quantity, "size": f.size}
                    for f in run.live.platform.formation(other)
                    if f.type in types
                ],
                "maintenance": bool(run.live.platform.app(other).maintenance),
            }
            for other, types in run.plan.other_writers.items()
        }
        # Written before anything is stopped (journal first): the way back needs all of it.
        run.remember("writers_before", others)
        run.remember("formation", before)
        run.remember("maintenance_before", bool(swapped.maintenance))
    run.mark_outage_start()
    for app, types in _stopped_apps(run).items():
        run.live.change(
            f"PATCH /apps/{app} maintenance=true",
            partial(run.live.platform.set_maintenance, app, True),
        )
        updates = [{"type": t, "quantity": 0} for t in types]
        if updates:
            run.live.change(
                f"PATCH /apps/{app}/formation " + ", ".join(f"{u['type']}=0" for u in updates),
                partial(run.live.platform.update_formation, app, updates),
            )


def _recorded_apps(run: Run) -> dict[str, dict[str, Any]] | None:
    """What stop-writes recorded of each app: formation and maintenance before it; None when
    the record of the swapped app is gone."""
    before = run.recall("formation")
    if before is None:
        return None
    apps = {run.plan.app: {"formation": before, "maintenance": run.recall("maintenance_before")}}
    return apps | (run.recall("writers_before") or {})


def _stale(run: Run, conn: psycopg.Connection) -> list[Session]:
    """Sessions of the app's roles that logged in before the search_path last changed (the
    switch, or a rollback's restore): they keep the path they got at login."""
    from swapbot.swap import writers

    changed = _path_changed_at(run)
    if changed is None:
        return []
    return writers.role_sessions(conn, writers.app_roles(run.plan), before=changed)


def _path_changed_at(run: Run) -> datetime | None:
    import datetime as dt

    moments = []
    record = run.recall("search_path")
    if record and record.get("switched_at"):
        moments.append(dt.datetime.fromisoformat(record["switched_at"]))
    if run.recall("path_restored_at"):
        moments.append(dt.datetime.fromisoformat(run.recall("path_restored_at")))
    return max(moments) if moments else None


def end_stale_sessions(run: Run, conn: psycopg.Connection, *, when: str) -> None:
    """No session of an app role that predates the last search_path change may serve the app
    when it comes back: end them (the plan's default: a pooler opens fresh server sessions,
    which get the new path), or stop and say which remain and how to end them."""
    from swapbot.swap import writers

    stale = _stale(run, conn)
    if not stale:
        return
    if run.plan.stale_sessions == "refuse":
        ends = "; ".join(f"SELECT pg_terminate_backend({s.pid})" for s in stale[:8])
        raise run.stop(
            f"{when} stopped before any dyno came back: {len(stale)} session(s) of the app's "
            f"roles logged in before the search_path changed and keep the old one: "
            f"{writers.describe(stale)}. The plan says not to end them (stale_sessions=refuse): "
            f"end them yourself ({ends}), then run `{run.step}` again"
        )

    def terminate() -> None:
        ended = writers.end(conn, stale)
        kept = run.recall("sessions_ended") or []
        gone = [s.model_dump(mode="json") | {"when": when} for s in stale if s.pid in set(ended)]
        run.remember("sessions_ended", kept + gone)

    run.live.change(
        f"end {len(stale)} session(s) of {', '.join(run.plan.roles)} that logged in before the "
        f"search_path changed: {writers.describe(stale)}",
        terminate,
        sql=[f"SELECT pg_terminate_backend({s.pid})" for s in stale],
    )


def restore_check(run: Run) -> Check:
    apps = _recorded_apps(run)
    if apps is None:
        return Check(False, "no formation was recorded at stop-writes")
    waiting: list[str] = []
    for app, rec in apps.items():
        formation = {f.type: f for f in run.live.platform.formation(app)}
        wrong = [
            b["type"]
            for b in rec["formation"]
            if (formation.get(b["type"]) and formation[b["type"]].quantity) != b["quantity"]
        ]
        maintenance_ok = bool(run.live.platform.app(app).maintenance) == bool(rec["maintenance"])
        up = {d.type for d in run.live.platform.dynos(app) if d.state == "up"}
        starting = [b["type"] for b in rec["formation"] if b["quantity"] and b["type"] not in up]
        if wrong or starting or not maintenance_ok:
            waiting.append(f"{app}: {', '.join(wrong + starting) or 'maintenance'}")
    with run.live.db(autocommit=True) as conn:
        stale = _stale(run, conn)
    if stale:
        waiting.append(f"{len(stale)} session(s) from before the search_path changed")
    if waiting:
        return Check(False, "restoring: " + "; ".join(waiting))
    return Check(True, "formation and maintenance restored; no session predates the switch")


def restore_act(run: Run) -> None:
    apps = _recorded_apps(run)
    if apps is None:
        # Redis lost the record: guessing quantities could start the wrong dynos. Say so.
        raise run.stop(
            "the formation recorded at stop-writes is gone (Redis lost the swap's state); scale "
            f"{', '.join(run.plan.process_types)} of {run.plan.app} back by hand "
            "(heroku ps:scale TYPE=N) and turn maintenance off (heroku maintenance:off)"
        )
    with run.live.db(autocommit=True) as conn:
        # Before any dyno comes back: a stale session would take its writes to the old path.
        end_stale_sessions(run, conn, when="restore")
    for app, rec in apps.items():
        updates = [
            {"type": b["type"], "quantity": b["quantity"], "dyno_size": b["size"]}
            for b in rec["formation"]
        ]
        if updates:
            run.live.change(
                f"PATCH /apps/{app}/formation "
                + ", ".join(f"{u['type']}={u['quantity']}" for u in updates),
                partial(run.live.platform.update_formation, app, updates),
            )
        if not rec["maintenance"]:
            run.live.change(
                f"PATCH /apps/{app} maintenance=false",
                partial(run.live.platform.set_maintenance, app, False),
            )


def drain_check(run: Run) -> Check:
    from swapbot.database import backlog

    with run.live.db(autocommit=True) as conn:
        b = backlog.backlog(conn, run.plan.old_schema)
    old = run.live.old()
    pending_api = sum((m.counts.pending or 0) for m in old.mappings if m.counts)
    done = b.pending_all_tables == 0 and pending_api == 0 and old.state == "IDLE"
    seen = f"{b.pending_all_tables} write(s) waiting in {run.plan.old_schema}._trigger_log; {run.plan.old_addon} {old.state}"
    return Check(
        done, seen, {"pending": b.pending_all_tables, "failures_last_day": b.failures_last_day}
    )


def _paused(run: Run) -> dict[str, str]:
    return {addon: _state(run, addon) for addon in (run.plan.old_addon, run.plan.new_addon)}


def _state(run: Run, addon: str) -> str:
    c = run.live.connection(addon)
    if c is None:  # both exist from prep on
        raise ConnectionNotFound(run.plan.app, addon)
    return c.state or ""


def pause_check(run: Run) -> Check:
    states = _paused(run)
    return Check(
        all(s == "PAUSED" for s in states.values()),
        ", ".join(f"{a} {s}" for a, s in states.items()),
    )


def pause_act(run: Run) -> None:
    for addon, state in _paused(run).items():
        if state == "PAUSED":
            continue
        ref = run.live.ref(addon)
        # HC pauses a connection only from IDLE and refuses otherwise: the next poll tries again.
        with contextlib.suppress(*PAUSE_REFUSED):
            run.live.change(
                f"POST /connections/{ref.id}/actions/pause ({addon})",
                partial(run.live.connect.pause, ref),
            )


def resume_new_act(run: Run) -> None:
    c = _new(run)
    if c is not None and c.state == "PAUSED":
        # hc2's last polls before it runs again: verify takes a newer poll of every moved mapping
        # as the proof that Salesforce data flows into NEW, instead of waiting for a row to change.
        run.remember("polls_at_resume", sf_polls(run, run.plan.new_addon))
    resume(lambda r: r.plan.new_addon)(run)


def running(addon_of: Callable[[Run], str]) -> Callable[[Run], Check]:
    def check(run: Run) -> Check:
        addon = addon_of(run)
        c = run.live.connection(addon)
        state = c.state if c else "missing"
        return Check(state in ("IDLE", "POLLING_DB_CHANGES"), f"{addon} {state}")

    return check


def undo_pause(run: Run) -> None:
    resume(lambda r: r.plan.old_addon)(run)
    resume(lambda r: r.plan.new_addon)(run)


def switch_check(run: Run) -> Check:
    from swapbot.database import searchpath

    record = run.recall("search_path")
    if not record:
        return Check(False, "search_path not switched yet")
    rec = searchpath.SwitchRecord.model_validate(record)
    if not rec.proven:
        return Check(False, "switched, not proven")
    pooler = run.recall("pooler_proof") or {}
    if pooler and not pooler.get("ok"):  # recorded as expected before the switch, or failed
        return Check(False, f"switched; through the pooler {pooler.get('seen')}")
    via = " and through the pooler" if pooler else ""
    return Check(True, f"switched and proven from a fresh session{via}")


def switch_act(run: Run) -> None:
    from swapbot.database import searchpath

    poolers = [a.name for a in run.live.platform.app_attachments(run.plan.app) if a.pooler]
    if poolers and not (run.recall("pooler_proof") or {}).get("ok"):
        # Expected before anything changes: a switch whose proof through the pooler never ran
        # (a crash, an error) is not done, and its next attempt finishes what followed it.
        run.remember(
            "pooler_proof", {"ok": False, "seen": "not proven yet", "attachment": poolers[0]}
        )
    previous = run.recall("search_path")
    description = f"ALTER ROLE {', '.join(run.plan.roles)} IN DATABASE SET search_path = {run.plan.new_schema}, {run.plan.old_schema}, public"

    def apply() -> None:
        with run.live.db(autocommit=True) as conn:
            record = searchpath.switch(
                conn,
                run.plan.roles,
                run.plan.old_schema,
                run.plan.new_schema,
                run.plan.tables,
                database=run.plan.set_database_search_path,
                previous=searchpath.SwitchRecord.model_validate(previous) if previous else None,
                save=lambda rec: run.remember("search_path", rec.model_dump(mode="json")),
            )
        run.remember("search_path", record.model_dump(mode="json"))  # with its proofs

    run.live.change(description, apply)
    if run.live.dry_run:
        return
    with run.live.db(autocommit=True) as conn:
        if run.plan.stale_sessions == "terminate":
            end_stale_sessions(run, conn, when="switch")
        _record_readers(run, conn)
    if poolers:
        _prove_through_pooler(run, poolers[0])


def _record_readers(run: Run, conn: psycopg.Connection) -> None:
    """Read-only sessions that logged in before the switch read the old copy until they
    reconnect: listed for people (the ledger), never ended by the bot."""
    from swapbot.swap import writers

    before = _path_changed_at(run)
    if before is None:
        return
    found = writers.reader_sessions(
        conn, run.plan.old_schema, run.plan.tables, run.plan.roles, before
    )
    run.remember("reader_sessions", [s.model_dump(mode="json") for s in found])


def _prove_through_pooler(run: Run, name: str) -> None:
    """A fresh session through the app's server-side pooler reaches NEW too: the pooler hands
    out server sessions, and one from before the switch would not. (With stale_sessions=refuse
    such a session may still be there: the proof then fails until a person ends it.)"""
    from swapbot.swap import writers

    url = run.live.platform.config_vars(run.plan.app).get(f"{name}_URL")
    if url is None:
        run.remember("pooler_proof", {"ok": False, "seen": f"{name}_URL is not set"})
        return
    try:
        reached = writers.resolves_through(url.get_secret_value(), run.plan.tables)
    except writers.PoolerUnreachable as exc:
        seen = f"{name}: no session through it ({exc}); run `switch` again"
        run.remember("pooler_proof", {"ok": False, "seen": seen, "attachment": name})
        return
    wrong = {t: s for t, s in reached.items() if s != run.plan.new_schema}
    seen = (
        f"{name}: every moved table reaches {run.plan.new_schema}"
        if not wrong
        else f"{name}: " + ", ".join(f"{t} reaches {s}" for t, s in wrong.items())
    )
    run.remember("pooler_proof", {"ok": not wrong, "seen": seen, "attachment": name})


def switch_undo(run: Run) -> None:
    from swapbot.database import searchpath

    record = run.recall("search_path")
    if not record:
        return

    def apply() -> None:
        with run.live.db(autocommit=True) as conn:
            searchpath.restore(conn, searchpath.SwitchRecord.model_validate(record))

    run.live.change("restore the recorded search_path settings", apply)
    if not run.live.dry_run:
        # Sessions that logged in while switched have the new path: stale from now on.
        with run.live.db(autocommit=True) as conn:
            row = conn.execute("SELECT clock_timestamp()").fetchone()
        assert row is not None  # a SELECT without FROM returns one row
        run.remember("path_restored_at", row[0].isoformat())
    run.remember("search_path", None)


def delete_old_check(run: Run) -> Check:
    left = [o for o in run.plan.objects if run.live.old().mapping(o) is not None]
    return Check(
        not left,
        "moved mappings deleted from hc1" if not left else f"still on hc1: {', '.join(left)}",
    )


def retire_old_copies(run: Run, old: Connection) -> None:
    """Before the point of no return: drop the objects of OLD that prep copied to NEW and that
    still depend on the moved tables. Where deleting a mapping drops its table they would block
    the drop; where HC keeps the table they would read data nobody syncs. Their definitions are
    recorded first (the ledger shows them; a rollback before delete-old is done recreates them),
    and anything else still bound to the old tables stops the step before any mapping goes."""
    from swapbot.database import ddl
    from swapbot.database._common import UserError

    p = run.plan
    # Only tables whose mapping is still on hc1: a resumed attempt finds the others deleted.
    tables = [t for obj, t in zip(p.objects, p.tables, strict=True) if old.mapping(obj)]
    if not tables:
        return
    prep = run.recall("ddl:prep")  # without the record (Redis lost it), look at everything
    copies = prep is None or any(st.get("action") == "copy" for st in prep.get("steps", []))
    try:
        with run.live.db(autocommit=True) as conn:
            found = ddl.retirement(conn, p.old_schema, p.new_schema, tables, copies=copies)
    except UserError as exc:
        raise run.stop(f"delete-old deleted nothing: {exc}") from None
    if found.problems:
        raise run.stop(
            "delete-old deleted nothing: "
            + "; ".join(found.problems)
            + f". Re-point or drop these (they would keep {p.old_schema}'s tables from being "
            "dropped, or read tables nobody syncs), then run delete-old again"
        )
    if not found.objects:
        return
    kept = run.recall("retired") or []
    known = {r["identity"] for r in kept}
    fresh = [r.model_dump(mode="json") for r in found.objects if r.identity not in known]
    run.remember("retired", kept + fresh)  # before dropping: a crash must not lose a definition

    def apply() -> None:
        try:
            with run.live.db(autocommit=True) as conn:
                ddl.retire(conn, p.old_schema, p.new_schema, tables)
        except UserError as exc:
            raise run.stop(f"delete-old deleted nothing: {exc}") from None

    names = ", ".join(r.identity for r in found.objects)
    run.live.change(f"retire {p.old_schema}'s copies: {names}", apply, sql=found.statements)


def delete_old_undo(run: Run) -> None:
    """Reached only when delete-old did not finish (rollback refuses after it): put back what
    it retired, exactly as it was."""
    from swapbot.database import ddl

    record = run.recall("retired") or []
    if not record:
        return
    retired = [ddl.Retired.model_validate(r) for r in record]

    def apply() -> None:
        with run.live.db(autocommit=True) as conn:
            ddl.recreate(conn, retired)

    statements = [st for r in sorted(retired, key=lambda r: r.depth) for st in r.create]
    run.live.change(
        f"recreate what delete-old retired: {', '.join(r.identity for r in retired)}",
        apply,
        sql=statements,
    )
    run.remember("retired", None)


def _no_late_writes(run: Run) -> None:
    """The drain emptied hc1's trigger log; a write to a moved table since (a writer nobody
    named, one the quiet interval missed) waits there for hc1, and would never reach
    Salesforce once its mapping is gone. Stop before the point of no return and say so."""
    from swapbot.database import backlog

    with run.live.db(autocommit=True) as conn:
        b = backlog.backlog(conn, run.plan.old_schema, run.plan.tables)
        busy = [s for s in _app_sessions(run, conn) if s.state != "idle"]
    late = b.pending  # NEW and PENDING rows of the moved tables
    if not late:
        return
    from swapbot.swap import writers

    who = f" Sessions of the app's roles busy now: {writers.describe(busy)}." if busy else ""
    raise run.stop(
        f"delete-old deleted nothing: {late} app write(s) reached {run.plan.old_schema}'s moved "
        "tables after the drain; they would never reach Salesforce once hc1's mappings are "
        f"gone.{who} Stop whatever still writes, then `rollback` (hc1 sends them when it "
        "resumes) and run the cutover again"
    )


def _app_sessions(run: Run, conn: psycopg.Connection) -> list[Session]:
    from swapbot.swap import writers

    return writers.role_sessions(conn, writers.app_roles(run.plan))


def delete_old_act(run: Run) -> None:
    if not run.recall("export") and not run.live.dry_run:
        # The manual way back re-imports hc1's stored export: without it there is none.
        raise run.stop(
            f"delete-old deleted nothing: there is no stored export of {run.plan.old_addon}, the "
            "record the manual way back needs (Redis and the journal both lack it). Run `export` "
            f"({run.plan.old_addon} still has every mapping; it only reads), then delete-old again"
        )
    if not run.live.dry_run and not run.recall("point_of_no_return"):
        _no_late_writes(run)  # (a resumed attempt is past the point: only forward is left)
    old = run.live.old()  # one read for both: each costs the outage an HC round trip
    retire_old_copies(run, old)
    ref = run.live.ref(run.plan.old_addon)
    doomed = [(obj, m) for obj in run.plan.objects if (m := old.mapping(obj)) is not None]
    if doomed:
        # Recorded (journal first) before the first DELETE leaves: from here a DELETE may have
        # landed whatever its answer, so there is no way back but forward or by hand.
        run.pass_point_of_no_return(", ".join(obj for obj, _ in doomed))
    for i, (obj, m) in enumerate(doomed):
        if i:
            run.kill_point("between-deletes")
        run.live.change(
            f"DELETE /mappings/{m.id} ({obj} on {run.plan.old_addon})",
            partial(run.live.connect.delete_mapping, ref, m.id),
        )


def verify_check(run: Run) -> Check:
    """After the cutover the old tables may be gone (delete-old), so this runs the checks of
    `swapbot db verify` that hold then: names resolve to NEW for the app's roles, the new
    columns exist, rows still arrive from Salesforce, HC's triggers are on the new tables; and
    once they pass, Heroku Connect's own diagnosis of hc2 (`_diagnosed_new`)."""
    synced = wait_sync_check(run)
    if not synced:
        return synced
    from swapbot.database import verify

    p = run.plan
    since = verify.parse_since(_iso(run.recall("outage_started_at")))
    columns = [f"{obj.lower()}.{f.lower()}" for obj, fields in p.mappings.items() for f in fields]
    roles: list[str | None] = [*p.roles] or [None]  # no role: the database's own setting
    with run.live.db(autocommit=True) as conn:
        checks = [
            verify.check_resolution(conn, p.old_schema, p.new_schema, p.tables, r) for r in roles
        ]
        checks.append(verify.check_columns(conn, p.old_schema, p.new_schema, p.tables, columns))
        checks.append(_arriving(run, verify.check_arriving(conn, p.new_schema, p.tables, since)))
        checks.append(verify.check_hc_triggers(conn, p.new_schema, p.tables))
    failed = [f"{c.name}: {c.detail}" for c in checks if c.status == "fail"]
    if failed:
        return Check(False, "; ".join(failed), {"checks": [c.model_dump() for c in checks]})
    return _diagnosed_new(
        run, "hc2 in sync; names resolve to the new schema; new columns present; data arriving"
    )


# verify may be looked at again (a resumed runner, `status`): a diagnosis of hc2 is used again
# for this long before HC is asked again (each asks HC to run every check once more).
DIAGNOSE_REUSE_SECONDS = 30.0
# Inside the outage: how long verify waits for HC's diagnosis before going on without it.
DIAGNOSE_WAIT_SECONDS = 120.0


def _diagnosed_new(run: Run, seen: str) -> Check:
    """The last of verify's checks, made only once the others pass: Heroku Connect's own
    diagnosis of hc2 (`heroku connect:diagnose`), recorded for the report and the ledger. It
    never keeps the app down: the checks above proved that names resolve to NEW and data
    arrives there. A check failed as an error becomes a blocking item of the ledger (the swap
    is not finished until a person fixed it and marked it done); warnings, and a diagnosis HC
    could not give, are told."""
    record = run.recall("diagnose_new")
    if not _lately(record):
        record = diagnose(run.live, run.plan.new_addon, max_wait=DIAGNOSE_WAIT_SECONDS)
        run.remember("diagnose_new", record)
    data = {"diagnose": record}
    if record.get("error"):
        return Check(True, f"{seen}; {diagnose_lines(record)[0]}", data)
    errors = diagnose_lines(record, ("error",))
    if errors:
        told = (
            f"{len(errors)} check(s) failed as errors, each a blocking item of the ledger: "
            + "; ".join(errors)
        )
        return Check(True, f"{seen}; {told}", data)
    warnings = diagnose_lines(record, ("warning",))
    told = "; ".join(warnings) or f"HC diagnose on {run.plan.new_addon}: no failed check"
    return Check(True, f"{seen}; {told}", data)


def _lately(record: dict[str, Any] | None) -> bool:
    """A diagnosis HC gave less than DIAGNOSE_REUSE_SECONDS ago."""
    if not record or record.get("error"):
        return False
    return time.time() - float(record.get("at") or 0) < DIAGNOSE_REUSE_SECONDS


def _arriving(run: Run, rows: VerifyCheck) -> VerifyCheck:
    """Data flows from Salesforce into NEW: a row changed there since the outage began has
    arrived, or every moved mapping of hc2 completed a poll after resume-new. The poll is the
    proof that needs no change in Salesforce, so verify does not wait for one (up to a polling
    interval) when the org is quiet or the poll brought nothing."""
    from swapbot.database import verify

    before = run.recall("polls_at_resume")
    if rows.status != "fail" or not before:
        return rows
    behind = polled_since(before, sf_polls(run, run.plan.new_addon))
    if behind:
        return rows.model_copy(
            update={"detail": rows.detail + f"; no poll since resume-new yet: {', '.join(behind)}"}
        )
    return verify.Check(
        name="arriving",
        status="pass",
        detail=f"every moved mapping of {run.plan.new_addon} polled Salesforce after resume-new",
    )


def _iso(epoch: float | None) -> str:
    import datetime as dt

    moment = dt.datetime.fromtimestamp(epoch or 0, dt.UTC)
    return moment.replace(tzinfo=None).isoformat()


def external_objects_check(run: Run) -> Check:
    odata = (run.live.old().model_extra or {}).get("odata")
    if odata and not run.confirmed("external-objects"):
        return Check(
            False,
            "External Objects are on: re-point the moved tables, then `confirm external-objects`",
        )
    return Check(True, "no External Objects to re-point")


def external_objects_act(run: Run) -> None:
    run.ask(
        f"re-point Heroku External Objects of {', '.join(run.plan.tables)} to schema {run.plan.new_schema}, "
        "then confirm with `confirm external-objects`",
        person=run.plan.authorizer,
    )
