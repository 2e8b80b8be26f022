"""Objects attached to the changed tables and to the closure's relations: constraints, foreign
keys, triggers, rules, policies, defaults, statistics, publications and indexes, read per
catalog (one query each) and placed where their relation goes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pglast.parser import ParseError

from swapbot.database import retarget
from swapbot.database.inventory import catalog, managed
from swapbot.database.inventory.model import DbObject, Kind
from swapbot.database.retarget import Name, qname, quote, role

if TYPE_CHECKING:
    from swapbot.database.inventory.scanner import Scan

_POLICY_COMMANDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}


def collect(s: Scan) -> None:
    tables = list(s.table_of)
    for catalog_name, read in _READERS:
        oids = s.graph.dependents.get(catalog_name)
        if oids:
            for r in catalog.by_oid(s.conn, catalog_name, sorted(oids), tables):
                read(s, r)
    _others(s)


# --- placing ---------------------------------------------------------------------------------


def rel_key(s: Scan, relid: int, relschema: str, relname: str) -> str:
    """How an attached object's relation is named in keys: a changed table by its bare
    name (so OLD's and NEW's copies match), anything else qualified."""
    if relid in s.table_of:
        return relname
    node = s.node_objects.get(("rel", relid))
    if node is not None and node.schema_ == s.home:
        return relname
    return qname(relschema, relname)


def _owner(s: Scan, relid: int) -> str:
    """Where an attached object's relation stands: a changed table, a copied node, or else."""
    if relid in s.table_of:
        return "table"
    obj = s.node_objects.get(("rel", relid))
    if obj is not None and obj.action in ("copy", "recreate"):
        return obj.action
    return "other"


def _attached(
    s: Scan,
    kind: Kind,
    catalog_name: str,
    r: dict,
    *,
    name: str,
    definition: str,
    key: tuple | None = None,
    on: tuple[int, str, str] | None = None,
) -> DbObject:
    """The object of row `r`, on relation `on` (relid, schema, name; by default the row's)."""
    relid, relschema, relname = on or (r["relid"], r["relschema"], r["relname"])
    if key is None:
        key = (kind, rel_key(s, relid, relschema, relname), name)
    table = qname(relschema, relname)
    obj = DbObject(
        kind=kind,
        schema_=relschema,
        name=name,
        table=table,
        oid=r["oid"],
        identity=f"{kind.replace('_', ' ')} {quote(name)} on {table}",
        definition=definition,
    )
    obj._node = (catalog_name, r["oid"])
    obj._key = key
    obj._detail = {"comment": r.get("comment"), "relid": relid}
    obj.depends_on = s.depends(obj._node)
    obj.columns = s.columns_of(obj._node)
    return s.add(obj)


def _retarget(s: Scan, obj: DbObject, text: str) -> set[Name] | None:
    try:
        obj._tree = retarget.parse_one(text)
    except (ParseError, ValueError) as exc:
        s.manual(obj, f"pglast cannot parse the definition ({exc}): carry it by hand")
        return None
    return retarget.rewrite(obj._tree, s.renames)


def _place(s: Scan, obj: DbObject, relid: int, hits: set[Name], phase: str) -> None:
    """Attached to a changed table or a copy: carry it there; elsewhere: replace in place."""
    owner = _owner(s, relid)
    if owner == "recreate":
        s.set(
            obj, "cutover", "recreate", target="in place",
            reason="dropped with its materialized view, so created again after it",
        )  # fmt: skip
    elif owner == "table":
        obj._detail["target_rel"] = s.table_of[relid]["relname"]
        target = qname(s.away, obj._detail["target_rel"])
        s.set(obj, phase, "attach", target=f"on {target}")
    elif owner == "copy":
        obj._detail["target_rel"] = s.node_objects[("rel", relid)].name
        target = qname(s.away, obj._detail["target_rel"])
        s.set(
            obj, "prep", "attach", target=f"on {target}",
            reason="created in NEW right after the copy it belongs to",
        )  # fmt: skip
    elif hits:
        s.set(obj, "cutover", "replace", target="in place")
    else:
        s.follow(obj, "bound through an object that keeps its name: nothing to change")


# --- one row of each catalog -------------------------------------------------------------------


