"""Settings read from the environment (Heroku config vars), validated once at start-up.

Secrets are `SecretStr`: they print as `**********` in reprs, logs and tracebacks.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The page `swapbot serve` answers once Heroku Connect is authorized (authorize_url's `next`).
AUTHORIZED_PATH = "/hc/authorized"
SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
SLACK_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
HEROKU_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{1,29}$")
REDIS_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")

# What a valid value looks like, for error messages. Never echo the value itself: it may be a secret.
EXAMPLES: dict[str, str] = {
    "DATABASE_URL": "postgres://user:password@host:5432/dbname",
    "REDIS_URL": "redis://host:6379/0",
    "REDIS_TLS_URL": "rediss://:password@host:6380",
    "HEROKU_API_TOKEN": "a Heroku API token (heroku authorizations:create)",
    "HEROKU_APP_NAME": "acme-prod (lower-case letters, digits and dashes)",
    "HEROKU_API_URL": "https://api.heroku.com",
    "HEROKU_CONNECT_CENTRAL_URL": "https://hc-central.heroku.com",
    "SLACK_BOT_TOKEN": "xoxb-...",
    "SLACK_SIGNING_SECRET": "the app's Signing Secret (Basic Information page)",
    "SLACK_APP_TOKEN": "xapp-... (an app-level token with connections:write)",
    "SLACK_API_URL": "https://slack.com/api/",
    "SWAPBOT_CHANNEL": "C0123456789 (a channel id, not its name)",
    "SWAPBOT_OPERATORS": "U0123ABCD,U0456EFGH",
    "SWAPBOT_APPROVERS": "U0123ABCD,U0456EFGH",
    "SWAPBOT_REDIS_PREFIX": "swapbot:",
    "SWAPBOT_APPROVAL_EMOJI": "white_check_mark (an emoji name without colons)",
    "SWAPBOT_APPROVAL_MINUTES": "15",
    "SWAPBOT_POLL_SECONDS": "2",
    "SWAPBOT_TIMEOUT_SCALE": "1",
    "WEB_CONCURRENCY": "2",
    "SWAPBOT_WEB_THREADS": "8",
    "SWAPBOT_WORKER_NICE": "10",
    "PORT": "5000",
}

# Which settings each way of running the bot cannot do without.
REQUIRED: dict[str, tuple[str, ...]] = {
    "serve": (
        "DATABASE_URL",
        "REDIS_URL",
        "HEROKU_API_TOKEN",
        "HEROKU_APP_NAME",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SWAPBOT_CHANNEL",
        "SWAPBOT_OPERATORS",
        "SWAPBOT_APPROVERS",
        "PORT",
    ),
    "socket": (
        "DATABASE_URL",
        "REDIS_URL",
        "HEROKU_API_TOKEN",
        "HEROKU_APP_NAME",
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SWAPBOT_CHANNEL",
        "SWAPBOT_OPERATORS",
        "SWAPBOT_APPROVERS",
    ),
    "worker": (
        "DATABASE_URL",
        "REDIS_URL",
        "HEROKU_API_TOKEN",
        "HEROKU_APP_NAME",
        "SLACK_BOT_TOKEN",
        "SWAPBOT_CHANNEL",
    ),
    "sandbox": ("DATABASE_URL",),  # or --database-url
    "demo": (),  # creates its own database on the local PostgreSQL (--admin-url)
}

# How the secret settings that have a known form start (a regular expression), and the error
# when one does not.
SECRET_STARTS: dict[str, tuple[str, str]] = {
    "database_url": (r"postgres(ql)?://", "must start with postgres:// or postgresql://"),
    "redis_url": (r"rediss?://", "must start with redis:// or rediss://"),
    "redis_tls_url": (r"rediss?://", "must start with redis:// or rediss://"),
    "slack_bot_token": ("xoxb-", "must be a bot token starting with xoxb-"),
    "slack_app_token": ("xapp-", "must be an app-level token starting with xapp-"),
}


def _split_ids(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting swapbot reads. Field names are the environment variable names, lower-cased."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", env_ignore_empty=True)

    database_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    redis_tls_url: SecretStr | None = None
    heroku_api_token: SecretStr | None = None
    heroku_app_name: str | None = None
    heroku_api_url: AnyHttpUrl = AnyHttpUrl("https://api.heroku.com")
    heroku_connect_central_url: AnyHttpUrl = AnyHttpUrl("https://hc-central.heroku.com")
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: AnyHttpUrl = AnyHttpUrl("https://slack.com/api/")
    swapbot_channel: str | None = None
    # swapbot's own Heroku app, when the target app's database is attached to it too: it is
    # shown in the plan as swapbot itself and never stopped.
    swapbot_own_app: str | None = None
    # Where `swapbot serve` answers on the web (https://acme-swapbot-….herokuapp.com): the
    # Salesforce login of `authorize` ends on its AUTHORIZED_PATH page. Without it, it ends in
    # the swap channel (Slack's app_redirect link).
    swapbot_public_url: AnyHttpUrl | None = None
    # What `swapbot probe` found about Heroku's unconfirmed behaviours; kept with the deploy
    # and read by the engine (which plays what was found) and `plan show`.
    swapbot_probe_file: Path = Path("swapbot-probe.json")
    swapbot_operators: Annotated[list[str], NoDecode] = Field(default_factory=list)
    swapbot_approvers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    swapbot_redis_prefix: str = "swapbot:"
    swapbot_approval_emoji: str = Field(default="white_check_mark", pattern=r"^[a-z0-9_+-]{1,64}$")
    swapbot_approval_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    # Rehearsals against a fast sandbox poll more often and scale step timeouts down.
    swapbot_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    swapbot_timeout_scale: float = Field(default=1.0, gt=0, le=10)
    port: int | None = Field(default=None, ge=1, le=65535)
    web_concurrency: int = Field(default=2, ge=1, le=64)  # gunicorn processes; Heroku sets it
    swapbot_web_threads: int = Field(default=8, ge=1, le=128)  # threads per gunicorn process
    # The worker's CPU priority (nice): where it shares cores with `serve`, acks come first.
    swapbot_worker_nice: int = Field(default=10, ge=0, le=19)

    @field_validator(*SECRET_STARTS)
    @classmethod
    def _secret_start(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        start, error = SECRET_STARTS[str(info.field_name)]
        if v is not None and not re.match(start, v.get_secret_value()):
            raise ValueError(error)
        return v

    @field_validator("heroku_app_name", "swapbot_own_app")
    @classmethod
    def _app_name(cls, v: str | None) -> str | None:
        if v is not None and not HEROKU_APP_NAME.match(v):
            raise ValueError("is not a Heroku app name")
        return v

    @field_validator("swapbot_channel")
    @classmethod
    def _channel(cls, v: str | None) -> str | None:
        if v is not None and not SLACK_CHANNEL_ID.match(v):
            raise ValueError("must be a Slack channel id such as C0123456789")
        return v

    @field_validator("swapbot_operators", "swapbot_approvers", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return _split_ids(v)

    @field_validator("swapbot_operators", "swapbot_approvers")
    @classmethod
    def _user_ids(cls, v: list[str]) -> list[str]:
        bad = [item for item in v if not SLACK_USER_ID.match(item)]
        if bad:
            raise ValueError(
                f"{len(bad)} entr{'y is' if len(bad) == 1 else 'ies are'} not Slack user ids"
            )
        return v

    @field_validator("swapbot_redis_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not REDIS_PREFIX.match(v):
            raise ValueError("must be 1-40 characters of letters, digits and _.:-")
        return v

    @property
    def effective_redis_url(self) -> SecretStr | None:
        """Heroku Redis offers a TLS URL beside the plain one; prefer it when present."""
        return self.redis_tls_url or self.redis_url

    def missing_for(self, mode: str) -> list[str]:
        return [name for name in REQUIRED[mode] if getattr(self, name.lower()) in (None, [])]


def secret(value: SecretStr | None) -> str:
    """The plain value of an optional secret, for the one place that must hand it to a library."""
    return value.get_secret_value() if value is not None else ""


def fingerprint(settings: Settings) -> str:
    """A digest of every setting, secrets included (never the values themselves): tells
    whether two Settings would build the same clients."""
    values = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in settings
    }
    return hashlib.sha256(repr(sorted(values.items())).encode()).hexdigest()


def redis_client(settings: Settings, **kwargs: Any):
    """A redis-py client for the configured URL. Heroku Redis's TLS certificate is self-signed."""
    import redis

    url = secret(settings.effective_redis_url) or "redis://127.0.0.1:6379/0"
    if url.startswith("rediss://"):
        kwargs.setdefault("ssl_cert_reqs", None)
    return redis.Redis.from_url(url, **kwargs)


