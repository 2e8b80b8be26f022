"""The changed tables themselves: their rows and columns, and what is carried by formatting
rather than parsing (grants, comments, NOT NULL, table options)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swapbot.database._common import UserError, oid_array
from swapbot.database.inventory import acls, catalog
from swapbot.database.inventory.model import DbObject, Kind
from swapbot.database.retarget import literal, qname, quote, role

if TYPE_CHECKING:
    from swapbot.database.inventory.scanner import Scan

_REPLICA_IDENTITY = {"f": "REPLICA IDENTITY FULL", "n": "REPLICA IDENTITY NOTHING"}


def read(s: Scan) -> None:
    """The changed tables' rows and columns; every one must exist in `home`."""
    for r in catalog.fetch(s.conn, catalog.TABLES, (s.home, s.tables)):
        s.table_oid[r["relname"]] = r["oid"]
        s.table_of[r["oid"]] = r
    missing = [t for t in s.tables if t not in s.table_oid]
    if missing:
        raise UserError(f"no table {', '.join(missing)} in schema {s.home}")
    for r in catalog.fetch(s.conn, catalog.COLUMNS, (oid_array(s.table_of),)):
        s.columns[r["relid"]][r["attnum"]] = r


def collect(s: Scan) -> None:
    oids = list(s.table_of)
    acl = acls.read(s.conn, "pg_class", oids)
    column_acl = acls.read_columns(s.conn, oids)
    for oid, t in s.table_of.items():
        for g in acls.merge_grants(acl.get(oid, [])):
            _grant(s, oid, None, g)
        if t["comment"] is not None:
            table = s.tname(oid)
            _simple(
                s, "comment", oid, f"comment on table {table}",
                f"COMMENT ON TABLE {table} IS {literal(t['comment'])}",
                key=("comment", t["relname"], None), detail={"comment": t["comment"]},
            )  # fmt: skip
        for _attnum, col in sorted(s.columns[oid].items()):
            _column(s, oid, col)
        for g in acls.merge_grants(column_acl.get(oid, []), by_column=True):
            _grant(s, oid, g["column"], g)
        for option, clause in _options(t):
            _option(s, oid, t, option, clause)


def _column(s: Scan, oid: int, col: dict) -> None:
    """A column's comment and NOT NULL."""
    name = col["attname"]
    if col["comment"] is None and not (col["attnotnull"] and name != "id"):
        return  # most columns: nothing to carry
    relname = s.table_of[oid]["relname"]
    table, column = s.tname(oid), quote(name)
    if col["comment"] is not None:
        _simple(
            s, "comment", oid, f"comment on column {table}.{column}",
            f"COMMENT ON COLUMN {table}.{column} IS {literal(col['comment'])}",
            key=("comment", relname, name), detail={"comment": col["comment"], "column": name},
            columns=[f"{relname}.{name}"],
        )  # fmt: skip
    if col["attnotnull"] and name != "id":
        _simple(
            s, "not_null", oid, f"not null on {table}.{column}",
            f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL",
            key=("not_null", relname, name), detail={"column": name},
            columns=[f"{relname}.{name}"],
        )  # fmt: skip


def _options(t: dict) -> list[tuple[str, str]]:
    """(option, ALTER TABLE clause) for each setting of the table that is not the default."""
    options = []
    if t["relrowsecurity"]:
        options.append(("row_security", "ENABLE ROW LEVEL SECURITY"))
    if t["relforcerowsecurity"]:
        options.append(("force_row_security", "FORCE ROW LEVEL SECURITY"))
    if t["reloptions"]:
        options.append(("storage", f"SET ({', '.join(t['reloptions'])})"))
    if t["relreplident"] in _REPLICA_IDENTITY:
        options.append(("replica_identity", _REPLICA_IDENTITY[t["relreplident"]]))
    elif t["relreplident"] == "i" and t["replica_index"]:
        clause = f"REPLICA IDENTITY USING INDEX {quote(t['replica_index'])}"
        options.append(("replica_identity", clause))
    return options


def _option(s: Scan, oid: int, t: dict, option: str, clause: str) -> None:
    table = s.tname(oid)
    obj = _simple(
        s, "table_option", oid, f"{option.replace('_', ' ')} on {table}",
        f"ALTER TABLE {table} {clause}", key=("table_option", t["relname"], option),
        detail={"option": option, "clause": clause, "reloptions": t["reloptions"]},
    )  # fmt: skip
    if option == "force_row_security":
        obj.flags.append(
            "FORCE applies the policies to the table owner too: check that hc2's"
            " sessions are not filtered"
        )
    if option == "replica_identity":
        obj.depth = 3  # after the indexes


def _grant(s: Scan, oid: int, column: str | None, g: dict) -> None:
    relname, table = s.table_of[oid]["relname"], s.tname(oid)
    cols = f" ({quote(column)})" if column else ""
    privileges = ", ".join(g["privileges"])
    grant_option = " WITH GRANT OPTION" if g["grantable"] else ""
    _simple(
        s, "grant", oid, f"grant {privileges}{cols} on {table} to {g['role']}",
        f"GRANT {privileges}{cols} ON TABLE {table} TO {role(g['role'])}{grant_option}",
        key=("grant", relname, column, g["role"]),
        detail={"role": g["role"], "privileges": g["privileges"], "column": column,
                "grantable": g["grantable"]},
        columns=[f"{relname}.{column}"] if column else [],
    )  # fmt: skip


def _simple(
    s: Scan,
    kind: Kind,
    oid: int,
    identity: str,
    definition: str,
    *,
    key: tuple,
    detail: dict,
    columns: list[str] | None = None,
) -> DbObject:
    """An object carried by formatting, not parsing: grant, comment, option, NOT NULL."""
    relname, table = s.table_of[oid]["relname"], s.tname(oid)
    obj = DbObject(
        kind=kind,
        schema_=s.home,
        name=relname,
        table=table,
        identity=identity,
        definition=definition,
        columns=columns or [],
        depends_on=[f"table {table}"],
    )
    obj._key = key
    obj._detail = {**detail, "relname": relname}
    s.set(obj, "prep", "attach", target=f"on {qname(s.away, relname)}")
    return s.add(obj)
