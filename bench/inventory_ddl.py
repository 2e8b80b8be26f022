"""inventory + ddl on a schema of 1,000 mapped tables with 3,000 unmanaged objects.

Builds a scratch database (dropped at the end), with HC's layout for every table (via the
sandbox's hcschema), NEW as hc2's load would leave it, and a mix of every kind of unmanaged
object, then times `inventory` and `ddl --phase prep` / `--phase cutover` (generation only)
with every table changed. Target: under 5 s together.

    .venv/bin/python bench/inventory_ddl.py [--tables 1000] [--objects 3000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swapbot.database import ddl  # noqa: E402
from swapbot.database.inventory import inventory  # noqa: E402
from swapbot.sandbox import hcschema  # noqa: E402

ADMIN_URL = os.environ.get(
    "SWAPBOT_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
OLD, NEW = "salesforce", "salesforce_v2"
COLUMNS = {
    "name": "varchar(255)",
    "amount": "double precision",
    "parentid": "varchar(18)",
    "isdeleted": "boolean",
    "systemmodstamp": "timestamp",
}


def table(i: int) -> str:
    return f"obj{i:04d}__c"


def build(conn: psycopg.Connection, tables: int, objects: int) -> dict[str, int]:
    hcschema.install_prerequisites(conn)
    for schema in (OLD, NEW):
        hcschema.create_system_tables(conn, schema)
        for i in range(tables):
            columns = COLUMNS if schema == OLD else {**COLUMNS, "rating__c": "varchar(40)"}
            hcschema.create_mapped_table(
                conn, schema, table(i), columns, access="read_write",
                indexes={"id": True, "systemmodstamp": False},
            )  # fmt: skip
            if i % 50 == 49:
                conn.commit()  # one transaction would run out of lock slots
    ro = f"bench_readonly_{conn.info.backend_pid}"
    conn.execute("CREATE SCHEMA reporting")
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(ro)))
    conn.execute(
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(OLD), sql.Identifier(ro))
    )
    made: dict[str, int] = {}
    kinds = [
        "index", "view_old", "view_outside", "grant", "comment", "atomic_function",
        "plpgsql_function", "trigger", "foreign_key", "policy", "statistics", "matview", "rule",
        "view_chain", "sql_function",
    ]  # fmt: skip
    conn.execute(
        "CREATE TABLE public.audit (t text, sfid varchar(18));"
        "CREATE FUNCTION public.audit_touch() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN INSERT INTO public.audit VALUES (TG_TABLE_NAME, NEW.sfid); RETURN NULL; END $$"
    )
    statements = []
    n = -1
    while sum(made.values()) < objects:
        n += 1
        i = n % tables
        t = sql.Identifier(OLD, table(i))
        other = sql.Identifier(OLD, table((i + 1) % tables))
        kind = kinds[n % len(kinds)]
        if kind == "view_chain" and sum(made.values()) + 2 > objects:
            kind = "index"
        made[kind] = made.get(kind, 0) + (2 if kind == "view_chain" else 1)
        name = sql.Identifier(f"{kind}_{n}")
        if kind == "index":
            q = sql.SQL("CREATE INDEX {} ON {} (lower(name))").format(name, t)
        elif kind == "view_old":
            q = sql.SQL(
                "CREATE VIEW {} AS SELECT a.sfid, a.name, b.amount FROM {} a JOIN {} b"
                " ON b.parentid = a.sfid"
            ).format(sql.Identifier(OLD, f"v_{n}"), t, other)
        elif kind == "view_outside":
            q = sql.SQL("CREATE VIEW {} AS SELECT sfid, name FROM {} WHERE amount > 0").format(
                sql.Identifier("reporting", f"v_{n}"), t
            )
        elif kind == "view_chain":
            base = sql.Identifier(OLD, f"chain_base_{n}")
            q = sql.SQL(
                "CREATE VIEW {base} AS SELECT sfid, name FROM {t};"
                " CREATE VIEW {top} AS SELECT name FROM {base}"
            ).format(base=base, t=t, top=sql.Identifier("reporting", f"chain_top_{n}"))
        elif kind == "grant":
            q = sql.SQL("GRANT SELECT ON {} TO {}").format(t, sql.Identifier(ro))
        elif kind == "comment":
            q = sql.SQL("COMMENT ON TABLE {} IS {}").format(t, sql.Literal(f"table {i}"))
        elif kind == "atomic_function":
            q = sql.SQL(
                "CREATE FUNCTION {}(p text) RETURNS text LANGUAGE sql STABLE BEGIN ATOMIC"
                " SELECT name FROM {} WHERE sfid = p; END"
            ).format(sql.Identifier("public", f"f_{n}"), t)
        elif kind == "plpgsql_function":
            q = sql.SQL("CREATE FUNCTION {}() RETURNS bigint LANGUAGE plpgsql AS {}").format(
                sql.Identifier("public", f"p_{n}"),
                sql.Literal(
                    sql.SQL("BEGIN RETURN (SELECT count(*) FROM {}); END").format(t).as_string(conn)
                ),
            )
        elif kind == "sql_function":
            q = sql.SQL("CREATE FUNCTION {}() RETURNS bigint LANGUAGE sql AS {}").format(
                sql.Identifier("public", f"s_{n}"),
                sql.Literal(  # unqualified: resolved at run time, follows the switch
                    sql.SQL("SELECT count(*) FROM {}")
                    .format(sql.Identifier(table(i)))
                    .as_string(conn)
                ),
            )
        elif kind == "trigger":
            q = sql.SQL(
                "CREATE TRIGGER {} AFTER UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION public.audit_touch()"
            ).format(name, t)
        elif kind == "foreign_key":
            q = sql.SQL(
                "CREATE TABLE {} (id serial PRIMARY KEY, sfid varchar(18) REFERENCES {} (sfid))"
            ).format(sql.Identifier("public", f"app_{n}"), t)
        elif kind == "policy":
            q = sql.SQL("CREATE POLICY {} ON {} FOR SELECT USING (amount >= 0)").format(name, t)
        elif kind == "statistics":
            q = sql.SQL("CREATE STATISTICS {} (ndistinct) ON name, amount FROM {}").format(
                sql.Identifier(OLD, f"st_{n}"), t
            )
        elif kind == "matview":
            q = sql.SQL("CREATE MATERIALIZED VIEW {} AS SELECT count(*) AS n FROM {}").format(
                sql.Identifier("reporting", f"mv_{n}"), t
            )
        else:  # rule
            q = sql.SQL(
                "CREATE RULE {} AS ON UPDATE TO {} DO ALSO INSERT INTO public.audit VALUES ('r', NEW.sfid)"
            ).format(name, t)
        statements.append(q)
    conn.execute("SET check_function_bodies = off")  # bodies naming tables unqualified
    for n, q in enumerate(statements):
        conn.execute(q)
        if n % 200 == 199:
            conn.commit()
    return made


def measure(
    conn: psycopg.Connection, tables: list[str], *, quiet: bool = False
) -> dict[str, float]:
    timings: dict[str, float] = {}
    start = time.perf_counter()
    inv = inventory(conn, OLD, tables, NEW)
    timings["inventory"] = time.perf_counter() - start
    counts = {p: len(inv.phase(p)) for p in ("prep", "cutover", "manual", "none")}
    start = time.perf_counter()
    prep = ddl.plan(conn, OLD, NEW, tables, "prep")
    timings["ddl prep"] = time.perf_counter() - start
    start = time.perf_counter()
    cutover = ddl.plan(conn, OLD, NEW, tables, "cutover")
    timings["ddl cutover"] = time.perf_counter() - start
    if quiet:
        return timings
    print(
        f"objects: {len(inv.objects)} found ({counts}), {len(inv.managed)} managed;"
        f" prep {len(prep.statements)} statements, cutover {len(cutover.statements)} statements"
    )
    return timings


def setup(url: str, tables: int, objects: int) -> str:
    """Build the scratch database; return the read-only role it created (cluster-wide)."""
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        made = build(conn, tables, objects)
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
        print(
            f"built {tables} mapped tables (in OLD and NEW) and {sum(made.values())}"
            f" unmanaged objects in {time.perf_counter() - start:.1f} s: {made}"
        )
        return f"bench_readonly_{conn.info.backend_pid}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    parser.add_argument("--keep", metavar="NAME", help="build into NAME (or reuse it) and keep it")
    args = parser.parse_args()
    name = args.keep or f"swapbot_bench_{uuid.uuid4().hex[:8]}"
    base, _, _ = ADMIN_URL.rpartition("/")
    url = f"{base}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    role = None
    try:
        if not exists:
            role = setup(url, args.tables, args.objects)
        with psycopg.connect(url, autocommit=True) as conn:
            tables = [table(i) for i in range(args.tables)]
            measure(conn, tables, quiet=True)  # warm-up: imports, catalog caches
            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            timings = measure(conn, tables)
            if profiler:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        total = sum(timings.values())
        for what, seconds in timings.items():
            print(f"{what:12} {seconds:6.2f} s")
        print(f"{'total':12} {total:6.2f} s  (target < 5 s: {'met' if total < 5 else 'MISSED'})")
        return 0 if total < 5 else 1
    finally:
        if not args.keep:
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
                if role:
                    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


if __name__ == "__main__":
    sys.exit(main())
