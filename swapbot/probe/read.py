"""The probe's read-only checks: safe on the production connection (`swapbot probe --app`).

Each reads what Heroku answers and says which variant of an assumption it saw. Linking the
token's user to the app's add-ons (hc-central `POST /auth/{app}`) is the one call that is not a
GET; it only puts the user on the access list, as `heroku connect:info` does.
"""

from __future__ import annotations

from typing import Any

from swapbot.heroku import ConnectionState, MappingState
from swapbot.probe.checks import Context, ProbeCheck, Seen, confirmed, contradicted, unknown

# States whose meaning nobody documents (assumption unlisted-states).
UNDOCUMENTED = {"SYNC_REMOVED", "BUSY", "INACTIVE_ORG", "RESOLVE_EXTERNAL_IDS", "POLL_EXTERNAL_IDS"}
KNOWN_STATES = {s.value for s in ConnectionState} | {s.value for s in MappingState}
# Below this many tokens left, the bucket cannot be the larger one.
SMALL_BUCKET = 2400


def deep(ctx: Context) -> dict[str, Any]:
    """The connection as HC sends it with deep=true (read once per run)."""
    if "deep" not in ctx.state:
        ref = ctx.ref()
        url = (
            ref.resolve(ref.detail_url)
            if ref.detail_url
            else f"{ref.api_root}/connections/{ref.id}"
        )
        ctx.state["deep"] = ctx.hc_json(url, deep="true")
    found: dict[str, Any] = ctx.state["deep"]
    return found


def discovery_needs_link(ctx: Context) -> Seen:
    before = ctx.connect.discover(ctx.app, ctx.addon)
    if before:
        return unknown("listed before linking (this user may have been linked before)", "false")
    ctx.connect.link(ctx.app)
    after = ctx.connect.discover(ctx.app, ctx.addon)
    if after:
        return confirmed("empty until linked, listed after linking", "true")
    return contradicted("still empty after linking")


def counts_field_name(ctx: Context) -> Seen:
    names = set()
    for mapping in deep(ctx).get("mappings") or []:
        names |= set((mapping.get("counts") or {}).keys()) & {"db", "count"}
    if not names:
        return unknown("no mapping has counts.db or counts.count")
    if names == {"db"}:
        return confirmed("counts.db", "db")
    if names == {"count"}:
        return confirmed("counts.count", "count")
    return confirmed("both counts.db and counts.count")


def region_url_trailing_slash(ctx: Context) -> Seen:
    region_url = deep(ctx).get("region_url") or ctx.ref().region_url or ""
    if not region_url:
        return contradicted("no region_url in discovery or detail")
    slash = region_url.endswith("/")
    return confirmed(
        f"region_url {'ends' if slash else 'does not end'} with /", "true" if slash else "false"
    )


def mappings_listed_by_deep(ctx: Context) -> Seen:
    mappings = deep(ctx).get("mappings")
    if isinstance(mappings, list):
        return confirmed(f"deep=true lists {len(mappings)} mapping(s)", "true")
    return contradicted("deep=true has no mappings list", "false")


def unlisted_states(ctx: Context) -> Seen:
    found = deep(ctx)
    raw = [found.get("state")] + [m.get("state") for m in found.get("mappings") or []]
    states = {str(s) for s in raw if s is not None}
    odd = sorted(s for s in states if s in UNDOCUMENTED or s not in KNOWN_STATES)
    seen = ", ".join(sorted(states)) or "none"
    if odd:
        return unknown(f"states seen: {seen}; meaning not documented: {', '.join(odd)}")
    return confirmed(f"states seen: {seen}; every one documented")


def connection_id_not_addon_uuid(ctx: Context) -> Seen:
    ref = ctx.ref()
    addon = ctx.platform.get_addon(ctx.app, ref.resource_name or ctx.addon or "")
    if addon.id == ref.id:
        return contradicted("connection id equals the add-on id", "true")
    return confirmed("connection id differs from the add-on id", "false")


def platform_rate_limit(ctx: Context) -> Seen:
    remaining = int(ctx.platform_json("/account/rate-limits")["remaining"])
    if remaining > SMALL_BUCKET:
        return confirmed(f"{remaining} tokens left: a 4,500-token bucket", "4500")
    return confirmed(
        f"{remaining} tokens left: a 2,400-token bucket (or a spent 4,500 one)", "2400"
    )


def pooler_attachment(ctx: Context) -> Seen:
    found = ctx.platform_json(f"/apps/{ctx.app}/addon-attachments")
    pools = [
        a.get("name")
        for a in found
        if str(a.get("namespace") or "").startswith("connection-pooling:")
    ]
    if pools:
        return confirmed("pooler attached as " + ", ".join(str(p) for p in pools))
    return unknown(
        "no attachment with a connection-pooling namespace (no pooler, or named otherwise)"
    )


def hc_diagnose(ctx: Context) -> Seen:
    """Heroku Connect's own checks: an error fails, warnings are told."""
    failures = ctx.connect.diagnose(ctx.ref(), max_wait=ctx.wait_seconds).failures()
    lines = "; ".join(f.describe() for f in failures)
    if any(f.level == "error" for f in failures):
        return contradicted(lines, "failed")
    return confirmed(lines or "every check passed", "passed")


READ_CHECKS: tuple[ProbeCheck, ...] = (
    ProbeCheck("discovery-needs-link", "read", discovery_needs_link, "discover, link, discover"),
    ProbeCheck("mappings-listed-by-deep", "read", mappings_listed_by_deep, "GET deep=true"),
    ProbeCheck("counts-field-name", "read", counts_field_name, "read mappings[].counts"),
    ProbeCheck("region-url-trailing-slash", "read", region_url_trailing_slash, "read region_url"),
    ProbeCheck("unlisted-states", "read", unlisted_states, "note every state seen"),
    ProbeCheck(
        "connection-id-not-addon-uuid",
        "read",
        connection_id_not_addon_uuid,
        "compare the connection id with the add-on id",
    ),
    ProbeCheck("platform-rate-limit", "read", platform_rate_limit, "GET /account/rate-limits"),
    ProbeCheck("pooler-attachment", "read", pooler_attachment, "list the app's attachments"),
    ProbeCheck("hc-diagnose", "read", hc_diagnose, "run Heroku Connect's diagnose"),
)
