"""Acks alone: `swapbot serve` against the bare Bolt app, no worker, no sandbox.

What `bench/slack.py` measures with the whole stack running, without anything but the apps,
Redis and the senders: waves of `--senders` signed `/hcswap status` sent at once, the apps'
waves in turn, `--gap` seconds apart. swapbot's requests pile up in its intake, and
bare-push's in its own list (nobody takes them; the prefix is removed at the end). Use it to
see what a change to the ack path costs, away from the worker's noise. About 2.5 minutes at
`--waves 200` for two apps, a minute more for each app added. Rerun with

    .venv/bin/python -m bench.acks_only [--waves 40] [--senders 20] [--gap 0.3]
                                        [--workers 2] [--threads 8] [--placement dynos|shared]
                                        [--first-in-line realtime|nice]
                                        [--against {swapbot,bare-push,bare} ...]

`--against bare` measures the bare app against a second copy of itself: how far the ratio
moves by chance. `--against bare-push` measures it against itself plus one redis-py `lpush` per
request before the ack: what any app pays to queue a request durably before acknowledging it,
swapbot's parsing, rules and answer aside.

`dynos` puts the apps on CPU 0 and the senders, the stand-in, PostgreSQL and Redis (first in
line: real-time, or nice -20 with `--first-in-line nice` as before session 7) on CPU 1, as
bench/slack.py does; affinities and priorities are put back at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import redis

from bench import slack as bench  # bench/slack.py: targets, senders, pinning
from swapbot.testing.rehearsal import LocalSlack
from swapbot.testing.services import REDIS_TEST_URL


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
        "--first-in-line",
        choices=("nice", "realtime"),
        default="realtime",
        help="how Redis and the senders go first on CPU 1 with --placement dynos",
    )
    parser.add_argument(
        "--against",
        nargs="+",
        choices=("swapbot", "bare", "bare-push"),
        default=["swapbot"],
        help="what the bare app is measured against, in one rotation: swapbot, a second bare "
        "app (how far the ratio moves by chance), the bare app pushing each request on Redis "
        "first (the floor under any app that queues before it acknowledges)",
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as cleanup, tempfile.TemporaryDirectory() as logs:
        local, prefix = bench.acks_stack(
            cleanup, Path(logs), operators=["U0OPERATOR"], approvers=["U0OPERATOR"]
        )
        env, slack = local.env, local.slack
        size = {"workers": args.workers, "threads": args.threads}
        bare = cleanup.enter_context(bench.bare_bolt(env, Path(logs), **size))
        names = dict.fromkeys(args.against)  # each app once, in the order given
        others = [target(name, env, local, Path(logs), size, cleanup) for name in names]
        targets = [bare, *others]
        rounds: dict[str, list[list[float]]] = {t.name: [] for t in targets}
        cpu = {t.name: 0.0 for t in targets}
        errors = {t.name: 0 for t in targets}
        acks = {t.name: 0 for t in targets}  # each ack must have its request in QUEUES
        if args.placement == "dynos":
            bench.pin([pid for t in targets for pid in bench.group_members(t.pgid)], 0)
            realtime = args.first_in_line == "realtime"
            bench.SENDER.realtime = realtime
            bench.place_services(cleanup, realtime=realtime)
            bench.pin([os.getpid()], 1)
        for t in targets:  # warm-up
            warm = bench.send_round(t, slack, 3 * args.senders, args.senders, gap=0.1)
            errors[t.name] += warm.errors
            acks[t.name] += len(warm.latencies)
        per_round = 5 * args.senders
        for _ in range(max(1, args.waves // 5)):
            for result in bench.interleaved_round(
                targets, slack, per_round, args.senders, args.gap
            ):
                rounds[result.app].append(result.latencies)
                cpu[result.app] += result.server_cpu
                errors[result.app] += result.errors
                acks[result.app] += len(result.latencies)
        store = redis.Redis.from_url(REDIS_TEST_URL)
        queued = {name: store.llen(prefix + key) for name, key in QUEUES.items() if name in acks}
    return report(args, rounds, cpu, errors, acks, queued)


# Where each app that queues puts a request before it acknowledges (under the run's prefix).
QUEUES = {"swapbot": "intake", "bare-push": bench.FLOOR_LIST}


def target(
    name: str,
    env: dict[str, str],
    local: LocalSlack,
    logs: Path,
    size: dict[str, int],
    cleanup: contextlib.ExitStack,
) -> bench.Target:
    if name == "swapbot":
        local.start_serve(**size)
        return bench.Target(
            "swapbot", f"{local.url}/slack/events", os.getpgid(local.processes["serve"].pid)
        )
    push_key = env["SWAPBOT_REDIS_PREFIX"] + QUEUES[name] if name in QUEUES else None
    label = "bare-again" if name == "bare" else name
    return cleanup.enter_context(bench.bare_bolt(env, logs, **size, name=label, push_key=push_key))


def report(
    args: argparse.Namespace,
    rounds: dict[str, list[list[float]]],
    cpu: dict[str, float],
    errors: dict[str, int],
    acks: dict[str, int],
    queued: dict[str, int],
) -> int:
    print(f"placement {args.placement}; {args.workers} workers x {args.threads} threads each")
    print(
        f"{'app':10} {'n':>5} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'CPU/ack':>8}"
        f" {'errors':>6} {'typical-round p99':>18}"
    )
    p99, typical = {}, {}
    for name, per_round in rounds.items():
        values = [v for r in per_round for v in r]
        s = bench.summary(values)
        p99[name] = s["p99"]
        typical[name] = bench.typical_p99(per_round)  # what bench/slack.py judges 1.2x on
        print(
            f"{name:10} {s['n']:5d} {s['p50']:7.1f} {s['p90']:7.1f} {s['p99']:7.1f} {s['max']:7.1f}"
            f" {1000 * cpu[name] / max(1, len(values)):5.2f} ms {errors[name]:6d}"
            f" {typical[name]:15.1f} ms"
        )
    for name in list(rounds)[1:]:
        print(
            f"p99 {name}/bare = {p99[name] / p99['bare']:.2f} pooled,"
            f" {typical[name] / typical['bare']:.2f} in a typical round"
        )
    for name, n in queued.items():  # an ack is only as good as the request it queued
        print(f"{name}'s list holds {n} requests for its {acks[name]} acks")
    if any(errors.values()) or any(n != acks[name] for name, n in queued.items()):
        print("FAIL: errors, or acks without their request queued: the latencies mean nothing")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
