"""Every Heroku behaviour swapbot relies on that Heroku's public documentation does not confirm.

One record each: what we assume, what swapbot does if it turns out wrong, how to check it on a
real (demo-plan) connection, and the public pages closest to it. docs/heroku-assumptions.md is
generated from this module by `render_markdown()`; after changing anything here, regenerate it:

    python -m swapbot.heroku.assumptions_doc > docs/heroku-assumptions.md

tests/test_heroku_assumptions_doc.py fails while the committed page differs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ASSUMPTIONS",
    "DOC_PATH",
    "REGENERATE_COMMAND",
    "Assumption",
    "Page",
    "assumption",
    "render_markdown",
]

DOC_PATH = "docs/heroku-assumptions.md"
REGENERATE_COMMAND = f"python -m swapbot.heroku.assumptions_doc > {DOC_PATH}"


@dataclass(frozen=True)
class Page:
    """A public page on the subject of an assumption. It does not settle the assumption (else
    the assumption would not be listed), but it is where to read around it."""

    title: str
    url: str

    def markdown(self) -> str:
        return f"[{self.title}]({self.url})"


_DEV_CENTER = "https://devcenter.heroku.com/articles/"
CONNECT_API = Page("Heroku Connect API", _DEV_CENTER + "heroku-connect-api")
CONNECT_DASHBOARD = Page("The Heroku Connect Dashboard", _DEV_CENTER + "heroku-connect-dashboard")
CONNECT_MAPPINGS = Page(
    "Managing Heroku Connect Mappings", _DEV_CENTER + "managing-heroku-connect-mappings"
)
CONNECT_SYNC = Page(
    "Managing Heroku Connect Sync and Connections",
    _DEV_CENTER + "managing-heroku-connect-sync-and-connections",
)
CONNECT_TABLES = Page(
    "Heroku Connect Database Tables", _DEV_CENTER + "heroku-connect-database-tables"
)
CONNECTION_STATES = Page("Connection States Reference", _DEV_CENTER + "connection-states-reference")
MAPPING_STATES = Page("Mapping States Reference", _DEV_CENTER + "mapping-states-reference")
TRIGGER_LOG = Page("The Heroku Connect Trigger Log", _DEV_CENTER + "heroku-connect-trigger-log")
PLATFORM_API = Page("Platform API Reference", _DEV_CENTER + "platform-api-reference")
PG_POOLING = Page(
    "Server-Side Connection Pooling for Heroku Postgres",
    _DEV_CENTER + "postgres-connection-pooling",
)
PG_CREDENTIALS = Page("Heroku Postgres Credentials", _DEV_CENTER + "heroku-postgresql-credentials")


@dataclass(frozen=True)
class Assumption:
    key: str
    # One line for the table at the top of the page.
    summary: str
    assumes: str
    if_wrong: str
    how_to_check: str
    # The public pages closest to the behaviour.
    see: tuple[Page, ...]
    # The sandbox switch that plays the other variant (`swapbot sandbox --assume FLAG=...`).
    sandbox_flag: str | None = None
    # The values that switch takes, as written after FLAG= (the sandbox's own field types are
    # not imported here: swapbot.heroku does not depend on swapbot.sandbox).
    sandbox_values: tuple[str, ...] = ("true", "false")
    # What a check on a real connection found (and when); replace "not yet" once checked.
    checked: str = "not yet"
    # When a probe contradicts it and the runbook has no way around: why the plan cannot go on.
    # None: the runbook handles either outcome (see if_wrong).
    blocks: str | None = None

    @property
    def section(self) -> str:
        """Where to read about it: the titles of the `see` pages."""
        return "; ".join(page.title for page in self.see)


ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption(
        key="counts-field-name",
        summary="row count field is `counts.db` (or `counts.count`)",
        assumes=(
            "A mapping's Postgres row count is `counts.db` (plugin fixture); the terraform "
            "provider calls it `counts.count`."
        ),
        if_wrong=(
            "Both names are accepted when parsing (`Counts.db` reads `db`, else `count`). If "
            "neither is present, `db` is None and wait-sync cannot compare counts: it reports the "
            "mapping as not verified instead of in sync."
        ),
        how_to_check="GET /api/v3/connections/{id}?deep=true and read mappings[].counts.",
        see=(CONNECT_API, CONNECT_DASHBOARD),
        sandbox_flag="counts_field",
        sandbox_values=("db", "count"),
    ),
    Assumption(
        key="import-status-code",
        summary="import answers a 2xx and runs in the background",
        assumes=(
            "POST /connections/{id}/actions/import answers some 2xx (the plugin does not check "
            "which) and then runs in the background, the connection showing IMPORT_CONFIGURATION "
            "until it is done."
        ),
        if_wrong=(
            "Any 2xx is accepted. The import step never trusts the status alone: it waits until "
            "the state leaves IMPORT_CONFIGURATION and the mappings are listed with deep=true. An "
            "import is never retried blindly after a 5xx or a timeout."
        ),
        how_to_check="Import a one-mapping file and note the status and the states that follow.",
        see=(CONNECT_API, CONNECTION_STATES),
        sandbox_flag="import_status",
        sandbox_values=("200", "201", "202"),
    ),
    Assumption(
        key="pause-resume-status-code",
        summary="pause/resume answer 202 and act later",
        assumes=(
            "POST .../actions/pause and .../actions/resume answer 202 (an older blog); the change "
            "itself happens later."
        ),
        if_wrong="Any 2xx is accepted; the steps poll until `state` is PAUSED (or leaves PAUSED).",
        how_to_check="Pause and resume an IDLE demo connection; note statuses and states.",
        see=(CONNECT_API, CONNECT_SYNC),
        sandbox_flag="pause_resume_status",
        sandbox_values=("200", "202"),
    ),
    Assumption(
        key="pause-only-from-idle",
        summary="pause is refused outside `IDLE`",
        assumes=(
            "HC pauses only from IDLE and refuses otherwise with an error status (the sandbox "
            "answers 400 with a message). Pause and resume are safe to repeat, so the client "
            "retries them on 5xx and timeouts."
        ),
        if_wrong=(
            "The pause step (and measure's pause) treats 400, 409 and 422 alike as 'not now': it "
            "waits for IDLE and asks again until its deadline, then stops for a person. If HC "
            "queues the pause instead, the poll for PAUSED still ends the step. The sandbox plays "
            "each refusal (`pause_refused_status`)."
        ),
        how_to_check=(
            "Pause a connection while it is in POLLING_DB_CHANGES (write to a read-write mapping "
            "first) and note the status and message."
        ),
        see=(CONNECT_SYNC, CONNECT_API),
        sandbox_flag="pause_refused_status",
        sandbox_values=("400", "409", "422"),
    ),
    Assumption(
        key="put-mapping-body",
        summary='mapping edit is `PUT {"object_name", "config": {..., "revision"}}`',
        assumes=(
            "PUT /mappings/{id} takes the create format plus the current revision: "
            '`{"object_name": ..., "config": {...whole config..., "revision": <current>}}` (the '
            "only public description); a prerelease plugin fixture suggests another shape, "
            '`{"config": {..., "revision"}, "upsert_field": ...}`. `applied_at` is not sent.'
        ),
        if_wrong=(
            "The add-columns step is not on the default path: the new fields go into the import "
            "file instead (see import-accepts-added-fields). The client speaks both shapes; the "
            "probe finds which one HC takes and add-columns sends that one. If both are refused, "
            "add the fields in the dashboard and let the bot verify config.fields and revision."
        ),
        how_to_check=(
            "GET a mapping, PUT its config back with one more field and the same revision; check "
            "config.fields and that revision increased."
        ),
        see=(CONNECT_API, CONNECT_MAPPINGS),
        sandbox_flag="put_mapping_body",
        sandbox_values=("create-plus-revision", "upsert-on-mapping"),
    ),
    Assumption(
        key="abort-has-no-api",
        summary="aborting a load is a manual dashboard step",
        assumes=(
            "There is no API to abort a load; ABORTED exists only as a mapping state. Aborting is "
            "a manual dashboard step that a person confirms."
        ),
        if_wrong=(
            "Nothing breaks: the bot asks a person and then watches the mapping state (ABORTED, or "
            "no longer loading). A real endpoint could replace the manual step."
        ),
        how_to_check=(
            "POST /api/v3/mappings/{id}/actions/abort on a loading demo mapping: 404/405 confirms "
            "there is none. Look for an Abort button in the dashboard."
        ),
        see=(CONNECT_API, CONNECT_MAPPINGS),
        sandbox_flag="abort_endpoint",
    ),
    Assumption(
        key="import-accepts-added-fields",
        summary="importing extra fields makes the first load include them",
        assumes=(
            "An import accepts any field the Salesforce object has, so adding the new fields to "
            "config.fields before importing into hc2 makes the first load include them (no abort, "
            "edit or reload). Import also updates an existing mapping of the same object."
        ),
        if_wrong=(
            "The shortcut is off and the help article's order runs: import, abort (manual), add "
            "fields, reload. A bad field is accepted and fails later, so fields are checked "
            "against GET /connections/{id}/schemas/{Object} first."
        ),
        how_to_check=(
            "Import a mapping with one extra field into a fresh demo connection; check the "
            "mapping's config.fields and the table's columns after the load."
        ),
        see=(CONNECT_MAPPINGS, CONNECT_API),
        sandbox_flag="import_accepts_new_fields",
    ),
    Assumption(
        key="import-leaves-other-mappings",
        summary="import does not remove mappings missing from the file",
        assumes=(
            "Import behaves like a PATCH: mappings not in the file are left alone, so a filtered "
            "file only adds or updates the chosen objects."
        ),
        if_wrong=(
            "Only hc2 receives imports, and it holds only the moved mappings, so nothing of hc1 is "
            "at risk; the import step still lists hc2's mappings afterwards and stops if any is "
            "missing or unexpected."
        ),
        how_to_check="Import a file with one mapping into a connection that has two; list them.",
        see=(CONNECT_API,),
        sandbox_flag="import_leaves_other_mappings",
    ),
    Assumption(
        key="import-write-algorithm",
        summary="import may not copy `poll_db_no_merge`",
        assumes=(
            "Import may or may not apply connection.features.poll_db_no_merge (the write "
            "algorithm); no API sets it."
        ),
        if_wrong=(
            "The settings step never relies on it: it reads features.poll_db_no_merge on both "
            "connections and, if they differ, asks a person to change it in the dashboard and "
            "confirm."
        ),
        how_to_check=(
            "Import a file whose connection.features.poll_db_no_merge differs from the target's; "
            "read the target's features afterwards."
        ),
        see=(CONNECT_SYNC, CONNECT_API),
        sandbox_flag="import_copies_features",
    ),
    Assumption(
        key="import-connection-block",
        summary="the export's `connection` block does not reconfigure the target",
        assumes=(
            "The `connection` block of an export is informational: importing it into another "
            "connection does not move that connection's db_key or schema (the terraform provider "
            "strips it)."
        ),
        if_wrong=(
            "ExportDocument.filtered(keep_connection=False) drops the block; the import step "
            "checks hc2's schema_name and db_key after the import."
        ),
        how_to_check="Import a file whose connection.name names another schema; read schema_name.",
        see=(CONNECT_API,),
        sandbox_flag="import_applies_connection_block",
    ),
    Assumption(
        key="delete-mapping-table",
        summary="deleting a mapping may or may not drop its table",
        assumes=(
            "Unknown whether DELETE /mappings/{id} drops the Postgres table in schema1 or keeps it."
        ),
        if_wrong=(
            "delete-old comes after the switch, when the app reads schema2, and the bot first "
            "lists objects depending on schema1.<table> (pg_depend). Rollback after delete-old "
            "never counts on schema1.<table> still being there."
        ),
        how_to_check="Delete a demo mapping; check whether the table is still in the schema.",
        see=(CONNECT_MAPPINGS, CONNECT_TABLES),
        sandbox_flag="delete_drops_table",
    ),
    Assumption(
        key="delete-mapping-trigger-log",
        summary="a deleted mapping's unprocessed trigger-log rows are orphaned",
        assumes=(
            "Unknown what HC does with _trigger_log rows of a deleted mapping; unprocessed rows "
            "would be orphaned."
        ),
        if_wrong=(
            "The drain step requires no NEW/PENDING rows for the moved tables before the pause, so "
            "there is nothing left to lose at delete time."
        ),
        how_to_check=(
            "Pause, write to a read-write mapping, delete the mapping, resume; check the row's "
            "state in _trigger_log / _trigger_log_archive."
        ),
        see=(TRIGGER_LOG,),
    ),
    Assumption(
        key="connection-id-not-addon-uuid",
        summary="connection `id` is not the add-on UUID",
        assumes=(
            "A connection's `id` is not the Heroku add-on UUID (`addon_id`); the terraform "
            "provider assumes they are equal, the plugin fixture shows them different."
        ),
        if_wrong=(
            "Nothing: the bot takes `id` from discovery (matched by resource_name) and never "
            "derives it from the add-on."
        ),
        how_to_check="Compare discovery's id with the add-on id from GET /apps/{app}/addons.",
        see=(CONNECT_API,),
        sandbox_flag="connection_id_is_addon_id",
    ),
    Assumption(
        key="region-url-trailing-slash",
        summary="`region_url` may end with `/`",
        assumes="Some region_url values end with `/`, some do not; detail_url is absolute.",
        if_wrong=(
            "Nothing: the API root is region_url without trailing slashes plus /api/v3, and paths "
            "are joined without urljoin so a path prefix is never lost."
        ),
        how_to_check="Read region_url and detail_url in a discovery answer.",
        see=(CONNECT_API,),
        sandbox_flag="region_url_slash",
    ),
    Assumption(
        key="discovery-needs-link",
        summary="discovery is empty until the user is linked",
        assumes=(
            "Discovery returns nothing for an add-on until POST hc-central/auth/{app} put the "
            "token's user on its access list; calling it again is harmless."
        ),
        if_wrong=(
            "find_connection links and discovers again once; if still empty it raises "
            "ConnectionNotFound with the dashboard hint (heroku addons:open herokuconnect)."
        ),
        how_to_check="Discover right after creating an add-on, then link and discover again.",
        see=(CONNECT_API,),
        sandbox_flag="discovery_needs_link",
    ),
    Assumption(
        key="mappings-listed-by-deep",
        summary="mappings are listed only through `?deep=true`",
        assumes=(
            "There is no mapping list endpoint; GET /connections/{id}?deep=true lists the mappings "
            "with their states."
        ),
        if_wrong=(
            "Nothing while it holds: the bot only uses deep=true. If a probe finds no mappings "
            "list there, swapbot cannot see hc1's or hc2's mappings and the plan stops at preflight."
        ),
        how_to_check="GET /connections/{id}?deep=true and look for mappings[].",
        see=(CONNECT_API,),
        blocks=(
            "swapbot reads every mapping's state and counts there and has no other way to list "
            "them; report it to Heroku support and do not swap until it is back"
        ),
    ),
    Assumption(
        key="configure-creates-schema",
        summary="when HC creates the new schema is unknown",
        assumes=(
            "Unknown whether HC creates schema2 when db_key/schema_name are set or at the first "
            "mapping."
        ),
        if_wrong=(
            "Steps that need schema2 to exist wait for it (or for the first mapping's table) "
            "instead of assuming it after configure."
        ),
        how_to_check="Configure a new demo connection; look for the schema before and after.",
        see=(CONNECT_API, CONNECT_TABLES),
        sandbox_flag="configure_creates_schema",
    ),
    Assumption(
        key="export-applied-at",
        summary="`applied_at` in an export is ignored on import",
        assumes="`applied_at` in an exported mapping config is ignored on import.",
        if_wrong=(
            "The file is imported as exported (unknown fields kept). If HC rejects it, drop "
            "applied_at from the mapping configs and import again."
        ),
        how_to_check="Import an exported file unchanged into a fresh demo connection.",
        see=(CONNECT_API,),
        sandbox_flag="import_rejects_applied_at",
    ),
    Assumption(
        key="last-write-activity",
        summary="`metrics.last_write_activity_time` stops when the backlog is empty",
        assumes="metrics.last_write_activity_time stops advancing once the write backlog is empty.",
        if_wrong=(
            "It is shown to people only; drain decides on the trigger log in SQL and "
            "counts.pending."
        ),
        how_to_check="Watch the field while writes are stopped and the trigger log is empty.",
        see=(CONNECT_API,),
    ),
    Assumption(
        key="unlisted-states",
        summary="some states' meanings are unknown",
        assumes=(
            "The meaning of SYNC_REMOVED, BUSY, INACTIVE_ORG, RESOLVE_EXTERNAL_IDS and "
            "POLL_EXTERNAL_IDS, and the connection states after HEROKU_UNAUTH, are not known."
        ),
        if_wrong=(
            "States stay plain strings; an unknown one is grouped 'unknown', and a step that meets "
            "it stops and shows it to a person instead of guessing."
        ),
        how_to_check="Note every state seen in the demo run.",
        see=(MAPPING_STATES, CONNECTION_STATES),
    ),
    Assumption(
        key="platform-rate-limit",
        summary="Platform API bucket size is unknown",
        assumes="The Platform API bucket is 2,400 or 4,500 tokens; RateLimit-Remaining says which.",
        if_wrong=(
            "No constant is used: the transport pauses when RateLimit-Remaining falls below "
            "RetryPolicy.rate_limit_floor and backs off on 429 honouring Retry-After."
        ),
        how_to_check="GET /account/rate-limits.",
        see=(PLATFORM_API,),
        sandbox_flag="rate_limit_bucket",
        sandbox_values=("2400", "4500"),
    ),
    Assumption(
        key="formation-dyno-size",
        summary="formation updates take `dyno_size` as an object",
        assumes=(
            'Formation batch updates take `dyno_size` as an object (`{"name": ...}`); older schema '
            "versions took a `size` string."
        ),
        if_wrong=(
            "Restore only sends dyno_size when a size must change; quantities alone restore a "
            "formation whose sizes were never touched."
        ),
        how_to_check="PATCH /apps/{app}/formation with a dyno_size on a test app.",
        see=(PLATFORM_API,),
    ),
    Assumption(
        key="rate-limit-before-processing",
        summary="a 429 is refused before processing, so even unsafe calls are re-sent after one",
        assumes=(
            "A 429 is answered before the request is processed (Heroku's router rejects it), so "
            "even a call that is not safe to repeat (import, mapping create, add-on create) is "
            "sent again after a 429, honouring Retry-After."
        ),
        if_wrong=(
            "A call could run twice. Every such step checks the live system before acting, so a "
            "second add-on create fails on the taken name and a second import of the same mappings "
            "changes nothing (import updates mappings in place)."
        ),
        how_to_check="Hit the rate limit on a scratch app with a POST and list what it created.",
        see=(PLATFORM_API,),
    ),
    Assumption(
        key="restart-and-authorize-url-repeatable",
        summary="restart and authorize_url may be sent twice",
        assumes=(
            "POST .../actions/restart and POST .../authorize_url may be sent twice: a second "
            "restart restarts again, a second authorize_url gives a new link."
        ),
        if_wrong="The clients would have to stop retrying them on 5xx and timeouts.",
        how_to_check="Call each twice on a demo connection and compare the connection's states.",
        see=(CONNECT_API,),
    ),
    Assumption(
        key="delete-mapping-repeat",
        summary="a retried delete after a lost 204 answers 404",
        assumes=(
            "DELETE /mappings/{id} is safe to retry; if a retry follows a lost 204, the answer is "
            "404, which the client raises as NotFound."
        ),
        if_wrong="delete-old reads the connection again and finds the mapping gone: done.",
        how_to_check="Delete a mapping twice on a demo connection.",
        see=(CONNECT_API,),
        sandbox_flag="delete_repeat_status",
        sandbox_values=("404", "204"),
    ),
    Assumption(
        key="remove-addon-keeps-schema",
        summary="removing an HC add-on leaves its schema and tables in the database",
        assumes=(
            "Removing a Heroku Connect add-on (DELETE /apps/{app}/addons/{addon}, answered 200 "
            "with state deprovisioned) ends its connection and mappings but leaves the "
            "connection's schema and its tables in the database. The sandbox behaves so."
        ),
        if_wrong=(
            "swapbot does not count on either outcome: `rollback --remove-addon` drops the schema "
            "itself after removing the add-on, and a schema already gone counts as dropped."
        ),
        how_to_check=(
            "Configure a demo add-on with one mapping, wait for its table, remove the add-on "
            "(`heroku addons:destroy`) and list the schema's tables."
        ),
        see=(PLATFORM_API, CONNECT_TABLES),
        sandbox_flag="remove_addon_keeps_schema",
    ),
    Assumption(
        key="poll-soon-after-resume",
        summary="a resumed connection polls Salesforce within seconds; `times.sf_poll` moves",
        assumes=(
            "A resumed connection polls Salesforce for each mapping soon (seconds), not one "
            "polling interval later, and a mapping's `times.sf_poll` moves forward when a poll "
            "completes. `verify` counts that first poll as proof that data flows into NEW."
        ),
        if_wrong=(
            "`verify` waits for a poll (up to `sf_polling_seconds`, 10 minutes on a demo plan) or "
            "a change made in Salesforce since `stop-writes`, whichever comes first: the outage is "
            "longer by that wait, nothing else changes. The predicted outage shows it as the "
            "measured first-poll time (prep's `measure` step)."
        ),
        how_to_check=(
            "On a demo connection, pause and resume it and read `mappings[].times.sf_poll` every "
            "few seconds (`GET /connections/{id}?deep=true`)."
        ),
        see=(CONNECT_SYNC, CONNECT_API),
        sandbox_flag="resume_polls_at_once",
    ),
    Assumption(
        key="pooler-attachment",
        summary=(
            "Postgres's server-side pool shows as a `connection-pooling:…` attachment of the "
            "database"
        ),
        assumes=(
            "Heroku Postgres's server-side pool shows as an add-on attachment of the database (GET "
            "/addons/{id}/addon-attachments) with namespace `connection-pooling:…`, named "
            "DATABASE_CONNECTION_POOL by `heroku pg:connection-pooling:attach`, and its URL is the "
            "app's config var `<NAME>_URL`. The sandbox plays it so."
        ),
        if_wrong=(
            "swapbot does not rely on spotting the pooler to keep sessions out: the rule that no "
            "session of the app's roles may predate the search_path change when the app comes back "
            "holds for every session, pooled or not. Only the extra proof of the switch through a "
            "fresh pooled session would be missed, and plan show would not say 'through the "
            "pooler'."
        ),
        how_to_check=(
            "On a Standard database, `heroku pg:connection-pooling:attach DATABASE_URL --as "
            "DATABASE_CONNECTION_POOL`, then GET /apps/{app}/addon-attachments and read the new "
            "attachment's namespace."
        ),
        see=(PG_POOLING, PLATFORM_API),
    ),
    Assumption(
        key="hc-session-credentials",
        summary="Heroku Connect's own sessions are not the app's, or survive being ended",
        assumes=(
            "Heroku Connect's own database sessions are not sessions of the plan's roles, or "
            "reconnect on their own when ended. On Heroku the app, Heroku Connect and swapbot "
            "often share the default credential: swapbot then cannot tell Heroku Connect's "
            "sessions from the app's, and ends those that predate the search_path change too (it "
            "never ends its own, named `swapbot`)."
        ),
        if_wrong=(
            "A Heroku Connect session ended by restore would fail its current sync; Heroku Connect "
            "would retry. Where that is not acceptable, use a separate credential for the app's "
            "roles (the plan's `roles`), or `stale_sessions=refuse` and end the app's sessions by "
            "hand."
        ),
        how_to_check=(
            "With Heroku Connect running, list pg_stat_activity (usename, application_name, "
            "client_addr) and note which sessions are Heroku Connect's."
        ),
        see=(PG_CREDENTIALS,),
    ),
)


def assumption(key: str) -> Assumption:
    for item in ASSUMPTIONS:
        if item.key == key:
            return item
    raise KeyError(key)


# --- docs/heroku-assumptions.md ----------------------------------------------------------------

TITLE = "Heroku behaviours swapbot assumes but nobody has confirmed"

INTRO = f"""\
Heroku's public documentation (chiefly the [Heroku Connect API][connect-api] article, the other
Heroku Connect articles on Dev Center, and the [Platform API Reference][platform-api]) leaves some
behaviours unstated, and Heroku's own tools (the Heroku Connect CLI plugin, the terraform
provider) disagree on a few. This page lists every such behaviour that swapbot's clients or
runbook rely on, what swapbot does if the assumption is wrong, how to check it on a real
connection, and the public pages closest to it.

