"""`search-path`: show, switch and restore on a real database, proven from fresh sessions."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from swapbot.database import searchpath
from swapbot.database._common import UserError
from swapbot.sandbox import scenarios
from tests._db_cli import (
    ACCOUNT,
    UNREACHABLE_URL,
    catalog_state,
    new_schema,
    role_settings,
    run_db,
    swap_args,
)

OLD, NEW = "salesforce", "schema2"
OTHERS = ["case", "contact", "invoice__c", "opportunity"]


@pytest.fixture
def world(db_url, db, db_name):
    """The small demo (app role logs in with `salesforce, public`) and NEW with `account`."""
    scenarios.load(db_url, scenarios.get("small"))
    app = f"{db_name}_app"
    new_schema(db, NEW, {"account": ACCOUNT}, grant_to=app)
    return app


def _app_session(db_url: str, role: str) -> psycopg.Connection:
    return psycopg.connect(scenarios.app_database_url(db_url, role), autocommit=True)


def _resolves(conn: psycopg.Connection, name: str) -> str | None:
    """Where an unqualified name leads in this session, as schema.table."""
    row = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
        (name,),
    ).fetchone()
    return row[0] if row else None


@pytest.mark.parametrize(
    "text, parsed",
    [
        ('"$user", public', ["$user", "public"]),
        ("schema2,Salesforce ,  public", ["schema2", "salesforce", "public"]),
        ('"Odd ""Name""", x', ['Odd "Name"', "x"]),
        ("", []),
    ],
)
def test_parse_path_follows_postgres(text, parsed, db):
    assert searchpath.parse_path(text) == parsed
    # PostgreSQL agrees: the path it stores and reports lists the same names.
    db.execute("SELECT set_config('search_path', %s, false)", (text,))
    shown = db.execute("SHOW search_path").fetchone()[0]
    assert searchpath.parse_path(shown) == parsed


def test_show_reports_each_level_and_resolution(world, db):
    report = searchpath.show(db, [world], OLD, NEW, ["account", "contact"])
    levels = {(s.level, s.role): s.search_path for s in report.settings}
    assert levels == {
        ("database", None): None,
        ("role_in_database", world): "salesforce, public",
        ("role", world): None,
    }
    (view,) = report.roles
    assert view.effective_path == "salesforce, public" and view.source == "role_in_database"
    assert view.resolves == {"account": OLD, "contact": OLD}
    assert report.server_default == '"$user", public'


def test_switch_then_a_fresh_app_session_reaches_new_for_account_only(world, db_url, db):
    record = searchpath.switch(db, [world], OLD, NEW, ["account"])
    (level,) = record.levels
    assert (level.previous, level.applied) == ("salesforce, public", "schema2, salesforce, public")
    (proof,) = record.proofs
    assert proof.ok and proof.method == "login" and proof.role == world
    assert proof.resolves == {"account": NEW} | {t: OLD for t in OTHERS}
    assert proof.helpers == {"get_xmlbinary()": True, "hstore": True}
    # Independently of the proof: a new session as the app role.
    with _app_session(db_url, world) as app:
        assert _resolves(app, "account") == "schema2.account"
        assert _resolves(app, "opportunity") == "salesforce.opportunity"
        assert _resolves(app, '"case"') == "salesforce.case"


def test_sessions_from_before_the_switch_are_listed_and_keep_the_old_path(world, db_url, db):
    pooled = _app_session(db_url, world)
    try:
        pid = pooled.info.backend_pid
        record = searchpath.switch(db, [world], OLD, NEW, ["account"])
        assert [s.pid for s in record.pre_switch_sessions] == [pid]
        assert record.pre_switch_sessions[0].role == world
        # The trap the list warns about: the pooled session still reads the old table.
        assert _resolves(pooled, "account") == "salesforce.account"
    finally:
        pooled.close()


