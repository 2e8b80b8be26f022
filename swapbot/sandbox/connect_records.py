"""Heroku Connect's connections and mappings as its API v3 sees them: found for the user who
asks, a connection's state moved on, and both rendered the way HC answers with them."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from swapbot.sandbox import state
from swapbot.sandbox.options import Assumptions
from swapbot.sandbox.routing import PREFIXES, REGION, ApiError, Request, bad_request, not_found

if TYPE_CHECKING:
    from swapbot.sandbox.server import Sandbox

# A connection row with its add-on's name and plan and its app's id; callers add the WHERE.
CONNECTION_SQL = (
    "SELECT c.*, a.name AS addon_name, a.plan AS addon_plan, p.id AS app_id FROM _hcsandbox.connection c "
    "JOIN _hcsandbox.addon a ON a.id = c.addon_id JOIN _hcsandbox.app p ON p.name = c.app "
)


# -- lookups -------------------------------------------------------------------------------
def _require_uuid(value: str, what: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise not_found(what) from None


def get_connection(conn, req: Request, cid: str, *, for_update: bool = False) -> dict[str, Any]:
    _require_uuid(cid, "connection")
    c = state.row(
        conn,
        # NO KEY UPDATE: foreign-key checks from mapping rows (KEY SHARE) never wait on it.
        CONNECTION_SQL + "WHERE c.id = %s" + (" FOR NO KEY UPDATE OF c" if for_update else ""),
        (cid,),
    )
    if c is None:
        raise not_found("connection")
    if req.user not in c["linked_users"]:
        raise ApiError(
            403, "forbidden", "You do not have access to this connection. Request access first."
        )
    return c


def get_mapping(conn, req: Request, mid: str) -> tuple[dict[str, Any], dict[str, Any]]:
    _require_uuid(mid, "mapping")
    # Lock in the simulator's order, connection then mapping, so the two never deadlock.
    found = state.row(conn, "SELECT connection_id FROM _hcsandbox.mapping WHERE id = %s", (mid,))
    if found is None:
        raise not_found("mapping")
    c = get_connection(conn, req, str(found["connection_id"]), for_update=True)
    m = state.row(conn, "SELECT * FROM _hcsandbox.mapping WHERE id = %s FOR UPDATE", (mid,))
    if m is None:
        raise not_found("mapping")
    return c, m


def transition(
    conn,
    sb: Sandbox,
    c: dict[str, Any],
    now_state: str | None,
    next_state: str,
    after: float,
    **extra: Any,
) -> None:
    """Set the connection's state now (if given) and schedule `next_state` after nominal seconds.

    One transition at a time: a call arriving while another is pending (a pause waiting for the
    writer, say) is refused rather than silently replacing it.
    """
    if c.get("next_state") and c["next_state"] != next_state:
        raise bad_request(
            f"The connection is busy ({c['state']}, going to {c['next_state']}); try again shortly."
        )
    columns = ({"state": now_state} if now_state else {}) | extra
    sets = sql.SQL(", ").join(
        [
            sql.SQL("next_state = %s, next_at = now() + make_interval(secs => %s)"),
            *(sql.SQL("{} = %s").format(sql.Identifier(key)) for key in columns),
        ]
    )
    update = sql.SQL("UPDATE _hcsandbox.connection SET {} WHERE id = %s").format(sets)
    conn.execute(update, [next_state, sb.options.real(after), *columns.values(), c["id"]])


# -- rendering -----------------------------------------------------------------------------
def region_url(req: Request, a: Assumptions) -> str:
    """The regional host, with or without a trailing slash (assumption region-url-trailing-slash:
    heroku/heroku-connect-plugin's test/support/test-fixtures.ts shows it without one)."""
    return f"{req.base_url}/connect/{REGION}" + ("/" if a.region_url_slash else "")


def connection_ref(req: Request, c: dict[str, Any], a: Assumptions) -> dict[str, Any]:
    """A connection as link and discovery list it. Without Assumptions.discovery_region_url the
    entry has no region_url, only its absolute detail_url."""
    ref = {
        "id": str(c["id"]),
        "resource_name": c["addon_name"],
        "display_name": c["addon_name"],
        "addon_type": "Sync",
        "app_name": c["app"],
        "app_id": str(c["app_id"]),
        "region": REGION,
        "region_url": region_url(req, a),
        "region_flag": "us",
        "region_label": "Virginia",
        "cell": "virginia-1",
        "cell_label": "Virginia 1",
        "detail_url": f"{req.base_url}{PREFIXES['connect']}/connections/{c['id']}",
    }
    if not a.discovery_region_url:
        del ref["region_url"]
    return ref


def regions(req: Request, a: Assumptions) -> dict[str, Any]:
    """The regions and cells that hc-central's answers list beside the connections."""
    return {
        "regions": {REGION: {"flag": "us", "label": "Virginia"}},
        "cells": {"virginia-1": {"url": region_url(req, a), "flag": "us", "label": "Virginia 1"}},
    }


def _tables_in(conn, schema: str) -> set[str]:
    return {
        r[0]
        for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
    }


def mapping_counts(
    conn, c: dict[str, Any], mappings: list[dict[str, Any]]
) -> dict[str, dict[str, int]]:
    """counts.db / sf / pending / errors for each mapping, in a handful of queries."""
    out = {m["table_name"]: {"db": 0, "sf": 0, "pending": 0, "errors": 0} for m in mappings}
    if not mappings:
        return out
    objects = {m["object_name"]: m["table_name"] for m in mappings}
    for r in state.rows(
        conn,
        "SELECT object_name, count(*) AS n FROM _hcsandbox.sf_record WHERE object_name = ANY(%s) AND NOT isdeleted "
        "GROUP BY 1",
        (list(objects),),
    ):
        out[objects[r["object_name"]]]["sf"] = r["n"]
    schema = c["schema_name"]
    system = {"_trigger_log", "_trigger_log_archive"}
    if not schema or len(_tables_in(conn, schema) & system) < len(system):
        return out  # no schema yet, or HC's system tables are gone (DB_UNAVAILABLE)
    s = sql.Identifier(schema)
    for r in state.rows(
        conn,
        sql.SQL(
            "SELECT table_name, count(*) FILTER (WHERE state IN ('NEW','PENDING')) AS pending, "
            "count(*) FILTER (WHERE state = 'FAILED') AS failed FROM {}._trigger_log "
            "WHERE state IN ('NEW','PENDING','FAILED') GROUP BY 1"
        ).format(s),
    ):
        if r["table_name"] in out:
            out[r["table_name"]]["pending"] = r["pending"]
            out[r["table_name"]]["errors"] += r["failed"]
    for r in state.rows(
        conn,
        sql.SQL(
            "SELECT table_name, count(*) AS failed FROM {}._trigger_log_archive "
            "WHERE state = 'FAILED' AND created_at > now() - interval '1 day' GROUP BY 1"
        ).format(s),
    ):
        if r["table_name"] in out:
            out[r["table_name"]]["errors"] += r["failed"]
    _count_db_rows(conn, schema, out)
    return out


def _count_db_rows(conn, schema: str, out: dict[str, dict[str, int]]) -> None:
    """counts.db: each mapped table's rows, or PostgreSQL's estimate for a big table."""
    s = sql.Identifier(schema)
    sizes = {
        r["relname"]: r["reltuples"]
        for r in state.rows(
            conn,
            "SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        )
    }
    for table in out:
        if table not in sizes:
            continue
        if sizes[table] >= 1_000_000:  # HC estimates counts of big tables too
            out[table]["db"] = int(sizes[table])
            continue
        q = sql.SQL("SELECT count(*) FROM {}.{}").format(s, sql.Identifier(table))
        try:
            with conn.transaction():
                out[table]["db"] = conn.execute(q).fetchone()[0]
        except psycopg.errors.UndefinedTable:
            pass  # dropped meanwhile (a mapping deleted, or removed by an import)


def render_mapping(
    req: Request,
    m: dict[str, Any],
    counts: dict[str, int] | None,
    conn_state: str,
    a: Assumptions,
) -> dict[str, Any]:
    base = f"{req.base_url}{PREFIXES['connect']}"
    config = dict(m["config"])
    config["revision"] = m["revision"]
    config["applied_at"] = m["applied_at"].isoformat()
    if a.put_mapping_body == "upsert-on-mapping":
        # upsert_field on the mapping only, as heroku/heroku-connect-plugin's fixtures show it
        config.pop("upsert_field", None)
    counts = counts or {"db": 0, "sf": 0, "pending": 0, "errors": 0}
    # The row count's name (assumption counts-field-name): "db" as heroku/heroku-connect-plugin's
    # fixtures show, or "count" as the terraform provider for Heroku Connect reads it.
    shown_counts = {(a.counts_field if k == "db" else k): v for k, v in counts.items()}
    times = {
        "sf_poll": None,
        "sf_write": None,
        "db_poll": None,
        "db_write": None,
        **(m["times"] or {}),
    }
    return {
        "id": str(m["id"]),
        "_id": m["_id"],
        "object_name": m["object_name"],
        "state": m["state"],
        "state_description": m["state_description"],
        "detail_url": f"{base}/mappings/{m['id']}",
        "errors_url": f"{base}/mappings/{m['id']}/errors",
        "schema_url": f"{base}/connections/{m['connection_id']}/schemas/{m['object_name']}",
        "created_at": m["created_at"].isoformat(),
        "updated_at": m["updated_at"].isoformat(),
        "connection": {"id": str(m["connection_id"])},
        "access": config.get("access"),
        "sf_notify_enabled": config.get("sf_notify_enabled", False),
        "sf_polling_seconds": config.get("sf_polling_seconds", 600),
        "upsert_field": m["config"].get("upsert_field"),
        "config": config,
        "counts": shown_counts,
        "db_count_date": None,
        "salesforce_count_date": None,
        "actively_writing": bool(counts["pending"]) and conn_state == "POLLING_DB_CHANGES",
        "is_polling": m["state"] in ("DATA_SYNCED", "POLLING_SF_CHANGES"),
        "has_hc_columns": True,
        "sync_flags": {},
        "times": times,
    }


def render_connection(
    req: Request, conn, c: dict[str, Any], deep: bool, a: Assumptions
) -> dict[str, Any]:
    base = f"{req.base_url}{PREFIXES['connect']}"
    sf = c["sf_info"]
    plan = c["addon_plan"].split(":", 1)[-1]
    body = {
        "id": str(c["id"]),
        "_id": c["_id"],
        "name": f"{c['app']}:{c['db_key']}:{c['schema_name']}" if c["db_key"] else c["addon_name"],
        "internal_name": f"{c['app']}-{c['_id']}",
        "resource_name": c["addon_name"],
        "addon_id": str(c["addon_id"]),
        "app_id": str(c["app_id"]),
        "app_name": c["app"],
        "team_name": None,
        "enterprise_account_name": None,
        "detail_url": f"{base}/connections/{c['id']}",
        # Always here, whether or not discovery gives it (Assumptions.discovery_region_url).
        "region_url": region_url(req, a),
        "notifications_url": f"{base}/connections/{c['id']}/notifications",
        "schema_name": c["schema_name"],
        "db_key": c["db_key"],
        "database": {"host": "127.0.0.1", "database": conn.info.dbname, "port": conn.info.port}
        if c["db_key"]
        else None,
        "state": c["state"],
        "mappings_summary_state": "OK",
        "created_at": c["created_at"].isoformat(),
        "auth_updated": c["auth_updated"].isoformat() if c["auth_updated"] else None,
        "metrics": {
            "last_write_activity_time": c["last_write_activity"].isoformat()
            if c["last_write_activity"]
            else None
        },
        "organization_id": (sf or {}).get("organization_id"),
        "sf_info": sf,
        "user_info": {"username": (sf or {}).get("username")} if sf else None,
        "sf_instance": "na1" if sf else None,
        "sf_region": "NA" if sf else None,
        "plan": plan,
        "free_edition": plan == "demo",
        "dogwood": False,
        "deletable": True,
        "tags": [],
        "logplex_log_enabled": c["logplex_log_enabled"],
        "large_query_threshold": 10000,
        "bulk_page_size": 150000,
        "soap_batch_size": 200,
        "odata": None,
        "features": c["features"],
    }
    if deep:
        mappings = state.rows(
            conn,
            "SELECT * FROM _hcsandbox.mapping WHERE connection_id = %s ORDER BY _id",
            (c["id"],),
        )
        counts = mapping_counts(conn, c, mappings)
        body["mappings"] = [
            render_mapping(req, m, counts.get(m["table_name"]), c["state"], a) for m in mappings
        ]
        bad = [
            m for m in mappings if m["state"] in ("BAD_CONFIG", "SYSTEM_ERROR", "BULK_LOAD_ERROR")
        ]
        body["mappings_summary_state"] = "ERROR" if bad else "OK"
    return body
