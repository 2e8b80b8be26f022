"""What the sandbox does over time: app writes versus its own, the writer, polling, pausing."""

from __future__ import annotations

import psycopg
import pytest
import requests

from swapbot.heroku import ConnectClient
from swapbot.sandbox.scenarios import app_database_url, role_names
from swapbot.testing.services import TOKEN, wait_until

APP = "acme-prod"


@pytest.fixture
def app_session(db_name, db_url):
    """Sessions as the app's role (once the scenario made it): its search_path reaches the
    mapped tables unqualified."""
    opened = []

    def connect() -> psycopg.Connection:
        opened.append(
            psycopg.connect(app_database_url(db_url, role_names(db_name)[0]), autocommit=True)
        )
        return opened[-1]

    yield connect
    for conn in opened:
        conn.close()


def log_rows(db, schema="salesforce", table="_trigger_log"):
    return db.execute(
        f"SELECT state, action, table_name, record_id, sfid FROM {schema}.{table} ORDER BY id"  # noqa: S608
    ).fetchall()


def test_app_role_reaches_mapped_tables_unqualified(sandbox, app_session):
    app_db = app_session()
    path = app_db.execute("SHOW search_path").fetchone()[0]
    assert path == "salesforce, public"
    assert app_db.execute("SELECT count(*) FROM account").fetchone()[0] == 100


def test_app_write_is_sent_to_the_org_and_archived(sandbox_factory, app_session, db):
    sb = sandbox_factory(clock=False)
    app_db = app_session()
    app_db.execute("UPDATE account SET name = 'Renamed by app' WHERE id = 7")
    sfid = db.execute("SELECT sfid FROM salesforce.account WHERE id = 7").fetchone()[0]
    assert log_rows(db) == [("NEW", "UPDATE", "account", 7, sfid)]
    assert (
        db.execute("SELECT _hc_lastop FROM salesforce.account WHERE id = 7").fetchone()[0]
        == "PENDING"
    )

    sb.options.writer_latency_seconds = 0
    sb.sim.step(1.0)
    assert log_rows(db) == []
    assert log_rows(db, table="_trigger_log_archive") == [("SUCCESS", "UPDATE", "account", 7, sfid)]
    org = db.execute(
        "SELECT data->>'Name' FROM _hcsandbox.sf_record WHERE sfid = %s", (sfid,)
    ).fetchone()[0]
    assert org == "Renamed by app"
    assert (
        db.execute("SELECT _hc_lastop FROM salesforce.account WHERE id = 7").fetchone()[0]
        == "UPDATED"
    )


def test_app_insert_gets_its_sfid_written_back_without_a_new_log_row(
    sandbox_factory, app_session, db
):
    sb = sandbox_factory(clock=False, writer_latency_seconds=0)
    app_db = app_session()
    app_db.execute("INSERT INTO contact (lastname, email) VALUES ('Newman', 'n@example.com')")
    row_id = db.execute("SELECT id FROM salesforce.contact WHERE lastname = 'Newman'").fetchone()[0]
    assert log_rows(db) == [("NEW", "INSERT", "contact", row_id, None)]
    sb.sim.step(1.0)
    sfid, lastop = db.execute(
        "SELECT sfid, _hc_lastop FROM salesforce.contact WHERE id = %s", (row_id,)
    ).fetchone()
    assert sfid and sfid.startswith("003") and len(sfid) == 18
    assert lastop == "INSERTED"
    # the write-back was HC's own: only the app's INSERT is in the log
    assert log_rows(db) == []
    assert log_rows(db, table="_trigger_log_archive") == [
        ("SUCCESS", "INSERT", "contact", row_id, None)
    ]
    assert db.execute(
        "SELECT data->>'LastName' FROM _hcsandbox.sf_record WHERE sfid = %s", (sfid,)
    ).fetchone() == ("Newman",)


def test_read_only_mapping_writes_are_captured_but_never_sent(sandbox_factory, app_session, db):
    sb = sandbox_factory(clock=False, writer_latency_seconds=0)
    app_db = app_session()
    app_db.execute("UPDATE opportunity SET name = 'local edit' WHERE id = 1")
    assert log_rows(db)[0][0] == "READONLY"
    sb.sim.step(1.0)
    assert log_rows(db, table="_trigger_log_archive")[0][0] == "READONLY"
    sfid = db.execute("SELECT sfid FROM salesforce.opportunity WHERE id = 1").fetchone()[0]
    org = db.execute(
        "SELECT data->>'Name' FROM _hcsandbox.sf_record WHERE sfid = %s", (sfid,)
    ).fetchone()[0]
    assert org != "local edit"


