"""`swapbot probe --app`: each read-only check against the sandbox, in every variant it plays.

Each test starts the sandbox playing one variant of one assumption and checks that the probe
reports that variant; the evidence is the requests the check sent and what came back.
"""

from __future__ import annotations

import pytest
import requests

from swapbot import probe
from swapbot.probe.read import READ_CHECKS
from swapbot.probe.runner import run_one
from swapbot.testing.services import TOKEN
from tests.test_sandbox_connect import APP

CHECKS = {c.key: c for c in READ_CHECKS}


def probed(sb, key: str, addon: str = "hc1"):
    ctx = probe.connect(TOKEN, sb.central_url, sb.platform_url, app=APP, addon=addon)
    return run_one(ctx, CHECKS[key])


def new_addon(sb, name: str = "hc9") -> str:
    """An add-on made now: its connection takes whatever id the sandbox plays at creation."""
    from swapbot.heroku import PlatformClient
    from swapbot.testing.services import wait_until

    platform = PlatformClient(TOKEN, sb.platform_url)
    platform.create_addon(APP, plan="herokuconnect:enterprise", name=name)
    wait_until(lambda: platform.get_addon(APP, name).state == "provisioned", what="provisioned")
    return name


@pytest.mark.parametrize(
    ("key", "flags", "verdict", "variant"),
    [
        ("counts-field-name", {"counts_field": "db"}, "confirmed", "db"),
        ("counts-field-name", {"counts_field": "count"}, "confirmed", "count"),
        ("region-url-trailing-slash", {"region_url_slash": True}, "confirmed", "true"),
        ("region-url-trailing-slash", {"region_url_slash": False}, "confirmed", "false"),
        (
            "region-url-trailing-slash",
            {"discovery_region_url": False, "region_url_slash": False},
            "confirmed",
            "false",
        ),
        ("discovery-needs-link", {"discovery_needs_link": True}, "confirmed", "true"),
        ("discovery-needs-link", {"discovery_needs_link": False}, "unknown", "false"),
        (
            "connection-id-not-addon-uuid",
            {"connection_id_is_addon_id": False},
            "confirmed",
            "false",
        ),
        (
            "connection-id-not-addon-uuid",
            {"connection_id_is_addon_id": True},
            "contradicted",
            "true",
        ),
        ("platform-rate-limit", {"rate_limit_bucket": 4500}, "confirmed", "4500"),
        ("platform-rate-limit", {"rate_limit_bucket": 2400}, "confirmed", "2400"),
        ("mappings-listed-by-deep", {}, "confirmed", "true"),
    ],
)
def test_the_probe_reports_the_variant_the_sandbox_plays(
    sandbox_factory, key, flags, verdict, variant
):
    sb = sandbox_factory(assumptions=flags)
    addon = new_addon(sb) if "connection_id_is_addon_id" in flags else "hc1"
    found = probed(sb, key, addon)
    assert (found.verdict, found.variant) == (verdict, variant), found.observed
    assert found.kind == "read"
    assert found.evidence, "a finding carries the exchanges that show it"
    assert all(e.status is not None for e in found.evidence)


def test_discovery_shows_the_region_only_in_the_detail(sandbox_factory):
    """Some answers carry region_url only in the connection's detail: the probe (and the client)
    find the region there."""
    sb = sandbox_factory(assumptions={"discovery_region_url": False})
    found = probed(sb, "region-url-trailing-slash")
    assert found.verdict == "confirmed"
    assert found.region


def test_states_outside_the_documented_ones_are_reported(sandbox_factory):
    sb = sandbox_factory()
    assert probed(sb, "unlisted-states").verdict == "confirmed"
    requests.post(
        f"{sb.base_url}/_sandbox/connections/hc1/mappings/Account/state",
        json={"state": "SYNC_REMOVED"},
        timeout=5,
    ).raise_for_status()
    found = probed(sb, "unlisted-states")
    assert found.verdict == "unknown"
    assert "SYNC_REMOVED" in found.observed


def test_hc_diagnose_passes_and_fails_as_heroku_connect_reports(sandbox_factory):
    sb = sandbox_factory(validation_seconds=0.2)
    passed = probed(sb, "hc-diagnose")
    assert passed.verdict == "confirmed", passed.observed  # warnings are told, not failed
    requests.post(
        f"{sb.base_url}/_sandbox/connections/hc1/diagnose",
        json={
            "fail": [
                {
                    "rule_id": "SF_LIMIT",
                    "level": "errors",
                    "object_name": "Account",
                    "message": "API limit near",
                }
            ]
        },
        timeout=5,
    ).raise_for_status()
    failed = probed(sb, "hc-diagnose")
    assert failed.verdict == "contradicted"
    assert "Account" in failed.observed and "API limit near" in failed.observed


