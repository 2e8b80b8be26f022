"""The sandbox's HTTP surface: Heroku Connect (central and regional), the Platform API, and
`/_sandbox/` for what a person does in a browser or dashboard.

Each API lives under its own prefix so that the bot points at it with its two base URLs only:
`HEROKU_CONNECT_CENTRAL_URL=http://127.0.0.1:P/hc-central`, `HEROKU_API_URL=http://127.0.0.1:P/platform`;
discovery hands out `region_url=http://127.0.0.1:P/connect/virginia/` as Heroku would.
A path the real API does not have is a 404, as on Heroku.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from swapbot.sandbox import hcschema, state
from swapbot.sandbox.options import Assumptions
from swapbot.sandbox.org import ObjectSpec
from swapbot.sandbox.sim import create_mapping, set_state, update_mapping_config

if TYPE_CHECKING:
    from swapbot.sandbox.server import Sandbox

REGION = "virginia"
PLATFORM_ACCEPT = "application/vnd.heroku+json; version=3"
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
ADDON_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{1,59}$")
KNOWN_PLANS = re.compile(
    r"^(herokuconnect:(demo|enterprise|shield|danketsu)|heroku-postgresql:[a-z0-9-]+|heroku-redis:[a-z0-9-]+)$"
)


class ApiError(Exception):
    def __init__(
        self, status: int, error_id: str, message: str, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.error_id, self.message = status, error_id, message
        self.headers = headers or {}


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"Couldn't find that {what}.")


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    api: str = ""
    user: str = ""
    base_url: str = ""

    @property
    def user_email(self) -> str:
        return f"{self.user[:8]}@users.sandbox.local"


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[..., Response | Any]


@dataclass(frozen=True)
class Route:
    api: str
    method: str
    pattern: re.Pattern[str]
    handler: Handler


ROUTES: list[Route] = []
PREFIXES = {
    "hc-central": "/hc-central",
    "connect": f"/connect/{REGION}/api/v3",
    "platform": "/platform",
    "admin": "/_sandbox",
}


def route(api: str, method: str, path: str) -> Callable[[Handler], Handler]:
    pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")

    def register(fn: Handler) -> Handler:
        ROUTES.append(Route(api, method, pattern, fn))
        return fn

    return register


def resolve(method: str, full_path: str) -> tuple[Route, dict[str, str], str]:
    """Find the route for a path; 404 for paths no API has, 405 for a known path's wrong method."""
    for api, prefix in PREFIXES.items():
        if full_path == prefix or full_path.startswith(prefix + "/"):
            rest = full_path[len(prefix) :] or "/"
            allowed = False
            for r in ROUTES:
                if r.api != api:
                    continue
                m = r.pattern.match(rest)
                if m:
                    if r.method == method:
                        return r, m.groupdict(), api
                    allowed = True
            if allowed:
                raise ApiError(405, "method_not_allowed", "Method not allowed.")
            break
    raise not_found("path")


def user_for_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


# -- rendering -----------------------------------------------------------------------------
def region_url(req: Request) -> str:
    return f"{req.base_url}/connect/{REGION}/"


def connection_ref(req: Request, c: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(c["id"]),
        "resource_name": c["addon_name"],
        "display_name": c["addon_name"],
        "addon_type": "Sync",
        "app_name": c["app"],
        "app_id": str(c["app_id"]),
        "region": REGION,
        "region_url": region_url(req),
        "region_flag": "us",
        "region_label": "Virginia",
        "cell": "virginia-1",
        "cell_label": "Virginia 1",
        "detail_url": f"{req.base_url}{PREFIXES['connect']}/connections/{c['id']}",
    }


CONNECTION_SQL = (
    "SELECT c.*, a.name AS addon_name, a.plan AS addon_plan, p.id AS app_id FROM _hcsandbox.connection c "
    "JOIN _hcsandbox.addon a ON a.id = c.addon_id JOIN _hcsandbox.app p ON p.name = c.app "
)


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
        else:
            q = sql.SQL("SELECT count(*) FROM {}.{}").format(s, sql.Identifier(table))
            out[table]["db"] = conn.execute(q).fetchone()[0]
    return out


def render_mapping(
    req: Request, m: dict[str, Any], counts: dict[str, int] | None, conn_state: str
) -> dict[str, Any]:
    base = f"{req.base_url}{PREFIXES['connect']}"
    config = dict(m["config"])
    config["revision"] = m["revision"]
    config["applied_at"] = m["applied_at"].isoformat()
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
        "upsert_field": config.get("upsert_field"),
        "config": config,
        "counts": counts or {"db": 0, "sf": 0, "pending": 0, "errors": 0},
        "db_count_date": None,
        "salesforce_count_date": None,
        "actively_writing": bool(counts and counts["pending"])
        and conn_state == "POLLING_DB_CHANGES",
        "is_polling": m["state"] in ("DATA_SYNCED", "POLLING_SF_CHANGES"),
        "has_hc_columns": True,
        "sync_flags": {},
        "times": times,
    }


def render_connection(req: Request, conn, c: dict[str, Any], deep: bool) -> dict[str, Any]:
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
            render_mapping(req, m, counts.get(m["table_name"]), c["state"]) for m in mappings
        ]
        bad = [
            m for m in mappings if m["state"] in ("BAD_CONFIG", "SYSTEM_ERROR", "BULK_LOAD_ERROR")
        ]
        body["mappings_summary_state"] = "ERROR" if bad else "OK"
    return body


