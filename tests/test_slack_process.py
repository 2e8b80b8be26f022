"""The processes around the Bolt app: /healthz and acks when Redis is away, Socket Mode running
the same app, settings checked before serving, secrets masked in every log line, and an idle
worker that leaves Redis alone."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest
import requests
from slack_bolt.request import BoltRequest

from swapbot import config
from swapbot.logs import SecretFilter
from swapbot.slack import socket_mode
from swapbot.slack.app import build_app
from swapbot.testing.services import wait_until
from swapbot.testing.slack_stack import OPERATOR, running_stack, said, store
from swapbot.testing.standin import SlackStandIn

# Each test runs the engine, or the bot's processes, through steps on a sandbox.
pytestmark = pytest.mark.slow


def test_without_redis_healthz_is_503_and_commands_are_refused_without_changes(tmp_path):
    with running_stack(tmp_path, start=False, env={"REDIS_URL": "redis://127.0.0.1:1/0"}) as local:
        local.spawn("serve", ["serve", "--host", "127.0.0.1", "--port", str(local.port)])
        local.slack.wait_for(lambda: _answers(local.url), timeout=30)
        r = requests.get(f"{local.url}/healthz", timeout=5)
        assert r.status_code == 503
        assert r.json()["redis"] == {"ok": False, "error": "ConnectionError"}
        assert r.json()["database"]["ok"] is True
        # where Heroku Connect sends a person after the Salesforce login (SWAPBOT_PUBLIC_URL)
        page = requests.get(f"{local.url}/hc/authorized", params={"x": "<b>"}, timeout=5)
        assert page.status_code == 200 and "Heroku Connect is authorized" in page.text
        assert "<b>" not in page.text  # a static page: nothing of the request comes back
        response = local.driver().command(OPERATOR, "status")
        assert response.status == 200  # answered inside Slack's 3 s, with what happened
        assert "cannot reach its Redis" in said(local.acks(OPERATOR)[-1])
        reaction = local.driver().react(
            OPERATOR, "C0SWAP", local.slack.post_as(OPERATOR, "C0SWAP", "hi").ts
        )
        assert reaction.status == 503  # not acknowledged: Slack will deliver it again later


def _answers(url: str) -> bool:
    try:
        requests.get(f"{url}/healthz", timeout=1)
        return True
    except requests.RequestException:
        return False


def test_serve_refuses_to_start_without_its_settings():
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:6379/0"}
    out = subprocess.run(
        [sys.executable, "-m", "swapbot.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "missing settings" in out.stdout and "SLACK_SIGNING_SECRET" in out.stdout


def _settings(slack: SlackStandIn, **extra: str) -> config.Settings:
    return config.load_settings(
        {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_APP_TOKEN": "xapp-1-test",
            "SLACK_API_URL": slack.api_url,
            "SWAPBOT_CHANNEL": "C0SWAP",
            "SWAPBOT_OPERATORS": "U0OPERATOR",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "SWAPBOT_REDIS_PREFIX": "swapbot-test-socket:",
            **extra,
        }
    )


def test_socket_mode_runs_the_same_app_without_a_signing_secret():
    with SlackStandIn() as slack:
        _socket_mode(slack)


def _socket_mode(slack: SlackStandIn) -> None:
    handler = socket_mode.handler(_settings(slack))
    assert handler.app_token == "xapp-1-test"
    assert handler.client.web_client.base_url == slack.api_url
    # What the Socket Mode client hands Bolt for a slash command: no signature, same answer.
    body = {
        "command": "/hcswap",
        "text": "launch",
        "user_id": "U0OPERATOR",
        "channel_id": "C0SWAP",
        "team_id": "T0SWAPBOT",
        "trigger_id": "1.2.3",
    }
    response = handler.app.dispatch(BoltRequest(body=body, mode="socket_mode"))
    assert response.status == 200 and "unknown or malformed subcommand" in response.body


def test_http_mode_requires_a_valid_signature_even_in_process():
    with SlackStandIn() as slack:
        app = build_app(_settings(slack, SLACK_SIGNING_SECRET="s3cret-s3cret"))
        response = app.dispatch(
            BoltRequest(
                body="command=%2Fhcswap&text=status",
                headers={"x-slack-signature": ["v0=00"], "x-slack-request-timestamp": ["1"]},
            )
        )
    assert response.status == 401


def test_secrets_are_masked_in_log_lines(caplog):
    secret_filter = SecretFilter(["s3cret-signing-value"])
    record = logging.LogRecord(
        "bolt",
        logging.INFO,
        __file__,
        1,
        "bad signature for body token=xoxb-123-456-abc url=%s secret=%s",
        (
            "postgres://u:hunter2@db:5432/x https://hooks.slack.com/commands/T1/2/3",
            "s3cret-signing-value",
        ),
        None,
    )
    secret_filter.filter(record)
    line = record.getMessage()
    for leaked in ("xoxb-123", "hunter2", "hooks.slack.com/commands", "s3cret-signing-value"):
        assert leaked not in line, line
    assert "postgres://u:***@db" in line or "postgres://***@db" in line


def test_an_idle_worker_sends_redis_a_few_commands_a_second(tmp_path, private_redis_url):
    """Between swaps, `swapbot worker` (rq's two workers, the intake, the watcher and the
    notifier) only waits. Its notifier once spun there: thousands of commands a second."""
    import redis

    with running_stack(tmp_path, start=False, redis_url=private_redis_url) as local:
        local.start_worker(watch_interval=30.0)  # the production interval
        wait_until(lambda: store(local).leader("notifier"), what="the notifier leads")
        time.sleep(1.0)  # startup (registries, recovery) is over
        server = redis.Redis.from_url(private_redis_url)
        before = server.info("stats")["total_commands_processed"]
        time.sleep(3.0)
        sent = server.info("stats")["total_commands_processed"] - before - 1  # our INFO
    assert store(local).current_swap() is None
    assert sent < 60, f"{sent} Redis commands in 3 s from an idle worker"


def test_a_busy_worker_sends_redis_a_bounded_number_of_commands_per_status(
    tmp_path, private_redis_url
):
    """Each `/hcswap status` costs Redis the handoff, the intake, rq's bookkeeping and the
    status's own reads: about 70 commands (bench/redis_per_job.py). A job that opened its own
    connection, or a loop that spun while jobs ran, would show here as hundreds."""
    import redis

    jobs_ = 8
    with running_stack(tmp_path, start=False, redis_url=private_redis_url) as local:
        local.start_serve()
        local.start_worker(watch_interval=30.0)
        wait_until(lambda: store(local).leader("notifier"), what="the notifier leads")
        driver = local.driver()
        local.ask(driver, OPERATOR, "status")  # the first builds the engine and its caches
        time.sleep(1.0)
        server = redis.Redis.from_url(private_redis_url)
        before = server.info("stats")
        started = time.monotonic()
        for _ in range(jobs_):
            local.ask(driver, OPERATOR, "status")
        took = time.monotonic() - started
        after = server.info("stats")
    sent = after["total_commands_processed"] - before["total_commands_processed"] - 1
    idle = 20 * took  # what an idle worker sends meanwhile (about 9 a second), with room
    per_job = (sent - idle) / jobs_
    assert per_job < 120, f"{sent} Redis commands for {jobs_} statuses in {took:.1f} s"
    # Connections are kept: no job opens its own (a web process's thread may open its first).
    opened = after["total_connections_received"] - before["total_connections_received"] - 1
    assert opened <= 2, f"{opened} new Redis connections for {jobs_} statuses"
