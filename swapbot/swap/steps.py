"""The runbook, one declaration per step (DESIGN.md "The procedure").

A step knows its name, phase, whether it needs a second person, whether it is inside the outage
or past the point of no return, how to tell from the live system that it is done (`check`), how
to act (`act`), and how to undo (`undo`). The engine runs every step the same way: check, act
if needed, wait until the check passes. Steps never lock, retry, audit or format messages.

`check` returns a `Check`: done or not, with what was seen. `act` makes changes only through
`run.live.change(...)` (so dry runs list them) and records what rollback needs with
`run.remember(...)`. A step that only a person can do has `person` set: its `act` asks, and the
engine waits for the live system to show it was done.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from swapbot.heroku import Connection, ExportDocument, MappingConfig
from swapbot.heroku._models import MAPPING_ERROR_STATES, SYNCED_STATES

if TYPE_CHECKING:
    from swapbot.swap.engine import Run

Phase = Literal["prep", "cutover"]


@dataclass(frozen=True)
class Check:
    done: bool
    seen: str = ""
    data: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return self.done


@dataclass(frozen=True)
class Step:
    name: str
    phase: Phase
    summary: str
    check: Callable[[Run], Check]
    act: Callable[[Run], None] | None = None
    undo: Callable[[Run], None] | None = None
    approval: bool = False
    in_outage: bool = False
    point_of_no_return: bool = False
    unsafe: bool = False  # act is not safe to repeat: after an interruption, check first
    person: str | None = None  # what a person must do, when only a person can
    waits_on: Literal["heroku", "person", None] = None  # whose time the wait is
    timeout: float = 600.0  # nominal seconds the engine waits for the check after acting
    # Act again on every poll until the check passes (safe, idempotent acts).
    repeat_act: bool = False
    # Undo only when the rollback removes hc2 (`rollback --remove-addon`): a plain rollback
    # keeps hc2 and its synced copy, so that the cutover can be tried again without new loads.
    undo_removes_hc2: bool = False
    # "record": the check rests on something the swap recorded (a report, an export, a
    # person's word), kept in Redis and in the journal; "live": on the live system alone.
    proof: Literal["live", "record"] = "live"
    # Reads only, changes nothing on the live system: it does not make a swap "in progress".
    reads_only: bool = False
    # Records the undo cannot do without: a rollback past this step refuses when they are gone.
    undo_needs: tuple[str, ...] = ()


# -- helpers ---------------------------------------------------------------------------------
def _new(run: Run) -> Connection | None:
    return run.live.new()


def _new_mappings(run: Run) -> dict[str, Any]:
    c = _new(run)
    return {m.object_name: m for m in (c.mappings if c else [])}


def _missing_fields(run: Run) -> dict[str, list[str]]:
    """Per moved object, the requested fields hc2's mapping does not have yet."""
    mappings = _new_mappings(run)
    missing = {}
    for obj, fields in run.plan.mappings.items():
        have = (
            set(mappings[obj].config.fields) if obj in mappings and mappings[obj].config else set()
        )
        lacking = [f for f in fields if f not in have]
        if lacking:
            missing[obj] = lacking
    return missing


# -- prep ------------------------------------------------------------------------------------
def preflight_check(run: Run) -> Check:
    report = run.recall("preflight")
    if not report:
        new = _new(run)
        if new is not None and new.schema_name == run.plan.new_schema:
            # Its report is gone (Redis lost it) but prep went past it: hc2 already uses NEW.
            return Check(
                True, f"past preflight: {run.plan.new_addon} already uses {run.plan.new_schema}"
            )
        return Check(False, "no preflight report yet")
    failed = [c["name"] for c in report["checks"] if c["status"] == "fail"]
    if failed:
        return Check(False, "preflight failed: " + ", ".join(failed), {"failed": failed})
    return Check(True, "preflight passed")


def preflight_act(run: Run) -> None:
    from swapbot.database import preflight
    from swapbot.swap import writers

    with run.live.db(autocommit=True) as conn:
        report = preflight.preflight(
            conn,
            run.plan.old_schema,
            run.plan.new_schema,
            run.plan.tables,
            roles=run.plan.roles or None,
        )
        # Every writer: the apps on the database, its pooler, the sessions of the app's roles.
        found = writers.discover(run.live.platform, run.plan, conn, own_app=run.engine.own_app)
    run.remember("preflight", report.model_dump(mode="json"))
    run.remember("writers", found.model_dump(mode="json"))


def create_addon_check(run: Run) -> Check:
    addons = {a.name: a for a in run.live.platform.list_addons(run.plan.app)}
    addon = addons.get(run.plan.new_addon)
    if addon is None:
        return Check(False, f"no add-on {run.plan.new_addon} yet")
    return Check(addon.state == "provisioned", f"add-on {addon.name} is {addon.state}")


