"""The kill matrix: within one swap, a runner is killed with SIGKILL at every step boundary and in
the middle of every step, in turn, and each time a fresh process resumes the swap.

The kills are deterministic: each runner is started with SWAPBOT_KILL_AT=<step>:<point> (the
engine's test seam) and goes no further than that step. `before` is the boundary (the checkpoint
says running, nothing done); the middle is `after-act` (the step's calls and SQL made, nothing
checkpointed since) or, for a step that only waits, `waiting` (the live system did not show it
done on the first look). A point a runner never reaches (a step already done when it gets there,
as abort, add-columns and reload are on the shortcut path) lets that runner finish the step.

Then: the swap completes; the sandbox's request log shows no unsafe call took effect twice; hc1
was not resumed before its moved mappings were deleted; and every app write made before
stop-writes is in the simulated Salesforce org. delete-old is also killed between its two
mapping DELETEs: past the point of no return, the resumed attempt finishes under the approval
the first one used. (Whole `swapbot worker` process groups are killed in
tests/test_worker_processes.py.)
"""

from __future__ import annotations

import re
import signal
from collections import Counter

import pytest
import redis
import requests

from swapbot.heroku import ConnectClient
from swapbot.sandbox import scenarios
from swapbot.sandbox.writeload import WriteLoad
from swapbot.swap import steps as runbook
from swapbot.swap.run import KILL_AT_ENV
from swapbot.swap.store import Store
from swapbot.testing.services import REDIS_TEST_URL, TOKEN
from swapbot.testing.swaps import OPERATOR, demo_plan, make_engine, org_misses, unsent_writes
from tests.swap_driver import start_runner

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow

# Calls that must take effect at most once per resource. A 404 answer to a repeated DELETE is
# the documented safe retry (assumption delete-mapping-repeat), so only 2xx answers count. Not
# listed, as documented safe to repeat: pause and resume (a repeat is a no-op, assumption
# pause-only-from-idle; the order check below guards what matters about them), authorize_url
# (a new link, assumption restart-and-authorize-url-repeatable), and the app's maintenance and
# formation PATCHes (absolute values).
ONCE = {
    "create the add-on": ("POST", re.compile(r"/apps/[^/]+/addons$")),
    "configure": ("PATCH", re.compile(r"/connections/[^/]+$")),
    "import": ("POST", re.compile(r"/connections/[^/]+/actions/import$")),
    "create a mapping": ("POST", re.compile(r"/connections/[^/]+/mappings$")),
    "edit a mapping": ("PUT", re.compile(r"/mappings/[^/]+$")),
    "reload a mapping": ("POST", re.compile(r"/mappings/[^/]+/actions/reload$")),
    "delete a mapping": ("DELETE", re.compile(r"/mappings/[^/]+$")),
}


def kill_points(step: runbook.Step) -> tuple[str, ...]:
    middle = "after-act" if step.act is not None else "waiting"
    if step.point_of_no_return:  # also between its two mapping DELETEs: past the point, half done
        return ("before", "between-deletes", middle)
    return ("before", middle)


def run_runner(sandbox, db_url, db_name, redis_prefix, log, until=None, kill_at=None):
    argv = [db_url, db_name, redis_prefix, sandbox.central_url, sandbox.platform_url]
    if until:
        argv.append(until)
    runner = start_runner(argv, log, {KILL_AT_ENV: kill_at or ""})
    code = runner.wait(timeout=120)
    if code is None:
        runner.kill()
        raise AssertionError(f"runner for {kill_at or until} is stuck:\n{runner.output()}")
    return code, runner.output()


