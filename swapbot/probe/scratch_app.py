"""Scratch checks about what surrounds the connection: its schema, the sessions on its database,
the app's formation and the add-on itself."""

from __future__ import annotations

from swapbot.heroku import FormationUpdate
from swapbot.probe.checks import Context, Seen, confirmed, contradicted, unknown
from swapbot.probe.scratch_helpers import (
    QUIET_WATCH,
    NotRun,
    answer,
    connection,
    database,
    ok,
    poll,
    refused,
    replay,
    said,
    schema_exists,
    settled,
    tables,
    until,
)


def configure_creates_schema(ctx: Context) -> Seen:
    """Settled during the setup, which configured the connection (scratch_setup)."""
    seen = replay(ctx, "configure-creates-schema")
    if seen is None:
        raise NotRun("the add-on was not made by the probe")
    return seen


def last_write_activity(ctx: Context) -> Seen:
    first = (settled(ctx).metrics or {}).get("last_write_activity_time")
    window = min(ctx.wait_seconds, QUIET_WATCH)
    ctx.sleep(window)
    second = (connection(ctx).metrics or {}).get("last_write_activity_time")
    change = "unchanged" if first == second else "moved"
    return unknown(
        "not settled: it needs writes stopped and the trigger log empty; read twice "
        f"{window:.0f} s apart while the probe wrote nothing: {first} then {second} ({change})"
    )


def hc_session_credentials(ctx: Context) -> Seen:
    settled(ctx)
    with database(ctx) as db:
        rows = db.execute(
            "SELECT usename = current_user, coalesce(nullif(application_name, ''), '(none)'), "
            "count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
            "GROUP BY 1, 2 ORDER BY 1 DESC, 3 DESC, 2"
        ).fetchall()
    if not rows:
        return unknown("no other session on the scratch database while Heroku Connect runs")
    # Names of roles are not shown: only whether a session uses the probe's own credential.
    same = [f"{name} ×{n}" for mine, name, n in rows if mine]
    other = [f"{name} ×{n}" for mine, name, n in rows if not mine]
    return unknown(
        "not settled (which are Heroku Connect's is not shown): sessions with this "
        f"credential's user: {', '.join(same) or 'none'}; with other users: "
        f"{', '.join(other) or 'none'} (by application_name)"
    )


def formation_dyno_size(ctx: Context) -> Seen:
    formation = ctx.platform.formation(ctx.app)
    sized = [f for f in formation if f.dyno_size_name]
    if not sized:
        return unknown(f"{ctx.app} has no process type to update")
    f = sized[0]
    size = f.dyno_size_name or ""
    update = FormationUpdate(type=f.type, dyno_size=size)
    status, message = answer(ctx, lambda: ctx.platform.update_formation(ctx.app, [update]))
    tried = f'PATCH formation {f.type} with dyno_size {{"name": "{size}"}} (its size now): '
    if ok(status):
        return confirmed(tried + f"accepted ({status})")
    if refused(status):
        return contradicted(tried + f"refused ({said(status, message)})")
    return unknown(tried + said(status, message))


def rate_limit_before_processing(ctx: Context) -> Seen:
    return unknown("not probed: it needs the Platform API rate limit spent on purpose")


def remove_addon_keeps_schema(ctx: Context) -> Seen:
    made = ctx.state.get("made")
    if not made:
        raise NotRun("the add-on was not made by the probe")
    schema = str(ctx.state["schema"])
    if not schema_exists(ctx, schema):
        return unknown(f"schema {schema} was not there before the removal")
    count = len(tables(ctx, schema))
    removed = ctx.platform.delete_addon(ctx.app, made)
    ctx.state.update(made=None, removed=made)
    gone = until(ctx, lambda: not schema_exists(ctx, schema), 10 * poll(ctx))
    told = f"removed {made} ({removed.state}): schema {schema} ({count} table(s) before) "
    if gone:
        return contradicted(told + "is gone", "false")
    return confirmed(told + f"is still there with {len(tables(ctx, schema))} table(s)", "true")
