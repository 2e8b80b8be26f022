"""What the inventory reports: each object found in the catalog, and what a swap does with it."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal[
    "index", "constraint", "foreign_key", "default", "not_null", "trigger", "rule", "policy",
    "table_option", "statistics", "grant", "schema_grant", "default_privileges", "comment",
    "publication", "view", "materialized_view", "function", "other",
    "table", "system_table",  # only among Heroku Connect's own (`managed`)
]  # fmt: skip
Phase = Literal["prep", "cutover", "manual", "none", "managed"]
Action = Literal[
    "copy", "attach", "replace", "recreate", "refresh", "follow", "review", "managed"
]  # fmt: skip

# Why each (kind, action) lands in its phase. docs/database.md says the same at length.
# fmt: off
REASONS: dict[tuple[str, str], str] = {
    ("index", "attach"):
        "built on the new table before the outage; hc2's sync keeps it current",
    ("constraint", "attach"):
        "added to the new table in prep, so a row that violates it shows up before the outage",
    ("default", "attach"):
        "column default: only applies to inserts that omit the column",
    ("not_null", "attach"):
        "checked against the loaded rows in prep, before the outage",
    ("statistics", "copy"):
        "planner statistics object, created in NEW for the new table",
    ("policy", "attach"):
        "row-level security on the new table, in place before anyone reads it",
    ("table_option", "attach"):
        "table setting carried to the new table",
    ("grant", "attach"):
        "privilege carried to the new table, so the role keeps it after the switch",
    ("schema_grant", "attach"):
        "roles that reach OLD must reach NEW, or names silently resolve to OLD",
    ("default_privileges", "attach"):
        "default privileges carried to NEW for tables hc2 creates later",
    ("comment", "attach"):
        "comment carried to the new table",
    ("view", "copy"):
        "copied into NEW under the same name: unqualified names find NEW first after the switch",
    ("materialized_view", "copy"):
        "copied into NEW (filled from the new table); refreshed again in the cutover",
    ("function", "copy"):
        "copied into NEW under the same name: its definition is bound to OLD's table",
    ("trigger", "attach"):
        "fires on writes: on NEW before the cutover it would also fire on hc2's sync writes",
    ("rule", "attach"):
        "rewrites writes: on NEW before the cutover it would also act on hc2's sync writes",
    ("foreign_key", "attach"):
        "added once both sides are loaded and paused; during the load it would reject hc2's"
        " writes",
    ("foreign_key", "replace"):
        "bound to the old table by OID: re-pointed at the new table in the cutover",
    ("view", "replace"):
        "outside OLD and bound to the old table by OID: replaced in place to read NEW",
    ("materialized_view", "recreate"):
        "outside OLD and bound by OID; a materialized view cannot be replaced, so it is dropped"
        " and created again",
    ("function", "replace"):
        "bound to the old table (by OID or by its own text): replaced in place in the cutover",
    ("rule", "replace"):
        "its action reads the old table by OID: replaced in place",
    ("policy", "replace"):
        "its expression reads the old table by OID: replaced in place",
    ("constraint", "replace"):
        "its expression is bound to the old table by OID: replaced in place",
    ("publication", "attach"):
        "the new table joins the publication when the app's writes move to it",
    ("materialized_view", "refresh"):
        "the copy was filled in prep: refreshed while writes are stopped",
}
# fmt: on

# Order within one depth: what later statements of the same depth need comes first.
RANK: dict[str, int] = {
    "schema_grant": 0, "default_privileges": 1, "table_option": 2, "not_null": 3, "default": 4,
    "constraint": 5, "index": 6, "statistics": 7, "view": 10, "materialized_view": 10,
    "function": 10, "policy": 20, "grant": 21, "comment": 22, "trigger": 30, "rule": 31,
    "foreign_key": 32, "publication": 33,
}  # fmt: skip


class DbObject(BaseModel):
    """One object found in the catalog, with what the swap does with it.

    `kind`: one of `Kind` (`table` and `system_table` only for `managed`).
    `identity` names it uniquely and readably; `depends_on` lists the identities of the tables
    and closure objects it is bound to; `depth` orders creation.

    Besides the reported fields, the scan's own state, never reported: `_tree` (the parsed,
    re-targeted definition), `_detail` (what the DDL needs), `_key` (pairs OLD's object with
    NEW's) and `_node` (its place in the closure). Plain slots rather than pydantic private
    attributes: a scan makes some 10,000 objects and reads these tens of thousands of times,
    and private attributes made that bookkeeping several times slower. Copies carry them;
    pickling does not.
    """

    __slots__ = ("_tree", "_detail", "_key", "_node")
    if TYPE_CHECKING:
        _tree: Any
        _detail: dict
        _key: tuple
        _node: tuple | None

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    kind: Kind
    schema_: str = Field(alias="schema")
    name: str
    table: str | None = None  # the relation it belongs to, qualified
    oid: int | None = None
    identity: str
    definition: str
    phase: Phase = "none"
    action: Action = "follow"
    reason: str = ""
    flags: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)  # "table.column" of changed tables it needs
    target: str | None = None  # where it goes: the NEW object, or "in place"
    target_definition: str | None = None  # the re-targeted definition (when NEW is known)
    depth: int = 1  # creation order: an object comes after everything it depends on

    def model_post_init(self, context: Any, /) -> None:
        _set(self, "_tree", None)
        _set(self, "_detail", {})
        _set(self, "_key", ())
        _set(self, "_node", None)

    def __setattr__(self, name: str, value: Any) -> None:
        # The scan's own slots go straight in: pydantic takes its slowest path for a name it
        # does not know (some 0.4 us more, tens of thousands of times a scan).
        if name in _OWN:
            _set(self, name, value)
        else:
            BaseModel.__setattr__(self, name, value)

    def __copy__(self) -> DbObject:
        copied = super().__copy__()
        for name in DbObject.__slots__:
            _set(copied, name, getattr(self, name))
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> DbObject:
        copied = super().__deepcopy__(memo)
        for name in DbObject.__slots__:
            _set(copied, name, copy.deepcopy(getattr(self, name), memo))
        return copied


_set = object.__setattr__
_OWN = frozenset(DbObject.__slots__)


class Inventory(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    schema_: str = Field(alias="schema")
    new_schema: str | None = None
    tables: list[str]
    objects: list[DbObject]
    managed: list[DbObject]

    def phase(self, phase: str) -> list[DbObject]:
        return [o for o in self.objects if o.phase == phase]


def sort_key(obj: DbObject) -> tuple:
    """Creation order of the scan's objects."""
    return (obj.depth, RANK.get(obj.kind, 50), obj.identity)
