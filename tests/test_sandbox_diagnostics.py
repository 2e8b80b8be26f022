"""The sandbox's Heroku Connect diagnose, notifications and Salesforce API version endpoints, in
raw HTTP: the requests and answers of heroku/heroku-connect-plugin (src/commands/connect/
diagnose.ts, mapping/diagnose.ts, notifications/index.ts and acknowledge.ts,
manage-sf-api-version.ts)."""

from __future__ import annotations

import uuid

import pytest
import requests

from swapbot.sandbox.routing import PREFIXES
from swapbot.testing.services import TOKEN, wait_until

APP = "acme-prod"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PLATFORM = {**AUTH, "Accept": "application/vnd.heroku+json; version=3"}
OBJECTS = {"Account", "Contact", "Opportunity", "Case", "Invoice__c"}
CHECK_KEYS = {"display_name", "doc_url", "message", "rule_id", "status"}
LEVELS = ("errors", "warnings", "passes", "skips")


def link(sb, resource="hc1") -> tuple[str, str]:
    """Link the token's user to the app's connections; the API root and the connection's id."""
    r = requests.post(f"{sb.central_url}/auth/{APP}", headers=AUTH, timeout=5)
    r.raise_for_status()
    c = next(c for c in r.json()["connections"] if c["resource_name"] == resource)
    return c["detail_url"].rsplit("/connections/", 1)[0], c["id"]


def get(url, **params):
    return requests.get(url, headers=AUTH, params=params, timeout=5)


def post(url, body=None, **params):
    return requests.post(url, headers=AUTH, json=body, params=params, timeout=5)


def admin(sb, path, body):
    r = requests.post(f"{sb.base_url}/_sandbox/{path}", json=body, timeout=5)
    return r


def run_diagnose(root, cid) -> dict:
    """POST validations, then poll its result_url until it answers 200."""
    r = post(f"{root}/connections/{cid}/validations")
    assert r.status_code == 202, r.text
    url = r.json()["result_url"]
    done = wait_until(lambda: (x := get(url)).status_code == 200 and x, what="diagnose results")
    return done.json()


def rules(results, level) -> list[str]:
    return [c["rule_id"] for c in results[level]]


def mapping_id(root, cid, object_name) -> str:
    detail = get(f"{root}/connections/{cid}", deep="true").json()
    return next(m["id"] for m in detail["mappings"] if m["object_name"] == object_name)


def assert_check_shapes(results):
    for level, status in zip(LEVELS, ("FAILED", "FAILED", "PASSED", "SKIPPED"), strict=True):
        for check in results[level]:
            assert set(check) == CHECK_KEYS, check
            assert check["status"] == status
            assert check["doc_url"].startswith(
                "https://devcenter.heroku.com/articles/heroku-connect-diagnose#check-"
            )


# -- diagnose --------------------------------------------------------------------------------
def test_diagnose_answers_202_until_ready_then_200_with_each_check(sandbox_factory):
    sb = sandbox_factory(validation_seconds=500.0)  # 5 s at the fixture's speed of 100
    root, cid = link(sb)
    r = post(f"{root}/connections/{cid}/validations")
    assert r.status_code == 202
    url = r.json()["result_url"]
    assert url.startswith(f"{sb.base_url}{PREFIXES['connect']}/connections/{cid}/validations/")
    first = get(url)
    assert first.status_code == 202 and first.json() == {}
    results = wait_until(lambda: (x := get(url)).status_code == 200 and x, what="results").json()

    assert set(results) == {*LEVELS, "mappings"}
    assert_check_shapes(results)
    assert results["errors"] == []
    assert set(rules(results, "passes")) == {
        "MUST_USE_RECENT_API_VERSION",
        "CONNECTION_STATE",
        "WRITE_ERRORS",
    }
    # the sandbox's connections have no log drain until someone turns logging on
    assert rules(results, "warnings") == ["SHOULD_HAVE_LOG_DRAIN"]
    log_drain = results["warnings"][0]
    assert log_drain["display_name"] == "Configured Logging"
    assert log_drain["message"] == "App does not have logging configured."
    assert set(results["mappings"]) == OBJECTS
    for object_name, checks in results["mappings"].items():
        assert set(checks) == set(LEVELS), object_name
        assert_check_shapes(checks)
        assert rules(checks, "passes") == ["MAPPING_STATE", "MAPPING_WRITE_ERRORS"]
        assert checks["errors"] == checks["warnings"] == []

    assert admin(sb, "connections/hc1/settings", {"logplex_log_enabled": True}).ok
    again = run_diagnose(root, cid)
    assert "SHOULD_HAVE_LOG_DRAIN" in rules(again, "passes") and again["warnings"] == []


