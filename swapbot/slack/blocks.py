"""Block Kit rendering for the Slack front end: pure functions from plain dicts to messages.

Every renderer returns `(text, blocks)`: `text` is the short fallback Slack shows in
notifications (send it without `link_names`), `blocks` a list of plain dicts ready for
chat.postMessage / chat.update. Nothing here does I/O; the clock is read only when no `now`
is given.

Safety (reference/slack.md §8.3):
- every string that comes from a person or an outside system goes through `escape` and sits in
  a mrkdwn text object with `verbatim: True`, so `<!channel>`, `@here`, `#chan` and URLs stay
  plain text;
- mentions we make ourselves use the ID form `<@U123>`, and only for values shaped like a Slack
  user id (`mention`); anything else is shown as an escaped name;
- credentials inside URLs are masked before anything is rendered.

Limits (§8.1) hold by construction: names are cut, long lists are summarised under a character
budget, and every block passes through a last guard. `check_limits` verifies a message; the
tests run it on every output.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from swapbot.heroku._models import MAPPING_ERROR_STATES, SYNCED_STATES

__all__ = [
    "MAX_BLOCKS",
    "MAX_FALLBACK",
    "MAX_TOTAL_TEXT",
    "approval_decided",
    "approval_message",
    "bar",
    "check_limits",
    "duration",
    "escape",
    "is_broadcast",
    "mention",
    "milestone",
    "milestone_message",
    "progress_message",
    "refusal",
    "reply",
    "status_message",
    "usage",
]

log = logging.getLogger(__name__)

Block = dict[str, Any]
Rendered = tuple[str, list[Block]]

# Slack's documented limits (reference/slack.md §8.1).
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_BLOCK_ID = 255
MAX_FALLBACK = 3000
# Not documented: Slack refuses messages at about 13k characters of combined block text
# (bolt-js#2509). This is our ceiling, and the renderers aim below it.
MAX_TOTAL_TEXT = 12_000

DETAIL_HINT = "/hcswap status --json"
DEFAULT_EMOJI = "white_check_mark"

_BUDGET = 11_000  # what renderers fill, leaving headroom under MAX_TOTAL_TEXT
_TAIL = 800  # kept back for the closing context lines ("… and N more", "updated …")
_CONTEXT_TEXT = 2000  # our cap for one context element
_FULL_LIST = 12  # a connection with this many mappings or fewer lists every one
_ATTENTION = 20  # mappings listed per connection when summarising
_MAX_CONNECTIONS = 10
_MAX_ITEMS = 5  # approvals, ledger items listed in a status message
_MAX_CALLS = 40  # dry-run calls listed in a reply
_MAX_CODE_BLOCKS = 40
_NAME = 60  # raw characters kept of one name
_TEXT = 500  # raw characters kept of one message or error
_MILESTONE = 2900  # one milestone line, with room to spare in a section

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,31}")
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@")
_DONE = ("done", "skipped")  # tuples: a malformed status may be unhashable
_ACTIVE = ("failed", "waiting", "running")


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


# -- blocks ----------------------------------------------------------------------------------
def _mrkdwn(text: str, limit: int) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _cut_mrkdwn(text, limit) or " ", "verbatim": True}


def _header(text: str) -> Block:
    # plain_text gets no mrkdwn processing, so it is not escaped (it would show "&amp;").
    plain = _cut(" ".join(text.split()), MAX_HEADER_TEXT) or "swapbot"
    return {"type": "header", "text": {"type": "plain_text", "text": plain, "emoji": False}}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text, MAX_SECTION_TEXT)}


def _fields(fields: Sequence[str], text: str | None = None) -> Block:
    block: Block = {
        "type": "section",
        "fields": [_mrkdwn(f, MAX_FIELD_TEXT) for f in fields[:MAX_FIELDS]],
    }
    if text:
        block["text"] = _mrkdwn(text, MAX_SECTION_TEXT)
    return block


def _context(*texts: str) -> Block:
    elements = [_mrkdwn(t, _CONTEXT_TEXT) for t in texts[:MAX_CONTEXT_ELEMENTS] if t]
    return {"type": "context", "elements": elements or [_mrkdwn(" ", 1)]}


def _texts(node: Any) -> Iterator[str]:
    """Every string a block shows (the `text` of each text object), for the combined limit."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def _size(*blocks: Block) -> int:
    return sum(len(t) for b in blocks for t in _texts(b))


class _Budget:
    """What is left of a message's text and block allowance; parts take from it by priority."""

    def __init__(self, chars: int = _BUDGET - _TAIL, blocks: int = MAX_BLOCKS - 2) -> None:
        self.chars = chars
        self.blocks = blocks

    def take(self, *blocks: Block) -> bool:
        size = _size(*blocks)
        if size > self.chars or len(blocks) > self.blocks:
            return False
        self.chars -= size
        self.blocks -= len(blocks)
        return True


