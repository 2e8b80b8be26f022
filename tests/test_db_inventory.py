"""inventory: every kind of object is found through the catalogs and classified, on a real
PostgreSQL database built by tests/db_fixture.py (read-only here: one database per module)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from swapbot.database import retarget
from swapbot.database.inventory import inventory
from swapbot.database.retarget import Renames
from tests import db_fixture
from tests._db_cli import fixture_database
from tests.db_fixture import CHANGED, NEW, OLD

# What the fixture holds, and what the swap does with each: identity -> (phase, action).
EXPECTED = {
    # prep: attached to the new tables, or copied into NEW
    "grant USAGE on schema salesforce to {app}": ("prep", "attach"),
    "grant USAGE on schema salesforce to {ro}": ("prep", "attach"),
    "default privileges of postgres in schema salesforce: SELECT on tables to {ro}": (
        "prep",
        "attach",
    ),
    "row security on salesforce.account": ("prep", "attach"),
    "storage on salesforce.contact": ("prep", "attach"),
    "not null on salesforce.account.name": ("prep", "attach"),
    "default of salesforce.account.industry": ("prep", "attach"),
    "constraint account_revenue_nonneg on salesforce.account": ("prep", "attach"),
    "constraint contact_email_key on salesforce.contact": ("prep", "attach"),
    'index salesforce."Contact_Name_Idx" on salesforce.contact': ("prep", "attach"),
    "index salesforce.account_billingcity_idx on salesforce.account": ("prep", "attach"),
    "index salesforce.contact_email_partial_idx on salesforce.contact": ("prep", "attach"),
    'statistics public."Contact Name Stats"': ("prep", "copy"),
    "statistics salesforce.account_city_industry": ("prep", "copy"),
    "function salesforce.account_label(p_sfid text)": ("prep", "copy"),
    "materialized view salesforce.account_stats": ("prep", "copy"),
    "index salesforce.account_stats_industry_idx on salesforce.account_stats": ("prep", "attach"),
    "view salesforce.account_contacts": ("prep", "copy"),
    "view salesforce.big_accounts": ("prep", "copy"),
    "view salesforce.opportunity_accounts": ("prep", "copy"),
    "policy account_app_all on salesforce.account": ("prep", "attach"),
    "policy account_ro_city on salesforce.account": ("prep", "attach"),
    "grant SELECT (email) on salesforce.contact to {ro}": ("prep", "attach"),
    "grant SELECT (sfid) on salesforce.contact to {ro}": ("prep", "attach"),
    'grant SELECT on salesforce."case" to {app}': ("prep", "attach"),
    'grant SELECT on salesforce."case" to {ro}': ("prep", "attach"),
    "grant SELECT on salesforce.account to {app}": ("prep", "attach"),
    "grant SELECT on salesforce.account to {ro}": ("prep", "attach"),
    "grant SELECT on salesforce.contact to {app}": ("prep", "attach"),
    "comment on column salesforce.account.billingcity": ("prep", "attach"),
    "comment on table salesforce.account": ("prep", "attach"),
    # cutover: on the new tables once writes stop, or re-pointed in place
    "trigger contact_touch on salesforce.contact": ("cutover", "attach"),
    "rule account_audit_rule on salesforce.account": ("cutover", "attach"),
    'foreign key case_priority_fkey on salesforce."case"': ("cutover", "attach"),
    "foreign key contact_account_fkey on salesforce.contact": ("cutover", "attach"),
    'publication "Contact Feed": salesforce.contact': ("cutover", "attach"),
    "publication swap_pub: salesforce.account": ("cutover", "attach"),
    "refresh of the copy of materialized view salesforce.account_stats": ("cutover", "refresh"),
    "foreign key app_order_account_sfid_fkey on public.app_order": ("cutover", "replace"),
    "foreign key opportunity_account_fkey on salesforce.opportunity": ("cutover", "replace"),
    "rule app_order_log on public.app_order": ("cutover", "replace"),
    "policy app_order_known_account on public.app_order": ("cutover", "replace"),
    "view reporting.open_opportunities": ("cutover", "replace"),
    "view reporting.big_account_names": ("cutover", "replace"),
    'view "Reporting Dept"."Account Summary"': ("cutover", "replace"),
    'view "Reporting Dept"."AnyAccount"': ("cutover", "replace"),
    "materialized view reporting.case_counts": ("cutover", "recreate"),
    "index reporting.case_counts_account_idx on reporting.case_counts": ("cutover", "recreate"),
    "function public.account_display_name(p_sfid text)": ("cutover", "replace"),
    'function "Reporting Dept"."ContactCount"(p_account text)': ("cutover", "replace"),
    "function app.account_names()": ("cutover", "replace"),
    "function public.case_total()": ("cutover", "replace"),
    "function public.contact_count_pinned(p_account text)": ("cutover", "replace"),
    # for a person
    "function public.account_row(p_sfid text)": ("manual", "review"),
    "function public.count_rows(p_table text)": ("manual", "review"),
    "materialized view reporting.contact_counts": ("manual", "review"),
    "column row_data of table public.account_snapshot": ("manual", "review"),
    'publication "Everything": tables in schema salesforce': ("manual", "review"),
    # found, nothing to do
    "function public.contact_count(p_account text)": ("none", "follow"),
    "view reporting.contact_counts_top": ("none", "follow"),
}


@pytest.fixture(scope="module")
def fixture_db():
    # A publication of the whole schema: NEW's tables would not be in it.
    with fixture_database('CREATE PUBLICATION "Everything" FOR TABLES IN SCHEMA salesforce') as db:
        yield db


@pytest.fixture(scope="module")
def inv(fixture_db):
    name, _, conn = fixture_db
    return inventory(conn, OLD, CHANGED, NEW)


def _expected(dbname: str) -> dict[str, tuple[str, str]]:
    app, ro = db_fixture.roles(dbname)
    return {k.format(app=app, ro=ro): v for k, v in EXPECTED.items()}


def test_finds_and_classifies_every_object_of_every_kind(fixture_db, inv):
    found = {o.identity: (o.phase, o.action) for o in inv.objects}
    expected = _expected(fixture_db[0])
    assert found == expected, {
        "missing": sorted(set(expected) - set(found)),
        "unexpected": sorted(set(found) - set(expected)),
        "misclassified": {
            k: (found[k], v) for k, v in expected.items() if k in found and found[k] != v
        },
    }
    kinds = {o.kind for o in inv.objects}
    assert kinds >= {
        "index", "constraint", "default", "not_null", "trigger", "rule", "policy", "grant",
        "schema_grant", "default_privileges", "comment", "statistics", "publication", "view",
        "materialized_view", "function", "foreign_key", "table_option", "other",
    }  # fmt: skip
    for o in inv.objects:
        assert o.reason, o.identity
        if o.phase in ("prep", "cutover") and o.kind not in ("grant", "comment"):
            assert o.definition, o.identity


def test_heroku_connect_objects_are_listed_apart_never_carried(inv):
    managed = {o.identity for o in inv.managed}
    assert "trigger salesforce.hc_account_logtrigger on salesforce.account" in managed
    assert "trigger salesforce.hc_contact_status_trigger on salesforce.contact" in managed
    assert "index salesforce.hcu_idx_account_sfid on salesforce.account" in managed
    assert "index salesforce.hc_idx_contact_systemmodstamp on salesforce.contact" in managed
    assert "index salesforce.account_pkey on salesforce.account" in managed
    assert "function salesforce.hc_account_logger()" in managed
    assert "function public.get_xmlbinary()" in managed
    assert "system table salesforce._trigger_log" in managed
    assert all(o.phase == "managed" for o in inv.managed)
    carried = " ".join(o.identity for o in inv.objects)
    for hc_name in ("hc_idx_", "hcu_idx_", "_logtrigger", "_status_trigger", "_pkey", "_logger"):
        assert hc_name not in carried
    # Unchanged mappings' HC objects are not even listed.
    assert not any("opportunity" in i for i in managed)


def test_dependency_chains_are_followed_and_ordered(inv):
    by = {o.identity: o for o in inv.objects}
    base = by["view salesforce.big_accounts"]
    middle = by["view reporting.big_account_names"]
    top = by['view "Reporting Dept"."Account Summary"']
    assert base.depends_on == ["table salesforce.account"]
    assert middle.depends_on == ["view salesforce.big_accounts"]
    assert top.depends_on == ["table salesforce.contact", "view reporting.big_account_names"]
    assert base.depth < middle.depth < top.depth
    order = [o.identity for o in inv.objects]
    assert order.index(base.identity) < order.index(middle.identity) < order.index(top.identity)
    # The view on the manual materialized view is found through it, and says so.
    follow = by["view reporting.contact_counts_top"]
    assert follow.depends_on == ["materialized view reporting.contact_counts"]


def test_retargets_only_references_to_changed_tables(inv):
    by = {o.identity: o for o in inv.objects}
    mixed = by["view salesforce.opportunity_accounts"].target_definition
    assert "FROM salesforce.opportunity AS o INNER JOIN salesforce_v2.account AS a" in mixed
    outside = by["view reporting.open_opportunities"].target_definition
    assert "salesforce.opportunity AS o LEFT JOIN salesforce_v2.account AS a" in outside
    chain = by["view reporting.big_account_names"].target_definition
    assert "FROM salesforce_v2.big_accounts" in chain  # the copy in NEW, not OLD's original
    quoted = by['view "Reporting Dept"."Account Summary"'].target_definition
    assert 'AS "Account Name"' in quoted and "salesforce_v2.contact AS c" in quoted
    assert by['view "Reporting Dept"."AnyAccount"'].target_definition == (
        "SELECT FROM salesforce_v2.account LIMIT 1"
    )
    atomic = by["function public.account_display_name(p_sfid text)"].target_definition
    assert "BEGIN ATOMIC" in atomic and "FROM salesforce_v2.account AS a" in atomic
    copy = by["function salesforce.account_label(p_sfid text)"].target_definition
    assert copy.startswith("CREATE OR REPLACE FUNCTION salesforce_v2.account_label(")
    pinned = by["function public.contact_count_pinned(p_account text)"].target_definition
    assert "SET search_path TO 'salesforce_v2', 'salesforce', 'public'" in pinned
    body = by["function app.account_names()"].target_definition
    # Spelled as written: the quoted schema stays quoted, the plain one plain.
    assert (
        'r "salesforce_v2".account%ROWTYPE' in body and "FROM salesforce_v2.account ORDER" in body
    )
    # The comment in the body names OLD too; comments are not code and stay as written.
    assert '-- reads "salesforce".account' in body
    fk = by["foreign key app_order_account_sfid_fkey on public.app_order"].target_definition
    assert fk.endswith("REFERENCES salesforce_v2.account (sfid)")
    assert fk.startswith("ALTER TABLE public.app_order ADD CONSTRAINT")
    out_fk = by['foreign key case_priority_fkey on salesforce."case"'].target_definition
    assert (
        'ALTER TABLE salesforce_v2."case"' in out_fk
        and "REFERENCES public.priority_level" in out_fk
    )
    policy = by["policy app_order_known_account on public.app_order"].target_definition
    assert "FROM salesforce_v2.account AS a" in policy
    rule = by["rule app_order_log on public.app_order"].target_definition
    assert "ON INSERT TO public.app_order" in rule and "FROM salesforce_v2.account AS a" in rule
    stats = by['statistics public."Contact Name Stats"'].target_definition
    assert 'salesforce_v2."Contact Name Stats"' in stats and "FROM salesforce_v2.contact" in stats


def test_columns_each_object_needs_in_the_new_table(inv):
    by = {o.identity: o for o in inv.objects}
    assert by["index salesforce.account_billingcity_idx on salesforce.account"].columns == [
        "account.billingcity"
    ]
    assert by["view salesforce.account_contacts"].columns == [
        "account.name", "account.sfid", "contact.accountid", "contact.email", "contact.sfid",
    ]  # fmt: skip
    grant = next(o for o in inv.objects if o.identity.startswith("grant SELECT (email)"))
    assert grant.columns == ["contact.email"]
    assert by['view "Reporting Dept"."AnyAccount"'].columns == []  # the whole table


def test_functions_resolved_at_run_time_are_told_apart(inv):
    by = {o.identity: o for o in inv.objects}
    follows = by["function public.contact_count(p_account text)"]
    assert "follows the switch" in follows.reason
    assert follows.depends_on == ["contact (unqualified)"]
    pinned = by["function public.contact_count_pinned(p_account text)"]
    assert "pins its own search_path" in pinned.reason
    dynamic = by["function public.count_rows(p_table text)"]
    assert "EXECUTE" in dynamic.reason
    rowtype = by["function public.account_row(p_sfid text)"]
    assert "row type" in rowtype.reason


def test_inventory_without_new_schema_and_as_json_from_the_command_line(fixture_db):
    name, url, _ = fixture_db
    proc = subprocess.run(
        [sys.executable, "-m", "swapbot.cli", "db", "inventory", "--database-url", url,
         "--schema", OLD, "--tables", "account,contact,case", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == OLD and doc["tables"] == CHANGED
    first = doc["objects"][0]
    assert set(first) >= {
        "kind",
        "schema",
        "name",
        "oid",
        "definition",
        "phase",
        "flags",
        "depends_on",
    }
    found = {o["identity"]: (o["phase"], o["action"]) for o in doc["objects"]}
    assert found == _expected(name)
    assert all("swapbot_new_schema" not in json.dumps(o) for o in doc["objects"])
    text = subprocess.run(
        [sys.executable, "-m", "swapbot.cli", "db", "inventory", "--database-url", url,
         "--schema", OLD, "--tables", "account"],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert "Created in NEW during prep" in text and "For a person to handle" in text
    assert "Managed by Heroku Connect" in text


# --- re-targeting, without a database ----------------------------------------------------------

R = Renames({("s1", "account"): ("s2", "account"), ("s1", "case"): ("s2", "case")})


def test_rewrite_moves_only_the_named_relations_types_and_columns():
    tree = retarget.parse_one(
        "SELECT a.x, s1.account.y, o.z, (r)::s1.account FROM s1.account a JOIN s1.other o ON true"
        ' JOIN public.account p ON true JOIN s1."case" c ON true, (WITH account AS (SELECT 1)'
        " SELECT * FROM account) q"
    )
    hits = retarget.rewrite(tree, R)
    out = retarget.deparse(tree)
    assert hits == {("s1", "account"), ("s1", "case")}
    assert (
        "FROM s2.account AS a" in out and "s2.account.y" in out and "CAST(r AS s2.account)" in out
    )
    assert "s1.other AS o" in out and "public.account AS p" in out and 's2."case" AS c' in out
    assert "SELECT * FROM account" in out  # a CTE named like the table is not touched


def test_body_scan_moves_qualified_names_keeps_strings_comments_and_spelling():
    body = (
        "DECLARE r s1.account%ROWTYPE; BEGIN\n"
        "  -- s1.account in a comment\n"
        '  SELECT * INTO r FROM "s1".account JOIN account ON true;\n'
        "  RAISE NOTICE 'about account';\nEND"
    )
    scanned = retarget.scan_body(body, R, language="plpgsql")
    assert scanned.qualified == {("s1", "account")}
    assert scanned.unqualified == {"account"}
    assert not scanned.dynamic and not scanned.strings_qualified and scanned.strings_loose
    assert scanned.rewritten == body.replace("r s1.", "r s2.").replace('"s1".', '"s2".')
    back = retarget.scan_body(scanned.rewritten, R.inverse(), language="plpgsql")
    assert back.rewritten == body
    dynamic = retarget.scan_body(
        "BEGIN EXECUTE 'SELECT 1 FROM s1.account'; END", R, language="plpgsql"
    )
    assert dynamic.dynamic and dynamic.strings_qualified == {"s1.account"}


def test_search_path_helpers():
    path = ["salesforce", "Reporting Dept", "$user", "public"]
    moved = retarget.path_with(path, "new", before="salesforce")
    assert moved == ["new", "salesforce", "Reporting Dept", "$user", "public"]
    assert retarget.path_with(moved, "new", before="salesforce") == moved  # once
    assert retarget.path_without(moved, "new") == path
    tree = retarget.parse_one(
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = salesforce, public"
        " AS 'SELECT 1'"
    )
    assert retarget.function_path(tree) == ["salesforce", "public"]
    retarget.set_function_path(tree, moved)
    assert "SET search_path TO 'new', 'salesforce', 'Reporting Dept', '$user', 'public'" in (
        retarget.deparse(tree)
    )
