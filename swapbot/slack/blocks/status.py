"""The live views of a swap: the channel's status card and the in-thread progress message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swapbot.slack.blocks.card import card_actions, plan_button
from swapbot.slack.blocks.kit import (
    Block,
    Rendered,
    _Budget,
    _context,
    _finish,
    _header,
    _section,
)
from swapbot.slack.blocks.rows import (
    _fit_groups,
    _Group,
    _load_rows,
    _more_line,
    _row,
    _rows_group,
)
from swapbot.slack.blocks.text import (
    _NAME,
    _as_dict,
    _clean,
    _clock,
    _code,
    _float,
    _int,
    _now,
    _plan_move,
    bar,
    duration,
    escape,
    mention,
)
from swapbot.swap.approvals import ApprovalRequest
from swapbot.swap.views import Connection, LedgerRow, Status, StepRow

# Every mapping is in the terminal's JSON: Slack passes no options to a slash command's
# answer, so the hint names the one-off dyno's command (docs/operator-guide.md §11).
DETAIL_HINT = "heroku run swapbot hcswap status --json"

_MAX_CONNECTIONS = 10
_MAX_ITEMS = 5  # approvals, ledger items listed in a status message
_DONE = ("done", "skipped")  # tuples: a malformed status may be unhashable
_ACTIVE = ("failed", "waiting", "running")


# -- status ----------------------------------------------------------------------------------
def status_message(
    doc: Status, *, now: float | None = None, detail_hint: str = DETAIL_HINT
) -> Rendered:
    """The channel's status card: the plan, where the swap stands, approvals, and per Heroku
    Connect add-on its state and mappings (summarised when there are many)."""
    now = _now(now)
    plan = doc.plan
    if plan is not None:
        title = f"Heroku Connect swap — {plan.swap_id}"
    else:
        title = f"Heroku Connect — {doc.app}" if doc.app else "Heroku Connect"

    budget = _Budget()
    top: list[Block] = []
    for block in (
        _header(title),
        _channel_warning(doc),
        _section(_plan_text(doc)),
        _progress_section(doc, now),
        _approvals_section(doc.approvals, now),
    ):
        if block is not None and budget.take(block):
            top.append(block)
    ledger = _ledger_section(doc.ledger)
    if ledger is not None and not budget.take(ledger):
        ledger = None

    connections = doc.connections or []
    divider: Block = {"type": "divider"}
    if connections and budget.take(divider):
        top.append(divider)
    groups = [_connection_group(c) for c in connections[:_MAX_CONNECTIONS]]
    listing, hidden, dropped = _fit_groups(groups, budget)
    skipped = connections[_MAX_CONNECTIONS:]
    hidden += sum(len(c.mappings) for c in skipped)
    dropped += len(skipped)

    blocks = top + listing
    if ledger is not None:
        blocks.append(ledger)
    more = _more_line(hidden, dropped, "add-ons", detail_hint)
    if more:
        blocks.append(_context(more))
    blocks.append(_context(f"updated {_clock(now)}"))
    if plan is None:  # nothing planned: the form is one click away (operators)
        blocks.append({"type": "actions", "elements": [plan_button()]})
    return _finish("status", _status_fallback(doc, title, now), blocks, now)


def _channel_warning(doc: Status) -> Block | None:
    if doc.bot_in_channel is not False:
        return None
    return _section(
        ":warning: I am not in the swap channel, so progress cannot be posted there: "
        "invite the bot with `/invite @swapbot`"
    )


def _plan_text(doc: Status) -> str:
    plan = doc.plan
    if plan is None:
        head = f"*{_clean(doc.app, _NAME)}* · " if doc.app else ""
        return head + _clean(doc.message or "no plan yet")
    lines = [f"*{_clean(plan.app, _NAME)}* · {_plan_move(plan)}"]
    if plan.mappings:
        names = []
        for obj, fields in list(plan.mappings.items())[:8]:
            added = len(fields)
            extra = f" (+{added} field{'s' if added != 1 else ''})" if added else ""
            names.append(_clean(obj, _NAME) + extra)
        rest = len(plan.mappings) - len(names)
        listed = ", ".join(names) + (f", +{rest:,} more" if rest > 0 else "")
        count = len(plan.mappings)
        lines.append(f"{count:,} mapping{'s' if count != 1 else ''}: {listed}")
    if doc.fingerprint:
        lines.append(f"plan fingerprint {_code(doc.fingerprint, 40)}")
    return "\n".join(lines)


def _done_count(steps: list[StepRow]) -> int:
    return sum(1 for s in steps if s.status in _DONE)


def _current_step(doc: Status) -> StepRow | None:
    steps = doc.steps
    named = doc.current_step
    if named:
        found = next((s for s in steps if s.name == named), None)
        return found or StepRow(name=named, phase="", status="")
    for status in _ACTIVE:
        active = next((s for s in steps if s.status == status), None)
        if active is not None:
            return active
    return next((s for s in steps if s.status not in _DONE), None)


def _outage_text(started: object, ended: object, now: float) -> str | None:
    """The outage's clock: running (since when) between its start and its end, then its final
    figure and when it ended; the times as date tokens."""
    begun, over = _float(started), _float(ended)  # None when not finite
    if begun is None:
        return None
    if over is not None:
        return f":stopwatch: outage {duration(over - begun)}, ended {_clock(over)}"
    return f":rotating_light: outage running {duration(now - begun)} (since {_clock(begun)})"


def _backlog_text(rows: int | None, oldest: float | None) -> str | None:
    oldest = _float(oldest)
    if rows is None:
        return None
    if rows == 0:
        return ":inbox_tray: write backlog empty"
    age = f", oldest {duration(oldest)}" if oldest is not None else ""
    return f":inbox_tray: write backlog: {rows:,} row{'s' if rows != 1 else ''}{age}"


def _step_line(steps: list[StepRow], current: StepRow | None) -> str:
    line = f"{_done_count(steps)} of {len(steps)} steps done"
    if current is None:
        return line
    marks = f" ({_clean(current.status, 20)})" if current.status else ""
    if current.approval:
        marks += " · needs a second person's approval"
    if current.point_of_no_return:
        marks += " · :warning: point of no return"
    return f"*Step:* {_clean(current.name, _NAME)}{marks} · {line}"


def _progress_section(doc: Status, now: float) -> Block | None:
    lines = []
    steps = doc.steps
    current = _current_step(doc)
    if steps or current:
        lines.append(_step_line(steps, current))
        failed = [_clean(s.name, _NAME) for s in steps if s.status == "failed"]
        if failed:
            lines.append(":x: failed: " + ", ".join(failed[:10]))
    outage, backlog = doc.outage, doc.backlog
    for text in (
        _outage_text(outage.started_epoch, outage.ended_epoch, now) if outage else None,
        _backlog_text(backlog.rows, backlog.oldest_seconds) if backlog else None,
    ):
        if text:
            lines.append(text)
    ponr = doc.point_of_no_return
    if ponr is not None:
        lines.append(
            f":warning: *past the point of no return* since {_clock(ponr.at)}: "
            f"no rollback. Go forward: {_clean(ponr.forward, 400)}"
        )
    holder = doc.holder
    if holder is not None and holder.runner:
        since = f" since {_clock(holder.since)}" if holder.since else ""
        lines.append(f":lock: in progress on {_clean(holder.runner, _NAME)}{since}")
    return _section("\n".join(lines)) if lines else None


def _approval_line(item: ApprovalRequest, now: float) -> str:
    expires = _float(item.expires_epoch)
    if expires is None:
        when = "no expiry given"
    else:
        when = "expired" if expires <= now else f"expires {_clock(expires, seconds=False)}"
    state = "" if item.status == "pending" else f" ({_clean(item.status, 20)})"
    return (
        f":raised_hand: {_code(item.id or '?')} *{_clean(item.step, _NAME)}*{state}"
        f" asked by {mention(item.requester)} — {when}"
    )


def _approvals_section(items: list[ApprovalRequest], now: float) -> Block | None:
    if not items:
        return None
    lines = ["*Approvals pending*"] + [_approval_line(a, now) for a in items[:_MAX_ITEMS]]
    if len(items) > _MAX_ITEMS:
        lines.append(f"… and {len(items) - _MAX_ITEMS} more")
    return _section("\n".join(lines))


def _ledger_section(ledger: list[LedgerRow]) -> Block | None:
    items = [i for i in ledger if not i.done]
    if not items:
        return None
    lines = ["*Still to do by people*"]
    for item in items[:_MAX_ITEMS]:
        lines.append(f"• {_clean(item.what, 200)} — owner {mention(item.owner)}")
    if len(items) > _MAX_ITEMS:
        lines.append(f"… and {len(items) - _MAX_ITEMS} more open items")
    return _section("\n".join(lines))


def _connection_group(conn: Connection) -> _Group:
    addon = f"*{_clean(conn.addon or 'add-on', _NAME)}*"
    if conn.error is not None:
        return _Group(f"{addon} · :warning: could not read it: {_clean(conn.error)}", [], 0)
    rows = [_row(m.object, m.model_dump()) for m in conn.mappings]
    parts = [addon]
    if conn.addon_state:
        parts.append(f"add-on {_clean(conn.addon_state, 40)}")
    if conn.state:
        parts.append(f"connection {_clean(conn.state, 40)}")
    if conn.schema_name:
        parts.append(f"schema {_clean(conn.schema_name, _NAME)}")
    parts.append(f"{len(rows):,} mapping{'s' if len(rows) != 1 else ''}")
    return _rows_group(" · ".join(parts), rows)


def _status_fallback(doc: Status, title: str, now: float) -> str:
    if doc.plan is None:
        return f"{escape(title)}: {_clean(doc.message or 'no plan yet')}"
    parts = [escape(title)]
    current = _current_step(doc)
    if current is not None:
        done = _done_count(doc.steps)
        parts.append(f"step {_clean(current.name, _NAME)} ({done}/{len(doc.steps)} done)")
    outage = doc.outage
    text = _outage_text(outage.started_epoch, outage.ended_epoch, now) if outage else None
    if text:
        parts.append(text.split(" ", 1)[1])  # without the emoji
    if doc.approvals:
        count = len(doc.approvals)
        parts.append(f"{count} approval{'s' if count != 1 else ''} pending")
    return " · ".join(parts)


# -- progress --------------------------------------------------------------------------------
_PHASE_ICONS = {
    "prep": ":hourglass_flowing_sand:",
    "outage": ":rotating_light:",
    "after the outage": ":hourglass_flowing_sand:",
    "done": ":tada:",
    "rolling back": ":rewind:",
    "rolled back": ":leftwards_arrow_with_hook:",
}


def progress_message(
    swap_id: str,
    progress: Mapping[str, Any],
    *,
    now: float | None = None,
    detail_hint: str = DETAIL_HINT,
) -> Rendered:
    """The in-thread message edited in place while loads run and through the cutover: the
    phase (prep, outage, after the outage, done, rolling back, rolled back), the step running
    now (else the last one done and the next), the loads, the outage's clock (running only
    between its start and its end, then its final figure) and the write backlog.

    `progress` holds `phase`, `step` (the step running, or None) with `step_state` and
    `step_since`, `last_done`, `next` with `next_state`, `outage_started_epoch`,
    `outage_ended_epoch`, `loads` and `backlog`; any may be missing.

    As the swap's live card it also shows the pending `approvals` (each with its expiry), who
    a waiting step waits on (`waiting_on`, a mention) and, with `buttons`, the card's buttons
    (`swapbot.slack.blocks.card`: they read `swap_id`, `fingerprint`, `next_approval`)."""
    now = _now(now)
    data = progress if isinstance(progress, Mapping) else {}
    rows = _load_rows(data.get("loads"))
    synced = sum(1 for r in rows if r.synced)
    swap = _clean(swap_id, _NAME)
    phase = _phase(data)

    lines = [f"{_PHASE_ICONS.get(phase, ':hourglass_flowing_sand:')} swap {swap} · *{phase}*"]
    lines += [_clean(data["change"], 300)] if data.get("change") else []
    step = _progress_step(data, phase)
    if step:
        lines.append(step)
    waiting_on = data.get("waiting_on")
    if data.get("step") and data.get("step_state") == "waiting" and waiting_on:
        lines.append(f":bust_in_silhouette: waiting on {mention(waiting_on)}")
    if rows:
        summary = f"{synced} of {len(rows)} loads in sync"
        total_sf = sum(r.sf or 0 for r in rows if (r.sf or 0) > 0)
        if total_sf:
            total_db = sum(min(r.db or 0, r.sf or 0) for r in rows if (r.sf or 0) > 0)
            summary += f" · overall {bar(100.0 * total_db / total_sf)}"
        lines.append(summary)
    outage = _outage_text(data.get("outage_started_epoch"), data.get("outage_ended_epoch"), now)
    if outage:
        lines.append(outage)
    found = _as_dict(data.get("backlog"))
    backlog = _backlog_text(_int(found.get("rows")), _float(found.get("oldest_seconds")))
    if backlog:
        lines.append(backlog)

    budget = _Budget()
    head = _section("\n".join(lines))
    budget.take(head)
    # The buttons and the approvals come before the loads: the listing shortens, they never go.
    actions = card_actions(data) if data.get("buttons") else None
    if actions is not None and not budget.take(actions):
        actions = None
    approvals = _approvals_section(_approval_items(data.get("approvals")), now)
    if approvals is not None and not budget.take(approvals):
        approvals = None
    listing, hidden, _ = _fit_groups([_rows_group("*Loads*", rows)] if rows else [], budget)
    blocks = [head, *([approvals] if approvals else []), *listing]
    more = _more_line(hidden, 0, "", detail_hint)
    if more:
        blocks.append(_context(more))
    if actions is not None:
        blocks.append(actions)
    blocks.append(_context(f"updated {_clock(now)}{_THREAD_NOTE * bool(data.get('buttons'))}"))

    fallback = f"swap {swap} · {phase}"
    running = data.get("step")
    if running:
        fallback += f": {_clean(running, _NAME)} {_clean(data.get('step_state') or 'running', 20)}"
    elif data.get("next") and phase not in ("done", "rolled back"):
        fallback += f": next {_clean(data.get('next'), _NAME)}"
    if rows:
        fallback += f" — {synced} of {len(rows)} loads in sync"
    if outage:
        fallback += ", " + outage.split(" ", 1)[1]  # without the emoji
    return _finish("progress", fallback, blocks, now)


_THREAD_NOTE = " · milestones in this message's thread"  # the channel's card, not the Home tab's


def _approval_items(found: object) -> list[ApprovalRequest]:
    """The pending approvals the card lists (requests, or their dicts)."""
    items: list[ApprovalRequest] = []
    for item in found if isinstance(found, list) else []:
        if isinstance(item, ApprovalRequest):
            items.append(item)
        elif isinstance(item, Mapping):
            try:
                items.append(ApprovalRequest.model_validate(item))
            except ValueError:
                continue
    return items


def _phase(data: Mapping[str, Any]) -> str:
    """The phase as given, else as the outage's clock tells it."""
    given = data.get("phase")
    if isinstance(given, str) and given in _PHASE_ICONS:
        return given
    if _float(data.get("outage_ended_epoch")) is not None:
        return "after the outage"
    return "outage" if _float(data.get("outage_started_epoch")) is not None else "prep"


def _progress_step(data: Mapping[str, Any], phase: str) -> str | None:
    """The step running now; when none runs, the last one done and the one to run next."""
    running = data.get("step")
    if running:
        state = _clean(data.get("step_state") or "running", 20)
        since = _float(data.get("step_since"))
        when = f" since {_clock(since)}" if since is not None else ""
        return f"*Step:* {_clean(running, _NAME)} — {state}{when}"
    if phase == "done":
        return "*Step:* every step is done"
    parts = []
    if data.get("last_done"):
        parts.append(f"last done *{_clean(data.get('last_done'), _NAME)}*")
    upcoming = data.get("next")
    if upcoming and phase != "rolled back":
        failed = " (failed: run it again)" if data.get("next_state") == "failed" else ""
        parts.append(f"next *{_clean(upcoming, _NAME)}*{failed}")
    if not parts:
        return None
    return "*Step:* none running · " + " · ".join(parts)
