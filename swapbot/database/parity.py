"""Parity: do the new tables hold the same rows as the old ones?

For each changed table, both copies are cut into the same chunks by a hash of `sfid`, and each
chunk is summed up in SQL (rows, a checksum of the sfids, a checksum of sfid and every common
column). Chunks that differ are opened up to name the differing sfids and columns. Everything
is plain SELECTs in one READ ONLY, REPEATABLE READ transaction: one snapshot of both copies, no
lock beyond the ACCESS SHARE every reader takes.
"""

from __future__ import annotations

import math
import time
from typing import Literal

import psycopg
from psycopg import sql
from pydantic import BaseModel, computed_field

from swapbot.database._common import (
    UserError,
    check_identifier,
    parse_tables,
    qualified,
    require_mapped_tables,
)
from swapbot.database._session import (
    snapshot,
)

# HC's own columns: `id` is renumbered by every load, `_hc_lastop`/`_hc_err` describe the sync.
SKIPPED_COLUMNS = ("id", "_hc_lastop", "_hc_err")
DEFAULT_CHUNK = 10_000
DEFAULT_SAMPLE = 10
MAX_CHUNKS = 100_000
# A seed of our own so chunks do not line up with anything HC hashes.
SEED = 7
SETTINGS = {"lock_timeout": "5s"}


class Difference(BaseModel):
    sfid: str
    kind: Literal["missing_in_new", "missing_in_old", "differs"]
    columns: list[str] = []  # for "differs": the common columns whose values differ


class TableParity(BaseModel):
    table: str
    rows_old: int
    rows_new: int
    unsynced_old: int  # rows without sfid (inserted in Postgres, not yet written to Salesforce)
    unsynced_new: int
    columns: list[str]  # compared, besides sfid
    only_in_old: list[str]
    only_in_new: list[str]
    type_differences: dict[str, str]  # column -> "old type / new type" (compared as text)
    chunks: int
    differing_chunks: int
    differing_rows: int  # sfids missing on one side or with a differing column
    sample: list[Difference]
    seconds: float

    @computed_field
    @property
    def equal(self) -> bool:
        return (
            self.rows_old == self.rows_new
            and self.differing_chunks == 0
            and self.unsynced_old == self.unsynced_new
        )

    @computed_field
    @property
    def rows_per_second(self) -> float:
        return (self.rows_old + self.rows_new) / self.seconds if self.seconds > 0 else 0.0


class Parity(BaseModel):
    old_schema: str
    new_schema: str
    tables: list[TableParity]

    @computed_field
    @property
    def equal(self) -> bool:
        return all(t.equal for t in self.tables)