def _finish(prefix: str, fallback: str, blocks: list[Block], now: float) -> Rendered:
    """Give each block an id unique to this render (Slack asks for new ids on each update)."""
    stamp = format(int(now * 1000), "x")[-10:]
    for i, block in enumerate(blocks):
        block["block_id"] = f"{prefix}-{i}-{stamp}"
    text = _cut_mrkdwn(fallback, MAX_FALLBACK) or prefix
    try:
        check_limits(blocks, text)
    except ValueError:
        # A bug here must not cost the channel its message: say less, but say something.
        log.exception("rendered %s message broke Slack's limits; sending the fallback", prefix)
        blocks = [{"type": "section", "text": _mrkdwn(text, MAX_SECTION_TEXT)}]
    return text, blocks


def check_limits(blocks: Sequence[Mapping[str, Any]], text: str | None = None) -> None:
    """Raise ValueError naming every Block Kit limit (reference §8.1) the message breaks."""
    problems: list[str] = []
    if not isinstance(blocks, Sequence) or isinstance(blocks, str):
        raise ValueError("blocks must be a list of dicts")
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks (at most {MAX_BLOCKS})")
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        if not isinstance(block, Mapping):
            problems.append(f"block {i} is not a dict")
            continue
        problems.extend(f"block {i}: {p}" for p in _block_problems(block, seen))
    total = sum(_size(dict(b)) for b in blocks if isinstance(b, Mapping))
    if total > MAX_TOTAL_TEXT:
        problems.append(f"{total} characters of block text (at most {MAX_TOTAL_TEXT})")
    if text is not None and not 0 < len(text) <= MAX_FALLBACK:
        problems.append(f"fallback text of {len(text)} characters (1 to {MAX_FALLBACK})")
    if problems:
        raise ValueError("; ".join(problems))


def _block_problems(block: Mapping[str, Any], seen: set[str]) -> Iterator[str]:
    block_id = block.get("block_id")
    if block_id is not None:
        if not isinstance(block_id, str) or not 0 < len(block_id) <= MAX_BLOCK_ID:
            yield f"block_id must be 1 to {MAX_BLOCK_ID} characters"
        elif block_id in seen:
            yield f"block_id {block_id!r} is not unique"
        else:
            seen.add(block_id)
    kind = block.get("type")
    if kind == "header":
        obj = block.get("text") or {}
        if obj.get("type") != "plain_text":
            yield "header text must be plain_text"
        if not 0 < len(obj.get("text") or "") <= MAX_HEADER_TEXT:
            yield f"header text must be 1 to {MAX_HEADER_TEXT} characters"
    elif kind == "section":
        obj, fields = block.get("text"), block.get("fields")
        if obj is None and not fields:
            yield "section needs text or fields"
        if obj is not None and not 0 < len(obj.get("text") or "") <= MAX_SECTION_TEXT:
            yield f"section text must be 1 to {MAX_SECTION_TEXT} characters"
        if fields is not None:
            if len(fields) > MAX_FIELDS:
                yield f"{len(fields)} fields (at most {MAX_FIELDS})"
            for field in fields:
                if not 0 < len(field.get("text") or "") <= MAX_FIELD_TEXT:
                    yield f"field text must be 1 to {MAX_FIELD_TEXT} characters"
    elif kind == "context":
        elements = block.get("elements") or []
        if not 0 < len(elements) <= MAX_CONTEXT_ELEMENTS:
            yield f"context needs 1 to {MAX_CONTEXT_ELEMENTS} elements"
        for element in elements:
            if element.get("type") in ("mrkdwn", "plain_text") and not (
                0 < len(element.get("text") or "") <= MAX_SECTION_TEXT
            ):
                yield f"context text must be 1 to {MAX_SECTION_TEXT} characters"


def _pack(lines: Iterable[str], limit: int = MAX_SECTION_TEXT) -> list[str]:
    """Join lines into as few texts of at most `limit` characters as they fit in."""
    packs: list[str] = []
    current = ""
    for raw in lines:
        line = _cut_mrkdwn(raw, limit)
        if current and len(current) + 1 + len(line) > limit:
            packs.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        packs.append(current)
    return packs


def _code_sections(
    lines: Sequence[str], budget: _Budget, max_blocks: int
) -> tuple[list[Block], int]:
    """Lines in ``` sections of at most 3000 characters, as many as fit; and how many fit."""
    fence = len("```\n\n```")
    room = MAX_SECTION_TEXT - fence
    safe = [_cut_mrkdwn(_fence_safe(escape(line)), room) or " " for line in lines]
    blocks: list[Block] = []
    shown = 0
    while shown < len(safe) and len(blocks) < max_blocks:
        # As many lines as fit in one section and in what the budget has left.
        limit = min(room, budget.chars - fence)
        chunk: list[str] = []
        size = -1
        for line in safe[shown:]:
            if size + 1 + len(line) > limit:
                break
            chunk.append(line)
            size += 1 + len(line)
        if not chunk:
            break
        block = _section("```\n" + "\n".join(chunk) + "\n```")
        if not budget.take(block):
            break
        blocks.append(block)
        shown += len(chunk)
    return blocks, shown


