"""Mappings and loads as listed lines: normalised rows, grouped, summarised, fitted to a budget.

The status card lists each add-on's mappings and the progress message lists the loads; both
show every row when there are few and summarise the rest under the message's text budget.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from swapbot.heroku._models import MAPPING_ERROR_STATES, SYNCED_STATES
from swapbot.slack.blocks.kit import Block, _Budget, _pack, _section
from swapbot.slack.blocks.text import _NAME, _clean, _code, _count, _float, _int, bar, duration

_FULL_LIST = 12  # a group with this many rows or fewer lists every one
_ATTENTION = 20  # rows listed per group when summarising


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


def _load_rows(loads: object) -> list[_Row]:
    """Loads keyed by object name, or a list of dicts naming their object."""
    if isinstance(loads, Mapping):
        return [_row(name, item) for name, item in loads.items()]
    if isinstance(loads, list):
        return [
            _row(item.get("object") or item.get("name"), item)
            for item in loads
            if isinstance(item, Mapping)
        ]
    return []


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
