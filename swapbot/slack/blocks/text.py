"""Text for mrkdwn: escaping, mentions, cutting, numbers and times, and reading loose documents.

Everything that comes from a person or an outside system passes through `_clean` (or `escape`)
before it reaches a block; see the package docstring for why.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swapbot.swap.plan import Plan

_NAME = 60  # raw characters kept of one name
_TEXT = 500  # raw characters kept of one message or error

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,31}")
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@")


# -- text ------------------------------------------------------------------------------------
def escape(text: object) -> str:
    """Escape Slack's three control characters, `&` first; None renders as ""."""
    if text is None:
        return ""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user: object) -> str:
    """`<@U123>` for a Slack user id; anything else (a CLI name) as escaped text, never a ping."""
    value = "" if user is None else str(user)
    if _USER_ID.fullmatch(value):
        return f"<@{value}>"
    return _clean(value or "someone", _NAME)


def duration(seconds: float | None) -> str:
    """ "45s", "2m 13s", "1h 02m", "3d 04h"; None or nonsense shows as "?"."""
    value = _float(seconds)
    if value is None:
        return "?"
    s = max(0, int(value))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86_400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86_400}d {s % 86_400 // 3600:02d}h"


def bar(percent: float | None, width: int = 10) -> str:
    """`▓▓▓▓▓░░░░░ 52%`. Rounded down, so a full bar means the load is complete."""
    value = _float(percent) or 0.0
    value = min(100.0, max(0.0, value))
    width = max(1, width)
    filled = int(value * width / 100)
    return "▓" * filled + "░" * (width - filled) + f" {int(value)}%"


def _cut(text: str, limit: int) -> str:
    """Cut raw (not yet escaped) text to `limit` characters, marking the cut with "…"."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def _redact(text: str) -> str:
    # Errors from HTTP or database clients may quote a URL with its password: mask userinfo.
    return _CREDENTIALS.sub(r"\1***@", text)


def _clean(value: object, limit: int = _TEXT, *, oneline: bool = True) -> str:
    """Outside text made safe for mrkdwn: credentials masked, cut to `limit`, then escaped."""
    text = _redact("" if value is None else str(value))
    if oneline:
        text = " ".join(text.split())
    return escape(_cut(text, limit))


def _code(value: object, limit: int = _NAME) -> str:
    """Inline code for short tokens (ids, fingerprints); a backtick would end it, so none stay."""
    text = _cut(_redact(str(value)).replace("`", "'"), limit)
    return f"`{escape(text) or ' '}`"


def _fence_safe(text: str) -> str:
    # Three backticks inside a code block would close it early.
    return text.replace("```", "`\u200b`\u200b`")


def _cut_mrkdwn(text: str, limit: int) -> str:
    """Cut rendered mrkdwn without leaving half an entity, half a <…> token or an open fence."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 5)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    lt = cut.rfind("<")
    if lt != -1 and ">" not in cut[lt:]:
        cut = cut[:lt]
    if cut.count("```") % 2:
        return cut + "…\n```"
    return cut + "…"


# -- numbers and times -----------------------------------------------------------------------
def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _int(value: object) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def _count(value: object) -> str:
    number = _int(value)
    return "?" if number is None else f"{number:,}"


def _now(now: float | None) -> float:
    value = _float(now)
    return time.time() if value is None else value


def _epoch(value: object) -> float | None:
    """Seconds since the epoch from a number, a numeric string or ISO-8601 (naive means UTC)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and _float(value) is None:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return _float(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _clock(value: object, *, seconds: bool = True) -> str:
    """ "HH:MM:SS UTC" (or "HH:MM UTC"); "?" when the time cannot be read."""
    epoch = _epoch(value)
    if epoch is None:
        return "?"
    try:
        moment = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return "?"
    return moment.strftime("%H:%M:%S UTC" if seconds else "%H:%M UTC")


def _minutes_left(expires: float | None, now: float) -> str:
    """ "in 12 min", "in 1 min" (under a minute rounds up), "expired"."""
    if expires is None:
        return "no expiry given"
    left = expires - now
    if left <= 0:
        return "expired"
    return f"in {math.ceil(left / 60)} min"


# -- documents -------------------------------------------------------------------------------
def _sequence(value: object) -> list[Any]:
    # Be defensive: a document read back from JSON may hold anything where a list belongs.
    return list(value) if isinstance(value, list | tuple) else []


def _as_dict(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _plan_move(plan: Plan) -> str:
    """ "old-addon (old_schema) → new-addon (new_schema)", as the status card and approvals say."""
    return (
        f"{_clean(plan.old_addon, _NAME)} ({_clean(plan.old_schema, _NAME)}) → "
        f"{_clean(plan.new_addon, _NAME)} ({_clean(plan.new_schema, _NAME)})"
    )
