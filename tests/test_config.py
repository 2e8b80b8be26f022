"""Settings: validation, masking, per-mode requirements, and no secret in any output."""

from __future__ import annotations

import subprocess
import sys

import pytest

from swapbot import config

SECRETS = {
    "DATABASE_URL": "postgres://app:hunter2-db-pass@db.example.com:5432/d1",
    "REDIS_URL": "redis://:hunter2-redis-pass@redis.example.com:6379",
    "HEROKU_API_TOKEN": "hunter2-heroku-token",
    "SLACK_BOT_TOKEN": "xoxb-hunter2-bot",
    "SLACK_SIGNING_SECRET": "hunter2-signing",
    "SLACK_APP_TOKEN": "xapp-hunter2-app",
}
FULL = {
    **SECRETS,
    "HEROKU_APP_NAME": "acme-prod",
    "SWAPBOT_CHANNEL": "C0123ABCD",
    "SWAPBOT_OPERATORS": "U01AAA, U02BBB",
    "SWAPBOT_APPROVERS": "U03CCC",
    "PORT": "5000",
}


def test_full_environment_validates_and_defaults():
    s = config.load_settings(FULL)
    assert s.swapbot_operators == ["U01AAA", "U02BBB"]
    assert s.swapbot_approvers == ["U03CCC"]
    assert str(s.heroku_api_url) == "https://api.heroku.com/"
    assert str(s.heroku_connect_central_url) == "https://hc-central.heroku.com/"
    assert str(s.slack_api_url) == "https://slack.com/api/"
    assert s.swapbot_redis_prefix == "swapbot:"
    for mode in config.REQUIRED:
        assert s.missing_for(mode) == [], mode


def test_tls_redis_url_is_preferred():
    s = config.load_settings({**FULL, "REDIS_TLS_URL": "rediss://:pw@redis.example.com:6380"})
    assert config.secret(s.effective_redis_url).startswith("rediss://")
    assert config.secret(config.load_settings(FULL).effective_redis_url).startswith("redis://")


def test_repr_and_masked_view_hide_secrets():
    s = config.load_settings(FULL)
    text = repr(s) + str(s) + str(config.masked(s)) + s.model_dump_json()
    for value in SECRETS.values():
        assert value not in text
    assert "hunter2" not in text


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("DATABASE_URL", "mysql://u:hunter2@h/d", "postgres://"),
        ("REDIS_URL", "http://hunter2@h", "redis://"),
        ("REDIS_TLS_URL", "redis:/hunter2@h", "rediss://"),
        ("SLACK_BOT_TOKEN", "xoxp-hunter2", "xoxb-"),
        ("SLACK_APP_TOKEN", "xoxb-hunter2", "xapp-"),
        ("SWAPBOT_CHANNEL", "#general", "channel id"),
        ("SWAPBOT_OPERATORS", "U01AAA,alice", "Slack user ids"),
        ("HEROKU_APP_NAME", "Acme Prod", "Heroku app name"),
        ("SWAPBOT_REDIS_PREFIX", "bad prefix!", "letters"),
        ("PORT", "99999", "PORT"),
    ],
)
def test_malformed_setting_names_variable_without_echoing_value(name, value, needle):
    with pytest.raises(config.SettingsError) as info:
        config.load_settings({**FULL, name: value})
    message = str(info.value)
    assert name in message
    assert needle in message
    assert "hunter2" not in message
    assert value not in message or name == "PORT"


def run_check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {"PATH": "/usr/bin:/bin", **env}
    return subprocess.run(
        [sys.executable, "-m", "swapbot.cli", "config", "check", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_config_check_cli_masks_and_reports_modes():
    out = run_check(FULL, "--mode", "serve")
    assert out.returncode == 0, out.stderr
    assert "hunter2" not in out.stdout + out.stderr
    assert "SLACK_BOT_TOKEN" in out.stdout and "(set)" in out.stdout
    assert "serve    (required) ok" in out.stdout


def test_config_check_cli_fails_for_missing_mode_setting():
    env = {k: v for k, v in FULL.items() if k != "SLACK_SIGNING_SECRET"}
    out = run_check(env, "--mode", "serve")
    assert out.returncode == 1
    assert "SLACK_SIGNING_SECRET" in out.stdout
    assert "Signing Secret" in out.stdout
    # socket mode does not need the signing secret
    assert run_check(env, "--mode", "socket").returncode == 0
    # without --mode, the web and worker dynos' settings are required
    assert run_check(env).returncode == 1
    assert run_check(FULL).returncode == 0
    nothing = run_check({})
    assert nothing.returncode == 1 and "DATABASE_URL: e.g. postgres://" in nothing.stdout


def test_config_check_cli_fails_on_malformed_setting():
    out = run_check({**FULL, "DATABASE_URL": "mysql://u:hunter2@h/d"})
    assert out.returncode == 2
    assert "DATABASE_URL" in out.stderr
    assert "hunter2" not in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("env", "page"),
    [
        (
            {"SWAPBOT_PUBLIC_URL": "https://acme-swapbot-1a2b.herokuapp.com/"},
            "https://acme-swapbot-1a2b.herokuapp.com/hc/authorized",
        ),
        ({"SWAPBOT_CHANNEL": "C0123456789"}, "https://slack.com/app_redirect?channel=C0123456789"),
        ({}, None),  # the step then sends the app's page on Heroku's dashboard
    ],
)
def test_where_the_salesforce_login_of_authorize_ends(monkeypatch, env, page):
    from swapbot.runtime import authorized_page

    for key in ("SWAPBOT_PUBLIC_URL", "SWAPBOT_CHANNEL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert authorized_page(config.Settings(_env_file=None)) == page
