"""The Platform client against the sandbox, and the sandbox's Heroku-like HTTP rules."""

from __future__ import annotations

import logging

import psycopg
import pytest
import requests
from pydantic import SecretStr

from swapbot.heroku import NotFound, UnprocessableEntity
from swapbot.testing.services import NEXT, TOKEN, wait_until

APP = "acme-prod"
PLATFORM_ACCEPT = "application/vnd.heroku+json; version=3"


def test_api_requires_a_bearer_token(sandbox):
    for url in (
        f"{sandbox.platform_url}/apps/{APP}",
        f"{sandbox.central_url}/connections?app={APP}",
        f"{sandbox.base_url}/connect/virginia/api/v3/apps/{APP}",
    ):
        r = requests.get(url, headers={"Accept": PLATFORM_ACCEPT}, timeout=5)
        assert r.status_code == 401, url
        assert r.json()["id"] == "unauthorized"
        r = requests.get(
            url, headers={"Accept": PLATFORM_ACCEPT, "Authorization": "Bearer "}, timeout=5
        )
        assert r.status_code == 401, url


def test_platform_requires_the_versioned_accept_header(sandbox):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = requests.get(f"{sandbox.platform_url}/apps/{APP}", headers=auth, timeout=5)
    assert r.status_code == 406 and r.json()["id"] == "not_acceptable"
    r = requests.get(
        f"{sandbox.platform_url}/apps/{APP}", headers={**auth, "Accept": PLATFORM_ACCEPT}, timeout=5
    )
    assert r.status_code == 200
    assert int(r.headers["RateLimit-Remaining"]) > 0


def test_paths_the_real_apis_do_not_have_are_404(sandbox):
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept": PLATFORM_ACCEPT}
    for method, path in (
        (
            "POST",
            "/connect/virginia/api/v3/mappings/00000000-0000-0000-0000-000000000000/actions/abort",
        ),
        ("GET", "/platform/apps/acme-prod/connections"),
        ("GET", "/hc-central/apps/acme-prod/formation"),
        ("GET", "/api/v3/connections"),
        ("GET", "/_sandbox/nothing-here"),
    ):
        r = requests.request(method, sandbox.base_url + path, headers=auth, timeout=5)
        assert r.status_code == 404, path
        assert r.json()["id"] == "not_found"


def test_app_and_maintenance(clients):
    _, platform = clients
    app = platform.app(APP)
    assert app.name == APP and app.maintenance is False
    assert platform.set_maintenance(APP, True).maintenance is True
    assert platform.app(APP).maintenance is True
    assert platform.set_maintenance(APP, False).maintenance is False
    with pytest.raises(NotFound):
        platform.app("no-such-app")


def test_addons_list_get_create_and_provisioning(clients):
    connect, platform = clients
    names = {a.name: a for a in platform.list_addons(APP)}
    assert names["hc1"].service_name == "herokuconnect"
    assert names["hc1"].plan_name == "herokuconnect:enterprise"
    created = platform.create_addon(APP, plan="herokuconnect:enterprise", name="hc2")
    assert created.state == "provisioning"
    wait_until(lambda: platform.get_addon(APP, "hc2").state == "provisioned", what="provisioning")
    with pytest.raises(UnprocessableEntity, match="already used"):
        platform.create_addon(APP, plan="herokuconnect:enterprise", name="hc2")
    with pytest.raises(UnprocessableEntity, match="plan"):
        platform.create_addon(APP, plan="nonsense:plan", name="hc3")
    # a new HC add-on is a new connection in state NEW, found once the user links
    ref = connect.find_connection(APP, "hc2")
    c = connect.get_connection(ref)
    assert c.state == "NEW" and c.schema_name is None and c.addon_id == created.id


def test_addon_list_pages_with_range(clients, sandbox):
    _, platform = clients
    for i in range(3):
        platform.create_addon(APP, plan="heroku-redis:mini", name=f"redis-{i}")
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Accept": PLATFORM_ACCEPT,
        "Range": "id ..; max=2",
    }
    r = requests.get(f"{sandbox.platform_url}/apps/{APP}/addons", headers=headers, timeout=5)
    assert r.status_code == 206 and len(r.json()) == 2 and "Next-Range" in r.headers
    assert len(platform.list_addons(APP)) == 5  # the client follows Next-Range


