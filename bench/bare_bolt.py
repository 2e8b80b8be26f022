"""A bare Bolt app: the baseline `bench/slack.py` compares `swapbot serve`'s acks with.

It answers `/hcswap` with `ack("ok")` and nothing else: no Redis, no authorization, no queue.
Settings come from the environment as swapbot's do (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET,
SLACK_API_URL). Served the way `swapbot serve` serves swapbot, e.g.

    .venv/bin/python -m gunicorn --worker-class gthread --workers 2 --threads 8 \\
        --chdir bench -b 127.0.0.1:8001 bare_bolt:api
"""

from __future__ import annotations

import os
from collections.abc import Callable

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient


def build() -> SlackRequestHandler:
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

    @app.command("/hcswap")
    def hcswap(ack: Callable[..., None]) -> None:
        ack("ok")

    return SlackRequestHandler(app, path="/slack/events")


api = build()