def _columns(conn: psycopg.Connection, schema: str, table: str) -> dict[str, str]:
    rows = conn.execute(
        """
        SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = pg_catalog.to_regclass(format('%%I.%%I', %s::text, %s::text))
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        (schema, table),
    ).fetchall()
    return dict(rows)


def _estimate(conn: psycopg.Connection, schemas: list[str], table: str) -> int:
    row = conn.execute(
        """
        SELECT max(greatest(c.reltuples, 0))::bigint FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%s) AND c.relname = %s
        """,
        (schemas, table),
    ).fetchone()
    return int(row[0] or 0)


def _bucket(chunks: int) -> sql.Composable:
    n = sql.Literal(chunks)
    # mod(), not %: these fragments go into statements with and without parameters.
    return sql.SQL("mod(mod(pg_catalog.hashtextextended(sfid, {seed}), {n}) + {n}, {n})").format(
        seed=sql.Literal(SEED), n=n
    )


def _row(columns: list[str]) -> sql.Composable:
    # A record's text form tells NULL from '' and quotes every value: a fair fingerprint.
    return sql.SQL("ROW({})::text").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in ["sfid", *columns])
    )


def chunk_query(schema: str, table: str, columns: list[str], chunks: int) -> sql.Composed:
    """Per chunk: rows, sum of sfid hashes, sum of row hashes; rows without sfid in chunk NULL."""
    return sql.SQL(
        "SELECT bucket, count(*), sum(pg_catalog.hashtextextended(sfid, 0)::numeric),"
        " sum(pg_catalog.hashtextextended(r, 0)::numeric)"
        " FROM (SELECT sfid, {bucket} AS bucket, {row} AS r FROM {t}) x GROUP BY bucket"
    ).format(bucket=_bucket(chunks), row=_row(columns), t=qualified(schema, table))


def sample_query(old: str, new: str, table: str, columns: list[str], chunks: int) -> sql.Composed:
    """The differing sfids of some chunks (`%(buckets)s`), first `%(sample)s` by sfid, each with
    the columns that differ, and the number of differing rows in those chunks."""
    aliases = [sql.Identifier(f"c{i}") for i in range(len(columns))]
    side = sql.SQL(
        "SELECT sfid, {row} AS r{cols} FROM {t}"
        " WHERE sfid IS NOT NULL AND {bucket} = ANY(%(buckets)s)"
    )
    cols = sql.SQL("").join(
        sql.SQL(", {}::text AS {}").format(sql.Identifier(c), a)
        for c, a in zip(columns, aliases, strict=True)
    )
    diff = sql.SQL(", ").join(
        sql.SQL("CASE WHEN o.{a} IS DISTINCT FROM n.{a} THEN {name} END").format(
            a=a, name=sql.Literal(c)
        )
        for c, a in zip(columns, aliases, strict=True)
    )
    changed = (
        sql.SQL("array_remove(ARRAY[{}]::text[], NULL)").format(diff)
        if columns
        else sql.SQL("ARRAY[]::text[]")
    )
    return sql.SQL(
        "WITH o AS ({old}), n AS ({new})"
        " SELECT coalesce(o.sfid, n.sfid),"
        " CASE WHEN n.sfid IS NULL THEN 'missing_in_new' WHEN o.sfid IS NULL THEN 'missing_in_old'"
        "  ELSE 'differs' END,"
        " CASE WHEN o.sfid IS NOT NULL AND n.sfid IS NOT NULL THEN {changed} END,"
        " count(*) OVER ()"
        " FROM o FULL JOIN n ON o.sfid = n.sfid WHERE o.r IS DISTINCT FROM n.r"
        " ORDER BY 1 LIMIT %(sample)s"
    ).format(
        old=side.format(
            row=_row(columns), cols=cols, t=qualified(old, table), bucket=_bucket(chunks)
        ),
        new=side.format(
            row=_row(columns), cols=cols, t=qualified(new, table), bucket=_bucket(chunks)
        ),
        changed=changed,
    )


def compare_table(
    conn: psycopg.Connection, old: str, new: str, table: str, *, chunk: int, sample: int
) -> TableParity:
    started = time.perf_counter()
    old_cols, new_cols = _columns(conn, old, table), _columns(conn, new, table)
    for schema, cols in ((old, old_cols), (new, new_cols)):
        if "sfid" not in cols:
            raise UserError(f"{schema}.{table} has no sfid column")
    common = sorted(
        c for c in old_cols.keys() & new_cols.keys() if c not in (*SKIPPED_COLUMNS, "sfid")
    )
    estimate = _estimate(conn, [old, new], table)
    chunks = max(1, min(MAX_CHUNKS, math.ceil(estimate / chunk)))

    def sums(schema: str) -> dict:
        rows = conn.execute(chunk_query(schema, table, common, chunks)).fetchall()
        return {bucket: (n, s, r) for bucket, n, s, r in rows}

    a, b = sums(old), sums(new)
    differing = sorted(k for k in (a.keys() | b.keys()) if k is not None and a.get(k) != b.get(k))
    found: list[Difference] = []
    total = 0
    if differing:
        rows = conn.execute(
            sample_query(old, new, table, common, chunks),
            {"buckets": differing, "sample": max(sample, 1)},
        ).fetchall()
        found = [Difference(sfid=s, kind=k, columns=c or []) for s, k, c, _ in rows[:sample]]
        total = rows[0][3] if rows else 0
    return TableParity(
        table=table,
        rows_old=sum(v[0] for v in a.values()),
        rows_new=sum(v[0] for v in b.values()),
        unsynced_old=a.get(None, (0,))[0],
        unsynced_new=b.get(None, (0,))[0],
        columns=common,
        only_in_old=sorted(old_cols.keys() - new_cols.keys() - set(SKIPPED_COLUMNS)),
        only_in_new=sorted(new_cols.keys() - old_cols.keys() - set(SKIPPED_COLUMNS)),
        type_differences={
            c: f"{old_cols[c]} / {new_cols[c]}" for c in common if old_cols[c] != new_cols[c]
        },
        chunks=chunks,
        differing_chunks=len(differing),
        differing_rows=total,
        sample=found,
        seconds=time.perf_counter() - started,
    )


def parity(
    conn: psycopg.Connection,
    old: str,
    new: str,
    tables: list[str],
    *,
    chunk: int = DEFAULT_CHUNK,
    sample: int = DEFAULT_SAMPLE,
) -> Parity:
    """Compare each changed table's two copies; reads only, in one snapshot."""
    check_identifier(old, "schema")
    check_identifier(new, "new schema")
    if old == new:
        raise UserError("--schema and --new-schema must differ")
    tables = parse_tables(tables)
    if chunk < 1 or sample < 0:
        raise UserError("--chunk must be at least 1 and --sample at least 0")
    require_mapped_tables(conn, old, tables)
    require_mapped_tables(conn, new, tables)
    with snapshot(conn, SETTINGS):
        results = [compare_table(conn, old, new, t, chunk=chunk, sample=sample) for t in tables]
    return Parity(old_schema=old, new_schema=new, tables=results)


def render(p: Parity) -> str:
    lines = [f"parity {p.old_schema} -> {p.new_schema}: {'EQUAL' if p.equal else 'DIFFERENT'}"]
    for t in p.tables:
        lines.append(
            f"  {t.table}: {'equal' if t.equal else 'different'}; rows {t.rows_old} / {t.rows_new}"
            f"; {t.differing_chunks} of {t.chunks} chunks differ"
            f" ({t.rows_per_second:,.0f} rows/s)"
        )
        if t.unsynced_old or t.unsynced_new:
            lines.append(f"    rows without sfid: {t.unsynced_old} / {t.unsynced_new}")
        if t.only_in_new:
            lines.append(f"    only in {p.new_schema}: {', '.join(t.only_in_new)}")
        if t.only_in_old:
            lines.append(f"    only in {p.old_schema}: {', '.join(t.only_in_old)}")
        lines += [f"    type of {c}: {types}" for c, types in t.type_differences.items()]
        if t.differing_rows:
            lines.append(f"    {t.differing_rows} differing sfids, first {len(t.sample)}:")
        lines += [
            f"      {d.sfid} {d.kind}" + (f": {', '.join(d.columns)}" if d.columns else "")
            for d in t.sample
        ]
    return "\n".join(lines)
