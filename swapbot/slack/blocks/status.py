"""The live views of a swap: the channel's status card and the in-thread progress message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    _expires,
    _float,
    _int,
    _minutes_left,
    _now,
    _plan_move,
    _records,
    bar,
    duration,
    escape,
    mention,
)

DETAIL_HINT = "/hcswap status --json"

_MAX_CONNECTIONS = 10
_MAX_ITEMS = 5  # approvals, ledger items listed in a status message
_DONE = ("done", "skipped")  # tuples: a malformed status may be unhashable
_ACTIVE = ("failed", "waiting", "running")


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
    lines = [f"*{_clean(plan.get('app') or app, _NAME)}* · {_plan_move(plan)}"]
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


def _done_count(steps: list[Mapping[str, Any]]) -> int:
    return sum(1 for s in steps if s.get("status") in _DONE)


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


def _step_line(steps: list[Mapping[str, Any]], current: Mapping[str, Any] | None) -> str:
    line = f"{_done_count(steps)} of {len(steps)} steps done"
    if current is None:
        return line
    status = current.get("status")
    marks = f" ({_clean(status, 20)})" if status else ""
    if current.get("approval"):
        marks += " · needs a second person's approval"
    if current.get("point_of_no_return"):
        marks += " · :warning: point of no return"
    return f"*Step:* {_clean(current.get('name'), _NAME)}{marks} · {line}"


def _progress_section(doc: Mapping[str, Any], now: float) -> Block | None:
    lines = []
    steps = _steps(doc)
    current = _current_step(doc)
    if steps or current:
        lines.append(_step_line(steps, current))
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
    left = _minutes_left(_expires(item), now)
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
        done = _done_count(steps)
        parts.append(f"step {_clean(current.get('name'), _NAME)} ({done}/{len(steps)} done)")
    outage = _outage_text(doc.get("outage"), now)
    if outage:
        parts.append(outage.split(" ", 1)[1])  # without the emoji
    approvals = _records(doc.get("approvals"))
    if approvals:
        parts.append(f"{len(approvals)} approval{'s' if len(approvals) != 1 else ''} pending")
    return " · ".join(parts)


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
