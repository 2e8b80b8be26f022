"""What one `/hcswap status` costs Redis, and what an idle worker sends it.

Starts the `many-mappings` stack of `bench/slack.py` (`swapbot serve`, `swapbot worker`, the
sandbox, the Slack stand-in), answers one status to warm it, then reads Redis's own counters
(INFO commandstats and cpu) around:

1. five seconds of nothing (the idle worker: rq's workers, the intake, watcher, notifier);
2. `--jobs` signed `/hcswap status` sent one after another, until every reply is posted.

It prints the commands per job by name and Redis's CPU per job. The counters are the whole
server's: run it on a Redis nothing else uses. About 20 seconds. Rerun with

    .venv/bin/python -m bench.redis_per_job [--jobs 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import redis

from bench import slack as bench  # bench/slack.py: the stack, the reply counter
from swapbot.testing.driver import SlackDriver
from swapbot.testing.services import REDIS_TEST_URL
from swapbot.testing.slack_stack import READER


def counters(server: redis.Redis) -> tuple[dict[str, int], float]:
    calls = {
        name.removeprefix("cmdstat_"): v["calls"] for name, v in server.info("commandstats").items()
    }
    cpu = server.info("cpu")
    return calls, cpu["used_cpu_sys"] + cpu["used_cpu_user"]


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    changed = {k: after[k] - before.get(k, 0) for k in after}
    changed["info"] = changed.get("info", 0) - 2  # our own two INFO calls
    return {k: v for k, v in sorted(changed.items(), key=lambda kv: -kv[1]) if v > 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20, help="status commands to send")
    args = parser.parse_args()
    server = redis.Redis.from_url(REDIS_TEST_URL)
    with (
        tempfile.TemporaryDirectory() as logs,
        bench.swapbot_stack("many-mappings", Path(logs), workers=2, threads=8) as local,
    ):
        replies = bench.ReplyCounter(local.slack, READER)
        driver = SlackDriver(f"{local.url}/slack/events", bench.SIGNING_SECRET, local.slack)
        driver.command(READER, "status")
        bench.wait_for_drain(local, replies, 1, 60)
        time.sleep(2.0)

        calls, _ = counters(server)
        time.sleep(5.0)
        idle = delta(calls, counters(server)[0])
        print(f"idle worker, 5 s: {sum(idle.values())} commands {idle}")

        calls, cpu = counters(server)
        for _ in range(args.jobs):
            driver.command(READER, "status")
        if not bench.wait_for_drain(local, replies, 1 + args.jobs, 60)[0]:
            print("not every reply was posted within 60 s")
            return 1
        after, cpu_after = counters(server)
    jobs = delta(calls, after)
    print(
        f"{args.jobs} status jobs (ack, intake, rq, the status itself, its reply):"
        f" {sum(jobs.values()) / args.jobs:.1f} commands and"
        f" {(cpu_after - cpu) * 1000 / args.jobs:.2f} ms of Redis CPU per job"
    )
    for name, n in jobs.items():
        print(f"   {name:16} {n / args.jobs:6.1f} per job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