# -- lookups -------------------------------------------------------------------------------
def get_connection(conn, req: Request, cid: str, *, for_update: bool = False) -> dict[str, Any]:
    try:
        uuid.UUID(cid)
    except ValueError:
        raise not_found("connection") from None
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
    try:
        uuid.UUID(mid)
    except ValueError:
        raise not_found("mapping") from None
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
    cid = c["id"]
    assignments = [sql.SQL("next_state = %s, next_at = now() + make_interval(secs => %s)")]
    params: list[Any] = [next_state, sb.options.real(after)]
    if now_state:
        assignments.append(sql.SQL("state = %s"))
        params.append(now_state)
    for key, value in extra.items():
        assignments.append(sql.SQL("{} = %s").format(sql.Identifier(key)))
        params.append(value)
    conn.execute(
        sql.SQL("UPDATE _hcsandbox.connection SET {} WHERE id = %s").format(
            sql.SQL(", ").join(assignments)
        ),
        [*params, cid],
    )


# -- Heroku Connect: hc-central ------------------------------------------------------------
def _app_connections(conn, app: str) -> list[dict[str, Any]]:
    return state.rows(conn, CONNECTION_SQL + "WHERE c.app = %s ORDER BY c._id", (app,))


@route("hc-central", "POST", "/auth/{app}")
def central_link(sb: Sandbox, req: Request, conn, app: str):
    app = _app(conn, app)["name"]  # the app's name or its UUID, as on Heroku
    conn.execute(
        "UPDATE _hcsandbox.connection SET linked_users = array_append(linked_users, %s) "
        "WHERE app = %s AND NOT (%s = ANY(linked_users))",
        (req.user, app, req.user),
    )
    conns = _app_connections(conn, app)
    return {
        "user": {"id": req.user, "email": req.user_email},
        "connections": [connection_ref(req, c) for c in conns],
        "regions": {REGION: {"flag": "us", "label": "Virginia"}},
        "cells": {"virginia-1": {"url": region_url(req), "flag": "us", "label": "Virginia 1"}},
    }


@route("hc-central", "GET", "/connections")
def central_discover(sb: Sandbox, req: Request, conn):
    app = req.query.get("app")
    if not app:
        raise bad_request("The app parameter is required.")
    conns = [c for c in _app_connections(conn, app) if req.user in c["linked_users"]]
    if req.query.get("resource_name"):
        conns = [c for c in conns if c["addon_name"] == req.query["resource_name"]]
    return {
        "count": len(conns),
        "next": None,
        "previous": None,
        "results": [connection_ref(req, c) for c in conns],
        "regions": {REGION: {"flag": "us", "label": "Virginia"}},
        "cells": {"virginia-1": {"url": region_url(req), "flag": "us", "label": "Virginia 1"}},
    }


# -- Heroku Connect: regional API ----------------------------------------------------------
@route("connect", "GET", "/connections/{cid}")
def connection_detail(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid)
    return render_connection(req, conn, c, deep=req.query.get("deep") == "true")


@route("connect", "PATCH", "/connections/{cid}")
def connection_configure(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid, for_update=True)
    body = req.body if isinstance(req.body, dict) else {}
    db_key, schema = body.get("db_key"), body.get("schema_name")
    if db_key is None and schema is None and "name" not in body:
        raise bad_request("Nothing to update: give db_key and schema_name.")
    if db_key is not None:
        known = state.row(
            conn,
            "SELECT 1 FROM _hcsandbox.config_var WHERE app = %s AND key = %s",
            (c["app"], db_key),
        )
        if known is None:
            raise bad_request(
                f"{db_key} is not a config var of {c['app']} that holds a database URL."
            )
    if schema is not None:
        if not isinstance(schema, str) or not SCHEMA_NAME.match(schema) or schema.startswith("pg_"):
            raise bad_request("schema_name must be a lower-case PostgreSQL identifier.")
        taken = state.row(
            conn,
            "SELECT 1 FROM _hcsandbox.connection WHERE schema_name = %s AND id <> %s",
            (schema, c["id"]),
        )
        if taken:
            raise bad_request(
                f"Schema {schema} is already used by another connection on this database."
            )
        if c["state"] not in ("NEW", "NEED_AUTHENTICATION") and schema != c["schema_name"]:
            raise bad_request("The schema of a connection that has synced cannot be changed.")
    new_db_key = db_key or c["db_key"]
    new_schema = schema or c["schema_name"]
    conn.execute(
        "UPDATE _hcsandbox.connection SET db_key = %s, schema_name = %s WHERE id = %s",
        (new_db_key, new_schema, c["id"]),
    )
    if new_db_key and new_schema:
        hcschema.install_prerequisites(conn)
        hcschema.create_system_tables(conn, new_schema)
        if c["state"] == "NEW":
            conn.execute(
                "UPDATE _hcsandbox.connection SET state = 'NEED_AUTHENTICATION' WHERE id = %s",
                (c["id"],),
            )
    c = get_connection(conn, req, cid)
    return render_connection(req, conn, c, deep=False)


@route("connect", "POST", "/connections/{cid}/authorize_url")
def connection_authorize_url(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid, for_update=True)
    body = req.body if isinstance(req.body, dict) else {}
    env = body.get("environment", "production")
    if env not in ("production", "sandbox", "custom"):
        raise bad_request("environment must be production, sandbox or custom.")
    if env == "custom" and not body.get("domain"):
        raise bad_request("domain is required for a custom environment.")
    if c["state"] == "NEW":
        raise bad_request("Set up the database (db_key and schema_name) before authorizing.")
    token = uuid.uuid4().hex
    conn.execute(
        "UPDATE _hcsandbox.connection SET authorize_state = %s WHERE id = %s", (token, c["id"])
    )
    return Response(
        201, {"redirect": f"{req.base_url}/_sandbox/oauth/authorize?state={token}&env={env}"}
    )


