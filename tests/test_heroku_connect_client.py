"""ConnectClient as Heroku's own client (heroku/heroku-connect-plugin) uses Heroku Connect: its
headers, the discovery merge, the PUT /mappings body, and the diagnostics calls (diagnose,
mapping diagnose, notifications, acknowledge, schema diff).

Each behaviour is checked twice where it can be: against the scripted server of
test_heroku_transport (exact requests, fake sleeps), and against the sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, get_args

import pytest
import requests

from swapbot.heroku import (
    PUT_BODIES,
    BadRequest,
    ConnectClient,
    ConnectionRef,
    DiagnoseTimeout,
    Diagnosis,
    HerokuApiError,
    HerokuError,
    MappingConfig,
    PlatformClient,
    PutBody,
    RetryPolicy,
    ServerError,
)
from swapbot.testing.services import TOKEN as SANDBOX_TOKEN
from tests.test_heroku_transport import (
    FAST,
    TOKEN,
    FakeHeroku,
    FakeSleep,
    Reply,
    discovery_entry,
    policy,
    ref_for,
    scripted_server,
)

APP = "acme-prod"


@pytest.fixture
def heroku() -> Iterator[FakeHeroku]:
    with scripted_server() as fake:
        yield fake


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def hc(heroku: FakeHeroku, sleep: FakeSleep) -> Iterator[ConnectClient]:
    client = ConnectClient(TOKEN, f"{heroku.url}/hc-central", timeout=FAST, retry=policy(sleep))
    yield client
    client.close()


def sandbox_connect(sb: Any) -> ConnectClient:
    retry = RetryPolicy(
        max_attempts=8, base_delay=0.01, max_delay=0.05, sleep=lambda s: time.sleep(min(s, 0.05))
    )
    return ConnectClient(SANDBOX_TOKEN, sb.central_url, retry=retry, timeout=(2, 5))


# The answers of heroku/heroku-connect-plugin test/commands/connect/diagnose.ts.
PLUGIN_WARNINGS = {
    "errors": [],
    "passes": [],
    "skips": [],
    "warnings": [
        {
            "display_name": "Salesforce API Version",
            "doc_url": "https://devcenter.heroku.com/articles/heroku-connect-diagnose"
            "#check-salesforce-api-version",
            "message": "The latest available Salesforce API version is 47.0. Your connection is "
            "using version 44.0. You should re-create your connection to use the latest version.",
            "rule_id": "MUST_USE_RECENT_API_VERSION",
            "status": "FAILED",
        },
        {
            "display_name": "Configured Logging",
            "doc_url": "https://devcenter.heroku.com/articles/heroku-connect-diagnose"
            "#check-configured-log-drain",
            "message": "App does not have logging configured.",
            "rule_id": "SHOULD_HAVE_LOG_DRAIN",
            "status": "FAILED",
        },
    ],
}


# --- Heroku-Client header ----------------------------------------------------------------------


def test_every_connect_request_names_the_client_and_platform_requests_do_not(heroku, hc, sleep):
    """heroku/heroku-connect-plugin src/lib/clients/connect.ts and discovery.ts send
    `Heroku-Client: cli` to hc-central and the regions alike; swapbot sends its own name."""
    heroku.script(
        Reply(200, {"user": {"id": "u1"}, "connections": []}),
        Reply(200, {"count": 0, "results": []}),
        Reply(200, {"id": "abc", "mappings": []}),
        Reply(200, {"id": "app-uuid", "name": "my-app"}),
    )
    hc.link("my-app")
    hc.discover("my-app")
    hc.get_connection(ref_for(heroku))
    with PlatformClient(TOKEN, heroku.url, timeout=FAST, retry=policy(sleep)) as platform:
        platform.app("my-app")
    *to_connect, to_platform = heroku.seen
    assert [s.headers.get("heroku-client") for s in to_connect] == ["swapbot"] * 3
    assert "heroku-client" not in to_platform.headers


# --- PUT /mappings/{id} ------------------------------------------------------------------------

CONFIG = {
    "access": "read_write",
    "fields": {"Id": {}, "External_Key__c": {}},
    "upsert_field": "External_Key__c",
    "revision": 3,
    "applied_at": "2026-01-02T03:04:05Z",
}


def test_put_bodies_are_the_two_shapes():
    assert PUT_BODIES == ("create-plus-revision", "upsert-on-mapping")
    assert get_args(PutBody) == PUT_BODIES


def test_put_sends_the_create_body_plus_revision_by_default(heroku, hc):
    heroku.script(Reply(200, {}))
    hc.update_mapping(ref_for(heroku), "m1", "Contact", CONFIG)
    sent = heroku.seen[0]
    assert (sent.method, sent.path) == ("PUT", "/cell-1/api/v3/mappings/m1")
    assert sent.json() == {
        "object_name": "Contact",
        "config": {
            "access": "read_write",
            "fields": {"Id": {}, "External_Key__c": {}},
            "upsert_field": "External_Key__c",
            "revision": 3,
        },
    }


def test_put_with_upsert_field_on_the_mapping(heroku, hc):
    heroku.script(Reply(200, {}), Reply(200, {}))
    ref = ref_for(heroku)
    hc.update_mapping(ref, "m1", "Contact", CONFIG, body="upsert-on-mapping")
    without = MappingConfig.model_validate({"fields": {"Id": {}}, "revision": 4})
    hc.update_mapping(ref, "m1", "Contact", without, body="upsert-on-mapping")
    assert heroku.seen[0].json() == {
        "config": {
            "access": "read_write",
            "fields": {"Id": {}, "External_Key__c": {}},
            "revision": 3,
        },
        "upsert_field": "External_Key__c",
    }
    assert heroku.seen[1].json() == {"config": {"fields": {"Id": {}}, "revision": 4}}


def test_put_refuses_an_unknown_shape_or_a_missing_object_name(heroku, hc):
    with pytest.raises(ValueError, match="body must be one of"):
        hc.update_mapping(ref_for(heroku), "m1", "Contact", CONFIG, body="config-only")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="object_name"):
        hc.update_mapping(ref_for(heroku), "m1", "", CONFIG)
    assert heroku.seen == []


def _account(connect: ConnectClient, ref: ConnectionRef) -> tuple[str, MappingConfig]:
    m = connect.get_connection(ref).mapping("Account")
    assert m is not None and m.config is not None
    config = m.config.model_copy(deep=True)
    config.fields["Rating"] = {}
    return m.id, config


@pytest.mark.parametrize("plays", PUT_BODIES)
def test_sandbox_takes_only_the_body_it_plays(sandbox_factory, plays):
    sb = sandbox_factory(clock=False, assumptions={"put_mapping_body": plays})
    connect = sandbox_connect(sb)
    hc1 = connect.find_connection(APP, "hc1")
    mapping_id, config = _account(connect, hc1)
    other = next(b for b in PUT_BODIES if b != plays)
    with pytest.raises(BadRequest):
        connect.update_mapping(hc1, mapping_id, "Account", config, body=other)
    connect.update_mapping(hc1, mapping_id, "Account", config, body=plays)
    edited = connect.get_mapping(hc1, mapping_id)
    assert edited.config is not None and "Rating" in edited.config.fields
    assert edited.config.revision == (config.revision or 0) + 1


# --- region_url from discovery or from the connection's detail ----------------------------------


def test_a_discovery_entry_with_only_detail_url_is_completed_from_the_detail(heroku, hc):
    """heroku/heroku-connect-plugin test/commands/connect/diagnose.ts: discovery answers
    `{"detail_url": ...}` alone; the detail answer (`?deep=true`) carries id and region_url."""
    detail_url = f"{heroku.url}/cell-1/connections/1234"
    heroku.script(
        Reply(200, {"results": [{"detail_url": detail_url}]}),
        Reply(
            200,
            {
                "id": 1234,
                "name": "awesome-connection-1234",
                "region_url": f"{heroku.url}/cell-1/",
                "resource_name": "herokuconnect-x",
                "app_name": "my-app",
                "mappings": [{"id": "m1", "object_name": "Account"}],
            },
        ),
        Reply(200, {"results": []}),
    )
    ref = hc.find_connection("my-app")
    assert (ref.id, ref.resource_name, ref.detail_url) == ("1234", "herokuconnect-x", detail_url)
    assert ref.api_root == f"{heroku.url}/cell-1/api/v3"
    assert "mappings" not in ref.model_dump()  # a ref, not the whole detail
    hc.errors(ref)
    discovery, detail, errors = heroku.seen
    assert (discovery.method, discovery.path) == ("GET", "/hc-central/connections")
    assert (detail.method, detail.target) == ("GET", "/cell-1/connections/1234?deep=true")
    assert errors.path == "/cell-1/api/v3/connections/1234/errors"


def test_discovery_values_win_and_complete_entries_cost_no_detail_read(heroku, hc):
    """The plugin's notifications fixtures: `{"detail_url", "id"}` in discovery."""
    lacking = {"id": "c1", "detail_url": f"{heroku.url}/cell-1/api/v3/connections/c1"}
    lacking["resource_name"] = "from-discovery"
    heroku.script(
        Reply(200, {"results": [lacking, discovery_entry(heroku, "c2", "b")]}),
        Reply(
            200, {"id": "c1", "resource_name": "from-detail", "region_url": f"{heroku.url}/cell-2"}
        ),
    )
    first, second = hc.discover("my-app")
    assert (first.id, first.resource_name) == ("c1", "from-discovery")
    assert first.region_url == f"{heroku.url}/cell-2"
    assert second.region_url == f"{heroku.url}/cell-1/"
    assert len(heroku.seen) == 2  # one discovery page, one detail: none for the complete entry


