"""`swapbot hcswap` from the terminal, as a separate process against the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from swapbot.sandbox.scenarios import role_names
from swapbot.testing.services import REDIS_TEST_URL, TOKEN

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow


@pytest.fixture
def hcswap(sandbox, db_url, db_name, redis_prefix):
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "SWAPBOT_", "HEROKU_"))
        },
        "DATABASE_URL": db_url,
        "REDIS_URL": REDIS_TEST_URL,
        "SWAPBOT_REDIS_PREFIX": redis_prefix,
        "HEROKU_API_TOKEN": TOKEN,
        "HEROKU_APP_NAME": "acme-prod",
        "HEROKU_API_URL": sandbox.platform_url,
        "HEROKU_CONNECT_CENTRAL_URL": sandbox.central_url,
        "SWAPBOT_APPROVERS": "U0APPROVER",
    }

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "swapbot.cli", "hcswap", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    run.role = role_names(db_name)[0]
    run.env = env  # a test may add settings (the dict is read at each call)
    return run


@pytest.mark.slow
def test_plan_status_and_a_dry_run(hcswap):
    out = hcswap("status")
    assert out.returncode == 0 and "no plan yet" in out.stdout
    # before any plan: the app's connections, each mapping with its state as the API gives it
    assert "hc1: IDLE, schema salesforce" in out.stdout
    assert "Account" in out.stdout and "DATA_SYNCED" in out.stdout
    before = json.loads(hcswap("status", "--json").stdout)
    hc1 = before["connections"][0]
    assert (hc1["addon"], hc1["state"], hc1["schema"]) == ("hc1", "IDLE", "salesforce")
    assert {m["object"] for m in hc1["mappings"]} == {
        "Account", "Contact", "Opportunity", "Case", "Invoice__c",
    }  # fmt: skip
    assert "notifications are off" in out.stderr
    out = hcswap(
        "plan", "new", "--swap-id", "acme-cli", "--new-schema", "salesforce2",
        "--mappings", "Account:Rating;Contact:Phone", "--roles", hcswap.role,
        "--process-types", "web,worker", "--as", "U0OPERATOR",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    status = json.loads(hcswap("status", "--json").stdout)
    assert status["plan"]["mappings"] == {"Account": ["Rating"], "Contact": ["Phone"]}
    assert [s["name"] for s in status["steps"]][:3] == ["preflight", "create-addon", "configure"]
    out = hcswap("plan", "set", "mappings=Account:Rating", "--as", "U0OPERATOR")
    assert out.returncode == 0, out.stderr
    assert json.loads(hcswap("status", "--json").stdout)["plan"]["mappings"] == {
        "Account": ["Rating"]
    }
    out = hcswap("plan", "set", "mappings=Account:Nope__c", "--as", "U0OPERATOR")
    assert (
        out.returncode == 2 and "no field Nope__c" in out.stderr
    )  # checked against the live system
    assert hcswap("plan", "set", "colour=blue", "--as", "U0OPERATOR").returncode == 2
    out = hcswap("preflight", "--as", "U0OPERATOR")
    assert out.returncode == 0, out.stdout + out.stderr
    out = hcswap("plan", "set", "new_schema=salesforce3", "--as", "U0OPERATOR")
    assert out.returncode == 2 and "a running plan cannot change" in out.stderr
    shown = json.loads(hcswap("plan", "show", "--json").stdout)
    assert {p["step"] for p in shown["outage"]["parts"]} >= {
        "drain",
        "pause",
        "verify",
        "restore",
    }, shown["risks"]
    assert shown["outage"]["seconds"] > 0
    assert all(p["source"] in ("measured", "assumed") for p in shown["outage"]["parts"])
    assert isinstance(shown["objects"], list) and isinstance(shown["risks"], list)
    text = hcswap("plan", "show").stdout
    assert "outage  predicted" in text
    out = hcswap("create-addon", "--dry-run", "--as", "U0OPERATOR")
    assert out.returncode == 0
    assert "would call: POST /apps/acme-prod/addons" in out.stdout
    history = json.loads(hcswap("history", "--json").stdout)
    actions = [e["action"] for e in history]
    assert actions[:2] == ["plan.saved", "plan.saved"] and "step.started" in actions


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["next"], "--as USER"),
        (["launch", "--as", "U1"], "unknown or malformed subcommand"),
        (["plan", "new", "--swap-id", "x", "--new-schema", "s2", "--mappings", "Account", "--as", "U1"], "swap id"),
        (["plan", "new", "--swap-id", "ok-id", "--new-schema", "salesforce", "--mappings", "Account", "--as", "U1"], "differ"),
        (["plan", "new", "--swap-id", "ok-id", "--new-schema", "s2;drop", "--mappings", "Account", "--as", "U1"], "schema"),
        (["plan", "new", "--swap-id", "ok-id", "--new-schema", "s2", "--mappings", "Acc'ount", "--as", "U1"], "Salesforce object"),
        (["plan", "new", "--swap-id", "ok-id", "--new-schema", "s2", "--mappings", "Account", "--process-types", "web",
          "--bot-process-types", "web", "--as", "U1"], "never scale"),
        (["confirm", "everything", "--as", "U1"], "no plan"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_and_changes_nothing(hcswap, args, message):
    out = hcswap(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr + out.stdout
    assert "no plan yet" in hcswap("status").stdout


@pytest.mark.slow
def test_probe_then_plan_show_marks_each_assumption_and_a_blocker_stops_preflight(hcswap, tmp_path):
    from swapbot.heroku.probed import Finding, ProbeResults

    assert hcswap("probe").returncode == 2  # an operator's command: say who you are
    out = hcswap("probe", "--as", "U0OPERATOR")  # the read-only checks, as `/hcswap probe`
    assert out.returncode == 0, out.stderr
    assert "counts-field-name" in out.stdout and "confirmed" in out.stdout
    out = hcswap(
        "plan", "new", "--swap-id", "acme-probe", "--new-schema", "salesforce2",
        "--mappings", "Account:Rating", "--roles", hcswap.role, "--as", "U0OPERATOR",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    shown = json.loads(hcswap("plan", "show", "--json").stdout)
    rows = {r["key"]: r for r in shown["assumptions"]}
    assert rows["counts-field-name"]["verdict"] == "confirmed"  # kept from the probe above
    assert rows["delete-mapping-table"] == {**rows["delete-mapping-table"], "verdict": "unknown"}
    assert shown["blocked"] == []
    assert "assumed counts-field-name" in hcswap("plan", "show").stdout

    # The deploy's probe file says deep=true lists no mappings: nothing can be swapped.
    results = ProbeResults(
        findings={
            "mappings-listed-by-deep": Finding(
                key="mappings-listed-by-deep",
                kind="read",
                verdict="contradicted",
                observed="deep=true has no mappings list",
                variant="false",
            )
        }
    )
    path = tmp_path / "swapbot-probe.json"
    results.save(path)
    hcswap.env["SWAPBOT_PROBE_FILE"] = str(path)
    shown = json.loads(hcswap("plan", "show", "--json").stdout)
    assert shown["blocked"] and "mappings-listed-by-deep" in shown["blocked"][0]
    out = hcswap("preflight", "--as", "U0OPERATOR")
    assert out.returncode != 0
    assert "blocked by what `swapbot probe` found" in out.stdout + out.stderr
