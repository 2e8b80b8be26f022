"""Following `pg_depend` from the changed tables (and their row types), level by level, through
views, materialized views and functions in any schema: the closure of what is bound to them.

Views and functions are nodes (followed further); whatever else depends on a node is recorded
as a dependent of its catalog (`dependents`), or as `others` when the tool cannot carry it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import psycopg

from swapbot.database._common import oid_array
from swapbot.database.inventory import catalog

# Catalogs whose dependents the scan reads and classifies (see `attached`).
DEPENDENT_CATALOGS = frozenset({
    "pg_rewrite", "pg_constraint", "pg_trigger", "pg_policy", "pg_attrdef", "pg_statistic_ext",
    "pg_publication_rel", "pg_class",
})  # fmt: skip

Ref = tuple[int, int]  # (classid, objid) as pg_depend names an object


@dataclass
class Closure:
    # node key ("rel", oid) or ("proc", oid) -> "table", "relation" or "function"
    nodes: dict[tuple, str] = field(default_factory=dict)
    # dependent key -> {(node key, column)}; and node key -> its dependents
    edges: dict[tuple, set[tuple]] = field(default_factory=lambda: defaultdict(set))
    users: dict[tuple, set[tuple]] = field(default_factory=lambda: defaultdict(set))
    dependents: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    others: set[tuple[int, int, int]] = field(default_factory=set)  # (classid, objid, subid)
    depth: dict[tuple, int] = field(default_factory=dict)  # closure node -> creation depth

    def oids(self, prefix: str) -> list[int]:
        """OIDs of the closure's relations ("rel", not the tables) or functions ("proc")."""
        return [k[1] for k, v in self.nodes.items() if k[0] == prefix and v != "table"]


class _Walk:
    """One level of pg_depend rows at a time; `frontier` is what the next level asks about."""

    def __init__(self, cls: dict[str, int], graph: Closure):
        self.graph = graph
        self.pg_class, self.pg_type, self.pg_proc = cls["pg_class"], cls["pg_type"], cls["pg_proc"]
        self.cls_name = {v: k for k, v in cls.items()}
        self.owner_of: dict[Ref, tuple] = {}  # pg_depend's name of an object -> its node
        self.frontier: list[Ref] = []

    def node(self, key: tuple, kind: str, refs: tuple[Ref, ...]) -> None:
        if key in self.graph.nodes:
            return
        self.graph.nodes[key] = kind
        for ref in refs:
            if ref[1]:
                self.owner_of[ref] = key
                self.frontier.append(ref)

    def relation(self, key: tuple, kind: str, oid: int, reltype: int, typarray: int) -> None:
        """A relation is named by its OID, its row type and that type's array type."""
        pg_type = self.pg_type
        self.node(key, kind, ((self.pg_class, oid), (pg_type, reltype), (pg_type, typarray)))

    def row(self, r: catalog.DependRow) -> None:
        ref_node = self.owner_of.get((r.refclassid, r.refobjid))
        if ref_node is None:
            return
        dep = self._dependent(r, ref_node)
        if dep is None:
            return
        column = r.refobjsubid if r.refclassid == self.pg_class else 0
        self.graph.edges[dep].add((ref_node, column))
        self.graph.users[ref_node].add(dep)

    def _dependent(self, r: catalog.DependRow, ref_node: tuple) -> tuple | None:
        """The key of what depends on `ref_node` (None: a view's own rule on itself)."""
        catalog_name = self.cls_name.get(r.classid)
        if catalog_name == "pg_rewrite" and r.rulename == "_RETURN":
            dep = ("rel", r.ev_class)
            if dep == ref_node:
                return None
            self.relation(dep, "relation", r.ev_class, r.ev_reltype, r.ev_typarray)
            return dep
        if catalog_name == "pg_proc":
            dep = ("proc", r.objid)
            self.node(dep, "function", ((self.pg_proc, r.objid),))
            return dep
        column_of_relation = catalog_name == "pg_class" and r.objsubid
        if catalog_name in DEPENDENT_CATALOGS and not column_of_relation:
            self.graph.dependents[catalog_name].add(r.objid)
            return (catalog_name, r.objid)
        self.graph.others.add((r.classid, r.objid, r.objsubid))
        return ("other", r.classid, r.objid, r.objsubid)


def follow(conn: psycopg.Connection, cls: dict[str, int], tables: dict[int, dict]) -> Closure:
    """The closure of `tables` (oid -> row with reltype, typarray): one query per level."""
    graph = Closure()
    walk = _Walk(cls, graph)
    for oid, t in tables.items():
        walk.relation(("rel", oid), "table", oid, t["reltype"], t["typarray"])
    while walk.frontier:
        frontier, walk.frontier = walk.frontier, []
        params = (oid_array(c for c, _ in frontier), oid_array(o for _, o in frontier))
        for r in catalog.depend_rows(conn, params):
            walk.row(r)
    graph.depth = _depths(graph)
    return graph


def _depths(graph: Closure) -> dict[tuple, int]:
    """Each closure node's depth: one more than the deepest node it depends on (tables: 0)."""
    depth: dict[tuple, int] = {}
    for key, kind in graph.nodes.items():
        if kind != "table":
            _visit(graph, depth, key, frozenset())
    return depth


def _visit(graph: Closure, depth: dict[tuple, int], key: tuple, stack: frozenset) -> int:
    # A module function, not a closure inside _depths: a nested function that calls itself
    # is a reference cycle, and would keep the whole graph for the cyclic collector.
    if key in depth:
        return depth[key]
    if graph.nodes.get(key) == "table":
        return 0
    refs = [ref for ref, _ in graph.edges.get(key, ()) if ref not in stack and ref != key]
    depth[key] = 1 + max((_visit(graph, depth, r, stack | {key}) for r in refs), default=0)
    return depth[key]


def topological(graph: Closure) -> list[tuple]:
    """Closure nodes (not the tables), each after every node it depends on."""
    keys = [k for k, v in graph.nodes.items() if v != "table"]
    return sorted(keys, key=lambda k: (graph.depth[k], k))