def test_diagnose_warns_about_an_old_salesforce_api_version(sandbox_factory):
    sb = sandbox_factory(clock=False, validation_seconds=0.0, latest_api_version="63.0")
    root, cid = link(sb)
    results = run_diagnose(root, cid)
    (check,) = [c for c in results["warnings"] if c["rule_id"] == "MUST_USE_RECENT_API_VERSION"]
    assert check["display_name"] == "Salesforce API Version"
    assert "63.0" in check["message"] and "62.0" in check["message"]


def test_real_failures_mapping_state_and_write_errors(sandbox_factory, db):
    sb = sandbox_factory(clock=False, validation_seconds=0.0)
    root, cid = link(sb)
    r = admin(sb, "connections/hc1/mappings/Case/state", {"state": "SYSTEM_ERROR"})
    assert r.ok, r.text
    db.execute(
        "INSERT INTO salesforce._trigger_log (state, action, table_name, record_id, sf_message) "
        "VALUES ('FAILED', 'UPDATE', 'account', 1, 'FIELD_CUSTOM_VALIDATION_EXCEPTION')"
    )
    results = run_diagnose(root, cid)
    assert rules(results, "errors") == ["WRITE_ERRORS"]
    assert "1 records failed" in results["errors"][0]["message"]
    case, account = results["mappings"]["Case"], results["mappings"]["Account"]
    assert rules(case, "errors") == ["MAPPING_STATE"]
    assert "SYSTEM_ERROR" in case["errors"][0]["message"]
    assert rules(account, "errors") == ["MAPPING_WRITE_ERRORS"]
    assert rules(results["mappings"]["Contact"], "errors") == []

    # one mapping's checks, answered at once
    r = get(f"{root}/mappings/{mapping_id(root, cid, 'Case')}/validations")
    assert r.status_code == 200
    assert set(r.json()) == set(LEVELS)
    assert rules(r.json(), "errors") == ["MAPPING_STATE"]
    assert rules(r.json(), "passes") == ["MAPPING_WRITE_ERRORS"]


def test_forced_failures_appear_under_the_connection_and_the_mapping(sandbox_factory):
    sb = sandbox_factory(clock=False, validation_seconds=0.0)
    root, cid = link(sb)
    fail = [
        {"rule_id": "ORG_LIMITS", "level": "errors", "object_name": None, "message": "Too many."},
        {
            "rule_id": "CONNECTION_STATE",
            "level": "warnings",
            "object_name": None,
            "message": "Forced.",
            "display_name": "Connection State",
        },
        {"rule_id": "FIELD_ACCESS", "level": "warnings", "object_name": "account", "message": "x"},
    ]
    r = admin(sb, f"connections/{cid}/diagnose", {"fail": fail})  # by id ...
    assert r.status_code == 200 and len(r.json()["fail"]) == 3
    results = run_diagnose(root, cid)
    (org,) = results["errors"]
    assert org == {
        "display_name": "ORG_LIMITS",  # no display_name given: the rule_id
        "doc_url": "https://devcenter.heroku.com/articles/heroku-connect-diagnose#check-org-limits",
        "message": "Too many.",
        "rule_id": "ORG_LIMITS",
        "status": "FAILED",
    }
    # a forced failure replaces the check of the same rule
    assert "CONNECTION_STATE" in rules(results, "warnings")
    assert "CONNECTION_STATE" not in rules(results, "passes")
    account = results["mappings"]["Account"]
    assert rules(account, "warnings") == ["FIELD_ACCESS"]
    assert rules(results["mappings"]["Contact"], "warnings") == []
    r = get(f"{root}/mappings/{mapping_id(root, cid, 'Account')}/validations")
    assert rules(r.json(), "warnings") == ["FIELD_ACCESS"]

    assert admin(sb, "connections/hc1/diagnose", {"fail": []}).ok  # ... or by add-on name
    cleared = run_diagnose(root, cid)
    assert cleared["errors"] == [] and rules(cleared, "warnings") == ["SHOULD_HAVE_LOG_DRAIN"]
    assert cleared["mappings"]["Account"]["warnings"] == []

    for bad in (
        {},
        {"fail": [{"level": "errors", "message": "no rule"}]},
        {"fail": [{"rule_id": "X", "level": "passes", "message": "m"}]},
    ):
        assert admin(sb, "connections/hc1/diagnose", bad).status_code == 400, bad
    assert admin(sb, "connections/no-such/diagnose", {"fail": []}).status_code == 404


