"""How long `swapbot db backlog` takes on a busy trigger log.

Loads the sandbox's big-trigger-log scenario (100,000 live rows, 1,000,000 archived by default)
into a scratch database it creates and drops, runs the backlog N times and prints the latency
percentiles. Usage: python bench/backlog.py [--runs 200] [--live N] [--archive N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg

from swapbot.database import backlog
from swapbot.sandbox import scenarios
from swapbot.testing.services import scratch_database

ADMIN_URL = os.environ.get(
    "SWAPBOT_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--live", type=int, default=100_000)
    parser.add_argument("--archive", type=int, default=1_000_000)
    args = parser.parse_args()

    with scratch_database(ADMIN_URL) as url:
        started = time.perf_counter()
        scenarios.load(url, scenarios.big_trigger_log(live=args.live, archive=args.archive))
        print(
            f"loaded {args.live:,} live and {args.archive:,} archived trigger-log rows"
            f" in {time.perf_counter() - started:.1f} s"
        )
        with psycopg.connect(url, autocommit=True) as conn:
            first = backlog.backlog(conn, "salesforce")
            timings = []
            for _ in range(args.runs):
                t = time.perf_counter()
                backlog.backlog(conn, "salesforce")
                timings.append((time.perf_counter() - t) * 1000)
        print(backlog.render(first))
        print(
            f"backlog over {args.runs} runs: p50 {percentile(timings, 50):.1f} ms,"
            f" p95 {percentile(timings, 95):.1f} ms, p99 {percentile(timings, 99):.1f} ms,"
            f" max {max(timings):.1f} ms, mean {statistics.mean(timings):.1f} ms"
        )


if __name__ == "__main__":
    main()
