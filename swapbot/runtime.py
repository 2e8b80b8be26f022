"""Build an engine from settings: the one place that wires Redis, the clients and the database."""

from __future__ import annotations

from swapbot.config import AUTHORIZED_PATH, Settings, redis_client, secret
from swapbot.heroku import ConnectClient, PlatformClient
from swapbot.heroku.probed import RECORD, ProbeResults, load_if_present
from swapbot.swap.engine import Engine
from swapbot.swap.events import Emitter
from swapbot.swap.journal import Journal
from swapbot.swap.live import Live
from swapbot.swap.plan import Plan
from swapbot.swap.store import Store


class MissingSettings(Exception):
    pass


def build_engine(settings: Settings, emitter: Emitter | None = None, **engine_options) -> Engine:
    missing = [
        name
        for name, value in (
            ("DATABASE_URL", settings.database_url),
            ("HEROKU_API_TOKEN", settings.heroku_api_token),
        )
        if value is None
    ]
    if missing:
        raise MissingSettings("set " + " and ".join(missing) + " (see `swapbot config check`)")
    token = settings.heroku_api_token
    connect = ConnectClient(token, str(settings.heroku_connect_central_url))
    platform = PlatformClient(token, str(settings.heroku_api_url))
    database_url = secret(settings.database_url)
    store = Store(redis_client(settings), settings.swapbot_redis_prefix)

    page = authorized_page(settings)

    def live_factory(plan: Plan, events: Emitter, dry_run: bool) -> Live:
        return Live(
            plan,
            connect,
            platform,
            database_url,
            events,
            dry_run=dry_run,
            authorized_page=page,
            probe=probe_results(settings, store),
        )

    engine_options.setdefault("approvers", set(settings.swapbot_approvers))
    engine_options.setdefault("approval_ttl", settings.swapbot_approval_minutes * 60)
    engine_options.setdefault("poll_interval", settings.swapbot_poll_seconds)
    engine_options.setdefault("timeout_scale", settings.swapbot_timeout_scale)
    engine_options.setdefault("own_app", settings.swapbot_own_app)
    return Engine(
        store,
        live_factory,
        journal=Journal(database_url),
        emitter=emitter,
        clients=(connect, platform),
        **engine_options,
    )


def probe_results(settings: Settings, store: Store | None = None) -> ProbeResults | None:
    """What `swapbot probe` found: the file kept with the deploy, with the findings of a later
    `/hcswap probe` (kept in Redis) on top. Read at each run, so a new probe counts at once."""
    found = load_if_present(settings.swapbot_probe_file)
    saved = store.get_global(RECORD) if store is not None else None
    if saved:
        try:
            later = ProbeResults.model_validate(saved)
        except ValueError as exc:  # written by another release: say so, do not guess
            later = ProbeResults(problem=f"/hcswap probe's record cannot be read: {exc}")
        found = found.merged(later) if found else later
    return found


def authorized_page(settings: Settings) -> str | None:
    """Where a person lands after authorizing hc2 in Salesforce: swapbot's own page when its
    public URL is set, else the swap channel in Slack; None leaves it to the step (the app's
    page on Heroku's dashboard)."""
    if settings.swapbot_public_url is not None:
        return str(settings.swapbot_public_url).rstrip("/") + AUTHORIZED_PATH
    if settings.swapbot_channel:
        return f"https://slack.com/app_redirect?channel={settings.swapbot_channel}"
    return None
