"""The Heroku Connect client against the sandbox, over real HTTP and the real database:
every call, and every connection and mapping state transition the procedure relies on."""

from __future__ import annotations

import psycopg
import pytest
import requests

from swapbot.heroku import (
    BadRequest,
    Conflict,
    ConnectionNotFound,
    ExportDocument,
    Forbidden,
    NotFound,
)
from swapbot.testing.services import NEXT, TOKEN, wait_until

APP = "acme-prod"
AUTH = {"Authorization": f"Bearer {TOKEN}"}  # for the few raw requests


def state_of(connect, ref) -> str:
    return connect.get_connection(ref).state


def mapping(connect, ref, object_name):
    return next(
        (m for m in connect.get_connection(ref).mappings if m.object_name == object_name), None
    )


def mapping_state(connect, ref, object_name) -> str | None:
    m = mapping(connect, ref, object_name)
    return m.state if m else None


def new_connection(connect, platform, name="hc2", schema="salesforce2", authorize=True):
    """Create an HC add-on and take it through configure and (optionally) authorization."""
    platform.create_addon(APP, plan="herokuconnect:enterprise", name=name)
    wait_until(lambda: platform.get_addon(APP, name).state == "provisioned", what="provisioning")
    ref = connect.find_connection(APP, name)
    assert state_of(connect, ref) == "NEW"
    connect.configure(ref, db_key="DATABASE_URL", schema_name=schema)
    assert state_of(connect, ref) == "NEED_AUTHENTICATION"
    if authorize:
        link = connect.authorize_url(ref, environment="production", next_url=NEXT)
        requests.get(
            link, params={"username": f"{name}@acme.example"}, timeout=5
        ).raise_for_status()
        wait_until(lambda: state_of(connect, ref) == "IDLE", what="authorization")
    return ref


def test_discovery_needs_link_and_finds_by_resource_name(clients, sandbox):
    connect, _ = clients
    assert connect.discover(APP) == []  # not on the access list yet
    linked = connect.link(APP)
    assert [c.resource_name for c in linked.connections] == ["hc1"]
    refs = connect.discover(APP, resource_name="hc1")
    assert len(refs) == 1
    assert refs[0].region_url.endswith("/")  # the trailing-slash trap of §1.4
    assert refs[0].api_root.startswith(sandbox.base_url)
    with pytest.raises(ConnectionNotFound):
        connect.find_connection(APP, "no-such-addon")


def test_connection_detail_is_deep_with_counts(clients):
    connect, _ = clients
    ref = connect.find_connection(APP, "hc1")
    c = connect.get_connection(ref)
    assert c.state == "IDLE" and c.schema_name == "salesforce" and c.db_key == "DATABASE_URL"
    assert c.addon_id and c.addon_id != c.id  # §1.6: never assume they are equal
    assert {m.object_name for m in c.mappings} == {
        "Account",
        "Contact",
        "Opportunity",
        "Case",
        "Invoice__c",
    }
    account = next(m for m in c.mappings if m.object_name == "Account")
    assert account.state == "DATA_SYNCED"
    assert account.counts.db == account.counts.sf == 100
    assert account.config.access == "read_write" and account.config.revision == 1
    assert "Id" in account.config.fields
    assert c.features["poll_db_no_merge"] is True
    assert connect.app_db_keys(ref, APP) == ["DATABASE_URL"]
    assert connect.get_mapping(ref, account.id).object_name == "Account"


def test_another_users_token_cannot_use_a_connection_it_is_not_linked_to(clients, sandbox):
    from swapbot.heroku import ConnectClient

    connect, _ = clients
    ref = connect.find_connection(APP, "hc1")
    stranger = ConnectClient("someone-else", sandbox.central_url)
    with pytest.raises(Forbidden):
        stranger.get_connection(ref)


def test_new_connection_lifecycle_import_and_initial_load(sandbox, clients, db):
    connect, platform = clients
    sandbox.options.import_seconds = 100.0  # 1 s here: long enough to be seen under way
    hc1 = connect.find_connection(APP, "hc1")
    hc2 = new_connection(connect, platform)
    # configure created the schema with HC's system tables
    tables = {
        r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'salesforce2'")
    }
    assert {"_hcmeta", "_trigger_log", "_trigger_log_archive", "_sf_event_log"} <= tables

    doc = connect.export_config(hc1)
    assert doc.version == 1 and len(doc.mappings) == 5
    connect.import_config(hc2, doc.filtered(["Account"]))
    assert state_of(connect, hc2) == "IMPORT_CONFIGURATION"
    wait_until(lambda: state_of(connect, hc2) == "IDLE", what="import to finish")
    wait_until(lambda: mapping_state(connect, hc2, "Account") == "DATA_SYNCED", what="initial load")
    m = mapping(connect, hc2, "Account")
    assert m.counts.db == m.counts.sf == 100
    assert [x.object_name for x in connect.get_connection(hc2).mappings] == ["Account"]
    rows = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE _hc_lastop = 'SYNCED') FROM salesforce2.account"
    )
    assert rows.fetchone() == (100, 100)
    # the load is HC's own write: nothing in the trigger log
    assert db.execute("SELECT count(*) FROM salesforce2._trigger_log").fetchone()[0] == 0