@route("connect", "GET", "/connections/{cid}/actions/export")
def connection_export(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid)
    if not c["schema_name"]:
        raise bad_request("This connection has no database configured yet.")
    mappings = state.rows(
        conn, "SELECT * FROM _hcsandbox.mapping WHERE connection_id = %s ORDER BY _id", (c["id"],)
    )
    out = []
    for m in mappings:
        config = dict(m["config"])
        config["applied_at"] = m["applied_at"].isoformat()
        out.append({"object_name": m["object_name"], "config": config})
        for f in config.get("fields", {}):
            conn.execute(
                "INSERT INTO _hcsandbox.export_log VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (m["object_name"], f),
            )
    return {
        "version": 1,
        "connection": {
            "app_name": c["app"],
            "organization_id": (c["sf_info"] or {}).get("organization_id"),
            "exported_at": conn.execute("SELECT now()").fetchone()[0].isoformat(),
            "name": f"{c['app']}:{c['db_key']}:{c['schema_name']}",
            "api_version": (c["sf_info"] or {}).get("api_version"),
            "logplex_log_enabled": c["logplex_log_enabled"],
            "features": c["features"],
        },
        "mappings": out,
    }


def _validate_config(config: Any, *, where: str) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise bad_request(f"{where}: config must be an object.")
    if config.get("access") not in ("read_only", "read_write"):
        raise bad_request(f"{where}: access must be read_only or read_write.")
    fields = config.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise bad_request(f"{where}: fields must be a non-empty object.")
    if "Id" not in fields:
        raise bad_request(f"{where}: fields must include Id.")
    return config


@route("connect", "POST", "/connections/{cid}/actions/import")
def connection_import(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid, for_update=True)
    doc = req.body
    if (
        not isinstance(doc, dict)
        or doc.get("version") != 1
        or not isinstance(doc.get("mappings"), list)
    ):
        raise bad_request(
            "The configuration must be an export document: version 1 with a mappings list."
        )
    for i, entry in enumerate(doc["mappings"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("object_name"), str):
            raise bad_request(f"mappings[{i}]: object_name is required.")
        _validate_config(entry.get("config"), where=f"mappings[{i}] ({entry['object_name']})")
    if c["state"] not in ("IDLE", "POLLING_DB_CHANGES"):
        raise bad_request(
            f"The connection must be authorized and running to import (it is {c['state']})."
        )
    transition(
        conn,
        sb,
        c,
        "IMPORT_CONFIGURATION",
        "IDLE",
        sb.options.import_seconds,
        pending_import=Jsonb(doc),
    )
    return Response(202, {"message": "Import started"})


@route("connect", "POST", "/connections/{cid}/actions/pause")
def connection_pause(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid, for_update=True)
    if c["state"] == "PAUSED" or c["next_state"] == "PAUSED":
        return Response(202, {})
    if c["state"] != "IDLE":
        raise bad_request(f"A connection can only be paused when it is IDLE; it is {c['state']}.")
    transition(conn, sb, c, None, "PAUSED", sb.options.pause_seconds)
    return Response(202, {})


@route("connect", "POST", "/connections/{cid}/actions/resume")
def connection_resume(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid, for_update=True)
    if c["state"] == "PAUSED":
        transition(conn, sb, c, "RECOVERY", "IDLE", sb.options.resume_seconds)
        # Mappings that have not polled since this moment poll as soon as the connection runs
        # again (Assumptions.resume_polls_at_once); NULL leaves them to their interval.
        conn.execute(
            "UPDATE _hcsandbox.connection SET resumed_at = CASE WHEN %s THEN now() END "
            "WHERE id = %s",
            (sb.options.assumptions.resume_polls_at_once, c["id"]),
        )
    elif c["next_state"] == "PAUSED":  # resumed before the pause took effect
        conn.execute(
            "UPDATE _hcsandbox.connection SET next_state = NULL, next_at = NULL WHERE id = %s",
            (c["id"],),
        )
    return Response(202, {})


@route("connect", "POST", "/connections/{cid}/actions/restart")
def connection_restart(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid, for_update=True)
    if c["state"] in ("NEW", "NEED_AUTHENTICATION"):
        raise bad_request("The connection is not set up yet.")
    transition(conn, sb, c, "RECOVERY", "IDLE", sb.options.restart_seconds)
    return Response(202, {})


def _errors(conn, schema: str | None, table: str | None = None) -> dict[str, Any]:
    if not schema:
        return {"count": 0, "results": []}
    s = sql.Identifier(schema)
    where = sql.SQL("state = 'FAILED' AND created_at > now() - interval '1 day'")
    params: list[Any] = []
    if table:
        where = sql.SQL("{} AND table_name = %s").format(where)
        params = [table]
    q = sql.SQL(
        "SELECT id, table_name, record_id, sf_message AS message, created_at FROM {s}._trigger_log WHERE {w} "
        "UNION ALL SELECT id, table_name, record_id, sf_message, created_at FROM {s}._trigger_log_archive WHERE {w} "
        "ORDER BY created_at DESC LIMIT 1000"
    ).format(s=s, w=where)
    results = [
        {**r, "created_at": r["created_at"].isoformat()} for r in state.rows(conn, q, params * 2)
    ]
    return {"count": len(results), "results": results}


@route("connect", "GET", "/connections/{cid}/errors")
def connection_errors(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid)
    return _errors(conn, c["schema_name"])


@route("connect", "GET", "/connections/{cid}/notifications")
def connection_notifications(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid)
    found = state.rows(
        conn,
        "SELECT id::text, created_at, event_type, message FROM _hcsandbox.notification WHERE connection_id = %s "
        "ORDER BY created_at DESC LIMIT 1000",
        (c["id"],),
    )
    return {"results": [{**n, "created_at": n["created_at"].isoformat()} for n in found]}


@route("connect", "GET", "/connections/{cid}/schemas/{object_name}")
def connection_describe(sb: Sandbox, req: Request, conn, cid: str, object_name: str):
    c = get_connection(conn, req, cid)
    if c["sf_info"] is None:
        raise bad_request("The connection is not authorized with Salesforce.")
    found = state.row(conn, "SELECT spec FROM _hcsandbox.sf_object WHERE name = %s", (object_name,))
    if found is None:
        raise not_found("object")
    return ObjectSpec.model_validate(found["spec"]).describe()


@route("connect", "GET", "/apps/{app}")
def connect_app(sb: Sandbox, req: Request, conn, app: str):
    keys = state.rows(
        conn,
        "SELECT key FROM _hcsandbox.config_var WHERE app = %s AND value LIKE 'postgres%%' ORDER BY key",
        (app,),
    )
    if not keys and state.row(conn, "SELECT 1 FROM _hcsandbox.app WHERE name = %s", (app,)) is None:
        raise not_found("app")
    return {
        "name": app,
        "db_keys": [
            {"name": k["key"], "addon": {"plan": "heroku-postgresql:standard-0"}} for k in keys
        ],
    }


@route("connect", "POST", "/connections/{cid}/mappings")
def mapping_create(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid, for_update=True)
    body = req.body if isinstance(req.body, dict) else {}
    name = body.get("object_name")
    if not isinstance(name, str) or not name:
        raise bad_request("object_name is required.")
    config = _validate_config(body.get("config"), where=name)
    if not c["schema_name"]:
        raise bad_request("This connection has no database configured yet.")
    if state.row(
        conn,
        "SELECT 1 FROM _hcsandbox.mapping WHERE connection_id = %s AND lower(object_name) = lower(%s)",
        (c["id"], name),
    ):
        raise bad_request(f"A mapping for {name} already exists on this connection.")
    m = create_mapping(conn, c["id"], name, config)
    return Response(201, render_mapping(req, m, None, c["state"]))


@route("connect", "GET", "/mappings/{mid}")
def mapping_detail(sb: Sandbox, req: Request, conn, mid: str):
    c, m = get_mapping(conn, req, mid)
    counts = mapping_counts(conn, c, [m])
    return render_mapping(req, m, counts[m["table_name"]], c["state"])


@route("connect", "PUT", "/mappings/{mid}")
def mapping_edit(sb: Sandbox, req: Request, conn, mid: str):
    c, m = get_mapping(conn, req, mid)
    body = req.body if isinstance(req.body, dict) else {}
    config = _validate_config(body.get("config"), where=m["object_name"])
    revision = config.get("revision")
    if not isinstance(revision, int):
        raise bad_request("config.revision (the current revision) is required.")
    if revision != m["revision"]:
        raise ApiError(
            409,
            "conflict",
            f"Revision {revision} is out of date; the mapping is at {m['revision']}.",
        )
    update_mapping_config(conn, m, config)
    m = state.row(conn, "SELECT * FROM _hcsandbox.mapping WHERE id = %s", (m["id"],))
    return render_mapping(req, m, None, c["state"])


@route("connect", "DELETE", "/mappings/{mid}")
def mapping_delete(sb: Sandbox, req: Request, conn, mid: str):
    c, m = get_mapping(conn, req, mid)
    if c["schema_name"]:
        exists = conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
            (c["schema_name"], m["table_name"]),
        ).fetchone()
        if exists and sb.options.assumptions.delete_drops_table:
            try:
                with conn.transaction():
                    hcschema.drop_mapped_table(conn, c["schema_name"], m["table_name"])
            except psycopg.errors.DependentObjectsStillExist as exc:
                # [U] What HC does here is unknown; the sandbox refuses, naming the dependents.
                raise ApiError(
                    409,
                    "conflict",
                    f"Cannot drop table {m['table_name']}: {exc.diag.message_detail or exc}",
                ) from None
        elif exists:
            hcschema.drop_hc_objects(conn, c["schema_name"], m["table_name"])
    conn.execute("DELETE FROM _hcsandbox.mapping WHERE id = %s", (m["id"],))
    return Response(204, None)


