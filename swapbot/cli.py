"""The `swapbot` command: one entry point for every way of running the bot and its tools."""

from __future__ import annotations

import argparse
import logging
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swapbot", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)

    cfg = sub.add_parser("config", help="inspect settings")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    check = cfg_sub.add_parser("check", help="print settings (secrets masked) and what is missing")
    check.add_argument(
        "--mode",
        choices=sorted(config.REQUIRED),
        help="the way the bot will run; default: serve and worker (the web and worker dynos)",
    )
    check.set_defaults(func=_config_check)

    from swapbot.database import cli as database_cli
    from swapbot.sandbox import cli as sandbox_cli
    from swapbot.slack import cli as slack_cli
    from swapbot.swap import cli as swap_cli

    sandbox_cli.add_commands(sub)
    database_cli.add_commands(sub)
    swap_cli.add_commands(sub)
    slack_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
