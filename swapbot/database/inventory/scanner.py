"""One scan of the catalog from `home`'s tables: the state every concern adds to, the helpers
that classify an object, and `scan`, which runs the concerns in order."""

from __future__ import annotations

from collections import defaultdict

import psycopg

from swapbot.database import retarget
from swapbot.database._common import UserError
from swapbot.database.inventory import (
    attached,
    bodies,
    catalog,
    closure,
    managed,
    nodes,
    schema,
    tables,
)
from swapbot.database.inventory.catalog import catalog_snapshot
from swapbot.database.inventory.model import REASONS, DbObject, sort_key
from swapbot.database.retarget import Renames, qname


class Scan:
    """One pass over the catalog from `home`'s tables; `away` is where things are carried."""

    def __init__(
        self,
        conn: psycopg.Connection,
        home: str,
        tables: list[str],
        away: str,
        *,
        forward: bool,
        with_managed: bool,
    ):
        self.conn, self.home, self.tables, self.away = conn, home, tables, away
        self.forward, self.with_managed = forward, with_managed
        self.objects: list[DbObject] = []
        self.managed: list[DbObject] = []
        self.renames = Renames({(home, t): (away, t) for t in tables})
        self.cls: dict[str, int] = {}  # catalog name -> its OID
        self.table_oid: dict[str, int] = {}
        self.table_of: dict[int, dict] = {}  # oid -> table row
        self._tnames: dict[int, str] = {}  # oid -> the table, qualified
        self.columns: dict[int, dict[int, dict]] = defaultdict(dict)  # table oid -> attnum -> row
        self.graph = closure.Closure()
        self.node_objects: dict[tuple, DbObject] = {}  # closure node -> its object

    def run(self) -> tuple[list[DbObject], list[DbObject]]:
        with catalog_snapshot(self.conn):
            self.cls = catalog.catalog_oids(self.conn)
            tables.read(self)
            self.graph = closure.follow(self.conn, self.cls, self.table_of)
            nodes.collect(self)
            attached.collect(self)
            tables.collect(self)
            schema.collect(self)
            bodies.collect(self)
            if self.with_managed:
                managed.collect(self)
        self._depths()
        self.objects.sort(key=sort_key)
        return self.objects, self.managed

    # -- what every concern uses ------------------------------------------------------------

    def tname(self, oid: int) -> str:
        """A changed table, qualified."""
        name = self._tnames.get(oid)
        if name is None:
            name = self._tnames[oid] = qname(self.home, self.table_of[oid]["relname"])
        return name

    def depends(self, node: tuple | None) -> list[str]:
        """Identities of the changed tables and closure objects `node` is bound to."""
        out = set()
        for ref, _ in self.graph.edges.get(node, ()):
            if ref[0] == "rel" and ref[1] in self.table_of:
                out.add(f"table {self.tname(ref[1])}")
            else:
                obj = self.node_objects.get(ref)
                if obj is not None:
                    out.add(obj.identity)
        return sorted(out)

    def columns_of(self, node: tuple | None) -> list[str]:
        """The changed tables' columns `node` is bound to, as "table.column"."""
        out = set()
        for ref, column in self.graph.edges.get(node, ()):
            if ref[0] == "rel" and ref[1] in self.table_of and column:
                col = self.columns[ref[1]].get(column)
                if col:
                    out.add(f"{self.table_of[ref[1]]['relname']}.{col['attname']}")
        return sorted(out)

    def moved_path(self, path: list[str]) -> list[str]:
        """A function's own search_path after the move (forward: NEW before OLD)."""
        if self.home not in path:
            return path
        if self.forward:
            return retarget.path_with(path, self.away, before=self.home)
        return retarget.path_without(path, self.home)

    def add(self, obj: DbObject) -> DbObject:
        self.objects.append(obj)
        return obj

    def set(
        self,
        obj: DbObject,
        phase: str,
        action: str,
        *,
        target: str | None = None,
        reason: str | None = None,
        reason_kind: str | None = None,
    ) -> None:
        obj.phase, obj.action = phase, action  # type: ignore[assignment]
        obj.reason = reason or REASONS.get((reason_kind or obj.kind, action), "")
        obj.target = target
        if not obj._key:
            obj._key = (
                (obj.kind, obj.name)
                if obj.kind != "function"
                else (obj.kind, obj.name, obj._detail.get("args"))
            )

    def manual(self, obj: DbObject, reason: str) -> None:
        obj.phase, obj.action, obj.reason = "manual", "review", reason
        if not obj._key:
            obj._key = (obj.kind, obj.identity)

    def follow(self, obj: DbObject, reason: str) -> None:
        obj.phase, obj.action, obj.reason = "none", "follow", reason

    def _depths(self) -> None:
        """Attached objects come after the nodes they reference."""
        # Each object's node read once: a private attribute of a pydantic model is slow to read.
        placed = [(o, o._node) for o in self.objects]
        by_node = {node: o for o, node in placed if node and node[0] in ("rel", "proc")}
        edges = self.graph.edges
        for obj, node in placed:
            if node and node[0] not in ("rel", "proc"):
                refs = [r for r, _ in edges.get(node, ())]
                depth = max((by_node[r].depth for r in refs if r in by_node), default=0)
                obj.depth = max(obj.depth, depth + 1)


def scan(
    conn: psycopg.Connection,
    home: str,
    tables: list[str],
    away: str,
    *,
    forward: bool = True,
    managed: bool = False,
) -> tuple[list[DbObject], list[DbObject], Renames]:
    """Objects bound to `home`'s `tables`, classified for a move to `away`.

    `forward=False` scans NEW after prep/cutover: a function's pinned path then loses `home`
    instead of gaining `away`. Returns (objects, managed, renames).
    """
    # ACLs name the PUBLIC pseudo-role as PUBLIC; a real role of that name would be granted as
    # the keyword (everyone). Refuse rather than widen a grant.
    if catalog.fetch(conn, catalog.PUBLIC_ROLE):
        raise UserError(
            "a role named PUBLIC exists; its grants cannot be told from grants to everyone: "
            'rename the role (ALTER ROLE "PUBLIC" RENAME TO ...) and run again'
        )
    s = Scan(conn, home, tables, away, forward=forward, with_managed=managed)
    objects, found_managed = s.run()
    return objects, found_managed, s.renames
