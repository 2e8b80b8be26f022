"""Shared fixtures: each test gets its own PostgreSQL database and its own Redis key prefix.

PostgreSQL and Redis are the real local servers (see .ci/run). Nothing here mocks them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis
from psycopg import sql

ADMIN_URL = os.environ.get(
    "SWAPBOT_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("SWAPBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def create_database(name: str) -> str:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(name)


def drop_database(name: str) -> None:
    """Drop the database and every role named after it (roles are cluster-wide)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        roles = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
            (name.replace("_", r"\_") + r"\_%",),
        ).fetchall()
        for (role,) in roles:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def db_name() -> Iterator[str]:
    name = f"swapbot_t_{uuid.uuid4().hex[:10]}"
    create_database(name)
    try:
        yield name
    finally:
        drop_database(name)


@pytest.fixture
def db_url(db_name: str) -> str:
    return database_url(db_name)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of the test's own; every key under it is deleted afterwards."""
    prefix = f"swapbot-test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    from swapbot.slack.rehearsal import forget

    forget(redis.Redis.from_url(REDIS_TEST_URL), prefix)  # rq's keys for its queues too


# -- the sandbox, over real HTTP -------------------------------------------------------------
TOKEN = "test-token-5f0c2b"  # the sandbox accepts any non-empty bearer token


def wait_until(check, timeout: float = 15.0, every: float = 0.05, what: str = "condition"):
    """Poll `check` until it returns something truthy; fail the test after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last value: {last!r})")


@pytest.fixture
def sandbox_factory(db_url: str):
    from swapbot.sandbox import scenarios
    from swapbot.sandbox.options import SandboxOptions
    from swapbot.sandbox.server import Sandbox

    started = []

    def make(scenario="small", *, clock: bool = True, **options):
        world = scenarios.get(scenario) if isinstance(scenario, str) else scenario
        scenarios.load(db_url, world)
        sb = Sandbox(
            db_url,
            SandboxOptions(**{"speed": 100.0, "seed": 7, "org_changes_per_second": 0.0, **options}),
        ).start(clock=clock)
        started.append(sb)
        return sb

    yield make
    for sb in started:
        sb.stop()


@pytest.fixture
def sandbox(sandbox_factory):
    return sandbox_factory()


@pytest.fixture
def clients(sandbox):
    import time

    from swapbot.heroku import ConnectClient, PlatformClient, RetryPolicy

    # Real waits, shortened: a Retry-After of 1 s from the sandbox's faults becomes 50 ms.
    retry = RetryPolicy(
        max_attempts=8, base_delay=0.01, max_delay=0.05, sleep=lambda s: time.sleep(min(s, 0.05))
    )
    return (
        ConnectClient(TOKEN, sandbox.central_url, retry=retry, timeout=(2, 5)),
        PlatformClient(TOKEN, sandbox.platform_url, retry=retry, timeout=(2, 5)),
    )