@dataclass(frozen=True)
class SettingProblem:
    variable: str
    problem: str

    def __str__(self) -> str:
        return f"{self.variable} {self.problem}; expected something like {EXAMPLES.get(self.variable, 'a valid value')}"


class SettingsError(Exception):
    """The environment holds settings that do not validate. Carries no values, only names."""

    def __init__(self, problems: list[SettingProblem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from the environment (or from `env`), raising SettingsError without values."""
    try:
        if env is None:
            return Settings()
        return Settings.model_validate({k.lower(): v for k, v in env.items() if v != ""})
    except ValidationError as exc:
        raise SettingsError(_problems(exc.errors(include_input=False))) from None


def _problems(errors: Iterable[dict[str, Any]]) -> list[SettingProblem]:
    out = []
    for err in errors:
        field = str(err["loc"][0]) if err.get("loc") else "settings"
        msg = str(err.get("msg", "is not valid"))
        msg = msg.removeprefix("Value error, ")
        if not msg.startswith(("must", "is ", "entr")) and " are not " not in msg:
            msg = f"is not valid ({msg})"
        out.append(SettingProblem(field.upper(), msg))
    return out


def masked(settings: Settings) -> dict[str, str]:
    """Each setting as text, secrets shown only as set/not set."""
    shown: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None or value == []:
            text = "(not set)"
        elif isinstance(value, SecretStr):
            text = "********** (set)"
        elif isinstance(value, list):
            text = ",".join(value)
        else:
            text = str(value)
        shown[name.upper()] = text
    return shown
