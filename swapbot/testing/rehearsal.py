"""Slack and swapbot on one machine: the Slack stand-in, `swapbot serve` and `swapbot worker`
as separate processes, and people who type `/hcswap`, react and click as Slack users would.

The demo, the benchmarks and the tests run the real front end this way: signed requests over
loopback HTTP into gunicorn, jobs through Redis into the worker, messages out to the stand-in.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from swapbot.swap import steps as runbook
from swapbot.testing.driver import SlackDriver
from swapbot.testing.services import free_port
from swapbot.testing.standin import Message, SlackStandIn

SIGNING_SECRET = "rehearsal-signing-secret-0b1c2d3e4f"  # a local secret, never a real one
CHANNEL = "C0SWAP"


def environment(
    *,
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    heroku_token: str,
    app: str,
    sandbox: Any,
    slack: SlackStandIn,
    operators: list[str],
    approvers: list[str],
    **extra: str,
) -> dict[str, str]:
    """The environment of the rehearsal's processes: this machine's, minus any real settings."""
    ours = ("SLACK_", "SWAPBOT_", "HEROKU_", "DATABASE_", "REDIS_", "WEB_CONCURRENCY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return env | {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SWAPBOT_REDIS_PREFIX": redis_prefix,
        "HEROKU_API_TOKEN": heroku_token,
        "HEROKU_APP_NAME": app,
        "HEROKU_API_URL": sandbox.platform_url,
        "HEROKU_CONNECT_CENTRAL_URL": sandbox.central_url,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "SWAPBOT_CHANNEL": CHANNEL,
        "SWAPBOT_OPERATORS": ",".join(operators),
        "SWAPBOT_APPROVERS": ",".join(approvers),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class LocalSlack:
    """`swapbot serve` and `swapbot worker` started as processes, with the stand-in and a driver."""

    def __init__(self, env: dict[str, str], slack: SlackStandIn, logs: Path, port: int = 0):
        self.env, self.slack, self.logs = env, slack, logs
        self.port = port or free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        logs.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def driver(self) -> SlackDriver:
        return SlackDriver(f"{self.url}/slack/events", SIGNING_SECRET, self.slack)

    def start_serve(self, *, workers: int = 2, threads: int = 8, timeout: float = 30.0) -> None:
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.spawn("serve", [*args, "--workers", str(workers), "--threads", str(threads)])
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline or self.processes["serve"].poll() is not None:
                raise RuntimeError(f"swapbot serve did not start:\n{self.log('serve')[-3000:]}")
            time.sleep(0.1)

    def start_worker(self, name: str = "worker", watch_interval: float = 0.5) -> None:
        self.spawn(name, ["worker", "--watch-interval", str(watch_interval)])

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:  # the child keeps its own copy
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "swapbot.cli", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: gunicorn's children go with it
            )
        return self.processes[name]

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

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- people -------------------------------------------------------------------------------
    def replies(self, user: str) -> list[Message]:
        """What the worker told `user` privately (acknowledgements are recorded apart)."""
        return [m for m in self.slack.ephemerals(user) if m.source != "ack"]

    def acks(self, user: str) -> list[Message]:
        return [m for m in self.slack.ephemerals(user) if m.source == "ack"]

    def ask(
        self, driver: SlackDriver, user: str, text: str, *, timeout: float = 120.0, **kw: Any
    ) -> tuple[Message | None, Message]:
        """`user` types `/hcswap text`: returns the acknowledgement and the worker's answer."""
        before = len(self.replies(user))
        response = driver.command(user, text, **kw)
        if response.status != 200:
            raise RuntimeError(f"/hcswap {text}: HTTP {response.status} {response.body[:200]}")
        acks = self.acks(user)
        reply = self._reply_after(user, before, f"/hcswap {text}", timeout)
        return (acks[-1] if acks else None), reply

    def _reply_after(self, user: str, before: int, what: str, timeout: float) -> Message:
        """The first private message to `user` after the `before` they had; the worker's log in
        the error when none comes within `timeout`."""

        def answered() -> Message | None:
            seen = self.replies(user)
            return seen[before] if len(seen) > before else None

        try:
            found: Message = self.slack.wait_for(answered, timeout=timeout)
        except AssertionError:
            raise RuntimeError(
                f"no answer to {what} within {timeout}s\n"
                f"--- worker log ---\n{self.log('worker')[-3000:]}"
            ) from None
        return found

    def buttons(self, message: Message) -> dict[str, dict[str, Any]]:
        """The buttons `message` shows now (it may have been edited since it was read), by
        action id: what a person could click."""
        found = self.slack.buttons(message.channel, message.ts)
        return {str(b.get("action_id")): b for b in found}

    def click(
        self,
        driver: SlackDriver,
        user: str,
        message: Message,
        action_id: str,
        *,
        timeout: float = 60.0,
    ) -> tuple[Any, Message]:
        """`user` clicks a button of `message` and confirms its dialog: the app's HTTP answer and
        the first private message to `user` after it (the worker's answer, or a refusal)."""
        before = len(self.replies(user))
        response = driver.click(user, message, action_id)
        if response is None or response.status != 200:
            status = response.status if response else "nothing sent"
            raise RuntimeError(f"click {action_id} on {message.ts}: HTTP {status}")
        return response, self._reply_after(user, before, f"the click {action_id}", timeout)

    def plan_form(self, driver: SlackDriver, user: str, *, timeout: float = 60.0) -> dict[str, Any]:
        """`user` types `/hcswap plan new` with no arguments: the modal once the worker has
        filled it (the form, or why it could not be filled)."""
        response, first = driver.open_plan_form(user)
        if first is None:
            raise RuntimeError(f"no modal opened: HTTP {response.status} {response.body[:300]}")

        def filled() -> dict[str, Any] | None:
            now = self.slack.view(first["id"])
            return now if now and now.get("hash") != first.get("hash") else None

        try:
            return self.slack.wait_for(filled, timeout=timeout)
        except AssertionError:
            raise RuntimeError(
                f"the plan form was not filled within {timeout}s\n"
                f"--- worker log ---\n{self.log('worker')[-3000:]}"
            ) from None

    def approval_message(self, step: str, timeout: float = 30.0) -> Message:
        def find() -> Message | None:
            for m in self.slack.messages(CHANNEL):
                if (m.text or "").startswith(f"Approval needed: {step} "):
                    return m
            return None

        return self.slack.wait_for(find, timeout=timeout)


