"""`swapbot serve` and `swapbot socket`: the two ways Slack reaches the bot."""

from __future__ import annotations

import argparse


def _serve(args: argparse.Namespace) -> int:
    from swapbot.slack import web

    return web.serve(args)


def _socket(args: argparse.Namespace) -> int:
    from swapbot.slack import socket_mode

    return socket_mode.run(args)


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="HTTP front end for Slack (gunicorn + Bolt), and /healthz")
    s.add_argument("--host", default="0.0.0.0", help="address to bind (0.0.0.0 on Heroku)")  # noqa: S104
    s.add_argument("--port", type=int, help="port (default $PORT)")
    s.add_argument("--workers", type=int, help="gunicorn processes (default $WEB_CONCURRENCY)")
    s.add_argument("--threads", type=int, help="threads per process (default 8)")
    s.set_defaults(func=_serve)

    k = sub.add_parser("socket", help="Socket Mode front end for Slack (no public URL needed)")
    k.set_defaults(func=_socket)