def test_restore_is_byte_for_byte_including_settings_that_were_not_there(world, db, db_name):
    # Other settings around search_path, in the same rows, must keep their order and text.
    db.execute(
        sql.SQL("ALTER ROLE {} IN DATABASE {} SET statement_timeout = '5s'").format(
            sql.Identifier(world), sql.Identifier(db_name)
        )
    )
    db.execute(sql.SQL("ALTER ROLE {} SET work_mem = '8MB'").format(sql.Identifier(world)))
    db.execute(sql.SQL("ALTER DATABASE {} SET lock_timeout = '3s'").format(sql.Identifier(db_name)))
    other = f"{db_name}_worker"
    db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(other)))  # no settings
    db.execute(
        sql.SQL("GRANT USAGE ON SCHEMA salesforce, schema2 TO {}").format(sql.Identifier(other))
    )
    # A quoted element: must come back quoted exactly as stored.
    db.execute(
        sql.SQL(
            "ALTER ROLE {} IN DATABASE {} SET search_path = '$user', salesforce, public"
        ).format(sql.Identifier(world), sql.Identifier(db_name))
    )
    before = role_settings(db)
    assert ['search_path="$user", salesforce, public', "statement_timeout=5s"] in [
        r[2] for r in before
    ]

    record = searchpath.switch(db, [world, other], OLD, NEW, ["account"], database=True)
    switched = role_settings(db)
    assert switched != before
    applied = {(lv.level, lv.role): lv.applied for lv in record.levels}
    assert applied == {
        ("role_in_database", world): 'schema2, salesforce, public, "$user"',
        ("role_in_database", other): 'schema2, salesforce, public, "$user"',
        ("database", None): 'schema2, salesforce, public, "$user"',
    }
    assert all(p.ok for p in record.proofs), record.proofs

    result = searchpath.restore(db, record)
    assert result.identical
    assert role_settings(db) == before
    # Restoring twice changes nothing more.
    searchpath.restore(db, record)
    assert role_settings(db) == before


def test_second_switch_keeps_the_first_previous_value(world, db):
    first = searchpath.switch(db, [world], OLD, NEW, ["account"])
    again = searchpath.switch(db, [world], OLD, NEW, ["account"], previous=first)
    assert again.levels[0].previous == first.levels[0].previous == "salesforce, public"
    assert again.levels[0].applied == "schema2, salesforce, public"
    assert not again.notes
    # Without the earlier record the switch cannot know the old value, and says so.
    blind = searchpath.switch(db, [world], OLD, NEW, ["account"])
    assert blind.levels[0].previous == "schema2, salesforce, public"
    assert "restore would keep the switched path" in blind.notes[0]


def test_save_runs_before_commit_and_a_failing_save_changes_nothing(world, db):
    before = role_settings(db)

    def refuse(record):
        assert record.levels[0].previous == "salesforce, public"
        raise RuntimeError("redis is down")

    with pytest.raises(RuntimeError):
        searchpath.switch(db, [world], OLD, NEW, ["account"], save=refuse)
    assert role_settings(db) == before


def test_proof_for_a_role_that_cannot_log_in(world, db, db_name):
    reports = f"{db_name}_reports"
    db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(reports)))
    for schema in (OLD, NEW):
        db.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(schema), sql.Identifier(reports)
            )
        )
    record = searchpath.switch(db, [reports], OLD, NEW, ["account"])
    (proof,) = record.proofs
    assert proof.method == "computed path, set role"
    assert proof.ok and proof.resolves["account"] == NEW


def test_proof_fails_when_the_role_cannot_use_new(world, db, db_name):
    db.execute(
        sql.SQL("REVOKE USAGE ON SCHEMA {} FROM {}").format(
            sql.Identifier(NEW), sql.Identifier(world)
        )
    )
    record = searchpath.switch(db, [world], OLD, NEW, ["account"])
    (proof,) = record.proofs
    assert not proof.ok and proof.resolves["account"] == OLD
    # show, computing rather than logging in, sees the same.
    report = searchpath.show(db, [world], OLD, NEW, ["account"])
    assert report.roles[0].resolves == {"account": OLD}


