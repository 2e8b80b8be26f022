"""The engine: runs any step the same way, and owns locking, checkpoints, waiting, audit and events.

    run_step(name):  take the swap's lease (one runner acts) -> steps before it must be done
                     -> approval if the step needs one -> check the live system: done? skip
                     -> (interrupted unsafe attempt? wait until it must have finished, check again)
                     -> act -> wait until the check passes -> checkpoint, audit, event

Front ends (the terminal, Slack via the worker) call these methods and render the events.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from swapbot.heroku import (
    ConnectClient,
    HerokuError,
    PlatformClient,
)
from swapbot.heroku.probed import ProbeResults
from swapbot.swap import gate, rollback
from swapbot.swap import record as swaprecord
from swapbot.swap import steps as runbook
from swapbot.swap.approvals import Approvals
from swapbot.swap.events import Emitter, Event, Kind
from swapbot.swap.journal import Journal, JournalError, JournalRefused
from swapbot.swap.ledger import Item
from swapbot.swap.live import Live
from swapbot.swap.outcome import Interrupted, Outcome, calls_of, failure
from swapbot.swap.plan import Plan
from swapbot.swap.predict import Prediction
from swapbot.swap.record import PROBE as PROBE_RECORD
from swapbot.swap.record import interrupted, is_done
from swapbot.swap.rollback import forward_path, passed_at
from swapbot.swap.run import PlanMismatch, Run, StepStopped, kill_point
from swapbot.swap.store import Checkpoint, Heartbeat, Lease, LeaseLost, Store, StoreError

log = logging.getLogger(__name__)

# After an interrupted attempt of a step that is not safe to repeat, the request may still be in
# flight at Heroku: look at the live system only once it must have finished.
IN_FLIGHT_GRACE = 35.0
# The swap's lease: renewed by a heartbeat every quarter of it while a step runs, so a runner
# that dies (kill -9, a dyno gone) is replaced within this many seconds.
LEASE_TTL = 12.0
SYSTEM_ACTOR = "swapbot"

__all__ = ["Engine", "Interrupted", "Outcome"]  # where the front ends import them from


def _held(run: Run) -> Lease:
    """The lease of a run that acts: only a dry run (which writes nothing) runs without one."""
    if run.lease is None:
        raise StoreError(f"{run.step}: a run that writes needs the swap's lease")
    return run.lease


@dataclass(frozen=True)
class _Records:
    """A step's records: written journal first under the lease, read from Redis."""

    record: swaprecord.SwapRecord
    store: Store

    def put(self, lease: Lease, key: str, value: Any) -> None:
        self.record.put(lease, key, value)

    def get(self, swap_id: str, key: str) -> Any:
        return self.store.get_record(swap_id, key)

    def confirmation(self, swap_id: str, what: str) -> dict[str, Any] | None:
        return self.store.confirmation(swap_id, what)


