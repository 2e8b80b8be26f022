"""The prep steps: days before, while the app runs. Each has a check and, mostly, an act."""

from __future__ import annotations

import contextlib
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from swapbot.heroku import (
    ExportDocument,
    HerokuError,
    MappingConfig,
)
from swapbot.heroku._models import MAPPING_ERROR_STATES, SYNCED_STATES, DiagnosedFailure
from swapbot.heroku._models import Check as HCCheck
from swapbot.swap import assumed
from swapbot.swap import record as swaprecord
from swapbot.swap.run import Run

if TYPE_CHECKING:
    from swapbot.swap.live import Live


from swapbot.swap.steps.base import (
    PAUSE_REFUSED,
    Check,
    _missing_fields,
    _new,
    _new_mappings,
    polled_since,
    resume,
    sf_polls,
)


# -- prep ------------------------------------------------------------------------------------
def preflight_check(run: Run) -> Check:
    blocked = assumed.blockers(run.live.probe)
    if blocked:
        return Check(False, BLOCKED + "; ".join(blocked), {"blocked": blocked})
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
    risks = diagnose_lines(run.recall("diagnose_old"))
    if risks:
        # hc1's own failed checks are risks, not blockers: the swap exists to change its mappings.
        return Check(
            True,
            f"preflight passed; HC diagnose on {run.plan.old_addon}: {len(risks)} risk(s) "
            "(`plan show` lists them): " + "; ".join(risks),
            {"risks": risks},
        )
    return Check(True, "preflight passed")


# What preflight says when a probe contradicted an assumption the runbook cannot handle.
BLOCKED = "blocked by what `swapbot probe` found: "


def preflight_act(run: Run) -> None:
    from swapbot.database import preflight
    from swapbot.swap import writers

    blocked = assumed.blockers(run.live.probe)
    if blocked:
        raise run.stop(BLOCKED + "; ".join(blocked))
    # What the probe found is part of this swap's record: the variants it plays come from it.
    if run.live.probe is not None:
        run.remember(swaprecord.PROBE, run.live.probe.model_dump(mode="json"))
    with run.live.db(autocommit=True) as conn:
        report = preflight.preflight(
            conn,
            run.plan.old_schema,
            run.plan.new_schema,
            run.plan.tables,
            roles=run.plan.roles or None,
        )
        # Every writer: the apps on the database, its pooler, the sessions of the app's roles.
        found = writers.discover(run.live.platform, run.plan, conn, own_app=run.own_app)
    run.remember("preflight", report.model_dump(mode="json"))
    run.remember("writers", found.model_dump(mode="json"))
    # Heroku Connect's own checks of hc1 (`heroku connect:diagnose`): it only reads, so a dry
    # run makes it too. What fails there is shown as a risk, never a reason to stop.
    run.remember("diagnose_old", diagnose(run.live, run.plan.old_addon))


# -- Heroku Connect's diagnosis (`heroku connect:diagnose`), as the swap records it -----------
# The checks are HC's own, per connection and per mapping, each passed, skipped, or failed as
# an error or a warning (as heroku/heroku-connect-plugin src/commands/connect/diagnose.ts
# shows them). preflight records hc1's (risks), verify hc2's (an error there fails it); the
# report, the ledger and `plan show` read the records these functions make.
def diagnose(live: Live, addon: str, *, max_wait: float = 300.0) -> dict[str, Any]:
    """HC's diagnosis of an add-on's connection as a record: each failed check (errors and
    warnings), how many passed and were skipped, when; or, under `error`, why it could not run
    (a diagnosis that cannot run is told, never raised)."""
    record: dict[str, Any] = {
        "addon": addon,
        "at": time.time(),
        "error": None,
        "failures": [],
        "passes": 0,
        "skips": 0,
    }
    try:
        found = live.connect.diagnose(live.ref(addon), max_wait=max_wait)
    except (HerokuError, ValueError) as exc:  # ValueError: a connection without a region
        record["error"] = str(exc) or type(exc).__name__
        return record
    record["failures"] = [
        {"object_name": f.object_name, "level": f.level, "check": f.check.model_dump(mode="json")}
        for f in found.failures()
    ]
    every = [found, *found.mappings.values()]
    record["passes"] = sum(len(r.passes) for r in every)
    record["skips"] = sum(len(r.skips) for r in every)
    return record


def diagnosed_failures(record: dict[str, Any] | None) -> list[DiagnosedFailure]:
    """The failed checks of a diagnosis record, errors and warnings, in HC's order."""
    return [
        DiagnosedFailure(f.get("object_name"), f["level"], HCCheck.model_validate(f["check"]))
        for f in (record or {}).get("failures") or []
    ]


def diagnose_lines(
    record: dict[str, Any] | None, levels: tuple[str, ...] = ("error", "warning")
) -> list[str]:
    """One line per failed check of these levels (`hc1 diagnose: Account: Mapping State — …`),
    or the one line saying why the diagnosis could not run. Nothing without a record."""
    if not record:
        return []
    addon = record.get("addon") or "the add-on"
    if record.get("error"):
        return [f"HC diagnose on {addon} unavailable: {record['error']}"]
    return [
        f"{addon} diagnose: {f.describe()}" for f in diagnosed_failures(record) if f.level in levels
    ]


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


# Where the Salesforce login ends when no page of swapbot's own is known: the app on Heroku.
DASHBOARD = "https://dashboard.heroku.com/apps/{app}/resources"


def authorize_act(run: Run) -> None:
    ref = run.live.ref(run.plan.new_addon)
    link = run.live.change(
        f"POST /connections/{ref.id}/authorize_url environment={run.plan.sf_environment}",
        lambda: run.live.connect.authorize_url(
            ref,
            environment=run.plan.sf_environment,
            domain=run.plan.sf_domain,
            next_url=run.live.authorized_page or DASHBOARD.format(app=run.plan.app),
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
    first load includes them (the shortcut: abort, add-columns and reload then find themselves
    done). Where a probe saw Heroku Connect behave otherwise, the file follows what it saw:
    without the new fields when import drops them (the help article's order runs instead), and
    without `applied_at` when import refuses it."""
    plays = run.live.plays
    doc = ExportDocument.model_validate(run.recall("export")).filtered(run.plan.objects)
    if plays.import_added_fields:
        doc = doc.with_added_fields(run.plan.mappings)
    if not plays.import_keeps_applied_at:
        payload = doc.payload()
        for entry in payload.get("mappings", []):
            entry.get("config", {}).pop("applied_at", None)
        doc = ExportDocument.model_validate(payload)
    return doc


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
            partial(
                run.live.connect.update_mapping,
                ref,
                m.id,
                obj,
                config,
                body=run.live.plays.put_body,
            ),
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
                partial(run.live.connect.reload_mapping, ref, m.id),
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
            resume(lambda r: addon)(run)
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
    ref = run.live.ref(addon)
    with contextlib.suppress(*PAUSE_REFUSED):
        run.live.change(
            f"POST /connections/{ref.id}/actions/pause ({addon})",
            lambda: run.live.connect.pause(ref),
        )


def measure_undo(run: Run) -> None:
    """A rollback while the measurement had hc2 paused: let it run again."""
    resume(lambda r: r.plan.new_addon)(run)


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


def create_addon_landed(run: Run) -> bool:
    return any(a.name == run.plan.new_addon for a in run.live.platform.list_addons(run.plan.app))


def import_landed(run: Run) -> bool:
    c = run.live.new()
    return bool(c and (c.state == "IMPORT_CONFIGURATION" or c.mappings))
