"""The sandbox's knobs: simulated time, fault injection, and the unconfirmed behaviours.

Durations and rates are *nominal* (what Heroku would take); `speed` divides every duration and
multiplies every rate, so a test can run a ten-minute load in a few seconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Assumptions(BaseModel):
    """Behaviours the reference marks unconfirmed (§10) that change what the bot must do.

    Each flag selects one variant; the tests run the clients under both.
    """

    model_config = ConfigDict(extra="forbid")

    # §10.4: does DELETE /mappings/{id} drop the Postgres table (True) or keep it, unmanaged?
    delete_drops_table: bool = True
    # §10.2 / §2.5: does import accept fields added to an exported file (the shortcut path)?
    # False: import creates the mapping with only the fields some export of the org carried.
    import_accepts_new_fields: bool = True
    # §10.3: does import apply connection.features.poll_db_no_merge from the file?
    import_copies_features: bool = False
    # §3.3: "on resume, changes made meanwhile on either side sync". True: a resumed connection
    # polls Salesforce at once, as soon as it is running again. False: each mapping waits for its
    # polling interval to come round, counted from its last poll before the pause.
    resume_polls_at_once: bool = True
    # What a pause outside IDLE is refused with: Heroku's docs say it pauses only from IDLE, not
    # which status it answers otherwise (assumption pause-only-from-idle). 400, 409 or 422.
    pause_refused_status: Literal[400, 409, 422] = 400
    # counts-field-name: the name of a mapping's Postgres row count in `counts`: "db" (the
    # heroku-connect-plugin fixtures) or "count" (the terraform provider).
    counts_field: Literal["db", "count"] = "db"
    # region-url-trailing-slash: whether region_url (discovery, link, detail, cells[].url) ends
    # with "/".
    region_url_slash: bool = True
    # region-url-trailing-slash, its other shape: False: discovery and link entries carry no
    # region_url (only an absolute detail_url); the connection detail always carries it.
    discovery_region_url: bool = True
    # discovery-needs-link: False: discovery lists an app's connections for any user, linked or not.
    discovery_needs_link: bool = True
    # put-mapping-body: the body PUT /mappings/{id} takes. "create-plus-revision": the create
    # body plus config.revision (object_name required, upsert_field inside config).
    # "upsert-on-mapping": {"config": {..., "revision"}, "upsert_field": ...}, no object_name.
    put_mapping_body: Literal["create-plus-revision", "upsert-on-mapping"] = "create-plus-revision"
    # import-leaves-other-mappings: False: an import removes the mappings the file does not name.
    import_leaves_other_mappings: bool = True
    # import-connection-block: True: an import whose connection.name is app:DB_KEY:schema moves
    # the target connection to that schema.
    import_applies_connection_block: bool = False
    # export-applied-at: True: an import with applied_at in a mapping config is refused (400).
    import_rejects_applied_at: bool = False
    # import-status-code: the status a successful import answers.
    import_status: Literal[200, 201, 202] = 202
    # pause-resume-status-code: the status a successful pause or resume answers.
    pause_resume_status: Literal[200, 202] = 202
    # delete-mapping-repeat: what DELETE /mappings/{id} answers for a mapping already deleted on
    # this connection: 404, or 204 (idempotent).
    delete_repeat_status: Literal[404, 204] = 404
    # remove-addon-keeps-schema: False: removing the add-on drops its connection's schema too.
    remove_addon_keeps_schema: bool = True
    # configure-creates-schema: False: configure only records db_key and schema_name; the schema
    # (with HC's system tables) is created with the first mapping, created or imported.
    configure_creates_schema: bool = True
    # connection-id-not-addon-uuid: True: a connection created from now on takes its add-on's id.
    connection_id_is_addon_id: bool = False
    # platform-rate-limit: the Platform API token bucket (2,400 or 4,500 tokens).
    rate_limit_bucket: Literal[2400, 4500] = 4500
    # abort-has-no-api: True: POST /mappings/{id}/actions/abort aborts a loading mapping (202);
    # False: that path is a 404.
    abort_endpoint: bool = False


class SandboxOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speed: float = Field(default=1.0, gt=0, le=10_000)
    faults: float = Field(default=0.0, ge=0, le=1)
    # Faults only for requests whose "METHOD /path" contains this text (None: every request),
    # and only of these kinds; tests use it to fail one kind of call at a chosen moment.
    faults_only: str | None = None
    fault_kinds: tuple[str, ...] = ("503", "500", "429", "slow")
    seed: int | None = None
    slow_seconds: float = Field(default=2.0, ge=0)
    tick_seconds: float = Field(default=0.1, gt=0)

    load_rows_per_second: float = 500.0
    writer_rows_per_second: float = 200.0
    writer_latency_seconds: float = 2.0
    write_failure_rate: float = Field(default=0.0, ge=0, le=1)
    org_changes_per_second: float = 0.5
    org_api_daily_limit: int = 1_000_000

    initial_seconds: float = 2.0
    import_seconds: float = 5.0
    pause_seconds: float = 3.0
    resume_seconds: float = 2.0
    restart_seconds: float = 5.0
    authorize_seconds: float = 2.0
    provision_seconds: float = 10.0
    dyno_boot_seconds: float = 8.0
    dyno_shutdown_seconds: float = 4.0
    # How long HC takes to run a connection's diagnose (POST /connections/{id}/validations).
    validation_seconds: float = Field(default=1.0, ge=0)

    api_version: str = "62.0"
    # The newest Salesforce API version the org offers: diagnose warns about a connection on an
    # older one, and schema-diff compares with it when no target_version is given.
    latest_api_version: str = "62.0"
    assumptions: Assumptions = Field(default_factory=Assumptions)

    def real(self, nominal_seconds: float) -> float:
        """Real seconds for a nominal duration at the current speed."""
        return nominal_seconds / self.speed