def test_formation_scale_down_and_up_moves_dynos(clients):
    _, platform = clients
    before = {f.type: (f.quantity, f.size) for f in platform.formation(APP)}
    assert before == {
        "web": (2, "standard-2X"),
        "worker": (1, "standard-1X"),
        "clock": (1, "standard-1X"),
    }
    assert sorted(d.name for d in platform.dynos(APP)) == ["clock.1", "web.1", "web.2", "worker.1"]
    scaled = platform.update_formation(
        APP, [{"type": "web", "quantity": 0}, {"type": "worker", "quantity": 0}]
    )
    assert {f.type: f.quantity for f in scaled} == {"web": 0, "worker": 0, "clock": 1}
    wait_until(lambda: [d.name for d in platform.dynos(APP)] == ["clock.1"], what="dynos to stop")
    platform.update_formation(APP, [{"type": "web", "quantity": 2, "dyno_size": "standard-2X"}])
    wait_until(
        lambda: (
            sorted((d.name, d.state) for d in platform.dynos(APP) if d.type == "web")
            == [("web.1", "up"), ("web.2", "up")]
        ),
        what="web dynos up",
    )
    with pytest.raises(NotFound):
        platform.update_formation(APP, [{"type": "nope", "quantity": 1}])
    with pytest.raises(UnprocessableEntity):
        platform.update_formation(APP, [{"type": "web", "quantity": -1}])


def test_restarts(clients):
    _, platform = clients
    platform.restart_process_type(APP, "worker")
    states = {d.name: d.state for d in platform.dynos(APP)}
    assert states["worker.1"] == "starting" and states["web.1"] == "up"
    platform.restart_dyno(APP, "web.2")
    assert {d.name: d.state for d in platform.dynos(APP)}["web.2"] == "starting"
    platform.restart_all_dynos(APP)
    assert {d.state for d in platform.dynos(APP)} == {"starting"}
    wait_until(lambda: {d.state for d in platform.dynos(APP)} == {"up"}, what="dynos up")
    with pytest.raises(NotFound):
        platform.restart_dyno(APP, "web.9")


def test_config_vars_are_secret_and_rate_limit_is_reported(clients, db_url):
    _, platform = clients
    found = platform.config_vars(APP)
    assert isinstance(found["DATABASE_URL"], SecretStr)
    assert found["DATABASE_URL"].get_secret_value() == db_url
    assert db_url not in repr(found)
    assert 0 < platform.rate_limit_remaining() <= 4500


# -- removing an add-on --------------------------------------------------------------------------
def connected_addon(connect, platform, objects, name="hc2", schema="salesforce2"):
    """A new HC add-on, configured, authorized, with hc1's mappings of `objects` imported."""
    platform.create_addon(APP, plan="herokuconnect:enterprise", name=name)
    wait_until(lambda: platform.get_addon(APP, name).state == "provisioned", what="provisioning")
    ref = connect.find_connection(APP, name)
    connect.configure(ref, db_key="DATABASE_URL", schema_name=schema)
    link = connect.authorize_url(ref, environment="production", next_url=NEXT)
    requests.get(link, timeout=5).raise_for_status()
    wait_until(lambda: connect.get_connection(ref).state == "IDLE", what="authorization")
    hc1 = connect.find_connection(APP, "hc1")
    connect.import_config(ref, connect.export_config(hc1).filtered(objects))
    wait_until(
        lambda: {m.object_name for m in connect.get_connection(ref).mappings} == set(objects),
        what="import",
    )
    return ref


def tables_in(db, schema: str) -> set[str]:
    found = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
    return {r[0] for r in found}


def logged(sandbox, method: str, path: str) -> list[int]:
    log = requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()
    return [r["status"] for r in log if r["method"] == method and r["path"] == path]


def test_removing_a_connect_addon_ends_its_connection_and_keeps_its_schema(clients, sandbox, db):
    connect, platform = clients
    hc2 = connected_addon(connect, platform, ["Account"])
    wait_until(lambda: connect.get_connection(hc2).mappings[0].state == "DATA_SYNCED", what="load")
    created = platform.get_addon(APP, "hc2")
    tables = tables_in(db, "salesforce2")
    assert {"account", "_trigger_log", "_trigger_log_archive"} <= tables

    removed = platform.delete_addon(APP, "hc2")
    assert removed.state == "deprovisioned"
    assert (removed.id, removed.name, removed.service_name) == (created.id, "hc2", "herokuconnect")
    assert logged(sandbox, "DELETE", f"/platform/apps/{APP}/addons/hc2") == [200]

    assert [a.name for a in platform.list_addons(APP) if a.service_name == "herokuconnect"] == [
        "hc1"
    ]
    with pytest.raises(NotFound):
        platform.get_addon(APP, "hc2")
    # the Connect API no longer knows the connection; hc1 is untouched
    assert [c.resource_name for c in connect.link(APP).connections] == ["hc1"]
    assert connect.discover(APP, resource_name="hc2") == []
    with pytest.raises(NotFound):
        connect.get_connection(hc2)
    assert connect.get_connection(connect.find_connection(APP, "hc1")).state == "IDLE"
    left = db.execute(
        "SELECT (SELECT count(*) FROM _hcsandbox.connection WHERE id = %(c)s), "
        "(SELECT count(*) FROM _hcsandbox.mapping WHERE connection_id = %(c)s), "
        "(SELECT count(*) FROM _hcsandbox.addon WHERE name = 'hc2')",
        {"c": hc2.id},
    ).fetchone()
    assert left == (0, 0, 0)
    # [U] remove-addon-keeps-schema: the schema, its tables and their rows stay behind
    assert tables_in(db, "salesforce2") == tables
    assert db.execute("SELECT count(*) FROM salesforce2.account").fetchone()[0] == 100

    # a second removal, an unknown add-on or app: 404, logged like any call
    with pytest.raises(NotFound):
        platform.delete_addon(APP, "hc2")
    with pytest.raises(NotFound):
        platform.delete_addon("no-such-app", "hc1")
    assert logged(sandbox, "DELETE", f"/platform/apps/{APP}/addons/hc2") == [200, 404]
    assert [a.name for a in platform.list_addons(APP) if a.name == "hc1"] == ["hc1"]


