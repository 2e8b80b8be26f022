"""The local servers tests, benches and the demo share: a PostgreSQL database of one's own (a
bench's on the server it is pointed at), the Redis URL, the sandbox's token, and a poll-until
helper.

PostgreSQL and Redis are the real local servers (see .ci/run); nothing here mocks them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg
import redis
from psycopg import sql

ADMIN_URL = os.environ.get(
    "SWAPBOT_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("SWAPBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def database_url(name: str, admin_url: str = ADMIN_URL) -> str:
    """The URL of database `name` on the server `admin_url` reaches."""
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def database_exists(name: str, admin_url: str = ADMIN_URL) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def create_database(name: str, admin_url: str = ADMIN_URL) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(name, admin_url)


def drop_database(name: str, admin_url: str = ADMIN_URL, *, roles: Iterable[str] = ()) -> None:
    """Drop the database and every role named after it (roles are cluster-wide), and `roles`."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        named = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
            (name.replace("_", r"\_") + r"\_%",),
        ).fetchall()
        for role in [*(r for (r,) in named), *roles]:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@contextmanager
def scratch_database(admin_url: str, prefix: str = "swapbot_bench") -> Iterator[str]:
    """A new database of one's own, `prefix` and a random suffix, on the server `admin_url`
    reaches: yields its URL, then drops it and the roles named after it."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = create_database(name, admin_url)
    try:
        yield url
    finally:
        drop_database(name, admin_url)


# -- the sandbox, over real HTTP -------------------------------------------------------------
TOKEN = "test-token-5f0c2b"  # the sandbox accepts any non-empty bearer token
# Where tests have Heroku Connect send a person once authorized (authorize_url's `next`).
NEXT = "https://swapbot.example/hc/authorized"


def wait_until(check, timeout: float = 15.0, every: float = 0.05, what: str = "condition"):
    """Poll `check` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last value: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def private_redis(workdir: str) -> Iterator[str]:
    """A redis-server of one's own on a free port, for a test that counts the server's commands
    or connections: anything else on the shared server would count too."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        wait_until(lambda: _answers(client), timeout=10, what=f"redis-server on port {port}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
