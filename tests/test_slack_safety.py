"""The swap's record stays true when people type out of order in Slack, through real `swapbot
serve` and `swapbot worker` processes: a later step typed in the outage and another swap planned
in it are refused, each with its reason, and change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from swapbot.sandbox.scenarios import role_names
from swapbot.testing.rehearsal import Colleague, LocalSlack, said
from swapbot.testing.slack_stack import OPERATOR, SECOND_APPROVER, plan_new, running_stack, store

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow

SWAP = "slack-safety"


@pytest.fixture(scope="module")
def outage(tmp_path_factory) -> Iterator[LocalSlack]:
    """A swap in its outage: prep done, then stop-writes and drain, all typed in Slack."""
    with running_stack(tmp_path_factory.mktemp("logs")) as local:
        driver = local.driver()
        plan_new(
            local,
            driver,
            SWAP,
            "--mappings 'Account:Rating;Contact:Phone' --process-types web,worker,clock "
            f"--authorizer {SECOND_APPROVER} --quiet-seconds 1",
        )
        Colleague(local, driver, SECOND_APPROVER)  # answers what the bot asks a person
        for _ in range(20):
            _, reply = local.ask(driver, OPERATOR, "next", timeout=120)
            if "prep is done" in said(reply):
                break
            assert "done" in said(reply) or "skipped" in said(reply), said(reply)
        for step in ("stop-writes acme-prod", "drain"):
            _, reply = local.ask(driver, OPERATOR, step, timeout=120)
            assert "done" in said(reply), said(reply)
        yield local


def statuses(local: LocalSlack) -> dict[str, str]:
    return {n: cp.status for n, cp in store(local).checkpoints(SWAP).items()}


def test_a_later_step_typed_in_the_outage_is_refused_and_records_nothing(outage):
    before = statuses(outage)
    driver = outage.driver()
    for step in ("verify", "resume-old", "delete-old --break-glass 'typed early'"):
        _, reply = outage.ask(driver, OPERATOR, step, timeout=60)
        assert "refused" in said(reply) and "pause is not done yet" in said(reply), said(reply)
    assert statuses(outage) == before


def test_another_swap_planned_in_the_outage_is_refused(outage):
    driver = outage.driver()
    role = role_names(outage.db_name)[0]
    _, reply = outage.ask(
        driver,
        OPERATOR,
        "plan new --swap-id slack-other --new-schema salesforce3 --mappings Account:Rating "
        f"--roles {role} --process-types web",
    )
    text = said(reply)
    assert "refused" in text and f"swap {SWAP} is in progress" in text, text
    assert store(outage).current_swap() == SWAP
