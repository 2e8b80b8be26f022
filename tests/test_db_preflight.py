"""`preflight`: each check's pass, warn and fail on a real database, and the command line."""

from __future__ import annotations

import pytest
from psycopg import sql

from swapbot.database import preflight
from swapbot.sandbox import scenarios
from tests._db_cli import UNREACHABLE_URL, catalog_state, run_db, run_json, swap_args

OLD, NEW = "salesforce", "schema2"


@pytest.fixture
def world(db_url, db, db_name):
    scenarios.load(db_url, scenarios.get("small"))
    return f"{db_name}_app"


def _checks(db, tables=("account",), **kw) -> dict[str, preflight.Check]:
    result = preflight.preflight(db, OLD, NEW, list(tables), **kw)
    assert [c.name for c in result.checks] == [
        "postgres_version",
        "connections",
        "disk",
        "hc_helpers",
        "search_path",
        "explicit_references",
        "app_queries",
        "backlog",
        "new_schema",
    ]
    return {c.name: c for c in result.checks}


def test_a_clean_small_world(world, db):
    checks = _checks(db, roles=[world], disk_limit_gb=100)
    assert checks["postgres_version"].status == "pass" and checks["postgres_version"].value >= 14
    assert checks["hc_helpers"].status == "pass"
    assert checks["search_path"].status == "pass" and checks["search_path"].value == 1
    assert checks["explicit_references"].status == "pass"
    assert checks["backlog"].status == "pass" and checks["backlog"].value == 0
    assert checks["new_schema"].status == "pass"
    assert checks["disk"].status == "pass"
    size = db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    changed = db.execute("SELECT pg_total_relation_size('salesforce.account')").fetchone()[0]
    assert checks["disk"].value == 100 * 1024**3 - size - int(changed * preflight.NEW_COPY_FACTOR)
    # Not installed here: a gap a person has to fill, so a warning that says how.
    assert checks["app_queries"].status == "warn"
    assert "not installed" in checks["app_queries"].summary
    c = checks["connections"]
    assert c.status == ("pass" if c.value >= 20 else "warn" if c.value >= 10 else "fail")


def test_default_roles_are_the_ones_that_set_a_search_path(world, db):
    assert preflight.default_roles(db) == [world]
    assert preflight.preflight(db, OLD, NEW, ["account"]).roles == [world]


def test_new_schema_that_exists_fails(world, db):
    db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(NEW)))
    result = preflight.preflight(db, OLD, NEW, ["account"], roles=[world], disk_limit_gb=100)
    assert {c.name: c.status for c in result.checks}["new_schema"] == "fail"
    assert result.status == "fail"


def test_disk_limit(world, db):
    assert _checks(db, roles=[world], disk_limit_gb=0.001)["disk"].status == "fail"
    unknown = _checks(db, roles=[world])["disk"]
    assert unknown.status == "warn" and "unknown" in unknown.summary and unknown.value > 0


def test_helpers_in_heroku_ext_warn_and_missing_ones_fail(world, db):
    db.execute("CREATE SCHEMA heroku_ext")
    db.execute("ALTER EXTENSION hstore SET SCHEMA heroku_ext")
    helpers = _checks(db, roles=[world])["hc_helpers"]
    assert helpers.status == "warn" and "heroku_ext" in helpers.summary
    assert "hstore in heroku_ext" in helpers.details
    db.execute("ALTER FUNCTION public.get_xmlbinary() RENAME TO get_xmlbinary_gone")
    helpers = _checks(db, roles=[world])["hc_helpers"]
    assert helpers.status == "fail" and "get_xmlbinary()" in helpers.summary


def test_a_role_that_does_not_reach_the_tables_fails(world, db, db_name):
    other = f"{db_name}_qualified"
    db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(other)))
    check = _checks(db, roles=[world, other])["search_path"]
    assert check.status == "fail" and check.value == 1
    assert any(other in d and "account -> nothing" in d for d in check.details)


