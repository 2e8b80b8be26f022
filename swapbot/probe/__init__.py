"""`swapbot probe`: settle swapbot's unconfirmed Heroku assumptions on a real connection.

    results = probe.run(probe.connect(token, central_url, platform_url, app="acme", addon="hc1"))

Read-only checks (`READ_CHECKS`) are safe on production; the checks that change things
(`SCRATCH_CHECKS`) run only on an app marked as scratch. The answers go to a file kept with the
deploy (`SWAPBOT_PROBE_FILE`), which the engine reads: see `swapbot.probe.results`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pydantic import SecretStr

from swapbot.heroku import ConnectClient, PlatformClient
from swapbot.probe.checks import Context, ProbeCheck
from swapbot.probe.read import READ_CHECKS
from swapbot.probe.recorder import Recorder
from swapbot.probe.results import Finding, ProbeResults, load_if_present
from swapbot.probe.runner import run_checks

__all__ = [
    "READ_CHECKS",
    "Context",
    "Finding",
    "ProbeCheck",
    "ProbeResults",
    "connect",
    "read_only",
    "load_if_present",
    "run",
]


def connect(
    token: str | SecretStr,
    central_url: str,
    platform_url: str,
    *,
    app: str,
    addon: str | None = None,
    wait_seconds: float = 120.0,
) -> Context:
    """A probe context whose clients record every exchange."""
    recorder = Recorder()
    return Context(
        connect=ConnectClient(token, central_url, session=recorder.session()),
        platform=PlatformClient(token, platform_url, session=recorder.session()),
        app=app,
        addon=addon,
        recorder=recorder,
        wait_seconds=wait_seconds,
    )


def read_only(
    connect_client: ConnectClient,
    platform: PlatformClient,
    *,
    app: str,
    addon: str | None,
    wait_seconds: float = 120.0,
) -> ProbeResults:
    """The read-only checks over clients that exist already (the engine's: `/hcswap probe`),
    their exchanges recorded while the checks run."""
    recorder = Recorder()
    ctx = Context(
        connect=connect_client,
        platform=platform,
        app=app,
        addon=addon,
        recorder=recorder,
        wait_seconds=wait_seconds,
    )
    with recorder.on(connect_client.session, platform.session):
        return run(ctx)


def run(
    ctx: Context,
    checks: Iterable[ProbeCheck] = READ_CHECKS,
    *,
    told: Callable[[Finding], None] | None = None,
) -> ProbeResults:
    return run_checks(ctx, checks, told=told)
