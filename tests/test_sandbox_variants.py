"""Each unconfirmed Heroku Connect behaviour (swapbot/heroku/assumptions.py) in both of its variants.

The bot must work whichever variant the real service turns out to have, so the clients are run
against the sandbox under each. Flags can be chosen at start (`--assume`) or changed live.
"""

from __future__ import annotations

import pytest
import requests

from swapbot.heroku import ConnectClient, PlatformClient
from swapbot.testing.services import TOKEN, wait_until
from tests.test_sandbox_connect import APP, AUTH, mapping, mapping_state, new_connection


def clients_for(sb):
    return ConnectClient(TOKEN, sb.central_url), PlatformClient(TOKEN, sb.platform_url)


def table_exists(db, schema, table) -> bool:
    return bool(db.execute("SELECT to_regclass(%s)", (f"{schema}.{table}",)).fetchone()[0])


@pytest.mark.parametrize("drops", [True, False])
def test_delete_mapping_drops_or_keeps_the_table(sandbox_factory, db, drops):
    sb = sandbox_factory(assumptions={"delete_drops_table": drops})
    connect, _ = clients_for(sb)
    hc1 = connect.find_connection(APP, "hc1")
    connect.delete_mapping(hc1, mapping(connect, hc1, "Opportunity").id)
    assert mapping(connect, hc1, "Opportunity") is None
    assert table_exists(db, "salesforce", "opportunity") is not drops
    if not drops:
        # kept, with its rows, but no longer managed: HC's triggers are gone
        assert db.execute("SELECT count(*) FROM salesforce.opportunity").fetchone()[0] == 80
        triggers = db.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'salesforce.opportunity'::regclass AND NOT tgisinternal"
        ).fetchone()[0]
        assert triggers == 0


def test_delete_that_would_drop_a_table_with_dependents_is_refused(sandbox_factory, db):
    sb = sandbox_factory(assumptions={"delete_drops_table": True})
    connect, _ = clients_for(sb)
    hc1 = connect.find_connection(APP, "hc1")
    db.execute("CREATE VIEW public.case_view AS SELECT sfid FROM salesforce.case")
    from swapbot.heroku import Conflict

    with pytest.raises(Conflict, match="case"):
        connect.delete_mapping(hc1, mapping(connect, hc1, "Case").id)
    assert mapping(connect, hc1, "Case") is not None
    assert table_exists(db, "salesforce", "case")


@pytest.mark.parametrize("accepts", [True, False])
def test_import_with_added_fields(sandbox_factory, db, accepts):
    """The shortcut path: fields added to the exported file before importing it into hc2."""
    sb = sandbox_factory(assumptions={"import_accepts_new_fields": accepts})
    connect, platform = clients_for(sb)
    hc1 = connect.find_connection(APP, "hc1")
    hc2 = new_connection(connect, platform)
    doc = (
        connect.export_config(hc1).filtered(["Account"]).with_added_fields({"Account": ["Rating"]})
    )
    assert "Rating" in doc.mappings[0].config.fields
    connect.import_config(hc2, doc)
    wait_until(lambda: mapping_state(connect, hc2, "Account") == "DATA_SYNCED", what="load")
    fields = mapping(connect, hc2, "Account").config.fields
    assert ("Rating" in fields) is accepts
    has_column = db.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'salesforce2' "
        "AND table_name = 'account' AND column_name = 'rating'"
    ).fetchone()[0]
    assert bool(has_column) is accepts


@pytest.mark.parametrize("accepts", [True, False])
def test_reimport_into_an_existing_mapping(sandbox_factory, accepts):
    """Whether import updates an existing mapping's fields (the alternative to PUT, §2.2)."""
    sb = sandbox_factory(assumptions={"import_accepts_new_fields": accepts})
    connect, _ = clients_for(sb)
    hc1 = connect.find_connection(APP, "hc1")
    doc = (
        connect.export_config(hc1).filtered(["Account"]).with_added_fields({"Account": ["Rating"]})
    )
    connect.import_config(hc1, doc)
    wait_until(lambda: connect.get_connection(hc1).state == "IDLE", what="import")
    m = mapping(connect, hc1, "Account")
    assert ("Rating" in m.config.fields) is accepts
    assert m.config.revision == (2 if accepts else 1)