def test_polling_brings_org_changes_in_without_logging(sandbox_factory, db):
    sb = sandbox_factory(clock=False)
    sfid = db.execute("SELECT sfid FROM salesforce.case ORDER BY id LIMIT 1").fetchone()[0]
    db.execute(
        'UPDATE _hcsandbox.sf_record SET data = data || \'{"Subject": "changed in Salesforce"}\', '
        "systemmodstamp = now() WHERE sfid = %s",
        (sfid,),
    )
    db.execute(
        "UPDATE _hcsandbox.mapping SET last_poll_at = now() - interval '1 hour' WHERE object_name = 'Case'"
    )
    sb.sim.step(0.01)
    subject, lastop = db.execute(
        "SELECT subject, _hc_lastop FROM salesforce.case WHERE sfid = %s", (sfid,)
    ).fetchone()
    assert subject == "changed in Salesforce" and lastop == "SYNCED"
    assert log_rows(db) == []


def test_org_changes_over_time_are_polled(sandbox_factory, db):
    sb = sandbox_factory(org_changes_per_second=20.0)
    connect = ConnectClient(TOKEN, sb.central_url)
    hc1 = connect.find_connection(APP, "hc1")
    before = db.execute("SELECT count(*) FROM _hcsandbox.sf_record").fetchone()[0]
    wait_until(
        lambda: db.execute("SELECT count(*) FROM _hcsandbox.sf_record").fetchone()[0] > before + 5
    )
    sb.options.org_changes_per_second = 0.0
    # a poll interval of 600 nominal seconds is 6 s at speed 100
    wait_until(
        lambda: all(m.counts.db == m.counts.sf for m in connect.get_connection(hc1).mappings),
        timeout=30,
        what="polling to catch up",
    )


def test_paused_connection_keeps_logging_and_sends_after_resume(sandbox_factory, app_session, db):
    sb = sandbox_factory(writer_latency_seconds=0)
    app_db = app_session()
    connect = ConnectClient(TOKEN, sb.central_url)
    hc1 = connect.find_connection(APP, "hc1")
    connect.pause(hc1)
    wait_until(lambda: connect.get_connection(hc1).state == "PAUSED")
    app_db.execute("UPDATE account SET billingcity = 'Paused City' WHERE id = 3")
    sb.sim.step(1.0)
    assert [r[0] for r in log_rows(db)] == ["NEW"]  # logged, not sent
    account = next(m for m in connect.get_connection(hc1).mappings if m.object_name == "Account")
    assert account.counts.pending == 1
    connect.resume(hc1)
    wait_until(lambda: log_rows(db) == [], what="writer after resume")
    assert log_rows(db, table="_trigger_log_archive")[0][0] == "SUCCESS"


def test_org_api_limit_stops_loads_and_notifies(sandbox_factory, db):
    from tests.test_sandbox_connect import mapping_state, new_connection

    sb = sandbox_factory(org_api_daily_limit=1_000_000, load_rows_per_second=5.0)
    connect = ConnectClient(TOKEN, sb.central_url)
    from swapbot.heroku import PlatformClient

    platform = PlatformClient(TOKEN, sb.platform_url)
    hc1 = connect.find_connection(APP, "hc1")
    hc2 = new_connection(connect, platform)
    sb.options.org_api_daily_limit = 0  # the org has used up its day
    connect.import_config(hc2, connect.export_config(hc1).filtered(["Account"]))
    wait_until(lambda: mapping_state(connect, hc2, "Account") == "RELOAD_TABLE", what="load start")

    def limit_notified():
        notes = requests.get(
            f"{hc2.api_root}/connections/{hc2.id}/notifications",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        ).json()["results"]
        return any("REQUEST_LIMIT_EXCEEDED" in n["message"] for n in notes)

    wait_until(limit_notified, what="the limit notification")
    assert db.execute("SELECT count(*) FROM salesforce2.account").fetchone()[0] == 0
    sb.options.org_api_daily_limit = 1_000_000
    sb.options.load_rows_per_second = 500.0
    wait_until(
        lambda: mapping_state(connect, hc2, "Account") == "DATA_SYNCED", what="load after the limit"
    )


def test_write_load_keeps_the_trigger_log_busy(sandbox_factory, db_url, db):
    from swapbot.sandbox.writeload import WriteLoad

    sandbox_factory(clock=False)
    load = WriteLoad(db_url, per_second=50, seed=1).start()
    try:
        wait_until(
            lambda: db.execute("SELECT count(*) FROM salesforce._trigger_log").fetchone()[0] >= 5
        )
    finally:
        load.stop()
    assert load.errors == 0
    states = {r[0] for r in db.execute("SELECT DISTINCT state FROM salesforce._trigger_log")}
    assert states == {"NEW"}
