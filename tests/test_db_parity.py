"""`parity`: equal copies, copies that differ in known rows, no locks, the command line."""

from __future__ import annotations

import pytest
from psycopg import sql

from swapbot.database import parity
from swapbot.sandbox import hcschema
from swapbot.sandbox.sim import bulk_session
from tests._db_cli import catalog_state, new_schema, run_db, run_json, swap_args

OLD, NEW = "schema1", "schema2"
COLUMNS = {"name": "varchar(255)", "amount": "double precision", "closedate": "date"}
ROWS = 3000


def fill(conn, schema: str, rows: int = ROWS) -> None:
    """`rows` accounts as HC's load writes them (not logged), ids in a schema-specific order."""
    with hcschema.hc_session(conn), bulk_session(conn):
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (sfid, name, amount, closedate, _hc_lastop)"
                " SELECT '001' || lpad(g::text, 15, '0'), 'Account ' || g, g * 1.5,"
                " date '2024-01-01' + g %% 365, 'SYNCED'"
                " FROM generate_series(1, %s) g ORDER BY {}"
            ).format(
                sql.Identifier(schema, "account"),
                sql.SQL("g" if schema == OLD else "random()"),
            ),
            (rows,),
        )
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, "account")))


@pytest.fixture
def copies(db):
    """OLD.account and NEW.account with the same rows; NEW has one more column, as after hc2's
    load with an added field."""
    hcschema.install_prerequisites(db)
    new_schema(db, OLD, {"account": COLUMNS, "contact": {"name": "text"}})
    new_schema(db, NEW, {"account": {**COLUMNS, "rating": "varchar(40)"}})
    fill(db, OLD)
    fill(db, NEW)
    return db


def _sfid(n: int) -> str:
    return "001" + str(n).rjust(15, "0")


def test_equal_copies(copies):
    result = parity.parity(copies, OLD, NEW, ["account"], chunk=500)
    (t,) = result.tables
    assert result.equal and t.equal
    assert t.rows_old == t.rows_new == ROWS
    assert t.chunks == 6 and t.differing_chunks == 0 and t.sample == []
    assert t.columns == ["amount", "closedate", "name"]
    assert t.only_in_new == ["rating"] and t.only_in_old == []


def test_differences_are_found_and_sampled(copies):
    with hcschema.hc_session(copies):
        copies.execute(
            f"UPDATE {NEW}.account SET name = name || ' (renamed)' WHERE sfid IN (%s, %s)",
            (_sfid(10), _sfid(2000)),
        )
        copies.execute(f"UPDATE {NEW}.account SET amount = NULL WHERE sfid = %s", (_sfid(11),))
        copies.execute(f"UPDATE {OLD}.account SET name = '' WHERE sfid = %s", (_sfid(12),))
        copies.execute(f"UPDATE {NEW}.account SET name = NULL WHERE sfid = %s", (_sfid(12),))
        copies.execute(f"DELETE FROM {NEW}.account WHERE sfid = %s", (_sfid(20),))
        copies.execute(
            f"INSERT INTO {NEW}.account (sfid, name) VALUES (%s, 'only new')", (_sfid(9999),)
        )
        copies.execute(f"INSERT INTO {OLD}.account (name) VALUES ('not synced yet')")
        # A changed column HC does not compare (renumbered by every load): not a difference.
        copies.execute(
            f"UPDATE {NEW}.account SET _hc_lastop = 'UPDATED' WHERE sfid = %s", (_sfid(30),)
        )
    result = parity.parity(copies, OLD, NEW, ["account"], chunk=500, sample=4)
    (t,) = result.tables
    assert not result.equal
    assert (t.rows_old, t.rows_new) == (ROWS + 1, ROWS)
    assert (t.unsynced_old, t.unsynced_new) == (1, 0)
    assert t.differing_rows == 6
    assert 1 <= t.differing_chunks <= 6
    assert [(d.sfid, d.kind, d.columns) for d in t.sample] == [
        (_sfid(10), "differs", ["name"]),
        (_sfid(11), "differs", ["amount"]),
        (_sfid(12), "differs", ["name"]),  # '' and NULL are different values
        (_sfid(20), "missing_in_new", []),
    ]
    everything = parity.parity(copies, OLD, NEW, ["account"], chunk=500, sample=100)
    assert [(d.sfid, d.kind) for d in everything.tables[0].sample][-2:] == [
        (_sfid(2000), "differs"),
        (_sfid(9999), "missing_in_old"),
    ]


def test_a_single_chunk_and_a_type_change(copies):
    copies.execute(f"ALTER TABLE {NEW}.account ALTER COLUMN amount TYPE numeric(12, 2)")
    (t,) = parity.parity(copies, OLD, NEW, ["account"], chunk=10**9).tables
    assert t.chunks == 1
    assert t.type_differences == {"amount": "double precision / numeric(12,2)"}
    # 1.5 * g prints as 1.5 in one type and 1.50 in the other: every row differs.
    assert t.differing_rows == ROWS and not t.equal


def test_reads_without_locks_beyond_access_share(copies):
    copies.autocommit = False
    try:
        # Inside the caller's transaction parity joins it; its locks stay visible until the end.
        copies.execute("SELECT 1")
        parity.parity(copies, OLD, NEW, ["account"], chunk=500)
        modes = copies.execute(
            "SELECT DISTINCT mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation'"
        ).fetchall()
        assert modes == [("AccessShareLock",)]
        assert copies.execute("SHOW lock_timeout").fetchone()[0] == "0"  # put back
    finally:
        copies.rollback()
        copies.autocommit = True


def test_cli(copies, db_url):
    code, doc = run_json(*swap_args("parity", db_url, OLD, NEW, "account"))
    assert code == 0 and doc["equal"] and doc["tables"][0]["rows_per_second"] > 0
    with hcschema.hc_session(copies):
        copies.execute(f"DELETE FROM {NEW}.account WHERE sfid = %s", (_sfid(5),))
    done = run_db(*swap_args("parity", db_url, OLD, NEW, "account"))
    assert done.returncode == 1
    assert f"{_sfid(5)} missing_in_new" in done.stdout


def test_cli_refuses_bad_input(copies, db_url):
    before = catalog_state(copies)
    base = ["parity", "--database-url", db_url]
    cases = [
        (
            ["--schema", OLD, "--new-schema", NEW, "--tables", "contact"],
            "not Heroku Connect mappings in schema schema2",
        ),
        (
            ["--schema", OLD, "--new-schema", "nope", "--tables", "account"],
            "schema nope does not exist",
        ),
        (["--schema", "a'b", "--new-schema", NEW, "--tables", "account"], "not a plain"),
        (["--schema", OLD, "--new-schema", NEW, "--tables", "account", "--chunk", "0"], "--chunk"),
    ]
    for extra, message in cases:
        done = run_db(*base, *extra)
        assert done.returncode == 2 and message in done.stderr, (extra, done.stderr)
    assert catalog_state(copies) == before