class Engine:
    def __init__(
        self,
        store: Store,
        live_factory: Callable[[Plan, Emitter, bool], Live],
        *,
        journal: Journal | None = None,
        emitter: Emitter | None = None,
        runner: str | None = None,
        lease_ttl: float = LEASE_TTL,
        poll_interval: float = 2.0,
        in_flight_grace: float = IN_FLIGHT_GRACE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        approvers: set[str] | None = None,
        approval_ttl: float = 900.0,
        timeout_scale: float = 1.0,
        clients: tuple[ConnectClient, PlatformClient] | None = None,
        own_app: str | None = None,
    ):
        self.store = store
        self.own_app = own_app  # swapbot's own Heroku app: attached to the database, never stopped
        self.journal = journal
        self.record = swaprecord.SwapRecord(store, journal)
        self.approvers = set(approvers or ())
        self.approvals = Approvals(store, ttl_s=approval_ttl)
        # Step timeouts are in real seconds; rehearsals against a fast sandbox scale them down.
        self.timeout_scale = timeout_scale
        self.clients = clients  # (ConnectClient, PlatformClient), for status without a plan
        self._make_live = live_factory
        self.emitter = emitter or Emitter()
        self.runner = runner or f"{socket.gethostname()}:{uuid.uuid4().hex[:6]}"
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.in_flight_grace = in_flight_grace
        self.clock = clock
        self.sleep = sleep

    def live_factory(self, plan: Plan, events: Emitter, dry_run: bool) -> Live:
        """The live system for a run. Once preflight recorded what `swapbot probe` found, the
        swap plays that record to its end: a new probe or a redeploy mid-swap changes nothing
        of what later steps send."""
        live = self._make_live(plan, events, dry_run)
        recorded = self.store.get_record(plan.swap_id, PROBE_RECORD)
        if recorded:
            live.use_probe(ProbeResults.model_validate(recorded))
        return live

    # -- events and audit -----------------------------------------------------------------
    def emit(
        self,
        kind: Kind,
        swap_id: str,
        *,
        step: str | None = None,
        actor: str | None = None,
        message: str = "",
        **data: Any,
    ) -> Event:
        event = self.emitter.emit(
            Event(kind=kind, swap_id=swap_id, step=step, actor=actor, message=message, data=data)
        )
        if data.get("dry_run"):
            return event  # a rehearsal of a change is shown to whoever asked, never published
        try:
            self.store.publish(swap_id, event.model_dump(mode="json"))
        except Exception:  # the event stream is for front ends; never fail a step over it
            log.exception("could not publish an event")
        return event

    # -- plans ----------------------------------------------------------------------------
    def current_plan(self) -> Plan | None:
        swap_id = self.store.current_swap()
        raw = self.store.get_plan(swap_id) if swap_id else None
        if raw is None:
            raw = self._restore()
        return Plan.model_validate(raw) if raw else None

    def _restore(self) -> dict[str, Any] | None:
        """Redis has no current swap: if the journal holds an active one, Redis lost it (a
        failover, an eviction, a flush). Copy it back, say so, and carry on from there."""
        try:
            found = self.record.active_in_journal()
        except JournalError as exc:
            log.warning("could not read the journal: %s", exc)
            return None
        if found is None:
            return None
        lease = self._acquire(found.swap_id)
        if lease is None:  # another runner holds it: it is restoring, or acting on what is left
            return found.plan
        try:
            copied = self.record.reconcile(lease, found)
        finally:
            self.store.release(lease)
        if copied:
            self.emit(
                "notice",
                found.swap_id,
                actor=SYSTEM_ACTOR,
                message=f"Redis had lost swap {found.swap_id}: rebuilt from the journal in "
                f"Postgres ({len(copied)} entries: the plan, checkpoints, records)",
                copied=copied,
            )
        return found.plan

    def check_plan(self, plan: Plan) -> list[str]:
        """What the live system says against the plan: empty when it can be saved."""
        from swapbot.heroku import HerokuError, NotFound

        # Not a dry run: reading hc1 may link the token's user to it (an access grant, as the CLI does).
        live = self.live_factory(plan, self.emitter, False)
        problems: list[str] = []
        try:
            old = live.old()
        except HerokuError as exc:
            return [f"cannot read {plan.old_addon}'s connection: {exc}"]
        if old.schema_name != plan.old_schema:
            problems.append(
                f"{plan.old_addon} syncs schema {old.schema_name}, not {plan.old_schema}"
            )
        ref = live.ref(plan.old_addon)
        for obj, fields in plan.mappings.items():
            if old.mapping(obj) is None:
                problems.append(f"{plan.old_addon} has no mapping for {obj}")
                continue
            try:
                described = {f["name"] for f in live.connect.describe(ref, obj).get("fields", [])}
            except NotFound:
                problems.append(f"Salesforce has no object {obj}")
                continue
            unknown = [f for f in fields if f not in described]
            if unknown:
                problems.append(f"{obj} has no field {', '.join(unknown)} in Salesforce")
        new = (
            live.new()
            if plan.new_addon in {a.name for a in live.platform.list_addons(plan.app)}
            else None
        )
        problems += self._writer_problems(live, plan)
        with live.db(autocommit=True) as conn:
            taken = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (plan.new_schema,)
            ).fetchone()
            if taken and not (new is not None and new.schema_name == plan.new_schema):
                problems.append(f"schema {plan.new_schema} already exists: choose a new one")
            for role in plan.roles:
                if not conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
                ).fetchone():
                    problems.append(f"role {role} does not exist in the database")
        return problems

    def _writer_problems(self, live: Live, plan: Plan) -> list[str]:
        """Every other app on the database must be named, as a writer to stop (with process
        types it has) or a reader left running: a person confirms the list with the plan."""
        from swapbot.swap import writers

        try:
            found = writers.discover(live.platform, plan, own_app=self.own_app)
        except HerokuError as exc:
            return [f"cannot list the apps attached to the database: {exc}"]
        if found.database is None:
            return [
                f"{plan.app} has no DATABASE attachment: cannot tell which other apps write to "
                "its database"
            ]
        return writers.problems(found, plan)

    def save_plan(self, plan: Plan, actor: str, *, check: bool = True) -> Plan:
        current = self._one_swap_at_a_time(plan)
        problems = self.check_plan(plan) if check else []
        if problems:
            raise PlanMismatch(problems)
        # The swap it replaces is held too, so that none of its steps starts meanwhile.
        held = self.take_lease(current) if current and current != plan.swap_id else None
        try:
            return self._save_plan(plan, actor)
        except JournalRefused as exc:
            raise StepStopped(
                f"{exc}; one swap per app at a time: finish it or roll it back (`rollback`), "
                f"then plan {plan.swap_id}"
            ) from None
        except JournalError as exc:
            raise StepStopped(f"{exc}; the plan was not saved: try again") from None
        finally:
            if held is not None:
                self.release(held)

    def _save_plan(self, plan: Plan, actor: str) -> Plan:
        lease = self.take_lease(plan.swap_id)
        try:
            self.reconcile(lease)
            stored = self.store.get_plan(plan.swap_id)
            if stored is not None and Plan.model_validate(stored) == plan:
                if self.store.current_swap() != plan.swap_id:
                    self.record.save_plan(lease, plan.model_dump(mode="json"))
                return plan  # saved again as it is (after a restart, say): nothing changes
            started = [
                name
                for name, cp in self.store.checkpoints(plan.swap_id).items()
                if cp.status != "pending"
            ]
            if started:
                raise StepStopped(
                    f"the swap has started ({', '.join(started)}); a running plan cannot change"
                )
            self.record.save_plan(lease, plan.model_dump(mode="json"))
            self.store.audit(
                plan.swap_id, actor, "plan.saved", detail={"fingerprint": plan.fingerprint()}
            )
        finally:
            self.store.release(lease)
        return plan

    def _one_swap_at_a_time(self, plan: Plan) -> str | None:
        """One swap per app: another may not be planned while one is in progress (from its first
        acting step until it is finished or rolled back). Returns the current swap's id. This is
        the answer from Redis; the journal judges again when the plan is saved, from its own
        entries, so a Redis that lost or forgot the swap in flight cannot let it be replaced."""
        current = self.current_plan()
        if current is None or current.swap_id == plan.swap_id:
            return current.swap_id if current else None
        at = self.standing(current.swap_id)
        if not at.in_progress:
            return current.swap_id
        last = at.acted[-1]
        way_out = (
            "finish it: it is past the point of no return, so the remaining steps must run"
            if at.point_of_no_return
            else "finish it (its remaining steps) or roll it back (`rollback`)"
        )
        raise StepStopped(
            f"swap {current.swap_id} is in progress on {current.app} (last acting step: {last}); "
            f"one swap per app at a time: {way_out}, then plan {plan.swap_id}"
        )

    def standing(self, swap_id: str) -> swaprecord.Standing:
        return self.record.standing(swap_id)

    def reconcile(self, lease: Lease) -> None:
        """Under the lease: copy back what the journal has and Redis lost (after a failover)."""
        copied = self.record.reconcile(lease)
        if copied and lease.swap_id:
            self.emit(
                "notice",
                lease.swap_id,
                actor=SYSTEM_ACTOR,
                message=f"Redis was behind the journal: {len(copied)} entries copied back "
                f"({', '.join(copied[:6])}{', …' if len(copied) > 6 else ''})",
                copied=copied,
            )

    # -- running steps --------------------------------------------------------------------
    def _acquire(self, swap_id: str) -> Lease | None:
        """The swap's lease, its fence above every fence the journal has seen (Redis may have
        lost its counter with the swap), or None when another runner holds it."""
        floor = self.record.floor(swap_id)
        return self.store.acquire(swap_id, self.runner, int(self.lease_ttl * 1000), floor=floor)

    def take_lease(self, swap_id: str) -> Lease:
        try:
            lease = self._acquire(swap_id)
        except JournalError as exc:
            raise StepStopped(f"{exc}; nothing was done: try again once Postgres answers") from None
        if lease is None:
            holder = self.store.holder(swap_id)
            who = f"{holder.runner} since {holder.since}" if holder else "another runner"
            raise StepStopped(f"swap {swap_id} is being run by {who}; try again when it is done")
        return lease

    def new_run(self, plan: Plan, live: Live, lease: Lease | None, actor: str, step: str) -> Run:
        records = _Records(self.record, self.store)
        return Run(
            plan, live, lease, actor, step, records=records, emit=self.emit, own_app=self.own_app
        )

    def heartbeat(self, lease: Lease | None) -> Heartbeat | contextlib.nullcontext[None]:
        if lease is None:
            return contextlib.nullcontext()
        return Heartbeat(self.store, lease, every=self.lease_ttl / 4)

    def run_step(
        self,
        name: str,
        actor: str,
        *,
        dry_run: bool = False,
        wait: bool = True,
        break_glass: str | None = None,
        app: str | None = None,
    ) -> Outcome:
        plan = self.current_plan()
        if plan is None:
            return Outcome(name, "refused", "there is no plan yet: create one with `plan new`")
        try:
            step = runbook.get(name)
        except KeyError as exc:
            return Outcome(name, "refused", exc.args[0])
        if name == runbook.OUTAGE_START and app != plan.app:
            # The outage never starts by accident: the command must name the app it takes down.
            return Outcome(name, "refused", f"the outage starts only with `{name} {plan.app}`")
        live = self.live_factory(plan, self.emitter, dry_run)
        try:
            lease = None if dry_run else self.take_lease(plan.swap_id)
        except StepStopped as exc:
            return Outcome(name, "refused", str(exc))
        run = self.new_run(plan, live, lease, actor, name)
        run.break_glass = break_glass
        try:
            with self.heartbeat(lease) as heartbeat:
                run.heartbeat = heartbeat
                live.guard = lambda: self._still_held(run)
                if lease is not None:
                    self.reconcile(lease)
                refused = self._refusal(run, step)
                if refused:
                    return Outcome(name, "refused", refused)
                settled = self._settled(step, self.store.checkpoints(plan.swap_id))
                if settled:
                    return Outcome(name, "skipped", settled)
                blocked = self._blocked_by(run, step)
                if blocked:
                    return Outcome(name, "refused", blocked)
                return self._run(run, step, dry_run=dry_run, wait=wait)
        except Interrupted as exc:
            return self._failed(run, step, f"interrupted: {exc}", resumable=True)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise  # SystemExit, KeyboardInterrupt: the process is going; the lease lapses
            return self._failed(run, step, **failure(exc, step.name))
        finally:
            if lease is not None:
                self.release(lease)

    def _still_held(self, run: Run) -> None:
        """Before each change: a runner whose lease is gone (or may be: Redis unreachable for a
        whole TTL) makes none, whatever it was in the middle of."""
        if run.heartbeat is not None and run.heartbeat.lost and run.lease is not None:
            raise LeaseLost(run.lease, self.store.holder(run.plan.swap_id))

    def release(self, lease: Lease) -> None:
        try:
            self.store.release(lease)
        except redis.RedisError as exc:  # it lapses by itself within its TTL
            log.warning("could not release the lease: %s", exc)

    def _refusal(self, run: Run, step: runbook.Step) -> str | None:
        """What the swap's state forbids, whatever the live system shows: going back past the
        point of no return, and any cutover step while the steps before it are not done."""
        mark = run.recall(swaprecord.POINT_OF_NO_RETURN)
        ponr = next(s for s in runbook.STEPS if s.point_of_no_return)
        if mark and runbook.STEPS.index(step) < runbook.STEPS.index(ponr):
            return (
                f"the swap passed the point of no return at {passed_at(mark)} ({ponr.name} sent its "
                f"first DELETE): steps before {ponr.name} cannot run again. Go forward: "
                + forward_path(self.store.checkpoints(run.plan.swap_id))
            )
        return None

    @staticmethod
    def _settled(step: runbook.Step, checkpoints: dict[str, Checkpoint]) -> str | None:
        """A done step that a later step has gone past is not looked at again.

        Its live check no longer holds once the swap moves on (drain wants hc1 IDLE, pause wants
        both connections PAUSED until resume-new), and acting on that would repeat it: a runner
        resumed after resume-new would pause hc2 again. Rollback marks steps undone, which
        lets them run again.
        """
        cp = checkpoints.get(step.name)
        if not is_done(cp):
            return None
        later = runbook.after(step.name)
        moved_on = [
            s.name
            for s in later
            if (c := checkpoints.get(s.name)) is not None and c.status not in ("pending", "undone")
        ]
        if not moved_on:
            return None
        return f"already done; {moved_on[-1]} has started since, so it is not run again"

    def _blocked_by(self, run: Run, step: runbook.Step) -> str | None:
        """Steps run in order: every earlier step must be done.

        A cutover step is done only by its checkpoint (Redis, or the journal it is rebuilt
        from): a live check that passes now proves nothing about the outage (hc1 is "running"
        before anything was paused, and after resume-old). A prep step without a checkpoint may
        be proven by its own live check; it is recorded as rebuilt only when nothing blocks, so
        a refused command writes nothing. Never does a later step's check stand for an earlier
        step's."""
        checkpoints = self.store.checkpoints(run.plan.swap_id)
        rebuilt: list[tuple[runbook.Step, runbook.Check]] = []
        for earlier in runbook.STEPS[: runbook.STEPS.index(step)]:
            cp = checkpoints.get(earlier.name)
            if is_done(cp):
                continue
            if earlier.phase == "cutover":
                state = cp.status if cp is not None else "not started"
                return f"{earlier.name} is not done yet ({state}); run it first"
            seen = earlier.check(run.for_step(earlier.name))
            if not seen:
                return f"{earlier.name} is not done yet ({seen.seen}); run it first"
            rebuilt.append((earlier, seen))
        for earlier, seen in rebuilt:
            if run.lease is not None:
                detail = {"seen": seen.seen, "rebuilt": True}
                self.record.checkpoint(run.lease, earlier.name, status="done", detail=detail)
                self.store.audit(
                    run.plan.swap_id, run.actor, "step.rebuilt", step=earlier.name, detail=detail
                )
        return None

    def _run(self, run: Run, step: runbook.Step, *, dry_run: bool, wait: bool) -> Outcome:
        swap_id = run.plan.swap_id
        seen = step.check(run)
        if seen:
            if not dry_run:
                self.record.checkpoint(
                    _held(run),
                    step.name,
                    status="done",
                    detail={"seen": seen.seen, "already": True},
                )
                self.store.audit(
                    swap_id, run.actor, "step.skipped", step=step.name, detail={"seen": seen.seen}
                )
            self.emit("step.skipped", swap_id, step=step.name, actor=run.actor, message=seen.seen)
            if not dry_run:
                self._landmarks(run, step)
            return Outcome(step.name, "skipped", f"already done: {seen.seen}")
        if dry_run:
            with self.emitter.capture() as events:
                if step.act is not None:
                    step.act(run)
            calls = calls_of(events)
            return Outcome(step.name, "dry-run", f"would make {len(calls)} change(s)", calls=calls)

        previous = self.store.checkpoints(swap_id).get(step.name)
        if step.approval and not gate.resumes_approved(self, run, step, previous):
            refused = gate.take_approval(self, run, step)
            if refused:
                return Outcome(step.name, "refused", refused)
        if step.unsafe and previous is not None and interrupted(previous):
            # An earlier attempt stopped mid-act: its call may have reached Heroku.
            self._wait_in_flight(run, previous)
            seen = step.check(run)
            if seen or self._in_progress(run, step):
                return self._wait_and_finish(
                    run, step, started=self.clock(), acted=False, wait=wait
                )
        started = self.clock()
        attempt = (previous.attempt if previous else 0) + 1
        self.record.checkpoint(
            _held(run), step.name, status="running", attempt=attempt, runner=self.runner, detail={}
        )
        run.attempted = True
        if not step.reads_only and run.recall(swaprecord.ROLLED_BACK):
            run.remember(swaprecord.ROLLED_BACK, None)  # acting again: the swap is in progress
        self.store.audit(
            swap_id, run.actor, "step.started", step=step.name, detail={"attempt": attempt}
        )
        self.emit("step.started", swap_id, step=step.name, actor=run.actor, message=step.summary)
        kill_point(step.name, "before")
        if step.act is not None:
            step.act(run)
        kill_point(step.name, "after-act")
        return self._wait_and_finish(run, step, started=started, acted=True, wait=wait)

    def _in_progress(self, run: Run, step: runbook.Step) -> bool:
        """An unsafe step whose change has landed but whose result is still coming (e.g. a load)."""
        return step.landed is not None and not step.check(run) and step.landed(run)

    def _wait_in_flight(self, run: Run, previous: Checkpoint) -> None:
        # From the later of its start and its failure: a call that timed out on our side may
        # still be on its way at Heroku.
        age = time.time() - max(previous.started_epoch or 0, previous.finished_epoch or 0)
        if age < self.in_flight_grace:
            self.sleep(self.in_flight_grace - age)

    def _wait_and_finish(
        self, run: Run, step: runbook.Step, *, started: float, acted: bool, wait: bool
    ) -> Outcome:
        swap_id, lease = run.plan.swap_id, _held(run)
        deadline = started + step.timeout * self.timeout_scale
        acted_at = self.clock()  # from here on the step waits on Heroku, dynos or people
        seen = step.check(run)
        looped = False
        while not seen:
            looped = True
            if not wait or self.clock() >= deadline:
                self.record.checkpoint(
                    lease, step.name, status="waiting", detail={"seen": seen.seen}
                )
                self.emit(
                    "step.waiting", swap_id, step=step.name, message=seen.seen, **(seen.data or {})
                )
                return Outcome(step.name, "waiting", seen.seen, data=seen.data or {})
            kill_point(step.name, "waiting")
            self.sleep(self.poll_interval)
            if run.heartbeat is not None and run.heartbeat.lost:
                raise LeaseLost(lease, self.store.holder(swap_id))
            if step.repeat_act and step.act is not None:
                step.act(run)
            seen = step.check(run)
            if seen.data and "progress" in seen.data:
                self.emit("load.progress", swap_id, step=step.name, message=seen.seen, **seen.data)
        finished = self.clock()
        elapsed = finished - started
        detail = {
            "seen": seen.seen,
            "seconds": round(elapsed, 3),
            # Waiting for the live system to show the change (HC pausing, dynos stopping);
            # the rest of `seconds` is the bot's own work and its API calls.
            "waited": round(finished - acted_at, 3) if looped else 0.0,
            "waits_on": step.waits_on,
            "started_epoch": time.time() - elapsed,
        }
        self.record.checkpoint(lease, step.name, status="done", detail=detail)
        kill_point(step.name, "after")
        self.store.audit(swap_id, run.actor, "step.done", step=step.name, detail=detail)
        self.emit(
            "step.done",
            swap_id,
            step=step.name,
            actor=run.actor,
            message=seen.seen,
            seconds=elapsed,
        )
        self._landmarks(run, step)
        return Outcome(step.name, "done", seen.seen, data={"seconds": elapsed})

    def _landmarks(self, run: Run, step: runbook.Step) -> None:
        """Once a step is done: the outage ends with `restore`, the swap with its last step.
        Each is announced once (a record marks it), whichever runner finished the step."""
        swap_id = run.plan.swap_id
        if step.name == runbook.OUTAGE_END and run.recall("outage_ended_at") is None:
            started, ended = run.recall("outage_started_at"), time.time()
            run.remember("outage_ended_at", ended)
            seconds = ended - started if started else None
            self.emit(
                "outage.ended",
                swap_id,
                step=step.name,
                actor=run.actor,
                message="outage ended: the app runs on the new schema",
                seconds=seconds,
            )
        self._finish(run)

    def _finish(self, run: Run) -> bool:
        """The swap is done once every step is, and no blocking item of the ledger is open (a
        check of Heroku Connect's diagnosis of hc2 that failed as an error at verify). Told
        once; True when it was told now."""
        swap_id = run.plan.swap_id
        checkpoints = self.store.checkpoints(swap_id)
        if run.recall(swaprecord.FINISHED) is not None or not all(
            is_done(checkpoints.get(s.name)) for s in runbook.STEPS
        ):
            return False
        blocking = [i.key for i in self.ledger() if i.blocking and not i.done]
        if blocking:
            self.emit(
                "notice",
                swap_id,
                actor=run.actor,
                message="every step is done; the swap ends once these ledger items are marked "
                "done: " + ", ".join(blocking),
            )
            return False
        run.remember(swaprecord.FINISHED, time.time())
        self.emit("swap.done", swap_id, actor=run.actor, message="every step is done")
        return True

    def _failed(
        self,
        run: Run,
        step: runbook.Step,
        message: str,
        *,
        retryable: bool = False,
        resumable: bool = False,
    ) -> Outcome:
        """Every failure answers: the thread and the person who asked hear of it, with what to do
        next, and the checkpoint of an attempt that started says `failed` with the reason (never
        left `running`). A command that failed before its attempt started (a refused order, a
        live check Heroku did not answer) writes no checkpoint: nothing of the step happened."""
        swap_id = run.plan.swap_id
        cp = self._checkpoint_or_none(run, step)
        # A killed attempt's doubt outlives a failure of the attempt that came to look at it.
        resumable = resumable or (not run.attempted and interrupted(cp))
        left_running = cp is not None and cp.status == "running"
        if run.lease is not None and (run.attempted or left_running):
            detail = {"retryable": retryable or resumable, "resumable": resumable}
            try:
                self._write_failure(run.lease, step.name, message, detail)
                self.store.audit(
                    swap_id, run.actor, "step.failed", step=step.name, detail={"error": message}
                )
            except Exception:
                log.exception("could not record a failed step")
        state = "in doubt: its next attempt looks first" if resumable else "failed"
        self.emit(
            "step.failed",
            swap_id,
            step=step.name,
            actor=run.actor,
            message=message,
            retryable=retryable or resumable,
            state=state,
        )
        return Outcome(
            step.name, "failed", message, data={"retryable": retryable or resumable, "state": state}
        )

    def _checkpoint_or_none(self, run: Run, step: runbook.Step) -> Checkpoint | None:
        if run.lease is None:
            return None
        try:
            return self.store.checkpoints(run.plan.swap_id).get(step.name)
        except redis.RedisError:
            return None

    def _write_failure(self, lease: Lease, step: str, message: str, detail: dict[str, Any]) -> None:
        try:
            self.record.checkpoint(lease, step, status="failed", error=message, detail=detail)
        except LeaseLost:
            # The lease lapsed (this runner was stalled). If nobody took the swap over, say what
            # happened under a fresh lease; if someone did, the state is theirs to write.
            fresh = self._acquire(lease.swap_id or "")
            if fresh is None:
                raise
            try:
                self.record.checkpoint(fresh, step, status="failed", error=message, detail=detail)
            finally:
                self.store.release(fresh)

    # -- rollback and approvals (swap/rollback.py, swap/gate.py) ---------------------------------
    def rollback(self, actor: str, *, dry_run: bool = False, remove_addon: bool = False) -> Outcome:
        """Undo, in reverse, every step done so far, up to the point of no return. hc2 and its
        synced copy stay (the cutover can be tried again at once) unless `remove_addon`: then
        hc2 and its schema go too, and the swap starts again from preflight."""
        return rollback.rollback(self, actor, dry_run=dry_run, remove_addon=remove_addon)

    def request_approval(self, step_name: str, actor: str, note: str = "") -> Outcome:
        return gate.request_approval(self, step_name, actor, note)

    def approve(self, request_id: str, actor: str, *, at: float | None = None) -> Outcome:
        """`actor` approves a request; `at` is when they did (a Slack reaction's event time)."""
        return gate.approve(self, request_id, actor, at=at)

    def deny(self, request_id: str, actor: str) -> Outcome:
        """`actor` (an approver, not the requester) denies a pending request: it can no longer
        be approved, and the step stays unapproved until someone asks again."""
        return gate.deny(self, request_id, actor)

    # -- things only a person can confirm ---------------------------------------------------
    CONFIRMABLE = runbook.CONFIRMABLE

    def confirm(self, what: str, actor: str) -> Outcome:
        plan = self.current_plan()
        if plan is None:
            return Outcome("confirm", "refused", "there is no plan yet")
        if what not in self.CONFIRMABLE:
            return Outcome(
                "confirm", "refused", f"what can be confirmed: {', '.join(self.CONFIRMABLE)}"
            )
        try:
            self.record.confirm(plan.swap_id, what, actor)
        except JournalError as exc:
            return Outcome("confirm", "failed", f"{exc}; not confirmed: try again")
        self.emit(
            "notice", plan.swap_id, step=what, actor=actor, message=f"{actor} confirmed {what}"
        )
        return Outcome("confirm", "done", f"{what} confirmed by {actor}")

    # -- the outage, predicted ---------------------------------------------------------------
    def predict(self) -> Prediction | None:
        from swapbot.swap import predict

        plan = self.current_plan()
        if plan is None:
            return None
        prediction = predict.predict(self, plan, self.live_factory(plan, self.emitter, True))
        return prediction

    # -- after the point of no return ------------------------------------------------------------
    def ledger(self) -> list[Item]:
        """What remains for people once delete-old is done (empty before)."""
        from swapbot.swap import ledger

        plan = self.current_plan()
        if plan is None:
            return []
        if not self.store.get_record(plan.swap_id, swaprecord.POINT_OF_NO_RETURN):
            return []
        found = ledger.items(self, plan, self.live_factory(plan, self.emitter, True))
        return found + self._retired_items(plan)

    def _retired_items(self, plan: Plan) -> list[Item]:
        """What delete-old retired from the old schema, each with the SQL that recreates it."""
        owner = plan.created_by or plan.authorizer or "the operator"
        out = []
        for r in self.store.get_record(plan.swap_id, "retired") or []:
            key = f"retired:{r['schema']}.{r['name']}"
            confirmed = self.store.confirmation(plan.swap_id, f"ledger:{key}")
            out.append(
                Item(
                    key=key,
                    what=f"{r['identity']} was dropped before delete-old; {r['copy']} serves in "
                    "its place. If something still needs the old name, recreate it against "
                    f"{plan.new_schema}, or as it was: " + "; ".join(r["create"]),
                    owner=owner,
                    done_by=confirmed["by"] if confirmed else None,
                )
            )
        return out

    def ledger_done(self, key: str, actor: str) -> Outcome:
        plan = self.current_plan()
        if plan is None:
            return Outcome("ledger", "refused", "there is no plan yet")
        keys = [item.key for item in self.ledger()]
        if key not in keys:
            listed = ", ".join(keys) or "nothing"
            return Outcome("ledger", "refused", f"no ledger item {key!r}; open items: {listed}")
        try:
            self.record.confirm(plan.swap_id, f"ledger:{key}", actor)
        except JournalError as exc:
            return Outcome("ledger", "failed", f"{exc}; not marked done: try again")
        self.emit("notice", plan.swap_id, actor=actor, message=f"{actor} marked {key} done")
        if any(item.key == key and item.blocking for item in self.ledger()):
            self._finish_after_ledger(plan, actor)
        return Outcome("ledger", "done", f"{key} marked done by {actor}")

    def _finish_after_ledger(self, plan: Plan, actor: str) -> None:
        """A blocking item marked done may be the last thing the swap waited for."""
        try:
            lease = self.take_lease(plan.swap_id)
        except StepStopped as exc:  # a runner holds it: its own last step will tell
            log.info("the swap's end is left to its runner: %s", exc)
            return
        try:
            live = self.live_factory(plan, self.emitter, False)
            self._finish(self.new_run(plan, live, lease, actor, "ledger"))
        finally:
            self.release(lease)

    def next(self, actor: str, *, dry_run: bool = False, wait: bool = True) -> Outcome:
        """Run the next step that is not done. Stops at the end of prep: the cutover needs its own command."""
        plan = self.current_plan()
        if plan is None:
            return Outcome("next", "refused", "there is no plan yet: create one with `plan new`")
        checkpoints = self.store.checkpoints(plan.swap_id)
        for step in runbook.STEPS:
            cp = checkpoints.get(step.name)
            if cp is not None and cp.status in ("done", "skipped"):
                continue
            if step.phase != "prep":
                return Outcome(
                    "next",
                    "refused",
                    "prep is done; the cutover starts only with `stop-writes APP`",
                )
            return self.run_step(step.name, actor, dry_run=dry_run, wait=wait)
        return Outcome("next", "done", "every step is done")
