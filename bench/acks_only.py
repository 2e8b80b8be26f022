"""Acks alone: `swapbot serve` against the bare Bolt app, no worker, no sandbox.

What `bench/slack.py` measures with the whole stack running, without anything but the two
apps, Redis and the senders: waves of `--senders` signed `/hcswap status` sent at once,
alternating between the apps, `--gap` seconds apart. swapbot's requests pile up in its
intake (nobody takes them; the prefix is removed at the end). Use it to see what a change to
the ack path costs, away from the worker's noise. About a minute. Rerun with

    .venv/bin/python bench/acks_only.py [--waves 40] [--senders 20] [--gap 0.3]
                                        [--workers 2] [--threads 8] [--placement dynos|shared]
                                        [--against swapbot|bare]

`--against bare` measures the bare app against a second copy of itself: how far the ratio
moves by chance.

`dynos` puts both apps on CPU 0 and the senders, the stand-in, PostgreSQL and Redis (first in
line) on CPU 1, as bench/slack.py does; affinities and priorities are put back at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import uuid
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
import slack as bench  # noqa: E402  (bench/slack.py: targets, senders, pinning)

from swapbot.slack.rehearsal import LocalSlack, environment, forget  # noqa: E402
from tests.conftest import REDIS_TEST_URL  # noqa: E402
from tests.slack_support import standin  # noqa: E402

NOWHERE = SimpleNamespace(platform_url="http://127.0.0.1:9/", central_url="http://127.0.0.1:9/")


def main() -> int:
    bench.stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waves", type=int, default=40, help="measured waves per app")
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between waves")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--placement", choices=("dynos", "shared"), default="dynos")
    parser.add_argument(
        "--against",
        choices=("swapbot", "bare"),
        default="swapbot",
        help="what the bare app is measured against: swapbot, or a second bare app (how far "
        "the ratio moves by chance)",
    )
    args = parser.parse_args()
    prefix = f"swapbot-bench:{uuid.uuid4().hex[:8]}:"
    slack = standin()
    env = environment(
        database_url="postgresql://postgres@127.0.0.1:5432/test",
        redis_url=REDIS_TEST_URL,
        redis_prefix=prefix,
        heroku_token="unused",
        app="acme-prod",
        sandbox=NOWHERE,
        slack=slack,
        operators=["U0OPERATOR"],
        approvers=["U0OPERATOR"],
    )
    with contextlib.ExitStack() as cleanup, tempfile.TemporaryDirectory() as logs:
        cleanup.callback(slack.stop)
        cleanup.callback(forget, redis.Redis.from_url(REDIS_TEST_URL), prefix)
        cleanup.callback(bench.SENDER.close)
        local = LocalSlack(env, slack, Path(logs))
        cleanup.callback(local.stop)
        size = {"workers": args.workers, "threads": args.threads}
        bare = cleanup.enter_context(bench.bare_bolt(env, Path(logs), **size))
        if args.against == "bare":
            other = cleanup.enter_context(
                bench.bare_bolt(env, Path(logs), **size, name="bare-again")
            )
        else:
            local.start_serve(**size)
            pgid = os.getpgid(local.processes["serve"].pid)
            other = bench.Target("swapbot", f"{local.url}/slack/events", pgid)
        latencies: dict[str, list[float]] = {bare.name: [], other.name: []}
        cpu = {bare.name: 0.0, other.name: 0.0}
        errors = {bare.name: 0, other.name: 0}
        sent = 0  # to swapbot: each ack it gave must have its request in the intake
        if args.placement == "dynos":
            bench.pin(bench.group_members(other.pgid) + bench.group_members(bare.pgid), 0)
            bench.place_services(cleanup)
            bench.pin([os.getpid()], 1)
        for target in (bare, other):  # warm-up
            warm = bench.send_round(target, slack, 3 * args.senders, args.senders, gap=0.1)
            errors[target.name] += warm.errors
            sent += len(warm.latencies) if target.name == "swapbot" else 0
        per_round = 5 * args.senders
        for _ in range(max(1, args.waves // 5)):
            for target in (bare, other):
                result = bench.send_round(target, slack, per_round, args.senders, gap=args.gap)
                latencies[target.name] += result.latencies
                cpu[target.name] += result.server_cpu
                errors[target.name] += result.errors
                sent += len(result.latencies) if target.name == "swapbot" else 0
        queued = redis.Redis.from_url(REDIS_TEST_URL).llen(f"{prefix}intake")
    print(f"placement {args.placement}; {args.workers} workers x {args.threads} threads each")
    print(
        f"{'app':10} {'n':>5} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'CPU/ack':>8}"
        f" {'errors':>6}"
    )
    p99 = {}
    for name, values in latencies.items():
        s = bench.summary(values)
        p99[name] = s["p99"]
        print(
            f"{name:10} {s['n']:5d} {s['p50']:7.1f} {s['p90']:7.1f} {s['p99']:7.1f} {s['max']:7.1f}"
            f" {1000 * cpu[name] / max(1, len(values)):5.2f} ms {errors[name]:6d}"
        )
    print(f"p99 {other.name}/bare = {p99[other.name] / p99['bare']:.2f}")
    if other.name == "swapbot":  # an ack is only as good as the request it queued
        print(f"swapbot's intake holds {queued} requests for its {sent} acks")
    if any(errors.values()) or (other.name == "swapbot" and queued != sent):
        print("FAIL: errors, or acks without their request queued: the latencies mean nothing")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