def create_addon_act(run: Run) -> None:
    addons = {a.name: a for a in run.live.platform.list_addons(run.plan.app)}
    if run.plan.new_addon in addons:
        return  # provisioning: only wait
    old = addons.get(run.plan.old_addon)
    if old is None:
        raise run.stop(f"the app has no add-on {run.plan.old_addon} to copy the plan from")
    plan = old.plan_name or "herokuconnect:enterprise"
    run.live.change(
        f"POST /apps/{run.plan.app}/addons plan={plan} name={run.plan.new_addon}",
        lambda: run.live.platform.create_addon(run.plan.app, plan=plan, name=run.plan.new_addon),
    )


def remove_addon_undo(run: Run) -> None:
    """Remove hc2 and the schema it synced into (`rollback --remove-addon`). Refuses, before
    changing anything, while something outside NEW depends on NEW: that is someone's work."""
    from swapbot.database import dropschema
    from swapbot.database._common import schema_exists

    plan = run.plan
    with run.live.db(autocommit=True) as conn:
        exists = schema_exists(conn, plan.new_schema)
        outside = dropschema.outside_dependents(conn, plan.new_schema)
        tables = dropschema.tables(conn, plan.new_schema)
    if outside:
        raise run.stop(
            f"{plan.new_addon} was not removed: objects outside {plan.new_schema} depend on it "
            f"({dropschema.listed(outside)}). Drop or re-point them, then run "
            "`rollback --remove-addon` again"
        )
    addons = {a.name for a in run.live.platform.list_addons(plan.app)}
    if plan.new_addon in addons:
        run.live.change(
            f"DELETE /apps/{plan.app}/addons/{plan.new_addon}",
            lambda: run.live.platform.delete_addon(plan.app, plan.new_addon),
        )
    if exists:

        def drop() -> None:
            with run.live.db(autocommit=True) as conn:
                dropschema.drop(conn, plan.new_schema)

        run.live.change(
            f"DROP SCHEMA {plan.new_schema} CASCADE "
            f"({len(tables)} table(s): {dropschema.listed(tables, 8) or 'none'})",
            drop,
            sql=[f"DROP SCHEMA {plan.new_schema} CASCADE"],
        )


def configure_check(run: Run) -> Check:
    c = _new(run)
    if c is None:
        return Check(False, "hc2 has no connection yet")
    ok = c.schema_name == run.plan.new_schema and c.db_key == "DATABASE_URL" and c.state != "NEW"
    return Check(
        ok, f"{run.plan.new_addon}: state {c.state}, schema {c.schema_name}, db_key {c.db_key}"
    )


def configure_act(run: Run) -> None:
    ref = run.live.ref(run.plan.new_addon)
    run.live.change(
        f"PATCH /connections/{ref.id} db_key=DATABASE_URL schema_name={run.plan.new_schema}",
        lambda: run.live.connect.configure(
            ref, db_key="DATABASE_URL", schema_name=run.plan.new_schema
        ),
    )


def authorize_check(run: Run) -> Check:
    c = _new(run)
    if c is None or c.state in ("NEW", "NEED_AUTHENTICATION"):
        return Check(
            False, f"{run.plan.new_addon} is {c.state if c else 'missing'}: not authorized yet"
        )
    sf = c.sf_info or {}
    if c.state == "RECOVERY":
        return Check(False, "authorized; Heroku Connect is re-enabling the connection")
    return Check(
        True, f"authorized as {sf.get('username')} (API {sf.get('api_version')})", {"sf_info": sf}
    )


def authorize_act(run: Run) -> None:
    ref = run.live.ref(run.plan.new_addon)
    link = run.live.change(
        f"POST /connections/{ref.id}/authorize_url environment={run.plan.sf_environment}",
        lambda: run.live.connect.authorize_url(
            ref, environment=run.plan.sf_environment, domain=run.plan.sf_domain
        ),
    )
    who = run.plan.authorizer or "an operator"
    run.ask(
        f"{who}: open the Salesforce authorization link and log in as the integration user for "
        f"{run.plan.new_addon} (a separate user from {run.plan.old_addon}'s, API 56 or later)",
        link=link,
        person=run.plan.authorizer,
    )


def export_check(run: Run) -> Check:
    doc = run.recall("export")
    return Check(bool(doc), "hc1's configuration is stored" if doc else "not exported yet")


def export_act(run: Run) -> None:
    doc = run.live.connect.export_config(run.live.ref(run.plan.old_addon))
    missing = [
        obj for obj in run.plan.objects if obj.lower() not in {o.lower() for o in doc.object_names}
    ]
    if missing:
        raise run.stop(f"{run.plan.old_addon} has no mapping for {', '.join(missing)}")
    run.remember("export", doc.payload())


def import_document(run: Run) -> ExportDocument:
    """hc1's export filtered to the moved mappings, with the new fields already added, so the
    first load includes them (the shortcut: abort, add-columns and reload then find themselves done)."""
    doc = ExportDocument.model_validate(run.recall("export"))
    return doc.filtered(run.plan.objects).with_added_fields(run.plan.mappings)


