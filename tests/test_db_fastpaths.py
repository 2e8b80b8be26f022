"""The shortcuts that make inventory and ddl fast change nothing they print: each is checked
against the slow way on tests/db_fixture.py's database (plus objects that only look like Heroku
Connect's), by running both and comparing every field."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import psycopg
import pytest
from pglast.stream import RawStream

from swapbot.database import _common, ddl, retarget
from swapbot.database.inventory import catalog, inventory, render, scan
from tests import db_fixture
from tests._db_cli import fixture_database
from tests.db_fixture import CHANGED, NEW, OLD

# Beside HC's own (pkeys, hc_idx_*, log triggers, id defaults and sequences), objects of the
# app's on the changed tables that a careless filter on names or kinds would lose.
LOOKALIKES = """
CREATE INDEX hc_idx_account_app_own ON salesforce.account (name);
CREATE INDEX account_name_lower_idx ON salesforce.account (lower(name));
CREATE SEQUENCE salesforce.account_ticket_id_seq OWNED BY salesforce.account.name;
CREATE SEQUENCE salesforce.account_ticket_seq OWNED BY salesforce.account.name;
ALTER TABLE salesforce.contact ADD CONSTRAINT contact_name_present CHECK (lastname <> '');
ALTER TABLE salesforce.contact ALTER COLUMN lastname SET DEFAULT 'unnamed';
CREATE TABLE public.idless (id int DEFAULT 7, sfid varchar(18) REFERENCES salesforce.account (sfid));
CREATE VIEW reporting.account_ids AS SELECT id, sfid FROM salesforce.account;
ALTER VIEW reporting.account_ids ALTER COLUMN id SET DEFAULT 0;
"""


@pytest.fixture(scope="module")
def fixture_db():
    with fixture_database(LOOKALIKES) as (_, _, conn):
        yield conn


def _everything(conn: psycopg.Connection) -> dict:
    """What the commands print, and more: every field of every object, every phase's SQL."""
    inv = inventory(conn, OLD, CHANGED, NEW)
    plans = {p: ddl.plan(conn, OLD, NEW, CHANGED, p) for p in ("prep", "cutover", "rollback")}
    return {
        "inventory": inv.model_dump(mode="json"),
        "text": render(inv),
        "plans": {p: plan.model_dump(mode="json") for p, plan in plans.items()},
    }


@contextlib.contextmanager
def _slow_way(monkeypatch: pytest.MonkeyPatch):
    """Catalog reads without the SQL filters, pglast's own RawStream: as the scan ran before
    the shortcuts."""
    with monkeypatch.context() as m:
        by_oid = catalog.by_oid
        m.setattr(catalog, "by_oid", lambda conn, name, oids, tables=None: by_oid(conn, name, oids))
        m.setattr(retarget, "_Stream", RawStream)
        yield


def test_the_fast_way_prints_what_the_slow_way_does(fixture_db, monkeypatch):
    fast = _everything(fixture_db)
    with _slow_way(monkeypatch):
        slow = _everything(fixture_db)
    assert fast == slow
    # The look-alikes are the app's: found and carried (or handed to a person), not dropped.
    found = {o["identity"] for o in fast["inventory"]["objects"]}
    assert "index salesforce.account_name_lower_idx on salesforce.account" in found
    assert "constraint contact_name_present on salesforce.contact" in found
    assert "default of salesforce.contact.lastname" in found
    assert any("account_ticket_seq" in i for i in found)
    assert "foreign key idless_sfid_fkey on public.idless" in found
    assert "default of reporting.account_ids.id" in found  # an `id` default, not on a table


def _parsed_texts(conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the scans of inventory and of each ddl phase hand to pglast."""
    texts: list[str] = []
    parse = retarget.parse
    with monkeypatch.context() as m:
        m.setattr(retarget, "parse", lambda text: texts.append(text) or parse(text))
        _everything(conn)
    return texts


def test_the_sql_filters_leave_out_only_what_the_readers_pass_over(fixture_db, monkeypatch):
    with _slow_way(monkeypatch):
        forward, managed, _ = scan(fixture_db, OLD, CHANGED, NEW, managed=True)
    reported = {o.oid for o in forward}
    with catalog.catalog_snapshot(fixture_db):
        tables = [r["oid"] for r in catalog.fetch(fixture_db, catalog.TABLES, (OLD, CHANGED))]
        for name, spec in catalog.BY_OID.items():
            if not spec.passed_over:
                continue
            every = catalog.fetch(fixture_db, f"SELECT oid::int AS oid FROM {name}")
            oids = [r["oid"] for r in every]
            kept = {r["oid"] for r in catalog.by_oid(fixture_db, name, oids, tables)}
            left_out = {r["oid"] for r in catalog.by_oid(fixture_db, name, oids)} - kept
            assert left_out, name  # HC's own are there to leave out
            assert not left_out & reported, name  # and nothing the scan reports
            if name == "pg_class":  # HC's indexes are listed apart, from another query
                assert {o.oid for o in managed if o.kind == "index"} <= left_out


def test_the_stream_prints_what_rawstream_prints(fixture_db, monkeypatch):
    for text in _parsed_texts(fixture_db, monkeypatch):
        for node in retarget.parse(text):
            retarget._populate_ancestors((node,))
            plain = RawStream()
            plain.print_node(node)
            assert retarget.deparse(node) == plain.getvalue(), text


@pytest.mark.parametrize(
    "names",
    [[], ["a"], ["obj0001__c", "null", "NULL", 'we"ird', "back\\slash", "x y", "{}", ",", "é"]],
)
def test_array_literals_reach_postgresql_as_the_lists_they_stand_for(db, names):
    got = db.execute(
        "SELECT %s::name[], %s::oid[]",
        (_common.name_array(names), _common.oid_array(range(len(names)))),
    ).fetchone()
    assert got == (names, list(range(len(names))))


def test_building_the_db_parsers_imports_no_database_module():
    code = (
        "import sys; from swapbot.cli import build_parser; build_parser(['db', 'inventory']);"
        "print(sorted(m for m in sys.modules if m.startswith('swapbot.database')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    helped = subprocess.run(
        [sys.executable, "-m", "swapbot.cli", "db", "backlog", "--help"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "(default 15)" in helped.stdout and "(default 2000)" in helped.stdout


def test_names_taken_in_new_are_found_among_the_names_asked_for(db):
    """NEW is read for the names a phase needs only: a name the copy or an index needs, held by
    something else, is still found."""
    db_fixture.build(db)
    # Where a view's copy is due, a table; an index due on account, on contact.
    db.execute(f"CREATE TABLE {NEW}.account_contacts (x int)")
    db.execute(f"CREATE INDEX account_billingcity_idx ON {NEW}.contact (lastname)")
    problems = ddl.plan(db, OLD, NEW, CHANGED, "prep").problems
    assert f"{NEW}.account_contacts already exists and is not a view" in problems
    assert (
        f"{NEW}.account_billingcity_idx already exists and is not an index on {NEW}.account"
        in problems
    )