def test_heroku_ext_joins_the_path_when_hstore_lives_there(world, db):
    db.execute("CREATE SCHEMA heroku_ext")
    db.execute("ALTER EXTENSION hstore SET SCHEMA heroku_ext")
    db.execute(sql.SQL("GRANT USAGE ON SCHEMA heroku_ext TO {}").format(sql.Identifier(world)))
    record = searchpath.switch(db, [world], OLD, NEW, ["account"])
    assert record.levels[0].applied == "schema2, salesforce, public, heroku_ext"
    assert record.proofs[0].helpers == {"get_xmlbinary()": True, "hstore": True}


def test_switch_refuses_when_new_lacks_the_table(world, db):
    before = role_settings(db)
    with pytest.raises(UserError, match="not Heroku Connect mappings in schema schema2: contact"):
        searchpath.switch(db, [world], OLD, NEW, ["account", "contact"])
    assert role_settings(db) == before


def _cli(action: str, db_url: str, *extra: str) -> list[str]:
    return ["search-path", action, *swap_args("", db_url, OLD, NEW, "account", *extra)[1:]]


def test_cli_switch_and_restore_with_a_state_file(world, db_url, db, tmp_path):
    state = tmp_path / "switch.json"
    before = role_settings(db)
    shown = run_db(*_cli("show", db_url, "--roles", world))
    assert shown.returncode == 0 and "account -> salesforce.account" in shown.stdout

    done = run_db(*_cli("switch", db_url, "--roles", world, "--state-file", str(state)))
    assert done.returncode == 0, done.stderr
    assert "proof as" in done.stdout and "ok" in done.stdout
    saved = json.loads(state.read_text())
    assert saved["levels"][0]["previous"] == "salesforce, public" and saved["proofs"][0]["ok"]

    again = run_db(*_cli("switch", db_url, "--roles", world, "--state-file", str(state)))
    assert again.returncode == 0
    assert json.loads(state.read_text())["levels"][0]["previous"] == "salesforce, public"

    switched = role_settings(db)
    # The last --new-schema wins: a restore asked for another swap than the one recorded.
    other = run_db(*_cli("restore", db_url, "--state-file", str(state), "--new-schema", "x"))
    assert other.returncode == 2 and "not from salesforce to x" in other.stderr
    assert role_settings(db) == switched

    restored = run_db(*_cli("restore", db_url, "--state-file", str(state)))
    assert restored.returncode == 0, restored.stderr
    assert role_settings(db) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["switch", "--roles", "app;drop role x", "--state-file", "{state}"], "not a plain"),
        (["switch", "--roles", "nosuchrole", "--state-file", "{state}"], "no such role"),
        (["switch", "--roles", "{app}"], "needs --state-file"),
        (["switch", "--state-file", "{state}"], "nothing to switch"),
        (["restore", "--state-file", "{state}"], "nothing to restore"),
    ],
)
def test_cli_refuses_bad_input(world, db_url, db, tmp_path, args, message):
    fill = {"state": str(tmp_path / "s.json"), "app": world}
    before = catalog_state(db)
    done = run_db(*_cli(args[0], db_url, *[a.format(**fill) for a in args[1:]]))
    assert done.returncode == 2, done
    assert message in done.stderr and "Traceback" not in done.stderr
    assert catalog_state(db) == before
    assert not (tmp_path / "s.json").exists()


def test_cli_refuses_bad_schema_and_tables(world, db_url, db, tmp_path):
    before = catalog_state(db)
    state = str(tmp_path / "s.json")
    base = ["search-path", "switch", "--database-url", db_url, "--roles", world]
    cases = [
        (["--schema", "nope", "--new-schema", NEW, "--tables", "account"], "schema nope does not"),
        (["--schema", OLD, "--new-schema", 'x"y', "--tables", "account"], "not a plain"),
        (["--schema", OLD, "--new-schema", NEW, "--tables", "_hcmeta"], "not Heroku Connect"),
        (["--schema", OLD, "--new-schema", OLD, "--tables", "account"], "must differ"),
    ]
    for extra, message in cases:
        done = run_db(*base, *extra, "--state-file", state)
        assert done.returncode == 2 and message in done.stderr, (extra, done.stderr)
    assert catalog_state(db) == before


def test_cli_unreachable_database():
    done = run_db(*_cli("show", UNREACHABLE_URL, "--roles", "x"))
    assert done.returncode == 2 and "cannot reach the database" in done.stderr
