"""OLD itself: who may use it, the default privileges of tables made in it later, and
publications of the whole schema."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swapbot.database.inventory import acls, catalog
from swapbot.database.inventory.model import DbObject
from swapbot.database.retarget import quote, role

if TYPE_CHECKING:
    from swapbot.database.inventory.scanner import Scan

_DEFACL_OBJECTS = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS"}


def collect(s: Scan) -> None:
    nsp = catalog.fetch(s.conn, catalog.SCHEMA, (s.home,))[0]["oid"]
    _grants(s, nsp)
    _default_privileges(s, nsp)
    _publications(s, nsp)


def _grants(s: Scan, nsp: int) -> None:
    schema = quote(s.home)
    for g in acls.merge_grants(acls.read(s.conn, "pg_namespace", [nsp]).get(nsp, [])):
        privileges = ", ".join(g["privileges"])
        obj = DbObject(
            kind="schema_grant",
            schema_=s.home,
            name=s.home,
            identity=f"grant {privileges} on schema {schema} to {g['role']}",
            definition=f"GRANT {privileges} ON SCHEMA {schema} TO {role(g['role'])}",
            depth=0,
        )
        obj._key = ("schema_grant", g["role"])
        obj._detail = {
            "role": g["role"],
            "privileges": g["privileges"],
            "grantable": g["grantable"],
        }
        s.set(obj, "prep", "attach", target=f"schema {quote(s.away)}")
        s.add(obj)


def _default_privileges(s: Scan, nsp: int) -> None:
    schema = quote(s.home)
    privileges_of: dict[tuple[str, str, str], list[str]] = {}
    for r in catalog.fetch(s.conn, catalog.DEFAULT_ACL, (nsp,)):
        privileges_of.setdefault((r["owner"], r["objtype"], r["role"]), []).append(r["privilege"])
    for (owner, objtype, grantee), granted in sorted(privileges_of.items()):
        objects = _DEFACL_OBJECTS.get(objtype, objtype)
        privileges = ", ".join(sorted(granted))
        obj = DbObject(
            kind="default_privileges",
            schema_=s.home,
            name=s.home,
            identity=f"default privileges of {owner} in schema {schema}: {privileges} on {objects.lower()} to {grantee}",
            definition=(
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {role(owner)} IN SCHEMA {schema}"
                f" GRANT {privileges} ON {objects} TO {role(grantee)}"
            ),
            depth=0,
        )
        obj._key = ("default_privileges", owner, objtype, grantee)
        obj._detail = {
            "owner": owner,
            "objects": objects,
            "role": grantee,
            "privileges": sorted(granted),
        }
        s.set(obj, "prep", "attach", target=f"schema {quote(s.away)}")
        s.add(obj)


def _publications(s: Scan, nsp: int) -> None:
    schema = quote(s.home)
    for r in catalog.fetch(s.conn, catalog.SCHEMA_PUBLICATIONS, (nsp,)):
        name = quote(r["pubname"])
        obj = DbObject(
            kind="publication",
            schema_=s.home,
            name=r["pubname"],
            identity=f"publication {name}: tables in schema {schema}",
            definition=f"ALTER PUBLICATION {name} ADD TABLES IN SCHEMA {schema}",
        )
        obj._key = ("publication", r["pubname"], None)
        s.manual(
            obj,
            f"publishes every table of {s.home}: decide whether it should publish "
            f"{s.away} too (and whether subscribers can take the new tables)",
        )
        s.add(obj)
