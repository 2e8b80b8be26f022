"""Where the CPU of one ack goes: swapbot's WSGI app against the bare Bolt app, in-process.

No gunicorn and no client sockets: each app is called with 3,000 prepared WSGI requests (signed
`/hcswap status`) in one thread, and the thread's CPU time per request is taken (best of three
passes). `bare Bolt + lpush` is the bare app pushing a fixed document with redis-py's `lpush` before
it acknowledges: the floor under any app that queues a request before answering. Then swapbot
again with parts of its listener replaced, to split its extra cost:

- `no LPUSH`: the handoff's push returns at once (no Redis round trip);
- `answer = ok`: the listener answers `{"text": "ok"}` without parsing, checking or pushing.

Redis is the local one (127.0.0.1:6379), under a prefix of its own that is removed at the end.
In gunicorn, under 20 concurrent requests, every figure is larger (cold caches, a shared core):
`bench/acks_only.py` measures that. About 30 seconds. Rerun with

    .venv/bin/python bench/ack_cost.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import redis

from swapbot import config, jobs
from swapbot.slack import app as slack_app
from swapbot.testing.driver import SlackDriver
from swapbot.testing.rehearsal import CHANNEL, SIGNING_SECRET, forget
from swapbot.testing.services import REDIS_TEST_URL
from swapbot.testing.slack_stack import READER, stack_environment, standin

NOWHERE = SimpleNamespace(platform_url="http://127.0.0.1:9/", central_url="http://127.0.0.1:9/")


def requests_for(driver: SlackDriver, n: int) -> list[dict[str, Any]]:
    """`n` WSGI environs of a signed `/hcswap status`, as gunicorn would hand them over."""
    environs = []
    for _ in range(n):
        body = driver.command_form(READER, "status", channel=CHANNEL)
        signed = driver.signed_headers(body)
        data = body.encode()
        environs.append(
            {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/slack/events",
                "QUERY_STRING": "",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "80",
                "wsgi.url_scheme": "http",
                "CONTENT_TYPE": "application/x-www-form-urlencoded",
                "CONTENT_LENGTH": str(len(data)),
                "wsgi.input": io.BytesIO(data),
                "HTTP_X_SLACK_REQUEST_TIMESTAMP": signed["X-Slack-Request-Timestamp"],
                "HTTP_X_SLACK_SIGNATURE": signed["X-Slack-Signature"],
            }
        )
    return environs


def cpu_per_request(app: Callable[..., Any], driver: SlackDriver, n: int) -> float:
    """Microseconds of this thread's CPU per request, the best of three passes."""
    statuses: list[str] = []

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> None:
        statuses.append(status)

    for environ in requests_for(driver, 50):  # warm-up
        b"".join(app(environ, start_response))
    best = float("inf")
    for _ in range(3):
        environs = requests_for(driver, n)
        started = time.thread_time()
        for environ in environs:
            b"".join(app(environ, start_response))
        best = min(best, (time.thread_time() - started) / n * 1e6)
    if set(statuses) != {"200 OK"}:
        raise RuntimeError(f"the app did not answer 200: {sorted(set(statuses))}")
    return best


@contextmanager
def replaced(owner: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per pass")
    args = parser.parse_args()
    prefix = f"swapbot-bench:{uuid.uuid4().hex[:8]}:"
    slack = standin()
    try:
        env = stack_environment(NOWHERE, "postgresql://postgres@127.0.0.1:5432/test", prefix, slack)
        os.environ.update(env)  # bare_bolt reads its settings when imported
        import bare_bolt

        from swapbot.slack.web import wsgi_app

        swapbot = wsgi_app(config.Settings())
        bare = bare_bolt.api
        bare_push = bare_bolt.build(push_key=f"{prefix}floor")
        driver = SlackDriver("http://127.0.0.1/slack/events", SIGNING_SECRET, slack)
        rows = [("bare Bolt", cpu_per_request(bare, driver, args.requests))]
        rows.append(("bare Bolt + lpush", cpu_per_request(bare_push, driver, args.requests)))
        rows.append(("swapbot", cpu_per_request(swapbot, driver, args.requests)))
        with replaced(jobs.Handoff, "lpush", lambda self, key, value: 1):
            rows.append(("swapbot, no LPUSH", cpu_per_request(swapbot, driver, args.requests)))
        with replaced(slack_app, "answer", lambda settings, handoff, command: {"text": "ok"}):
            rows.append(("swapbot, answer = ok", cpu_per_request(swapbot, driver, args.requests)))
    finally:
        slack.stop()
        forget(redis.Redis.from_url(REDIS_TEST_URL), prefix)
    print(f"CPU per request, in-process, best of 3 passes of {args.requests}:")
    base = rows[0][1]
    for label, us in rows:
        print(f"   {label:22} {us:6.0f} us   {us - base:+5.0f} us against the bare app")
    return 0


if __name__ == "__main__":
    sys.exit(main())
