"""`GET /healthz`: can this process reach Redis and the database? For Heroku and for people.

Redis holds the swap's state and queue: without it the bot must not pretend to work (503).
The database is reported but does not fail the check: the bot still answers `status` and
refuses steps with a clear message when only the database is away.
"""

from __future__ import annotations

import time
from typing import Any

from swapbot.config import Settings, redis_client, secret


def _timed(check) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        check()
    except Exception as exc:  # report any failure by its kind; never its text (it may hold a URL)
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round(1000 * (time.perf_counter() - start), 1)}


def check(settings: Settings, redis: Any = None) -> tuple[int, dict[str, Any]]:
    client = redis or redis_client(settings, socket_timeout=1, socket_connect_timeout=1)

    def database() -> None:
        import psycopg

        with psycopg.connect(secret(settings.database_url), connect_timeout=2) as conn:
            conn.execute("SELECT 1")

    doc: dict[str, Any] = {"redis": _timed(client.ping)}
    doc["database"] = (
        _timed(database) if settings.database_url else {"ok": False, "error": "not configured"}
    )
    return (200 if doc["redis"]["ok"] else 503), doc
