"""No secret reaches a log line or an error, in-process or from the `swapbot sandbox` command."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from swapbot.heroku import ConnectClient, HerokuError, PlatformClient, RetryPolicy
from swapbot.testing.services import free_port, wait_until

TOKEN = "tok-d0-not-print-3e9a1"
DB_PASSWORD = "pw-never-shown-77c1"  # trust auth on 127.0.0.1 accepts any password


def with_password(url: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{DB_PASSWORD}@")


def test_no_secret_in_logs_or_errors(db_url, caplog):
    from swapbot.sandbox import scenarios
    from swapbot.sandbox.options import SandboxOptions
    from swapbot.sandbox.server import Sandbox

    url = with_password(db_url)
    scenarios.load(url, scenarios.get("small"))
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    with Sandbox(url, SandboxOptions(speed=100, faults=0.3, seed=3, slow_seconds=0.3)) as sb:
        retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, sleep=lambda s: None)
        connect = ConnectClient(TOKEN, sb.central_url, retry=retry, timeout=(1, 0.2))
        platform = PlatformClient(TOKEN, sb.platform_url, retry=retry, timeout=(1, 0.2))
        calls = [
            lambda: platform.config_vars("acme-prod"),
            lambda: platform.app("no-such-app"),
            lambda: connect.find_connection("acme-prod", "hc1"),
            lambda: connect.find_connection("acme-prod", "nope"),
            lambda: platform.create_addon("acme-prod", plan="bogus:plan"),
        ]
        for _ in range(6):
            for call in calls:
                try:
                    result = call()
                    errors.append(repr(result))
                except HerokuError as exc:
                    errors.append(f"{exc} {exc!r} {exc.args!r}")
        errors.append(repr(connect) + repr(platform))
    text = caplog.text + "\n".join(errors)
    assert TOKEN not in text
    assert DB_PASSWORD not in text
    assert any("404" in e for e in errors)  # the errors were real, and were inspected


def test_sandbox_command_serves_and_keeps_secrets(db_url):
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "swapbot.cli",
        "-v",
        "sandbox",
        "--port",
        str(port),
        "--database-url",
        with_password(db_url),
        "--scenario",
        "small",
        "--speed",
        "50",
        "--faults",
        "0.2",
        "--assume",
        "delete_drops_table=false",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(base), timeout=60, every=0.2, what="the sandbox to listen")
        assert (
            requests.get(f"{base}/_sandbox/assumptions", timeout=5).json()["delete_drops_table"]
            is False
        )
        retry = RetryPolicy(
            max_attempts=8, base_delay=0.01, max_delay=0.05, sleep=lambda s: time.sleep(0.05)
        )
        platform = PlatformClient(TOKEN, f"{base}/platform", retry=retry)
        assert (
            platform.config_vars("acme-prod")["DATABASE_URL"]
            .get_secret_value()
            .endswith(db_url.rsplit("/")[-1])
        )
        with pytest.raises(HerokuError):
            platform.app("missing")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"HEROKU_API_URL=http://127.0.0.1:{port}/platform" in out
    assert DB_PASSWORD not in out and TOKEN not in out


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/_sandbox/health", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def test_sandbox_command_rejects_bad_arguments(db_url):
    bad = [
        ["--scenario", "nope"],
        ["--assume", "not_a_flag=true"],
        ["--assume", "delete_drops_table=maybe"],
    ]
    for extra in bad:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "swapbot.cli",
                "sandbox",
                "--database-url",
                db_url,
                "--port",
                "0",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2, (extra, out.stdout, out.stderr)
        assert "unknown scenario" in out.stderr or "expected NAME=true|false" in out.stderr
