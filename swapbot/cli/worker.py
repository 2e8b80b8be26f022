"""`swapbot worker`: runs queued work (rq), the watcher and, with Slack settings, the notifier.

Two rq workers: this process takes `interactive` jobs (status, plans, approvals, reactions)
and a child process takes `steps` (which may wait for hours), so a long step never delays an
answer. Both run their jobs in their own process (rq's SimpleWorker), never in a forked
work-horse: a fork per job would fork a process that runs threads (unsafe: a lock held by
another thread stays held in the child), costs more CPU than a status takes, and puts the
horse in a process group of its own, where it outlives a kill of the worker's group and keeps
running its step. The watcher and the notifier run as threads here; each leads only while it
holds its lease, so any number of worker dynos can run.

Stopping: the `steps` child ends with this process (Linux sends it SIGTERM when its parent
dies, even by SIGKILL), and a SIGTERM stops a running step at once (`StepsWorker`), so the
step records why it stopped and lets go of the swap's lease for the next worker. The other way
round, a child that ends by itself stops this process with a failure, for a restart.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from rq import SimpleWorker
from rq.exceptions import StopRequested
from rq.worker import WorkerStatus

from swapbot import config, jobs
from swapbot.swap.outcome import Interrupted

log = logging.getLogger(__name__)

# Why a stopped worker's step failed, as the step's checkpoint and the person's answer say.
STOPPED = {
    signal.SIGTERM: "the worker was stopped (SIGTERM: a deploy, a restart or its parent died)",
    signal.SIGINT: "the worker was stopped (SIGINT: Ctrl-C in its terminal)",
}
# How long a stopping worker waits for its `steps` child to record an interrupted step and
# answer, within the 30 s Heroku allows between SIGTERM and SIGKILL.
CHILD_GRACE = 20.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class _SimpleWorker(SimpleWorker):
    """rq's SimpleWorker, whose stop takes a second at most.

    rq's pubsub thread (its command channel) waits for messages 60 s at a time; when its
    unsubscribe reply lands before the stop flag is set, it waits a full 60 s more and rq's
    teardown waits for it (rq 3, redis-py 8). Checking every second bounds that; the wait is a
    local poll, no command to Redis.
    """

    def subscribe(self) -> None:
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=1.0, daemon=True, exception_handler=self._pubsub_exception_handler
        )


class StepsWorker(_SimpleWorker):
    """The `steps` worker: SIGTERM stops the running job now rather than after it.

    rq answers SIGTERM with a warm shutdown: the job runs on and the worker stops after it. A
    step may wait hours for a person or a load, Heroku SIGKILLs 30 s after its SIGTERM, and
    the swap's lease then stays held until it expires. Here a SIGTERM (or SIGINT) while a job
    runs raises `Interrupted` into it (the engine records the step as failed, releases the
    lease and answers) and no job follows; while idle, the worker stops as rq's does.
    """

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self._stop_now)
        signal.signal(signal.SIGTERM, self._stop_now)

    def _stop_now(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_requested:
            # Heroku signals every process of the dyno and the parent passes it on: a second
            # signal must not break into the interrupted job while it records and answers.
            log.info("signal %d again: already stopping", signum)
            return
        self._stop_requested = True  # no job after this one
        if self.get_state() != WorkerStatus.BUSY:
            raise StopRequested()  # idle: rq's work loop ends
        log.warning("signal %d: interrupting the running job", signum)
        raise Interrupted(STOPPED[signum])


class InteractiveWorker(_SimpleWorker):
    """The main process's worker: a stop (SIGTERM, SIGINT) is passed on to the `steps` child
    at once, so its step lets go of the lease while this process finishes its own job."""

    steps_child: Any = None
    stopping = False  # from here on the child's end is expected
    child_failed = False  # the child ended by itself: this process stops with a failure

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        self.stopping = True
        if self.steps_child is not None and self.steps_child.is_alive():
            self.steps_child.terminate()


def _watch_child(worker: InteractiveWorker) -> None:
    """A `steps` child that ends by itself (a crash, the OOM killer) stops this process too,
    with a failure, so that the platform restarts the whole worker: one that answers `status`
    but runs no step would leave every step command waiting in its queue."""
    multiprocessing.connection.wait([worker.steps_child.sentinel])
    time.sleep(1.0)  # a SIGTERM to the whole dyno may end the child before it reaches us
    if worker.stopping:
        return
    log.error("the steps worker ended (exit code %s): stopping", worker.steps_child.exitcode)
    worker.child_failed = True
    os.kill(os.getpid(), signal.SIGTERM)


def _steps_worker(settings: config.Settings, parent: int) -> None:
    """The `steps` child: dies with its parent, and stops a running step on SIGTERM."""
    _die_with_parent(parent)
    conn = config.redis_client(settings)
    StepsWorker([jobs.queue(settings, conn, jobs.STEPS)], connection=conn).work()


def _die_with_parent(parent: int) -> None:
    """Have Linux send this process SIGTERM when its parent dies, even by SIGKILL: without it
    the child would run on as an orphan, its step holding the swap's lease."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent:  # the parent died before the request took effect
        sys.exit(0)


