"""What a step sees while it runs: the plan, the live system, the swap's records, and a way to
speak to people. Built without the engine: the records and the events are two small seams, so a
step can be run alone on a sandbox with records kept in a dict (tests/test_steps_*.py).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any, Protocol

from swapbot.swap import record as swaprecord
from swapbot.swap.events import Kind
from swapbot.swap.live import Live
from swapbot.swap.plan import Plan
from swapbot.swap.store import Heartbeat, Lease

# Test seam, never set in production: SWAPBOT_KILL_AT="<step>:<point>" makes this process SIGKILL
# itself at that point of that step, so a test can stop a runner at an exact moment and resume it
# with a fresh process (tests/test_swap_kill_matrix.py). The points:
#   before     the checkpoint says running; nothing of this attempt is done yet
#   after-act  the step's calls and SQL are made; nothing checked or checkpointed since
#   waiting    acted, and the live system did not show the step done on the first look
#   after      checkpointed done; audit entry and event not yet written
#   between-deletes  delete-old has sent its first mapping DELETE, not the next one
KILL_AT_ENV = "SWAPBOT_KILL_AT"
KILL_POINTS = ("before", "after-act", "waiting", "after", "between-deletes")


def kill_point(step: str, point: str) -> None:
    if os.environ.get(KILL_AT_ENV) == f"{step}:{point}":
        os.kill(os.getpid(), signal.SIGKILL)


# The record of a person asked by a step: `asked:<step>` -> {person, at}.
ASKED = "asked:"


class StepStopped(Exception):
    """The step cannot go on; the message says why and what a person should do."""


class PlanMismatch(StepStopped):
    """A plan the live system contradicts: each of its `problems` is one thing to change."""

    def __init__(self, problems: list[str]):
        super().__init__("the plan does not match the live system: " + "; ".join(problems))
        self.problems = list(problems)


class Records(Protocol):
    """The swap's records as a step reads and writes them (the engine's: journal and Redis)."""

    def put(self, lease: Lease, key: str, value: Any) -> None: ...

    def get(self, swap_id: str, key: str) -> Any: ...

    def confirmation(self, swap_id: str, what: str) -> dict[str, Any] | None: ...


class Emit(Protocol):
    """Sends an event to the front ends: `emit(kind, swap_id, step=..., message=..., **data)`."""

    def __call__(self, kind: Kind, swap_id: str, **fields: Any) -> object: ...


class Run:
    """One attempt of one step."""

    def __init__(
        self,
        plan: Plan,
        live: Live,
        lease: Lease | None,
        actor: str,
        step: str,
        *,
        records: Records,
        emit: Emit,
        own_app: str | None = None,
    ):
        self.plan, self.live, self.lease = plan, live, lease
        self.actor, self.step = actor, step
        self.records, self.emit, self.own_app = records, emit, own_app
        self.break_glass: str | None = None
        self.approval: str | None = None  # the approval this attempt acts under (its id)
        self.attempted = False  # this attempt wrote `running`: its failure is the step's
        self.heartbeat: Heartbeat | None = None

    def for_step(self, step: str) -> Run:
        """The same run, as another step sees it (to look at an earlier step's proof)."""
        other = Run(
            self.plan,
            self.live,
            self.lease,
            self.actor,
            step,
            records=self.records,
            emit=self.emit,
            own_app=self.own_app,
        )
        other.heartbeat = self.heartbeat
        return other

    def remember(self, key: str, value: Any) -> None:
        if self.live.dry_run or self.lease is None:
            return
        self.records.put(self.lease, key, value)

    def recall(self, key: str) -> Any:
        return self.records.get(self.plan.swap_id, key)

    def confirmed(self, what: str) -> bool:
        return self.records.confirmation(self.plan.swap_id, what) is not None

    def ask(self, message: str, *, link: str | None = None, person: str | None = None) -> None:
        """Ask a person to do something only a person can; the engine then waits for the result."""
        data: dict[str, Any] = {"person": person}
        if link:
            data["link"] = link
        if not self.live.dry_run:  # who was asked, and when: the watcher nudges them again
            self.remember(f"{ASKED}{self.step}", {"person": person, "at": time.time()})
        self.emit(
            "step.waiting", self.plan.swap_id, step=self.step, actor=self.actor, message=message,
            **data,
        )  # fmt: skip

    def stop(self, message: str) -> StepStopped:
        return StepStopped(message)

    def kill_point(self, point: str) -> None:
        kill_point(self.step, point)

    def mark_outage_start(self) -> None:
        """The outage clock starts at stop-writes (kept across restarts: the first mark wins)."""
        if self.recall("outage_started_at") is None and not self.live.dry_run:
            self.remember("outage_started_at", time.time())
            self.emit(
                "outage.started",
                self.plan.swap_id,
                step=self.step,
                actor=self.actor,
                message="outage started",
            )

    def pass_point_of_no_return(self, what: str) -> None:
        """Record, before the first irreversible call leaves, that the swap is past the point
        of no return (journal first): from here rollback is refused, whatever the call's
        answer. The first mark wins; a resumed attempt finds it and goes on under it."""
        if self.live.dry_run or self.recall(swaprecord.POINT_OF_NO_RETURN):
            return
        mark = {
            "at": time.time(),
            "step": self.step,
            "actor": self.actor,
            "approval": self.approval,
            "what": what,
        }
        self.remember(swaprecord.POINT_OF_NO_RETURN, mark)
        self.emit(
            "point_of_no_return",
            self.plan.swap_id,
            step=self.step,
            actor=self.actor,
            message=f"past the point of no return: {self.step} deletes {what} from "
            f"{self.plan.old_addon}; rollback is no longer possible, the swap goes forward",
            approval=self.approval,
        )


class DictRecords:
    """Records kept in memory: for a step run alone, without the engine, Redis or the journal."""

    def __init__(self, confirmed: Callable[[str], bool] = lambda _what: False):
        self.values: dict[str, Any] = {}
        self._confirmed = confirmed

    def put(self, lease: Lease, key: str, value: Any) -> None:
        self.values[key] = value

    def get(self, swap_id: str, key: str) -> Any:
        return self.values.get(key)

    def confirmation(self, swap_id: str, what: str) -> dict[str, Any] | None:
        return {"by": "a test"} if self._confirmed(what) else None
