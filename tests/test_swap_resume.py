"""Runners killed with SIGKILL at random moments of the swap, each resumed by a fresh process:
the swap completes, nothing unsafe is sent twice, and every app write made before stop-writes
reached the simulated Salesforce org."""

from __future__ import annotations

import random
import time

import pytest
import redis
import requests

from swapbot.sandbox.writeload import WriteLoad
from swapbot.swap.store import Store
from swapbot.testing.services import REDIS_TEST_URL
from swapbot.testing.swaps import (
    OPERATOR,
    archived_writes,
    demo_plan,
    make_engine,
    unsent_writes,
)
from tests.swap_driver import start_runner

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow


@pytest.mark.slow
def test_killed_runners_are_resumed_until_the_swap_completes(
    sandbox_factory, db_url, db_name, redis_prefix, db, tmp_path
):
    sandbox = sandbox_factory("small", writer_latency_seconds=0.5, org_changes_per_second=1.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)
    load = WriteLoad(db_url, per_second=20, seed=5).start()
    argv = [db_url, db_name, redis_prefix, sandbox.central_url, sandbox.platform_url]
    rng = random.Random(11)
    kills, finished, deadline = 0, None, time.monotonic() + 240
    while finished is None and time.monotonic() < deadline:
        # A runner lives 0.3 to 2.5 s (it starts forked, its imports done), then the next;
        # after 25 kills one runner is left to finish.
        alive_for = rng.uniform(0.3, 2.5) if kills < 25 else 120
        runner = start_runner(argv, tmp_path / f"runner-{kills}.log")
        finished = runner.wait(timeout=alive_for)
        if finished is None:
            runner.kill()
            kills += 1
        cp = store.checkpoints("acme-test").get("stop-writes")
        if cp is not None and cp.status in ("running", "done") and load.is_running():
            load.stop()  # the app's dynos are going down: its writes stop
    load.stop()
    assert finished == 0, f"the swap did not complete after {kills} kills"
    assert kills >= 10  # the runners really were interrupted
    statuses = {name: cp.status for name, cp in store.checkpoints("acme-test").items()}
    assert set(statuses.values()) <= {"done", "skipped"}, statuses
    log = requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()
    processed = [r for r in log if r["status"] < 500 and r["fault"] is None]
    for method, suffix in (("POST", "/apps/acme-prod/addons"), ("POST", "/actions/import")):
        sent = [r for r in processed if r["method"] == method and r["path"].endswith(suffix)]
        assert len(sent) == 1, (method, suffix, len(sent))
    # every app write captured before stop-writes went to Salesforce before hc1 was paused
    assert unsent_writes(db) == 0
    # (an app update that changed nothing is logged IGNORE and never sent, as on Heroku)
    assert archived_writes(db, "SUCCESS", "IGNORE") == load.writes > 0
