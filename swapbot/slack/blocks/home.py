"""The App Home tab (`views.publish`, a view of type home): the current swap's card, the last
few swaps in a line each, and the report of the most recent swap that is done.

Pure, as the rest of `blocks`: facts in (`HomeFacts`, gathered by `swapbot.slack.home`), a view
out. The current swap is drawn by the card's own renderer (`status.progress_message`) from the
view the notifier draws the channel's card from, so the two always say the same thing.

No buttons. A click in the Home tab comes with no channel, and every swapbot button is
authorized as the command it stands for, with steps and approvals taken only in the swap
channel, where the team sees them (`swapbot.slack.access`); a Refresh is opening the tab again.
So the Home tab shows, and points at the channel for anything to do.

Slack's limits for a Home view (https://docs.slack.dev/reference/views/home-tab-views): at most
100 blocks, and views.publish refuses a view over 250 kB (`view_too_large`). Each block keeps
Block Kit's own limits (`kit.check_limits`); the report is cut into ``` sections by
`split_mrkdwn` (`kit._code_sections`) and stops, saying how many lines are left out, when it
would break either.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from swapbot.slack.blocks.kit import (
    Block,
    _Budget,
    _code_sections,
    _context,
    _header,
    _section,
    check_limits,
    log,
)
from swapbot.slack.blocks.status import progress_message
from swapbot.slack.blocks.text import _NAME, _clean, _clock, _code, _now, date_token, duration

MAX_HOME_BLOCKS = 100
MAX_VIEW_BYTES = 250_000
# What the view's texts may fill: a 300-table report is about 30,000 characters. Well under
# 250 kB whatever JSON makes of them (a non-ASCII character can take six bytes).
_TEXT_BUDGET = 60_000
_TAIL = 2  # blocks kept back for the closing lines ("… N more lines", "drawn at …")
CALLBACK_ID = "swapbot-home"

_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,31}")
_STATE_ICONS = {
    "done": ":white_check_mark:",
    "rolled back": ":leftwards_arrow_with_hook:",
    "in progress": ":hourglass_flowing_sand:",
    "left unfinished": ":grey_question:",
}


@dataclass(frozen=True)
class SwapLine:
    """One swap as the list of recent swaps shows it. `state` is done, rolled back, in progress
    (the current swap) or left unfinished (another swap became current before it ended)."""

    swap_id: str
    app: str | None
    state: str
    outage_started: float | None = None
    outage_ended: float | None = None
    ended_at: float | None = None  # when it was done or rolled back


@dataclass(frozen=True)
class ReportText:
    """The report of a swap that is done, as `swapbot.swap.report.render` writes it."""

    swap_id: str
    done_at: float | None
    text: str


@dataclass(frozen=True)
class HomeFacts:
    """What a reader's Home tab shows. `card` is the current swap's id and the view the
    notifier draws its card from (`swapbot.slack.notifier.standing` and `card_facts`)."""

    channel: str | None
    card: tuple[str, Mapping[str, Any]] | None
    swaps: Sequence[SwapLine]
    report: ReportText | None


def home_view(facts: HomeFacts, *, now: float | None = None) -> dict[str, Any]:
    """The Home tab of someone who may read the swap's status."""
    now = _now(now)
    where = _channel(facts.channel)
    budget = _Budget(chars=_TEXT_BUDGET, blocks=MAX_HOME_BLOCKS - _TAIL)
    blocks = [
        _header("swapbot"),
        _context(
            "What `/hcswap status` shows you, drawn when you opened this tab. Nothing here can "
            f"be clicked: steps, approvals and Refresh are on the swap's card in {where}."
        ),
    ]
    budget.take(*blocks)
    for part in (_current(facts, now), _recent(facts.swaps, now)):
        if budget.take(*part):  # the card and the list are small: they always fit
            blocks += part
    closing = _report(facts.report, where, budget)
    return _view(blocks + closing, now)


def stranger_view(
    channel: str | None, *, checked: bool = True, now: float | None = None
) -> dict[str, Any]:
    """The Home tab of someone who may not read the swap's status: who may, and where. With
    `checked=False`, Slack could not say whether they are in the swap channel just now."""
    where = _channel(channel)
    if checked:
        text = (
            ":lock: You are not one of swapbot's readers, so this tab shows nothing of the "
            f"swaps. Swap status is shared with the members of {where} and with swapbot's "
            "operators and approvers."
        )
    else:
        text = (
            f":warning: swapbot could not check just now that you are in {where}, where swap "
            "status is shared. Open this tab again in a minute."
        )
    return _view([_header("swapbot"), _section(text)], _now(now))


