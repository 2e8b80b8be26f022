"""Acks of a button click beside a slash command's: `swapbot serve` against the bare Bolt floor.

In one run, against the same processes: waves of `--senders` (20) signed requests sent at once,
of two kinds, `/hcswap status` typed by a reader and a click on the Approve button of an approval
request (`block_actions`: a form whose `payload` field is the JSON Slack sends, built by the
stand-in from the message as it shows it, each click with a trigger id of its own). Each kind
goes to three apps, their waves in turn, `--gap` seconds apart: swapbot; the bare Bolt app of
bench/bare_bolt.py, which only acknowledges (`ack("ok")` for the command, an empty `ack()` for the
click); and the floor, the same bare app pushing a fixed document on a Redis list (one redis-py
`lpush`) before it acknowledges, what any app pays to queue a request durably before answering.
swapbot's command is parsed, authorized and pushed (one LPUSH); its click is authorized as
`approve REQUEST_ID` and pushed with its trigger id marked seen (one EVALSHA). Nobody takes the
requests: no worker runs, they pile up in the lists and are counted at the end (an ack without
its request queued would make the figures mean nothing), then removed with the run's prefix.

Latency is from sending a request to the end of its HTTP response; p50, p99 and the p99 of a
typical round (the median of the rounds' p99s, as bench/slack.py judges acks) per kind and app.
`dynos` placement (the default) puts the apps on CPU 0 and the senders, the stand-in and Redis
on CPU 1, as bench/acks_only.py does. About a minute and a half at the defaults. Rerun with

    .venv/bin/python -m bench.clicks [--waves 40] [--senders 20] [--gap 0.3]
                                     [--workers 2] [--threads 8] [--placement dynos|shared]
                                     [--first-in-line realtime|nice]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import redis
from slack_sdk import WebClient

from bench import slack as bench  # bench/slack.py: targets, senders, pinning
from swapbot.slack import blocks
from swapbot.slack.blocks.approvals import APPROVE_ACTION
from swapbot.swap.approvals import ApprovalRequest
from swapbot.testing.driver import VERIFICATION_TOKEN, SlackDriver
from swapbot.testing.rehearsal import CHANNEL
from swapbot.testing.services import REDIS_TEST_URL
from swapbot.testing.slack_stack import APPROVER, OPERATOR
from swapbot.testing.standin import Message, SlackStandIn

KINDS = ("command", "click")
APPS = {"bare": "bare Bolt", "bare-push": "bare+lpush", "swapbot": "swapbot"}


def main() -> int:
    bench.stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waves", type=int, default=40, help="measured waves per app and kind")
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between waves")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--placement", choices=("dynos", "shared"), default="dynos")
    parser.add_argument("--first-in-line", choices=("nice", "realtime"), default="realtime")
    args = parser.parse_args()
    with contextlib.ExitStack() as cleanup, tempfile.TemporaryDirectory() as logs:
        local, prefix = bench.acks_stack(
            cleanup, Path(logs), operators=[OPERATOR], approvers=[OPERATOR, APPROVER]
        )
        env, slack = local.env, local.slack
        size = {"workers": args.workers, "threads": args.threads}
        floor_key = prefix + bench.FLOOR_LIST
        targets = [
            cleanup.enter_context(bench.bare_bolt(env, Path(logs), **size)),
            cleanup.enter_context(
                bench.bare_bolt(env, Path(logs), **size, name="bare-push", push_key=floor_key)
            ),
        ]
        local.start_serve(**size)
        serve = os.getpgid(local.processes["serve"].pid)
        targets.append(bench.Target("swapbot", f"{local.url}/slack/events", serve))
        forms = {"command": bench.status_form, "click": click_form(slack, approval(slack))}
        if args.placement == "dynos":
            bench.pin([pid for t in targets for pid in bench.group_members(t.pgid)], 0)
            realtime = args.first_in_line == "realtime"
            bench.SENDER.realtime = realtime
            bench.place_services(cleanup, realtime=realtime)
            bench.pin([os.getpid()], 1)
        rounds: dict[tuple[str, str], list[list[float]]] = {
            (k, t.name): [] for k in KINDS for t in targets
        }
        cpu = dict.fromkeys(rounds, 0.0)
        errors = dict.fromkeys(rounds, 0)
        acks = dict.fromkeys(rounds, 0)  # each ack of a pushing app must have its request queued
        for kind in KINDS:  # warm-up, counted only for the queues
            for t in targets:
                warm = bench.send_round(t, slack, 3 * args.senders, args.senders, 0.1, forms[kind])
                errors[kind, t.name] += warm.errors
                acks[kind, t.name] += len(warm.latencies)
        started = time.perf_counter()
        for _ in range(max(1, args.waves // 5)):
            for kind in KINDS:
                for result in bench.interleaved_round(
                    targets, slack, 5 * args.senders, args.senders, args.gap, forms[kind]
                ):
                    rounds[kind, result.app].append(result.latencies)
                    cpu[kind, result.app] += result.server_cpu
                    errors[kind, result.app] += result.errors
                    acks[kind, result.app] += len(result.latencies)
        took = time.perf_counter() - started
        store = redis.Redis.from_url(REDIS_TEST_URL)
        queued = {"swapbot": store.llen(prefix + "intake"), "bare-push": store.llen(floor_key)}
        refused = slack.count("response_url")  # a refused click is answered there
    return report(args, rounds, cpu, errors, acks, queued, refused, took)


def approval(slack: SlackStandIn) -> Message:
    """An approval request as the notifier posts it, Approve and Deny buttons included."""
    now = time.time()
    req = ApprovalRequest(
        id="pause-1",
        swap_id="bench-clicks",
        step="pause",
        requester=OPERATOR,
        fingerprint="ab12cd34ef56",
        live_digest="d1",
        requested_at="",
        requested_epoch=now,
        expires_at="",
        expires_epoch=now + 3600,
    )
    text, blks = blocks.approval_message(req, None, step_summary="pauses hc1 and hc2", now=now)
    client = WebClient(token=slack.token, base_url=slack.api_url)
    ts = client.chat_postMessage(channel=CHANNEL, text=text, blocks=blks)["ts"]
    found = slack.message(CHANNEL, ts)
    assert found is not None
    return found


def click_form(slack: SlackStandIn, message: Message) -> bench.Form:
    """An approver's click on the message's Approve button, a trigger id of its own each time."""

    def form(driver: SlackDriver) -> tuple[str, str]:
        payload = slack.block_actions(
            APPROVER,
            message.channel,
            message.ts,
            APPROVE_ACTION,
            trigger_id=f"{int(time.time())}.{secrets.token_hex(12)}",
            api_app_id=driver.api_app_id,
            token=VERIFICATION_TOKEN,
        )
        return urlencode({"payload": json.dumps(payload)}), bench.FORM_TYPE

    return form


def report(
    args: argparse.Namespace,
    rounds: dict[tuple[str, str], list[list[float]]],
    cpu: dict[tuple[str, str], float],
    errors: dict[tuple[str, str], int],
    acks: dict[tuple[str, str], int],
    queued: dict[str, int],
    refused: int,
    took: float,
) -> int:
    print(
        f"placement {args.placement}; {args.workers} workers x {args.threads} threads each; "
        f"waves of {args.senders} sent at once, {args.gap} s apart; measured in {took:.0f} s"
    )
    print(
        f"{'kind':8} {'app':11} {'n':>5} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7}"
        f" {'CPU/ack':>8} {'errors':>6} {'typical-round p99':>18}"
    )
    typical: dict[tuple[str, str], float] = {}
    for (kind, app), per_round in rounds.items():
        values = [v for r in per_round for v in r]
        s = bench.summary(values)
        typical[kind, app] = bench.typical_p99(per_round)
        print(
            f"{kind:8} {APPS[app]:11} {s['n']:5d} {s['p50']:7.1f} {s['p90']:7.1f} {s['p99']:7.1f}"
            f" {s['max']:7.1f} {1000 * cpu[kind, app] / max(1, len(values)):5.2f} ms"
            f" {errors[kind, app]:6d} {typical[kind, app]:15.1f} ms"
        )
    for kind in KINDS:
        print(
            f"{kind}: typical-round p99 swapbot/bare+lpush = "
            f"{typical[kind, 'swapbot'] / typical[kind, 'bare-push']:.2f}, "
            f"swapbot/bare = {typical[kind, 'swapbot'] / typical[kind, 'bare']:.2f}"
        )
    expected = {app: sum(acks[k, app] for k in KINDS) for app in queued}
    for app, n in queued.items():  # an ack is only as good as the request it queued
        print(f"{APPS[app]}'s list holds {n} requests for its {expected[app]} acks")
    if refused:
        print(f"{refused} clicks were refused (answered on their response_url)")
    if any(errors.values()) or refused or any(n != expected[a] for a, n in queued.items()):
        print(
            "FAIL: errors, refusals, or acks without their request queued: the figures mean nothing"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