def test_a_validation_run_belongs_to_its_connection(sandbox_factory):
    sb = sandbox_factory(validation_seconds=0.0)
    r = requests.post(
        f"{sb.platform_url}/apps/{APP}/addons",
        headers=PLATFORM,
        json={"plan": "herokuconnect:enterprise", "name": "hc2"},
        timeout=5,
    )
    assert r.status_code in (201, 202), r.text
    root, hc1 = link(sb, "hc1")
    _, hc2 = link(sb, "hc2")
    url = post(f"{root}/connections/{hc1}/validations").json()["result_url"]
    vid = url.rsplit("/", 1)[1]
    assert get(f"{root}/connections/{hc2}/validations/{vid}").status_code == 404
    assert get(f"{root}/connections/{hc1}/validations/{uuid.uuid4()}").status_code == 404
    assert get(f"{root}/connections/{hc1}/validations/not-a-uuid").status_code == 404
    stranger = {"Authorization": "Bearer someone-else"}
    assert requests.get(url, headers=stranger, timeout=5).status_code == 403
    assert wait_until(lambda: get(url).status_code == 200, what="hc1's results")

    # a connection not set up yet: its state fails, the checks that need Salesforce are skipped
    fresh = run_diagnose(root, hc2)
    assert rules(fresh, "errors") == ["CONNECTION_STATE"]
    assert set(rules(fresh, "skips")) == {"MUST_USE_RECENT_API_VERSION", "WRITE_ERRORS"}
    assert fresh["mappings"] == {}


# -- notifications ---------------------------------------------------------------------------
NOTES = [  # (created_at, event_type, message)
    ("2024-01-10T12:00:00Z", "mapping-error", "jan 10"),
    ("2024-01-15T10:30:00Z", "mapping-error", "jan 15"),
    ("2024-01-20T09:00:00Z", "postgres-connection", "jan 20"),
    ("2024-02-01T08:00:00Z", "mapping-error", "feb 1"),
]


@pytest.fixture
def noted(sandbox_factory, db):
    sb = sandbox_factory(clock=False)
    root, cid = link(sb)
    for at, event_type, message in NOTES:
        db.execute(
            "INSERT INTO _hcsandbox.notification (connection_id, event_type, message, created_at) "
            "VALUES (%s, %s, %s, %s)",
            (cid, event_type, message, at),
        )
    db.execute(  # another connection's
        "INSERT INTO _hcsandbox.notification (connection_id, event_type, message) "
        "VALUES (%s, 'mapping-error', 'elsewhere')",
        (str(uuid.uuid4()),),
    )
    return f"{root}/connections/{cid}/notifications"


def messages(url, **params) -> list[str]:
    r = get(url, **params)
    assert r.status_code == 200, r.text
    return [n["message"] for n in r.json()["results"]]


