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

    api_version: str = "62.0"
    assumptions: Assumptions = Field(default_factory=Assumptions)

    def real(self, nominal_seconds: float) -> float:
        """Real seconds for a nominal duration at the current speed."""
        return nominal_seconds / self.speed
