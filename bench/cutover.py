"""The outage the bot causes, against what Heroku Connect and the platform need in the same run.

Builds the `small` scenario in a scratch database, runs prep through the engine on the sandbox,
then the cutover with the app writing until stop-writes. Prints each cutover step's time, split
into waiting for the live system (HC pausing and resuming, the writer draining, dynos stopping
and starting) and the bot's own time (its API calls, SQL and checks), and the outage from the
start of stop-writes to the end of restore. Target: the bot's own share under 2 seconds.

    .venv/bin/python bench/cutover.py [--speed 20]

Waits are measured from the end of a step's action to the poll that saw it done, so up to one
poll interval (0.1 s here) of polling granularity per waiting step counts as waiting. Then the
prediction made before the outage (pause, resume and first-poll figures timed by prep's `measure`
step; dyno times assumed at their nominal Heroku values) beside what each step waited.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

import redis

from swapbot.sandbox import scenarios
from swapbot.sandbox.options import SandboxOptions
from swapbot.sandbox.server import Sandbox
from swapbot.sandbox.writeload import WriteLoad
from swapbot.swap import steps as runbook
from swapbot.testing.services import create_database, drop_database
from swapbot.testing.swaps import APPROVER, OPERATOR, Person, demo_plan, make_engine


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", type=float, default=20.0, help="sandbox speed (default 20)")
    args = parser.parse_args()
    name = f"swapbot_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    prefix = f"swapbot-bench:{uuid.uuid4().hex[:8]}:"
    try:
        scenarios.load(url, scenarios.get("small"))
        options = SandboxOptions(speed=args.speed, seed=1, org_changes_per_second=1.0)
        with Sandbox(url, options) as sandbox:
            engine = make_engine(
                sandbox, url, prefix, poll_interval=0.1, timeout_scale=1.0, in_flight_grace=1.0
            )
            plan = demo_plan(name, quiet_seconds=10.0)  # the production default
            engine.save_plan(plan, OPERATOR)
            person = Person(engine, sandbox)
            load = WriteLoad(url, per_second=10, seed=2).start()
            for _ in runbook.PREP:
                out = engine.next(OPERATOR)
                assert out.ok, (out.step, out.message)
            for step in runbook.APPROVED:
                request = engine.request_approval(step, OPERATOR)
                engine.approve(request.data["request_id"], APPROVER)
            prediction = engine.predict()  # after prep's `measure` timed hc2
            outage_start = time.monotonic()
            for step in runbook.CUTOVER:
                app = plan.app if step.name == runbook.OUTAGE_START else None
                if step.name == runbook.OUTAGE_START:
                    load.stop()  # its dynos go down; stop-writes then waits out the quiet interval
                out = engine.run_step(step.name, OPERATOR, app=app)
                assert out.ok, (step.name, out.message)
                if step.name == "restore":
                    outage = time.monotonic() - outage_start
            person.stop()
            checkpoints = engine.store.checkpoints(plan.swap_id)
        print(f"sandbox speed x{args.speed:g}; app writes before the outage: {load.writes}")
        print(f"{'step':18} {'total':>7} {'waiting':>8} {'bot':>7}")
        waited_total = 0.0
        for step in runbook.CUTOVER:
            if not step.in_outage:
                continue
            detail = checkpoints[step.name].detail or {}
            total, waited = float(detail.get("seconds", 0)), float(detail.get("waited", 0))
            waited_total += waited
            print(f"{step.name:18} {total:7.2f} {waited:8.2f} {total - waited:7.2f}")
        own = outage - waited_total
        print("\npredicted before the outage, beside what each step waited:")
        for part in prediction.parts:
            detail = checkpoints[part.step].detail or {}
            print(
                f"{part.step:18} predicted {part.seconds:6.2f} ({part.source:8}) "
                f"waited {float(detail.get('waited', 0)):6.2f}   {part.basis}"
            )
        print(
            f"outage {outage:.2f} s = waiting on Heroku Connect and dynos {waited_total:.2f} s "
            f"+ the bot's own {own:.2f} s (target < 2 s: {'met' if own < 2 else 'NOT met'})"
        )
        return 0 if own < 2 else 1
    finally:
        redis.Redis.from_url("redis://127.0.0.1:6379/0").delete(
            *list(redis.Redis.from_url("redis://127.0.0.1:6379/0").scan_iter(match=prefix + "*"))
            or ["-"]
        )
        drop_database(name)


if __name__ == "__main__":
    sys.exit(main())
