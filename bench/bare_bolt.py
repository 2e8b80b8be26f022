"""A bare Bolt app: the baseline `bench/slack.py` compares `swapbot serve`'s acks with.

By default it answers `/hcswap` with `ack("ok")`, and a click on a button whose action id is
swapbot's Approve (`hcswap.approve`) with an empty `ack()`, and nothing else: no Redis, no
authorization, no queue.
Settings come from the environment as swapbot's do (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET,
SLACK_API_URL). With BARE_BOLT_PUSH_KEY set it first pushes a fixed document on that Redis list
(REDIS_URL) with redis-py's `lpush`, as the smallest app that queues a request before it
acknowledges would: the floor under any such app's ack (`bench/acks_only.py --against
bare-push`). Its document is 34 bytes, swapbot's about 300. Served the way `swapbot serve`
serves swapbot, e.g.

    .venv/bin/python -m gunicorn --worker-class gthread --workers 2 --threads 8 \\
        --chdir bench -b 127.0.0.1:8001 bare_bolt:api
"""

from __future__ import annotations

import os
from collections.abc import Callable

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

CLICK = "hcswap.approve"  # swapbot's Approve button (swapbot/slack/blocks/approvals.py)


def build(push_key: str | None = None) -> SlackRequestHandler:
    """The bare app; with `push_key`, the one that pushes on that Redis list first."""
    token = os.environ["SLACK_BOT_TOKEN"]
    # Built as swapbot builds its App: the token on both, the client pointed at the Web API.
    client = WebClient(token=token, base_url=os.environ["SLACK_API_URL"], timeout=10)
    # process_before_response=True as swapbot's App has it (see swapbot/slack/app.py).
    app = App(
        token=token,
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        client=client,
        process_before_response=True,
    )

    if push_key:
        import redis

        queue = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2)

        @app.command("/hcswap")
        def hcswap_after_push(ack: Callable[..., None]) -> None:
            queue.lpush(push_key, '{"func":"work","args":["status"]}')
            ack("ok")

        @app.action(CLICK)
        def click_after_push(ack: Callable[..., None]) -> None:
            queue.lpush(push_key, '{"func":"work","args":["click"]}')
            ack()

    else:  # the bare app's listener has not even the test above on its path

        @app.command("/hcswap")
        def hcswap(ack: Callable[..., None]) -> None:
            ack("ok")

        @app.action(CLICK)
        def click(ack: Callable[..., None]) -> None:
            ack()

    return SlackRequestHandler(app, path="/slack/events")


api = build(os.environ.get("BARE_BOLT_PUSH_KEY"))