@pytest.mark.parametrize("copies", [True, False])
def test_import_and_the_write_algorithm(sandbox_factory, copies):
    sb = sandbox_factory(assumptions={"import_copies_features": copies})
    connect, platform = clients_for(sb)
    hc1 = connect.find_connection(APP, "hc1")
    hc2 = new_connection(connect, platform)
    # a person switched hc2 to Merged Writes in the dashboard; hc1 uses Ordered Writes
    r = requests.post(
        f"{sb.base_url}/_sandbox/connections/hc2/settings",
        json={"poll_db_no_merge": False},
        timeout=5,
    )
    assert r.json()["poll_db_no_merge"] is False
    connect.import_config(hc2, connect.export_config(hc1).filtered(["Case"]))
    wait_until(
        lambda: connect.get_connection(hc2).state == "IDLE" and mapping(connect, hc2, "Case")
    )
    assert connect.get_connection(hc2).features["poll_db_no_merge"] is copies


def test_assumptions_can_be_switched_live_and_are_validated(sandbox):
    url = f"{sandbox.base_url}/_sandbox/assumptions"
    assert requests.get(url, timeout=5).json()["delete_drops_table"] is True
    assert (
        requests.post(url, json={"delete_drops_table": False}, timeout=5).json()[
            "delete_drops_table"
        ]
        is False
    )
    assert sandbox.options.assumptions.delete_drops_table is False
    assert requests.post(url, json={"no_such_flag": True}, timeout=5).status_code == 400


# -- the switches the probe (`swapbot probe`) tells apart, spoken in raw HTTP ------------------
# Raw requests: the variants include shapes the Python client does not send or read.
PLATFORM_HEADERS = {**AUTH, "Accept": "application/vnd.heroku+json; version=3"}


def api_root(sb) -> str:
    return f"{sb.base_url}/connect/virginia/api/v3"


