"""The swap's record, kept in two places: Redis (fast, fenced, what every process reads) and the
journal in the app's Postgres (durable, what the way back depends on).

Every write goes through here. A record (hc1's export, the role settings, the formation, the
point of no return) is written to the journal first, once the lease is seen to hold, so that
nothing a rollback or a person needs exists only in Redis, even for a moment; a checkpoint is
written to Redis first (under the lease's fence, which decides who may write at all) and then
to the journal. When Redis has lost the swap, or a failover left it behind, `reconcile` copies
back what the journal holds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swapbot.swap import steps as runbook
from swapbot.swap.journal import Journal, JournalSwap, dumps
from swapbot.swap.store import Checkpoint, Lease, LeaseLost, Store

log = logging.getLogger(__name__)

# Records that mark where the swap as a whole stands (beside each step's checkpoint).
POINT_OF_NO_RETURN = "point_of_no_return"
ROLLED_BACK = "rolled_back_at"
FINISHED = "swap_done_at"
# What `swapbot probe` had found when preflight ran: the variants this swap plays to its end.
PROBE = "probe"


@dataclass(frozen=True)
class Standing:
    """Where a swap stands as a whole: what has acted, whether it ended, whether it is past
    the point of no return."""

    swap_id: str
    acted: tuple[str, ...]  # steps that changed the live system and are not undone
    finished: bool
    rolled_back: bool
    point_of_no_return: dict[str, Any] | None

    @property
    def in_progress(self) -> bool:
        """From its first acting step until it is finished or rolled back."""
        return bool(self.acted) and not self.finished and not self.rolled_back


def standing(
    swap_id: str,
    checkpoints: Mapping[str, Checkpoint | dict[str, Any]],  # from Redis, or the journal's JSON
    records: Mapping[str, Any],
) -> Standing:
    acted = tuple(
        s.name
        for s in runbook.STEPS
        if not s.reads_only
        and (cp := checkpoints.get(s.name)) is not None
        and _status(cp) not in ("pending", "undone")
    )
    return Standing(
        swap_id=swap_id,
        acted=acted,
        finished=bool(records.get(FINISHED)),
        rolled_back=bool(records.get(ROLLED_BACK)),
        point_of_no_return=records.get(POINT_OF_NO_RETURN) or None,
    )


def _status(cp: Checkpoint | dict[str, Any]) -> str:
    return str(cp.status if isinstance(cp, Checkpoint) else cp.get("status"))


class SwapRecord:
    """Writes to both places, and repairs Redis from the journal."""

    def __init__(self, store: Store, journal: Journal | None):
        self.store = store
        self.journal = journal

    # -- writes -------------------------------------------------------------------------------
    def save_plan(self, lease: Lease, plan: dict[str, Any]) -> None:
        """Make the plan's swap the current one; the journal refuses to replace a swap that is
        in progress (it judges from its own entries, whatever Redis holds)."""
        if self.journal is not None:
            self.journal.save_swap(plan, refuse=_in_progress)
        self.store.set_plan(lease, plan, current=True)

    def checkpoint(self, lease: Lease, step: str, **fields: Any) -> Checkpoint:
        cp = self.store.checkpoint(lease, step, **fields)
        if self.journal is not None:
            self.journal.put(
                _swap(lease), "step", step, cp.model_dump(mode="json"), fence=lease.fence
            )
        return cp

    def put(self, lease: Lease, name: str, value: Any) -> None:
        if self.journal is not None:
            if not self.store.holds(lease):  # a runner that lost the swap writes nothing
                raise LeaseLost(lease, self.store.holder(_swap(lease)))
            self.journal.put(_swap(lease), "record", name, value, fence=lease.fence)
        self.store.put_record(lease, name, value)

    def confirm(self, swap_id: str, what: str, actor: str) -> None:
        at = self.store.clock()
        if self.journal is not None:
            self.journal.put(swap_id, "confirmation", what, {"by": actor, "at": at}, fence=None)
        self.store.confirm(swap_id, what, actor, at=at)

    def forget_prep(self, lease: Lease) -> None:
        """Clear the records and confirmations (hc2 is gone: prep starts again)."""
        if self.journal is not None:
            self.journal.clear(_swap(lease), "record")
            self.journal.clear(_swap(lease), "confirmation")
        with self.store.transition(lease) as tx:
            tx.clear_records()
            tx.clear_confirmations()

    # -- reads ----------------------------------------------------------------------------------
    def standing(self, swap_id: str) -> Standing:
        # Three small records, not all of them: status asks this, and hc1's export is large.
        marks = self.store.some_records(swap_id, [FINISHED, ROLLED_BACK, POINT_OF_NO_RETURN])
        return standing(swap_id, self.store.checkpoints(swap_id), marks)

    # -- repair ---------------------------------------------------------------------------------
    def active_in_journal(self) -> JournalSwap | None:
        return self.journal.active() if self.journal is not None else None

    def floor(self, swap_id: str) -> int:
        """The fence a new lease must exceed: the largest the journal has seen."""
        return self.journal.max_fence(swap_id) if self.journal is not None else 0

    def reconcile(self, lease: Lease, found: JournalSwap | None = None) -> list[str]:
        """Copy into Redis what the journal holds for the lease's swap and Redis lacks (or holds
        from an older fence); returns what was copied, e.g. ["plan", "step:pause"]."""
        swap_id = _swap(lease)
        if self.journal is None:
            return []
        found = found or self.journal.load(swap_id)
        if found is None:
            return []
        copied: list[str] = []
        checkpoints = self.store.checkpoints(swap_id)
        records = self.store.records(swap_id)
        confirmations = self.store.confirmations(swap_id)
        with self.store.transition(lease) as tx:
            lost = self.store.get_plan(swap_id) is None or self.store.current_swap() is None
            if lost and found.state == "active":
                tx.set_plan(found.plan)
                tx.set_current()
                copied.append("plan")
            for name, value in found.steps.items():
                have = checkpoints.get(name)
                fence = found.fences.get(f"step:{name}", 0)
                if have is None or (have.fence or 0) < fence:
                    tx.restore_checkpoint(Checkpoint.model_validate(value))
                    copied.append(f"step:{name}")
            for name, value in found.records.items():
                if name not in records and value is not None:
                    tx.put_record(name, value)
                    copied.append(f"record:{name}")
            for name, value in found.confirmations.items():
                if name not in confirmations or dumps(confirmations[name]) != dumps(value):
                    tx.put_confirmation(name, value)
                    copied.append(f"confirmation:{name}")
            if copied:
                tx.audit("swapbot", "swap.restored", detail={"copied": copied})
        return copied


def _in_progress(found: JournalSwap) -> str | None:
    at = standing(found.swap_id, found.steps, found.records)
    if not at.in_progress:
        return None
    return f"swap {found.swap_id} is in progress (last acting step: {at.acted[-1]})"


def _swap(lease: Lease) -> str:
    if lease.swap_id is None:
        raise ValueError(f"a {lease.resource} lease holds no swap")
    return lease.swap_id


# -- a step's checkpoint, read --------------------------------------------------------------
def is_done(cp: Checkpoint | None) -> bool:
    return cp is not None and cp.status in ("done", "skipped")


def interrupted(cp: Checkpoint | None) -> bool:
    """An attempt that stopped mid-act: killed (`running`), or failed in doubt."""
    if cp is None:
        return False
    return cp.status == "running" or (cp.status == "failed" and bool(cp.detail.get("resumable")))