def import_check(run: Run) -> Check:
    c = _new(run)
    if c is None:
        return Check(False, "hc2 is missing")
    have = {m.object_name for m in c.mappings}
    lacking = [o for o in run.plan.objects if o not in have]
    if c.state == "IMPORT_CONFIGURATION":
        return Check(False, "Heroku Connect is importing")
    return Check(
        not lacking,
        "all mappings exist on hc2" if not lacking else f"missing on hc2: {', '.join(lacking)}",
    )


def import_act(run: Run) -> None:
    ref = run.live.ref(run.plan.new_addon)
    doc = import_document(run)
    run.live.change(
        f"POST /connections/{ref.id}/actions/import mappings={','.join(doc.object_names)}",
        lambda: run.live.connect.import_config(ref, doc),
        body=doc.payload(),
    )


def abort_check(run: Run) -> Check:
    """Nothing to abort when every mapping got its fields with the import (the shortcut)."""
    mappings = _new_mappings(run)
    absent = [o for o in run.plan.objects if o not in mappings]
    if absent:
        return Check(False, f"hc2 has no mapping for {', '.join(absent)} yet")
    missing = _missing_fields(run)
    if not missing:
        return Check(True, "every hc2 mapping already has the new fields: nothing to abort")
    loading = [
        o
        for o in missing
        if mappings[o].state in ("INITIAL", "RELOAD_TABLE", "RESYNC", "SCHEMA_CHANGED")
    ]
    if loading:
        return Check(False, f"still loading without the new fields: {', '.join(loading)}")
    return Check(True, "no load runs on the mappings that lack fields")


def abort_act(run: Run) -> None:
    missing = _missing_fields(run)
    run.ask(
        f"someone with dashboard access: press Abort on the loading mapping(s) {', '.join(missing)} of "
        f"{run.plan.new_addon} (Heroku Connect has no API for it); the bot continues when the load has stopped",
        person=run.plan.authorizer,
    )


def add_columns_check(run: Run) -> Check:
    missing = _missing_fields(run)
    if not missing:
        return Check(True, "hc2's mappings have every requested field")
    return Check(
        False,
        "fields still missing: " + "; ".join(f"{o}: {', '.join(f)}" for o, f in missing.items()),
    )


def add_columns_act(run: Run) -> None:
    ref = run.live.ref(run.plan.new_addon)
    mappings = _new_mappings(run)
    for obj, fields in _missing_fields(run).items():
        m = mappings[obj]
        config = MappingConfig.model_validate(m.config.payload() if m.config else {})
        for f in fields:
            config.fields[f] = {}
        run.live.change(
            f"PUT /mappings/{m.id} ({obj}) add {', '.join(fields)} at revision {config.revision}",
            lambda m=m, config=config: run.live.connect.update_mapping(ref, m.id, config),
        )


def reload_check(run: Run) -> Check:
    absent = [o for o in run.plan.objects if o not in _new_mappings(run)]
    if absent:
        return Check(False, f"hc2 has no mapping for {', '.join(absent)} yet")
    aborted = [
        o for o, m in _new_mappings(run).items() if o in run.plan.mappings and m.state == "ABORTED"
    ]
    return Check(
        not aborted, "no mapping left aborted" if not aborted else f"aborted: {', '.join(aborted)}"
    )


def reload_act(run: Run) -> None:
    ref = run.live.ref(run.plan.new_addon)
    for obj, m in _new_mappings(run).items():
        if obj in run.plan.mappings and m.state == "ABORTED":
            run.live.change(
                f"POST /mappings/{m.id}/actions/reload ({obj})",
                lambda m=m: run.live.connect.reload_mapping(ref, m.id),
            )


SETTINGS_COMPARED = ("poll_db_no_merge",)


def settings_diff(run: Run) -> dict[str, tuple[Any, Any]]:
    old, new = run.live.old(), _new(run)
    if new is None:
        return {"connection": ("present", "missing")}
    diff = {}
    for key in SETTINGS_COMPARED:
        if old.features.get(key) != new.features.get(key):
            diff[key] = (old.features.get(key), new.features.get(key))
    if old.logplex_log_enabled != new.logplex_log_enabled:
        diff["logplex_log_enabled"] = (old.logplex_log_enabled, new.logplex_log_enabled)
    return diff


def settings_check(run: Run) -> Check:
    diff = settings_diff(run)
    if diff:
        text = "; ".join(f"{k}: hc1 {a!r}, hc2 {b!r}" for k, (a, b) in diff.items())
        return Check(
            False, f"settings differ: {text}", {"diff": {k: list(v) for k, v in diff.items()}}
        )
    if not run.confirmed("settings"):
        return Check(
            False, "write algorithm matches; notification settings await a person's confirmation"
        )
    return Check(True, "write algorithm and logging match; notifications confirmed by a person")


