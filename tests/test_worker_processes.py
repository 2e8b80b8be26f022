"""`swapbot worker` as real processes, stopped the ways Heroku and people stop it: no process of
it outlives it, and a step it was running lets go of the swap's lease at once (SIGTERM, or a
kill -9 of its main process), or within 15 s when the whole group is killed with -9.

Each test starts a worker, hands it `authorize` (which waits for a person to open a link, so the
step is still running in the worker's `steps` child when the test stops it), and stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rq.job import Job

from swapbot import config, jobs
from swapbot.swap.store import LockInfo, Store
from swapbot.testing.rehearsal import LocalSlack
from swapbot.testing.services import wait_until
from swapbot.testing.slack_stack import CHANNEL, OPERATOR, stack_environment, standin
from swapbot.testing.swaps import demo_plan, make_engine

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow

SWAP = "acme-test"  # demo_plan's swap
TAKE_OVER = 15.0  # seconds: after a kill -9, another worker runs the swap's steps within this


# -- processes, as /proc shows them -------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state first, then ppid), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """Running, not a zombie: an orphan's corpse waits for a PID 1 that may never reap it."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def none_alive(pids: set[int]) -> bool:
    return not any(alive(pid) for pid in pids)


def started(pid: int) -> str | None:
    """When the process started (clock ticks after boot): a pid with another is another process."""
    stat = _stat(pid)
    return stat[19] if stat else None


def descendants(pid: int) -> set[int]:
    """Every process below `pid`: the `steps` child and, if there is one, rq's work-horse."""
    parents = {}
    for entry in os.listdir("/proc"):
        stat = _stat(int(entry)) if entry.isdigit() else None
        if stat is not None:
            parents[int(entry)] = int(stat[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


# -- a swap waiting at authorize, and workers to run it -------------------------------------------
@dataclass
class Stack:
    local: LocalSlack
    store: Store
    settings: config.Settings
    seen: dict[int, str | None] = field(default_factory=dict)  # pid -> started, to clean up

    def start_worker(self, name: str = "worker", *, wait: bool = True) -> subprocess.Popen:
        """`swapbot worker` in a process group of its own (LocalSlack's start_new_session),
        with `wait` once both its rq workers wait for jobs (their signal handlers in place)."""
        self.local.start_worker(name)
        proc = self.local.processes[name]
        if wait:
            wait_until(lambda: self.ready(proc), timeout=30, what=f"{name} to start")
        return proc

    def ready(self, proc: subprocess.Popen) -> bool:
        """rq has the worker's `steps` and `interactive` workers waiting for jobs."""
        ours = {str(pid).encode() for pid in {proc.pid} | descendants(proc.pid)}
        for kind in (jobs.STEPS, jobs.INTERACTIVE):
            keys = self.store.redis.smembers(self.registered(kind))
            states = [self.store.redis.hmget(key, "pid", "state") for key in keys]
            if not any(pid in ours and state == b"idle" for pid, state in states):
                return False
        return True

    def registered(self, kind: str) -> str:
        """rq's set of the workers that listen on our `kind` queue."""
        return f"rq:workers:{self.settings.swapbot_redis_prefix}{kind}"

    def ask(self, text: str) -> Job:
        """`/hcswap text` as the worker gets it: a `steps` job answering OPERATOR in CHANNEL."""
        q = jobs.queue(self.settings, self.store.redis, jobs.STEPS)
        func = "swapbot.slack.work.run_command"
        return jobs.submit(q, self.settings, func, text, OPERATOR, CHANNEL, None)

    def step_running(self, step: str, *, not_by: str | None = None, timeout=30.0) -> LockInfo:
        """The swap's lease, once a runner other than `not_by` holds it and runs `step`."""

        def running() -> LockInfo | None:
            holder = self.store.holder(SWAP)
            cp = self.store.get_checkpoint(SWAP, step)
            if holder is None or holder.runner == not_by or cp is None:
                return None
            return holder if cp.status == "running" and cp.runner == holder.runner else None

        return wait_until(running, timeout=timeout, what=f"{step} running in a worker")

    def processes(self, proc: subprocess.Popen) -> set[int]:
        """The worker's processes below its main one, remembered for the clean-up."""
        found = descendants(proc.pid)
        self.seen |= {pid: started(pid) for pid in found}
        return found

    def kill_leftovers(self) -> None:
        """Whatever the code under test left running (orphans, rq's work-horse)."""
        for pid, when in self.seen.items():
            if when is not None and started(pid) == when and alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def stack(sandbox, db_url, db_name, redis_prefix, tmp_path) -> Iterator[Stack]:
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    for step in ("preflight", "create-addon", "configure"):
        outcome = engine.run_step(step, OPERATOR)
        assert outcome.ok, outcome
    slack = standin()
    env = stack_environment(sandbox, db_url, redis_prefix, slack)
    local = LocalSlack(env, slack, tmp_path / "logs")
    found = Stack(local, engine.store, config.load_settings(env))
    try:
        yield found
    finally:
        local.stop()
        found.kill_leftovers()
        slack.stop()


def test_a_worker_killed_with_minus_9_leaves_no_process_and_lets_go_of_the_swap(stack):
    """The main process is killed; its `steps` child gets SIGTERM from Linux (the parent-death
    signal), interrupts the step, which lets go of the lease, and exits."""
    worker = stack.start_worker()
    stack.ask("authorize")
    first = stack.step_running("authorize")
    below = stack.processes(worker)
    assert below, "the steps child"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=5)
    wait_until(lambda: none_alive(below), timeout=5, what="the worker's children to end")
    wait_until(lambda: stack.store.holder(SWAP) is None, timeout=3, what="the lease let go")
    # So the next worker runs the next command at once.
    stack.start_worker("next-worker")
    stack.ask("authorize")
    stack.step_running("authorize", not_by=first.runner, timeout=10)


def test_a_worker_group_killed_with_minus_9_leaves_no_process_and_another_takes_over(stack):
    """Nothing of the worker may escape its process group (rq's work-horse has its own), and
    the dead runner's lease lapses soon enough for another worker within 15 s."""
    worker = stack.start_worker()
    stack.ask("authorize")
    first = stack.step_running("authorize")
    below = stack.processes(worker)
    killed = time.monotonic()
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=5)
    wait_until(lambda: none_alive(below), timeout=5, what="every process of the worker gone")
    stack.start_worker("next-worker", wait=False)
    wait_until(
        lambda: stack.store.holder(SWAP) is None, timeout=TAKE_OVER, what="the lease to lapse"
    )
    stack.ask("authorize")
    left = max(0.5, TAKE_OVER - (time.monotonic() - killed))
    stack.step_running("authorize", not_by=first.runner, timeout=left)


