"""verify: after prep, cutover and the search_path switch, every check passes; before them, or
when a role cannot reach NEW, the checks say exactly what is wrong."""

from __future__ import annotations

import json
import subprocess
import sys

from swapbot.database import ddl, verify
from tests import db_fixture
from tests.db_fixture import CHANGED, NEW, OLD


def statuses(result: verify.Verification) -> dict[str, str]:
    return {c.name: c.status for c in result.checks}


def items(result: verify.Verification, name: str) -> list[str]:
    return next(c.items for c in result.checks if c.name == name)


def test_verify_after_the_cutover_passes_and_names_what_is_wrong_otherwise(db, db_url, db_name):
    db_fixture.build(db)
    app, _ = db_fixture.roles(db_name)
    ddl.apply(db, OLD, NEW, CHANGED, "prep")
    ddl.apply(db, OLD, NEW, CHANGED, "cutover")
    db.execute(f"ALTER ROLE {app} IN DATABASE {db_name} SET search_path = {NEW}, {OLD}, public")

    proc = subprocess.run(
        [sys.executable, "-m", "swapbot.cli", "db", "verify", "--database-url", db_url,
         "--schema", OLD, "--new-schema", NEW, "--tables", "account,contact,case",
         "--since", "2024-03-01T00:00:00+00:00", "--role", app,
         "--columns", "account.rating,contact.phone,case.origin", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True
    checks = {c["name"]: c for c in doc["checks"]}
    assert {n: c["status"] for n, c in checks.items()} == {
        f"resolution:{app}": "pass",
        "columns": "pass",
        "arriving": "pass",
        "hc_triggers": "pass",
        "dependents": "warn",  # the four objects flagged for a person
        "carried": "pass",
    }
    assert "from role in database" in checks[f"resolution:{app}"]["detail"]
    assert "the other 2 mappings to salesforce" in checks[f"resolution:{app}"]["detail"]
    assert len(checks["dependents"]["items"]) == 4
    assert checks["carried"]["detail"] == "all 37 carried objects exist in their new form"

    # A role that may not use NEW silently resolves to OLD: PostgreSQL skips the schema.
    db.execute(f"REVOKE USAGE ON SCHEMA {NEW} FROM {app}")
    # No row newer than the moment asked for; a column the mapping was supposed to add.
    result = verify.verify(
        db, OLD, NEW, CHANGED, "2024-07-01", roles=[app], columns=["account.nosuch"]
    )
    assert not result.ok
    assert statuses(result)[f"resolution:{app}"] == "fail"
    assert "account resolves to salesforce.account, not salesforce_v2.account" in items(
        result, f"resolution:{app}"
    )
    assert statuses(result)["arriving"] == "fail"
    assert statuses(result)["columns"] == "fail" and items(result, "columns") == ["account.nosuch"]
    # A trigger HC would have recreated is gone; a carried policy too; an index differs.
    db.execute(f'DROP TRIGGER hc_case_status_trigger ON {NEW}."case"')
    db.execute(f"DROP POLICY account_ro_city ON {NEW}.account")
    db.execute(f"DROP INDEX {NEW}.account_billingcity_idx")
    db.execute(f"CREATE INDEX account_billingcity_idx ON {NEW}.account (billingcity)")
    # A copy that reads OLD after all is not "its new form".
    db.execute(
        f"CREATE OR REPLACE VIEW {NEW}.big_accounts AS"
        f" SELECT sfid, name, annualrevenue FROM {OLD}.account WHERE annualrevenue >= 2000"
    )
    result = verify.verify(db, OLD, NEW, CHANGED, "2024-03-01")
    assert items(result, "hc_triggers") == [
        'salesforce_v2."case" has no trigger hc_case_status_trigger'
    ]
    assert items(result, "carried") == [
        f"missing: grant USAGE on schema salesforce to {app} -> schema salesforce_v2",
        "missing: policy account_ro_city on salesforce.account -> on salesforce_v2.account",
        "index salesforce.account_billingcity_idx on salesforce.account:"
        " index salesforce_v2.account_billingcity_idx on salesforce_v2.account differs from"
        " the expected definition",
        "view salesforce.big_accounts: salesforce_v2.big_accounts exists but does not read"
        " the new tables",
    ]
    # Without --role: the database's default path, which nobody switched.
    assert "from server default" in next(
        c.detail for c in result.checks if c.name.startswith("resolution")
    )


def test_verify_before_the_cutover_fails_on_every_count(db, db_url, db_name):
    db_fixture.build(db)
    app, _ = db_fixture.roles(db_name)
    db.execute(f"ALTER DATABASE {db_name} SET search_path = {OLD}, public")
    ddl.apply(db, OLD, NEW, CHANGED, "prep")
    result = verify.verify(db, OLD, NEW, CHANGED, "2024-03-01", roles=[app])
    assert statuses(result) == {
        f"resolution:{app}": "fail",
        "columns": "pass",
        "arriving": "pass",
        "hc_triggers": "pass",
        "dependents": "fail",
        "carried": "fail",
    }
    assert "from database" in next(
        c.detail for c in result.checks if c.name.startswith("resolution")
    )
    still_bound = items(result, "dependents")
    assert any(i.startswith("view reporting.open_opportunities:") for i in still_bound)
    assert any(i.startswith("foreign key app_order_account_sfid_fkey on public.app_order") for i in still_bound)  # fmt: skip
    missing = items(result, "carried")
    assert (
        "missing: trigger contact_touch on salesforce.contact -> on salesforce_v2.contact"
        in missing
    )
    proc = subprocess.run(
        [sys.executable, "-m", "swapbot.cli", "db", "verify", "--database-url", db_url,
         "--schema", OLD, "--new-schema", NEW, "--tables", "account,contact,case",
         "--since", "2024-03-01"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1 and "FAILED" in proc.stdout.splitlines()[0]
    assert "[FAIL] dependents:" in proc.stdout


def test_effective_search_path_follows_postgres_precedence(db, db_name):
    role = f"{db_name}_probe"
    db.execute(f"CREATE ROLE {role} LOGIN")
    assert verify.effective_path(db, role) == (verify.server_default_path(db), "server default")
    db.execute(f"ALTER DATABASE {db_name} SET search_path = a_db, public")
    assert verify.effective_path(db, role) == ("a_db, public", "database")
    assert verify.effective_path(db, None) == ("a_db, public", "database")
    db.execute(f"ALTER ROLE {role} SET search_path = a_role, public")
    assert verify.effective_path(db, role) == ("a_role, public", "role")
    db.execute(f'ALTER ROLE {role} IN DATABASE {db_name} SET search_path = "Both Here", public')
    assert verify.effective_path(db, role) == ('"Both Here", public', "role in database")
    assert verify.effective_path(db, None) == ("a_db, public", "database")
