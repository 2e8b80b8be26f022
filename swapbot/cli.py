"""The `swapbot` command: one entry point for every way of running the bot and its tools."""

from __future__ import annotations

import argparse
import logging
import sys

from swapbot import config


def _config_check(args: argparse.Namespace) -> int:
    try:
        settings = config.load_settings()
    except config.SettingsError as exc:
        print("Some settings are malformed:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    for name, text in config.masked(settings).items():
        print(f"{name:28} {text}")
    modes = [args.mode] if args.mode else list(config.REQUIRED)
    failed = False
    print()
    for mode in modes:
        missing = settings.missing_for(mode)
        if missing:
            print(f"{mode:8} missing: " + ", ".join(missing))
            for name in missing:
                print(f"           {name}: e.g. {config.EXAMPLES[name]}")
        else:
            print(f"{mode:8} ok")
        failed = failed or (bool(missing) and args.mode is not None)
    if args.mode is None and any(settings.missing_for(m) for m in modes):
        # Without --mode, a missing setting is reported but only fails the modes asked for.
        return 1 if args.strict else 0
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swapbot", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)

    cfg = sub.add_parser("config", help="inspect settings")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    check = cfg_sub.add_parser("check", help="print settings (secrets masked) and what is missing")
    check.add_argument(
        "--mode", choices=sorted(config.REQUIRED), help="fail if this mode lacks a setting"
    )
    check.add_argument("--strict", action="store_true", help="fail if any mode lacks a setting")
    check.set_defaults(func=_config_check)

    from swapbot.database import cli as database_cli
    from swapbot.sandbox import cli as sandbox_cli

    sandbox_cli.add_commands(sub)
    database_cli.add_commands(sub)
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