def forget(client: Any, prefix: str) -> int:
    """Delete a rehearsal's Redis keys: ours under `prefix`, and rq's for our queues (the queues
    and registries named after the prefix, and the jobs and results they list)."""
    keys = set(client.scan_iter(match=prefix + "*", count=1000))
    rq_keys = set(client.scan_iter(match=f"rq:*{prefix}*", count=1000))
    jobs: set[bytes] = set()
    for key in rq_keys:
        kind = client.type(key)
        if kind == b"zset":
            jobs |= set(client.zrange(key, 0, -1))
        elif kind == b"list":
            jobs |= set(client.lrange(key, 0, -1))
    for job in jobs:
        keys |= {b"rq:job:" + job, b"rq:results:" + job, b"rq:job:" + job + b":dependents"}
    keys = list(keys | rq_keys)
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    return len(keys)


def said(message: Message) -> str:
    """A message's text with the text of its blocks, as a person reads it."""
    import json

    return (message.text or "") + "\n" + json.dumps(message.blocks or [], ensure_ascii=False)


LINK = re.compile(r"<(http://127\.0\.0\.1[^|>]+)\|")


class Colleague:
    """A person in the channel who does what the bot asks of them in the thread: opens the
    Salesforce authorization link, and confirms settings and objects with `/hcswap confirm`."""

    # The steps a person confirms, and what they type: from the runbook's table.
    CONFIRM = {s.name: f"confirm {s.confirms}" for s in runbook.STEPS if s.person and s.confirms}

    def __init__(
        self,
        local: LocalSlack,
        driver: SlackDriver,
        user: str,
        *,
        login: str = "integration-hc2@acme.example",
        narrate: Callable[[str], None] | None = None,
    ):
        self.local, self.driver, self.user, self.login = local, driver, user, login
        self.narrate = narrate or (lambda _text: None)
        self.done: set[str] = set()
        self._lock = threading.Lock()
        self._asked = re.compile(r"\*([a-z-]+)\* waiting:.*<@" + re.escape(user) + ">")
        local.slack.on_change(self._seen)

    def _seen(self, kind: str, message: Message) -> None:
        for line in (message.text or "").splitlines():
            m = self._asked.search(line)
            if not m:
                continue
            with self._lock:
                if m.group(1) in self.done:
                    continue
                self.done.add(m.group(1))
            threading.Thread(target=self._act, args=(m.group(1), line), daemon=True).start()

    def _act(self, step: str, line: str) -> None:
        time.sleep(0.3)
        name = self.local.slack.user_name(self.user)
        if step == "authorize":
            link = LINK.search(line)
            if link is None:
                return
            self.narrate(f"({name} opens the link and logs in to Salesforce as {self.login})")
            requests.get(html.unescape(link.group(1)), params={"username": self.login}, timeout=10)
        elif step in self.CONFIRM:
            self.narrate(
                f"({name} checks in the dashboard, then types /hcswap {self.CONFIRM[step]})"
            )
            self.driver.command(self.user, self.CONFIRM[step])
