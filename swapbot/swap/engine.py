"""The engine: runs any step the same way, and owns locking, checkpoints, waiting, audit and events.

    run_step(name):  take the swap's lease (one runner acts) -> steps before it must be done
                     -> approval if the step needs one -> check the live system: done? skip
                     -> (interrupted unsafe attempt? wait until it must have finished, check again)
                     -> act -> wait until the check passes -> checkpoint, audit, event

Front ends (the terminal, Slack via the worker) call these methods and render the events.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from swapbot.heroku import HerokuError, RateLimited, ServerError, TransportError
from swapbot.swap import steps as runbook
from swapbot.swap.approvals import Approvals
from swapbot.swap.events import Emitter, Event
from swapbot.swap.live import Live
from swapbot.swap.plan import Plan
from swapbot.swap.store import Lease, Store

log = logging.getLogger(__name__)

# After an interrupted attempt of a step that is not safe to repeat, the request may still be in
# flight at Heroku: look at the live system only once it must have finished.
IN_FLIGHT_GRACE = 35.0

# Test seam, never set in production: SWAPBOT_KILL_AT="<step>:<point>" makes this process SIGKILL
# itself at that point of that step, so a test can stop a runner at an exact moment and resume it
# with a fresh process (tests/test_swap_kill_matrix.py). The points:
#   before     the checkpoint says running; nothing of this attempt is done yet
#   after-act  the step's calls and SQL are made; nothing checked or checkpointed since
#   waiting    acted, and the live system did not show the step done on the first look
#   after      checkpointed done; audit entry and event not yet written
KILL_AT_ENV = "SWAPBOT_KILL_AT"
KILL_POINTS = ("before", "after-act", "waiting", "after")


def _kill_point(step: str, point: str) -> None:
    if os.environ.get(KILL_AT_ENV) == f"{step}:{point}":
        os.kill(os.getpid(), signal.SIGKILL)


def _calls(events: list[Event]) -> list[str]:
    """Each change a step made (or would make), followed by the SQL statements it runs."""
    out: list[str] = []
    for e in events:
        if e.kind == "call":
            out.append(e.message)
            out.extend(f"    {statement}" for statement in e.data.get("sql", []))
    return out


def _is_done(cp: Any) -> bool:
    return cp is not None and cp.status in ("done", "skipped")


class StepStopped(Exception):
    """The step cannot go on; the message says why and what a person should do."""


@dataclass
class Outcome:
    step: str
    status: str  # done | skipped | waiting | failed | refused | dry-run
    message: str
    calls: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("done", "skipped", "dry-run")


class Run:
    """What a step sees while it runs: the plan, the live system, the swap's records, people."""

    def __init__(
        self, engine: Engine, plan: Plan, live: Live, lease: Lease | None, actor: str, step: str
    ):
        self.engine, self.plan, self.live, self.lease, self.actor, self.step = (
            engine,
            plan,
            live,
            lease,
            actor,
            step,
        )

    def remember(self, key: str, value: Any) -> None:
        if self.live.dry_run:
            return
        self.engine.store.put_record(self.lease, key, value)

    def recall(self, key: str) -> Any:
        return self.engine.store.get_record(self.plan.swap_id, key)

    def confirmed(self, what: str) -> bool:
        return self.engine.store.confirmation(self.plan.swap_id, what) is not None

    def ask(self, message: str, *, link: str | None = None, person: str | None = None) -> None:
        """Ask a person to do something only a person can; the engine then waits for the result."""
        data = {"person": person}
        if link:
            data["link"] = link
        self.engine.emit(
            "step.waiting",
            self.plan.swap_id,
            step=self.step,
            actor=self.actor,
            message=message,
            **data,
        )

    def stop(self, message: str) -> StepStopped:
        return StepStopped(message)

    def mark_outage_start(self) -> None:
        """The outage clock starts at stop-writes (kept across restarts: the first mark wins)."""
        if self.recall("outage_started_at") is None and not self.live.dry_run:
            self.remember("outage_started_at", time.time())
            self.engine.emit(
                "outage.started",
                self.plan.swap_id,
                step=self.step,
                actor=self.actor,
                message="outage started",
            )


