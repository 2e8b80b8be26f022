"""What every step is made of: `Step` (the table's row), `Check`, `Estimate`, and the
looks at hc2 that many steps share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from swapbot.heroku import BadRequest, Conflict, Connection, UnprocessableEntity
from swapbot.heroku import Mapping as HcMapping
from swapbot.swap.run import Run

# HC pauses a connection only from IDLE; what it answers otherwise is not documented
# (assumption pause-only-from-idle). Any of these is "not now": the next look tries again.
PAUSE_REFUSED = (BadRequest, Conflict, UnprocessableEntity)

if TYPE_CHECKING:
    from datetime import datetime

Phase = Literal["prep", "cutover"]


@dataclass(frozen=True)
class Check:
    done: bool
    seen: str = ""
    data: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return self.done


@dataclass(frozen=True)
class Estimate:
    """How the outage prediction (`swapbot.swap.predict`) counts a step inside the outage.

    dynos-stop, dynos-boot: the app's dynos stopping or booting; drain: hc1's backlog at its
    measured write rate; heroku: a wait on HC, timed by the measure step (`measured`: the key
    of its record); first-poll: hc2's first Salesforce poll; bot: the bot's own statements,
    a second or two in all (bench/cutover.py), not predicted.
    """

    kind: Literal["dynos-stop", "drain", "heroku", "first-poll", "dynos-boot", "bot"]
    measured: str | None = None


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
    # What a person confirms for it with `confirm <word>` (their word is a record of the swap).
    confirms: str | None = None
    # Inside the outage, how the prediction counts it (every outage step says; see Estimate).
    estimate: Estimate | None = None
    # An unsafe step whose change may have landed while its result is still coming (a new
    # add-on, a load): the engine waits for it instead of acting again.
    landed: Callable[[Run], bool] | None = None
    # Landmarks: the outage clock starts when this step starts and stops when that one is done.
    starts_outage: bool = False
    ends_outage: bool = False


# -- helpers ---------------------------------------------------------------------------------
def _new(run: Run) -> Connection | None:
    return run.live.new()


def _new_mappings(run: Run) -> dict[str, HcMapping]:
    c = _new(run)
    # (a mapping without an object name is never looked up: the plan names objects)
    return {m.object_name: m for m in (c.mappings if c else []) if m.object_name is not None}


def _missing_fields(run: Run) -> dict[str, list[str]]:
    """Per moved object, the requested fields hc2's mapping does not have yet."""
    mappings = _new_mappings(run)
    missing = {}
    for obj, fields in run.plan.mappings.items():
        config = mappings[obj].config if obj in mappings else None
        have = set(config.fields) if config else set()
        lacking = [f for f in fields if f not in have]
        if lacking:
            missing[obj] = lacking
    return missing


def resume(addon_of: Callable[[Run], str]) -> Callable[[Run], None]:
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


def _moment(text: str) -> datetime:
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
