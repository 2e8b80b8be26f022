"""The `swapbot` command: one entry point for every way of running the bot and its tools."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Each command, and the module that defines it (some define two). Only the module of the
# command named on the line is imported: `swapbot db inventory` pays for neither Slack, rq nor
# the settings. Without a known command, every module is, so that --help lists them all.
COMMANDS: dict[str, str] = {
    "config": "swapbot.cli.settings",
    "probe": "swapbot.cli.probe",
    "sandbox": "swapbot.cli.sandbox",
    "demo": "swapbot.cli.sandbox",
    "db": "swapbot.cli.database",
    "worker": "swapbot.cli.hcswap",
    "hcswap": "swapbot.cli.hcswap",
    "serve": "swapbot.cli.slack",
    "socket": "swapbot.cli.slack",
}


def _named(argv: list[str]) -> str | None:
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swapbot", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)
    named = _named(sys.argv[1:] if argv is None else argv)
    wanted = [COMMANDS[named]] if named in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for module in wanted:
        importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