def test_get_connection_resolves_a_relative_detail_url_against_region_url(heroku, hc):
    """heroku/heroku-connect-plugin's prerelease fixture (test/support/test-fixtures.ts) has
    `detail_url: /api/v3/connections/{id}` in the connection's detail."""
    heroku.script(Reply(200, {"id": "abc", "mappings": []}))
    ref = ref_for(heroku, slash=True).model_copy(update={"detail_url": "/api/v3/connections/abc"})
    hc.get_connection(ref)
    assert heroku.seen[0].target == "/cell-1/api/v3/connections/abc?deep=true"


def test_sandbox_discovery_without_region_url(sandbox_factory):
    sb = sandbox_factory(clock=False, assumptions={"discovery_region_url": False})
    connect = sandbox_connect(sb)
    raw = requests.get(
        f"{sb.central_url}/connections",
        params={"app": APP},
        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
        timeout=5,
    )
    assert raw.ok and all("region_url" not in entry for entry in raw.json()["results"])

    hc1 = connect.find_connection(APP, "hc1")
    assert hc1.region_url and hc1.api_root.startswith(sb.base_url)
    assert connect.get_connection(hc1).state == "IDLE"
    # What a dry run uses (Live.ref): discover, without linking, and the refs work at once.
    (found,) = connect.discover(APP, resource_name="hc1")
    assert found.region_url == hc1.region_url
    assert connect.errors(found).count == 0


