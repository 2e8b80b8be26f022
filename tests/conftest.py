"""Shared fixtures: each test gets its own PostgreSQL database and its own Redis key prefix.

PostgreSQL and Redis are the real local servers (see .ci/run). Nothing here mocks them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis

from swapbot.testing.services import (
    REDIS_TEST_URL,
    TOKEN,
    create_database,
    database_url,
    drop_database,
    private_redis,
)


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
    from swapbot.testing.rehearsal import forget

    forget(redis.Redis.from_url(REDIS_TEST_URL), prefix)  # rq's keys for its queues too


@pytest.fixture
def private_redis_url(tmp_path) -> Iterator[str]:
    """A redis-server of the test's own: for tests that count the server's commands."""
    with private_redis(str(tmp_path)) as url:
        yield url


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first: side by side (pytest-xdist), the longest should not start last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
