"""Milestones: one line per engine event, and which events go to the whole channel."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from swapbot.slack.blocks.kit import Rendered, _finish, _section
from swapbot.slack.blocks.text import (
    _NAME,
    _clean,
    _clock,
    _cut_mrkdwn,
    _float,
    _now,
    date_times,
    duration,
    epoch,
    escape,
    mention,
    name_people,
)
from swapbot.swap import steps as runbook
from swapbot.swap.events import Event, Payload

_MILESTONE = 2900  # one milestone line, with room to spare in a section

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


def is_broadcast(event: Event) -> bool:
    """Whether the event goes to the whole channel, not only to the swap's thread."""
    if event.kind in _BROADCAST:
        return True
    if event.kind == "step.done":
        step = runbook.BY_NAME.get(event.step or "")
        return event.payload.point_of_no_return or bool(step and step.point_of_no_return)
    return False


def milestone(event: Event, people: Iterable[str] = ()) -> str:
    """One line of escaped mrkdwn for an engine event, short enough for a section. Put it in a
    mrkdwn object with `verbatim: True`, as `milestone_message` does.

    Every person it names is a mention: the event's actor and the people its data names,
    `people` (e.g. an approval's requester, which the event does not carry), and any word that
    can only be a member id (`name_people`). Every time it names is a date token, the outage's
    start and end included (`date_times`)."""
    return _cut_mrkdwn(_milestone_line(event, people), _MILESTONE)


def milestone_message(
    event: Event, *, now: float | None = None, people: Iterable[str] = ()
) -> Rendered:
    """A milestone as a message of its own: one verbatim section."""
    line = milestone(event, people)
    return _finish("event", line, [_section(line)], _now(now))


# -- lines -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Said:
    """An event's parts as a milestone line shows them, already escaped."""

    kind: str
    step: str  # "*name*", or "*swap*" for an event of no step
    has_step: bool
    message: str
    raw_message: str
    actor: str | None  # a mention
    data: Payload
    raw: Mapping[str, Any]  # the event's data as it came
    at: float | None = None  # when the event happened

    @classmethod
    def of(cls, ev: Event, people: Iterable[str] = ()) -> _Said:
        raw_message = " ".join(ev.message.split())
        at = epoch(ev.at)
        message = date_times(_clean(raw_message), _now(at))  # its times as date tokens
        return cls(
            kind=ev.kind,
            step=f"*{_clean(ev.step, _NAME)}*" if ev.step else "*swap*",
            has_step=bool(ev.step),
            message=name_people(message, [*_people_of(ev), *people]),
            raw_message=raw_message,
            actor=mention(ev.actor) if ev.actor else None,
            data=ev.payload,
            raw=ev.data,
            at=at,
        )

    @property
    def by(self) -> str:
        return f" by {self.actor}" if self.actor else ""

    def tail(self, said: str = "") -> str:
        # The engine's message often repeats what the line already says ("outage started").
        return f" — {self.message}" if self.message and self.raw_message != said else ""


# Where an event's data names people (a step's person, a reminder's approvers, …).
_PEOPLE_KEYS = ("person", "people", "requester", "approver", "owner", "user")


def _people_of(ev: Event) -> list[str]:
    """The member ids an event names: its actor and the people its data names."""
    found = [ev.actor] if ev.actor else []
    for key in _PEOPLE_KEYS:
        value = ev.data.get(key)
        values = value if isinstance(value, list | tuple) else [value]
        found += [str(v) for v in values if isinstance(v, str)]
    return found


_Format = Callable[[_Said], str]


def _line(template: str, said: str = "") -> _Format:
    """A line from a template over {step}, {by} and {tail}; `said` is what the line already
    says, so a message that only repeats it is left off."""

    def render(e: _Said) -> str:
        return template.format(step=e.step, by=e.by, tail=e.tail(said))

    return render


