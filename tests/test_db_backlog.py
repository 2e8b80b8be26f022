"""`backlog`: exact numbers on a trigger log we wrote ourselves, index use on a big one, the CLI."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from swapbot.database import backlog
from swapbot.sandbox import hcschema, scenarios
from tests._db_cli import UNREACHABLE_URL, catalog_state, run_db, run_json

S = "schema1"


def _log(conn, table: str, rows: list[tuple]) -> None:
    """rows: (state, table_name, created minutes ago, processed minutes ago or None, message)."""
    conn.cursor().executemany(
        sql.SQL(
            "INSERT INTO {} (id, created_at, processed_at, state, action, table_name, record_id,"
            " sf_message) VALUES (nextval(%s), now() - make_interval(secs => %s::float8 * 60),"
            " now() - make_interval(secs => %s::float8 * 60), %s, 'UPDATE', %s, 1, %s)"
        ).format(sql.Identifier(S, table)),
        [
            (f"{S}._trigger_log_id_seq", created, processed, state, name, message)
            for state, name, created, processed, message in rows
        ],
    )


@pytest.fixture
def known(db):
    """A trigger log whose every number we know."""
    hcschema.install_prerequisites(db)
    hcschema.create_system_tables(db, S)
    for t in ("account", "contact", "opportunity"):
        hcschema.create_mapped_table(db, S, t, {"name": "text"}, access="read_write", indexes={})
    live = (
        [("NEW", "account", 30 - i, None, None) for i in range(3)]  # oldest 30 min
        + [("PENDING", "contact", 5, None, None)] * 2
        + [("NEW", "opportunity", 2, None, None)]
        + [("SUCCESS", "account", 1, 0.5, None)] * 4
        + [("READONLY", "opportunity", 1, None, None)] * 2
        + [("FAILED", "account", 60, 59, "REQUIRED_FIELD_MISSING")]
        + [("FAILED", "contact", 60 * 30, 60 * 30, "too old to count")]  # 30 h ago
    )
    _log(db, "_trigger_log", live)
    # Archive: 61 rows processed one every 30 s (2/min), created 5 s before each; one FAILED
    # within the day and one two days ago.
    archive = [("SUCCESS", "account", 100 + i / 2, 100 + i / 2 - 5 / 60, None) for i in range(61)]
    archive += [
        ("FAILED", "contact", 120, 119, "DUPLICATE_VALUE"),
        ("FAILED", "contact", 60 * 48, 60 * 48, "older"),
        ("SUCCESS", "account", 3, 2.5, None),  # created inside the 15-minute window
    ]
    _log(db, "_trigger_log_archive", archive)
    return db


def test_numbers_on_a_known_trigger_log(known):
    b = backlog.backlog(known, S, window_minutes=15)
    assert b.states == {"FAILED": 2, "NEW": 4, "PENDING": 2, "READONLY": 2, "SUCCESS": 4}
    assert b.pending == b.pending_all_tables == 6
    assert {(p.table, p.state, p.rows) for p in b.pending_by_table} == {
        ("account", "NEW", 3),
        ("contact", "PENDING", 2),
        ("opportunity", "NEW", 1),
    }
    assert 29.9 * 60 < b.oldest_pending_age_seconds < 30.1 * 60
    assert b.failures_last_day == 2
    assert b.failures_by_table == {"account": 1, "contact": 1}
    assert [f.sf_message for f in b.recent_failures] == [
        "REQUIRED_FIELD_MISSING",
        "DUPLICATE_VALUE",
    ]
    # In the last 15 min: 2 PENDING + 1 NEW + 4 SUCCESS + 2 READONLY live, 1 archived.
    assert b.created_in_window == 10
    assert b.created_per_minute == pytest.approx(10 / 15)
    assert b.to_send_per_minute == pytest.approx(8 / 15)
    # Every archived row is in the sample. The busiest minute holds two of the evenly spaced
    # rows and the FAILED one processed 119 minutes ago: 3 a minute, so 6 pending take 2 min.
    assert b.throughput_sample_rows == 64
    assert b.peak_per_minute == 3
    assert b.drain_seconds == pytest.approx(120)


def test_throughput_sample_and_drain(known):
    # Only the 61 evenly spaced rows: 60 intervals of 30 s = 2 rows a minute, 6 pending -> 3 min.
    known.execute(
        f"DELETE FROM {S}._trigger_log_archive WHERE state = 'FAILED' OR created_at > now() - interval '50 minutes'"
    )
    b = backlog.backlog(known, S)
    assert b.throughput_sample_rows == 61
    assert b.throughput_per_minute == pytest.approx(2.0, rel=0.01)
    assert b.peak_per_minute == 2
    assert b.drain_seconds == pytest.approx(180, rel=0.01)


def test_restricted_to_some_tables(known):
    b = backlog.backlog(known, S, ["contact"])
    assert b.states == {"FAILED": 1, "PENDING": 2}
    assert b.pending == 2 and b.pending_all_tables == 6
    assert b.failures_by_table == {"contact": 1}
    assert 4.9 * 60 < b.oldest_pending_age_seconds < 5.1 * 60


def test_counts_by_state_match_a_plain_group_by_with_statistics(known):
    # With statistics the most common state is derived as total minus the others: still exact.
    known.execute(
        f"INSERT INTO {S}._trigger_log (state, table_name) SELECT 'SUCCESS', 'account'"
        " FROM generate_series(1, 500)"
    )
    known.execute(f"INSERT INTO {S}._trigger_log (state, table_name) VALUES (NULL, 'account')")
    known.execute(f"ANALYZE {S}._trigger_log")
    plain = dict(
        known.execute(
            f"SELECT coalesce(state, '(null)'), count(*) FROM {S}._trigger_log GROUP BY 1"
        ).fetchall()
    )
    assert backlog.backlog(known, S).states == plain
    assert plain["SUCCESS"] == 504


def test_empty_trigger_log(db):
    hcschema.install_prerequisites(db)
    hcschema.create_system_tables(db, S)
    b = backlog.backlog(db, S)
    assert b.states == {} and b.pending == 0 and b.drain_seconds == 0
    assert b.oldest_pending_at is None and b.throughput_per_minute is None


def test_pending_without_history_has_no_drain_estimate(db):
    hcschema.install_prerequisites(db)
    hcschema.create_system_tables(db, S)
    _log(db, "_trigger_log", [("NEW", "account", 1, None, None)])
    b = backlog.backlog(db, S)
    assert b.pending == 1 and b.drain_seconds is None
    assert "no drain estimate" in b.notes[0]


def test_big_table_queries_use_hc_indexes(db_url, db):
    scenarios.load(db_url, scenarios.big_trigger_log(live=20_000, archive=200_000))
    params = {"schema": "salesforce", "tables": None, "minutes": 15, "sample": 2000, "failures": 5}
    for tables in (None, ["account"]):
        for name, stmt in backlog.queries("salesforce", tables).items():
            plan = "\n".join(
                r[0]
                for r in db.execute(
                    sql.SQL("EXPLAIN ") + stmt, {**params, "tables": tables}
                ).fetchall()
            )
            assert "Seq Scan on _trigger_log_archive" not in plan, (name, plan)
            if "_trigger_log_archive" in stmt.as_string(db):
                assert "_trigger_log_archive_idx" in plan, (name, plan)
            if name == "pending":
                assert "_trigger_log_idx_state_table_name" in plan, plan
            if name == "states":
                assert "_trigger_log_idx_state_id" in plan, plan


def test_cli_prints_json_and_text(known, db_url):
    code, doc = run_json("backlog", "--database-url", db_url, "--schema", S, "--tables", "account")
    assert code == 0 and doc["pending"] == 3 and doc["tables"] == ["account"]
    done = run_db("backlog", "--database-url", db_url, "--schema", S)
    assert done.returncode == 0 and "pending: 6" in done.stdout and "drain estimate" in done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--schema", "nope"], "schema nope does not exist"),
        (["--schema", "public"], "not a Heroku Connect schema"),
        (["--schema", 'schema1"; drop table x; --'], "not a plain lower-case identifier"),
        (["--schema", S, "--tables", "account,_hcmeta"], "not Heroku Connect mappings"),
        (["--schema", S, "--tables", "acc;ount"], "not a plain lower-case identifier"),
        (["--schema", S, "--minutes", "0"], "at least 1 minute"),
    ],
)
def test_cli_refuses_bad_input(known, db_url, args, message):
    before = catalog_state(known)
    done = run_db("backlog", "--database-url", db_url, *args)
    assert done.returncode == 2, done
    assert message in done.stderr and "Traceback" not in done.stderr
    assert catalog_state(known) == before


def test_cli_unreachable_database():
    done = run_db("backlog", "--database-url", UNREACHABLE_URL, "--schema", S)
    assert done.returncode == 2 and "cannot reach the database" in done.stderr


def test_connection_of_the_cli_cannot_write(known, db_url):
    from swapbot.database._session import connect_read_only

    with connect_read_only(db_url) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute(f"DELETE FROM {S}._trigger_log")
