"""Heroku Connect's own objects: the mapped tables, their triggers, indexes and functions, and
the system tables. Listed apart (`managed`), never carried: hc2's load makes its own in NEW."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import psycopg

from swapbot.database.hc_layout import log_trigger_name, status_trigger_name
from swapbot.database.inventory import catalog
from swapbot.database.inventory.model import DbObject, Kind
from swapbot.database.retarget import qname

if TYPE_CHECKING:
    from swapbot.database.inventory.scanner import Scan

SYSTEM_TABLES = ("_hcmeta", "_trigger_log", "_trigger_log_archive", "_sf_event_log")
HC_SCHEMA_FUNCTIONS = ("tlog_notify_trigger", "hc_capture_insert_from_row", "hc_capture_update_from_row")  # fmt: skip
_HC_TABLE_FUNCTION = re.compile(r"^hc_(.+)_(logger|status)$")
_REASON = "created and maintained by Heroku Connect: hc2's load makes its own in NEW"


def hc_triggers(table: str) -> tuple[str, str]:
    return log_trigger_name(table), status_trigger_name(table)


def hc_index(name: str, table: str) -> bool:
    return name.startswith(("hc_idx_", "hcu_idx_")) or name == f"{table}_pkey"[:63]


def hc_function(schema: str, name: str, hc_schemas: set[str]) -> bool:
    if schema == "public" and name == "get_xmlbinary":
        return True
    return schema in hc_schemas and (
        name in HC_SCHEMA_FUNCTIONS or _HC_TABLE_FUNCTION.match(name) is not None
    )


def hc_schemas(conn: psycopg.Connection) -> set[str]:
    """Schemas Heroku Connect serves (they hold its trigger log)."""
    return {r["nspname"] for r in catalog.fetch(conn, catalog.HC_SCHEMAS)}


def collect(s: Scan) -> None:
    conn, home = s.conn, s.home
    nsp = catalog.fetch(conn, catalog.SCHEMA, (home,))[0]["oid"]
    for r in catalog.fetch(conn, catalog.SYSTEM, (nsp, list(SYSTEM_TABLES))):
        _add(s, "system_table", home, r["relname"], r["oid"])
    for oid, t in s.table_of.items():
        relname = t["relname"]
        _add(s, "table", home, relname, oid)
        for name in hc_triggers(relname):
            _add(s, "trigger", home, name, None, table=s.tname(oid))
    for r in catalog.fetch(conn, catalog.INDEX_NAMES, (list(s.table_of),)):
        if hc_index(r["relname"], s.table_of[r["indrelid"]]["relname"]):
            _add(s, "index", home, r["relname"], r["oid"], table=s.tname(r["indrelid"]))
    tables = set(s.tables)
    for r in catalog.fetch(conn, catalog.SCHEMA_FUNCTIONS, (home, list(HC_SCHEMA_FUNCTIONS))):
        match = _HC_TABLE_FUNCTION.match(r["proname"])
        if match and match.group(1) not in tables:
            continue
        _add(s, "function", r["nspname"], f"{r['proname']}({r['args']})", r["oid"])


def _add(
    s: Scan, kind: Kind, schema: str, name: str, oid: int | None, table: str | None = None
) -> None:
    # A function's name carries its arguments: qualified as written, not quoted.
    qualified = qname(schema, name) if "(" not in name else f"{schema}.{name}"
    s.managed.append(
        DbObject(
            kind=kind,
            schema_=schema,
            name=name,
            table=table,
            oid=oid,
            identity=f"{kind.replace('_', ' ')} {qualified}" + (f" on {table}" if table else ""),
            definition="",
            phase="managed",
            action="managed",
            reason=_REASON,
        )
    )
