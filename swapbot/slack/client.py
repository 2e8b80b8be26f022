"""The Slack Web API client every process uses (slack-sdk), and the checks made with it.

One place sets the base URL (the stand-in in tests and the demo), the retry handlers (rate
limits and Slack's 5xx are retried with Retry-After, off the ack path) and the timeout; modals
are opened with a client of their own (`views_client`: one short try, within the trigger_id's
3 seconds).
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.webhook import WebhookClient

from swapbot import config
from swapbot.config import Settings, secret

log = logging.getLogger(__name__)


def _retry_handlers() -> list[RetryHandler]:
    return [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=5),
        ServerErrorRetryHandler(max_retry_count=2),
    ]


def web_client(settings: Settings, *, retries: bool = True) -> WebClient:
    """`retries=False` for the channel notifier: it retries every refused message itself
    (honouring Retry-After between its own rounds, where it can stop and keep its lease),
    which slack-sdk's handlers, sleeping inside one call, cannot."""
    return WebClient(
        token=secret(settings.slack_bot_token) or None,
        base_url=str(settings.slack_api_url),
        timeout=10,
        retry_handlers=_retry_handlers() if retries else [],
    )


VIEWS_OPEN_TIMEOUT = 2.5  # seconds: a trigger_id is honoured for 3, once


def views_client(settings: Settings) -> WebClient:
    """The client that opens modals (`views.open`) right after an acknowledgement: the
    trigger_id it spends expires 3 seconds after the click or command, so a call that waits
    longer, or a retry, cannot succeed and only holds one of the few threads that open modals.
    A short timeout and no retry handlers: one try, and the person is told if it failed."""
    return WebClient(
        token=secret(settings.slack_bot_token) or None,
        base_url=str(settings.slack_api_url),
        timeout=VIEWS_OPEN_TIMEOUT,  # type: ignore[arg-type]
        retry_handlers=[],
    )


def webhook(url: str) -> WebhookClient:
    """A client for a slash command's response_url (a bearer capability: never log it)."""
    return WebhookClient(url, timeout=10, retry_handlers=_retry_handlers())


def membership(client: WebClient, channel: str | None) -> tuple[bool | None, str]:
    """Is the bot in the swap channel? Reactions (approvals) only arrive when it is."""
    if not channel:
        return None, "SWAPBOT_CHANNEL is not set"
    try:
        info = client.conversations_info(channel=channel)["channel"]
    except SlackApiError as exc:
        return None, f"could not look at <#{channel}>: {exc.response.get('error')}"
    except SlackClientError as exc:
        return None, f"could not reach Slack: {type(exc).__name__}"
    if info.get("is_archived"):
        return False, f"<#{channel}> is archived: choose another channel (SWAPBOT_CHANNEL)"
    if not info.get("is_member"):
        return False, (
            f"swapbot is not a member of <#{channel}>, so it cannot post there or see approval "
            "reactions: type `/invite @swapbot` in that channel"
        )
    return True, f"swapbot is a member of <#{channel}>"


def startup(mode: str, *, ignore: tuple[str, ...] = ()) -> Settings | str:
    """Settings for `swapbot serve` or `swapbot socket`, checked before anything starts, with
    logging masked and the channel membership said in the log; or why it cannot start."""
    from swapbot import logs

    try:
        settings = config.load_settings()
    except config.SettingsError as exc:
        return f"{mode}: {exc}"
    missing = [m for m in settings.missing_for(mode) if m not in ignore]
    if missing:
        return f"{mode}: missing settings: {', '.join(missing)} (see `swapbot config check`)"
    logs.setup(settings)
    ok, message = membership(web_client(settings), settings.swapbot_channel)
    (log.info if ok else log.warning)("%s", message)
    return settings