# --- diagnose ----------------------------------------------------------------------------------


def test_diagnose_polls_the_result_url_until_200(heroku, hc, sleep):
    heroku.script(
        Reply(202, {"result_url": "/api/v3/connections/abc/validations/456"}),
        Reply(202),
        Reply(202, {}),
        Reply(200, PLUGIN_WARNINGS),
    )
    diagnosis = hc.diagnose(ref_for(heroku, slash=True))
    assert [(s.method, s.path) for s in heroku.seen] == [
        ("POST", "/cell-1/api/v3/connections/abc/validations"),
        *[("GET", "/cell-1/api/v3/connections/abc/validations/456")] * 3,
    ]
    assert heroku.seen[0].body == b""
    assert sleep.delays == [0.5, 0.5]
    assert [c.rule_id for c in diagnosis.warnings] == [
        "MUST_USE_RECENT_API_VERSION",
        "SHOULD_HAVE_LOG_DRAIN",
    ]
    assert diagnosis.summary() == [
        "connection: Salesforce API Version (warning) — The latest available Salesforce API "
        "version is 47.0. Your connection is using version 44.0. You should re-create your "
        "connection to use the latest version.",
        "connection: Configured Logging (warning) — App does not have logging configured.",
    ]


def test_diagnose_gives_up_after_max_wait(heroku, hc, sleep):
    absolute = f"{heroku.url}/cell-1/api/v3/connections/abc/validations/9"
    heroku.script(Reply(202, {"result_url": absolute}), *[Reply(202)] * 10)
    with pytest.raises(DiagnoseTimeout) as exc:
        hc.diagnose(ref_for(heroku), poll_seconds=0.25, max_wait=1.0)
    assert isinstance(exc.value, HerokuError)
    assert exc.value.connection_id == "abc"
    assert "abc" in str(exc.value)
    # four fake sleeps fill max_wait (fewer if the real requests themselves took long)
    assert 1 <= len(sleep.delays) <= 4 and set(sleep.delays) == {0.25}
    assert len(heroku.seen) == 1 + len(sleep.delays) + 1


def test_diagnose_with_a_sleep_of_its_own(heroku, hc, sleep):
    slept: list[float] = []
    heroku.script(Reply(202, {"result_url": "/v/1"}), Reply(202), Reply(200, {}))
    assert hc.diagnose(ref_for(heroku), poll_seconds=2.0, sleep=slept.append).ok
    assert (slept, sleep.delays) == ([2.0], [])
    assert heroku.seen[1].path == "/cell-1/v/1"


