"""Text for mrkdwn: escaping, mentions, cutting, numbers and times, and reading loose documents.

Everything that comes from a person or an outside system passes through `_clean` (or `escape`)
before it reaches a block; see the package docstring for why.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swapbot.swap.plan import Plan

_NAME = 60  # raw characters kept of one name
_TEXT = 500  # raw characters kept of one message or error

_USER_ID = re.compile(r"[UW][A-Z0-9]{1,31}")  # a Slack member id
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
    """Cut rendered mrkdwn to `limit` characters, marking the cut with "…": never inside an
    entity, a <…> sequence or a ``` fence, and a code block left open is closed after the mark.
    Where the text may be cut is `_Marks`'s, as for `split_mrkdwn`."""
    if len(text) <= limit:
        return text
    marks = _Marks(text)
    end = max(0, limit - 4)  # room for "…" and a closing fence
    cut = marks.cut(0, end, lines=False) if end > 0 else 0
    if marks.never[cut]:  # a <…> sequence longer than the cut: leave it out whole
        cut = max(0, text.rfind("<", 0, cut))
    kept = text[:cut].rstrip()
    return kept + "…" + (_FENCE if marks.inside(cut) else "")


# -- chunks ----------------------------------------------------------------------------------
_FENCE = "```"
_SEQUENCE = re.compile(r"<[^<>]*>")  # a link, mention, channel or date token
_ENTITY = re.compile(r"&(?:[A-Za-z]+|#[0-9]+);")
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_MIN_CHUNK = 16


def split_mrkdwn(text: str, limit: int) -> list[str]:
    """Rendered mrkdwn in chunks of at most `limit` characters, each whole for Slack: the one
    function swapbot cuts a long text with (sections, a batch of milestones, a long report).

    A chunk ends at a line end; a single line longer than `limit` is cut at a space, never
    inside a <…> sequence (a link, a mention, a channel, a date token), an entity or an inline
    code span (only a run with nothing else to cut at is cut anywhere, and never inside a <…>).
    A ``` block open at a cut is closed at the end of the chunk and opened again at the start
    of the next. Nothing is dropped: the cut's newline or space ends the earlier chunk, so the
    chunks, less the fences added at the cuts, make the text. A <…> sequence longer than a
    chunk could hold (none of swapbot's) is shown as text, escaped."""
    return [head + body + tail for head, body, tail in _split(text, limit)]


def _split(text: str, limit: int) -> list[tuple[str, str, str]]:
    """`split_mrkdwn`'s chunks as (fence added before, the text's own part, fence added
    after)."""
    if limit < _MIN_CHUNK:
        raise ValueError(f"chunks of at least {_MIN_CHUNK} characters")
    text = _SEQUENCE.sub(lambda m: _unlinked(m.group(), limit), text)
    marks = _Marks(text)
    chunks: list[tuple[str, str, str]] = []
    pos = 0
    while pos < len(text):
        head = ""
        if marks.inside(pos):  # reopen the block; on a line of its own when the cut was one
            head = _FENCE + "\n" if text[pos - 1] == "\n" else _FENCE
        tail = _FENCE if marks.inside(len(text)) else ""  # the text itself left a block open
        if len(head) + len(text) - pos + len(tail) <= limit:
            chunks.append((head, text[pos:], tail))
            break
        cut = marks.cut(pos, pos + limit - len(head) - len(_FENCE))
        chunks.append((head, text[pos:cut], _FENCE if marks.inside(cut) else ""))
        pos = cut
    return chunks


def _unlinked(sequence: str, limit: int) -> str:
    if len(sequence) <= limit - 2 * len(_FENCE) - 2:
        return sequence
    return sequence.replace("<", "&lt;").replace(">", "&gt;")


class _Marks:
    """Where a text may be cut. A cut at `i` falls between text[i - 1] and text[i]."""

    def __init__(self, text: str) -> None:
        self.text = text
        n = len(text)
        self.never = bytearray(n + 1)  # inside a <…> sequence, an entity or a fence
        self.rather_not = bytearray(n + 1)  # inside an inline code span
        fences = [m.start() for m in re.finditer(_FENCE, text)]
        self.fence_ends = [start + len(_FENCE) for start in fences]
        for pattern in (_SEQUENCE, _ENTITY):
            for m in pattern.finditer(text):
                self.never[m.start() + 1 : m.end()] = b"\x01" * (m.end() - m.start() - 1)
        for start in fences:
            self.never[start + 1 : start + len(_FENCE)] = b"\x01" * (len(_FENCE) - 1)
        for m in _INLINE_CODE.finditer(text):
            if not self.inside(m.start()):
                self.rather_not[m.start() + 1 : m.end()] = b"\x01" * (m.end() - m.start() - 1)

    def inside(self, i: int) -> bool:
        """Whether position `i` is inside a ``` block (after an odd number of fences)."""
        return bisect.bisect_right(self.fence_ends, i) % 2 == 1

    def cut(self, start: int, end: int, *, lines: bool = True) -> int:
        """The best cut in (start, end]: the last line end, else the last space, else the last
        place outside anything; `end` itself only when a <…> sequence spans the whole run."""
        text = self.text
        tests: list[Callable[[int], bool]] = [
            lambda j: text[j - 1] == " " and not self.rather_not[j] and self._clean_edge(j),
            lambda j: not self.rather_not[j] and self._clean_edge(j),
            lambda j: True,
        ]
        if lines:
            tests.insert(0, lambda j: text[j - 1] == "\n" and self._clean_edge(j))
        for test in tests:
            for j in range(end, start, -1):
                if not self.never[j] and test(j):
                    return j
        return end

    def _clean_edge(self, j: int) -> bool:
        """A cut inside a ``` block that leaves neither chunk an empty block: not right after
        the fence that opens it, nor right before the one that closes it."""
        if not self.inside(j):
            return True
        if self.text.startswith(_FENCE, j):
            return False
        opened = self.fence_ends[bisect.bisect_right(self.fence_ends, j) - 1]
        return bool(self.text[opened:j].strip())


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