def settings_act(run: Run) -> None:
    diff = settings_diff(run)
    wanted = (
        "Ordered Writes" if run.live.old().features.get("poll_db_no_merge") else "Merged Writes"
    )
    parts = []
    if "poll_db_no_merge" in diff:
        parts.append(
            f"set the write algorithm of {run.plan.new_addon} to {wanted} (Manage Connection page)"
        )
    if "logplex_log_enabled" in diff:
        parts.append("match the logging setting")
    parts.append(
        f"copy {run.plan.old_addon}'s notification settings to {run.plan.new_addon}, then confirm with `confirm settings`"
    )
    run.ask("someone with dashboard access: " + "; ".join(parts), person=run.plan.authorizer)


def wait_sync_check(run: Run) -> Check:
    c = _new(run)
    if c is None:
        return Check(False, "hc2 is missing")
    behind, progress = [], {}
    for obj in run.plan.objects:
        m = c.mapping(obj)
        if m is None:
            behind.append(f"{obj} missing")
            continue
        counts = m.counts
        db, sf = (counts.db or 0, counts.sf or 0) if counts else (0, 0)
        progress[obj] = {"state": m.state, "db": db, "sf": sf}
        if m.state in MAPPING_ERROR_STATES:
            raise run.stop(f"{obj} is in {m.state} on {run.plan.new_addon}: {m.state_description}")
        tolerance = max(5, int(sf * 0.001))
        if m.state not in SYNCED_STATES or abs(sf - db) > tolerance or (counts and counts.errors):
            behind.append(f"{obj} {m.state} {db}/{sf}")
    if behind:
        return Check(False, "loading: " + ", ".join(behind), {"progress": progress})
    return Check(True, "every hc2 mapping is in sync", {"progress": progress})


# Connection states in which HC syncs (the resume steps wait for one of them).
RUNNING = ("IDLE", "POLLING_DB_CHANGES")


def measure_check(run: Run) -> Check:
    rec = run.recall("measure") or {}
    c = _new(run)
    state = c.state if c else "missing"
    if "first_poll_after" not in rec:
        phase = (
            "pausing"
            if "paused_after" not in rec
            else "resuming"
            if "resumed_after" not in rec
            else "waiting for its first Salesforce poll"
        )
        return Check(False, f"timing {run.plan.new_addon}: {phase} ({state})")
    if state not in RUNNING:
        return Check(False, f"{run.plan.new_addon} is {state}: not running again yet")
    poll = rec["first_poll_after"]
    return Check(
        True,
        f"{run.plan.new_addon} paused in {rec['paused_after']:.1f}s, ran again "
        f"{rec['resumed_after']:.1f}s after its resume"
        + (
            f", polled Salesforce {poll:.1f}s after it"
            if poll is not None
            else "; it reports no poll times"
        ),
        {"measure": rec},
    )


def measure_act(run: Run) -> None:
    """Pause hc2 and resume it once, timing both and its first Salesforce poll afterwards: the
    same calls the cutover makes, on a connection that serves nothing yet (the app reads OLD,
    nobody writes NEW), so the outage is predicted from this Heroku Connect, not from guesses.
    Called on every poll until done; each moment is recorded before the call it times, so a
    runner resumed after a crash carries on where the record stands."""
    addon = run.plan.new_addon
    ref = run.live.ref(addon)
    if run.live.dry_run:
        run.live.change(f"POST /connections/{ref.id}/actions/pause ({addon})", lambda: None)
        run.live.change(f"POST /connections/{ref.id}/actions/resume ({addon})", lambda: None)
        return
    rec = dict(run.recall("measure") or {})
    c = _new(run)
    state = c.state if c else None
    now = time.time()
    if "paused_after" not in rec:
        if state == "PAUSED" and "pause_requested_at" in rec:
            rec["paused_after"] = round(now - rec["pause_requested_at"], 3)
            run.remember("measure", rec)
        else:
            rec.setdefault("pause_requested_at", now)
            run.remember("measure", rec)
            _pause_one(run, addon)  # again on each poll: HC pauses only from IDLE
            return
    if "resume_requested_at" not in rec:
        rec["polls_at_resume"] = sf_polls(run, addon)
        rec["resume_requested_at"] = now
        run.remember("measure", rec)
    if "resumed_after" not in rec:
        if state in RUNNING:
            rec["resumed_after"] = round(now - rec["resume_requested_at"], 3)
            run.remember("measure", rec)
        else:
            _resume(lambda r: addon)(run)
            return
    if "first_poll_after" not in rec:
        polls = sf_polls(run, addon)
        if all(v is None for v in polls.values()):
            rec["first_poll_after"] = None  # HC gives no poll times: the interval is the guess
        elif not polled_since(rec["polls_at_resume"], polls):
            rec["first_poll_after"] = round(now - rec["resume_requested_at"], 3)
        else:
            return
        run.remember("measure", rec)