def test_diagnose_start_is_retried_as_safe_to_repeat(heroku, hc):
    heroku.script(
        Reply(500, {"message": "boom"}),
        Reply(202, {"result_url": "/r"}),
        Reply(200, {"mappings": {"Account": {}}}),
    )
    assert hc.diagnose(ref_for(heroku)).failures() == []
    assert [s.method for s in heroku.seen] == ["POST", "POST", "GET"]


def test_diagnose_without_a_result_url_is_an_invalid_response(heroku, hc):
    heroku.script(Reply(202, {}))
    with pytest.raises(HerokuApiError) as exc:
        hc.diagnose(ref_for(heroku))
    assert exc.value.error_id == "invalid_response"


def test_sandbox_diagnose_reports_forced_failures(sandbox_factory):
    sb = sandbox_factory(clock=False, validation_seconds=100.0)  # 1 s at the speed of 100
    connect = sandbox_connect(sb)
    hc1 = connect.find_connection(APP, "hc1")
    forced = [
        {
            "rule_id": "MAPPING_STATE",
            "level": "errors",
            "object_name": "Contact",
            "message": "The mapping is in state BAD_CONFIG.",
            "display_name": "Mapping State",
        },
        {
            "rule_id": "MAPPING_STATE",
            "level": "errors",
            "object_name": "Account",
            "message": "The mapping is in state SYSTEM_ERROR.",
            "display_name": "Mapping State",
        },
        {
            "rule_id": "CONNECTION_STATE",
            "level": "errors",
            "object_name": None,
            "message": "The connection is not syncing.",
            "display_name": "Connection State",
        },
    ]
    r = requests.post(f"{sb.base_url}/_sandbox/connections/hc1/diagnose", json={"fail": forced})
    assert r.ok, r.text
    diagnosis = connect.diagnose(hc1)
    assert [(f.object_name, f.level, f.check.rule_id) for f in diagnosis.failures()] == [
        (None, "error", "CONNECTION_STATE"),
        (None, "warning", "SHOULD_HAVE_LOG_DRAIN"),  # the sandbox's own: no log drain
        ("Account", "error", "MAPPING_STATE"),
        ("Contact", "error", "MAPPING_STATE"),
    ]
    assert (
        diagnosis.summary()[2] == "Account: Mapping State — The mapping is in state SYSTEM_ERROR."
    )
    assert len(diagnosis.mappings["Case"].passes) == 2

    contact = connect.get_connection(hc1).mapping("Contact")
    assert contact is not None
    checks = connect.mapping_diagnosis(hc1, contact.id)
    assert [c.message for c in checks.failed] == ["The mapping is in state BAD_CONFIG."]


def test_sandbox_diagnose_times_out_while_the_checks_run(sandbox_factory):
    sb = sandbox_factory(clock=False, validation_seconds=100_000.0)  # 1000 s at 100 times
    connect = sandbox_connect(sb)
    with pytest.raises(DiagnoseTimeout):
        connect.diagnose(connect.find_connection(APP, "hc1"), poll_seconds=0.01, max_wait=0.05)


def test_mapping_diagnosis_is_answered_at_once(heroku, hc):
    heroku.script(Reply(200, {"passes": [{"display_name": "Mapping State", "message": "ok"}]}))
    results = hc.mapping_diagnosis(ref_for(heroku), "m1")
    assert heroku.seen[0].target == "/cell-1/api/v3/mappings/m1/validations"
    assert (results.failed, [c.display_name for c in results.passes]) == ([], ["Mapping State"])


# --- notifications -----------------------------------------------------------------------------


def test_notifications_send_the_plugin_s_query(heroku, hc):
    """heroku/heroku-connect-plugin test/commands/connect/notifications.ts."""
    note = {
        "created_at": "2024-01-15T10:30:00Z",
        "event_type": "mapping-error",
        "id": 5678,
        "message": "Failed to sync Account records due to validation error",
    }
    heroku.script(Reply(200, {"results": [note]}), Reply(200, {"results": []}))
    ref = ref_for(heroku)
    (found,) = hc.notifications(ref)
    filtered = hc.notifications(
        ref, after="2024-01-01", before="2024-01-31", event_type="mapping-error"
    )
    assert (found.id, found.event_type, found.message) == ("5678", "mapping-error", note["message"])
    assert filtered == []
    plain, query = heroku.seen
    assert (plain.method, plain.path) == ("GET", "/cell-1/api/v3/connections/abc/notifications")
    assert plain.query == {"page_size": ["1000"]}
    assert query.query == {
        "after": ["2024-01-01"],
        "before": ["2024-01-31"],
        "event_type": ["mapping-error"],
        "page_size": ["1000"],
    }


