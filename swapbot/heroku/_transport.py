"""The one seam every Heroku request passes: bearer token, timeouts, retries, rate limit, logging.

What may be retried is decided here and nowhere else. A request that is not safe to repeat (an
import, a mapping create or edit, a reload, an add-on create) is retried only when Heroku cannot
have acted on it: a 429, or a connection that was never established.
"""

from __future__ import annotations

import json as jsonlib
import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import quote, urlsplit

import requests
from pydantic import BaseModel, SecretStr, ValidationError
from requests import exceptions as rex
from urllib3.exceptions import MaxRetryError, NewConnectionError

from swapbot import __version__

from ._exceptions import (
    HerokuApiError,
    TransportError,
    error_from_response,
    retry_after_seconds,
)
from ._models import JsonValue

__all__ = [
    "DEFAULT_TIMEOUT",
    "RETRY_STATUSES",
    "RetryPolicy",
    "Timeout",
    "Transport",
    "build_url",
    "invalid_response",
    "json_body",
    "parse",
]

logger = logging.getLogger("swapbot.heroku")

# (connect, read) seconds. 3.05: just over a multiple of 3 s, the TCP retransmission window.
DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 30.0)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PATCH", "DELETE"})
USER_AGENT = (
    f"swapbot/{__version__} (Heroku Connect schema swap bot; requests/{requests.__version__})"
)

Timeout = float | tuple[float, float]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait. Tests pass a fake `sleep` (and a fixed `rand`)."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    # A Retry-After longer than this is not waited for: the error goes to the caller instead.
    max_retry_after: float = 120.0
    # Below this many remaining Platform API tokens, pause before the next request: from 0 s at
    # the floor up to `rate_limit_pause` at 0 remaining.
    rate_limit_floor: int = 20
    rate_limit_pause: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.rate_limit_pause < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling * self.rand()

    def throttle(self, remaining: int) -> float:
        """The pause owed before the next request when `remaining` tokens are left."""
        if self.rate_limit_floor <= 0 or remaining >= self.rate_limit_floor:
            return 0.0
        short = self.rate_limit_floor - max(remaining, 0)
        return self.rate_limit_pause * short / self.rate_limit_floor


def build_url(base: str, template: str, **segments: object) -> str:
    """`base` + `/` + `template` with each segment URL-quoted; keeps any path prefix of `base`.

    `urljoin(base, "/apps")` would drop a prefix such as `/platform`; plain joining does not.
    """
    quoted = {}
    for name, value in segments.items():
        text = str(value)
        if not text:
            raise ValueError(f"{name} is empty")
        quoted[name] = quote(text, safe="")
    return base.rstrip("/") + "/" + template.format(**quoted).lstrip("/")


class _BearerAuth(requests.auth.AuthBase):
    """Sets `Authorization: Bearer`. Installed as the session's auth, which also stops requests
    from replacing the header with ~/.netrc credentials (the Heroku CLI writes its own there)."""

    def __init__(self, token: str):
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "<bearer token>"


def _plain_token(token: str | SecretStr) -> str:
    value = token.get_secret_value() if isinstance(token, SecretStr) else token
    if not isinstance(value, str) or not value.strip():
        raise ValueError("the Heroku API token is empty")
    if any(ch in value for ch in "\r\n"):
        raise ValueError("the Heroku API token contains a line break")
    return value.strip()


def _never_sent(exc: BaseException) -> bool:
    """True when no byte of the request can have reached Heroku: the TCP connect failed."""
    if isinstance(exc, rex.ConnectTimeout):
        return True
    if isinstance(exc, rex.ConnectionError) and not isinstance(exc, rex.SSLError):
        inner = exc.args[0] if exc.args else None
        return isinstance(inner, MaxRetryError) and isinstance(inner.reason, NewConnectionError)
    return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, rex.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, rex.ReadTimeout):
        return "read timeout (no answer in time)"
    if isinstance(exc, rex.Timeout):
        return "timeout"
    if isinstance(exc, rex.SSLError):
        return "TLS error"
    if _never_sent(exc):
        return "could not connect"
    if isinstance(exc, rex.ConnectionError | rex.ChunkedEncodingError):
        return "connection dropped before a complete answer"
    return type(exc).__name__


def _retryable_exception(exc: BaseException, safe: bool) -> bool:
    if _never_sent(exc):
        return True
    if isinstance(exc, rex.SSLError):
        return False
    return safe and isinstance(exc, rex.ConnectionError | rex.Timeout | rex.ChunkedEncodingError)