def _preload() -> None:
    """Import what jobs run before the `steps` child is forked, so that both start warm."""
    import swapbot.runtime  # noqa: F401
    import swapbot.slack.work  # noqa: F401


def run(settings: config.Settings, *, burst: bool = False, watch_interval: float = 30.0) -> int:
    from swapbot.runtime import build_engine
    from swapbot.swap.watcher import Watcher

    _preload()
    # Background work yields the CPU to acknowledgements wherever both share a machine (a
    # rehearsal, a small dyno running both); on separate dynos it changes nothing.
    os.nice(settings.swapbot_worker_nice)
    conn = config.redis_client(settings)
    interactive = jobs.queue(settings, conn, jobs.INTERACTIVE)
    steps = jobs.queue(settings, conn, jobs.STEPS)
    intake = jobs.Intake(settings, conn)
    if burst:  # tests and one-off runs: take every request, empty both queues, then stop
        intake.recover()
        while intake.take() is not None:
            pass
        StepsWorker([interactive, steps], connection=conn).work(burst=True)
        return 0
    # The child is forked before any thread starts (forking a threaded process is unsafe).
    child = multiprocessing.get_context("fork").Process(
        target=_steps_worker, args=(settings, os.getpid()), name="steps-worker", daemon=True
    )
    child.start()
    engine = build_engine(settings)
    background: list[Any] = [intake]
    if settings.heroku_app_name:
        background.append(Watcher(engine, settings.heroku_app_name, interval=watch_interval))
    notifier = _notifier(settings, engine)
    if notifier is not None:
        background.append(notifier)
    for task in background:
        threading.Thread(target=task.run, name=type(task).__name__, daemon=True).start()
    worker = InteractiveWorker([interactive], connection=conn)
    worker.steps_child = child
    threading.Thread(target=_watch_child, args=(worker,), name="steps-watch", daemon=True).start()
    try:
        worker.work()
    finally:
        worker.stopping = True
        for task in background:
            task.stop()
        _stop_child(child)
    return 1 if worker.child_failed else 0


def _stop_child(child: Any, grace: float = CHILD_GRACE) -> None:
    """SIGTERM the `steps` child (a running step is interrupted and lets go of its lease) and
    wait for it to record and answer; one that takes longer is killed, so none outlives us."""
    if child.is_alive():
        child.terminate()
    child.join(grace)
    if child.is_alive():
        log.warning("the steps worker did not stop within %.0f s: killing it", grace)
        child.kill()
        child.join(5)


def _notifier(settings: config.Settings, engine: Any) -> Any:
    if not (settings.slack_bot_token and settings.swapbot_channel):
        log.info("Slack settings are not set: channel notifications are off")
        return None
    from swapbot.slack.client import membership, web_client
    from swapbot.slack.notifier import ChannelNotifier

    client = web_client(settings)
    ok, message = membership(client, settings.swapbot_channel)
    (log.info if ok else log.warning)("%s", message)
    return ChannelNotifier(
        engine.store,
        web_client(settings, retries=False),
        settings.swapbot_channel,
        approval_emoji=settings.swapbot_approval_emoji,
        runner=f"{engine.runner}:{os.getpid()}",
    )
