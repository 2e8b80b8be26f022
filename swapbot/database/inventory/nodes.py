"""The closure's own objects: views, materialized views and functions bound to a changed table
by OID, re-targeted in dependency order. One that lives in OLD is copied into NEW under its name
(and later ones are re-targeted to the copy); one elsewhere is replaced in place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pglast.parser import ParseError

from swapbot.database import retarget
from swapbot.database.inventory import acls, bodies, catalog, closure
from swapbot.database.inventory.model import DbObject
from swapbot.database.retarget import Name, qname

if TYPE_CHECKING:
    from swapbot.database.inventory.scanner import Scan

_RELKINDS = {"v": "view", "m": "materialized_view"}


def collect(s: Scan) -> None:
    rel_oids, proc_oids = s.graph.oids("rel"), s.graph.oids("proc")
    relations = {r["oid"]: r for r in catalog.by_oid(s.conn, "pg_class", rel_oids)}
    procs = {r["oid"]: r for r in catalog.by_oid(s.conn, "pg_proc", proc_oids)}
    acl = acls.read(s.conn, "pg_class", rel_oids) | acls.read(s.conn, "pg_proc", proc_oids)
    for key in closure.topological(s.graph):
        if key[0] == "rel" and key[1] in relations:
            obj = relation_node(relations[key[1]], acl.get(key[1], []))
        elif key[0] == "proc" and key[1] in procs:
            obj = bodies.function_node(procs[key[1]], acl.get(key[1], []))
        else:
            continue
        obj._node = key
        s.node_objects[key] = obj
        s.add(obj)
    for obj in list(s.node_objects.values()):
        classify(s, obj)


def relation_node(r: dict, acl: list[dict]) -> DbObject:
    kind = _RELKINDS.get(r["relkind"], "relation")
    word = "VIEW" if kind == "view" else "MATERIALIZED VIEW"
    name = qname(r["nspname"], r["relname"])
    obj = DbObject(
        kind="other" if kind == "relation" else kind,
        schema_=r["nspname"],
        name=r["relname"],
        oid=r["oid"],
        identity=f"{kind.replace('_', ' ')} {name}",
        definition=f"CREATE {word} {name} AS {(r['query'] or '').strip()}",
    )
    obj._detail = {
        "relkind": r["relkind"],
        "reloptions": r["reloptions"] or [],
        "owner": r["owner"],
        "acl": acl,
        "comment": r["comment"],
        "query": r["query"],
    }
    if kind == "relation":
        obj.flags.append(f"relation of kind {r['relkind']!r} depends on a changed table")
        return obj
    try:
        obj._tree = retarget.parse_one(r["query"])
    except (ParseError, ValueError) as exc:
        obj.flags.append(f"pglast cannot parse the definition: {exc}")
    return obj


def classify(s: Scan, obj: DbObject) -> None:
    """Views, materialized views and functions bound by OID, in dependency order."""
    tree = obj._tree
    obj.depth = s.graph.depth.get(obj._node, 1)
    obj.depends_on = s.depends(obj._node)
    obj.columns = s.columns_of(obj._node)
    if tree is None:
        s.manual(obj, "cannot be re-targeted automatically: recreate it against NEW by hand")
        return
    signature_hits = _signature_hits(s, obj, tree)
    hits = retarget.rewrite(tree, s.renames) | signature_hits
    if obj.kind == "function" and not obj._detail["atomic"]:
        body = bodies.rewrite_body(s, obj, tree)
        if body is None:
            return  # classified manual by the body scan
        hits |= body
    if not hits:
        via = [d for d in obj.depends_on if not d.startswith("table ")]
        s.follow(
            obj,
            f"bound through {', '.join(via)}, which keeps its name: nothing to change"
            if via
            else "references nothing that moves",
        )
    elif obj.schema_ == s.home:
        _copy(s, obj, tree)
    else:
        _in_place(s, obj, signature_hits)


def _signature_hits(s: Scan, obj: DbObject, tree) -> set[Name]:
    """A function's argument and result types that move (rewritten in place)."""
    hits: set[Name] = set()
    if obj.kind == "function":
        signature = [p.argType for p in tree.parameters or ()] + [tree.returnType]
        for typ in signature:
            if typ is not None:
                hits |= retarget.rewrite(typ, s.renames)
    return hits


def _copy(s: Scan, obj: DbObject, tree) -> None:
    """An object of OLD: copied into NEW, and what comes later reads the copy."""
    target = (s.away, obj.name)
    if obj.kind == "function":
        tree.funcname = retarget.name_nodes(*target)
        s.renames.functions[(s.home, obj.name)] = target
    else:
        s.renames.relations[(s.home, obj.name)] = target
    s.set(obj, "prep", "copy", target=qname(*target))
    if obj.kind == "materialized_view":
        _refresh(s, obj)


def _in_place(s: Scan, obj: DbObject, signature_hits: set[Name]) -> None:
    """An object outside OLD: re-pointed where it is, when PostgreSQL allows it."""
    if obj.kind == "function" and signature_hits:
        s.manual(
            obj,
            "its signature uses a changed table's row type; PostgreSQL cannot change a "
            "function's signature in place: create it against NEW and move its callers by hand",
        )
        return
    if obj.kind != "materialized_view":
        s.set(obj, "cutover", "replace", target="in place")
        return
    users = sorted(
        s.node_objects[k].identity if k in s.node_objects else _describe_key(k)
        for k in s.graph.users.get(obj._node, ())
        if k[0] not in ("pg_class", "pg_statistic_ext")  # its indexes come along
    )
    if users:
        s.manual(
            obj,
            "a materialized view cannot be replaced in place, and dropping it would drop "
            f"{', '.join(users)}: recreate them together by hand",
        )
        return
    s.set(obj, "cutover", "recreate", target="in place")


def _describe_key(key: tuple) -> str:
    return {"pg_policy": "a policy", "pg_rewrite": "a rule", "pg_trigger": "a trigger"}.get(
        key[0], "another object"
    )


def _refresh(s: Scan, obj: DbObject) -> None:
    refresh = DbObject(
        kind="materialized_view",
        schema_=obj.schema_,
        name=obj.name,
        identity=f"refresh of the copy of {obj.identity}",
        definition=f"REFRESH MATERIALIZED VIEW {qname(s.away, obj.name)}",
        depends_on=[obj.identity],
        depth=obj.depth + 1,
    )
    refresh._key = ("refresh", obj.name)
    s.set(refresh, "cutover", "refresh", target=qname(s.away, obj.name))
    s.add(refresh)
