"""The Heroku models without HTTP: tolerant parsing, the export helpers, states, assumptions."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from swapbot.heroku import (
    ASSUMPTIONS,
    LOADING_STATES,
    Connection,
    ConnectionRef,
    Counts,
    ExportDocument,
    Mapping,
    MappingState,
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