# -- mappings and loads ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Row:
    """One mapping or load, normalised; `name` and `state` are already escaped."""

    name: str
    state: str
    raw_state: str
    db: int | None = None
    sf: int | None = None
    pending: int | None = None
    errors: int | None = None
    progress: float | None = None
    rate: float | None = None
    eta: float | None = None

    @property
    def failing(self) -> bool:
        return (
            bool(self.errors)
            or self.raw_state in MAPPING_ERROR_STATES
            or "ERROR" in self.raw_state.upper()
        )

    @property
    def synced(self) -> bool:
        return self.raw_state in SYNCED_STATES


def _row(name: object, item: object) -> _Row:
    data = item if isinstance(item, Mapping) else {}
    state = "" if data.get("state") is None else str(data.get("state"))
    return _Row(
        name=_clean(name if name not in (None, "") else "?", _NAME),
        state=_clean(state or "UNKNOWN", 40),  # exactly as Heroku Connect gives it
        raw_state=state,
        db=_int(data.get("db")),
        sf=_int(data.get("sf")),
        pending=_int(data.get("pending")),
        errors=_int(data.get("errors")),
        progress=_float(data.get("progress")),
        rate=_float(data.get("rate")),
        eta=_float(data.get("eta_seconds")),
    )


def _row_line(row: _Row) -> str:
    parts = [f"• {row.name}", row.state]
    if row.db is not None or row.sf is not None:
        parts.append(f"db {_count(row.db)} · sf {_count(row.sf)}")
    if row.progress is not None:
        parts.append(bar(row.progress))
    if row.rate:
        parts.append(f"{row.rate:,.0f} rows/s")
    if row.eta is not None:
        parts.append(f"about {duration(row.eta)} left")
    if row.pending:
        parts.append(f"pending {row.pending:,}")
    if row.errors:
        parts.append(f"*errors {row.errors:,}*")
    return " · ".join(parts)


def _state_counts(rows: Sequence[_Row], shown: int = 8) -> str:
    """ "DATA_SYNCED 280 · INITIAL_IMPORT 17 · SYNC_ERROR 3", most common first."""
    counts = Counter(r.state for r in rows).most_common()
    parts = [f"{state} {n:,}" for state, n in counts[:shown]]
    rest = counts[shown:]
    if rest:
        parts.append(f"{len(rest)} other states {sum(n for _, n in rest):,}")
    return " · ".join(parts)


def _attention(rows: Sequence[_Row]) -> list[_Row]:
    """What a person should look at: errors first, then loads by least progress, then the rest
    that is not in sync. Synced mappings are only counted."""
    failing = sorted((r for r in rows if r.failing), key=lambda r: -(r.errors or 0))
    loading = sorted(
        (r for r in rows if not r.failing and r.progress is not None),
        key=lambda r: r.progress or 0.0,
    )
    other = [r for r in rows if not r.failing and r.progress is None and not r.synced]
    return (failing + loading + other)[:_ATTENTION]


@dataclass(frozen=True)
class _Group:
    """A titled list (one connection's mappings, or the loads): candidates in display order."""

    title: str
    lines: list[str]
    total: int  # how many items the group stands for, listed or not


def _rows_group(title: str, rows: Sequence[_Row]) -> _Group:
    if len(rows) <= _FULL_LIST:
        return _Group(title, [_row_line(r) for r in rows], len(rows))
    summary = f"{title}\n{_state_counts(rows)}"
    return _Group(summary, [_row_line(r) for r in _attention(rows)], len(rows))