@route("connect", "POST", "/mappings/{mid}/actions/reload")
def mapping_reload(sb: Sandbox, req: Request, conn, mid: str):
    c, m = get_mapping(conn, req, mid)
    if m["state"] in ("INITIAL", "BAD_CONFIG"):
        raise bad_request(f"The mapping cannot be reloaded while it is {m['state']}.")
    set_state(conn, m["id"], "RELOAD_TABLE", load_kind="reload", load_after=0)
    return Response(202, {})


@route("connect", "GET", "/mappings/{mid}/errors")
def mapping_errors(sb: Sandbox, req: Request, conn, mid: str):
    c, m = get_mapping(conn, req, mid)
    return _errors(conn, c["schema_name"], m["table_name"])


# -- Heroku Platform API -------------------------------------------------------------------
def _app(conn, app: str) -> dict[str, Any]:
    a = state.row(conn, "SELECT * FROM _hcsandbox.app WHERE name = %s OR id::text = %s", (app, app))
    if a is None:
        raise not_found("app")
    return a


def render_app(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(a["id"]),
        "name": a["name"],
        "maintenance": a["maintenance"],
        "region": {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, a["region"])), "name": a["region"]},
        "stack": {"name": "heroku-24"},
        "team": None,
        "space": None,
        "web_url": f"https://{a['name']}.herokuapp.com/",
        "created_at": a["created_at"].isoformat(),
        "updated_at": a["updated_at"].isoformat(),
    }


def render_addon(conn, ad: dict[str, Any]) -> dict[str, Any]:
    vars_ = [
        r["key"]
        for r in state.rows(
            conn, "SELECT key FROM _hcsandbox.config_var WHERE app = %s ORDER BY key", (ad["app"],)
        )
        if ad["service"] == "heroku-postgresql" and r["key"] == "DATABASE_URL"
    ]
    app = _app(conn, ad["app"])
    return {
        "id": str(ad["id"]),
        "name": ad["name"],
        "addon_service": {
            "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, ad["service"])),
            "name": ad["service"],
        },
        "plan": {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, ad["plan"])), "name": ad["plan"]},
        "app": {"id": str(app["id"]), "name": app["name"]},
        "billing_entity": {"id": str(app["id"]), "name": app["name"], "type": "app"},
        "config_vars": vars_,
        "state": ad["state"],
        "provision_message": None,
        "web_url": f"https://addons-sso.heroku.com/apps/{app['id']}/addons/{ad['id']}",
        "actions": [],
        "created_at": ad["created_at"].isoformat(),
        "updated_at": ad["updated_at"].isoformat(),
    }