def epoch(value: object) -> float | None:
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


def date_token(value: object, fmt: str = "{time}") -> str:
    """A time as Slack's date token, which each reader sees in their own time zone and format:
    `<!date^1700000133^{time}|22:15 UTC>` (https://docs.slack.dev/messaging/formatting-message-text#date-formatting).
    The text after `|` is what a client that cannot render the token shows: UTC, to the second
    when the format shows seconds. "?" when the time cannot be read."""
    at = epoch(value)
    if at is None:
        return "?"
    try:
        moment = datetime.fromtimestamp(at, UTC)
    except (OverflowError, OSError, ValueError):
        return "?"
    seconds = "{time_secs}" in fmt
    fallback = moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at)}^{fmt}|{fallback}>"


def _clock(value: object, *, seconds: bool = True) -> str:
    """A time of day as a date token (`date_token`): with seconds, or to the minute."""
    return date_token(value, "{time_secs}" if seconds else "{time}")


def _minutes_left(expires: float | None, now: float) -> str:
    """How long is left, said so that it stays true however late it is read: "15 min left at
    22:15" (the time a date token), "expired", or "no expiry given"."""
    if expires is None:
        return "no expiry given"
    left = expires - now
    if left <= 0:
        return "expired"
    return f"{math.ceil(left / 60)} min left at {_clock(now, seconds=False)}"


# A time as the engine writes it in a message: ISO-8601 in UTC ("2026-11-26T01:29:16.592Z"),
# or a time of day in UTC ("01:45:06 UTC").
_TIME = re.compile(
    r"(?<![\w:.-])(?:(?P<iso>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|\+00:00))"
    r"|(?P<clock>(?P<h>[01]\d|2[0-3]):(?P<m>[0-5]\d)(?::(?P<s>[0-5]\d))? UTC))(?![\w:])"
)


def date_times(text: str, near: float) -> str:
    """Rendered mrkdwn with each time the engine wrote in it (ISO-8601 UTC, or "01:45:06 UTC")
    as a date token (`date_token`). A time of day is taken on the day that puts it nearest to
    `near` (when the text was written): the engine names times within hours of its message.
    Nothing inside a <…> sequence or a code span changes."""

    def token(m: re.Match[str]) -> str:
        if m.group("iso"):
            return date_token(m.group("iso"), "{date_short_pretty} {time_secs}")
        seconds = m.group("s")
        of_day = int(m.group("h")) * 3600 + int(m.group("m")) * 60 + int(seconds or 0)
        day = math.floor(near / 86_400) * 86_400
        moment = min((day + d * 86_400 + of_day for d in (-1, 0, 1)), key=lambda t: abs(t - near))
        return date_token(moment, "{time_secs}" if seconds else "{time}")

    parts = _LEAVE.split(text)
    for i in range(0, len(parts), 2):  # the even parts are outside sequences and code
        parts[i] = _TIME.sub(token, parts[i])
    return "".join(parts)


# -- people ----------------------------------------------------------------------------------
# A word that can only be a Slack member id: U or W, at least eight more capitals and digits,
# one of them a digit (Slack's ids are 9 or 11 characters; words such as UPDATED or UTF8 are
# not ids). Shorter ids are mentioned when the caller names them as people.
_SURE_ID = re.compile(r"[UW](?=[A-Z]*[0-9])[A-Z0-9]{8,31}")
_WORD = re.compile(r"(?<![\w@#&;/.:|-])[UW][A-Z0-9]{1,31}(?![\w>|])")
_LEAVE = re.compile(r"(<[^<>]*>|`[^`]*`)")  # sequences and code are left as they are


def name_people(text: str, people: Iterable[object] = ()) -> str:
    """Rendered mrkdwn with each person it names as a mention (`<@U…>`): a member id among
    `people`, or any word that can only be a member id. Nothing inside a <…> sequence or a
    code span changes, and a name that is not an id (a terminal user) stays as it is.

    Only for text the engine or swapbot wrote (an event's message, a command's outcome, a
    refusal): what a person typed (a command line, a note, a plan's values) is only escaped,
    or shown as code, so that a word shaped like a member id in it never pings anyone."""
    known = {str(p) for p in people if p is not None and _USER_ID.fullmatch(str(p))}

    def mentioned(m: re.Match[str]) -> str:
        word = m.group()
        return f"<@{word}>" if word in known or _SURE_ID.fullmatch(word) else word

    parts = _LEAVE.split(text)
    for i in range(0, len(parts), 2):  # the even parts are outside sequences and code
        parts[i] = _WORD.sub(mentioned, parts[i])
    return "".join(parts)


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