def test_authorize_url_validation_and_single_use_link(clients):
    connect, platform = clients
    ref = new_connection(connect, platform, authorize=False)
    with pytest.raises(ValueError):
        connect.authorize_url(ref, environment="custom", next_url=NEXT)  # custom needs a domain
    # Heroku's own client always says where to go once logged in; the sandbox insists on it.
    url = f"{ref.api_root}/connections/{ref.id}/authorize_url"
    refused = requests.post(url, json={"environment": "sandbox"}, headers=AUTH, timeout=5)
    assert refused.status_code == 400 and "next is required" in refused.json()["message"]
    link = connect.authorize_url(ref, environment="sandbox", next_url=NEXT)
    answer = requests.get(link, timeout=5)
    assert answer.status_code == 200 and answer.json()["next"] == NEXT  # where HC sends them
    assert requests.get(link, timeout=5).status_code == 400  # a used link is void
    wait_until(lambda: state_of(connect, ref) == "IDLE")
    assert connect.get_connection(ref).sf_info["environment"] == "sandbox"


def test_configure_refuses_a_schema_another_connection_uses(clients):
    connect, platform = clients
    platform.create_addon(APP, plan="herokuconnect:enterprise", name="hc2")
    wait_until(lambda: platform.get_addon(APP, "hc2").state == "provisioned")
    ref = connect.find_connection(APP, "hc2")
    with pytest.raises(BadRequest, match="already used"):
        connect.configure(ref, db_key="DATABASE_URL", schema_name="salesforce")
    with pytest.raises(BadRequest, match="identifier"):
        connect.configure(ref, db_key="DATABASE_URL", schema_name="Bad-Schema")
    with pytest.raises(BadRequest, match="config var"):
        connect.configure(ref, db_key="NOPE_URL", schema_name="s2")
    assert state_of(connect, ref) == "NEW"


def test_abort_edit_and_reload_path(clients, sandbox, db):
    """The seed's order: import, abort in the dashboard, add columns with PUT, reload."""
    connect, platform = clients
    hc1 = connect.find_connection(APP, "hc1")
    hc2 = new_connection(connect, platform)
    sandbox.options.load_rows_per_second = 1.0  # keep the load running so it can be aborted
    connect.import_config(hc2, connect.export_config(hc1).filtered(["Contact"]))
    wait_until(lambda: mapping_state(connect, hc2, "Contact") == "RELOAD_TABLE", what="load start")

    r = requests.post(
        f"{sandbox.base_url}/_sandbox/connections/hc2/mappings/Contact/abort", timeout=5
    )
    assert r.status_code == 200
    m = mapping(connect, hc2, "Contact")
    assert m.state == "ABORTED"

    config = m.config.model_copy(deep=True)
    config.fields["Phone"] = {}
    stale = config.model_copy(update={"revision": (m.config.revision or 1) - 1})
    with pytest.raises(Conflict):
        connect.update_mapping(hc2, m.id, "Contact", stale)
    connect.update_mapping(hc2, m.id, "Contact", config)
    sandbox.options.load_rows_per_second = 500.0
    wait_until(lambda: mapping(connect, hc2, "Contact").config.revision == 2)
    wait_until(
        lambda: db.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = 'salesforce2' "
            "AND table_name = 'contact' AND column_name = 'phone'"
        ).fetchone()
    )
    connect.reload_mapping(hc2, m.id)
    assert mapping(connect, hc2, "Contact").state == "RELOAD_TABLE"
    wait_until(lambda: mapping(connect, hc2, "Contact").state == "DATA_SYNCED", what="reload")
    filled = db.execute(
        "SELECT count(*) FROM salesforce2.contact WHERE phone IS NOT NULL"
    ).fetchone()[0]
    assert filled == 150


def test_put_that_adds_fields_resyncs_the_new_columns(clients, db):
    connect, _ = clients
    hc1 = connect.find_connection(APP, "hc1")
    m = mapping(connect, hc1, "Account")
    config = m.config.model_copy(deep=True)
    config.fields["Rating"] = {}
    connect.update_mapping(hc1, m.id, "Account", config)

    def synced():
        current = mapping(connect, hc1, "Account")
        return current.state == "DATA_SYNCED" and current.config.revision == 2

    wait_until(synced, what="resync")
    assert db.execute("SELECT count(rating) FROM salesforce.account").fetchone()[0] == 100


