"""`swapbot db <command>`: the database toolkit from the command line.

Each command is a parser and a handler; the handler returns an exit code and raises UserError
for bad input (printed as one line, exit 2, nothing changed). The work itself is in
`swapbot.database`, a library with no command line of its own: a handler imports the part it
runs when it runs, so a command pays for no other command's modules.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], int]


class _Later:
    """A value of a database module (`module.name`), read when it is needed."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def value(self) -> Any:
        return getattr(importlib.import_module(self.module), self.name)


class _Parser(argparse.ArgumentParser):
    """A command's parser. Building one imports no database module: its description (the summary
    of the module `describe` names) and its `_Later` defaults are read when its help is printed
    or its command runs, so a command pays for no other command's modules."""

    def __init__(self, *args: Any, describe: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.describe = describe

    def _read_defaults(self) -> None:
        for action in self._actions:
            if isinstance(action.default, _Later):
                action.default = action.default.value()

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._read_defaults()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._read_defaults()
        if self.describe and self.description is None:
            self.description = (_Later(self.describe, "__doc__").value() or "").split("\n\n")[0]
        return super().format_help()


def _command(
    db_sub: argparse._SubParsersAction,
    name: str,
    handler: Handler,
    help: str,
    describe: str | None = None,
) -> argparse.ArgumentParser:
    """A command's parser, with the arguments every command takes: where, and how to print."""
    p = db_sub.add_parser(name, help=help, describe=describe)
    p.add_argument("--database-url", required=True, help="postgres://... of the app's database")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=_guarded(handler))
    return p


def _swap_arguments(p: argparse.ArgumentParser) -> None:
    """--schema OLD --new-schema NEW --tables a,b: what every swap-wide command takes."""
    p.add_argument("--schema", required=True, help="OLD: the schema hc1 serves")
    p.add_argument("--new-schema", required=True, help="NEW: the schema hc2 loads")
    p.add_argument("--tables", required=True, help="the moved mappings' tables: a,b")


def _swap(args: argparse.Namespace) -> tuple[str, str, list[str]]:
    """OLD, NEW and the tables of a swap-wide command, validated."""
    from swapbot.database._common import check_identifier, parse_tables

    old = check_identifier(args.schema, "schema")
    new = check_identifier(args.new_schema, "new schema")
    return old, new, parse_tables(args.tables)


def _count_option(p: argparse.ArgumentParser, flag: str, default: _Later, help: str) -> None:
    p.add_argument(flag, type=int, default=default, help=f"{help} (default %(default)s)")


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


# -- preflight -------------------------------------------------------------------------------
def _preflight(args: argparse.Namespace) -> int:
    from swapbot.database import preflight, searchpath
    from swapbot.database._common import emit
    from swapbot.database._session import connect_read_only

    old, new, tables = _swap(args)
    roles = searchpath.parse_roles(args.roles) if args.roles else None
    with connect_read_only(args.database_url) as conn:
        result = preflight.preflight(
            conn, old, new, tables, roles=roles, disk_limit_gb=args.disk_limit_gb
        )
    emit(result, preflight.render, args.json)
    return 1 if result.status == "fail" else 0