@pytest.mark.slow
def test_a_runner_killed_at_every_point_of_every_step_is_resumed(
    sandbox_factory, db_url, db_name, redis_prefix, db, tmp_path
):
    # A quiet org: verify must not need a change in Salesforce, and the org's values can only
    # come from the app's writes, so they can be compared exactly. The demo's unmanaged objects
    # give prepare-objects, cutover-objects and delete-old (which retires the old view) work to
    # be interrupted in; slow first loads and a slow writer make wait-sync and drain wait.
    sandbox = sandbox_factory(
        scenarios.small().model_copy(update={"unmanaged_objects": True, "name": "small-obj"}),
        initial_seconds=1500.0,  # 15 s here
        writer_latency_seconds=1000.0,  # 10 s here
        org_changes_per_second=0.0,
    )
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)
    load = WriteLoad(db_url, per_second=20, seed=5).start()
    killed, not_reached = [], []
    try:
        for step in runbook.STEPS:
            if step.name == runbook.OUTAGE_START:
                load.stop()  # the app's dynos go down with this step: its writes stop
            for point in kill_points(step):
                target = f"{step.name}:{point}"
                code, output = run_runner(
                    sandbox,
                    db_url,
                    db_name,
                    redis_prefix,
                    tmp_path / f"{target.replace(':', '-')}.log",
                    until=step.name,
                    kill_at=target,
                )
                if code == -signal.SIGKILL:
                    killed.append(target)
                else:
                    assert code == 0, f"runner for {target} exited {code}:\n{output}"
                    not_reached.append(target)
    finally:
        load.stop()
    code, output = run_runner(sandbox, db_url, db_name, redis_prefix, tmp_path / "last.log")
    assert code == 0, output
    print("killed:", killed, "\nnot reached:", not_reached)  # shown with -s or on failure

    # the swap completed
    checkpoints = store.checkpoints("acme-test")
    statuses = {name: cp.status for name, cp in checkpoints.items()}
    assert set(statuses) == {s.name for s in runbook.STEPS}
    assert set(statuses.values()) <= {"done", "skipped"}, statuses

    # every step that acted was killed at its boundary and in its middle
    history = store.history("acme-test", count=10_000)
    acted = {e.step for e in history if e.action == "step.started"}
    for step in runbook.STEPS:
        if step.name in acted and step.act is not None:
            assert {f"{step.name}:before", f"{step.name}:after-act"} <= set(killed), step.name
    assert "delete-old:between-deletes" in killed
    assert len(killed) >= 25, (killed, not_reached)
    # on the shortcut path these find themselves done: nothing to interrupt
    assert {"abort:before", "add-columns:before", "reload:before"} <= set(not_reached)

    # one approval each for pause and delete-old: a runner killed after taking it resumes under it
    for step in ("pause", "delete-old"):
        asked = [e for e in history if e.action == "approval.requested" and e.step == step]
        assert len(asked) == 1, (step, [e.action for e in history if e.step == step])
        assert any(e.action == "approval.resumed" and e.step == step for e in history), step

    # no unsafe call took effect twice
    log = requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()
    effective = [r for r in log if 200 <= r["status"] < 300 and r["fault"] is None]
    for what, (method, path) in ONCE.items():
        sent = Counter(
            r["path"] for r in effective if r["method"] == method and path.search(r["path"])
        )
        assert all(n == 1 for n in sent.values()), (what, sent)
        if what in ("create the add-on", "import"):
            assert sum(sent.values()) == 1, what
    deletes = [r for r in effective if r["method"] == "DELETE" and "/mappings/" in r["path"]]
    assert len(deletes) == 2  # Account and Contact, once each

    # hc1 ran again only once its moved mappings were gone
    connect = ConnectClient(TOKEN, sandbox.central_url)
    hc1 = connect.find_connection("acme-prod", "hc1").id
    resumes = [
        r["id"]
        for r in effective
        if r["method"] == "POST" and r["path"].endswith(f"{hc1}/actions/resume")
    ]
    assert resumes and min(resumes) > max(r["id"] for r in deletes)

    # every app write made before stop-writes reached the org: each record holds its last value
    assert load.writes > 0 and len(load.log) == load.writes
    last = {(table, column, sfid): value for table, column, sfid, value in load.log}
    assert org_misses(db, last) == []
    assert unsent_writes(db) == 0