def test_mapping_create_unknown_field_goes_bad_config_and_delete(clients, db):
    connect, platform = clients
    hc2 = new_connection(connect, platform)
    config = {"access": "read_only", "fields": {"Id": {}, "SystemModstamp": {}, "Nope__c": {}}}
    connect.create_mapping(hc2, "Invoice__c", config)
    with pytest.raises(BadRequest, match="already exists"):
        connect.create_mapping(hc2, "Invoice__c", config)
    wait_until(lambda: mapping_state(connect, hc2, "Invoice__c") == "BAD_CONFIG", what="BAD_CONFIG")
    m = mapping(connect, hc2, "Invoice__c")
    connect.delete_mapping(hc2, m.id)
    assert connect.get_connection(hc2).mappings == []
    with pytest.raises(NotFound):
        connect.get_mapping(hc2, m.id)


def test_mapping_create_without_id_gets_it_as_hc_adds_it(clients, db):
    """Older official clients sent only the chosen fields on create; HC adds Id. An import's
    file, an export of HC's own, always has it (and must)."""
    connect, platform = clients
    hc2 = new_connection(connect, platform)
    created = connect.create_mapping(
        hc2, "Invoice__c", {"access": "read_only", "fields": {"SystemModstamp": {}}}
    )
    assert created is not None and "Id" in created.config.fields
    wait_until(lambda: mapping(connect, hc2, "Invoice__c").state == "DATA_SYNCED", what="load")
    assert db.execute("SELECT count(sfid) FROM salesforce2.invoice__c").fetchone()[0] > 0
    no_id = {"version": 1, "mappings": [{"object_name": "Account", "config": {
        "access": "read_only", "fields": {"SystemModstamp": {}}}}]}  # fmt: skip
    with pytest.raises(BadRequest, match="include Id"):
        connect.import_config(hc2, no_id)


def test_import_rejects_a_malformed_document_and_changes_nothing(clients):
    connect, platform = clients
    hc2 = new_connection(connect, platform)
    bad = {
        "version": 1,
        "mappings": [{"object_name": "Account", "config": {"access": "read_write", "fields": {}}}],
    }
    with pytest.raises(BadRequest, match="fields"):
        connect.import_config(hc2, bad)
    assert state_of(connect, hc2) == "IDLE"
    assert connect.get_connection(hc2).mappings == []


def test_import_refused_before_authorization(clients):
    connect, platform = clients
    hc2 = new_connection(connect, platform, authorize=False)
    with pytest.raises(BadRequest, match="authorized"):
        connect.import_config(hc2, ExportDocument(mappings=[]))


def test_pause_only_from_idle_then_resume_and_restart(sandbox_factory, db_name, db_url):
    from swapbot.heroku import ConnectClient
    from swapbot.sandbox.scenarios import app_database_url, role_names

    # A writer that never catches up keeps hc1 in POLLING_DB_CHANGES.
    sb = sandbox_factory(writer_latency_seconds=10_000, resume_seconds=50, restart_seconds=50)
    connect = ConnectClient(TOKEN, sb.central_url)
    hc1 = connect.find_connection(APP, "hc1")
    with psycopg.connect(app_database_url(db_url, role_names(db_name)[0]), autocommit=True) as app:
        app.execute("UPDATE account SET name = 'changed by the app' WHERE id = 1")
    wait_until(lambda: state_of(connect, hc1) == "POLLING_DB_CHANGES", what="writer busy")
    with pytest.raises(BadRequest, match="only be paused when it is IDLE"):
        connect.pause(hc1)
    assert state_of(connect, hc1) == "POLLING_DB_CHANGES"

    sb.options.writer_latency_seconds = 0.0
    wait_until(lambda: state_of(connect, hc1) == "IDLE", what="drain")
    connect.pause(hc1)
    connect.pause(hc1)  # repeating a pause is harmless
    wait_until(lambda: state_of(connect, hc1) == "PAUSED", what="pause")
    connect.resume(hc1)
    assert state_of(connect, hc1) == "RECOVERY"
    wait_until(lambda: state_of(connect, hc1) == "IDLE", what="resume")
    connect.restart(hc1)
    assert state_of(connect, hc1) == "RECOVERY"
    wait_until(lambda: state_of(connect, hc1) == "IDLE", what="restart")


def test_errors_endpoints_report_failed_writes(sandbox_factory, db_name, db_url):
    from swapbot.heroku import ConnectClient
    from swapbot.sandbox.scenarios import app_database_url, role_names

    sb = sandbox_factory(write_failure_rate=1.0)
    connect = ConnectClient(TOKEN, sb.central_url)
    hc1 = connect.find_connection(APP, "hc1")
    with psycopg.connect(app_database_url(db_url, role_names(db_name)[0]), autocommit=True) as app:
        app.execute("UPDATE contact SET lastname = 'Rejected' WHERE id <= 3")
    found = wait_until(
        lambda: connect.errors(hc1).count == 3 and connect.errors(hc1), what="errors"
    )
    assert {e.table_name for e in found.results} == {"contact"}
    assert "validation" in found.results[0].message
    contact = mapping(connect, hc1, "Contact")
    assert connect.mapping_errors(hc1, contact.id).count == 3
    assert contact.counts.errors == 3
    assert connect.mapping_errors(hc1, mapping(connect, hc1, "Account").id).count == 0
