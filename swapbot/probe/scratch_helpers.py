"""What the scratch checks share: waiting for Heroku Connect, the status of an answer, the
scratch database, and the evidence kept during the setup.

The database's URL stays in `ctx.database_url`: no error raised here carries it (nor the host
or user a driver message may name).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from swapbot.heroku import LOADING_STATES, MAPPING_TEMPORARY_STATES, Connection, HerokuApiError
from swapbot.probe.checks import CheckFn, Context, Seen, unknown
from swapbot.probe.results import Exchange

# Longest watch for something that may never happen (a poll, a processed row, a dropped schema).
POLL_WATCH = 60.0
WRITER_WATCH = 30.0
QUIET_WATCH = 10.0
# Mapping states in which a mapping is still getting somewhere (a load, a config change).
MOVING = LOADING_STATES | MAPPING_TEMPORARY_STATES
# Trigger-log states of a row Heroku Connect has not written yet.
WAITING = ("NEW", "PENDING")


class NotReady(ValueError):
    """A check found the connection not in the state it needs (the runner reports unknown)."""


class DatabaseProblem(ValueError):
    """The scratch database could not be reached or queried (never with its URL)."""


class NotRun(Exception):
    """The check would have to change what the probe did not make: it is not run."""


def not_run_is_unknown(check: CheckFn) -> CheckFn:
    """`check`, whose NotRun is the finding unknown("not run: ...")."""

    @functools.wraps(check)
    def run(ctx: Context) -> Seen:
        try:
            return check(ctx)
        except NotRun as exc:
            return unknown(f"not run: {exc}")

    return run


# --- waiting -------------------------------------------------------------------------------------


def poll(ctx: Context) -> float:
    return float(ctx.state.get("poll", 1.0))


def until(ctx: Context, what: Callable[[], Any], seconds: float | None = None) -> Any:
    """`what()` every poll interval until it is truthy or `seconds` (default: wait_seconds)
    pass; its last value."""
    deadline = time.monotonic() + (ctx.wait_seconds if seconds is None else seconds)
    while True:
        value = what()
        if value or time.monotonic() >= deadline:
            return value
        ctx.sleep(poll(ctx))


def connection(ctx: Context) -> Connection:
    """The connection with its mappings (GET deep=true)."""
    return ctx.connect.get_connection(ctx.ref())


def wait_state(
    ctx: Context,
    ok: Callable[[Connection], bool],
    seconds: float | None = None,
    seen: list[str] | None = None,
) -> Connection | None:
    """The connection once `ok(connection)`, else None; every state met goes to `seen`."""

    def check() -> Connection | None:
        c = connection(ctx)
        if seen is not None and c.state and (not seen or seen[-1] != c.state):
            seen.append(c.state)
        return c if ok(c) else None

    found: Connection | None = until(ctx, check, seconds)
    return found


def is_settled(c: Connection) -> bool:
    return c.state == "IDLE" and not any(m.state in MOVING for m in c.mappings)


def settled(ctx: Context) -> Connection:
    """The connection once IDLE with no mapping loading; NotReady after wait_seconds."""
    found = wait_state(ctx, is_settled)
    if found is None:
        c = connection(ctx)
        states = ", ".join(f"{m.object_name} {m.state}" for m in c.mappings)
        raise NotReady(
            f"the connection did not settle in {ctx.wait_seconds:.0f} s "
            f"(it is {c.state}{'; ' + states if states else ''})"
        )
    return found


@contextlib.contextmanager
def paused(ctx: Context) -> Iterator[Connection]:
    """The connection paused for the body, and resumed after it, even on an error."""
    ref = ctx.ref()
    ctx.connect.pause(ref)
    try:
        found = wait_state(ctx, lambda c: c.state == "PAUSED")
        if found is None:
            raise NotReady(f"the connection did not pause in {ctx.wait_seconds:.0f} s")
        yield found
    finally:
        ctx.connect.resume(ref)
        wait_state(ctx, lambda c: c.state != "PAUSED")


# --- answers -------------------------------------------------------------------------------------


def answer(ctx: Context, call: Callable[[], object]) -> tuple[int | None, str]:
    """The status Heroku answered `call` with (the last attempt's), and its error message."""
    mark = ctx.recorder.mark()
    try:
        call()
    except HerokuApiError as exc:
        return exc.status, exc.message
    answers = ctx.recorder.since(mark)
    return (answers[-1].status if answers else None), ""


def ok(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def refused(status: int | None) -> bool:
    return status is not None and 400 <= status < 500


def said(status: int | None, message: str) -> str:
    return f"{status}: {message}" if message else str(status)


# --- evidence gathered during the setup ----------------------------------------------------------


def keep(ctx: Context, key: str, seen: Seen | None, mark: int) -> None:
    """What the setup saw for the check `key`, and the exchanges since `mark` as its evidence."""
    if seen is not None:
        ctx.state[f"seen:{key}"] = seen
    ctx.state[f"evidence:{key}"] = ctx.recorder.since(mark)


def replay(ctx: Context, key: str) -> Seen | None:
    """Put the exchanges the setup made for check `key` back on the record, so that the runner
    counts them as the check's evidence; what the setup saw for it."""
    kept: list[Exchange] = ctx.state.get(f"evidence:{key}") or []
    ctx.recorder.exchanges.extend(kept)
    seen: Seen | None = ctx.state.get(f"seen:{key}")
    return seen


# --- the scratch database ------------------------------------------------------------------------


@contextlib.contextmanager
def database(ctx: Context) -> Iterator[psycopg.Connection[TupleRow]]:
    if not ctx.database_url:
        raise DatabaseProblem("the scratch database is not known")
    try:
        conn = psycopg.connect(
            ctx.database_url, application_name="swapbot-probe", autocommit=True, connect_timeout=10
        )
    except psycopg.Error as exc:
        # Not the message: it may name the host and the user.
        raise DatabaseProblem(
            f"could not connect to the scratch database ({type(exc).__name__})"
        ) from None
    try:
        with conn:
            yield conn
    except psycopg.Error as exc:
        raise DatabaseProblem(
            f"database: {exc.diag.message_primary or type(exc).__name__}"
        ) from None


def one(ctx: Context, query: LiteralString | sql.Composed, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row, None without a row."""
    with database(ctx) as db:
        row = db.execute(query, params).fetchone()
    return None if row is None else row[0]


def schema_exists(ctx: Context, schema: str) -> bool:
    return bool(one(ctx, "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)))


def tables(ctx: Context, schema: str) -> list[str]:
    with database(ctx) as db:
        rows = db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,)
        ).fetchall()
    return [str(r[0]) for r in rows]


def has_column(ctx: Context, schema: str, table: str, column: str) -> bool:
    return bool(
        one(
            ctx,
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s AND column_name = %s",
            (schema, table, column),
        )
    )


def drop_schema(ctx: Context, schema: str) -> None:
    with database(ctx) as db:
        db.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def made_schema(ctx: Context, schema: str) -> None:
    """Note `schema` as the probe's own, to drop at the end: only a schema that was not there
    before the probe asked for it (`schema_exists` said so)."""
    ctx.state.setdefault("schemas", []).append(schema)


def table_of(object_name: str) -> str:
    """The table HC makes for an object: its API name in lower case."""
    return object_name.lower()
