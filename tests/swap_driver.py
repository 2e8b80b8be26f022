"""A runner process for the resumption tests: drives the whole swap with the engine, as an
operator would, until every step is done. Tests kill it with SIGKILL and start another.

    python -m tests.swap_driver DB_URL DB_NAME REDIS_PREFIX CENTRAL_URL PLATFORM_URL [UNTIL]

With UNTIL (a step name), it stops once that step is done: the kill matrix starts one runner per
kill point, each going no further than the step it is meant to die in.
"""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

from swapbot.swap import steps as runbook
from swapbot.testing.swaps import APPROVER, OPERATOR, Person, make_engine


def drive(engine, until: str | None = None) -> int:
    plan = engine.current_plan()
    last = runbook.STEPS.index(runbook.get(until)) if until else len(runbook.STEPS) - 1
    for step in runbook.STEPS[: last + 1]:
        for _ in range(400):
            app = plan.app if step.name == runbook.OUTAGE_START else None
            out = engine.run_step(step.name, OPERATOR, app=app)
            print(f"{step.name}: {out.status}: {out.message}", flush=True)
            if out.ok:
                break
            cp = engine.store.checkpoints(plan.swap_id).get(step.name)
            if out.status == "refused" and cp is not None and cp.status in ("done", "skipped"):
                break  # done, and past the point of no return: it cannot (need not) run again
            if out.status == "refused" and step.approval and "being run by" not in out.message:
                request = engine.request_approval(step.name, OPERATOR)
                if request.ok:
                    engine.approve(request.data["request_id"], APPROVER)
                continue
            if out.status == "failed" and not out.data.get("retryable"):
                return 1
            time.sleep(0.2)  # waiting, or another runner's lease has not expired yet
        else:
            return 1
    return 0


def main(argv: list[str]) -> int:
    db_url, db_name, prefix, central, platform, *rest = argv
    sandbox = SimpleNamespace(
        central_url=central, platform_url=platform, base_url=central.rsplit("/", 1)[0]
    )
    engine = make_engine(sandbox, db_url, prefix, lease_ttl=1.5, in_flight_grace=1.0)
    Person(engine, sandbox)
    return drive(engine, rest[0] if rest else None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