def link(sb) -> dict:
    r = requests.post(f"{sb.central_url}/auth/{APP}", headers=AUTH, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def discover(sb, **query) -> dict:
    r = requests.get(
        f"{sb.central_url}/connections", params={"app": APP, **query}, headers=AUTH, timeout=5
    )
    assert r.status_code == 200, r.text
    return r.json()


def hc1_id(sb) -> str:
    return next(c["id"] for c in link(sb)["connections"] if c["resource_name"] == "hc1")


def detail(sb, cid: str) -> dict:
    r = requests.get(
        f"{api_root(sb)}/connections/{cid}", params={"deep": "true"}, headers=AUTH, timeout=5
    )
    assert r.status_code == 200, r.text
    return r.json()


def raw_mapping(sb, cid: str, object_name: str) -> dict | None:
    return next((m for m in detail(sb, cid)["mappings"] if m["object_name"] == object_name), None)


def export(sb, cid: str, objects: list[str]) -> dict:
    r = requests.get(f"{api_root(sb)}/connections/{cid}/actions/export", headers=AUTH, timeout=5)
    assert r.status_code == 200, r.text
    doc = r.json()
    doc["mappings"] = [m for m in doc["mappings"] if m["object_name"] in objects]
    return doc


def import_doc(sb, cid: str, doc: dict) -> requests.Response:
    return requests.post(
        f"{api_root(sb)}/connections/{cid}/actions/import", json=doc, headers=AUTH, timeout=5
    )


def wait_idle(sb, cid: str) -> None:
    wait_until(lambda: detail(sb, cid)["state"] == "IDLE", what="IDLE")


@pytest.mark.parametrize("field", ["db", "count"])
def test_counts_field_names_the_row_count(sandbox_factory, field):
    sb = sandbox_factory(assumptions={"counts_field": field})
    cid = hc1_id(sb)
    other = {"db": "count", "count": "db"}[field]
    for m in detail(sb, cid)["mappings"]:
        assert field in m["counts"] and other not in m["counts"], m["counts"]
    account = raw_mapping(sb, cid, "Account")
    assert account["counts"][field] == 100
    one = requests.get(account["detail_url"], headers=AUTH, timeout=5).json()
    assert one["counts"][field] == 100 and other not in one["counts"]


@pytest.mark.parametrize("slash", [True, False])
def test_region_url_with_or_without_trailing_slash(sandbox_factory, slash):
    sb = sandbox_factory(assumptions={"region_url_slash": slash})
    cid = hc1_id(sb)
    urls = [c["region_url"] for c in link(sb)["connections"]]
    found = discover(sb)
    urls += [c["region_url"] for c in found["results"]]
    urls += [cell["url"] for cell in found["cells"].values()]
    urls.append(detail(sb, cid)["region_url"])
    assert len(urls) == 4
    assert all(u.endswith("/") is slash for u in urls), urls
    assert {u.rstrip("/") for u in urls} == {f"{sb.base_url}/connect/virginia"}


@pytest.mark.parametrize("listed", [True, False])
def test_region_url_in_discovery_or_only_in_the_detail(sandbox_factory, listed):
    sb = sandbox_factory(assumptions={"discovery_region_url": listed})
    entries = link(sb)["connections"] + discover(sb)["results"]
    assert len(entries) == 2
    for entry in entries:
        assert ("region_url" in entry) is listed
        # detail_url is absolute: a client without region_url reaches the connection through it
        assert entry["detail_url"].startswith(f"{sb.base_url}/connect/virginia/api/v3/")
        r = requests.get(entry["detail_url"], headers=AUTH, timeout=5)
        assert r.status_code == 200
        assert r.json()["region_url"] == f"{sb.base_url}/connect/virginia/"


@pytest.mark.parametrize("needs_link", [True, False])
def test_discovery_with_or_without_the_link(sandbox_factory, needs_link):
    sb = sandbox_factory(assumptions={"discovery_needs_link": needs_link})
    before = discover(sb)
    assert before["count"] == len(before["results"]) == (0 if needs_link else 1)
    link(sb)
    assert [c["resource_name"] for c in discover(sb)["results"]] == ["hc1"]


def put(sb, mid: str, body: dict) -> requests.Response:
    return requests.put(f"{api_root(sb)}/mappings/{mid}", json=body, headers=AUTH, timeout=5)


@pytest.mark.parametrize("shape", ["create-plus-revision", "upsert-on-mapping"])
def test_put_mapping_body_shapes(sandbox_factory, shape):
    sb = sandbox_factory(assumptions={"put_mapping_body": shape})
    cid = hc1_id(sb)
    m = raw_mapping(sb, cid, "Account")
    config = {k: v for k, v in m["config"].items() if k != "applied_at"}
    assert config["revision"] == 1
    create_shape = {"object_name": "account", "config": {**config, "upsert_field": "Name"}}
    upsert_shape = {"config": config, "upsert_field": "Name"}
    right, wrong = (
        (create_shape, upsert_shape)
        if shape == "create-plus-revision"
        else (upsert_shape, create_shape)
    )
    r = put(sb, m["id"], wrong)
    assert r.status_code == 400, r.text
    if shape == "create-plus-revision":
        assert "object_name" in r.json()["message"]
        bad = [
            {**right, "object_name": "Contact"},  # another object
            {**right, "upsert_field": "Name"},  # upsert_field beside config
        ]
    else:
        assert r.json()["message"] == "unexpected field object_name"
        bad = [{"config": {**config, "upsert_field": "Name"}}]  # upsert_field inside config
    for body in bad:
        assert put(sb, m["id"], body).status_code == 400, body
    stale = {**right, "config": {**right["config"], "revision": 0}}
    assert put(sb, m["id"], stale).status_code == 409
    r = put(sb, m["id"], right)
    assert r.status_code == 200, r.text
    assert r.json()["config"]["revision"] == 2
    assert r.json()["upsert_field"] == "Name"
    # the revision is now 2: the same body again is out of date
    assert put(sb, m["id"], right).status_code == 409


@pytest.mark.parametrize("leaves", [True, False])
def test_import_leaves_or_removes_the_other_mappings(sandbox_factory, db, leaves):
    sb = sandbox_factory(assumptions={"import_leaves_other_mappings": leaves})
    cid = hc1_id(sb)
    gone = raw_mapping(sb, cid, "Case")
    assert import_doc(sb, cid, export(sb, cid, ["Account"])).status_code == 202
    wait_idle(sb, cid)
    names = {m["object_name"] for m in detail(sb, cid)["mappings"]}
    if leaves:
        assert names == {"Account", "Contact", "Opportunity", "Case", "Invoice__c"}
    else:
        assert names == {"Account"}
        # removed as DELETE removes a mapping (delete_drops_table: its table goes)
        assert not table_exists(db, "salesforce", "case")
        r = requests.get(gone["detail_url"], headers=AUTH, timeout=5)
        assert r.status_code == 404
    assert table_exists(db, "salesforce", "account")


@pytest.mark.parametrize("applies", [True, False])
def test_import_and_the_connection_block(sandbox_factory, db, applies):
    sb = sandbox_factory(assumptions={"import_applies_connection_block": applies})
    connect, platform = clients_for(sb)
    hc2 = new_connection(connect, platform)
    doc = export(sb, hc1_id(sb), ["Account"])
    assert doc["connection"]["name"] == f"{APP}:DATABASE_URL:salesforce"
    doc["connection"]["name"] = f"{APP}:DATABASE_URL:salesforce3"
    assert import_doc(sb, hc2.id, doc).status_code == 202
    wait_until(
        lambda: (raw_mapping(sb, hc2.id, "Account") or {}).get("state") == "DATA_SYNCED",
        what="load",
    )
    schema = "salesforce3" if applies else "salesforce2"
    assert detail(sb, hc2.id)["schema_name"] == schema
    assert table_exists(db, schema, "account")
    assert table_exists(db, "salesforce3", "_trigger_log") is applies


@pytest.mark.parametrize("rejects", [True, False])
def test_import_with_applied_at(sandbox_factory, rejects):
    sb = sandbox_factory(assumptions={"import_rejects_applied_at": rejects})
    cid = hc1_id(sb)
    doc = export(sb, cid, ["Account"])
    assert "applied_at" in doc["mappings"][0]["config"]
    r = import_doc(sb, cid, doc)
    assert r.status_code == (400 if rejects else 202), r.text
    if rejects:
        assert "applied_at" in r.json()["message"]
        assert detail(sb, cid)["state"] != "IMPORT_CONFIGURATION"
        del doc["mappings"][0]["config"]["applied_at"]
        assert import_doc(sb, cid, doc).status_code == 202
    wait_idle(sb, cid)


@pytest.mark.parametrize("status", [200, 201, 202])
def test_import_success_status(sandbox_factory, status):
    sb = sandbox_factory(assumptions={"import_status": status})
    cid = hc1_id(sb)
    r = import_doc(sb, cid, export(sb, cid, ["Account"]))
    assert r.status_code == status
    assert detail(sb, cid)["state"] == "IMPORT_CONFIGURATION"
    wait_idle(sb, cid)


@pytest.mark.parametrize("status", [200, 202])
def test_pause_and_resume_success_status(sandbox_factory, status):
    sb = sandbox_factory(assumptions={"pause_resume_status": status})
    cid = hc1_id(sb)
    wait_idle(sb, cid)
    actions = f"{api_root(sb)}/connections/{cid}/actions"
    assert requests.post(f"{actions}/pause", headers=AUTH, timeout=5).status_code == status
    assert requests.post(f"{actions}/pause", headers=AUTH, timeout=5).status_code == status
    wait_until(lambda: detail(sb, cid)["state"] == "PAUSED", what="pause")
    assert requests.post(f"{actions}/resume", headers=AUTH, timeout=5).status_code == status
    wait_idle(sb, cid)


@pytest.mark.parametrize("repeat", [404, 204])
def test_repeated_mapping_delete(sandbox_factory, repeat):
    sb = sandbox_factory(assumptions={"delete_repeat_status": repeat})
    url = raw_mapping(sb, hc1_id(sb), "Case")["detail_url"]
    assert requests.delete(url, headers=AUTH, timeout=5).status_code == 204
    assert requests.delete(url, headers=AUTH, timeout=5).status_code == repeat
    assert requests.get(url, headers=AUTH, timeout=5).status_code == 404
    # a mapping that never was, and another user's deleted one, are not repeats
    never = url.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"
    assert requests.delete(never, headers=AUTH, timeout=5).status_code == 404
    stranger = {"Authorization": "Bearer someone-else"}
    assert requests.delete(url, headers=stranger, timeout=5).status_code == (
        403 if repeat == 204 else 404
    )


@pytest.mark.parametrize("keeps", [True, False])
def test_removing_the_addon_keeps_or_drops_the_schema(sandbox_factory, db, keeps):
    sb = sandbox_factory(assumptions={"remove_addon_keeps_schema": keeps})
    hc1_id(sb)
    r = requests.delete(
        f"{sb.platform_url}/apps/{APP}/addons/hc1", headers=PLATFORM_HEADERS, timeout=5
    )
    assert r.status_code == 200 and r.json()["state"] == "deprovisioned"
    assert table_exists(db, "salesforce", "account") is keeps
    assert table_exists(db, "salesforce", "_trigger_log") is keeps


@pytest.mark.parametrize("creates", [True, False])
def test_configure_creates_the_schema_or_the_first_mapping_does(sandbox_factory, db, creates):
    sb = sandbox_factory(assumptions={"configure_creates_schema": creates})
    connect, platform = clients_for(sb)
    hc2 = new_connection(connect, platform)
    hc3 = new_connection(connect, platform, name="hc3", schema="salesforce3")
    for schema in ("salesforce2", "salesforce3"):
        assert table_exists(db, schema, "_trigger_log") is creates
    # an authorized connection without its schema runs on (no DB_UNAVAILABLE) and has no errors
    sb.sim.step(1.0)
    assert detail(sb, hc2.id)["state"] == "IDLE"
    r = requests.get(f"{api_root(sb)}/connections/{hc2.id}/errors", headers=AUTH, timeout=5)
    assert r.status_code == 200 and r.json()["count"] == 0
    # the first mapping, created or imported, brings the schema with HC's tables
    r = requests.post(
        f"{api_root(sb)}/connections/{hc2.id}/mappings",
        json={"object_name": "Account", "config": {"access": "read_only", "fields": {"Id": {}}}},
        headers=AUTH,
        timeout=5,
    )
    assert r.status_code == 201, r.text
    assert table_exists(db, "salesforce2", "_trigger_log")
    assert import_doc(sb, hc3.id, export(sb, hc1_id(sb), ["Contact"])).status_code == 202
    for ref, obj in ((hc2, "Account"), (hc3, "Contact")):
        wait_until(lambda r=ref, o=obj: mapping_state(connect, r, o) == "DATA_SYNCED", what="load")
    assert table_exists(db, "salesforce3", "_trigger_log")
    assert table_exists(db, "salesforce3", "contact")


@pytest.mark.parametrize("same", [True, False])
def test_connection_id_and_addon_id(sandbox_factory, same):
    sb = sandbox_factory(assumptions={"connection_id_is_addon_id": same})
    connect, platform = clients_for(sb)
    addon = platform.create_addon(APP, plan="herokuconnect:enterprise", name="hc2")
    entry = next(c for c in link(sb)["connections"] if c["resource_name"] == "hc2")
    assert (entry["id"] == addon.id) is same
    c = detail(sb, entry["id"])
    assert c["id"] == entry["id"] and c["addon_id"] == addon.id
    # hc1, created before, keeps an id of its own
    hc1 = detail(sb, hc1_id(sb))
    assert hc1["id"] != hc1["addon_id"]


@pytest.mark.parametrize("bucket", [2400, 4500])
def test_platform_rate_limit_bucket(sandbox_factory, bucket):
    sb = sandbox_factory(assumptions={"rate_limit_bucket": bucket})
    r = requests.get(f"{sb.platform_url}/account/rate-limits", headers=PLATFORM_HEADERS, timeout=5)
    assert r.status_code == 200
    assert bucket - 1 <= r.json()["remaining"] <= bucket
    assert bucket - 1 <= int(r.headers["RateLimit-Remaining"]) <= bucket
    r = requests.get(f"{sb.platform_url}/apps/{APP}", headers=PLATFORM_HEADERS, timeout=5)
    assert bucket - 2 <= int(r.headers["RateLimit-Remaining"]) < bucket


@pytest.mark.parametrize("endpoint", [True, False])
def test_abort_endpoint(sandbox_factory, endpoint):
    sb = sandbox_factory(assumptions={"abort_endpoint": endpoint})
    sb.options.load_rows_per_second = 1.0  # keep the reload running so it can be aborted
    m = raw_mapping(sb, hc1_id(sb), "Contact")
    reload = requests.post(f"{m['detail_url']}/actions/reload", headers=AUTH, timeout=5)
    assert reload.status_code == 202
    r = requests.post(f"{m['detail_url']}/actions/abort", headers=AUTH, timeout=5)
    if endpoint:
        assert r.status_code == 202, r.text
        assert requests.get(m["detail_url"], headers=AUTH, timeout=5).json()["state"] == "ABORTED"
        again = requests.post(f"{m['detail_url']}/actions/abort", headers=AUTH, timeout=5)
        assert again.status_code == 400  # nothing left to abort
    else:
        assert r.status_code == 404
        assert r.json()["message"] == "Couldn't find that path."
        state = requests.get(m["detail_url"], headers=AUTH, timeout=5).json()["state"]
        assert state == "RELOAD_TABLE"


def test_every_switch_is_documented_with_its_values_and_parsed_by_the_cli(sandbox):
    from swapbot.cli.sandbox import _assumption, _assumption_values
    from swapbot.heroku.assumptions import ASSUMPTIONS
    from swapbot.sandbox.options import Assumptions

    for item in ASSUMPTIONS:
        if item.sandbox_flag:
            values = _assumption_values(item.sandbox_flag)
            assert set(item.sandbox_values) == set(values), item.key
            for text in item.sandbox_values:
                key, value = _assumption(f"{item.sandbox_flag}={text}")
                assert Assumptions(**{key: value}).model_dump()[key] == value
    assert _assumption("counts_field=count") == ("counts_field", "count")
    assert _assumption("import_status=200") == ("import_status", 200)
    assert _assumption("put_mapping_body=upsert-on-mapping")[1] == "upsert-on-mapping"
    # and live, through the sandbox's admin API
    url = f"{sandbox.base_url}/_sandbox/assumptions"
    body = {"import_status": 201, "counts_field": "count", "rate_limit_bucket": 2400}
    assert requests.post(url, json=body, timeout=5).json().items() >= body.items()
    assert sandbox.options.assumptions.import_status == 201
    assert requests.post(url, json={"import_status": 204}, timeout=5).status_code == 400
