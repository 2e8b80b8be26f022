"""What the app's Heroku Connect add-ons look like now: for `status`, with or without a plan."""

from __future__ import annotations

from typing import Any

from swapbot.heroku import ConnectClient, HerokuError, PlatformClient
from swapbot.heroku._models import LOADING_STATES


def connections(connect: ConnectClient, platform: PlatformClient, app: str) -> list[dict[str, Any]]:
    """Each HC add-on of the app with its connection's state and every mapping's counts."""
    out = []
    for addon in platform.list_addons(app):
        if addon.service_name != "herokuconnect":
            continue
        entry: dict[str, Any] = {"addon": addon.name, "addon_state": addon.state}
        try:
            c = connect.get_connection(connect.find_connection(app, addon.name))
        except HerokuError as exc:
            entry["error"] = str(exc)
            out.append(entry)
            continue
        entry |= {"state": c.state, "schema": c.schema_name, "mappings": []}
        for m in c.mappings:
            counts = m.counts
            db, sf = (counts.db or 0, counts.sf or 0) if counts else (0, 0)
            entry["mappings"].append(
                {
                    "object": m.object_name,
                    "state": m.state,  # exactly as the API gives it
                    "db": db,
                    "sf": sf,
                    "pending": counts.pending if counts else None,
                    "errors": counts.errors if counts else None,
                    "progress": round(100.0 * db / sf, 1)
                    if sf and m.state in LOADING_STATES
                    else None,
                }
            )
        out.append(entry)
    return out


def render(entries: list[dict[str, Any]]) -> str:
    lines = []
    for e in entries:
        if "error" in e:
            lines.append(f"{e['addon']}: {e['error']}")
            continue
        lines.append(f"{e['addon']}: {e['state']}, schema {e['schema']}")
        for m in e["mappings"]:
            progress = f" {m['progress']}%" if m["progress"] is not None else ""
            lines.append(
                f"  {m['object']:24} {m['state']:20} db {m['db']:>9,} sf {m['sf']:>9,} "
                f"pending {m['pending'] or 0:>5} errors {m['errors'] or 0:>4}{progress}"
            )
    return "\n".join(lines) or "no Heroku Connect add-on on this app"
