"""The runbook is one table: every per-step rule is a field of `Step`, and what the engine, the
commands, the prediction and the rehearsals know of steps is derived from it."""

from __future__ import annotations

import pytest

from swapbot import commands
from swapbot.swap import steps as runbook
from swapbot.swap.engine import Engine
from swapbot.testing.rehearsal import Colleague


def test_every_step_inside_the_outage_says_how_the_prediction_counts_it():
    """A new outage step cannot silently drop out of the outage prediction."""
    for step in runbook.STEPS:
        assert (step.estimate is not None) == step.in_outage, step.name
        if step.estimate and step.estimate.kind == "heroku":
            assert step.estimate.measured, f"{step.name}: which measurement times it?"


def test_the_outage_has_one_start_and_one_end_and_they_bracket_the_outage_steps():
    starts = [s.name for s in runbook.STEPS if s.starts_outage]
    ends = [s.name for s in runbook.STEPS if s.ends_outage]
    assert starts == [runbook.OUTAGE_START] and ends == [runbook.OUTAGE_END]
    names = [s.name for s in runbook.STEPS]
    inside = names[names.index(runbook.OUTAGE_START) : names.index(runbook.OUTAGE_END) + 1]
    assert all(runbook.get(n).in_outage for n in inside)


def test_only_one_step_is_the_point_of_no_return_and_it_needs_an_approval():
    ponr = [s for s in runbook.STEPS if s.point_of_no_return]
    assert len(ponr) == 1 and ponr[0].approval and ponr[0].in_outage


def test_a_step_that_may_be_in_flight_says_how_to_see_it_landed():
    for step in runbook.STEPS:
        if step.landed is not None:
            assert step.unsafe, f"{step.name}: only a step not safe to repeat waits for a landing"


@pytest.mark.parametrize("word", runbook.CONFIRMABLE)
def test_what_a_person_confirms_comes_from_the_table(word):
    assert commands.parse(["confirm", word]).args == (word,)
    assert word in commands.usage("confirm")
    assert word in Engine.CONFIRMABLE
    assert f"confirm {word}" in Colleague.CONFIRM.values()


def test_confirm_refuses_a_word_no_step_has():
    assert "nothing" not in runbook.CONFIRMABLE
    assert Engine.CONFIRMABLE == runbook.CONFIRMABLE


@pytest.mark.parametrize("name", runbook.APPROVED)
def test_the_steps_that_need_an_approval_come_from_the_table(name):
    assert commands.parse(["request-approval", name]).args[0] == name
    assert name in commands.HELP


def test_request_approval_refuses_a_step_that_needs_none():
    with pytest.raises(commands.UsageError, match="only these steps need an approval"):
        commands.parse(["request-approval", "drain"])