def _pause_one(run: Run, addon: str) -> None:
    from swapbot.heroku import BadRequest

    ref = run.live.ref(addon)
    with contextlib.suppress(BadRequest):
        run.live.change(
            f"POST /connections/{ref.id}/actions/pause ({addon})",
            lambda: run.live.connect.pause(ref),
        )


def measure_undo(run: Run) -> None:
    """A rollback while the measurement had hc2 paused: let it run again."""
    _resume(lambda r: r.plan.new_addon)(run)


# -- cutover --------------------------------------------------------------------------------
def _formation(run: Run) -> dict[str, Any]:
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
        app = run.live.platform.app(run.plan.app)
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
        run.remember("maintenance_before", bool(app.maintenance))
    run.mark_outage_start()
    for app, types in _stopped_apps(run).items():
        run.live.change(
            f"PATCH /apps/{app} maintenance=true",
            lambda app=app: run.live.platform.set_maintenance(app, True),
        )
        updates = [{"type": t, "quantity": 0} for t in types]
        if updates:
            run.live.change(
                f"PATCH /apps/{app}/formation " + ", ".join(f"{u['type']}=0" for u in updates),
                lambda app=app, updates=updates: run.live.platform.update_formation(app, updates),
            )


def _recorded_apps(run: Run) -> dict[str, dict[str, Any]] | None:
    """What stop-writes recorded of each app: formation and maintenance before it; None when
    the record of the swapped app is gone."""
    before = run.recall("formation")
    if before is None:
        return None
    apps = {run.plan.app: {"formation": before, "maintenance": run.recall("maintenance_before")}}
    return apps | (run.recall("writers_before") or {})


def _stale(run: Run, conn: Any) -> list[Any]:
    """Sessions of the app's roles that logged in before the search_path last changed (the
    switch, or a rollback's restore): they keep the path they got at login."""
    from swapbot.swap import writers

    changed = _path_changed_at(run)
    if changed is None:
        return []
    return writers.role_sessions(conn, writers.app_roles(run.plan), before=changed)


def _path_changed_at(run: Run) -> Any:
    import datetime as dt

    moments = []
    record = run.recall("search_path")
    if record and record.get("switched_at"):
        moments.append(dt.datetime.fromisoformat(record["switched_at"]))
    if run.recall("path_restored_at"):
        moments.append(dt.datetime.fromisoformat(run.recall("path_restored_at")))
    return max(moments) if moments else None


def end_stale_sessions(run: Run, conn: Any, *, when: str) -> None:
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
                lambda app=app, updates=updates: run.live.platform.update_formation(app, updates),
            )
        if not rec["maintenance"]:
            run.live.change(
                f"PATCH /apps/{app} maintenance=false",
                lambda app=app: run.live.platform.set_maintenance(app, False),
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
    return {
        addon: (run.live.connection(addon).state or "")
        for addon in (run.plan.old_addon, run.plan.new_addon)
    }


def pause_check(run: Run) -> Check:
    states = _paused(run)
    return Check(
        all(s == "PAUSED" for s in states.values()),
        ", ".join(f"{a} {s}" for a, s in states.items()),
    )


def pause_act(run: Run) -> None:
    from swapbot.heroku import BadRequest

    for addon, state in _paused(run).items():
        if state == "PAUSED":
            continue
        ref = run.live.ref(addon)
        # Pause is refused outside IDLE (reference §3.3): the next poll tries again.
        with contextlib.suppress(BadRequest):
            run.live.change(
                f"POST /connections/{ref.id}/actions/pause ({addon})",
                lambda ref=ref: run.live.connect.pause(ref),
            )


def _resume(addon_of: Callable[[Run], str]) -> Callable[[Run], None]:
    def act(run: Run) -> None:
        addon = addon_of(run)
        c = run.live.connection(addon)
        if c is not None and c.state == "PAUSED":
            ref = run.live.ref(addon)
            run.live.change(
                f"POST /connections/{ref.id}/actions/resume ({addon})",
                lambda: run.live.connect.resume(ref),
            )

    return act


def sf_polls(run: Run, addon: str) -> dict[str, str | None]:
    """Each moved mapping's last completed Salesforce poll, as Heroku Connect reports it
    (`times.sf_poll`, its own clock), or None when it reports none."""
    c = run.live.connection(addon)
    polls: dict[str, str | None] = {}
    for obj in run.plan.objects:
        m = c.mapping(obj) if c else None
        value = (m.times or {}).get("sf_poll") if m else None
        polls[obj] = str(value) if value else None
    return polls


def _moment(text: str) -> Any:
    import datetime as dt

    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # HC's clock is UTC


def polled_since(before: dict[str, str | None], now: dict[str, str | None]) -> list[str]:
    """The objects that have not completed a poll since `before` was read (empty: all have)."""
    behind = []
    for obj, seen in now.items():
        was = before.get(obj)
        if seen is None or (was is not None and _moment(seen) <= _moment(was)):
            behind.append(obj)
    return behind


def resume_new_act(run: Run) -> None:
    c = _new(run)
    if c is not None and c.state == "PAUSED":
        # hc2's last polls before it runs again: verify takes a newer poll of every moved mapping
        # as the proof that Salesforce data flows into NEW, instead of waiting for a row to change.
        run.remember("polls_at_resume", sf_polls(run, run.plan.new_addon))
    _resume(lambda r: r.plan.new_addon)(run)


def _running(addon_of: Callable[[Run], str]) -> Callable[[Run], Check]:
    def check(run: Run) -> Check:
        addon = addon_of(run)
        c = run.live.connection(addon)
        state = c.state if c else "missing"
        return Check(state in ("IDLE", "POLLING_DB_CHANGES"), f"{addon} {state}")

    return check


def undo_pause(run: Run) -> None:
    _resume(lambda r: r.plan.old_addon)(run)
    _resume(lambda r: r.plan.new_addon)(run)


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


def _record_readers(run: Run, conn: Any) -> None:
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
            now = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        run.remember("path_restored_at", now.isoformat())
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


def _app_sessions(run: Run, conn: Any) -> list[Any]:
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
            lambda m=m: run.live.connect.delete_mapping(ref, m.id),
        )