@pytest.mark.parametrize("whom", ["group", "main"])
def test_a_stopped_worker_interrupts_its_step_lets_go_at_once_and_answers(stack, whom):
    """SIGTERM to the whole group as Heroku stops a dyno (the child hears it twice: from Heroku
    and from its parent), or to the main process only (the child hears it from its parent)."""
    worker = stack.start_worker()
    job = stack.ask("authorize")
    stack.step_running("authorize")
    below = stack.processes(worker)
    answered = len(stack.local.replies(OPERATOR))
    (os.killpg if whom == "group" else os.kill)(worker.pid, signal.SIGTERM)
    wait_until(lambda: stack.store.holder(SWAP) is None, timeout=2, what="the lease let go")
    assert worker.wait(timeout=10) == 0
    wait_until(lambda: none_alive(below), timeout=5, what="the worker's children to end")
    # The engine records why the step stopped and answers the person who asked.
    assert stack.store.get_checkpoint(SWAP, "authorize").status == "failed"
    assert job.get_status(refresh=True) == "finished", job.latest_result()
    assert job.return_value()["status"] == "failed"
    assert len(stack.local.replies(OPERATOR)) == answered + 1


def test_an_idle_worker_stops_at_once_on_sigterm(stack):
    worker = stack.start_worker()
    below = stack.processes(worker)
    os.killpg(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=5) == 0
    wait_until(lambda: none_alive(below), timeout=2, what="the worker's children to end")
    for kind in (jobs.STEPS, jobs.INTERACTIVE):  # rq was told the workers are gone
        assert not stack.store.redis.scard(stack.registered(kind))


def test_a_worker_whose_steps_child_dies_stops_with_a_failure(stack):
    """Steps run in the `steps` child itself (no work-horse): a crash there (the OOM killer,
    say) ends the child, and the worker stops so that the platform restarts all of it, rather
    than answering `status` while no step runs."""
    worker = stack.start_worker()
    (child,) = stack.processes(worker)
    os.kill(child, signal.SIGKILL)
    assert worker.wait(timeout=10) == 1
    assert not stack.store.redis.scard(stack.registered(jobs.INTERACTIVE))  # it stopped cleanly
