"""Heroku Connect API v3: diagnose (validations), notifications, and the Salesforce API version.

The requests and answers are those of Heroku's own CLI plugin (heroku/heroku-connect-plugin:
src/commands/connect/diagnose.ts, mapping/diagnose.ts, notifications/index.ts and
acknowledge.ts, manage-sf-api-version.ts, and their tests under test/commands/connect/).
The checks diagnose runs are the sandbox's own, computed from its state; a test can force any
check to fail with `POST /_sandbox/connections/{key}/diagnose`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from swapbot.sandbox import state
from swapbot.sandbox.connect_api import _errors
from swapbot.sandbox.connect_records import get_connection, get_mapping
from swapbot.sandbox.routing import (
    PREFIXES,
    Request,
    Response,
    bad_request,
    body_object,
    not_found,
)

if TYPE_CHECKING:
    from swapbot.sandbox.server import Sandbox

DOC_URL = "https://devcenter.heroku.com/articles/heroku-connect-diagnose#check-"
LEVELS = ("errors", "warnings", "passes", "skips")
FAILING_LEVELS = ("errors", "warnings")

# https://devcenter.heroku.com/articles/connection-states-reference: the states in which a
# connection does not sync (NEW and NEED_AUTHENTICATION: not set up or not authorized yet).
CONNECTION_ERROR_STATES = frozenset(
    {
        "NEW",
        "NEED_AUTHENTICATION",
        "SYSTEM_ERROR",
        "DB_UNAVAILABLE",
        "TOO_MANY_ROWS",
        "UNAUTHORIZED",
        "HEROKU_UNAUTH",
        "INACTIVE_ORG",
        "SYSTEM_ON_ICE",
        "ICED",
    }
)
# https://devcenter.heroku.com/articles/mapping-states-reference: the error states.
MAPPING_ERROR_STATES = frozenset(
    {
        "BULK_LOAD_ERROR",
        "SYSTEM_ERROR",
        "DB_UNAVAILABLE",
        "BAD_CONFIG",
        "SYNC_REMOVED",
        "INACTIVE_ORG",
        "UNAUTHORIZED",
    }
)
# heroku/heroku-connect-plugin src/lib/connect/api-version.ts: "61" or "61.0" means "61.0".
API_VERSION = re.compile(r"^(\d{2,3})(\.\d+)?$")
UNCHANGED = "Salesforce field definitions have not changed."


@dataclass(frozen=True)
class Rule:
    rule_id: str
    display_name: str
    anchor: str  # of the check's section on Dev Center's diagnose page
    level: str  # where a failure goes: errors or warnings


RECENT_API_VERSION = Rule(
    "MUST_USE_RECENT_API_VERSION", "Salesforce API Version", "salesforce-api-version", "warnings"
)
LOG_DRAIN = Rule("SHOULD_HAVE_LOG_DRAIN", "Configured Logging", "configured-log-drain", "warnings")
CONNECTION_STATE = Rule("CONNECTION_STATE", "Connection State", "connection-state", "errors")
WRITE_ERRORS = Rule("WRITE_ERRORS", "Write Errors", "write-errors", "errors")
MAPPING_STATE = Rule("MAPPING_STATE", "Mapping State", "mapping-state", "errors")
MAPPING_WRITE_ERRORS = Rule("MAPPING_WRITE_ERRORS", "Write Errors", "write-errors", "errors")

# What a check found: True (it holds), False (it fails) or None (it cannot apply), and why.
Outcome = tuple[bool | None, str]


# -- the checks ----------------------------------------------------------------------------
def _empty() -> dict[str, list[dict[str, Any]]]:
    return {level: [] for level in LEVELS}


def _add(results: dict[str, Any], rule: Rule, outcome: Outcome) -> None:
    ok, message = outcome
    level, status = {
        False: (rule.level, "FAILED"),
        True: ("passes", "PASSED"),
        None: ("skips", "SKIPPED"),
    }[ok]
    results[level].append(
        {
            "display_name": rule.display_name,
            "doc_url": DOC_URL + rule.anchor,
            "message": message,
            "rule_id": rule.rule_id,
            "status": status,
        }
    )


def _force(results: dict[str, Any], forced: list[dict[str, Any]]) -> None:
    """Forced failures: each replaces the check of the same rule_id, if there is one."""
    for f in forced:
        for level in LEVELS:
            results[level] = [x for x in results[level] if x["rule_id"] != f["rule_id"]]
        results[f["level"]].append(
            {
                "display_name": f.get("display_name") or f["rule_id"],
                "doc_url": DOC_URL + f["rule_id"].lower().replace("_", "-"),
                "message": f["message"],
                "rule_id": f["rule_id"],
                "status": "FAILED",
            }
        )


def _version_number(version: Any) -> float:
    try:
        return float(version)
    except (TypeError, ValueError):
        return 0.0


def _api_version(sb: Sandbox, c: dict[str, Any]) -> Outcome:
    if not c["sf_info"]:
        return None, "The connection is not authorized with Salesforce."
    current, latest = c["sf_info"].get("api_version"), sb.options.latest_api_version
    if _version_number(current) < _version_number(latest):
        # The message of heroku/heroku-connect-plugin test/commands/connect/diagnose.ts.
        return False, (
            f"The latest available Salesforce API version is {latest}. Your connection is using "
            f"version {current}. You should re-create your connection to use the latest version."
        )
    return True, f"Your connection is using the latest Salesforce API version, {current}."


def _log_drain(c: dict[str, Any]) -> Outcome:
    if c["logplex_log_enabled"]:
        return True, "App has logging configured."
    return False, "App does not have logging configured."


def _connection_state(c: dict[str, Any]) -> Outcome:
    if c["state"] in CONNECTION_ERROR_STATES:
        return False, f"The connection is in state {c['state']} and is not syncing."
    return True, f"The connection is in state {c['state']}."


def _write_errors(conn, schema: str | None, table: str | None = None) -> Outcome:
    if not schema:
        return None, "The connection has no database configured yet."
    try:
        with conn.transaction():  # a savepoint: the handler's transaction goes on if it fails
            count = _errors(conn, schema, table)["count"]
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        return None, "Heroku Connect's tables are missing from the database."
    if count:
        return False, f"{count} records failed to write to Salesforce in the last 24 hours."
    return True, "No write errors in the last 24 hours."


def _mapping_state(m: dict[str, Any]) -> Outcome:
    if m["state"] in MAPPING_ERROR_STATES:
        return False, f"The mapping is in state {m['state']}: {m['state_description']}"
    return True, f"The mapping is in state {m['state']}."


def mapping_results(
    conn, c: dict[str, Any], m: dict[str, Any], forced: list[dict[str, Any]]
) -> dict[str, Any]:
    results = _empty()
    _add(results, MAPPING_STATE, _mapping_state(m))
    _add(results, MAPPING_WRITE_ERRORS, _write_errors(conn, c["schema_name"], m["table_name"]))
    name = m["object_name"].lower()
    _force(results, [f for f in forced if (f.get("object_name") or "").lower() == name])
    return results


def diagnose(sb: Sandbox, conn, c: dict[str, Any]) -> dict[str, Any]:
    """The connection's checks, then each mapping's under `mappings`, keyed by object name."""
    forced = c["diagnose_fail"] or []
    results: dict[str, Any] = _empty()
    _add(results, RECENT_API_VERSION, _api_version(sb, c))
    _add(results, LOG_DRAIN, _log_drain(c))
    _add(results, CONNECTION_STATE, _connection_state(c))
    _add(results, WRITE_ERRORS, _write_errors(conn, c["schema_name"]))
    _force(results, [f for f in forced if f.get("object_name") is None])
    mappings = state.rows(
        conn, "SELECT * FROM _hcsandbox.mapping WHERE connection_id = %s ORDER BY _id", (c["id"],)
    )
    results["mappings"] = {m["object_name"]: mapping_results(conn, c, m, forced) for m in mappings}
    return results


# -- diagnose: connections/{id}/validations, mappings/{id}/validations ---------------------
def connection_validate(sb: Sandbox, req: Request, conn, cid: str):
    """Start a diagnose run: 202 with the URL to poll for its results."""
    c = get_connection(conn, req, cid)
    run = state.row(
        conn,
        "INSERT INTO _hcsandbox.validation_run (connection_id, ready_at, result) "
        "VALUES (%s, now() + make_interval(secs => %s), %s) RETURNING id",
        (c["id"], sb.options.real(sb.options.validation_seconds), Jsonb(diagnose(sb, conn, c))),
    )
    assert run is not None
    url = f"{req.base_url}{PREFIXES['connect']}/connections/{c['id']}/validations/{run['id']}"
    return Response(202, {"result_url": url})


def connection_validation(sb: Sandbox, req: Request, conn, cid: str, vid: str):
    """A diagnose run: 202 with nothing yet while it runs, then 200 with its results."""
    c = get_connection(conn, req, cid)
    try:
        uuid.UUID(vid)
    except ValueError:
        raise not_found("validation") from None
    run = state.row(
        conn,
        "SELECT result, ready_at <= now() AS ready FROM _hcsandbox.validation_run "
        "WHERE id = %s AND connection_id = %s",
        (vid, c["id"]),
    )
    if run is None:
        raise not_found("validation")
    return Response(200, run["result"]) if run["ready"] else Response(202, {})


def mapping_validate(sb: Sandbox, req: Request, conn, mid: str):
    """One mapping's checks, answered at once (heroku/heroku-connect-plugin mapping/diagnose.ts)."""
    c, m = get_mapping(conn, req, mid)
    return mapping_results(conn, c, m, c["diagnose_fail"] or [])


