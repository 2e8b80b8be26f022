"""What the app's Heroku Connect add-ons look like now: for `status`, with or without a plan."""

from __future__ import annotations

from swapbot.heroku import ConnectClient, HerokuError, PlatformClient
from swapbot.heroku._models import LOADING_STATES
from swapbot.swap.views import Connection, MappingRow


def connections(connect: ConnectClient, platform: PlatformClient, app: str) -> list[Connection]:
    """Each HC add-on of the app with its connection's state and every mapping's counts."""
    out = []
    for addon in platform.list_addons(app):
        if addon.service_name != "herokuconnect":
            continue
        try:
            c = connect.get_connection(connect.find_connection(app, addon.name))
        except HerokuError as exc:
            out.append(Connection(addon=addon.name, addon_state=addon.state, error=str(exc)))
            continue
        rows = []
        for m in c.mappings:
            counts = m.counts
            db, sf = (counts.db or 0, counts.sf or 0) if counts else (0, 0)
            rows.append(
                MappingRow(
                    object=m.object_name,
                    state=m.state,  # exactly as the API gives it
                    db=db,
                    sf=sf,
                    pending=counts.pending if counts else None,
                    errors=counts.errors if counts else None,
                    progress=round(100.0 * db / sf, 1)
                    if sf and m.state in LOADING_STATES
                    else None,
                )
            )
        out.append(
            Connection(
                addon=addon.name,
                addon_state=addon.state,
                state=c.state,
                schema_name=c.schema_name,
                mappings=rows,
            )
        )
    return out


def render(entries: list[Connection]) -> str:
    lines = []
    for e in entries:
        if e.error is not None:
            lines.append(f"{e.addon}: {e.error}")
            continue
        lines.append(f"{e.addon}: {e.state}, schema {e.schema_name}")
        for m in e.mappings:
            progress = f" {m.progress}%" if m.progress is not None else ""
            lines.append(
                f"  {m.object or '?':24} {m.state or '?':20} db {m.db:>9,} sf {m.sf:>9,} "
                f"pending {m.pending or 0:>5} errors {m.errors or 0:>4}{progress}"
            )
    return "\n".join(lines) or "no Heroku Connect add-on on this app"
