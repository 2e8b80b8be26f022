"""`swapbot serve`: the HTTP front end for a Heroku web dyno.

gunicorn (threaded workers, so one slow request never queues the others) serves Bolt's WSGI
adapter at `POST /slack/events` and our `GET /healthz`. Each gunicorn process builds its own
Bolt app; they share everything that matters (dedupe, approvals, the queue) through Redis.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from swapbot import config, health
from swapbot.config import AUTHORIZED_PATH  # where HC sends a person after the login
from swapbot.slack.client import startup

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
# The page itself: static, so nothing a request carries is ever shown back.
_DONE = (
    b"<!doctype html><html><head><meta charset='utf-8'><title>Authorized</title></head><body>"
    b"<h3>Heroku Connect is authorized</h3><p>Go back to Slack: the swap's thread says when "
    b"the bot has seen it, and what comes next.</p></body></html>"
)


def wsgi_app(settings: config.Settings, **app_options: Any) -> Callable[..., Iterable[bytes]]:
    """The WSGI callable: Bolt for Slack's requests, /healthz for Heroku and people."""
    from slack_bolt.adapter.wsgi import SlackRequestHandler

    from swapbot.slack.app import build_app

    redis = config.redis_client(settings, socket_timeout=2, socket_connect_timeout=2)
    slack = SlackRequestHandler(build_app(settings, redis=redis, **app_options), path=EVENTS_PATH)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == AUTHORIZED_PATH and environ.get("REQUEST_METHOD") == "GET":
            start_response(
                "200 OK",
                [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(_DONE)))],
            )
            return [_DONE]
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") == "GET":
            status, doc = health.check(settings, redis)
            body = json.dumps(doc).encode()
            start_response(
                "200 OK" if status == 200 else "503 Service Unavailable",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return slack(environ, start_response)

    return application


class Server(BaseApplication):  # type: ignore[misc]
    """gunicorn run from our own command, so the settings are validated before it forks."""

    def __init__(self, settings: config.Settings, *, bind: str, workers: int, threads: int):
        self.settings = settings
        self.options = {
            "bind": bind,
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "timeout": 30,  # Heroku's router gives up at 30 s; a Slack ack must come within 3
            "graceful_timeout": 25,  # inside the 30 s Heroku allows after SIGTERM
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Callable[..., Any]:
        from swapbot import logs

        logs.setup(self.settings)
        app = wsgi_app(self.settings)
        # Everything built so far (Bolt, slack_sdk, pydantic, our modules: about 75,000 objects)
        # lives as long as the process. Frozen, a full garbage collection no longer walks it:
        # 35 ms of pause, taken in the middle of some unlucky ack, becomes well under 1 ms.
        gc.freeze()
        return app


def serve(args: Any) -> int:
    settings = startup("serve", ignore=("PORT",) if args.port else ())
    if isinstance(settings, str):
        print(settings)
        return 2
    port = args.port or settings.port
    Server(
        settings,
        bind=f"{args.host}:{port}",
        workers=args.workers or settings.web_concurrency,
        threads=args.threads or settings.swapbot_web_threads,
    ).run()
    return 0
