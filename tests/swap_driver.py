"""A runner process for the resumption tests: drives the whole swap with the engine, as an
operator would, until every step is done. Tests kill it with SIGKILL and start another.

    python -m tests.swap_driver DB_URL DB_NAME REDIS_PREFIX CENTRAL_URL PLATFORM_URL [UNTIL]

With UNTIL (a step name), it stops once that step is done: the kill matrix starts one runner per
kill point, each going no further than the step it is meant to die in.

The tests start runners with `start_runner`: each is a new process forked from a fork server
that imported the engine once (multiprocessing's "forkserver"), not from the test's own
process, so it shares no socket or thread with it. It opens its own connections and is killed
with a real SIGKILL, as `python -m` would be; only the half second of imports is saved, which
the kill matrix pays some fifty times.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import traceback
from pathlib import Path
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


class Runner:
    """One runner process (see `start_runner`): wait for it, kill it, read what it printed."""

    def __init__(self, process: multiprocessing.process.BaseProcess, log: Path):
        self.process, self.log = process, log

    def wait(self, timeout: float) -> int | None:
        """Its exit code (negative: the signal that ended it), or None if it still runs."""
        self.process.join(timeout)
        return self.process.exitcode

    def kill(self) -> int:
        if self.process.exitcode is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.join()
        return self.process.exitcode or 0

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


_forkserver: multiprocessing.context.ForkServerContext | None = None


def start_runner(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Runner:
    """`python -m tests.swap_driver ARGV` with `env` added to its environment (an empty value
    removes the variable), printing into `log`."""
    global _forkserver
    if _forkserver is None:
        _forkserver = multiprocessing.get_context("forkserver")
        _forkserver.set_forkserver_preload([__name__])
    process = _forkserver.Process(target=_run, args=(argv, str(log), env or {}), daemon=False)
    process.start()
    return Runner(process, log)


def _run(argv: list[str], log: str, env: dict[str, str]) -> None:
    for key, value in env.items():
        if value:
            os.environ[key] = value
        else:
            os.environ.pop(key, None)
    with open(log, "a", buffering=1) as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        sys.stdout = sys.stderr = out
        try:
            code = main(argv)
        except BaseException:  # said here, while the log is open, as `python -m` would say it
            traceback.print_exc(file=out)
            code = 1
        out.flush()
    os._exit(code)  # as `python -m` exits: no atexit handlers from the fork server


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
