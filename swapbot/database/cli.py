"""`swapbot db <command>`: the database toolkit from the command line.

Each command module defines `add_command(subparsers)`; its handler returns an exit code and
raises UserError for bad input (printed as one line, exit 2, nothing changed).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from swapbot.database._common import UserError

# Modules under swapbot.database that provide a command, in the order `--help` lists them.
COMMANDS: list[str] = ["preflight", "backlog", "searchpath", "parity", "inventory", "ddl", "verify"]


def _guarded(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args) or 0)
        except UserError as exc:
            print(f"swapbot db {args.db_command}: {exc}", file=sys.stderr)
            return 2

    return run


def add_commands(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser(
        "db", help="database toolkit: preflight, inventory, ddl, backlog, search-path, ..."
    )
    db_sub = db.add_subparsers(dest="db_command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"swapbot.database.{name}")
        parser = module.add_command(db_sub)
        parser.set_defaults(func=_guarded(parser.get_default("func")))
