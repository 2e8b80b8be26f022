"""Each unconfirmed Heroku Connect behaviour (swapbot/heroku/assumptions.py) in both of its variants.

The bot must work whichever variant the real service turns out to have, so the clients are run
against the sandbox under each. Flags can be chosen at start (`--assume`) or changed live.
"""

from __future__ import annotations

import pytest
import requests

from swapbot.heroku import ConnectClient, PlatformClient
from swapbot.testing.services import TOKEN, wait_until
from tests.test_sandbox_connect import APP, mapping, mapping_state, new_connection


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