def verify_check(run: Run) -> Check:
    """After the cutover the old tables may be gone (delete-old), so this runs the checks of
    `swapbot db verify` that hold then: names resolve to NEW for the app's roles, the new
    columns exist, rows still arrive from Salesforce, HC's triggers are on the new tables."""
    synced = wait_sync_check(run)
    if not synced:
        return synced
    from swapbot.database import verify

    p = run.plan
    since = verify.parse_since(_iso(run.recall("outage_started_at")))
    columns = [f"{obj.lower()}.{f.lower()}" for obj, fields in p.mappings.items() for f in fields]
    with run.live.db(autocommit=True) as conn:
        checks = [
            verify.check_resolution(conn, p.old_schema, p.new_schema, p.tables, r)
            for r in p.roles or [None]
        ]
        checks.append(verify.check_columns(conn, p.old_schema, p.new_schema, p.tables, columns))
        checks.append(_arriving(run, verify.check_arriving(conn, p.new_schema, p.tables, since)))
        checks.append(verify.check_hc_triggers(conn, p.new_schema, p.tables))
    failed = [f"{c.name}: {c.detail}" for c in checks if c.status == "fail"]
    if failed:
        return Check(False, "; ".join(failed), {"checks": [c.model_dump() for c in checks]})
    return Check(
        True, "hc2 in sync; names resolve to the new schema; new columns present; data arriving"
    )


def _arriving(run: Run, rows: Any) -> Any:
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


# -- objects Heroku Connect does not manage (swapbot.database.ddl) --------------------------
# -- parity ------------------------------------------------------------------------------------
def parity_check(run: Run) -> Check:
    record = run.recall("parity")
    if record is None:
        return Check(False, "the two copies are not compared yet")
    return Check(True, _parity_seen(record), {"parity": record})


def _parity_seen(record: dict[str, Any]) -> str:
    tables = record.get("tables", [])
    rows = sum(t["rows_old"] for t in tables)
    differing = sum(t["differing_rows"] for t in tables)
    verdict = "equal" if record.get("equal") else f"{differing} row(s) differ"
    return f"{len(tables)} table(s), {rows:,} rows compared: {verdict}"


def parity_act(run: Run) -> None:
    """Compare the old and new copies once hc2 has loaded, while the app still writes: rows it
    changed since hc2 loaded them may differ, and the drain and the switch take care of those.
    Reads only (one snapshot); a dry run skips it rather than list reads."""
    from swapbot.database import parity

    if run.live.dry_run:
        return
    with run.live.db(autocommit=True) as conn:
        result = parity.parity(conn, run.plan.old_schema, run.plan.new_schema, run.plan.tables)
    record = result.model_dump(mode="json")
    record["compared_at"] = time.time()
    run.remember("parity", record)


def _ddl_plan(run: Run, phase: str):
    from swapbot.database import ddl

    with run.live.db(autocommit=True) as conn:
        return ddl.plan(conn, run.plan.old_schema, run.plan.new_schema, run.plan.tables, phase)


