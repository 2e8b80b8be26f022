"""`swapbot worker`: runs queued work (rq), the watcher and, with Slack settings, the notifier.

Two rq workers: this process takes `interactive` jobs (status, plans, approvals, reactions)
and a child process takes `steps` (which may wait for hours), so a long step never delays an
answer. Interactive jobs are short and run in this process (rq's SimpleWorker): rq's usual
fork per job would fork a process that runs threads (unsafe: a lock held by another thread
stays held in the child) and costs more CPU than a status takes. The watcher and the
notifier run as threads here; each leads only while it holds its lease, so any number of
worker dynos can run.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from typing import Any

from rq import SimpleWorker, Worker

from swapbot import config
from swapbot.swap import jobs

log = logging.getLogger(__name__)


def _steps_worker(settings: config.Settings) -> None:
    conn = config.redis_client(settings)
    Worker([jobs.queue(settings, conn, jobs.STEPS)], connection=conn).work()


def _preload() -> None:
    """Import what jobs run before forking, so that each job's fork starts warm."""
    import swapbot.slack.work  # noqa: F401
    import swapbot.swap.runtime  # noqa: F401


def run(settings: config.Settings, *, burst: bool = False, watch_interval: float = 30.0) -> int:
    from swapbot.swap.runtime import build_engine
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
        Worker([interactive, steps], connection=conn).work(burst=True)
        return 0
    # The child is forked before any thread starts (forking a threaded process is unsafe).
    child = multiprocessing.get_context("fork").Process(
        target=_steps_worker, args=(settings,), name="steps-worker", daemon=True
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
    try:
        SimpleWorker([interactive], connection=conn).work()
    finally:
        for task in background:
            task.stop()
        if child.is_alive():
            child.terminate()
    return 0


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
        client,
        settings.swapbot_channel,
        approval_emoji=settings.swapbot_approval_emoji,
        runner=f"{engine.runner}:{os.getpid()}",
    )
