"""What the engine shows its front ends: `status`, the report and command answers, as typed
views (`plan show`'s is in `views/plan.py`: it names the database toolkit's types, which the
Slack web process, rendering `status`, never imports).

The terminal, `--json` and Block Kit render these models and nothing else; a view crosses a
process boundary as its JSON (`model_dump_json`) and comes back through `model_validate_json`,
so a front end never reads a field the engine did not promise. Field names are the JSON
documents' keys (`swapbot hcswap status --json` prints them as they are).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from swapbot.swap.approvals import ApprovalRequest
from swapbot.swap.plan import Plan
from swapbot.swap.store import LockInfo


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- status ----------------------------------------------------------------------------------
class MappingRow(View):
    """One mapping of an add-on, its state exactly as Heroku Connect gives it."""

    object: str | None
    state: str | None
    db: int = 0
    sf: int = 0
    pending: int | None = None
    errors: int | None = None
    progress: float | None = None  # percent loaded, while a load runs


class Connection(View):
    """One Heroku Connect add-on of the app: its connection, or why it could not be read."""

    # `schema` is a BaseModel attribute: the field is named apart and keeps its JSON key.
    model_config = ConfigDict(frozen=True, validate_by_name=True, serialize_by_alias=True)

    addon: str
    addon_state: str | None = None
    state: str | None = None
    schema_name: str | None = Field(default=None, alias="schema")
    error: str | None = None
    mappings: list[MappingRow] = Field(default_factory=list)


class StepRow(View):
    name: str
    phase: str
    status: str  # pending, running, waiting, done, skipped, failed, undone
    approval: bool = False
    point_of_no_return: bool = False


class Outage(View):
    started_epoch: float
    ended_epoch: float | None = None


class Backlog(View):
    """hc1's writes not yet sent to Salesforce; `rows` is None when it could not be read."""

    rows: int | None
    oldest_seconds: float | None = None
    error: str | None = None


class PastNoReturn(View):
    """The swap passed the point of no return: when, at which step, and the way on. The mark
    is written whole; a record put back by hand may lack a part, and is shown all the same."""

    at: float | None = None
    step: str | None = None
    what: str | None = None
    actor: str | None = None
    approval: str | None = None
    forward: str  # the steps left, as a person types them
    way_back: str  # by hand, outside the bot


class LedgerRow(View):
    key: str
    what: str
    owner: str
    done_by: str | None = None
    done: bool = False
    blocking: bool = False  # the swap is not finished until it is marked done


class Status(View):
    """Where things stand: the app's connections, and with a plan its steps, approvals, clock."""

    app: str | None = None
    connections: list[Connection] | None = None  # None: the Heroku APIs were not asked
    plan: Plan | None = None
    message: str = ""  # without a plan: what to do first
    fingerprint: str | None = None
    steps: list[StepRow] = Field(default_factory=list)
    current_step: str | None = None
    approvals: list[ApprovalRequest] = Field(default_factory=list)
    ledger: list[LedgerRow] = Field(default_factory=list)
    outage: Outage | None = None
    holder: LockInfo | None = None  # the runner holding the swap's lease: a step runs there
    backlog: Backlog | None = None
    in_progress: bool = False
    point_of_no_return: PastNoReturn | None = None
    bot_in_channel: bool | None = None  # the Slack front end's own fact; None: not asked


# -- the report -------------------------------------------------------------------------------
class ReportOutage(View):
    seconds: float | None  # None until the outage is over
    steps_seconds: float
    waiting_seconds: float  # on Heroku Connect and the dynos
    own_seconds: float  # the bot's own work
    # between the steps: people reading the channel and typing the next command
    between_steps_seconds: float | None


class ReportStep(View):
    step: str
    status: str
    seconds: float
    waited: float
    in_outage: bool


class ReportObjects(View):
    prep: list[str] = Field(default_factory=list)
    cutover: list[str] = Field(default_factory=list)
    by_a_person: list[str] = Field(default_factory=list)
    retired: list[str] = Field(default_factory=list)


class ParityTable(View):
    table: str
    rows_old: int
    rows_new: int
    differing_rows: int
    new_columns: list[str] = Field(default_factory=list)


class Parity(View):
    equal: bool | None
    compared_at: float | None = None
    tables: list[ParityTable] = Field(default_factory=list)


class EndedSession(View):
    pid: int | None = None
    role: str | None = None
    application_name: str | None = None
    backend_start: str | None = None
    when: str | None = None


class DiagnosedCheck(View):
    """One check Heroku Connect's diagnosis failed, as a step recorded it."""

    object_name: str | None = None  # None: a check of the whole connection
    level: str  # error or warning
    rule_id: str | None = None
    display_name: str
    message: str = ""
    doc_url: str | None = None
    line: str  # for people: `hc2 diagnose: Account: Mapping State — …`
    ledger_key: str | None = None  # an error of hc2: its (blocking) ledger item
    done_by: str | None = None  # who marked that item done


class Diagnosed(View):
    """Heroku Connect's own diagnosis of one add-on (`heroku connect:diagnose`): hc1's before
    the swap (preflight), hc2's after the cutover (verify)."""

    addon: str
    step: str  # the step that recorded it
    at: float | None = None
    error: str | None = None  # why HC could not diagnose it
    passes: int = 0
    skips: int = 0
    failures: list[DiagnosedCheck] = Field(default_factory=list)


class Report(View):
    """The swap's report, from its records alone."""

    swap_id: str
    done: bool
    outage: ReportOutage
    steps: list[ReportStep]
    objects: ReportObjects
    parity: Parity | None
    stopped: dict[str, list[str]]  # app -> "type=quantity" stopped at stop-writes
    sessions_ended: list[EndedSession]
    reader_sessions: int
    # HC's diagnosis: hc1's at preflight, then hc2's at verify (those recorded so far)
    diagnose: list[Diagnosed] = Field(default_factory=list)


# -- what a command answers -------------------------------------------------------------------
class CommandOutcome(View):
    """What a command that acts came to."""

    step: str
    status: str
    message: str
    calls: list[str] = Field(default_factory=list)


class SavedPlan(View):
    plan: Plan
    fingerprint: str


class Help(View):
    help: str
