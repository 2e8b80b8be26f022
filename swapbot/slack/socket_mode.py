"""`swapbot socket`: the same Bolt app over Socket Mode, for a dyno without a public URL.

Slack sends events and commands over a WebSocket that this process opens (no signing secret,
no web dyno). Run it as a `worker`-like process type; the Procfile's `web` must then be off.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Any

from swapbot import config

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)


def handler(settings: config.Settings, **app_options: Any) -> SocketModeHandler:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from swapbot.slack.app import build_app

    app = build_app(settings, **app_options)
    return SocketModeHandler(app, app_token=config.secret(settings.slack_app_token))


def run(args: Any) -> int:
    from swapbot.slack.client import startup

    settings = startup("socket")
    if isinstance(settings, str):
        print(settings)
        return 2
    h = handler(settings)

    # Heroku sends SIGTERM on restarts and deploys: close the socket; Slack redelivers to the
    # next connection whatever was not acknowledged.
    def stop(*_: Any) -> None:
        h.close()  # type: ignore[no-untyped-call]  # slack_bolt leaves these two untyped
        raise SystemExit(0)  # start() would otherwise wait forever on a closed socket

    signal.signal(signal.SIGTERM, stop)
    h.start()  # type: ignore[no-untyped-call]
    return 0