def test_removing_a_plain_addon_answers_deprovisioned(clients):
    _, platform = clients
    platform.create_addon(APP, plan="heroku-redis:mini", name="redis-1")
    before = {a.name for a in platform.list_addons(APP)}
    removed = platform.delete_addon(APP, "redis-1")
    assert (removed.name, removed.state, removed.plan_name) == (
        "redis-1",
        "deprovisioned",
        "heroku-redis:mini",
    )
    assert {a.name for a in platform.list_addons(APP)} == before - {"redis-1"}


def test_the_simulator_carries_on_when_a_connection_is_removed_mid_work(
    clients, sandbox, db, db_url, db_name, caplog
):
    from swapbot.sandbox.scenarios import app_database_url, role_names

    caplog.set_level(logging.WARNING, logger="swapbot.sandbox")
    connect, platform = clients
    # hc2 still loading, and its writer holding a backlog, when the add-on goes
    sandbox.options.load_rows_per_second = 0.05  # 5 rows a second at speed x100
    sandbox.options.writer_latency_seconds = 10_000
    hc2 = connected_addon(connect, platform, ["Account", "Contact"])
    wait_until(
        lambda: (
            "account" in tables_in(db, "salesforce2")
            and db.execute("SELECT count(*) FROM salesforce2.account").fetchone()[0] > 0
        ),
        what="hc2's load to start",
    )
    db.execute(
        "UPDATE salesforce2.account SET name = 'written to hc2' "
        "WHERE id = (SELECT min(id) FROM salesforce2.account)"
    )
    wait_until(lambda: connect.get_connection(hc2).state == "POLLING_DB_CHANGES", what="backlog")
    assert {m.state for m in connect.get_connection(hc2).mappings} == {"RELOAD_TABLE"}

    platform.delete_addon(APP, "hc2")

    def loaded():
        return db.execute(
            "SELECT (SELECT count(*) FROM salesforce2.account), "
            "(SELECT count(*) FROM salesforce2.contact)"
        ).fetchone()

    rows = loaded()
    sandbox.options.load_rows_per_second = 500.0
    sandbox.options.writer_latency_seconds = 0.0
    # hc1 still syncs: an app write reaches the org
    hc1 = connect.find_connection(APP, "hc1")
    with psycopg.connect(app_database_url(db_url, role_names(db_name)[0]), autocommit=True) as app:
        app.execute("UPDATE account SET name = 'after the removal' WHERE id = 1")
    sfid = db.execute("SELECT sfid FROM salesforce.account WHERE id = 1").fetchone()[0]

    def in_org():
        return db.execute(
            "SELECT data->>'Name' FROM _hcsandbox.sf_record "
            "WHERE object_name = 'Account' AND sfid = %s",
            (sfid,),
        ).fetchone()[0]

    wait_until(lambda: in_org() == "after the removal", what="hc1's writer")
    for _ in range(3):
        r = requests.post(f"{sandbox.base_url}/_sandbox/step", json={"seconds": 0.5}, timeout=10)
        r.raise_for_status()
    wait_until(lambda: connect.get_connection(hc1).state == "IDLE", what="hc1 drained")
    # nothing touched hc2's schema after the removal: no more loading, its backlog unsent
    assert loaded() == rows
    assert db.execute("SELECT state FROM salesforce2._trigger_log").fetchall() == [("NEW",)]
    problems = [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("swapbot.sandbox")
    ]
    assert problems == []