def _constraint(s: Scan, r: dict) -> None:
    relid, contype = r["relid"], r["contype"]
    if relid in s.table_of and contype == "p":
        return  # HC's primary key: listed as managed
    if contype == "t":
        return  # a constraint trigger's constraint: carried with the trigger
    kind = "foreign_key" if contype == "f" else "constraint"
    table = qname(r["relschema"], r["relname"])
    text = f"ALTER TABLE {table} ADD CONSTRAINT {quote(r['conname'])} {r['def']}"
    obj = _attached(s, kind, "pg_constraint", r, name=r["conname"], definition=text)
    hits = _retarget(s, obj, text)
    if hits is None:
        return
    if kind == "foreign_key" and relid not in s.table_of:
        if hits:
            s.set(obj, "cutover", "replace", target="in place")
        else:
            s.follow(obj, "references nothing that moves")
        return
    _place(s, obj, relid, hits, "cutover" if kind == "foreign_key" else "prep")
    if obj.action != "attach":
        return
    if kind == "constraint":
        obj.flags.append("rejects hc2's sync writes that violate it, as it does hc1's")
    else:
        obj.flags.append(
            "validated in the cutover: a row without its parent aborts the cutover;"
            " check for orphans first"
        )


def _trigger(s: Scan, r: dict) -> None:
    relid = r["relid"]
    if r["tgisinternal"] or r["def"] is None:
        return  # FK machinery, or named like HC's own
    if relid in s.table_of and r["tgname"] in managed.hc_triggers(s.table_of[relid]["relname"]):
        return
    obj = _attached(s, "trigger", "pg_trigger", r, name=r["tgname"], definition=r["def"])
    obj._detail["enabled"] = r["tgenabled"]
    hits = _retarget(s, obj, r["def"])
    if hits is not None:
        _place(s, obj, relid, hits, "cutover")


def _rule(s: Scan, r: dict) -> None:
    definition = r["def"].rstrip(";")
    obj = _attached(s, "rule", "pg_rewrite", r, name=r["rulename"], definition=definition)
    obj._detail["enabled"] = r["enabled"]
    hits = _retarget(s, obj, r["def"])
    if hits is not None:
        _place(s, obj, r["relid"], hits, "cutover")


def _policy(s: Scan, r: dict) -> None:
    table = qname(r["relschema"], r["relname"])
    roles = ", ".join(role(x) for x in r["roles"]) or "PUBLIC"
    text = (
        f"CREATE POLICY {quote(r['polname'])} ON {table}"
        f" AS {'PERMISSIVE' if r['polpermissive'] else 'RESTRICTIVE'}"
        f" FOR {_POLICY_COMMANDS[r['cmd']]} TO {roles}"
        + (f" USING ({r['qual']})" if r["qual"] else "")
        + (f" WITH CHECK ({r['withcheck']})" if r["withcheck"] else "")
    )
    obj = _attached(s, "policy", "pg_policy", r, name=r["polname"], definition=text)
    hits = _retarget(s, obj, text)
    if hits is not None:
        _place(s, obj, r["relid"], hits, "prep")


def _attrdef(s: Scan, r: dict) -> None:
    relid, column = r["relid"], r["attname"]
    if relid in s.table_of and column == "id":
        return  # HC's serial
    table = qname(r["relschema"], r["relname"])
    if r["generated"]:
        text = f"-- generated column {quote(column)} of {table}: {r['expr']}"
        key = ("other", "attrdef", r["oid"])
        obj = _attached(s, "other", "pg_attrdef", r, name=column, definition=text, key=key)
        s.manual(obj, "a generated column cannot be added to a mapped table safely")
        return
    text = f"ALTER TABLE {table} ALTER COLUMN {quote(column)} SET DEFAULT {r['expr']}"
    obj = _attached(s, "default", "pg_attrdef", r, name=column, definition=text)
    obj.identity = f"default of {table}.{quote(column)}"
    if relid in s.table_of:
        obj.columns = sorted({*obj.columns, f"{s.table_of[relid]['relname']}.{column}"})
    hits = _retarget(s, obj, text)
    if hits is not None:
        _place(s, obj, relid, hits, "prep")


def _statistics(s: Scan, r: dict) -> None:
    relid = r["relid"]
    obj = DbObject(
        kind="statistics",
        schema_=r["nspname"],
        name=r["stxname"],
        table=s.tname(relid) if relid in s.table_of else None,
        oid=r["oid"],
        identity=f"statistics {qname(r['nspname'], r['stxname'])}",
        definition=r["def"],
    )
    obj._node = ("pg_statistic_ext", r["oid"])
    obj._key = ("statistics", r["stxname"])
    obj._detail = {"comment": r["comment"], "owner": r["owner"], "stattarget": r["stattarget"]}
    obj.depends_on = s.depends(obj._node)
    obj.columns = s.columns_of(obj._node)
    s.add(obj)
    if _retarget(s, obj, r["def"]) is None:
        return
    if _owner(s, relid) not in ("table", "copy"):
        s.manual(obj, "statistics on an object that is recreated: recreate by hand")
        return
    obj._tree.defnames = retarget.name_nodes(s.away, r["stxname"])
    obj._tree.if_not_exists = True
    s.set(obj, "prep", "copy", target=qname(s.away, r["stxname"]))
    if r["nspname"] != s.home:
        obj.flags.append(f"created in {s.away}, not {r['nspname']}, beside its table")


