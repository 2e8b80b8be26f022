"""The Heroku models without HTTP: tolerant parsing, the export helpers, states, assumptions."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest

from swapbot.heroku import (
    ASSUMPTIONS,
    LOADING_STATES,
    CheckResults,
    Connection,
    ConnectionRef,
    Counts,
    DiagnoseTimeout,
    Diagnosis,
    ExportDocument,
    Mapping,
    MappingState,
    SchemaDiff,
    mapping_state_group,
)

DOC = {
    "version": 1,
    "connection": {"name": "app:DATABASE_URL:schema1", "features": {"poll_db_no_merge": True}},
    "mappings": [
        {"object_name": "Contact", "config": {"fields": {"Id": {}, "Name": {"x": 1}}}},
        {"object_name": "Account", "config": {"fields": {"Id": {}}}},
        {"object_name": "My_Obj__c", "config": {"access": "read_only"}},
    ],
}


def test_counts_accept_db_or_count():
    assert Counts.model_validate({"db": 5, "sf": 6}).db == 5
    assert Counts.model_validate({"count": 7, "sf": 6}).db == 7


def test_unknown_states_and_fields_parse():
    mapping = Mapping.model_validate(
        {"id": 12, "state": "SOMETHING_NEW", "config": {"fields": {}, "shiny": 1}, "new": True}
    )
    assert mapping.id == "12"  # old mocks used integer ids
    assert mapping.state == "SOMETHING_NEW"
    assert mapping_state_group(mapping.state) == "unknown"
    assert mapping.config.shiny == 1
    assert mapping.model_dump()["new"] is True


def test_state_groups():
    assert mapping_state_group("DATA_SYNCED") == "ok"
    assert mapping_state_group("ABORTED") == "ok"
    assert mapping_state_group("SCHEMA_CHANGED") == "temporary"
    assert mapping_state_group("BULK_LOAD_ERROR") == "error"
    assert "RELOAD_TABLE" in LOADING_STATES and MappingState.DATA_SYNCED not in LOADING_STATES


def test_api_root_with_and_without_slash():
    for region_url in ("https://connect-oregon.heroku.com", "https://connect-oregon.heroku.com//"):
        ref = ConnectionRef(id="c", region_url=region_url)
        assert ref.api_root == "https://connect-oregon.heroku.com/api/v3"
    with pytest.raises(ValueError, match="region_url"):
        _ = ConnectionRef(id="c").api_root


def test_ref_resolves_relative_urls_against_region_url():
    ref = ConnectionRef(id="c", region_url="https://hc.example.com/cell-1/")
    assert (
        ref.resolve("/api/v3/connections/c") == "https://hc.example.com/cell-1/api/v3/connections/c"
    )
    assert (
        ref.resolve("https://elsewhere.example.com/x?y=1") == "https://elsewhere.example.com/x?y=1"
    )
    assert ConnectionRef(id="c").resolve("https://a.example.com/b") == "https://a.example.com/b"
    with pytest.raises(ValueError, match="region_url"):
        ConnectionRef(id="c").resolve("/api/v3/connections/c")


def _check(rule_id: str, message: str = "", name: str | None = None) -> dict:
    return {"display_name": name or rule_id.title(), "message": message, "rule_id": rule_id}


def test_check_results_may_omit_any_list():
    """heroku/heroku-connect-plugin test/commands/connect/diagnose.ts answers
    `{"mappings": {"Account": {}}}`: nothing failed."""
    diagnosis = Diagnosis.model_validate({"mappings": {"Account": {}}})
    assert diagnosis.failures() == [] and diagnosis.summary() == [] and diagnosis.ok
    assert diagnosis.mappings["Account"] == CheckResults()
    nulls = Diagnosis.model_validate({"errors": None, "warnings": None, "mappings": None})
    assert (nulls.errors, nulls.warnings, nulls.mappings) == ([], [], {})
    check = CheckResults.model_validate({"skips": [{"display_name": "X", "later": 1}]}).skips[0]
    assert (check.message, check.doc_url, check.later) == ("", None, 1)


def test_failures_connection_first_then_mappings_by_name_errors_before_warnings():
    diagnosis = Diagnosis.model_validate(
        {
            "warnings": [_check("SHOULD_HAVE_LOG_DRAIN", "App does not have logging configured.")],
            "errors": [_check("CONNECTION_STATE", "Not syncing.")],
            "passes": [_check("WRITE_ERRORS")],
            "mappings": {
                "Contact": {"warnings": [_check("W", "slow")], "errors": [_check("E", "bad")]},
                "account": {
                    "errors": [_check("MAPPING_STATE", "In\n  BAD_CONFIG.", "Mapping State")]
                },
                "Case": {"passes": [_check("MAPPING_STATE")]},
            },
        }
    )
    failures = diagnosis.failures()
    assert [(f.object_name, f.level, f.check.rule_id) for f in failures] == [
        (None, "error", "CONNECTION_STATE"),
        (None, "warning", "SHOULD_HAVE_LOG_DRAIN"),
        ("account", "error", "MAPPING_STATE"),
        ("Contact", "error", "E"),
        ("Contact", "warning", "W"),
    ]
    assert [c.rule_id for c in diagnosis.mappings["Contact"].failed] == ["E", "W"]
    assert diagnosis.summary() == [
        "connection: Connection_State — Not syncing.",
        "connection: Should_Have_Log_Drain (warning) — App does not have logging configured.",
        "account: Mapping State — In BAD_CONFIG.",
        "Contact: E — bad",
        "Contact: W (warning) — slow",
    ]
    assert not diagnosis.ok
    silent = Diagnosis.model_validate({"errors": [{"display_name": "X", "message": None}]})
    assert silent.summary() == ["connection: X"]


def test_diagnose_timeout_pickles_and_says_how_long():
    err = pickle.loads(pickle.dumps(DiagnoseTimeout("c1", 300.2)))
    assert (err.connection_id, err.waited) == ("c1", 300.2)
    assert str(err) == "Heroku Connect's diagnosis of connection c1 had no result after 300 s"


def test_schema_diff_keeps_unknown_fields_and_reads_versions_as_text():
    diff = SchemaDiff.model_validate(
        {"current_api_version": 60.0, "guid": "g", "mappings": [{"name": "Account", "x": 1}]}
    )
    assert diff.current_api_version == "60.0" and diff.target_api_version is None
    assert diff.guid == "g" and diff.mappings[0].x == 1
    assert diff.mappings[0].fields_have_changed is None


def test_connection_finds_a_mapping_by_object_name():
    conn = Connection.model_validate(
        {"id": "c", "mappings": [{"id": "m1", "object_name": "Contact"}], "features": {"a": True}}
    )
    assert conn.mapping("contact").id == "m1"
    assert conn.mapping("Lead") is None
    assert conn.features == {"a": True}


def test_filtered_keeps_only_the_chosen_mappings():
    original = copy.deepcopy(DOC)
    doc = ExportDocument.model_validate(DOC)
    kept = doc.filtered(["contact", "MY_OBJ__C"])
    assert kept.object_names == ["Contact", "My_Obj__c"]
    assert kept.payload()["connection"] == DOC["connection"]
    assert "connection" not in doc.filtered(["Account"], keep_connection=False).payload()
    assert doc.payload() == original  # the source document is unchanged
    with pytest.raises(ValueError, match="Lead"):
        doc.filtered(["Contact", "Lead"])


def test_with_added_fields_adds_only_new_fields():
    doc = ExportDocument.model_validate(DOC)
    changed = doc.with_added_fields({"contact": ["Email", "Name"], "My_Obj__c": "Code__c"})
    payload = changed.payload()
    assert payload["mappings"][0]["config"]["fields"] == {"Id": {}, "Name": {"x": 1}, "Email": {}}
    assert payload["mappings"][2]["config"] == {"access": "read_only", "fields": {"Code__c": {}}}
    assert doc.payload() == DOC
    with pytest.raises(ValueError, match="Lead"):
        doc.with_added_fields({"Lead": ["Email"]})


def test_a_document_built_in_code_always_has_a_version():
    payload = ExportDocument.model_validate({"mappings": []}).payload()
    assert payload == {"version": 1, "mappings": []}


REQUIRED_ASSUMPTIONS = {
    "counts-field-name",
    "import-status-code",
    "pause-resume-status-code",
    "put-mapping-body",
    "abort-has-no-api",
    "import-accepts-added-fields",
    "import-write-algorithm",
    "delete-mapping-table",
    "delete-mapping-trigger-log",
    "connection-id-not-addon-uuid",
    "pause-only-from-idle",
    "region-url-trailing-slash",
}


def test_assumptions_are_complete_unique_and_documented():
    keys = [a.key for a in ASSUMPTIONS]
    assert len(keys) == len(set(keys))
    assert REQUIRED_ASSUMPTIONS - set(keys) == set()
    for item in ASSUMPTIONS:
        assert all([item.section, item.assumes, item.if_wrong, item.how_to_check]), item.key
    doc = (Path(__file__).parent.parent / "docs" / "heroku-assumptions.md").read_text()
    missing = [key for key in keys if f"`{key}`" not in doc]
    assert missing == []


def test_sandbox_flags_name_real_sandbox_switches():
    options = pytest.importorskip("swapbot.sandbox.options")
    flags = [a.sandbox_flag for a in ASSUMPTIONS if a.sandbox_flag]
    assert flags
    assert [f for f in flags if f not in options.Assumptions.model_fields] == []