# -- notifications -------------------------------------------------------------------------
def _instant(req: Request, name: str) -> datetime | None:
    raw = req.query.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise bad_request(
            f"{name} must be an ISO 8601 date or date-time (2024-01-31, 2024-01-31T10:30:00Z)."
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _page_size(req: Request) -> int:
    raw = req.query.get("page_size", "1000")
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= 1000:
        raise bad_request("page_size must be a whole number from 1 to 1000.")
    return size


def _matching(req: Request, c: dict[str, Any]) -> tuple[sql.Composed, list[Any]]:
    """The unacknowledged notifications the filters select, newest first, one page of them.

    `after` and `before` are instants (a date alone is its midnight UTC): after <= created_at <
    before. `event_type` is matched exactly.
    """
    clauses = [sql.SQL("connection_id = %s AND acknowledged_at IS NULL")]
    params: list[Any] = [c["id"]]
    filters = [
        (sql.SQL("created_at >= %s"), _instant(req, "after")),
        (sql.SQL("created_at < %s"), _instant(req, "before")),
        (sql.SQL("event_type = %s"), req.query.get("event_type") or None),
    ]
    for clause, value in filters:
        if value is not None:
            clauses.append(clause)
            params.append(value)
    params.append(_page_size(req))
    query = sql.SQL(
        "SELECT id, created_at, event_type, message FROM _hcsandbox.notification WHERE {} "
        "ORDER BY created_at DESC, id LIMIT %s"
    ).format(sql.SQL(" AND ").join(clauses))
    return query, params


def connection_notifications(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid)
    query, params = _matching(req, c)
    found = state.rows(conn, query, params)
    return {
        "results": [
            {**n, "id": str(n["id"]), "created_at": n["created_at"].isoformat()} for n in found
        ]
    }


def notifications_acknowledge(sb: Sandbox, req: Request, conn, cid: str):
    """Acknowledge what the same filters would list (they come in the query string)."""
    c = get_connection(conn, req, cid)
    query, params = _matching(req, c)
    conn.execute(
        sql.SQL(
            "UPDATE _hcsandbox.notification SET acknowledged_at = now() "
            "WHERE id IN (SELECT id FROM ({}) AS page)"
        ).format(query),
        params,
    )
    return Response(204, None)


# -- the Salesforce API version: schema-diff, actions/change-sf-api-version ----------------
def _target_version(raw: Any) -> str:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not API_VERSION.match(raw.strip()):
        raise bad_request(
            f'target_version "{raw}" is invalid. Enter a numeric Salesforce API version '
            "(for example: 61 or 61.0)."
        )
    return f"{int(float(raw.strip()))}.0"


def _schema_diff(conn, c: dict[str, Any], target: str) -> dict[str, Any]:
    """Each mapping's field changes between the two versions: none, as the sandbox's org has
    the same fields in every version."""
    if not c["sf_info"]:
        raise bad_request("The connection is not authorized with Salesforce.")
    mappings = state.rows(
        conn,
        "SELECT object_name FROM _hcsandbox.mapping WHERE connection_id = %s ORDER BY _id",
        (c["id"],),
    )
    return {
        "guid": str(c["id"]),
        "current_api_version": c["sf_info"].get("api_version"),
        "target_api_version": target,
        "mappings": [
            {
                "name": m["object_name"],
                "result_message": UNCHANGED,
                "fields_have_changed": False,
                "has_unsafe_changes": False,
            }
            for m in mappings
        ],
    }


def connection_schema_diff(sb: Sandbox, req: Request, conn, cid: str):
    c = get_connection(conn, req, cid)
    raw = req.query.get("target_version")
    target = sb.options.latest_api_version if raw is None else _target_version(raw)
    return _schema_diff(conn, c, target)


def connection_change_api_version(sb: Sandbox, req: Request, conn, cid: str):
    """Move a paused connection to another Salesforce API version; answers the diff and the
    version it moved to."""
    c = get_connection(conn, req, cid, for_update=True)
    raw = body_object(req).get("target_version")
    if raw is None:
        raise bad_request("target_version is required.")
    diff = _schema_diff(conn, c, _target_version(raw))
    if c["state"] != "PAUSED":
        raise bad_request("Pause the connection before changing its Salesforce API version.")
    target = diff["target_api_version"]
    conn.execute(
        "UPDATE _hcsandbox.connection SET sf_info = jsonb_set(sf_info, '{api_version}', to_jsonb(%s::text)) "
        "WHERE id = %s",
        (target, c["id"]),
    )
    # 202, as heroku/heroku-connect-plugin test/commands/connect/manage-sf-api-version.ts
    # answers the confirmed change (its schema-diff preview answers 200).
    return Response(202, {**diff, "target_version": target})
