"""The Block Kit kit: Slack's limits, block builders, the text budget, and the last guard.

Limits are Slack's, from https://api.slack.com/reference/block-kit/blocks; every renderer ends
in `_finish`, which checks its message with `check_limits` before it can be sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from swapbot.slack.blocks.text import _cut, _cut_mrkdwn, _fence_safe, escape, split_mrkdwn

# One logger for the package, under the name the module had before it was split.
log = logging.getLogger(__package__)

Block = dict[str, Any]
Rendered = tuple[str, list[Block]]

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

_BUDGET = 11_000  # what renderers fill, leaving headroom under MAX_TOTAL_TEXT
_TAIL = 800  # kept back for the closing context lines ("… and N more", "updated …")
_CONTEXT_TEXT = 2000  # our cap for one context element


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
        blocks = [_section(text)]
    return text, blocks


# -- limits ----------------------------------------------------------------------------------
def check_limits(blocks: Sequence[Mapping[str, Any]], text: str | None = None) -> None:
    """Raise ValueError naming every Block Kit limit the message breaks."""
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


def _fits(obj: Mapping[str, Any], limit: int) -> bool:
    """Whether a text object's text is 1 to `limit` characters."""
    return 0 < len(obj.get("text") or "") <= limit


def _block_id_problems(block_id: object, seen: set[str]) -> Iterator[str]:
    if block_id is None:
        return
    if not isinstance(block_id, str) or not 0 < len(block_id) <= MAX_BLOCK_ID:
        yield f"block_id must be 1 to {MAX_BLOCK_ID} characters"
    elif block_id in seen:
        yield f"block_id {block_id!r} is not unique"
    else:
        seen.add(block_id)


def _header_problems(block: Mapping[str, Any]) -> Iterator[str]:
    obj = block.get("text") or {}
    if obj.get("type") != "plain_text":
        yield "header text must be plain_text"
    if not _fits(obj, MAX_HEADER_TEXT):
        yield f"header text must be 1 to {MAX_HEADER_TEXT} characters"


def _section_problems(block: Mapping[str, Any]) -> Iterator[str]:
    obj, fields = block.get("text"), block.get("fields")
    if obj is None and not fields:
        yield "section needs text or fields"
    if obj is not None and not _fits(obj, MAX_SECTION_TEXT):
        yield f"section text must be 1 to {MAX_SECTION_TEXT} characters"
    if fields is not None:
        if len(fields) > MAX_FIELDS:
            yield f"{len(fields)} fields (at most {MAX_FIELDS})"
        for field in fields:
            if not _fits(field, MAX_FIELD_TEXT):
                yield f"field text must be 1 to {MAX_FIELD_TEXT} characters"


def _context_problems(block: Mapping[str, Any]) -> Iterator[str]:
    elements = block.get("elements") or []
    if not 0 < len(elements) <= MAX_CONTEXT_ELEMENTS:
        yield f"context needs 1 to {MAX_CONTEXT_ELEMENTS} elements"
    for element in elements:
        if element.get("type") in ("mrkdwn", "plain_text") and not _fits(element, MAX_SECTION_TEXT):
            yield f"context text must be 1 to {MAX_SECTION_TEXT} characters"


# The limits checked per block type; other types (divider, …) have none we use.
_TYPE_PROBLEMS: dict[str, Callable[[Mapping[str, Any]], Iterator[str]]] = {
    "header": _header_problems,
    "section": _section_problems,
    "context": _context_problems,
}


def _block_problems(block: Mapping[str, Any], seen: set[str]) -> Iterator[str]:
    yield from _block_id_problems(block.get("block_id"), seen)
    kind = block.get("type")
    # A malformed block may carry an unhashable type: it has no checks, like any unknown type.
    check = _TYPE_PROBLEMS.get(kind) if isinstance(kind, str) else None
    if check is not None:
        yield from check(block)


# -- packing ---------------------------------------------------------------------------------
def chunks(text: str, limit: int = MAX_SECTION_TEXT) -> list[str]:
    """`split_mrkdwn`'s chunks as a block shows them: without the newline a cut leaves at the
    end of a chunk, and none that is only white space."""
    stripped = (c.rstrip("\n") for c in split_mrkdwn(text, limit))
    return [c for c in stripped if c.strip()]


def _pack(lines: Iterable[str], limit: int = MAX_SECTION_TEXT) -> list[str]:
    """Join lines into as few texts of at most `limit` characters as they fit in; a line
    longer than `limit` is split (`split_mrkdwn`), never cut short."""
    return chunks("\n".join(lines), limit)


def _code_text(lines: Sequence[str]) -> str:
    """Preformatted lines as one ``` block of escaped text (a ``` in a line cannot close it)."""
    return "```\n" + "\n".join(_fence_safe(escape(line)) for line in lines) + "\n```"


def _code_sections(
    lines: Sequence[str], budget: _Budget, max_blocks: int
) -> tuple[list[Block], int]:
    """Lines in ``` sections of at most 3000 characters, as many as fit; and how many lines
    are shown whole."""
    blocks: list[Block] = []
    shown = 0
    for chunk in chunks(_code_text(lines)):
        if len(blocks) >= max_blocks:
            break
        block = _section(chunk)
        if not budget.take(block):
            break
        blocks.append(block)
        # Each line ends in a newline; the block's own opening fence is followed by one too.
        shown += chunk.count("\n") - (1 if chunk.startswith("```\n") else 0)
    return blocks, min(shown, len(lines))