def test_acknowledge_sends_filters_in_the_query_and_no_body(heroku, hc):
    """heroku/heroku-connect-plugin test/commands/connect/notifications-acknowledge.ts."""
    heroku.script(Reply(500), Reply(204), Reply(200, {}))
    ref = ref_for(heroku)
    hc.acknowledge_notifications(ref, event_type="mapping-error", page_size=10)
    sent = heroku.seen[1]
    assert (sent.method, sent.path) == (
        "POST",
        "/cell-1/api/v3/connections/abc/notifications/acknowledge",
    )
    assert sent.query == {"event_type": ["mapping-error"], "page_size": ["10"]}
    assert sent.body == b""
    assert heroku.seen[0].target == sent.target  # a 500 is retried: safe to repeat
    with pytest.raises(HerokuApiError) as exc:  # only 204 means done
        hc.acknowledge_notifications(ref)
    assert exc.value.status == 200
    with pytest.raises(ValueError, match="page_size"):
        hc.notifications(ref, page_size=0)


def test_sandbox_notifications_and_acknowledge(sandbox_factory, db):
    sb = sandbox_factory(clock=False)
    connect = sandbox_connect(sb)
    hc1 = connect.find_connection(APP, "hc1")
    notes = [
        ("2024-01-15T10:30:00Z", "mapping-error", "Failed to sync Account records"),
        ("2024-01-15T09:45:00Z", "postgres-connection", "Database cannot connect"),
        ("2024-02-02T09:00:00Z", "mapping-error", "Failed to sync Contact records"),
    ]
    for at, event_type, message in notes:
        db.execute(
            "INSERT INTO _hcsandbox.notification (connection_id, event_type, message, created_at) "
            "VALUES (%s, %s, %s, %s)",
            (hc1.id, event_type, message, at),
        )
    everything = connect.notifications(hc1)
    assert {n.message for n in everything} == {m for _, _, m in notes}
    january = connect.notifications(
        hc1, after="2024-01-01", before="2024-01-31", event_type="mapping-error"
    )
    assert [n.message for n in january] == ["Failed to sync Account records"]

    connect.acknowledge_notifications(hc1, event_type="mapping-error")
    connect.acknowledge_notifications(hc1, event_type="mapping-error")  # again: nothing left
    assert [n.message for n in connect.notifications(hc1)] == ["Database cannot connect"]


# --- schema diff -------------------------------------------------------------------------------


def test_schema_diff(heroku, hc):
    """heroku/heroku-connect-plugin src/commands/connect/manage-sf-api-version.ts."""
    body = {
        "current_api_version": "60.0",
        "target_api_version": "61.0",
        "mappings": [
            {"name": "Account", "fields_have_changed": True, "has_unsafe_changes": True},
            {"name": "Contact", "result_message": "unchanged"},
        ],
    }
    heroku.script(Reply(200, body), Reply(200, {}))
    ref = ref_for(heroku)
    diff = hc.schema_diff(ref, "61.0")
    assert (diff.current_api_version, diff.target_api_version) == ("60.0", "61.0")
    assert [(m.name, m.has_unsafe_changes) for m in diff.mappings] == [
        ("Account", True),
        ("Contact", None),
    ]
    assert hc.schema_diff(ref).mappings == []
    with_target, without = heroku.seen
    assert with_target.target == "/cell-1/api/v3/connections/abc/schema-diff?target_version=61.0"
    assert without.target == "/cell-1/api/v3/connections/abc/schema-diff"


def test_sandbox_schema_diff(sandbox_factory):
    sb = sandbox_factory(clock=False)
    connect = sandbox_connect(sb)
    hc1 = connect.find_connection(APP, "hc1")
    diff = connect.schema_diff(hc1, "61")
    assert diff.target_api_version == "61.0" and diff.current_api_version
    assert {m.name for m in diff.mappings} >= {"Account", "Contact"}
    assert not any(m.has_unsafe_changes for m in diff.mappings)
    with pytest.raises(BadRequest):
        connect.schema_diff(hc1, "sixty-one")


def test_server_errors_of_the_reads_are_retried(heroku, hc):
    heroku.script(Reply(503), Reply(200, {"results": []}))
    assert hc.notifications(ref_for(heroku)) == []
    heroku.script(*[Reply(500)] * 5)
    with pytest.raises(ServerError):
        hc.schema_diff(ref_for(heroku))


def test_diagnosis_type_is_exported():
    assert Diagnosis.model_validate({}).ok
