"""The whole Slack front end as separate processes (`swapbot.testing.rehearsal`): `swapbot serve`
and `swapbot worker` against the sandbox, real Redis and the Slack stand-in, driven by signed
requests as Slack sends them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from swapbot.sandbox import scenarios
from swapbot.sandbox.options import SandboxOptions
from swapbot.sandbox.scenarios import role_names
from swapbot.sandbox.server import Sandbox
from swapbot.swap.store import Store
from swapbot.testing.driver import SlackDriver
from swapbot.testing.rehearsal import CHANNEL, LocalSlack, environment, forget, said  # noqa: F401
from swapbot.testing.services import REDIS_TEST_URL, TOKEN, create_database, drop_database
from swapbot.testing.standin import Message, SlackStandIn

OPERATOR, APPROVER, SECOND_APPROVER, READER = "U0OPERATOR", "U0APPROVER", "U0APPROVER2", "U0READER"
USERS = {
    OPERATOR: {"name": "olivia"},
    APPROVER: {"name": "arjun"},
    SECOND_APPROVER: {"name": "bea"},
    READER: {"name": "rita"},
    "U0OUTSIDER": {"name": "oscar"},
}


def standin(*, start: bool = True, **options) -> SlackStandIn:
    channels = {
        CHANNEL: {"name": "swaps", "members": {*USERS, "U0SWAPBOT"} - {"U0OUTSIDER"}},
        "C0OTHER": {"name": "random", "members": {*USERS, "U0SWAPBOT"}},
    }
    slack = SlackStandIn(users=USERS, channels=channels, **options)
    return slack.start() if start else slack


def stack_environment(
    sandbox,
    db_url: str,
    redis_prefix: str,
    slack: SlackStandIn,
    redis_url: str = REDIS_TEST_URL,
    **extra,
):
    return environment(
        database_url=db_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        heroku_token=TOKEN,
        app="acme-prod",
        sandbox=sandbox,
        slack=slack,
        operators=[OPERATOR],
        approvers=[OPERATOR, APPROVER, SECOND_APPROVER],
        SWAPBOT_POLL_SECONDS="0.05",
        SWAPBOT_TIMEOUT_SCALE="0.05",
        **extra,
    )


def plan_new(local: LocalSlack, driver: SlackDriver, swap: str, options: str) -> Message:
    """The operator types `plan new` in Slack for swap `swap`: into schema salesforce2, for the
    app's role, with the rest of the command's `options` (mappings, process types...). The bot's
    answer, which must say the plan is saved."""
    role = role_names(local.db_name)[0]  # type: ignore[attr-defined]
    _, reply = local.ask(
        driver,
        OPERATOR,
        f"plan new --swap-id {swap} --new-schema salesforce2 --roles {role} {options}",
    )
    assert "saved" in said(reply), said(reply)
    return reply


def told(local: LocalSlack, user: str, after: int, timeout: float = 20.0) -> str:
    """The next private message (a reply or an ephemeral refusal) for `user` after `after`."""
    found: list[Message] = local.slack.wait_for(lambda: local.replies(user)[after:][:1], timeout)
    return said(found[0])


@contextmanager
def running_stack(
    logs: Path,
    scenario: str = "small",
    *,
    start: bool = True,
    env: dict | None = None,
    redis_url: str = REDIS_TEST_URL,
    **options,
) -> Iterator[LocalSlack]:
    """A database, the sandbox, the Slack stand-in and (with `start`) serve and a worker, all
    torn down afterwards. `env` overrides the processes' settings."""
    name = f"swapbot_t_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    prefix = f"swapbot-test:{uuid.uuid4().hex[:10]}:"
    scenarios.load(url, scenarios.get(scenario))
    opts = {"speed": 100.0, "seed": 7, "org_changes_per_second": 1.0, **options}
    sandbox = Sandbox(url, SandboxOptions(**opts)).start(clock=True)
    slack = standin()
    environment = stack_environment(sandbox, url, prefix, slack, redis_url, **(env or {}))
    local = LocalSlack(environment, slack, logs)
    local.db_name, local.sandbox = name, sandbox  # type: ignore[attr-defined]
    try:
        if start:
            local.start_serve()
            local.start_worker()
        yield local
    finally:
        local.stop()
        slack.stop()
        sandbox.stop()
        drop_database(name)
        forget(redis.Redis.from_url(redis_url), prefix)


def store(local: LocalSlack) -> Store:
    return Store(redis.Redis.from_url(local.env["REDIS_URL"]), local.env["SWAPBOT_REDIS_PREFIX"])