def failed_view(why: str, *, now: float | None = None) -> dict[str, Any]:
    """What the tab says when it could not be drawn: why, in one line (secrets masked)."""
    text = (
        f":x: swapbot could not draw this tab: {_clean(why, 300)}. Open it again in a minute; "
        "`/hcswap status` in the swap channel says where the swap stands."
    )
    return _view([_header("swapbot"), _section(text)], _now(now))


def check_view(view: Mapping[str, Any]) -> None:
    """Raise ValueError naming every limit of a Home view that `view` breaks."""
    problems = []
    blocks = view.get("blocks") or []
    if view.get("type") != "home":
        problems.append("the view must be of type home")
    if not 0 < len(blocks) <= MAX_HOME_BLOCKS:
        problems.append(f"{len(blocks)} blocks (1 to {MAX_HOME_BLOCKS})")
    ids = [b.get("block_id") for b in blocks]
    if len(set(ids)) != len(ids):
        problems.append("block ids are not unique")
    for i, block in enumerate(blocks):
        try:
            check_limits([block])  # each block's own limits, as in a message
        except ValueError as exc:
            problems.append(f"block {i}: {exc}")
    size = len(json.dumps(view))
    if size > MAX_VIEW_BYTES:
        problems.append(f"{size:,} bytes (at most {MAX_VIEW_BYTES:,})")
    if problems:
        raise ValueError("; ".join(problems))


# -- the parts -------------------------------------------------------------------------------
def _current(facts: HomeFacts, now: float) -> list[Block]:
    head = _header("Current swap")
    if facts.card is None:
        return [head, _section("No swap is in progress: `/hcswap plan new` starts one.")]
    swap_id, view = facts.card
    _, card = progress_message(swap_id, view, now=now)  # the channel's card, as it is now
    return [head, *card]


def _recent(swaps: Sequence[SwapLine], now: float) -> list[Block]:
    head: list[Block] = [{"type": "divider"}, _header("Recent swaps")]
    if not swaps:
        return [*head, _section("No swap yet.")]
    return [*head, _section("\n".join(_line(s, now) for s in swaps))]


def _line(swap: SwapLine, now: float) -> str:
    """`acme-1` · acme-prod · done 3 Dec 14:02 · outage 4m 10s"""
    parts = [f"{_STATE_ICONS.get(swap.state, '')} {_code(swap.swap_id)}".strip()]
    if swap.app:
        parts.append(_clean(swap.app, _NAME))
    ended = f" {date_token(swap.ended_at, '{date_short} {time}')}" if swap.ended_at else ""
    parts.append(_clean(swap.state, 20) + ended)
    outage = _outage(swap, now)
    if outage:
        parts.append(outage)
    return " · ".join(parts)


def _outage(swap: SwapLine, now: float) -> str | None:
    if swap.outage_started is None:
        return None
    if swap.outage_ended is not None:
        return f"outage {duration(swap.outage_ended - swap.outage_started)}"
    if swap.state == "in progress":
        return f"outage running {duration(now - swap.outage_started)}"
    return "outage not over"


def _report(report: ReportText | None, where: str, budget: _Budget) -> list[Block]:
    """The report's heading and its text in ``` sections, as many as fit; and the closing
    lines (what was left out, when the tab was drawn), which the budget kept room for."""
    if report is None:
        return []
    head: list[Block] = [{"type": "divider"}, _header(f"Report of swap {report.swap_id}")]
    if report.done_at is not None:
        head.append(_context(f"done {date_token(report.done_at, '{date_short} {time}')}"))
    if not budget.take(*head):
        return []
    lines = report.text.splitlines() or [" "]
    sections, shown = _code_sections(lines, budget, budget.blocks)
    blocks = head + sections
    if shown < len(lines):
        blocks.append(
            _context(
                f"… {len(lines) - shown:,} more lines not shown here: the swap's thread in "
                f"{where} has the report whole."
            )
        )
    return blocks


def _channel(channel: str | None) -> str:
    """The swap channel as a link (an id never pings), else its name in words."""
    if channel and _CHANNEL_ID.fullmatch(channel):
        return f"<#{channel}>"
    return "the swap channel"


def _view(blocks: list[Block], now: float) -> dict[str, Any]:
    """The view with a block id unique to each block, checked against Slack's limits."""
    stamp = format(int(now * 1000), "x")[-10:]
    blocks = [*blocks, _context(f"drawn {_clock(now)}; open the tab again to draw it anew")]
    for i, block in enumerate(blocks):
        block["block_id"] = f"home-{i}-{stamp}"
    view = {"type": "home", "callback_id": CALLBACK_ID, "blocks": blocks}
    try:
        check_view(view)
    except ValueError:
        # A bug here must not leave the person an empty tab: say less, but say something.
        log.exception("the Home view broke Slack's limits; publishing a short one")
        fallback = _section(":warning: This tab could not be drawn in full: see the swap channel.")
        view["blocks"] = [{**fallback, "block_id": f"home-0-{stamp}"}]
    return view
