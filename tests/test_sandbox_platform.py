"""The Platform client against the sandbox, and the sandbox's Heroku-like HTTP rules."""

from __future__ import annotations

import pytest
import requests
from pydantic import SecretStr

from swapbot.heroku import NotFound, UnprocessableEntity
from tests.conftest import TOKEN, wait_until

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
