"""`/_sandbox/`: what a person does in a browser or the dashboard (authorize in Salesforce,
abort a load, change a connection's settings) and the controls tests and demos use (faults,
assumptions, the request log, stepping the simulation). No authentication, as it stands in
for people rather than for an API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from swapbot.sandbox import state
from swapbot.sandbox.connect_records import CONNECTION_SQL, transition
from swapbot.sandbox.options import Assumptions
from swapbot.sandbox.routing import Request, bad_request, body_object, not_found
from swapbot.sandbox.sim import set_state

if TYPE_CHECKING:
    from swapbot.sandbox.server import Sandbox


def admin_health(sb: Sandbox, req: Request, conn):
    return {"ok": True, "options": sb.options.model_dump()}


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
    # HC sends the browser on to `next`; the sandbox says where (tests open links, not pages).
    return {
        "authorized": True,
        "connection": str(c["id"]),
        "username": username,
        "next": c.get("authorize_next"),
    }


def _admin_connection(conn, key: str) -> dict[str, Any]:
    c = state.row(
        conn,
        CONNECTION_SQL + "WHERE c.id::text = %s OR a.name = %s",
        (key, key),
    )
    if c is None:
        raise not_found("connection")
    return c


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


def admin_settings(sb: Sandbox, req: Request, conn, key: str):
    """Manage Connection page: write algorithm, notification preferences, logplex logging."""
    c = _admin_connection(conn, key)
    body = body_object(req)
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


def admin_get_settings(sb: Sandbox, req: Request, conn, key: str):
    c = _admin_connection(conn, key)
    return {
        "poll_db_no_merge": c["features"].get("poll_db_no_merge"),
        "logplex_log_enabled": c["logplex_log_enabled"],
        "notifications": c["settings"].get("notifications", {}),
    }


def admin_mapping_state(sb: Sandbox, req: Request, conn, key: str, object_name: str):
    """Force a mapping into a state (e.g. SYSTEM_ERROR) to rehearse failures."""
    c = _admin_connection(conn, key)
    target = body_object(req).get("state")
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


def _forced_check(i: int, entry: Any) -> dict[str, Any]:
    where = f"fail[{i}]"
    if not isinstance(entry, dict):
        raise bad_request(f"{where} must be an object.")
    rule_id, level = entry.get("rule_id"), entry.get("level")
    object_name, message = entry.get("object_name"), entry.get("message", "")
    display_name = entry.get("display_name")
    if not isinstance(rule_id, str) or not rule_id:
        raise bad_request(f"{where}: rule_id is required.")
    if level not in ("errors", "warnings"):
        raise bad_request(f"{where}: level must be errors or warnings.")
    if object_name is not None and (not isinstance(object_name, str) or not object_name):
        raise bad_request(f"{where}: object_name must be a mapping's object name, or null.")
    if not isinstance(message, str) or not (display_name is None or isinstance(display_name, str)):
        raise bad_request(f"{where}: message and display_name must be text.")
    return {
        "rule_id": rule_id,
        "level": level,
        "object_name": object_name,
        "message": message,
        "display_name": display_name,
    }


def admin_diagnose(sb: Sandbox, req: Request, conn, key: str):
    """(test control) Checks that diagnose reports as failed, on the connection (object_name
    null) or on one mapping; replaces the list, `{"fail": []}` clears it."""
    c = _admin_connection(conn, key)
    fail = body_object(req).get("fail")
    if not isinstance(fail, list):
        raise bad_request(
            'fail is required: a list of {"rule_id", "level", "object_name", "message"}.'
        )
    entries = [_forced_check(i, entry) for i, entry in enumerate(fail)]
    conn.execute(
        "UPDATE _hcsandbox.connection SET diagnose_fail = %s WHERE id = %s",
        (Jsonb(entries), c["id"]),
    )
    return {"fail": entries}


def admin_requests(sb: Sandbox, req: Request, conn):
    after = int(req.query.get("after", "0") or 0)
    found = state.rows(
        conn,
        "SELECT id, at, api, method, path, query, status, fault, body FROM _hcsandbox.request_log "
        "WHERE id > %s ORDER BY id LIMIT 10000",
        (after,),
    )
    return [{**r, "at": r["at"].isoformat()} for r in found]


def admin_faults(sb: Sandbox, req: Request, conn):
    body = body_object(req)
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


def admin_assumptions(sb: Sandbox, req: Request, conn):
    return sb.options.assumptions.model_dump()


def admin_set_assumptions(sb: Sandbox, req: Request, conn):
    body = body_object(req)
    try:
        sb.options.assumptions = Assumptions.model_validate(
            {**sb.options.assumptions.model_dump(), **body}
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    state.put_setting(conn, "assumptions", sb.options.assumptions.model_dump())
    return sb.options.assumptions.model_dump()


def admin_step(sb: Sandbox, req: Request, conn):
    """Advance the simulation by `seconds` of real time at the current speed (tests, demos)."""
    seconds = body_object(req).get("seconds", 1.0)
    conn.commit()
    sb.sim.step(float(seconds))
    return {"stepped": seconds}