def _add_preflight(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _command(
        db_sub, "preflight", _preflight, "check every database requirement of the swap (reads)"
    )
    _swap_arguments(p)
    p.add_argument("--disk-limit-gb", type=float, help="the database plan's disk limit, in GB")
    p.add_argument(
        "--roles", help="the app's roles (default: login roles that set their own search_path)"
    )
    return p


# -- backlog ---------------------------------------------------------------------------------
def _backlog(args: argparse.Namespace) -> int:
    from swapbot.database import backlog
    from swapbot.database._common import check_identifier, emit, parse_tables
    from swapbot.database._session import connect_read_only

    schema = check_identifier(args.schema, "schema")
    tables = parse_tables(args.tables) if args.tables else None
    with connect_read_only(args.database_url) as conn:
        result = backlog.backlog(
            conn, schema, tables, window_minutes=args.minutes, throughput_sample=args.sample
        )
    emit(result, backlog.render, args.json)
    return 0


def _add_backlog(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _command(
        db_sub, "backlog", _backlog,
        "HC's pending writes, failures, write rate and a drain estimate (reads)",
    )  # fmt: skip
    p.add_argument("--schema", required=True, help="the HC schema whose trigger log to read")
    p.add_argument("--tables", help="restrict counts to these mapped tables: a,b")
    backlog = "swapbot.database.backlog"
    _count_option(
        p, "--minutes", _Later(backlog, "DEFAULT_WINDOW_MINUTES"), "window for the write rate"
    )
    _count_option(
        p,
        "--sample",
        _Later(backlog, "DEFAULT_THROUGHPUT_SAMPLE"),
        "archived rows to measure throughput on",
    )
    return p


# -- search-path -----------------------------------------------------------------------------
def _search_path(args: argparse.Namespace) -> int:
    from swapbot.database import searchpath
    from swapbot.database._common import UserError, connect, emit

    old, new, tables = _swap(args)
    roles = searchpath.parse_roles(args.roles)
    if args.action in ("switch", "restore") and not args.state_file:
        raise UserError(f"{args.action} needs --state-file to keep the previous settings in")
    previous = searchpath.load_record(args.state_file)
    if args.action == "restore":
        if previous is None:
            raise UserError(f"no switch record in {args.state_file}: nothing to restore")
        if (previous.old_schema, previous.new_schema) != (old, new):
            raise UserError(
                f"{args.state_file} records a switch from {previous.old_schema} to "
                f"{previous.new_schema}, not from {old} to {new}"
            )
    with connect(args.database_url, autocommit=True) as conn:
        if args.action == "show":
            report = searchpath.show(conn, roles, old, new, tables)
            emit(report, searchpath.render_report, args.json)
            return 0
        if args.action == "restore":
            assert previous is not None  # checked above
            result = searchpath.restore(conn, previous)
            emit(result, searchpath.render_restore, args.json)
            return 0 if result.identical else 1
        login_as = conn.info.user
        record = searchpath.switch(
            conn,
            roles,
            old,
            new,
            tables,
            database=args.database,
            previous=previous,
            save=lambda rec: searchpath.save_record(args.state_file, rec),
            logins={login_as: args.database_url},
        )
    emit(record, searchpath.render_switch, args.json)
    return 0 if record.proven else 1


def _add_search_path(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _command(
        db_sub, "search-path", _search_path,
        "show, switch (writes) or restore (writes) the app's search_path",
    )  # fmt: skip
    p.add_argument("action", choices=["show", "switch", "restore"])
    p.add_argument("--roles", default="", help="the app's roles: r1,r2")
    p.add_argument("--database", action="store_true", help="also set the database-level default")
    _swap_arguments(p)
    p.add_argument("--state-file", help="JSON file that keeps the switch record (switch, restore)")
    return p


# -- parity ----------------------------------------------------------------------------------
def _parity(args: argparse.Namespace) -> int:
    from swapbot.database import parity
    from swapbot.database._common import emit
    from swapbot.database._session import connect_read_only

    old, new, tables = _swap(args)
    with connect_read_only(args.database_url) as conn:
        result = parity.parity(conn, old, new, tables, chunk=args.chunk, sample=args.sample)
    emit(result, parity.render, args.json)
    return 0 if result.equal else 1


def _add_parity(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _command(
        db_sub, "parity", _parity,
        "compare the changed tables' rows in the old and new schema (reads)",
    )  # fmt: skip
    _swap_arguments(p)
    parity = "swapbot.database.parity"
    _count_option(p, "--chunk", _Later(parity, "DEFAULT_CHUNK"), "rows per chunk")
    _count_option(
        p, "--sample", _Later(parity, "DEFAULT_SAMPLE"), "differing sfids to list per table"
    )
    return p


# -- inventory -------------------------------------------------------------------------------
def _inventory(args: argparse.Namespace) -> int:
    from swapbot.database import inventory
    from swapbot.database._common import check_identifier, connect, emit, parse_tables

    tables = parse_tables(args.tables)
    check_identifier(args.schema, "schema")
    with connect(args.database_url, autocommit=True) as conn:
        # The text report shows no re-targeted definitions: only JSON prints them.
        inv = inventory.inventory(conn, args.schema, tables, args.new_schema, definitions=args.json)
    emit(inv, inventory.render, args.json)
    return 0


def _add_inventory(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _command(
        db_sub, "inventory", _inventory,
        "objects the swap must carry from OLD to NEW, classified by phase (reads only)",
        describe="swapbot.database.inventory",
    )  # fmt: skip
    p.add_argument("--schema", required=True, help="OLD: the schema hc1 serves")
    p.add_argument("--tables", required=True, help="the changed mappings' tables: a,b")
    p.add_argument("--new-schema", help="NEW, to show each object's re-targeted definition")
    return p


# -- ddl -------------------------------------------------------------------------------------
def _ddl(args: argparse.Namespace) -> int:
    from swapbot.database import ddl
    from swapbot.database._common import connect, emit, require_schema

    old, new, tables = _swap(args)
    with connect(args.database_url, autocommit=True) as conn:
        require_schema(conn, old)
        if args.apply:
            result = ddl.apply(
                conn, old, new, tables, args.phase,
                lock_timeout_ms=args.lock_timeout, attempts=args.attempts,
            )  # fmt: skip
        else:
            result = ddl.plan(conn, old, new, tables, args.phase)
    emit(result, ddl.render, args.json)
    return 0


def _add_ddl(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _command(
        db_sub, "ddl", _ddl,
        "SQL for prep, cutover or rollback, re-targeted from OLD to NEW (--apply runs it)",
        describe="swapbot.database.ddl",
    )  # fmt: skip
    _swap_arguments(p)
    p.add_argument("--phase", required=True, choices=["prep", "cutover", "rollback"])
    p.add_argument("--apply", action="store_true", help="run the phase in one transaction")
    p.add_argument("--lock-timeout", type=_at_least_one, default=2000, help="ms per lock (2000)")
    p.add_argument("--attempts", type=_at_least_one, default=5, help="tries when a lock times out")
    return p


# -- verify ----------------------------------------------------------------------------------
def _verify(args: argparse.Namespace) -> int:
    from swapbot.database import verify
    from swapbot.database._common import check_identifier, connect, emit

    old, new, tables = _swap(args)
    roles = [check_identifier(r.strip(), "role") for r in (args.role or "").split(",") if r.strip()]
    since = verify.parse_since(args.since)
    columns = verify.parse_columns(args.columns)
    with connect(args.database_url, autocommit=True) as conn:
        result = verify.verify(conn, old, new, tables, since, roles=roles, columns=columns)
    emit(result, verify.render, args.json, ok=result.ok)
    return 0 if result.ok else 1


def _add_verify(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _command(
        db_sub, "verify", _verify,
        "after the cutover: names resolve to NEW, data arrives, nothing bound to OLD",
        describe="swapbot.database.verify",
    )  # fmt: skip
    _swap_arguments(p)
    p.add_argument("--since", required=True, help="ISO time of the cutover: rows must be newer")
    p.add_argument("--role", help="the app's role(s), comma-separated: resolve names as them")
    p.add_argument("--columns", help="table.column,... the new fields that must exist in NEW")
    return p


# The commands in the order `--help` lists them.
COMMANDS: list[Callable[[argparse._SubParsersAction], argparse.ArgumentParser]] = [
    _add_preflight,
    _add_backlog,
    _add_search_path,
    _add_parity,
    _add_inventory,
    _add_ddl,
    _add_verify,
]


def _guarded(func: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        from swapbot.database._common import UserError

        # A command is a process of its own that runs once. What it reads (catalog rows, parse
        # trees) lives until it ends, so the cyclic collector would only walk it again and
        # again (a third of a large inventory's time), and the interpreter's collection at exit
        # would walk every object still there (a tenth of a `db ddl`). So the collector is off
        # while it runs, and what is left is frozen for the exit: never walked again. A caller
        # in the same process (a test) gets the collector back, but what the command left is
        # kept for good (frozen objects are never collected).
        collecting = gc.isenabled()
        gc.disable()
        try:
            return int(func(args) or 0)
        except UserError as exc:
            print(f"swapbot db {args.db_command}: {exc}", file=sys.stderr)
            return 2
        finally:
            gc.freeze()
            if collecting:
                gc.enable()

    return run


def add_commands(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser(
        "db", help="database toolkit: preflight, inventory, ddl, backlog, search-path, ..."
    )
    db_sub = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(db_sub)
