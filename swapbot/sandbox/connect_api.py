"""Heroku Connect API v3: hc-central (link a user to an app's connections and discover them)
and the regional API (connections, their actions and their mappings).

Finding and rendering connections and mappings is in connect_records; the simulator moves
them on from the states these handlers set.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from swapbot.sandbox import admin_api, hcschema, state
from swapbot.sandbox.connect_records import (
    CONNECTION_SQL,
    connection_ref,
    get_connection,
    get_mapping,
    mapping_counts,
    regions,
    render_connection,
    render_mapping,
    transition,
)
from swapbot.sandbox.org import ObjectSpec
from swapbot.sandbox.platform_api import find_app
from swapbot.sandbox.routing import (
    ApiError,
    Request,
    Response,
    bad_request,
    body_object,
    not_found,
)
from swapbot.sandbox.sim import (
    create_mapping,
    ensure_schema,
    remove_mapping,
    set_state,
    update_mapping_config,
)

if TYPE_CHECKING:
    from swapbot.sandbox.server import Sandbox

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


# -- hc-central ----------------------------------------------------------------------------
def _app_connections(conn, app: str) -> list[dict[str, Any]]:
    return state.rows(conn, CONNECTION_SQL + "WHERE c.app = %s ORDER BY c._id", (app,))


def central_link(sb: Sandbox, req: Request, conn, app: str):
    app = find_app(conn, app)["name"]  # the app's name or its UUID, as on Heroku
    a = sb.options.assumptions
    conn.execute(
        "UPDATE _hcsandbox.connection SET linked_users = array_append(linked_users, %s) "
        "WHERE app = %s AND NOT (%s = ANY(linked_users))",
        (req.user, app, req.user),
    )
    conns = _app_connections(conn, app)
    return {
        "user": {"id": req.user, "email": req.user_email},
        "connections": [connection_ref(req, c, a) for c in conns],
        **regions(req, a),
    }


def central_discover(sb: Sandbox, req: Request, conn):
    app = req.query.get("app")
    if not app:
        raise bad_request("The app parameter is required.")
    a = sb.options.assumptions
    conns = _app_connections(conn, app)
    if a.discovery_needs_link:  # else any user sees them (assumption discovery-needs-link)
        conns = [c for c in conns if req.user in c["linked_users"]]
    if req.query.get("resource_name"):
        conns = [c for c in conns if c["addon_name"] == req.query["resource_name"]]
    return {
        "count": len(conns),
        "next": None,
        "previous": None,
        "results": [connection_ref(req, c, a) for c in conns],
        **regions(req, a),
    }


# -- regional API: connections -------------------------------------------------------------
def connection_detail(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid)
    deep = req.query.get("deep") == "true"
    return render_connection(req, conn, c, deep, sb.options.assumptions)


def connection_configure(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid, for_update=True)
    body = body_object(req)
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
        # Or only with the first mapping (assumption configure-creates-schema).
        if sb.options.assumptions.configure_creates_schema:
            hcschema.install_prerequisites(conn)
            hcschema.create_system_tables(conn, new_schema)
        if c["state"] == "NEW":
            conn.execute(
                "UPDATE _hcsandbox.connection SET state = 'NEED_AUTHENTICATION' WHERE id = %s",
                (c["id"],),
            )
    c = get_connection(conn, req, cid)
    return render_connection(req, conn, c, False, sb.options.assumptions)


def connection_authorize_url(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid, for_update=True)
    body = body_object(req)
    env = body.get("environment", "production")
    if env not in ("production", "sandbox", "custom"):
        raise bad_request("environment must be production, sandbox or custom.")
    if env == "custom" and not body.get("domain"):
        raise bad_request("domain is required for a custom environment.")
    # Heroku's own client always sends where to go once logged in (its test fixtures match the
    # body exactly); the sandbox holds every client to it.
    next_url = body.get("next")
    if not isinstance(next_url, str) or not next_url.startswith(("https://", "http://")):
        raise bad_request("next is required: the URL to send the user to once authorized.")
    if c["state"] == "NEW":
        raise bad_request("Set up the database (db_key and schema_name) before authorizing.")
    token = uuid.uuid4().hex
    conn.execute(
        "UPDATE _hcsandbox.connection SET authorize_state = %s, authorize_next = %s WHERE id = %s",
        (token, next_url, c["id"]),
    )
    return Response(
        201, {"redirect": f"{req.base_url}/_sandbox/oauth/authorize?state={token}&env={env}"}
    )


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


def _validate_config(config: Any, *, where: str, adds_id: bool = False) -> dict[str, Any]:
    """A mapping config as HC takes it. `adds_id`: the create call, where older official
    clients sent only the chosen fields and HC adds `Id` itself."""
    if not isinstance(config, dict):
        raise bad_request(f"{where}: config must be an object.")
    if config.get("access") not in ("read_only", "read_write"):
        raise bad_request(f"{where}: access must be read_only or read_write.")
    fields = config.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise bad_request(f"{where}: fields must be a non-empty object.")
    if "Id" not in fields:
        if not adds_id:
            raise bad_request(f"{where}: fields must include Id.")
        config = {**config, "fields": {"Id": {}, **fields}}
    return config


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
    a = sb.options.assumptions
    for i, entry in enumerate(doc["mappings"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("object_name"), str):
            raise bad_request(f"mappings[{i}]: object_name is required.")
        where = f"mappings[{i}] ({entry['object_name']})"
        config = _validate_config(entry.get("config"), where=where)
        if a.import_rejects_applied_at and "applied_at" in config:  # assumption export-applied-at
            raise bad_request(f"{where}: config.applied_at is not an import field.")
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
    return Response(a.import_status, {"message": "Import started"})


def connection_pause(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid, for_update=True)
    done = Response(sb.options.assumptions.pause_resume_status, {})
    if c["state"] == "PAUSED" or c["next_state"] == "PAUSED":
        return done
    if c["state"] != "IDLE":
        status = sb.options.assumptions.pause_refused_status
        raise ApiError(
            status,
            {400: "bad_request", 409: "conflict", 422: "invalid_params"}[status],
            f"A connection can only be paused when it is IDLE; it is {c['state']}.",
        )
    transition(conn, sb, c, None, "PAUSED", sb.options.pause_seconds)
    return done


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
    return Response(sb.options.assumptions.pause_resume_status, {})


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


def _created(conn, schema: str | None) -> str | None:
    """The schema, or None while it is not created yet (Assumptions.configure_creates_schema)."""
    return schema if schema and hcschema.has_system_tables(conn, schema) else None


def connection_errors(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid)
    return _errors(conn, _created(conn, c["schema_name"]))


def connection_describe(sb: Sandbox, req: Request, conn, cid: str, object_name: str):
    c = get_connection(conn, req, cid)
    if c["sf_info"] is None:
        raise bad_request("The connection is not authorized with Salesforce.")
    found = state.row(conn, "SELECT spec FROM _hcsandbox.sf_object WHERE name = %s", (object_name,))
    if found is None:
        raise not_found("object")
    return ObjectSpec.model_validate(found["spec"]).describe()


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


# -- regional API: mappings ----------------------------------------------------------------
def mapping_create(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid, for_update=True)
    body = body_object(req)
    name = body.get("object_name")
    if not isinstance(name, str) or not name:
        raise bad_request("object_name is required.")
    config = _validate_config(body.get("config"), where=name, adds_id=True)
    if not c["schema_name"]:
        raise bad_request("This connection has no database configured yet.")
    if state.row(
        conn,
        "SELECT 1 FROM _hcsandbox.mapping WHERE connection_id = %s AND lower(object_name) = lower(%s)",
        (c["id"], name),
    ):
        raise bad_request(f"A mapping for {name} already exists on this connection.")
    ensure_schema(conn, c["schema_name"])  # if configure did not (configure-creates-schema)
    m = create_mapping(conn, c["id"], name, config)
    return Response(201, render_mapping(req, m, None, c["state"], sb.options.assumptions))


def mapping_detail(sb: Sandbox, req: Request, conn, mid: str):
    c, m = get_mapping(conn, req, mid)
    counts = mapping_counts(conn, c, [m])
    return render_mapping(req, m, counts[m["table_name"]], c["state"], sb.options.assumptions)


def _edited_config(sb: Sandbox, m: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The config a PUT body asks for, in the shape Assumptions.put_mapping_body plays."""
    name = m["object_name"]
    if sb.options.assumptions.put_mapping_body == "create-plus-revision":
        # The create body plus config.revision, as the Heroku Connect API article describes it
        # (https://devcenter.heroku.com/articles/heroku-connect-api); upsert_field in config.
        given = body.get("object_name")
        if not isinstance(given, str) or not given:
            raise bad_request(f"object_name is required: the mapping's object ({name}).")
        if given.lower() != name.lower():
            raise bad_request(f"object_name {given} is not the mapping's object ({name}).")
        if "upsert_field" in body:
            raise bad_request("unexpected field upsert_field: it belongs in config.")
        return _validate_config(body.get("config"), where=name)
    # "upsert-on-mapping", a prerelease heroku/heroku-connect-plugin fixture's shape: revision in
    # config, upsert_field beside it on the mapping, no object_name.
    if "object_name" in body:
        raise bad_request("unexpected field object_name")
    config = dict(_validate_config(body.get("config"), where=name))
    if "upsert_field" in config:
        raise bad_request("unexpected field config.upsert_field: it belongs on the mapping.")
    upsert = body.get("upsert_field", m["config"].get("upsert_field"))
    if upsert is not None and not isinstance(upsert, str):
        raise bad_request("upsert_field must be a field name or null.")
    if upsert:
        config["upsert_field"] = upsert
    return config


