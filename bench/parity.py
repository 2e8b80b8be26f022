"""How fast `swapbot db parity` compares a million-row mapped table with its new copy.

Builds OLD.account and NEW.account (NEW with one more column, as after hc2's load) in a scratch
database it creates and drops, a million rows each written as HC's load writes them, then
changes a few rows of NEW and runs parity. Usage: python bench/parity.py [--rows N] [--chunk N]
"""

from __future__ import annotations

import argparse
import os
import time

import psycopg
from psycopg import sql

from swapbot.database import parity
from swapbot.sandbox import hcschema
from swapbot.sandbox.sim import bulk_session
from swapbot.testing.services import scratch_database

ADMIN_URL = os.environ.get(
    "SWAPBOT_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
OLD, NEW = "schema1", "schema2"
COLUMNS = {
    "name": "varchar(255)",
    "industry": "varchar(255)",
    "annualrevenue": "double precision",
    "billingcity": "varchar(40)",
    "external_key__c": "varchar(40)",
    "isdeleted": "boolean",
    "systemmodstamp": "timestamp",
    "createddate": "timestamp",
}


def build(conn: psycopg.Connection, schema: str, rows: int, extra: dict[str, str]) -> None:
    hcschema.create_system_tables(conn, schema)
    hcschema.create_mapped_table(
        conn,
        schema,
        "account",
        {**COLUMNS, **extra},
        access="read_write",
        indexes={"id": True, "systemmodstamp": False},
    )
    with hcschema.hc_session(conn), bulk_session(conn):
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (sfid, name, industry, annualrevenue, billingcity, external_key__c,"
                " isdeleted, systemmodstamp, createddate, _hc_lastop)"
                " SELECT '001' || lpad(to_hex(g), 15, '0'), 'Account ' || g,"
                " (ARRAY['Energy', 'Retail', 'Banking', 'Media'])[1 + g %% 4], g * 10.5,"
                " 'City ' || (g %% 1000), md5(g::text), false,"
                " timestamp '2024-01-01' + make_interval(secs => g),"
                " timestamp '2020-01-01' + make_interval(secs => g), 'SYNCED'"
                " FROM generate_series(1, %s) g"
            ).format(sql.Identifier(schema, "account")),
            (rows,),
        )
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(schema, "account")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=parity.DEFAULT_CHUNK)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with scratch_database(ADMIN_URL) as url, psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        hcschema.install_prerequisites(conn)
        build(conn, OLD, args.rows, {})
        build(conn, NEW, args.rows, {"rating": "varchar(255)"})
        with hcschema.hc_session(conn), bulk_session(conn):
            table = sql.Identifier(NEW, "account")
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET name = name || ' (changed)' WHERE id IN (17, 4242, 500000)"
                ).format(table)
            )
            conn.execute(sql.SQL("DELETE FROM {} WHERE id = 999").format(table))
        print(f"built two copies of {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
        conn.execute("SET default_transaction_read_only = on")
        for run in range(1, args.runs + 1):
            t = time.perf_counter()
            result = parity.parity(conn, OLD, NEW, ["account"], chunk=args.chunk)
            seconds = time.perf_counter() - t
            (table,) = result.tables
            print(
                f"run {run}: {seconds:.2f} s, {table.rows_old + table.rows_new:,} rows compared,"
                f" {(table.rows_old + table.rows_new) / seconds:,.0f} rows/s;"
                f" {table.chunks} chunks, {table.differing_chunks} differ,"
                f" {table.differing_rows} differing sfids"
            )
        print(parity.render(result))


if __name__ == "__main__":
    main()