class Engine:
    def __init__(
        self,
        store: Store,
        live_factory: Callable[[Plan, Emitter, bool], Live],
        *,
        emitter: Emitter | None = None,
        runner: str | None = None,
        lease_ttl: float = 60.0,
        poll_interval: float = 2.0,
        in_flight_grace: float = IN_FLIGHT_GRACE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        approvers: set[str] | None = None,
        approval_ttl: float = 900.0,
        timeout_scale: float = 1.0,
        clients: tuple[Any, Any] | None = None,
    ):
        self.store = store
        self.approvers = set(approvers or ())
        self.approvals = Approvals(store, ttl_s=approval_ttl)
        # Step timeouts are in real seconds; rehearsals against a fast sandbox scale them down.
        self.timeout_scale = timeout_scale
        self.clients = clients  # (ConnectClient, PlatformClient), for status without a plan
        self.live_factory = live_factory
        self.emitter = emitter or Emitter()
        self.runner = runner or f"{socket.gethostname()}:{uuid.uuid4().hex[:6]}"
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.in_flight_grace = in_flight_grace
        self.clock = clock
        self.sleep = sleep

    # -- events and audit -----------------------------------------------------------------
    def emit(
        self,
        kind: str,
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
        if swap_id is None:
            return None
        raw = self.store.get_plan(swap_id)
        return Plan.model_validate(raw) if raw else None

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

    def save_plan(self, plan: Plan, actor: str, *, check: bool = True) -> Plan:
        problems = self.check_plan(plan) if check else []
        if problems:
            raise StepStopped("the plan does not match the live system: " + "; ".join(problems))
        lease = self._lease(plan.swap_id)
        try:
            started = [
                name
                for name, cp in self.store.checkpoints(plan.swap_id).items()
                if cp.status != "pending"
            ]
            if started:
                raise StepStopped(
                    f"the swap has started ({', '.join(started)}); a running plan cannot change"
                )
            self.store.set_plan(lease, plan.model_dump(mode="json"), current=True)
            self.store.audit(
                plan.swap_id, actor, "plan.saved", detail={"fingerprint": plan.fingerprint()}
            )
        finally:
            self.store.release(lease)
        return plan

    # -- running steps --------------------------------------------------------------------
    def _lease(self, swap_id: str) -> Lease:
        lease = self.store.acquire(swap_id, self.runner, int(self.lease_ttl * 1000))
        if lease is None:
            holder = self.store.holder(swap_id)
            who = f"{holder.runner} since {holder.since}" if holder else "another runner"
            raise StepStopped(f"swap {swap_id} is being run by {who}; try again when it is done")
        return lease

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
        done = self.store.checkpoints(plan.swap_id)
        if step.phase == "prep" or not step.point_of_no_return:
            past = [
                s.name for s in runbook.STEPS if s.point_of_no_return and _is_done(done.get(s.name))
            ]
            if past and runbook.STEPS.index(step) < runbook.STEPS.index(runbook.get(past[0])):
                return Outcome(
                    name, "refused", f"{past[0]} is done: steps before it cannot run again"
                )
        settled = self._settled(step, done)
        if settled:
            return Outcome(name, "skipped", settled)
        live = self.live_factory(plan, self.emitter, dry_run)
        try:
            lease = None if dry_run else self._lease(plan.swap_id)
        except StepStopped as exc:
            return Outcome(name, "refused", str(exc))
        run = Run(self, plan, live, lease, actor, name)
        run.break_glass = break_glass
        try:
            blocked = self._blocked_by(run, step)
            if blocked:
                return Outcome(name, "refused", blocked)
            return self._run(run, step, dry_run=dry_run, wait=wait)
        except StepStopped as exc:
            return self._failed(run, step, str(exc))
        except (ServerError, RateLimited, TransportError, psycopg.OperationalError) as exc:
            # Heroku or the database did not answer: whether the change landed is unknown. The
            # checkpoint stays as it was ("running" once acting began), so the next attempt looks
            # at the live system before doing anything again.
            message = f"{type(exc).__name__}: {exc}; run the step again: it checks first"
            self.emit("step.waiting", plan.swap_id, step=name, actor=actor, message=message)
            return Outcome(name, "waiting", message)
        except (HerokuError, psycopg.Error) as exc:
            return self._failed(run, step, f"{type(exc).__name__}: {exc}")
        finally:
            if lease is not None:
                self.store.release(lease)

    @staticmethod
    def _settled(step: runbook.Step, checkpoints: dict[str, Any]) -> str | None:
        """A done step that a later step has gone past is not looked at again.

        Its live check no longer holds once the swap moves on (drain wants hc1 IDLE, pause wants
        both connections PAUSED until resume-new), and acting on that would repeat it: a runner
        resumed after resume-new would pause hc2 again. Rollback marks steps undone, which
        lets them run again.
        """
        cp = checkpoints.get(step.name)
        if not _is_done(cp):
            return None
        later = runbook.STEPS[runbook.STEPS.index(step) + 1 :]
        moved_on = [
            s.name
            for s in later
            if (c := checkpoints.get(s.name)) is not None and c.status not in ("pending", "undone")
        ]
        if not moved_on:
            return None
        return f"already done; {moved_on[-1]} has started since, so it is not run again"

    def _blocked_by(self, run: Run, step: runbook.Step) -> str | None:
        """Steps run in order: every earlier step must be done (on the live system, if Redis forgot)."""
        checkpoints = self.store.checkpoints(run.plan.swap_id)
        before = runbook.STEPS[: runbook.STEPS.index(step)]
        for i, earlier in enumerate(before):
            cp = checkpoints.get(earlier.name)
            if cp is not None and cp.status in ("done", "skipped"):
                continue
            seen = earlier.check(Run(self, run.plan, run.live, run.lease, run.actor, earlier.name))
            if not seen:
                # Its proof is gone (a record Redis lost) or has moved on (loads drift while hc2
                # is paused): a later step proven done on the live system implies it.
                later = self._later_proven(run, before[i + 1 :])
                if later:
                    seen = runbook.Check(True, f"implied: {later} is done on the live system")
            if not seen:
                return f"{earlier.name} is not done yet ({seen.seen}); run it first"
            if run.lease is not None:
                detail = {"seen": seen.seen, "rebuilt": True}
                self.store.checkpoint(run.lease, earlier.name, status="done", detail=detail)
                self.store.audit(
                    run.plan.swap_id, run.actor, "step.rebuilt", step=earlier.name, detail=detail
                )
        return None

    def _later_proven(self, run: Run, later: tuple[runbook.Step, ...]) -> str | None:
        """A later step proven done on the live system: steps run in order, so it implies this one."""
        for step in reversed(later):
            if step.proof == "live" and step.check(
                Run(self, run.plan, run.live, run.lease, run.actor, step.name)
            ):
                return step.name
        return None

    def _run(self, run: Run, step: runbook.Step, *, dry_run: bool, wait: bool) -> Outcome:
        swap_id = run.plan.swap_id
        seen = step.check(run)
        if seen:
            if not dry_run:
                self.store.checkpoint(
                    run.lease, step.name, status="done", detail={"seen": seen.seen, "already": True}
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
            calls = _calls(events)
            return Outcome(step.name, "dry-run", f"would make {len(calls)} change(s)", calls=calls)

        previous = self.store.checkpoints(swap_id).get(step.name)
        if step.approval and not self._resumes_approved(run, step, previous):
            refused = self._take_approval(run, step)
            if refused:
                return Outcome(step.name, "refused", refused)
        if step.unsafe and previous is not None and previous.status == "running":
            # An earlier runner was interrupted mid-act: the call may have reached Heroku.
            self._wait_in_flight(run, previous)
            seen = step.check(run)
            if seen or self._in_progress(run, step):
                return self._wait_and_finish(
                    run, step, started=self.clock(), acted=False, wait=wait
                )
        started = self.clock()
        attempt = (previous.attempt if previous else 0) + 1
        self.store.checkpoint(
            run.lease, step.name, status="running", attempt=attempt, runner=self.runner
        )
        self.store.audit(
            swap_id, run.actor, "step.started", step=step.name, detail={"attempt": attempt}
        )
        self.emit("step.started", swap_id, step=step.name, actor=run.actor, message=step.summary)
        _kill_point(step.name, "before")
        if step.act is not None:
            step.act(run)
        _kill_point(step.name, "after-act")
        return self._wait_and_finish(run, step, started=started, acted=True, wait=wait)

    def _in_progress(self, run: Run, step: runbook.Step) -> bool:
        """An unsafe step whose change has landed but whose result is still coming (e.g. a load)."""
        return (
            step.name in ("create-addon", "import")
            and not step.check(run)
            and self._landed(run, step)
        )

    def _landed(self, run: Run, step: runbook.Step) -> bool:
        if step.name == "create-addon":
            return any(
                a.name == run.plan.new_addon for a in run.live.platform.list_addons(run.plan.app)
            )
        if step.name == "import":
            c = run.live.new()
            return bool(c and (c.state == "IMPORT_CONFIGURATION" or c.mappings))
        return False

    def _wait_in_flight(self, run: Run, previous: Any) -> None:
        age = time.time() - (previous.started_epoch or 0)
        if age < self.in_flight_grace:
            self.sleep(self.in_flight_grace - age)

    def _wait_and_finish(
        self, run: Run, step: runbook.Step, *, started: float, acted: bool, wait: bool
    ) -> Outcome:
        swap_id = run.plan.swap_id
        deadline = started + step.timeout * self.timeout_scale
        acted_at = self.clock()  # from here on the step waits on Heroku, dynos or people
        seen = step.check(run)
        looped = False
        while not seen:
            looped = True
            if not wait or self.clock() >= deadline:
                self.store.checkpoint(
                    run.lease, step.name, status="waiting", detail={"seen": seen.seen}
                )
                self.emit(
                    "step.waiting", swap_id, step=step.name, message=seen.seen, **(seen.data or {})
                )
                return Outcome(step.name, "waiting", seen.seen, data=seen.data or {})
            _kill_point(step.name, "waiting")
            self.sleep(self.poll_interval)
            if not self.store.renew(run.lease, int(self.lease_ttl * 1000)):
                raise StepStopped("this runner lost the swap's lease; another runner continues")
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
        self.store.checkpoint(run.lease, step.name, status="done", detail=detail)
        _kill_point(step.name, "after")
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
        checkpoints = self.store.checkpoints(swap_id)
        if run.recall("swap_done_at") is None and all(
            _is_done(checkpoints.get(s.name)) for s in runbook.STEPS
        ):
            run.remember("swap_done_at", time.time())
            self.emit("swap.done", swap_id, actor=run.actor, message="every step is done")

    def _failed(self, run: Run, step: runbook.Step, message: str) -> Outcome:
        swap_id = run.plan.swap_id
        if run.lease is not None:
            try:
                self.store.checkpoint(run.lease, step.name, status="failed", error=message)
                self.store.audit(
                    swap_id, run.actor, "step.failed", step=step.name, detail={"error": message}
                )
            except Exception:
                log.exception("could not record a failed step")
        self.emit("step.failed", swap_id, step=step.name, actor=run.actor, message=message)
        return Outcome(step.name, "failed", message)

    # -- rollback ----------------------------------------------------------------------------
    def rollback(self, actor: str, *, dry_run: bool = False, remove_addon: bool = False) -> Outcome:
        """Undo, in reverse, every step done so far, up to the point of no return. hc2 and its
        synced copy stay (the cutover can be tried again at once) unless `remove_addon`: then
        hc2 and its schema go too, and the swap starts again from preflight."""
        plan = self.current_plan()
        if plan is None:
            return Outcome("rollback", "refused", "there is no plan yet")
        done = self.store.checkpoints(plan.swap_id)
        ponr = [s for s in runbook.STEPS if s.point_of_no_return and _is_done(done.get(s.name))]
        if ponr:
            return Outcome(
                "rollback",
                "refused",
                f"{ponr[0].name} is done: the old mappings are gone, so there is no automatic way back. "
                f"By hand: re-import the stored export of {plan.old_addon} (record `export`) into "
                f"{plan.old_addon}, let it load, and switch the search_path back with "
                "`swapbot db search-path restore` from the stored record.",
            )
        live = self.live_factory(plan, self.emitter, dry_run)
        try:
            lease = None if dry_run else self._lease(plan.swap_id)
        except StepStopped as exc:
            return Outcome("rollback", "refused", str(exc))
        calls: list[str] = []
        try:
            self.emit(
                "rollback.started",
                plan.swap_id,
                actor=actor,
                message=f"{actor} rolls the swap back",
                dry_run=dry_run,
            )
            self.store.audit(plan.swap_id, actor, "rollback.started") if not dry_run else None
            with self.emitter.capture() as events:
                for step in reversed(runbook.STEPS):
                    cp = done.get(step.name)
                    if step.undo is None or cp is None or cp.status == "pending":
                        continue
                    if step.undo_removes_hc2 and not remove_addon:
                        continue
                    # An undone step is skipped, except hc2's removal: it may have stopped
                    # half-way, and it checks the live system before each change.
                    if cp.status == "undone" and not step.undo_removes_hc2:
                        continue
                    run = Run(self, plan, live, lease, actor, step.name)
                    step.undo(run)
                    if not dry_run:
                        self.store.checkpoint(lease, step.name, status="undone")
                        self.store.audit(plan.swap_id, actor, "step.undone", step=step.name)
                    self.emit(
                        "step.undone",
                        plan.swap_id,
                        step=step.name,
                        actor=actor,
                        message=step.summary,
                        dry_run=dry_run,
                    )
            calls = _calls(events)
            if dry_run:
                return Outcome(
                    "rollback", "dry-run", f"would make {len(calls)} change(s)", calls=calls
                )
            # Steps without an undo are reset so the swap can be run again: the cutover's
            # always; prep's only with hc2 gone (else they still hold: hc2 stays, synced).
            for step in runbook.STEPS:
                reset = step.phase == "cutover" or remove_addon
                if reset and step.undo is None and _is_done(done.get(step.name)):
                    self.store.checkpoint(lease, step.name, status="undone")
            if remove_addon:
                self._forget_prep(lease)
            self.store.audit(
                plan.swap_id,
                actor,
                "rollback.done",
                detail={"calls": calls, "remove_addon": remove_addon},
            )
            self.emit(
                "rollback.done", plan.swap_id, actor=actor, message="rolled back", calls=calls
            )
            kept = (
                ""
                if remove_addon
                else f"; {plan.new_addon} and {plan.new_schema} are kept (synced, ready for "
                "another cutover): `rollback --remove-addon` removes them too"
            )
            return Outcome(
                "rollback", "done", f"rolled back with {len(calls)} change(s){kept}", calls=calls
            )
        except (StepStopped, HerokuError, psycopg.Error) as exc:
            self.emit("step.failed", plan.swap_id, step="rollback", actor=actor, message=str(exc))
            return Outcome("rollback", "failed", str(exc), calls=calls)
        finally:
            if lease is not None:
                self.store.release(lease)

    def _forget_prep(self, lease: Lease) -> None:
        """With hc2 gone, what prep found and people confirmed no longer holds: the next run
        starts from preflight and asks again. (The audit trail keeps all of it.)"""
        with self.store.transition(lease) as tx:
            tx.clear_records()
            tx.clear_confirmations()

    # -- approvals -------------------------------------------------------------------------
    def live_facts(self, live: Live) -> dict[str, Any]:
        """What the plan rests on: connection ids and the moved mappings' config revisions."""
        old = live.old()
        new = live.new()
        return {
            "old": old.id,
            "new": new.id if new else None,
            "old_revisions": {
                o: (m.config.revision if m and m.config else None)
                for o in live.plan.objects
                for m in [old.mapping(o)]
            },
        }

    def live_digest(self, live: Live) -> str:
        """The live state an approval is bound to: hc2's moved mappings and their revisions."""
        import hashlib
        import json

        new = live.new()
        facts = sorted(
            (m.object_name or "", m.id, m.config.revision if m.config else None)
            for m in (new.mappings if new else [])
            if m.object_name in live.plan.mappings
        )
        return hashlib.sha256(json.dumps(facts, default=str).encode()).hexdigest()[:12]

    def _conditions(self, plan: Plan) -> tuple[str, str]:
        live = self.live_factory(plan, self.emitter, True)
        return plan.fingerprint(self.live_facts(live)), self.live_digest(live)

    def request_approval(self, step_name: str, actor: str, note: str = "") -> Outcome:
        plan = self.current_plan()
        if plan is None:
            return Outcome(step_name, "refused", "there is no plan yet")
        step = runbook.BY_NAME.get(step_name)
        if step is None or not step.approval:
            needing = ", ".join(s.name for s in runbook.STEPS if s.approval)
            return Outcome(step_name, "refused", f"only these steps need an approval: {needing}")
        fingerprint, digest = self._conditions(plan)
        req = self.approvals.request(plan.swap_id, step_name, actor, fingerprint, digest, note=note)
        self.emit(
            "approval.requested",
            plan.swap_id,
            step=step_name,
            actor=actor,
            message=f"{actor} asks a second person to approve {step_name}",
            request_id=req.id,
            fingerprint=fingerprint,
            expires_at=req.expires_at,
        )
        return Outcome(
            step_name, "done", f"approval {req.id} requested", data={"request_id": req.id}
        )

    def approve(self, request_id: str, actor: str, *, at: float | None = None) -> Outcome:
        """`actor` approves a request; `at` is when they did (a Slack reaction's event time)."""
        plan = self.current_plan()
        if plan is None:
            return Outcome("approve", "refused", "there is no plan yet")
        fingerprint, digest = self._conditions(plan)
        decision = self.approvals.grant(
            plan.swap_id,
            request_id,
            actor,
            self.approvers,
            fingerprint=fingerprint,
            live_digest=digest,
            at=at,
        )
        step = decision.request.step if decision.request else None
        kind = "approval.granted" if decision.granted else "approval.refused"
        self.emit(
            kind,
            plan.swap_id,
            step=step,
            actor=actor,
            message=decision.reason,
            request_id=request_id,
        )
        return Outcome(
            "approve",
            "done" if decision.granted else "refused",
            decision.reason,
            data={"verdict": decision.verdict.value, "request_id": request_id, "step": step},
        )

    def _resumes_approved(self, run: Run, step: runbook.Step, previous: Any) -> bool:
        """An approval used by an attempt that never finished (its runner died) covers the
        resumed attempt: it is the same single use, so nobody is asked twice for one pause.
        Only under the same plan; a finished or failed attempt ends the approval's use."""
        used = [
            r
            for r in self.approvals.requests(run.plan.swap_id, step.name)
            if r.status == "used" and r.used_epoch is not None
        ]
        if not used:
            return False
        last = used[-1]
        # Spent if an attempt finished (done, failed, undone) after it was used.
        spent = previous is not None and (
            previous.status == "pending"
            or (previous.status != "running" and (previous.finished_epoch or 0) >= last.used_epoch)
        )
        if spent:
            return False
        plan_now = run.plan.fingerprint(self.live_facts(run.live))
        if last.fingerprint != plan_now:
            return False
        self.store.audit(
            run.plan.swap_id,
            run.actor,
            "approval.resumed",
            step=step.name,
            detail={"request": last.id, "approver": last.approver},
        )
        self.emit(
            "notice",
            run.plan.swap_id,
            step=step.name,
            actor=run.actor,
            message=f"{step.name} resumes under {last.approver}'s approval {last.id}, "
            "used by the attempt that was interrupted",
        )
        return True

    def _take_approval(self, run: Run, step: runbook.Step) -> str | None:
        plan = run.plan
        if run.break_glass:
            self.store.audit(
                plan.swap_id,
                run.actor,
                "break-glass",
                step=step.name,
                detail={"reason": run.break_glass},
            )
            self.emit(
                "notice",
                plan.swap_id,
                step=step.name,
                actor=run.actor,
                message=f"BREAK GLASS: {run.actor} runs {step.name} without a second person: {run.break_glass}",
            )
            return None
        fingerprint = plan.fingerprint(self.live_facts(run.live))
        digest = self.live_digest(run.live)
        taken = self.approvals.consume(
            plan.swap_id, step.name, fingerprint=fingerprint, live_digest=digest, actor=run.actor
        )
        if taken is None:
            return self.approvals.why_not(
                plan.swap_id, step.name, fingerprint=fingerprint, live_digest=digest
            )
        return None

    # -- things only a person can confirm ---------------------------------------------------
    CONFIRMABLE = ("settings", "objects", "external-objects")

    def confirm(self, what: str, actor: str) -> Outcome:
        plan = self.current_plan()
        if plan is None:
            return Outcome("confirm", "refused", "there is no plan yet")
        if what not in self.CONFIRMABLE:
            return Outcome(
                "confirm", "refused", f"what can be confirmed: {', '.join(self.CONFIRMABLE)}"
            )
        self.store.confirm(plan.swap_id, what, actor)
        self.emit(
            "notice", plan.swap_id, step=what, actor=actor, message=f"{actor} confirmed {what}"
        )
        return Outcome("confirm", "done", f"{what} confirmed by {actor}")

    # -- the outage, predicted ---------------------------------------------------------------
    def predict(self) -> Any:
        from swapbot.swap import predict

        plan = self.current_plan()
        if plan is None:
            return None
        prediction = predict.predict(self, plan, self.live_factory(plan, self.emitter, True))
        return prediction

    # -- after the point of no return ------------------------------------------------------------
    def ledger(self) -> list[Any]:
        """What remains for people once delete-old is done (empty before)."""
        from swapbot.swap import ledger

        plan = self.current_plan()
        if plan is None:
            return []
        done = self.store.checkpoints(plan.swap_id)
        if not any(s.point_of_no_return and _is_done(done.get(s.name)) for s in runbook.STEPS):
            return []
        found = ledger.items(self, plan, self.live_factory(plan, self.emitter, True))
        return found + self._retired_items(plan)

    def _retired_items(self, plan: Plan) -> list[Any]:
        """What delete-old retired from the old schema, each with the SQL that recreates it."""
        from swapbot.swap.ledger import Item

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
        self.store.confirm(plan.swap_id, f"ledger:{key}", actor)
        self.emit("notice", plan.swap_id, actor=actor, message=f"{actor} marked {key} done")
        return Outcome("ledger", "done", f"{key} marked done by {actor}")

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
