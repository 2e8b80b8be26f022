"""How much work Heroku Connect still has to push to Salesforce, and how long the drain would take.

Reads `_trigger_log` and `_trigger_log_archive` through the indexes HC creates on them, so it
stays cheap on a busy connection: the archive (often millions of rows) is only ever reached
through `_trigger_log_archive_idx_created_at` and the FAILED partial index.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import psycopg
from psycopg import sql
from pydantic import BaseModel

from swapbot.database._common import (
    UserError,
    check_identifier,
    parse_tables,
    qualified,
    require_mapped_tables,
    require_schema,
)
from swapbot.database._session import CHEAP, snapshot

# HC's "work to do" states: exactly the ones its partial index `_trigger_log_idx_state_table_name`
# covers. READONLY and IGNORE rows are captured but never sent.
WORK_STATES = ("NEW", "PENDING")
NEVER_SENT = ("READONLY", "IGNORE")
DEFAULT_WINDOW_MINUTES = 15
DEFAULT_THROUGHPUT_SAMPLE = 2000
FAILURE_SAMPLE = 5


class TablePending(BaseModel):
    table: str
    state: str
    rows: int
    oldest: datetime


class Failure(BaseModel):
    source: Literal["live", "archive"]
    id: int
    table: str | None
    record_id: int | None
    action: str | None
    created_at: datetime | None
    sf_message: str | None


class Backlog(BaseModel):
    schema_name: str
    tables: list[str] | None  # None: every table of the schema
    measured_at: datetime
    states: dict[str, int]  # live `_trigger_log` rows by state (for the tables asked)
    pending: int  # NEW + PENDING rows of the tables asked
    pending_all_tables: int  # NEW + PENDING rows of every table: what the writer must get through
    pending_by_table: list[TablePending]
    oldest_pending_at: datetime | None
    oldest_pending_age_seconds: float | None
    failures_last_day: int  # FAILED rows created in the last 24 h, live + archive
    failures_by_table: dict[str, int]
    recent_failures: list[Failure]
    window_minutes: int
    created_in_window: int  # rows captured in the window, live + archive, any state
    created_per_minute: float
    to_send_per_minute: float  # the same, without READONLY / IGNORE rows
    throughput_sample_rows: int
    throughput_per_minute: float | None  # average over the most recently created archived rows
    peak_per_minute: float | None  # the busiest whole minute in that sample
    drain_seconds: float | None  # pending_all_tables at the best observed throughput
    notes: list[str]


def _filter(tables: list[str] | None) -> sql.Composable:
    return sql.SQL(" AND table_name = ANY(%(tables)s)") if tables else sql.SQL("")


def queries(schema: str, tables: list[str] | None = None) -> dict[str, sql.Composed]:
    """Every statement `backlog` runs, by name, so tests can EXPLAIN them. Parameters are named:
    `schema`, `tables`, `minutes`, `sample`, `failures`."""
    live = qualified(schema, "_trigger_log")
    archive = qualified(schema, "_trigger_log_archive")
    only = _filter(tables)
    work = sql.SQL(", ").join(sql.Literal(s) for s in WORK_STATES)
    never = sql.SQL(", ").join(sql.Literal(s) for s in NEVER_SENT)
    day = sql.SQL("created_at > now() - interval '1 day'")
    failed = sql.SQL(
        "SELECT {src} AS source, id, table_name, record_id, action, created_at, sf_message"
        " FROM {t} WHERE state = 'FAILED' AND {day}{only}"
    )
    failures = sql.SQL("{} UNION ALL {}").format(
        failed.format(src=sql.Literal("live"), t=live, day=day, only=only),
        failed.format(src=sql.Literal("archive"), t=archive, day=day, only=only),
    )
    window = sql.SQL("created_at > now() - make_interval(mins => %(minutes)s)")
    created = sql.SQL(
        "SELECT count(*) AS n, count(*) FILTER (WHERE state IS NULL OR state NOT IN ({never})) AS s"
        " FROM {t} WHERE {window}{only}"
    )
    return {
        # Exact counts by state without hashing every row: the states present come from a skip
        # scan of `_trigger_log_idx_state_id`, each is counted through that index, except the
        # most common one (HC's statistics), which is the total less the others. One statement,
        # so one snapshot; a stale statistic only makes it slower, never wrong.
        "states": sql.SQL(
            "WITH RECURSIVE s(state) AS ("
            " (SELECT state FROM {live} WHERE state IS NOT NULL ORDER BY state LIMIT 1)"
            " UNION ALL SELECT (SELECT t.state FROM {live} t WHERE t.state > s.state"
            "   ORDER BY t.state LIMIT 1) FROM s WHERE s.state IS NOT NULL),"
            " big AS (SELECT (most_common_vals::text::text[])[1] AS state FROM pg_catalog.pg_stats"
            "   WHERE schemaname = %(schema)s AND tablename = '_trigger_log' AND attname = 'state')"
            " SELECT s.state, CASE WHEN s.state IS NOT DISTINCT FROM (SELECT state FROM big)"
            "   THEN NULL ELSE (SELECT count(*) FROM {live} t WHERE t.state = s.state{only}) END"
            " FROM s WHERE s.state IS NOT NULL"
            " UNION ALL SELECT NULL, (SELECT count(*) FROM {live} WHERE state IS NULL{only})"
            " UNION ALL SELECT '*', (SELECT count(*) FROM {live} WHERE true{only})"
        ).format(live=live, only=only),
        # Every table, through the partial index: the writer drains them all in one queue.
        "pending": sql.SQL(
            "SELECT table_name, state, count(*), min(created_at) FROM {live}"
            " WHERE state IN ({work}) GROUP BY table_name, state ORDER BY table_name, state"
        ).format(live=live, work=work),
        "failures_by_table": sql.SQL(
            "SELECT table_name, count(*) FROM ({failures}) f GROUP BY table_name ORDER BY 1"
        ).format(failures=failures),
        "recent_failures": sql.SQL(
            "SELECT * FROM ({failures}) f ORDER BY created_at DESC NULLS LAST LIMIT %(failures)s"
        ).format(failures=failures),
        "created": sql.SQL("SELECT l.n, l.s, a.n, a.s FROM ({l}) l, ({a}) a").format(
            l=created.format(never=never, t=live, window=window, only=only),
            a=created.format(never=never, t=archive, window=window, only=only),
        ),
        # The most recently created archived rows, newest first along the created_at index: a
        # bounded sample however busy the connection is.
        "throughput": sql.SQL(
            "WITH s AS (SELECT processed_at FROM {archive} WHERE processed_at IS NOT NULL"
            " ORDER BY created_at DESC LIMIT %(sample)s)"
            " SELECT count(*), min(processed_at), max(processed_at),"
            " (SELECT max(n) FROM (SELECT count(*) AS n FROM s"
            "   GROUP BY date_trunc('minute', processed_at)) m)"
            " FROM s"
        ).format(archive=archive),
    }


def _states(rows: list[tuple]) -> dict[str, int]:
    """Counts by state from the "states" statement: the one left uncounted is the rest."""
    total = next(n for state, n in rows if state == "*")
    counts = {("(null)" if state is None else state): n for state, n in rows if state != "*"}
    rest = [state for state, n in counts.items() if n is None]
    for state in rest:
        counts[state] = total - sum(n for n in counts.values() if n is not None)
    return {state: n for state, n in sorted(counts.items()) if n}


def require_hc_schema(conn: psycopg.Connection, schema: str) -> None:
    require_schema(conn, schema)
    row = conn.execute(
        "SELECT to_regclass(format('%%I.%%I', %s::text, '_trigger_log')),"
        " to_regclass(format('%%I.%%I', %s::text, '_trigger_log_archive'))",
        (schema, schema),
    ).fetchone()
    if row is None or row[0] is None or row[1] is None:
        raise UserError(
            f"schema {schema} has no _trigger_log / _trigger_log_archive: "
            "not a Heroku Connect schema"
        )


def backlog(
    conn: psycopg.Connection,
    schema: str,
    tables: list[str] | None = None,
    *,
    window_minutes: int = DEFAULT_WINDOW_MINUTES,
    throughput_sample: int = DEFAULT_THROUGHPUT_SAMPLE,
) -> Backlog:
    """The write backlog of one HC schema, optionally restricted to some of its mapped tables."""
    check_identifier(schema, "schema")
    tables = parse_tables(tables) if tables else None
    if window_minutes < 1 or throughput_sample < 2:
        raise UserError("the window must be at least 1 minute and the sample at least 2 rows")
    require_hc_schema(conn, schema)
    if tables:
        require_mapped_tables(conn, schema, tables)
    q = queries(schema, tables)
    params = {
        "schema": schema,
        "tables": tables,
        "minutes": window_minutes,
        "sample": throughput_sample,
        "failures": FAILURE_SAMPLE,
    }

    with snapshot(conn, CHEAP):
        # One round trip for the lot: on a remote database latency would dominate otherwise.
        with conn.pipeline():
            cursors = {name: conn.execute(stmt, params) for name, stmt in q.items()}
            clock = conn.execute("SELECT now()")
        rows = {name: cur.fetchall() for name, cur in cursors.items()}
        measured_at = clock.fetchone()[0]
    states = _states(rows["states"])
    pending_rows = [
        TablePending(table=t, state=s, rows=n, oldest=o) for t, s, n, o in rows["pending"]
    ]
    chosen = [p for p in pending_rows if not tables or p.table in tables]
    oldest = min((p.oldest for p in chosen), default=None)
    failures_by_table = {t or "(null)": n for t, n in rows["failures_by_table"]}
    recent = [
        Failure(
            source=r[0],
            id=r[1],
            table=r[2],
            record_id=r[3],
            action=r[4],
            created_at=r[5],
            sf_message=(r[6] or "")[:300] or None,
        )
        for r in rows["recent_failures"]
    ]
    live_n, live_s, arch_n, arch_s = rows["created"][0]
    sample_n, first, last, peak = rows["throughput"][0]

    average = None
    if sample_n >= 2 and first is not None and last > first:
        average = (sample_n - 1) / (last - first).total_seconds() * 60
    # A minute bucket is only a fair peak when the sample spans more than one whole minute.
    peak_rate = float(peak) if peak and last - first >= timedelta(minutes=2) else None
    best = max(r for r in (average, peak_rate, 0.0) if r is not None)
    pending_all = sum(p.rows for p in pending_rows)
    notes = []
    if best > 0:
        drain = pending_all / best * 60
    else:
        drain = 0.0 if pending_all == 0 else None
        if pending_all:
            notes.append(
                "no drain estimate: the archive shows no recent throughput to measure "
                f"(sampled {sample_n} processed rows)"
            )
    if "REQUEUE" in states:
        notes.append(
            f"{states['REQUEUE']} rows in state REQUEUE: not counted as pending "
            "(HC's meaning of REQUEUE is unconfirmed)"
        )
    return Backlog(
        schema_name=schema,
        tables=tables,
        measured_at=measured_at,
        states=dict(sorted(states.items())),
        pending=sum(p.rows for p in chosen),
        pending_all_tables=pending_all,
        pending_by_table=chosen,
        oldest_pending_at=oldest,
        oldest_pending_age_seconds=(measured_at - oldest).total_seconds() if oldest else None,
        failures_last_day=sum(failures_by_table.values()),
        failures_by_table=failures_by_table,
        recent_failures=recent,
        window_minutes=window_minutes,
        created_in_window=live_n + arch_n,
        created_per_minute=(live_n + arch_n) / window_minutes,
        to_send_per_minute=(live_s + arch_s) / window_minutes,
        throughput_sample_rows=sample_n,
        throughput_per_minute=average,
        peak_per_minute=peak_rate,
        drain_seconds=drain,
        notes=notes,
    )


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _rate(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f}/min"


def render(b: Backlog) -> str:
    scope = ", ".join(b.tables) if b.tables else "all tables"
    lines = [
        f"backlog of {b.schema_name} ({scope}) at {b.measured_at:%Y-%m-%d %H:%M:%S %Z}",
        "  states:  "
        + (", ".join(f"{s} {n}" for s, n in b.states.items()) or "(trigger log empty)"),
        f"  pending: {b.pending} (every table: {b.pending_all_tables}); oldest "
        + (f"{duration(b.oldest_pending_age_seconds)} old" if b.oldest_pending_at else "none"),
    ]
    lines += [f"    {p.table}: {p.rows} {p.state}, oldest {p.oldest}" for p in b.pending_by_table]
    lines.append(
        f"  failures in the last day: {b.failures_last_day}"
        + (
            " (" + ", ".join(f"{t} {n}" for t, n in b.failures_by_table.items()) + ")"
            if b.failures_by_table
            else ""
        )
    )
    lines += [
        f"    {f.source} #{f.id} {f.table} {f.action} record {f.record_id}: {f.sf_message}"
        for f in b.recent_failures
    ]
    lines += [
        f"  captured in the last {b.window_minutes} min: {b.created_in_window}"
        f" ({_rate(b.created_per_minute)}; to send {_rate(b.to_send_per_minute)})",
        f"  HC throughput: {_rate(b.throughput_per_minute)} average, {_rate(b.peak_per_minute)}"
        f" busiest minute (last {b.throughput_sample_rows} archived rows)",
        f"  drain estimate once writes stop: {duration(b.drain_seconds)}",
    ]
    lines += [f"  note: {n}" for n in b.notes]
    return "\n".join(lines)
