"""A whole swap from Slack, as a team runs it: the plan, prep one `next` at a time, approvals
by reaction, the cutover step by step, each step taken from the runbook's table: typed
(`/hcswap drain`), or with `by_button` clicked on the swap's live card ("Run next: drain",
"Request approval for pause"), once the card offers it.

One script for `make demo` (which narrates it and clicks), bench/slack.py (which times it) and
the end-to-end test (which adds the people who may not, restarts and retries at the
approvals): each overrides the hooks it needs, and nothing else repeats the procedure.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from swapbot.slack.notifier import card_of
from swapbot.swap import steps as runbook
from swapbot.swap.store import Store
from swapbot.testing.driver import SlackDriver
from swapbot.testing.rehearsal import CHANNEL, LocalSlack, said
from swapbot.testing.standin import Message

DONE = ("done", "skipped")


class ScriptStopped(Exception):
    """The swap did not go as the script expects; the message is the bot's answer."""


@dataclass
class Team:
    operator: str  # types the commands
    approver: str  # reacts to approval requests
    authorizer: str  # opens the Salesforce link and confirms what only a person can


class WholeSwap:
    def __init__(
        self,
        local: LocalSlack,
        driver: SlackDriver,
        team: Team,
        *,
        swap_id: str,
        mappings: str,
        role: str,
        app: str = "acme-prod",
        timeout: float = 120.0,
        by_button: bool = False,
    ):
        self.local, self.driver, self.team = local, driver, team
        self.swap_id, self.mappings, self.role, self.app = swap_id, mappings, role, app
        self.timeout = timeout
        self.by_button = by_button  # the cutover's steps clicked on the card, else typed

    # -- hooks ---------------------------------------------------------------------------------
    def typed(self, user: str, text: str) -> None:
        """Someone types `/hcswap text` (the demo prints it)."""

    def stage(self, title: str) -> None:
        """A new part of the swap begins (the demo prints a heading)."""

    def clicked(self, user: str, label: str) -> None:
        """Someone clicks the button `label` (and confirms its dialog; the demo prints it)."""

    def reacted(self, step: str, message: Message) -> None:
        """The approver reacts to the approval request for `step`; the approval is then awaited."""
        self.driver.react(self.team.approver, CHANNEL, message.ts)

    def outage_next(self) -> None:
        """The approvals are in and the outage is next (the demo predicts it here)."""

    def when_to_ask(self, step: runbook.Step) -> str:
        """`ahead` (before the outage, so a ready approver adds no time to it) or `just-before`."""
        return "ahead"

    # -- the procedure -------------------------------------------------------------------------
    def ask(self, text: str, *expected: str, user: str | None = None) -> str:
        user = user or self.team.operator
        self.typed(user, text)
        _, reply = self.local.ask(self.driver, user, text, timeout=self.timeout)
        answer = said(reply)
        if expected and not any(word in answer for word in expected):
            raise ScriptStopped(f"/hcswap {text}: {answer[:2000]}")
        return answer

    def run(self) -> None:
        self.plan()
        self.prep()
        self.cutover()

    def plan(self) -> None:
        self.stage("the plan")
        who = self.team.authorizer  # Slack sends a mention in a command as <@id|name>
        self.ask(
            f"plan new --swap-id {self.swap_id} --new-schema salesforce2 --mappings '{self.mappings}'"
            f" --roles {self.role} --process-types web,worker,clock"
            f" --authorizer <@{who}|{self.local.slack.user_name(who)}>"
            " --quiet-seconds 1",  # the sandbox's app writes several times a second
            f"plan {self.swap_id} saved",
        )

    def prep(self) -> None:
        self.stage("prep, one `next` at a time")
        for _ in range(len(runbook.PREP) + 1):
            if "prep is done" in self.ask("next", *DONE):
                return
        raise ScriptStopped("prep did not finish")

    def approve(self, step: runbook.Step) -> None:
        if self.by_button:
            self.click(f"Request approval for {step.name}")
        else:
            self.ask(f"request-approval {step.name}")
        message = self.local.approval_message(step.name)
        self.reacted(step.name, message)
        slack = self.local.slack
        slack.wait_for(
            lambda: "approved by" in (slack.message(CHANNEL, message.ts).text or ""), timeout=30
        )

    def cutover(self) -> None:
        ahead = [s for s in runbook.CUTOVER if s.approval and self.when_to_ask(s) == "ahead"]
        if ahead:
            self.stage("approvals asked ahead of the outage, so a ready approver adds no time")
            for step in ahead:
                self.approve(step)
        self.outage_next()
        self.stage("cutover (the outage)")
        for step in runbook.CUTOVER:
            if step.approval and step not in ahead:
                self.approve(step)
            self.before(step)
            if self.by_button:
                self.click_next(step, *DONE)
            else:
                app = f" {self.app}" if step.name == runbook.OUTAGE_START else ""
                self.ask(f"{step.name}{app}", *DONE)
            self.after(step)

    # -- the card --------------------------------------------------------------------------------
    def card(self, showing: str | None = None, saying: str | None = None) -> Message:
        """The swap's live card as it is now; with `showing`, once one of its buttons says
        that, with `saying` once its text has that (the notifier redraws it a moment after
        each step)."""
        env = self.local.env
        store = Store(redis.Redis.from_url(env["REDIS_URL"]), env["SWAPBOT_REDIS_PREFIX"])
        slack = self.local.slack

        def found() -> Message | None:
            ts = card_of(store, self.swap_id)
            msg = slack.message(CHANNEL, ts) if ts else None
            if msg is None or (saying is not None and saying not in said(msg)):
                return None
            if showing is None:
                return msg
            labels = {b["text"]["text"] for b in self.local.buttons(msg).values()}
            return msg if showing in labels else None

        return slack.wait_for(found, timeout=self.timeout)  # type: ignore[no-any-return]

    def click_next(self, step: runbook.Step, *expected: str) -> str:
        """The operator clicks "Run next: STEP" on the card and confirms; the bot's answer."""
        return self.click(f"Run next: {step.name}", *expected)

    def click(self, label: str, *expected: str) -> str:
        """The operator clicks the card's button `label` once the card shows it (and confirms
        its dialog, if it has one); the bot's answer."""
        card = self.card(showing=label)
        (action_id,) = [
            a for a, b in self.local.buttons(card).items() if b["text"]["text"] == label
        ]
        self.clicked(self.team.operator, label)
        _, reply = self.local.click(
            self.driver, self.team.operator, card, action_id, timeout=self.timeout
        )
        answer = said(reply)
        if expected and not any(word in answer for word in expected):
            raise ScriptStopped(f"{label}: {answer[:2000]}")
        return answer

    def before(self, step: runbook.Step) -> None:
        """Just before a cutover step is typed (the demo rehearses a rollback here)."""

    def after(self, step: runbook.Step) -> None:
        """Once a cutover step is done (the demo shows the card when the outage has begun)."""