def _objects_check(phase: str) -> Callable[[Run], Check]:
    """Done when this swap applied the phase's DDL (grants re-plan forever: GRANT is idempotent,
    so an empty plan cannot be the proof) and a person handled what the bot could not."""

    def check(run: Run) -> Check:
        record = run.recall(f"ddl:{phase}")
        if not record or not record.get("applied"):
            plan = _ddl_plan(run, phase)
            if plan.problems:
                return Check(
                    False, "not ready: " + "; ".join(plan.problems), {"problems": plan.problems}
                )
            if not plan.steps and not plan.manual:
                return Check(True, f"no {phase} objects to carry")
            return Check(False, f"{len(plan.steps)} object(s) to carry to {run.plan.new_schema}")
        manual = [f"{m['kind']} {m['identity']}" for m in record.get("manual", [])]
        if manual and not run.confirmed("objects"):
            return Check(False, "objects for a person: " + "; ".join(manual), {"manual": manual})
        done = len(record.get("steps", []))
        return Check(
            True,
            f"{done} {phase} object(s) carried"
            + (f"; {len(manual)} by a person" if manual else ""),
        )

    return check


def _objects_act(phase: str) -> Callable[[Run], None]:
    def act(run: Run) -> None:
        from swapbot.database import ddl, system_grants

        plan = _ddl_plan(run, phase)
        if plan.problems:
            raise run.stop(f"the {phase} DDL cannot run yet: " + "; ".join(plan.problems))

        if phase == "prep" and run.recall("ddl:preexisting") is None:
            # What NEW already holds that a rollback would take for the swap's own: keep it.
            before = _ddl_plan(run, "rollback")
            run.remember(
                "ddl:preexisting", [st.identity for st in before.steps if st.action == "drop"]
            )
            with run.live.db(autocommit=True) as conn:
                acl = system_grants.snapshot(conn, run.plan.new_schema, run.plan.tables)
            run.remember("ddl:new-schema-before", acl)  # grants and comments, for an exact rollback

        def apply() -> None:
            p = run.plan
            with run.live.db(autocommit=True) as conn:
                done = ddl.apply(conn, p.old_schema, p.new_schema, p.tables, phase)
                grants = (
                    system_grants.carry(conn, p.old_schema, p.new_schema) if phase == "prep" else []
                )
            run.remember(f"ddl:{phase}", done.model_dump(mode="json") | {"system_grants": grants})

        run.live.change(
            f"apply {phase} DDL: {len(plan.statements)} statement(s)", apply, sql=plan.statements
        )
        if plan.manual:
            items = "; ".join(
                f"{m.kind} {m.identity}: {', '.join(m.flags) or m.action}" for m in plan.manual
            )
            run.ask(
                f"objects the bot cannot carry safely need a person: {items}. Handle them, then `confirm objects`",
                person=run.plan.authorizer,
            )

    return act


def objects_undo(run: Run) -> None:
    """Put back re-pointed definitions, drop the copies made in NEW (ddl's rollback phase), and
    leave NEW's grants and comments exactly as they were before prep."""
    from swapbot.database import ddl, system_grants

    keep = frozenset(run.recall("ddl:preexisting") or [])
    before = run.recall("ddl:new-schema-before")
    with run.live.db(autocommit=True) as conn:
        plan = ddl.plan(
            conn, run.plan.old_schema, run.plan.new_schema, run.plan.tables, "rollback", keep=keep
        )
    if not plan.steps and not before:
        return

    def apply() -> None:
        p = run.plan
        with run.live.db(autocommit=True) as conn:
            ddl.apply(conn, p.old_schema, p.new_schema, p.tables, "rollback", keep=keep)
            if before:
                system_grants.restore(conn, before)

    run.live.change(
        f"apply rollback DDL: {len(plan.statements)} statement(s), then NEW's grants as before prep",
        apply,
        sql=plan.statements,
    )
    run.remember("ddl:new-schema-before", None)  # restored: a second undo finds nothing to do
    # The records prove the phases applied; they no longer are, so prep's check must see it
    # (`next` carries the objects again before a new cutover can start).
    run.remember("ddl:prep", None)
    run.remember("ddl:cutover", None)