def test_explicit_references_to_old_are_found(world, db):
    db.execute(
        """
        CREATE VIEW public.v_accounts AS SELECT sfid, name FROM salesforce.account;
        CREATE MATERIALIZED VIEW public.mv_accounts AS SELECT count(*) FROM salesforce.account;
        CREATE VIEW public.v_opps AS SELECT sfid FROM salesforce.opportunity;
        CREATE FUNCTION public.count_accounts() RETURNS bigint LANGUAGE plpgsql AS $$
            BEGIN RETURN (SELECT count(*) FROM "salesforce"."account"); END $$;
        CREATE FUNCTION public.count_opps() RETURNS bigint LANGUAGE plpgsql AS $$
            BEGIN RETURN (SELECT count(*) FROM salesforce.opportunity); END $$;
        CREATE FUNCTION public.accounts_like() RETURNS bigint LANGUAGE plpgsql AS $$
            BEGIN RETURN (SELECT count(*) FROM salesforce.account_like); END $$;
        CREATE FUNCTION public.account_name(p text) RETURNS text LANGUAGE sql STABLE
            BEGIN ATOMIC SELECT name FROM salesforce.account WHERE sfid = p; END;
        CREATE FUNCTION public.pinned() RETURNS bigint LANGUAGE plpgsql
            SET search_path = salesforce, public AS $$
            BEGIN RETURN (SELECT count(*) FROM account); END $$;
        """
    )
    check = _checks(db, roles=[world])["explicit_references"]
    assert check.status == "warn" and check.value == 5
    text = "\n".join(check.details)
    for name in ("v_accounts", "mv_accounts", "count_accounts", "account_name", "pinned"):
        assert name in text
    for name in ("v_opps", "count_opps", "accounts_like", "hc_account_logger"):
        assert name not in text
    assert "materialized view public.mv_accounts" in text
    assert "BEGIN ATOMIC" in text and "names salesforce explicitly" in text
    assert "pins search_path" in text


def test_pg_stat_statements_installed_but_not_loaded_is_a_warning(world, db):
    db.execute("CREATE EXTENSION pg_stat_statements")
    check = _checks(db, roles=[world])["app_queries"]
    assert check.status == "warn" and "cannot be read" in check.summary


def test_reference_pattern_matches_quoted_and_unquoted_names():
    import re

    pattern = re.compile(preflight.reference_pattern(OLD, ["account", "case"]), re.I)
    for hit in (
        "select * from salesforce.account",
        'FROM "salesforce"."case" c',
        "x,salesforce . account",
    ):
        assert pattern.search(hit), hit
    for miss in ("from salesforce.account_like", "from my_salesforce.account", "from account"):
        assert not pattern.search(miss), miss


def test_backlog_with_pending_writes_and_no_history_warns(world, db):
    db.execute(
        "INSERT INTO salesforce._trigger_log (state, table_name, action, created_at)"
        " VALUES ('NEW', 'account', 'UPDATE', now() - interval '10 minutes')"
    )
    check = _checks(db, roles=[world])["backlog"]
    assert check.status == "warn" and check.value is None
    assert "no drain estimate" in check.summary
    assert any("pending: 1 rows (1 in the changed tables)" in d for d in check.details)


def test_cli_json_and_exit_codes(world, db_url, db):
    code, doc = run_json(
        *swap_args("preflight", db_url, OLD, NEW, "account,contact", "--disk-limit-gb", "100")
    )
    assert code == 0 and doc["status"] == "warn" and doc["roles"] == [world]
    assert {c["name"]: c["status"] for c in doc["checks"]}["new_schema"] == "pass"
    db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(NEW)))
    done = run_db(*swap_args("preflight", db_url, OLD, NEW, "account"))
    assert done.returncode == 1 and "[FAIL] new_schema" in done.stdout


def test_cli_refuses_bad_input_and_changes_nothing(world, db_url, db):
    before = catalog_state(db)
    base = ["preflight", "--database-url", db_url]
    cases = [
        (
            ["--schema", "nope", "--new-schema", NEW, "--tables", "account"],
            "schema nope does not exist",
        ),
        (["--schema", OLD, "--new-schema", "new;drop", "--tables", "account"], "not a plain"),
        (["--schema", OLD, "--new-schema", NEW, "--tables", 'account"'], "not a plain"),
        (
            ["--schema", OLD, "--new-schema", NEW, "--tables", "app_order"],
            "not Heroku Connect mappings",
        ),
        (["--schema", OLD, "--new-schema", OLD, "--tables", "account"], "must differ"),
        (
            ["--schema", OLD, "--new-schema", NEW, "--tables", "account", "--roles", "ghost"],
            "no such role",
        ),
        (
            ["--schema", OLD, "--new-schema", NEW, "--tables", "account", "--disk-limit-gb", "-1"],
            "positive",
        ),
    ]
    for extra, message in cases:
        done = run_db(*base, *extra)
        assert done.returncode == 2 and message in done.stderr, (extra, done.stderr)
        assert "Traceback" not in done.stderr
    assert catalog_state(db) == before
    done = run_db(
        "preflight",
        "--database-url",
        UNREACHABLE_URL,
        "--schema",
        OLD,
        "--new-schema",
        NEW,
        "--tables",
        "account",
    )
    assert done.returncode == 2 and "cannot reach the database" in done.stderr