def paged(req: Request, items: list[dict[str, Any]], key: str = "id") -> Response:
    """Honour `Range: id ]last..; max=N` as Heroku does, answering 206 with Next-Range."""
    rng = req.headers.get("range", "")
    m = re.match(r"^\s*(\w+)\s*(\]?)([^.;]*)\.\.\s*(?:;\s*max=(\d+))?", rng)
    if not m:
        return Response(200, items)
    field_, exclusive, start, max_ = m.group(1), m.group(2), m.group(3).strip(), m.group(4)
    items = sorted(items, key=lambda x: str(x.get(field_, "")))
    if start:
        items = [
            i
            for i in items
            if (str(i.get(field_)) > start if exclusive else str(i.get(field_)) >= start)
        ]
    limit = min(int(max_ or 1000), 1000)
    if len(items) > limit:
        page = items[:limit]
        return Response(
            206, page, {"Next-Range": f"{field_} ]{page[-1].get(field_)}..; max={limit}"}
        )
    return Response(200, items)


@route("platform", "GET", "/apps/{app}")
def platform_app(sb: Sandbox, req: Request, conn, app: str):
    return render_app(_app(conn, app))


@route("platform", "PATCH", "/apps/{app}")
def platform_app_update(sb: Sandbox, req: Request, conn, app: str):
    a = _app(conn, app)
    body = req.body if isinstance(req.body, dict) else {}
    if set(body) - {"maintenance", "build_stack", "name"}:
        raise ApiError(422, "invalid_params", "Unknown app attribute.")
    if "maintenance" in body:
        if not isinstance(body["maintenance"], bool):
            raise ApiError(422, "invalid_params", "maintenance must be a boolean.")
        conn.execute(
            "UPDATE _hcsandbox.app SET maintenance = %s, updated_at = now() WHERE name = %s",
            (body["maintenance"], a["name"]),
        )
    return render_app(_app(conn, a["name"]))


@route("platform", "GET", "/apps/{app}/addons")
def platform_addons(sb: Sandbox, req: Request, conn, app: str):
    a = _app(conn, app)
    addons = state.rows(
        conn, "SELECT * FROM _hcsandbox.addon WHERE app = %s ORDER BY created_at", (a["name"],)
    )
    return paged(req, [render_addon(conn, ad) for ad in addons])


def _addon(conn, addon: str, app: str | None = None) -> dict[str, Any]:
    q = "SELECT * FROM _hcsandbox.addon WHERE (name = %s OR id::text = %s)"
    params: list[Any] = [addon, addon]
    if app is not None:
        q += " AND app = %s"
        params.append(_app(conn, app)["name"])
    ad = state.row(conn, q, params)
    if ad is None:
        raise not_found("add-on")
    return ad


@route("platform", "GET", "/apps/{app}/addons/{addon}")
def platform_addon(sb: Sandbox, req: Request, conn, app: str, addon: str):
    return render_addon(conn, _addon(conn, addon, app))


@route("platform", "GET", "/addons/{addon}")
def platform_addon_global(sb: Sandbox, req: Request, conn, addon: str):
    return render_addon(conn, _addon(conn, addon))


@route("platform", "POST", "/apps/{app}/addons")
def platform_addon_create(sb: Sandbox, req: Request, conn, app: str):
    a = _app(conn, app)
    body = req.body if isinstance(req.body, dict) else {}
    plan = body.get("plan")
    if not isinstance(plan, str) or not KNOWN_PLANS.match(plan):
        raise ApiError(422, "invalid_params", "Couldn't find that add-on plan.")
    name = (
        body.get("name")
        or f"{plan.split(':')[0]}-{uuid.uuid4().hex[:6]}-{sb.rng.randint(10000, 99999)}"
    )
    if not isinstance(name, str) or not ADDON_NAME.match(name):
        raise ApiError(
            422,
            "invalid_params",
            "Name must start with a letter and contain only letters, digits, - and _.",
        )
    if state.row(conn, "SELECT 1 FROM _hcsandbox.addon WHERE name = %s", (name,)):
        raise ApiError(422, "invalid_params", f"Name {name} is already used by another add-on.")
    service = plan.split(":")[0]
    ad = state.row(
        conn,
        "INSERT INTO _hcsandbox.addon (name, app, service, plan, state, ready_at) "
        "VALUES (%s, %s, %s, %s, 'provisioning', now() + make_interval(secs => %s)) RETURNING *",
        (name, a["name"], service, plan, sb.options.real(sb.options.provision_seconds)),
    )
    attachment = (body.get("attachment") or {}).get("name") if isinstance(body, dict) else None
    conn.execute(
        "INSERT INTO _hcsandbox.attachment (addon, app, name) VALUES (%s, %s, %s) "
        "ON CONFLICT (app, name) DO NOTHING",
        (ad["id"], a["name"], attachment or name.upper().replace("-", "_")),
    )
    if service == "herokuconnect":
        conn.execute(
            "INSERT INTO _hcsandbox.connection (addon_id, app, state, features) VALUES (%s, %s, 'NEW', %s)",
            (ad["id"], a["name"], Jsonb(default_features())),
        )
    return Response(201, render_addon(conn, ad))


