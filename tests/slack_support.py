"""The whole Slack front end as separate processes: `swapbot serve` (gunicorn) and `swapbot
worker`, talking to the sandbox, real Redis and the Slack stand-in over loopback HTTP, driven
by signed requests as Slack sends them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from swapbot.slack.driver import SlackDriver
from swapbot.slack.standin import SlackStandIn
from tests.conftest import REDIS_TEST_URL, TOKEN, wait_until

SECRET = "8f7e6d5c4b3a29181716151413121110"  # the test app's signing secret
OPERATOR, APPROVER, SECOND_APPROVER, READER = "U0OPERATOR", "U0APPROVER", "U0APPROVER2", "U0READER"
CHANNEL = "C0SWAP"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def standin() -> SlackStandIn:
    users = {
        OPERATOR: {"name": "olivia"},
        APPROVER: {"name": "arjun"},
        SECOND_APPROVER: {"name": "bea"},
        READER: {"name": "rita"},
        "U0OUTSIDER": {"name": "oscar"},
    }
    channels = {
        CHANNEL: {"name": "swaps", "members": {*users, "U0SWAPBOT"} - {"U0OUTSIDER"}},
        "C0OTHER": {"name": "random", "members": {*users, "U0SWAPBOT"}},
    }
    return SlackStandIn(users=users, channels=channels).start()


def environment(sandbox, db_url: str, redis_prefix: str, slack: SlackStandIn, **extra) -> dict:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SWAPBOT_"))}
    keep = {k: v for k, v in keep.items() if not k.startswith(("HEROKU_", "DATABASE_", "REDIS_"))}
    return keep | {
        "DATABASE_URL": db_url,
        "REDIS_URL": REDIS_TEST_URL,
        "SWAPBOT_REDIS_PREFIX": redis_prefix,
        "HEROKU_API_TOKEN": TOKEN,
        "HEROKU_APP_NAME": "acme-prod",
        "HEROKU_API_URL": sandbox.platform_url,
        "HEROKU_CONNECT_CENTRAL_URL": sandbox.central_url,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "SWAPBOT_CHANNEL": CHANNEL,
        "SWAPBOT_OPERATORS": OPERATOR,
        "SWAPBOT_APPROVERS": f"{OPERATOR},{APPROVER},{SECOND_APPROVER}",
        "SWAPBOT_POLL_SECONDS": "0.05",
        "SWAPBOT_TIMEOUT_SCALE": "0.05",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@dataclass
class Stack:
    env: dict
    slack: SlackStandIn
    port: int
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def driver(self) -> SlackDriver:
        return SlackDriver(f"{self.url}/slack/events", SECRET, self.slack)

    def start_serve(self, workers: int = 2) -> None:
        self._spawn(
            "serve",
            ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)],
        )
        wait_until(self.healthy, timeout=30, what="swapbot serve to answer /healthz")

    def start_worker(self, name: str = "worker") -> None:
        self._spawn(name, ["worker", "--watch-interval", "0.5"])

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "swapbot.cli", *args],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: gunicorn's children die with it
        )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.processes.pop(name, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def stop(self) -> None:
        for name in list(self.processes):
            self.kill(name, signal.SIGTERM)
        self.slack.stop()

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def said(message) -> str:
    """A message's text and its blocks' text, to assert on what a person sees."""
    return (message.text or "") + "\n" + json.dumps(message.blocks or [], ensure_ascii=False)


def replies(slack: SlackStandIn, user: str) -> list:
    """What the worker told `user` privately (through the response_url or chat.postEphemeral);
    the acknowledgements are recorded apart (source "ack")."""
    return [m for m in slack.ephemerals(user) if m.source != "ack"]


def acks(slack: SlackStandIn, user: str) -> list:
    return [m for m in slack.ephemerals(user) if m.source == "ack"]


def ask(stack: Stack, driver: SlackDriver, user: str, text: str, *, timeout: float = 60.0, **kw):
    """`user` types `/hcswap text`; returns (the ack's text, the worker's reply message)."""
    before = len(replies(stack.slack, user))
    response = driver.command(user, text, **kw)
    assert response.status == 200, (response.status, response.body)
    ack = acks(stack.slack, user)[-1].text or ""

    def answered():
        seen = replies(stack.slack, user)
        return seen[before] if len(seen) > before else None

    try:
        reply = stack.slack.wait_for(answered, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker log ---\n{stack.log('worker')[-4000:]}") from None
    return ack, reply


def everything_said(slack: SlackStandIn, channel: str = CHANNEL) -> str:
    """The channel and its threads as text (blocks included), for assertions on what was said."""
    return slack.transcript(channel)