**Before the first production swap**, let `swapbot probe` go through the "How to check" steps
(docs/operator-guide.md, "Before your first production swap"):

    swapbot probe --app acme-prod --addon herokuconnect-…      # read-only: safe on production
    swapbot probe --scratch-app acme-scratch                  # changes things: a scratch app only

The first runs the checks that only read (the counts field's name, region_url's slash, discovery
before and after linking, mappings listed by deep=true, the states seen, the rate-limit bucket,
the add-on id, the pooler attachment, Heroku Connect's own diagnose); `/hcswap probe` runs the
same from Slack. The second runs the checks that change things on a free demo-plan add-on it
creates on an app marked scratch (config var `SWAPBOT_SCRATCH=true`, or
`--i-know-this-is-scratch`), and removes again. Each answer (the assumption's key, what was
seen, the requests and answers that show it, when, and the Heroku Connect region) goes into
`swapbot-probe.json` (`SWAPBOT_PROBE_FILE`), which you commit with swapbot's deploy, and a table
is printed. `plan show` then marks each assumption below confirmed, contradicted or unknown.

This page is generated from `swapbot.heroku.assumptions.ASSUMPTIONS`: edit the module, not this
page, then regenerate the page (`tests/test_heroku_assumptions_doc.py` fails until you do):

    {REGENERATE_COMMAND}

The entries with a **Rehearse both variants** line can be flipped in the local sandbox to
rehearse the other variant.

[connect-api]: {CONNECT_API.url}
[platform-api]: {PLATFORM_API.url}
"""

PROBE_CHANGES_TITLE = "What the probe changes"
PROBE_CHANGES = """\
The engine reads the probe's file at every step and plays what it found where a finding
differs from the guess above (`swapbot.heroku.probed.Plays`); without a finding it plays the
guess, and the runbook copes with either outcome as each entry's "If wrong" says.

| assumption | when the probe found… | the engine then… |
|---|---|---|
| `put-mapping-body` | the other body shape accepted | sends that shape in `add-columns` |
| `import-accepts-added-fields` | import dropping added fields | imports hc1's fields only; abort, add-columns and reload run in the help article's order |
| `export-applied-at` | import refusing `applied_at` | leaves `applied_at` out of the import file |
| `poll-soon-after-resume` | a resumed connection polling at once | predicts verify's wait from it when prep has not timed hc2's first poll |
| `mappings-listed-by-deep` | no mappings list with deep=true | **stops the plan at preflight**: swapbot has no other way to see mappings |

Every other contradicted assumption is handled by the runbook as its entry says, and `plan
show` lists it. Heroku Connect's diagnose is not an assumption: the read-only probe runs it,
preflight runs it on hc1 (failures shown as risks) and verify on hc2 (a check failed as an
error is a blocking item of the ledger and the report: the swap is not finished until a person
marks it done; it never keeps the app down).
"""

# Shown before the entry `RETRY_NOTE_BEFORE`, the first of those about repeating a request.
RETRY_NOTE_BEFORE = "rate-limit-before-processing"
RETRY_NOTE_TITLE = "Related: what the clients never repeat on their own"
RETRY_NOTE = """\
Heroku may have acted on a request whose answer was lost. So the clients retry (on 429, 5xx,
dropped connections and timeouts) only calls that are safe to repeat: every GET, PATCH and
DELETE, and the POSTs for link, pause, resume, restart and authorize_url. These are **never**
retried after a 5xx, a read timeout or a dropped connection: import, mapping create, mapping edit
(PUT), mapping reload, add-on create. They are retried only on 429 and when the connection could
not be opened at all, when Heroku cannot have seen them. After any other failure of one of them,
the step reads the live state (connection state, mapping list, add-on list) before deciding to
send it again.
"""


def render_markdown() -> str:
    """docs/heroku-assumptions.md, from ASSUMPTIONS and the prose above."""
    parts = [
        f"<!-- Generated from swapbot/heroku/assumptions.py by `{REGENERATE_COMMAND}`. -->",
        f"# {TITLE}",
        INTRO.rstrip("\n"),
        _table(ASSUMPTIONS),
        f"## {PROBE_CHANGES_TITLE}\n\n{PROBE_CHANGES.rstrip()}",
    ]
    for item in ASSUMPTIONS:
        if item.key == RETRY_NOTE_BEFORE:
            parts.append(f"## {RETRY_NOTE_TITLE}\n\n{RETRY_NOTE.rstrip()}")
        parts.append(_entry(item))
    return "\n\n".join(parts) + "\n"


def _table(items: tuple[Assumption, ...]) -> str:
    rows = ["| key | in one line |", "|---|---|"]
    rows += [f"| [`{a.key}`](#{a.key}) | {_cell(a.summary)} |" for a in items]
    return "\n".join(rows)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _entry(item: Assumption) -> str:
    see = ", ".join(page.markdown() for page in item.see)
    lines = [
        f"## {item.key}",
        "",
        f"Key `{item.key}` · public docs nearest to it: {see}",
        "",
        f"- **Assumed:** {item.assumes}",
        f"- **If wrong:** {item.if_wrong}",
        f"- **How to check:** {item.how_to_check}",
    ]
    if item.sandbox_flag:
        values = "|".join(item.sandbox_values)
        lines.append(
            "- **Rehearse both variants:** "
            f"`swapbot sandbox --assume {item.sandbox_flag}={values}`."
        )
    lines.append(f"- **Checked on a real connection:** {item.checked.rstrip('.')}.")
    return "\n".join(lines)
