"""`swapbot probe`: check swapbot's unconfirmed Heroku assumptions against a real connection.

    swapbot probe --app APP --addon NAME            read-only: safe on production
    swapbot probe --scratch-app APP                 changes things: only on a scratch app

The answers are merged into the results file (SWAPBOT_PROBE_FILE), which the engine reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from swapbot import config
from swapbot.heroku import HerokuError
from swapbot.heroku.probed import Finding


def _probe(args: argparse.Namespace) -> int:
    from swapbot import probe
    from swapbot.probe import render

    settings = config.load_settings()
    if settings.heroku_api_token is None:
        print("set HEROKU_API_TOKEN (see `swapbot config check`)", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else settings.swapbot_probe_file
    if args.list:
        print(render.checks_table())
        return 0
    if args.scratch_app:
        from swapbot.probe import scratch

        try:
            results = scratch.run(
                settings,
                args.scratch_app,
                addon=args.addon,
                forced=args.i_know_this_is_scratch,
                told=_told,
            )
        except (scratch.NotScratch, scratch.SetupFailed, HerokuError) as exc:
            print(str(exc), file=sys.stderr)
            return 2
    else:
        if not args.app:
            print(
                "give --app (read-only checks) or --scratch-app (checks that change things)",
                file=sys.stderr,
            )
            return 2
        ctx = probe.connect(
            settings.heroku_api_token,
            str(settings.heroku_connect_central_url),
            str(settings.heroku_api_url),
            app=args.app,
            addon=args.addon,
        )
        results = probe.run(ctx, told=_told)
    earlier = probe.load_if_present(out)
    merged = earlier.merged(results) if earlier else results
    merged.save(out)
    print()
    print(render.table(merged))
    print(f"\nwritten to {out}")
    return 0


def _told(finding: Finding) -> None:
    print(f"  {finding.verdict:12} {finding.key}: {finding.observed}", flush=True)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="check swapbot's unconfirmed Heroku assumptions on a real connection",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--app", help="the production app: read-only checks only")
    p.add_argument("--addon", help="the Heroku Connect add-on (its resource name)")
    p.add_argument(
        "--scratch-app",
        help="a throw-away app: the checks that change things run there, on a demo add-on the "
        "probe creates and removes (or the one --addon names)",
    )
    p.add_argument(
        "--i-know-this-is-scratch",
        action="store_true",
        help="mark --scratch-app as scratch (sets SWAPBOT_SCRATCH on it) and go on",
    )
    p.add_argument("--out", help="the results file (default: SWAPBOT_PROBE_FILE)")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.set_defaults(func=_probe)
