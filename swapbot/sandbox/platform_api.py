"""The Heroku Platform API calls swapbot makes: apps, add-ons and their attachments, the
formation and its dynos, config vars and the rate limit, answered as
https://devcenter.heroku.com/articles/platform-api-reference describes them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.types.json import Jsonb

from swapbot.sandbox import state
from swapbot.sandbox.routing import ApiError, Request, Response, body_object, not_found

if TYPE_CHECKING:
    from swapbot.sandbox.server import Sandbox

ADDON_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{1,59}$")
KNOWN_PLANS = re.compile(
    r"^(herokuconnect:(demo|enterprise|shield|danketsu)|heroku-postgresql:[a-z0-9-]+|heroku-redis:[a-z0-9-]+)$"
)


def invalid_params(message: str) -> ApiError:
    return ApiError(422, "invalid_params", message)


def find_app(conn, app: str) -> dict[str, Any]:
    """An app by its name or its id, as Heroku accepts either."""
    a = state.row(conn, "SELECT * FROM _hcsandbox.app WHERE name = %s OR id::text = %s", (app, app))
    if a is None:
        raise not_found("app")
    return a


def _ref(row: dict[str, Any]) -> dict[str, str]:
    """How one resource names another in an answer: its id and name."""
    return {"id": str(row["id"]), "name": row["name"]}


def _named(name: str) -> dict[str, str]:
    """A catalogue entry (region, plan, size) with an id that is stable for its name."""
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), "name": name}


def render_app(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(a["id"]),
        "name": a["name"],
        "maintenance": a["maintenance"],
        "region": _named(a["region"]),
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
    app = find_app(conn, ad["app"])
    return {
        "id": str(ad["id"]),
        "name": ad["name"],
        "addon_service": _named(ad["service"]),
        "plan": _named(ad["plan"]),
        "app": _ref(app),
        "billing_entity": {**_ref(app), "type": "app"},
        "config_vars": vars_,
        "state": ad["state"],
        "provision_message": None,
        "web_url": f"https://addons-sso.heroku.com/apps/{app['id']}/addons/{ad['id']}",
        "actions": [],
        "created_at": ad["created_at"].isoformat(),
        "updated_at": ad["updated_at"].isoformat(),
    }


def paged(req: Request, items: list[dict[str, Any]]) -> Response:
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


def _listing(req: Request, conn, query: str, key: Any, render: Callable[[dict], dict]) -> Response:
    """A list call: the rows `query` finds for `key`, rendered, one Range page of them."""
    return paged(req, [render(r) for r in state.rows(conn, query, (key,))])


# -- apps ----------------------------------------------------------------------------------
def platform_app(sb: Sandbox, req: Request, conn, app: str):
    return render_app(find_app(conn, app))


def platform_app_update(sb: Sandbox, req: Request, conn, app: str):
    a = find_app(conn, app)
    body = body_object(req)
    if set(body) - {"maintenance", "build_stack", "name"}:
        raise invalid_params("Unknown app attribute.")
    if "maintenance" in body:
        if not isinstance(body["maintenance"], bool):
            raise invalid_params("maintenance must be a boolean.")
        conn.execute(
            "UPDATE _hcsandbox.app SET maintenance = %s, updated_at = now() WHERE name = %s",
            (body["maintenance"], a["name"]),
        )
    return render_app(find_app(conn, a["name"]))


# -- add-ons and attachments ---------------------------------------------------------------
def platform_addons(sb: Sandbox, req: Request, conn, app: str):
    query = "SELECT * FROM _hcsandbox.addon WHERE app = %s ORDER BY created_at"
    return _listing(req, conn, query, find_app(conn, app)["name"], partial(render_addon, conn))


def _addon(conn, addon: str, app: str | None = None) -> dict[str, Any]:
    q = "SELECT * FROM _hcsandbox.addon WHERE (name = %s OR id::text = %s)"
    params: list[Any] = [addon, addon]
    if app is not None:
        q += " AND app = %s"
        params.append(find_app(conn, app)["name"])
    ad = state.row(conn, q, params)
    if ad is None:
        raise not_found("add-on")
    return ad


def platform_addon(sb: Sandbox, req: Request, conn, app: str, addon: str):
    return render_addon(conn, _addon(conn, addon, app))


def platform_addon_global(sb: Sandbox, req: Request, conn, addon: str):
    return render_addon(conn, _addon(conn, addon))


def default_features() -> dict[str, bool]:
    """The features a new Heroku Connect connection starts with."""
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


def platform_addon_create(sb: Sandbox, req: Request, conn, app: str):
    a = find_app(conn, app)
    body = body_object(req)
    plan = body.get("plan")
    if not isinstance(plan, str) or not KNOWN_PLANS.match(plan):
        raise invalid_params("Couldn't find that add-on plan.")
    name = (
        body.get("name")
        or f"{plan.split(':')[0]}-{uuid.uuid4().hex[:6]}-{sb.rng.randint(10000, 99999)}"
    )
    if not isinstance(name, str) or not ADDON_NAME.match(name):
        raise invalid_params(
            "Name must start with a letter and contain only letters, digits, - and _."
        )
    if state.row(conn, "SELECT 1 FROM _hcsandbox.addon WHERE name = %s", (name,)):
        raise invalid_params(f"Name {name} is already used by another add-on.")
    service = plan.split(":")[0]
    ad = state.row(
        conn,
        "INSERT INTO _hcsandbox.addon (name, app, service, plan, state, ready_at) "
        "VALUES (%s, %s, %s, %s, 'provisioning', now() + make_interval(secs => %s)) RETURNING *",
        (name, a["name"], service, plan, sb.options.real(sb.options.provision_seconds)),
    )
    attachment = (body.get("attachment") or {}).get("name")
    conn.execute(
        "INSERT INTO _hcsandbox.attachment (addon, app, name) VALUES (%s, %s, %s) "
        "ON CONFLICT (app, name) DO NOTHING",
        (ad["id"], a["name"], attachment or name.upper().replace("-", "_")),
    )
    if service == "herokuconnect":
        # The connection's own id, or its add-on's (assumption connection-id-not-addon-uuid).
        cid = ad["id"] if sb.options.assumptions.connection_id_is_addon_id else uuid.uuid4()
        conn.execute(
            "INSERT INTO _hcsandbox.connection (id, addon_id, app, state, features) "
            "VALUES (%s, %s, %s, 'NEW', %s)",
            (cid, ad["id"], a["name"], Jsonb(default_features())),
        )
    return Response(201, render_addon(conn, ad))


def platform_addon_delete(sb: Sandbox, req: Request, conn, app: str, addon: str):
    """Remove an add-on: 200 with it, `state` deprovisioned. A Heroku Connect add-on takes its
    connection, mappings and notifications with it, so the simulator stops serving them; the
    connection's schema and tables stay in the database (assumption remove-addon-keeps-schema,
    unconfirmed on Heroku), or go with it (CASCADE) if Assumptions.remove_addon_keeps_schema is
    False."""
    found = _addon(conn, addon, app)
    # Lock the add-on, then its connection, then the mappings: the simulator locks a connection
    # before its mappings, so a step in progress finishes first and the next one skips it.
    ad = state.row(conn, "SELECT * FROM _hcsandbox.addon WHERE id = %s FOR UPDATE", (found["id"],))
    if ad is None:
        raise not_found("add-on")  # removed by a concurrent call
    locked = (
        "SELECT id, schema_name FROM _hcsandbox.connection WHERE addon_id = %s "
        "ORDER BY _id FOR UPDATE"
    )
    found_conns = state.rows(conn, locked, (ad["id"],))
    cids = [r["id"] for r in found_conns]
    if not sb.options.assumptions.remove_addon_keeps_schema:
        for r in found_conns:
            if r["schema_name"]:
                drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                conn.execute(drop.format(sql.Identifier(r["schema_name"])))
    if cids:
        conn.execute("DELETE FROM _hcsandbox.mapping WHERE connection_id = ANY(%s)", (cids,))
        conn.execute("DELETE FROM _hcsandbox.notification WHERE connection_id = ANY(%s)", (cids,))
        conn.execute("DELETE FROM _hcsandbox.connection WHERE id = ANY(%s)", (cids,))
    body = render_addon(conn, ad)
    conn.execute("DELETE FROM _hcsandbox.addon WHERE id = %s", (ad["id"],))
    return {**body, "state": "deprovisioned"}


def render_attachment(conn, att: dict[str, Any]) -> dict[str, Any]:
    ad = state.row(conn, "SELECT * FROM _hcsandbox.addon WHERE id = %s", (att["addon"],))
    owner = find_app(conn, ad["app"])
    app = find_app(conn, att["app"])
    return {
        "id": str(att["id"]),
        "name": att["name"],
        "namespace": att["namespace"],
        "addon": {**_ref(ad), "app": _ref(owner)},
        "app": _ref(app),
        "created_at": att["created_at"].isoformat(),
        "updated_at": att["created_at"].isoformat(),
        "web_url": None,
    }


def platform_app_attachments(sb: Sandbox, req: Request, conn, app: str):
    query = "SELECT * FROM _hcsandbox.attachment WHERE app = %s ORDER BY name"
    return _listing(req, conn, query, find_app(conn, app)["name"], partial(render_attachment, conn))


def platform_addon_attachments(sb: Sandbox, req: Request, conn, addon: str):
    query = "SELECT * FROM _hcsandbox.attachment WHERE addon = %s ORDER BY app, name"
    return _listing(req, conn, query, _addon(conn, addon)["id"], partial(render_attachment, conn))


# -- formation and dynos -------------------------------------------------------------------
def render_formation(a: dict[str, Any], f: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(f["id"]),
        "type": f["type"],
        "quantity": f["quantity"],
        "size": f["size"],
        "dyno_size": _named(f["size"]),
        "command": f["command"],
        "app": _ref(a),
        "created_at": f["created_at"].isoformat(),
        "updated_at": f["updated_at"].isoformat(),
    }


def _formation(conn, a: dict[str, Any]) -> list[dict[str, Any]]:
    found = state.rows(
        conn, "SELECT * FROM _hcsandbox.formation WHERE app = %s ORDER BY type", (a["name"],)
    )
    return [render_formation(a, f) for f in found]


def platform_formation(sb: Sandbox, req: Request, conn, app: str):
    return paged(req, _formation(conn, find_app(conn, app)))


def _scale(conn, a: dict[str, Any], update: Any) -> None:
    if not isinstance(update, dict) or not isinstance(update.get("type"), str):
        raise invalid_params("Each update needs a process type.")
    found = state.row(
        conn,
        "SELECT * FROM _hcsandbox.formation WHERE app = %s AND type = %s",
        (a["name"], update["type"]),
    )
    if found is None:
        raise ApiError(404, "not_found", f"Couldn't find that process type ({update['type']}).")
    quantity = update.get("quantity", found["quantity"])
    if not isinstance(quantity, int) or quantity < 0 or quantity > 100:
        raise invalid_params("quantity must be an integer from 0 to 100.")
    size = update.get("dyno_size", update.get("size", found["size"]))
    if isinstance(size, dict):
        size = size.get("name") or found["size"]
    conn.execute(
        "UPDATE _hcsandbox.formation SET quantity = %s, size = %s, updated_at = now() WHERE app = %s AND type = %s",
        (quantity, size, a["name"], update["type"]),
    )


def platform_formation_batch(sb: Sandbox, req: Request, conn, app: str):
    a = find_app(conn, app)
    updates = body_object(req).get("updates")
    if not isinstance(updates, list) or not updates:
        raise invalid_params("updates must be a non-empty list.")
    for u in updates:
        _scale(conn, a, u)
    return _formation(conn, a)


def platform_formation_one(sb: Sandbox, req: Request, conn, app: str, ptype: str):
    a = find_app(conn, app)
    _scale(conn, a, {**body_object(req), "type": ptype})
    return next(f for f in _formation(conn, a) if f["type"] == ptype)


def render_dyno(a: dict[str, Any], d: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(d["id"]),
        "name": f"{d['type']}.{d['num']}",
        "type": d["type"],
        "state": "up" if d["state"] == "up" and d["stop_at"] else d["state"],
        "size": d["size"],
        "command": "",
        "app": _ref(a),
        "release": {"id": _named(a["name"])["id"], "version": 1},
        "created_at": d["created_at"].isoformat(),
        "updated_at": d["created_at"].isoformat(),
    }


def platform_dynos(sb: Sandbox, req: Request, conn, app: str):
    a = find_app(conn, app)
    query = "SELECT * FROM _hcsandbox.dyno WHERE app = %s ORDER BY type, num"
    return _listing(req, conn, query, a["name"], partial(render_dyno, a))


def _restart(sb: Sandbox, conn, a: dict[str, Any], where: sql.Composable, params: list[Any]) -> int:
    q = sql.SQL(
        "UPDATE _hcsandbox.dyno SET state = 'starting', ready_at = now() + make_interval(secs => %s) "
        "WHERE app = %s AND stop_at IS NULL AND {}"
    ).format(where)
    return conn.execute(
        q, [sb.options.real(sb.options.dyno_boot_seconds), a["name"], *params]
    ).rowcount


def platform_restart_all(sb: Sandbox, req: Request, conn, app: str):
    _restart(sb, conn, find_app(conn, app), sql.SQL("true"), [])
    return Response(202, {})


def platform_restart_dyno(sb: Sandbox, req: Request, conn, app: str, dyno: str):
    ptype, _, num = dyno.partition(".")
    if not num.isdigit() or not _restart(
        sb, conn, find_app(conn, app), sql.SQL("type = %s AND num = %s"), [ptype, int(num)]
    ):
        raise not_found("dyno")
    return Response(202, {})


def platform_restart_type(sb: Sandbox, req: Request, conn, app: str, ptype: str):
    a = find_app(conn, app)
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


# -- config vars and the rate limit --------------------------------------------------------
def platform_config_vars(sb: Sandbox, req: Request, conn, app: str):
    a = find_app(conn, app)
    return {
        r["key"]: r["value"]
        for r in state.rows(
            conn, "SELECT key, value FROM _hcsandbox.config_var WHERE app = %s", (a["name"],)
        )
    }


def platform_config_vars_update(sb: Sandbox, req: Request, conn, app: str):
    a = find_app(conn, app)
    if not isinstance(req.body, dict):
        raise invalid_params("Body must be an object of config vars.")
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


def platform_rate_limits(sb: Sandbox, req: Request, conn):
    return {"remaining": sb.rate_limit_remaining(req.user, spend=False)}