def mapping_edit(sb: Sandbox, req: Request, conn, mid: str):
    c, m = get_mapping(conn, req, mid)
    config = _edited_config(sb, m, body_object(req))
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
    return render_mapping(req, m, None, c["state"], sb.options.assumptions)


def _deleted_before(sb: Sandbox, req: Request, conn, mid: str) -> bool:
    """A mapping this user's connection deleted earlier, when a repeated DELETE answers 204
    (assumption delete-mapping-repeat)."""
    if sb.options.assumptions.delete_repeat_status != 204:
        return False
    found = state.row(
        conn, "SELECT connection_id FROM _hcsandbox.deleted_mapping WHERE id = %s", (mid,)
    )
    if found is None:
        return False
    get_connection(conn, req, str(found["connection_id"]))  # 403 or 404 for others
    return True


def mapping_delete(sb: Sandbox, req: Request, conn, mid: str):
    try:
        c, m = get_mapping(conn, req, mid)
    except ApiError as exc:
        if exc.status == 404 and _uuid_or_none(mid) and _deleted_before(sb, req, conn, mid):
            return Response(204, None)
        raise
    try:
        drop = sb.options.assumptions.delete_drops_table
        remove_mapping(conn, c["schema_name"], m, drop_table=drop)
    except psycopg.errors.DependentObjectsStillExist as exc:
        # [U] What HC does here is unknown; the sandbox refuses, naming the dependents.
        raise ApiError(
            409,
            "conflict",
            f"Cannot drop table {m['table_name']}: {exc.diag.message_detail or exc}",
        ) from None
    return Response(204, None)


def mapping_reload(sb: Sandbox, req: Request, conn, mid: str):
    c, m = get_mapping(conn, req, mid)
    if m["state"] in ("INITIAL", "BAD_CONFIG"):
        raise bad_request(f"The mapping cannot be reloaded while it is {m['state']}.")
    set_state(conn, m["id"], "RELOAD_TABLE", load_kind="reload", load_after=0)
    return Response(202, {})


def mapping_errors(sb: Sandbox, req: Request, conn, mid: str):
    c, m = get_mapping(conn, req, mid)
    return _errors(conn, _created(conn, c["schema_name"]), m["table_name"])


def mapping_abort(sb: Sandbox, req: Request, conn, mid: str):
    """Abort a loading mapping, as the dashboard's Abort does (the sandbox's admin abort), when
    Assumptions.abort_endpoint plays an API for it; else the path does not exist (assumption
    abort-has-no-api)."""
    if not sb.options.assumptions.abort_endpoint:
        raise not_found("path")
    c, m = get_mapping(conn, req, mid)
    admin_api.admin_abort(sb, req, conn, str(c["id"]), m["object_name"])
    return Response(202, {})


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