@route("platform", "DELETE", "/apps/{app}/addons/{addon}")
def platform_addon_delete(sb: Sandbox, req: Request, conn, app: str, addon: str):
    """Remove an add-on: 200 with it, `state` deprovisioned. A Heroku Connect add-on takes its
    connection, mappings and notifications with it, so the simulator stops serving them; the
    connection's schema and tables stay in the database ([U] remove-addon-keeps-schema)."""
    found = _addon(conn, addon, app)
    # Lock the add-on, then its connection, then the mappings: the simulator locks a connection
    # before its mappings, so a step in progress finishes first and the next one skips it.
    ad = state.row(conn, "SELECT * FROM _hcsandbox.addon WHERE id = %s FOR UPDATE", (found["id"],))
    if ad is None:
        raise not_found("add-on")  # removed by a concurrent call
    cids = [
        r["id"]
        for r in state.rows(
            conn,
            "SELECT id FROM _hcsandbox.connection WHERE addon_id = %s ORDER BY _id FOR UPDATE",
            (ad["id"],),
        )
    ]
    if cids:
        conn.execute("DELETE FROM _hcsandbox.mapping WHERE connection_id = ANY(%s)", (cids,))
        conn.execute("DELETE FROM _hcsandbox.notification WHERE connection_id = ANY(%s)", (cids,))
        conn.execute("DELETE FROM _hcsandbox.connection WHERE id = ANY(%s)", (cids,))
    body = render_addon(conn, ad)
    conn.execute("DELETE FROM _hcsandbox.addon WHERE id = %s", (ad["id"],))
    return {**body, "state": "deprovisioned"}


def render_attachment(conn, att: dict[str, Any]) -> dict[str, Any]:
    ad = state.row(conn, "SELECT * FROM _hcsandbox.addon WHERE id = %s", (att["addon"],))
    owner = _app(conn, ad["app"])
    app = _app(conn, att["app"])
    return {
        "id": str(att["id"]),
        "name": att["name"],
        "namespace": att["namespace"],
        "addon": {
            "id": str(ad["id"]),
            "name": ad["name"],
            "app": {"id": str(owner["id"]), "name": owner["name"]},
        },
        "app": {"id": str(app["id"]), "name": app["name"]},
        "created_at": att["created_at"].isoformat(),
        "updated_at": att["created_at"].isoformat(),
        "web_url": None,
    }


@route("platform", "GET", "/apps/{app}/addon-attachments")
def platform_app_attachments(sb: Sandbox, req: Request, conn, app: str):
    a = _app(conn, app)
    found = state.rows(
        conn, "SELECT * FROM _hcsandbox.attachment WHERE app = %s ORDER BY name", (a["name"],)
    )
    return paged(req, [render_attachment(conn, att) for att in found])


@route("platform", "GET", "/addons/{addon}/addon-attachments")
def platform_addon_attachments(sb: Sandbox, req: Request, conn, addon: str):
    ad = _addon(conn, addon)
    found = state.rows(
        conn,
        "SELECT * FROM _hcsandbox.attachment WHERE addon = %s ORDER BY app, name",
        (ad["id"],),
    )
    return paged(req, [render_attachment(conn, att) for att in found])


def default_features() -> dict[str, bool]:
    return {
        "poll_db_no_merge": True,
        "disable_bulk_writes": False,
        "poll_external_ids": False,
        "rest_count_only": False,
        "increased_query_cursor_limit": True,
        "cdc_for_accelerated_polling": False,
        "use_assignment_rules": False,
        "ucs_basic_collation_index": False,
    }


def render_formation(a: dict[str, Any], f: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(f["id"]),
        "type": f["type"],
        "quantity": f["quantity"],
        "size": f["size"],
        "dyno_size": {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, f["size"])), "name": f["size"]},
        "command": f["command"],
        "app": {"id": str(a["id"]), "name": a["name"]},
        "created_at": f["created_at"].isoformat(),
        "updated_at": f["updated_at"].isoformat(),
    }


def _formation(conn, a: dict[str, Any]) -> list[dict[str, Any]]:
    found = state.rows(
        conn, "SELECT * FROM _hcsandbox.formation WHERE app = %s ORDER BY type", (a["name"],)
    )
    return [render_formation(a, f) for f in found]


@route("platform", "GET", "/apps/{app}/formation")
def platform_formation(sb: Sandbox, req: Request, conn, app: str):
    return paged(req, _formation(conn, _app(conn, app)))


def _scale(conn, a: dict[str, Any], update: Any) -> None:
    if not isinstance(update, dict) or not isinstance(update.get("type"), str):
        raise ApiError(422, "invalid_params", "Each update needs a process type.")
    found = state.row(
        conn,
        "SELECT * FROM _hcsandbox.formation WHERE app = %s AND type = %s",
        (a["name"], update["type"]),
    )
    if found is None:
        raise ApiError(404, "not_found", f"Couldn't find that process type ({update['type']}).")
    quantity = update.get("quantity", found["quantity"])
    if not isinstance(quantity, int) or quantity < 0 or quantity > 100:
        raise ApiError(422, "invalid_params", "quantity must be an integer from 0 to 100.")
    size = update.get("dyno_size", update.get("size", found["size"]))
    if isinstance(size, dict):
        size = size.get("name") or found["size"]
    conn.execute(
        "UPDATE _hcsandbox.formation SET quantity = %s, size = %s, updated_at = now() WHERE app = %s AND type = %s",
        (quantity, size, a["name"], update["type"]),
    )


@route("platform", "PATCH", "/apps/{app}/formation")
def platform_formation_batch(sb: Sandbox, req: Request, conn, app: str):
    a = _app(conn, app)
    updates = (req.body or {}).get("updates") if isinstance(req.body, dict) else None
    if not isinstance(updates, list) or not updates:
        raise ApiError(422, "invalid_params", "updates must be a non-empty list.")
    for u in updates:
        _scale(conn, a, u)
    return _formation(conn, a)


