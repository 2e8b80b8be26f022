"""`swapbot db <command>`: the database toolkit from the command line.

Each command is a parser and a handler; the handler returns an exit code and raises UserError
for bad input (printed as one line, exit 2, nothing changed). The work itself is in
`swapbot.database`, a library with no command line of its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from swapbot.database import backlog, ddl, inventory, parity, preflight, searchpath, verify
from swapbot.database._common import (
    UserError,
    check_identifier,
    connect,
    emit,
    parse_tables,
    require_schema,
)
from swapbot.database._session import connect_read_only

Handler = Callable[[argparse.Namespace], int]


def _connection_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", required=True, help="postgres://... of the app's database")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def _swap_arguments(p: argparse.ArgumentParser) -> None:
    """--schema OLD --new-schema NEW --tables a,b: what every swap-wide command takes."""
    p.add_argument("--schema", required=True, help="OLD: the schema hc1 serves")
    p.add_argument("--new-schema", required=True, help="NEW: the schema hc2 loads")
    p.add_argument("--tables", required=True, help="the moved mappings' tables: a,b")


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _summary(module: object) -> str:
    return (module.__doc__ or "").split("\n\n")[0]


# -- preflight -------------------------------------------------------------------------------
def _preflight(args: argparse.Namespace) -> int:
    old = check_identifier(args.schema, "schema")
    new = check_identifier(args.new_schema, "new schema")
    tables = parse_tables(args.tables)
    roles = searchpath.parse_roles(args.roles) if args.roles else None
    with connect_read_only(args.database_url) as conn:
        result = preflight.preflight(
            conn, old, new, tables, roles=roles, disk_limit_gb=args.disk_limit_gb
        )
    emit(result.model_dump(mode="json"), preflight.render(result), args.json)
    return 1 if result.status == "fail" else 0


def _add_preflight(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = db_sub.add_parser("preflight", help="check every database requirement of the swap (reads)")
    _connection_arguments(p)
    _swap_arguments(p)
    p.add_argument("--disk-limit-gb", type=float, help="the database plan's disk limit, in GB")
    p.add_argument(
        "--roles", help="the app's roles (default: login roles that set their own search_path)"
    )
    p.set_defaults(func=_preflight)
    return p


# -- backlog ---------------------------------------------------------------------------------
def _backlog(args: argparse.Namespace) -> int:
    schema = check_identifier(args.schema, "schema")
    tables = parse_tables(args.tables) if args.tables else None
    with connect_read_only(args.database_url) as conn:
        result = backlog.backlog(
            conn, schema, tables, window_minutes=args.minutes, throughput_sample=args.sample
        )
    emit(result.model_dump(mode="json"), backlog.render(result), args.json)
    return 0


def _add_backlog(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = db_sub.add_parser(
        "backlog", help="HC's pending writes, failures, write rate and a drain estimate (reads)"
    )
    _connection_arguments(p)
    p.add_argument("--schema", required=True, help="the HC schema whose trigger log to read")
    p.add_argument("--tables", help="restrict counts to these mapped tables: a,b")
    p.add_argument(
        "--minutes",
        type=int,
        default=backlog.DEFAULT_WINDOW_MINUTES,
        help="window for the write rate (default %(default)s)",
    )
    p.add_argument(
        "--sample",
        type=int,
        default=backlog.DEFAULT_THROUGHPUT_SAMPLE,
        help="archived rows to measure throughput on (default %(default)s)",
    )
    p.set_defaults(func=_backlog)
    return p


# -- search-path -----------------------------------------------------------------------------
def _search_path(args: argparse.Namespace) -> int:
    old = check_identifier(args.schema, "schema")
    new = check_identifier(args.new_schema, "new schema")
    tables = parse_tables(args.tables)
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
            emit(report.model_dump(mode="json"), searchpath.render_report(report), args.json)
            return 0
        if args.action == "restore":
            assert previous is not None  # checked above
            result = searchpath.restore(conn, previous)
            emit(result.model_dump(mode="json"), searchpath.render_restore(result), args.json)
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
    emit(record.model_dump(mode="json"), searchpath.render_switch(record), args.json)
    return 0 if record.proven else 1


def _add_search_path(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = db_sub.add_parser(
        "search-path", help="show, switch (writes) or restore (writes) the app's search_path"
    )
    p.add_argument("action", choices=["show", "switch", "restore"])
    _connection_arguments(p)
    p.add_argument("--roles", default="", help="the app's roles: r1,r2")
    p.add_argument("--database", action="store_true", help="also set the database-level default")
    _swap_arguments(p)
    p.add_argument("--state-file", help="JSON file that keeps the switch record (switch, restore)")
    p.set_defaults(func=_search_path)
    return p


# -- parity ----------------------------------------------------------------------------------
def _parity(args: argparse.Namespace) -> int:
    old = check_identifier(args.schema, "schema")
    new = check_identifier(args.new_schema, "new schema")
    tables = parse_tables(args.tables)
    with connect_read_only(args.database_url) as conn:
        result = parity.parity(conn, old, new, tables, chunk=args.chunk, sample=args.sample)
    emit(result.model_dump(mode="json"), parity.render(result), args.json)
    return 0 if result.equal else 1


def _add_parity(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = db_sub.add_parser(
        "parity", help="compare the changed tables' rows in the old and new schema (reads)"
    )
    _connection_arguments(p)
    _swap_arguments(p)
    p.add_argument(
        "--chunk",
        type=int,
        default=parity.DEFAULT_CHUNK,
        help="rows per chunk (default %(default)s)",
    )
    p.add_argument(
        "--sample",
        type=int,
        default=parity.DEFAULT_SAMPLE,
        help="differing sfids to list per table (default %(default)s)",
    )
    p.set_defaults(func=_parity)
    return p


# -- inventory -------------------------------------------------------------------------------
def _inventory(args: argparse.Namespace) -> int:
    tables = parse_tables(args.tables)
    check_identifier(args.schema, "schema")
    with connect(args.database_url, autocommit=True) as conn:
        inv = inventory.inventory(conn, args.schema, tables, args.new_schema)
    emit(inv.model_dump(mode="json"), inventory.render(inv), args.json)
    return 0


def _add_inventory(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = db_sub.add_parser(
        "inventory",
        help="objects the swap must carry from OLD to NEW, classified by phase (reads only)",
        description=_summary(inventory),
    )
    _connection_arguments(p)
    p.add_argument("--schema", required=True, help="OLD: the schema hc1 serves")
    p.add_argument("--tables", required=True, help="the changed mappings' tables: a,b")
    p.add_argument("--new-schema", help="NEW, to show each object's re-targeted definition")
    p.set_defaults(func=_inventory)
    return p


# -- ddl -------------------------------------------------------------------------------------
def _ddl(args: argparse.Namespace) -> int:
    tables = parse_tables(args.tables)
    check_identifier(args.schema, "schema")
    check_identifier(args.new_schema, "new schema")
    with connect(args.database_url, autocommit=True) as conn:
        require_schema(conn, args.schema)
        if args.apply:
            result = ddl.apply(
                conn, args.schema, args.new_schema, tables, args.phase,
                lock_timeout_ms=args.lock_timeout, attempts=args.attempts,
            )  # fmt: skip
        else:
            result = ddl.plan(conn, args.schema, args.new_schema, tables, args.phase)
    emit(result.model_dump(mode="json"), ddl.render(result), args.json)
    return 0


def _add_ddl(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = db_sub.add_parser(
        "ddl",
        help="SQL for prep, cutover or rollback, re-targeted from OLD to NEW (--apply runs it)",
        description=_summary(ddl),
    )
    _connection_arguments(p)
    _swap_arguments(p)
    p.add_argument("--phase", required=True, choices=["prep", "cutover", "rollback"])
    p.add_argument("--apply", action="store_true", help="run the phase in one transaction")
    p.add_argument("--lock-timeout", type=_at_least_one, default=2000, help="ms per lock (2000)")
    p.add_argument("--attempts", type=_at_least_one, default=5, help="tries when a lock times out")
    p.set_defaults(func=_ddl)
    return p


# -- verify ----------------------------------------------------------------------------------
def _verify(args: argparse.Namespace) -> int:
    tables = parse_tables(args.tables)
    check_identifier(args.schema, "schema")
    check_identifier(args.new_schema, "new schema")
    roles = [check_identifier(r.strip(), "role") for r in (args.role or "").split(",") if r.strip()]
    since = verify.parse_since(args.since)
    columns = verify.parse_columns(args.columns)
    with connect(args.database_url, autocommit=True) as conn:
        result = verify.verify(
            conn, args.schema, args.new_schema, tables, since, roles=roles, columns=columns
        )
    document = result.model_dump(mode="json") | {"ok": result.ok}
    emit(document, verify.render(result), args.json)
    return 0 if result.ok else 1


def _add_verify(db_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = db_sub.add_parser(
        "verify",
        help="after the cutover: names resolve to NEW, data arrives, nothing bound to OLD",
        description=_summary(verify),
    )
    _connection_arguments(p)
    _swap_arguments(p)
    p.add_argument("--since", required=True, help="ISO time of the cutover: rows must be newer")
    p.add_argument("--role", help="the app's role(s), comma-separated: resolve names as them")
    p.add_argument("--columns", help="table.column,... the new fields that must exist in NEW")
    p.set_defaults(func=_verify)
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
    for add in COMMANDS:
        parser = add(db_sub)
        parser.set_defaults(func=_guarded(parser.get_default("func")))