# -- the runbook -----------------------------------------------------------------------------
PREP: tuple[Step, ...] = (
    Step(
        "preflight",
        "prep",
        "check the database requirements",
        preflight_check,
        preflight_act,
        proof="record",
        reads_only=True,
    ),
    Step(
        "create-addon",
        "prep",
        "create hc2 on the app",
        create_addon_check,
        create_addon_act,
        undo=remove_addon_undo,
        undo_removes_hc2=True,
        unsafe=True,
        waits_on="heroku",
    ),
    Step(
        "configure",
        "prep",
        "point hc2 at the database and the new schema",
        configure_check,
        configure_act,
    ),
    Step(
        "authorize",
        "prep",
        "a person authorizes hc2 with Salesforce",
        authorize_check,
        authorize_act,
        person="authorize in the browser",
        waits_on="person",
        timeout=3600,
    ),
    Step(
        "export",
        "prep",
        "export and keep hc1's configuration",
        export_check,
        export_act,
        proof="record",
        reads_only=True,
    ),
    Step(
        "import",
        "prep",
        "import the moved mappings, with the new fields, into hc2",
        import_check,
        import_act,
        unsafe=True,
        waits_on="heroku",
    ),
    Step(
        "abort",
        "prep",
        "stop loads that started without the new fields",
        abort_check,
        abort_act,
        person="press Abort in the dashboard",
        waits_on="person",
        timeout=3600,
    ),
    Step(
        "add-columns",
        "prep",
        "add the new fields to hc2's mappings",
        add_columns_check,
        add_columns_act,
        unsafe=True,
    ),
    Step(
        "reload",
        "prep",
        "reload the aborted mappings",
        reload_check,
        reload_act,
        unsafe=True,
        waits_on="heroku",
    ),
    Step(
        "settings",
        "prep",
        "match Merged Writes and notification settings",
        settings_check,
        settings_act,
        person="set write algorithm and notifications",
        waits_on="person",
        timeout=3600,
        proof="record",
    ),
    Step(
        "wait-sync",
        "prep",
        "wait for hc2's initial loads",
        wait_sync_check,
        waits_on="heroku",
        timeout=86_400,
        reads_only=True,
    ),
    Step(
        "parity",
        "prep",
        "compare the old and new copies of the moved tables (reads only)",
        parity_check,
        parity_act,
        timeout=600,
        proof="record",
        reads_only=True,
    ),
    Step(
        "measure",
        "prep",
        "pause and resume hc2 once, timing it, for the outage prediction",
        measure_check,
        measure_act,
        undo=measure_undo,
        waits_on="heroku",
        repeat_act=True,
        timeout=3600,  # the first poll after the resume may wait one polling interval
        proof="record",
    ),
    Step(
        "prepare-objects",
        "prep",
        "recreate the indexes, grants, views and functions in the new schema",
        _objects_check("prep"),
        _objects_act("prep"),
        undo=objects_undo,
        person="handle objects the bot cannot carry",
        timeout=600,
        proof="record",
    ),
)

CUTOVER: tuple[Step, ...] = (
    Step(
        "stop-writes",
        "cutover",
        "maintenance on, scale the app's writers to 0",
        stop_writes_check,
        stop_writes_act,
        undo=restore_act,
        undo_needs=("formation", "maintenance_before"),
        in_outage=True,
        waits_on="heroku",
        timeout=300,
    ),
    Step(
        "drain",
        "cutover",
        "wait until hc1 has written every pending change",
        drain_check,
        in_outage=True,
        waits_on="heroku",
        timeout=1800,
        reads_only=True,
    ),
    Step(
        "pause",
        "cutover",
        "pause hc1 and hc2",
        pause_check,
        pause_act,
        undo=undo_pause,
        approval=True,
        in_outage=True,
        waits_on="heroku",
        repeat_act=True,
        timeout=600,
    ),
    Step(
        "cutover-objects",
        "cutover",
        "create the triggers and foreign keys, re-point dependents outside the old schema",
        _objects_check("cutover"),
        _objects_act("cutover"),
        undo=objects_undo,
        in_outage=True,
        proof="record",
    ),
    Step(
        "switch",
        "cutover",
        "switch the app's search_path to the new schema",
        switch_check,
        switch_act,
        undo=switch_undo,
        undo_needs=("search_path",),
        in_outage=True,
    ),
    Step(
        "resume-new",
        "cutover",
        "resume hc2",
        _running(lambda r: r.plan.new_addon),
        resume_new_act,
        in_outage=True,
        waits_on="heroku",
    ),
    Step(
        "delete-old",
        "cutover",
        "delete the moved mappings from hc1: the point of no return",
        delete_old_check,
        delete_old_act,
        undo=delete_old_undo,
        approval=True,
        in_outage=True,
        point_of_no_return=True,
    ),
    Step(
        "resume-old",
        "cutover",
        "resume hc1",
        _running(lambda r: r.plan.old_addon),
        _resume(lambda r: r.plan.old_addon),
        in_outage=True,
        waits_on="heroku",
    ),
    Step(
        "verify",
        "cutover",
        "check data flows into the new schema",
        verify_check,
        in_outage=True,
        waits_on="heroku",
        timeout=900,
        reads_only=True,
    ),
    Step(
        "restore",
        "cutover",
        "restore the formation, maintenance off",
        restore_check,
        restore_act,
        in_outage=True,
        waits_on="heroku",
        timeout=300,
    ),
    Step(
        "external-objects",
        "cutover",
        "re-point External Objects, if any",
        external_objects_check,
        external_objects_act,
        person="re-point External Objects",
        waits_on="person",
        timeout=3600,
    ),
)

STEPS: tuple[Step, ...] = PREP + CUTOVER
BY_NAME: dict[str, Step] = {s.name: s for s in STEPS}
OUTAGE_START = "stop-writes"
OUTAGE_END = "restore"  # the outage clock stops when the app runs again


def get(name: str) -> Step:
    if name not in BY_NAME:
        raise KeyError(f"unknown step {name!r}; the steps are: {', '.join(BY_NAME)}")
    return BY_NAME[name]
