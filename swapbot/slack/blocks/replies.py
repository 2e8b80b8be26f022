"""Answers to slash commands: the outcome of a command, the help text, and refusals."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from swapbot.slack.blocks.kit import Rendered, _Budget, _code_sections, _context, _finish, _section
from swapbot.slack.blocks.text import _as_dict, _clean, _sequence

_MAX_CALLS = 40  # dry-run calls listed in a reply
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


def refusal(reason: str) -> Rendered:
    """Why a command was not run (not an approver, wrong channel, …). The one sequence left
    live is a link to a channel by its id (`<#C…>`): it names where to go, and pings no one."""
    text = _CHANNEL_LINK.sub(r"<#\1>", _clean(reason or "refused", 1000, oneline=False))
    return _finish("refusal", text, [_section(f":no_entry: {text}")], time.time())