@route("platform", "PATCH", "/apps/{app}/formation/{ptype}")
def platform_formation_one(sb: Sandbox, req: Request, conn, app: str, ptype: str):
    a = _app(conn, app)
    _scale(conn, a, {**(req.body if isinstance(req.body, dict) else {}), "type": ptype})
    return next(f for f in _formation(conn, a) if f["type"] == ptype)


def render_dyno(a: dict[str, Any], d: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(d["id"]),
        "name": f"{d['type']}.{d['num']}",
        "type": d["type"],
        "state": "up" if d["state"] == "up" and d["stop_at"] else d["state"],
        "size": d["size"],
        "command": "",
        "app": {"id": str(a["id"]), "name": a["name"]},
        "release": {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, a["name"])), "version": 1},
        "created_at": d["created_at"].isoformat(),
        "updated_at": d["created_at"].isoformat(),
    }


@route("platform", "GET", "/apps/{app}/dynos")
def platform_dynos(sb: Sandbox, req: Request, conn, app: str):
    a = _app(conn, app)
    found = state.rows(
        conn, "SELECT * FROM _hcsandbox.dyno WHERE app = %s ORDER BY type, num", (a["name"],)
    )
    return paged(req, [render_dyno(a, d) for d in found])


def _restart(sb: Sandbox, conn, a: dict[str, Any], where: sql.Composable, params: list[Any]) -> int:
    q = sql.SQL(
        "UPDATE _hcsandbox.dyno SET state = 'starting', ready_at = now() + make_interval(secs => %s) "
        "WHERE app = %s AND stop_at IS NULL AND {}"
    ).format(where)
    return conn.execute(
        q, [sb.options.real(sb.options.dyno_boot_seconds), a["name"], *params]
    ).rowcount


@route("platform", "DELETE", "/apps/{app}/dynos")
def platform_restart_all(sb: Sandbox, req: Request, conn, app: str):
    _restart(sb, conn, _app(conn, app), sql.SQL("true"), [])
    return Response(202, {})


@route("platform", "DELETE", "/apps/{app}/dynos/{dyno}")
def platform_restart_dyno(sb: Sandbox, req: Request, conn, app: str, dyno: str):
    ptype, _, num = dyno.partition(".")
    if not num.isdigit() or not _restart(
        sb, conn, _app(conn, app), sql.SQL("type = %s AND num = %s"), [ptype, int(num)]
    ):
        raise not_found("dyno")
    return Response(202, {})


@route("platform", "DELETE", "/apps/{app}/formations/{ptype}")
def platform_restart_type(sb: Sandbox, req: Request, conn, app: str, ptype: str):
    a = _app(conn, app)
    if (
        state.row(
            conn,
            "SELECT 1 FROM _hcsandbox.formation WHERE app = %s AND type = %s",
            (a["name"], ptype),
        )
        is None
    ):
        raise not_found("process type")
    _restart(sb, conn, a, sql.SQL("type = %s"), [ptype])
    return Response(202, {})


@route("platform", "GET", "/apps/{app}/config-vars")
def platform_config_vars(sb: Sandbox, req: Request, conn, app: str):
    a = _app(conn, app)
    return {
        r["key"]: r["value"]
        for r in state.rows(
            conn, "SELECT key, value FROM _hcsandbox.config_var WHERE app = %s", (a["name"],)
        )
    }


@route("platform", "PATCH", "/apps/{app}/config-vars")
def platform_config_vars_update(sb: Sandbox, req: Request, conn, app: str):
    a = _app(conn, app)
    if not isinstance(req.body, dict):
        raise ApiError(422, "invalid_params", "Body must be an object of config vars.")
    for key, value in req.body.items():
        if value is None:
            conn.execute(
                "DELETE FROM _hcsandbox.config_var WHERE app = %s AND key = %s", (a["name"], key)
            )
        else:
            conn.execute(
                "INSERT INTO _hcsandbox.config_var VALUES (%s, %s, %s) ON CONFLICT (app, key) DO UPDATE "
                "SET value = EXCLUDED.value",
                (a["name"], key, str(value)),
            )
    # A config change is a new release: every dyno restarts (Heroku's behaviour).
    _restart(sb, conn, a, sql.SQL("true"), [])
    return platform_config_vars(sb, req, conn, app)


@route("platform", "GET", "/account/rate-limits")
def platform_rate_limits(sb: Sandbox, req: Request, conn):
    return {"remaining": sb.rate_limit_remaining(req.user, spend=False)}


# -- /_sandbox: what a person does in a browser or the dashboard, and test controls ---------
@route("admin", "GET", "/health")
def admin_health(sb: Sandbox, req: Request, conn):
    return {"ok": True, "options": sb.options.model_dump()}


@route("admin", "GET", "/oauth/authorize")
def admin_oauth(sb: Sandbox, req: Request, conn):
    """A person opened the authorize link and logged in to Salesforce."""
    token = req.query.get("state", "")
    c = (
        state.row(
            conn,
            "SELECT * FROM _hcsandbox.connection WHERE authorize_state = %s FOR NO KEY UPDATE",
            (token,),
        )
        if token
        else None
    )
    if c is None:
        raise bad_request("This authorization link is unknown or was already used.")
    username = req.query.get("username") or f"integration-{str(c['id'])[:8]}@acme.example"
    api_version = req.query.get("api_version") or sb.options.api_version
    org = state.get_setting(conn, "organization_id", "00D000000000001AAA")
    sf_info = {
        "username": username,
        "organization_id": org,
        "environment": req.query.get("env", "production"),
        "domain": None,
        "api_version": api_version,
    }
    conn.execute(
        "UPDATE _hcsandbox.connection SET sf_info = %s, authorize_state = NULL, auth_updated = now() WHERE id = %s",
        (Jsonb(sf_info), c["id"]),
    )
    transition(conn, sb, c, "RECOVERY", "IDLE", sb.options.authorize_seconds)
    return {"authorized": True, "connection": str(c["id"]), "username": username}