def test_notifications_filters(noted):
    r = get(noted, page_size=1000)
    (first, *_) = r.json()["results"]
    assert set(first) == {"id", "created_at", "event_type", "message"}
    assert first["event_type"] == "mapping-error" and first["created_at"].startswith("2024-02-01")
    assert messages(noted) == ["feb 1", "jan 20", "jan 15", "jan 10"]  # newest first
    assert messages(noted, after="2024-01-12") == ["feb 1", "jan 20", "jan 15"]
    assert messages(noted, before="2024-01-31") == ["jan 20", "jan 15", "jan 10"]
    assert messages(noted, after="2024-01-15T10:30:00Z") == ["feb 1", "jan 20", "jan 15"]
    assert messages(noted, event_type="postgres-connection") == ["jan 20"]
    assert messages(
        noted, after="2024-01-01", before="2024-01-31", event_type="mapping-error", page_size=1000
    ) == ["jan 15", "jan 10"]
    assert messages(noted, page_size=2) == ["feb 1", "jan 20"]
    for bad in (
        {"after": "yesterday"},
        {"before": "2024-13-01"},
        {"page_size": "0"},
        {"page_size": "1001"},
        {"page_size": "many"},
    ):
        r = get(noted, **bad)
        assert r.status_code == 400, bad
        assert r.json()["id"] == "bad_request"


def test_acknowledge_hides_the_matching_notifications(noted, db):
    r = post(f"{noted}/acknowledge", after="yesterday")
    assert r.status_code == 400
    r = post(f"{noted}/acknowledge", before="2024-01-31", event_type="mapping-error")
    assert r.status_code == 204 and r.content == b""
    assert messages(noted) == ["feb 1", "jan 20"]
    acked = db.execute(
        "SELECT message FROM _hcsandbox.notification WHERE acknowledged_at IS NOT NULL "
        "ORDER BY message"
    ).fetchall()
    assert [m for (m,) in acked] == ["jan 10", "jan 15"]
    assert post(f"{noted}/acknowledge", page_size=1000).status_code == 204
    assert messages(noted) == []
    # another connection's notification is not this one's to acknowledge
    left = db.execute(
        "SELECT message FROM _hcsandbox.notification WHERE acknowledged_at IS NULL"
    ).fetchall()
    assert left == [("elsewhere",)]


# -- the Salesforce API version --------------------------------------------------------------
def test_schema_diff(sandbox_factory):
    sb = sandbox_factory(clock=False)
    root, cid = link(sb)
    r = get(f"{root}/connections/{cid}/schema-diff", target_version="61")
    assert r.status_code == 200, r.text
    diff = r.json()
    assert set(diff) == {"guid", "current_api_version", "target_api_version", "mappings"}
    assert diff["guid"] == cid
    assert diff["current_api_version"] == "62.0" and diff["target_api_version"] == "61.0"
    assert {m["name"] for m in diff["mappings"]} == OBJECTS
    for m in diff["mappings"]:
        assert m == {
            "name": m["name"],
            "result_message": "Salesforce field definitions have not changed.",
            "fields_have_changed": False,
            "has_unsafe_changes": False,
        }
    latest = get(f"{root}/connections/{cid}/schema-diff").json()
    assert latest["target_api_version"] == "62.0"  # no target: the latest version
    for bad in ("not-a-version", "6", "61.0.1"):
        r = get(f"{root}/connections/{cid}/schema-diff", target_version=bad)
        assert r.status_code == 400, bad
        assert "invalid" in r.json()["message"]


def test_change_sf_api_version_only_when_paused(sandbox):
    root, cid = link(sandbox)
    change = f"{root}/connections/{cid}/actions/change-sf-api-version"
    r = post(change, {"target_version": "61.0"})
    assert r.status_code == 400
    assert r.json()["message"] == (
        "Pause the connection before changing its Salesforce API version."
    )
    assert get(f"{root}/connections/{cid}").json()["sf_info"]["api_version"] == "62.0"

    assert post(f"{root}/connections/{cid}/actions/pause").status_code == 202
    wait_until(lambda: get(f"{root}/connections/{cid}").json()["state"] == "PAUSED", what="pause")
    assert post(change, {"target_version": "sixty-one"}).status_code == 400
    assert post(change, {}).status_code == 400
    r = post(change, {"target_version": "61"})
    assert r.status_code == 202, r.text  # the plugin's fixture for a confirmed change
    body = r.json()
    assert body["target_version"] == body["target_api_version"] == "61.0"
    assert body["current_api_version"] == "62.0" and body["guid"] == cid
    assert {m["name"] for m in body["mappings"]} == OBJECTS
    assert get(f"{root}/connections/{cid}").json()["sf_info"]["api_version"] == "61.0"
    diff = get(f"{root}/connections/{cid}/schema-diff").json()
    assert diff["current_api_version"] == "61.0"