class Transport:
    """Sends every request of one client over one `requests.Session`.

    The token lives only inside the session's auth object; nothing here prints it.
    """

    def __init__(
        self,
        token: str | SecretStr,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        user_agent: str = USER_AGENT,
    ):
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._owns_session = session is None
        self._session = session or requests.Session()
        self._session.auth = _BearerAuth(_plain_token(token))
        self._session.headers["User-Agent"] = user_agent
        self._session.headers.update(headers or {})
        # A low RateLimit-Remaining holds every request of this client, from any thread (the
        # plan form describes objects several at a time), until the pause it asked for is over.
        self._rate_lock = threading.Lock()
        self._pause = 0.0
        self._hold_until = 0.0  # time.monotonic()

    def __repr__(self) -> str:
        return f"Transport(timeout={self.timeout!r}, max_attempts={self.retry.max_attempts})"

    @property
    def session(self) -> requests.Session:
        return self._session

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        expect: Collection[int] | None = None,
    ) -> requests.Response:
        """Send, retrying what is safe to retry; return a success response or raise HerokuError.

        `idempotent` overrides the method's default (GET, PATCH and DELETE are safe to repeat,
        POST and PUT are not). `expect` lists the only success statuses accepted; by default any
        status below 400.
        """
        method = method.upper()
        safe = idempotent if idempotent is not None else method in SAFE_METHODS
        path = urlsplit(url).path or "/"
        policy = self.retry
        attempt = 0
        while True:
            attempt += 1
            self._wait_for_rate_limit()
            started = time.monotonic()
            try:
                response = self._session.request(
                    method, url, params=params, json=json, headers=headers, timeout=self.timeout
                )
            except requests.RequestException as exc:
                reason = _describe(exc)
                logger.debug("%s %s -> %s after %.0f ms", method, path, reason, _ms(started))
                if _retryable_exception(exc, safe) and attempt < policy.max_attempts:
                    self._pause_before_retry(method, path, reason, policy.backoff(attempt), attempt)
                    continue
                # `from None`: the requests exception holds the prepared request and its headers.
                raise TransportError(method, path, reason, attempt) from None
            status = response.status_code
            logger.debug("%s %s -> %d in %.0f ms", method, path, status, _ms(started))
            self._note_rate_limit(response)
            if status in RETRY_STATUSES and (safe or status == 429):
                delay = self._retry_delay(response, attempt)
                if delay is not None and attempt < policy.max_attempts:
                    self._pause_before_retry(method, path, str(status), delay, attempt)
                    continue
            if status >= 400:
                raise error_from_response(response, method, path)
            if expect is not None and status not in expect:
                wanted = " or ".join(str(s) for s in sorted(expect))
                raise HerokuApiError(
                    status,
                    "unexpected_status",
                    f"expected status {wanted}",
                    method,
                    path,
                    response.headers.get("Request-Id"),
                )
            return response

    def request_json(self, method: str, url: str, **kwargs: Any) -> JsonValue:
        """`request`, then the decoded JSON body; None for an empty body."""
        response = self.request(method, url, **kwargs)
        return json_body(response, method.upper())

    def request_model(self, model: type[M], method: str, url: str, **kwargs: Any) -> M:
        """`request`, then the body parsed as `model`."""
        response = self.request(method, url, **kwargs)
        return parse(model, json_body(response, method.upper()), response, method.upper())

    def _retry_delay(self, response: requests.Response, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if response.status_code in (429, 503):
            asked = retry_after_seconds(response.headers.get("Retry-After"))
            if asked is not None:
                return asked if asked <= self.retry.max_retry_after else None
        return self.retry.backoff(attempt)

    def _pause_before_retry(
        self, method: str, path: str, reason: str, delay: float, attempt: int
    ) -> None:
        logger.info(
            "%s %s: %s; retrying in %.2f s (attempt %d of %d)",
            method,
            path,
            reason,
            delay,
            attempt + 1,
            self.retry.max_attempts,
        )
        self.retry.sleep(delay)

    def _note_rate_limit(self, response: requests.Response) -> None:
        header = response.headers.get("RateLimit-Remaining")
        if header is None:
            return
        try:
            remaining = int(header)
        except ValueError:
            return
        pause = self.retry.throttle(remaining)
        with self._rate_lock:
            self._pause = pause
            if pause <= 0:
                self._hold_until = 0.0  # the bucket is full enough again: nobody waits

    def _wait_for_rate_limit(self) -> None:
        with self._rate_lock:
            now = time.monotonic()
            if self._pause > 0:  # the first request since the low count: it sets the hold
                pause, self._pause = self._pause, 0.0
                self._hold_until = now + pause
            else:  # the others wait out what is left of it
                pause = self._hold_until - now
        if pause > 0:
            logger.info("Heroku rate limit running low; pausing %.2f s", pause)
            self.retry.sleep(pause)


def json_body(response: requests.Response, method: str) -> JsonValue:
    """The JSON body of a success response; None when it is empty."""
    if not response.content or not response.content.strip():
        return None
    try:
        value: JsonValue = jsonlib.loads(response.content)
    except ValueError:
        raise invalid_response(response, method, "the response body is not JSON") from None
    return value


def parse(model: type[M], data: JsonValue, response: requests.Response, method: str) -> M:
    """`data` as `model`; a body of another shape is a HerokuApiError, without echoing values."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        message = f"unexpected {model.__name__} in the response ({where}: {first['msg']})"
        raise invalid_response(response, method, message) from None


def invalid_response(response: requests.Response, method: str, message: str) -> HerokuApiError:
    """A success status whose body is not what the API documents."""
    return HerokuApiError(
        response.status_code,
        "invalid_response",
        message,
        method,
        urlsplit(response.url).path or "/",
        response.headers.get("Request-Id"),
    )


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000


class BaseClient:
    """What every client shares: the API's root URL (`DEFAULT_URL` unless given), one transport
    sending the API's `HEADERS`, closed with the client (usable as `with`)."""

    DEFAULT_URL: ClassVar[str]
    HEADERS: ClassVar[Mapping[str, str]]

    def __init__(
        self,
        token: str | SecretStr,
        base_url: str | None = None,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ):
        self.base_url = str(self.DEFAULT_URL if base_url is None else base_url).rstrip("/")
        self._transport = Transport(
            token, headers=self.HEADERS, timeout=timeout, retry=retry, session=session
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    @property
    def session(self) -> requests.Session:
        """The session every request goes through (a probe records its exchanges)."""
        return self._transport.session

    def get_json(self, url: str, params: Mapping[str, Any] | None = None) -> JsonValue:
        """GET an absolute URL of this API: the JSON answer as Heroku sent it."""
        return self._transport.request_json("GET", url, params=params)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
