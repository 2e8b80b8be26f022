"""Privileges, read from ACLs (`pg_depend` does not record them): per object, and merged into
one grant per role (and column) for the statements that carry them."""

from __future__ import annotations

from collections import defaultdict

import psycopg

from swapbot.database._common import oid_array
from swapbot.database.inventory import catalog

PRIVILEGE_ORDER = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "EXECUTE",
    "USAGE", "CREATE", "CONNECT", "TEMPORARY", "MAINTAIN",
]  # fmt: skip


def read(conn: psycopg.Connection, catalog_name: str, oids: list[int]) -> dict[int, list[dict]]:
    """oid -> its grants and revokes against the default ACL (`catalog.acl_rows`)."""
    if not oids:
        return {}
    out: dict[int, list[dict]] = defaultdict(list)
    for r in catalog.acl_rows(conn, catalog_name, oids):
        out[r["oid"]].append(r)
    return out


def read_columns(conn: psycopg.Connection, oids: list[int]) -> dict[int, list[dict]]:
    """table oid -> grants on its columns."""
    out: dict[int, list[dict]] = defaultdict(list)
    for r in catalog.fetch(conn, catalog.COLUMN_ACL, (oid_array(oids),)):
        out[r["oid"]].append(r)
    return out


def merge_grants(rows: list[dict], *, by_column: bool = False) -> list[dict]:
    """ACL rows into one grant per role (and column), privileges in a stable order."""
    merged: dict[tuple, dict] = {}
    for r in rows:
        if r.get("op", "grant") != "grant":
            continue
        key = (r.get("column") if by_column else None, r["role"], r["grantable"])
        entry = merged.setdefault(key, {"column": key[0], "role": r["role"], "grantable": r["grantable"], "privileges": []})  # fmt: skip
        entry["privileges"].append(r["privilege"])
    for entry in merged.values():
        entry["privileges"] = sorted(set(entry["privileges"]), key=PRIVILEGE_ORDER.index)
    return sorted(merged.values(), key=lambda e: (e["column"] or "", e["role"], e["grantable"]))
