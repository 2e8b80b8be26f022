"""Request plumbing shared by the sandbox's APIs: the request and response, the errors a handler
raises, and routes as data (a table of method, path pattern and handler per API).

Each API lives under its own prefix; a path no API has is a 404 and a known path asked with
another method a 405, as on Heroku.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

REGION = "virginia"
PLATFORM_ACCEPT = "application/vnd.heroku+json; version=3"
PREFIXES = {
    "hc-central": "/hc-central",
    "connect": f"/connect/{REGION}/api/v3",
    "platform": "/platform",
    "admin": "/_sandbox",
}


class ApiError(Exception):
    def __init__(
        self, status: int, error_id: str, message: str, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.error_id, self.message = status, error_id, message
        self.headers = headers or {}


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"Couldn't find that {what}.")


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    api: str = ""
    user: str = ""
    base_url: str = ""

    @property
    def user_email(self) -> str:
        return f"{self.user[:8]}@users.sandbox.local"


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def body_object(req: Request) -> dict[str, Any]:
    """The JSON body when it is an object; anything else reads as no fields at all."""
    return req.body if isinstance(req.body, dict) else {}


def user_for_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


# A handler is called as handler(sandbox, request, db_connection, **path_params) and returns a
# Response or a body to send with 200.
Handler = Callable[..., Response | Any]


@dataclass(frozen=True)
class Route:
    api: str
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def routes(api: str, table: Iterable[tuple[str, str, Handler]]) -> list[Route]:
    """Compile (method, path, handler) rows; `{name}` in a path matches one segment."""
    return [
        Route(api, method, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"), fn)
        for method, path, fn in table
    ]


def find_route(
    table: Iterable[Route], method: str, full_path: str
) -> tuple[Route, dict[str, str], str]:
    """The route for a path, its parameters and its API's name."""
    for api, prefix in PREFIXES.items():
        if full_path == prefix or full_path.startswith(prefix + "/"):
            rest = full_path[len(prefix) :] or "/"
            allowed = False
            for r in table:
                if r.api != api:
                    continue
                m = r.pattern.match(rest)
                if m:
                    if r.method == method:
                        return r, m.groupdict(), api
                    allowed = True
            if allowed:
                raise ApiError(405, "method_not_allowed", "Method not allowed.")
            break
    raise not_found("path")
