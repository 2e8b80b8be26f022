"""ddl: prep, cutover and rollback SQL, applied to a real database with every object kind.

After prep and cutover and a search_path switch, a fresh session as the app's role reads NEW's
rows through every rewritten view and function; rollback leaves the catalog as it was.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from swapbot.database import ddl
from swapbot.database._common import UserError
from swapbot.sandbox import hcschema
from tests import db_fixture
from tests._db_cli import run_db
from tests.db_fixture import CHANGED, NEW, OLD, TABLES

OLD_ONLY = "001A00000000008AAA"  # an account hc1 still has, which Salesforce deleted
NEW_ONLY = "001A00000000009AAA"  # an account only NEW has


def as_role(db_url: str, role: str) -> psycopg.Connection:
    """A fresh session of `role`: it gets the role's and the database's settings."""
    return psycopg.connect(db_url.replace("://postgres@", f"://{role}@"), autocommit=True)


def one(conn: psycopg.Connection, query: str, params: tuple | None = None):
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def resolves_to(conn: psycopg.Connection, name: str) -> str:
    """The schema-qualified relation an unqualified name resolves to in this session."""
    return one(
        conn,
        "SELECT n.nspname || '.' || c.relname FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
        (name,),
    )


def test_each_statement_is_preceded_by_the_object_it_comes_from(db):
    db_fixture.build(db)
    plan = ddl.plan(db, OLD, NEW, CHANGED, "prep")
    assert not plan.problems
    text = ddl.render(plan)
    blocks = text.split("\n\n")[1:]
    assert len(blocks) == len(plan.steps) + 1  # and the manual list
    for block, step in zip(blocks, plan.steps, strict=False):
        lines = block.splitlines()
        assert lines[0] == f"-- {step.action}: {step.identity} -> {step.target}"
        assert all(ln.startswith("-- REVIEW: ") for ln in lines[1 : 1 + len(step.flags)])
        assert block.endswith(";") and not lines[1 + len(step.flags)].startswith("--")
    assert (
        "-- copy: view salesforce.opportunity_accounts -> salesforce_v2.opportunity_accounts"
        in text
    )
    assert (
        "CREATE OR REPLACE VIEW salesforce_v2.opportunity_accounts AS SELECT o.sfid, o.name,"
        " o.amount, a.name AS account_name FROM salesforce.opportunity AS o INNER JOIN"
        " salesforce_v2.account AS a" in text
    )
    assert "-- REVIEW: rejects hc2's sync writes that violate it" in text
    assert "-- MANUAL: function public.count_rows(p_table text)" in text
    # prep creates nothing outside NEW and replaces nothing in place
    for statement in plan.statements:
        assert "salesforce_v2" in statement, statement
    assert {s.action for s in plan.steps} == {"attach", "copy"}
    cutover = ddl.plan(db, OLD, NEW, CHANGED, "cutover")
    assert {s.action for s in cutover.steps} == {"attach", "replace", "recreate", "refresh"}
    assert cutover.problems == [
        "run prep first: salesforce_v2.account_contacts, salesforce_v2.account_label,"
        " salesforce_v2.account_stats, salesforce_v2.big_accounts,"
        " salesforce_v2.opportunity_accounts missing in salesforce_v2"
    ]


def test_prep_cutover_switch_and_rollback(db, db_url, db_name):
    db_fixture.build(db)
    app, ro = db_fixture.roles(db_name)
    with hcschema.hc_session(db):
        db.execute(
            "INSERT INTO salesforce.account (sfid, name, systemmodstamp) VALUES (%s, 'Old Only', now())",
            (OLD_ONLY,),
        )
    db.execute(f"ALTER ROLE {app} IN DATABASE {db_name} SET search_path = salesforce, public")
    db_fixture.normalize_views(db)
    before = db_fixture.catalog_definitions(db)

    prep = ddl.apply(db, OLD, NEW, CHANGED, "prep")
    assert prep.applied and prep.attempts == 1 and len(prep.steps) == 31
    with as_role(db_url, app) as s:  # prep changes nothing the app reads
        assert one(s, "SELECT min(account_name) FROM account_contacts") == "Old Account 1"
        assert one(s, "SELECT account_display_name(%s)", (NEW_ONLY,)) is None
    assert one(db, "SELECT count(*) FROM salesforce_v2.account_stats") == 2  # filled from NEW

    cutover = ddl.apply(db, OLD, NEW, CHANGED, "cutover")
    assert cutover.applied and len(cutover.steps) == 22
    db.execute(
        f"ALTER ROLE {app} IN DATABASE {db_name} SET search_path = salesforce_v2, salesforce, public"
    )
    with as_role(db_url, app) as s:
        assert resolves_to(s, "account") == "salesforce_v2.account"
        assert resolves_to(s, "opportunity") == "salesforce.opportunity"
        assert resolves_to(s, "account_contacts") == "salesforce_v2.account_contacts"
        assert resolves_to(s, "invoice_totals") == "salesforce.invoice_totals"
        # views and functions copied into NEW, found first by unqualified name
        names = [r[0] for r in s.execute("SELECT DISTINCT account_name FROM account_contacts")]
        assert names and all(n.startswith("New ") for n in names)
        assert one(s, "SELECT account_label(%s)", (NEW_ONLY,)) == "New Account 9 / New City 9"
        assert one(s, "SELECT min(account_name) FROM opportunity_accounts") == "New Account 1"
        assert one(s, "SELECT count(*) FROM big_accounts WHERE name = 'New Account 9'") == 1
        assert one(s, "SELECT accounts FROM account_stats WHERE industry = 'Media'") == 1
        # dependents outside OLD, re-pointed in place
        assert (
            one(s, "SELECT min(account_name) FROM reporting.open_opportunities") == "New Account 1"
        )
        assert (
            one(s, "SELECT count(*) FROM reporting.big_account_names WHERE name LIKE 'New %'") == 3
        )
        assert one(s, 'SELECT count(*) FROM "Reporting Dept"."Account Summary"'
                      ' WHERE "Account Name" = \'New Account 9\'') == 1  # fmt: skip
        assert one(s, 'SELECT count(*) FROM "Reporting Dept"."AnyAccount"') == 1
        assert one(s, "SELECT count(*) FROM reporting.case_counts WHERE status = 'Working'") == 1
        assert one(s, "SELECT public.account_display_name(%s)", (NEW_ONLY,)) == "New Account 9"
        assert one(s, 'SELECT "Reporting Dept"."ContactCount"(%s)', ("001A00000000001AAA",)) == 2
        assert one(s, "SELECT public.case_total()") == 3
        assert one(s, "SELECT public.contact_count_pinned(%s)", ("001A00000000002AAA",)) == 2
        assert one(s, "SELECT public.contact_count(%s)", ("001A00000000002AAA",)) == 2
        assert "New Account 9" in [r[0] for r in s.execute("SELECT * FROM app.account_names()")]
        # the foreign key from public.app_order now checks NEW, and its rule reads NEW
        s.execute("INSERT INTO public.app_order (account_sfid, amount) VALUES (%s, 1)", (NEW_ONLY,))
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            s.execute(
                "INSERT INTO public.app_order (account_sfid, amount) VALUES (%s, 1)", (OLD_ONLY,)
            )
    assert one(db, "SELECT account_name FROM public.order_log") == "New Account 9"
    # the trigger and the rule now fire on NEW's table (written here as Heroku Connect would)
    with hcschema.hc_session(db):
        db.execute(
            "UPDATE salesforce_v2.contact SET lastname = 'X' WHERE sfid = '003A00000000110AAA'"
        )
        db.execute("UPDATE salesforce_v2.account SET name = 'Renamed' WHERE sfid = %s", (NEW_ONLY,))
    assert one(db, "SELECT count(*) FROM public.contact_activity") == 1
    assert one(db, "SELECT name FROM public.account_audit") == "Renamed"
    db.execute("DELETE FROM public.app_order; DELETE FROM public.order_log")
    db.execute("DELETE FROM public.contact_activity; DELETE FROM public.account_audit")

    # Nothing is left for prep or cutover to do, and running them again changes nothing.
    assert [s.identity for s in ddl.plan(db, OLD, NEW, CHANGED, "cutover").steps if s.action == "replace"] == []  # fmt: skip
    ddl.apply(db, OLD, NEW, CHANGED, "prep")

    rollback = ddl.apply(db, OLD, NEW, CHANGED, "rollback")
    assert rollback.applied and {s.action for s in rollback.steps} == {"restore", "drop"}
    db.execute(f"ALTER ROLE {app} IN DATABASE {db_name} SET search_path = salesforce, public")
    after = db_fixture.catalog_definitions(db)
    assert {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys() if before.get(k) != after.get(k)} == {}  # fmt: skip
    with as_role(db_url, app) as s:
        assert (
            one(s, "SELECT min(account_name) FROM reporting.open_opportunities") == "Old Account 1"
        )
        assert one(s, "SELECT public.account_display_name(%s)", (OLD_ONLY,)) == "Old Only"
    assert ddl.plan(db, OLD, NEW, CHANGED, "rollback").steps == []


def test_rollback_after_prep_only_drops_what_prep_made(db):
    db_fixture.build(db)
    before = db_fixture.catalog_definitions(db)
    ddl.apply(db, OLD, NEW, CHANGED, "prep")
    plan = ddl.plan(db, OLD, NEW, CHANGED, "rollback")
    assert {s.action for s in plan.steps} == {"drop"} and len(plan.steps) == 31
    ddl.apply(db, OLD, NEW, CHANGED, "rollback")
    assert db_fixture.catalog_definitions(db) == before


def test_apply_refuses_until_hc2_has_created_the_tables(db, db_url):
    db_fixture.build(db, with_new=False)
    before = db_fixture.catalog_definitions(db)
    args = ["ddl", "--database-url", db_url, "--schema", OLD, "--new-schema", NEW,
            "--tables", "account,contact,case", "--phase", "prep"]  # fmt: skip
    shown = run_db(*args)
    assert (
        shown.returncode == 0
        and "-- NOT READY: schema salesforce_v2 does not exist yet" in shown.stdout
    )
    refused = run_db(*args, "--apply")
    assert refused.returncode == 2
    assert "prep not applied: schema salesforce_v2 does not exist yet" in refused.stderr
    # NEW is there, but its account table lacks a column an index and a view need.
    db_fixture._hc_schema(db, NEW, {
        "account": {k: v for k, v in TABLES["account"].items() if k != "billingcity"},
        "contact": TABLES["contact"],
    })  # fmt: skip
    with pytest.raises(UserError) as info:
        ddl.apply(db, OLD, NEW, CHANGED, "prep")
    message = str(info.value)
    assert 'salesforce_v2."case" does not exist yet' in message
    assert (
        "salesforce_v2.account lacks column billingcity, needed by index"
        " salesforce.account_billingcity_idx on salesforce.account" in message
    )
    db.execute(f"DROP SCHEMA {NEW} CASCADE")
    assert db_fixture.catalog_definitions(db) == before


def test_apply_retries_while_a_lock_is_held_then_gives_up_cleanly(db, db_url):
    db_fixture.build(db)
    ddl.apply(db, OLD, NEW, CHANGED, "prep")
    before = db_fixture.catalog_definitions(db)
    with psycopg.connect(db_url) as holder:
        holder.execute("LOCK TABLE public.app_order IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(UserError) as info:
            ddl.apply(
                db, OLD, NEW, CHANGED, "cutover", lock_timeout_ms=50, attempts=2, backoff=0.01
            )
        holder.rollback()
    assert "could not take the locks" in str(info.value) and "nothing was applied" in str(
        info.value
    )
    assert db_fixture.catalog_definitions(db) == before
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    with psycopg.connect(db_url) as holder:
        holder.execute("LOCK TABLE public.app_order IN ACCESS EXCLUSIVE MODE")
        release = threading.Timer(0.3, holder.rollback)
        release.start()
        result = ddl.apply(
            db, OLD, NEW, CHANGED, "cutover", lock_timeout_ms=50, attempts=20, backoff=0.05,
            sleep=sleep,
        )  # fmt: skip
        release.join()
    assert result.applied and result.attempts > 1 and sleeps


def test_a_failing_statement_rolls_the_whole_phase_back(db):
    db_fixture.build(db)
    ddl.apply(db, OLD, NEW, CHANGED, "prep")
    # A contact whose account NEW does not have: the cutover's foreign key cannot be added.
    with hcschema.hc_session(db):
        db.execute(
            "INSERT INTO salesforce_v2.contact (sfid, accountid) VALUES ('003X', '001MISSING')"
        )
    before = db_fixture.catalog_definitions(db)
    with pytest.raises(UserError) as info:
        ddl.apply(db, OLD, NEW, CHANGED, "cutover")
    assert "cutover failed at foreign key contact_account_fkey on salesforce.contact" in str(
        info.value
    )
    assert "nothing was applied" in str(info.value)
    assert db_fixture.catalog_definitions(db) == before


def test_guard_refuses_anything_but_ddl():
    for statement in (
        "INSERT INTO salesforce.account (name) VALUES ('x')",
        "UPDATE salesforce.account SET name = 'x'",
        "DELETE FROM salesforce.account",
        "TRUNCATE salesforce.account",
        "COPY salesforce.account FROM STDIN",
        "DO $$ BEGIN END $$",
    ):
        with pytest.raises(UserError):
            ddl.guard(statement)
    ddl.guard("CREATE INDEX i ON salesforce_v2.account (name)")
    ddl.guard("CREATE RULE r AS ON UPDATE TO s.t DO ALSO INSERT INTO public.x VALUES (1)")


@pytest.mark.parametrize(
    "command, change, message",
    [
        ("ddl", {"--schema": "nope"}, "schema nope does not exist in this database"),
        ("ddl", {"--tables": "account,invoice_totals"}, "not Heroku Connect mappings in schema salesforce: invoice_totals"),
        ("ddl", {"--tables": "account;drop table x"}, "table 'account;drop table x' is not a plain lower-case identifier"),
        ("ddl", {"--new-schema": 'new"schema'}, "new schema 'new\"schema' is not a plain lower-case identifier"),
        ("ddl", {"--database-url": "postgresql://postgres:secret@127.0.0.1:1/x"}, "cannot reach the database at postgresql://postgres:***@127.0.0.1:1/x"),
        ("inventory", {"--tables": "Account"}, "table 'Account' is not a plain lower-case identifier"),
        ("verify", {"--schema": "reporting"}, "not Heroku Connect mappings in schema reporting"),
    ],
)  # fmt: skip
def test_bad_input_gets_a_clear_message_and_changes_nothing(db, db_url, command, change, message):
    db_fixture.build(db)
    before = db_fixture.catalog_definitions(db)
    args = {"--database-url": db_url, "--schema": OLD, "--tables": "account,contact,case"}
    if command != "inventory":
        args["--new-schema"] = NEW
    if command == "ddl":
        args["--phase"] = "prep"
    if command == "verify":
        args["--since"] = "2024-01-01"
    args.update(change)
    flags = [x for pair in args.items() for x in pair] + (["--apply"] if command == "ddl" else [])
    proc = run_db(command, *flags)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith(f"swapbot db {command}: ") and message in proc.stderr
    assert "secret" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert db_fixture.catalog_definitions(db) == before
