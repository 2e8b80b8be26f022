"""The probe's checks that change things: run only on an app marked as scratch.

    results = scratch.run(settings, "acme-scratch")   # swapbot probe --scratch-app acme-scratch

`run` refuses an app whose config vars lack SWAPBOT_SCRATCH=true (unless `forced`, which sets
it). It creates a demo Heroku Connect add-on (`herokuconnect:demo`) on the app, configures it on
a schema of its own, has a person authorize it in Salesforce, runs `SCRATCH_CHECKS` one after
another, and then always removes the add-on and drops the schemas it created (never one that
was there before it). Each check settles one assumption of swapbot/heroku/assumptions.py by
doing what its "how to check" says; the checks share what they made (the mappings, the deleted
mapping) through `ctx.state`. On an add-on given to it (`addon`), the probe changes only the
mappings it made itself, and deletes them at the end (see scratch_mappings).

The modules: scratch_setup (refusal, setup, clean-up), scratch_helpers (waits, answers, the
scratch database), scratch_mappings (what the probe maps and imports, and whose mappings are
whose), and the checks by subject: scratch_imports, scratch_actions, scratch_deletes,
scratch_app.

Config var values (the database URL among them) are never printed nor kept: the recorder drops
/config-vars bodies, and the database's credentials stay in `ctx.database_url`. The authorize
link is given to the person only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from swapbot.probe import connect
from swapbot.probe.checks import CheckFn, ProbeCheck
from swapbot.probe.results import Finding, ProbeResults
from swapbot.probe.runner import run_checks
from swapbot.probe.scratch_actions import (
    abort_has_no_api,
    pause_only_from_idle,
    pause_resume_status_code,
    poll_soon_after_resume,
    restart_and_authorize_url_repeatable,
)
from swapbot.probe.scratch_app import (
    configure_creates_schema,
    formation_dyno_size,
    hc_session_credentials,
    last_write_activity,
    rate_limit_before_processing,
    remove_addon_keeps_schema,
)
from swapbot.probe.scratch_deletes import (
    delete_mapping_repeat,
    delete_mapping_table,
    delete_mapping_trigger_log,
)
from swapbot.probe.scratch_helpers import not_run_is_unknown
from swapbot.probe.scratch_imports import (
    export_applied_at,
    import_accepts_added_fields,
    import_connection_block,
    import_leaves_other_mappings,
    import_status_code,
    import_write_algorithm,
    put_mapping_body,
)
from swapbot.probe.scratch_setup import (
    SCRATCH_MARK,
    NotScratch,
    SetupFailed,
    clean_up,
    prepare,
    require_scratch,
)

if TYPE_CHECKING:
    from swapbot.config import Settings

__all__ = ["SCRATCH_CHECKS", "SCRATCH_MARK", "NotScratch", "SetupFailed", "run"]


def _change(key: str, check: CheckFn, does: str) -> ProbeCheck:
    return ProbeCheck(key, "change", not_run_is_unknown(check), does)


# In this order: each may rely on what those before it made.
SCRATCH_CHECKS: tuple[ProbeCheck, ...] = (
    _change(
        "configure-creates-schema",
        configure_creates_schema,
        "configure a new demo connection; look for its schema before and after",
    ),
    _change(
        "restart-and-authorize-url-repeatable",
        restart_and_authorize_url_repeatable,
        "ask for two authorize links; restart the IDLE connection twice",
    ),
    _change(
        "import-status-code",
        import_status_code,
        "import a one-mapping file; note the status and the states",
    ),
    _change(
        "import-accepts-added-fields",
        import_accepts_added_fields,
        "import the mapping with one more field; read config.fields and the table",
    ),
    _change(
        "import-leaves-other-mappings",
        import_leaves_other_mappings,
        "import a file with another object only; is the first mapping still there",
    ),
    _change(
        "import-write-algorithm",
        import_write_algorithm,
        "import a file with poll_db_no_merge flipped; read features",
    ),
    _change(
        "export-applied-at",
        export_applied_at,
        "export, import the file unchanged (applied_at in it)",
    ),
    _change(
        "put-mapping-body",
        put_mapping_body,
        "PUT a mapping's config with one more field, each body shape until one is taken",
    ),
    _change(
        "pause-resume-status-code",
        pause_resume_status_code,
        "pause and resume the IDLE connection; note the statuses",
    ),
    _change(
        "pause-only-from-idle",
        pause_only_from_idle,
        "restart the connection, pause it at once; note the answer",
    ),
    _change(
        "poll-soon-after-resume",
        poll_soon_after_resume,
        "pause, resume, watch times.sf_poll",
    ),
    _change(
        "abort-has-no-api",
        abort_has_no_api,
        "reload a mapping, POST .../actions/abort on it",
    ),
    _change(
        "last-write-activity",
        last_write_activity,
        "read metrics.last_write_activity_time twice while nothing writes",
    ),
    _change(
        "hc-session-credentials",
        hc_session_credentials,
        "list the scratch database's sessions while Heroku Connect runs",
    ),
    _change(
        "delete-mapping-trigger-log",
        delete_mapping_trigger_log,
        "pause, change a read-write row, delete its mapping, resume; read the row's state",
    ),
    _change(
        "delete-mapping-table",
        delete_mapping_table,
        "delete a mapping; is its table still there",
    ),
    _change(
        "delete-mapping-repeat",
        delete_mapping_repeat,
        "delete the same mapping again",
    ),
    _change(
        "formation-dyno-size",
        formation_dyno_size,
        "PATCH the formation with dyno_size as an object (its current size)",
    ),
    _change(
        "rate-limit-before-processing",
        rate_limit_before_processing,
        "not probed (it needs the rate limit spent)",
    ),
    _change(
        "import-connection-block",
        import_connection_block,
        "import a file whose connection.name names another schema; read schema_name",
    ),
    _change(
        "remove-addon-keeps-schema",
        remove_addon_keeps_schema,
        "remove the demo add-on; is its schema still there",
    ),
)


def run(
    settings: Settings,
    app: str,
    *,
    addon: str | None = None,
    forced: bool = False,
    told: Callable[[Finding], None] | None = None,
    authorize: Callable[[str], object] | None = None,
    wait_seconds: float = 120.0,
    poll_seconds: float = 1.0,
) -> ProbeResults:
    """Run SCRATCH_CHECKS on `app` (on `addon`, or on a demo add-on made for the run) and clean
    up. `authorize(link)` stands for the person who opens the Salesforce link; without it the
    link is printed and the probe waits (up to wait_seconds × 5) for them.

    NotScratch: the app is not marked scratch, not visible to the token, or `addon` is not its
    Heroku Connect add-on. SetupFailed: the connection could not be made ready (what the probe
    made is removed first)."""
    if settings.heroku_api_token is None:
        raise ValueError("HEROKU_API_TOKEN is not set")
    ctx = connect(
        settings.heroku_api_token,
        str(settings.heroku_connect_central_url),
        str(settings.heroku_api_url),
        app=app,
        addon=addon,
        wait_seconds=wait_seconds,
    )
    # "schemas": those the probe created, the only ones it drops.
    ctx.state.update(poll=poll_seconds, schemas=[])
    require_scratch(ctx, forced)
    try:
        prepare(ctx, authorize)
        results = ProbeResults(scratch_app=app)
        return run_checks(ctx, SCRATCH_CHECKS, results=results, told=told)
    finally:
        clean_up(ctx)
