"""Prep times a pause and a resume of hc2 (which serves nothing yet) and its first Salesforce
poll afterwards; the outage prediction uses those figures instead of assumed ones, and verify,
inside the outage, takes a poll completed after resume-new as proof that data flows."""

from __future__ import annotations

import pytest
import requests

from swapbot.heroku import ConnectClient
from swapbot.swap import steps
from swapbot.testing.services import TOKEN
from swapbot.testing.swaps import OPERATOR, demo_plan, make_engine, run_prep

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow


def prep(sandbox, engine) -> None:
    run_prep(engine, sandbox)


def parts(engine) -> dict:
    return {p.step: p for p in engine.predict().parts}


def test_prep_times_hc2_and_the_prediction_uses_the_figures(
    sandbox_factory, db_url, db_name, redis_prefix
):
    sandbox = sandbox_factory("small", org_changes_per_second=0.0)
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    before = parts(engine)
    assert {before[s].source for s in ("pause", "resume-new", "resume-old")} == {"assumed"}
    dry = engine.run_step("measure", OPERATOR, dry_run=True)
    assert dry.status == "refused"  # hc2 does not exist yet: nothing to time

    prep(sandbox, engine)
    record = engine.store.get_record("acme-test", "measure")
    after = parts(engine)
    assert after["pause"].source == "measured" and after["pause"].basis.startswith("measure:")
    assert after["pause"].seconds == record["paused_after"]
    for step in ("resume-new", "resume-old"):
        assert after[step].source == "measured"
        assert after[step].seconds == record["resumed_after"]
    # the sandbox pauses in 3 nominal seconds and resumes in 2, at speed x100
    assert 0 < record["paused_after"] < 2 and 0 < record["resumed_after"] < 2
    # this Heroku Connect polls as soon as it runs again: verify needs no polling interval
    assert after["verify"].source == "measured" and after["verify"].seconds < 2
    assert before["verify"].seconds == 600.0
    # dynos are not restarted to time them: those stay documented assumptions
    assert after["stop-writes"].source == after["restore"].source == "assumed"

    connect = ConnectClient(TOKEN, sandbox.central_url)
    hc2 = connect.find_connection("acme-prod", "hc2")
    assert connect.get_connection(hc2).state in ("IDLE", "POLLING_DB_CHANGES")
    log = requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()
    calls = [r for r in log if r["method"] == "POST" and r["path"].endswith("/actions/resume")]
    assert len(calls) == 1 and hc2.id in calls[0]["path"]


def test_a_connection_that_waits_for_its_interval_is_predicted_so(
    sandbox_factory, db_url, db_name, redis_prefix
):
    sandbox = sandbox_factory(
        "small", org_changes_per_second=0.0, assumptions={"resume_polls_at_once": False}
    )
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    prep(sandbox, engine)
    record = engine.store.get_record("acme-test", "measure")
    verify = parts(engine)["verify"]
    # the mappings poll every 600 nominal seconds (6 s here), counted from the end of the load
    assert verify.source == "measured" and verify.seconds > 1.0
    assert verify.seconds == pytest.approx(record["first_poll_after"] - record["resumed_after"])


@pytest.mark.parametrize("at_once", [True, False], ids=["polls-at-once", "polls-on-interval"])
def test_verify_takes_a_poll_after_resume_new_when_salesforce_is_quiet(
    sandbox_factory, db_url, db_name, redis_prefix, at_once
):
    # No record changes in Salesforce during the outage: no row can arrive, only polls.
    sandbox = sandbox_factory(
        "small", org_changes_per_second=0.0, assumptions={"resume_polls_at_once": at_once}
    )
    engine = make_engine(sandbox, db_url, redis_prefix)
    engine.save_plan(demo_plan(db_name), OPERATOR)
    prep(sandbox, engine)
    for step in steps.CUTOVER:
        if step.name == "verify":
            break
        out = engine.run_step(step.name, OPERATOR, app="acme-prod", break_glass="verify test")
        assert out.ok, (step.name, out.message)
    assert engine.store.get_record("acme-test", "polls_at_resume")
    out = engine.run_step("verify", OPERATOR)
    assert out.ok, out.message
    assert "data arriving" in out.message
    history = engine.store.history("acme-test", count=1000)
    seen = [e.detail.get("seen", "") for e in history if e.step == "verify"]
    assert seen and "names resolve to the new schema" in seen[-1]
