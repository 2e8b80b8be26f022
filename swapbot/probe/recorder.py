"""Every request a probe sends, and its answer, kept as evidence.

A response hook on the clients' sessions sees each exchange exactly as it went over the wire
(retries included). Bodies are cut short; the token never appears (it lives in the session's
auth, not in what is kept) and config var values are never kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests

from swapbot.probe.results import Exchange

EXCERPT = 400
# Answers kept as a status only, by how their path ends: config vars carry database URLs,
# an authorize link carries a live OAuth state, a link answer the user's email address.
NOT_KEPT = {
    "/config-vars": "(not kept: config vars)",
    "/authorize_url": "(not kept: the link carries a live OAuth state)",
}
# Paths under hc-central's /auth/{app}: the answer names the user.
NOT_KEPT_UNDER = {"/auth/": "(not kept: it names the user)"}


class Recorder:
    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def session(self) -> requests.Session:
        """A session whose every response is recorded; give one to each client."""
        session = requests.Session()
        session.hooks["response"].append(self._record)
        return session

    @contextmanager
    def on(self, *sessions: requests.Session) -> Iterator[Recorder]:
        """Record the exchanges of existing sessions (the engine's clients) for a while."""
        for session in sessions:
            session.hooks["response"].append(self._record)
        try:
            yield self
        finally:
            for session in sessions:
                session.hooks["response"].remove(self._record)

    def mark(self) -> int:
        return len(self.exchanges)

    def since(self, mark: int) -> list[Exchange]:
        return self.exchanges[mark:]

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        parts = urlsplit(request.url or "")
        url = parts.path + (f"?{parts.query}" if parts.query else "")
        withheld = _withheld(parts.path)
        self.exchanges.append(
            Exchange(
                method=request.method or "",
                url=url,
                request=None if withheld else _excerpt(request.body),
                status=response.status_code,
                response=withheld or _excerpt(response.content),
            )
        )


def _withheld(path: str) -> str | None:
    """Why an exchange's bodies are not kept, or None when they are."""
    for end, why in NOT_KEPT.items():
        if path.endswith(end):
            return why
    return next((why for part, why in NOT_KEPT_UNDER.items() if part in path), None)


def _excerpt(body: bytes | str | None) -> str | None:
    if not body:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"
