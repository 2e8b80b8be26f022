"""Resilience under `--faults 0.3`: safe calls are retried until they succeed; calls that are not
safe to repeat are never sent twice — after a failure the caller checks the live state instead."""

from __future__ import annotations

import time

import requests

from swapbot.heroku import (
    ConnectClient,
    HerokuError,
    NotFound,
    PlatformClient,
    RetryPolicy,
    TransportError,
)
from swapbot.testing.services import NEXT, TOKEN, wait_until

APP = "acme-prod"


SLOW_SECONDS = 1.0


def unsafe(call, done):
    """Run a not-safe-to-repeat call; after an error, repeat it only if the live state says it
    did not happen. This is how the swap engine will use these calls. After a timeout the request
    may still be in flight on the server, so look only once it must have finished."""
    for _ in range(20):
        try:
            return call()
        except TransportError:
            time.sleep(SLOW_SECONDS + 0.2)
            if done():
                return None
        except HerokuError:
            if done():
                return None
    raise AssertionError("an unsafe call kept failing")


def test_clients_under_faults_never_repeat_unsafe_calls(sandbox_factory):
    sb = sandbox_factory(faults=0.3, slow_seconds=SLOW_SECONDS)
    retry = RetryPolicy(
        max_attempts=12, base_delay=0.01, max_delay=0.05, sleep=lambda s: time.sleep(min(s, 0.05))
    )
    # a read timeout shorter than the sandbox's slow answers, so "slow" means "timed out"
    connect = ConnectClient(TOKEN, sb.central_url, retry=retry, timeout=(1, 0.5))
    platform = PlatformClient(TOKEN, sb.platform_url, retry=retry, timeout=(1, 0.5))

    def addon_exists():
        try:
            return platform.get_addon(APP, "hc2") is not None
        except NotFound:
            return False

    for _ in range(3):
        assert platform.app(APP).name == APP
        assert len(platform.formation(APP)) == 3
    unsafe(
        lambda: platform.create_addon(APP, plan="herokuconnect:enterprise", name="hc2"),
        addon_exists,
    )
    wait_until(lambda: platform.get_addon(APP, "hc2").state == "provisioned", timeout=30)
    hc1 = connect.find_connection(APP, "hc1")
    hc2 = connect.find_connection(APP, "hc2")
    connect.configure(hc2, db_key="DATABASE_URL", schema_name="salesforce2")
    link = connect.authorize_url(hc2, next_url=NEXT)
    requests.get(link, timeout=5).raise_for_status()  # the browser, not the API: no faults
    wait_until(lambda: connect.get_connection(hc2).state == "IDLE", timeout=30)

    doc = connect.export_config(hc1).filtered(["Account", "Case"])

    def imported():
        c = connect.get_connection(hc2)
        return c.state == "IMPORT_CONFIGURATION" or bool(c.mappings)

    unsafe(lambda: connect.import_config(hc2, doc), imported)
    wait_until(lambda: len(connect.get_connection(hc2).mappings) == 2, timeout=30)

    invoice = next(m for m in doc.mappings if m.object_name == "Account").config.model_copy(
        deep=True
    )
    invoice.fields = {"Id": {}, "SystemModstamp": {}, "Name": {}}
    invoice.indexes = {}
    invoice.upsert_field = None
    unsafe(
        lambda: connect.create_mapping(hc2, "Invoice__c", invoice),
        lambda: connect.get_connection(hc2).mapping("Invoice__c") is not None,
    )
    wait_until(
        lambda: connect.get_connection(hc2).mapping("Account").state == "DATA_SYNCED", timeout=30
    )
    case = connect.get_connection(hc2).mapping("Account")
    edited = case.config.model_copy(deep=True)
    edited.fields["Rating"] = {}
    unsafe(
        lambda: connect.update_mapping(hc2, case.id, "Account", edited),
        lambda: (
            connect.get_connection(hc2).mapping("Account").config.revision == edited.revision + 1
        ),
    )
    for _ in range(3):
        connect.get_connection(hc1)
        connect.errors(hc1)

    log = requests.get(f"{sb.base_url}/_sandbox/requests", timeout=5).json()
    faults = {r["fault"] for r in log if r["fault"]}
    assert {"503", "500", "429", "slow"} <= faults, faults  # every kind of fault was exercised
    processed = [r for r in log if r["fault"] in (None, "slow") and r["status"] < 500]
    for method, suffix in (
        ("POST", "/apps/acme-prod/addons"),
        ("POST", "/actions/import"),
        ("POST", f"/connections/{hc2.id}/mappings"),
        ("PUT", f"/mappings/{case.id}"),
    ):
        sent = [r for r in processed if r["method"] == method and r["path"].endswith(suffix)]
        assert len(sent) == 1, (method, suffix, sent)