def _publication(s: Scan, r: dict) -> None:
    relid = r["relid"]
    if relid not in s.table_of:
        return
    table, relname = s.tname(relid), s.table_of[relid]["relname"]
    text = (
        f"ALTER PUBLICATION {quote(r['pubname'])} ADD TABLE {table}"
        + (f" ({', '.join(quote(c) for c in r['columns'])})" if r["columns"] else "")
        + (f" WHERE ({r['qual']})" if r["qual"] else "")
    )
    obj = DbObject(
        kind="publication",
        schema_=s.home,
        name=r["pubname"],
        table=table,
        oid=r["oid"],
        identity=f"publication {quote(r['pubname'])}: {table}",
        definition=text,
    )
    obj._node = ("pg_publication_rel", r["oid"])
    obj._key = ("publication", r["pubname"], relname)
    obj.depends_on = s.depends(obj._node)
    obj.columns = s.columns_of(obj._node)
    s.add(obj)
    if _retarget(s, obj, text) is None:
        return
    s.set(obj, "cutover", "attach", target=f"adds {qname(s.away, relname)}")
    obj.flags.append(
        "subscribers must have the new table and run ALTER SUBSCRIPTION ... REFRESH"
        " PUBLICATION; the old table stays published until it is dropped"
    )


def _class(s: Scan, r: dict) -> None:
    """A relation that depends on a table or node: an index, or something to move by hand."""
    if r["relkind"] not in ("i", "I"):
        if not (r["relkind"] == "S" and r["relname"].endswith("_id_seq")):  # HC's serial
            s.graph.others.add((s.cls["pg_class"], r["oid"], 0))
        return
    relid, name = r["indrelid"], r["relname"]
    if r["constraint_oid"] or r["indexdef"] is None:
        return  # carried with its constraint, or HC's own (hc_idx_*, hcu_idx_*)
    table_row = s.table_of.get(relid)
    if table_row and managed.hc_index(name, table_row["relname"]):
        return
    node = s.node_objects.get(("rel", relid))
    relname = table_row["relname"] if table_row else (node.name if node else str(relid))
    obj = _attached(
        s, "index", "pg_class", r, name=name, definition=r["indexdef"],
        key=("index", name), on=(relid, r["nspname"], relname),
    )  # fmt: skip
    obj.identity = f"index {qname(r['nspname'], name)} on {obj.table}"
    if not r["indisvalid"]:
        obj.flags.append("the index is INVALID in OLD (a failed CREATE INDEX CONCURRENTLY?)")
    hits = _retarget(s, obj, r["indexdef"])
    if hits is None:
        return
    obj._tree.if_not_exists = True
    _place(s, obj, relid, hits, "prep")
    if obj.action == "replace":
        s.manual(obj, "an index on another table whose expression moves: recreate by hand")


_READERS: tuple[tuple[str, Callable[[Scan, dict], None]], ...] = (
    ("pg_constraint", _constraint),
    ("pg_trigger", _trigger),
    ("pg_rewrite", _rule),
    ("pg_policy", _policy),
    ("pg_attrdef", _attrdef),
    ("pg_statistic_ext", _statistics),
    ("pg_publication_rel", _publication),
    ("pg_class", _class),
)


def _others(s: Scan) -> None:
    """Whatever else depends on a table or node: described by PostgreSQL, moved by hand."""
    if not s.graph.others:
        return
    items = sorted(s.graph.others)
    params = ([c for c, _, _ in items], [o for _, o, _ in items], [n for _, _, n in items])
    for r in catalog.fetch(s.conn, catalog.DESCRIBE, params):
        obj = DbObject(
            kind="other",
            schema_="",
            name=r["description"] or "?",
            oid=r["objid"],
            identity=r["description"] or f"object {r['classid']}/{r['objid']}",
            definition=f"-- {r['description']}",
        )
        obj._node = ("other", r["classid"], r["objid"], r["objsubid"])
        obj._key = ("other", obj.identity)
        obj.depends_on = s.depends(obj._node)
        s.manual(
            obj, "depends on a changed table in a way the tool does not re-target: move by hand"
        )
        s.add(obj)
