"""`swapbot hcswap <subcommand> [args] --as USER`: the terminal front end over the engine.

The same rules as in Slack (the commands are parsed and run by `swapbot.commands`): steps
in order, approvals by a second person, the cutover only when named. Events print as they
happen; `--json` prints one document at the end instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from swapbot import commands, config
from swapbot.swap.events import Emitter, Event


def _printer(event: Event) -> None:
    if event.kind == "call":
        prefix = "  would call" if event.data.get("dry_run") else "  call"
        print(f"{prefix}: {event.message}", flush=True)
        for statement in event.data.get("sql", []):
            print(f"      {statement}", flush=True)
    elif event.kind in ("load.progress",):
        print(f"  … {event.message}", flush=True)
    else:
        step = f"[{event.step}] " if event.step else ""
        extra = f" ({event.data['link']})" if event.data.get("link") else ""
        print(f"{event.kind:18} {step}{event.message}{extra}", flush=True)


def run(args: argparse.Namespace) -> int:
    words = [w for w in (args.subcommand, *args.rest) if w is not None]
    try:
        cmd = commands.parse(words)
    except commands.UsageError as exc:
        print(f"hcswap: {exc}", file=sys.stderr)
        return 2
    cmd = replace(
        cmd,
        actor=cmd.actor or args.actor,
        dry_run=cmd.dry_run or args.dry_run,
        json=cmd.json or args.json,
        no_wait=cmd.no_wait or args.no_wait,
        break_glass=cmd.break_glass or args.break_glass,
    )
    if cmd.kind == "help":
        print(commands.usage(cmd.args[0]) if cmd.args else commands.HELP)
        return 0
    try:
        settings = config.load_settings()
    except config.SettingsError as exc:
        print(f"hcswap: {exc}", file=sys.stderr)
        return 2
    from swapbot.runtime import MissingSettings, build_engine

    emitter = Emitter()
    if not cmd.json:
        emitter.subscribe(_printer)
    try:
        engine = build_engine(settings, emitter, approvers=set(settings.swapbot_approvers))
    except MissingSettings as exc:
        print(f"hcswap: {exc}", file=sys.stderr)
        return 2
    if not settings.slack_bot_token:
        print("(Slack settings are not set: channel notifications are off)", file=sys.stderr)
    if cmd.kind != "read" and not cmd.actor:
        print(
            "hcswap: say who you are with --as USER (it goes into the audit trail)", file=sys.stderr
        )
        return 2
    reply = commands.execute(engine, cmd, cmd.actor, app=settings.heroku_app_name)
    if cmd.json:
        json.dump(reply.json_document(), sys.stdout, indent=2)
        print()
    elif reply.status == "refused" and reply.document is None:
        print(f"hcswap: {reply.message}", file=sys.stderr)
    else:
        print(reply.text or reply.message)
    return reply.exit_code


def _worker(args: argparse.Namespace) -> int:
    """`swapbot worker`: queued work (rq), the watcher and the channel notifier."""
    from swapbot import logs
    from swapbot.cli import worker
    from swapbot.runtime import MissingSettings

    try:
        settings = config.load_settings()
        logs.setup(settings)
        return worker.run(settings, burst=args.burst, watch_interval=args.watch_interval)
    except (config.SettingsError, MissingSettings) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2


def add_commands(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("worker", help="run queued swap steps (rq) and the watcher")
    w.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    w.add_argument("--watch-interval", type=float, default=30.0, help="seconds between looks (30)")
    w.set_defaults(func=_worker)

    p = sub.add_parser("hcswap", help="run the swap from the terminal (the same rules as in Slack)")
    p.add_argument(
        "subcommand", nargs="?", help="status, plan, a step, next, approve, rollback, history, help"
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.add_argument("--as", dest="actor", help="who you are (a Slack user id or a name)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the calls a step would make; change nothing"
    )
    p.add_argument("--json", action="store_true", help="one JSON document instead of a report")
    p.add_argument(
        "--no-wait", action="store_true", help="do not wait for Heroku Connect or people"
    )
    p.add_argument("--break-glass", metavar="REASON", help="act without a second person (audited)")
    p.set_defaults(func=run)