def _admin_connection(conn, key: str) -> dict[str, Any]:
    c = state.row(
        conn,
        CONNECTION_SQL + "WHERE c.id::text = %s OR a.name = %s",
        (key, key),
    )
    if c is None:
        raise not_found("connection")
    return c


@route("admin", "POST", "/connections/{key}/mappings/{object_name}/abort")
def admin_abort(sb: Sandbox, req: Request, conn, key: str, object_name: str):
    """The dashboard's Abort on a mapping that is loading."""
    c = _admin_connection(conn, key)
    m = state.row(
        conn,
        "SELECT * FROM _hcsandbox.mapping WHERE connection_id = %s AND lower(object_name) = lower(%s) FOR UPDATE",
        (c["id"], object_name),
    )
    if m is None:
        raise not_found("mapping")
    if m["state"] not in ("INITIAL", "RELOAD_TABLE", "RESYNC", "SCHEMA_CHANGED"):
        raise bad_request(f"Nothing to abort: the mapping is {m['state']}.")
    set_state(conn, m["id"], "ABORTED", "Load aborted by user", load_kind=None, load_after=0)
    return {"state": "ABORTED"}


@route("admin", "POST", "/connections/{key}/settings")
def admin_settings(sb: Sandbox, req: Request, conn, key: str):
    """Manage Connection page: write algorithm, notification preferences, logplex logging."""
    c = _admin_connection(conn, key)
    body = req.body if isinstance(req.body, dict) else {}
    if "poll_db_no_merge" in body:
        conn.execute(
            "UPDATE _hcsandbox.connection SET features = features || %s WHERE id = %s",
            (Jsonb({"poll_db_no_merge": bool(body["poll_db_no_merge"])}), c["id"]),
        )
    if "logplex_log_enabled" in body:
        conn.execute(
            "UPDATE _hcsandbox.connection SET logplex_log_enabled = %s WHERE id = %s",
            (bool(body["logplex_log_enabled"]), c["id"]),
        )
    if "notifications" in body:
        conn.execute(
            "UPDATE _hcsandbox.connection SET settings = settings || %s WHERE id = %s",
            (Jsonb({"notifications": body["notifications"]}), c["id"]),
        )
    return admin_get_settings(sb, req, conn, key)


@route("admin", "GET", "/connections/{key}/settings")
def admin_get_settings(sb: Sandbox, req: Request, conn, key: str):
    c = _admin_connection(conn, key)
    return {
        "poll_db_no_merge": c["features"].get("poll_db_no_merge"),
        "logplex_log_enabled": c["logplex_log_enabled"],
        "notifications": c["settings"].get("notifications", {}),
    }


@route("admin", "POST", "/connections/{key}/mappings/{object_name}/state")
def admin_mapping_state(sb: Sandbox, req: Request, conn, key: str, object_name: str):
    """Force a mapping into a state (e.g. SYSTEM_ERROR) to rehearse failures."""
    c = _admin_connection(conn, key)
    target = (req.body or {}).get("state") if isinstance(req.body, dict) else None
    if not isinstance(target, str):
        raise bad_request("state is required")
    done = conn.execute(
        "UPDATE _hcsandbox.mapping SET state = %s, state_since = now() WHERE connection_id = %s "
        "AND lower(object_name) = lower(%s)",
        (target, c["id"], object_name),
    ).rowcount
    if not done:
        raise not_found("mapping")
    return {"state": target}


@route("admin", "GET", "/requests")
def admin_requests(sb: Sandbox, req: Request, conn):
    after = int(req.query.get("after", "0") or 0)
    found = state.rows(
        conn,
        "SELECT id, at, api, method, path, query, status, fault, body FROM _hcsandbox.request_log "
        "WHERE id > %s ORDER BY id LIMIT 10000",
        (after,),
    )
    return [{**r, "at": r["at"].isoformat()} for r in found]


@route("admin", "POST", "/faults")
def admin_faults(sb: Sandbox, req: Request, conn):
    body = req.body if isinstance(req.body, dict) else {}
    rate = body.get("rate", 0.0)
    if not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise bad_request("rate must be between 0 and 1")
    kinds = body.get("kinds", ["503", "500", "429", "slow"])
    if not kinds or not set(kinds) <= {"503", "500", "429", "slow"}:
        raise bad_request("kinds must be some of 503, 500, 429, slow")
    only = body.get("only")
    if only is not None and not isinstance(only, str):
        raise bad_request('only must be text, e.g. "DELETE /connect/api/v3/mappings/"')
    sb.options.faults = float(rate)
    sb.options.faults_only, sb.options.fault_kinds = only, tuple(kinds)
    if "slow_seconds" in body:
        sb.options.slow_seconds = float(body["slow_seconds"])
    return {
        "faults": sb.options.faults,
        "slow_seconds": sb.options.slow_seconds,
        "only": only,
        "kinds": list(kinds),
    }


@route("admin", "GET", "/assumptions")
def admin_assumptions(sb: Sandbox, req: Request, conn):
    return sb.options.assumptions.model_dump()


@route("admin", "POST", "/assumptions")
def admin_set_assumptions(sb: Sandbox, req: Request, conn):
    body = req.body if isinstance(req.body, dict) else {}
    try:
        sb.options.assumptions = Assumptions.model_validate(
            {**sb.options.assumptions.model_dump(), **body}
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    state.put_setting(conn, "assumptions", sb.options.assumptions.model_dump())
    return sb.options.assumptions.model_dump()


@route("admin", "POST", "/step")
def admin_step(sb: Sandbox, req: Request, conn):
    """Advance the simulation by `seconds` of real time at the current speed (tests, demos)."""
    seconds = (req.body or {}).get("seconds", 1.0) if isinstance(req.body, dict) else 1.0
    conn.commit()
    sb.sim.step(float(seconds))
    return {"stepped": seconds}