def _note(template: str, empty: str = "") -> _Format:
    """A line that is the engine's message ({message}, or `empty` when there is none)."""

    def render(e: _Said) -> str:
        return template.format(step=e.step, message=e.message or empty)

    return render


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


def _step_waiting(e: _Said) -> str:
    link = e.data.link
    extra = f" {_link(link, e.data.link_label or 'open the link')}" if link else ""
    person = f" ({mention(e.data.person)})" if e.data.person else ""
    return f":hourglass: {e.step} waiting: {e.message or 'waiting'}{person}{extra}"


def _approval_refused(e: _Said) -> str:
    by = f" ({e.actor})" if e.actor else ""
    # An unknown request id has no step: name the request, not "swap".
    request = _clean(e.data.request_id or "", _NAME)
    what = e.step if e.has_step else (f"request {request}" if request else "a request")
    return f":no_entry: approval of {what} refused{by}{e.tail()}"


def _at(e: _Said) -> str:
    return f" at {_clock(e.at)}" if e.at is not None else ""


def _outage_started(e: _Said) -> str:
    return f":rotating_light: outage started{_at(e)}{e.tail('outage started')}"


def _outage_ended(e: _Said) -> str:
    seconds = _float(e.data.seconds)
    after = f" after {duration(seconds)}" if seconds is not None else ""
    return f":tada: outage ended{_at(e)}{after}{e.tail('outage ended')}"


def _reminder(e: _Said) -> str:
    """A nudge: the people it is for as mentions, and a request's expiry as a date token."""
    nudged = e.raw.get("people")
    who = (
        " ".join(mention(p) for p in nudged if isinstance(p, str))
        if isinstance(nudged, list)
        else ""
    )
    expires = _float(e.raw.get("expires_epoch"))
    until = f" (expires {_clock(expires, seconds=False)})" if expires is not None else ""
    return f":bell: {e.message or 'reminder'}{until}" + (f" — {who}" if who else "")


_LINES: dict[str, _Format] = {
    "step.started": _line(":arrow_forward: {step} started{tail}"),
    "step.done": _line(":white_check_mark: {step} done{tail}"),
    "step.skipped": _line(":fast_forward: {step} already done{tail}"),
    "step.failed": _line(":x: {step} failed{tail}"),
    "step.undone": _line(":leftwards_arrow_with_hook: {step} undone{tail}"),
    "step.waiting": _step_waiting,
    "approval.requested": _line(":raised_hand: approval requested for {step}{by}{tail}"),
    "approval.granted": _line(":white_check_mark: {step} approved{by}{tail}"),
    "approval.refused": _approval_refused,
    "approval.expired": _line(":hourglass_flowing_sand: approval of {step} expired{tail}"),
    "approval.withdrawn": _line(
        ":leftwards_arrow_with_hook: approval of {step} withdrawn{by}{tail}"
    ),
    "approval.denied": _line(":no_entry: approval of {step} denied{by}{tail}"),
    "outage.started": _outage_started,
    "outage.ended": _outage_ended,
    "point_of_no_return": _line(":warning: {step} passed the point of no return{tail}"),
    "rollback.started": _line(":rewind: rollback started{tail}", "rollback started"),
    "rollback.done": _line(":leftwards_arrow_with_hook: rollback done{tail}", "rollback done"),
    "swap.done": _line(":tada: swap done{tail}", "swap done"),
    "reminder": _reminder,
    "load.progress": _note(":arrows_counterclockwise: {step} {message}", "loading"),
    "backlog": _note(":inbox_tray: write backlog: {message}", "?"),
    "call": _note(":gear: {message}"),
    "state.changed": _note(":information_source: {message}", "state changed"),
}


def _milestone_line(ev: Event, people: Iterable[str] = ()) -> str:
    said = _Said.of(ev, people)
    line = _LINES.get(said.kind)
    if line is None:
        return f":speech_balloon: {said.message or _clean(said.kind, 40)}"
    return line(said)