def _fit_groups(groups: Sequence[_Group], budget: _Budget) -> tuple[list[Block], int, int]:
    """Sections for the groups, each given a fair share of the budget. Returns the blocks, how
    many items were not listed, and how many groups were left out entirely."""
    blocks: list[Block] = []
    hidden = dropped = 0
    for i, group in enumerate(groups):
        later = sum(len(g.title) + 1 for g in groups[i + 1 :])
        share = max(0, (budget.chars - later) // (len(groups) - i))
        lines = [group.title]
        used = len(group.title)
        for line in group.lines:
            if used + 1 + len(line) > share:
                break
            lines.append(line)
            used += 1 + len(line)
        sections = [_section(text) for text in _pack(lines)]
        if not budget.take(*sections):
            hidden += group.total
            dropped += 1
            continue
        blocks.extend(sections)
        hidden += group.total - (len(lines) - 1)
    return blocks, hidden, dropped


def _more_line(hidden: int, dropped: int, what: str, hint: str) -> str | None:
    if not hidden and not dropped:
        return None
    if hidden and dropped:
        more = f"{hidden:,} more ({dropped} {what} not shown)"
    else:
        more = f"{hidden:,} more" if hidden else f"{dropped} more {what}"
    return f"… and {more} — full detail: {_code(hint, 100)}"


# -- status ----------------------------------------------------------------------------------
def status_message(
    doc: Mapping[str, Any], *, now: float | None = None, detail_hint: str = DETAIL_HINT
) -> Rendered:
    """The channel's status card: the plan, where the swap stands, approvals, and per Heroku
    Connect add-on its state and mappings (summarised when there are many)."""
    now = _now(now)
    doc = doc if isinstance(doc, Mapping) else {}
    plan = _as_dict(doc.get("plan"))
    app = plan.get("app") or doc.get("app")
    if plan.get("swap_id"):
        title = f"Heroku Connect swap — {plan['swap_id']}"
    else:
        title = f"Heroku Connect — {app}" if app else "Heroku Connect"

    budget = _Budget()
    top: list[Block] = []
    for block in (
        _header(str(title)),
        _channel_warning(doc),
        _section(_plan_text(doc, plan, app)),
        _progress_section(doc, now),
        _approvals_section(doc, now),
    ):
        if block is not None and budget.take(block):
            top.append(block)
    ledger = _ledger_section(doc)
    if ledger is not None and not budget.take(ledger):
        ledger = None

    connections = _records(doc.get("connections"))
    divider: Block = {"type": "divider"}
    if connections and budget.take(divider):
        top.append(divider)
    groups = [_connection_group(c) for c in connections[:_MAX_CONNECTIONS]]
    listing, hidden, dropped = _fit_groups(groups, budget)
    skipped = connections[_MAX_CONNECTIONS:]
    hidden += sum(len(_records(c.get("mappings"))) for c in skipped)
    dropped += len(skipped)

    blocks = top + listing
    if ledger is not None:
        blocks.append(ledger)
    more = _more_line(hidden, dropped, "add-ons", detail_hint)
    if more:
        blocks.append(_context(more))
    blocks.append(_context(f"updated {_clock(now)}"))
    return _finish("status", _status_fallback(doc, title, now), blocks, now)


def _sequence(value: object) -> list[Any]:
    # Be defensive: a document read back from JSON may hold anything where a list belongs.
    return list(value) if isinstance(value, list | tuple) else []


def _records(value: object) -> list[Mapping[str, Any]]:
    return [item for item in _sequence(value) if isinstance(item, Mapping)]


def _as_dict(value: object) -> dict[str, Any]:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return dict(value) if isinstance(value, Mapping) else {}


def _channel_warning(doc: Mapping[str, Any]) -> Block | None:
    if doc.get("bot_in_channel") is not False:
        return None
    return _section(
        ":warning: I am not in the swap channel, so progress cannot be posted there: "
        "invite the bot with `/invite @swapbot`"
    )


def _plan_text(doc: Mapping[str, Any], plan: Mapping[str, Any], app: object) -> str:
    if not plan:
        message = doc.get("message") or "no plan yet"
        head = f"*{_clean(app, _NAME)}* · " if app else ""
        return head + _clean(message)
    move = (
        f"{_clean(plan.get('old_addon'), _NAME)} ({_clean(plan.get('old_schema'), _NAME)}) → "
        f"{_clean(plan.get('new_addon'), _NAME)} ({_clean(plan.get('new_schema'), _NAME)})"
    )
    lines = [f"*{_clean(plan.get('app') or app, _NAME)}* · {move}"]
    mappings = plan.get("mappings")
    if isinstance(mappings, Mapping) and mappings:
        names = []
        for obj, fields in list(mappings.items())[:8]:
            added = len(fields) if isinstance(fields, list | tuple) else 0
            extra = f" (+{added} field{'s' if added != 1 else ''})" if added else ""
            names.append(_clean(obj, _NAME) + extra)
        rest = len(mappings) - len(names)
        listed = ", ".join(names) + (f", +{rest:,} more" if rest > 0 else "")
        lines.append(f"{len(mappings):,} mapping{'s' if len(mappings) != 1 else ''}: {listed}")
    fingerprint = doc.get("fingerprint") or plan.get("fingerprint")
    if fingerprint:
        lines.append(f"plan fingerprint {_code(fingerprint, 40)}")
    return "\n".join(lines)


def _steps(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return _records(doc.get("steps"))


def _current_step(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    steps = _steps(doc)
    named = doc.get("current_step")
    if named:
        return next((s for s in steps if s.get("name") == named), {"name": named})
    for status in _ACTIVE:
        found = next((s for s in steps if s.get("status") == status), None)
        if found is not None:
            return found
    return next((s for s in steps if s.get("status") not in _DONE), None)


def _outage_text(outage: object, now: float) -> str | None:
    data = outage if isinstance(outage, Mapping) else {}
    started = _float(data.get("started_epoch"))
    if started is None:
        return None
    ended = _float(data.get("ended_epoch"))
    if ended is not None:
        return f":stopwatch: outage lasted {duration(ended - started)}"
    return f":rotating_light: outage running {duration(now - started)}"


def _backlog_text(backlog: object) -> str | None:
    if not isinstance(backlog, Mapping):
        return None
    rows = _int(backlog.get("rows"))
    if rows is None:
        return None
    if rows == 0:
        return ":inbox_tray: write backlog empty"
    oldest = _float(backlog.get("oldest_seconds"))
    age = f", oldest {duration(oldest)}" if oldest is not None else ""
    return f":inbox_tray: write backlog: {rows:,} row{'s' if rows != 1 else ''}{age}"


def _progress_section(doc: Mapping[str, Any], now: float) -> Block | None:
    lines = []
    steps = _steps(doc)
    current = _current_step(doc)
    if steps or current:
        done = sum(1 for s in steps if s.get("status") in _DONE)
        line = f"{done} of {len(steps)} steps done"
        if current is not None:
            status = current.get("status")
            marks = f" ({_clean(status, 20)})" if status else ""
            if current.get("approval"):
                marks += " · needs a second person's approval"
            if current.get("point_of_no_return"):
                marks += " · :warning: point of no return"
            line = f"*Step:* {_clean(current.get('name'), _NAME)}{marks} · {line}"
        lines.append(line)
        failed = [_clean(s.get("name"), _NAME) for s in steps if s.get("status") == "failed"]
        if failed:
            lines.append(":x: failed: " + ", ".join(failed[:10]))
    for text in (_outage_text(doc.get("outage"), now), _backlog_text(doc.get("backlog"))):
        if text:
            lines.append(text)
    ponr = doc.get("point_of_no_return")
    if isinstance(ponr, Mapping):
        lines.append(
            f":warning: *past the point of no return* since {_clock(ponr.get('at'))}: "
            f"no rollback. Go forward: {_clean(ponr.get('forward'), 400)}"
        )
    holder = doc.get("holder")
    if isinstance(holder, Mapping) and holder.get("runner"):
        since = f" since {_clock(holder['since'])}" if holder.get("since") else ""
        lines.append(f":lock: in progress on {_clean(holder['runner'], _NAME)}{since}")
    return _section("\n".join(lines)) if lines else None


def _approval_line(item: Mapping[str, Any], now: float) -> str:
    expires = _epoch(item.get("expires_epoch")) or _epoch(item.get("expires_at"))
    left = _minutes_left(expires, now)
    when = "expired" if left == "expired" else f"expires {left}"
    status = str(item.get("status") or "pending")
    state = "" if status == "pending" else f" ({_clean(status, 20)})"
    return (
        f":raised_hand: {_code(item.get('id') or '?')} *{_clean(item.get('step'), _NAME)}*{state}"
        f" asked by {mention(item.get('requester'))} — {when}"
    )


def _approvals_section(doc: Mapping[str, Any], now: float) -> Block | None:
    items = _records(doc.get("approvals"))
    if not items:
        return None
    lines = ["*Approvals pending*"] + [_approval_line(a, now) for a in items[:_MAX_ITEMS]]
    if len(items) > _MAX_ITEMS:
        lines.append(f"… and {len(items) - _MAX_ITEMS} more")
    return _section("\n".join(lines))


def _ledger_section(doc: Mapping[str, Any]) -> Block | None:
    items = [i for i in _records(doc.get("ledger")) if not i.get("done")]
    if not items:
        return None
    lines = ["*Still to do by people*"]
    for item in items[:_MAX_ITEMS]:
        lines.append(f"• {_clean(item.get('what'), 200)} — owner {mention(item.get('owner'))}")
    if len(items) > _MAX_ITEMS:
        lines.append(f"… and {len(items) - _MAX_ITEMS} more open items")
    return _section("\n".join(lines))


def _connection_group(conn: Mapping[str, Any]) -> _Group:
    addon = f"*{_clean(conn.get('addon') or 'add-on', _NAME)}*"
    if conn.get("error"):
        return _Group(f"{addon} · :warning: could not read it: {_clean(conn['error'])}", [], 0)
    rows = [_row(m.get("object"), m) for m in _records(conn.get("mappings"))]
    parts = [addon]
    if conn.get("addon_state"):
        parts.append(f"add-on {_clean(conn['addon_state'], 40)}")
    if conn.get("state"):
        parts.append(f"connection {_clean(conn['state'], 40)}")
    if conn.get("schema"):
        parts.append(f"schema {_clean(conn['schema'], _NAME)}")
    parts.append(f"{len(rows):,} mapping{'s' if len(rows) != 1 else ''}")
    return _rows_group(" · ".join(parts), rows)


def _status_fallback(doc: Mapping[str, Any], title: str, now: float) -> str:
    plan = _as_dict(doc.get("plan"))
    if not plan:
        return f"{escape(title)}: {_clean(doc.get('message') or 'no plan yet')}"
    parts = [escape(title)]
    current = _current_step(doc)
    steps = _steps(doc)
    if current is not None:
        done = sum(1 for s in steps if s.get("status") in _DONE)
        parts.append(f"step {_clean(current.get('name'), _NAME)} ({done}/{len(steps)} done)")
    outage = _outage_text(doc.get("outage"), now)
    if outage:
        parts.append(outage.split(" ", 1)[1])  # without the emoji
    approvals = _records(doc.get("approvals"))
    if approvals:
        parts.append(f"{len(approvals)} approval{'s' if len(approvals) != 1 else ''} pending")
    return " · ".join(parts)


# -- approvals -------------------------------------------------------------------------------
_DECIDED_TITLES = {
    "pending": "Approval needed",
    "granted": "Approved",
    "used": "Approval used",
    "expired": "Approval expired",
    "superseded": "Approval superseded",
}


def approval_message(
    request: Mapping[str, Any],
    plan: Mapping[str, Any] | None,
    *,
    step_summary: str,
    emoji: str = DEFAULT_EMOJI,
    now: float | None = None,
    decided: bool = False,
) -> Rendered:
    """The request for a second person's reaction: step, plan fingerprint, what will happen,
    who asked, until when, and how to approve. `request` is an ApprovalRequest's model_dump;
    `plan` a Plan's (a Plan model itself is accepted too). With `decided`, the same message
    once decided, from request["status"]: granted, used, expired or superseded (a pending
    request past its expiry shows as expired)."""
    return _approval(request, plan, step_summary, emoji, _now(now), decided=decided)


# The message as edited once the request is decided (what the notifier sends with chat.update).
approval_decided = functools.partial(approval_message, decided=True)


def _emoji_name(emoji: object) -> str:
    name = str(emoji or "").strip(":")
    return name if re.fullmatch(r"[a-z0-9_+\-']{1,64}", name) else DEFAULT_EMOJI


def _approval(
    request: Mapping[str, Any],
    plan: Mapping[str, Any] | None,
    step_summary: str,
    emoji: str,
    now: float,
    *,
    decided: bool,
) -> Rendered:
    req = _as_dict(request)
    plan_data = _as_dict(plan)
    raw_step = str(req.get("step") or "?")
    step = _clean(raw_step, _NAME)
    expires = _epoch(req.get("expires_epoch")) or _epoch(req.get("expires_at"))
    state = str(req.get("status") or "pending") if decided else "pending"
    if decided and state in ("pending", "granted") and expires is not None and expires <= now:
        state = "expired"
    title = _DECIDED_TITLES.get(state, "Approval")

    what = f"*{step}* — {_clean(step_summary, 1500, oneline=False)}"
    if req.get("note"):
        what += f"\n*Note:* {_clean(req['note'])}"
    fields = [
        f"*Plan fingerprint*\n{_code(req.get('fingerprint') or '?', 40)}",
        f"*Asked by*\n{mention(req.get('requester'))}",
        f"*Valid until*\n{_clock(expires, seconds=False)} ({_minutes_left(expires, now)})",
        f"*Request*\n{_code(req.get('id') or '?')}",
    ]
    if req.get("swap_id"):
        fields.append(f"*Swap*\n{_clean(req['swap_id'], _NAME)}")
    if plan_data:
        fields.append(
            f"*Change*\n{_clean(plan_data.get('old_addon'), _NAME)} "
            f"({_clean(plan_data.get('old_schema'), _NAME)}) → "
            f"{_clean(plan_data.get('new_addon'), _NAME)} "
            f"({_clean(plan_data.get('new_schema'), _NAME)})"
        )
    name = _emoji_name(emoji)
    outcome = _decision_line(req, state, expires, now, name)
    blocks = [
        _header(f"{title}: {raw_step}"),
        _section(what),
        _fields(fields),
        _section(outcome),
        _context(f"updated {_clock(now)}"),
    ]
    if state == "pending":
        fallback = (
            f"Approval needed: {step} (plan {_clean(req.get('fingerprint'), 40)}, asked by "
            f"{mention(req.get('requester'))}) — react with :{name}: to approve"
        )
    else:
        fallback = f"{title}: {step} — {outcome}"
    return _finish("approval", fallback, blocks, now)


def _decision_line(
    req: Mapping[str, Any], state: str, expires: float | None, now: float, emoji: str
) -> str:
    approver = mention(req.get("approver")) if req.get("approver") else None
    approved = f"approved by {approver} at {_clock(req.get('granted_at'), seconds=False)}"
    if state == "pending":
        return f"React with :{emoji}: to approve (not the requester; approvers only)"
    if state == "granted":
        return (
            f":white_check_mark: {approved} — usable until "
            f"{_clock(expires, seconds=False)} ({_minutes_left(expires, now)})"
        )
    if state == "used":
        used = _clock(req.get("used_at"), seconds=False)
        return f":white_check_mark: {approved}, used at {used}"
    if state == "expired":
        at = _clock(req.get("expired_at") or expires, seconds=False)
        if approver:
            return f":hourglass: {approved}, but expired unused at {at}: ask for a new approval"
        return f":hourglass: expired at {at} without a second person's approval"
    if state == "superseded":
        newer = req.get("superseded_by")
        by = f" by {_code(newer)}" if newer else ""
        return f":arrows_counterclockwise: superseded{by}: react on the newer request"
    return f"status: {_clean(state, 20)}"


# -- milestones ------------------------------------------------------------------------------
_BROADCAST = {
    "point_of_no_return",
    "outage.started",
    "outage.ended",
    "step.failed",
    "approval.requested",
    "rollback.started",
    "rollback.done",
    "swap.done",
}


def _event(event: object) -> dict[str, Any]:
    data = _as_dict(event)
    if not isinstance(data.get("data"), Mapping):
        data["data"] = {}
    return data


def is_broadcast(event: Mapping[str, Any]) -> bool:
    """Whether the event goes to the whole channel, not only to the swap's thread."""
    ev = _event(event)
    kind = str(ev.get("kind") or "")
    if kind in _BROADCAST:
        return True
    if kind == "step.done":
        return bool(ev["data"].get("point_of_no_return")) or ev.get("step") == "delete-old"
    return False


def _link(url: object, label: object) -> str:
    """`<url|label>` for https links and the local sandbox; anything else as plain text."""
    text = str(url or "")
    try:
        parts = urlsplit(text)
        host = parts.hostname
        credentials = parts.username or parts.password
    except ValueError:
        return _clean(text)
    allowed = (parts.scheme == "https" and bool(host)) or (
        parts.scheme == "http" and host == "127.0.0.1"
    )
    if not allowed or credentials or re.search(r"[\s<>|]", text) or len(text) > 2000:
        return _clean(text)
    return f"<{escape(text)}|{_clean(label or 'open', 80)}>"


def milestone(event: Mapping[str, Any]) -> str:
    """One line of escaped mrkdwn for an engine event (an Event's model_dump), short enough for
    a section. Put it in a mrkdwn object with `verbatim: True`, as `milestone_message` does."""
    return _cut_mrkdwn(_milestone_line(_event(event)), _MILESTONE)


def _milestone_line(ev: dict[str, Any]) -> str:
    kind = str(ev.get("kind") or "")
    data = ev["data"]
    step = f"*{_clean(ev.get('step'), _NAME)}*" if ev.get("step") else "*swap*"
    raw_message = " ".join(str(ev.get("message") or "").split())
    message = _clean(raw_message)
    actor = mention(ev.get("actor")) if ev.get("actor") else None

    def tail(default: str = "") -> str:
        # The engine's message often repeats what the line already says ("outage started").
        return f" — {message}" if message and raw_message != default else ""

    if kind == "step.started":
        return f":arrow_forward: {step} started{tail()}"
    if kind == "step.done":
        return f":white_check_mark: {step} done{tail()}"
    if kind == "step.skipped":
        return f":fast_forward: {step} already done{tail()}"
    if kind == "step.failed":
        return f":x: {step} failed{tail()}"
    if kind == "step.undone":
        return f":leftwards_arrow_with_hook: {step} undone{tail()}"
    if kind == "step.waiting":
        link = data.get("link")
        extra = f" {_link(link, data.get('link_label') or 'open the link')}" if link else ""
        person = f" ({mention(data['person'])})" if data.get("person") else ""
        return f":hourglass: {step} waiting: {message or 'waiting'}{person}{extra}"
    if kind == "approval.requested":
        by = f" by {actor}" if actor else ""
        return f":raised_hand: approval requested for {step}{by}{tail()}"
    if kind == "approval.granted":
        by = f" by {actor}" if actor else ""
        return f":white_check_mark: {step} approved{by}{tail()}"
    if kind == "approval.refused":
        by = f" ({actor})" if actor else ""
        # An unknown request id has no step: name the request, not "swap".
        request = _clean(str(data.get("request_id") or ""), _NAME)
        what = step if ev.get("step") else (f"request {request}" if request else "a request")
        return f":no_entry: approval of {what} refused{by}{tail()}"
    if kind == "approval.expired":
        return f":hourglass_flowing_sand: approval of {step} expired{tail()}"
    if kind == "approval.withdrawn":
        by = f" by {actor}" if actor else ""
        return f":leftwards_arrow_with_hook: approval of {step} withdrawn{by}{tail()}"
    if kind == "outage.started":
        return f":rotating_light: outage started{tail('outage started')}"
    if kind == "outage.ended":
        seconds = _float(data.get("seconds"))
        after = f" after {duration(seconds)}" if seconds is not None else ""
        return f":tada: outage ended{after}{tail('outage ended')}"
    if kind == "point_of_no_return":
        return f":warning: {step} passed the point of no return{tail()}"
    if kind == "rollback.started":
        return f":rewind: rollback started{tail('rollback started')}"
    if kind == "rollback.done":
        return f":leftwards_arrow_with_hook: rollback done{tail('rollback done')}"
    if kind == "swap.done":
        return f":tada: swap done{tail('swap done')}"
    if kind == "load.progress":
        return f":arrows_counterclockwise: {step} {message or 'loading'}"
    if kind == "backlog":
        return f":inbox_tray: write backlog: {message or '?'}"
    if kind == "call":
        return f":gear: {message}"
    if kind == "state.changed":
        return f":information_source: {message or 'state changed'}"
    return f":speech_balloon: {message or _clean(kind, 40)}"


def milestone_message(event: Mapping[str, Any], *, now: float | None = None) -> Rendered:
    """A milestone as a message of its own: one verbatim section."""
    line = milestone(event)
    return _finish("event", line, [_section(line)], _now(now))


# -- progress --------------------------------------------------------------------------------
def progress_message(
    swap_id: str,
    progress: Mapping[str, Any],
    *,
    now: float | None = None,
    detail_hint: str = DETAIL_HINT,
) -> Rendered:
    """The in-thread message edited in place while loads run or the cutover waits."""
    now = _now(now)
    data = progress if isinstance(progress, Mapping) else {}
    rows = _load_rows(data.get("loads"))
    step = data.get("step")
    synced = sum(1 for r in rows if r.synced)
    swap = _clean(swap_id, _NAME)

    lines = [
        f":hourglass_flowing_sand: *{_clean(step, _NAME)}* · swap {swap}"
        if step
        else f"swap {swap}"
    ]
    if rows:
        summary = f"{synced} of {len(rows)} loads in sync"
        total_sf = sum(r.sf or 0 for r in rows if (r.sf or 0) > 0)
        if total_sf:
            total_db = sum(min(r.db or 0, r.sf or 0) for r in rows if (r.sf or 0) > 0)
            summary += f" · overall {bar(100.0 * total_db / total_sf)}"
        lines.append(summary)
    started = _float(data.get("outage_started_epoch"))
    if started is not None:
        lines.append(f":rotating_light: outage running {duration(now - started)}")
    backlog = _backlog_text(data.get("backlog"))
    if backlog:
        lines.append(backlog)

    budget = _Budget()
    head = _section("\n".join(lines))
    budget.take(head)
    listing, hidden, _ = _fit_groups([_rows_group("*Loads*", rows)] if rows else [], budget)
    blocks = [head, *listing]
    more = _more_line(hidden, 0, "", detail_hint)
    if more:
        blocks.append(_context(more))
    updated = _float(data.get("updated_epoch"))
    blocks.append(_context(f"updated {_clock(now if updated is None else updated)}"))

    fallback = f"swap {swap}"
    if step:
        fallback += f": {_clean(step, _NAME)}"
    if rows:
        fallback += f" — {synced} of {len(rows)} loads in sync"
    if started is not None:
        fallback += f", outage running {duration(now - started)}"
    return _finish("progress", fallback, blocks, now)


def _load_rows(loads: object) -> list[_Row]:
    if isinstance(loads, Mapping):
        return [_row(name, item) for name, item in loads.items()]
    if isinstance(loads, list):
        return [
            _row(item.get("object") or item.get("name"), item)
            for item in loads
            if isinstance(item, Mapping)
        ]
    return []


# -- command replies -------------------------------------------------------------------------
_REPLY_ICONS = {
    "done": ":white_check_mark:",
    "skipped": ":fast_forward:",
    "dry-run": ":mag:",
    "waiting": ":hourglass:",
    "refused": ":no_entry:",
    "failed": ":x:",
}


def reply(result: Mapping[str, Any]) -> Rendered:
    """The answer to one command for the person who gave it: outcome, message, the calls a dry
    run would make, and any preformatted text (history, plan show) in code blocks."""
    data = _as_dict(result)
    status = str(data.get("status") or "done")
    icon = _REPLY_ICONS.get(status, ":speech_balloon:")
    command = _clean(data.get("command") or "/hcswap", 200)
    message = _clean(data.get("message"), 2500, oneline=False)
    head = f"{icon} *{command}* {_clean(status, 20)}" + (f" — {message}" if message else "")

    budget = _Budget()
    blocks = [_section(head)]
    budget.take(*blocks)
    calls = [str(c) for c in _sequence(data.get("calls"))]
    if calls:
        shown_calls = calls[:_MAX_CALLS]
        code, shown = _code_sections(shown_calls, budget, _MAX_CODE_BLOCKS)
        blocks.extend(code)
        if shown < len(calls):
            blocks.append(_context(f"… {len(calls) - shown:,} more"))
    text = data.get("text")
    if text:
        lines = str(text).splitlines() or [" "]
        room = _MAX_CODE_BLOCKS - len(blocks)
        code, shown = _code_sections(lines, budget, max(0, room))
        blocks.extend(code)
        if shown < len(lines):
            blocks.append(
                _context(f"… truncated: {len(lines) - shown:,} more lines not shown here")
            )
    plain_message = _clean(data.get("message"), 300)
    fallback = f"{command} {_clean(status, 20)}" + (f": {plain_message}" if plain_message else "")
    return _finish("reply", fallback, blocks, time.time())


def usage(help_text: str) -> Rendered:
    """The help text, preformatted."""
    lines = str(help_text or "").splitlines() or ["/hcswap help"]
    budget = _Budget()
    blocks, shown = _code_sections(lines, budget, _MAX_CODE_BLOCKS)
    if shown < len(lines):
        blocks.append(_context(f"… {len(lines) - shown:,} more lines: run `hcswap help`"))
    # The fallback is what a notification shows: the first line says what was wrong.
    fallback = _clean(lines[0], 300)
    return _finish("usage", fallback, blocks or [_section("/hcswap help")], time.time())


_CHANNEL_LINK = re.compile(r"&lt;#([CG][A-Z0-9]{2,31})&gt;")


def refusal(reason: str) -> Rendered:
    """Why a command was not run (not an approver, wrong channel, …). The one sequence left
    live is a link to a channel by its id (`<#C…>`): it names where to go, and pings no one."""
    text = _CHANNEL_LINK.sub(r"<#\1>", _clean(reason or "refused", 1000, oneline=False))
    return _finish("refusal", text, [_section(f":no_entry: {text}")], time.time())
