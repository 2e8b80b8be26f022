"""inventory + ddl prep, from the command line, against `pg_dump -s` of the same database.

Builds a scratch database (dropped at the end) with HC's layout for 1,000 mapped tables (via the
sandbox's hcschema), NEW as hc2's load would leave it, and 3,000 unmanaged objects of every
kind, then times, each as its own process, what an operator runs before a swap:

    swapbot db inventory --schema OLD --new-schema NEW --tables ...   (the text report)
    swapbot db ddl --phase prep --schema OLD --new-schema NEW --tables ...

against `pg_dump --schema-only`, which reads the same catalog (and more) for every object.
Target: both together take no longer than pg_dump (ratio <= 1.0). Each figure is the best of
--rounds rounds (the least disturbed by whatever else the machine runs), after one warm-up
round; the three commands run in turn within a round, so they share the machine's load.

Floors, to show where the time goes: the same two commands with `--help` only (process start
and imports), the two in one process without start-up, and the catalog queries they send,
replayed alone in one snapshot.

    .venv/bin/python bench/inventory_ddl.py [--tables 1000] [--objects 3000] [--rounds 3]
        [--keep NAME] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from swapbot.database import ddl
from swapbot.database.inventory import Inventory, inventory
from swapbot.sandbox import hcschema
from swapbot.testing.services import create_database, database_exists, database_url, drop_database

ADMIN_URL = os.environ.get(
    "SWAPBOT_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PG_DUMP = os.environ.get("PG_DUMP", "pg_dump")
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


# --- the database ----------------------------------------------------------------------------

# One statement per unmanaged object, by kind, in the order kinds take turns. Placeholders:
# {name} the object's own name, {t} and {other} two neighbouring tables of OLD, the rest below.
# fmt: off
TEMPLATES: dict[str, str] = {
    "index": "CREATE INDEX {name} ON {t} (lower(name))",
    "view_old":
        "CREATE VIEW {old_view} AS SELECT a.sfid, a.name, b.amount FROM {t} a JOIN {other} b"
        " ON b.parentid = a.sfid",
    "view_outside": "CREATE VIEW {outside_view} AS SELECT sfid, name FROM {t} WHERE amount > 0",
    "grant": "GRANT SELECT ON {t} TO {ro}",
    "comment": "COMMENT ON TABLE {t} IS {comment}",
    "atomic_function":
        "CREATE FUNCTION {atomic}(p text) RETURNS text LANGUAGE sql STABLE BEGIN ATOMIC"
        " SELECT name FROM {t} WHERE sfid = p; END",
    "plpgsql_function": "CREATE FUNCTION {plpgsql}() RETURNS bigint LANGUAGE plpgsql AS {count_t}",
    "trigger":
        "CREATE TRIGGER {name} AFTER UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION public.audit_touch()",
    "foreign_key":
        "CREATE TABLE {app} (id serial PRIMARY KEY, sfid varchar(18) REFERENCES {t} (sfid))",
    "policy": "CREATE POLICY {name} ON {t} FOR SELECT USING (amount >= 0)",
    "statistics": "CREATE STATISTICS {stats} (ndistinct) ON name, amount FROM {t}",
    "matview": "CREATE MATERIALIZED VIEW {matview} AS SELECT count(*) AS n FROM {t}",
    "rule":
        "CREATE RULE {name} AS ON UPDATE TO {t} DO ALSO INSERT INTO public.audit VALUES ('r', NEW.sfid)",
    "view_chain":  # two views: a view in OLD, and a view outside OLD on it
        "CREATE VIEW {chain_base} AS SELECT sfid, name FROM {t};"
        " CREATE VIEW {chain_top} AS SELECT name FROM {chain_base}",
    # unqualified: resolved at run time, follows the switch
    "sql_function": "CREATE FUNCTION {sql_function}() RETURNS bigint LANGUAGE sql AS {count_bare}",
}
# fmt: on
OBJECTS_MADE = {"view_chain": 2}  # objects per statement, when not 1


def statement(conn: psycopg.Connection, kind: str, n: int, i: int, tables: int, ro: str):
    t = sql.Identifier(OLD, table(i))
    count_t = sql.SQL("BEGIN RETURN (SELECT count(*) FROM {}); END").format(t)
    count_bare = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table(i)))
    return sql.SQL(TEMPLATES[kind]).format(
        name=sql.Identifier(f"{kind}_{n}"),
        t=t,
        other=sql.Identifier(OLD, table((i + 1) % tables)),
        ro=sql.Identifier(ro),
        comment=sql.Literal(f"table {i}"),
        old_view=sql.Identifier(OLD, f"v_{n}"),
        outside_view=sql.Identifier("reporting", f"v_{n}"),
        chain_base=sql.Identifier(OLD, f"chain_base_{n}"),
        chain_top=sql.Identifier("reporting", f"chain_top_{n}"),
        atomic=sql.Identifier("public", f"f_{n}"),
        plpgsql=sql.Identifier("public", f"p_{n}"),
        sql_function=sql.Identifier("public", f"s_{n}"),
        count_t=sql.Literal(count_t.as_string(conn)),
        count_bare=sql.Literal(count_bare.as_string(conn)),
        app=sql.Identifier("public", f"app_{n}"),
        stats=sql.Identifier(OLD, f"st_{n}"),
        matview=sql.Identifier("reporting", f"mv_{n}"),
    )


def build(conn: psycopg.Connection, tables: int, objects: int) -> dict[str, int]:
    hcschema.install_prerequisites(conn)
    for schema in (OLD, NEW):
        hcschema.create_system_tables(conn, schema)
        columns = COLUMNS if schema == OLD else {**COLUMNS, "rating__c": "varchar(40)"}
        for i in range(tables):
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
    conn.execute(
        "CREATE TABLE public.audit (t text, sfid varchar(18));"
        "CREATE FUNCTION public.audit_touch() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN INSERT INTO public.audit VALUES (TG_TABLE_NAME, NEW.sfid); RETURN NULL; END $$"
    )
    kinds = list(TEMPLATES)
    made: dict[str, int] = {}
    statements = []
    for n in range(objects * 2):  # far more turns than ever needed
        if sum(made.values()) >= objects:
            break
        kind = kinds[n % len(kinds)]
        if sum(made.values()) + OBJECTS_MADE.get(kind, 1) > objects:
            kind = "index"
        made[kind] = made.get(kind, 0) + OBJECTS_MADE.get(kind, 1)
        statements.append(statement(conn, kind, n, n % tables, tables, ro))
    conn.execute("SET check_function_bodies = off")  # bodies naming tables unqualified
    for n, q in enumerate(statements):
        conn.execute(q)
        if n % 200 == 199:
            conn.commit()
    return made


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


# --- the measurements --------------------------------------------------------------------------


def swapbot_command() -> list[str]:
    """The installed `swapbot` script beside this interpreter (or the module, without it)."""
    script = Path(sys.executable).with_name("swapbot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "swapbot.cli"]


def commands(url: str, tables: list[str]) -> dict[str, list[str]]:
    swap = ["--database-url", url, "--schema", OLD, "--new-schema", NEW, "--tables", ",".join(tables)]  # fmt: skip
    swapbot = swapbot_command()
    return {
        "pg_dump -s": [shutil.which(PG_DUMP) or PG_DUMP, "--schema-only", "--dbname", url],
        "inventory": [*swapbot, "db", "inventory", *swap],
        "ddl prep": [*swapbot, "db", "ddl", *swap, "--phase", "prep"],
    }


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed:\n{done.stderr}")
    return seconds


def rounds(cmds: dict[str, list[str]], count: int) -> dict[str, list[float]]:
    for command in cmds.values():  # warm-up: the OS's file cache, compiled bytecode
        timed(command)
    times: dict[str, list[float]] = {what: [] for what in cmds}
    for _ in range(count):
        for what, command in cmds.items():
            times[what].append(timed(command))
    return times


class Recording(psycopg.Cursor):
    """A cursor that keeps every statement it runs, to replay the catalog queries alone."""

    log: list[tuple[str, object]] = []

    def execute(self, query, params=None, **kwargs):
        Recording.log.append((query, params))
        return super().execute(query, params, **kwargs)


def in_process(url: str, tables: list[str], profile: bool) -> tuple[float, float, int]:
    """inventory + ddl prep in this process (best of two): (seconds, the catalog queries of one
    run replayed, their number). As the commands run them: the text report's inventory prints
    no re-targeted definitions, and the cyclic collector is off (see swapbot/cli/database.py)."""
    with psycopg.connect(url, autocommit=True, cursor_factory=Recording) as conn:

        def work() -> tuple[Inventory, ddl.Plan]:
            collecting = gc.isenabled()
            gc.disable()
            try:
                return (
                    inventory(conn, OLD, tables, NEW, definitions=False),
                    ddl.plan(conn, OLD, NEW, tables, "prep"),
                )
            finally:
                if collecting:
                    gc.enable()

        inv, prep = work()  # warm-up: this session's catalog caches
        counts = {p: len(inv.phase(p)) for p in ("prep", "cutover", "manual", "none")}
        print(
            f"objects: {len(inv.objects)} found ({counts}), {len(inv.managed)} managed;"
            f" prep {len(prep.statements)} statements"
        )
        seconds = []
        for _ in range(2):
            Recording.log.clear()
            start = time.perf_counter()
            work()
            seconds.append(time.perf_counter() - start)
        if profile:
            Recording.log.clear()
            profiler = cProfile.Profile()
            profiler.runcall(work)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    queries = [(q, p) for q, p in Recording.log if not str(q).startswith("SET TRANSACTION")]
    with psycopg.connect(url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog', true)")
        start = time.perf_counter()
        for query, params in queries:
            conn.execute(query, params).fetchall()
        replayed = time.perf_counter() - start
    return min(seconds), replayed, len(queries)


def report(times: dict[str, list[float]], floors: dict[str, float]) -> bool:
    best = {what: min(seconds) for what, seconds in times.items()}
    for what, seconds in times.items():
        each = ", ".join(f"{s:.2f}" for s in seconds)
        print(f"{what:12} {best[what]:6.2f} s  (rounds: {each})")
    ours = best["inventory"] + best["ddl prep"]
    ratio = ours / best["pg_dump -s"]
    print(f"{'both':12} {ours:6.2f} s")
    print(f"ratio (inventory + ddl prep) / pg_dump -s: {ratio:.2f}  (target <= 1.0: {'met' if ratio <= 1.0 else 'MISSED'})")  # fmt: skip
    print("floors:")
    for what, seconds in floors.items():
        print(f"  {what:44} {seconds:6.2f} s")
    return ratio <= 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (the best counts)")
    parser.add_argument("--profile", action="store_true", help="profile the in-process run")
    parser.add_argument("--keep", metavar="NAME", help="build into NAME (or reuse it) and keep it")
    args = parser.parse_args()
    name = args.keep or f"swapbot_bench_{uuid.uuid4().hex[:8]}"
    url = database_url(name, ADMIN_URL)
    exists = database_exists(name, ADMIN_URL)
    if not exists:
        create_database(name, ADMIN_URL)
    role = None
    try:
        if not exists:
            role = setup(url, args.tables, args.objects)
        tables = [table(i) for i in range(args.tables)]
        cmds = commands(url, tables)
        times = rounds(cmds, args.rounds)
        start_up = sum(timed([*cmds[what], "--help"]) for what in ("inventory", "ddl prep"))
        seconds, replayed, queries = in_process(url, tables, args.profile)
        met = report(
            times,
            {
                "process start-up of both (--help)": start_up,
                "both in one process, without start-up": seconds,
                f"their catalog queries alone ({queries}, replayed)": replayed,
            },
        )
        return 0 if met else 1
    finally:
        if not args.keep:
            drop_database(name, ADMIN_URL, roles=[role] if role else [])


if __name__ == "__main__":
    sys.exit(main())
