"""Answers to slash commands: the outcome of a command, the help text, and refusals.

`reply` is one message (what does not fit is counted in its last line); `reply_pages` is the
same answer whole, in as many messages as it takes (a long report, history or dry run).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from swapbot.slack.blocks.kit import (
    Block,
    Rendered,
    _Budget,
    _code_sections,
    _code_text,
    _context,
    _finish,
    _section,
    chunks,
)
from swapbot.slack.blocks.text import _as_dict, _clean, _sequence, date_times, name_people

_MAX_CALLS = 40  # dry-run calls listed in a one-message reply
_MAX_CODE_BLOCKS = 40

_REPLY_ICONS = {
    "done": ":white_check_mark:",
    "skipped": ":fast_forward:",
    "dry-run": ":mag:",
    "waiting": ":hourglass:",
    "refused": ":no_entry:",
    "failed": ":x:",
}

_CHANNEL_LINK = re.compile(r"&lt;#([CG][A-Z0-9]{2,31})&gt;")


@dataclass
class _Answer:
    """A command's answer, rendered: its head, and its calls and text as lines."""

    command: str
    head: str
    fallback: str
    calls: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _answer(result: Mapping[str, Any]) -> _Answer:
    data = _as_dict(result)
    people = [str(p) for p in _sequence(data.get("people"))]
    status = str(data.get("status") or "done")
    icon = _REPLY_ICONS.get(status, ":speech_balloon:")
    now = time.time()
    # The command is what the person typed (a note, a plan's values): escaped, never a ping.
    command = _clean(data.get("command") or "/hcswap", 200)
    message = _live(_clean(data.get("message"), 2500, oneline=False), people, now)
    head = f"{icon} *{command}* {_clean(status, 20)}" + (f" — {message}" if message else "")
    plain_message = _live(_clean(data.get("message"), 300), people, now)
    fallback = f"{command} {_clean(status, 20)}" + (f": {plain_message}" if plain_message else "")
    text = data.get("text")
    return _Answer(
        command=command,
        head=head,
        fallback=fallback,
        calls=[str(c) for c in _sequence(data.get("calls"))],
        lines=(str(text).splitlines() or [" "]) if text else [],
    )


def _live(text: str, people: Iterable[str], now: float) -> str:
    """Escaped text with the people it names as mentions and its times as date tokens."""
    return name_people(date_times(text, now), people)


def reply(result: Mapping[str, Any]) -> Rendered:
    """The answer to one command for the person who gave it, in one message: outcome, message,
    the calls a dry run would make, and any preformatted text (history, plan show) in code
    blocks. `people`: member ids the message may name, shown as mentions; the times it names
    are date tokens."""
    answer = _answer(result)
    budget = _Budget()
    blocks = [_section(answer.head)]
    budget.take(*blocks)
    calls = answer.calls
    if calls:
        code, shown = _code_sections(calls[:_MAX_CALLS], budget, _MAX_CODE_BLOCKS)
        blocks.extend(code)
        if shown < len(calls):
            blocks.append(_context(f"… {len(calls) - shown:,} more"))
    lines = answer.lines
    if lines:
        room = _MAX_CODE_BLOCKS - len(blocks)
        code, shown = _code_sections(lines, budget, max(0, room))
        blocks.extend(code)
        if shown < len(lines):
            blocks.append(
                _context(f"… truncated: {len(lines) - shown:,} more lines not shown here")
            )
    return _finish("reply", answer.fallback, blocks, time.time())


def reply_pages(result: Mapping[str, Any]) -> list[Rendered]:
    """The whole answer, every call and every line of its text, in as many messages as it
    takes: each within Slack's limits, marked "part k of n" when there are several."""
    answer = _answer(result)
    sections = [
        _section(chunk) for lines in (answer.calls, answer.lines) if lines
        for chunk in chunks(_code_text(lines))
    ]  # fmt: skip
    pages: list[list[Block]] = [[_section(chunk) for chunk in chunks(answer.head)]]
    budget = _Budget()
    budget.take(*pages[0])
    for section in sections:
        if not budget.take(section):
            pages.append([])
            budget = _Budget()
            budget.take(section)  # a section always fits an empty page
        pages[-1].append(section)
    now = time.time()
    total = len(pages)
    rendered = []
    for k, blocks in enumerate(pages, 1):
        if total > 1:
            more = " — continued in the next message" if k < total else ""
            blocks.append(_context(f"part {k} of {total}{more}"))
        fallback = answer.fallback if k == 1 else f"{answer.command} (part {k} of {total})"
        rendered.append(_finish("reply", fallback, blocks, now))
    return rendered


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


def refusal(reason: str, people: Iterable[str] = ()) -> Rendered:
    """Why a command was not run (not an approver, wrong channel, …). The sequences left live
    are a link to a channel by its id (`<#C…>`: it names where to go, and pings no one) and
    mentions of the people it names (`people`, or words that can only be member ids); its
    times are date tokens."""
    text = _CHANNEL_LINK.sub(r"<#\1>", _clean(reason or "refused", 1000, oneline=False))
    now = time.time()
    text = _live(text, people, now)
    return _finish("refusal", text, [_section(f":no_entry: {text}")], now)