def test_evidence_never_holds_the_token(sandbox_factory):
    sb = sandbox_factory()
    ctx = probe.connect(TOKEN, sb.central_url, sb.platform_url, app=APP, addon="hc1")
    results = probe.run(ctx)
    dumped = results.model_dump_json()
    assert TOKEN not in dumped
    assert set(results.findings) == set(CHECKS)
    # linking answers with the user's email: kept as a status only
    linked = [e for e in results.findings["discovery-needs-link"].evidence if "/auth/" in e.url]
    assert linked and all(e.response and e.response.startswith("(not kept") for e in linked)
    assert "users.sandbox.local" not in dumped


def test_an_authorize_link_and_config_vars_are_never_kept(sandbox):
    """The link carries a live OAuth state; config vars carry the database's URL."""
    from swapbot.heroku import PlatformClient
    from swapbot.probe.recorder import Recorder
    from swapbot.testing.services import NEXT

    recorder = Recorder()
    ctx = probe.connect(TOKEN, sandbox.central_url, sandbox.platform_url, app=APP, addon="hc1")
    link = ctx.connect.authorize_url(ctx.ref(), next_url=NEXT)
    platform = PlatformClient(TOKEN, sandbox.platform_url, session=recorder.session())
    urls = platform.config_vars(APP)
    exchanges = [*ctx.recorder.exchanges, *recorder.exchanges]
    dumped = "".join(e.model_dump_json() for e in exchanges)
    assert link.split("?")[1] not in dumped
    assert not any(v.get_secret_value() in dumped for v in urls.values())
    assert "(not kept: the link carries a live OAuth state)" in dumped


def test_a_check_that_fails_is_unknown_and_the_probe_goes_on(sandbox_factory):
    sb = sandbox_factory()
    ctx = probe.connect(TOKEN, sb.central_url, sb.platform_url, app=APP, addon="no-such-addon")
    results = probe.run(ctx)
    assert results.findings["mappings-listed-by-deep"].verdict == "unknown"
    assert "could not check" in results.findings["mappings-listed-by-deep"].observed
    # the checks that need no connection still ran
    assert results.findings["platform-rate-limit"].verdict == "confirmed"


def test_swapbot_probe_writes_the_results_file_and_prints_the_table(
    sandbox, tmp_path, monkeypatch, capsys
):
    from swapbot.cli import main
    from swapbot.heroku.assumptions import ASSUMPTIONS
    from swapbot.heroku.probed import ProbeResults

    for name, value in {
        "HEROKU_API_TOKEN": TOKEN,
        "HEROKU_API_URL": sandbox.platform_url,
        "HEROKU_CONNECT_CENTRAL_URL": sandbox.central_url,
        "SWAPBOT_PROBE_FILE": str(tmp_path / "swapbot-probe.json"),
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["probe"]) == 2  # neither --app nor --scratch-app
    assert main(["probe", "--app", APP, "--addon", "hc1"]) == 0
    out = capsys.readouterr().out
    kept = ProbeResults.load(tmp_path / "swapbot-probe.json")
    assert kept.app == APP and set(kept.findings) == set(CHECKS)
    # the table has every assumption, probed or not
    assert all(a.key in out for a in ASSUMPTIONS)
    assert "not probed" in out and TOKEN not in out
    # a second run keeps the first one's findings, the newer one per key
    first = kept.findings["counts-field-name"].at
    assert main(["probe", "--app", APP, "--addon", "hc1"]) == 0
    again = ProbeResults.load(tmp_path / "swapbot-probe.json")
    assert again.findings["counts-field-name"].at > first
    assert main(["probe", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "hc-diagnose" in listed and "change" in listed


def test_hcswap_probe_is_long_work_for_operators_taking_at_most_an_addon():
    from swapbot import commands
    from swapbot.config import Settings
    from swapbot.slack.access import refusal

    cmd = commands.parse("probe hc1")
    assert (cmd.kind, cmd.long_running, cmd.args) == ("operate", True, ("hc1",))
    # it only reads Heroku, but links the user and sets what the engine plays: operators only
    settings = Settings(swapbot_channel="C0SWAP", swapbot_operators=["U0OP"])
    assert refusal(cmd, "U0OP", "C0SWAP", settings) is None
    assert "Only operators" in (refusal(cmd, "U0READER", "C0SWAP", settings) or "")
    with pytest.raises(commands.UsageError, match="at most the add-on"):
        commands.parse("probe hc1 hc2")
    assert "probe [ADDON]" in commands.HELP


def test_every_assumption_has_a_probe_check():
    from swapbot.heroku.assumptions import ASSUMPTIONS
    from swapbot.probe.scratch import SCRATCH_CHECKS

    checks = [*READ_CHECKS, *SCRATCH_CHECKS]
    keys = [c.key for c in checks]
    assert len(keys) == len(set(keys))
    assert {a.key for a in ASSUMPTIONS} <= set(keys)
    assert set(keys) - {a.key for a in ASSUMPTIONS} == {"hc-diagnose"}
    assert {c.kind for c in READ_CHECKS} == {"read"} and {c.kind for c in SCRATCH_CHECKS} == {
        "change"
    }
