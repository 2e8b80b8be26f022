"""Logging for every swapbot process: one format, and a filter that masks secrets.

Libraries log more than we would like (Bolt logs a request body when a signature fails;
slack-sdk logs response URLs at DEBUG). The filter masks tokens, response URLs, connection
passwords and the literal values of the configured secrets, whatever logged them.
"""

from __future__ import annotations

import logging
import re

from swapbot.config import Settings

_PATTERNS = [
    re.compile(r"xox[abposre]-[A-Za-z0-9-]+"),
    re.compile(r"xapp-[A-Za-z0-9-]+"),
    re.compile(r"https://hooks\.slack\.com/[^\s\"'>]+"),
    re.compile(r"(?<=://)([^:/@\s]+):[^@\s]+@"),  # user:password@ in connection URLs
]


class SecretFilter(logging.Filter):
    def __init__(self, secrets: list[str] | None = None):
        super().__init__()
        self.secrets = [s for s in (secrets or []) if len(s) >= 6]

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: "***@" if m.group(0).endswith("@") else "***", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def secrets_of(settings: Settings) -> list[str]:
    values = [
        settings.database_url,
        settings.redis_url,
        settings.redis_tls_url,
        settings.heroku_api_token,
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
    ]
    return [v.get_secret_value() for v in values if v is not None]


def setup(settings: Settings | None = None, level: int = logging.INFO) -> SecretFilter:
    """Log to stderr (Heroku's log router reads it) at INFO, every record masked."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    secret_filter = SecretFilter(secrets_of(settings) if settings else [])
    for handler in root.handlers:
        handler.addFilter(secret_filter)
    return secret_filter
