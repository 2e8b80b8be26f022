"""Every connection and mapping state the sandbox goes through, observed one step at a time.

The clock is off: each test moves the simulation itself (`sim.step`), after the short real wait
that a scheduled transition needs at speed 100, so intermediate states can be seen.
"""

from __future__ import annotations

import time

import psycopg
import pytest
import requests

from swapbot.heroku import BadRequest, ConnectClient, PlatformClient
from swapbot.sandbox.scenarios import app_database_url, role_names
from swapbot.testing.services import NEXT, TOKEN

APP = "acme-prod"


def tick(sb, times: int = 1, wait: float = 0.06) -> None:
    for _ in range(times):
        time.sleep(wait)
        sb.sim.step(0.1)


def state(connect, ref) -> str:
    return connect.get_connection(ref).state


def mapping_state(connect, ref, obj) -> str | None:
    m = connect.get_connection(ref).mapping(obj)
    return m.state if m else None


@pytest.fixture
def manual(sandbox_factory):
    sb = sandbox_factory(clock=False, load_rows_per_second=10.0)
    return sb, ConnectClient(TOKEN, sb.central_url), PlatformClient(TOKEN, sb.platform_url)


def provision_hc2(sb, connect, platform):
    platform.create_addon(APP, plan="herokuconnect:enterprise", name="hc2")
    tick(sb, 3)
    return connect.find_connection(APP, "hc2")


def idle_hc2(sb, connect, platform):
    """hc2 provisioned, configured on salesforce2 and authorized: IDLE, with no mapping yet."""
    ref = provision_hc2(sb, connect, platform)
    connect.configure(ref, db_key="DATABASE_URL", schema_name="salesforce2")
    requests.get(connect.authorize_url(ref, next_url=NEXT), timeout=5)
    tick(sb)
    return ref


def test_connection_lifecycle_state_by_state(manual):
    sb, connect, platform = manual
    ref = provision_hc2(sb, connect, platform)
    assert state(connect, ref) == "NEW"
    with pytest.raises(BadRequest, match="IDLE"):
        connect.pause(ref)  # refused in NEW
    connect.configure(ref, db_key="DATABASE_URL", schema_name="salesforce2")
    assert state(connect, ref) == "NEED_AUTHENTICATION"
    with pytest.raises(BadRequest, match="IDLE"):
        connect.pause(ref)
    link = connect.authorize_url(ref, next_url=NEXT)
    requests.get(link, timeout=5).raise_for_status()
    assert state(connect, ref) == "RECOVERY"
    with pytest.raises(BadRequest, match="IDLE"):
        connect.pause(ref)
    tick(sb)
    assert state(connect, ref) == "IDLE"
    hc1 = connect.find_connection(APP, "hc1")
    connect.import_config(ref, connect.export_config(hc1).filtered(["Case"]))
    assert state(connect, ref) == "IMPORT_CONFIGURATION"
    with pytest.raises(BadRequest, match="IDLE"):
        connect.pause(ref)
    tick(sb)
    assert state(connect, ref) == "IDLE"


def test_mapping_lifecycle_initial_reload_synced_then_resync(manual, db):
    sb, connect, platform = manual
    ref = idle_hc2(sb, connect, platform)
    hc1 = connect.find_connection(APP, "hc1")
    connect.import_config(ref, connect.export_config(hc1).filtered(["Case"]))
    tick(sb)
    assert mapping_state(connect, ref, "Case") == "INITIAL"
    tick(sb)
    assert mapping_state(connect, ref, "Case") == "RELOAD_TABLE"
    loaded = db.execute("SELECT count(*) FROM salesforce2.case").fetchone()[0]
    assert 0 <= loaded < 50  # 10 rows a second: still loading
    sb.options.load_rows_per_second = 10_000.0
    tick(sb)
    assert mapping_state(connect, ref, "Case") == "DATA_SYNCED"
    m = connect.get_connection(ref).mapping("Case")
    config = m.config.model_copy(deep=True)
    config.fields["Origin"] = {}  # not a field of Case in the demo org: BAD_CONFIG later
    config.fields.pop("Origin")
    config.fields["Subject"] = {}
    sb.options.load_rows_per_second = 1.0
    # add a field the org has
    db.execute(
        "UPDATE _hcsandbox.sf_object SET spec = jsonb_set(spec, '{fields}', spec->'fields' || "
        '\'[{"name": "Origin", "type": "string", "length": 40}]\') WHERE name = \'Case\''
    )
    sb.sim.forget_objects()
    config.fields["Origin"] = {}
    connect.update_mapping(ref, m.id, "Case", config)
    assert mapping_state(connect, ref, "Case") == "SCHEMA_CHANGED"
    tick(sb)
    assert mapping_state(connect, ref, "Case") == "RESYNC"
    sb.options.load_rows_per_second = 10_000.0
    tick(sb)
    assert mapping_state(connect, ref, "Case") == "DATA_SYNCED"


