"""`swapbot config check`: the settings as the bot reads them, secrets masked, and what is missing."""

from __future__ import annotations

import argparse
import sys

from swapbot import config

# Without --mode, a setting is required when the standard deployment needs it: a web dyno
# (`serve`) and a worker dyno (`worker`), as in the Procfile.
DEFAULT_MODES = ("serve", "worker")


def _config_check(args: argparse.Namespace) -> int:
    try:
        settings = config.load_settings()
    except config.SettingsError as exc:
        print("Some settings are malformed (nothing else was checked):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    for name, text in config.masked(settings).items():
        print(f"{name:28} {text}")
    required = [args.mode] if args.mode else list(DEFAULT_MODES)
    print()
    failed = False
    for mode in config.REQUIRED:
        missing = settings.missing_for(mode)
        mark = "required" if mode in required else "optional"
        if missing:
            print(f"{mode:8} ({mark}) missing: " + ", ".join(missing))
            for name in missing:
                print(f"           {name}: e.g. {config.EXAMPLES[name]}")
            failed = failed or mode in required
        else:
            print(f"{mode:8} ({mark}) ok")
    return 1 if failed else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    cfg = sub.add_parser("config", help="inspect settings")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    check = cfg_sub.add_parser("check", help="print settings (secrets masked) and what is missing")
    check.add_argument(
        "--mode",
        choices=sorted(config.REQUIRED),
        help="the way the bot will run; default: serve and worker (the web and worker dynos)",
    )
    check.set_defaults(func=_config_check)
