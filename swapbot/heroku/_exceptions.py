"""The errors the Heroku clients raise. None of them carries the API token, a header or a body.

    HerokuError
    ├── TransportError            the connection failed or timed out (after retries, if any)
    ├── HerokuApiError            Heroku answered with an error status (or an unusable body)
    │   ├── BadRequest            400
    │   ├── Unauthorized          401
    │   ├── Forbidden             403
    │   ├── NotFound              404
    │   ├── NotAcceptable         406
    │   ├── Conflict              409
    │   ├── UnprocessableEntity   422
    │   ├── RateLimited           429 (retry_after, in seconds, when Heroku said)
    │   └── ServerError           5xx
    ├── ConnectionNotFound        discovery found no connection for the app / add-on, even after link
    ├── MultipleConnections       discovery matched several connections; pick one by resource_name
    └── DiagnoseTimeout           the connection's diagnosis had no result in the time allowed

Every constructor takes positional arguments only and passes them all to `Exception`, so the
errors pickle (rq stores failed jobs' exceptions).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests

from ._models import JsonValue

__all__ = [
    "BadRequest",
    "Conflict",
    "ConnectionNotFound",
    "DiagnoseTimeout",
    "Forbidden",
    "HerokuApiError",
    "HerokuError",
    "MultipleConnections",
    "NotAcceptable",
    "NotFound",
    "RateLimited",
    "ServerError",
    "TransportError",
    "Unauthorized",
    "UnprocessableEntity",
    "error_from_response",
]

# Enough of an unparsable body to recognise it (an HTML error page, a proxy message), no more.
RAW_BODY_LIMIT = 200


class HerokuError(Exception):
    """Anything that went wrong talking to Heroku Connect or the Platform API."""


class TransportError(HerokuError):
    """No usable HTTP answer: connection refused or dropped, or a timeout.

    For a request that is not safe to repeat, Heroku may or may not have acted on it: read the
    live state before trying again.
    """

    def __init__(self, method: str, path: str, reason: str, attempts: int = 1):
        super().__init__(method, path, reason, attempts)
        self.method = method
        self.path = path
        self.reason = reason
        self.attempts = attempts

    def __str__(self) -> str:
        tries = f" (after {self.attempts} attempts)" if self.attempts > 1 else ""
        return f"{self.method} {self.path} failed: {self.reason}{tries}"


class HerokuApiError(HerokuError):
    """Heroku answered with an error status. `error_id` is Heroku's `id` field, when present."""

    def __init__(
        self,
        status: int,
        error_id: str | None,
        message: str,
        method: str,
        path: str,
        request_id: str | None = None,
    ):
        super().__init__(status, error_id, message, method, path, request_id)
        self.status = status
        self.error_id = error_id
        self.message = message
        self.method = method
        self.path = path
        self.request_id = request_id

    def __str__(self) -> str:
        ident = f" {self.error_id}" if self.error_id else ""
        return f"{self.method} {self.path} -> {self.status}{ident}: {self.message}"


class BadRequest(HerokuApiError):
    """400. Heroku Connect also answers this to a pause outside `IDLE`."""


class Unauthorized(HerokuApiError):
    """401: the token is missing, expired or revoked."""


class Forbidden(HerokuApiError):
    """403: the token's user lacks rights on the app, or is not on the connection's access list."""


class NotFound(HerokuApiError):
    """404."""


class NotAcceptable(HerokuApiError):
    """406: the Platform API without its versioned `Accept` header."""


class Conflict(HerokuApiError):
    """409."""


class UnprocessableEntity(HerokuApiError):
    """422: invalid parameters."""


class RateLimited(HerokuApiError):
    """429, still there after the retries allowed. `retry_after` is in seconds, or None."""

    def __init__(
        self,
        status: int,
        error_id: str | None,
        message: str,
        method: str,
        path: str,
        request_id: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(status, error_id, message, method, path, request_id)
        self.args = (*self.args, retry_after)
        self.retry_after = retry_after


class ServerError(HerokuApiError):
    """5xx. For a request that is not safe to repeat, Heroku may have acted on it."""


class ConnectionNotFound(HerokuError):
    """Discovery returned no connection for the app (and add-on name), even after linking."""

    def __init__(self, app: str, resource_name: str | None = None):
        super().__init__(app, resource_name)
        self.app = app
        self.resource_name = resource_name

    def __str__(self) -> str:
        which = f"add-on {self.resource_name!r} of app" if self.resource_name else "app"
        return (
            f"no Heroku Connect connection found for {which} {self.app!r}. Check that the "
            f"add-on exists (heroku addons -a {self.app}), that the token's user can deploy or "
            f"operate the app, and open the dashboard once (heroku addons:open herokuconnect "
            f"-a {self.app}) to be put on the connection's access list."
        )


class MultipleConnections(HerokuError):
    """Discovery matched several connections; the caller must name one by `resource_name`."""

    def __init__(self, app: str, resource_names: list[str]):
        super().__init__(app, list(resource_names))
        self.app = app
        self.resource_names = list(resource_names)

    def __str__(self) -> str:
        names = ", ".join(self.resource_names)
        return (
            f"app {self.app!r} has several Heroku Connect connections ({names}); "
            f"choose one by its add-on name (resource_name)"
        )


class DiagnoseTimeout(HerokuError):
    """The validations of a connection (`connect:diagnose`) were started, and their result was
    still not ready after `waited` seconds. Starting them again is safe: they only read."""

    def __init__(self, connection_id: str, waited: float):
        super().__init__(connection_id, waited)
        self.connection_id = connection_id
        self.waited = waited

    def __str__(self) -> str:
        return (
            f"Heroku Connect's diagnosis of connection {self.connection_id} had no result "
            f"after {self.waited:.0f} s"
        )


_BY_STATUS: dict[int, type[HerokuApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    406: NotAcceptable,
    409: Conflict,
    422: UnprocessableEntity,
    429: RateLimited,
}


def error_class(status: int) -> type[HerokuApiError]:
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, HerokuApiError)


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: either a number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _message(response: requests.Response) -> tuple[str | None, str]:
    """(error id, message): `message`, then `error`, then the raw body text, truncated."""
    text = response.text or ""
    try:
        data: JsonValue = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        raw_id = data.get("id")
        error_id = raw_id if isinstance(raw_id, str) else None
        for key in ("message", "error"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return error_id, value
            if isinstance(value, dict | list) and value:
                return error_id, json.dumps(value)[:RAW_BODY_LIMIT]
        return error_id, _truncate(text) or response.reason or "error"
    return None, _truncate(text) or response.reason or "error"


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= RAW_BODY_LIMIT else text[: RAW_BODY_LIMIT - 1] + "…"


def error_from_response(response: requests.Response, method: str, path: str) -> HerokuApiError:
    """The typed error for an error response. Reads the body, never the request."""
    status = response.status_code
    error_id, message = _message(response)
    request_id = response.headers.get("Request-Id")
    cls = error_class(status)
    if cls is RateLimited:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return RateLimited(status, error_id, message, method, path, request_id, retry_after)
    return cls(status, error_id, message, method, path, request_id)