def test_system_error_is_recovered_by_restart(manual):
    sb, connect, _ = manual
    hc1 = connect.find_connection(APP, "hc1")
    r = requests.post(
        f"{sb.base_url}/_sandbox/connections/hc1/mappings/Case/state",
        json={"state": "SYSTEM_ERROR"},
        timeout=5,
    )
    assert r.status_code == 200
    assert mapping_state(connect, hc1, "Case") == "SYSTEM_ERROR"
    connect.restart(hc1)
    assert state(connect, hc1) == "RECOVERY"
    tick(sb)
    assert state(connect, hc1) == "IDLE"
    assert mapping_state(connect, hc1, "Case") == "DATA_SYNCED"


def test_pause_waits_for_the_writer_and_blocks_other_transitions(manual, db_name, db_url, db):
    sb, connect, _ = manual
    sb.options.writer_latency_seconds = 10_000  # hold the write back
    hc1 = connect.find_connection(APP, "hc1")
    connect.pause(hc1)  # accepted while IDLE
    with psycopg.connect(app_database_url(db_url, role_names(db_name)[0]), autocommit=True) as app:
        app.execute("UPDATE account SET name = 'pending' WHERE id = 2")
    tick(sb, 2)
    assert state(connect, hc1) in ("IDLE", "POLLING_DB_CHANGES")  # not paused with work pending
    with pytest.raises(BadRequest, match="busy"):
        connect.restart(hc1)  # a pending pause is not silently replaced
    sb.options.writer_latency_seconds = 0.0
    tick(sb, 3)
    assert state(connect, hc1) == "PAUSED"
    assert db.execute("SELECT count(*) FROM salesforce._trigger_log").fetchone()[0] == 0


def test_missing_system_tables_make_that_connection_db_unavailable_only(manual, db):
    sb, connect, platform = manual
    ref = idle_hc2(sb, connect, platform)
    db.execute("DROP TABLE salesforce._trigger_log_archive")
    tick(sb, 2)
    hc1 = connect.find_connection(APP, "hc1")
    assert state(connect, hc1) == "DB_UNAVAILABLE"
    assert state(connect, ref) == "IDLE"


def test_required_fields_and_triggers_of_a_recreated_mapping(sandbox_factory, db, db_name, db_url):
    sb = sandbox_factory(clock=False, assumptions={"delete_drops_table": False})
    connect = ConnectClient(TOKEN, sb.central_url)
    hc1 = connect.find_connection(APP, "hc1")
    connect.delete_mapping(hc1, connect.get_connection(hc1).mapping("Case").id)
    connect.create_mapping(
        hc1, "Case", {"access": "read_write", "fields": {"Id": {}, "Subject": {}}}
    )
    tick(sb, 3)
    m = connect.get_connection(hc1).mapping("Case")
    assert {"Id", "IsDeleted", "SystemModstamp", "Subject"} <= set(m.config.fields)
    assert m.config.indexes["SystemModstamp"].unique is False
    triggers = {
        r[0]
        for r in db.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'salesforce.case'::regclass"
        )
    }
    assert {"hc_case_logtrigger", "hc_case_status_trigger"} <= triggers
    with psycopg.connect(app_database_url(db_url, role_names(db_name)[0]), autocommit=True) as app:
        app.execute(
            'UPDATE "case" SET subject = \'after re-create\' WHERE id = (SELECT min(id) FROM "case")'
        )
    assert (
        db.execute(
            "SELECT count(*) FROM salesforce._trigger_log WHERE table_name = 'case'"
        ).fetchone()[0]
        == 1
    )


def test_link_by_app_uuid_and_free_rate_limit_reads(manual):
    sb, connect, platform = manual
    app_id = platform.app(APP).id
    linked = connect.link(app_id)
    assert [c.resource_name for c in linked.connections] == ["hc1"]
    assert connect.discover(APP, "hc1")
    first = platform.rate_limit_remaining()
    second = platform.rate_limit_remaining()
    assert second >= first  # reading the limit costs nothing
