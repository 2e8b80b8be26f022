"""Scratch checks of the connection's actions: restart, pause, resume, and abort (which has no
API, as far as anyone knows)."""

from __future__ import annotations

import time

import requests

from swapbot.heroku import DEFAULT_TIMEOUT, Mapping
from swapbot.probe.checks import Context, Seen, confirmed, contradicted, unknown
from swapbot.probe.scratch_helpers import (
    POLL_WATCH,
    answer,
    connection,
    is_settled,
    ok,
    refused,
    replay,
    said,
    settled,
    until,
    wait_state,
)
from swapbot.probe.scratch_mappings import mapping_in, own_mapping


def restart_and_authorize_url_repeatable(ctx: Context) -> Seen:
    replay(ctx, "restart-and-authorize-url-repeatable")  # the two links, asked for in the setup
    links = "two different links" if ctx.state.get("links_differ") else "the same link twice"
    settled(ctx)
    ref = ctx.ref()
    first = answer(ctx, lambda: ctx.connect.restart(ref))
    second = answer(ctx, lambda: ctx.connect.restart(ref))
    back = wait_state(ctx, is_settled)
    observed = f"authorize_url twice: {links}; restart twice: {said(*first)}, {said(*second)}; " + (
        "IDLE again" if back else f"not IDLE again in {ctx.wait_seconds:.0f} s"
    )
    if ok(first[0]) and ok(second[0]) and back is not None:
        return confirmed(observed)
    return contradicted(observed)


def pause_resume_status_code(ctx: Context) -> Seen:
    settled(ctx)
    ref = ctx.ref()
    pause = answer(ctx, lambda: ctx.connect.pause(ref))
    if not ok(pause[0]):
        return unknown(f"pause of an IDLE connection answered {said(*pause)}")
    paused = wait_state(ctx, lambda c: c.state == "PAUSED")
    resume = answer(ctx, lambda: ctx.connect.resume(ref))
    running = wait_state(ctx, lambda c: c.state != "PAUSED")
    observed = (
        f"pause answered {said(*pause)}, "
        + ("then PAUSED" if paused else f"not PAUSED in {ctx.wait_seconds:.0f} s")
        + f"; resume answered {said(*resume)}, "
        + ("then running" if running else "still PAUSED")
    )
    settled(ctx)
    if not ok(resume[0]):
        return unknown(observed)
    variant = str(pause[0]) if pause[0] == resume[0] else None
    if pause[0] == resume[0] == 202:
        return confirmed(observed, variant)
    return contradicted(observed, variant)


def pause_only_from_idle(ctx: Context) -> Seen:
    settled(ctx)
    ref = ctx.ref()
    restart = answer(ctx, lambda: ctx.connect.restart(ref))
    busy = connection(ctx).state
    if not ok(restart[0]) or busy == "IDLE":
        return unknown(f"could not make the connection busy (restart: {said(*restart)}; {busy})")
    status, message = answer(ctx, lambda: ctx.connect.pause(ref))
    tried = f"pause while {busy} (just restarted): "
    if refused(status):
        settled(ctx)
        return confirmed(tried + f"refused {said(status, message)}", str(status))
    if not ok(status):
        return unknown(tried + said(status, message))
    ended = wait_state(ctx, lambda c: c.state in ("PAUSED", "IDLE"))
    if ended is not None and ended.state == "PAUSED":
        ctx.connect.resume(ref)
    settled(ctx)
    return contradicted(
        tried + f"accepted ({status}), then {ended.state if ended else 'neither PAUSED nor IDLE'}",
        "queued",
    )


def poll_soon_after_resume(ctx: Context) -> Seen:
    if not any(_sf_poll(m) for m in settled(ctx).mappings):
        return unknown("no mapping has polled yet (times.sf_poll is empty)")
    ref = ctx.ref()
    ctx.connect.pause(ref)
    paused = wait_state(ctx, lambda c: c.state == "PAUSED")
    before = {m.id: _sf_poll(m) for m in (paused or connection(ctx)).mappings}
    started = time.monotonic()
    ctx.connect.resume(ref)
    if paused is None:
        return unknown(f"the connection did not pause in {ctx.wait_seconds:.0f} s")
    window = min(ctx.wait_seconds, POLL_WATCH)
    moved = until(ctx, lambda: _moved(ctx, before), window)
    waited = time.monotonic() - started
    if moved:
        return confirmed(f"times.sf_poll of {moved} moved {waited:.1f} s after the resume", "true")
    return contradicted(
        f"times.sf_poll of no mapping moved in the {window:.0f} s after the resume", "false"
    )


def _sf_poll(m: Mapping) -> str | None:
    value = (m.times or {}).get("sf_poll")
    return str(value) if value else None


def _moved(ctx: Context, before: dict[str, str | None]) -> str | None:
    for m in connection(ctx).mappings:
        now = _sf_poll(m)
        if now and now != before.get(m.id):
            return m.object_name or m.id
    return None


def abort_has_no_api(ctx: Context) -> Seen:
    """Reload a mapping of the probe's own and abort it at once, while it loads."""
    ref, m = ctx.ref(), own_mapping(ctx)
    obj = m.object_name or m.id
    reload = answer(ctx, lambda: ctx.connect.reload_mapping(ref, m.id))
    response = _post(ctx, f"{ref.api_root}/mappings/{m.id}/actions/abort")
    status = response.status_code
    state = mapping_in(connection(ctx), obj)
    if ok(status):
        ctx.connect.reload_mapping(ref, m.id)  # load it again for the checks that follow
    wait_state(ctx, is_settled)
    tried = (
        f"POST /mappings/{{id}}/actions/abort on {obj} just after a reload ({said(*reload)}): "
        f"{status}, the mapping then {state.state if state else 'gone'}"
    )
    if status in (404, 405):
        return confirmed(tried + ": there is no abort endpoint", "false")
    if ok(status):
        return contradicted(tried + ": an abort endpoint exists", "true")
    if refused(status):
        # The path is known (else 404/405), only this mapping could not be aborted now.
        return contradicted(tried + f" ({_error_text(response)}): the endpoint exists", "true")
    return unknown(tried)


def _post(ctx: Context, url: str) -> requests.Response:
    """POST `url` once, on the Connect client's session: its token and headers, and recorded
    as evidence like every exchange of the probe. Raw, not through the client's transport: the
    client has no method for a path that may not exist (its one public call, get_json, is a
    GET), and the answer's status, whatever it is, is the finding."""
    return ctx.connect.session.post(url, timeout=DEFAULT_TIMEOUT)


def _error_text(response: requests.Response) -> str:
    try:
        found = response.json()
    except ValueError:
        return "no message"
    return str(found.get("message") or "no message") if isinstance(found, dict) else "no message"
